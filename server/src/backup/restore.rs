//! Reading a backup offline: `snapshot status` and `snapshot restore`.

use std::fs::File;
use std::path::{Path, PathBuf};

use clap::Parser as _;
use rocksdb::{IteratorMode, WriteBatch};

use super::{archive, io_err, unique, Error, Result, Staged};
use crate::cluster;
use crate::config::Config;
use crate::storage::{self, checkpoint, meta, Storage, StorageConfig, ALL_CFS, CF_META, CF_RAFT};

/// What `snapshot status` reports (etcd's `snapshot.Status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// CRC-32 (IEEE) over every column family's name and every key and value in it, in
    /// order — the counterpart of etcd's CRC over its bbolt buckets.
    pub hash: u32,
    /// The store's revision when the backup was taken.
    pub revision: i64,
    /// Keys across all column families.
    pub total_key: u64,
    /// Bytes of the database files (the file minus its framing and trailer).
    pub total_size: u64,
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(io_err(path))
}

/// Verifies a backup file and summarises the database in it. RocksDB reads a
/// directory, not a stream, so the database is unpacked into a temporary directory
/// (as large as the database) for the duration.
pub fn status(path: &Path) -> Result<SnapshotStatus> {
    let mut file = open_file(path)?;
    let dir = unique(&std::env::temp_dir(), "revkv-snapshot-status");
    checkpoint::create_private_dir(&dir)?;
    let _staged = Staged::new(dir.clone());
    let unpacked = archive::unpack(&mut file, &dir, false)?;
    let db = checkpoint::open_read_only(&dir)?;
    let cfs = ALL_CFS
        .iter()
        .map(|&name| {
            let cf = db
                .cf_handle(name)
                .ok_or_else(|| Error::Format(format!("column family {name} missing")))?;
            Ok((name, cf))
        })
        .collect::<Result<Vec<_>>>()?;
    let (hash, total_key) = storage::hash_column_families(&db, &cfs, &[])?;
    let revision = db
        .get_cf(
            db.cf_handle(CF_META)
                .ok_or_else(|| Error::Format("column family meta missing".into()))?,
            meta::CURRENT_REV,
        )
        .map_err(storage::Error::from)?
        .as_deref()
        .and_then(storage::decode_u64)
        .unwrap_or(0);
    Ok(SnapshotStatus {
        hash,
        revision: revision as i64,
        total_key,
        total_size: unpacked.bytes,
    })
}

/// The flags of `snapshot restore` (etcdctl's defaults are the caller's to apply).
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    pub name: String,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    /// Comma-separated, as the flag.
    pub initial_advertise_peer_urls: String,
    pub skip_hash_check: bool,
}

/// The identity the restored member got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub member_id: u64,
    pub cluster_id: u64,
    pub revision: i64,
}

/// Makes a new data dir from a backup (see the module docs). The data dir must not
/// exist; on any failure nothing is left behind.
pub fn restore(o: &RestoreOptions) -> Result<Restored> {
    if o.data_dir.exists() {
        return Err(Error::DataDirExists(o.data_dir.clone()));
    }
    // The flags are checked before anything is written, as the server checks them.
    let cfg = Config::try_parse_from([
        "revkv".as_ref(),
        "--name".as_ref(),
        o.name.as_ref(),
        "--data-dir".as_ref(),
        o.data_dir.as_os_str(),
        "--initial-cluster".as_ref(),
        o.initial_cluster.as_ref(),
        "--initial-cluster-token".as_ref(),
        o.initial_cluster_token.as_ref(),
        "--initial-advertise-peer-urls".as_ref(),
        o.initial_advertise_peer_urls.as_ref(),
    ] as [&std::ffi::OsStr; 11])
    .map_err(|e| Error::Flags(e.to_string()))?;
    cluster::check_flags(&cfg)?;
    let mut file = open_file(&o.snapshot)?;
    let staged = Staged::new(o.data_dir.clone());
    let db_dir = o.data_dir.join("db");
    checkpoint::create_private_dir(&db_dir)?;
    archive::unpack(&mut file, &db_dir, o.skip_hash_check)?;
    let restored = {
        let storage = Storage::open(&o.data_dir, &StorageConfig::default())?;
        forget_raft_state(&storage)?;
        let boot = cluster::bootstrap(&storage, &cfg, &|_| {
            Err("a restore never joins a running cluster".into())
        })?;
        storage.flush()?;
        Restored {
            member_id: boot.member_id,
            cluster_id: boot.cluster_id,
            revision: storage.get_meta_u64(meta::CURRENT_REV)?.unwrap_or(0) as i64,
        }
    };
    checkpoint::fsync_dir(&o.data_dir)?;
    staged.keep();
    Ok(restored)
}

/// Drops what belonged to the old cluster's raft log and identity: the whole raft
/// column family (hard state, configuration, snapshot metadata, any install journal),
/// the applied index and the identity keys. One synced batch.
fn forget_raft_state(storage: &Storage) -> Result<()> {
    let mut wb = WriteBatch::default();
    let raft = storage.cf(CF_RAFT);
    for item in storage.db().iterator_cf(raft, IteratorMode::Start) {
        let (k, _) = item.map_err(storage::Error::from)?;
        wb.delete_cf(raft, k);
    }
    let m = storage.cf(CF_META);
    for key in [
        meta::APPLIED_INDEX,
        meta::CLUSTER_ID,
        meta::MEMBER_ID,
        meta::MEMBERS,
    ] {
        wb.delete_cf(m, key);
    }
    storage.write(wb, true)?;
    Ok(())
}
