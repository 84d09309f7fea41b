//! The Watch service (etcd's `v3rpc/watch.go`): one bidirectional stream carries many
//! watchers.
//!
//! Each call gets a session task that owns a [`WatchStream`] of the hub. The task
//! answers create/cancel/progress requests at once, turns the hub's deliveries into
//! `WatchResponse`s (adding `prev_kv` and splitting `fragment`s here, off the apply
//! path), and sends periodic progress notifications. Responses go out through a small
//! channel that tonic drains; when a client stops reading, that channel fills, the
//! session stops taking deliveries, the hub's per-stream channel fills, and the hub
//! parks the stream's watchers as victims — nothing upstream waits for the client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use prost::Message as _;
use revkv_proto::etcdserverpb::watch_create_request::FilterType;
use revkv_proto::etcdserverpb::watch_server::Watch;
use revkv_proto::etcdserverpb::{
    watch_request::RequestUnion, WatchCancelRequest, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use revkv_proto::mvccpb::{event::EventType, Event};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::status::watch_cancel_reason;
use super::{oversize, record};
use crate::mvcc::history;
use crate::server::Server;
use crate::watch::{self, Delivery, WatchStream, INVALID_WATCH_ID};

/// Responses buffered between a session and tonic. Small: the hub's per-stream
/// channel is the real buffer, and victims take over when both are full.
const OUTBOUND_LEN: usize = 16;

pub struct WatchService {
    server: Arc<Server>,
}

impl WatchService {
    pub fn new(server: Arc<Server>) -> Self {
        WatchService { server }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<BoxStream<WatchResponse>>, Status> {
        let (meta, _, inbound) = request.into_parts();
        let token = super::token(&meta).map(bytes::Bytes::copy_from_slice);
        let out = open(self.server.clone(), token, inbound)?;
        Ok(Response::new(Box::pin(out)))
    }
}

/// Starts a watch stream fed by `inbound`, for the client whose auth token is `token`;
/// its responses come out of the returned stream (the JSON gateway serves it too).
pub(crate) fn open<S>(
    server: Arc<Server>,
    token: Option<bytes::Bytes>,
    inbound: S,
) -> Result<ReceiverStream<Result<WatchResponse, Status>>, Status>
where
    S: Stream<Item = Result<WatchRequest, Status>> + Unpin + Send + 'static,
{
    // etcd refuses every stream on a learner.
    server.refuse_on_learner()?;
    let (tx, rx) = mpsc::channel(OUTBOUND_LEN);
    let session = Session::new(server, tx, token);
    tokio::spawn(session.run(inbound));
    Ok(ReceiverStream::new(rx))
}

/// Per-watcher options the hub does not need.
struct Options {
    /// The hub's watcher behind the watch id (ids can be reused after a cancel).
    watcher: watch::WatcherId,
    prev_kv: bool,
    fragment: bool,
    progress_notify: bool,
    /// No events since the last progress tick (etcd elides the notification otherwise).
    idle: bool,
}

/// What woke the session up.
enum Step {
    Request(Option<Result<WatchRequest, Status>>),
    Delivery(Option<Delivery>),
    Tick,
    ClientGone,
}

/// The outbound channel closed: the client is gone.
struct Closed;

struct Session {
    server: Arc<Server>,
    stream: WatchStream,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    watchers: HashMap<i64, Options>,
    /// The stream's auth token: each new watcher is checked against it.
    token: Option<bytes::Bytes>,
}

impl Session {
    fn new(
        server: Arc<Server>,
        out: mpsc::Sender<Result<WatchResponse, Status>>,
        token: Option<bytes::Bytes>,
    ) -> Self {
        let stream = server.watch.open_stream();
        Session {
            server,
            stream,
            out,
            watchers: HashMap::new(),
            token,
        }
    }

    /// etcd's `isWatchPermitted`: the stream's user may read the watched keys.
    fn permitted(&self, c: &WatchCreateRequest) -> Result<(), crate::Error> {
        let user = self.server.auth_info(self.token.as_deref())?;
        self.server
            .auth
            .check(&user, crate::auth::Access::Read, &c.key, &c.range_end)?;
        Ok(())
    }

    /// Serves the stream, then counts it in the RPC metrics with the code it ended
    /// with.
    async fn run<S>(mut self, inbound: S)
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Unpin,
    {
        let start = Instant::now();
        let code = self.serve(inbound).await;
        let rpc = ("etcdserverpb.Watch", "Watch", "bidi_stream");
        record(&self.server, rpc, code, start);
    }

    /// Serves the stream until the client goes away. A client that half-closes its
    /// side keeps receiving events, as with etcd.
    async fn serve<S>(&mut self, mut inbound: S) -> tonic::Code
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Unpin,
    {
        let period = jittered(self.server.watch.config().progress_notify_interval);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inbound_open = true;
        loop {
            let step = tokio::select! {
                _ = self.out.closed() => Step::ClientGone,
                r = inbound.next(), if inbound_open => Step::Request(r),
                d = self.stream.recv() => Step::Delivery(d),
                _ = ticker.tick() => Step::Tick,
            };
            let sent = match step {
                Step::ClientGone => break tonic::Code::Cancelled,
                // The hub closed: the member is shutting down.
                Step::Delivery(None) => break tonic::Code::Unavailable,
                // etcd ends the stream with the receive error (an oversized request
                // message, say); the client may already be gone, so a failed send
                // changes nothing.
                Step::Request(Some(Err(status))) => {
                    let status = oversize::translate(status);
                    let code = status.code();
                    let _ = self.out.send(Err(status)).await;
                    break code;
                }
                Step::Request(None) => {
                    inbound_open = false;
                    Ok(())
                }
                Step::Request(Some(Ok(req))) => self.handle(req).await,
                Step::Delivery(Some(d)) => self.deliver(d).await,
                Step::Tick => {
                    self.progress_tick();
                    Ok(())
                }
            };
            if sent.is_err() {
                break tonic::Code::Cancelled;
            }
        }
    }

    async fn handle(&mut self, req: WatchRequest) -> Result<(), Closed> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => {
                let resp = self.create(c);
                self.send(resp).await
            }
            Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id })) => {
                // etcd answers only when the watcher existed.
                match self.stream.cancel(watch_id) {
                    Ok(rev) => {
                        self.watchers.remove(&watch_id);
                        let resp = WatchResponse {
                            header: Some(self.server.header(rev)),
                            watch_id,
                            canceled: true,
                            ..Default::default()
                        };
                        self.send(resp).await
                    }
                    Err(_) => Ok(()),
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.stream.request_progress();
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn create(&mut self, c: WatchCreateRequest) -> WatchResponse {
        if let Err(e) = self.permitted(&c) {
            // As etcd: created and canceled at once, the reason the whole status as
            // grpc-go prints it.
            let status = Status::from(e);
            return WatchResponse {
                header: Some(self.server.header(self.server.watch.revision())),
                watch_id: INVALID_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: format!(
                    "rpc error: code = {} desc = {}",
                    revkv_proto::code_name(status.code()),
                    status.message()
                ),
                ..Default::default()
            };
        }
        let req = watch::WatchRequest {
            key: c.key,
            range_end: c.range_end,
            start_revision: c.start_revision,
            watch_id: c.watch_id,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
        };
        match self.stream.watch(&req) {
            Ok(created) => {
                let watch_id = created.watch_id;
                self.watchers.insert(
                    watch_id,
                    Options {
                        watcher: created.watcher,
                        prev_kv: c.prev_kv,
                        fragment: c.fragment,
                        progress_notify: c.progress_notify,
                        idle: true,
                    },
                );
                WatchResponse {
                    header: Some(self.server.header(created.revision)),
                    watch_id,
                    created: true,
                    ..Default::default()
                }
            }
            // etcd reports a refused watcher as created and canceled at once, id -1.
            Err(e) => WatchResponse {
                header: Some(self.server.header(self.server.watch.revision())),
                watch_id: INVALID_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: watch_cancel_reason(&e).to_string(),
                ..Default::default()
            },
        }
    }

    async fn deliver(&mut self, d: Delivery) -> Result<(), Closed> {
        let (prev_kv, fragment) = match self.watchers.get_mut(&d.watch_id) {
            Some(o) if o.watcher == d.watcher => {
                if !d.events.is_empty() {
                    o.idle = false;
                }
                (o.prev_kv, o.fragment)
            }
            None if d.watch_id == INVALID_WATCH_ID => (false, false),
            // Canceled after the hub queued this (the id may have been reused since).
            _ => return Ok(()),
        };
        let events = d
            .events
            .into_iter()
            .map(|e| Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone()))
            .map(|e| self.with_prev_kv(e, prev_kv))
            .collect();
        let canceled = d.compact_revision != 0;
        if canceled {
            self.watchers.remove(&d.watch_id);
        }
        let mut header = self.server.header(d.revision);
        if canceled {
            // etcd's compaction cancel carries no header revision.
            header.revision = 0;
        }
        let resp = WatchResponse {
            header: Some(header),
            watch_id: d.watch_id,
            canceled,
            compact_revision: d.compact_revision,
            events,
            ..Default::default()
        };
        if fragment {
            for part in fragments(resp, self.server.watch.config().fragment_bytes) {
                self.send(part).await?;
            }
            Ok(())
        } else {
            self.send(resp).await
        }
    }

    /// Sets or clears `prev_kv` as the watcher asked. The lookup happens here, on the
    /// session's task, so apply never reads for watchers.
    fn with_prev_kv(&self, mut e: Event, wanted: bool) -> Event {
        if !wanted {
            e.prev_kv = None;
            return e;
        }
        let Some(kv) = &e.kv else { return e };
        let created = e.r#type == EventType::Put as i32 && kv.create_revision == kv.mod_revision;
        if e.prev_kv.is_none() && !created {
            match history::prev_kv(self.server.store.as_ref(), &kv.key, kv.mod_revision) {
                Ok(prev) => e.prev_kv = prev,
                // etcd sends the event without prev_kv when the read fails.
                Err(err) => tracing::warn!(error = %err, "watch: cannot read prev_kv"),
            }
        }
        e
    }

    /// etcd's progress rule: every interval, each `progress_notify` watcher that got no
    /// events since the last tick receives an empty response with the revision.
    fn progress_tick(&mut self) {
        let mut due = Vec::new();
        for (id, o) in self.watchers.iter_mut().filter(|(_, o)| o.progress_notify) {
            if o.idle {
                due.push(*id);
            }
            o.idle = true;
        }
        if !due.is_empty() {
            self.stream.progress(&due);
        }
    }

    async fn send(&self, resp: WatchResponse) -> Result<(), Closed> {
        self.out.send(Ok(resp)).await.map_err(|_| Closed)
    }
}

/// Splits a response of at least `limit` bytes with two or more events into parts
/// below the limit (each at least one event), all but the last marked `fragment`, as
/// etcd's `sendFragments` does. A revision may span parts: the client reassembles.
fn fragments(resp: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() < limit || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut shell = resp;
    let events = std::mem::take(&mut shell.events);
    shell.fragment = true;
    let base = shell.encoded_len();
    let mut parts = Vec::new();
    let mut cur = shell.clone();
    let mut size = base;
    for ev in events {
        // Each event costs its tag byte, its length prefix and its bytes.
        let len = ev.encoded_len();
        let cost = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        if !cur.events.is_empty() && size + cost >= limit {
            parts.push(std::mem::replace(&mut cur, shell.clone()));
            size = base;
        }
        size += cost;
        cur.events.push(ev);
    }
    cur.fragment = false;
    parts.push(cur);
    parts
}

/// etcd adds up to 10% of jitter so that watchers created together do not all get
/// their notifications at the same moment.
fn jittered(interval: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    interval + interval / 10 * (nanos % 1000) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use revkv_proto::mvccpb::KeyValue;

    fn event(size: usize) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                value: vec![b'v'; size],
                mod_revision: 2,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn small_or_single_event_responses_are_not_fragmented() {
        let r = WatchResponse {
            events: vec![event(10), event(10)],
            ..Default::default()
        };
        assert_eq!(fragments(r.clone(), 1000), vec![r]);
        let big = WatchResponse {
            events: vec![event(5000)],
            ..Default::default()
        };
        assert_eq!(fragments(big.clone(), 1000), vec![big]);
    }

    #[test]
    fn large_responses_split_below_the_limit_in_order() {
        let events: Vec<Event> = (0..10).map(|i| event(300 + i)).collect();
        let r = WatchResponse {
            watch_id: 7,
            events: events.clone(),
            ..Default::default()
        };
        let parts = fragments(r, 1000);
        assert!(parts.len() > 1);
        let last = parts.len() - 1;
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.watch_id, 7);
            assert_eq!(
                p.fragment,
                i != last,
                "only the last part is not a fragment"
            );
            assert!(p.encoded_len() < 1000 || p.events.len() == 1);
        }
        let joined: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
    }
}
