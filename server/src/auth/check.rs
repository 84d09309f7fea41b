//! Which permissions each KV and lease request needs (etcd's `apply_auth.go` and
//! `v3_server.go` checks).
//!
//! - Range: read on its keys.
//! - Put: write on its key; read on it too with `prev_kv`; and when it attaches a
//!   lease, write on every key the lease already holds (a user who could not revoke
//!   the lease must not add to it).
//! - DeleteRange: write on its keys; read too with `prev_kv`.
//! - Txn: read on every compared key range, and each operation of either branch as
//!   above (nested txns included), whichever branch will run.
//! - LeaseRevoke: write on every key the lease holds.

use revkv_proto::etcdserverpb::{
    request_op::Request as Op, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest,
};

use super::{Access, AuthInfo, AuthStore, Error};

/// The keys a lease holds now (the applier's view, pending writes included).
pub type LeaseKeys<'a> = dyn Fn(i64) -> Vec<Vec<u8>> + 'a;

pub fn range(auth: &AuthStore, info: &AuthInfo, r: &RangeRequest) -> Result<(), Error> {
    auth.check(info, Access::Read, &r.key, &r.range_end)
}

pub fn put(
    auth: &AuthStore,
    info: &AuthInfo,
    p: &PutRequest,
    lease_keys: &LeaseKeys<'_>,
) -> Result<(), Error> {
    auth.check(info, Access::Write, &p.key, &[])?;
    if p.prev_kv {
        auth.check(info, Access::Read, &p.key, &[])?;
    }
    if p.lease != 0 {
        lease_revoke(auth, info, &lease_keys(p.lease))?;
    }
    Ok(())
}

pub fn delete_range(
    auth: &AuthStore,
    info: &AuthInfo,
    d: &DeleteRangeRequest,
) -> Result<(), Error> {
    auth.check(info, Access::Write, &d.key, &d.range_end)?;
    if d.prev_kv {
        auth.check(info, Access::Read, &d.key, &d.range_end)?;
    }
    Ok(())
}

pub fn txn(
    auth: &AuthStore,
    info: &AuthInfo,
    t: &TxnRequest,
    lease_keys: &LeaseKeys<'_>,
) -> Result<(), Error> {
    for c in &t.compare {
        auth.check(info, Access::Read, &c.key, &c.range_end)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => range(auth, info, r)?,
            Some(Op::RequestPut(p)) => put(auth, info, p, lease_keys)?,
            Some(Op::RequestDeleteRange(d)) => delete_range(auth, info, d)?,
            Some(Op::RequestTxn(inner)) => txn(auth, info, inner, lease_keys)?,
            None => {}
        }
    }
    Ok(())
}

pub fn lease_revoke(auth: &AuthStore, info: &AuthInfo, keys: &[Vec<u8>]) -> Result<(), Error> {
    for key in keys {
        auth.check(info, Access::Write, key, &[])?;
    }
    Ok(())
}
