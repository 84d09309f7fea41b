//! RocksDB: the one database behind every revkv member.
//!
//! Everything a member persists lives in one RocksDB instance with one column family per
//! concern (see DESIGN §3), except the raft log's entries, which are appended to their
//! own segment files (`raft::entry_log`); raft's hard state, conf state and truncation
//! point stay here. Apply batches are written unsynced: crash recovery yields a prefix
//! of them, and every entry they came from stays in the entry log until a synced write
//! here (the truncation point, written before any segment is removed) has made them
//! durable, so "applied index <= last persisted entry" holds after any crash and the
//! entries after the applied index are always there to replay.

pub mod checkpoint;
pub mod keys;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch,
    WriteOptions, DB,
};

/// Revision-ordered history: `Revision::to_bytes()` -> [`crate::mvcc::record::EventRecord`].
pub const CF_REV: &str = "rev";
/// Key-ordered versions: `keys::version_key(key, rev)` -> [`crate::mvcc::record::KeyRecord`].
pub const CF_KEY: &str = "key";
/// Small bookkeeping values: applied index, revisions, cluster identity.
pub const CF_META: &str = "meta";
/// Lease id -> lease record.
pub const CF_LEASE: &str = "lease";
/// Users, roles, auth revision.
pub const CF_AUTH: &str = "auth";
/// Raft hard state, conf state, log truncation point and snapshot-install journal
/// (the entries themselves are in `raft::entry_log`'s segment files).
pub const CF_RAFT: &str = "raft";

pub(crate) const ALL_CFS: [&str; 6] = [CF_REV, CF_KEY, CF_META, CF_LEASE, CF_AUTH, CF_RAFT];

/// Keys of the `meta` column family.
pub mod meta {
    /// Index of the last raft entry whose effects are in the state machine.
    pub const APPLIED_INDEX: &[u8] = b"applied_index";
    /// The store's current main revision.
    pub const CURRENT_REV: &[u8] = b"current_rev";
    /// Revision of the last accepted compaction (reads below it fail at once).
    pub const COMPACT_REV: &[u8] = b"compact_rev";
    /// Revision up to which old versions have been physically removed.
    pub const FINISHED_COMPACT_REV: &[u8] = b"finished_compact_rev";
    /// Cluster and member identity, written once at bootstrap.
    pub const CLUSTER_ID: &[u8] = b"cluster_id";
    pub const MEMBER_ID: &[u8] = b"member_id";
    /// The cluster's membership (`revkvpb.Membership`), written at bootstrap and by
    /// every applied membership change (with the applied index); on restart it wins
    /// over the `--initial-cluster` flags.
    pub const MEMBERS: &[u8] = b"members";
}

/// A CRC-32 (IEEE) over each of `cfs` in turn, as of one snapshot: the family's name,
/// then every key and value in key order, except the `(family, key)` pairs in
/// `ignore`. Also counts the keys hashed.
pub(crate) fn hash_column_families(
    db: &DB,
    cfs: &[(&str, &ColumnFamily)],
    ignore: &[(&str, &[u8])],
) -> Result<(u32, u64)> {
    let snapshot = db.snapshot();
    let mut crc = crc32fast::Hasher::new();
    let mut keys = 0u64;
    for &(name, cf) in cfs {
        crc.update(name.as_bytes());
        for item in snapshot.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            if ignore.iter().any(|&(n, key)| n == name && key == &k[..]) {
                continue;
            }
            crc.update(&k);
            crc.update(&v);
            keys += 1;
        }
    }
    Ok((crc.finalize(), keys))
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {path}: {source}")]
    Snapshot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Tunables of the RocksDB instance.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// Shared block cache for all column families.
    pub block_cache_bytes: usize,
    /// Memtable size per column family.
    pub write_buffer_bytes: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            // 64 MiB: reads of hot keys stay cached, and with 1M keys loaded the
            // member's RSS is half etcd's (128 MiB put it just above half).
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
        }
    }
}

/// A handle to the member's RocksDB; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    db: Arc<DB>,
    path: PathBuf,
    size: Arc<SizeCache>,
}

/// `size_bytes` as of at most [`SIZE_CACHE_TTL`] ago. The quota check runs on every
/// write, and summing the properties of every column family costs a dozen property
/// lookups under RocksDB's mutex; the quota only has to hold approximately.
#[derive(Default)]
struct SizeCache {
    bytes: std::sync::atomic::AtomicU64,
    refreshed: parking_lot::Mutex<Option<std::time::Instant>>,
}

const SIZE_CACHE_TTL: std::time::Duration = std::time::Duration::from_millis(100);

impl Storage {
    /// Opens (creating if needed) the database under `data_dir`.
    ///
    /// The data dir is created with mode 0700; file modes come from the process umask,
    /// which the binary sets to 0077 so RocksDB's files are 0600.
    pub fn open(data_dir: &Path, cfg: &StorageConfig) -> Result<Storage> {
        let dir_err = |source| Error::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(dir_err)?;
        restrict_dir(data_dir).map_err(dir_err)?;
        let path = data_dir.join("db");

        let cache = Cache::new_lru_cache(cfg.block_cache_bytes);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);
        db_opts.set_bytes_per_sync(1 << 20);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut o = Options::default();
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            o.set_block_based_table_factory(&table);
            o.set_write_buffer_size(cfg.write_buffer_bytes);
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            if *name == CF_KEY {
                // Prefix blooms (memtable and tables) on the encoded user key: looking
                // up a key's versions skips every table and memtable that lacks the
                // key, which is most of them when a put writes a new key. Scans that
                // cross keys must ask for total order (`keys::total_order`).
                o.set_prefix_extractor(rocksdb::SliceTransform::create(
                    "revkv.user_key",
                    keys::user_key_prefix,
                    Some(keys::has_user_key_prefix),
                ));
                o.set_memtable_prefix_bloom_ratio(0.1);
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&db_opts, &path, cfs)?;
        Ok(Storage {
            db: Arc::new(db),
            path,
            size: Arc::default(),
        })
    }

    pub fn db(&self) -> &DB {
        &self.db
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle of a column family created at open.
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        // Every name in ALL_CFS is created by `open`, so a miss is a programming error.
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} was not opened"))
    }

    /// Writes a batch; `sync` makes it durable before returning (one WAL fsync).
    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Writes every column family's memtable to disk and waits for it.
    pub fn flush(&self) -> Result<()> {
        let cfs: Vec<&ColumnFamily> = ALL_CFS.iter().map(|name| self.cf(name)).collect();
        self.db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())?;
        Ok(())
    }

    /// etcd's defragmentation, done RocksDB's way: a manual compaction of every column
    /// family over its whole key range, down to the bottom level, rewrites the tables
    /// without the versions that compaction and deletes removed, and gives their space
    /// back. Reads and writes go on meanwhile; it returns when the rewrite is done.
    pub fn defragment(&self) {
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in ALL_CFS {
            self.db
                .compact_range_cf_opt(self.cf(name), None::<&[u8]>, None::<&[u8]>, &opts);
        }
    }

    /// etcd's `Hash`: a CRC-32 of the state machine as of one snapshot — every column
    /// family but `raft` ([`hash_column_families`]), without the two meta values that
    /// differ between members holding the same data (the applied index, as etcd
    /// ignores its consistent index, and the member's own id), so members that applied
    /// the same log agree.
    pub fn hash_state_machine(&self) -> Result<u32> {
        let cfs: Vec<(&str, &ColumnFamily)> = ALL_CFS
            .iter()
            .filter(|&&name| name != CF_RAFT)
            .map(|&name| (name, self.cf(name)))
            .collect();
        let ignore = [(CF_META, meta::APPLIED_INDEX), (CF_META, meta::MEMBER_ID)];
        Ok(hash_column_families(&self.db, &cfs, &ignore)?.0)
    }

    pub fn get_meta_u64(&self, key: &[u8]) -> Result<Option<u64>> {
        match self.db.get_pinned_cf(self.cf(CF_META), key)? {
            None => Ok(None),
            Some(v) => decode_u64(&v)
                .map(Some)
                .ok_or_else(|| Error::Corrupt(format!("meta {}", String::from_utf8_lossy(key)))),
        }
    }

    /// Bytes the database takes on disk, as etcd's is the size of its file: the tables
    /// of every column family plus the write-ahead log, which holds what the memtables
    /// have not flushed yet. (The memtables' own size would count the arena blocks
    /// and the 6 MiB prefix bloom a memtable allocates up front, so one small write
    /// after a flush would add megabytes.)
    pub fn size_bytes(&self) -> u64 {
        self.sum_property("rocksdb.total-sst-files-size") + self.wal_bytes()
    }

    /// Sizes of the write-ahead log files (`NNNNNN.log`; RocksDB preallocates them
    /// without changing their length, so this is what was written).
    fn wal_bytes(&self) -> u64 {
        let Ok(dir) = std::fs::read_dir(&self.path) else {
            return 0;
        };
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// [`Storage::size_bytes`], refreshed at most every 100 ms: for per-write checks.
    pub fn size_bytes_cached(&self) -> u64 {
        use std::sync::atomic::Ordering;
        // Whoever finds the lock taken uses the current figure rather than queueing.
        if let Some(mut refreshed) = self.size.refreshed.try_lock() {
            if refreshed.is_none_or(|at| at.elapsed() >= SIZE_CACHE_TTL) {
                self.size.bytes.store(self.size_bytes(), Ordering::Relaxed);
                *refreshed = Some(std::time::Instant::now());
            }
        }
        self.size.bytes.load(Ordering::Relaxed)
    }

    /// Approximate bytes of live data (what a defragmented database would hold).
    pub fn size_in_use_bytes(&self) -> u64 {
        let wal = self.wal_bytes();
        let live = self.sum_property("rocksdb.estimate-live-data-size");
        let on_disk = self.sum_property("rocksdb.total-sst-files-size");
        (live + wal).min(on_disk + wal)
    }

    fn sum_property(&self, prop: &str) -> u64 {
        ALL_CFS
            .iter()
            .filter_map(|cf| {
                self.db
                    .property_int_value_cf(self.cf(cf), prop)
                    .ok()
                    .flatten()
            })
            .sum()
    }
}

pub fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn decode_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_private_dir_and_all_cfs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let st = Storage::open(&dir, &StorageConfig::default()).expect("open");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mut b = WriteBatch::default();
        b.put_cf(st.cf(CF_META), meta::CURRENT_REV, encode_u64(9));
        st.write(b, true).expect("write");
        assert_eq!(st.get_meta_u64(meta::CURRENT_REV).expect("get"), Some(9));
        assert_eq!(st.get_meta_u64(meta::APPLIED_INDEX).expect("get"), None);
        drop(st);
        let st = Storage::open(&dir, &StorageConfig::default()).expect("reopen");
        assert_eq!(st.get_meta_u64(meta::CURRENT_REV).expect("get"), Some(9));
    }

    #[test]
    fn unusable_data_dir_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        assert!(Storage::open(&file.join("sub"), &StorageConfig::default()).is_err());
    }
}
