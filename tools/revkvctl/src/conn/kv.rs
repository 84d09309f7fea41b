//! [`revkv_client::Kv`] over this crate's gRPC connection.
//!
//! The transport is this crate's own (etcdctl's connection semantics: a lazy dial,
//! requests resent while no connection exists until `--command-timeout`, the auth
//! token on every request), which differ from the library client's failover; the
//! requests, responses and their wire forms are revkv-client's (`revkv_client::wire`).

use std::future::Future;

use revkv_client::wire::{delete_request, put_request, range_request, txn_request};
use revkv_client::{Op, OpResponse};
use revkv_proto::etcdserverpb as pb;

use super::Conn;

/// The KV service of a [`Conn`].
#[derive(Clone)]
pub struct GrpcKv {
    conn: Conn,
}

impl GrpcKv {
    /// Wraps a connection.
    pub fn new(conn: Conn) -> Self {
        GrpcKv { conn }
    }
}

fn to_client_error(e: super::CallError) -> revkv_client::Error {
    match e {
        super::CallError::Deadline => revkv_client::Error::Timeout(std::time::Duration::default()),
        super::CallError::Status(s) => revkv_client::Error::from(s),
    }
}

impl revkv_client::Kv for GrpcKv {
    fn execute(&self, op: Op) -> impl Future<Output = revkv_client::Result<OpResponse>> + Send {
        let conn = self.conn.clone();
        async move {
            let kv = conn.kv_client();
            let res = match op {
                Op::Get { key, options } => {
                    crate::unary!(conn, kv, range, range_request(key, options))
                        .map(|r| OpResponse::Get(r.into()))
                }
                Op::Put {
                    key,
                    value,
                    options,
                } => crate::unary!(conn, kv, put, put_request(key, value, options))
                    .map(|r| OpResponse::Put(r.into())),
                Op::Delete { key, options } => {
                    crate::unary!(conn, kv, delete_range, delete_request(key, options))
                        .map(|r| OpResponse::Delete(r.into()))
                }
                Op::Txn(t) => {
                    let req = txn_request(t)?;
                    crate::unary!(conn, kv, txn, req).map(|r| OpResponse::Txn(r.into()))
                }
                Op::Compact { revision, physical } => {
                    let req = pb::CompactionRequest { revision, physical };
                    crate::unary!(conn, kv, compact, req).map(|r| OpResponse::Compact(r.into()))
                }
            };
            res.map_err(to_client_error)
        }
    }
}
