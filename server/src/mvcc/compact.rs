//! Physical compaction: removing history made unreachable by a compaction revision.
//!
//! Accepting a compaction (in the apply path) only records the revision. This module
//! removes the old versions afterwards on its own thread, in batches of at most
//! `batch_limit` keys with a pause between batches, so it never blocks writes for long.
//!
//! Only keys changed after the previous compaction can have new garbage: a version that
//! survived compaction at P is the newest at or below P, and it becomes garbage at C only
//! if the key changed in (P, C]. So each run walks the `rev` CF over (P, C] instead of
//! the whole keyspace, and its cost follows the writes, not the size of the store.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rocksdb::{ReadOptions, WriteBatch};

use super::record::{EventRecord, KeyRecord};
use super::{Error, KvStore, Result};
use crate::storage::keys::{self, Revision, REVISION_LEN};
use crate::storage::{encode_u64, meta, CF_KEY, CF_META, CF_REV};

/// Tunables of the background compactor (etcd's `--experimental-compaction-batch-limit`
/// and its sleep interval).
#[derive(Clone, Debug)]
pub struct CompactorConfig {
    pub batch_limit: usize,
    pub sleep_interval: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            batch_limit: 1000,
            sleep_interval: Duration::from_millis(10),
        }
    }
}

/// Handle to the compactor thread; dropping it stops the thread after its current batch.
pub struct Compactor {
    tx: Option<crossbeam_channel::Sender<i64>>,
    finished: tokio::sync::watch::Receiver<i64>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the thread and resumes a compaction interrupted by a crash.
    pub fn spawn(store: Arc<KvStore>, cfg: CompactorConfig) -> Result<Compactor> {
        let finished = store
            .storage()
            .get_meta_u64(meta::FINISHED_COMPACT_REV)?
            .unwrap_or(0) as i64;
        let (tx, rx) = crossbeam_channel::unbounded::<i64>();
        let (done_tx, done_rx) = tokio::sync::watch::channel(finished);
        let pending = store.compact_rev();
        if pending > finished {
            // Cannot fail: the receiver is alive until the thread below exits.
            let _ = tx.send(pending);
        }
        let thread = std::thread::Builder::new()
            .name("compactor".into())
            .spawn(move || {
                let mut done = finished;
                while let Ok(mut target) = rx.recv() {
                    // Coalesce queued compactions into the newest one.
                    while let Ok(t) = rx.try_recv() {
                        target = target.max(t);
                    }
                    if target <= done {
                        continue;
                    }
                    match compact_range(&store, done, target, &cfg) {
                        Ok(()) => {
                            done = target;
                            done_tx.send_replace(done);
                            tracing::info!(revision = target, "finished scheduled compaction");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, revision = target, "compaction failed");
                        }
                    }
                }
            })
            .map_err(|e| Error::Corrupt(format!("cannot start compactor thread: {e}")))?;
        Ok(Compactor {
            tx: Some(tx),
            finished: done_rx,
            thread: Some(thread),
        })
    }

    /// Asks for the history below `rev` to be removed.
    pub fn schedule(&self, rev: i64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(rev);
        }
    }

    /// The revision up to which removal has finished.
    pub fn finished(&self) -> tokio::sync::watch::Receiver<i64> {
        self.finished.clone()
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Removes garbage for compaction at `to`, given that compaction at `from` is done.
pub fn compact_range(store: &KvStore, from: i64, to: i64, cfg: &CompactorConfig) -> Result<()> {
    let storage = store.storage();
    let mut cursor = Revision::new(from + 1, 0).to_bytes().to_vec();
    let upper = Revision::new(to + 1, 0).to_bytes().to_vec();
    loop {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(upper.clone());
        let mut it = storage.db().raw_iterator_cf_opt(storage.cf(CF_REV), opts);
        it.seek(&cursor);
        let mut batch_keys = BTreeSet::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if batch_keys.len() >= cfg.batch_limit {
                break;
            }
            batch_keys.insert(EventRecord::decode(v)?.key);
            cursor = k.to_vec();
            cursor.push(0); // the smallest key after `k`
            it.next();
        }
        it.status()?;
        let exhausted = !it.valid();
        drop(it);
        let mut wb = WriteBatch::default();
        for key in &batch_keys {
            compact_key(store, key, to, &mut wb)?;
        }
        storage.write(wb, false)?;
        if exhausted {
            break;
        }
        std::thread::sleep(cfg.sleep_interval);
    }
    let mut wb = WriteBatch::default();
    wb.put_cf(
        storage.cf(CF_META),
        meta::FINISHED_COMPACT_REV,
        encode_u64(to as u64),
    );
    storage.write(wb, false)?;
    Ok(())
}

/// Deletes the versions of `key` that compaction at `at` made unreachable.
fn compact_key(store: &KvStore, key: &[u8], at: i64, wb: &mut WriteBatch) -> Result<()> {
    let storage = store.storage();
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(keys::after_all_versions(key));
    let mut it = storage.db().raw_iterator_cf_opt(storage.cf(CF_KEY), opts);
    it.seek(keys::version_key(key, Revision::new(at, i64::MAX)));
    let mut first = true;
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        // The first version found is the newest at or below `at`: it stays if live.
        if !first || KeyRecord::is_tombstone(v) {
            let rev = &k[k.len() - REVISION_LEN..];
            let rev = Revision::from_bytes(&rev.iter().map(|b| !b).collect::<Vec<_>>())
                .ok_or_else(|| Error::Corrupt("bad version key".into()))?;
            wb.delete_cf(storage.cf(CF_KEY), k);
            wb.delete_cf(storage.cf(CF_REV), rev.to_bytes());
        }
        first = false;
        it.next();
    }
    it.status()?;
    Ok(())
}
