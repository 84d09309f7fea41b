//! [`KvClient`]: the [`Kv`] that sends each [`Op`] to the cluster.

use std::sync::Arc;

use revkv_proto::etcdserverpb::{self as pb, kv_client::KvClient as RawKv};

use crate::error::Result;
use crate::kv::Kv;
use crate::op::{delete_request, put_request, range_request, txn_request, Op, OpResponse};
use crate::pool::Pool;

/// The KV handle of a [`crate::Client`]: a [`Kv`] over gRPC with failover. Reads
/// (gets and read-only txns) move on to the next endpoint when one is unavailable;
/// writes only when they provably never left.
///
/// ```no_run
/// use revkv_client::{Client, GetOptions, Kv};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379"], Default::default()).await?;
/// let kv = client.kv();
/// kv.put("app/a", "1").await?;
/// let all = kv.get_with("app/", GetOptions::new().with_prefix()).await?;
/// println!("{} keys", all.count);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KvClient {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for KvClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvClient").finish_non_exhaustive()
    }
}

impl KvClient {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        KvClient { pool }
    }
}

impl Kv for KvClient {
    async fn execute(&self, op: Op) -> Result<OpResponse> {
        let repeatable = op.is_read_only();
        match op {
            Op::Get { key, options } => {
                let req = range_request(key, options);
                let r = self
                    .pool
                    .call(repeatable, |ch| {
                        let req = req.clone();
                        async move { RawKv::new(ch).range(req).await }
                    })
                    .await?;
                Ok(OpResponse::Get(r.into_inner().into()))
            }
            Op::Put {
                key,
                value,
                options,
            } => {
                let req = put_request(key, value, options);
                let r = self
                    .pool
                    .call(repeatable, |ch| {
                        let req = req.clone();
                        async move { RawKv::new(ch).put(req).await }
                    })
                    .await?;
                Ok(OpResponse::Put(r.into_inner().into()))
            }
            Op::Delete { key, options } => {
                let req = delete_request(key, options);
                let r = self
                    .pool
                    .call(repeatable, |ch| {
                        let req = req.clone();
                        async move { RawKv::new(ch).delete_range(req).await }
                    })
                    .await?;
                Ok(OpResponse::Delete(r.into_inner().into()))
            }
            Op::Txn(txn) => {
                let req = txn_request(txn)?;
                let r = self
                    .pool
                    .call(repeatable, |ch| {
                        let req = req.clone();
                        async move { RawKv::new(ch).txn(req).await }
                    })
                    .await?;
                Ok(OpResponse::Txn(r.into_inner().into()))
            }
            Op::Compact { revision, physical } => {
                let req = pb::CompactionRequest { revision, physical };
                // Compacting twice to the same revision is harmless (etcd's client
                // counts Compact among the repeatable calls).
                let r = self
                    .pool
                    .call(true, |ch| async move { RawKv::new(ch).compact(req).await })
                    .await?;
                Ok(OpResponse::Compact(r.into_inner().into()))
            }
        }
    }
}
