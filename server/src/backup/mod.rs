//! Backups: etcd's `Maintenance.Snapshot` stream, and the offline `snapshot status`
//! and `snapshot restore` that read what it produced.
//!
//! A backup is a RocksDB checkpoint of the whole state machine (every column family,
//! consistent across them: one apply batch is one RocksDB WAL record) packed into one
//! file whose last 32 bytes are the SHA-256 of the rest, as an etcd snapshot's are
//! ([`archive`] has the format). It is not bbolt: stock `etcdctl snapshot save` stores
//! it unchanged, but reading one back takes `revkvctl snapshot status|restore`.
//!
//! # Producing ([`stream`])
//!
//! The checkpoint is made under `<data-dir>/snap/backup-…` (hard links to the live
//! SST files, so it costs little space while it exists), streamed, and removed when
//! the stream ends, fails or the client goes away; a crash leaves it to the start-up
//! sweep of the snap dir.
//!
//! # Restoring ([`restore`])
//!
//! As `etcdctl snapshot restore` does, a restore makes a new member's data dir from a
//! backup: the keyspace, leases and auth state come from the backup; the raft state
//! and the cluster identity do not. The raft column family is emptied and the applied
//! index removed, so the member starts a fresh raft log at index 1 over the restored
//! state, and the identity (cluster ID, member ID, member list) is derived from the
//! restore's `--name`, `--initial-cluster`, `--initial-cluster-token` and
//! `--initial-advertise-peer-urls`, exactly as a first start with those flags derives
//! it. Every member of the new cluster is restored from the same file with the same
//! flags but its own `--name`, so all start from the same revision.

pub mod archive;
mod restore;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use restore::{restore, status, RestoreOptions, Restored, SnapshotStatus};

use crate::storage::{checkpoint, Storage};

/// Errors of making, reading or restoring a backup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not our format (an etcd bbolt snapshot, say).
    #[error("invalid database: not a revkv snapshot")]
    NotASnapshot,
    #[error("invalid database: {0}")]
    Format(String),
    #[error("expected sha256 does not match the snapshot's content")]
    HashMismatch,
    #[error("data-dir {0:?} exists")]
    DataDirExists(PathBuf),
    #[error("{0}")]
    Flags(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// etcd's chunk size for the snapshot stream.
pub const CHUNK: usize = 32 * 1024;

/// Removes a staging dir when dropped, unless it is kept.
struct Staged {
    path: PathBuf,
    keep: bool,
}

impl Staged {
    fn new(path: PathBuf) -> Self {
        Staged { path, keep: false }
    }

    /// The dir is the result: leave it.
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a backup staging dir");
            }
        }
    }
}

fn unique(parent: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    parent.join(format!("{what}-{}-{n}", std::process::id()))
}

/// Checkpoints `storage` under `snap_dir` and hands the backup to `emit` in chunks of
/// [`CHUNK`] bytes with the bytes still to come after each (etcd's `remaining_bytes`:
/// it reaches 0 with the last content chunk, and the SHA-256 follows as a chunk of its
/// own, also 0). Blocking; returns false if `emit` refused a chunk (the reader left).
pub fn stream(
    storage: &Storage,
    snap_dir: &Path,
    emit: &mut dyn FnMut(Vec<u8>, u64) -> bool,
) -> Result<bool> {
    checkpoint::create_private_dir(snap_dir)?;
    let dir = unique(snap_dir, "backup");
    let _staged = Staged::new(dir.clone());
    checkpoint::create(storage, &dir)?;
    let files = checkpoint::list_files(&dir)?;
    let total = archive::body_len(&files);
    let mut sent = 0u64;
    let done = archive::write(&dir, &files, CHUNK, &mut |blob| {
        sent = (sent + blob.len() as u64).min(total);
        emit(blob, total - sent)
    })?;
    tracing::info!(
        bytes = total,
        files = files.len(),
        completed = done,
        "streamed a backup"
    );
    Ok(done)
}

#[cfg(test)]
mod tests;
