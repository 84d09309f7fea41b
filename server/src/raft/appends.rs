//! Merging the appends a leader queues for one follower within a Ready.
//!
//! raft-rs answers each proposal a leader takes with an append of that one entry to
//! every follower it is replicating to, so a raft turn that took N proposals queues N
//! appends per follower — N messages through the peer transport and N replies back.
//! [`merge`] folds each follower's run of appends into as few messages as the size
//! limit allows.
//!
//! An append is merged into the previous message to the same follower only when that
//! message is an append too (nothing else to that follower in between, so each
//! follower still sees its messages in raft's order), the new entries continue where
//! the previous ones end (index and term), both were sent in the same term, and the
//! entries together stay within `max_bytes` (raft's own `max_size_per_msg`; raft-rs's
//! `batch_append` merges with no limit at all, so many large proposals in one turn
//! could outgrow the peer transport's message limit). The merged message carries the
//! later commit index.
//!
//! Raft's flow control is unaffected: the leader counted one in-flight append per
//! original message, and the follower's single reply (for the last index) frees them
//! all.

use protobuf::Message as _;
use raft::prelude::{Message, MessageType};

/// `msgs` with each follower's contiguous appends merged, otherwise in order.
pub fn merge(msgs: Vec<Message>, max_bytes: u64) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(msgs.len());
    // Per follower: where in `out` its last message is, if that is an append that may
    // still grow, and the size of its entries. A handful of followers: a Vec is enough.
    let mut open: Vec<(u64, usize, u64)> = Vec::new();
    for mut m in msgs {
        let slot = open.iter().position(|&(to, _, _)| to == m.to);
        if m.get_msg_type() != MessageType::MsgAppend {
            if let Some(i) = slot {
                open.swap_remove(i);
            }
            out.push(m);
            continue;
        }
        let size = entries_size(&m);
        if let Some(i) = slot {
            let (_, at, bytes) = open[i];
            let prev = &mut out[at];
            if continues(prev, &m) && bytes + size <= max_bytes {
                prev.commit = prev.commit.max(m.commit);
                for e in m.take_entries() {
                    prev.mut_entries().push(e);
                }
                open[i].2 = bytes + size;
                continue;
            }
            open[i] = (m.to, out.len(), size);
        } else {
            open.push((m.to, out.len(), size));
        }
        out.push(m);
    }
    out
}

/// Whether `next` is an append that picks up exactly where `prev` ends.
fn continues(prev: &Message, next: &Message) -> bool {
    let (last_index, last_term) = match prev.entries.last() {
        Some(e) => (e.index, e.term),
        None => (prev.index, prev.log_term),
    };
    prev.term == next.term && next.index == last_index && next.log_term == last_term
}

fn entries_size(m: &Message) -> u64 {
    m.entries.iter().map(|e| u64::from(e.compute_size())).sum()
}

#[cfg(test)]
mod tests;
