//! Requests a follower passes on to the leader (`revkvpb.Forward`, served on the peer
//! URLs), and the follower's side of that call: lease renewals and queries, and member
//! promotions (only the leader knows how far a learner has caught up). The peer URL,
//! not the leader's client URL, so neither client TLS nor client certificates stand
//! in the way.
//!
//! Only the leader's lessor keeps deadlines that count: it alone expires leases, and a
//! renewal recorded on a follower would be forgotten. etcd therefore forwards
//! `LeaseKeepAlive` and `LeaseTimeToLive` from a follower to the leader; so do we, over
//! the peer listener the leader already serves, with the cluster ID checked as on the
//! raft stream so no member of another cluster can renew or read our leases.

use std::sync::Arc;

use parking_lot::Mutex;
use revkv_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    MemberPromoteRequest, MemberPromoteResponse,
};
use revkv_proto::revkvpb::forward_client::ForwardClient;
use revkv_proto::revkvpb::forward_server::{Forward, ForwardServer};
use revkv_proto::revkvpb::{ForwardedKeepAlive, ForwardedPromote, ForwardedTimeToLive};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::cluster::ClusterService;
use super::lease::{keep_alive_local, time_to_live_local};
use crate::server::Server;
use crate::{raft, Error};

/// The leader's side: answers forwarded requests from its own lessor.
pub struct ForwardService {
    server: Arc<Server>,
}

impl ForwardService {
    pub fn new(server: Arc<Server>) -> ForwardServer<ForwardService> {
        ForwardServer::new(ForwardService { server })
    }

    fn check_cluster(&self, cluster_id: u64) -> Result<(), Status> {
        if cluster_id == self.server.cluster_id {
            return Ok(());
        }
        tracing::warn!(
            remote_cluster_id = format!("{cluster_id:x}"),
            "refused a forwarded lease request from another cluster"
        );
        Err(Status::failed_precondition(format!(
            "request from cluster ID {cluster_id:x} refused by a member of cluster ID {:x}",
            self.server.cluster_id
        )))
    }
}

#[tonic::async_trait]
impl Forward for ForwardService {
    async fn lease_keep_alive(
        &self,
        r: Request<ForwardedKeepAlive>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        let r = r.into_inner();
        self.check_cluster(r.cluster_id)?;
        let req = r.request.unwrap_or_default();
        // Not forwarded again: a member that is no longer leader says so, and the
        // follower reports it rather than bouncing the request around.
        let resp = keep_alive_local(&self.server, &req)?;
        Ok(Response::new(resp))
    }

    async fn lease_time_to_live(
        &self,
        r: Request<ForwardedTimeToLive>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let r = r.into_inner();
        self.check_cluster(r.cluster_id)?;
        if self.server.raft.status().leader() != self.server.member_id {
            return Err(Error::from(crate::lease::Error::NotLeader).into());
        }
        let resp = time_to_live_local(&self.server, &r.request.unwrap_or_default()).await?;
        Ok(Response::new(resp))
    }

    async fn member_promote(
        &self,
        r: Request<ForwardedPromote>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let r = r.into_inner();
        self.check_cluster(r.cluster_id)?;
        let req = r.request.unwrap_or_default();
        // Not forwarded again: a member that no longer leads says so.
        let resp = ClusterService::new(self.server.clone())
            .promote_as_leader(req)
            .await?;
        Ok(Response::new(resp))
    }
}

/// The follower's side: one lazily connected channel to the current leader's peer URL,
/// replaced when the leader changes.
#[derive(Default)]
pub struct LeaderLink {
    current: Mutex<Option<(u64, ForwardClient<Channel>)>>,
}

impl LeaderLink {
    fn client(&self, server: &Server, leader: u64) -> Result<ForwardClient<Channel>, Error> {
        let mut current = self.current.lock();
        if let Some((id, client)) = current.as_ref() {
            if *id == leader {
                return Ok(client.clone());
            }
        }
        let url = server
            .membership
            .read()
            .get(leader)
            .and_then(|m| m.peer_urls.first().cloned())
            .ok_or(raft::Error::NoLeader)?;
        let (target, dialer) = server.transport.connector().for_tonic(&url);
        let channel = Endpoint::from_shared(target)
            .map_err(|_| raft::Error::NoLeader)?
            .connect_timeout(server.cfg.request_timeout())
            .timeout(server.cfg.request_timeout())
            .connect_with_connector_lazy(dialer);
        let client = ForwardClient::new(channel);
        *current = Some((leader, client.clone()));
        Ok(client)
    }

    pub async fn keep_alive(
        &self,
        server: &Server,
        leader: u64,
        req: &LeaseKeepAliveRequest,
    ) -> Result<LeaseKeepAliveResponse, Error> {
        let mut client = self.client(server, leader)?;
        let fwd = ForwardedKeepAlive {
            cluster_id: server.cluster_id,
            request: Some(*req),
        };
        let resp = client.lease_keep_alive(fwd).await;
        self.outcome(leader, resp)
    }

    pub async fn time_to_live(
        &self,
        server: &Server,
        leader: u64,
        req: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        let mut client = self.client(server, leader)?;
        let fwd = ForwardedTimeToLive {
            cluster_id: server.cluster_id,
            request: Some(*req),
        };
        let resp = client.lease_time_to_live(fwd).await;
        self.outcome(leader, resp)
    }

    pub async fn member_promote(
        &self,
        server: &Server,
        leader: u64,
        req: MemberPromoteRequest,
    ) -> Result<MemberPromoteResponse, Error> {
        let mut client = self.client(server, leader)?;
        let fwd = ForwardedPromote {
            cluster_id: server.cluster_id,
            request: Some(req),
        };
        let resp = client.member_promote(fwd).await;
        self.outcome(leader, resp)
    }

    /// The leader's answer stands (a lease error is the client's to see); failing to
    /// reach the leader at all reads as a leader change, which clients retry.
    fn outcome<T>(&self, leader: u64, resp: Result<Response<T>, Status>) -> Result<T, Error> {
        match resp {
            Ok(r) => Ok(r.into_inner()),
            Err(s) if matches!(s.code(), tonic::Code::DeadlineExceeded) => {
                Err(raft::Error::Timeout.into())
            }
            Err(s) if is_transport_failure(&s) => {
                tracing::debug!(
                    leader = format!("{leader:x}"),
                    error = %s,
                    "cannot forward a request to the leader"
                );
                self.current.lock().take();
                Err(raft::Error::LeaderChanged.into())
            }
            Err(s) => Err(Error::Forwarded(s)),
        }
    }
}

/// Whether the call failed before the leader answered it.
fn is_transport_failure(s: &Status) -> bool {
    matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
        && !s.message().starts_with("etcdserver:")
}
