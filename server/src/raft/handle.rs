//! The raft task's public face: [`RaftHandle`], through which everything else talks
//! to it, and [`RaftStatus`], the facts it publishes for headers and status reports.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use raft::prelude::{ConfChange, ConfState};
use tokio::sync::oneshot;

use super::node::Command;
use super::reads::ReadQueue;
use super::Error;
use crate::doorbell::SharedSender;
use crossbeam_channel::TrySendError;

/// Live raft facts for status reports and response headers.
#[derive(Debug, Default)]
pub struct RaftStatus {
    pub id: u64,
    pub(super) term: AtomicU64,
    pub(super) leader: AtomicU64,
    pub(super) commit: AtomicU64,
    pub(super) applied: AtomicU64,
    /// Whether the raft task holds a conf change until the applier catches up (see
    /// `conf_gate`): then [`RaftHandle::applied`] wakes it, which it otherwise does not.
    pub(super) conf_waiting: AtomicBool,
    /// The leader id again, as a channel: sent on every soft-state change (a new
    /// leader or role), so tasks such as the lease expiry loop react to elections
    /// without polling.
    pub(super) leader_changes: tokio::sync::watch::Sender<u64>,
}

impl RaftStatus {
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }
    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Acquire)
    }
    pub fn commit(&self) -> u64 {
        self.commit.load(Ordering::Acquire)
    }
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
    /// Receives the leader id whenever leadership changes (including a re-election of
    /// the same member that the receiver may see as an unchanged value).
    pub fn subscribe_leader(&self) -> tokio::sync::watch::Receiver<u64> {
        self.leader_changes.subscribe()
    }
}

/// Cheap, cloneable access to the raft task.
#[derive(Clone)]
pub struct RaftHandle {
    pub(super) tx: SharedSender<Command>,
    pub(super) status: Arc<RaftStatus>,
    pub(super) reads: Arc<ReadQueue>,
}

impl RaftHandle {
    pub fn status(&self) -> &RaftStatus {
        &self.status
    }

    /// Queues a proposal without blocking.
    pub fn propose(&self, id: u64, data: Vec<u8>) -> Result<(), Error> {
        self.send(Command::Propose { id, data })
    }

    /// Queues a membership change without blocking.
    pub fn propose_conf_change(&self, id: u64, cc: ConfChange) -> Result<(), Error> {
        self.send(Command::ProposeConfChange { id, cc })
    }

    /// Applies a committed conf change to the raft node and returns the resulting
    /// configuration. Blocking: called from the applier thread, which must not move on
    /// before raft has switched configuration.
    pub fn apply_conf_change(&self, cc: ConfChange) -> Result<ConfState, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::ApplyConfChange { cc, reply })
            .map_err(|_| Error::Stopped)?;
        rx.blocking_recv().map_err(|_| Error::Stopped)?
    }

    pub fn transfer_leader(&self, to: u64) -> Result<(), Error> {
        self.send(Command::TransferLeader(to))
    }

    /// The leader's and `id`'s replication progress, if this member leads.
    pub async fn progress(&self, id: u64) -> Result<Option<(u64, u64)>, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Progress { id, reply })?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Obtains a read index, shared with every read queued before the round starts
    /// (see [`ReadQueue`]).
    pub async fn read_index(&self) -> Result<u64, Error> {
        let (reply, rx) = oneshot::channel();
        if self.reads.push(reply) {
            if let Err(e) = self.send(Command::ReadIndex) {
                // No round will start for the reads queued behind this one either.
                for r in self.reads.take() {
                    let _ = r.send(Err(e.clone()));
                }
            }
        }
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Records that the applier finished everything up to `index`. Not a command:
    /// waking the raft task once per apply batch only to note a number cost a
    /// context switch per write at low load. The task reads it whenever it wakes
    /// anyway (every command and tick); before a conf change proposal in particular,
    /// so a client that proposes its next membership change as soon as the last one
    /// returns never finds raft still counting the last one as pending.
    pub fn applied(&self, index: u64) {
        // SeqCst on both sides (here and in the raft task's hold): either the task's
        // catch-up after raising the flag sees this index, or this sees the flag.
        self.status.applied.fetch_max(index, Ordering::SeqCst);
        if self.status.conf_waiting.load(Ordering::SeqCst) {
            self.tx.ring();
        }
    }

    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }

    fn send(&self, cmd: Command) -> Result<(), Error> {
        self.tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => Error::TooManyRequests,
            TrySendError::Disconnected(_) => Error::Stopped,
        })
    }
}
