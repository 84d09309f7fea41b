//! Put and DeleteRange as etcd's applier executes them.

use revkv_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, ResponseHeader,
};

use super::{Error, Leases};
use crate::mvcc::{RangeOptions, WriteTxn};

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// Checks a put against the state before it runs, so that a failing put (alone or
/// inside a txn) changes nothing.
pub fn check_put(
    txn: &WriteTxn<'_, '_>,
    leases: &dyn Leases,
    req: &PutRequest,
) -> Result<(), Error> {
    if (req.ignore_value || req.ignore_lease) && txn.get(&req.key)?.is_none() {
        return Err(Error::KeyNotFound);
    }
    if req.lease != 0 && !leases.exists(req.lease) {
        return Err(Error::LeaseNotFound);
    }
    Ok(())
}

/// Executes a put that [`check_put`] accepted.
pub fn put(txn: &mut WriteTxn<'_, '_>, req: &PutRequest) -> Result<PutResponse, Error> {
    let prev = if req.ignore_value || req.ignore_lease || req.prev_kv {
        txn.get(&req.key)?
    } else {
        None
    };
    let mut value = req.value.clone();
    let mut lease = req.lease;
    if let Some(p) = &prev {
        if req.ignore_value {
            value = p.value.clone();
        }
        if req.ignore_lease {
            lease = p.lease;
        }
    } else if req.ignore_value || req.ignore_lease {
        return Err(Error::KeyNotFound);
    }
    let rev = txn.put(&req.key, value, lease)?;
    Ok(PutResponse {
        header: header(rev),
        prev_kv: if req.prev_kv { prev } else { None },
    })
}

pub fn delete_range(
    txn: &mut WriteTxn<'_, '_>,
    req: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, Error> {
    let prev_kvs = if req.prev_kv {
        txn.range(&req.key, &req.range_end, RangeOptions::default())?
            .kvs
    } else {
        Vec::new()
    };
    let (deleted, rev) = txn.delete_range(&req.key, &req.range_end)?;
    Ok(DeleteRangeResponse {
        header: header(rev),
        deleted,
        prev_kvs,
    })
}
