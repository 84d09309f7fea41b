//! The KV service (etcd's `v3rpc/key.go`).

use std::sync::Arc;

use revkv_proto::etcdserverpb::kv_server::Kv;
use revkv_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use revkv_proto::revkvpb::internal_raft_request::Request as Internal;
use tonic::{Request, Response, Status};

use super::{observed, propose_as, quota, token, validate};
use crate::apply;
use crate::auth::{check, Caller};
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

    pub(crate) async fn range(
        &self,
        caller: &Caller,
        req: RangeRequest,
    ) -> Result<RangeResponse, Error> {
        validate::check_range(&req)?;
        let user = caller.clone()?;
        if !req.serializable {
            // etcd 3.4 serves a learner's clients serializable reads only.
            self.server.refuse_on_learner()?;
            self.server.linearizable_read().await?;
        }
        check::range(&self.server.auth, &user, &req)?;
        let mut resp = apply::range::range(&*self.server.store, &req)?;
        self.server.fill_header(&mut resp.header);
        Ok(resp)
    }

    pub(crate) async fn put(&self, caller: &Caller, req: PutRequest) -> Result<PutResponse, Error> {
        self.server.refuse_on_learner()?;
        validate::check_put(&req)?;
        let user = caller.clone()?;
        self.server.check_quota(quota::put_cost(&req)).await?;
        propose_as(&self.server, &user, Internal::Put(req)).await
    }

    pub(crate) async fn delete_range(
        &self,
        caller: &Caller,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Error> {
        self.server.refuse_on_learner()?;
        validate::check_delete(&req)?;
        let user = caller.clone()?;
        propose_as(&self.server, &user, Internal::DeleteRange(req)).await
    }

    pub(crate) async fn txn(&self, caller: &Caller, req: TxnRequest) -> Result<TxnResponse, Error> {
        self.server.refuse_on_learner()?;
        validate::check_txn(&req, self.server.cfg.max_txn_ops)?;
        let user = caller.clone()?;
        if !apply::txn::is_read_only(&req) {
            self.server.check_quota(quota::txn_cost(&req)).await?;
            return propose_as(&self.server, &user, Internal::Txn(req)).await;
        }
        // Read-only txns are served locally once linearized, as etcd does.
        if !is_serializable(&req) {
            self.server.linearizable_read().await?;
        }
        // A read-only txn puts nothing, so no lease's keys are asked for.
        check::txn(&self.server.auth, &user, &req, &|_| Vec::new())?;
        let mut resp = apply::read_only_txn(&self.server.store, &*self.server.leases, &req)?;
        self.server.fill_header(&mut resp.header);
        Ok(resp)
    }

    async fn compact(
        &self,
        caller: &Caller,
        req: CompactionRequest,
    ) -> Result<CompactionResponse, Error> {
        self.server.refuse_on_learner()?;
        let user = caller.clone()?;
        let physical = req.physical;
        let rev = req.revision;
        let resp = propose_as(&self.server, &user, Internal::Compaction(req)).await?;
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
/// `token` is the request's auth token (gRPC metadata), if it sent one.
impl KvService {
    pub(crate) async fn range_rpc(
        &self,
        token: Option<&[u8]>,
        r: RangeRequest,
    ) -> Result<RangeResponse, Status> {
        observed(&self.server, SERVICE, "Range", async {
            self.range(&self.server.auth_info(token), r).await
        })
        .await
    }

    pub(crate) async fn put_rpc(
        &self,
        token: Option<&[u8]>,
        r: PutRequest,
    ) -> Result<PutResponse, Status> {
        observed(&self.server, SERVICE, "Put", async {
            self.put(&self.server.auth_info(token), r).await
        })
        .await
    }

    pub(crate) async fn delete_range_rpc(
        &self,
        token: Option<&[u8]>,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        observed(&self.server, SERVICE, "DeleteRange", async {
            self.delete_range(&self.server.auth_info(token), r).await
        })
        .await
    }

    pub(crate) async fn txn_rpc(
        &self,
        token: Option<&[u8]>,
        r: TxnRequest,
    ) -> Result<TxnResponse, Status> {
        observed(&self.server, SERVICE, "Txn", async {
            self.txn(&self.server.auth_info(token), r).await
        })
        .await
    }

    pub(crate) async fn compact_rpc(
        &self,
        token: Option<&[u8]>,
        r: CompactionRequest,
    ) -> Result<CompactionResponse, Status> {
        observed(&self.server, SERVICE, "Compact", async {
            self.compact(&self.server.auth_info(token), r).await
        })
        .await
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, r: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        self.range_rpc(token(&meta), r).await.map(Response::new)
    }

    async fn put(&self, r: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        self.put_rpc(token(&meta), r).await.map(Response::new)
    }

    async fn delete_range(
        &self,
        r: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        self.delete_range_rpc(token(&meta), r)
            .await
            .map(Response::new)
    }

    async fn txn(&self, r: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        self.txn_rpc(token(&meta), r).await.map(Response::new)
    }

    async fn compact(
        &self,
        r: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        self.compact_rpc(token(&meta), r).await.map(Response::new)
    }
}
