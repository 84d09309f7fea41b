//! The raft task run for real (its own thread, a log store on disk), driven through
//! its handle the way the applier and the API drive it.

use std::time::Duration;

use raft::prelude::{ConfChange, ConfChangeType, Entry, EntryType};

use super::*;
use crate::storage::{Storage, StorageConfig};

struct Running {
    handle: RaftHandle,
    committed: Receiver<Vec<Entry>>,
    thread: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A single voter whose only tick is `tick` away, so anything that happens sooner was
/// caused by a command or a ring, not by the timer.
fn start(tick: Duration) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("storage");
    let log = LogStore::open(storage, &[1]).expect("log store");
    let cfg = RaftConfig {
        id: 1,
        tick,
        election_ticks: 10,
        snapshot_count: 10_000,
        catch_up_entries: 100,
        max_pending: 1024,
        read_retry: Duration::from_millis(500),
        conf_change_wait: Duration::from_secs(120),
    };
    // Nobody attaches to these doorbells: the test reads with timeouts instead.
    let (committed_tx, committed) = crate::doorbell::unbounded(&Doorbell::default());
    let (install, _) = crate::doorbell::unbounded(&Doorbell::default());
    let sinks = NodeSinks {
        committed: Box::new(move |entries, _| committed_tx.send(entries).is_ok()),
        on_drop: Box::new(|_, _| {}),
        transport: Box::new(|_| {}),
        on_fsync: Box::new(|_| {}),
        install,
    };
    let mailbox = Mailbox::new(&cfg);
    let (handle, thread) = spawn(cfg, log, 0, sinks, mailbox).expect("spawn");
    Running {
        handle,
        committed,
        thread,
        _dir: dir,
    }
}

impl Running {
    /// The next committed entry that is not raft's own empty one, reporting every
    /// empty one applied (as the applier would).
    fn next_conf_change(&self, within: Duration) -> Option<Entry> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let batch = self.committed.recv_timeout(left).ok()?;
            for e in batch {
                if e.get_entry_type() == EntryType::EntryConfChange {
                    return Some(e);
                }
                self.handle.applied(e.index);
            }
        }
    }

    fn stop(self) {
        self.handle.shutdown();
        self.thread.join().expect("raft thread");
    }
}

fn add_learner(id: u64) -> ConfChange {
    ConfChange {
        change_type: ConfChangeType::AddLearnerNode,
        node_id: id,
        ..Default::default()
    }
}

#[test]
fn a_held_conf_change_is_proposed_as_soon_as_the_previous_one_is_applied() {
    let node = start(Duration::from_secs(120));
    node.handle
        .propose_conf_change(1, add_learner(2))
        .expect("propose the first");
    let first = node
        .next_conf_change(Duration::from_secs(10))
        .expect("the first conf change commits");
    // Raft would turn this one into an empty entry while the first is unapplied; the
    // raft task holds it instead.
    node.handle
        .propose_conf_change(2, add_learner(3))
        .expect("propose the second");
    assert!(
        node.next_conf_change(Duration::from_millis(300)).is_none(),
        "the second conf change was proposed while the first was unapplied"
    );
    node.handle
        .apply_conf_change(add_learner(2))
        .expect("apply the first");
    // The report rings the raft task without a command; that ring alone must get the
    // held change proposed, long before the next tick.
    node.handle.applied(first.index);
    let second = node
        .next_conf_change(Duration::from_secs(10))
        .expect("the held conf change is proposed once the first is applied");
    assert!(second.index > first.index);
    node.stop();
}
