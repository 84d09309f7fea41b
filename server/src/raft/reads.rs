//! Linearizable reads on their way through raft's ReadIndex: the queue reads wait in
//! until a round starts, the rounds raft has not answered, and the request contexts
//! that tell the rounds apart.

use tokio::sync::oneshot;

use super::Error;

/// A linearizable read's answer: an index that, once applied, makes it linearizable.
pub(super) type ReadReply = oneshot::Sender<Result<u64, Error>>;

/// Reads waiting for the next ReadIndex round, shared by every handle and the raft
/// task. Concurrent reads share a round, as etcd's `linearizableReadLoop` has them
/// share one: only the read that finds the queue empty sends
/// [`super::Command::ReadIndex`], and the raft task takes the whole queue when it handles
/// that command, before it asks raft for the index. Every read taken was queued
/// before the round started, which is what makes the index safe for it. Sending one
/// command (and one wake-up of the raft thread) per read cost ~10 % of server CPU
/// under 200-client linearizable ranges.
#[derive(Default)]
pub(super) struct ReadQueue(parking_lot::Mutex<Vec<ReadReply>>);

impl ReadQueue {
    /// Queues a read; true if it is the first of a new round.
    pub(super) fn push(&self, reply: ReadReply) -> bool {
        let mut q = self.0.lock();
        q.push(reply);
        q.len() == 1
    }

    pub(super) fn take(&self) -> Vec<ReadReply> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// A ReadIndex round raft has not answered yet.
pub(super) struct PendingRead {
    pub(super) replies: Vec<ReadReply>,
    pub(super) ticks: usize,
}

/// A ReadIndex request context: the member id, then a per-member counter. The leader
/// keys pending reads by context and ignores a context it already holds, so contexts
/// must differ across members, not only within one.
pub(super) fn read_ctx(member: u64, seq: u64) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(16);
    ctx.extend_from_slice(&member.to_be_bytes());
    ctx.extend_from_slice(&seq.to_be_bytes());
    ctx
}

/// The counter of a context made by [`read_ctx`] for `member`.
pub(super) fn read_seq(member: u64, ctx: &[u8]) -> Option<u64> {
    let (id, seq) = ctx.split_at_checked(8)?;
    if u64::from_be_bytes(id.try_into().ok()?) != member {
        return None;
    }
    Some(u64::from_be_bytes(seq.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_read_of_a_round_asks_for_one() {
        let q = ReadQueue::default();
        let (a, mut ra) = oneshot::channel();
        let (b, mut rb) = oneshot::channel();
        assert!(q.push(a), "the first read starts a round");
        assert!(!q.push(b), "the second joins it");
        let round = q.take();
        assert_eq!(round.len(), 2);
        let (c, _rc) = oneshot::channel();
        assert!(
            q.push(c),
            "a read after the round was taken starts the next"
        );
        for reply in round {
            let _ = reply.send(Ok(7));
        }
        assert_eq!(ra.try_recv().ok().and_then(Result::ok), Some(7));
        assert_eq!(rb.try_recv().ok().and_then(Result::ok), Some(7));
    }

    #[test]
    fn read_contexts_differ_across_members_and_are_recognised_only_by_their_own() {
        let a = read_ctx(0xa, 1);
        let b = read_ctx(0xb, 1);
        assert_ne!(a, b, "the leader would drop one of two equal contexts");
        assert_eq!(read_seq(0xa, &a), Some(1));
        assert_eq!(read_seq(0xb, &a), None);
        assert_eq!(read_seq(0xa, &a[..8]), None);
        assert_eq!(read_seq(0xa, b"short"), None);
    }
}
