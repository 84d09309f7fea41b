//! An interval tree over byte-string ranges: "which ranges contain this key?" without
//! looking at every range.
//!
//! The tree is a treap (a binary search tree ordered by `(start, end)`, heap-ordered by
//! a pseudo-random priority, so it stays balanced in expectation without rebalancing
//! code) where every node also records the largest `end` in its subtree. A stabbing
//! query for key `k` skips a whole subtree when that maximum is `<= k` and never goes
//! right of a node whose start is `> k`, so it visits O(log n + m) nodes in
//! expectation for m matches — the same bound as etcd's `adt.IntervalTree`.
//!
//! Each distinct range is one node holding a value (the watch hub stores the set of
//! watchers sharing that range), as etcd does.

use std::cmp::Ordering;

/// The exclusive upper end of a range; `Unbounded` sorts after every key (etcd's
/// `range_end == "\0"`: every key `>= start`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    Key(Vec<u8>),
    Unbounded,
}

impl End {
    /// Whether a range ending here still contains `key`.
    fn above(&self, key: &[u8]) -> bool {
        match self {
            End::Key(e) => key < e.as_slice(),
            End::Unbounded => true,
        }
    }
}

/// A range `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    pub start: Vec<u8>,
    pub end: End,
}

impl Interval {
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && self.end.above(key)
    }
}

type Link<V> = Option<Box<Node<V>>>;

struct Node<V> {
    ivl: Interval,
    value: V,
    prio: u64,
    /// The largest `end` in this subtree.
    max_end: End,
    left: Link<V>,
    right: Link<V>,
}

impl<V> Node<V> {
    fn update(&mut self) {
        let mut m = self.ivl.end.clone();
        for child in [&self.left, &self.right].into_iter().flatten() {
            if child.max_end > m {
                m = child.max_end.clone();
            }
        }
        self.max_end = m;
    }
}

/// A map from distinct intervals to values with stabbing queries.
pub struct IntervalTree<V> {
    root: Link<V>,
    len: usize,
    /// xorshift state for node priorities; deterministic, so runs are reproducible.
    rng: u64,
}

impl<V> Default for IntervalTree<V> {
    fn default() -> Self {
        IntervalTree {
            root: None,
            len: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl<V> IntervalTree<V> {
    /// Number of distinct intervals.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored for exactly `ivl`.
    pub fn get_mut(&mut self, ivl: &Interval) -> Option<&mut V> {
        let mut cur = self.root.as_deref_mut();
        while let Some(n) = cur {
            cur = match ivl.cmp(&n.ivl) {
                Ordering::Equal => return Some(&mut n.value),
                Ordering::Less => n.left.as_deref_mut(),
                Ordering::Greater => n.right.as_deref_mut(),
            };
        }
        None
    }

    /// Stores `value` for `ivl`; returns the value it replaces, if the interval was
    /// already present.
    pub fn insert(&mut self, ivl: Interval, value: V) -> Option<V> {
        if let Some(old) = self.get_mut(&ivl) {
            return Some(std::mem::replace(old, value));
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let node = Box::new(Node {
            max_end: ivl.end.clone(),
            ivl,
            value,
            prio: self.rng,
            left: None,
            right: None,
        });
        insert(&mut self.root, node);
        self.len += 1;
        None
    }

    /// Removes `ivl` and returns its value.
    pub fn remove(&mut self, ivl: &Interval) -> Option<V> {
        let v = remove(&mut self.root, ivl);
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    /// Calls `f` with the value of every interval containing `key`.
    pub fn stab<'a>(&'a self, key: &[u8], mut f: impl FnMut(&'a Interval, &'a V)) {
        stab(&self.root, key, &mut f);
    }
}

fn insert<V>(t: &mut Link<V>, mut node: Box<Node<V>>) {
    match t {
        Some(n) if node.prio <= n.prio => {
            if node.ivl < n.ivl {
                insert(&mut n.left, node);
            } else {
                insert(&mut n.right, node);
            }
            n.update();
        }
        _ => {
            let (l, r) = split(t.take(), &node.ivl);
            node.left = l;
            node.right = r;
            node.update();
            *t = Some(node);
        }
    }
}

/// Splits into intervals `< ivl` and `>= ivl`.
fn split<V>(t: Link<V>, ivl: &Interval) -> (Link<V>, Link<V>) {
    match t {
        None => (None, None),
        Some(mut n) => {
            if n.ivl < *ivl {
                let (l, r) = split(n.right.take(), ivl);
                n.right = l;
                n.update();
                (Some(n), r)
            } else {
                let (l, r) = split(n.left.take(), ivl);
                n.left = r;
                n.update();
                (l, Some(n))
            }
        }
    }
}

/// Joins two treaps where every interval of `a` sorts before every one of `b`.
fn merge<V>(a: Link<V>, b: Link<V>) -> Link<V> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(mut a), Some(mut b)) => {
            if a.prio > b.prio {
                a.right = merge(a.right.take(), Some(b));
                a.update();
                Some(a)
            } else {
                b.left = merge(Some(a), b.left.take());
                b.update();
                Some(b)
            }
        }
    }
}

fn remove<V>(t: &mut Link<V>, ivl: &Interval) -> Option<V> {
    let n = t.as_mut()?;
    let v = match ivl.cmp(&n.ivl) {
        Ordering::Less => remove(&mut n.left, ivl),
        Ordering::Greater => remove(&mut n.right, ivl),
        Ordering::Equal => {
            let mut node = t.take()?;
            *t = merge(node.left.take(), node.right.take());
            return Some(node.value);
        }
    };
    n.update();
    v
}

fn stab<'a, V>(t: &'a Link<V>, key: &[u8], f: &mut impl FnMut(&'a Interval, &'a V)) {
    let Some(n) = t else { return };
    if !n.max_end.above(key) {
        // Every range in this subtree ends at or before `key`.
        return;
    }
    stab(&n.left, key, f);
    if n.ivl.start.as_slice() > key {
        // This node and everything to its right start after `key`.
        return;
    }
    if n.ivl.end.above(key) {
        f(&n.ivl, &n.value);
    }
    stab(&n.right, key, f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ivl(s: &[u8], e: Option<&[u8]>) -> Interval {
        Interval {
            start: s.to_vec(),
            end: e.map_or(End::Unbounded, |e| End::Key(e.to_vec())),
        }
    }

    fn depth<V>(t: &Link<V>) -> usize {
        t.as_ref()
            .map_or(0, |n| 1 + depth(&n.left).max(depth(&n.right)))
    }

    #[test]
    fn stabbing_finds_exactly_the_containing_ranges() {
        let mut t = IntervalTree::default();
        t.insert(ivl(b"a", Some(b"c")), 1);
        t.insert(ivl(b"b", Some(b"d")), 2);
        t.insert(ivl(b"foo/", Some(b"foo0")), 3);
        t.insert(ivl(b"x", None), 4);
        // The same interval is the same node.
        if let Some(v) = t.get_mut(&ivl(b"a", Some(b"c"))) {
            *v += 10;
        }
        assert_eq!(t.len(), 4);
        let hits = |t: &IntervalTree<i32>, k: &[u8]| {
            let mut v = Vec::new();
            t.stab(k, |_, x| v.push(*x));
            v.sort_unstable();
            v
        };
        assert_eq!(hits(&t, b"a"), vec![11]);
        assert_eq!(hits(&t, b"b"), vec![2, 11]);
        assert_eq!(hits(&t, b"c"), vec![2]);
        assert_eq!(hits(&t, b"d"), Vec::<i32>::new());
        assert_eq!(hits(&t, b"foo/bar"), vec![3]);
        assert_eq!(hits(&t, b"zzz"), vec![4]);
        assert_eq!(t.remove(&ivl(b"b", Some(b"d"))), Some(2));
        assert_eq!(t.remove(&ivl(b"b", Some(b"d"))), None);
        assert_eq!(hits(&t, b"b"), vec![11]);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn stays_shallow_under_sorted_inserts() {
        let mut t = IntervalTree::default();
        for i in 0..10_000u32 {
            let s = format!("{i:06}").into_bytes();
            let mut e = s.clone();
            e.push(0);
            t.insert(ivl(&s, Some(&e)), i);
        }
        assert!(depth(&t.root) < 60, "depth {}", depth(&t.root));
        let mut hits = Vec::new();
        t.stab(b"004242", |_, v| hits.push(*v));
        assert_eq!(hits, vec![4242]);
    }

    proptest! {
        #[test]
        fn matches_a_linear_scan(
            ops in proptest::collection::vec(
                (any::<bool>(), 0u8..20, proptest::option::of(0u8..20)), 1..120),
            probes in proptest::collection::vec(0u8..21, 1..20),
        ) {
            let mut t = IntervalTree::default();
            let mut model: Vec<Interval> = Vec::new();
            for (add, s, e) in ops {
                let i = ivl(&[s], e.as_ref().map(std::slice::from_ref));
                if add {
                    t.insert(i.clone(), ());
                    if !model.contains(&i) {
                        model.push(i);
                    }
                } else {
                    let had = model.iter().position(|m| *m == i);
                    prop_assert_eq!(t.remove(&i).is_some(), had.is_some());
                    if let Some(p) = had {
                        model.remove(p);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
            for p in probes {
                let mut got = Vec::new();
                t.stab(&[p], |i, _| got.push(i.clone()));
                got.sort();
                let mut want: Vec<Interval> =
                    model.iter().filter(|i| i.contains(&[p])).cloned().collect();
                want.sort();
                prop_assert_eq!(got, want);
            }
        }
    }
}
