//! Every etcd v3 call the benchmark makes, in one place.
//!
//! The rest of the tool sees plain methods (`put`, `range`, `txn_put`, …) returning
//! `Result<_, String>`, where the string is the message errors are counted by.
//! Unary calls go through `revkv-client` (one `Client` per `--conns` connection), the
//! same client applications use. The two streaming workloads drive the wire directly
//! over their own connections: `lease-keepalive` times each renewal on one long-lived
//! stream (the client's `KeepAlive` renews on its own schedule), and `watch` packs many
//! watchers onto one stream as etcd's benchmark does (the client opens a stream per
//! watch).
//!
//! Requests rotate over the connections (one atomic counter), so `--clients` more than
//! `--conns` share connections evenly, as etcd's benchmark shares its clients.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use revkv_client::{Client, GetOptions, Kv, Op, PutOptions, Txn};
use revkv_proto::etcdserverpb::{
    lease_client::LeaseClient, watch_client::WatchClient, watch_request, LeaseKeepAliveRequest,
    WatchCreateRequest, WatchRequest, WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// A request's failure, as counted in the report.
pub type RpcError = String;

/// Renders a gRPC status the way etcd's Go client prints it: etcd's own errors by
/// their message (`etcdserver: request timed out`), anything else with its code.
pub fn describe(status: &Status) -> RpcError {
    describe_parts(status.code(), status.message())
}

/// [`describe`] for an error from `revkv-client`.
pub fn describe_client(err: &revkv_client::Error) -> RpcError {
    describe_parts(err.code(), &err.message())
}

fn describe_parts(code: tonic::Code, msg: &str) -> RpcError {
    if msg.starts_with("etcdserver:") || msg.starts_with("mvcc:") {
        msg.to_owned()
    } else {
        format!(
            "rpc error: code = {} desc = {msg}",
            revkv_proto::code_name(code)
        )
    }
}

/// Handle over the run's connections; cheap to clone into every client task.
#[derive(Clone)]
pub struct Rpc {
    /// One client per connection, for unary calls.
    clients: Arc<[Client]>,
    /// Raw connections for the streaming workloads (empty for the others).
    channels: Arc<[Channel]>,
    next: Arc<AtomicUsize>,
}

impl Rpc {
    /// # Panics
    /// If `clients` is empty (the caller connects at least one).
    pub fn new(clients: Vec<Client>, channels: Vec<Channel>) -> Self {
        assert!(!clients.is_empty(), "Rpc needs at least one connection");
        Rpc {
            clients: clients.into(),
            channels: channels.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn turn(&self, len: usize) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % len.max(1)
    }

    /// The next client, round-robin.
    fn client(&self) -> &Client {
        &self.clients[self.turn(self.clients.len())]
    }

    /// The next raw connection, round-robin.
    fn channel(&self) -> Result<Channel, RpcError> {
        if self.channels.is_empty() {
            return Err("no streaming connection was dialed for this workload".to_owned());
        }
        Ok(self.channels[self.turn(self.channels.len())].clone())
    }

    /// Put; returns the revision of the write.
    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<i64, RpcError> {
        let resp = self
            .client()
            .kv()
            .put(key, value)
            .await
            .map_err(|e| describe_client(&e))?;
        Ok(resp.header.revision)
    }

    /// Range over `[key, end)` (just `key` when `end` is empty).
    pub async fn range(
        &self,
        key: Vec<u8>,
        range_end: Vec<u8>,
        serializable: bool,
    ) -> Result<(), RpcError> {
        let mut opts = GetOptions::new();
        if !range_end.is_empty() {
            opts = opts.with_range(range_end);
        }
        if serializable {
            opts = opts.with_serializable();
        }
        self.client()
            .kv()
            .get_with(key, opts)
            .await
            .map_err(|e| describe_client(&e))?;
        Ok(())
    }

    /// A Txn without compares whose success branch puts every pair.
    pub async fn txn_put(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), RpcError> {
        let txn = Txn::new().and_then(
            pairs
                .into_iter()
                .map(|(key, value)| Op::put(key, value, PutOptions::new())),
        );
        self.client()
            .kv()
            .txn(txn)
            .await
            .map_err(|e| describe_client(&e))?;
        Ok(())
    }

    /// Grants a lease with `ttl` seconds; returns its id.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, RpcError> {
        let resp = self
            .client()
            .lease()
            .grant(ttl)
            .await
            .map_err(|e| describe_client(&e))?;
        if !resp.error.is_empty() {
            return Err(resp.error);
        }
        Ok(resp.id)
    }

    /// Opens a keep-alive stream and renews `id` once on it.
    ///
    /// The first renewal is queued before the call is made: etcd (Go gRPC) sends the
    /// response headers only with its first message, so awaiting the call on an
    /// empty stream would wait forever.
    pub async fn keep_alive_stream(&self, id: i64) -> Result<KeepAlive, RpcError> {
        let (tx, rx) = mpsc::channel(1);
        tx.send(LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| "keep-alive stream closed".to_owned())?;
        let resp = LeaseClient::new(self.channel()?)
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .map_err(|s| describe(&s))?;
        let mut stream = KeepAlive {
            tx,
            rx: resp.into_inner(),
        };
        stream.answer().await?;
        Ok(stream)
    }

    /// Opens a watch stream on `key` and waits for the server to confirm it.
    pub async fn watch(&self, key: Vec<u8>) -> Result<Watch, RpcError> {
        self.watch_many(vec![key]).await
    }

    /// Opens one watch stream carrying a watcher on each of `keys` (several may be the
    /// same key) and waits until the server has confirmed every one.
    pub async fn watch_many(&self, keys: Vec<Vec<u8>>) -> Result<Watch, RpcError> {
        let want = keys.len();
        let (tx, rx) = mpsc::channel(want.max(1));
        for key in keys {
            let create = WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key,
                        ..Default::default()
                    },
                )),
            };
            tx.send(create)
                .await
                .map_err(|_| "watch stream closed before create".to_owned())?;
        }
        let mut stream = WatchClient::new(self.channel()?)
            .watch(ReceiverStream::new(rx))
            .await
            .map_err(|s| describe(&s))?
            .into_inner();
        let mut created = 0;
        while created < want {
            match stream.message().await {
                Ok(Some(r)) if r.created && !r.canceled => created += 1,
                Ok(Some(r)) if r.canceled => {
                    return Err(format!("watch not created: {}", r.cancel_reason))
                }
                // Events for watchers already created while others are pending.
                Ok(Some(_)) => {}
                Ok(None) => return Err("watch stream closed before created".to_owned()),
                Err(s) => return Err(describe(&s)),
            }
        }
        Ok(Watch {
            _tx: tx,
            rx: stream,
        })
    }
}

/// One open LeaseKeepAlive stream.
pub struct KeepAlive {
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<revkv_proto::etcdserverpb::LeaseKeepAliveResponse>,
}

impl KeepAlive {
    /// Renews `id` once and waits for the answer; a TTL of 0 means the lease is gone.
    pub async fn renew(&mut self, id: i64) -> Result<(), RpcError> {
        self.tx
            .send(LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| "keep-alive stream closed".to_owned())?;
        self.answer().await
    }

    /// Waits for the answer to the renewal just sent.
    async fn answer(&mut self) -> Result<(), RpcError> {
        match self.rx.message().await {
            Ok(Some(r)) if r.ttl > 0 => Ok(()),
            Ok(Some(_)) => Err("etcdserver: requested lease not found".to_owned()),
            Ok(None) => Err("keep-alive stream closed".to_owned()),
            Err(s) => Err(describe(&s)),
        }
    }
}

/// One open Watch stream carrying one or more watchers.
pub struct Watch {
    /// Kept so the request side stays open (closing it ends the watch).
    _tx: mpsc::Sender<WatchRequest>,
    rx: Streaming<WatchResponse>,
}

impl Watch {
    /// The next response with events; `Ok(None)` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<WatchResponse>, RpcError> {
        loop {
            match self.rx.message().await {
                Ok(Some(r)) if r.canceled => {
                    return Err(format!("watch canceled: {}", r.cancel_reason))
                }
                Ok(Some(r)) if r.events.is_empty() => continue,
                Ok(other) => return Ok(other),
                Err(s) => return Err(describe(&s)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn etcd_errors_keep_their_message_others_get_the_code() {
        assert_eq!(
            describe(&Status::new(
                Code::Unavailable,
                "etcdserver: request timed out"
            )),
            "etcdserver: request timed out"
        );
        assert_eq!(
            describe(&Status::new(Code::Unavailable, "connection refused")),
            "rpc error: code = Unavailable desc = connection refused"
        );
    }
}
