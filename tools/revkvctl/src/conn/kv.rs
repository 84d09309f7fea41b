//! [`revkv_client::Kv`] over this crate's gRPC connection.
//!
//! Workaround: revkv-client on main has the KV contract (`Op`, `Kv`, responses) but
//! no transport yet, and its `Op` → wire conversions are crate-private. Until its
//! `Client::connect` lands, this module carries the conversions both ways so the
//! KV commands still build `Op`s and run them through the `Kv` funnel.

use std::future::Future;

use revkv_client::{
    Compare, CompareOp, CompareTarget, DeleteOptions, DeleteResponse, GetOptions, GetResponse,
    KeyValue, Op, OpResponse, PutOptions, PutResponse, ResponseHeader, SortOrder, SortTarget, Txn,
    TxnResponse,
};
use revkv_proto::etcdserverpb::{self as pb, compare, request_op, response_op};
use revkv_proto::mvccpb;

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

// ---- Op → wire -----------------------------------------------------------------

/// The wire request of a get.
pub fn range_request(key: Vec<u8>, o: GetOptions) -> pb::RangeRequest {
    pb::RangeRequest {
        range_end: o.range.range_end(&key),
        key,
        limit: o.limit,
        revision: o.revision,
        sort_order: match o.sort_order {
            SortOrder::None => pb::range_request::SortOrder::None,
            SortOrder::Ascend => pb::range_request::SortOrder::Ascend,
            SortOrder::Descend => pb::range_request::SortOrder::Descend,
        } as i32,
        sort_target: match o.sort_target {
            SortTarget::Key => pb::range_request::SortTarget::Key,
            SortTarget::Version => pb::range_request::SortTarget::Version,
            SortTarget::Create => pb::range_request::SortTarget::Create,
            SortTarget::Mod => pb::range_request::SortTarget::Mod,
            SortTarget::Value => pb::range_request::SortTarget::Value,
        } as i32,
        serializable: o.serializable,
        keys_only: o.keys_only,
        count_only: o.count_only,
        min_mod_revision: o.min_mod_revision,
        max_mod_revision: o.max_mod_revision,
        min_create_revision: o.min_create_revision,
        max_create_revision: o.max_create_revision,
    }
}

fn put_request(key: Vec<u8>, value: Vec<u8>, o: PutOptions) -> pb::PutRequest {
    pb::PutRequest {
        key,
        value,
        lease: o.lease,
        prev_kv: o.prev_kv,
        ignore_value: o.ignore_value,
        ignore_lease: o.ignore_lease,
    }
}

fn delete_request(key: Vec<u8>, o: DeleteOptions) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest {
        range_end: o.range.range_end(&key),
        key,
        prev_kv: o.prev_kv,
    }
}

fn compare_request(c: Compare) -> pb::Compare {
    let result = match c.op {
        CompareOp::Equal => compare::CompareResult::Equal,
        CompareOp::Greater => compare::CompareResult::Greater,
        CompareOp::Less => compare::CompareResult::Less,
        CompareOp::NotEqual => compare::CompareResult::NotEqual,
    };
    let (target, operand) = match c.target {
        CompareTarget::Version(v) => (
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(v),
        ),
        CompareTarget::CreateRevision(v) => (
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(v),
        ),
        CompareTarget::ModRevision(v) => (
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(v),
        ),
        CompareTarget::Value(v) => (
            compare::CompareTarget::Value,
            compare::TargetUnion::Value(v),
        ),
        CompareTarget::Lease(v) => (
            compare::CompareTarget::Lease,
            compare::TargetUnion::Lease(v),
        ),
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        range_end: c.range.range_end(&c.key),
        key: c.key,
        target_union: Some(operand),
    }
}

fn request_op(op: Op) -> revkv_client::Result<pb::RequestOp> {
    let request = match op {
        Op::Get { key, options } => request_op::Request::RequestRange(range_request(key, options)),
        Op::Put {
            key,
            value,
            options,
        } => request_op::Request::RequestPut(put_request(key, value, options)),
        Op::Delete { key, options } => {
            request_op::Request::RequestDeleteRange(delete_request(key, options))
        }
        Op::Txn(txn) => request_op::Request::RequestTxn(txn_request(txn)?),
        Op::Compact { .. } => {
            return Err(revkv_client::Error::InvalidArgument(
                "a compaction cannot be part of a txn".into(),
            ))
        }
    };
    Ok(pb::RequestOp {
        request: Some(request),
    })
}

/// The wire request of a txn.
pub fn txn_request(txn: Txn) -> revkv_client::Result<pb::TxnRequest> {
    Ok(pb::TxnRequest {
        compare: txn.compare.into_iter().map(compare_request).collect(),
        success: txn
            .success
            .into_iter()
            .map(request_op)
            .collect::<Result<_, _>>()?,
        failure: txn
            .failure
            .into_iter()
            .map(request_op)
            .collect::<Result<_, _>>()?,
    })
}

// ---- plain responses → wire (the printers render etcd's messages) ---------------

/// The wire header.
pub fn header_pb(h: &ResponseHeader) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    })
}

fn kvs_pb(kvs: &[KeyValue]) -> Vec<mvccpb::KeyValue> {
    kvs.iter().cloned().map(Into::into).collect()
}

/// The wire form of a get response.
pub fn get_pb(r: &GetResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header_pb(&r.header),
        kvs: kvs_pb(&r.kvs),
        more: r.more,
        count: r.count,
    }
}

/// The wire form of a put response.
pub fn put_pb(r: &PutResponse) -> pb::PutResponse {
    pb::PutResponse {
        header: header_pb(&r.header),
        prev_kv: r.prev_kv.clone().map(Into::into),
    }
}

/// The wire form of a delete response.
pub fn delete_pb(r: &DeleteResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: header_pb(&r.header),
        deleted: r.deleted,
        prev_kvs: kvs_pb(&r.prev_kvs),
    }
}

/// The wire form of a txn response.
pub fn txn_pb(r: &TxnResponse) -> pb::TxnResponse {
    pb::TxnResponse {
        header: header_pb(&r.header),
        succeeded: r.succeeded,
        responses: r
            .responses
            .iter()
            .map(|op| pb::ResponseOp {
                response: Some(match op {
                    OpResponse::Get(g) => response_op::Response::ResponseRange(get_pb(g)),
                    OpResponse::Put(p) => response_op::Response::ResponsePut(put_pb(p)),
                    OpResponse::Delete(d) => {
                        response_op::Response::ResponseDeleteRange(delete_pb(d))
                    }
                    OpResponse::Txn(t) => response_op::Response::ResponseTxn(txn_pb(t)),
                    // A txn never answers with a compaction.
                    OpResponse::Compact(c) => {
                        response_op::Response::ResponseRange(pb::RangeResponse {
                            header: header_pb(&c.header),
                            ..Default::default()
                        })
                    }
                }),
            })
            .collect(),
    }
}
