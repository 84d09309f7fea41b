//! Leases: etcd's time-bounded key ownership (DESIGN §4).
//!
//! # Semantics (etcd v3)
//!
//! * A lease is an id (a positive `i64`, chosen by the client or by the server) and a TTL
//!   in seconds. `LeaseGrant` creates it; a TTL below the minimum
//!   ([`LessorConfig::min_ttl`], `ceil(1.5 × election timeout)`, 2 s by default) is raised
//!   to the minimum, one above [`MAX_LEASE_TTL`] is refused.
//! * `Put` with a lease attaches the key to it; a later put without the lease, or a
//!   delete, detaches it. Attachments live in the keyspace's batch (mvcc), not here.
//! * The lease expires when no `LeaseKeepAlive` arrived for TTL seconds. Expiry is not an
//!   instant state change: the leader notices the deadline and proposes `LeaseRevoke`
//!   through Raft like any client would. Applying the revoke deletes every attached key
//!   in **one** revision and removes the lease, on every member alike.
//! * The replicated state is `(id, TTL)` only. Each member's deadline is local
//!   bookkeeping that only the leader acts on; a member that becomes leader first gives
//!   every lease a fresh TTL plus [`LessorConfig::promote_extend`], so no lease dies
//!   because of an election.
//! * Restart: leases are restored from the `lease` column family with their TTL
//!   **restarted** (etcd 3.4 behaviour; no remaining-TTL checkpoints). A lease therefore
//!   outlives a restart by up to its TTL plus the election timeout, never less.
//!
//! The pieces: [`queue::LeaseQueue`] (table + min-heap of deadlines), [`Lessor`] (the
//! queue behind a lock, persistence, the apply-side operations) and [`expiry`] (the
//! leader's expiry loop and the rate-limited revoker).

pub mod expiry;
mod lessor;
pub mod queue;

use std::time::Duration;

pub use lessor::{Lessor, Renewal, TimeToLive};
pub use queue::LeaseQueue;

use crate::storage;

/// etcd's largest accepted TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Errors of lease operations (the client-visible ones carry etcd's meaning).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("requested lease not found")]
    NotFound,
    #[error("lease already exists")]
    Exists,
    #[error("too large lease TTL")]
    TtlTooLarge,
    /// Keep-alives are served by the leader; forwarding arrives with the peer transport.
    #[error("not leader")]
    NotLeader,
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error("corrupt lease record: {0}")]
    Corrupt(String),
}

/// Tunables of the lessor and its expiry loop.
#[derive(Clone, Debug)]
pub struct LessorConfig {
    /// Shortest TTL granted, in seconds; shorter requests are raised to it.
    pub min_ttl: i64,
    /// Added to every lease's TTL when this member becomes leader (etcd extends by the
    /// election timeout, so clients have time to find the new leader).
    pub promote_extend: Duration,
    /// Most `LeaseRevoke` proposals the expiry path issues per second, so a mass expiry
    /// cannot starve client writes.
    pub revoke_rate: u32,
    /// Revoke proposals in flight at once (etcd: `maxPendingRevokes`).
    pub max_pending_revokes: usize,
    /// An expired lease whose revoke did not arrive (failed proposal, leader change) is
    /// handed to the revoker again after this long.
    pub expired_retry: Duration,
}

impl Default for LessorConfig {
    fn default() -> Self {
        LessorConfig {
            min_ttl: 2,
            promote_extend: Duration::from_secs(1),
            revoke_rate: 1000,
            max_pending_revokes: 16,
            expired_retry: Duration::from_secs(3),
        }
    }
}

impl LessorConfig {
    /// etcd's derivation from the member's timing flags: the minimum TTL is
    /// `ceil(1.5 × election timeout)` in whole heartbeat ticks, in seconds, so a lease
    /// always outlives one leader election.
    pub fn from_timing(heartbeat_ms: u64, election_ms: u64) -> Self {
        let heartbeat = heartbeat_ms.max(1);
        let ticks = election_ms / heartbeat;
        let min_ms = (3 * ticks / 2) * heartbeat;
        LessorConfig {
            min_ttl: min_ms.div_ceil(1000).max(1) as i64,
            promote_extend: Duration::from_millis(election_ms),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_follows_etcd() {
        assert_eq!(LessorConfig::from_timing(100, 1000).min_ttl, 2);
        assert_eq!(LessorConfig::from_timing(100, 2000).min_ttl, 3);
        assert_eq!(LessorConfig::from_timing(100, 500).min_ttl, 1);
        assert_eq!(LessorConfig::from_timing(200, 5000).min_ttl, 8);
        assert_eq!(
            LessorConfig::from_timing(100, 1000).promote_extend,
            Duration::from_secs(1)
        );
    }
}
