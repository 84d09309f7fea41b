//! Rust client for revkv — and for etcd, since revkv speaks etcd's v3 API.
//!
//! [`Client::connect`] opens connections to several endpoints (per endpoint one for
//! unary calls, made straight over `h2`, and one for streams) and hands out one handle
//! per etcd service: [`Client::kv`], [`Client::watch`], [`Client::lease`],
//! [`Client::cluster`], [`Client::maintenance`]. Unary calls fail over between
//! endpoints; watches resume on another member without losing or repeating events;
//! [`KeepAlive`] renews a lease in the background.
//!
//! KV calls all go through one funnel, [`Kv::execute`], so behaviour is added by
//! wrapping: a decorator is a small type around another [`Kv`] ([`Namespace`],
//! [`Retry`], [`Ordering`], [`Timeout`], [`WithLease`], [`Traced`]).
//!
//! ```no_run
//! use revkv_client::{Client, ConnectOptions, Kv, Namespace, Retry, RetryPolicy};
//!
//! # async fn f() -> revkv_client::Result<()> {
//! let client = Client::connect(["127.0.0.1:2379"], ConnectOptions::new()).await?;
//! let kv = Namespace::new(Retry::new(client.kv(), RetryPolicy::default()), "app/");
//! kv.put("k", "v").await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod client;
mod cluster;
pub mod decorator;
mod endpoints;
mod error;
mod keepalive;
mod kv;
mod kv_client;
mod lease;
mod maintenance;
mod op;
mod options;
mod pool;
mod response;
mod tls;
mod unary;
mod watch;
mod watch_task;

#[cfg(test)]
mod fake;

/// Conversions between the plain types and etcd's wire messages, for callers that
/// drive the gRPC services themselves or render etcd's messages (revkvctl's JSON).
///
/// ```
/// use revkv_client::{wire, GetOptions, GetResponse};
///
/// let req = wire::range_request(b"app/".to_vec(), GetOptions::new().with_prefix());
/// assert_eq!(req.range_end, b"app0");
/// let resp = wire::get_pb(&GetResponse::default());
/// assert_eq!(resp.count, 0);
/// ```
pub mod wire {
    pub use crate::op::{
        delete_pb, delete_request, get_pb, header_pb, put_pb, put_request, range_request, txn_pb,
        txn_request,
    };
}

pub use client::{Client, ConnectOptions};
pub use cluster::{
    ClusterClient, Member, MemberAddResponse, MemberListResponse, MemberPromoteResponse,
    MemberRemoveResponse, MemberUpdateResponse,
};
pub use decorator::{
    op_kind, should_retry, Namespace, Ordering, Retry, RetryPolicy, Timeout, Traced, WithLease,
};
pub use endpoints::{normalize_endpoint, resolve_endpoints};
pub use error::{Error, Result};
pub use keepalive::KeepAlive;
pub use kv::Kv;
pub use kv_client::KvClient;
pub use lease::{
    LeaseClient, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeResponse, LeaseTimeToLiveResponse,
};
pub use maintenance::{
    AlarmAction, AlarmMember, AlarmResponse, AlarmType, DefragmentResponse, HashKvResponse,
    MaintenanceClient, MoveLeaderResponse, SnapshotResponse, SnapshotStream, StatusResponse,
};
pub use op::{Compare, CompareOp, CompareTarget, Op, OpResponse, Txn, TxnResponse};
pub use options::{
    prefix_end, DeleteOptions, GetOptions, KeyRange, PutOptions, SortOrder, SortTarget,
};
pub use response::{
    CompactResponse, DeleteResponse, GetResponse, KeyValue, PutResponse, ResponseHeader,
};
/// The wire types, for callers that need a message the plain types do not carry.
pub use revkv_proto as proto;
pub use tls::TlsOptions;
pub use watch::{Event, EventType, WatchClient, WatchOptions, WatchResponse, WatchStream, Watcher};
