//! A set of watchers indexed by what they watch (etcd's `watcher_group.go`).
//!
//! Single-key watchers sit in a hash map keyed by the key; range watchers in an
//! [`IntervalTree`] keyed by the range, watchers with the same range sharing one node.
//! Finding the watchers of an event's key is then one hash lookup plus one stabbing
//! query, whatever the number of watchers that do *not* match.

use std::collections::{HashMap, HashSet};

use super::interval::{End, Interval, IntervalTree};
use super::Error;

/// A watcher's identity inside the hub (unique across streams).
pub type WatcherId = u64;

/// What a watcher watches, with etcd's `key` / `range_end` conventions resolved.
/// A range is boxed: inline, its two keys would make every watcher 16 bytes larger,
/// single-key watchers included.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WatchRange {
    Key(Vec<u8>),
    Range(Box<Interval>),
}

impl WatchRange {
    /// etcd's rules: an empty key means `"\0"` (the smallest key), an empty `range_end`
    /// a single key, `"\0"` every key `>= key`; any other `range_end` must sort after
    /// `key` ("mvcc: watcher range is empty" otherwise).
    pub fn new(key: &[u8], range_end: &[u8]) -> Result<WatchRange, Error> {
        let key = if key.is_empty() {
            vec![0]
        } else {
            key.to_vec()
        };
        match range_end {
            [] => Ok(WatchRange::Key(key)),
            [0] => Ok(WatchRange::Range(Box::new(Interval {
                start: key,
                end: End::Unbounded,
            }))),
            end if end <= key.as_slice() => Err(Error::EmptyRange),
            end => Ok(WatchRange::Range(Box::new(Interval {
                start: key,
                end: End::Key(end.to_vec()),
            }))),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            WatchRange::Key(k) => k.as_slice() == key,
            WatchRange::Range(i) => i.contains(key),
        }
    }
}

/// Watchers indexed by key and by range.
#[derive(Default)]
pub struct WatcherGroup {
    keys: HashMap<Vec<u8>, HashSet<WatcherId>>,
    ranges: IntervalTree<HashSet<WatcherId>>,
    len: usize,
}

impl WatcherGroup {
    /// Number of watchers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn add(&mut self, id: WatcherId, range: &WatchRange) {
        let added = match range {
            WatchRange::Key(k) => self.keys.entry(k.clone()).or_default().insert(id),
            WatchRange::Range(ivl) => match self.ranges.get_mut(ivl) {
                Some(set) => set.insert(id),
                None => {
                    self.ranges
                        .insert(Interval::clone(ivl), HashSet::from([id]));
                    true
                }
            },
        };
        if added {
            self.len += 1;
        }
    }

    /// Removes a watcher; `false` if it was not in the group.
    pub fn remove(&mut self, id: WatcherId, range: &WatchRange) -> bool {
        let removed = match range {
            WatchRange::Key(k) => match self.keys.get_mut(k) {
                Some(set) => {
                    let removed = set.remove(&id);
                    if set.is_empty() {
                        self.keys.remove(k);
                    }
                    removed
                }
                None => false,
            },
            WatchRange::Range(ivl) => match self.ranges.get_mut(ivl) {
                Some(set) => {
                    let removed = set.remove(&id);
                    if set.is_empty() {
                        self.ranges.remove(ivl);
                    }
                    removed
                }
                None => false,
            },
        };
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` for every watcher whose key or range contains `key`.
    pub fn matching(&self, key: &[u8], mut f: impl FnMut(WatcherId)) {
        if let Some(set) = self.keys.get(key) {
            set.iter().copied().for_each(&mut f);
        }
        self.ranges
            .stab(key, |_, set| set.iter().copied().for_each(&mut f));
    }

    /// Whether any watcher watches `key`.
    pub fn watches(&self, key: &[u8]) -> bool {
        if self.keys.contains_key(key) {
            return true;
        }
        let mut any = false;
        self.ranges.stab(key, |_, _| any = true);
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(g: &WatcherGroup, key: &[u8]) -> Vec<WatcherId> {
        let mut v = Vec::new();
        g.matching(key, |id| v.push(id));
        v.sort_unstable();
        v
    }

    #[test]
    fn etcd_range_conventions() {
        assert_eq!(
            WatchRange::new(b"", b"").expect("ok"),
            WatchRange::Key(vec![0])
        );
        let from = WatchRange::new(b"b", b"\0").expect("ok");
        assert!(from.contains(b"zzz") && !from.contains(b"a"));
        assert!(matches!(
            WatchRange::new(b"b", b"a"),
            Err(Error::EmptyRange)
        ));
        assert!(matches!(
            WatchRange::new(b"b", b"b"),
            Err(Error::EmptyRange)
        ));
        let all = WatchRange::new(b"", b"\0").expect("ok");
        assert!(all.contains(b"\0") && all.contains(b"anything"));
    }

    #[test]
    fn lookup_by_key_and_by_range() {
        let mut g = WatcherGroup::default();
        let foo = WatchRange::new(b"foo", b"").expect("ok");
        let prefix = WatchRange::new(b"foo", b"fop").expect("ok");
        let from = WatchRange::new(b"m", b"\0").expect("ok");
        g.add(1, &foo);
        g.add(2, &foo);
        g.add(3, &prefix);
        g.add(4, &prefix);
        g.add(5, &from);
        assert_eq!(g.len(), 5);
        assert_eq!(ids(&g, b"foo"), vec![1, 2, 3, 4]);
        assert_eq!(ids(&g, b"foo/bar"), vec![3, 4]);
        assert_eq!(ids(&g, b"fop"), Vec::<WatcherId>::new());
        assert_eq!(ids(&g, b"n"), vec![5]);
        assert_eq!(ids(&g, b"a"), Vec::<WatcherId>::new());
        assert!(g.watches(b"foo/x") && !g.watches(b"a"));
        assert!(g.remove(3, &prefix));
        assert!(!g.remove(3, &prefix));
        assert!(g.remove(1, &foo));
        assert_eq!(ids(&g, b"foo"), vec![2, 4]);
        assert!(g.remove(4, &prefix) && g.remove(2, &foo) && g.remove(5, &from));
        assert!(g.is_empty());
        assert!(!g.watches(b"foo"));
    }

    #[test]
    fn many_ranges_only_matching_ones_are_visited() {
        let mut g = WatcherGroup::default();
        for i in 0..10_000u64 {
            let start = format!("r/{i:05}/").into_bytes();
            let end = format!("r/{i:05}0").into_bytes();
            g.add(i, &WatchRange::new(&start, &end).expect("ok"));
        }
        g.add(99_999, &WatchRange::new(b"r/", b"r0").expect("ok"));
        assert_eq!(ids(&g, b"r/04242/x"), vec![4242, 99_999]);
        assert_eq!(ids(&g, b"s"), Vec::<WatcherId>::new());
    }
}
