//! The Lease service (etcd's `v3rpc/lease.go` and the lease half of `v3_server.go`).
//!
//! Grant and revoke go through Raft. Keep-alive and time-to-live are answered by the
//! leader's lessor, the only one whose deadlines count: a follower forwards them
//! ([`super::forward`]), as etcd does. The lease list is this member's applied state.

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

use super::forward::LeaderLink;
use super::{instrumented, oversize, propose, propose_as, quota, record};
use crate::apply::Leases;
use crate::lease::{self, Renewal, MAX_LEASE_TTL};
use crate::server::Server;
use crate::Error;

const SERVICE: &str = "etcdserverpb.Lease";

/// Keep-alive responses buffered per stream before the stream stops reading requests.
const KEEP_ALIVE_BUFFER: usize = 16;

#[derive(Clone)]
pub struct LeaseService {
    server: Arc<Server>,
    leader: Arc<LeaderLink>,
}

impl LeaseService {
    pub fn new(server: Arc<Server>) -> Self {
        LeaseService {
            server,
            leader: Arc::default(),
        }
    }

    pub(crate) async fn grant(
        &self,
        mut req: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, Error> {
        self.server.refuse_on_learner()?;
        self.server.check_quota(quota::LEASE_OVERHEAD).await?;
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

    /// Revoking deletes the lease's keys, so apply checks that `token`'s user may
    /// write every one of them.
    async fn revoke(
        &self,
        token: Option<&[u8]>,
        req: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, Error> {
        self.server.refuse_on_learner()?;
        let user = self.server.auth_info(token)?;
        propose_as(&self.server, &user, Internal::LeaseRevoke(req)).await
    }

    async fn time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        self.server.refuse_on_learner()?;
        on_leader(
            &self.server,
            || time_to_live_local(&self.server, &req),
            |leader| self.leader.time_to_live(&self.server, leader, &req),
        )
        .await
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

/// Answers one time-to-live query from this member's lessor, which must be the
/// leader's.
pub(super) async fn time_to_live_local(
    server: &Server,
    req: &LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, Error> {
    // etcd waits for the leader's applied index first, so a lease granted or revoked
    // just before is reflected.
    server.linearizable_read().await?;
    let lessor = &server.leases;
    let Some(ttl) = lessor.time_to_live(req.id) else {
        // etcd reports an unknown lease as TTL -1, not as an error.
        return Ok(LeaseTimeToLiveResponse {
            header: Some(server.header(0)),
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
        header: Some(server.header(0)),
        id: req.id,
        ttl: ttl.remaining,
        granted_ttl: ttl.granted_ttl,
        keys,
    })
}

/// Answers one keep-alive, on the leader or by forwarding it there.
async fn keep_alive_one(
    server: &Server,
    link: &LeaderLink,
    req: &LeaseKeepAliveRequest,
) -> Result<LeaseKeepAliveResponse, Error> {
    on_leader(
        server,
        || async { keep_alive_local(server, req) },
        |leader| link.keep_alive(server, leader, req),
    )
    .await
}

/// Runs `local` if this member leads, else `remote` against the leader; while there is
/// no leader or it changes under the request, tries again with the new one until the
/// request timeout, as etcd's forwarding does, so a leader change does not end a
/// client's keep-alive stream. A forwarded answer carries this member's header.
async fn on_leader<T, L, LF, R, RF>(server: &Server, local: L, remote: R) -> Result<T, Error>
where
    T: HasHeader,
    L: Fn() -> LF,
    LF: std::future::Future<Output = Result<T, Error>>,
    R: Fn(u64) -> RF,
    RF: std::future::Future<Output = Result<T, Error>>,
{
    let deadline = tokio::time::Instant::now() + server.cfg.request_timeout();
    let retry = std::time::Duration::from_millis(server.cfg.heartbeat_interval.max(10));
    loop {
        let header = server.header(0);
        let outcome = match server.raft.status().leader() {
            0 => Err(crate::raft::Error::NoLeader.into()),
            l if l == server.member_id => return local().await,
            l => remote(l).await.map(|mut r| {
                r.set_header(header);
                r
            }),
        };
        match outcome {
            Err(e) if leader_unsettled(&e) && tokio::time::Instant::now() + retry < deadline => {
                tokio::time::sleep(retry).await;
            }
            outcome => return outcome,
        }
    }
}

/// Failures that a retry against the next leader may cure.
fn leader_unsettled(e: &Error) -> bool {
    match e {
        Error::Raft(crate::raft::Error::NoLeader | crate::raft::Error::LeaderChanged) => true,
        Error::Forwarded(s) => s.message() == "etcdserver: not leader",
        _ => false,
    }
}

/// Lease responses whose header a forwarding member replaces with its own (etcd fills
/// the header where the client's request arrived).
trait HasHeader {
    fn set_header(&mut self, h: revkv_proto::etcdserverpb::ResponseHeader);
}

impl HasHeader for LeaseKeepAliveResponse {
    fn set_header(&mut self, h: revkv_proto::etcdserverpb::ResponseHeader) {
        self.header = Some(h);
    }
}

impl HasHeader for LeaseTimeToLiveResponse {
    fn set_header(&mut self, h: revkv_proto::etcdserverpb::ResponseHeader) {
        self.header = Some(h);
    }
}

/// Renews a lease in this member's lessor, which must be the leader's.
pub(super) fn keep_alive_local(
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
async fn keep_alive_stream<S>(
    server: Arc<Server>,
    link: Arc<LeaderLink>,
    mut requests: S,
    tx: mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) where
    S: futures::Stream<Item = Result<LeaseKeepAliveRequest, Status>> + Unpin,
{
    use futures::StreamExt;
    let start = Instant::now();
    let code = loop {
        let req = tokio::select! {
            r = requests.next() => r.transpose(),
            _ = tx.closed() => break tonic::Code::Cancelled,
        };
        let req = match req {
            Ok(Some(req)) => req,
            Ok(None) => break tonic::Code::Ok,
            // etcd ends the stream with the receive error (an oversized request
            // message, say).
            Err(status) => {
                let status = oversize::translate(status);
                let code = status.code();
                let _ = tx.send(Err(status)).await;
                break code;
            }
        };
        let resp = keep_alive_one(&server, &link, &req)
            .await
            .map_err(Status::from);
        let code = resp.as_ref().err().map(Status::code);
        if tx.send(resp).await.is_err() {
            break tonic::Code::Cancelled;
        }
        if let Some(code) = code {
            break code;
        }
    };
    record(
        &server,
        (SERVICE, "LeaseKeepAlive", "bidi_stream"),
        code,
        start,
    );
}

impl LeaseService {
    /// Starts a keep-alive stream fed by `requests`; its answers come out of the
    /// returned stream (the JSON gateway serves it too).
    pub(crate) fn keep_alive<S>(
        &self,
        requests: S,
    ) -> Result<ReceiverStream<Result<LeaseKeepAliveResponse, Status>>, Status>
    where
        S: futures::Stream<Item = Result<LeaseKeepAliveRequest, Status>> + Unpin + Send + 'static,
    {
        // etcd refuses every stream on a learner.
        self.server.refuse_on_learner()?;
        let (tx, rx) = mpsc::channel(KEEP_ALIVE_BUFFER);
        tokio::spawn(keep_alive_stream(
            self.server.clone(),
            self.leader.clone(),
            requests,
            tx,
        ));
        Ok(ReceiverStream::new(rx))
    }
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
        let (meta, _, r) = r.into_parts();
        instrumented(
            &self.server,
            SERVICE,
            "LeaseRevoke",
            self.revoke(super::token(&meta), r),
        )
        .await
    }

    async fn lease_keep_alive(
        &self,
        r: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<BoxStream<LeaseKeepAliveResponse>>, Status> {
        Ok(Response::new(Box::pin(self.keep_alive(r.into_inner())?)))
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
