//! The raft log's entries, in preallocated append-only segment files under
//! `<data-dir>/wal`.
//!
//! Why not RocksDB: an entry written there costs a memtable insert, a second copy at
//! flush, a tombstone at compaction, and a WAL fsync that also has to grow the WAL
//! file. Here an append is one `pwrite` into space the file already owns and one
//! `fdatasync` that need not touch the file's size (the way etcd's WAL segments work),
//! and committed entries are handed back from memory instead of being read back.
//!
//! # Files
//!
//! Segment `N` is `{N:016x}.wal`, created at its full size and filled with zeros (so
//! an append overwrites blocks the file already owns, see [`make_segment_file`]). The
//! next one is made ahead of need by a helper thread once the current one is half
//! written, as etcd's WAL file pipeline prepares its next file, so moving on to it
//! costs the raft thread a rename. It is a sequence of
//! records, each `len: u32 LE | crc32(payload): u32 LE | payload`, the payload being
//! the raft crate's protobuf encoding of one entry, followed by a zero `len` (the end
//! marker, written with every batch, so a tail left over from a truncated history
//! is never read as part of the log). Indexes increase by one from record to record
//! and segment to segment; terms never decrease.
//!
//! # Recovery
//!
//! Open reads the segments in order and stops at the end marker, at a record whose
//! checksum, length, index or term does not fit, or at the end of the file. Only the
//! last segment may end that way: a segment is synced before the next one gets its
//! first record, so a torn write can only be the newest, unacknowledged one; anywhere
//! else it is corruption and open fails.
//!
//! # Memory
//!
//! Every live entry has a [`Slot`] (where it is, and its term: 24 bytes) so `term`
//! never reads a file; the newest entries are also kept decoded, up to
//! [`EntryLogConfig::cache_bytes`], which covers the entries raft asks for right after
//! appending them (to apply, or to send to followers that keep up).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::Entry;

const HEADER: usize = 8;
const SUFFIX: &str = ".wal";
/// The next segment while it is made; any `.tmp` file is removed on open.
const SPARE: &str = "spare.tmp";

/// Errors of the entry log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("raft log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("raft log {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("raft log: entry {0} is compacted")]
    Compacted(u64),
    #[error("raft log: entry {0} is not in the log")]
    Unavailable(u64),
    #[error("raft log: entry {index} would leave a gap after {last}")]
    Gap { index: u64, last: u64 },
    #[error("raft log: encoding an entry: {0}")]
    Encode(#[from] protobuf::ProtobufError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Tunables of the entry log.
#[derive(Clone, Debug)]
pub struct EntryLogConfig {
    /// Size of a segment file (etcd's `SegmentSizeBytes`, 64 MiB). A batch that does
    /// not fit starts the next segment; an entry larger than a segment gets one of its
    /// own, grown past this size.
    pub segment_bytes: u64,
    /// Bytes of the newest entries kept decoded in memory.
    pub cache_bytes: usize,
}

impl Default for EntryLogConfig {
    fn default() -> Self {
        EntryLogConfig {
            segment_bytes: 64 << 20,
            cache_bytes: 8 << 20,
        }
    }
}

/// Where one live entry is.
#[derive(Clone, Copy, Debug)]
struct Slot {
    segment: u64,
    offset: u64,
    len: u32,
    term: u64,
}

struct Segment {
    seq: u64,
    path: PathBuf,
    file: File,
}

/// The raft entries from `first_index` to `last_index`, on disk and (the newest) in
/// memory. Owned by the raft task.
pub struct EntryLog {
    dir: PathBuf,
    cfg: EntryLogConfig,
    /// Oldest first; the last one is written to.
    segments: VecDeque<Segment>,
    /// Where the next record goes in the last segment.
    write_pos: u64,
    /// Whether the last segment holds a record (a fresh one is never rolled over).
    written: bool,
    first: u64,
    slots: VecDeque<Slot>,
    /// Decoded copies of the entries `cache_first ..= last_index`.
    cache: VecDeque<Entry>,
    cache_first: u64,
    cache_size: usize,
    /// The helper making the next segment file at `dir/SPARE`, if one was started.
    spare: Option<std::thread::JoinHandle<std::io::Result<File>>>,
}

impl Drop for EntryLog {
    fn drop(&mut self) {
        // A helper still writing `SPARE` could otherwise write zeros into the file a
        // log reopened in this directory has just renamed into a segment.
        if let Some(helper) = self.spare.take() {
            let _ = helper.join();
        }
    }
}

/// Creates `path` as a segment of `size` bytes of zeros, synced.
///
/// Zeros rather than `fallocate`: ext4 keeps fallocated blocks as unwritten extents,
/// and the first write into each converts it, a metadata change that the append's
/// `fdatasync` must then also write (`ext4_write_inode` under `fdatasync` in the
/// profile). Measured here (docs/BENCHMARKS.md, item 35), `pwrite` + `fdatasync` of
/// 2,200-byte appends took 116–124 µs into fallocated blocks against 89–92 µs into
/// written ones, and 10,000-byte appends 144–149 against 86–87 µs. Writing 64 MiB of
/// zeros and syncing them takes 30–40 ms here.
fn make_segment_file(path: &Path, size: u64) -> std::io::Result<File> {
    const CHUNK: usize = 1 << 20;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    Ok(file)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}{SUFFIX}"))
}

/// Makes a directory entry change (a new or removed file) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Fills `buf` as far as the reader goes; returns how much it filled.
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Appends one record for `e` to `buf`; returns the payload length.
fn encode_record(buf: &mut Vec<u8>, e: &Entry) -> Result<u32> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    e.write_to_vec(buf)?;
    let payload = &buf[start + HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

impl EntryLog {
    /// Opens the log in `dir` (created if missing) and recovers its entries.
    pub fn open(dir: &Path, cfg: EntryLogConfig) -> Result<EntryLog> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut seqs = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let name = item.map_err(io_err(dir))?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(hex) = name.strip_suffix(SUFFIX) {
                if let Ok(seq) = u64::from_str_radix(hex, 16) {
                    seqs.push(seq);
                }
            } else if name.ends_with(".tmp") {
                // A segment whose creation a crash interrupted; it never held a record.
                let _ = std::fs::remove_file(dir.join(name));
            }
        }
        seqs.sort_unstable();
        let mut log = EntryLog {
            dir: dir.to_path_buf(),
            cfg,
            segments: VecDeque::new(),
            write_pos: 0,
            written: false,
            first: 1,
            slots: VecDeque::new(),
            cache: VecDeque::new(),
            cache_first: 1,
            cache_size: 0,
            spare: None,
        };
        let count = seqs.len();
        for (i, seq) in seqs.into_iter().enumerate() {
            let path = segment_path(dir, seq);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let (end, clean) = log.scan(seq, &path, &file)?;
            if !clean && i + 1 < count {
                return Err(Error::Corrupt {
                    path,
                    what: format!("unreadable record at offset {end} before the last segment"),
                });
            }
            log.segments.push_back(Segment { seq, path, file });
            log.write_pos = end;
            log.written = end > 0;
        }
        if log.segments.is_empty() {
            log.add_segment(0)?;
        }
        log.maybe_start_spare();
        log.cache_first = log.last_index() + 1;
        Ok(log)
    }

    /// Reads the records of one segment into slots; returns where they end and
    /// whether they ended at an end marker or the end of the file.
    fn scan(&mut self, seq: u64, path: &Path, file: &File) -> Result<(u64, bool)> {
        let file_len = file.metadata().map_err(io_err(path))?.len();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut pos = 0u64;
        let mut header = [0u8; HEADER];
        let mut payload = Vec::new();
        loop {
            match read_full(&mut reader, &mut header).map_err(io_err(path))? {
                n if n < HEADER => return Ok((pos, header[..n].iter().all(|&b| b == 0))),
                _ => {}
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len == 0 {
                return Ok((pos, true));
            }
            if pos + (HEADER as u64) + u64::from(len) > file_len {
                return Ok((pos, false));
            }
            payload.resize(len as usize, 0);
            if read_full(&mut reader, &mut payload).map_err(io_err(path))? < payload.len()
                || crc32fast::hash(&payload) != crc
            {
                return Ok((pos, false));
            }
            let Ok(e) = Entry::parse_from_bytes(&payload) else {
                return Ok((pos, false));
            };
            let fits = match self.slots.back() {
                None => e.index > 0,
                Some(prev) => e.index == self.last_index() + 1 && e.term >= prev.term,
            };
            if !fits {
                return Ok((pos, false));
            }
            if self.slots.is_empty() {
                self.first = e.index;
            }
            self.slots.push_back(Slot {
                segment: seq,
                offset: pos,
                len,
                term: e.term,
            });
            pos += (HEADER + payload.len()) as u64;
        }
    }

    /// Index of the oldest live entry (one past the last if the log is empty).
    pub fn first_index(&self) -> u64 {
        self.first
    }

    /// Index of the newest entry (`first_index - 1` if the log is empty).
    pub fn last_index(&self) -> u64 {
        self.first + self.slots.len() as u64 - 1
    }

    /// Term of entry `index`, if the log holds it.
    pub fn term(&self, index: u64) -> Option<u64> {
        let i = index.checked_sub(self.first)?;
        self.slots.get(i as usize).map(|s| s.term)
    }

    /// Makes segment `seq` the one written to, from the helper's spare file when it
    /// made one (see [`EntryLog::maybe_start_spare`]).
    fn add_segment(&mut self, seq: u64) -> Result<()> {
        let path = segment_path(&self.dir, seq);
        let spare = self.dir.join(SPARE);
        let made = match self.spare.take().map(|helper| helper.join()) {
            Some(Ok(Ok(file))) => file,
            // None started, or it failed: make the file here, where a failure is
            // reported to the caller.
            _ => make_segment_file(&spare, self.cfg.segment_bytes).map_err(io_err(&spare))?,
        };
        std::fs::rename(&spare, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.segments.push_back(Segment {
            seq,
            path,
            file: made,
        });
        self.write_pos = 0;
        self.written = false;
        Ok(())
    }

    /// Starts the helper making the next segment file once the current one is half
    /// written: well ahead of the roll, and never for a log that stays small (a member
    /// that writes a few MiB in its life never pays for a second 64 MiB of zeros).
    fn maybe_start_spare(&mut self) {
        if self.spare.is_some() || self.write_pos < self.cfg.segment_bytes / 2 {
            return;
        }
        let spare = self.dir.join(SPARE);
        let size = self.cfg.segment_bytes;
        // Without the thread the next roll makes its file itself.
        self.spare = std::thread::Builder::new()
            .name("wal-spare".into())
            .spawn(move || make_segment_file(&spare, size))
            .ok();
    }

    fn current(&self) -> &Segment {
        // Invariant: `open` creates a segment when there is none, `reset` adds the new
        // one before dropping the old, `truncate_from` keeps the segment it truncates
        // into and `compact` keeps the last one.
        self.segments.back().expect("a current segment")
    }

    /// Appends `entries` (consecutive), replacing any entries from the first one's
    /// index on. Not durable until [`EntryLog::sync`].
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(head) = entries.first() else {
            return Ok(());
        };
        if head.index < self.first {
            return Err(Error::Compacted(head.index));
        }
        if head.index > self.last_index() + 1 {
            return Err(Error::Gap {
                index: head.index,
                last: self.last_index(),
            });
        }
        if head.index <= self.last_index() {
            self.truncate_from(head.index)?;
        }
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.data.len() + 64).sum());
        let mut pending: Vec<(u32, u64, usize)> = Vec::with_capacity(entries.len());
        for e in entries {
            let start = buf.len();
            let len = encode_record(&mut buf, e)?;
            let need = (HEADER + len as usize) as u64;
            if self.written_to_pos(start) + need > self.cfg.segment_bytes
                && (self.written || start > 0)
            {
                // Write what fits here, then continue in a new segment.
                let rest = buf.split_off(start);
                self.write_records(&mut buf, &pending)?;
                self.roll()?;
                buf = rest;
                pending.clear();
            }
            pending.push((len, e.term, buf.len() - HEADER - len as usize));
        }
        self.write_records(&mut buf, &pending)?;
        for e in entries {
            self.cache_push(e.clone());
        }
        Ok(())
    }

    /// Where a record starting at `start` in the pending buffer would land.
    fn written_to_pos(&self, start: usize) -> u64 {
        self.write_pos + start as u64
    }

    /// Writes `buf` (whole records) and an end marker at the write position and
    /// records their slots.
    fn write_records(&mut self, buf: &mut Vec<u8>, pending: &[(u32, u64, usize)]) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let len = buf.len();
        buf.extend_from_slice(&[0; HEADER]);
        let seg = self.current();
        let written = seg.file.write_all_at(buf, self.write_pos);
        buf.truncate(len);
        written.map_err(io_err(&seg.path))?;
        let seq = seg.seq;
        for &(len, term, at) in pending {
            self.slots.push_back(Slot {
                segment: seq,
                offset: self.write_pos + at as u64,
                len,
                term,
            });
        }
        self.write_pos += len as u64;
        self.written = true;
        self.maybe_start_spare();
        Ok(())
    }

    /// Syncs the current segment and moves on to a new one.
    fn roll(&mut self) -> Result<()> {
        let seg = self.current();
        seg.file.sync_data().map_err(io_err(&seg.path))?;
        let next = seg.seq + 1;
        self.add_segment(next)
    }

    /// Drops entries from `index` on (which must be live): the next append writes
    /// over them.
    fn truncate_from(&mut self, index: u64) -> Result<()> {
        let at = (index - self.first) as usize;
        let slot = self.slots[at];
        while self.current().seq > slot.segment {
            if let Some(seg) = self.segments.pop_back() {
                drop(seg.file);
                std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            }
        }
        sync_dir(&self.dir)?;
        self.slots.truncate(at);
        self.write_pos = slot.offset;
        self.written = slot.offset > 0;
        if index < self.cache_first {
            self.cache.clear();
            self.cache_first = index;
            self.cache_size = 0;
        } else {
            let keep = (index - self.cache_first) as usize;
            for e in self.cache.drain(keep..) {
                self.cache_size -= e.data.len();
            }
        }
        Ok(())
    }

    fn cache_push(&mut self, e: Entry) {
        if self.cache.is_empty() {
            self.cache_first = e.index;
        }
        self.cache_size += e.data.len();
        self.cache.push_back(e);
        while self.cache_size > self.cfg.cache_bytes && self.cache.len() > 1 {
            if let Some(old) = self.cache.pop_front() {
                self.cache_size -= old.data.len();
                self.cache_first += 1;
            }
        }
    }

    /// Makes every appended entry durable (one `fdatasync`).
    pub fn sync(&self) -> Result<()> {
        let seg = self.current();
        seg.file.sync_data().map_err(io_err(&seg.path))
    }

    /// Entries `low .. high` (which must be live), stopping before the total payload
    /// passes `max_size` but always returning at least one.
    pub fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>> {
        if low < self.first {
            return Err(Error::Compacted(low));
        }
        let mut out = Vec::with_capacity(high.saturating_sub(low) as usize);
        let mut size = 0u64;
        for index in low..high {
            let slot = *self
                .slots
                .get((index - self.first) as usize)
                .ok_or(Error::Unavailable(index))?;
            size += u64::from(slot.len);
            if !out.is_empty() && size > max_size {
                break;
            }
            let e = match index.checked_sub(self.cache_first) {
                Some(i) if (i as usize) < self.cache.len() => self.cache[i as usize].clone(),
                _ => self.read(index, slot)?,
            };
            out.push(e);
        }
        Ok(out)
    }

    fn read(&self, index: u64, slot: Slot) -> Result<Entry> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.seq == slot.segment)
            .ok_or_else(|| Error::Corrupt {
                path: self.dir.clone(),
                what: format!("segment {:x} of entry {index} is gone", slot.segment),
            })?;
        let mut buf = vec![0u8; HEADER + slot.len as usize];
        seg.file
            .read_exact_at(&mut buf, slot.offset)
            .map_err(io_err(&seg.path))?;
        let corrupt = |what: String| Error::Corrupt {
            path: seg.path.clone(),
            what,
        };
        let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let payload = &buf[HEADER..];
        if crc32fast::hash(payload) != crc {
            return Err(corrupt(format!("checksum mismatch in entry {index}")));
        }
        let e =
            Entry::parse_from_bytes(payload).map_err(|e| corrupt(format!("entry {index}: {e}")))?;
        if e.index != index {
            return Err(corrupt(format!(
                "found entry {} where {index} was",
                e.index
            )));
        }
        Ok(e)
    }

    /// Forgets entries up to and including `index` and removes the segments that
    /// held only those. The caller has made the state they led to durable.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        while self.first <= index && !self.slots.is_empty() {
            self.slots.pop_front();
            self.first += 1;
        }
        if self.slots.is_empty() {
            self.first = self.first.max(index + 1);
        }
        while self.cache_first <= index && !self.cache.is_empty() {
            if let Some(e) = self.cache.pop_front() {
                self.cache_size -= e.data.len();
            }
            self.cache_first += 1;
        }
        if self.cache.is_empty() {
            self.cache_first = self.last_index() + 1;
        }
        let oldest_live = self.slots.front().map_or(self.current().seq, |s| s.segment);
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[0].seq < oldest_live {
            if let Some(seg) = self.segments.pop_front() {
                drop(seg.file);
                std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Empties the log so that the next entry is `after + 1` (a snapshot at `after`
    /// replaced the state): every segment goes and a fresh one is started.
    pub fn reset(&mut self, after: u64) -> Result<()> {
        let next = self.current().seq + 1;
        let old: Vec<Segment> = self.segments.drain(..).collect();
        if let Err(e) = self.add_segment(next) {
            // Keep a segment to write to, as every other method assumes.
            self.segments = old.into();
            return Err(e);
        }
        for seg in old {
            drop(seg.file);
            std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
        }
        sync_dir(&self.dir)?;
        self.slots.clear();
        self.cache.clear();
        self.cache_size = 0;
        self.first = after + 1;
        self.cache_first = after + 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
