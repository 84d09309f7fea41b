//! The events of the hub's most recent notifications, for the catch-up handover.
//!
//! A catch-up read ends at some revision R while apply may already have notified
//! batches up to N > R. Replaying (R, N] from memory lets the watcher become synced at
//! once instead of racing apply with another disk read. Entries are contiguous: each
//! covers `(after, rev]`, and the next one starts where it ends, so "covers (R, N]" is a
//! check of the oldest entry. The events are the `Arc`s already sent to synced
//! watchers, so keeping them costs a reference each.

use std::collections::VecDeque;
use std::sync::Arc;

use revkv_proto::mvccpb::Event;

struct Entry {
    /// The revision notified before this batch: the entry covers `(after, rev]`.
    after: i64,
    rev: i64,
    events: Vec<Arc<Event>>,
}

pub(super) struct Recent {
    entries: VecDeque<Entry>,
    events: usize,
    max_events: usize,
}

impl Recent {
    pub(super) fn new(max_events: usize) -> Self {
        Recent {
            entries: VecDeque::new(),
            events: 0,
            max_events,
        }
    }

    /// Records the batch that moved the notified revision from `after` to `rev`.
    pub(super) fn push(&mut self, after: i64, rev: i64, events: &[Arc<Event>]) {
        if events.len() > self.max_events {
            // Too large to keep: nothing older is contiguous with what follows either.
            self.entries.clear();
            self.events = 0;
            return;
        }
        self.entries.push_back(Entry {
            after,
            rev,
            events: events.to_vec(),
        });
        self.events += events.len();
        while self.events > self.max_events {
            match self.entries.pop_front() {
                Some(e) => self.events -= e.events.len(),
                None => break,
            }
        }
    }

    /// The events of revisions `(after, upto]`, or `None` when they are no longer all
    /// kept. `upto` must be the notified revision.
    pub(super) fn since(&self, after: i64, upto: i64) -> Option<impl Iterator<Item = &Arc<Event>>> {
        let covered = after >= upto
            || matches!(
                (self.entries.front(), self.entries.back()),
                (Some(front), Some(back)) if front.after <= after && back.rev == upto
            );
        if !covered {
            return None;
        }
        Some(
            self.entries
                .iter()
                .filter(move |e| e.rev > after)
                .flat_map(|e| e.events.iter())
                .filter(move |ev| ev.kv.as_ref().is_some_and(|kv| kv.mod_revision > after)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revkv_proto::mvccpb::KeyValue;

    fn ev(rev: i64) -> Arc<Event> {
        Arc::new(Event {
            kv: Some(KeyValue {
                mod_revision: rev,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn revs(r: &Recent, after: i64, upto: i64) -> Option<Vec<i64>> {
        r.since(after, upto).map(|it| {
            it.map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision))
                .collect()
        })
    }

    #[test]
    fn covers_only_contiguous_kept_history() {
        let mut r = Recent::new(4);
        r.push(1, 3, &[ev(2), ev(3)]);
        r.push(3, 4, &[ev(4)]);
        assert_eq!(revs(&r, 1, 4), Some(vec![2, 3, 4]));
        assert_eq!(revs(&r, 2, 4), Some(vec![3, 4]));
        assert_eq!(revs(&r, 4, 4), Some(vec![]));
        assert_eq!(revs(&r, 0, 4), None, "revision 1 was never kept");
        assert_eq!(revs(&r, 2, 5), None, "not the notified revision");
        r.push(4, 6, &[ev(5), ev(6)]); // evicts the first entry
        assert_eq!(revs(&r, 2, 6), None);
        assert_eq!(revs(&r, 3, 6), Some(vec![4, 5, 6]));
        r.push(6, 7, &[ev(7), ev(7), ev(7), ev(7), ev(7)]); // larger than the whole ring
        assert_eq!(revs(&r, 6, 7), None);
        r.push(7, 8, &[ev(8)]);
        assert_eq!(revs(&r, 7, 8), Some(vec![8]));
    }
}
