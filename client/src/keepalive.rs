//! [`KeepAlive`]: background renewals of one lease over a `LeaseKeepAlive` stream,
//! moving to another endpoint when the stream breaks, stopped by dropping the handle.

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use revkv_proto::etcdserverpb::{self as pb, lease_client::LeaseClient as RawLease};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::lease::LeaseKeepAliveResponse;
use crate::pool::Pool;

/// Renewals delivered but not yet read; when full, further ones are dropped (the
/// renewals themselves go on), as etcd's client does for a slow reader.
const BUFFERED: usize = 16;
/// Pause before reopening a broken stream, doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Keeps one lease alive until dropped; yields each keep-alive response.
///
/// Implements [`futures::Stream`]; [`KeepAlive::next`] is the same without the
/// trait. The stream ends after [`Error::LeaseExpired`] when the lease is gone.
///
/// ```no_run
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let lease = client.lease().grant(5).await?;
/// let mut keep = client.lease().keep_alive(lease.id).await?;
/// for _ in 0..3 {
///     let resp = keep.next().await.expect("renewals go on")?;
///     println!("lease {:016x} keepalived with TTL({})", resp.id, resp.ttl);
/// }
/// drop(keep); // no more renewals: the lease expires 5 s later
/// # Ok(()) }
/// ```
pub struct KeepAlive {
    id: i64,
    ttl: Arc<AtomicI64>,
    responses: mpsc::Receiver<Result<LeaseKeepAliveResponse>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAlive")
            .field("id", &self.id)
            .field("ttl", &self.ttl())
            .finish()
    }
}

impl KeepAlive {
    pub(crate) async fn start(pool: Arc<Pool>, id: i64) -> Result<KeepAlive> {
        let (tx, responses) = mpsc::channel(BUFFERED);
        let ttl = Arc::new(AtomicI64::new(0));
        let task = tokio::spawn(renew(pool, id, tx, ttl.clone()));
        Ok(KeepAlive {
            id,
            ttl,
            responses,
            task,
        })
    }

    /// The lease kept alive.
    ///
    /// ```no_run
    /// # async fn f(keep: revkv_client::KeepAlive) { println!("{:016x}", keep.id()); }
    /// ```
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL of the last renewal (0 before the first).
    ///
    /// ```no_run
    /// # async fn f(keep: revkv_client::KeepAlive) { println!("TTL {}", keep.ttl()); }
    /// ```
    pub fn ttl(&self) -> i64 {
        self.ttl.load(Ordering::Relaxed)
    }

    /// The next keep-alive response; `None` once the lease is gone (after an
    /// [`Error::LeaseExpired`]).
    ///
    /// ```no_run
    /// # async fn f(mut keep: revkv_client::KeepAlive) -> revkv_client::Result<()> {
    /// while let Some(resp) = keep.next().await {
    ///     println!("TTL {}", resp?.ttl);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Option<Result<LeaseKeepAliveResponse>> {
        self.responses.recv().await
    }
}

impl futures::Stream for KeepAlive {
    type Item = Result<LeaseKeepAliveResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.responses.poll_recv(cx)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        // Aborting drops the gRPC stream: the server hears no more renewals.
        self.task.abort();
    }
}

/// Renews one lease over one `LeaseKeepAlive` stream.
type Opened = (
    mpsc::Sender<pb::LeaseKeepAliveRequest>,
    tonic::Streaming<pb::LeaseKeepAliveResponse>,
);

/// Opens a keep-alive stream on `ch` with the first request already queued (the
/// server sends nothing, not even headers, before it has a request to answer).
/// Generic over the transport: the pool's streams use tonic's channel, a single
/// renewal the unary one.
async fn open<T>(ch: T, id: i64) -> std::result::Result<Opened, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let (tx, rx) = mpsc::channel(4);
    // Cannot fail: the channel is new and has room.
    let _ = tx.try_send(pb::LeaseKeepAliveRequest { id });
    let stream = RawLease::new(ch)
        .lease_keep_alive(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((tx, stream))
}

/// The background task: renew every TTL/3, reopen on another endpoint when the
/// stream breaks, stop when the lease is gone or the handle dropped.
async fn renew(
    pool: Arc<Pool>,
    id: i64,
    out: mpsc::Sender<Result<LeaseKeepAliveResponse>>,
    ttl: Arc<AtomicI64>,
) {
    let mut failed: Option<String> = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        let (endpoint, (requests, mut stream)) =
            match pool.open(failed.as_deref(), |ch| open(ch, id)).await {
                Ok(opened) => opened,
                Err(e) if e.code() == tonic::Code::NotFound => {
                    let _ = out.send(Err(Error::LeaseExpired(id))).await;
                    return;
                }
                Err(e) => {
                    tracing::debug!(lease = id, error = %e, "keep-alive: no endpoint, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
        // Until the first answer on this stream, re-ask soon rather than after TTL/3.
        let mut next_at = Instant::now() + MAX_BACKOFF;
        loop {
            tokio::select! {
                msg = stream.message() => match msg {
                    Ok(Some(r)) => {
                        backoff = MIN_BACKOFF;
                        if r.ttl <= 0 {
                            let _ = out.send(Err(Error::LeaseExpired(id))).await;
                            return;
                        }
                        ttl.store(r.ttl, Ordering::Relaxed);
                        next_at = Instant::now() + renew_interval(r.ttl);
                        if out.is_closed() {
                            return;
                        }
                        // A slow reader loses responses, never renewals.
                        let _ = out.try_send(Ok(r.into()));
                    }
                    Ok(None) => break,
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        let _ = out.send(Err(Error::LeaseExpired(id))).await;
                        return;
                    }
                    Err(status) => {
                        tracing::debug!(lease = id, %endpoint, error = %status, "keep-alive stream broke");
                        break;
                    }
                },
                _ = tokio::time::sleep_until(next_at) => {
                    next_at = Instant::now() + MAX_BACKOFF;
                    if requests.send(pb::LeaseKeepAliveRequest { id }).await.is_err() {
                        break;
                    }
                }
            }
        }
        failed = Some(endpoint);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// etcd's client renews after a third of the TTL.
fn renew_interval(ttl_secs: i64) -> Duration {
    Duration::from_millis((ttl_secs.max(1) as u64) * 1000 / 3)
}

/// One renewal on a short-lived stream.
pub(crate) async fn keep_alive_once(pool: &Pool, id: i64) -> Result<LeaseKeepAliveResponse> {
    let r = pool
        .call(true, |ch| async move {
            let (_requests, mut stream) = open(ch, id).await?;
            stream
                .message()
                .await?
                .ok_or_else(|| tonic::Status::unavailable("keep-alive stream closed"))
        })
        .await?;
    if r.ttl <= 0 {
        // What etcd's KeepAliveOnce returns (rpctypes.ErrLeaseNotFound).
        return Err(Error::Rpc {
            code: tonic::Code::NotFound,
            message: "etcdserver: requested lease not found".into(),
        });
    }
    Ok(r.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_after_a_third_of_the_ttl() {
        assert_eq!(renew_interval(9), Duration::from_secs(3));
        assert_eq!(renew_interval(1), Duration::from_millis(333));
        assert_eq!(renew_interval(0), Duration::from_millis(333));
    }
}
