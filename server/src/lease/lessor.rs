//! The lessor: the lease queue behind a lock, its persistence in the `lease` column
//! family, and the operations apply and the Lease service call.

use std::time::Duration;

use parking_lot::Mutex;
use rocksdb::WriteBatch;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::queue::{LeaseQueue, Renew};
use super::{Error, LessorConfig, MAX_LEASE_TTL};
use crate::apply::Leases;
use crate::storage::{keys, Storage, CF_LEASE};

/// The member's lease table.
///
/// Two kinds of state live here and must not be confused:
///
/// * **replicated** — which leases exist and their TTL. Changed only by applying
///   `LeaseGrant`/`LeaseRevoke` ([`grant`](Self::grant), [`revoke`](Self::revoke)), in log
///   order, and written to the `lease` CF in the same RocksDB batch as the rest of that
///   apply, so every member holds the same table and a restart resumes exactly where the
///   applied index says. [`exists`](Leases::exists) reads only this part, which keeps
///   `Put`'s "requested lease not found" check deterministic.
/// * **local** — each lease's deadline. Set to `now + TTL` on grant, renew, restart and
///   promotion; read only by the leader's expiry loop and by `LeaseTimeToLive`. It never
///   feeds back into an apply result: a lease leaves the table only through an applied
///   revoke, never because a clock said so.
///
/// The lock is a `parking_lot` mutex held for O(log n) steps (or one O(n) rebuild on
/// promotion) and never across an `.await`; the apply thread and the async handlers
/// share it.
pub struct Lessor {
    cfg: LessorConfig,
    storage: Storage,
    queue: Mutex<LeaseQueue>,
    /// Wakes the expiry loop when a new lease may expire before its current wake-up.
    wake: Notify,
}

/// What a keep-alive achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The lease's TTL restarted; this is the TTL.
    Renewed(i64),
    /// Unknown, or past its deadline and about to be revoked: etcd answers TTL 0.
    Gone,
}

/// `LeaseTimeToLive` for an existing lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeToLive {
    pub granted_ttl: i64,
    /// Whole seconds left, truncated toward zero like etcd's `int64(Remaining().Seconds())`
    /// (negative once the deadline passed and the revoke is pending).
    pub remaining: i64,
}

impl Lessor {
    /// Restores the leases recorded in the `lease` CF, each with its full TTL from now
    /// (etcd 3.4 restarts TTLs on recovery; see the module docs).
    pub fn open(storage: Storage, cfg: LessorConfig) -> Result<Lessor, Error> {
        let queue = load(&storage)?;
        if !queue.is_empty() {
            tracing::info!(
                leases = queue.len(),
                "restored leases with their TTL restarted"
            );
        }
        Ok(Lessor {
            cfg,
            storage,
            queue: Mutex::new(queue),
            wake: Notify::new(),
        })
    }

    /// Replaces the table with the `lease` CF's after a raft snapshot install, each
    /// lease with its full TTL from now, as on restart.
    pub fn reload(&self) -> Result<(), Error> {
        let queue = load(&self.storage)?;
        let n = queue.len();
        *self.queue.lock() = queue;
        self.wake.notify_one();
        tracing::info!(leases = n, "reloaded leases from a raft snapshot");
        Ok(())
    }

    pub fn config(&self) -> &LessorConfig {
        &self.cfg
    }

    /// The TTL a grant request gets: raised to the minimum. Done by the proposer, before
    /// the request enters the log, so apply never depends on a member's flags.
    pub fn effective_ttl(&self, requested: i64) -> i64 {
        requested.max(self.cfg.min_ttl)
    }

    /// Applies `LeaseGrant`: records the lease in `wb` and in the table. Deterministic
    /// in its result; the deadline it starts is local bookkeeping (see the type docs).
    pub fn grant(&self, wb: &mut WriteBatch, id: i64, ttl: i64) -> Result<(), Error> {
        if id == 0 {
            // Never proposed (the service picks an id first); refuse it like etcd.
            return Err(Error::NotFound);
        }
        if ttl > MAX_LEASE_TTL {
            return Err(Error::TtlTooLarge);
        }
        if !self.queue.lock().insert(id, ttl, Instant::now()) {
            return Err(Error::Exists);
        }
        wb.put_cf(
            self.storage.cf(CF_LEASE),
            keys::lease_record_key(id),
            ttl.to_be_bytes(),
        );
        self.wake.notify_one();
        Ok(())
    }

    /// Applies the bookkeeping half of `LeaseRevoke`: drops the record (in `wb`) and the
    /// table entry. The caller deletes the attached keys in the same batch.
    pub fn revoke(&self, wb: &mut WriteBatch, id: i64) -> Result<(), Error> {
        self.queue.lock().remove(id).ok_or(Error::NotFound)?;
        wb.delete_cf(self.storage.cf(CF_LEASE), keys::lease_record_key(id));
        Ok(())
    }

    /// Restarts the lease's TTL (leader only; the caller checks leadership).
    pub fn renew(&self, id: i64) -> Renewal {
        match self.queue.lock().renew(id, Instant::now()) {
            Renew::Renewed(ttl) => Renewal::Renewed(ttl),
            Renew::Expired | Renew::NotFound => Renewal::Gone,
        }
    }

    pub fn time_to_live(&self, id: i64) -> Option<TimeToLive> {
        let (granted_ttl, deadline) = self.queue.lock().get(id)?;
        let now = Instant::now();
        let remaining = if deadline >= now {
            deadline.duration_since(now).as_secs() as i64
        } else {
            -(now.duration_since(deadline).as_secs() as i64)
        };
        Some(TimeToLive {
            granted_ttl,
            remaining,
        })
    }

    /// Every lease id, earliest deadline first.
    pub fn leases(&self) -> Vec<i64> {
        self.queue.lock().ids_by_deadline()
    }

    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys attached to lease `id` in the committed keyspace, in key order.
    pub fn attached_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, Error> {
        let prefix = keys::lease_attachment_prefix(id);
        let mut it = self.storage.db().raw_iterator_cf(self.storage.cf(CF_LEASE));
        it.seek(&prefix);
        let mut out = Vec::new();
        while let Some(k) = it.key() {
            match k.strip_prefix(prefix.as_slice()) {
                Some(user_key) => out.push(user_key.to_vec()),
                None => break,
            }
            it.next();
        }
        it.status().map_err(crate::storage::Error::from)?;
        Ok(out)
    }

    /// This member became leader: every lease gets `now + TTL + promote_extend` before
    /// anything can expire.
    pub fn promote(&self) {
        let n = {
            let mut q = self.queue.lock();
            q.refresh_all(Instant::now(), self.cfg.promote_extend);
            q.len()
        };
        tracing::info!(leases = n, "became leader; lease TTLs restarted");
        self.wake.notify_one();
    }

    /// Hands out up to `limit` expired leases (re-queued for a retry; see [`LeaseQueue`]).
    pub fn pop_expired(&self, limit: usize) -> Vec<i64> {
        self.queue
            .lock()
            .pop_expired(Instant::now(), self.cfg.expired_retry, limit)
    }

    /// When [`pop_expired`](Self::pop_expired) next has work.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.queue.lock().next_wakeup()
    }

    /// Resolves after a grant that may need an earlier wake-up (or a promotion).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// The retry interval, for tests of the expiry loop.
    pub fn expired_retry(&self) -> Duration {
        self.cfg.expired_retry
    }
}

/// Reads the lease table from the `lease` CF, every deadline `now + TTL`.
fn load(storage: &Storage) -> Result<LeaseQueue, Error> {
    let mut queue = LeaseQueue::new();
    let now = Instant::now();
    let mut it = storage.db().raw_iterator_cf(storage.cf(CF_LEASE));
    it.seek([keys::LEASE_RECORD_TAG]);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if k.first() != Some(&keys::LEASE_RECORD_TAG) {
            break;
        }
        let id = keys::decode_lease_record_key(k)
            .ok_or_else(|| Error::Corrupt(format!("lease record key {k:x?}")))?;
        let ttl =
            decode_ttl(v).ok_or_else(|| Error::Corrupt(format!("lease {id:x} record {v:x?}")))?;
        queue.insert(id, ttl, now);
        it.next();
    }
    it.status().map_err(crate::storage::Error::from)?;
    Ok(queue)
}

impl Leases for Lessor {
    fn exists(&self, id: i64) -> bool {
        self.queue.lock().contains(id)
    }
}

fn decode_ttl(v: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(v.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;

    fn open(dir: &std::path::Path) -> (Storage, Lessor) {
        let storage = Storage::open(dir, &StorageConfig::default()).expect("open storage");
        let lessor = Lessor::open(storage.clone(), LessorConfig::default()).expect("lessor");
        (storage, lessor)
    }

    #[tokio::test(start_paused = true)]
    async fn grant_revoke_and_restore_with_ttl_restarted() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (storage, lessor) = open(dir.path());
            let mut wb = WriteBatch::default();
            lessor.grant(&mut wb, 10, 30).expect("grant 10");
            lessor.grant(&mut wb, 11, 5).expect("grant 11");
            lessor
                .grant(&mut wb, -5, 60)
                .expect("ids are any non-zero i64");
            assert!(matches!(lessor.grant(&mut wb, 10, 30), Err(Error::Exists)));
            assert!(matches!(
                lessor.grant(&mut wb, 12, MAX_LEASE_TTL + 1),
                Err(Error::TtlTooLarge)
            ));
            assert!(matches!(lessor.grant(&mut wb, 0, 30), Err(Error::NotFound)));
            lessor.revoke(&mut wb, 11).expect("revoke");
            assert!(matches!(lessor.revoke(&mut wb, 11), Err(Error::NotFound)));
            storage.write(wb, true).expect("write");
            assert!(lessor.exists(10) && !lessor.exists(11));
            tokio::time::advance(Duration::from_secs(20)).await;
            let ttl = lessor.time_to_live(10).expect("ttl");
            assert_eq!((ttl.granted_ttl, ttl.remaining), (30, 10));
        }
        let (_storage, lessor) = open(dir.path());
        assert_eq!(lessor.len(), 2);
        assert!(lessor.exists(10) && lessor.exists(-5) && !lessor.exists(11));
        let ttl = lessor.time_to_live(10).expect("restored");
        assert_eq!(
            (ttl.granted_ttl, ttl.remaining),
            (30, 30),
            "TTL restarts on restore"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn renew_and_time_to_live_follow_the_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_storage, lessor) = open(dir.path());
        let mut wb = WriteBatch::default();
        lessor.grant(&mut wb, 1, 10).expect("grant");
        tokio::time::advance(Duration::from_millis(9500)).await;
        assert_eq!(lessor.time_to_live(1).map(|t| t.remaining), Some(0));
        assert_eq!(lessor.renew(1), Renewal::Renewed(10));
        assert_eq!(lessor.time_to_live(1).map(|t| t.remaining), Some(10));
        tokio::time::advance(Duration::from_millis(11_500)).await;
        assert_eq!(lessor.renew(1), Renewal::Gone, "expired leases stay dead");
        assert_eq!(lessor.time_to_live(1).map(|t| t.remaining), Some(-1));
        assert_eq!(lessor.renew(2), Renewal::Gone);
        assert_eq!(lessor.time_to_live(2), None);
    }

    #[tokio::test(start_paused = true)]
    async fn leases_are_listed_by_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_storage, lessor) = open(dir.path());
        let mut wb = WriteBatch::default();
        for (id, ttl) in [(1, 30), (2, 15), (3, 20)] {
            lessor.grant(&mut wb, id, ttl).expect("grant");
        }
        assert_eq!(lessor.leases(), vec![2, 3, 1]);
        // Renewed at 9 s, lease 2 now ends at 24 s: after lease 3 (20 s).
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(lessor.renew(2), Renewal::Renewed(15));
        assert_eq!(lessor.leases(), vec![3, 2, 1]);
    }

    #[test]
    fn a_corrupt_record_stops_the_restore() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let mut wb = WriteBatch::default();
        wb.put_cf(storage.cf(CF_LEASE), keys::lease_record_key(4), [1u8, 2]);
        storage.write(wb, true).expect("write");
        assert!(matches!(
            Lessor::open(storage, LessorConfig::default()),
            Err(Error::Corrupt(_))
        ));
    }
}
