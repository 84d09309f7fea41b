//! [`Op`]: one KV request as a value, the funnel every [`crate::Kv`] call goes through.
//!
//! Decorators rewrite or observe `Op`s and [`OpResponse`]s instead of each KV method,
//! so a new KV method never needs a change in a decorator.

use revkv_proto::etcdserverpb::{self as pb, compare, request_op, response_op};
use revkv_proto::mvccpb;

use crate::error::{Error, Result};
use crate::options::{DeleteOptions, GetOptions, KeyRange, PutOptions, SortOrder, SortTarget};
use crate::response::{
    CompactResponse, DeleteResponse, GetResponse, KeyValue, PutResponse, ResponseHeader,
};

/// One KV request.
///
/// ```
/// use revkv_client::{GetOptions, Op};
/// let op = Op::get("k", GetOptions::new().with_prefix());
/// assert!(op.is_read_only());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read one key or a range.
    Get {
        /// The key (start of the range).
        key: Vec<u8>,
        /// Options.
        options: GetOptions,
    },
    /// Write one key.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// Options.
        options: PutOptions,
    },
    /// Delete one key or a range.
    Delete {
        /// The key (start of the range).
        key: Vec<u8>,
        /// Options.
        options: DeleteOptions,
    },
    /// A transaction.
    Txn(Txn),
    /// Compact the history up to `revision` (not allowed inside a txn).
    Compact {
        /// Revisions below this one are discarded.
        revision: i64,
        /// Wait until the compaction is physically applied.
        physical: bool,
    },
}

impl Op {
    /// A get of `key`.
    ///
    /// ```
    /// let op = revkv_client::Op::get("k", Default::default());
    /// assert!(matches!(op, revkv_client::Op::Get { .. }));
    /// ```
    pub fn get(key: impl Into<Vec<u8>>, options: GetOptions) -> Op {
        Op::Get {
            key: key.into(),
            options,
        }
    }
    /// A put of `key` = `value`.
    ///
    /// ```
    /// let op = revkv_client::Op::put("k", "v", Default::default());
    /// assert!(!op.is_read_only());
    /// ```
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, options: PutOptions) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            options,
        }
    }
    /// A delete of `key`.
    ///
    /// ```
    /// let op = revkv_client::Op::delete("k", revkv_client::DeleteOptions::new().with_prefix());
    /// assert!(!op.is_read_only());
    /// ```
    pub fn delete(key: impl Into<Vec<u8>>, options: DeleteOptions) -> Op {
        Op::Delete {
            key: key.into(),
            options,
        }
    }
    /// Whether retrying this op after it may have reached the server is safe.
    ///
    /// ```
    /// use revkv_client::{GetOptions, Op, Txn};
    /// let read = Op::Txn(Txn::new().and_then([Op::get("k", GetOptions::new())]));
    /// assert!(read.is_read_only());
    /// ```
    pub fn is_read_only(&self) -> bool {
        match self {
            Op::Get { .. } => true,
            Op::Txn(t) => t.success.iter().chain(&t.failure).all(Op::is_read_only),
            Op::Put { .. } | Op::Delete { .. } | Op::Compact { .. } => false,
        }
    }
}

/// The answer to an [`Op`], of the same kind.
///
/// ```
/// use revkv_client::{OpResponse, PutResponse};
/// let r = OpResponse::Put(PutResponse::default());
/// assert!(r.into_put().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResponse {
    /// Answer to [`Op::Get`].
    Get(GetResponse),
    /// Answer to [`Op::Put`].
    Put(PutResponse),
    /// Answer to [`Op::Delete`].
    Delete(DeleteResponse),
    /// Answer to [`Op::Txn`].
    Txn(TxnResponse),
    /// Answer to [`Op::Compact`].
    Compact(CompactResponse),
}

impl OpResponse {
    /// The header of the response.
    ///
    /// ```
    /// let r = revkv_client::OpResponse::Get(Default::default());
    /// assert_eq!(r.header().revision, 0);
    /// ```
    pub fn header(&self) -> &ResponseHeader {
        match self {
            OpResponse::Get(r) => &r.header,
            OpResponse::Put(r) => &r.header,
            OpResponse::Delete(r) => &r.header,
            OpResponse::Txn(r) => &r.header,
            OpResponse::Compact(r) => &r.header,
        }
    }
    /// The get response, or an error if this is another kind.
    ///
    /// ```
    /// let r = revkv_client::OpResponse::Get(Default::default());
    /// assert!(r.into_get().is_ok());
    /// ```
    pub fn into_get(self) -> Result<GetResponse> {
        match self {
            OpResponse::Get(r) => Ok(r),
            _ => Err(Error::UnexpectedResponse("expected a range response")),
        }
    }
    /// The put response, or an error if this is another kind.
    ///
    /// ```
    /// let r = revkv_client::OpResponse::Get(Default::default());
    /// assert!(r.into_put().is_err());
    /// ```
    pub fn into_put(self) -> Result<PutResponse> {
        match self {
            OpResponse::Put(r) => Ok(r),
            _ => Err(Error::UnexpectedResponse("expected a put response")),
        }
    }
    /// The delete response, or an error if this is another kind.
    ///
    /// ```
    /// let r = revkv_client::OpResponse::Delete(Default::default());
    /// assert!(r.into_delete().is_ok());
    /// ```
    pub fn into_delete(self) -> Result<DeleteResponse> {
        match self {
            OpResponse::Delete(r) => Ok(r),
            _ => Err(Error::UnexpectedResponse("expected a delete response")),
        }
    }
    /// The txn response, or an error if this is another kind.
    ///
    /// ```
    /// let r = revkv_client::OpResponse::Txn(Default::default());
    /// assert!(r.into_txn().is_ok());
    /// ```
    pub fn into_txn(self) -> Result<TxnResponse> {
        match self {
            OpResponse::Txn(r) => Ok(r),
            _ => Err(Error::UnexpectedResponse("expected a txn response")),
        }
    }
    /// The compaction response, or an error if this is another kind.
    ///
    /// ```
    /// let r = revkv_client::OpResponse::Compact(Default::default());
    /// assert!(r.into_compact().is_ok());
    /// ```
    pub fn into_compact(self) -> Result<CompactResponse> {
        match self {
            OpResponse::Compact(r) => Ok(r),
            _ => Err(Error::UnexpectedResponse("expected a compaction response")),
        }
    }
}

/// How a [`Compare`] compares.
///
/// ```
/// use revkv_client::{Compare, CompareOp};
/// let c = Compare::version("k", CompareOp::NotEqual, 0);
/// assert_eq!(c.op, CompareOp::NotEqual);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Equal,
    /// `>`
    Greater,
    /// `<`
    Less,
    /// `!=`
    NotEqual,
}

/// What a [`Compare`] looks at, with the operand.
///
/// ```
/// use revkv_client::{Compare, CompareOp, CompareTarget};
/// let c = Compare::lease("k", CompareOp::Equal, 7);
/// assert_eq!(c.target, CompareTarget::Lease(7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's version.
    Version(i64),
    /// The key's create revision.
    CreateRevision(i64),
    /// The key's mod revision.
    ModRevision(i64),
    /// The key's value.
    Value(Vec<u8>),
    /// The key's lease.
    Lease(i64),
}

/// One guard of a [`Txn`] (etcd's `Compare`).
///
/// ```
/// use revkv_client::{Compare, CompareOp};
/// let c = Compare::value("k", CompareOp::Equal, "v");
/// assert_eq!(c.key, b"k");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key (start of the range).
    pub key: Vec<u8>,
    /// Keys covered: the guard holds when it holds for every key in the range.
    pub range: KeyRange,
    /// Comparison.
    pub op: CompareOp,
    /// Field and operand.
    pub target: CompareTarget,
}

impl Compare {
    /// `version(key) op version`.
    ///
    /// ```
    /// let c = revkv_client::Compare::version("k", revkv_client::CompareOp::Equal, 0);
    /// assert_eq!(c.target, revkv_client::CompareTarget::Version(0));
    /// ```
    pub fn version(key: impl Into<Vec<u8>>, op: CompareOp, version: i64) -> Self {
        Self::new(key, op, CompareTarget::Version(version))
    }
    /// `create_revision(key) op rev`.
    ///
    /// ```
    /// let c = revkv_client::Compare::create_revision("k", revkv_client::CompareOp::Less, 5);
    /// assert_eq!(c.target, revkv_client::CompareTarget::CreateRevision(5));
    /// ```
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, rev: i64) -> Self {
        Self::new(key, op, CompareTarget::CreateRevision(rev))
    }
    /// `mod_revision(key) op rev`.
    ///
    /// ```
    /// let c = revkv_client::Compare::mod_revision("k", revkv_client::CompareOp::Greater, 5);
    /// assert_eq!(c.target, revkv_client::CompareTarget::ModRevision(5));
    /// ```
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, rev: i64) -> Self {
        Self::new(key, op, CompareTarget::ModRevision(rev))
    }
    /// `value(key) op value`.
    ///
    /// ```
    /// let c = revkv_client::Compare::value("k", revkv_client::CompareOp::Equal, "v");
    /// assert_eq!(c.target, revkv_client::CompareTarget::Value(b"v".to_vec()));
    /// ```
    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self::new(key, op, CompareTarget::Value(value.into()))
    }
    /// `lease(key) op id`.
    ///
    /// ```
    /// let c = revkv_client::Compare::lease("k", revkv_client::CompareOp::Equal, 1);
    /// assert_eq!(c.target, revkv_client::CompareTarget::Lease(1));
    /// ```
    pub fn lease(key: impl Into<Vec<u8>>, op: CompareOp, id: i64) -> Self {
        Self::new(key, op, CompareTarget::Lease(id))
    }
    fn new(key: impl Into<Vec<u8>>, op: CompareOp, target: CompareTarget) -> Self {
        Compare {
            key: key.into(),
            range: KeyRange::Single,
            op,
            target,
        }
    }
    /// Apply the guard to every key with the key as prefix.
    ///
    /// ```
    /// let c = revkv_client::Compare::version("a/", revkv_client::CompareOp::Greater, 0).with_prefix();
    /// assert_eq!(c.range, revkv_client::KeyRange::Prefix);
    /// ```
    pub fn with_prefix(mut self) -> Self {
        self.range = KeyRange::Prefix;
        self
    }
    /// Apply the guard to `[key, end)`.
    ///
    /// ```
    /// let c = revkv_client::Compare::version("a", revkv_client::CompareOp::Greater, 0).with_range("c");
    /// assert_eq!(c.range, revkv_client::KeyRange::End(b"c".to_vec()));
    /// ```
    pub fn with_range(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.range = KeyRange::End(end.into());
        self
    }
}

/// A transaction: if every compare holds, run `success`, else `failure`.
///
/// ```
/// use revkv_client::{Compare, CompareOp, Op, PutOptions, Txn};
///
/// let txn = Txn::new()
///     .when([Compare::version("lock", CompareOp::Equal, 0)])
///     .and_then([Op::put("lock", "me", PutOptions::new())])
///     .or_else([]);
/// assert_eq!(txn.compare.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Txn {
    /// Guards, all of which must hold.
    pub compare: Vec<Compare>,
    /// Ops run when the guards hold.
    pub success: Vec<Op>,
    /// Ops run otherwise.
    pub failure: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    ///
    /// ```
    /// assert!(revkv_client::Txn::new().compare.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds guards.
    ///
    /// ```
    /// use revkv_client::{Compare, CompareOp, Txn};
    /// let t = Txn::new().when([Compare::version("k", CompareOp::Equal, 0)]);
    /// assert_eq!(t.compare.len(), 1);
    /// ```
    pub fn when(mut self, compare: impl IntoIterator<Item = Compare>) -> Self {
        self.compare.extend(compare);
        self
    }
    /// Adds ops run when the guards hold.
    ///
    /// ```
    /// use revkv_client::{Op, Txn};
    /// let t = Txn::new().and_then([Op::put("k", "v", Default::default())]);
    /// assert_eq!(t.success.len(), 1);
    /// ```
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.success.extend(ops);
        self
    }
    /// Adds ops run when a guard fails.
    ///
    /// ```
    /// use revkv_client::{GetOptions, Op, Txn};
    /// let t = Txn::new().or_else([Op::get("k", GetOptions::new())]);
    /// assert_eq!(t.failure.len(), 1);
    /// ```
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.failure.extend(ops);
        self
    }
}

/// Answer to a [`Txn`] (etcd's `TxnResponse`).
///
/// ```
/// use revkv_client::{GetResponse, KeyValue, OpResponse, TxnResponse};
/// let r = TxnResponse {
///     succeeded: true,
///     responses: vec![OpResponse::Get(GetResponse { kvs: vec![KeyValue::default()], ..Default::default() })],
///     ..Default::default()
/// };
/// assert_eq!(r.kvs().count(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnResponse {
    /// Header.
    pub header: ResponseHeader,
    /// Whether the guards held (and `success` ran).
    pub succeeded: bool,
    /// One response per op of the branch that ran.
    pub responses: Vec<OpResponse>,
}

// ---- wire conversions -------------------------------------------------------------

/// The key to send for `key` under `range`: "every key" (an empty key with a prefix
/// or from-key range) is sent as `\0`, as etcd's `clientv3.WithPrefix`/`WithFromKey`
/// do, since the server rejects an empty key.
fn wire_key(key: Vec<u8>, range: &KeyRange) -> Vec<u8> {
    match range {
        KeyRange::Prefix | KeyRange::FromKey if key.is_empty() => vec![0],
        _ => key,
    }
}

/// The wire request of a get.
pub fn range_request(key: Vec<u8>, o: GetOptions) -> pb::RangeRequest {
    pb::RangeRequest {
        range_end: o.range.range_end(&key),
        key: wire_key(key, &o.range),
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

/// The wire request of a put.
pub fn put_request(key: Vec<u8>, value: Vec<u8>, o: PutOptions) -> pb::PutRequest {
    pb::PutRequest {
        key,
        value,
        lease: o.lease,
        prev_kv: o.prev_kv,
        ignore_value: o.ignore_value,
        ignore_lease: o.ignore_lease,
    }
}

/// The wire request of a delete.
pub fn delete_request(key: Vec<u8>, o: DeleteOptions) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest {
        range_end: o.range.range_end(&key),
        key: wire_key(key, &o.range),
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
        key: wire_key(c.key, &c.range),
        target_union: Some(operand),
    }
}

fn request_op(op: Op) -> Result<pb::RequestOp> {
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
            return Err(Error::InvalidArgument(
                "a compaction cannot be part of a txn".into(),
            ))
        }
    };
    Ok(pb::RequestOp {
        request: Some(request),
    })
}

/// The wire request of a txn.
pub fn txn_request(txn: Txn) -> Result<pb::TxnRequest> {
    Ok(pb::TxnRequest {
        compare: txn.compare.into_iter().map(compare_request).collect(),
        success: txn
            .success
            .into_iter()
            .map(request_op)
            .collect::<Result<_>>()?,
        failure: txn
            .failure
            .into_iter()
            .map(request_op)
            .collect::<Result<_>>()?,
    })
}

impl From<pb::TxnResponse> for TxnResponse {
    fn from(r: pb::TxnResponse) -> Self {
        TxnResponse {
            header: r.header.into(),
            succeeded: r.succeeded,
            responses: r
                .responses
                .into_iter()
                .filter_map(|op| op.response)
                .map(|resp| match resp {
                    response_op::Response::ResponseRange(r) => OpResponse::Get(r.into()),
                    response_op::Response::ResponsePut(r) => OpResponse::Put(r.into()),
                    response_op::Response::ResponseDeleteRange(r) => OpResponse::Delete(r.into()),
                    response_op::Response::ResponseTxn(r) => OpResponse::Txn(r.into()),
                })
                .collect(),
        }
    }
}

impl TxnResponse {
    /// Every key-value the gets of the branch returned, in order (a convenience for
    /// the common "guard then read" txn).
    ///
    /// ```
    /// let r = revkv_client::TxnResponse::default();
    /// assert_eq!(r.kvs().count(), 0);
    /// ```
    pub fn kvs(&self) -> impl Iterator<Item = &KeyValue> {
        self.responses.iter().flat_map(|r| match r {
            OpResponse::Get(g) => g.kvs.as_slice(),
            _ => &[],
        })
    }
}

// ---- plain responses → wire (for callers that render etcd's messages) -----------

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_options_map_onto_range_request() {
        let req = range_request(
            b"a".to_vec(),
            GetOptions::new()
                .with_prefix()
                .with_revision(3)
                .with_limit(2)
                .with_sort(SortTarget::Mod, SortOrder::Descend)
                .with_serializable()
                .with_keys_only(),
        );
        assert_eq!(req.key, b"a");
        assert_eq!(req.range_end, b"b");
        assert_eq!(req.revision, 3);
        assert_eq!(req.limit, 2);
        assert_eq!(req.sort_order, pb::range_request::SortOrder::Descend as i32);
        assert_eq!(req.sort_target, pb::range_request::SortTarget::Mod as i32);
        assert!(req.serializable && req.keys_only && !req.count_only);
    }

    #[test]
    fn every_key_is_sent_as_nul() {
        let all = range_request(Vec::new(), GetOptions::new().with_prefix());
        assert_eq!((all.key, all.range_end), (vec![0], vec![0]));
        let from = delete_request(Vec::new(), DeleteOptions::new().with_from_key());
        assert_eq!((from.key, from.range_end), (vec![0], vec![0]));
    }

    #[test]
    fn compaction_is_refused_inside_a_txn() {
        let txn = Txn::new().and_then([Op::Compact {
            revision: 1,
            physical: false,
        }]);
        assert!(matches!(txn_request(txn), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn txn_compare_carries_target_and_operand() {
        let req = txn_request(
            Txn::new().when([Compare::value("k", CompareOp::NotEqual, "v").with_prefix()]),
        )
        .expect("txn without compaction");
        let c = &req.compare[0];
        assert_eq!(c.result, compare::CompareResult::NotEqual as i32);
        assert_eq!(c.target, compare::CompareTarget::Value as i32);
        assert_eq!(c.range_end, b"l");
        assert_eq!(
            c.target_union,
            Some(compare::TargetUnion::Value(b"v".to_vec()))
        );
    }

    #[test]
    fn read_only_ops_are_the_retryable_ones() {
        assert!(Op::get("a", GetOptions::new()).is_read_only());
        assert!(!Op::put("a", "b", PutOptions::new()).is_read_only());
        assert!(Op::Txn(Txn::new().and_then([Op::get("a", GetOptions::new())])).is_read_only());
        assert!(
            !Op::Txn(Txn::new().or_else([Op::delete("a", DeleteOptions::new())])).is_read_only()
        );
    }
}
