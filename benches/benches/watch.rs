//! Watch micro-benchmarks: finding the watchers of an event among 100,000 single-key and
//! 10,000 range watchers, with a linear scan of the ranges as the baseline the interval
//! tree replaces, and `Hub::notify` of a one-event batch with the same watchers.
//!
//! Run: `cargo bench -p revkv-benches --bench watch`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use revkv_proto::mvccpb::{Event, KeyValue};
use revkv_server::mvcc::KvStore;
use revkv_server::storage::{Storage, StorageConfig};
use revkv_server::watch::{Hub, WatchConfig, WatchRange, WatchRequest, WatcherGroup};

const KEYS: usize = 100_000;
const RANGES: usize = 10_000;
/// Longest range, in keys; ranges average half of it, so a key is in ~5 ranges.
const MAX_RANGE_KEYS: usize = 100;

fn key(i: usize) -> Vec<u8> {
    format!("key/{i:08}").into_bytes()
}

/// Deterministic pseudo-random ranges `[key(s), key(s + len))`.
fn ranges() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..RANGES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = (x % KEYS as u64) as usize;
            let len = 1 + (x >> 32) as usize % MAX_RANGE_KEYS;
            (key(start), key(start + len))
        })
        .collect()
}

fn watch(c: &mut Criterion) {
    let ranges = ranges();
    let mut group = WatcherGroup::default();
    for i in 0..KEYS {
        group.add(i as u64, &WatchRange::Key(key(i)));
    }
    for (i, (s, e)) in ranges.iter().enumerate() {
        let r = WatchRange::new(s, e).expect("range");
        group.add((KEYS + i) as u64, &r);
    }
    let mut n = 0usize;
    let mut next = || {
        n = (n + 7919) % KEYS;
        n
    };

    c.bench_function("group lookup, 100k key + 10k range watchers", |b| {
        b.iter(|| {
            let k = key(next());
            let mut hits = 0usize;
            group.matching(&k, |_| hits += 1);
            black_box(hits)
        })
    });
    c.bench_function("group lookup, key outside every watcher", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            group.matching(b"zzz", |_| hits += 1);
            black_box(hits)
        })
    });
    let parsed: Vec<WatchRange> = ranges
        .iter()
        .map(|(s, e)| WatchRange::new(s, e).expect("range"))
        .collect();
    c.bench_function("baseline: linear scan of 10k ranges", |b| {
        b.iter(|| {
            let k = key(next());
            black_box(parsed.iter().filter(|r| r.contains(&k)).count())
        })
    });
    c.bench_function("group add + remove a range watcher", |b| {
        b.iter(|| {
            let i = next();
            let r = WatchRange::new(&key(i), &key(i + 10)).expect("range");
            group.add(u64::MAX, &r);
            black_box(group.remove(u64::MAX, &r))
        })
    });

    // Hub::notify: the applier's cost per committed one-event batch.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
    let store: Arc<KvStore> = KvStore::open(storage).expect("store");
    let hub = Hub::new(
        store,
        WatchConfig {
            // Deep enough that no stream fills while the benchmark runs between drains.
            chan_len: 1 << 16,
            ..Default::default()
        },
    );
    let mut streams: Vec<_> = (0..100).map(|_| hub.open_stream()).collect();
    for i in 0..KEYS {
        let req = WatchRequest {
            key: key(i),
            ..Default::default()
        };
        streams[i % 100].watch(&req).expect("watch");
    }
    for (i, (s, e)) in ranges.iter().enumerate() {
        let req = WatchRequest {
            key: s.clone(),
            range_end: e.clone(),
            ..Default::default()
        };
        streams[i % 100].watch(&req).expect("watch");
    }
    let mut rev = hub.revision();
    c.bench_function(
        "hub notify, one event, 100k key + 10k range watchers",
        |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for done in 0..iters {
                    rev += 1;
                    let event = Event {
                        kv: Some(KeyValue {
                            key: key(next()),
                            mod_revision: rev,
                            value: vec![b'v'; 64],
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    let start = std::time::Instant::now();
                    hub.notify(rev, vec![event]);
                    total += start.elapsed();
                    if done % 1000 == 999 {
                        for s in &mut streams {
                            while s.try_recv().is_some() {}
                        }
                    }
                }
                total
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = watch
}
criterion_main!(benches);
