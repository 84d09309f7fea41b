//! The watch hub: streams every committed change to the watchers that asked for it
//! (DESIGN §5; etcd's `watchable_store.go` and `watcher_group.go`).
//!
//! # Model
//!
//! A gRPC watch stream carries many watchers; the hub gives each stream one bounded
//! channel of [`Delivery`]s (`watch_chan_len`, 128) and every watcher is, at any time,
//! in exactly one of these states:
//!
//! * **synced** — it has been handed every event up to the hub's notified revision.
//!   Synced watchers live in a [`group::WatcherGroup`]: single keys in a hash map,
//!   ranges in an interval tree, so a committed event finds its watchers without
//!   scanning every range. The applier calls [`Hub::notify`] after each committed batch;
//!   each synced watcher with matching events gets **one** delivery holding all its
//!   events of the batch (never part of a revision), sent with `try_send`.
//! * **unsynced** — its next revision is in the past (a `start_revision` in history, or
//!   it fell behind). A background task replays history from the `rev` column family
//!   ([`crate::mvcc::history`]) for up to `max_watchers_per_sync` watchers at a time, in
//!   bounded batches that end at a revision boundary, until the watcher has reached the
//!   notified revision; then it becomes synced (see *Handover*).
//! * **victim** — a delivery could not be queued because the stream's channel was full.
//!   The watcher parks that one delivery and leaves the synced group, so neither apply
//!   nor the other watchers wait for it. A retry task re-offers the parked delivery once
//!   the channel has room; afterwards the watcher is unsynced (and catches up from
//!   history) or synced. Memory stays bounded: a victim holds one delivery, never a
//!   growing queue.
//!
//! # Guarantees
//!
//! Every watcher has a `next_rev`: all its events below it have been queued (or
//! filtered out), none at or above it. Each state queues only events at or above
//! `next_rev` and advances it past what it queued, and a watcher is in one state at a
//! time, so events arrive **in revision order, exactly once**. A revision's events are
//! always queued in one delivery; the API layer may split an oversized one into
//! `fragment`s when the watcher asked for that.
//!
//! # Handover
//!
//! Catch-up reads history without holding the hub's lock (apply must not wait on disk).
//! When the read is done, new batches may already have been notified to synced
//! watchers. The hub keeps the events of its most recent notifications in memory
//! (bounded, [`WatchConfig::recent_events`]); if they cover the gap between the read and
//! the notified revision, the watcher gets the gap from there in the same delivery and
//! becomes synced under the lock — no gap, no duplicate, and catch-up converges even
//! under a steady write load. Otherwise it stays unsynced for another round.
//!
//! # Compaction
//!
//! A watcher whose `next_rev` is below the compaction revision cannot be caught up; it
//! gets one response with `canceled` and `compact_revision` set and is removed, as etcd
//! does.

pub mod group;
mod hub;
pub mod interval;
mod recent;
mod stream;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use revkv_proto::mvccpb::Event;

pub use group::{WatchRange, WatcherGroup, WatcherId};
pub use hub::Hub;
pub use stream::WatchStream;
pub use sync::SyncRound;

/// Errors of the watch hub; their etcd wire strings are in [`crate::api::status`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("duplicate watch ID on the stream")]
    DuplicateId,
    #[error("watcher range is empty")]
    EmptyRange,
    #[error("watcher does not exist")]
    NotExist,
    /// A negative start revision (etcd answers as if it were compacted).
    #[error("start revision has been compacted")]
    Compacted,
}

/// Tunables of the watch hub (etcd keeps these as package variables).
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Capacity of each stream's delivery channel (etcd's `chanBufLen`).
    pub chan_len: usize,
    /// Unsynced watchers caught up per round (etcd's `maxWatchersPerSync`).
    pub max_watchers_per_sync: usize,
    /// Pause between catch-up rounds while watchers are unsynced.
    pub resync_interval: Duration,
    /// Pause between attempts to re-offer victims' parked deliveries.
    pub victim_retry_interval: Duration,
    /// Bounds of one history read during catch-up.
    pub history: crate::mvcc::history::HistoryLimits,
    /// Events of recent notifications kept for the catch-up handover.
    pub recent_events: usize,
    /// Idle interval after which `progress_notify` watchers get an empty response
    /// (`--experimental-watch-progress-notify-interval`).
    pub progress_notify_interval: Duration,
    /// A response at least this large is split when its watcher asked for
    /// `fragment` (etcd: `--max-request-bytes` plus 512 KiB of gRPC overhead).
    pub fragment_bytes: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            chan_len: 128,
            max_watchers_per_sync: 512,
            resync_interval: Duration::from_millis(100),
            victim_retry_interval: Duration::from_millis(10),
            history: Default::default(),
            recent_events: 4096,
            progress_notify_interval: Duration::from_secs(600),
            fragment_bytes: crate::config::DEFAULT_MAX_REQUEST_BYTES + 512 * 1024,
        }
    }
}

/// etcd's watch id for responses that concern the whole stream (progress requests).
pub const INVALID_WATCH_ID: i64 = -1;

/// One response's worth of data for one watcher (or the whole stream), as the hub
/// queues it; the API layer turns it into a `WatchResponse`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delivery {
    /// The watcher, or [`INVALID_WATCH_ID`] for a stream-wide progress notification.
    pub watch_id: i64,
    /// The hub's identity of the watcher (0 for stream-wide progress), so that a
    /// delivery queued before a cancel is not mistaken for one to a new watcher that
    /// reuses the watch id.
    pub watcher: WatcherId,
    /// The header revision: the watcher has been sent every event up to it.
    pub revision: i64,
    /// Events in revision order; empty for a progress notification. Shared with every
    /// other watcher that receives the same event.
    pub events: Vec<Arc<Event>>,
    /// Non-zero when the watcher was canceled because its next revision was compacted.
    pub compact_revision: i64,
}

/// A watcher the hub accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created {
    pub watch_id: i64,
    /// The revision it was created at (etcd's header revision of `created`).
    pub revision: i64,
    pub watcher: WatcherId,
}

/// What a new watcher watches and from where.
#[derive(Clone, Debug, Default)]
pub struct WatchRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// First revision to deliver; 0 = the next one.
    pub start_revision: i64,
    /// Client-chosen id; 0 lets the stream choose.
    pub watch_id: i64,
    pub no_put: bool,
    pub no_delete: bool,
}

#[cfg(test)]
mod tests;
