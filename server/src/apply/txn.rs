//! Txn: compares, then one branch of operations, all at one revision.
//!
//! As in etcd, every compare on the path through nested txns is evaluated first, against
//! the state before the txn; then the chosen operations are checked (so a failing put or
//! an out-of-range read rejects the whole txn before anything is written); then they run.

use std::collections::VecDeque;

use revkv_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use revkv_proto::etcdserverpb::request_op::Request;
use revkv_proto::etcdserverpb::response_op::Response;
use revkv_proto::etcdserverpb::{
    Compare, RangeRequest, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use revkv_proto::mvccpb::KeyValue;

use super::{kv, range, Error, Leases};
use crate::mvcc::{self, RangeOptions, WriteTxn};

/// True when no operation on any branch (nested ones included) writes.
pub fn is_read_only(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
            Some(Request::RequestTxn(t)) => is_read_only(t),
            Some(Request::RequestRange(_)) | None => true,
        })
}

/// Whether either branch (at any depth) puts a key: what etcd's quota counts as a
/// txn's cost, and what a `NOSPACE` alarm refuses.
pub fn has_put(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_)) => true,
            Some(Request::RequestTxn(t)) => has_put(t),
            Some(Request::RequestDeleteRange(_)) | Some(Request::RequestRange(_)) | None => false,
        })
}

/// Runs a txn on `wtx`; the caller ends the write txn.
pub fn txn(
    wtx: &mut WriteTxn<'_, '_>,
    leases: &dyn Leases,
    req: &TxnRequest,
) -> Result<TxnResponse, Error> {
    let mut path = VecDeque::new();
    compare_path(wtx, req, &mut path)?;
    check_ops(wtx, leases, req, &mut path.iter().copied())?;
    let mut resp = execute(wtx, req, &mut path)?;
    resp.header = Some(ResponseHeader {
        revision: wtx.read_rev(),
        ..Default::default()
    });
    Ok(resp)
}

/// Pre-order: this txn's outcome, then the outcomes of nested txns on the chosen branch.
fn compare_path(
    wtx: &WriteTxn<'_, '_>,
    req: &TxnRequest,
    path: &mut VecDeque<bool>,
) -> Result<(), Error> {
    let mut ok = true;
    for c in &req.compare {
        if !compare(wtx, c)? {
            ok = false;
            break;
        }
    }
    path.push_back(ok);
    for op in branch(req, ok) {
        if let Some(Request::RequestTxn(t)) = &op.request {
            compare_path(wtx, t, path)?;
        }
    }
    Ok(())
}

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

fn compare(wtx: &WriteTxn<'_, '_>, c: &Compare) -> Result<bool, Error> {
    let rr = match wtx.range(&c.key, &c.range_end, RangeOptions::default()) {
        Ok(rr) => rr,
        // etcd treats an unreadable compare as false rather than failing the txn.
        Err(mvcc::Error::Compacted | mvcc::Error::FutureRev) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
    if rr.kvs.is_empty() {
        // A missing key has no value to compare; other targets compare as zero.
        if target == CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, target, &KeyValue::default()));
    }
    Ok(rr.kvs.iter().all(|kv| compare_kv(c, target, kv)))
}

fn compare_kv(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value.as_slice().cmp(v),
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[][..]),
        (CompareTarget::Create, u) => kv.create_revision.cmp(&int_operand(u)),
        (CompareTarget::Mod, u) => kv.mod_revision.cmp(&int_operand(u)),
        (CompareTarget::Version, u) => kv.version.cmp(&int_operand(u)),
        (CompareTarget::Lease, u) => kv.lease.cmp(&int_operand(u)),
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord.is_eq(),
        Ok(CompareResult::NotEqual) => ord.is_ne(),
        Ok(CompareResult::Greater) => ord.is_gt(),
        Ok(CompareResult::Less) => ord.is_lt(),
        Err(_) => true,
    }
}

/// The integer operand of a compare, whichever integer field the client set (etcd reads
/// the field matching the target and treats any other as 0).
fn int_operand(u: &Option<TargetUnion>) -> i64 {
    match u {
        Some(TargetUnion::Version(v))
        | Some(TargetUnion::CreateRevision(v))
        | Some(TargetUnion::ModRevision(v))
        | Some(TargetUnion::Lease(v)) => *v,
        _ => 0,
    }
}

fn check_ops(
    wtx: &WriteTxn<'_, '_>,
    leases: &dyn Leases,
    req: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<(), Error> {
    let ok = path.next().unwrap_or(false);
    for op in branch(req, ok) {
        match &op.request {
            Some(Request::RequestPut(p)) => kv::check_put(wtx, leases, p)?,
            Some(Request::RequestRange(r)) => check_range(wtx, r)?,
            Some(Request::RequestTxn(t)) => check_ops(wtx, leases, t, path)?,
            Some(Request::RequestDeleteRange(_)) | None => {}
        }
    }
    Ok(())
}

fn check_range(wtx: &WriteTxn<'_, '_>, r: &RangeRequest) -> Result<(), Error> {
    if r.revision == 0 {
        return Ok(());
    }
    if r.revision > wtx.read_rev() {
        return Err(mvcc::Error::FutureRev.into());
    }
    if r.revision < wtx.compact_rev() {
        return Err(mvcc::Error::Compacted.into());
    }
    Ok(())
}

fn execute(
    wtx: &mut WriteTxn<'_, '_>,
    req: &TxnRequest,
    path: &mut VecDeque<bool>,
) -> Result<TxnResponse, Error> {
    let succeeded = path.pop_front().unwrap_or(false);
    let mut responses = Vec::new();
    for op in branch(req, succeeded) {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => {
                Some(Response::ResponseRange(range::range(&*wtx, r)?))
            }
            Some(Request::RequestPut(p)) => Some(Response::ResponsePut(kv::put(wtx, p)?)),
            Some(Request::RequestDeleteRange(d)) => {
                Some(Response::ResponseDeleteRange(kv::delete_range(wtx, d)?))
            }
            Some(Request::RequestTxn(t)) => {
                let mut nested = execute(wtx, t, path)?;
                nested.header = Some(ResponseHeader::default());
                Some(Response::ResponseTxn(nested))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}
