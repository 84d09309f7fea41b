//! A linearizability checker for histories of puts and gets on single keys, in the
//! style of Wing & Gong with Lowe's memoisation, partitioned per key (each key is an
//! independent register, so a history is linearizable when every key's is).
//!
//! A history is what concurrent clients saw: each operation with the time it was
//! called and the time its response arrived. It is linearizable when the operations
//! can be put in one order that respects real time (an operation that returned before
//! another was called comes first) in which every get returns the value of the latest
//! put before it (or nothing before any put).
//!
//! An operation whose outcome the client never learned (a put that timed out, or
//! failed because its member died) may have taken effect at any time after its call,
//! or never: it is given no return time and may be left out. A get without a result
//! constrains nothing and is not part of the history.

use std::collections::{BTreeMap, HashSet};

/// What an operation did to, or saw in, its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Set the value.
    Put(String),
    /// Read the value (`None`: the key did not exist).
    Get(Option<String>),
}

/// One operation as a client saw it. Times are in any one clock's units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// When the client sent it.
    pub call: u64,
    /// When the answer arrived; `None` when it never did (outcome unknown).
    pub ret: Option<u64>,
    /// What it did.
    pub action: Action,
}

/// Checks a history of operations on many keys: `Err` names the first key whose
/// operations cannot be linearized, with its history.
///
/// # Errors
/// When some key's history is not linearizable.
pub fn check(history: &[(String, Op)]) -> Result<(), String> {
    let mut per_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for (key, op) in history {
        per_key.entry(key).or_default().push(op.clone());
    }
    for (key, ops) in per_key {
        if !check_register(&ops) {
            let mut ops = ops;
            ops.sort_by_key(|o| o.call);
            let lines: Vec<String> = ops.iter().map(|o| format!("  {o:?}")).collect();
            return Err(format!(
                "the history of {key:?} is not linearizable:\n{}",
                lines.join("\n")
            ));
        }
    }
    Ok(())
}

/// Whether one key's operations (starting from an absent key) are linearizable.
pub fn check_register(ops: &[Op]) -> bool {
    // Gets without a result are not part of a history (see the module doc). A put of
    // unknown outcome whose value no get saw can always be taken as never having
    // happened (nothing read it, so nothing needs it; and no order needs a value
    // nobody read), so it is left out rather than searched both ways.
    let read: HashSet<&String> = ops
        .iter()
        .filter_map(|o| match &o.action {
            Action::Get(Some(v)) if o.ret.is_some() => Some(v),
            _ => None,
        })
        .collect();
    let ops: Vec<&Op> = ops
        .iter()
        .filter(|o| match &o.action {
            Action::Get(_) => o.ret.is_some(),
            Action::Put(v) => o.ret.is_some() || read.contains(v),
        })
        .collect();
    let mut search = Search {
        ops: &ops,
        done: vec![0; ops.len().div_ceil(64)],
        seen: HashSet::new(),
    };
    search.run()
}

/// The depth-first search over linearization orders, remembering each (set of
/// linearized operations, register value) it has already explored. Iterative: a
/// history of thousands of operations is as deep.
struct Search<'a> {
    ops: &'a [&'a Op],
    done: Vec<u64>,
    seen: HashSet<(Vec<u64>, Option<String>)>,
}

/// One step of the search: the register's value so far, the operations that may come
/// next, how many of them were tried, and the operation that led here.
struct Frame {
    value: Option<String>,
    candidates: Vec<usize>,
    tried: usize,
    by: Option<usize>,
}

impl Search<'_> {
    fn is_done(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.done[i / 64] ^= 1 << (i % 64);
    }

    /// The operations that may be linearized next, or `None` when none is needed: only
    /// operations of unknown outcome are left, and they may never have happened.
    fn candidates(&self) -> Option<Vec<usize>> {
        let pending: Vec<usize> = (0..self.ops.len()).filter(|&i| !self.is_done(i)).collect();
        if pending.iter().all(|&i| self.ops[i].ret.is_none()) {
            return None;
        }
        // The next one must have been called before every pending one returned.
        let first_return = pending
            .iter()
            .filter_map(|&i| self.ops[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        Some(
            pending
                .into_iter()
                .filter(|&i| self.ops[i].call <= first_return)
                .collect(),
        )
    }

    fn run(&mut self) -> bool {
        let Some(candidates) = self.candidates() else {
            return true;
        };
        let mut stack = vec![Frame {
            value: None,
            candidates,
            tried: 0,
            by: None,
        }];
        while let Some(top) = stack.last_mut() {
            let Some(&i) = top.candidates.get(top.tried) else {
                if let Some(by) = top.by {
                    self.flip(by);
                }
                stack.pop();
                continue;
            };
            top.tried += 1;
            let next = match &self.ops[i].action {
                Action::Put(v) => Some(v.clone()),
                Action::Get(seen) if *seen == top.value => top.value.clone(),
                Action::Get(_) => continue,
            };
            self.flip(i);
            if !self.seen.insert((self.done.clone(), next.clone())) {
                self.flip(i);
                continue;
            }
            match self.candidates() {
                None => return true,
                Some(candidates) => stack.push(Frame {
                    value: next,
                    candidates,
                    tried: 0,
                    by: Some(i),
                }),
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &str, call: u64, ret: Option<u64>) -> Op {
        Op {
            call,
            ret,
            action: Action::Put(v.to_owned()),
        }
    }

    fn get(v: Option<&str>, call: u64, ret: u64) -> Op {
        Op {
            call,
            ret: Some(ret),
            action: Action::Get(v.map(str::to_owned)),
        }
    }

    #[test]
    fn a_sequential_history_that_reads_its_writes_is_linearizable() {
        assert!(check_register(&[
            get(None, 0, 1),
            put("a", 2, Some(3)),
            get(Some("a"), 4, 5),
            put("b", 6, Some(7)),
            get(Some("b"), 8, 9),
        ]));
    }

    #[test]
    fn a_stale_read_is_not() {
        assert!(!check_register(&[
            put("a", 0, Some(10)),
            put("b", 20, Some(30)),
            get(Some("a"), 40, 50),
        ]));
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // The put overlaps both reads: it can fall between them...
        assert!(check_register(&[
            put("a", 0, Some(100)),
            get(None, 10, 20),
            get(Some("a"), 30, 40),
        ]));
        // ...but once one read saw it, a later read cannot miss it.
        assert!(!check_register(&[
            put("a", 0, Some(100)),
            get(Some("a"), 10, 20),
            get(None, 30, 40),
        ]));
        // Two overlapping puts: readers may see them in one order only.
        assert!(check_register(&[
            put("a", 0, Some(100)),
            put("b", 0, Some(100)),
            get(Some("b"), 10, 20),
            get(Some("a"), 30, 40),
        ]));
        assert!(!check_register(&[
            put("a", 0, Some(100)),
            put("b", 0, Some(100)),
            get(Some("b"), 10, 20),
            get(Some("a"), 30, 40),
            get(Some("b"), 50, 60),
        ]));
    }

    #[test]
    fn a_put_of_unknown_outcome_may_happen_late_or_never() {
        assert!(check_register(&[put("x", 0, None), get(None, 10, 20)]));
        assert!(check_register(&[
            put("x", 0, None),
            get(None, 10, 20),
            get(Some("x"), 1_000, 1_010),
        ]));
        assert!(!check_register(&[
            put("x", 0, None),
            get(Some("x"), 10, 20),
            get(None, 30, 40),
        ]));
        // Nothing can read a value no put wrote.
        assert!(!check_register(&[get(Some("y"), 0, 1)]));
    }

    #[test]
    fn keys_are_checked_apart_and_the_culprit_is_named() {
        let h = vec![
            ("k1".to_owned(), put("a", 0, Some(1))),
            ("k2".to_owned(), put("b", 0, Some(1))),
            ("k1".to_owned(), get(Some("a"), 2, 3)),
            ("k2".to_owned(), get(None, 2, 3)),
        ];
        let e = check(&h).expect_err("k2 reads nothing after its put returned");
        assert!(e.contains("\"k2\""), "{e}");
        assert!(check(&h[..3]).is_ok());
    }
}
