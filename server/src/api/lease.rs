//! The Lease service (etcd's `v3rpc/lease.go` and the lease half of `v3_server.go`).
//!
//! Grant and revoke go through Raft; keep-alive, time-to-live and the lease list are
//! answered from this member's lessor, which is authoritative on the leader (the only
//! member with peers absent). A keep-alive on a follower answers "etcdserver: not
//! leader" until the peer transport can forward it.

use std::sync::Arc;
use std::time::Instant;

use revkv_proto::etcdserverpb::lease_server::Lease;
use revkv_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use revkv_proto::revkvpb::internal_raft_request::Request as Internal;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::{instrumented, propose};
use crate::apply::Leases;
use crate::lease::{self, Renewal, MAX_LEASE_TTL};
use crate::metrics::{code_name, Rpc};
use crate::server::Server;
use crate::Error;

const SERVICE: &str = "etcdserverpb.Lease";

/// Keep-alive responses buffered per stream before the stream stops reading requests.
const KEEP_ALIVE_BUFFER: usize = 16;

pub struct LeaseService {
    server: Arc<Server>,
}

impl LeaseService {
    pub fn new(server: Arc<Server>) -> Self {
        LeaseService { server }
    }

    async fn grant(&self, mut req: LeaseGrantRequest) -> Result<LeaseGrantResponse, Error> {
        self.server.refuse_on_learner()?;
        self.server.check_quota()?;
        if req.ttl > MAX_LEASE_TTL {
            return Err(lease::Error::TtlTooLarge.into());
        }
        let lessor = &self.server.leases;
        req.ttl = lessor.effective_ttl(req.ttl);
        if req.id == 0 {
            // Chosen here, before proposing, so the log carries the id and every member
            // applies the same grant. Positive, and not one that exists right now
            // (etcd's rule; a clash that appears meanwhile fails as "already exists").
            req.id = loop {
                let id = (self.server.next_request_id() & i64::MAX as u64) as i64;
                if id != 0 && !lessor.exists(id) {
                    break id;
                }
            };
        }
        propose(&self.server, Internal::LeaseGrant(req)).await
    }

    async fn revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse, Error> {
        self.server.refuse_on_learner()?;
        propose(&self.server, Internal::LeaseRevoke(req)).await
    }

    async fn time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        self.server.refuse_on_learner()?;
        // etcd waits for the leader's applied index first, so a lease granted or revoked
        // just before is reflected.
        self.server.linearizable_read().await?;
        let lessor = &self.server.leases;
        let Some(ttl) = lessor.time_to_live(req.id) else {
            // etcd reports an unknown lease as TTL -1, not as an error.
            return Ok(LeaseTimeToLiveResponse {
                header: Some(self.server.header(0)),
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            });
        };
        let keys = if req.keys {
            lessor.attached_keys(req.id)?
        } else {
            Vec::new()
        };
        Ok(LeaseTimeToLiveResponse {
            header: Some(self.server.header(0)),
            id: req.id,
            ttl: ttl.remaining,
            granted_ttl: ttl.granted_ttl,
            keys,
        })
    }

    async fn leases(&self, _req: LeaseLeasesRequest) -> Result<LeaseLeasesResponse, Error> {
        self.server.refuse_on_learner()?;
        let leases = self
            .server
            .leases
            .leases()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(LeaseLeasesResponse {
            header: Some(self.server.header(0)),
            leases,
        })
    }
}

/// Answers one keep-alive. The header is taken before renewing (as etcd does), so a
/// client never sees a successful keep-alive at a revision after the lease's revoke.
fn keep_alive_one(
    server: &Server,
    req: &LeaseKeepAliveRequest,
) -> Result<LeaseKeepAliveResponse, Error> {
    let header = server.header(0);
    match server.raft.status().leader() {
        0 => return Err(crate::raft::Error::NoLeader.into()),
        l if l != server.member_id => return Err(lease::Error::NotLeader.into()),
        _ => {}
    }
    let ttl = match server.leases.renew(req.id) {
        Renewal::Renewed(ttl) => ttl,
        Renewal::Gone => 0,
    };
    Ok(LeaseKeepAliveResponse {
        header: Some(header),
        id: req.id,
        ttl,
    })
}

/// Serves one keep-alive stream until the client closes it, an error ends it, or the
/// client stops reading (then the bounded channel stops us reading requests too).
async fn keep_alive_stream(
    server: Arc<Server>,
    mut requests: Streaming<LeaseKeepAliveRequest>,
    tx: mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) {
    let start = Instant::now();
    let code = loop {
        let req = tokio::select! {
            r = requests.message() => r,
            _ = tx.closed() => break tonic::Code::Cancelled,
        };
        let req = match req {
            Ok(Some(req)) => req,
            Ok(None) => break tonic::Code::Ok,
            Err(status) => break status.code(),
        };
        let resp = keep_alive_one(&server, &req).map_err(Status::from);
        let code = resp.as_ref().err().map(Status::code);
        if tx.send(resp).await.is_err() {
            break tonic::Code::Cancelled;
        }
        if let Some(code) = code {
            break code;
        }
    };
    let rpc = Rpc {
        service: SERVICE,
        method: "LeaseKeepAlive",
        kind: "bidi_stream",
    };
    server
        .metrics
        .observe(rpc, code_name(code), start.elapsed());
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        r: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        instrumented(
            &self.server,
            SERVICE,
            "LeaseGrant",
            self.grant(r.into_inner()),
        )
        .await
    }

    async fn lease_revoke(
        &self,
        r: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        instrumented(
            &self.server,
            SERVICE,
            "LeaseRevoke",
            self.revoke(r.into_inner()),
        )
        .await
    }

    async fn lease_keep_alive(
        &self,
        r: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<BoxStream<LeaseKeepAliveResponse>>, Status> {
        // etcd refuses every stream on a learner.
        self.server.refuse_on_learner()?;
        let (tx, rx) = mpsc::channel(KEEP_ALIVE_BUFFER);
        tokio::spawn(keep_alive_stream(self.server.clone(), r.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        r: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        instrumented(
            &self.server,
            SERVICE,
            "LeaseTimeToLive",
            self.time_to_live(r.into_inner()),
        )
        .await
    }

    async fn lease_leases(
        &self,
        r: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        instrumented(
            &self.server,
            SERVICE,
            "LeaseLeases",
            self.leases(r.into_inner()),
        )
        .await
    }
}
