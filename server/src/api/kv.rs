//! The KV service (etcd's `v3rpc/key.go`).

use std::sync::Arc;

use revkv_proto::etcdserverpb::kv_server::Kv;
use revkv_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use revkv_proto::revkvpb::internal_raft_request::Request as Internal;
use tonic::{Request, Response, Status};

use super::{observed, propose, quota, validate};
use crate::apply;
use crate::server::Server;
use crate::Error;

const SERVICE: &str = "etcdserverpb.KV";

#[derive(Clone)]
pub struct KvService {
    server: Arc<Server>,
}

impl KvService {
    pub fn new(server: Arc<Server>) -> Self {
        KvService { server }
    }

    pub(crate) async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Error> {
        validate::check_range(&req)?;
        if !req.serializable {
            // etcd 3.4 serves a learner's clients serializable reads only.
            self.server.refuse_on_learner()?;
            self.server.linearizable_read().await?;
        }
        let mut resp = apply::range::range(&*self.server.store, &req)?;
        self.server.fill_header(&mut resp.header);
        Ok(resp)
    }

    pub(crate) async fn put(&self, req: PutRequest) -> Result<PutResponse, Error> {
        self.server.refuse_on_learner()?;
        validate::check_put(&req)?;
        self.server.check_quota(quota::put_cost(&req)).await?;
        propose(&self.server, Internal::Put(req)).await
    }

    pub(crate) async fn delete_range(
        &self,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Error> {
        self.server.refuse_on_learner()?;
        validate::check_delete(&req)?;
        propose(&self.server, Internal::DeleteRange(req)).await
    }

    pub(crate) async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Error> {
        self.server.refuse_on_learner()?;
        validate::check_txn(&req, self.server.cfg.max_txn_ops)?;
        if !apply::txn::is_read_only(&req) {
            self.server.check_quota(quota::txn_cost(&req)).await?;
            return propose(&self.server, Internal::Txn(req)).await;
        }
        // Read-only txns are served locally once linearized, as etcd does.
        if !is_serializable(&req) {
            self.server.linearizable_read().await?;
        }
        let mut resp = apply::read_only_txn(&self.server.store, &*self.server.leases, &req)?;
        self.server.fill_header(&mut resp.header);
        Ok(resp)
    }

    async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse, Error> {
        self.server.refuse_on_learner()?;
        let physical = req.physical;
        let rev = req.revision;
        let resp = propose(&self.server, Internal::Compaction(req)).await?;
        if physical {
            self.server.wait_compaction(rev).await?;
        }
        Ok(resp)
    }
}

/// A txn is served serializably only when every range in it asks for that.
fn is_serializable(req: &TxnRequest) -> bool {
    use revkv_proto::etcdserverpb::request_op::Request as Op;
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Op::RequestRange(r)) => r.serializable,
            Some(Op::RequestTxn(t)) => is_serializable(t),
            _ => true,
        })
}

/// The five calls as both paths serve them: handled, mapped to etcd's status, and
/// counted in the RPC metrics. tonic's service below and [`super::unary`] call these.
impl KvService {
    pub(crate) async fn range_rpc(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        observed(&self.server, SERVICE, "Range", self.range(r)).await
    }

    pub(crate) async fn put_rpc(&self, r: PutRequest) -> Result<PutResponse, Status> {
        observed(&self.server, SERVICE, "Put", self.put(r)).await
    }

    pub(crate) async fn delete_range_rpc(
        &self,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        observed(&self.server, SERVICE, "DeleteRange", self.delete_range(r)).await
    }

    pub(crate) async fn txn_rpc(&self, r: TxnRequest) -> Result<TxnResponse, Status> {
        observed(&self.server, SERVICE, "Txn", self.txn(r)).await
    }

    pub(crate) async fn compact_rpc(
        &self,
        r: CompactionRequest,
    ) -> Result<CompactionResponse, Status> {
        observed(&self.server, SERVICE, "Compact", self.compact(r)).await
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, r: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.range_rpc(r.into_inner()).await.map(Response::new)
    }

    async fn put(&self, r: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.put_rpc(r.into_inner()).await.map(Response::new)
    }

    async fn delete_range(
        &self,
        r: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        self.delete_range_rpc(r.into_inner())
            .await
            .map(Response::new)
    }

    async fn txn(&self, r: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.txn_rpc(r.into_inner()).await.map(Response::new)
    }

    async fn compact(
        &self,
        r: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        self.compact_rpc(r.into_inner()).await.map(Response::new)
    }
}
