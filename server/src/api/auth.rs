//! etcd's Auth service as a member with authentication disabled answers it.
//!
//! revkv has no auth store yet (no users, roles or tokens), so authentication is never
//! enabled, and the two calls whose answer follows from that give etcd's answer:
//! - `Authenticate` fails with "authentication is not enabled". etcdctl's `--user`,
//!   and clients configured with credentials, take that as "go on without a token",
//!   exactly as against an etcd whose auth is off (an `Unimplemented` here made every
//!   such command fail).
//! - `AuthDisable` succeeds, as etcd's does when auth is already off.
//!
//! User and role management and `AuthEnable` answer `Unimplemented` (the generated
//! defaults): storing users that nothing enforces would be a fake success.

use std::sync::Arc;

use revkv_proto::etcdserverpb::{
    auth_server::Auth, AuthDisableRequest, AuthDisableResponse, AuthenticateRequest,
    AuthenticateResponse,
};
use tonic::{Request, Response, Status};

use super::instrumented;
use crate::server::Server;

/// Errors of the Auth service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("authentication is not enabled")]
    NotEnabled,
}

pub struct AuthService {
    server: Arc<Server>,
}

impl AuthService {
    pub fn new(server: Arc<Server>) -> Self {
        AuthService { server }
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn authenticate(
        &self,
        _r: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        instrumented(&self.server, "etcdserverpb.Auth", "Authenticate", async {
            Err(Error::NotEnabled.into())
        })
        .await
    }

    async fn auth_disable(
        &self,
        _r: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        instrumented(&self.server, "etcdserverpb.Auth", "AuthDisable", async {
            Ok(AuthDisableResponse {
                header: Some(self.server.header(0)),
            })
        })
        .await
    }
}
