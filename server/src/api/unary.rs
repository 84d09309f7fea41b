//! etcd's KV calls served straight off the HTTP/2 stream, ahead of tonic's router.
//!
//! Every KV call is unary: one framed request message in, one framed answer plus
//! `grpc-status` out. Through tonic each still passes axum's router (a boxed, mapped
//! service per route), tonic's streaming decoder and encoder, and an `async_trait`
//! box. At 200 concurrent puts those layers were a tenth of the gRPC workers' samples
//! (docs/BENCHMARKS.md, item 34). [`UnaryKvLayer`] sits in front of the router and
//! answers the five KV methods itself; everything else (watch and lease streams, the
//! other services, the HTTP endpoints) goes on to the router untouched. tonic's outer
//! layers (`grpc-timeout`, the connection handling) apply to both paths alike.
//!
//! A request message larger than the limit is refused as etcd's gRPC server (grpc-go)
//! refuses it, `ResourceExhausted` "grpc: received message larger than max (N vs.
//! M)", before the whole body is read; for the router's unary calls tonic's
//! `OutOfRange` refusal is translated into the same words (see [`super::oversize`]).
//! The other framing errors keep tonic's statuses (a missing or truncated
//! message and a compressed-flag without `grpc-encoding` are `Internal`). Requests
//! that declare a `grpc-encoding` other than identity take the router's path.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prost::Message;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::Status;

use super::kv::KvService;
use super::oversize;
use crate::server::Server;

/// gRPC's message prefix: a compressed flag and a big-endian length.
const PREFIX_LEN: usize = 5;

/// Puts [`UnaryKv`] in front of a service (tonic's router).
#[derive(Clone)]
pub struct UnaryKvLayer {
    kv: Arc<KvService>,
    max_message: usize,
}

impl UnaryKvLayer {
    /// `max_message` is the largest request message accepted, as the router's
    /// `max_decoding_message_size`.
    pub fn new(server: Arc<Server>, max_message: usize) -> Self {
        UnaryKvLayer {
            kv: Arc::new(KvService::new(server)),
            max_message,
        }
    }
}

impl<S> tower_layer::Layer<S> for UnaryKvLayer {
    type Service = UnaryKv<S>;

    fn layer(&self, inner: S) -> UnaryKv<S> {
        UnaryKv {
            inner,
            kv: self.kv.clone(),
            max_message: self.max_message,
        }
    }
}

/// Serves the KV methods itself and hands every other request to `inner`.
#[derive(Clone)]
pub struct UnaryKv<S> {
    inner: S,
    kv: Arc<KvService>,
    max_message: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
}

impl Method {
    fn of(path: &str) -> Option<Method> {
        Some(match path.strip_prefix("/etcdserverpb.KV/")? {
            "Range" => Method::Range,
            "Put" => Method::Put,
            "DeleteRange" => Method::DeleteRange,
            "Txn" => Method::Txn,
            "Compact" => Method::Compact,
            _ => return None,
        })
    }
}

/// True unless the request declares a message encoding other than identity.
fn identity_encoded(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_none_or(|v| v.as_bytes() == b"identity")
}

type Reply = Result<Response<ReplyBody>, Infallible>;

impl<S> Service<Request<Body>> for UnaryKv<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<ReplyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Reply> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = Method::of(req.uri().path()).filter(|_| identity_encoded(req.headers()));
        match method {
            Some(method) => {
                let kv = self.kv.clone();
                let max = self.max_message;
                let token = super::header_token(req.headers());
                Box::pin(async move {
                    let answer = match read_message(req.into_body(), max).await {
                        Ok(msg) => serve(&kv, method, token.as_deref(), msg).await,
                        Err(status) => Err(status),
                    };
                    Ok(match answer {
                        Ok(data) => ok_response(data),
                        Err(status) => status.into_http(),
                    })
                })
            }
            None => {
                let routed = self.inner.call(req);
                Box::pin(async move {
                    let mut r = routed.await?;
                    oversize::translate_headers(r.headers_mut());
                    Ok(r.map(ReplyBody::Routed))
                })
            }
        }
    }
}

/// Decodes the request, runs the KV handler, and frames its answer.
async fn serve(
    kv: &KvService,
    method: Method,
    token: Option<&[u8]>,
    msg: Bytes,
) -> Result<Bytes, Status> {
    match method {
        Method::Range => frame(&kv.range_rpc(token, decode(msg)?).await?),
        Method::Put => frame(&kv.put_rpc(token, decode(msg)?).await?),
        Method::DeleteRange => frame(&kv.delete_range_rpc(token, decode(msg)?).await?),
        Method::Txn => frame(&kv.txn_rpc(token, decode(msg)?).await?),
        Method::Compact => frame(&kv.compact_rpc(token, decode(msg)?).await?),
    }
}

fn decode<M: Message + Default>(msg: Bytes) -> Result<M, Status> {
    M::decode(msg).map_err(|e| Status::internal(e.to_string()))
}

/// The answer with its gRPC prefix, uncompressed.
fn frame<M: Message>(m: &M) -> Result<Bytes, Status> {
    let len = m.encoded_len();
    let prefix_len = u32::try_from(len).map_err(|_| {
        Status::out_of_range(format!(
            "Error, encoded message length too large: found {len} bytes, the limit is: {} bytes",
            u32::MAX
        ))
    })?;
    let mut buf = BytesMut::with_capacity(PREFIX_LEN + len);
    buf.put_u8(0);
    buf.put_u32(prefix_len);
    m.encode_raw(&mut buf);
    Ok(buf.freeze())
}

fn ok_response(data: Bytes) -> Response<ReplyBody> {
    let mut r = Response::new(ReplyBody::Unary {
        data: Some(data),
        trailers: true,
    });
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    r
}

/// Reads the request body to its end and returns its one message, without the prefix.
/// An oversized message is refused as soon as its prefix arrives.
async fn read_message(mut body: Body, max: usize) -> Result<Bytes, Status> {
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    let mut checked = false;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        match (&mut first, &mut more) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut m = BytesMut::with_capacity(f.len() + data.len());
                m.extend_from_slice(f);
                m.extend_from_slice(&data);
                more = Some(m);
            }
            (Some(_), Some(m)) => m.extend_from_slice(&data),
        }
        let buffered = more.as_deref().or(first.as_deref()).unwrap_or_default();
        if !checked && buffered.len() >= PREFIX_LEN {
            check_prefix(buffered, max)?;
            checked = true;
        }
    }
    let mut buf = match more {
        Some(m) => m.freeze(),
        None => first.unwrap_or_default(),
    };
    if buf.is_empty() {
        return Err(Status::internal("Missing request message."));
    }
    if buf.len() < PREFIX_LEN {
        return Err(Status::internal("Unexpected EOF decoding stream."));
    }
    let len = check_prefix(&buf, max)?;
    buf.advance(PREFIX_LEN);
    if buf.len() < len {
        return Err(Status::internal("Unexpected EOF decoding stream."));
    }
    Ok(buf.split_to(len))
}

/// Checks a message prefix; returns the message length.
fn check_prefix(buf: &[u8], max: usize) -> Result<usize, Status> {
    match buf[0] {
        0 => {}
        1 => {
            return Err(Status::internal(
                "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            ))
        }
        f => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {f} (valid flags are 0 and 1), while sending request"
            )))
        }
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > max {
        return Err(oversize::too_large(len, max));
    }
    Ok(len)
}

/// The body of either path's answer.
pub enum ReplyBody {
    /// The router's answer.
    Routed(Body),
    /// A KV answer: its one framed message, then `grpc-status: 0`. Empty (both taken)
    /// for a trailers-only error.
    Unary { data: Option<Bytes>, trailers: bool },
}

impl Default for ReplyBody {
    fn default() -> Self {
        ReplyBody::Unary {
            data: None,
            trailers: false,
        }
    }
}

impl HttpBody for ReplyBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match self.get_mut() {
            ReplyBody::Routed(b) => Pin::new(b).poll_frame(cx),
            ReplyBody::Unary { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                if std::mem::take(trailers) {
                    let mut h = HeaderMap::with_capacity(1);
                    h.insert("grpc-status", HeaderValue::from_static("0"));
                    return Poll::Ready(Some(Ok(Frame::trailers(h))));
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Routed(b) => b.is_end_stream(),
            ReplyBody::Unary { data, trailers } => data.is_none() && !trailers,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Routed(b) => b.size_hint(),
            // Unknown, as tonic's bodies: an exact hint would add a content-length.
            ReplyBody::Unary { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(flag: u8, msg: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        v.extend_from_slice(msg);
        v
    }

    fn body_of(chunks: Vec<Vec<u8>>) -> Body {
        let s = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Status>(Frame::data(Bytes::from(c)))),
        );
        Body::new(http_body_util::StreamBody::new(s))
    }

    #[test]
    fn routes_only_the_kv_methods() {
        assert_eq!(Method::of("/etcdserverpb.KV/Put"), Some(Method::Put));
        assert_eq!(Method::of("/etcdserverpb.KV/Range"), Some(Method::Range));
        assert_eq!(Method::of("/etcdserverpb.KV/Nope"), None);
        assert_eq!(Method::of("/etcdserverpb.Lease/LeaseGrant"), None);
        assert_eq!(Method::of("/health"), None);
    }

    #[test]
    fn only_identity_encoded_requests_take_the_direct_path() {
        let mut h = HeaderMap::new();
        assert!(identity_encoded(&h));
        h.insert("grpc-encoding", HeaderValue::from_static("identity"));
        assert!(identity_encoded(&h));
        h.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        assert!(!identity_encoded(&h));
    }

    #[tokio::test]
    async fn reads_a_message_split_over_frames() {
        let whole = framed(0, b"hello world");
        let (a, b) = whole.split_at(3);
        let msg = read_message(body_of(vec![a.to_vec(), b.to_vec()]), 100)
            .await
            .expect("read");
        assert_eq!(&msg[..], b"hello world");
        let msg = read_message(body_of(vec![whole.clone()]), 100)
            .await
            .expect("read");
        assert_eq!(&msg[..], b"hello world");
    }

    #[tokio::test]
    async fn refuses_bad_framing() {
        let e = read_message(body_of(vec![]), 100)
            .await
            .expect_err("refused");
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::Internal, "Missing request message.")
        );
        let e = read_message(body_of(vec![framed(0, b"abc")[..6].to_vec()]), 100)
            .await
            .expect_err("refused");
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::Internal, "Unexpected EOF decoding stream.")
        );
        let e = read_message(body_of(vec![framed(0, &[7; 11])]), 10)
            .await
            .expect_err("refused");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            e.message(),
            "grpc: received message larger than max (11 vs. 10)"
        );
        let e = read_message(body_of(vec![framed(1, b"x")]), 10)
            .await
            .expect_err("refused");
        assert_eq!(e.code(), tonic::Code::Internal);
        assert!(e.message().contains("compressed-flag"), "{}", e.message());
    }

    #[tokio::test]
    async fn answers_one_message_then_status_ok() {
        let mut body = ReplyBody::Unary {
            data: Some(Bytes::from_static(b"\0\0\0\0\0")),
            trailers: true,
        };
        assert!(!body.is_end_stream());
        let f = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .expect("a frame")
            .expect("no error");
        assert_eq!(f.into_data().expect("data").len(), 5);
        let f = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .expect("a frame")
            .expect("no error");
        assert_eq!(f.into_trailers().expect("trailers")["grpc-status"], "0");
        assert!(body.is_end_stream());
        assert!(ReplyBody::default().is_end_stream());
    }
}
