//! Installing a raft snapshot: the applier replaces the state machine.
//!
//! The applier does it because it is the only writer of the state-machine column
//! families: between two batches nothing else is applying, so the install never races
//! an apply. The raft task waits meanwhile (it has already handed the snapshot to raft
//! and must not append entries after it before the state catches up).

use crate::mvcc;
use crate::raft::snapshot::InstallJob;
use crate::storage::checkpoint;

use super::Applier;

impl Applier {
    /// Installs `job` (see `storage::checkpoint` for the crash-safe steps), reloads
    /// everything derived from the database, and marks the snapshot's index applied.
    ///
    /// A snapshot not newer than what is applied is refused and changes nothing. A
    /// failure before the install is journaled is reported to the raft task (which
    /// stops the member); one after it is returned as well, since the in-memory state
    /// no longer matches the disk: the restart that follows completes the install.
    pub(super) fn install(&mut self, job: InstallJob) -> Result<(), mvcc::Error> {
        if job.index <= self.applied {
            let why = format!(
                "snapshot at index {} is not newer than the applied index {}",
                job.index, self.applied
            );
            tracing::warn!("refused to install a raft snapshot: {why}");
            let _ = job.reply.send(Err(why));
            return Ok(());
        }
        let storage = self.store.storage().clone();
        if let Err(e) = checkpoint::begin_install(&storage, &job.plan) {
            let _ = job.reply.send(Err(e.to_string()));
            return Ok(());
        }
        let result = (|| -> Result<(), mvcc::Error> {
            {
                let _readers_wait = self.store.restore_gate();
                checkpoint::finish_install(&storage, &job.plan)?;
                self.store.reload()?;
            }
            checkpoint::make_durable(&storage)?;
            self.leases
                .reload()
                .map_err(|e| mvcc::Error::Corrupt(format!("reloading leases: {e}")))?;
            self.watch.restore();
            self.members
                .reload(&storage)
                .map_err(|e| mvcc::Error::Corrupt(format!("reloading the member list: {e}")))?;
            self.alarms
                .reload(&storage)
                .map_err(|e| mvcc::Error::Corrupt(format!("reloading the alarms: {e}")))?;
            self.auth
                .reload()
                .map_err(|e| mvcc::Error::Corrupt(format!("reloading the auth store: {e}")))?;
            self.compactor.schedule(self.store.compact_rev());
            Ok(())
        })();
        if let Err(e) = result {
            let _ = job.reply.send(Err(e.to_string()));
            return Err(e);
        }
        self.applied = job.index;
        tracing::info!(
            index = job.index,
            term = job.term,
            revision = self.store.current_rev(),
            "state machine replaced by a raft snapshot"
        );
        (self.on_applied)(job.index);
        let _ = job.reply.send(Ok(()));
        Ok(())
    }
}
