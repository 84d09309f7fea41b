//! Request checks made before anything is proposed (etcd's `v3rpc/key.go`).

use std::collections::HashSet;

use revkv_proto::etcdserverpb::request_op::Request;
use revkv_proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

/// A request the server refuses to run; each maps to one of etcd's gRPC errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("key is not provided")]
    EmptyKey,
    #[error("key not found")]
    KeyNotFound,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("invalid sort option")]
    InvalidSortOption,
    #[error("request is too large")]
    TooLarge,
    #[error("database space exceeded")]
    NoSpace,
}

type Result = std::result::Result<(), RequestError>;

pub fn check_range(r: &RangeRequest) -> Result {
    if r.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(RequestError::InvalidSortOption);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result {
    if r.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(RequestError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(RequestError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result {
    if r.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    Ok(())
}

/// Shape checks, then the put/delete overlap check on each branch.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result {
    check_txn_shape(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_shape(r: &TxnRequest, max_txn_ops: usize) -> Result {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_txn_ops {
        return Err(RequestError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(RequestError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(x)) => check_range(x)?,
            Some(Request::RequestPut(x)) => check_put(x)?,
            Some(Request::RequestDeleteRange(x)) => check_delete(x)?,
            Some(Request::RequestTxn(x)) => check_txn_shape(x, max_txn_ops)?,
            None => return Err(RequestError::KeyNotFound),
        }
    }
    Ok(())
}

/// A deleted interval `[start, end)`; an empty `end` is a single key.
struct Deleted {
    start: Vec<u8>,
    end: Vec<u8>,
}

impl Deleted {
    fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            return k == self.start.as_slice();
        }
        self.start.as_slice() <= k && k < self.end.as_slice()
    }
}

/// Within one branch a key may be put at most once and not also deleted; puts in the
/// two branches of a nested txn may repeat (only one runs). Returns the branch's puts
/// and deletes for the parent's check.
fn check_intervals(
    ops: &[RequestOp],
) -> std::result::Result<(HashSet<Vec<u8>>, Vec<Deleted>), RequestError> {
    let mut dels: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Deleted {
                start: d.key.clone(),
                end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Deleted], k: &[u8]| dels.iter().any(|d| d.contains(k));
    let mut puts = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(RequestError::DuplicateKey);
            }
        }
        puts.extend(puts_then.iter().cloned());
        for k in puts_else {
            if (puts.contains(&k) && !puts_then.contains(&k)) || deleted(&dels, &k) {
                return Err(RequestError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(RequestError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    fn nested(t: TxnRequest) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(t)),
        }
    }

    #[test]
    fn duplicate_and_overlapping_keys() {
        let dup = RequestError::DuplicateKey;
        assert_eq!(
            check_txn(&txn(vec![put("a"), put("a")], vec![]), 128),
            Err(dup.clone())
        );
        assert_eq!(
            check_txn(&txn(vec![put("b"), del("a", "c")], vec![]), 128),
            Err(dup.clone())
        );
        assert_eq!(
            check_txn(&txn(vec![put("a"), del("a", "")], vec![]), 128),
            Err(dup.clone())
        );
        // Different branches do not conflict, nor do overlapping deletes.
        assert_eq!(check_txn(&txn(vec![put("a")], vec![put("a")]), 128), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![del("a", "c"), del("b", "d")], vec![]), 128),
            Ok(())
        );
        // Nested: then/else may repeat a key, but not a key of the parent.
        let inner = txn(vec![put("x")], vec![put("x")]);
        assert_eq!(
            check_txn(&txn(vec![nested(inner.clone())], vec![]), 128),
            Ok(())
        );
        assert_eq!(
            check_txn(&txn(vec![nested(inner), put("x")], vec![]), 128),
            Err(dup)
        );
    }

    #[test]
    fn shape_checks() {
        let many: Vec<_> = (0..129).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(
            check_txn(&txn(many, vec![]), 128),
            Err(RequestError::TooManyOps)
        );
        assert_eq!(
            check_txn(&txn(vec![put("")], vec![]), 128),
            Err(RequestError::EmptyKey)
        );
        let empty = RequestOp { request: None };
        assert_eq!(
            check_txn(&txn(vec![empty], vec![]), 128),
            Err(RequestError::KeyNotFound)
        );
        let bad_put = PutRequest {
            key: "k".into(),
            ignore_value: true,
            value: "v".into(),
            ..Default::default()
        };
        assert_eq!(check_put(&bad_put), Err(RequestError::ValueProvided));
        let bad_sort = RangeRequest {
            key: "k".into(),
            sort_order: 9,
            ..Default::default()
        };
        assert_eq!(check_range(&bad_sort), Err(RequestError::InvalidSortOption));
    }
}
