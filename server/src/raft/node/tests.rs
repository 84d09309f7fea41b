//! The raft task run for real (its own thread, a log store on disk), driven through
//! its handle the way the applier and the API drive it.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use parking_lot::Mutex;
use raft::prelude::{ConfChange, ConfChangeType, Entry, EntryType};

use super::*;
use crate::storage::{Storage, StorageConfig};

struct Running {
    handle: RaftHandle,
    committed: Receiver<Vec<Entry>>,
    /// The way in for peers' messages.
    inbox: PeerInbox,
    thread: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// What a test may do at the raft task's outputs.
#[derive(Default)]
struct Hooks {
    /// Where the messages for peers go.
    transport: Option<Box<dyn Fn(Vec<Message>) + Send>>,
    /// Called after each synced log write, on the raft thread.
    on_fsync: Option<Box<dyn Fn() + Send>>,
}

/// A single voter whose only tick is `tick` away, so anything that happens sooner was
/// caused by a command or a ring, not by the timer.
fn start(tick: Duration) -> Running {
    start_with(tick, Hooks::default())
}

fn start_with(tick: Duration, hooks: Hooks) -> Running {
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
        transport: hooks.transport.unwrap_or_else(|| Box::new(|_| {})),
        on_fsync: match hooks.on_fsync {
            Some(f) => Box::new(move |_| f()),
            None => Box::new(|_| {}),
        },
        install,
    };
    let mailbox = Mailbox::new(&cfg);
    let inbox = mailbox.peer_inbox();
    let (handle, thread) = spawn(cfg, log, 0, sinks, mailbox).expect("spawn");
    Running {
        handle,
        committed,
        inbox,
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

/// The entries of `m` that came from the proposals `ids` (raft's own carry no id).
fn proposed_in(m: &Message, ids: &std::ops::Range<u64>) -> usize {
    m.entries
        .iter()
        .filter(|e| {
            <[u8; 8]>::try_from(&e.context[..]).is_ok_and(|c| ids.contains(&u64::from_be_bytes(c)))
        })
        .count()
}

/// Proposes `values` while the raft thread is held inside an earlier turn, so that
/// one turn takes them all, and returns how many of them each append to a replicating
/// learner carried.
///
/// The learner acknowledges every append at once, so the leader replicates to it
/// freely; the gate holds the raft thread inside one turn's log write while the burst
/// queues up.
fn appends_of_one_turn(values: Vec<Vec<u8>>) -> Vec<usize> {
    let (sent_tx, sent) = crossbeam_channel::unbounded();
    let gate = Arc::new(Mutex::new(()));
    let armed = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let hooks = Hooks {
        transport: Some(Box::new(move |msgs| {
            for m in msgs {
                let _ = sent_tx.send(m);
            }
        })),
        on_fsync: Some(Box::new({
            let (gate, armed) = (gate.clone(), armed.clone());
            move || {
                if armed.swap(false, Ordering::SeqCst) {
                    let _ = entered_tx.send(());
                    drop(gate.lock());
                }
            }
        })),
    };
    let node = start_with(Duration::from_secs(120), hooks);
    node.handle
        .propose_conf_change(1, add_learner(2))
        .expect("propose the learner");
    let cc = node
        .next_conf_change(Duration::from_secs(10))
        .expect("the conf change commits");
    node.handle
        .apply_conf_change(add_learner(2))
        .expect("apply it");
    node.handle.applied(cc.index);
    // Acknowledges appends to the learner until `ids`' entries have all gone out;
    // returns how many of them each append carried.
    let replicate = |ids: std::ops::Range<u64>| {
        let (mut seen, mut appends) = (0, Vec::new());
        while seen < ids.end - ids.start {
            let m = sent
                .recv_timeout(Duration::from_secs(10))
                .expect("the leader keeps sending");
            if m.to != 2 || m.get_msg_type() != MessageType::MsgAppend {
                continue;
            }
            let n = proposed_in(&m, &ids);
            if n > 0 {
                seen += n as u64;
                appends.push(n);
            }
            let mut ack = Message::default();
            ack.set_msg_type(MessageType::MsgAppendResponse);
            ack.from = 2;
            ack.to = 1;
            ack.term = m.term;
            ack.index = m.index + m.entries.len() as u64;
            assert!(node.inbox.step(ack), "the raft task takes the ack");
        }
        appends
    };
    node.handle.propose(10, b"warm".to_vec()).expect("propose");
    replicate(10..11);

    let held = gate.lock();
    armed.store(true, Ordering::SeqCst);
    node.handle.propose(20, b"gate".to_vec()).expect("propose");
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the raft thread reaches the gate");
    let burst = 100..100 + values.len() as u64;
    for (id, value) in burst.clone().zip(values) {
        node.handle.propose(id, value).expect("propose");
    }
    drop(held);
    let appends = replicate(burst);
    node.stop();
    appends
}

#[test]
fn a_turn_of_many_proposals_sends_a_follower_one_append() {
    assert_eq!(
        appends_of_one_turn(vec![b"burst".to_vec(); 50]),
        [50],
        "fifty proposals taken in one turn went out as more than one append"
    );
}

#[test]
fn merged_appends_stay_within_the_message_size_limit() {
    // Three of these fit in 1 MiB of entries, four do not.
    assert_eq!(appends_of_one_turn(vec![vec![7u8; 300_000]; 8]), [3, 3, 2]);
}
