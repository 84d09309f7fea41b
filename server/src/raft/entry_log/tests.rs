use super::*;

fn entry(index: u64, term: u64, size: usize) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8; size].into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64, size: usize) -> Vec<Entry> {
    range.map(|i| entry(i, term, size)).collect()
}

/// Small segments (a few records each) and no cache, so every read goes to a file.
fn small() -> EntryLogConfig {
    EntryLogConfig {
        segment_bytes: 200,
        cache_bytes: 0,
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(SUFFIX))
        .collect();
    names.sort();
    names
}

/// Entries 1..=12 of 40 bytes in small segments, and how many segment files that made.
fn twelve_in_small_segments() -> (tempfile::TempDir, EntryLog, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = EntryLog::open(dir.path(), small()).expect("open");
    log.append(&entries(1..=12, 1, 40)).expect("append");
    let files = segment_files(dir.path()).len();
    (dir, log, files)
}

/// Writes `bytes` at `offset` of segment `seq`, as a crash or a bad disk would leave them.
fn overwrite(dir: &Path, seq: u64, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new()
        .write(true)
        .open(segment_path(dir, seq))
        .expect("open segment");
    file.write_all_at(bytes, offset).expect("overwrite");
}

/// Every entry from `low` up to `high`, with no size limit.
fn read(log: &EntryLog, low: u64, high: u64) -> Vec<Entry> {
    log.entries(low, high, u64::MAX).expect("entries")
}

fn indexes_and_terms(log: &EntryLog) -> Vec<(u64, u64)> {
    if log.last_index() < log.first_index() {
        return Vec::new();
    }
    log.entries(log.first_index(), log.last_index() + 1, u64::MAX)
        .expect("entries")
        .into_iter()
        .map(|e| (e.index, e.term))
        .collect()
}

#[test]
fn appends_span_segments_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = EntryLog::open(dir.path(), small()).expect("open");
    assert_eq!((log.first_index(), log.last_index()), (1, 0));
    log.append(&entries(1..=10, 1, 40)).expect("append");
    log.sync().expect("sync");
    assert!(
        segment_files(dir.path()).len() > 2,
        "{:?}",
        segment_files(dir.path())
    );
    assert_eq!(read(&log, 3, 8), entries(3..=7, 1, 40));
    // The size limit stops early but never returns nothing.
    assert_eq!(log.entries(3, 8, 0).expect("entries").len(), 1);
    assert_eq!(log.entries(3, 8, 100).expect("entries").len(), 2);
    drop(log);

    let mut log = EntryLog::open(dir.path(), small()).expect("reopen");
    assert_eq!((log.first_index(), log.last_index()), (1, 10));
    assert_eq!(log.term(10), Some(1));
    assert_eq!(log.term(11), None);
    assert_eq!(read(&log, 1, 11), entries(1..=10, 1, 40));
    log.append(&entries(11..=12, 2, 40))
        .expect("append after reopen");
    assert_eq!(read(&log, 11, 13), entries(11..=12, 2, 40));
    assert!(matches!(
        log.append(&[entry(20, 2, 1)]),
        Err(Error::Gap { .. })
    ));
}

#[test]
fn a_conflicting_append_replaces_the_tail_even_across_segments_and_after_reopen() {
    let (dir, mut log, before) = twelve_in_small_segments();
    // Entry 3 is in the second segment: the later ones go.
    log.append(&entries(3..=4, 2, 10)).expect("overwrite");
    log.sync().expect("sync");
    assert!(segment_files(dir.path()).len() < before);
    let want: Vec<(u64, u64)> = vec![(1, 1), (2, 1), (3, 2), (4, 2)];
    assert_eq!(indexes_and_terms(&log), want);
    drop(log);
    let log = EntryLog::open(dir.path(), small()).expect("reopen");
    assert_eq!(
        indexes_and_terms(&log),
        want,
        "the replaced tail must stay replaced"
    );
}

#[test]
fn a_shorter_overwrite_in_one_segment_hides_the_old_records_behind_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EntryLogConfig::default();
    let mut log = EntryLog::open(dir.path(), cfg.clone()).expect("open");
    log.append(&entries(1..=10, 1, 30)).expect("append");
    log.append(&entries(5..=5, 2, 30)).expect("overwrite");
    log.sync().expect("sync");
    drop(log);
    let log = EntryLog::open(dir.path(), cfg).expect("reopen");
    assert_eq!(log.last_index(), 5);
    assert_eq!(log.term(5), Some(2));
}

#[test]
fn a_torn_tail_is_dropped_and_written_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EntryLogConfig::default();
    let mut log = EntryLog::open(dir.path(), cfg.clone()).expect("open");
    log.append(&entries(1..=3, 1, 30)).expect("append");
    log.sync().expect("sync");
    let end = log.write_pos;
    drop(log);
    // A record whose payload never fully reached the disk.
    let mut torn = Vec::new();
    encode_record(&mut torn, &entry(4, 1, 30)).expect("encode");
    let cut = torn.len() - 5;
    torn[cut..].fill(0);
    overwrite(dir.path(), 0, end, &torn);

    let mut log = EntryLog::open(dir.path(), cfg.clone()).expect("reopen");
    assert_eq!(log.last_index(), 3);
    log.append(&entries(4..=5, 1, 30)).expect("append");
    log.sync().expect("sync");
    drop(log);
    let log = EntryLog::open(dir.path(), cfg).expect("reopen again");
    assert_eq!(read(&log, 1, 6), entries(1..=5, 1, 30));
}

#[test]
fn damage_before_the_last_segment_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = EntryLog::open(dir.path(), small()).expect("open");
    log.append(&entries(1..=10, 1, 40)).expect("append");
    log.sync().expect("sync");
    drop(log);
    overwrite(dir.path(), 0, HEADER as u64 + 2, &[0xff; 4]);
    assert!(matches!(
        EntryLog::open(dir.path(), small()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn compaction_removes_whole_segments_and_reset_empties_the_log() {
    let (dir, mut log, before) = twelve_in_small_segments();
    log.compact(7).expect("compact");
    assert_eq!((log.first_index(), log.last_index()), (8, 12));
    assert!(segment_files(dir.path()).len() < before);
    assert!(matches!(
        log.entries(7, 8, u64::MAX),
        Err(Error::Compacted(7))
    ));
    assert_eq!(read(&log, 8, 13), entries(8..=12, 1, 40));
    drop(log);
    let mut log = EntryLog::open(dir.path(), small()).expect("reopen");
    assert!(
        log.first_index() <= 8,
        "a kept segment may still hold older entries"
    );
    log.compact(7).expect("compact again");
    assert_eq!(read(&log, 8, 13), entries(8..=12, 1, 40));

    log.reset(100).expect("reset");
    assert_eq!((log.first_index(), log.last_index()), (101, 100));
    assert_eq!(segment_files(dir.path()).len(), 1);
    log.append(&entries(101..=102, 3, 10))
        .expect("append after reset");
    drop(log);
    let log = EntryLog::open(dir.path(), small()).expect("reopen after reset");
    assert_eq!(indexes_and_terms(&log), vec![(101, 3), (102, 3)]);
}

#[test]
fn an_entry_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = EntryLog::open(dir.path(), small()).expect("open");
    log.append(&[entry(1, 1, 10), entry(2, 1, 1000), entry(3, 1, 10)])
        .expect("append");
    log.sync().expect("sync");
    drop(log);
    let log = EntryLog::open(dir.path(), small()).expect("reopen");
    assert_eq!(
        read(&log, 1, 4),
        vec![entry(1, 1, 10), entry(2, 1, 1000), entry(3, 1, 10)]
    );
}

#[test]
fn the_cache_serves_recent_entries_and_agrees_with_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EntryLogConfig {
        segment_bytes: 4096,
        cache_bytes: 100,
    };
    let mut log = EntryLog::open(dir.path(), cfg).expect("open");
    log.append(&entries(1..=20, 1, 30)).expect("append");
    assert!(log.cache_first > 1 && log.cache_first <= 20);
    assert_eq!(read(&log, 1, 21), entries(1..=20, 1, 30));
    log.append(&entries(19..=19, 2, 30))
        .expect("overwrite cached");
    assert_eq!(read(&log, 18, 20)[1], entry(19, 2, 30));
    log.append(&entries(2..=2, 3, 30))
        .expect("overwrite uncached");
    assert_eq!(indexes_and_terms(&log), vec![(1, 1), (2, 3)]);
}

#[test]
fn segments_are_made_zero_filled_at_full_size_and_the_spare_is_used_then_cleared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EntryLogConfig {
        segment_bytes: 4096,
        cache_bytes: 0,
    };
    let mut log = EntryLog::open(dir.path(), cfg.clone()).expect("open");
    let first = std::fs::read(segment_path(dir.path(), 0)).expect("read segment 0");
    assert_eq!(first.len(), 4096);
    assert!(
        first.iter().all(|&b| b == 0),
        "a fresh segment is all zeros"
    );
    // Past one segment: the roll renames the helper's spare into segment 1.
    log.append(&entries(1..=60, 1, 100)).expect("append");
    log.sync().expect("sync");
    assert!(segment_files(dir.path()).len() >= 2);
    let second = std::fs::metadata(segment_path(dir.path(), 1)).expect("segment 1");
    assert_eq!(second.len(), 4096);
    drop(log);
    // Dropping waits for the helper, so its spare is complete; open clears it.
    assert!(dir.path().join(SPARE).exists(), "the next spare was made");
    let log = EntryLog::open(dir.path(), cfg).expect("reopen");
    assert!(!dir.path().join(SPARE).exists());
    assert_eq!(indexes_and_terms(&log).len(), 60);
}
