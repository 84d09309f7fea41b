//! The store handle: revision bookkeeping and snapshot reads.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use revkv_proto::mvccpb::KeyValue;

use super::scan::{KeyRange, Version, VersionScan};
use super::{Error, Result};
use crate::storage::{meta, Storage};

/// Options of a range read at the MVCC level (sorting and filtering live above it).
#[derive(Clone, Copy, Debug, Default)]
pub struct RangeOptions {
    /// Return at most this many key-values; 0 means no limit. `count` ignores it.
    pub limit: usize,
    /// Read as of this revision; 0 means the current revision.
    pub rev: i64,
    /// Only count: `kvs` stays empty.
    pub count_only: bool,
    /// Key-values without their values: the scan then never copies a value out.
    pub keys_only: bool,
}

impl RangeOptions {
    /// Whether the scan has to decode values.
    pub(super) fn with_values(&self) -> bool {
        !(self.count_only || self.keys_only)
    }
}

/// The result of a range read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Live keys in the range at the read revision, regardless of `limit`.
    pub count: i64,
    /// The store's current revision when the read was served (etcd's header revision).
    pub rev: i64,
}

/// The revisioned keyspace of one member.
///
/// Readers call [`KvStore::range`] from any thread; the single applier thread writes
/// through [`super::ApplyBatch`] and publishes the new current revision only after its
/// batch is in RocksDB, so a reader never sees a revision whose data is missing.
pub struct KvStore {
    storage: Storage,
    current_rev: AtomicI64,
    compact_rev: AtomicI64,
    /// Held shared while a reader pins its view (current revision + RocksDB
    /// snapshot), exclusively while a raft snapshot replaces the keyspace in place:
    /// a reader sees the old state or the new one, never a half-copied mixture.
    restore: RwLock<()>,
}

impl KvStore {
    /// Opens the keyspace; costs three meta reads however large the data is.
    pub fn open(storage: Storage) -> Result<Arc<KvStore>> {
        let current = storage.get_meta_u64(meta::CURRENT_REV)?.unwrap_or(1) as i64;
        let compact = storage.get_meta_u64(meta::COMPACT_REV)?.unwrap_or(0) as i64;
        Ok(Arc::new(KvStore {
            storage,
            current_rev: AtomicI64::new(current),
            compact_rev: AtomicI64::new(compact),
            restore: RwLock::new(()),
        }))
    }

    /// Re-reads the revisions after a snapshot install replaced the keyspace.
    pub fn reload(&self) -> Result<()> {
        let current = self.storage.get_meta_u64(meta::CURRENT_REV)?.unwrap_or(1) as i64;
        let compact = self.storage.get_meta_u64(meta::COMPACT_REV)?.unwrap_or(0) as i64;
        self.publish_current_rev(current);
        self.publish_compact_rev(compact);
        Ok(())
    }

    /// Excludes readers from pinning a view while the keyspace is replaced. Held
    /// for the copy only, never across an fsync.
    pub fn restore_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.restore.write()
    }

    /// Holds off snapshot installs for a reader of the live database (one that does
    /// not pin a snapshot with [`KvStore::pin`]). Keep it short: an install waits.
    pub fn read_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.restore.read()
    }

    /// The current revision and a RocksDB snapshot holding everything up to it,
    /// taken together (never in the middle of a snapshot install).
    pub fn pin(&self) -> (i64, rocksdb::Snapshot<'_>) {
        let _shared = self.restore.read();
        (self.current_rev(), self.storage.db().snapshot())
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The newest revision whose changes are readable.
    pub fn current_rev(&self) -> i64 {
        self.current_rev.load(Ordering::Acquire)
    }

    /// The last compaction revision: reads below it fail.
    pub fn compact_rev(&self) -> i64 {
        self.compact_rev.load(Ordering::Acquire)
    }

    pub(super) fn publish_current_rev(&self, rev: i64) {
        self.current_rev.store(rev, Ordering::Release);
    }

    pub(super) fn publish_compact_rev(&self, rev: i64) {
        self.compact_rev.store(rev, Ordering::Release);
    }

    /// Reads `[key, range_end)` (etcd conventions) at `opts.rev` from a consistent
    /// RocksDB snapshot.
    pub fn range(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        // Order matters: the current revision is loaded before the snapshot (so the
        // snapshot holds everything up to it), and the compaction revision after it (a
        // compaction that may already have removed versions we need is then visible).
        let (current, snapshot) = self.pin();
        let rev = resolve_read_rev(opts.rev, current, self.compact_rev())?;
        let range = KeyRange::new(key, range_end);
        let scan = VersionScan::new(
            &self.storage,
            Some(&snapshot),
            &range,
            rev,
            opts.with_values(),
        );
        collect(scan, opts, current)
    }
}

/// Maps a requested revision (0 = current) to the one to read, as etcd checks it.
pub(super) fn resolve_read_rev(requested: i64, current: i64, compacted: i64) -> Result<i64> {
    let rev = if requested <= 0 { current } else { requested };
    if rev > current {
        return Err(Error::FutureRev);
    }
    if rev < compacted {
        return Err(Error::Compacted);
    }
    Ok(rev)
}

/// Turns a stream of newest-versions into a [`RangeResult`]: tombstones are skipped,
/// every live key is counted, at most `limit` are returned.
pub(super) fn collect<I>(versions: I, opts: RangeOptions, current: i64) -> Result<RangeResult>
where
    I: Iterator<Item = Result<Version>>,
{
    let mut out = RangeResult {
        rev: current,
        ..Default::default()
    };
    for v in versions {
        let v = v?;
        if v.record.tombstone {
            continue;
        }
        out.count += 1;
        if !opts.count_only && (opts.limit == 0 || out.kvs.len() < opts.limit) {
            out.kvs.push(v.record.to_key_value(&v.key, v.rev));
        }
    }
    Ok(out)
}
