use raft::prelude::{Entry, Message, MessageType};

use super::merge;

const TERM: u64 = 3;

/// An append to `to` of entries `first..=last` (all of `TERM`), following `first - 1`.
fn append(to: u64, first: u64, last: u64, commit: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.to = to;
    m.term = TERM;
    m.index = first - 1;
    m.log_term = TERM;
    m.commit = commit;
    for index in first..=last {
        m.mut_entries().push(Entry {
            index,
            term: TERM,
            data: vec![0u8; 100].into(),
            ..Default::default()
        });
    }
    m
}

fn heartbeat(to: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.to = to;
    m.term = TERM;
    m
}

/// (to, type, first entry index, last entry index, commit) of each message.
fn shape(msgs: &[Message]) -> Vec<(u64, MessageType, u64, u64, u64)> {
    msgs.iter()
        .map(|m| {
            let first = m.entries.first().map_or(0, |e| e.index);
            let last = m.entries.last().map_or(0, |e| e.index);
            (m.to, m.get_msg_type(), first, last, m.commit)
        })
        .collect()
}

const APP: MessageType = MessageType::MsgAppend;

#[test]
fn each_followers_run_of_appends_becomes_one_message() {
    let msgs = vec![
        append(2, 5, 5, 4),
        append(3, 5, 5, 4),
        append(2, 6, 6, 4),
        append(3, 6, 6, 5),
        append(2, 7, 9, 5),
    ];
    assert_eq!(
        shape(&merge(msgs, 1 << 20)),
        vec![(2, APP, 5, 9, 5), (3, APP, 5, 6, 5)]
    );
}

#[test]
fn an_append_without_entries_takes_the_entries_that_follow_it() {
    // raft's commit-only append at the follower's last index, then new entries.
    let mut empty = append(2, 5, 4, 3);
    empty.index = 4;
    let msgs = vec![empty, append(2, 5, 6, 4)];
    assert_eq!(shape(&merge(msgs, 1 << 20)), vec![(2, APP, 5, 6, 4)]);
}

#[test]
fn other_messages_to_the_same_follower_keep_their_place() {
    let msgs = vec![
        append(2, 5, 5, 4),
        heartbeat(2),
        append(2, 6, 6, 4),
        heartbeat(3),
        append(2, 7, 7, 4),
    ];
    assert_eq!(
        shape(&merge(msgs, 1 << 20)),
        vec![
            (2, APP, 5, 5, 4),
            (2, MessageType::MsgHeartbeat, 0, 0, 0),
            (2, APP, 6, 7, 4),
            (3, MessageType::MsgHeartbeat, 0, 0, 0),
        ]
    );
}

#[test]
fn appends_that_do_not_continue_each_other_stay_apart() {
    // A gap, a rewind (raft probing back after a rejection), and another term.
    let mut other_term = append(2, 9, 9, 4);
    other_term.term = TERM + 1;
    let msgs = vec![
        append(2, 5, 5, 4),
        append(2, 7, 7, 4),
        append(2, 3, 3, 4),
        append(2, 4, 4, 4),
        other_term,
    ];
    assert_eq!(
        shape(&merge(msgs, 1 << 20)),
        vec![
            (2, APP, 5, 5, 4),
            (2, APP, 7, 7, 4),
            (2, APP, 3, 4, 4),
            (2, APP, 9, 9, 4),
        ]
    );
}

#[test]
fn a_merged_append_stays_within_the_size_limit() {
    let one = super::entries_size(&append(2, 5, 5, 4));
    let msgs = (5..15).map(|i| append(2, i, i, 4)).collect();
    let merged = merge(msgs, 4 * one);
    assert_eq!(
        shape(&merged),
        vec![(2, APP, 5, 8, 4), (2, APP, 9, 12, 4), (2, APP, 13, 14, 4)]
    );
    assert!(merged.iter().all(|m| super::entries_size(m) <= 4 * one));
    // Each part still follows the one before it.
    assert_eq!((merged[1].index, merged[2].index), (8, 12));
}
