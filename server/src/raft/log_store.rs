//! The raft log, hard state and conf state in the `raft` column family.
//!
//! Keys: `b'e' ++ index(be u64)` -> entry (the raft crate's protobuf encoding);
//! `hard_state`, `conf_state`, `truncated` (index and term of the last entry removed by
//! log compaction, so `term(first_index - 1)` still answers as the raft crate requires).
//!
//! This type is owned by the raft task (inside `RawNode`); only that task writes it.

use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{ReadOptions, WriteBatch};

use super::snapshot::Snapshots;
use crate::storage::{Storage, CF_RAFT};

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

/// Raft's view of its persistent log.
pub struct LogStore {
    storage: Storage,
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the newest entry removed by compaction (0, 0 if none).
    truncated: (u64, u64),
    last_index: u64,
    /// Where raft snapshots come from; without it raft is always told "temporarily
    /// unavailable" (a single member never needs one).
    snapshots: Option<Arc<Snapshots>>,
}

impl LogStore {
    /// Loads the persisted state; a fresh store gets `initial_voters` as its
    /// configuration (written at once, so a restart sees the same bootstrap).
    pub fn open(storage: Storage, initial_voters: &[u64]) -> raft::Result<LogStore> {
        let initial = ConfState {
            voters: initial_voters.to_vec(),
            ..Default::default()
        };
        LogStore::open_with(storage, initial)
    }

    /// Like [`LogStore::open`] with a whole initial configuration: a member joining a
    /// running cluster starts from the cluster's current voters and learners.
    pub fn open_with(storage: Storage, initial: ConfState) -> raft::Result<LogStore> {
        let cf = storage.cf(CF_RAFT);
        let db = storage.db();
        let read = |key: &[u8]| db.get_cf(cf, key).map_err(other);
        let hard_state = match read(HARD_STATE)? {
            Some(b) => HardState::parse_from_bytes(&b)?,
            None => HardState::default(),
        };
        let conf_state = match read(CONF_STATE)? {
            Some(b) => ConfState::parse_from_bytes(&b)?,
            None => {
                let cs = initial;
                let mut wb = WriteBatch::default();
                wb.put_cf(cf, CONF_STATE, cs.write_to_bytes()?);
                storage.write(wb, true).map_err(other)?;
                cs
            }
        };
        let truncated = match read(TRUNCATED)? {
            Some(b) if b.len() == 16 => (
                crate::storage::decode_u64(&b[..8]).unwrap_or(0),
                crate::storage::decode_u64(&b[8..]).unwrap_or(0),
            ),
            _ => (0, 0),
        };
        let mut it = db.raw_iterator_cf(cf);
        it.seek_for_prev(entry_key(u64::MAX));
        let last_index = match it.key() {
            Some(k) if k.len() == 9 && k[0] == ENTRY_PREFIX => {
                crate::storage::decode_u64(&k[1..]).unwrap_or(0)
            }
            _ => truncated.0,
        };
        drop(it);
        Ok(LogStore {
            storage,
            hard_state,
            conf_state,
            truncated,
            last_index,
            snapshots: None,
        })
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

    /// Re-reads everything from the raft CF (after a snapshot install rewrote it).
    pub fn reload(&mut self) -> raft::Result<()> {
        let fresh = LogStore::open(self.storage.clone(), &self.conf_state.voters)?;
        let snapshots = self.snapshots.take();
        *self = LogStore { snapshots, ..fresh };
        Ok(())
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Appends `entries` (replacing any conflicting tail) and saves `hs`, in one synced
    /// write: the single fsync that all proposals of one Ready share.
    pub fn append(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        let cf = self.storage.cf(CF_RAFT);
        let mut wb = WriteBatch::default();
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            if first.index <= self.truncated.0 {
                return Err(raft::Error::Store(StorageError::Compacted));
            }
            for e in entries {
                wb.put_cf(cf, entry_key(e.index), e.write_to_bytes()?);
            }
            if last.index < self.last_index {
                wb.delete_range_cf(
                    cf,
                    entry_key(last.index + 1),
                    entry_key(self.last_index + 1),
                );
            }
        }
        if let Some(hs) = hs {
            wb.put_cf(cf, HARD_STATE, hs.write_to_bytes()?);
        }
        self.storage.write(wb, true).map_err(other)?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
        }
        if let Some(hs) = hs {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records a new commit index. Unsynced: it only has to reach the WAL before the
    /// apply batch that uses it, and the shared WAL orders the two.
    pub fn set_commit(&mut self, commit: u64) -> raft::Result<()> {
        self.hard_state.commit = commit;
        let mut wb = WriteBatch::default();
        wb.put_cf(
            self.storage.cf(CF_RAFT),
            HARD_STATE,
            self.hard_state.write_to_bytes()?,
        );
        self.storage.write(wb, false).map_err(other)
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

    /// Drops entries up to and including `index` (which must be applied).
    pub fn compact(&mut self, index: u64) -> raft::Result<()> {
        if index <= self.truncated.0 || index > self.last_index {
            return Ok(());
        }
        let term = raft::Storage::term(self, index)?;
        let cf = self.storage.cf(CF_RAFT);
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(cf, entry_key(0), entry_key(index + 1));
        let mut t = Vec::with_capacity(16);
        t.extend_from_slice(&index.to_be_bytes());
        t.extend_from_slice(&term.to_be_bytes());
        wb.put_cf(cf, TRUNCATED, t);
        self.storage.write(wb, false).map_err(other)?;
        self.truncated = (index, term);
        Ok(())
    }

    fn read_entry(&self, index: u64) -> raft::Result<Entry> {
        let raw = self
            .storage
            .db()
            .get_pinned_cf(self.storage.cf(CF_RAFT), entry_key(index))
            .map_err(other)?
            .ok_or(raft::Error::Store(StorageError::Unavailable))?;
        Ok(Entry::parse_from_bytes(&raw)?)
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
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(entry_key(high).to_vec());
        let mut it = self
            .storage
            .db()
            .raw_iterator_cf_opt(self.storage.cf(CF_RAFT), opts);
        it.seek(entry_key(low));
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        while let Some(v) = it.value() {
            size += v.len() as u64;
            // Always return at least one entry, as the trait requires.
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(Entry::parse_from_bytes(v)?);
            it.next();
        }
        it.status().map_err(other)?;
        if out.len() as u64 != high - low && size <= max_size {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        if idx < self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.read_entry(idx)?.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
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
        log.set_commit(3).expect("commit");
        drop(log);
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
