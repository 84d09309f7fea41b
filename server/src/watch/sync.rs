//! Catch-up of unsynced watchers from history, and the background tasks that drive it
//! and the victim retries (etcd's `syncWatchersLoop` and `syncVictimsLoop`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use revkv_proto::mvccpb::Event;

use super::group::{WatcherGroup, WatcherId};
use super::hub::{remove_watcher, Hub, Phase, State};
use super::Delivery;
use crate::mvcc::{self, history};

/// The outcome of one catch-up round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRound {
    /// Unsynced watchers left (roughly: entries of canceled watchers still count).
    pub remaining: usize,
    /// Whether the round read any history.
    pub progressed: bool,
}

/// The watchers of one catch-up round and the history span they need.
pub(super) struct Plan {
    batch: Vec<WatcherId>,
    group: WatcherGroup,
    from: i64,
    to: i64,
}

/// How long an idle background task waits before checking that the hub still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl Hub {
    /// Starts the catch-up and victim tasks on the current tokio runtime. They hold
    /// only a weak reference and stop once the hub is dropped.
    pub fn spawn_tasks(self: &Arc<Self>) {
        tokio::spawn(sync_loop(Arc::downgrade(self)));
        tokio::spawn(victim_loop(Arc::downgrade(self)));
    }

    /// One catch-up round: up to `max_watchers_per_sync` unsynced watchers get the
    /// next bounded slice of history they are missing. Reads disk, so it runs on a
    /// blocking thread, and it holds the lock only to pick watchers and to deliver.
    pub fn sync_once(&self) -> SyncRound {
        let plan = self.plan();
        if plan.batch.is_empty() {
            return SyncRound {
                remaining: self.state.lock().unsynced.len(),
                progressed: false,
            };
        }
        let read = self.read(&plan);
        self.finish(plan, read)
    }

    /// Picks the round's watchers (under the lock).
    pub(super) fn plan(&self) -> Plan {
        let mut guard = self.state.lock();
        self.choose(&mut guard)
    }

    /// Reads the history the round's watchers miss (no lock held).
    pub(super) fn read(&self, plan: &Plan) -> mvcc::Result<history::HistoryBatch> {
        history::read_events(
            &self.store,
            plan.from,
            plan.to,
            self.cfg.history,
            false,
            |k| plan.group.watches(k),
        )
    }

    /// Delivers what was read and files each watcher as synced, unsynced or victim
    /// (under the lock).
    pub(super) fn finish(
        &self,
        plan: Plan,
        read: mvcc::Result<history::HistoryBatch>,
    ) -> SyncRound {
        let Plan {
            batch,
            group,
            from,
            to,
        } = plan;
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                if !matches!(e, mvcc::Error::Compacted) {
                    tracing::error!(error = %e, "watch catch-up failed to read history");
                }
                // A compaction raced the read: the next round cancels whom it hit.
                for wid in batch {
                    if let Some(w) = st.watchers.get_mut(&wid) {
                        if matches!(w.phase, Phase::Syncing) {
                            w.phase = Phase::Unsynced;
                            st.unsynced.push_back(wid);
                        }
                    }
                }
                return SyncRound {
                    remaining: st.unsynced.len(),
                    progressed: false,
                };
            }
        };
        let read_to = read.next_rev - 1;
        let exhausted = read.next_rev > to;
        let mut per: HashMap<WatcherId, Vec<Arc<Event>>> = HashMap::new();
        for ev in read.events.into_iter().map(Arc::new) {
            if let Some(kv) = &ev.kv {
                group.matching(&kv.key, |id| per.entry(id).or_default().push(ev.clone()));
            }
        }
        let notified = st.notified_rev;
        for wid in batch {
            let Some(w) = st.watchers.get(&wid) else {
                continue;
            };
            if !matches!(w.phase, Phase::Syncing) {
                continue;
            }
            let mut events: Vec<Arc<Event>> = per
                .remove(&wid)
                .unwrap_or_default()
                .into_iter()
                .filter(|e| w.accepts(e))
                .collect();
            let mut upto = read_to;
            if exhausted && read_to < notified {
                // Handover: apply notified more while we read; take the gap from
                // memory if it is still there, so the watcher is synced right now.
                if let Some(gap) = st.recent.since(read_to, notified) {
                    events.extend(
                        gap.filter(|e| {
                            e.kv.as_ref().is_some_and(|kv| w.range.contains(&kv.key))
                                && w.accepts(e)
                        })
                        .cloned(),
                    );
                    upto = notified;
                }
            }
            let d = (!events.is_empty()).then_some(Delivery {
                watch_id: w.watch_id,
                watcher: wid,
                revision: upto,
                events,
                compact_revision: 0,
            });
            self.settle(st, wid, d, upto + 1);
        }
        SyncRound {
            remaining: st.unsynced.len(),
            progressed: read_to >= from,
        }
    }

    /// Takes up to `max_watchers_per_sync` unsynced watchers out of the queue (marking
    /// them `Syncing`) and cancels those whose history is compacted. Returns them, an
    /// index of what they watch, and the span of history to read.
    fn choose(&self, st: &mut State) -> Plan {
        let compacted = self.store.compact_rev();
        let mut batch = Vec::new();
        let mut group = WatcherGroup::default();
        let mut from = i64::MAX;
        let mut budget = st.unsynced.len();
        while batch.len() < self.cfg.max_watchers_per_sync && budget > 0 {
            budget -= 1;
            let Some(wid) = st.unsynced.pop_front() else {
                break;
            };
            let Some(w) = st.watchers.get_mut(&wid) else {
                continue;
            };
            if !matches!(w.phase, Phase::Unsynced) {
                continue;
            }
            if w.next_rev < compacted {
                cancel_compacted(st, wid, compacted);
                continue;
            }
            w.phase = Phase::Syncing;
            group.add(wid, &w.range);
            from = from.min(w.next_rev);
            batch.push(wid);
        }
        // Everything up to the current revision is in RocksDB (commit publishes it
        // after the write); apply may not have notified all of it yet.
        Plan {
            batch,
            group,
            from,
            to: self.store.current_rev(),
        }
    }
}

/// Tells a watcher its next revision was compacted and removes it; if its channel is
/// full it stays unsynced and is told next round.
fn cancel_compacted(st: &mut State, wid: WatcherId, compacted: i64) {
    let Some(w) = st.watchers.get(&wid) else {
        return;
    };
    let watch_id = w.watch_id;
    let Some(s) = st.streams.get_mut(&w.stream) else {
        return;
    };
    let d = Delivery {
        watch_id,
        watcher: wid,
        revision: st.notified_rev,
        events: Vec::new(),
        compact_revision: compacted,
    };
    if s.try_send(d) {
        s.forget(watch_id);
        remove_watcher(st, wid);
    } else {
        st.unsynced.push_back(wid);
    }
}

async fn sync_loop(hub: Weak<Hub>) {
    loop {
        let Some(h) = hub.upgrade() else { return };
        let started = Instant::now();
        let worker = h.clone();
        let round = tokio::task::spawn_blocking(move || worker.sync_once())
            .await
            .unwrap_or(SyncRound {
                remaining: 0,
                progressed: false,
            });
        if round.remaining > 0 && round.progressed {
            // More to do: yield about as long as the round took (etcd's fairness rule),
            // but never longer than the resync interval.
            tokio::time::sleep(started.elapsed().min(h.cfg.resync_interval)).await;
        } else {
            // Idle, or blocked on full channels: wait for new work or the interval.
            let wait = if round.remaining > 0 {
                h.cfg.resync_interval
            } else {
                h.cfg.resync_interval.max(IDLE_CHECK)
            };
            tokio::select! {
                _ = h.sync_wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

async fn victim_loop(hub: Weak<Hub>) {
    loop {
        let Some(h) = hub.upgrade() else { return };
        if h.retry_victims() {
            tokio::time::sleep(h.cfg.victim_retry_interval).await;
        } else {
            tokio::select! {
                _ = h.victim_wake.notified() => {}
                _ = tokio::time::sleep(IDLE_CHECK) => {}
            }
        }
    }
}
