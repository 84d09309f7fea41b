//! Reading the store's history: the events of a revision span, in revision order.
//!
//! Watch catch-up replays history from the `rev` column family, which is ordered by
//! revision and names the key changed at each `(main, sub)` revision. The value of a PUT
//! lives in the `key` column family at exactly that version, so each event costs one
//! sequential step in `rev` plus one point lookup in `key` (and only for keys some
//! watcher wants: the caller's filter runs before the lookup).
//!
//! Reads are bounded ([`HistoryLimits`]) so one catch-up round never holds a large
//! amount of history in memory, and they stop only at a revision boundary: the events
//! of one revision are never split between two batches.
//!
//! Compaction: every read runs on one RocksDB snapshot, and the compaction revision is
//! loaded *after* the snapshot is taken. A compaction is always published before its
//! physical removal starts, so if the loaded revision does not cover the span, the
//! snapshot still holds every version the span needs.

use revkv_proto::mvccpb::{event::EventType, Event, KeyValue};
use rocksdb::{ReadOptions, Snapshot};

use super::record::{EventRecord, KeyRecord};
use super::{Error, KvStore, Result};
use crate::storage::keys::{self, Revision};
use crate::storage::{CF_KEY, CF_REV};

/// How much one [`read_events`] call may read.
#[derive(Clone, Copy, Debug)]
pub struct HistoryLimits {
    /// Stop after this many revisions have been scanned (whether or not they matched):
    /// bounds the work done for watchers whose keys rarely change.
    pub max_revs: usize,
    /// Stop once this many events have been collected (at the end of their revision).
    pub max_events: usize,
}

impl Default for HistoryLimits {
    /// etcd reads at most 1,000 revisions per watch batch (`watchBatchMaxRevs`).
    fn default() -> Self {
        HistoryLimits {
            max_revs: 1000,
            max_events: 10_000,
        }
    }
}

/// One bounded slice of history.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryBatch {
    /// Matching events in revision order (sub revisions in order within a revision).
    pub events: Vec<Event>,
    /// Every revision of the requested span below this one has been read; it is
    /// `to + 1` once the span is exhausted.
    pub next_rev: i64,
}

/// Reads the events of revisions `from..=to` whose key passes `wanted`, at most
/// `limits` at a time. `to` is capped at the current revision. With `prev_kv`, every
/// event carries the key's previous version (see [`prev_kv`] for when there is none).
///
/// Fails with [`Error::Compacted`] when `from` is below the compaction revision.
pub fn read_events(
    store: &KvStore,
    from: i64,
    to: i64,
    limits: HistoryLimits,
    prev_kv: bool,
    mut wanted: impl FnMut(&[u8]) -> bool,
) -> Result<HistoryBatch> {
    // Order matters (see the module docs): current revision, snapshot, compaction.
    let (current, snapshot) = store.pin();
    let to = to.min(current);
    let storage = store.storage();
    let compacted = store.compact_rev();
    if from < compacted {
        return Err(Error::Compacted);
    }
    let mut out = HistoryBatch {
        events: Vec::new(),
        next_rev: to + 1,
    };
    if from > to {
        return Ok(out);
    }
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(Revision::new(to + 1, 0).to_bytes().to_vec());
    let mut it = snapshot.raw_iterator_cf_opt(storage.cf(CF_REV), opts);
    it.seek(Revision::new(from, 0).to_bytes());
    let mut current_main = None;
    let mut revs = 0usize;
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let rev = Revision::from_bytes(k)
            .ok_or_else(|| Error::Corrupt("undecodable key in rev CF".into()))?;
        if current_main != Some(rev.main) {
            if revs >= limits.max_revs || out.events.len() >= limits.max_events {
                out.next_rev = rev.main;
                return Ok(out);
            }
            revs += 1;
            current_main = Some(rev.main);
        }
        let record = EventRecord::decode(v)?;
        if wanted(&record.key) {
            let mut event = event_at(store, &snapshot, record, rev)?;
            if prev_kv {
                if let Some(kv) = &event.kv {
                    event.prev_kv = prev_version(store, Some(&snapshot), &kv.key, rev.main)?;
                }
                event.prev_kv = event.prev_kv.filter(|_| rev.main > compacted);
            }
            out.events.push(event);
        }
        it.next();
    }
    it.status()?;
    Ok(out)
}

/// The version of `key` that the change at main revision `rev` replaced: the newest
/// version below `rev`, or `None` when there is none, it is a deletion, or revision
/// `rev - 1` has been compacted (etcd reads it as a range at `rev - 1`, which then
/// fails, so no prev_kv is sent).
pub fn prev_kv(store: &KvStore, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
    let found = prev_version(store, None, key, rev)?;
    // Loaded after the read: a removal the read observed was published before it.
    if rev - 1 < store.compact_rev() {
        return Ok(None);
    }
    Ok(found)
}

/// Builds the wire event of the change `record` made at `rev`.
fn event_at(
    store: &KvStore,
    snapshot: &Snapshot<'_>,
    record: EventRecord,
    rev: Revision,
) -> Result<Event> {
    if record.tombstone {
        // etcd's DELETE events carry only the key and the deletion's revision.
        return Ok(Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue {
                key: record.key,
                mod_revision: rev.main,
                ..Default::default()
            }),
            prev_kv: None,
        });
    }
    let cf = store.storage().cf(CF_KEY);
    let raw = snapshot
        .get_pinned_cf(cf, keys::version_key(&record.key, rev))?
        .ok_or_else(|| {
            Error::Corrupt(format!("rev {rev} names a version missing from the key CF"))
        })?;
    let kv = KeyRecord::decode(&raw)?.to_key_value(&record.key, rev);
    Ok(Event {
        r#type: EventType::Put as i32,
        kv: Some(kv),
        prev_kv: None,
    })
}

/// The newest version of `key` with main revision below `rev`, if it is live.
fn prev_version(
    store: &KvStore,
    snapshot: Option<&Snapshot<'_>>,
    key: &[u8],
    rev: i64,
) -> Result<Option<KeyValue>> {
    if rev <= 1 {
        return Ok(None);
    }
    let storage = store.storage();
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(keys::after_all_versions(key));
    let cf = storage.cf(CF_KEY);
    let mut it = match snapshot {
        Some(s) => s.raw_iterator_cf_opt(cf, opts),
        None => storage.db().raw_iterator_cf_opt(cf, opts),
    };
    // Versions sort newest first, so this lands on the newest one at or below rev - 1.
    it.seek(keys::version_key(key, Revision::new(rev - 1, i64::MAX)));
    let (Some(k), Some(v)) = (it.key(), it.value()) else {
        it.status()?;
        return Ok(None);
    };
    let (_, found) = keys::decode_version_key(k)
        .ok_or_else(|| Error::Corrupt("undecodable key in key CF".into()))?;
    let record = KeyRecord::decode(v)?;
    if record.tombstone {
        return Ok(None);
    }
    Ok(Some(record.to_key_value(key, found)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::ApplyBatch;
    use crate::storage::{Storage, StorageConfig};
    use std::sync::Arc;

    fn open() -> (tempfile::TempDir, Arc<KvStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        (dir, KvStore::open(storage).expect("store"))
    }

    fn put(store: &KvStore, key: &str, value: &str) -> i64 {
        let mut b = ApplyBatch::new(store);
        let mut t = b.txn();
        t.put(key.as_bytes(), value.as_bytes().to_vec(), 0)
            .expect("put");
        t.end();
        b.commit(None).expect("commit").rev
    }

    fn delete(store: &KvStore, key: &str, end: &str) -> i64 {
        let mut b = ApplyBatch::new(store);
        let mut t = b.txn();
        t.delete_range(key.as_bytes(), end.as_bytes())
            .expect("delete");
        t.end();
        b.commit(None).expect("commit").rev
    }

    fn compact(store: &KvStore, rev: i64) {
        let mut b = ApplyBatch::new(store);
        b.compact(rev).expect("compact");
        b.commit(None).expect("commit");
    }

    /// (type, key, value, mod_revision, prev value) of each event.
    fn summary(b: &HistoryBatch) -> Vec<(i32, String, String, i64, Option<String>)> {
        let s = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        b.events
            .iter()
            .map(|e| {
                let kv = e.kv.clone().unwrap_or_default();
                let prev = e.prev_kv.as_ref().map(|p| s(&p.value));
                (e.r#type, s(&kv.key), s(&kv.value), kv.mod_revision, prev)
            })
            .collect()
    }

    const PUT: i32 = EventType::Put as i32;
    const DEL: i32 = EventType::Delete as i32;

    #[test]
    fn replays_puts_and_deletes_in_revision_order_with_full_key_values() {
        let (_d, store) = open();
        put(&store, "a", "1"); // 2
        put(&store, "b", "1"); // 3
        put(&store, "a", "2"); // 4
        delete(&store, "a", ""); // 5
        let b = read_events(&store, 2, 5, HistoryLimits::default(), false, |_| true).expect("read");
        assert_eq!(b.next_rev, 6);
        assert_eq!(
            summary(&b),
            vec![
                (PUT, "a".into(), "1".into(), 2, None),
                (PUT, "b".into(), "1".into(), 3, None),
                (PUT, "a".into(), "2".into(), 4, None),
                (DEL, "a".into(), "".into(), 5, None),
            ]
        );
        let kv = b.events[2].kv.clone().expect("kv");
        assert_eq!((kv.create_revision, kv.version), (2, 2));
        // A DELETE carries only the key and its revision, as etcd sends it.
        let del = b.events[3].kv.clone().expect("kv");
        assert_eq!(
            (del.create_revision, del.version, del.value.len()),
            (0, 0, 0)
        );
    }

    #[test]
    fn filter_and_span_bounds() {
        let (_d, store) = open();
        for i in 0..5 {
            put(&store, "a", &i.to_string()); // 2..=6
            put(&store, "b", &i.to_string()); // 3..=7, odd
        }
        let b = read_events(&store, 4, 7, HistoryLimits::default(), false, |k| k == b"b")
            .expect("read");
        let revs: Vec<i64> = summary(&b).iter().map(|e| e.3).collect();
        assert_eq!(revs, vec![5, 7]);
        // `to` beyond the current revision is capped.
        let b =
            read_events(&store, 11, 100, HistoryLimits::default(), false, |_| true).expect("read");
        assert_eq!((b.events.len(), b.next_rev), (1, 12));
        // An empty span.
        let b =
            read_events(&store, 12, 100, HistoryLimits::default(), false, |_| true).expect("read");
        assert_eq!((b.events.len(), b.next_rev), (0, 12));
    }

    #[test]
    fn batches_are_bounded_and_never_split_a_revision() {
        let (_d, store) = open();
        // Revision 2 holds three events (a txn putting three keys).
        let mut b = ApplyBatch::new(&store);
        let mut t = b.txn();
        for k in ["x", "y", "z"] {
            t.put(k.as_bytes(), b"v".to_vec(), 0).expect("put");
        }
        t.end();
        b.commit(None).expect("commit");
        for i in 0..10 {
            put(&store, "k", &i.to_string()); // 3..=12
        }
        let limits = HistoryLimits {
            max_revs: 1000,
            max_events: 2,
        };
        let first = read_events(&store, 2, 12, limits, false, |_| true).expect("read");
        assert_eq!(first.events.len(), 3, "revision 2 is never split");
        assert_eq!(first.next_rev, 3);
        let limits = HistoryLimits {
            max_revs: 4,
            max_events: 1000,
        };
        let mut from = 2;
        let mut all = Vec::new();
        loop {
            let b = read_events(&store, from, 12, limits, false, |_| true).expect("read");
            assert!(b.next_rev > from);
            all.extend(summary(&b).into_iter().map(|e| e.3));
            from = b.next_rev;
            if from > 12 {
                break;
            }
        }
        let mut expected = vec![2, 2, 2];
        expected.extend(3..=12);
        assert_eq!(
            all, expected,
            "batches cover the span exactly once, in order"
        );
        // Scanned revisions count even when nothing matches.
        let b = read_events(&store, 2, 12, limits, false, |_| false).expect("read");
        assert_eq!((b.events.len(), b.next_rev), (0, 6));
    }

    #[test]
    fn prev_kv_is_the_version_replaced() {
        let (_d, store) = open();
        put(&store, "a", "1"); // 2
        put(&store, "a", "2"); // 3
        delete(&store, "a", ""); // 4
        put(&store, "a", "3"); // 5
        let b = read_events(&store, 2, 5, HistoryLimits::default(), true, |_| true).expect("read");
        let prevs: Vec<Option<String>> = summary(&b).into_iter().map(|e| e.4).collect();
        // Create: none; update: the old value; delete: the deleted value; re-create
        // after a delete: none.
        assert_eq!(prevs, vec![None, Some("1".into()), Some("2".into()), None]);
        let p = prev_kv(&store, b"a", 3).expect("prev").expect("some");
        assert_eq!((p.mod_revision, p.version, p.value), (2, 1, b"1".to_vec()));
        assert_eq!(prev_kv(&store, b"missing", 5).expect("prev"), None);
    }

    #[test]
    fn compaction_is_reported_and_hides_compacted_prev_kv() {
        let (_d, store) = open();
        put(&store, "a", "1"); // 2
        put(&store, "a", "2"); // 3
        put(&store, "a", "3"); // 4
        compact(&store, 3);
        assert!(matches!(
            read_events(&store, 2, 4, HistoryLimits::default(), false, |_| true),
            Err(Error::Compacted)
        ));
        let b = read_events(&store, 3, 4, HistoryLimits::default(), true, |_| true).expect("read");
        let prevs: Vec<Option<String>> = summary(&b).into_iter().map(|e| e.4).collect();
        // Revision 3's previous version lives at 2, below the compaction: none, as etcd.
        assert_eq!(prevs, vec![None, Some("2".into())]);
        assert_eq!(prev_kv(&store, b"a", 3).expect("prev"), None);
    }

    #[test]
    fn physically_compacted_history_still_reads_from_the_compaction_revision() {
        let (_d, store) = open();
        put(&store, "a", "1"); // 2
        put(&store, "a", "2"); // 3
        put(&store, "b", "1"); // 4
        delete(&store, "b", ""); // 5
        put(&store, "a", "3"); // 6
        compact(&store, 4);
        crate::mvcc::compact::compact_range(&store, 0, 4, &Default::default()).expect("compact");
        let b = read_events(&store, 4, 6, HistoryLimits::default(), false, |_| true).expect("read");
        let revs: Vec<i64> = summary(&b).iter().map(|e| e.3).collect();
        assert_eq!(revs, vec![4, 5, 6]);
    }
}
