//! The hub's state and its non-blocking paths: notify (called by the applier), watcher
//! creation and cancellation, progress, and victim retries. Catch-up is in `sync.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use revkv_proto::mvccpb::{event::EventType, Event};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::Notify;

use super::group::{WatchRange, WatcherGroup, WatcherId};
use super::recent::Recent;
use super::stream::WatchStream;
use super::{Created, Delivery, Error, WatchConfig, WatchRequest, INVALID_WATCH_ID};
use crate::mvcc::KvStore;

pub(super) type StreamId = u64;

/// The watch hub of one member. See the module docs for the model.
pub struct Hub {
    pub(super) store: Arc<KvStore>,
    pub(super) cfg: WatchConfig,
    pub(super) state: Mutex<State>,
    /// Wakes the catch-up task when a watcher becomes unsynced.
    pub(super) sync_wake: Notify,
    /// Wakes the victim task when a delivery is parked.
    pub(super) victim_wake: Notify,
}

pub(super) struct State {
    /// Every event up to this revision has been offered to the synced watchers.
    pub(super) notified_rev: i64,
    next_watcher: WatcherId,
    next_stream: StreamId,
    pub(super) watchers: HashMap<WatcherId, Watcher>,
    pub(super) synced: WatcherGroup,
    /// Unsynced watchers in round-robin order. Entries of watchers that were canceled
    /// or changed state since are skipped when popped (cheaper than removing them).
    pub(super) unsynced: VecDeque<WatcherId>,
    pub(super) streams: HashMap<StreamId, Stream>,
    pub(super) recent: Recent,
}

pub(super) struct Watcher {
    pub(super) stream: StreamId,
    pub(super) watch_id: i64,
    pub(super) range: WatchRange,
    no_put: bool,
    no_delete: bool,
    /// Every event of this watcher below this revision has been queued or filtered
    /// out; none at or above it has.
    pub(super) next_rev: i64,
    pub(super) phase: Phase,
}

pub(super) enum Phase {
    /// In `State::synced`.
    Synced,
    /// Queued in `State::unsynced`.
    Unsynced,
    /// Taken out of every index by a catch-up round or a victim retry in progress.
    Syncing,
    /// Holding a delivery the full channel refused; listed in its stream's victims.
    /// Boxed: rare, and unboxed it would double the size of every watcher (measured
    /// per watcher with `revkv-bench watch --rss-pid`).
    Victim(Box<Parked>),
}

pub(super) struct Parked {
    delivery: Delivery,
    /// The watcher's `next_rev` once the delivery is queued.
    next_rev: i64,
}

pub(super) struct Stream {
    tx: mpsc::Sender<Delivery>,
    /// Watch ids on this stream -> watchers.
    ids: HashMap<i64, WatcherId>,
    next_auto_id: i64,
    victims: Vec<WatcherId>,
    /// A progress request whose response did not fit in the channel yet.
    progress_pending: bool,
}

impl Stream {
    /// Queues without waiting; `false` only when the channel is full.
    pub(super) fn try_send(&self, d: Delivery) -> bool {
        !matches!(offer(&self.tx, d), Err(Some(_)))
    }

    /// Forgets a watch id the hub removed on its own (compaction).
    pub(super) fn forget(&mut self, watch_id: i64) {
        self.ids.remove(&watch_id);
    }
}

impl Watcher {
    /// Whether `ev` is still due to this watcher and passes its filters.
    pub(super) fn accepts(&self, ev: &Event) -> bool {
        let Some(kv) = &ev.kv else { return false };
        if kv.mod_revision < self.next_rev {
            return false;
        }
        let put = ev.r#type == EventType::Put as i32;
        !(put && self.no_put || !put && self.no_delete)
    }
}

/// Queues without waiting; hands the delivery back when the channel is full.
fn offer(tx: &mpsc::Sender<Delivery>, d: Delivery) -> Result<(), Option<Delivery>> {
    match tx.try_send(d) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(d)) => Err(Some(d)),
        // The stream is closing; `close_stream` removes its watchers.
        Err(TrySendError::Closed(_)) => Err(None),
    }
}

impl Hub {
    /// A hub for `store`, starting at its current revision. Call [`Hub::spawn_tasks`]
    /// from a tokio runtime to start catch-up and victim retries.
    pub fn new(store: Arc<KvStore>, cfg: WatchConfig) -> Arc<Hub> {
        let state = State {
            notified_rev: store.current_rev(),
            next_watcher: 1,
            next_stream: 1,
            watchers: HashMap::new(),
            synced: WatcherGroup::default(),
            unsynced: VecDeque::new(),
            streams: HashMap::new(),
            recent: Recent::new(cfg.recent_events),
        };
        Arc::new(Hub {
            store,
            cfg,
            state: Mutex::new(state),
            sync_wake: Notify::new(),
            victim_wake: Notify::new(),
        })
    }

    pub fn config(&self) -> &WatchConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Arc<KvStore> {
        &self.store
    }

    /// The newest revision handed to watchers.
    pub fn revision(&self) -> i64 {
        self.state.lock().notified_rev
    }

    /// Number of watchers (all states).
    pub fn watcher_count(&self) -> usize {
        self.state.lock().watchers.len()
    }

    /// Offers a committed batch's events (revision order, the store now at `rev`) to
    /// the synced watchers. Never waits for a client: a full channel makes a victim.
    pub fn notify(&self, rev: i64, events: Vec<Event>) {
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if rev <= st.notified_rev {
            // Nothing new (a batch of no-ops or only a compaction).
            return;
        }
        let after = st.notified_rev;
        // First, so that watchers settled below count as synced up to `rev`.
        st.notified_rev = rev;
        st.recent.push(after, rev, &events);
        let mut per: HashMap<WatcherId, Vec<Arc<Event>>> = HashMap::new();
        for ev in &events {
            if let Some(kv) = &ev.kv {
                st.synced
                    .matching(&kv.key, |id| per.entry(id).or_default().push(ev.clone()));
            }
        }
        for (id, evs) in per {
            let Some(w) = st.watchers.get(&id) else {
                continue;
            };
            let evs: Vec<Arc<Event>> = evs.into_iter().filter(|e| w.accepts(e)).collect();
            let d = (!evs.is_empty()).then_some(Delivery {
                watch_id: w.watch_id,
                watcher: id,
                revision: rev,
                events: evs,
                compact_revision: 0,
            });
            self.settle(st, id, d, rev + 1);
        }
    }

    /// The keyspace was replaced by a raft snapshot (now at the store's current
    /// revision). As etcd's `watchableStore.Restore` does, every synced watcher
    /// becomes unsynced: the catch-up task replays what it missed from the new
    /// keyspace (or cancels it with the compaction revision if that history is gone).
    pub fn restore(&self) {
        let rev = self.store.current_rev();
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.notified_rev = st.notified_rev.max(rev);
        st.recent = Recent::new(self.cfg.recent_events);
        let mut moved = 0usize;
        for (&id, w) in st.watchers.iter_mut() {
            if matches!(w.phase, Phase::Synced) {
                st.synced.remove(id, &w.range);
                w.phase = Phase::Unsynced;
                st.unsynced.push_back(id);
                moved += 1;
            }
        }
        drop(guard);
        if moved > 0 {
            self.sync_wake.notify_one();
        }
        tracing::info!(
            revision = rev,
            watchers = moved,
            "watchers resync after a raft snapshot"
        );
    }

    /// Queues `d` (if any) for watcher `id`, advances its `next_rev`, and files it as
    /// synced (caught up with the notified revision), unsynced, or a victim (`d` did
    /// not fit). The single place where watchers change state after creation.
    pub(super) fn settle(&self, st: &mut State, id: WatcherId, d: Option<Delivery>, next_rev: i64) {
        let Some(w) = st.watchers.get_mut(&id) else {
            return;
        };
        if let Some(d) = d {
            let Some(stream) = st.streams.get_mut(&w.stream) else {
                return;
            };
            match offer(&stream.tx, d) {
                Ok(()) => {}
                Err(None) => return,
                Err(Some(delivery)) => {
                    if matches!(w.phase, Phase::Synced) {
                        st.synced.remove(id, &w.range);
                    }
                    w.phase = Phase::Victim(Box::new(Parked { delivery, next_rev }));
                    stream.victims.push(id);
                    self.victim_wake.notify_one();
                    return;
                }
            }
        }
        w.next_rev = w.next_rev.max(next_rev);
        let synced = w.next_rev > st.notified_rev;
        match (&w.phase, synced) {
            (Phase::Synced, true) | (Phase::Unsynced, false) => {}
            (Phase::Synced, false) => {
                st.synced.remove(id, &w.range);
                w.phase = Phase::Unsynced;
                st.unsynced.push_back(id);
                self.sync_wake.notify_one();
            }
            (_, true) => {
                st.synced.add(id, &w.range);
                w.phase = Phase::Synced;
            }
            (_, false) => {
                w.phase = Phase::Unsynced;
                st.unsynced.push_back(id);
                self.sync_wake.notify_one();
            }
        }
    }

    /// Opens a stream: one delivery channel shared by the watchers created on it.
    pub fn open_stream(self: &Arc<Self>) -> WatchStream {
        let (tx, rx) = mpsc::channel(self.cfg.chan_len.max(1));
        let mut st = self.state.lock();
        let id = st.next_stream;
        st.next_stream += 1;
        st.streams.insert(
            id,
            Stream {
                tx,
                ids: HashMap::new(),
                next_auto_id: 0,
                victims: Vec::new(),
                progress_pending: false,
            },
        );
        WatchStream::new(self.clone(), id, rx)
    }

    pub(super) fn close_stream(&self, id: StreamId) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if let Some(s) = st.streams.remove(&id) {
            for wid in s.ids.into_values() {
                remove_watcher(st, wid);
            }
        }
    }

    /// Creates a watcher; returns its watch id and the revision it was created at.
    pub(super) fn watch(&self, stream: StreamId, req: &WatchRequest) -> Result<Created, Error> {
        if req.start_revision < 0 {
            return Err(Error::Compacted);
        }
        let range = WatchRange::new(&req.key, &req.range_end)?;
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let s = st.streams.get_mut(&stream).ok_or(Error::NotExist)?;
        let watch_id = if req.watch_id == 0 {
            // etcd's rule: the lowest unused id at or after the last one assigned.
            while s.ids.contains_key(&s.next_auto_id) {
                s.next_auto_id += 1;
            }
            s.next_auto_id += 1;
            s.next_auto_id - 1
        } else if s.ids.contains_key(&req.watch_id) {
            return Err(Error::DuplicateId);
        } else {
            req.watch_id
        };
        let wid = st.next_watcher;
        st.next_watcher += 1;
        s.ids.insert(watch_id, wid);
        let now = st.notified_rev;
        let synced = req.start_revision <= 0 || req.start_revision > now;
        let (next_rev, phase) = if synced {
            st.synced.add(wid, &range);
            ((now + 1).max(req.start_revision), Phase::Synced)
        } else {
            st.unsynced.push_back(wid);
            self.sync_wake.notify_one();
            (req.start_revision, Phase::Unsynced)
        };
        st.watchers.insert(
            wid,
            Watcher {
                stream,
                watch_id,
                range,
                no_put: req.no_put,
                no_delete: req.no_delete,
                next_rev,
                phase,
            },
        );
        Ok(Created {
            watch_id,
            revision: now,
            watcher: wid,
        })
    }

    pub(super) fn cancel(&self, stream: StreamId, watch_id: i64) -> Result<i64, Error> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let s = st.streams.get_mut(&stream).ok_or(Error::NotExist)?;
        let wid = s.ids.remove(&watch_id).ok_or(Error::NotExist)?;
        remove_watcher(st, wid);
        Ok(st.notified_rev)
    }

    /// Sends `watch_id`-addressed progress notifications to those of `ids` that are
    /// synced (the others are about to receive events anyway); a full channel skips.
    pub(super) fn progress(&self, stream: StreamId, ids: &[i64]) {
        let st = self.state.lock();
        let Some(s) = st.streams.get(&stream) else {
            return;
        };
        for &watch_id in ids {
            let Some(&wid) = s.ids.get(&watch_id) else {
                continue;
            };
            let synced = st
                .watchers
                .get(&wid)
                .is_some_and(|w| matches!(w.phase, Phase::Synced));
            if synced {
                let _ = offer(
                    &s.tx,
                    Delivery {
                        watch_id,
                        watcher: wid,
                        revision: st.notified_rev,
                        ..Default::default()
                    },
                );
            }
        }
    }

    /// Answers a progress request with the newest revision up to which *every* watcher
    /// of the stream has been sent its events (watch id -1, as etcd). If the channel is
    /// full the answer waits for room (victim retries).
    pub(super) fn request_progress(&self, stream: StreamId) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if !try_progress_all(st, stream) {
            if let Some(s) = st.streams.get_mut(&stream) {
                s.progress_pending = true;
                self.victim_wake.notify_one();
            }
        }
    }

    /// Re-offers parked deliveries on streams whose channel has room; returns whether
    /// any remain parked.
    pub(super) fn retry_victims(&self) -> bool {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let busy: Vec<StreamId> = st
            .streams
            .iter()
            .filter(|(_, s)| !s.victims.is_empty() || s.progress_pending)
            .map(|(id, _)| *id)
            .collect();
        let mut remaining = false;
        for sid in busy {
            let victims = match st.streams.get_mut(&sid) {
                Some(s) if s.tx.capacity() > 0 => std::mem::take(&mut s.victims),
                _ => {
                    remaining = true;
                    continue;
                }
            };
            let mut rest = victims.into_iter();
            for wid in rest.by_ref() {
                let Some(w) = st.watchers.get_mut(&wid) else {
                    continue;
                };
                if !matches!(w.phase, Phase::Victim(_)) {
                    continue;
                }
                let Phase::Victim(parked) = std::mem::replace(&mut w.phase, Phase::Syncing) else {
                    continue;
                };
                self.settle(st, wid, Some(parked.delivery), parked.next_rev);
                if st.streams.get(&sid).is_none_or(|s| s.tx.capacity() == 0) {
                    break;
                }
            }
            if let Some(s) = st.streams.get_mut(&sid) {
                s.victims.extend(rest);
                if s.progress_pending && try_progress_all(st, sid) {
                    if let Some(s) = st.streams.get_mut(&sid) {
                        s.progress_pending = false;
                    }
                }
            }
            remaining |= st
                .streams
                .get(&sid)
                .is_some_and(|s| !s.victims.is_empty() || s.progress_pending);
        }
        remaining
    }
}

/// Forgets a watcher (entries in the unsynced queue and victim lists are skipped later).
pub(super) fn remove_watcher(st: &mut State, wid: WatcherId) {
    if let Some(w) = st.watchers.remove(&wid) {
        if matches!(w.phase, Phase::Synced) {
            st.synced.remove(wid, &w.range);
        }
    }
}

/// Queues a stream-wide progress notification; `false` if the channel is full.
fn try_progress_all(st: &State, stream: StreamId) -> bool {
    let Some(s) = st.streams.get(&stream) else {
        return true;
    };
    let revision = s
        .ids
        .values()
        .filter_map(|wid| st.watchers.get(wid))
        .map(|w| match w.phase {
            Phase::Synced => st.notified_rev,
            _ => w.next_rev - 1,
        })
        .fold(st.notified_rev, i64::min);
    s.try_send(Delivery {
        watch_id: INVALID_WATCH_ID,
        revision,
        ..Default::default()
    })
}

#[cfg(test)]
mod footprint {
    /// 100k watchers are a target workload; each byte here is ~100 KB of RSS there.
    #[test]
    fn a_watcher_stays_small() {
        assert!(
            std::mem::size_of::<super::Watcher>() <= 72,
            "Watcher grew to {} bytes",
            std::mem::size_of::<super::Watcher>()
        );
    }
}
