//! Checkpoints of the state machine and their crash-safe installation.
//!
//! # Producing
//!
//! [`create`] takes a RocksDB checkpoint of the live database (hard links to its SST
//! files plus the WAL tail, so it is a consistent point-in-time view across column
//! families: every apply batch is one WAL record, so the checkpoint holds a prefix of
//! whole batches) and [`digest`] sums its files. The applied index recorded in the
//! checkpoint's `meta` CF is the raft index the checkpoint reflects.
//!
//! # Installing
//!
//! A member too far behind replaces its state machine with a received checkpoint. We
//! install **into the live database** instead of swapping in the checkpoint as a new
//! database: every reader in the server holds `&DB` and `&ColumnFamily` borrowed from
//! one long-lived [`Storage`], and a swap would turn each of those into a guard taken
//! per read (and tie every RocksDB snapshot to one of them). The price is that an
//! install is several writes, so it is made crash-safe as a redo journal:
//!
//! 1. Nothing changes until the checkpoint is complete and verified on disk
//!    (`snap/recv-<index>`, see `raft::snapshot`).
//! 2. [`begin_install`] records the plan (checkpoint dir, and the raft records that
//!    must replace the raft CF) under [`INSTALL_KEY`] in the raft CF, synced.
//! 3. [`finish_install`] replaces the `rev`, `key`, `lease`, `auth` CFs and every
//!    `meta` key but the member's identity with the checkpoint's, in bounded batches,
//!    then — in one final batch — clears the raft CF (the checkpoint's raft log is
//!    never taken), writes the planned raft records and deletes the journal key, and
//!    syncs the WAL. That final batch is the commit point.
//! 4. The checkpoint dir is removed only after the commit.
//!
//! A crash before step 2 leaves the old state untouched (the staged dir is garbage,
//! removed at start-up). A crash after it leaves the journal key, and [`recover`], run
//! at start-up before anything reads the state, redoes step 3 from the still-present
//! checkpoint; step 3 is idempotent. So a crash at any point leaves a member that
//! starts with either its old state or the complete new one, never a mixture.
//!
//! Memory stays bounded by the batch size however large the checkpoint is. Readers
//! that run concurrently with step 3 must be held off by the caller (see
//! `KvStore::restore_gate`).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rocksdb::{checkpoint::Checkpoint, Options, WriteBatch, DB};
use sha1::{Digest as _, Sha1};

use super::{
    keys, meta, Error, Result, Storage, ALL_CFS, CF_AUTH, CF_KEY, CF_LEASE, CF_META, CF_RAFT,
    CF_REV,
};

/// Raft CF key of a pending install's journal record (see the module docs).
pub const INSTALL_KEY: &[u8] = b"snapshot_install";

/// Bytes written per batch while copying a checkpoint into the live database.
const COPY_BATCH_BYTES: usize = 4 << 20;

/// `meta` keys that belong to this member, not to the replicated state.
const IDENTITY_KEYS: [&[u8]; 2] = [meta::CLUSTER_ID, meta::MEMBER_ID];

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Snapshot {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and missing parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// Makes a directory entry change (create, rename, remove) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Writes a RocksDB checkpoint of `storage` into `dir`, which must not exist.
pub fn create(storage: &Storage, dir: &Path) -> Result<()> {
    Checkpoint::new(storage.db())?.create_checkpoint(dir)?;
    super::restrict_dir(dir).map_err(io_err(dir))?;
    Ok(())
}

/// A checkpoint's size and checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointDigest {
    pub files: u64,
    pub total_bytes: u64,
    pub sha1: Vec<u8>,
}

/// Streaming form of the checksum: SHA-1 over every file in name order — name, a zero
/// byte, length (big-endian u64), content. SHA-1 is already a dependency (cluster IDs)
/// and guards against corruption and truncation; authenticity is the transport's job
/// (cluster ID checks), not the checksum's.
pub struct Summer {
    h: Sha1,
    files: u64,
    total: u64,
}

impl Default for Summer {
    fn default() -> Self {
        Summer {
            h: Sha1::new(),
            files: 0,
            total: 0,
        }
    }
}

impl Summer {
    pub fn start_file(&mut self, name: &str, len: u64) {
        self.h.update(name.as_bytes());
        self.h.update([0u8]);
        self.h.update(len.to_be_bytes());
        self.files += 1;
    }

    pub fn update(&mut self, data: &[u8]) {
        self.h.update(data);
        self.total += data.len() as u64;
    }

    /// Content bytes summed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn finish(self) -> CheckpointDigest {
        CheckpointDigest {
            files: self.files,
            total_bytes: self.total,
            sha1: self.h.finalize().to_vec(),
        }
    }
}

/// The files of a checkpoint dir, in name order, with their sizes.
pub fn list_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let meta = entry.metadata().map_err(io_err(dir))?;
        if !meta.is_file() {
            return Err(Error::Corrupt(format!(
                "checkpoint {} holds a non-file {:?}",
                dir.display(),
                entry.file_name()
            )));
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| Error::Corrupt(format!("checkpoint file name {n:?} is not UTF-8")))?;
        out.push((name, meta.len()));
    }
    out.sort();
    Ok(out)
}

/// Sums a checkpoint dir as [`Summer`] describes.
pub fn digest(dir: &Path) -> Result<CheckpointDigest> {
    let mut sum = Summer::default();
    let mut buf = vec![0u8; 1 << 20];
    for (name, len) in list_files(dir)? {
        let path = dir.join(&name);
        sum.start_file(&name, len);
        let mut f = fs::File::open(&path).map_err(io_err(&path))?;
        let mut left = len;
        while left > 0 {
            let n = f.read(&mut buf).map_err(io_err(&path))?;
            if n == 0 {
                return Err(Error::Corrupt(format!(
                    "{} shrank while summing",
                    path.display()
                )));
            }
            let n = n.min(left as usize);
            sum.update(&buf[..n]);
            left -= n as u64;
        }
    }
    Ok(sum.finish())
}

/// Opens a checkpoint read-only.
pub(crate) fn open_read_only(dir: &Path) -> Result<DB> {
    let opts = Options::default();
    let cfs = DB::list_cf(&opts, dir)?;
    for cf in ALL_CFS {
        if !cfs.iter().any(|c| c == cf) {
            return Err(Error::Corrupt(format!(
                "checkpoint {} lacks column family {cf}",
                dir.display()
            )));
        }
    }
    Ok(DB::open_cf_for_read_only(&opts, dir, cfs, false)?)
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| Error::Corrupt(format!("column family {name} missing")))
}

/// The raft index a checkpoint reflects (its applied index).
pub fn applied_index(dir: &Path) -> Result<u64> {
    let db = open_read_only(dir)?;
    let v = db.get_cf(cf(&db, CF_META)?, meta::APPLIED_INDEX)?;
    v.as_deref()
        .and_then(super::decode_u64)
        .ok_or_else(|| Error::Corrupt(format!("checkpoint {} has no applied index", dir.display())))
}

/// A pending install, as journaled under [`INSTALL_KEY`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallPlan {
    /// The verified checkpoint.
    pub dir: PathBuf,
    /// What the raft CF holds once the install commits (everything else is removed).
    pub raft_records: Vec<(Vec<u8>, Vec<u8>)>,
}

impl InstallPlan {
    /// `u32` length-prefixed fields: dir, then key/value pairs.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        };
        put(self.dir.as_os_str().as_encoded_bytes());
        for (k, v) in &self.raft_records {
            put(k);
            put(v);
        }
        out
    }

    fn decode(mut b: &[u8]) -> Option<InstallPlan> {
        let mut take = || -> Option<Option<Vec<u8>>> {
            if b.is_empty() {
                return Some(None);
            }
            let (len, rest) = b.split_at_checked(4)?;
            let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
            let (field, rest) = rest.split_at_checked(len)?;
            b = rest;
            Some(Some(field.to_vec()))
        };
        let dir = String::from_utf8(take()??).ok()?;
        let mut raft_records = Vec::new();
        while let Some(k) = take()? {
            let v = take()??;
            raft_records.push((k, v));
        }
        Some(InstallPlan {
            dir: PathBuf::from(dir),
            raft_records,
        })
    }
}

/// Journals `plan` (synced). From here on a restart completes the install.
pub fn begin_install(storage: &Storage, plan: &InstallPlan) -> Result<()> {
    if plan.dir.to_str().is_none() {
        return Err(Error::Corrupt(format!(
            "snapshot dir {:?} is not UTF-8",
            plan.dir
        )));
    }
    let mut wb = WriteBatch::default();
    wb.put_cf(storage.cf(CF_RAFT), INSTALL_KEY, plan.encode());
    storage.write(wb, true)
}

/// The journaled install, if one is pending.
pub fn pending_install(storage: &Storage) -> Result<Option<InstallPlan>> {
    match storage.db().get_cf(storage.cf(CF_RAFT), INSTALL_KEY)? {
        None => Ok(None),
        Some(b) => InstallPlan::decode(&b)
            .map(Some)
            .ok_or_else(|| Error::Corrupt("undecodable snapshot install journal".into())),
    }
}

/// Replaces the state machine with the checkpoint's and commits (module docs, step 3;
/// durable once [`make_durable`] returns). Idempotent: a crash anywhere inside is
/// repaired by running it again.
pub fn finish_install(storage: &Storage, plan: &InstallPlan) -> Result<()> {
    let src = open_read_only(&plan.dir)?;
    for name in [CF_REV, CF_KEY, CF_LEASE, CF_AUTH, CF_META] {
        let keep = |k: &[u8]| name == CF_META && IDENTITY_KEYS.contains(&k);
        clear_cf(storage, name, keep)?;
        copy_cf(storage, &src, name, keep)?;
    }
    drop(src);
    let raft = storage.cf(CF_RAFT);
    let mut wb = WriteBatch::default();
    if let Some(end) = upper_bound(storage, CF_RAFT) {
        wb.delete_range_cf(raft, Vec::new(), end);
    }
    for (k, v) in &plan.raft_records {
        wb.put_cf(raft, k, v);
    }
    wb.delete_cf(raft, INSTALL_KEY);
    // Unsynced, so that the caller need not hold its reader gate across an fsync;
    // until [`make_durable`] returns, a crash still finds the journal and redoes all.
    storage.write(wb, false)
}

/// Syncs the WAL: one fsync makes the commit batch of [`finish_install`] and every
/// copy batch before it durable.
pub fn make_durable(storage: &Storage) -> Result<()> {
    storage.db().flush_wal(true)?;
    Ok(())
}

/// Completes an install a crash interrupted; call before anything reads the state.
/// Returns the plan it completed.
pub fn recover(storage: &Storage) -> Result<Option<InstallPlan>> {
    let Some(plan) = pending_install(storage)? else {
        return Ok(None);
    };
    tracing::warn!(dir = %plan.dir.display(), "completing a snapshot install interrupted by a crash");
    finish_install(storage, &plan)?;
    make_durable(storage)?;
    Ok(Some(plan))
}

/// An exclusive upper bound above every key of `cf`, or `None` if it is empty.
fn upper_bound(storage: &Storage, cf: &str) -> Option<Vec<u8>> {
    let opts = keys::total_order(rocksdb::ReadOptions::default());
    let mut it = storage.db().raw_iterator_cf_opt(storage.cf(cf), opts);
    it.seek_to_last();
    let mut k = it.key()?.to_vec();
    k.push(0);
    Some(k)
}

fn clear_cf(storage: &Storage, name: &str, keep: impl Fn(&[u8]) -> bool) -> Result<()> {
    let Some(end) = upper_bound(storage, name) else {
        return Ok(());
    };
    let handle = storage.cf(name);
    let mut wb = WriteBatch::default();
    let kept: Vec<&[u8]> = IDENTITY_KEYS.into_iter().filter(|k| keep(k)).collect();
    if kept.is_empty() {
        wb.delete_range_cf(handle, Vec::new(), end);
    } else {
        // Delete around the kept keys: [start, k0), (k0, k1), ..., (kn, end).
        let mut sorted = kept;
        sorted.sort();
        let mut from: Vec<u8> = Vec::new();
        for k in sorted {
            if from.as_slice() < k {
                wb.delete_range_cf(handle, from.as_slice(), k);
            }
            from = k.to_vec();
            from.push(0);
        }
        if from < end {
            wb.delete_range_cf(handle, from.as_slice(), end.as_slice());
        }
    }
    storage.write(wb, false)
}

fn copy_cf(storage: &Storage, src: &DB, name: &str, skip: impl Fn(&[u8]) -> bool) -> Result<()> {
    let dst = storage.cf(name);
    let mut it = src.raw_iterator_cf(cf(src, name)?);
    it.seek_to_first();
    let mut wb = WriteBatch::default();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if !skip(k) {
            wb.put_cf(dst, k, v);
        }
        if wb.size_in_bytes() >= COPY_BATCH_BYTES {
            storage.write(std::mem::take(&mut wb), false)?;
        }
        it.next();
    }
    it.status()?;
    if !wb.is_empty() {
        storage.write(wb, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
