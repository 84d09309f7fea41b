//! The raft log's fsync, on its own thread.
//!
//! Why: a log fsync takes 100-140 µs here, and the raft thread used to sit in it after
//! writing each Ready, so proposals that arrived meanwhile waited for it to finish
//! before they could even become the next Ready. Now the raft thread writes a Ready's
//! entries, asks for a sync ([`LogSyncer::request`]) and moves on (raft-rs's
//! `advance_append_async`); the next batch is proposed and written while this one
//! syncs, and raft counts entries toward the commit, and the raft thread sends the
//! messages that acknowledge them, only once [`LogSyncer::synced`] reaches their Ready
//! (`on_persist_ready`).
//!
//! Requests carry the Ready's number and the segment it was written to. A sync covers
//! every write made before it started, so the syncer takes only the newest request
//! queued when it wakes: one fdatasync then stands for every Ready written during the
//! previous one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::entry_log::{self, SyncTarget};
use crate::doorbell::{self, Doorbell, TryRecvError};

struct Request {
    number: u64,
    target: SyncTarget,
}

#[derive(Default)]
struct Progress {
    /// The newest Ready number whose entries are durable.
    synced: AtomicU64,
    /// A failed sync; the raft task stops on it (etcd panics on a failed WAL sync).
    failed: Mutex<Option<entry_log::Error>>,
}

/// The raft task's side of the sync thread. Dropping it stops the thread.
pub struct LogSyncer {
    tx: Option<doorbell::Sender<Request>>,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

impl LogSyncer {
    /// Starts the sync thread; it rings `raft` after each sync and reports each sync's
    /// duration to `on_fsync`.
    pub fn spawn(
        raft: Doorbell,
        on_fsync: Box<dyn Fn(Duration) + Send>,
    ) -> std::io::Result<LogSyncer> {
        let bell = Doorbell::default();
        let (tx, rx) = doorbell::unbounded::<Request>(&bell);
        let progress = Arc::new(Progress::default());
        let shared = progress.clone();
        let thread = std::thread::Builder::new()
            .name("raft-sync".into())
            .spawn(move || {
                bell.attach();
                loop {
                    let mut newest = None;
                    let open = loop {
                        match rx.try_recv() {
                            Ok(req) => newest = Some(req),
                            Err(TryRecvError::Empty) => break true,
                            Err(TryRecvError::Disconnected) => break false,
                        }
                    };
                    match newest {
                        Some(req) => {
                            let start = Instant::now();
                            if let Err(e) = req.target.sync() {
                                *shared.failed.lock() = Some(e);
                                raft.ring();
                                return;
                            }
                            on_fsync(start.elapsed());
                            shared.synced.store(req.number, Ordering::Release);
                            raft.ring();
                        }
                        None if open => bell.wait(),
                        None => return,
                    }
                }
            })?;
        Ok(LogSyncer {
            tx: Some(tx),
            progress,
            thread: Some(thread),
        })
    }

    /// Asks for the entries written so far, up to those of Ready `number`, to be made
    /// durable. Numbers must increase.
    pub fn request(&self, number: u64, target: SyncTarget) {
        if let Some(tx) = &self.tx {
            // Fails only if the thread ended, which it does only after a failed sync
            // that `synced` reports.
            let _ = tx.send(Request { number, target });
        }
    }

    /// The newest Ready number known durable, or the error that stopped the syncs.
    pub fn synced(&self) -> Result<u64, entry_log::Error> {
        if let Some(e) = self.progress.failed.lock().take() {
            return Err(e);
        }
        Ok(self.progress.synced.load(Ordering::Acquire))
    }
}

impl Drop for LogSyncer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::entry_log::{EntryLog, EntryLogConfig};
    use raft::prelude::Entry;

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            data: vec![7; 100].into(),
            ..Default::default()
        }
    }

    #[test]
    fn reports_the_newest_synced_ready_and_rings_the_raft_thread() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EntryLog::open(dir.path(), EntryLogConfig::default()).unwrap();
        let bell = Doorbell::default();
        bell.attach();
        let syncs = Arc::new(AtomicU64::new(0));
        let counted = syncs.clone();
        let syncer = LogSyncer::spawn(
            bell.clone(),
            Box::new(move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .unwrap();
        assert_eq!(syncer.synced().unwrap(), 0);
        for n in 1..=5u64 {
            log.append(&[entry(n)]).unwrap();
            syncer.request(n, log.sync_target());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while syncer.synced().unwrap() < 5 {
            assert!(
                Instant::now() < deadline,
                "the syncer never reached Ready 5"
            );
            bell.wait_timeout(Duration::from_millis(100));
        }
        let n = syncs.load(Ordering::Relaxed);
        assert!((1..=5).contains(&n), "{n} syncs for five requests");
        drop(syncer);
        // What was synced is what a reopened log reads back.
        drop(log);
        let log = EntryLog::open(dir.path(), EntryLogConfig::default()).unwrap();
        assert_eq!(log.last_index(), 5);
    }
}
