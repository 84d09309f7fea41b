//! The raft log: entries in segment files ([`EntryLog`]), hard state and conf state in
//! the `raft` column family.
//!
//! CF keys: `hard_state`, `conf_state`, `truncated` (index and term of the last entry
//! removed by log compaction, so `term(first_index - 1)` still answers as the raft
//! crate requires). Older data dirs kept entries in the CF too, under
//! `b'e' ++ index(be u64)`; open moves them into the segment files.
//!
//! Durability: entries are synced before the hard state that could refer to them is
//! written, and a hard state is written (synced) only when its term or vote changes:
//! raft must never forget a vote. The commit index alone is not persisted, as in the
//! raft paper it is volatile: open raises it to the applied index (raft-rs requires
//! `applied <= commit`), and raft learns the rest again from the leader, or as a
//! single voter by committing an entry of its new term.
//!
//! This type is owned by the raft task (inside `RawNode`); only that task writes it.

use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{ReadOptions, WriteBatch};

use super::entry_log::{self, EntryLog, EntryLogConfig};
use super::snapshot::Snapshots;
use crate::storage::{meta, Storage, CF_RAFT};

const ENTRY_PREFIX: u8 = b'e';
const HARD_STATE: &[u8] = b"hard_state";
const CONF_STATE: &[u8] = b"conf_state";
const TRUNCATED: &[u8] = b"truncated";

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = ENTRY_PREFIX;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

fn log_err(e: entry_log::Error) -> raft::Error {
    match e {
        entry_log::Error::Compacted(_) => raft::Error::Store(StorageError::Compacted),
        entry_log::Error::Unavailable(_) => raft::Error::Store(StorageError::Unavailable),
        e => other(e),
    }
}

/// Raft's view of its persistent log.
pub struct LogStore {
    storage: Storage,
    log: EntryLog,
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the newest entry removed by compaction (0, 0 if none).
    truncated: (u64, u64),
    /// Where raft snapshots come from; without it raft is always told "temporarily
    /// unavailable" (a single member never needs one).
    snapshots: Option<Arc<Snapshots>>,
}

/// The CF records of a log store.
struct CfState {
    hard_state: HardState,
    conf_state: Option<ConfState>,
    truncated: (u64, u64),
}

fn read_cf_state(storage: &Storage) -> raft::Result<CfState> {
    let cf = storage.cf(CF_RAFT);
    let read = |key: &[u8]| storage.db().get_cf(cf, key).map_err(other);
    let hard_state = match read(HARD_STATE)? {
        Some(b) => HardState::parse_from_bytes(&b)?,
        None => HardState::default(),
    };
    let conf_state = match read(CONF_STATE)? {
        Some(b) => Some(ConfState::parse_from_bytes(&b)?),
        None => None,
    };
    let truncated = match read(TRUNCATED)? {
        Some(b) if b.len() == 16 => (
            crate::storage::decode_u64(&b[..8]).unwrap_or(0),
            crate::storage::decode_u64(&b[8..]).unwrap_or(0),
        ),
        _ => (0, 0),
    };
    Ok(CfState {
        hard_state,
        conf_state,
        truncated,
    })
}

impl LogStore {
    /// Loads the persisted state; a fresh store gets `initial_voters` as its
    /// configuration (written at once, so a restart sees the same bootstrap).
    pub fn open(storage: Storage, initial_voters: &[u64]) -> raft::Result<LogStore> {
        let initial = ConfState {
            voters: initial_voters.to_vec(),
            ..Default::default()
        };
        LogStore::open_with(storage, initial, EntryLogConfig::default())
    }

    /// Like [`LogStore::open`] with a whole initial configuration (a member joining a
    /// running cluster starts from the cluster's current voters and learners) and the
    /// entry log's tunables. The segment files live in `wal` beside the database.
    pub fn open_with(
        storage: Storage,
        initial: ConfState,
        log_cfg: EntryLogConfig,
    ) -> raft::Result<LogStore> {
        let mut state = read_cf_state(&storage)?;
        let conf_state = match state.conf_state {
            Some(cs) => cs,
            None => {
                // etcd's members start as followers at term 1 (its raft bootstraps the
                // initial membership there), so the first election makes term 2; a
                // member at term 0 would elect at term 1 and report terms one lower
                // than etcd's everywhere (`endpoint status`, response headers).
                if state.hard_state.term == 0 {
                    state.hard_state.term = 1;
                }
                let mut wb = WriteBatch::default();
                wb.put_cf(storage.cf(CF_RAFT), CONF_STATE, initial.write_to_bytes()?);
                wb.put_cf(
                    storage.cf(CF_RAFT),
                    HARD_STATE,
                    state.hard_state.write_to_bytes()?,
                );
                storage.write(wb, true).map_err(other)?;
                initial
            }
        };
        let dir = storage
            .path()
            .parent()
            .unwrap_or(storage.path())
            .join("wal");
        let log = EntryLog::open(&dir, log_cfg).map_err(log_err)?;
        let mut store = LogStore {
            storage,
            log,
            hard_state: state.hard_state,
            conf_state,
            truncated: state.truncated,
            snapshots: None,
        };
        store.migrate_cf_entries()?;
        store.fit_log_to_truncated()?;
        store.raise_commit_to_applied()?;
        Ok(store)
    }

    /// The configuration persisted in the raft CF, if any (what open would load).
    pub fn persisted_conf_state(storage: &Storage) -> raft::Result<Option<ConfState>> {
        Ok(read_cf_state(storage)?.conf_state)
    }

    /// Everything applied was committed; the commit index on disk may be older.
    fn raise_commit_to_applied(&mut self) -> raft::Result<()> {
        let applied = self
            .storage
            .get_meta_u64(meta::APPLIED_INDEX)
            .map_err(other)?
            .unwrap_or(0);
        if applied > self.log.last_index() {
            return Err(other(entry_log::Error::Corrupt {
                path: self.storage.path().to_path_buf(),
                what: format!(
                    "applied index {applied} is past the raft log's last entry {}",
                    self.log.last_index()
                ),
            }));
        }
        self.hard_state.commit = self.hard_state.commit.max(applied);
        Ok(())
    }

    /// Moves entries an older version kept in the raft CF into the segment files.
    fn migrate_cf_entries(&mut self) -> raft::Result<()> {
        let cf = self.storage.cf(CF_RAFT);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(entry_key(u64::MAX).to_vec());
        let mut it = self.storage.db().raw_iterator_cf_opt(cf, opts);
        it.seek(entry_key(self.truncated.0 + 1));
        let mut entries = Vec::new();
        while let Some(v) = it.value() {
            entries.push(Entry::parse_from_bytes(v)?);
            it.next();
        }
        it.status().map_err(other)?;
        drop(it);
        let mut it = self.storage.db().raw_iterator_cf(cf);
        it.seek(entry_key(0));
        let any = matches!(it.key(), Some(k) if k.first() == Some(&ENTRY_PREFIX) && k.len() == 9);
        drop(it);
        if !any {
            return Ok(());
        }
        if let Some(head) = entries.first() {
            self.log.reset(head.index - 1).map_err(log_err)?;
            self.log.append(&entries).map_err(log_err)?;
            self.log.sync().map_err(log_err)?;
        }
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(cf, entry_key(0), entry_key(u64::MAX));
        self.storage.write(wb, true).map_err(other)?;
        tracing::info!(
            entries = entries.len(),
            "moved raft log entries into segment files"
        );
        Ok(())
    }

    /// Makes the log start right after `truncated`: entries at or below it are
    /// dropped, and a log that does not continue from it (a snapshot install replaced
    /// the state before the log was cleared, or nothing is left) starts empty there.
    fn fit_log_to_truncated(&mut self) -> raft::Result<()> {
        let (index, term) = self.truncated;
        let continues = self.log.first_index() <= index + 1
            && self.log.last_index() >= index
            && (index < self.log.first_index() || self.log.term(index) == Some(term));
        if continues {
            self.log.compact(index).map_err(log_err)?;
        } else {
            if self.log.last_index() >= self.log.first_index() {
                tracing::warn!(
                    truncated = index,
                    first = self.log.first_index(),
                    last = self.log.last_index(),
                    "dropping raft log entries that do not continue from the snapshot"
                );
            }
            self.log.reset(index).map_err(log_err)?;
        }
        Ok(())
    }

    /// Serves raft snapshots from `snapshots`.
    pub fn with_snapshots(mut self, snapshots: Arc<Snapshots>) -> LogStore {
        self.snapshots = Some(snapshots);
        self
    }

    pub fn snapshots(&self) -> Option<&Arc<Snapshots>> {
        self.snapshots.as_ref()
    }

    /// What the raft CF must hold once a snapshot at `meta` is installed, with the
    /// semantics of raft-rs's `MemStorage::apply_snapshot`: the log is empty and
    /// starts after the snapshot (`truncated` = its index and term), the commit index
    /// is the snapshot's, the term never goes back, the vote is kept, and the conf
    /// state is the snapshot's.
    pub fn snapshot_records(
        &self,
        meta: &SnapshotMetadata,
    ) -> raft::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        let mut t = Vec::with_capacity(16);
        t.extend_from_slice(&meta.index.to_be_bytes());
        t.extend_from_slice(&meta.term.to_be_bytes());
        Ok(vec![
            (HARD_STATE.to_vec(), hs.write_to_bytes()?),
            (CONF_STATE.to_vec(), meta.get_conf_state().write_to_bytes()?),
            (TRUNCATED.to_vec(), t),
        ])
    }

    /// Re-reads the raft CF (after a snapshot install rewrote it) and empties the
    /// entry log to continue after the snapshot.
    pub fn reload(&mut self) -> raft::Result<()> {
        let state = read_cf_state(&self.storage)?;
        self.hard_state = state.hard_state;
        if let Some(cs) = state.conf_state {
            self.conf_state = cs;
        }
        self.truncated = state.truncated;
        self.log.reset(self.truncated.0).map_err(log_err)
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Appends `entries` (replacing any conflicting tail) and saves `hs`: the one
    /// fsync that all proposals of one Ready share, and a second only when the term or
    /// vote changed.
    pub fn append(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        if let Some(first) = entries.first() {
            if first.index <= self.truncated.0 {
                return Err(raft::Error::Store(StorageError::Compacted));
            }
            self.log.append(entries).map_err(log_err)?;
            self.log.sync().map_err(log_err)?;
        }
        if let Some(hs) = hs {
            // A follower's hard state changes with every commit index it learns; writing
            // those would put a RocksDB write (and its mutex, shared with the applier)
            // between the log fsync and the append ack, for nothing open needs.
            if hs.term != self.hard_state.term || hs.vote != self.hard_state.vote {
                let mut wb = WriteBatch::default();
                wb.put_cf(self.storage.cf(CF_RAFT), HARD_STATE, hs.write_to_bytes()?);
                self.storage.write(wb, true).map_err(other)?;
            }
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records a new commit index, in memory only (module docs).
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    pub fn set_conf_state(&mut self, cs: ConfState) -> raft::Result<()> {
        let mut wb = WriteBatch::default();
        wb.put_cf(self.storage.cf(CF_RAFT), CONF_STATE, cs.write_to_bytes()?);
        self.storage.write(wb, true).map_err(other)?;
        self.conf_state = cs;
        Ok(())
    }

    /// Adds the configuration a conf change produced to `wb`, the applier's batch, so it
    /// is persisted in the same write as the applied index and the membership: after a
    /// crash either all three moved past the conf change entry or it is applied again.
    pub fn put_conf_state(
        storage: &Storage,
        wb: &mut WriteBatch,
        cs: &ConfState,
    ) -> raft::Result<()> {
        wb.put_cf(storage.cf(CF_RAFT), CONF_STATE, cs.write_to_bytes()?);
        Ok(())
    }

    /// Records in memory the configuration the raft node switched to; the applier
    /// persists it ([`LogStore::put_conf_state`]).
    pub fn note_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Drops entries up to and including `index` (which must be applied). The synced
    /// write of the new truncation point also makes the applier's unsynced writes
    /// durable (one RocksDB WAL), so the state those entries led to survives a crash
    /// before they are deleted.
    pub fn compact(&mut self, index: u64) -> raft::Result<()> {
        if index <= self.truncated.0 || index > self.log.last_index() {
            return Ok(());
        }
        let term = raft::Storage::term(self, index)?;
        let mut t = Vec::with_capacity(16);
        t.extend_from_slice(&index.to_be_bytes());
        t.extend_from_slice(&term.to_be_bytes());
        let mut wb = WriteBatch::default();
        wb.put_cf(self.storage.cf(CF_RAFT), TRUNCATED, t);
        self.storage.write(wb, true).map_err(other)?;
        self.truncated = (index, term);
        self.log.compact(index).map_err(log_err)
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.log.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        self.log.entries(low, high, max_size).map_err(log_err)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        if idx < self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.log
            .term(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.log.last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Raft asks when a follower's log is behind `first_index`. The snapshot must
        // reach at least the compacted index, or the follower could not continue from
        // the log after installing it.
        match &self.snapshots {
            Some(s) => s.raft_snapshot(
                request_index.max(self.truncated.0),
                |i| raft::Storage::term(self, i),
                &self.conf_state,
            ),
            None => Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8].into(),
            ..Default::default()
        }
    }

    /// A log store whose segments hold a few entries each.
    fn open_small(st: &Storage, voters: &[u64]) -> LogStore {
        let cs = ConfState {
            voters: voters.to_vec(),
            ..Default::default()
        };
        let cfg = EntryLogConfig {
            segment_bytes: 128,
            cache_bytes: 0,
        };
        LogStore::open_with(st.clone(), cs, cfg).expect("log")
    }

    #[test]
    fn compaction_drops_segments_and_a_reopen_starts_after_the_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let mut log = open_small(&st, &[1]);
        let es: Vec<_> = (1..=40).map(|i| entry(i, 1)).collect();
        log.append(&es, None).expect("append");
        let wal = dir.path().join("wal");
        let files = || std::fs::read_dir(&wal).expect("wal dir").count();
        let before = files();
        log.compact(30).expect("compact");
        assert!(
            files() < before,
            "{} segments before, {} after",
            before,
            files()
        );
        drop(log);
        let log = open_small(&st, &[1]);
        assert_eq!(
            (log.first_index().expect("f"), log.last_index().expect("l")),
            (31, 40)
        );
        assert_eq!(log.term(30).expect("t"), 1);
        let got = log
            .entries(31, 41, None, GetEntriesContext::empty(false))
            .expect("e");
        assert_eq!(got, es[30..].to_vec());
    }

    #[test]
    fn entries_an_older_version_kept_in_the_cf_move_to_the_segment_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let cf = st.cf(CF_RAFT);
        let mut wb = WriteBatch::default();
        for i in 1..=5 {
            wb.put_cf(
                cf,
                entry_key(i),
                entry(i, 2).write_to_bytes().expect("encode"),
            );
        }
        st.write(wb, true).expect("write");
        let log = LogStore::open(st.clone(), &[1]).expect("log");
        assert_eq!(log.last_index().expect("l"), 5);
        assert_eq!(log.term(5).expect("t"), 2);
        drop(log);
        let mut it = st.db().raw_iterator_cf(cf);
        it.seek(entry_key(0));
        assert!(
            !matches!(it.key(), Some(k) if k.first() == Some(&ENTRY_PREFIX) && k.len() == 9),
            "the CF copies are gone"
        );
        drop(it);
        let log = LogStore::open(st, &[1]).expect("reopen");
        let got = log
            .entries(1, 6, None, GetEntriesContext::empty(false))
            .expect("e");
        assert_eq!(got, (1..=5).map(|i| entry(i, 2)).collect::<Vec<_>>());
    }

    #[test]
    fn append_overwrite_compact_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let mut log = LogStore::open(st.clone(), &[1]).expect("log");
        assert_eq!(log.conf_state().voters, vec![1]);
        assert_eq!(
            (log.first_index().expect("f"), log.last_index().expect("l")),
            (1, 0)
        );
        let es: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 0,
            ..Default::default()
        };
        log.append(&es, Some(&hs)).expect("append");
        assert_eq!(
            log.entries(2, 4, None, GetEntriesContext::empty(false))
                .expect("e")
                .len(),
            2
        );
        // A new leader's entries replace the conflicting tail.
        log.append(&[entry(3, 2)], None).expect("append");
        assert_eq!(log.last_index().expect("l"), 3);
        assert_eq!(log.term(3).expect("t"), 2);
        // Size limit still returns one entry.
        assert_eq!(
            log.entries(1, 4, 0, GetEntriesContext::empty(false))
                .expect("e")
                .len(),
            1
        );
        log.compact(2).expect("compact");
        assert_eq!(log.first_index().expect("f"), 3);
        assert_eq!(log.term(2).expect("t"), 1);
        assert!(log.term(1).is_err());
        assert!(log
            .entries(2, 3, None, GetEntriesContext::empty(false))
            .is_err());
        // The commit index is not written; the applied index stands in for it at open.
        log.set_commit(3);
        drop(log);
        let mut wb = WriteBatch::default();
        wb.put_cf(
            st.cf(crate::storage::CF_META),
            meta::APPLIED_INDEX,
            crate::storage::encode_u64(3),
        );
        st.write(wb, true).expect("applied");
        let log = LogStore::open(st, &[7]).expect("reopen");
        assert_eq!(log.conf_state().voters, vec![1]);
        assert_eq!(
            (log.first_index().expect("f"), log.last_index().expect("l")),
            (3, 3)
        );
        assert_eq!(log.hard_state().commit, 3);
        assert_eq!(log.hard_state().vote, 1);
    }
}
