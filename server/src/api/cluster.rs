//! The Cluster service (etcd's `v3rpc/member.go`): list, add, remove, update and
//! promote members.
//!
//! Adds, promotions and removals are raft conf changes; peer URL updates are normal
//! entries (the raft crate has no UpdateNode). All are checked twice, as in etcd:
//! here against local liveness (`--strict-reconfig-check`), and at apply against the
//! membership, identically on every member.

use std::sync::Arc;
use std::time::Duration;

use revkv_proto::etcdserverpb::cluster_server::Cluster;
use revkv_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use revkv_proto::revkvpb::internal_raft_request::Request as Internal;
use tonic::{Request, Response, Status};

use super::forward::LeaderLink;
use super::instrumented;
use crate::apply::{member::to_etcd, Applied};
use crate::cluster::{self, membership::new_member_id, reconfig, Change, Member};
use crate::server::Server;
use crate::Error;

const SERVICE: &str = "etcdserverpb.Cluster";

/// etcd's `HealthInterval`: how long a peer must have been continuously active to
/// count as connected for a reconfiguration.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

pub struct ClusterService {
    server: Arc<Server>,
    /// Where a follower sends promotions.
    leader: LeaderLink,
}

/// Peer liveness from the transport's activity table.
struct Live<'a>(&'a Server);

impl reconfig::Liveness for Live<'_> {
    fn is_active(&self, member: u64) -> bool {
        self.0.transport.activity().is_active(member)
    }

    fn is_connected(&self, member: u64) -> bool {
        self.0
            .transport
            .activity()
            .active_since(member)
            .is_some_and(|t| t.elapsed() >= HEALTH_INTERVAL)
    }
}

impl ClusterService {
    pub fn new(server: Arc<Server>) -> Self {
        ClusterService {
            server,
            leader: LeaderLink::default(),
        }
    }

    fn strict(&self) -> bool {
        self.server.cfg.strict_reconfig_check
    }

    /// Proposes a conf change and takes the response of the expected type.
    async fn configure<T: Applied>(&self, change: &Change) -> Result<T, Error> {
        self.answer(self.server.propose_conf_change(change).await?)
    }

    /// An applied response of the expected type, with the Cluster service's header.
    fn answer<T: Applied>(&self, r: crate::apply::Response) -> Result<T, Error> {
        let mut resp: T = super::applied(&self.server, r)?;
        *resp.header_mut() = Some(self.server.cluster_header());
        Ok(resp)
    }

    async fn list(&self, req: MemberListRequest) -> Result<MemberListResponse, Error> {
        self.server.refuse_on_learner()?;
        if req.linearizable {
            self.server.linearizable_read().await?;
        }
        let members = self.server.membership().members().map(to_etcd).collect();
        Ok(MemberListResponse {
            header: Some(self.server.cluster_header()),
            members,
        })
    }

    async fn add(&self, req: MemberAddRequest) -> Result<MemberAddResponse, Error> {
        self.server.refuse_on_learner()?;
        check_urls(&req.peer_ur_ls)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let member = Member {
            id: new_member_id(&req.peer_ur_ls, now),
            name: String::new(),
            peer_urls: req.peer_ur_ls,
            client_urls: Vec::new(),
            is_learner: req.is_learner,
        };
        if self.strict() {
            let ms = self.server.membership();
            reconfig::may_add_member(
                &ms,
                self.server.member_id,
                member.is_learner,
                &Live(&self.server),
            )?;
        }
        self.configure(&Change::Add(member)).await
    }

    async fn remove(&self, req: MemberRemoveRequest) -> Result<MemberRemoveResponse, Error> {
        self.server.refuse_on_learner()?;
        if self.strict() {
            let ms = self.server.membership();
            reconfig::may_remove_member(&ms, self.server.member_id, req.id, &Live(&self.server))?;
        }
        self.configure(&Change::Remove(req.id)).await
    }

    async fn update(&self, req: MemberUpdateRequest) -> Result<MemberUpdateResponse, Error> {
        self.server.refuse_on_learner()?;
        check_urls(&req.peer_ur_ls)?;
        self.answer(self.server.propose(Internal::MemberUpdate(req)).await?)
    }

    async fn promote(&self, req: MemberPromoteRequest) -> Result<MemberPromoteResponse, Error> {
        self.server.refuse_on_learner()?;
        // Only the leader knows how far the learner has caught up; like etcd, a
        // follower hands the request to the leader, over the peer port.
        let leader = self.server.raft.status().leader();
        if leader == 0 {
            return Err(crate::raft::Error::NoLeader.into());
        }
        if leader != self.server.member_id {
            return self.leader.member_promote(&self.server, leader, req).await;
        }
        self.promote_as_leader(req).await
    }

    /// The leader's part of a promotion; a member that does not lead (any more) says
    /// "not leader" rather than passing the request on again.
    pub(crate) async fn promote_as_leader(
        &self,
        req: MemberPromoteRequest,
    ) -> Result<MemberPromoteResponse, Error> {
        if self.server.raft.status().leader() != self.server.member_id {
            return Err(cluster::Error::NotLeader.into());
        }
        // An ID raft does not track is no learner: apply refuses it with etcd's reason.
        if let Some((leader_match, learner_match)) = self.server.raft.progress(req.id).await? {
            reconfig::learner_ready(leader_match, learner_match)?;
        }
        if self.strict() {
            reconfig::may_promote_member(&self.server.membership())?;
        }
        self.configure(&Change::Promote(req.id)).await
    }
}

/// etcd refuses member URLs it cannot parse ("given member URLs are invalid").
fn check_urls(urls: &[String]) -> Result<(), Error> {
    if urls.is_empty() || !urls.iter().all(|u| crate::config::is_member_url(u)) {
        return Err(cluster::Error::BadUrls.into());
    }
    Ok(())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        r: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let admin = super::admin(&self.server, r.metadata());
        instrumented(&self.server, SERVICE, "MemberAdd", async {
            admin?;
            self.add(r.into_inner()).await
        })
        .await
    }

    async fn member_remove(
        &self,
        r: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let admin = super::admin(&self.server, r.metadata());
        instrumented(&self.server, SERVICE, "MemberRemove", async {
            admin?;
            self.remove(r.into_inner()).await
        })
        .await
    }

    async fn member_update(
        &self,
        r: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let admin = super::admin(&self.server, r.metadata());
        instrumented(&self.server, SERVICE, "MemberUpdate", async {
            admin?;
            self.update(r.into_inner()).await
        })
        .await
    }

    async fn member_list(
        &self,
        r: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        instrumented(
            &self.server,
            SERVICE,
            "MemberList",
            self.list(r.into_inner()),
        )
        .await
    }

    async fn member_promote(
        &self,
        r: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let admin = super::admin(&self.server, r.metadata());
        instrumented(&self.server, SERVICE, "MemberPromote", async {
            admin?;
            self.promote(r.into_inner()).await
        })
        .await
    }
}
