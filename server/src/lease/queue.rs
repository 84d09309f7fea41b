//! The lease table and its expiry order, with no clock and no lock of its own: every
//! operation takes `now`, so tests and benchmarks drive time explicitly.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// One lease as the table holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// Granted TTL in seconds (replicated state).
    ttl: i64,
    /// When the lease expires unless renewed (local bookkeeping).
    deadline: Instant,
    /// Time of this lease's one live heap entry. Equal to `deadline` until the lease is
    /// handed out as expired; then the retry time, while `deadline` stays in the past.
    queued: Instant,
}

/// The lease table (id → TTL, deadline) plus a min-heap of `(time, id)`.
///
/// The heap is *lazy*: a renewal does not look for the lease's old heap entry, it pushes
/// a new one and updates the table. An entry popped from the heap is *stale* — and
/// skipped — when the table no longer has the lease or records a different time for it.
/// So renew is O(log n) without an indexed heap, and revoke is O(1) (the heap entry dies
/// lazily). Stale entries are bounded: when they outnumber live ones the heap is rebuilt
/// from the table in O(n), which amortises to O(1) per push.
///
/// Expiry: [`pop_expired`](Self::pop_expired) returns the leases whose deadline passed and
/// re-queues each at `now + retry`. The lease stays in the table — it is only removed by
/// [`remove`](Self::remove) when the `LeaseRevoke` is applied — so a revoke proposal that
/// gets lost (leader change, timeout) is retried, and a keep-alive for a lease past its
/// deadline is refused ([`Renew::Expired`]) instead of resurrecting it.
#[derive(Debug, Default)]
pub struct LeaseQueue {
    table: HashMap<i64, Entry>,
    heap: BinaryHeap<Reverse<(Instant, i64)>>,
}

/// What [`LeaseQueue::renew`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renew {
    /// Renewed: the deadline is now + TTL (the TTL is returned).
    Renewed(i64),
    /// Past its deadline: revocation is under way and cannot be stopped.
    Expired,
    NotFound,
}

/// Heap entries allowed beyond twice the table size before a rebuild.
const STALE_SLACK: usize = 1024;

/// `now + ttl seconds`, saturating far in the future for huge TTLs instead of
/// overflowing the clock.
pub fn deadline_after(now: Instant, ttl_secs: i64, extend: Duration) -> Instant {
    let ttl = Duration::from_secs(ttl_secs.max(0) as u64).saturating_add(extend);
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl LeaseQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Heap entries, live and stale (for tests and the memory bound).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    pub fn contains(&self, id: i64) -> bool {
        self.table.contains_key(&id)
    }

    /// Adds lease `id` expiring at `now + ttl`; false (and no change) if it exists.
    pub fn insert(&mut self, id: i64, ttl: i64, now: Instant) -> bool {
        if self.table.contains_key(&id) {
            return false;
        }
        let deadline = deadline_after(now, ttl, Duration::ZERO);
        self.table.insert(
            id,
            Entry {
                ttl,
                deadline,
                queued: deadline,
            },
        );
        self.push(deadline, id);
        true
    }

    /// Removes lease `id`, returning its TTL. Its heap entries become stale.
    pub fn remove(&mut self, id: i64) -> Option<i64> {
        self.table.remove(&id).map(|e| e.ttl)
    }

    /// Restarts the lease's TTL at `now`, unless it is unknown or already past its
    /// deadline (etcd refuses those: the revoke is on its way).
    pub fn renew(&mut self, id: i64, now: Instant) -> Renew {
        let Some(e) = self.table.get_mut(&id) else {
            return Renew::NotFound;
        };
        if e.deadline <= now {
            return Renew::Expired;
        }
        e.deadline = deadline_after(now, e.ttl, Duration::ZERO);
        e.queued = e.deadline;
        let (deadline, ttl) = (e.deadline, e.ttl);
        self.push(deadline, id);
        Renew::Renewed(ttl)
    }

    /// Gives every lease a fresh deadline `now + ttl + extend` (a new leader does this
    /// before expiring anything) and rebuilds the heap, dropping all stale entries.
    pub fn refresh_all(&mut self, now: Instant, extend: Duration) {
        for e in self.table.values_mut() {
            e.deadline = deadline_after(now, e.ttl, extend);
            e.queued = e.deadline;
        }
        self.rebuild();
    }

    /// Pops up to `limit` leases whose deadline is at or before `now`, in deadline order,
    /// and re-queues each at `now + retry` (see the type's docs).
    pub fn pop_expired(&mut self, now: Instant, retry: Duration, limit: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut requeue = Vec::new();
        while out.len() < limit {
            let Some(&Reverse((time, id))) = self.heap.peek() else {
                break;
            };
            let live = self.table.get(&id).is_some_and(|e| e.queued == time);
            if live && time > now {
                break;
            }
            self.heap.pop();
            if !live {
                continue;
            }
            if let Some(e) = self.table.get_mut(&id) {
                e.queued = now + retry;
                requeue.push((e.queued, id));
                if e.deadline <= now {
                    out.push(id);
                }
            }
        }
        // Pushed after the loop so a retry time equal to `now` cannot be popped twice.
        for (time, id) in requeue {
            self.push(time, id);
        }
        out
    }

    /// The earliest live heap time (dropping stale entries on the way): when
    /// [`pop_expired`](Self::pop_expired) next has something to do.
    pub fn next_wakeup(&mut self) -> Option<Instant> {
        while let Some(&Reverse((time, id))) = self.heap.peek() {
            if self.table.get(&id).is_some_and(|e| e.queued == time) {
                return Some(time);
            }
            self.heap.pop();
        }
        None
    }

    /// `(granted TTL, deadline)` of lease `id`.
    pub fn get(&self, id: i64) -> Option<(i64, Instant)> {
        self.table.get(&id).map(|e| (e.ttl, e.deadline))
    }

    /// Every lease id, earliest deadline first (etcd's `Leases()` order; ties by id so
    /// the answer is stable).
    pub fn ids_by_deadline(&self) -> Vec<i64> {
        let mut v: Vec<(Instant, i64)> =
            self.table.iter().map(|(id, e)| (e.deadline, *id)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    }

    fn push(&mut self, time: Instant, id: i64) {
        self.heap.push(Reverse((time, id)));
        if self.heap.len() > 2 * self.table.len() + STALE_SLACK {
            self.rebuild();
        }
    }

    /// One heap entry per lease, at its `queued` time: O(n) heapify.
    fn rebuild(&mut self) {
        let entries: Vec<_> = self
            .table
            .iter()
            .map(|(id, e)| Reverse((e.queued, *id)))
            .collect();
        self.heap = BinaryHeap::from(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_secs(3);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn expires_in_deadline_order() {
        let t0 = Instant::now();
        let mut q = LeaseQueue::new();
        assert!(q.insert(3, 30, t0));
        assert!(q.insert(1, 10, t0));
        assert!(q.insert(2, 20, t0));
        assert!(!q.insert(2, 99, t0), "an existing id is refused");
        assert_eq!(q.get(2).map(|g| g.0), Some(20));
        assert_eq!(q.next_wakeup(), Some(t0 + secs(10)));
        assert_eq!(q.pop_expired(t0 + secs(9), RETRY, 10), Vec::<i64>::new());
        tokio::time::advance(secs(25)).await;
        assert_eq!(q.pop_expired(Instant::now(), RETRY, 10), vec![1, 2]);
        assert_eq!(q.ids_by_deadline(), vec![1, 2, 3]);
        // Their revokes are applied; only lease 3 is left to expire.
        q.remove(1);
        q.remove(2);
        assert_eq!(q.pop_expired(t0 + secs(31), RETRY, 10), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn renew_pushes_a_new_entry_and_the_old_one_is_skipped() {
        let t0 = Instant::now();
        let mut q = LeaseQueue::new();
        q.insert(7, 10, t0);
        assert_eq!(q.renew(7, t0 + secs(5)), Renew::Renewed(10));
        assert_eq!(q.heap_len(), 2, "the old entry stays until popped");
        // At the original deadline the stale entry is dropped, nothing expires.
        assert_eq!(q.pop_expired(t0 + secs(10), RETRY, 10), Vec::<i64>::new());
        assert_eq!(q.heap_len(), 1);
        assert_eq!(q.next_wakeup(), Some(t0 + secs(15)));
        assert_eq!(q.pop_expired(t0 + secs(15), RETRY, 10), vec![7]);
    }

    #[tokio::test(start_paused = true)]
    async fn removed_leases_never_expire_and_unknown_ones_do_not_renew() {
        let t0 = Instant::now();
        let mut q = LeaseQueue::new();
        q.insert(1, 5, t0);
        q.insert(2, 5, t0);
        assert_eq!(q.remove(1), Some(5));
        assert_eq!(q.remove(1), None);
        assert_eq!(q.renew(1, t0), Renew::NotFound);
        assert_eq!(q.pop_expired(t0 + secs(6), RETRY, 10), vec![2]);
        assert_eq!(q.len(), 1);
        q.remove(2);
        assert_eq!(q.next_wakeup(), None);
        assert_eq!(q.heap_len(), 0, "stale entries were dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_cannot_be_renewed_and_is_retried_until_removed() {
        let t0 = Instant::now();
        let mut q = LeaseQueue::new();
        q.insert(9, 2, t0);
        let t = t0 + secs(2);
        assert_eq!(q.pop_expired(t, RETRY, 10), vec![9]);
        assert_eq!(q.renew(9, t + secs(1)), Renew::Expired);
        assert_eq!(q.pop_expired(t + secs(1), RETRY, 10), Vec::<i64>::new());
        assert_eq!(q.next_wakeup(), Some(t + RETRY));
        // The revoke got lost: the lease is handed out again after the retry interval.
        assert_eq!(q.pop_expired(t + RETRY, RETRY, 10), vec![9]);
        q.remove(9);
        assert_eq!(q.pop_expired(t + secs(60), RETRY, 10), Vec::<i64>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn pop_respects_the_limit() {
        let t0 = Instant::now();
        let mut q = LeaseQueue::new();
        for id in 1..=10 {
            q.insert(id, 1, t0);
        }
        let t = t0 + secs(1);
        let first = q.pop_expired(t, RETRY, 4);
        assert_eq!(first.len(), 4);
        let rest = q.pop_expired(t, RETRY, 100);
        assert_eq!(rest.len(), 6);
        let mut all: Vec<i64> = first.into_iter().chain(rest).collect();
        all.sort_unstable();
        assert_eq!(all, (1..=10).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_all_restarts_every_ttl_plus_the_extension() {
        let t0 = Instant::now();
        let mut q = LeaseQueue::new();
        q.insert(1, 5, t0);
        q.insert(2, 50, t0);
        q.renew(1, t0 + secs(1));
        let t = t0 + secs(4);
        q.refresh_all(t, secs(1));
        assert_eq!(q.heap_len(), 2, "the rebuild drops stale entries");
        assert_eq!(q.get(1).map(|g| g.1), Some(t + secs(6)));
        assert_eq!(q.get(2).map(|g| g.1), Some(t + secs(51)));
        assert_eq!(q.next_wakeup(), Some(t + secs(6)));
    }

    #[tokio::test(start_paused = true)]
    async fn many_leases_and_renewals_keep_order_and_bounded_heap() {
        let t0 = Instant::now();
        let mut q = LeaseQueue::new();
        let n = 10_000i64;
        for id in 1..=n {
            // TTLs 1..=100 s, interleaved so insertion order is not expiry order.
            q.insert(id, (id * 37) % 100 + 1, t0);
        }
        // Renew every lease 20 times: stale entries must not pile up without bound.
        for round in 1..=20u64 {
            let now = t0 + Duration::from_millis(round * 10);
            for id in 1..=n {
                assert!(matches!(q.renew(id, now), Renew::Renewed(_)));
            }
            assert!(q.heap_len() <= 2 * q.len() + STALE_SLACK + 1);
        }
        let renewed_at = t0 + Duration::from_millis(200);
        let mut expired = Vec::new();
        let mut last_ttl = 0;
        for s in 1..=100u64 {
            let now = renewed_at + secs(s);
            let batch = q.pop_expired(now, secs(1000), usize::MAX);
            for id in &batch {
                let ttl = q.get(*id).map(|g| g.0).unwrap_or(0);
                assert_eq!(ttl as u64, s, "lease {id} expired at the wrong second");
                assert!(ttl >= last_ttl);
                last_ttl = ttl;
            }
            expired.extend(batch);
        }
        assert_eq!(expired.len(), n as usize);
    }

    #[test]
    fn huge_ttls_do_not_overflow_the_clock() {
        let now = Instant::now();
        let d = deadline_after(now, crate::lease::MAX_LEASE_TTL, secs(1));
        assert!(d > now + secs(1_000_000));
    }
}
