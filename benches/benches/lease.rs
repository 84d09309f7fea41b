//! Lease heap micro-benchmarks with 1,000,000 leases: grant (insert), renew (a keep-alive:
//! push a new heap entry, the old one goes stale) and pop-expired (the expiry loop's work
//! per due lease, stale entries included).
//!
//! Run: `cargo bench -p revkv-benches --bench lease`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use revkv_server::lease::LeaseQueue;
use tokio::time::Instant;

const LEASES: i64 = 1_000_000;
const RETRY: Duration = Duration::from_secs(3);

/// TTLs spread over 1..=3600 s so expiry order is not insertion order.
fn ttl(id: i64) -> i64 {
    (id * 7919) % 3600 + 1
}

fn full_queue(now: Instant) -> LeaseQueue {
    let mut q = LeaseQueue::new();
    for id in 1..=LEASES {
        q.insert(id, ttl(id), now);
    }
    q
}

fn grant(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("lease_heap");
    g.sample_size(10);
    g.throughput(Throughput::Elements(LEASES as u64));
    g.bench_function("grant_1m", |b| {
        b.iter(|| black_box(full_queue(now)));
    });
    g.finish();
}

fn renew(c: &mut Criterion) {
    let now = Instant::now();
    let mut q = full_queue(now);
    let mut id = 0i64;
    let mut tick = 0u64;
    let mut g = c.benchmark_group("lease_heap");
    g.throughput(Throughput::Elements(1));
    // One keep-alive on a 1M-lease table, round-robin over the leases; time moves on by
    // 1 ms per renew so each one really moves the deadline.
    g.bench_function("renew_in_1m", |b| {
        b.iter(|| {
            id = id % LEASES + 1;
            tick += 1;
            black_box(q.renew(id, now + Duration::from_millis(tick)))
        });
    });
    g.finish();
}

fn pop_expired(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("lease_heap");
    g.sample_size(10);
    g.throughput(Throughput::Elements(LEASES as u64));
    // Every lease expired, and every lease renewed once before (so half of the 2M heap
    // entries are stale and skipped): drain them all in the expiry loop's batches.
    g.bench_function("pop_expired_1m_with_1m_stale", |b| {
        b.iter_batched(
            || {
                let mut q = full_queue(now);
                for id in 1..=LEASES {
                    q.renew(id, now + Duration::from_millis(1));
                }
                q
            },
            |mut q| {
                let later = now + Duration::from_secs(7200);
                let mut n = 0;
                loop {
                    let batch = q.pop_expired(later, RETRY, 256);
                    if batch.is_empty() {
                        break;
                    }
                    n += batch.len();
                }
                assert_eq!(n, LEASES as usize);
                q
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, grant, renew, pop_expired);
criterion_main!(benches);
