//! The Maintenance service: `Status` now; the rest answer Unimplemented until built.

use std::sync::Arc;

use revkv_proto::etcdserverpb::maintenance_server::Maintenance;
use revkv_proto::etcdserverpb::{StatusRequest, StatusResponse};
use tonic::{Request, Response, Status};

use super::instrumented;
use crate::server::Server;
use crate::Error;

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
            is_learner: false,
            db_size_quota: s.cfg.quota_bytes() as i64,
            downgrade_info: None,
            storage_version: String::new(),
        })
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
}
