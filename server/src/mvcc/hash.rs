//! etcd's `HashKV`: one number summing up the keyspace's history up to a revision, so
//! that members can be compared (`etcdctl endpoint hashkv`).
//!
//! Which versions it covers is etcd's rule, so that it does not depend on how far the
//! background compactor has got: every version with a revision in (C, R], where C is
//! the compaction revision and R the requested one, plus, for each key, the version
//! compaction at C keeps — its newest at or below C, unless that is a deletion.
//! Members that applied the same log therefore agree whatever their compactors did.
//!
//! The number itself is revkv's: a CRC-32 over each covered version's stored key and
//! record, in key order. etcd hashes its own bbolt encoding, so a revkv member's hash is
//! comparable with other revkv members', not with etcd's.

use rocksdb::ReadOptions;

use super::store::resolve_read_rev;
use super::{Error, KvStore, Result};
use crate::storage::keys::{self, Revision};
use crate::storage::CF_KEY;

/// A [`KvStore::hash_kv`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    /// The compaction revision the hash was taken under.
    pub compact_rev: i64,
    /// The revision hashed up to (the current one when 0 was asked for).
    pub rev: i64,
}

impl KvStore {
    /// Hashes the history up to `rev` (0: the current revision); fails like a read at
    /// `rev` when it is compacted or in the future.
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash> {
        let (current, snapshot) = self.pin();
        let compact_rev = self.compact_rev();
        let rev = resolve_read_rev(rev, current, compact_rev)?;
        let storage = self.storage();
        let opts = keys::total_order(ReadOptions::default());
        let mut it = snapshot.raw_iterator_cf_opt(storage.cf(CF_KEY), opts);
        it.seek_to_first();
        let mut hasher = crc32fast::Hasher::new();
        // The user key whose versions at or below the compaction revision are being
        // walked, and whether its newest one there was already seen.
        let mut seen_at_compaction: Option<Vec<u8>> = None;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (key, version) = keys::decode_version_key(k)
                .ok_or_else(|| Error::Corrupt("bad version key".into()))?;
            if covered(&key, version, rev, compact_rev, v, &mut seen_at_compaction) {
                hasher.update(k);
                hasher.update(v);
            }
            it.next();
        }
        it.status()?;
        Ok(KvHash {
            hash: hasher.finalize(),
            compact_rev,
            rev,
        })
    }
}

/// Whether one version (visited newest first within its key) counts, by the rule in the
/// module docs.
fn covered(
    key: &[u8],
    version: Revision,
    rev: i64,
    compact_rev: i64,
    record: &[u8],
    seen_at_compaction: &mut Option<Vec<u8>>,
) -> bool {
    if version.main > rev {
        return false;
    }
    if version.main > compact_rev {
        return true;
    }
    if seen_at_compaction.as_deref() == Some(key) {
        return false; // older than the version compaction keeps
    }
    *seen_at_compaction = Some(key.to_vec());
    !super::record::KeyRecord::is_tombstone(record)
}
