//! Turning deadlines into revocations, on the leader only.
//!
//! Two tasks, joined by a bounded channel of lease ids:
//!
//! * the **expiry loop** sleeps until the earliest deadline (`select!` over
//!   `sleep_until`, the lessor's wake-up, a leadership change and shutdown — no polling
//!   ticker), pops what expired and sends the ids on. It acts only while this member is
//!   leader, and on becoming leader it first restarts every lease's TTL
//!   ([`Lessor::promote`]).
//! * the **revoker** proposes `LeaseRevoke` for each id through the normal Raft write
//!   path, at most [`LessorConfig::revoke_rate`](super::LessorConfig) per second and
//!   [`max_pending_revokes`](super::LessorConfig) at a time, so a mass expiry queues
//!   behind client writes instead of flooding the log.
//!
//! A lost revoke (leader change, timeout) needs no special handling: the lease is still
//! in the table, re-queued at `now + expired_retry`, and comes round again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use revkv_proto::etcdserverpb::LeaseRevokeRequest;
use revkv_proto::revkvpb::internal_raft_request::Request as Internal;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::Lessor;
use crate::server::Server;

/// How the revoker turns an id into an applied `LeaseRevoke` (the server proposes it;
/// tests substitute a recorder).
pub trait Revoke: Send + Sync + 'static {
    /// Whether this member may expire leases now.
    fn is_leader(&self) -> bool;
    fn revoke(&self, id: i64) -> impl Future<Output = Result<(), crate::Error>> + Send;
}

impl Revoke for Server {
    fn is_leader(&self) -> bool {
        self.raft.status().leader() == self.member_id
    }

    async fn revoke(&self, id: i64) -> Result<(), crate::Error> {
        self.propose(Internal::LeaseRevoke(LeaseRevokeRequest { id }))
            .await
            .map(|_| ())
    }
}

/// Starts the expiry loop and the revoker for `server`; both stop when `stop` turns
/// true (or its sender is dropped).
pub fn spawn(server: Arc<Server>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let lessor = server.leases.clone();
    let leader = server.raft.status().subscribe_leader();
    let member_id = server.member_id;
    spawn_with(lessor, server, member_id, leader, stop)
}

/// [`spawn`] with its parts explicit, for tests.
pub fn spawn_with<R: Revoke>(
    lessor: Arc<Lessor>,
    revoke: Arc<R>,
    member_id: u64,
    leader: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let cfg = lessor.config().clone();
    // About one second of revokes: the loop waits (not spins) when the revoker lags,
    // and a lease cannot sit in the channel for longer than its retry interval.
    let (tx, rx) = mpsc::channel(cfg.revoke_rate.max(1) as usize);
    let revoker = tokio::spawn(revoker(
        revoke,
        rx,
        RateLimiter::new(cfg.revoke_rate),
        cfg.max_pending_revokes.max(1),
        stop.clone(),
    ));
    tokio::spawn(async move {
        expiry_loop(lessor, member_id, leader, tx, stop).await;
        let _ = revoker.await;
    })
}

/// Most ids popped per lock acquisition, so a mass expiry never holds the lessor lock
/// (which the apply thread needs) for long.
const POP_BATCH: usize = 256;

async fn expiry_loop(
    lessor: Arc<Lessor>,
    member_id: u64,
    mut leader: watch::Receiver<u64>,
    tx: mpsc::Sender<i64>,
    mut stop: watch::Receiver<bool>,
) {
    // Whether this loop already promoted for the current leadership.
    let mut primary = false;
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        let is_leader = *leader.borrow_and_update() == member_id;
        if is_leader && !primary {
            lessor.promote();
        }
        primary = is_leader;
        let mut next = None;
        if primary {
            let expired = lessor.pop_expired(POP_BATCH);
            let more = expired.len() == POP_BATCH;
            for id in expired {
                tracing::debug!(lease = format!("{id:016x}"), "lease expired");
                tokio::select! {
                    sent = tx.send(id) => if sent.is_err() { return },
                    _ = stop.changed() => return,
                }
            }
            if more {
                // Let the apply thread and the revoker in before the next batch.
                tokio::task::yield_now().await;
                continue;
            }
            next = lessor.next_wakeup();
        }
        tokio::select! {
            _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
            _ = lessor.woken() => {}
            changed = leader.changed() => {
                if changed.is_err() {
                    return;
                }
                // Any leadership event may hide a lost-and-regained leadership, so
                // promote again if we are (still) leader.
                primary = false;
            }
            _ = stop.changed() => return,
        }
    }
}

async fn revoker<R: Revoke>(
    revoke: Arc<R>,
    mut rx: mpsc::Receiver<i64>,
    mut limiter: RateLimiter,
    max_pending: usize,
    mut stop: watch::Receiver<bool>,
) {
    let pending = Arc::new(Semaphore::new(max_pending));
    loop {
        let id = tokio::select! {
            id = rx.recv() => match id { Some(id) => id, None => return },
            _ = stop.changed() => return,
        };
        tokio::select! {
            _ = limiter.acquire() => {}
            _ = stop.changed() => return,
        }
        if !revoke.is_leader() {
            // A demoted member leaves expiry to the new leader.
            continue;
        }
        let permit = tokio::select! {
            p = pending.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let revoke = revoke.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match revoke.revoke(id).await {
                Ok(()) => tracing::debug!(lease = format!("{id:016x}"), "revoked expired lease"),
                Err(crate::Error::Lease(super::Error::NotFound)) => {}
                Err(e) => tracing::warn!(
                    lease = format!("{id:016x}"),
                    error = %e,
                    "revoking expired lease failed; will retry"
                ),
            }
        });
    }
}

/// A token bucket: `rate` tokens per second, holding at most a tenth of a second's
/// worth, so the long-run rate is exact and bursts stay short.
pub struct RateLimiter {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        let capacity = (rate / 10.0).max(1.0);
        RateLimiter {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Waits until one token is available and takes it.
    pub async fn acquire(&mut self) {
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            self.last = now;
            // The epsilon absorbs float rounding (0.001 s × 1000/s may come out just
            // below 1), which would otherwise cost a whole extra timer tick.
            if self.tokens >= 1.0 - 1e-6 {
                self.tokens = (self.tokens - 1.0).max(0.0);
                return;
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

#[cfg(test)]
#[path = "expiry_tests.rs"]
mod tests;
