//! Forward scans over the `key` column family at a revision.

use std::cmp::Ordering;

use rocksdb::{DBRawIteratorWithThreadMode, ReadOptions, DB};

use super::record::KeyRecord;
use super::{Error, Result};
use crate::storage::keys::{self, Revision, REVISION_LEN};
use crate::storage::{Storage, CF_KEY};

/// etcd's key/range_end convention, resolved once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// `range_end` empty: exactly `key`.
    Single(Vec<u8>),
    /// `[start, end)`; `end == None` means no upper bound (`range_end == "\0"`).
    Span {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Span {
                start: key.to_vec(),
                end: None,
            },
            end => KeyRange::Span {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Single(key) => key.as_slice() == k,
            KeyRange::Span { start, end } => {
                k >= start.as_slice() && end.as_ref().is_none_or(|e| k < e.as_slice())
            }
        }
    }

    fn start(&self) -> &[u8] {
        match self {
            KeyRange::Single(k) => k,
            KeyRange::Span { start, .. } => start,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, KeyRange::Span { start, end: Some(end) } if end <= start)
    }
}

/// One version of one key, as found by a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub key: Vec<u8>,
    pub rev: Revision,
    pub record: KeyRecord,
}

/// Yields, for every key in a [`KeyRange`] in key order, the newest version with
/// `mod_revision <= rev` — tombstones included, so that callers merging several sources
/// can let a newer tombstone hide an older value.
pub struct VersionScan<'a> {
    it: DBRawIteratorWithThreadMode<'a, DB>,
    rev: i64,
    with_values: bool,
    done: bool,
}

/// How many `next()` calls to try before seeking past a key's older versions: most keys
/// have few versions, and a step is much cheaper than a seek.
const STEPS_BEFORE_SEEK: usize = 3;

impl<'a> VersionScan<'a> {
    /// Scans `range` as of revision `rev`. With `with_values == false` the records carry
    /// everything but the value (enough for counting, keys-only reads and deletes).
    /// `snapshot` pins the view when given.
    pub fn new(
        storage: &'a Storage,
        snapshot: Option<&'a rocksdb::Snapshot<'a>>,
        range: &KeyRange,
        rev: i64,
        with_values: bool,
    ) -> Self {
        let mut opts = ReadOptions::default();
        match range {
            KeyRange::Single(k) => opts.set_iterate_upper_bound(keys::after_all_versions(k)),
            KeyRange::Span { end: Some(e), .. } => {
                opts.set_iterate_upper_bound(keys::encode_user_key(e))
            }
            KeyRange::Span { end: None, .. } => {}
        }
        if matches!(range, KeyRange::Span { .. }) {
            opts = keys::total_order(opts);
        }
        let cf = storage.cf(CF_KEY);
        let mut it = match snapshot {
            Some(s) => s.raw_iterator_cf_opt(cf, opts),
            None => storage.db().raw_iterator_cf_opt(cf, opts),
        };
        let done = range.is_empty();
        if !done {
            it.seek(keys::version_key(
                range.start(),
                Revision::new(rev, i64::MAX),
            ));
        }
        VersionScan {
            it,
            rev,
            with_values,
            done,
        }
    }

    /// Moves past every remaining version of the key whose encoded prefix is `prefix`.
    fn skip_key(&mut self, prefix: &[u8]) {
        for _ in 0..STEPS_BEFORE_SEEK {
            self.it.next();
            match self.it.key() {
                Some(k) if k.len() > REVISION_LEN && &k[..k.len() - REVISION_LEN] == prefix => {}
                _ => return,
            }
        }
        let mut target = prefix.to_vec();
        target.extend_from_slice(&[0xFF; REVISION_LEN]);
        self.it.seek(&target);
    }

    fn step(&mut self) -> Result<Option<Version>> {
        loop {
            let Some(raw) = self.it.key() else {
                self.it.status()?;
                return Ok(None);
            };
            let (key, rev) = keys::decode_version_key(raw)
                .ok_or_else(|| Error::Corrupt("undecodable key in key CF".into()))?;
            let prefix = raw[..raw.len() - REVISION_LEN].to_vec();
            if rev.main > self.rev {
                // Newer than the read revision: jump to this key's newest version <= rev.
                let mut target = prefix;
                target.extend_from_slice(&Revision::new(self.rev, i64::MAX).to_inverted_bytes());
                self.it.seek(&target);
                continue;
            }
            let value = self.it.value().unwrap_or_default();
            let record = if self.with_values {
                KeyRecord::decode(value)?
            } else {
                KeyRecord::decode_meta(value)?
            };
            self.skip_key(&prefix);
            return Ok(Some(Version { key, rev, record }));
        }
    }
}

impl Iterator for VersionScan<'_> {
    type Item = Result<Version>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(v)) => Some(Ok(v)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Merges two key-ordered version streams; on equal keys `newer` wins.
pub fn merge_newer<A, B>(older: A, newer: B) -> impl Iterator<Item = Result<Version>>
where
    A: Iterator<Item = Result<Version>>,
    B: Iterator<Item = Version>,
{
    let mut older = older.peekable();
    let mut newer = newer.peekable();
    std::iter::from_fn(move || {
        let ord = match (older.peek(), newer.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) => return older.next(),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(Ok(a)), Some(b)) => a.key.cmp(&b.key),
        };
        match ord {
            Ordering::Less => older.next(),
            Ordering::Greater => newer.next().map(Ok),
            Ordering::Equal => {
                older.next();
                newer.next().map(Ok)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_range_conventions() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a".to_vec()));
        let from = KeyRange::new(b"a", b"\0");
        assert!(from.contains(b"zzz") && !from.contains(b"\x01"));
        let span = KeyRange::new(b"a", b"c");
        assert!(span.contains(b"b") && !span.contains(b"c"));
        assert!(KeyRange::new(b"c", b"a").is_empty());
    }
}
