//! The write side: one RocksDB write batch per batch of applied raft entries.

use std::collections::{BTreeMap, BTreeSet};

use revkv_proto::mvccpb::{event::EventType, Event, KeyValue};
use rocksdb::{DBRawIteratorWithThreadMode, WriteBatch, DB};

use super::record::{EventRecord, KeyRecord};
use super::scan::{merge_newer, KeyRange, Version, VersionScan};
use super::store::{collect, resolve_read_rev};
use super::{Error, KvStore, RangeOptions, RangeResult, Result};
use crate::storage::keys::{self, Revision};
use crate::storage::{encode_u64, meta, CF_KEY, CF_LEASE, CF_META, CF_REV};

/// Accumulates the changes of several requests into one atomic RocksDB write.
///
/// Requests applied earlier in the batch are visible to later ones through an in-memory
/// overlay of the versions written so far (only this batch's keys, so its size is
/// bounded by the batch, not by the store). Nothing is visible to readers of
/// [`KvStore::range`] until [`ApplyBatch::commit`].
pub struct ApplyBatch<'s> {
    store: &'s KvStore,
    batch: WriteBatch,
    /// Versions written by this batch, per key, oldest first.
    overlay: BTreeMap<Vec<u8>, Vec<(Revision, KeyRecord)>>,
    /// Lease attachments changed by this batch: (lease, key) -> attached?
    attachments: BTreeMap<(i64, Vec<u8>), bool>,
    rev: i64,
    compact: Option<i64>,
    events: Vec<Event>,
    /// One iterator over the `key` CF for every previous-version lookup of the batch
    /// (made on first use): creating a RocksDB iterator costs more than the seek.
    /// It sees the store as of its creation, which is the store before this batch,
    /// since the batch is written only at commit; `overlay` has the batch's own writes.
    latest: Option<DBRawIteratorWithThreadMode<'s, DB>>,
}

/// What a committed batch changed.
#[derive(Debug, Default)]
pub struct Committed {
    /// PUT and DELETE events in revision order (for watchers).
    pub events: Vec<Event>,
    /// A compaction revision accepted in this batch (for the compactor).
    pub compact_rev: Option<i64>,
    /// The store's current revision after the batch.
    pub rev: i64,
}

impl<'s> ApplyBatch<'s> {
    pub fn new(store: &'s KvStore) -> Self {
        ApplyBatch {
            store,
            batch: WriteBatch::default(),
            overlay: BTreeMap::new(),
            attachments: BTreeMap::new(),
            rev: store.current_rev(),
            compact: None,
            events: Vec::new(),
            latest: None,
        }
    }

    /// The newest version of `key` without its value (tombstones included), or `None`
    /// if the key was never written (or compacted away).
    fn latest_meta(&mut self, key: &[u8]) -> Result<Option<KeyRecord>> {
        if let Some((_, rec)) = self.overlay.get(key).and_then(|v| v.last()) {
            return Ok(Some(KeyRecord {
                tombstone: rec.tombstone,
                create_revision: rec.create_revision,
                version: rec.version,
                lease: rec.lease,
                value: Vec::new(),
            }));
        }
        let store = self.store;
        let it = self.latest.get_or_insert_with(|| {
            let storage = store.storage();
            // Prefix mode: a seek stays within its key and skips, by the prefix
            // blooms, every memtable and table that never held the key.
            let mut opts = rocksdb::ReadOptions::default();
            opts.set_prefix_same_as_start(true);
            storage.db().raw_iterator_cf_opt(storage.cf(CF_KEY), opts)
        });
        let prefix = keys::encode_user_key(key);
        it.seek(keys::newest_version(key));
        match (it.key(), it.value()) {
            (Some(k), Some(v))
                if k.len() == prefix.len() + keys::REVISION_LEN && k.starts_with(&prefix) =>
            {
                Ok(Some(KeyRecord::decode_meta(v)?))
            }
            _ => {
                it.status()?;
                Ok(None)
            }
        }
    }

    /// Starts one request's changes; they share the next main revision.
    pub fn txn(&mut self) -> WriteTxn<'_, 's> {
        let begin_rev = self.rev;
        WriteTxn {
            batch: self,
            begin_rev,
            changes: 0,
        }
    }

    /// The store the batch writes to.
    pub fn store(&self) -> &'s KvStore {
        self.store
    }

    /// The current revision including this batch's finished requests.
    pub fn rev(&self) -> i64 {
        self.rev
    }

    /// The underlying batch, so other state (leases, membership) commits atomically with
    /// the keyspace.
    pub fn write_batch(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// Accepts a compaction at `rev` (etcd's checks); the physical removal happens
    /// later, off the apply path.
    pub fn compact(&mut self, rev: i64) -> Result<()> {
        let compacted = self.compact.unwrap_or_else(|| self.store.compact_rev());
        if rev <= compacted {
            return Err(Error::Compacted);
        }
        if rev > self.rev {
            return Err(Error::FutureRev);
        }
        let cf = self.store.storage().cf(CF_META);
        self.batch
            .put_cf(cf, meta::COMPACT_REV, encode_u64(rev as u64));
        self.compact = Some(rev);
        Ok(())
    }

    /// Writes the batch (unsynced: the raft log already holds these entries durably, and
    /// `applied_index` in the same batch makes replay after a crash idempotent), then
    /// publishes the new revision to readers.
    pub fn commit(mut self, applied_index: Option<u64>) -> Result<Committed> {
        let storage = self.store.storage();
        let meta_cf = storage.cf(CF_META);
        self.batch
            .put_cf(meta_cf, meta::CURRENT_REV, encode_u64(self.rev as u64));
        if let Some(i) = applied_index {
            self.batch
                .put_cf(meta_cf, meta::APPLIED_INDEX, encode_u64(i));
        }
        storage.write(self.batch, false)?;
        self.store.publish_current_rev(self.rev);
        if let Some(c) = self.compact {
            self.store.publish_compact_rev(c);
        }
        Ok(Committed {
            events: self.events,
            compact_rev: self.compact,
            rev: self.rev,
        })
    }

    fn write(&mut self, key: &[u8], rev: Revision, record: KeyRecord) {
        let storage = self.store.storage();
        self.batch.put_cf(
            storage.cf(CF_KEY),
            keys::version_key(key, rev),
            record.encode(),
        );
        let event = EventRecord {
            tombstone: record.tombstone,
            key: key.to_vec(),
        };
        self.batch
            .put_cf(storage.cf(CF_REV), rev.to_bytes(), event.encode());
        let (kind, kv) = if record.tombstone {
            let kv = KeyValue {
                key: key.to_vec(),
                mod_revision: rev.main,
                ..Default::default()
            };
            (EventType::Delete, kv)
        } else {
            (EventType::Put, record.to_key_value(key, rev))
        };
        self.events.push(Event {
            r#type: kind as i32,
            kv: Some(kv),
            prev_kv: None,
        });
        self.overlay
            .entry(key.to_vec())
            .or_default()
            .push((rev, record));
    }

    /// Records that `key` is (or no longer is) attached to `lease`, in the `lease` CF.
    fn attach(&mut self, lease: i64, key: &[u8], attached: bool) {
        let k = keys::lease_attachment_key(lease, key);
        let cf = self.store.storage().cf(CF_LEASE);
        if attached {
            self.batch.put_cf(cf, k, []);
        } else {
            self.batch.delete_cf(cf, k);
        }
        self.attachments.insert((lease, key.to_vec()), attached);
    }

    /// The keys attached to `lease`, including this batch's changes, in key order.
    pub fn attached_keys(&self, lease: i64) -> Result<Vec<Vec<u8>>> {
        let storage = self.store.storage();
        let prefix = keys::lease_attachment_prefix(lease);
        let mut set = BTreeSet::new();
        let mut it = storage.db().raw_iterator_cf(storage.cf(CF_LEASE));
        it.seek(&prefix);
        while let Some(k) = it.key() {
            if !k.starts_with(&prefix) {
                break;
            }
            set.insert(k[prefix.len()..].to_vec());
            it.next();
        }
        it.status()?;
        for ((l, key), attached) in self.attachments.range((lease, Vec::new())..) {
            if *l != lease {
                break;
            }
            if *attached {
                set.insert(key.clone());
            } else {
                set.remove(key);
            }
        }
        Ok(set.into_iter().collect())
    }

    /// Newest version of each overlay key in `range` at or below `rev`.
    fn overlay_versions<'a>(
        &'a self,
        range: &'a KeyRange,
        rev: i64,
    ) -> impl Iterator<Item = Version> + 'a {
        self.overlay
            .iter()
            .filter(move |(k, _)| range.contains(k))
            .filter_map(move |(k, versions)| {
                let (r, rec) = versions.iter().rev().find(|(r, _)| r.main <= rev)?;
                Some(Version {
                    key: k.clone(),
                    rev: *r,
                    record: rec.clone(),
                })
            })
    }
}

/// The changes of one request. All its changes get main revision `begin_rev + 1` and
/// consecutive sub revisions; reads inside it see its own earlier changes (etcd's
/// `storeTxnWrite`).
pub struct WriteTxn<'b, 's> {
    batch: &'b mut ApplyBatch<'s>,
    begin_rev: i64,
    changes: i64,
}

impl WriteTxn<'_, '_> {
    /// The revision reads in this request see: its own revision once it changed something.
    pub fn read_rev(&self) -> i64 {
        if self.changes > 0 {
            self.begin_rev + 1
        } else {
            self.begin_rev
        }
    }

    /// Reads below this revision fail (including a compaction accepted in this batch).
    pub fn compact_rev(&self) -> i64 {
        self.batch
            .compact
            .unwrap_or_else(|| self.batch.store.compact_rev())
    }

    /// Range read over committed data plus this batch's overlay.
    pub fn range(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        let current = self.read_rev();
        let rev = resolve_read_rev(opts.rev, current, self.compact_rev())?;
        let range = KeyRange::new(key, range_end);
        let db = VersionScan::new(
            self.batch.store.storage(),
            None,
            &range,
            rev,
            opts.with_values(),
        );
        let merged = merge_newer(db, self.batch.overlay_versions(&range, rev));
        collect(merged, opts, current)
    }

    /// The live version of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        Ok(self.range(key, &[], RangeOptions::default())?.kvs.pop())
    }

    /// Writes `key = value` attached to `lease` (0 = none); returns the revision.
    /// Moving a key to another lease (or to none) detaches it from the old one.
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> Result<i64> {
        let rev = self.begin_rev + 1;
        let prev = self.batch.latest_meta(key)?.filter(|p| !p.tombstone);
        let (create_revision, version) = match &prev {
            Some(prev) => (prev.create_revision, prev.version + 1),
            None => (rev, 1),
        };
        let prev_lease = prev.map_or(0, |p| p.lease);
        if prev_lease != 0 && prev_lease != lease {
            self.batch.attach(prev_lease, key, false);
        }
        if lease != 0 && prev_lease != lease {
            self.batch.attach(lease, key, true);
        }
        let record = KeyRecord {
            tombstone: false,
            create_revision,
            version,
            lease,
            value,
        };
        self.batch
            .write(key, Revision::new(rev, self.changes), record);
        self.changes += 1;
        Ok(rev)
    }

    /// Deletes every live key in the range (detaching each from its lease); returns how
    /// many and the revision.
    pub fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Result<(i64, i64)> {
        // Keys only: a prefix delete of half a million 1 KiB values (etcdctl check
        // perf's clean-up) would otherwise copy every value just to drop it.
        let opts = RangeOptions {
            keys_only: true,
            ..RangeOptions::default()
        };
        let live = self.range(key, range_end, opts)?;
        let rev = self.begin_rev + 1;
        for kv in &live.kvs {
            // A deleted key no longer belongs to its lease (etcd detaches it too);
            // otherwise revoking the lease later would delete a re-created key.
            if kv.lease != 0 {
                self.batch.attach(kv.lease, &kv.key, false);
            }
            self.batch.write(
                &kv.key,
                Revision::new(rev, self.changes),
                KeyRecord::tombstone(),
            );
            self.changes += 1;
        }
        Ok((live.kvs.len() as i64, self.read_rev()))
    }

    /// The keys attached to `lease` as of this request.
    pub fn attached_keys(&self, lease: i64) -> Result<Vec<Vec<u8>>> {
        self.batch.attached_keys(lease)
    }

    /// Finishes the request; returns the store's revision after it.
    pub fn end(self) -> i64 {
        if self.changes > 0 {
            self.batch.rev = self.begin_rev + 1;
        }
        self.batch.rev
    }
}
