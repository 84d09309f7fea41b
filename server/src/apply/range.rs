//! etcd's Range semantics above the MVCC scan: filters, sorting, limit and `more`.

use revkv_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use revkv_proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use revkv_proto::mvccpb::KeyValue;

use crate::mvcc::{self, KvStore, RangeOptions, RangeResult, WriteTxn};

/// Anything that can serve an MVCC range: the store (snapshot reads) or a write txn
/// (reads that see the txn's own changes).
pub trait RangeReader {
    fn mvcc_range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> mvcc::Result<RangeResult>;
}

impl RangeReader for KvStore {
    fn mvcc_range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> mvcc::Result<RangeResult> {
        self.range(key, end, opts)
    }
}

impl RangeReader for WriteTxn<'_, '_> {
    fn mvcc_range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> mvcc::Result<RangeResult> {
        self.range(key, end, opts)
    }
}

/// Serves a RangeRequest as etcd's applier does.
///
/// Sorting or revision filters need every match, so the limit is applied only after
/// them; otherwise one extra key is fetched to learn whether there are `more`.
pub fn range<R: RangeReader + ?Sized>(
    reader: &R,
    req: &RangeRequest,
) -> mvcc::Result<RangeResponse> {
    let order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let mut limit = req.limit.max(0) as usize;
    if order != SortOrder::None || filtered {
        limit = 0;
    }
    if limit > 0 {
        limit += 1;
    }
    let opts = RangeOptions {
        limit,
        rev: req.revision,
        count_only: req.count_only,
        // Sorting by value still needs the values.
        keys_only: req.keys_only && target != SortTarget::Value,
    };
    let mut rr = reader.mvcc_range(&req.key, &req.range_end, opts)?;
    rr.kvs.retain(|kv| {
        (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
            && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
    });
    // The scan returns keys ascending, so only non-key targets need an explicit order.
    let order = if target != SortTarget::Key && order == SortOrder::None {
        SortOrder::Ascend
    } else {
        order
    };
    if order != SortOrder::None {
        sort(&mut rr.kvs, target, order == SortOrder::Descend);
    }
    let mut more = false;
    if req.limit > 0 && rr.kvs.len() > req.limit as usize {
        rr.kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut rr.kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: Some(ResponseHeader {
            revision: rr.rev,
            ..Default::default()
        }),
        kvs: rr.kvs,
        more,
        count: rr.count,
    })
}

fn sort(kvs: &mut [KeyValue], target: SortTarget, descend: bool) {
    let key = |kv: &KeyValue| -> (i64, Vec<u8>) {
        match target {
            SortTarget::Key => (0, kv.key.clone()),
            SortTarget::Version => (kv.version, Vec::new()),
            SortTarget::Create => (kv.create_revision, Vec::new()),
            SortTarget::Mod => (kv.mod_revision, Vec::new()),
            SortTarget::Value => (0, kv.value.clone()),
        }
    };
    if descend {
        kvs.sort_by_cached_key(|kv| std::cmp::Reverse(key(kv)));
    } else {
        kvs.sort_by_cached_key(key);
    }
}
