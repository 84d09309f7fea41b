//! TCP connections for gRPC on which h2 packs many small frames into one write.
//!
//! h2 does not copy a DATA payload of 256 bytes or more into its write buffer when
//! the transport reports vectored writes: it chains it, and it can hold only one
//! chained payload at a time. Every put request carrying a 256-byte value then cost a
//! `writev` of its own, and its empty end-of-stream frame a second one; the load
//! generator's profile showed 2.2 writes per put and 36 % of its CPU under `writev`,
//! where over loopback the writer also runs the receiver's TCP input path. A
//! transport that reports no vectored writes raises h2's chaining threshold to
//! 1 KiB, so small payloads are copied into its 16 KiB buffer and one write carries
//! every frame that is ready.
//!
//! Ready frames of several streams share a write only if they are queued before the
//! connection's task writes. Each finished request wakes that task, and tokio runs a
//! task woken by the running one next, so responses (and a client's requests) went
//! out one write each: 0.86 `sendto` per put on the server at 200 clients over 16
//! connections, where grpc-go (etcd) makes about 0.4. [`Coalescing`] therefore puts
//! off each write once, until the worker has run what else is ready — on a busy
//! connection until everything already queued has run.
//!
//! [`Coalescing`] is that transport; servers wrap accepted connections in it
//! ([`coalescing_incoming`]) and clients dial through [`TcpConnector`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;
use tonic::codegen::Service;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A byte stream that hides its vectored-write support from h2 (see the module
/// documentation) and holds each write back for one pass of the scheduler.
#[derive(Debug)]
pub struct Coalescing<T> {
    inner: T,
    /// Whether this flush's first write was already put off.
    deferred: bool,
    /// The length of the write that was put off, until it resumes (then 0).
    held: usize,
    /// Whether the last write that was put off grew while it waited: other streams
    /// were ready too, so the connection is busy.
    busy: bool,
}

impl<T> Coalescing<T> {
    pub fn new(inner: T) -> Self {
        Coalescing {
            inner,
            deferred: false,
            held: 0,
            busy: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalescing<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalescing<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // The task that completes a request wakes the connection's task, which tokio
        // then runs next (its LIFO slot), so each response went out in a write of its
        // own while other finished requests of the same connection sat in the run
        // queue. The first write of each flush is put off: the other requests queue
        // their frames first, and one write carries them all.
        //
        // How far depends on load. An idle connection uses `yield_now`'s wake-up,
        // which the worker delivers once its queue is empty (at once when idle). A busy
        // one (the last deferral found more frames to send) wakes itself, which puts
        // the task behind everything already queued: fewer, larger writes, at the cost
        // of offering the task to an idle worker, whose wake-up would only slow a lone
        // client down.
        if !self.deferred {
            self.deferred = true;
            self.held = buf.len();
            if self.busy {
                cx.waker().wake_by_ref();
            } else {
                let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
            }
            return Poll::Pending;
        }
        if self.held != 0 {
            self.busy = buf.len() > self.held;
            self.held = 0;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A large buffer takes several writes; only the first of a flush waits.
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if r.is_ready() {
            self.deferred = false;
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl Connected for Coalescing<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

/// Accepted connections from `incoming` (e.g. tonic's `TcpIncoming`), each wrapped
/// in [`Coalescing`], for `serve_with_incoming`.
pub fn coalescing_incoming<S>(
    incoming: S,
) -> impl tokio_stream::Stream<Item = io::Result<Coalescing<TcpStream>>>
where
    S: tokio_stream::Stream<Item = io::Result<TcpStream>>,
{
    use tokio_stream::StreamExt;
    incoming.map(|conn| conn.map(Coalescing::new))
}

/// Dials `http://host:port` URIs over TCP with `TCP_NODELAY` set, for tonic's
/// `Endpoint::connect_with_connector`: a connector replaces the endpoint's own TCP
/// options, and a small request must not wait for a delayed ACK.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Service<Uri> for TcpConnector {
    type Response = TokioIo<Coalescing<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(async move {
            let (host, port) = host_port(&uri)?;
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(Coalescing::new(stream)))
        })
    }
}

/// The host (without IPv6 brackets) and port to dial for `uri`; only plain-text
/// `http` is spoken.
fn host_port(uri: &Uri) -> io::Result<(String, u16)> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: {why}"));
    match uri.scheme_str() {
        None | Some("http") => {}
        Some(other) => return Err(invalid(&format!("scheme {other} is not supported"))),
    }
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, uri.port_u16().unwrap_or(80)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_takes_ipv4_ipv6_and_names_and_refuses_tls() {
        let hp = |s: &str| host_port(&s.parse::<Uri>().unwrap());
        assert_eq!(
            hp("http://127.0.0.1:2379").unwrap(),
            ("127.0.0.1".into(), 2379)
        );
        assert_eq!(hp("http://[::1]:2379").unwrap(), ("::1".into(), 2379));
        assert_eq!(hp("http://localhost").unwrap(), ("localhost".into(), 80));
        let err = hp("https://127.0.0.1:2379").unwrap_err();
        assert!(
            err.to_string().contains("scheme https is not supported"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_connector_reaches_a_listener_and_hides_vectored_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            buf
        });
        let io = TcpConnector
            .call(format!("http://{addr}").parse().unwrap())
            .await
            .unwrap();
        let mut conn = io.into_inner();
        assert!(!conn.is_write_vectored());
        assert!(conn.inner.nodelay().unwrap());
        conn.write_all(b"hello").await.unwrap();
        assert_eq!(&accept.await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn each_write_is_put_off_once_then_goes_through() {
        use std::task::Poll;
        let (a, mut b) = tokio::io::duplex(64);
        let mut conn = Coalescing::new(a);
        let mut pending = 0;
        let n = std::future::poll_fn(|cx| match Pin::new(&mut conn).poll_write(cx, b"ping") {
            Poll::Pending => {
                pending += 1;
                Poll::Pending
            }
            ready => ready,
        })
        .await
        .unwrap();
        assert_eq!((n, pending), (4, 1));
        // Within the flush no further write waits; after it the next one does again.
        assert!(conn.deferred);
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.flush().await.unwrap();
        assert!(!conn.deferred);
        conn.write_all(b"pong").await.unwrap();
        conn.flush().await.unwrap();
        let mut buf = [0u8; 8];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pingpong");
    }

    #[tokio::test]
    async fn a_write_that_grew_while_put_off_marks_the_connection_busy() {
        use tokio::io::AsyncWriteExt;
        let (a, _b) = tokio::io::duplex(64);
        let mut conn = Coalescing::new(a);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Put off with two bytes queued; by the resume h2 has queued two more.
        assert!(Pin::new(&mut conn).poll_write(&mut cx, b"ab").is_pending());
        let grown = Pin::new(&mut conn).poll_write(&mut cx, b"abcd");
        assert!(matches!(grown, Poll::Ready(Ok(4))));
        assert!(conn.busy);
        conn.flush().await.unwrap();
        // A busy connection wakes itself at once.
        assert!(Pin::new(&mut conn).poll_write(&mut cx, b"x").is_pending());
        // Nothing new arrived this time: back to idle.
        assert!(matches!(
            Pin::new(&mut conn).poll_write(&mut cx, b"x"),
            Poll::Ready(Ok(1))
        ));
        assert!(!conn.busy);
    }
}
