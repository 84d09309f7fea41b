//! Hub tests on a temporary RocksDB. The applier is simulated: each write commits an
//! `ApplyBatch` and hands its events to `Hub::notify`, exactly as `apply/mod.rs` does.
//! Background tasks are not started; tests drive `sync_once` and `retry_victims`.

use std::collections::HashMap;
use std::sync::Arc;

use revkv_proto::mvccpb::{event::EventType, Event};

use super::*;
use crate::mvcc::{ApplyBatch, KvStore};
use crate::storage::{Storage, StorageConfig};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<KvStore>,
    hub: Arc<Hub>,
}

fn fixture(cfg: WatchConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
    let store = KvStore::open(storage).expect("store");
    let hub = Hub::new(store.clone(), cfg);
    Fixture {
        _dir: dir,
        store,
        hub,
    }
}

impl Fixture {
    /// Commits one request putting every key (one revision) without notifying.
    fn commit(&self, keys: &[&str], value: &str) -> (i64, Vec<Event>) {
        let mut b = ApplyBatch::new(&self.store);
        let mut t = b.txn();
        for k in keys {
            t.put(k.as_bytes(), value.as_bytes().to_vec(), 0)
                .expect("put");
        }
        t.end();
        let done = b.commit(None).expect("commit");
        (done.rev, done.events)
    }

    /// One revision putting `keys`, notified as the applier does.
    fn put(&self, keys: &[&str], value: &str) -> i64 {
        let (rev, events) = self.commit(keys, value);
        self.hub.notify(rev, events);
        rev
    }

    fn delete(&self, key: &str) -> i64 {
        let mut b = ApplyBatch::new(&self.store);
        let mut t = b.txn();
        t.delete_range(key.as_bytes(), b"").expect("delete");
        t.end();
        let done = b.commit(None).expect("commit");
        self.hub.notify(done.rev, done.events);
        done.rev
    }

    fn compact(&self, rev: i64) {
        let mut b = ApplyBatch::new(&self.store);
        b.compact(rev).expect("compact");
        let done = b.commit(None).expect("commit");
        self.hub.notify(done.rev, done.events);
    }
}

fn watch(s: &WatchStream, key: &str, end: &str, start: i64) -> i64 {
    let req = WatchRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        start_revision: start,
        ..Default::default()
    };
    s.watch(&req).expect("watch").watch_id
}

fn drain(s: &mut WatchStream) -> Vec<Delivery> {
    std::iter::from_fn(|| s.try_recv()).collect()
}

/// (mod_revision, key) of every event, per watch id, in arrival order.
fn events_by_watcher(ds: &[Delivery]) -> HashMap<i64, Vec<(i64, String)>> {
    let mut out: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for d in ds {
        for e in &d.events {
            let kv = e.kv.as_ref().expect("kv");
            out.entry(d.watch_id).or_default().push((
                kv.mod_revision,
                String::from_utf8_lossy(&kv.key).into_owned(),
            ));
        }
    }
    out
}

fn revs(ds: &[Delivery], watch_id: i64) -> Vec<i64> {
    events_by_watcher(ds)
        .remove(&watch_id)
        .unwrap_or_default()
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

/// Runs catch-up and victim retries until nothing is pending, draining `s` each time.
fn settle_all(f: &Fixture, s: &mut WatchStream) -> Vec<Delivery> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        out.extend(drain(s));
        let victims = f.hub.retry_victims();
        let round = f.hub.sync_once();
        out.extend(drain(s));
        if !victims && round.remaining == 0 && !f.hub.retry_victims() {
            out.extend(drain(s));
            return out;
        }
    }
    panic!("hub did not settle");
}

#[test]
fn synced_watcher_gets_every_revision_once_in_order() {
    let f = fixture(WatchConfig::default());
    let mut s = f.hub.open_stream();
    let a = watch(&s, "a", "", 0);
    let other = watch(&s, "b", "", 0);
    assert_eq!((a, other), (0, 1), "etcd assigns ids from 0");
    let mut expected = Vec::new();
    for i in 0..20 {
        expected.push(f.put(&["a"], &i.to_string()));
        f.put(&["c"], "x");
    }
    let ds = drain(&mut s);
    assert_eq!(revs(&ds, a), expected);
    assert_eq!(revs(&ds, other), Vec::<i64>::new());
    for d in &ds {
        assert_eq!(
            d.revision,
            d.events[0].kv.as_ref().expect("kv").mod_revision
        );
    }
}

#[test]
fn events_of_one_revision_arrive_in_one_delivery() {
    let f = fixture(WatchConfig::default());
    let mut s = f.hub.open_stream();
    let w = watch(&s, "p/", "p0", 0);
    let rev = f.put(&["p/1", "p/2", "p/3", "q"], "v");
    let ds = drain(&mut s);
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].watch_id, w);
    assert_eq!(ds[0].revision, rev);
    assert_eq!(
        events_by_watcher(&ds)[&w],
        vec![
            (rev, "p/1".into()),
            (rev, "p/2".into()),
            (rev, "p/3".into())
        ]
    );
}

#[test]
fn key_range_and_from_key_watchers_each_see_their_events() {
    let f = fixture(WatchConfig::default());
    let mut s = f.hub.open_stream();
    let single = watch(&s, "foo", "", 0);
    let prefix = watch(&s, "foo", "fop", 0);
    let from = watch(&s, "m", "\0", 0);
    f.put(&["foo"], "1");
    f.put(&["foo/bar"], "1");
    f.put(&["zzz"], "1");
    f.put(&["a"], "1");
    let by = events_by_watcher(&drain(&mut s));
    let keys = |id: i64| -> Vec<String> {
        by.get(&id)
            .map(|v| v.iter().map(|(_, k)| k.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(single), vec!["foo"]);
    assert_eq!(keys(prefix), vec!["foo", "foo/bar"]);
    assert_eq!(keys(from), vec!["zzz"]);
}

#[test]
fn filters_drop_events_and_empty_results_send_nothing() {
    let f = fixture(WatchConfig::default());
    let mut s = f.hub.open_stream();
    let no_put = s
        .watch(&WatchRequest {
            key: b"k".to_vec(),
            no_put: true,
            ..Default::default()
        })
        .expect("watch")
        .watch_id;
    let no_delete = s
        .watch(&WatchRequest {
            key: b"k".to_vec(),
            no_delete: true,
            ..Default::default()
        })
        .expect("watch")
        .watch_id;
    let put = f.put(&["k"], "v");
    let del = f.delete("k");
    let ds = drain(&mut s);
    assert_eq!(
        ds.len(),
        2,
        "one delivery each; nothing for fully filtered batches"
    );
    assert_eq!(revs(&ds, no_put), vec![del]);
    assert_eq!(revs(&ds, no_delete), vec![put]);
    let del_event = &ds.iter().find(|d| d.watch_id == no_put).expect("d").events[0];
    assert_eq!(del_event.r#type, EventType::Delete as i32);
}

#[test]
fn start_revision_in_the_future_waits_for_it() {
    let f = fixture(WatchConfig::default());
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 4);
    for i in 0..5 {
        f.put(&["k"], &i.to_string()); // 2..=6
    }
    assert_eq!(revs(&drain(&mut s), w), vec![4, 5, 6]);
}

#[test]
fn catch_up_replays_history_then_follows_live_writes() {
    let f = fixture(WatchConfig::default());
    for i in 0..10 {
        f.put(&["k"], &i.to_string()); // 2..=11
    }
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 3);
    assert!(drain(&mut s).is_empty(), "nothing before catch-up runs");
    let round = f.hub.sync_once();
    assert!(round.progressed);
    let ds = drain(&mut s);
    assert_eq!(ds.len(), 1, "a short history is one delivery");
    assert_eq!(ds[0].revision, 11);
    assert_eq!(revs(&ds, w), (3..=11).collect::<Vec<_>>());
    let next = f.put(&["k"], "live");
    assert_eq!(revs(&drain(&mut s), w), vec![next]);
    assert_eq!(f.hub.sync_once().remaining, 0);
}

#[test]
fn catch_up_in_bounded_batches_covers_history_exactly_once() {
    let cfg = WatchConfig {
        history: crate::mvcc::history::HistoryLimits {
            max_revs: 3,
            max_events: 100,
        },
        ..Default::default()
    };
    let f = fixture(cfg);
    for i in 0..20 {
        f.put(&["k", "other"], &i.to_string()); // 2..=21, two events each
    }
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 2);
    let w2 = watch(&s, "other", "", 10);
    let ds = settle_all(&f, &mut s);
    assert!(ds.len() >= 7, "bounded rounds: {} deliveries", ds.len());
    assert_eq!(revs(&ds, w), (2..=21).collect::<Vec<_>>());
    assert_eq!(revs(&ds, w2), (10..=21).collect::<Vec<_>>());
    // Each delivery's header revision covers its events.
    for d in &ds {
        for e in &d.events {
            assert!(e.kv.as_ref().expect("kv").mod_revision <= d.revision);
        }
    }
}

#[test]
fn handover_takes_the_gap_from_recent_notifications() {
    let f = fixture(WatchConfig::default());
    for i in 0..5 {
        f.put(&["k"], &i.to_string()); // 2..=6
    }
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 2);
    let plan = f.hub.plan();
    let read = f.hub.read(&plan);
    // Apply commits and notifies more while the round reads without the lock.
    let live: Vec<i64> = (0..3).map(|i| f.put(&["k"], &format!("live{i}"))).collect();
    f.hub.finish(plan, read);
    let ds = drain(&mut s);
    assert_eq!(ds.len(), 1, "history and gap in one delivery");
    assert_eq!(revs(&ds, w), (2..=9).collect::<Vec<_>>());
    assert_eq!(live, vec![7, 8, 9]);
    // Synced now: the next write arrives through notify, once.
    let next = f.put(&["k"], "after");
    assert_eq!(revs(&drain(&mut s), w), vec![next]);
    assert_eq!(f.hub.sync_once().remaining, 0);
}

#[test]
fn handover_when_commit_is_ahead_of_notify_does_not_duplicate() {
    let f = fixture(WatchConfig::default());
    f.put(&["k"], "a"); // 2
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 2);
    // Revision 3 is committed (readable) but apply has not notified it yet.
    let (rev3, events3) = f.commit(&["k"], "b");
    f.hub.sync_once();
    f.hub.notify(rev3, events3);
    let rev4 = f.put(&["k"], "c");
    assert_eq!(revs(&drain(&mut s), w), vec![2, rev3, rev4]);
}

#[test]
fn handover_without_recent_events_stays_unsynced_until_caught_up() {
    let cfg = WatchConfig {
        recent_events: 1,
        ..Default::default()
    };
    let f = fixture(cfg);
    f.put(&["k"], "a"); // 2
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 2);
    let plan = f.hub.plan();
    let read = f.hub.read(&plan);
    f.put(&["k"], "b"); // 3
    f.put(&["k"], "c"); // 4: the ring keeps only this one
    let round = f.hub.finish(plan, read);
    assert_eq!(round.remaining, 1, "gap not in memory: another round");
    let ds = settle_all(&f, &mut s);
    assert_eq!(revs(&ds, w), vec![2, 3, 4]);
}

#[test]
fn concurrent_writes_during_catch_up_have_no_gap_and_no_duplicate() {
    let cfg = WatchConfig {
        history: crate::mvcc::history::HistoryLimits {
            max_revs: 7,
            max_events: 50,
        },
        recent_events: 16,
        ..Default::default()
    };
    let f = Arc::new(fixture(cfg));
    for i in 0..50 {
        f.put(&["k/a", "k/b"], &i.to_string()); // 2..=51
    }
    let mut s = f.hub.open_stream();
    let starts = [2i64, 10, 30, 51, 0];
    let ids: Vec<i64> = starts.iter().map(|&r| watch(&s, "k/", "k0", r)).collect();
    let writer = {
        let f = f.clone();
        std::thread::spawn(move || {
            let mut last = 0;
            for i in 0..300 {
                last = f.put(&["k/a"], &format!("w{i}"));
            }
            last
        })
    };
    let mut got = Vec::new();
    while !writer.is_finished() {
        f.hub.sync_once();
        got.extend(drain(&mut s));
    }
    let last = writer.join().expect("writer");
    got.extend(settle_all(&f, &mut s));
    for (id, start) in ids.iter().zip(starts) {
        let r = revs(&got, *id);
        let mut dedup = r.clone();
        dedup.dedup();
        let first = if start == 0 { r[0] } else { start };
        let expected: Vec<i64> = (first..=last)
            .flat_map(|rev| if rev <= 51 { vec![rev, rev] } else { vec![rev] })
            .collect();
        assert_eq!(r, expected, "watcher {id} from {start}");
        assert!(dedup.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn full_channel_makes_victims_without_blocking_others() {
    let cfg = WatchConfig {
        chan_len: 2,
        ..Default::default()
    };
    let f = fixture(cfg);
    let mut slow = f.hub.open_stream();
    let mut fast = f.hub.open_stream();
    let ws: Vec<i64> = (0..3).map(|_| watch(&slow, "k", "", 0)).collect();
    let wf = watch(&fast, "k", "", 0);
    let mut written = Vec::new();
    let mut fast_got = Vec::new();
    for i in 0..10 {
        written.push(f.put(&["k"], &i.to_string()));
        // The fast reader keeps up; the slow one never reads during the writes.
        fast_got.extend(drain(&mut fast));
    }
    assert_eq!(revs(&fast_got, wf), written);
    assert!(f.hub.retry_victims(), "slow watchers are parked");
    let got = settle_all(&f, &mut slow);
    for w in ws {
        assert_eq!(revs(&got, w), written, "victim {w} gets everything once");
    }
}

#[test]
fn compacted_start_revision_cancels_with_compact_revision() {
    let f = fixture(WatchConfig::default());
    for i in 0..5 {
        f.put(&["k"], &i.to_string()); // 2..=6
    }
    f.compact(5);
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 3);
    let ok = watch(&s, "k", "", 5);
    f.hub.sync_once();
    let ds = drain(&mut s);
    let canceled = ds.iter().find(|d| d.watch_id == w).expect("cancel");
    assert_eq!(canceled.compact_revision, 5);
    assert!(canceled.events.is_empty());
    assert_eq!(revs(&ds, ok), vec![5, 6]);
    assert_eq!(f.hub.watcher_count(), 1);
    assert_eq!(s.cancel(w), Err(Error::NotExist), "already removed");
}

#[test]
fn watch_ids_auto_chosen_and_duplicate() {
    let f = fixture(WatchConfig::default());
    let s = f.hub.open_stream();
    let req = |id: i64| WatchRequest {
        key: b"k".to_vec(),
        watch_id: id,
        ..Default::default()
    };
    assert_eq!(s.watch(&req(0)).expect("auto").watch_id, 0);
    assert_eq!(s.watch(&req(2)).expect("chosen").watch_id, 2);
    assert_eq!(s.watch(&req(2)), Err(Error::DuplicateId));
    assert_eq!(s.watch(&req(0)).expect("auto").watch_id, 1);
    assert_eq!(s.watch(&req(0)).expect("auto skips 2").watch_id, 3);
    // Ids are per stream.
    let other = f.hub.open_stream();
    assert_eq!(other.watch(&req(2)).expect("other stream").watch_id, 2);
    let empty = WatchRequest {
        key: b"b".to_vec(),
        range_end: b"a".to_vec(),
        ..Default::default()
    };
    assert_eq!(s.watch(&empty), Err(Error::EmptyRange));
    let negative = WatchRequest {
        key: b"k".to_vec(),
        start_revision: -1,
        ..Default::default()
    };
    assert_eq!(s.watch(&negative), Err(Error::Compacted));
}

#[test]
fn cancel_and_stream_drop_remove_watchers() {
    let f = fixture(WatchConfig::default());
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 0);
    let keep = watch(&s, "k", "", 0);
    assert_eq!(s.cancel(w), Ok(1));
    assert_eq!(s.cancel(w), Err(Error::NotExist));
    let rev = f.put(&["k"], "v");
    let ds = drain(&mut s);
    assert_eq!(revs(&ds, w), Vec::<i64>::new());
    assert_eq!(revs(&ds, keep), vec![rev]);
    let s2 = f.hub.open_stream();
    watch(&s2, "k", "", 1);
    assert_eq!(f.hub.watcher_count(), 2);
    drop(s2);
    drop(s);
    assert_eq!(f.hub.watcher_count(), 0);
    f.put(&["k"], "after");
}

#[test]
fn progress_reports_only_fully_delivered_revisions() {
    let f = fixture(WatchConfig::default());
    for i in 0..5 {
        f.put(&["k"], &i.to_string()); // 2..=6
    }
    let mut s = f.hub.open_stream();
    let synced = watch(&s, "k", "", 0);
    s.request_progress();
    let d = drain(&mut s);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].watch_id, d[0].revision), (INVALID_WATCH_ID, 6));
    assert!(d[0].events.is_empty());
    // An unsynced watcher from 3 holds the stream's progress at 2.
    let behind = watch(&s, "k", "", 3);
    s.request_progress();
    s.progress(&[synced, behind]);
    let d = drain(&mut s);
    assert_eq!(
        d.len(),
        2,
        "per-watcher progress goes to synced watchers only"
    );
    assert_eq!((d[0].watch_id, d[0].revision), (INVALID_WATCH_ID, 2));
    assert_eq!((d[1].watch_id, d[1].revision), (synced, 6));
    f.hub.sync_once();
    drain(&mut s);
    s.request_progress();
    assert_eq!(drain(&mut s)[0].revision, 6);
}

#[test]
fn progress_request_on_a_full_channel_is_answered_later() {
    let cfg = WatchConfig {
        chan_len: 1,
        ..Default::default()
    };
    let f = fixture(cfg);
    let mut s = f.hub.open_stream();
    let w = watch(&s, "k", "", 0);
    let r1 = f.put(&["k"], "1");
    let r2 = f.put(&["k"], "2"); // w becomes a victim
    s.request_progress();
    let ds = settle_all(&f, &mut s);
    assert_eq!(revs(&ds, w), vec![r1, r2]);
    let last = ds.last().expect("progress");
    assert_eq!((last.watch_id, last.revision), (INVALID_WATCH_ID, r2));
}

#[test]
fn deliveries_name_the_watcher_so_a_reused_id_is_not_confused() {
    let f = fixture(WatchConfig::default());
    let mut s = f.hub.open_stream();
    let req = WatchRequest {
        key: b"k".to_vec(),
        watch_id: 5,
        ..Default::default()
    };
    let old = s.watch(&req).expect("watch");
    f.put(&["k"], "queued before the cancel");
    s.cancel(5).expect("cancel");
    let new = s.watch(&req).expect("same id again");
    assert_eq!((old.watch_id, new.watch_id), (5, 5));
    assert_ne!(old.watcher, new.watcher);
    let rev = f.put(&["k"], "for the new watcher");
    let ds = drain(&mut s);
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0].watcher, old.watcher, "the API layer drops this one");
    assert_eq!((ds[1].watcher, ds[1].revision), (new.watcher, rev));
}
