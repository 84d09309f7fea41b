//! Holds membership-change proposals back while the leader still counts an earlier
//! one as unapplied.
//!
//! raft allows one unapplied conf change at a time. A leader that is handed a second
//! one (or any one right after its election, when it conservatively counts its whole
//! log tail as a possible conf change) does not refuse it: it turns the entry into an
//! empty normal entry and logs "ignoring conf change". The proposer's waiter then
//! hears nothing and the client gets "request timed out". Our applier runs on its own
//! thread, so raft's applied index can trail the commit for a moment — long enough
//! for a `member remove` sent right after a `member add` answered by a quicker
//! follower to land in that window. etcd hands raft "applied" as soon as entries are
//! passed to its apply goroutine, so it rarely meets this; we keep raft's applied
//! honest and wait instead.
//!
//! The gate applies only on the leader: a follower forwards proposals, and the
//! leader's gate holds what it is forwarded. While it holds anything, the applier's
//! progress report rings the raft task (`RaftStatus::conf_waiting`), so a held change
//! is proposed as soon as the previous one is applied, not at the next tick.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use raft::eraftpb::{EntryType, Message, MessageType};
use raft::{Raft, StateRole, Storage};

use super::node::Command;

/// Conf-change proposals waiting for the leader to apply the previous one.
#[derive(Default)]
pub struct ConfGate {
    held: VecDeque<(Instant, Command)>,
}

/// What [`ConfGate::release`] hands back.
pub struct Released {
    /// To be handled again, in arrival order.
    pub ready: Vec<Command>,
    /// Held longer than the limit: their waiters have given up already.
    pub expired: Vec<Command>,
}

impl ConfGate {
    /// Whether raft would silently drop a conf change proposed now.
    pub fn closed<S: Storage>(raft: &Raft<S>) -> bool {
        raft.state == StateRole::Leader && raft.has_pending_conf()
    }

    /// Whether `cmd` proposes a conf change (locally or forwarded by a follower).
    pub fn gates(cmd: &Command) -> bool {
        match cmd {
            Command::ProposeConfChange { .. } => true,
            Command::Step(m) => carries_conf_change(m),
            _ => false,
        }
    }

    pub fn hold(&mut self, now: Instant, cmd: Command) {
        tracing::debug!("conf change held until the previous one is applied");
        self.held.push_back((now, cmd));
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Everything held once the gate is open, and whatever is older than `limit`
    /// either way.
    pub fn release<S: Storage>(
        &mut self,
        raft: &Raft<S>,
        now: Instant,
        limit: Duration,
    ) -> Released {
        let mut out = Released {
            ready: Vec::new(),
            expired: Vec::new(),
        };
        if !Self::closed(raft) {
            out.ready = self.held.drain(..).map(|(_, cmd)| cmd).collect();
            return out;
        }
        while let Some((since, _)) = self.held.front() {
            if now.duration_since(*since) < limit {
                break;
            }
            if let Some((_, cmd)) = self.held.pop_front() {
                out.expired.push(cmd);
            }
        }
        out
    }

    /// Empties the gate (on shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = Command> + '_ {
        self.held.drain(..).map(|(_, cmd)| cmd)
    }
}

fn carries_conf_change(m: &Message) -> bool {
    m.get_msg_type() == MessageType::MsgPropose
        && m.get_entries().iter().any(|e| {
            matches!(
                e.get_entry_type(),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Message as _;
    use raft::prelude::{ConfChange, ConfChangeType, Entry};
    use raft::storage::MemStorage;
    use raft::RawNode;

    fn leader() -> RawNode<MemStorage> {
        let storage = MemStorage::new_with_conf_state((vec![1], vec![]));
        let cfg = raft::Config {
            id: 1,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut node = RawNode::new(&cfg, storage, &logger).expect("raw node");
        node.campaign().expect("campaign");
        persist(&mut node, true);
        assert_eq!(node.raft.state, StateRole::Leader);
        node
    }

    /// Persists every Ready; `report_applied` also tells raft the applier is done.
    fn persist(node: &mut RawNode<MemStorage>, report_applied: bool) {
        while node.has_ready() {
            let mut rd = node.ready();
            let store = node.store().clone();
            let mut wl = store.wl();
            wl.append(rd.entries()).expect("append");
            if let Some(hs) = rd.hs() {
                wl.set_hardstate(hs.clone());
            }
            drop(wl);
            rd.take_committed_entries();
            let mut light = node.advance(rd);
            light.take_committed_entries();
            if report_applied {
                node.advance_apply();
            }
        }
    }

    fn add_learner(id: u64) -> ConfChange {
        let mut cc = ConfChange::default();
        cc.set_change_type(ConfChangeType::AddLearnerNode);
        cc.node_id = id;
        cc
    }

    fn forwarded(cc: &ConfChange) -> Command {
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryConfChange);
        e.data = cc.write_to_bytes().expect("encode").into();
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = 2;
        m.to = 1;
        m.entries = vec![e].into();
        Command::Step(Box::new(m))
    }

    #[test]
    fn a_conf_change_waits_while_the_previous_one_is_unapplied() {
        let mut node = leader();
        // A fresh leader counts its log tail as a possible conf change until it has
        // applied it.
        assert!(!ConfGate::closed(&node.raft));
        node.propose_conf_change(vec![], add_learner(2))
            .expect("first");
        let index = node.raft.raft_log.last_index();
        // Committed and persisted, but not yet reported applied by the applier.
        persist(&mut node, false);
        assert!(node.raft.raft_log.committed >= index);
        assert!(
            ConfGate::closed(&node.raft),
            "raft would drop a second conf change"
        );

        let mut gate = ConfGate::default();
        let t0 = Instant::now();
        let local = Command::ProposeConfChange {
            id: 7,
            cc: add_learner(3),
        };
        assert!(ConfGate::gates(&local));
        assert!(ConfGate::gates(&forwarded(&add_learner(4))));
        assert!(!ConfGate::gates(&Command::Propose {
            id: 8,
            data: vec![]
        }));
        gate.hold(t0, local);
        gate.hold(t0, forwarded(&add_learner(4)));

        let limit = Duration::from_secs(5);
        let r = gate.release(&node.raft, t0 + Duration::from_secs(1), limit);
        assert!(r.ready.is_empty() && r.expired.is_empty());

        // The applier reports the first change applied: the gate opens, in order.
        node.advance_apply_to(index);
        assert!(!ConfGate::closed(&node.raft));
        let r = gate.release(&node.raft, t0 + Duration::from_secs(2), limit);
        assert!(r.expired.is_empty());
        assert!(gate.is_empty());
        assert!(matches!(
            r.ready[0],
            Command::ProposeConfChange { id: 7, .. }
        ));
        assert!(matches!(r.ready[1], Command::Step(_)));

        // Proposed now, raft takes it as the pending conf change instead of dropping it.
        let Command::ProposeConfChange { cc, .. } = &r.ready[0] else {
            unreachable!()
        };
        node.propose_conf_change(vec![], cc.clone())
            .expect("second");
        assert_eq!(
            node.raft.pending_conf_index,
            node.raft.raft_log.last_index()
        );
    }

    #[test]
    fn a_held_conf_change_expires_after_the_limit() {
        let mut node = leader();
        node.propose_conf_change(vec![], add_learner(2))
            .expect("first");
        assert!(ConfGate::closed(&node.raft));
        // The premise: proposed regardless, raft accepts it and logs an empty entry.
        node.propose_conf_change(vec![], add_learner(5))
            .expect("accepted");
        let last = node.raft.raft_log.last_index();
        let logged = node
            .raft
            .raft_log
            .entries(last, None, raft::GetEntriesContext::empty(false))
            .expect("entries");
        assert_eq!(logged[0].get_entry_type(), EntryType::EntryNormal);
        assert!(logged[0].data.is_empty());
        let mut gate = ConfGate::default();
        let t0 = Instant::now();
        gate.hold(
            t0,
            Command::ProposeConfChange {
                id: 1,
                cc: add_learner(3),
            },
        );
        gate.hold(t0 + Duration::from_secs(3), forwarded(&add_learner(4)));
        let r = gate.release(
            &node.raft,
            t0 + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        assert!(r.ready.is_empty());
        assert_eq!(r.expired.len(), 1);
        assert!(!gate.is_empty());
        assert_eq!(gate.drain().count(), 1);
    }
}
