//! Keyspace micro-benchmarks: 100k keys with 10 revisions each, then put, point get at
//! the latest and at an old revision, and a 1,000-key range at the latest revision.
//!
//! Run: `cargo bench -p revkv-benches --bench keyspace`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use revkv_server::mvcc::{ApplyBatch, KvStore, RangeOptions};
use revkv_server::storage::{Storage, StorageConfig};

const KEYS: usize = 100_000;
const REVISIONS_PER_KEY: usize = 10;
const VALUE: &[u8] = &[b'v'; 256];

fn key(i: usize) -> Vec<u8> {
    format!("key/{i:08}").into_bytes()
}

/// A store holding KEYS keys, each written REVISIONS_PER_KEY times (1,000 puts per
/// apply batch, as a busy member would group them).
fn loaded_store() -> (tempfile::TempDir, Arc<KvStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
    let store = KvStore::open(storage).expect("store");
    for _round in 0..REVISIONS_PER_KEY {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
            let mut batch = ApplyBatch::new(&store);
            for &i in chunk {
                let mut t = batch.txn();
                t.put(&key(i), VALUE.to_vec(), 0).expect("put");
                t.end();
            }
            batch.commit(None).expect("commit");
        }
    }
    (dir, store)
}

fn keyspace(c: &mut Criterion) {
    let (_dir, store) = loaded_store();
    let current = store.current_rev();
    let old_rev = current / 2;
    let mut n = 0usize;
    let mut next = || {
        n = (n + 7919) % KEYS;
        n
    };

    c.bench_function("put (one request per batch)", |b| {
        b.iter_batched(
            || key(next()),
            |k| {
                let mut batch = ApplyBatch::new(&store);
                let mut t = batch.txn();
                t.put(&k, VALUE.to_vec(), 0).expect("put");
                t.end();
                batch.commit(None).expect("commit");
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("get latest", |b| {
        b.iter(|| {
            let r = store
                .range(&key(next()), b"", RangeOptions::default())
                .expect("get");
            black_box(r.kvs.len())
        })
    });
    c.bench_function("get at old revision", |b| {
        b.iter(|| {
            let opts = RangeOptions {
                rev: old_rev,
                ..Default::default()
            };
            let r = store.range(&key(next()), b"", opts).expect("get");
            black_box(r.kvs.len())
        })
    });
    c.bench_function("range 1000 keys latest", |b| {
        b.iter(|| {
            let start = next() % (KEYS - 1000);
            let r = store
                .range(&key(start), &key(start + 1000), RangeOptions::default())
                .expect("range");
            assert_eq!(r.kvs.len(), 1000);
            black_box(r.count)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = keyspace
}
criterion_main!(benches);
