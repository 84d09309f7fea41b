//! Watch: [`WatchClient::watch`] returns a [`Watcher`] (control) and a
//! [`WatchStream`] (responses). A background task owns the gRPC stream and, when the
//! member it is on fails, recreates the watch on another endpoint from the last
//! delivered revision + 1, so no event is lost or repeated (see `watch_task`).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use revkv_proto::mvccpb;
use tokio::sync::{mpsc, oneshot};

use crate::decorator::namespace::prefix_range;
use crate::error::{Error, Result};
use crate::options::KeyRange;
use crate::pool::Pool;
use crate::response::{KeyValue, ResponseHeader};
use crate::watch_task::{self, Control, WatchSpec};

/// Options of a watch (etcd's `WatchCreateRequest`).
///
/// ```
/// use revkv_client::WatchOptions;
///
/// let o = WatchOptions::new().with_prefix().with_start_revision(5).with_prev_kv().with_no_delete();
/// assert_eq!(o.start_revision, 5);
/// assert!(o.prev_kv && o.no_delete && !o.no_put);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchOptions {
    /// Keys covered, relative to the watched key.
    pub range: KeyRange,
    /// First revision to report (0 = changes after now).
    pub start_revision: i64,
    /// Include each key's previous value.
    pub prev_kv: bool,
    /// Ask the server for periodic empty responses while idle.
    pub progress_notify: bool,
    /// Leave out put events.
    pub no_put: bool,
    /// Leave out delete events.
    pub no_delete: bool,
    /// Let the server split a large revision over several responses (the stream
    /// delivers them merged).
    pub fragment: bool,
}

impl WatchOptions {
    /// Defaults: one key, from now on.
    ///
    /// ```
    /// assert_eq!(revkv_client::WatchOptions::new().start_revision, 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Every key with the key as prefix.
    ///
    /// ```
    /// let o = revkv_client::WatchOptions::new().with_prefix();
    /// assert_eq!(o.range, revkv_client::KeyRange::Prefix);
    /// ```
    pub fn with_prefix(mut self) -> Self {
        self.range = KeyRange::Prefix;
        self
    }
    /// Every key `>=` the key.
    ///
    /// ```
    /// let o = revkv_client::WatchOptions::new().with_from_key();
    /// assert_eq!(o.range, revkv_client::KeyRange::FromKey);
    /// ```
    pub fn with_from_key(mut self) -> Self {
        self.range = KeyRange::FromKey;
        self
    }
    /// `[key, end)`.
    ///
    /// ```
    /// let o = revkv_client::WatchOptions::new().with_range("b");
    /// assert_eq!(o.range, revkv_client::KeyRange::End(b"b".to_vec()));
    /// ```
    pub fn with_range(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.range = KeyRange::End(end.into());
        self
    }
    /// Report changes from `revision` on (inclusive).
    ///
    /// ```
    /// assert_eq!(revkv_client::WatchOptions::new().with_start_revision(3).start_revision, 3);
    /// ```
    pub fn with_start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }
    /// Include previous values.
    ///
    /// ```
    /// assert!(revkv_client::WatchOptions::new().with_prev_kv().prev_kv);
    /// ```
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
    /// Periodic progress notifications.
    ///
    /// ```
    /// assert!(revkv_client::WatchOptions::new().with_progress_notify().progress_notify);
    /// ```
    pub fn with_progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }
    /// Leave out puts (etcd's `WithFilterPut`).
    ///
    /// ```
    /// assert!(revkv_client::WatchOptions::new().with_no_put().no_put);
    /// ```
    pub fn with_no_put(mut self) -> Self {
        self.no_put = true;
        self
    }
    /// Leave out deletes (etcd's `WithFilterDelete`).
    ///
    /// ```
    /// assert!(revkv_client::WatchOptions::new().with_no_delete().no_delete);
    /// ```
    pub fn with_no_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }
    /// Allow fragmented responses (etcd's `WithFragment`).
    ///
    /// ```
    /// assert!(revkv_client::WatchOptions::new().with_fragment().fragment);
    /// ```
    pub fn with_fragment(mut self) -> Self {
        self.fragment = true;
        self
    }
}

/// Kind of a watch event (etcd's `mvccpb.Event.EventType`).
///
/// ```
/// use revkv_client::{Event, EventType, KeyValue};
/// let e = Event { kind: EventType::Delete, kv: KeyValue::default(), prev_kv: None };
/// assert_eq!(e.kind, EventType::Delete);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// One change (etcd's `mvccpb.Event`).
///
/// ```
/// use revkv_client::{Event, EventType, KeyValue};
/// let e = Event { kind: EventType::Put, kv: KeyValue { key: b"k".to_vec(), ..Default::default() }, prev_kv: None };
/// assert_eq!(e.kv.key, b"k");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventType,
    /// For a put the new key-value; for a delete the key, `mod_revision` set to the
    /// delete's revision.
    pub kv: KeyValue,
    /// The key-value before the change, if asked for (`with_prev_kv`) and present.
    pub prev_kv: Option<KeyValue>,
}

impl From<mvccpb::Event> for Event {
    fn from(e: mvccpb::Event) -> Self {
        Event {
            kind: match mvccpb::event::EventType::try_from(e.r#type) {
                Ok(mvccpb::event::EventType::Delete) => EventType::Delete,
                _ => EventType::Put,
            },
            kv: e.kv.map(Into::into).unwrap_or_default(),
            prev_kv: e.prev_kv.map(Into::into),
        }
    }
}

/// One watch response (etcd's `WatchResponse`).
///
/// ```
/// let r = revkv_client::WatchResponse { canceled: true, compact_revision: 7, ..Default::default() };
/// assert!(!r.is_progress_notify());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchResponse {
    /// Header; for a progress notification its revision says every change up to it
    /// has been delivered.
    pub header: ResponseHeader,
    /// The server's ID of the watch (may change when the watch moves to another
    /// member).
    pub watch_id: i64,
    /// Answer to a create (not delivered on the stream: [`WatchClient::watch`]
    /// returns once the watch is created).
    pub created: bool,
    /// The watch ended (cancelled, or its start revision was compacted); the stream
    /// ends after this response.
    pub canceled: bool,
    /// Set with `canceled` when the revision to resume from has been compacted: the
    /// oldest revision still available.
    pub compact_revision: i64,
    /// Why the server cancelled the watch.
    pub cancel_reason: String,
    /// More fragments follow (always `false` on the stream: fragments are merged).
    pub fragment: bool,
    /// The changes, in revision order.
    pub events: Vec<Event>,
}

impl WatchResponse {
    /// Whether this is a progress notification: no events, not a create or cancel.
    ///
    /// ```
    /// let r = revkv_client::WatchResponse::default();
    /// assert!(r.is_progress_notify());
    /// ```
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled && self.compact_revision == 0
    }
}

/// The watch handle of a [`crate::Client`].
///
/// ```no_run
/// use futures::StreamExt;
/// use revkv_client::{Client, WatchOptions};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379"], Default::default()).await?;
/// let (watcher, mut stream) = client.watch().watch("app/", WatchOptions::new().with_prefix()).await?;
/// while let Some(resp) = stream.next().await {
///     for e in resp?.events {
///         println!("{:?} {}", e.kind, String::from_utf8_lossy(&e.kv.key));
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WatchClient {
    pool: Arc<Pool>,
    prefix: Vec<u8>,
}

impl std::fmt::Debug for WatchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchClient")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .finish()
    }
}

impl WatchClient {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        WatchClient {
            pool,
            prefix: Vec::new(),
        }
    }

    /// This handle inside namespace `prefix`, as etcd's `namespace.NewWatcher`:
    /// watched keys get the prefix, event keys lose it, and prefix / from-key
    /// watches stay inside the namespace. Namespaces nest.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let app = client.watch().with_namespace("app/");
    /// // Watches "app/config"; events report the key as "config".
    /// let (_w, _s) = app.watch("config", Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_namespace(&self, prefix: impl AsRef<[u8]>) -> WatchClient {
        let mut full = self.prefix.clone();
        full.extend_from_slice(prefix.as_ref());
        WatchClient {
            pool: self.pool.clone(),
            prefix: full,
        }
    }

    /// Watches `key` (or a range, per `options`). Returns once the server created
    /// the watch, so every change after this call returns is reported.
    ///
    /// ```no_run
    /// use revkv_client::WatchOptions;
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let (watcher, mut stream) = client.watch().watch("k", WatchOptions::new().with_prev_kv()).await?;
    /// let resp = stream.next().await.expect("open")?;
    /// watcher.cancel()?;
    /// # Ok(()) }
    /// ```
    pub async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        options: WatchOptions,
    ) -> Result<(Watcher, WatchStream)> {
        let key = key.into();
        let (key, range) = if self.prefix.is_empty() {
            (key, options.range.clone())
        } else {
            prefix_range(&self.prefix, &key, &options.range)
        };
        let spec = WatchSpec {
            range_end: range.range_end(&key),
            key,
            options,
            prefix: self.prefix.clone(),
        };
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::channel(watch_task::BUFFERED);
        let (created_tx, created_rx) = oneshot::channel();
        let endpoint = Arc::new(Mutex::new(String::new()));
        tokio::spawn(watch_task::run(
            self.pool.clone(),
            spec,
            ctl_rx,
            out_tx,
            created_tx,
            endpoint.clone(),
        ));
        let watch_id = created_rx
            .await
            .map_err(|_| Error::Closed("watch task ended before the watch was created"))??;
        Ok((
            Watcher {
                control: ctl_tx,
                watch_id,
                endpoint,
            },
            WatchStream { responses: out_rx },
        ))
    }
}

/// Controls one watch: cancel it or ask for a progress notification.
///
/// Dropping the `Watcher` does not end the watch; dropping its [`WatchStream`] does.
///
/// ```no_run
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let (watcher, mut stream) = client.watch().watch("k", Default::default()).await?;
/// watcher.request_progress()?;
/// let progress = stream.next().await.expect("a progress notification")?;
/// assert!(progress.is_progress_notify());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Watcher {
    control: mpsc::UnboundedSender<Control>,
    watch_id: i64,
    /// The endpoint the watch is on now (the task moves it on failover).
    endpoint: Arc<Mutex<String>>,
}

impl Watcher {
    /// The server's ID of the watch when it was created.
    ///
    /// ```no_run
    /// # fn f(w: revkv_client::Watcher) { println!("{}", w.watch_id()); }
    /// ```
    pub fn watch_id(&self) -> i64 {
        self.watch_id
    }

    /// The endpoint (`http://host:port`) the watch is currently served by; it moves
    /// when that member fails.
    ///
    /// ```no_run
    /// # fn f(w: revkv_client::Watcher) { println!("watching via {}", w.endpoint()); }
    /// ```
    pub fn endpoint(&self) -> String {
        self.endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Cancels the watch: the stream delivers the server's `canceled` response, then
    /// ends. [`Error::Closed`] if the watch already ended.
    ///
    /// ```no_run
    /// # fn f(w: revkv_client::Watcher) -> revkv_client::Result<()> { w.cancel() }
    /// ```
    pub fn cancel(&self) -> Result<()> {
        self.control
            .send(Control::Cancel)
            .map_err(|_| Error::Closed("watch already ended"))
    }

    /// Asks the server for a progress notification (a response with no events whose
    /// header revision every delivered change is at or below).
    ///
    /// ```no_run
    /// # fn f(w: revkv_client::Watcher) -> revkv_client::Result<()> { w.request_progress() }
    /// ```
    pub fn request_progress(&self) -> Result<()> {
        self.control
            .send(Control::Progress)
            .map_err(|_| Error::Closed("watch already ended"))
    }
}

/// The responses of one watch, as a [`futures::Stream`]. Ends after a `canceled`
/// response; yields an error only when the watch cannot go on.
///
/// ```no_run
/// use futures::StreamExt;
/// # async fn f(mut stream: revkv_client::WatchStream) -> revkv_client::Result<()> {
/// while let Some(resp) = stream.next().await {
///     let resp = resp?;
///     if resp.canceled {
///         println!("watch canceled: {} (compacted at {})", resp.cancel_reason, resp.compact_revision);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WatchStream {
    responses: mpsc::Receiver<Result<WatchResponse>>,
}

impl WatchStream {
    /// The next response (the same as `StreamExt::next`, without the import).
    ///
    /// ```no_run
    /// # async fn f(mut stream: revkv_client::WatchStream) {
    /// if let Some(Ok(resp)) = stream.next().await {
    ///     println!("{} events", resp.events.len());
    /// }
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<Result<WatchResponse>> {
        self.responses.recv().await
    }
}

impl futures::Stream for WatchStream {
    type Item = Result<WatchResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.responses.poll_recv(cx)
    }
}
