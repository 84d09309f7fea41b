//! Raft snapshots: the state machine shipped to a member that fell behind the log.
//!
//! A raft `Snapshot` here never carries the database. Its `data` is a small
//! [`SnapshotDescriptor`] (cluster ID, index, term, size, SHA-1); the state itself is a
//! RocksDB checkpoint that the transport streams beside the raft message
//! (`transport::snapshot`). Everything lives under `<data-dir>/snap` (mode 0700):
//!
//! * `ckpt-<index>` — the leader's newest checkpoint, made off the raft thread when
//!   raft first asks for a snapshot (raft is told "temporarily unavailable" meanwhile
//!   and asks again on a later heartbeat response);
//! * `tmp-…` — a checkpoint being made or received;
//! * `recv-<index>` — a received checkpoint whose size and checksum verified, waiting
//!   for the raft task to install it.
//!
//! The raft task installs a snapshot only if its cluster ID is ours, its index is
//! newer than our applied index, and its verified checkpoint is on disk; anything else
//! is refused with a log line and changes nothing. Installation itself is in
//! [`crate::storage::checkpoint`] (crash-safe redo journal) and `apply::restore`.
//! Old checkpoints and staging dirs are removed when a newer one replaces them, after
//! an install, and at start-up.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prost::Message as _;
use raft::prelude::{ConfState, Message, MessageType, Snapshot, SnapshotMetadata};
use raft::StorageError;
use revkv_proto::revkvpb::SnapshotDescriptor;

use crate::storage::checkpoint::{self, CheckpointDigest, InstallPlan, Summer};
use crate::storage::Storage;

/// Why a snapshot could not be produced, received or accepted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("snapshot of cluster {remote:x} refused: local cluster ID is {local:x}")]
    ClusterMismatch { remote: u64, local: u64 },
    #[error("snapshot at index {index} refused: already applied up to {applied}")]
    Stale { index: u64, applied: u64 },
    #[error("undecodable snapshot descriptor: {0}")]
    Descriptor(String),
    #[error("snapshot chunk out of order: {0}")]
    Order(String),
    #[error("snapshot file name {0:?} is not a plain file name")]
    BadName(String),
    #[error("snapshot incomplete or corrupt: expected {expected}, received {received}")]
    Checksum { expected: String, received: String },
    #[error("no verified checkpoint for snapshot index {0}")]
    Missing(u64),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A request from the raft task to the applier: replace the state machine.
pub struct InstallJob {
    /// Raft index (and term) the checkpoint reflects.
    pub index: u64,
    pub term: u64,
    pub plan: InstallPlan,
    /// Told the outcome; the raft task waits for it before it goes on.
    pub reply: crossbeam_channel::Sender<Result<(), String>>,
}

/// Encodes a descriptor for a raft snapshot's `data`.
pub fn encode_descriptor(d: &SnapshotDescriptor) -> Vec<u8> {
    d.encode_to_vec()
}

/// The descriptor in a raft snapshot's `data`.
pub fn descriptor(snap: &Snapshot) -> Result<SnapshotDescriptor, Error> {
    let d =
        SnapshotDescriptor::decode(&snap.data[..]).map_err(|e| Error::Descriptor(e.to_string()))?;
    if d.index != snap.get_metadata().index || d.term != snap.get_metadata().term {
        return Err(Error::Descriptor(format!(
            "descriptor names {}/{}, raft metadata {}/{}",
            d.index,
            d.term,
            snap.get_metadata().index,
            snap.get_metadata().term
        )));
    }
    Ok(d)
}

/// A checkpoint the leader made and summed.
#[derive(Clone, Debug)]
struct Prepared {
    index: u64,
    digest: CheckpointDigest,
}

#[derive(Default)]
struct Producer {
    ready: Option<Prepared>,
    building: bool,
}

/// The `snap` directory of one member: leader checkpoints, staging, received ones.
pub struct Snapshots {
    dir: PathBuf,
    cluster_id: u64,
    storage: Storage,
    producer: Arc<Mutex<Producer>>,
    /// Distinguishes staging dirs of concurrent receptions.
    next_tmp: AtomicU64,
    /// The applied index as the raft task last reported it, so a receiver refuses a
    /// stale snapshot before its files are sent (the raft task checks again).
    applied: AtomicU64,
}

impl Snapshots {
    /// Opens `<data_dir>/snap`, removing everything earlier runs left there: open it
    /// after `checkpoint::recover`, which is the only user of a leftover (the
    /// checkpoint of an interrupted install).
    pub fn open(
        data_dir: &Path,
        cluster_id: u64,
        storage: Storage,
    ) -> Result<Arc<Snapshots>, Error> {
        let dir = data_dir.join("snap");
        checkpoint::create_private_dir(&dir)?;
        let snaps = Snapshots {
            dir,
            cluster_id,
            storage,
            producer: Arc::default(),
            next_tmp: AtomicU64::new(0),
            applied: AtomicU64::new(0),
        };
        snaps.remove_where(|_| true);
        Ok(Arc::new(snaps))
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// Records the applied index (called by the raft task).
    pub fn note_applied(&self, index: u64) {
        self.applied.fetch_max(index, Ordering::Relaxed);
    }

    /// The applied index last recorded.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Where the leader keeps its checkpoint at `index`.
    pub fn checkpoint_dir(&self, index: u64) -> PathBuf {
        self.dir.join(format!("ckpt-{index}"))
    }

    /// Where a received, verified checkpoint at `index` waits for its install.
    pub fn received_dir(&self, index: u64) -> PathBuf {
        self.dir.join(format!("recv-{index}"))
    }

    fn tmp_dir(&self, what: &str) -> PathBuf {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("tmp-{what}-{}-{n}", std::process::id()))
    }

    /// Removes entries of the snap dir whose name `doomed` accepts; failures are logged
    /// (a leftover dir costs space, not correctness).
    fn remove_where(&self, doomed: impl Fn(&str) -> bool) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if doomed(&name) {
                if let Err(err) = fs::remove_dir_all(e.path()) {
                    tracing::warn!(path = %e.path().display(), error = %err, "cannot remove old snapshot dir");
                }
            }
        }
    }

    // ---- leader side -------------------------------------------------------------

    /// What `raft::Storage::snapshot` answers: the newest checkpoint if it is at least
    /// `min_index`, else `SnapshotTemporarilyUnavailable` while a new one is made on
    /// another thread. `term_of` gives the term of the checkpoint's index.
    pub fn raft_snapshot(
        &self,
        min_index: u64,
        term_of: impl Fn(u64) -> raft::Result<u64>,
        conf_state: &ConfState,
    ) -> raft::Result<Snapshot> {
        let unavailable = raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable);
        let mut p = self.producer.lock();
        if let Some(ready) = p.ready.clone() {
            if ready.index >= min_index {
                if let Ok(term) = term_of(ready.index) {
                    return Ok(self.build(&ready, term, conf_state));
                }
            }
        }
        if !p.building {
            p.building = true;
            drop(p);
            self.spawn_checkpoint();
        }
        Err(unavailable)
    }

    fn build(&self, ready: &Prepared, term: u64, conf_state: &ConfState) -> Snapshot {
        let d = SnapshotDescriptor {
            cluster_id: self.cluster_id,
            index: ready.index,
            term,
            total_bytes: ready.digest.total_bytes,
            sha1: ready.digest.sha1.clone(),
            files: ready.digest.files,
        };
        let mut meta = SnapshotMetadata {
            index: ready.index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(conf_state.clone());
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        snap.data = encode_descriptor(&d).into();
        snap
    }

    fn spawn_checkpoint(&self) {
        let tmp = self.tmp_dir("ckpt");
        let storage = self.storage.clone();
        let producer = self.producer.clone();
        let dir = self.dir.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let made = make_checkpoint(&storage, &dir, &tmp);
                let mut p = producer.lock();
                p.building = false;
                match made {
                    Ok(ready) => {
                        tracing::info!(
                            index = ready.index,
                            bytes = ready.digest.total_bytes,
                            "made a checkpoint for raft snapshots"
                        );
                        let old = p.ready.replace(ready.clone());
                        drop(p);
                        if let Some(old) = old.filter(|o| o.index != ready.index) {
                            let _ = fs::remove_dir_all(dir.join(format!("ckpt-{}", old.index)));
                        }
                    }
                    Err(e) => {
                        drop(p);
                        tracing::error!(error = %e, "cannot make a checkpoint for a raft snapshot");
                        let _ = fs::remove_dir_all(&tmp);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the snapshot thread");
            self.producer.lock().building = false;
        }
    }

    /// The descriptor and files of the checkpoint a MsgSnapshot names (sending side).
    pub fn outgoing(&self, msg: &Message) -> Result<(SnapshotDescriptor, PathBuf), Error> {
        let d = descriptor(msg.get_snapshot())?;
        let dir = self.checkpoint_dir(d.index);
        if !dir.is_dir() {
            return Err(Error::Missing(d.index));
        }
        Ok((d, dir))
    }

    // ---- receiving side ----------------------------------------------------------

    /// Checks a MsgSnapshot's descriptor before its files are accepted: our cluster,
    /// and (when known) newer than what we applied.
    pub fn check_descriptor(
        &self,
        d: &SnapshotDescriptor,
        applied: Option<u64>,
    ) -> Result<(), Error> {
        if d.cluster_id != self.cluster_id {
            return Err(Error::ClusterMismatch {
                remote: d.cluster_id,
                local: self.cluster_id,
            });
        }
        if let Some(applied) = applied {
            if d.index <= applied {
                return Err(Error::Stale {
                    index: d.index,
                    applied,
                });
            }
        }
        Ok(())
    }

    /// Starts receiving the checkpoint `d` describes.
    pub fn stage(&self, d: SnapshotDescriptor) -> Result<Staging, Error> {
        let dir = self.tmp_dir(&format!("recv-{}", d.index));
        checkpoint::create_private_dir(&dir)?;
        Ok(Staging {
            dir,
            final_dir: self.received_dir(d.index),
            parent: self.dir.clone(),
            expected: d,
            sum: Summer::default(),
            current: None,
            last_name: None,
        })
    }

    /// The raft task's admission check of a MsgSnapshot (module docs). `Ok` means raft
    /// may step it.
    pub fn admit(&self, msg: &Message, applied: u64) -> Result<(), Error> {
        debug_assert_eq!(msg.get_msg_type(), MessageType::MsgSnapshot);
        let d = descriptor(msg.get_snapshot())?;
        self.check_descriptor(&d, Some(applied))?;
        if !self.received_dir(d.index).is_dir() {
            return Err(Error::Missing(d.index));
        }
        Ok(())
    }

    /// The install plan for a snapshot raft handed to us in a Ready.
    pub fn plan(
        &self,
        snap: &Snapshot,
        raft_records: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<InstallPlan, Error> {
        let d = descriptor(snap)?;
        let dir = self.received_dir(d.index);
        if !dir.is_dir() {
            return Err(Error::Missing(d.index));
        }
        Ok(InstallPlan { dir, raft_records })
    }

    /// After an install: received checkpoints and staging dirs are no longer needed.
    pub fn installed(&self) {
        self.remove_where(|n| n.starts_with("recv-") || n.starts_with("tmp-recv-"));
    }
}

/// Makes, sums and files a checkpoint of `storage` (runs on the snapshot thread).
fn make_checkpoint(storage: &Storage, dir: &Path, tmp: &Path) -> Result<Prepared, Error> {
    checkpoint::create(storage, tmp)?;
    let index = checkpoint::applied_index(tmp)?;
    let digest = checkpoint::digest(tmp)?;
    let target = dir.join(format!("ckpt-{index}"));
    if target.exists() {
        fs::remove_dir_all(&target).map_err(io(&target))?;
    }
    fs::rename(tmp, &target).map_err(io(&target))?;
    checkpoint::fsync_dir(dir)?;
    Ok(Prepared { index, digest })
}

/// A checkpoint being received into a staging dir: files in name order, each chunk
/// at the offset where the previous one ended, summed as they arrive.
pub struct Staging {
    dir: PathBuf,
    final_dir: PathBuf,
    parent: PathBuf,
    expected: SnapshotDescriptor,
    sum: Summer,
    current: Option<(String, fs::File, u64)>,
    last_name: Option<String>,
}

impl Staging {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `data` at `offset` of `file`. A chunk with a new name closes the
    /// previous file; `len` is the new file's full length (first chunk only).
    pub fn write(&mut self, file: &str, offset: u64, len: u64, data: &[u8]) -> Result<(), Error> {
        let same = matches!(&self.current, Some((name, _, _)) if name == file);
        if !same {
            if offset != 0 {
                return Err(Error::Order(format!("{file} starts at offset {offset}")));
            }
            if file.is_empty() || file.starts_with('.') || file.contains('/') || file.contains('\0')
            {
                return Err(Error::BadName(file.to_string()));
            }
            if self.last_name.as_deref().is_some_and(|last| last >= file) {
                return Err(Error::Order(format!("{file} after {:?}", self.last_name)));
            }
            self.close_current()?;
            use std::os::unix::fs::OpenOptionsExt;
            let path = self.dir.join(file);
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
            self.sum.start_file(file, len);
            self.current = Some((file.to_string(), f, 0));
            self.last_name = Some(file.to_string());
        }
        let Some((name, f, written)) = self.current.as_mut() else {
            return Err(Error::Order("no file open".into()));
        };
        if offset != *written {
            return Err(Error::Order(format!(
                "{name}: chunk at {offset}, expected {written}"
            )));
        }
        let path = self.dir.join(&*name);
        f.write_all(data).map_err(io(&path))?;
        *written += data.len() as u64;
        self.sum.update(data);
        if self.sum_total() > self.expected.total_bytes {
            return Err(Error::Order(
                "more bytes than the descriptor announced".into(),
            ));
        }
        Ok(())
    }

    fn sum_total(&self) -> u64 {
        self.sum.total()
    }

    fn close_current(&mut self) -> Result<(), Error> {
        if let Some((name, f, _)) = self.current.take() {
            let path = self.dir.join(name);
            f.sync_all().map_err(io(&path))?;
        }
        Ok(())
    }

    /// Verifies the whole checkpoint against its descriptor and moves it to
    /// `recv-<index>` (synced), returning that dir. On error the staging dir stays
    /// for the caller's drop to remove.
    pub fn finish(mut self) -> Result<PathBuf, Error> {
        self.close_current()?;
        let got = std::mem::take(&mut self.sum).finish();
        let want = CheckpointDigest {
            files: self.expected.files,
            total_bytes: self.expected.total_bytes,
            sha1: self.expected.sha1.clone(),
        };
        if got != want {
            return Err(Error::Checksum {
                expected: show(&want),
                received: show(&got),
            });
        }
        checkpoint::fsync_dir(&self.dir)?;
        if self.final_dir.exists() {
            fs::remove_dir_all(&self.final_dir).map_err(io(&self.final_dir))?;
        }
        fs::rename(&self.dir, &self.final_dir).map_err(io(&self.final_dir))?;
        checkpoint::fsync_dir(&self.parent)?;
        Ok(self.final_dir.clone())
    }
}

impl Drop for Staging {
    /// An unfinished reception leaves nothing behind (after `finish` the dir is gone).
    fn drop(&mut self) {
        if self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn show(d: &CheckpointDigest) -> String {
    let hex: String = d.sha1.iter().map(|b| format!("{b:02x}")).collect();
    format!("{} files, {} bytes, sha1 {hex}", d.files, d.total_bytes)
}

#[cfg(test)]
mod tests;
