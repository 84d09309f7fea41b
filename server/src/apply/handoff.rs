//! How committed entries reach the applier: queued for the apply thread, or applied
//! at once by the raft thread when that costs less than waking the apply thread.
//!
//! The apply thread exists so that the raft thread can append and fsync the next
//! entries while the last ones are applied. That overlap pays when batches are large
//! (many clients). A lone client's put is one entry per batch, and there the hand-off
//! itself is the cost: waking a parked thread on another vCPU takes 20-40 µs on this
//! kind of VM, plus its context switches, against ~5 µs to apply the entry. So a
//! small batch is applied by the raft thread itself when the apply thread is idle
//! (nothing queued, the applier not held) and the raft thread can spare the time:
//! always for a sole voter, whose raft thread mostly waits on its fsync; with several
//! members only when nothing waits in its mailbox, since a leader's raft thread is
//! then the pipeline's busiest stage (applying there whenever possible cost 3 % of
//! three-member throughput). Everything else is queued.
//!
//! Order: the apply thread takes batches out of the queue and applies them while
//! holding the applier's lock, and the raft thread (the queue's only producer) checks
//! the queue empty while holding it too. So an inline batch is applied only after
//! every batch queued before it, and batches stay in commit order.
//!
//! Conf change entries are never applied inline: applying one asks the raft task to
//! apply it to raft and waits for the answer, which the raft thread cannot give
//! while it is the one applying. The raft thread only ever `try_lock`s, so the apply
//! thread holding the lock while it waits for raft cannot deadlock with it.

use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};
use parking_lot::Mutex;
use raft::prelude::{Entry, EntryType};

use super::Applier;
use crate::doorbell::{self, Doorbell};
use crate::raft::snapshot::InstallJob;

/// Most entries a batch may have to be applied by the raft thread. A lone client's
/// batches have one entry; under load batches are tens of entries and their apply
/// would hold up the next append, so they go to the apply thread.
pub const INLINE_MAX_ENTRIES: usize = 8;

/// Most entries folded into one write batch by the apply thread.
const MAX_BATCH_ENTRIES: usize = 4096;

/// What the hand-off drives: [`Applier`], or a recorder in tests.
pub trait StateMachine: Send + 'static {
    /// Applies committed entries (in order, possibly some already applied).
    fn apply(&mut self, entries: &[Entry]) -> Result<(), crate::Error>;
    /// Replaces the state with a received snapshot's.
    fn install(&mut self, job: InstallJob) -> Result<(), crate::Error>;
}

impl StateMachine for Applier {
    fn apply(&mut self, entries: &[Entry]) -> Result<(), crate::Error> {
        self.apply_entries(entries)
    }
    fn install(&mut self, job: InstallJob) -> Result<(), crate::Error> {
        Ok(Applier::install(self, job)?)
    }
}

/// The applier (once the apply thread has started) and whether it has failed: after
/// a failure nothing more is applied, by either thread.
struct Slot<A> {
    applier: Option<A>,
    failed: bool,
}

impl<A: StateMachine> Slot<A> {
    fn apply(&mut self, entries: &[Entry]) -> Result<(), crate::Error> {
        let Some(applier) = self.applier.as_mut() else {
            return Ok(());
        };
        let r = applier.apply(entries);
        self.failed |= r.is_err();
        r
    }
}

/// The raft task's end: delivers committed entries in order.
pub struct Handoff<A = Applier> {
    tx: doorbell::Sender<Vec<Entry>>,
    slot: Arc<Mutex<Slot<A>>>,
    on_fatal: Box<dyn Fn(String) + Send>,
}

/// The apply thread's end: applies queued batches and snapshot installs.
pub struct ApplyLoop<A = Applier> {
    rx: Receiver<Vec<Entry>>,
    installs: Receiver<InstallJob>,
    slot: Arc<Mutex<Slot<A>>>,
    bell: Doorbell,
}

/// The two ends of the hand-off. The raft task may deliver before the applier exists
/// (it needs the raft task's handle); until [`ApplyLoop::run`] starts, everything is
/// queued. `bell` is the one the applier's senders ring, `installs`' too.
/// `on_fatal` reports an apply failure on the raft thread (the apply thread returns its
/// own as an error).
pub fn channel<A: StateMachine>(
    bell: &Doorbell,
    installs: Receiver<InstallJob>,
    on_fatal: Box<dyn Fn(String) + Send>,
) -> (Handoff<A>, ApplyLoop<A>) {
    let (tx, rx) = doorbell::unbounded(bell);
    let slot = Arc::new(Mutex::new(Slot {
        applier: None,
        failed: false,
    }));
    (
        Handoff {
            tx,
            slot: slot.clone(),
            on_fatal,
        },
        ApplyLoop {
            rx,
            installs,
            slot,
            bell: bell.clone(),
        },
    )
}

impl<A: StateMachine> Handoff<A> {
    /// Hands `entries` (committed, in order, following the last delivered batch) to
    /// the applier. `caller_spare`: the caller can spare the time to apply them
    /// itself. False once the applier has stopped or failed: nothing more will be
    /// applied.
    pub fn deliver(&self, entries: Vec<Entry>, caller_spare: bool) -> bool {
        if entries.is_empty() {
            return true;
        }
        if caller_spare
            && entries.len() <= INLINE_MAX_ENTRIES
            && entries
                .iter()
                .all(|e| e.get_entry_type() == EntryType::EntryNormal)
            && self.tx.is_empty()
        {
            if let Some(mut slot) = self.slot.try_lock() {
                if slot.failed {
                    return false;
                }
                // Checked again under the lock: the apply thread may have been between
                // taking the last batch and applying it.
                if slot.applier.is_some() && self.tx.is_empty() {
                    return match slot.apply(&entries) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(error = %e, "apply failed; stopping");
                            (self.on_fatal)(format!("apply failed: {e}"));
                            false
                        }
                    };
                }
            }
        }
        self.tx.send(entries).is_ok()
    }
}

impl<A: StateMachine> ApplyLoop<A> {
    /// Applies batches with `applier` until the raft task hangs up; an error here is a
    /// storage failure that leaves the member unable to continue.
    pub fn run(self, applier: A) -> Result<(), crate::Error> {
        self.bell.attach();
        let mut installs = self.installs.clone();
        self.slot.lock().applier = Some(applier);
        loop {
            // An install overtakes entries queued before it: those are at or below the
            // snapshot's index, which the install marks applied, so they are skipped;
            // entries above it are only sent after the install finished.
            match installs.try_recv() {
                Ok(job) => {
                    let mut slot = self.slot.lock();
                    let r = match slot.applier.as_mut() {
                        Some(a) => a.install(job),
                        None => Ok(()),
                    };
                    slot.failed |= r.is_err();
                    r?;
                    continue;
                }
                Err(TryRecvError::Empty) => {}
                // Entries may still be queued: keep applying them.
                Err(TryRecvError::Disconnected) => installs = crossbeam_channel::never(),
            }
            let mut slot = self.slot.lock();
            if slot.failed {
                // The raft thread failed an inline apply and has reported it.
                return Ok(());
            }
            let mut entries = match self.rx.try_recv() {
                Ok(e) => e,
                Err(TryRecvError::Empty) => {
                    drop(slot);
                    self.bell.wait();
                    continue;
                }
                Err(TryRecvError::Disconnected) => return Ok(()),
            };
            while entries.len() < MAX_BATCH_ENTRIES {
                match self.rx.try_recv() {
                    Ok(more) => entries.extend(more),
                    Err(_) => break,
                }
            }
            slot.apply(&entries)?;
        }
    }
}

#[cfg(test)]
mod tests;
