//! etcd's estimate of what a request adds to the database (`etcdserver/quota.go`),
//! which the space quota adds to the current size before letting a write through.

use revkv_proto::etcdserverpb::{request_op, PutRequest, TxnRequest};

/// Bytes etcd counts for a key's metadata.
const KV_OVERHEAD: u64 = 256;
/// Bytes etcd counts for a lease.
pub const LEASE_OVERHEAD: u64 = 64;

pub fn put_cost(r: &PutRequest) -> u64 {
    KV_OVERHEAD + r.key.len() as u64 + r.value.len() as u64
}

/// The larger branch's puts; like etcd, puts in nested txns are not counted, and a
/// txn without puts costs nothing (the quota lets it through).
pub fn txn_cost(r: &TxnRequest) -> u64 {
    let branch = |ops: &[revkv_proto::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => put_cost(p),
                _ => 0,
            })
            .sum()
    };
    branch(&r.success).max(branch(&r.failure))
}

#[cfg(test)]
mod tests {
    use super::*;
    use revkv_proto::etcdserverpb::RequestOp;

    fn put_op(key: &str, value: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn costs_follow_etcds_estimates() {
        let p = PutRequest {
            key: b"ab".to_vec(),
            value: b"xyz".to_vec(),
            ..Default::default()
        };
        assert_eq!(put_cost(&p), 256 + 5);
        let txn = TxnRequest {
            success: vec![put_op("a", "1"), put_op("b", "22")],
            failure: vec![put_op("c", "1234567")],
            ..Default::default()
        };
        assert_eq!(txn_cost(&txn), (256 + 2) + (256 + 3));
        let nested = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(txn)),
            }],
            ..Default::default()
        };
        assert_eq!(txn_cost(&nested), 0);
    }
}
