//! The raft task: the only owner of `RawNode`.
//!
//! Everything else talks to it through [`RaftHandle`] (a bounded channel whose sends
//! ring the task's [`Doorbell`]; between commands it parks until a ring or the next
//! tick). Each loop
//! turn it takes every queued command — so concurrent proposals land in one Ready and
//! share one log fsync (group commit) and concurrent linearizable reads share one
//! ReadIndex round — then handles the Ready in the order the raft crate documents:
//! messages, snapshot, committed entries, append entries + hard state (one synced
//! write), persisted messages, advance, then the LightReady's commit index, messages and
//! committed entries.
//!
//! Conf changes are proposed here like other entries, but the configuration switches
//! only when the applier reaches the entry and asks (`ApplyConfChange`): the applier
//! first checks the change against the membership, so raft and the membership move
//! together, in log order, on every member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, TryRecvError};
use raft::prelude::{ConfChange, ConfState, Entry, Message, MessageType, Snapshot};
use raft::SnapshotStatus;
use raft::{RawNode, StateRole};
use tokio::sync::oneshot;

use super::conf_gate::ConfGate;
use super::handle::{RaftHandle, RaftStatus};
use super::log_store::LogStore;
use super::reads::{read_ctx, read_seq, PendingRead, ReadQueue, ReadReply};
use super::snapshot::InstallJob;
use super::Error;
use crate::doorbell::{self, Doorbell, SharedSender};

/// Tunables of the raft node (etcd's flag names in comments).
#[derive(Clone, Debug)]
pub struct RaftConfig {
    pub id: u64,
    /// `--heartbeat-interval`: one raft tick.
    pub tick: Duration,
    /// `--election-timeout` divided by the tick.
    pub election_ticks: usize,
    /// `--snapshot-count`: applied entries between log compactions.
    pub snapshot_count: u64,
    /// Entries kept behind the applied index after compaction, for slow followers.
    pub catch_up_entries: u64,
    /// Bound of the command queue; a full queue rejects with "too many requests".
    pub max_pending: usize,
    /// How long a ReadIndex round may go unanswered before it is sent again (etcd's
    /// `readIndexRetryTime`): a leader drops read requests until it has committed an
    /// entry of its term, and a forwarded request can be lost on the network.
    pub read_retry: Duration,
    /// How long a conf change may wait for the previous one to be applied before it
    /// is dropped: the request timeout, after which its waiter has given up.
    pub conf_change_wait: Duration,
}

/// Entries per append message: raft's limit for one append, and `appends::merge`'s
/// for the appends it merges.
const MAX_APPEND_BYTES: u64 = 1 << 20;

/// What the raft task is asked to do.
pub enum Command {
    /// Append `data` to the log; the outcome reaches the waiter of `id` via `on_drop`
    /// (failure) or the applier (success).
    Propose {
        id: u64,
        data: Vec<u8>,
    },
    /// Append a membership change; like `Propose`, the outcome reaches the waiter of
    /// `id`.
    ProposeConfChange {
        id: u64,
        cc: ConfChange,
    },
    /// Switch the raft configuration to include a committed conf change (sent by the
    /// applier, in log order) and reply with the new configuration.
    ApplyConfChange {
        cc: ConfChange,
        reply: oneshot::Sender<Result<ConfState, Error>>,
    },
    /// Hand leadership to this member (a no-op unless this member leads).
    TransferLeader(u64),
    /// Reply with (leader's match, `id`'s match) from the leader's progress table, or
    /// `None` when this member does not lead or does not track `id`.
    Progress {
        id: u64,
        reply: oneshot::Sender<Option<(u64, u64)>>,
    },
    /// Start a ReadIndex round for the reads waiting in the [`ReadQueue`].
    ReadIndex,
    /// A raft message from a peer.
    Step(Box<Message>),
    /// The transport could not deliver a message to this peer.
    Unreachable(u64),
    /// The transport finished sending a snapshot to this peer (`ok`) or gave up.
    ReportSnapshot {
        to: u64,
        ok: bool,
    },
    Shutdown,
}

/// The raft task's command channel, created before the task so that the transport
/// (which the task sends through) can hold the way back in.
pub struct Mailbox {
    tx: SharedSender<Command>,
    rx: Receiver<Command>,
    /// Rung by every send; the raft task parks on it between commands and ticks.
    bell: Doorbell,
}

impl Mailbox {
    pub fn new(cfg: &RaftConfig) -> Mailbox {
        Mailbox::with_capacity(cfg.max_pending)
    }

    /// A mailbox of `capacity` commands.
    pub fn with_capacity(capacity: usize) -> Mailbox {
        let bell = Doorbell::default();
        let (tx, rx) = doorbell::bounded(&bell, capacity);
        Mailbox { tx, rx, bell }
    }

    /// The receiving end, for tests that stand in for the raft task.
    #[cfg(test)]
    pub(crate) fn receiver(&self) -> &Receiver<Command> {
        &self.rx
    }

    /// What the peer transport may tell the raft task: nothing but incoming messages
    /// and unreachable peers.
    pub fn peer_inbox(&self) -> PeerInbox {
        PeerInbox {
            tx: self.tx.clone(),
        }
    }
}

/// The transport's way into the raft task. Never blocks: when the raft task is
/// backlogged a message is dropped, which raft tolerates (it retransmits).
#[derive(Clone)]
pub struct PeerInbox {
    tx: SharedSender<Command>,
}

impl PeerInbox {
    /// Queues a message from a peer; false if it was dropped.
    pub fn step(&self, msg: Message) -> bool {
        self.tx.try_send(Command::Step(Box::new(msg))).is_ok()
    }

    pub fn unreachable(&self, peer: u64) {
        let _ = self.tx.try_send(Command::Unreachable(peer));
    }

    /// Tells raft how sending a snapshot to `peer` ended. Blocking: raft keeps the
    /// peer paused until it hears, so this report must not be dropped.
    pub fn report_snapshot(&self, peer: u64, ok: bool) {
        let _ = self.tx.send(Command::ReportSnapshot { to: peer, ok });
    }
}

/// Where the raft task delivers its results.
pub struct NodeSinks {
    /// Hands committed entries, in order, to the applier, saying whether the raft task
    /// can spare the time to apply them on its own thread (see `apply::handoff`);
    /// false once the applier has stopped.
    pub committed: Box<dyn Fn(Vec<Entry>, bool) -> bool + Send>,
    /// Called when a proposal can never commit.
    pub on_drop: Box<dyn Fn(u64, Error) + Send>,
    /// Messages for peers.
    pub transport: Box<dyn Fn(Vec<Message>) + Send>,
    /// Told how long each synced log write took (one per Ready with entries).
    pub on_fsync: Box<dyn Fn(Duration) + Send>,
    /// The applier, asked to install a received snapshot (the raft task waits).
    pub install: crate::doorbell::Sender<InstallJob>,
}

struct Node {
    raw: RawNode<LogStore>,
    cfg: RaftConfig,
    status: Arc<RaftStatus>,
    sinks: NodeSinks,
    rx: Receiver<Command>,
    bell: Doorbell,
    reads: HashMap<u64, PendingRead>,
    /// Reads the handles queued; taken into `queued_reads` on `Command::ReadIndex`.
    read_queue: Arc<ReadQueue>,
    queued_reads: Vec<ReadReply>,
    next_read_ctx: u64,
    /// Commands that arrived while the task waited for a snapshot install; handled
    /// right after that Ready.
    deferred: Vec<Command>,
    /// Conf changes raft would drop right now (an earlier one is unapplied).
    conf_gate: ConfGate,
}

/// Starts the raft task. `applied` is the index already reflected in the state machine.
pub fn spawn(
    cfg: RaftConfig,
    log: LogStore,
    applied: u64,
    sinks: NodeSinks,
    mailbox: Mailbox,
) -> Result<(RaftHandle, JoinHandle<()>), Error> {
    let raft_cfg = raft::Config {
        id: cfg.id,
        election_tick: cfg.election_ticks,
        heartbeat_tick: 1,
        applied,
        pre_vote: true,
        check_quorum: true,
        max_size_per_msg: MAX_APPEND_BYTES,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    raft_cfg.validate()?;
    let logger = slog::Logger::root(super::TracingDrain, slog::o!());
    let mut raw = RawNode::new(&raft_cfg, log, &logger)?;
    let single_voter = raw.raft.prs().conf().voters().ids().len() == 1
        && raw.raft.prs().conf().voters().contains(cfg.id);
    if single_voter {
        // Nobody else can win; skip the election timeout. With several voters the
        // members wait out a (randomised) election timeout instead, so they do not all
        // campaign at once.
        raw.campaign()?;
    }
    // The persisted term and commit index until the first Ready reports newer ones, so
    // a member that never hears from a leader still reports where it stands.
    let status = Arc::new(RaftStatus {
        id: cfg.id,
        term: AtomicU64::new(raw.raft.term),
        commit: AtomicU64::new(raw.raft.raft_log.committed),
        applied: AtomicU64::new(applied),
        ..Default::default()
    });
    let Mailbox { tx, rx, bell } = mailbox;
    let reads = Arc::new(ReadQueue::default());
    let handle = RaftHandle {
        tx,
        status: status.clone(),
        reads: reads.clone(),
    };
    let mut node = Node {
        raw,
        cfg,
        status,
        sinks,
        rx,
        bell,
        reads: HashMap::new(),
        read_queue: reads,
        queued_reads: Vec::new(),
        next_read_ctx: 1,
        deferred: Vec::new(),
        conf_gate: ConfGate::default(),
    };
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            if let Err(e) = node.run() {
                tracing::error!(error = %e, "raft task stopped");
            }
            node.fail_all(Error::Stopped);
            // A read queued after that finds the mailbox gone once the node (its only
            // receiver) is dropped, and fails itself; one queued before is failed here.
            let queue = node.read_queue.clone();
            drop(node);
            for reply in queue.take() {
                let _ = reply.send(Err(Error::Stopped));
            }
        })
        .map_err(|e| Error::from(raft::Error::Io(e)))?;
    Ok((handle, thread))
}

impl Node {
    fn run(&mut self) -> Result<(), Error> {
        self.bell.attach();
        let mut next_tick = Instant::now() + self.cfg.tick;
        // A single voter has already campaigned in `spawn`: become leader now rather
        // than at the first tick.
        self.on_ready()?;
        loop {
            // Park on the doorbell rather than in crossbeam's `select!`: a sender wakes
            // a thread blocked there while holding the channel's waker lock, which the
            // woken thread then needs first thing (see `doorbell`).
            match self.rx.try_recv() {
                Ok(cmd) => {
                    if !self.handle(cmd) {
                        return Ok(());
                    }
                }
                // Senders do not ring when they drop; the tick timeout notices.
                Err(TryRecvError::Disconnected) => return Ok(()),
                // A ring without a command (the applier's progress while a conf
                // change is held) needs the pass below too, so go on after waking.
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now < next_tick {
                        self.bell.wait_timeout(next_tick - now);
                    }
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick();
                next_tick = now + self.cfg.tick;
            }
            // For log compaction and held conf changes; conf change proposals also
            // catch up themselves.
            self.catch_up_applied();
            if !self.conf_gate.is_empty() && !self.release_conf_changes() {
                return Ok(());
            }
            // Take everything already queued: this is what batches proposals and reads.
            while let Ok(cmd) = self.rx.try_recv() {
                if !self.handle(cmd) {
                    return Ok(());
                }
            }
            self.start_read_round();
            self.on_ready()?;
            while !self.deferred.is_empty() {
                for cmd in std::mem::take(&mut self.deferred) {
                    if !self.handle(cmd) {
                        return Ok(());
                    }
                }
                self.start_read_round();
                self.on_ready()?;
            }
        }
    }

    /// Returns false on shutdown.
    fn handle(&mut self, cmd: Command) -> bool {
        if ConfGate::gates(&cmd) {
            // Raft would turn it into an empty entry and its waiter would time out.
            self.status.conf_waiting.store(true, Ordering::SeqCst);
            self.catch_up_applied();
            if ConfGate::closed(&self.raw.raft) {
                self.conf_gate.hold(Instant::now(), cmd);
                return true;
            }
            self.publish_conf_waiting();
        }
        match cmd {
            Command::Propose { id, data } => {
                if self.raw.raft.leader_id == raft::INVALID_ID {
                    (self.sinks.on_drop)(id, Error::NoLeader);
                } else if let Err(e) = self.raw.propose(id.to_be_bytes().to_vec(), data) {
                    let err = match e {
                        raft::Error::ProposalDropped => Error::NoLeader,
                        e => Error::from(e),
                    };
                    (self.sinks.on_drop)(id, err);
                }
            }
            Command::ProposeConfChange { id, cc } => {
                if self.raw.raft.leader_id == raft::INVALID_ID {
                    (self.sinks.on_drop)(id, Error::NoLeader);
                } else if let Err(e) = self.raw.propose_conf_change(id.to_be_bytes().to_vec(), cc) {
                    let err = match e {
                        raft::Error::ProposalDropped => Error::NoLeader,
                        e => Error::from(e),
                    };
                    (self.sinks.on_drop)(id, err);
                }
            }
            Command::ApplyConfChange { cc, reply } => {
                let result = self.raw.apply_conf_change(&cc).map_err(Error::from);
                if let Ok(cs) = &result {
                    tracing::info!(
                        voters = ?cs.voters,
                        learners = ?cs.learners,
                        "raft configuration changed"
                    );
                    self.raw.mut_store().note_conf_state(cs.clone());
                }
                let _ = reply.send(result);
            }
            Command::TransferLeader(to) => self.raw.transfer_leader(to),
            Command::Progress { id, reply } => {
                let prs = self.raw.raft.prs();
                let answer = (self.raw.raft.state == StateRole::Leader)
                    .then(|| Some((prs.get(self.cfg.id)?.matched, prs.get(id)?.matched)))
                    .flatten();
                let _ = reply.send(answer);
            }
            Command::ReadIndex => self.queued_reads.extend(self.read_queue.take()),
            Command::Step(msg) => self.step(*msg),
            Command::Unreachable(peer) => self.raw.report_unreachable(peer),
            Command::ReportSnapshot { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn step(&mut self, msg: Message) {
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            // Stepping it makes raft hand the snapshot back in a Ready for install, so
            // it must name a verified checkpoint of our cluster that is newer than
            // our state; anything else is refused here and changes nothing.
            let applied = self.raw.raft.raft_log.applied;
            let admitted = match self.raw.store().snapshots() {
                Some(s) => s.admit(&msg, applied).map_err(|e| e.to_string()),
                None => Err("this member cannot install snapshots".to_string()),
            };
            if let Err(why) = admitted {
                tracing::warn!(
                    from = format!("{:x}", msg.from),
                    index = msg.get_snapshot().get_metadata().index,
                    applied,
                    "refused a raft snapshot: {why}"
                );
                return;
            }
        }
        match self.raw.step(msg) {
            Ok(()) => {}
            // A response from a member that is no longer in the configuration, or a
            // local-only message type arriving from the network: nothing to do.
            Err(raft::Error::StepPeerNotFound | raft::Error::StepLocalMsg) => {
                tracing::debug!("ignored a raft message")
            }
            Err(e) => tracing::warn!(error = %e, "raft rejected a peer message"),
        }
    }

    fn tick(&mut self) {
        self.raw.tick();
        let limit = 2 * self.cfg.election_ticks;
        let tick_ms = self.cfg.tick.as_millis().max(1);
        let retry = (self.cfg.read_retry.as_millis() / tick_ms).max(1) as usize;
        let mut resend = Vec::new();
        self.reads.retain(|&seq, r| {
            r.ticks += 1;
            if r.ticks <= limit {
                if r.ticks % retry == 0 {
                    resend.push(seq);
                }
                return true;
            }
            for reply in r.replies.drain(..) {
                let _ = reply.send(Err(Error::Timeout));
            }
            false
        });
        if self.raw.raft.leader_id != raft::INVALID_ID {
            for seq in resend {
                self.raw.read_index(read_ctx(self.cfg.id, seq));
            }
        }
    }

    fn start_read_round(&mut self) {
        if self.queued_reads.is_empty() {
            return;
        }
        if self.raw.raft.leader_id == raft::INVALID_ID {
            for reply in self.queued_reads.drain(..) {
                let _ = reply.send(Err(Error::NoLeader));
            }
            return;
        }
        let seq = self.next_read_ctx;
        self.next_read_ctx += 1;
        self.raw.read_index(read_ctx(self.cfg.id, seq));
        let replies = std::mem::take(&mut self.queued_reads);
        self.reads.insert(seq, PendingRead { replies, ticks: 0 });
    }

    /// Hands back the held conf changes once the previous one is applied, and fails
    /// those held too long. Returns false on shutdown.
    fn release_conf_changes(&mut self) -> bool {
        let released =
            self.conf_gate
                .release(&self.raw.raft, Instant::now(), self.cfg.conf_change_wait);
        for cmd in released.expired {
            if let Command::ProposeConfChange { id, .. } = cmd {
                (self.sinks.on_drop)(id, Error::Timeout);
            } else {
                tracing::warn!("dropped a forwarded conf change held past the request timeout");
            }
        }
        let running = released.ready.into_iter().all(|cmd| self.handle(cmd));
        self.publish_conf_waiting();
        running
    }

    /// Tells the applier whether its progress reports should wake this task (see
    /// [`RaftHandle::applied`]): only while a conf change waits for one.
    fn publish_conf_waiting(&self) {
        self.status
            .conf_waiting
            .store(!self.conf_gate.is_empty(), Ordering::SeqCst);
    }

    /// Tells raft what the applier reported through [`RaftHandle::applied`].
    fn catch_up_applied(&mut self) {
        let index = self.status.applied();
        if index <= self.raw.raft.raft_log.applied {
            return;
        }
        self.raw.advance_apply_to(index);
        if let Some(s) = self.raw.store().snapshots() {
            s.note_applied(index);
        }
        let first = raft::Storage::first_index(self.raw.store()).unwrap_or(1);
        if index >= first + self.cfg.snapshot_count {
            let to = index.saturating_sub(self.cfg.catch_up_entries);
            if let Err(e) = self.raw.mut_store().compact(to) {
                tracing::warn!(error = %e, "raft log compaction failed");
            } else {
                tracing::info!(compact_index = to, "compacted raft log");
            }
        }
    }

    fn on_ready(&mut self) -> Result<(), Error> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss() {
            let previous = self.status.leader.load(Ordering::Acquire);
            if previous != raft::INVALID_ID && ss.leader_id != previous {
                // A read forwarded to the old leader will never be answered; etcd
                // fails it at once with "leader changed" so the client can retry.
                for (_, r) in self.reads.drain() {
                    for reply in r.replies {
                        let _ = reply.send(Err(Error::LeaderChanged));
                    }
                }
                tracing::info!(
                    previous = format!("{previous:x}"),
                    leader = format!("{:x}", ss.leader_id),
                    "raft leader changed"
                );
            }
            self.status.leader.store(ss.leader_id, Ordering::Release);
            self.status.leader_changes.send_replace(ss.leader_id);
            if ss.raft_state == StateRole::Leader {
                tracing::info!(id = format!("{:x}", self.cfg.id), "became leader");
            }
        }
        if !ready.messages().is_empty() {
            self.send(ready.take_messages());
        }
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot())?;
        }
        self.deliver(ready.take_committed_entries())?;
        let hs = ready.hs().cloned();
        if !ready.entries().is_empty() || hs.is_some() {
            let start = std::time::Instant::now();
            self.raw.mut_store().append(ready.entries(), hs.as_ref())?;
            (self.sinks.on_fsync)(start.elapsed());
        }
        if let Some(hs) = &hs {
            self.status.term.store(hs.term, Ordering::Release);
            self.status.commit.store(hs.commit, Ordering::Release);
        }
        for rs in ready.take_read_states() {
            let Some(seq) = read_seq(self.cfg.id, &rs.request_ctx) else {
                continue;
            };
            if let Some(r) = self.reads.remove(&seq) {
                for reply in r.replies {
                    let _ = reply.send(Ok(rs.index));
                }
            }
        }
        if !ready.persisted_messages().is_empty() {
            (self.sinks.transport)(ready.take_persisted_messages());
        }
        // `advance` would also mark the handed-out entries applied; the applier runs on
        // its own thread and reports real progress through `Command::Applied`.
        let mut light = self.raw.advance_append(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
            self.status.commit.store(commit, Ordering::Release);
        }
        if !light.messages().is_empty() {
            self.send(light.take_messages());
        }
        self.deliver(light.take_committed_entries())?;
        Ok(())
    }

    /// Hands messages to the transport, a leader's appends to each follower merged
    /// (see `appends`): a turn of N proposals costs one message per follower, not N,
    /// and one reply each (three members +20 %, BENCHMARKS item 38).
    fn send(&self, msgs: Vec<Message>) {
        (self.sinks.transport)(super::appends::merge(msgs, MAX_APPEND_BYTES));
    }

    /// Has the applier replace the state machine and the raft CF with `snap` (see
    /// `storage::checkpoint`), then reloads the log's view of the raft CF. Waits for
    /// the applier, deferring commands meanwhile: the applier's own `Applied` report
    /// could otherwise find the mailbox full and the two would wait for each other.
    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), Error> {
        let meta = snap.get_metadata();
        let store = self.raw.store();
        let snapshots = store.snapshots().ok_or(Error::SnapshotUnsupported)?.clone();
        let records = store.snapshot_records(meta)?;
        let plan = snapshots
            .plan(snap, records)
            .map_err(|e| Error::SnapshotInstall(e.to_string()))?;
        tracing::info!(
            index = meta.index,
            term = meta.term,
            "installing a raft snapshot"
        );
        let (reply, done) = crossbeam_channel::bounded(1);
        self.sinks
            .install
            .send(InstallJob {
                index: meta.index,
                term: meta.term,
                plan,
                reply,
            })
            .map_err(|_| Error::Stopped)?;
        let outcome = loop {
            select! {
                recv(done) -> r => break r.unwrap_or_else(|_| Err("the applier stopped".into())),
                recv(self.rx) -> cmd => match cmd {
                    // The applier may be partway through a batch, waiting on a conf
                    // change of an entry below the snapshot (raft restores only past
                    // its commit index). The snapshot's configuration already holds,
                    // and the install then supersedes that batch: answer at once, or
                    // each would wait for the other.
                    Ok(Command::ApplyConfChange { reply, .. }) => {
                        let _ = reply.send(Ok(self.raw.raft.prs().conf().to_conf_state()));
                    }
                    Ok(cmd) => self.deferred.push(cmd),
                    Err(_) => break Err("the raft task's mailbox closed".into()),
                },
            }
        };
        outcome.map_err(Error::SnapshotInstall)?;
        self.raw.mut_store().reload()?;
        snapshots.installed();
        tracing::info!(index = meta.index, "installed a raft snapshot");
        Ok(())
    }

    fn deliver(&mut self, entries: Vec<Entry>) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        // Whether this thread can spare the time to apply: a sole voter's mostly waits
        // on its fsync; in a cluster of several (where a leader's raft thread is the
        // busiest stage) only when nothing waits in the mailbox, as it would park next.
        let conf = self.raw.raft.prs().conf();
        let sole_voter = conf.voters().ids().len() == 1 && conf.learners().is_empty();
        let spare = sole_voter || (self.rx.is_empty() && self.deferred.is_empty());
        if (self.sinks.committed)(entries, spare) {
            Ok(())
        } else {
            Err(Error::Stopped)
        }
    }

    fn fail_all(&mut self, err: Error) {
        for reply in self.queued_reads.drain(..) {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, r) in self.reads.drain() {
            for reply in r.replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
        let mut pending = std::mem::take(&mut self.deferred);
        pending.extend(self.conf_gate.drain());
        for cmd in pending.into_iter().chain(self.rx.try_iter()) {
            match cmd {
                Command::Propose { id, .. } | Command::ProposeConfChange { id, .. } => {
                    (self.sinks.on_drop)(id, err.clone())
                }
                Command::ReadIndex => {
                    for reply in self.read_queue.take() {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
                Command::ApplyConfChange { reply, .. } => {
                    let _ = reply.send(Err(err.clone()));
                }
                Command::Progress { reply, .. } => {
                    let _ = reply.send(None);
                }
                Command::TransferLeader(_)
                | Command::Step(_)
                | Command::Unreachable(_)
                | Command::ReportSnapshot { .. }
                | Command::Shutdown => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
