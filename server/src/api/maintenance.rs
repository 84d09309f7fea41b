//! The Maintenance service: `Status`, `Alarm`, `MoveLeader`, `Defragment`, `Hash`,
//! `HashKV` and `Snapshot`. `Downgrade` (etcd 3.5) answers Unimplemented, as etcd 3.4
//! does.

use std::sync::Arc;

use revkv_proto::etcdserverpb::maintenance_server::Maintenance;
use revkv_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::{instrumented, propose};
use crate::server::Server;
use crate::Error;
use crate::{backup, cluster};
use revkv_proto::revkvpb::internal_raft_request::Request as InternalRequest;

/// The etcd API version revkv implements; clients use it for feature checks.
pub const ETCD_API_VERSION: &str = "3.4.0";

pub struct MaintenanceService {
    server: Arc<Server>,
}

impl MaintenanceService {
    pub fn new(server: Arc<Server>) -> Self {
        MaintenanceService { server }
    }

    async fn status(&self) -> Result<StatusResponse, Error> {
        let s = &self.server;
        let storage = s.store.storage();
        let raft = s.raft.status();
        let leader = raft.leader();
        let mut errors = Vec::new();
        if leader == 0 {
            errors.push("etcdserver: no leader".to_string());
        }
        errors.extend(s.alarms.status_errors());
        Ok(StatusResponse {
            header: Some(s.header(0)),
            version: ETCD_API_VERSION.to_string(),
            db_size: storage.size_bytes() as i64,
            leader,
            raft_index: raft.commit(),
            raft_term: raft.term(),
            raft_applied_index: s.applied_index(),
            errors,
            db_size_in_use: storage.size_in_use_bytes() as i64,
            is_learner: s.is_learner(),
            db_size_quota: s.cfg.quota_bytes() as i64,
            downgrade_info: None,
            storage_version: String::new(),
        })
    }

    /// etcd's `Alarm`: every action, listing included, goes through the log, so the
    /// answer reflects every alarm committed before it (etcd does the same).
    async fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse, Error> {
        self.server.refuse_on_learner()?;
        let mut resp: AlarmResponse = propose(&self.server, InternalRequest::Alarm(req)).await?;
        // etcd 3.4 answers Alarm without a header (`alarm list -w json` prints `{}`).
        resp.header = None;
        Ok(resp)
    }

    /// etcd's `Defragment`: this member's database only (it is not replicated), done in
    /// place while the member keeps serving (`Storage::defragment`).
    async fn defragment(&self) -> Result<DefragmentResponse, Error> {
        // No read gate: a snapshot install copies into this same database, which a
        // manual compaction tolerates, and holding the gate for the whole rewrite would
        // make an install that waits for it stall every new read behind it.
        // etcd 3.4 serves a learner's clients Status and serializable Range only.
        self.server.refuse_on_learner()?;
        let storage = self.server.store.storage();
        tokio::task::block_in_place(|| storage.defragment());
        Ok(DefragmentResponse {
            header: Some(self.server.header(0)),
        })
    }

    /// etcd's `Hash` (meant for testing): a CRC-32 of this member's whole state
    /// machine (`Storage::hash_state_machine`), at the revision in the header.
    async fn hash(&self) -> Result<HashResponse, Error> {
        self.server.refuse_on_learner()?;
        let store = &self.server.store;
        // The revision is read first: a write between the two makes the hash newer than
        // the header, never older, as etcd's does.
        let rev = store.current_rev();
        let hash = tokio::task::block_in_place(|| store.storage().hash_state_machine())?;
        Ok(HashResponse {
            header: Some(self.server.header(rev)),
            hash,
        })
    }

    /// etcd's `HashKV`, over this member's keyspace (see `mvcc::hash`).
    async fn hash_kv(&self, req: HashKvRequest) -> Result<HashKvResponse, Error> {
        self.server.refuse_on_learner()?;
        let store = &self.server.store;
        let h = tokio::task::block_in_place(|| store.hash_kv(req.revision))?;
        Ok(HashKvResponse {
            header: Some(self.server.header(0)),
            hash: h.hash,
            compact_revision: h.compact_rev,
            hash_revision: h.rev,
        })
    }

    /// etcd's `Snapshot`: this member's whole state machine as a backup file's bytes
    /// (`backup::stream`), made off the async runtime; a client that goes away stops
    /// it. Chunks carry no header, as etcd's do not.
    fn snapshot(&self) -> BoxStream<SnapshotResponse> {
        // A few chunks in flight keep the disk and the socket both busy.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let storage = self.server.store.storage().clone();
        let snap_dir = self.server.cfg.data_dir().join("snap");
        tokio::task::spawn_blocking(move || {
            let sent = backup::stream(&storage, &snap_dir, &mut |blob, remaining| {
                let chunk = SnapshotResponse {
                    header: None,
                    remaining_bytes: remaining,
                    blob,
                    version: String::new(),
                };
                tx.blocking_send(Ok(chunk)).is_ok()
            });
            if let Err(e) = sent {
                let _ = tx.blocking_send(Err(Status::from(Error::from(e))));
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }

    /// etcd's `MoveLeader`: only the leader hands leadership over, only to a voter,
    /// and the call returns once the target leads (or times out).
    async fn move_leader(&self, req: MoveLeaderRequest) -> Result<MoveLeaderResponse, Error> {
        let s = &self.server;
        s.refuse_on_learner()?;
        if s.raft.status().leader() != s.member_id {
            return Err(cluster::Error::NotLeader.into());
        }
        let target = req.target_id;
        let membership = s.membership();
        if !membership.contains(target) || membership.is_learner(target) {
            return Err(cluster::Error::BadLeaderTransferee.into());
        }
        let mut leader = s.raft.status().subscribe_leader();
        let deadline = tokio::time::Instant::now() + s.cfg.request_timeout();
        // Raft abandons a transfer the target does not complete within an election
        // timeout; ask again until ours succeeds or the request times out.
        let retry = std::time::Duration::from_millis(s.cfg.election_timeout.max(1));
        while s.raft.status().leader() != target {
            s.raft.transfer_leader(target)?;
            let wait = leader.wait_for(|&l| l == target);
            match tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + retry), wait)
                .await
            {
                Ok(Ok(_)) => break,
                Ok(Err(_)) => return Err(crate::raft::Error::Stopped.into()),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(cluster::Error::LeaderTransferTimeout.into())
                }
                Err(_) => {}
            }
        }
        // etcd 3.4 answers MoveLeader without a header (`etcdctl move-leader -w json`
        // prints `{}`).
        Ok(MoveLeaderResponse { header: None })
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn status(&self, _r: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        instrumented(
            &self.server,
            "etcdserverpb.Maintenance",
            "Status",
            self.status(),
        )
        .await
    }

    async fn alarm(&self, r: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        instrumented(
            &self.server,
            "etcdserverpb.Maintenance",
            "Alarm",
            self.alarm(r.into_inner()),
        )
        .await
    }

    async fn defragment(
        &self,
        r: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let admin = admin(&self.server, r.metadata());
        instrumented(
            &self.server,
            "etcdserverpb.Maintenance",
            "Defragment",
            async {
                admin?;
                self.defragment().await
            },
        )
        .await
    }

    async fn hash(&self, r: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let admin = admin(&self.server, r.metadata());
        instrumented(&self.server, "etcdserverpb.Maintenance", "Hash", async {
            admin?;
            self.hash().await
        })
        .await
    }

    async fn hash_kv(&self, r: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        let admin = admin(&self.server, r.metadata());
        instrumented(&self.server, "etcdserverpb.Maintenance", "HashKV", async {
            admin?;
            self.hash_kv(r.into_inner()).await
        })
        .await
    }

    async fn snapshot(
        &self,
        r: Request<SnapshotRequest>,
    ) -> Result<Response<BoxStream<SnapshotResponse>>, Status> {
        // etcd refuses every stream on a learner.
        self.server.refuse_on_learner().map_err(Status::from)?;
        admin(&self.server, r.metadata()).map_err(Status::from)?;
        Ok(Response::new(self.snapshot()))
    }

    async fn move_leader(
        &self,
        r: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        instrumented(
            &self.server,
            "etcdserverpb.Maintenance",
            "MoveLeader",
            self.move_leader(r.into_inner()),
        )
        .await
    }
}

/// etcd 3.4's `authMaintenanceServer`: Defragment, Snapshot, Hash and HashKV need the
/// `root` role while auth is enabled, refused with the auth package's unmapped error.
fn admin(server: &Server, meta: &tonic::metadata::MetadataMap) -> Result<(), Error> {
    super::admin(server, meta).map_err(|e| match e {
        Error::Auth(a) => Error::UnmappedAuth(a),
        other => other,
    })
}
