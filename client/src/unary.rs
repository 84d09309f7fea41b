//! [`UnaryChannel`]: the transport of the client's unary calls, gRPC straight over one
//! `h2` connection per endpoint.
//!
//! A tonic `Channel` hands every request through two tasks before it reaches the
//! socket: tower's `Buffer` worker, then hyper's connection dispatcher, which also
//! spawns a task per request to pipe its body. Each hand-off is a task wake-up, and at
//! 200 concurrent puts they were about a third of the client's CPU per call
//! (docs/BENCHMARKS.md, item 26). Here the calling task opens the stream itself (h2's
//! `SendRequest` is a handle on the shared connection state), writes the request's
//! frames, and polls the response; the only other task is the connection's own, which
//! does the socket I/O. A request body that is not complete at once (a client stream)
//! is piped by a task of its own, as hyper would.
//!
//! The connection is dialed on first use and again after it fails; a failed dial is
//! reported as tonic's `ConnectError`, so the pool knows the request never left. Errors
//! of an established connection become `Unavailable`, as grpc-go reports a broken
//! transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::uri::{PathAndQuery, Uri};
use http_body::{Body, Frame};
use tonic::codegen::Service;
use tonic::Status;

use crate::client::ConnectOptions;
use crate::tls::Connector;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;

/// A cloneable gRPC transport to one endpoint (see the module documentation).
#[derive(Clone)]
pub(crate) struct UnaryChannel {
    shared: Arc<Shared>,
}

struct Shared {
    /// `http://host:port` (or `https`): the scheme and authority every request carries.
    origin: Uri,
    /// TCP, and TLS for `https`.
    connector: Connector,
    dial_timeout: Duration,
    keep_alive: Option<KeepAlive>,
    /// The live connection, if any. Held only to clone or replace the handle.
    conn: parking_lot::Mutex<Option<Connection>>,
    /// One dial at a time; callers that find no connection wait for it. An async
    /// mutex, held across the dial on purpose (single flight, bounded by the dial
    /// timeout); `conn` itself is never held across an `.await`.
    dialing: tokio::sync::Mutex<()>,
}

#[derive(Clone, Copy)]
struct KeepAlive {
    interval: Duration,
    timeout: Duration,
    while_idle: bool,
}

#[derive(Clone)]
struct Connection {
    send: h2::client::SendRequest<Bytes>,
    /// Calls in flight on this connection, for the keep-alive's idle rule.
    active: Arc<AtomicUsize>,
    /// Ends the connection's task (and with it every stream) when dropped last.
    task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl UnaryChannel {
    /// A channel to `uri` (`http://host:port` or `https://…`) that dials on first use.
    pub(crate) fn new(
        uri: &str,
        options: &ConnectOptions,
        connector: Connector,
    ) -> Result<Self, http::Error> {
        let origin: Uri = uri.parse().map_err(http::Error::from)?;
        Ok(UnaryChannel {
            shared: Arc::new(Shared {
                origin,
                connector,
                dial_timeout: options.dial_timeout,
                keep_alive: options.keep_alive_time.map(|interval| KeepAlive {
                    interval,
                    timeout: options.keep_alive_timeout,
                    while_idle: options.permit_without_stream,
                }),
                conn: parking_lot::Mutex::new(None),
                dialing: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl UnaryChannel {
    /// Dials now unless a working connection exists (the client's start-up probe).
    pub(crate) async fn connect(&self) -> Result<(), BoxError> {
        self.shared.ready().await.map(drop)
    }
}

impl Shared {
    fn current(&self) -> Option<Connection> {
        self.conn.lock().clone()
    }

    /// A connection ready to open a stream: the current one, or a new one if it is
    /// gone or broken.
    async fn ready(&self) -> Result<(h2::client::SendRequest<Bytes>, Arc<AtomicUsize>), BoxError> {
        if let Some(ready) = self.ready_current().await {
            return Ok(ready);
        }
        let _gate = self.dialing.lock().await;
        // Someone else may have dialed while this call waited for the gate.
        if let Some(ready) = self.ready_current().await {
            return Ok(ready);
        }
        let c = self
            .dial()
            .await
            .map_err(|e| Box::new(tonic::ConnectError(Box::new(e))) as BoxError)?;
        *self.conn.lock() = Some(c.clone());
        let send = c.send.clone().ready().await.map_err(transport_error)?;
        Ok((send, c.active))
    }

    /// The current connection once it can open a stream; a broken one is forgotten.
    async fn ready_current(&self) -> Option<(h2::client::SendRequest<Bytes>, Arc<AtomicUsize>)> {
        let c = self.current()?;
        match c.send.clone().ready().await {
            Ok(send) => Some((send, c.active)),
            Err(_) => {
                self.forget(&c);
                None
            }
        }
    }

    /// Drops `c` as the current connection, unless it was already replaced.
    fn forget(&self, c: &Connection) {
        let mut slot = self.conn.lock();
        if slot
            .as_ref()
            .is_some_and(|cur| Arc::ptr_eq(&cur.task, &c.task))
        {
            *slot = None;
        }
    }

    async fn dial(&self) -> std::io::Result<Connection> {
        let origin = self.origin.clone();
        let handshake = async {
            // The same dialer as the tonic channels: TCP_NODELAY, coalesced writes,
            // TLS for https.
            let io = self.connector.dial(origin).await?;
            // hyper's defaults, which the tonic channel used: windows large enough that
            // a big range or snapshot is not paced by WINDOW_UPDATE round trips.
            h2::client::Builder::new()
                .enable_push(false)
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .max_send_buffer_size(MAX_SEND_BUFFER)
                .handshake::<_, Bytes>(io)
                .await
                .map_err(std::io::Error::other)
        };
        let (send, mut conn) = tokio::time::timeout(self.dial_timeout, handshake)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "context deadline exceeded")
            })??;
        let active = Arc::new(AtomicUsize::new(0));
        let pinger = match self.keep_alive {
            Some(k) => conn.ping_pong().map(|p| (p, k, Arc::clone(&active))),
            None => None,
        };
        let task = tokio::spawn(async move {
            match pinger {
                Some((pings, k, active)) => {
                    tokio::select! {
                        r = &mut conn => log_end(r),
                        () = keep_alive(pings, k, active) => {
                            tracing::debug!("keep-alive ping unanswered; closing the connection");
                        }
                    }
                }
                None => log_end(conn.await),
            }
        });
        Ok(Connection {
            send,
            active,
            task: Arc::new(AbortOnDrop(task.abort_handle())),
        })
    }
}

fn log_end(r: Result<(), h2::Error>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "connection closed");
    }
}

/// Pings every `interval` (only while calls are in flight unless `while_idle`) and
/// returns when a ping goes unanswered for `timeout`.
async fn keep_alive(mut pings: h2::PingPong, k: KeepAlive, active: Arc<AtomicUsize>) {
    loop {
        tokio::time::sleep(k.interval).await;
        if !k.while_idle && active.load(Ordering::Relaxed) == 0 {
            continue;
        }
        match tokio::time::timeout(k.timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// An error of an established connection, as the status the caller sees.
fn status_of(e: h2::Error) -> Status {
    let message = format!("transport: {e}");
    match e.reason() {
        Some(h2::Reason::CANCEL) => Status::cancelled(message),
        Some(h2::Reason::ENHANCE_YOUR_CALM) => Status::resource_exhausted(message),
        Some(h2::Reason::REFUSED_STREAM) | None => Status::unavailable(message),
        Some(h2::Reason::NO_ERROR) if e.is_go_away() => Status::unavailable(message),
        Some(_) => Status::internal(message),
    }
}

fn transport_error(e: h2::Error) -> BoxError {
    Box::new(status_of(e))
}

impl Service<http::Request<tonic::body::Body>> for UnaryChannel {
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness (a connection, a free stream) is awaited in the call itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (mut parts, mut body) = req.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            let mut uri = shared.origin.clone().into_parts();
            uri.path_and_query = Some(path);
            parts.uri = Uri::from_parts(uri).map_err(|e| Box::new(e) as BoxError)?;
            // What the body has ready now: all of a unary request.
            let (data, ended) = take_ready(&mut body).await?;
            let (mut send, active) = shared.ready().await?;
            let head = http::Request::from_parts(parts, ());
            let only_head = ended && data.is_empty();
            let (response, mut stream) = send
                .send_request(head, only_head)
                .map_err(transport_error)?;
            if !data.is_empty() {
                stream.send_data(data, ended).map_err(transport_error)?;
            }
            if !ended {
                tokio::spawn(pipe(body, stream));
            }
            let guard = InFlight::new(active);
            let response = response.await.map_err(transport_error)?;
            Ok(response.map(|recv| ResponseBody {
                recv,
                data_done: false,
                _in_flight: guard,
            }))
        })
    }
}

/// Collects the frames `body` yields without waiting; `true` once it has ended.
/// A unary request is one frame, passed on without a copy.
async fn take_ready(body: &mut tonic::body::Body) -> Result<(Bytes, bool), BoxError> {
    let mut first = Bytes::new();
    let mut more: Option<BytesMut> = None;
    let mut body = Pin::new(body);
    let ended = std::future::poll_fn(|cx| loop {
        match body.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                match more.as_mut() {
                    Some(buf) => buf.extend_from_slice(&data),
                    None if first.is_empty() => first = data,
                    None => {
                        let mut buf = BytesMut::from(&first[..]);
                        buf.extend_from_slice(&data);
                        more = Some(buf);
                    }
                }
            }
            Poll::Ready(Some(Err(status))) => {
                return Poll::Ready(Err(Box::new(status) as BoxError))
            }
            Poll::Ready(None) => return Poll::Ready(Ok(true)),
            Poll::Pending => return Poll::Ready(Ok(false)),
        }
    })
    .await?;
    Ok((more.map_or(first, BytesMut::freeze), ended))
}

/// Sends the rest of a streaming request body, ending the stream when the body ends;
/// stops early if the server resets the stream.
async fn pipe(mut body: tonic::body::Body, mut stream: h2::SendStream<Bytes>) {
    loop {
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(reason) = stream.poll_reset(cx) {
                return Poll::Ready(Err(reason.ok()));
            }
            Pin::new(&mut body).poll_frame(cx).map(Ok)
        })
        .await;
        let sent = match next {
            Err(_) => return,
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => stream.send_data(data, false),
                Err(_) => Ok(()),
            },
            Ok(Some(Err(_))) => {
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            Ok(None) => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Counts a call as in flight until its response body is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(active: Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        InFlight(active)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response's DATA frames, then its trailers (where gRPC puts the status).
pub(crate) struct ResponseBody {
    recv: h2::RecvStream,
    data_done: bool,
    _in_flight: InFlight,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if !this.data_done {
            match this.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    // Hand the window back at once: the data is the caller's now.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(status_of(e)))),
                Poll::Ready(None) => this.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match this.recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(status_of(e)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
