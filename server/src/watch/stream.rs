//! A stream's handle on the hub.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::hub::{Hub, StreamId};
use super::{Created, Delivery, Error, WatchRequest};

/// One watch stream's view of the hub: its watchers and its delivery channel. Dropping
/// it removes every watcher it created.
pub struct WatchStream {
    hub: Arc<Hub>,
    id: StreamId,
    rx: mpsc::Receiver<Delivery>,
}

impl WatchStream {
    pub(super) fn new(hub: Arc<Hub>, id: StreamId, rx: mpsc::Receiver<Delivery>) -> Self {
        WatchStream { hub, id, rx }
    }

    /// Creates a watcher.
    pub fn watch(&self, req: &WatchRequest) -> Result<Created, Error> {
        self.hub.watch(self.id, req)
    }

    /// Removes a watcher; returns the revision it was canceled at.
    pub fn cancel(&self, watch_id: i64) -> Result<i64, Error> {
        self.hub.cancel(self.id, watch_id)
    }

    /// Progress notifications addressed to each of `watch_ids` (the periodic kind).
    pub fn progress(&self, watch_ids: &[i64]) {
        self.hub.progress(self.id, watch_ids)
    }

    /// One stream-wide progress notification (a client's progress request).
    pub fn request_progress(&self) {
        self.hub.request_progress(self.id)
    }

    /// The next delivery; `None` once the hub is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// A delivery if one is queued.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.hub.close_stream(self.id);
    }
}
