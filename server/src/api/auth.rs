//! etcd's Auth service (`v3rpc/auth.go` and the auth half of `v3_server.go`).
//!
//! Changes (enable, disable, users, roles, permissions) go through raft, carrying the
//! caller's user; apply checks that it holds the `root` role while auth is enabled
//! (see [`crate::apply::auth`]). Passwords are hashed here, before proposing.
//!
//! Reads (user and role get and list) are answered from this member's store once a
//! linearizable read has caught it up, with the same check made here: the `root`
//! role, except that a user may read itself and the roles it holds, as in etcd.
//!
//! `Authenticate` checks the password here, then proposes the token so that every
//! member knows it; if the store changed meanwhile the check is made again.

use std::sync::Arc;

use rand::Rng;
use revkv_proto::etcdserverpb::{
    auth_server::Auth, AuthDisableRequest, AuthDisableResponse, AuthEnableRequest,
    AuthEnableResponse, AuthRoleAddRequest, AuthRoleAddResponse, AuthRoleDeleteRequest,
    AuthRoleDeleteResponse, AuthRoleGetRequest, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListRequest,
    AuthRoleListResponse, AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse,
    AuthStatusRequest, AuthStatusResponse, AuthUserAddRequest, AuthUserAddResponse,
    AuthUserChangePasswordRequest, AuthUserChangePasswordResponse, AuthUserDeleteRequest,
    AuthUserDeleteResponse, AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest,
    AuthUserGrantRoleResponse, AuthUserListRequest, AuthUserListResponse,
    AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, AuthenticateRequest,
    AuthenticateResponse,
};
use revkv_proto::revkvpb::{
    internal_raft_request::Request as Internal, InternalAuthenticateRequest,
};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::{instrumented, propose, propose_as, token};
use crate::apply::Applied;
use crate::auth::{self, AuthInfo};
use crate::server::Server;
use crate::Error;

const SERVICE: &str = "etcdserverpb.Auth";

/// How many times `Authenticate` checks a password again when the store changed
/// between the check and the token's apply.
const AUTHENTICATE_ATTEMPTS: usize = 3;

pub struct AuthService {
    server: Arc<Server>,
}

impl AuthService {
    pub fn new(server: Arc<Server>) -> Self {
        AuthService { server }
    }

    /// Proposes a change to the store as the caller.
    async fn change<T: Applied>(&self, meta: &MetadataMap, req: Internal) -> Result<T, Error> {
        self.server.refuse_on_learner()?;
        let user = self.server.auth_info(token(meta))?;
        propose_as(&self.server, &user, req).await
    }

    /// The tonic method of a change proposed as the caller.
    async fn change_rpc<Q, T: Applied>(
        &self,
        method: &'static str,
        r: Request<Q>,
        wrap: fn(Q) -> Internal,
    ) -> Result<Response<T>, Status> {
        let (meta, _, r) = r.into_parts();
        instrumented(&self.server, SERVICE, method, self.change(&meta, wrap(r))).await
    }

    /// Catches the store up and returns the caller, for a read.
    async fn reader(&self, meta: &MetadataMap) -> Result<AuthInfo, Error> {
        let user = self.server.auth_info(token(meta))?;
        self.server.linearizable_read().await?;
        Ok(user)
    }

    /// A bcrypt hash at `--bcrypt-cost`, made off the async workers (it is slow on
    /// purpose).
    async fn hash(&self, password: String) -> Result<String, Error> {
        let cost = self.server.auth.config().bcrypt_cost;
        let hashed = tokio::task::spawn_blocking(move || auth::hash_password(&password, cost))
            .await
            .map_err(|e| auth::Error::Hash(e.to_string()))??;
        Ok(hashed)
    }

    async fn authenticate(&self, req: AuthenticateRequest) -> Result<AuthenticateResponse, Error> {
        self.server.linearizable_read().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let store = self.server.auth.clone();
            let (name, password) = (req.name.clone(), req.password.clone());
            let checked_at =
                tokio::task::spawn_blocking(move || store.check_password(&name, &password))
                    .await
                    .map_err(|e| auth::Error::Hash(e.to_string()))??;
            let resp: AuthenticateResponse = propose(
                &self.server,
                Internal::Authenticate(InternalAuthenticateRequest {
                    name: req.name.clone(),
                    simple_token: simple_token_prefix(),
                }),
            )
            .await?;
            if self.server.auth.revision() == checked_at || attempt >= AUTHENTICATE_ATTEMPTS {
                return Ok(resp);
            }
            tracing::debug!(user = %req.name, "auth store changed during authentication; checking again");
        }
    }

    async fn user_get(
        &self,
        meta: &MetadataMap,
        req: AuthUserGetRequest,
    ) -> Result<AuthUserGetResponse, Error> {
        let caller = self.reader(meta).await?;
        if let Err(e) = self.server.auth.check_admin(&caller) {
            if caller.username != req.name {
                return Err(e.into());
            }
        }
        let user = self.server.auth.user(&req.name)?;
        Ok(AuthUserGetResponse {
            header: Some(self.server.header(0)),
            roles: user.roles,
        })
    }

    async fn role_get(
        &self,
        meta: &MetadataMap,
        req: AuthRoleGetRequest,
    ) -> Result<AuthRoleGetResponse, Error> {
        let caller = self.reader(meta).await?;
        if let Err(e) = self.server.auth.check_admin(&caller) {
            if !self.server.auth.has_role(&caller.username, &req.role) {
                return Err(e.into());
            }
        }
        let role = self.server.auth.role(&req.role)?;
        Ok(AuthRoleGetResponse {
            header: Some(self.server.header(0)),
            perm: role.key_permission,
        })
    }

    async fn user_list(&self, meta: &MetadataMap) -> Result<AuthUserListResponse, Error> {
        let caller = self.reader(meta).await?;
        self.server.auth.check_admin(&caller)?;
        Ok(AuthUserListResponse {
            header: Some(self.server.header(0)),
            users: self.server.auth.user_names(),
        })
    }

    async fn role_list(&self, meta: &MetadataMap) -> Result<AuthRoleListResponse, Error> {
        let caller = self.reader(meta).await?;
        self.server.auth.check_admin(&caller)?;
        Ok(AuthRoleListResponse {
            header: Some(self.server.header(0)),
            roles: self.server.auth.role_names(),
        })
    }

    async fn user_add(
        &self,
        meta: &MetadataMap,
        mut req: AuthUserAddRequest,
    ) -> Result<AuthUserAddResponse, Error> {
        let no_password = req.options.as_ref().is_some_and(|o| o.no_password);
        let password = std::mem::take(&mut req.password);
        req.hashed_password = if no_password {
            String::new()
        } else {
            self.hash(password).await?
        };
        self.change(meta, Internal::UserAdd(req)).await
    }

    async fn user_change_password(
        &self,
        meta: &MetadataMap,
        mut req: AuthUserChangePasswordRequest,
    ) -> Result<AuthUserChangePasswordResponse, Error> {
        let password = std::mem::take(&mut req.password);
        req.hashed_password = self.hash(password).await?;
        self.change(meta, Internal::UserChangePassword(req)).await
    }
}

/// The random part of a simple token: 16 ASCII letters, as etcd's.
fn simple_token_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| char::from(LETTERS[rng.gen_range(0..LETTERS.len())]))
        .collect()
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        r: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        self.change_rpc("AuthEnable", r, Internal::AuthEnable).await
    }

    async fn auth_disable(
        &self,
        r: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        self.change_rpc("AuthDisable", r, Internal::AuthDisable)
            .await
    }

    async fn user_delete(
        &self,
        r: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        self.change_rpc("UserDelete", r, Internal::UserDelete).await
    }

    async fn user_grant_role(
        &self,
        r: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        self.change_rpc("UserGrantRole", r, Internal::UserGrantRole)
            .await
    }

    async fn user_revoke_role(
        &self,
        r: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        self.change_rpc("UserRevokeRole", r, Internal::UserRevokeRole)
            .await
    }

    async fn role_add(
        &self,
        r: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        self.change_rpc("RoleAdd", r, Internal::RoleAdd).await
    }

    async fn role_delete(
        &self,
        r: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        self.change_rpc("RoleDelete", r, Internal::RoleDelete).await
    }

    async fn role_grant_permission(
        &self,
        r: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        self.change_rpc("RoleGrantPermission", r, Internal::RoleGrantPermission)
            .await
    }

    async fn role_revoke_permission(
        &self,
        r: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        self.change_rpc("RoleRevokePermission", r, Internal::RoleRevokePermission)
            .await
    }

    async fn auth_status(
        &self,
        _r: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        instrumented(&self.server, SERVICE, "AuthStatus", async {
            self.server.linearizable_read().await?;
            Ok(AuthStatusResponse {
                header: Some(self.server.header(0)),
                enabled: self.server.auth.is_enabled(),
                auth_revision: self.server.auth.revision(),
            })
        })
        .await
    }

    async fn authenticate(
        &self,
        r: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        instrumented(
            &self.server,
            SERVICE,
            "Authenticate",
            self.authenticate(r.into_inner()),
        )
        .await
    }

    async fn user_add(
        &self,
        r: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        instrumented(&self.server, SERVICE, "UserAdd", self.user_add(&meta, r)).await
    }

    async fn user_get(
        &self,
        r: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        instrumented(&self.server, SERVICE, "UserGet", self.user_get(&meta, r)).await
    }

    async fn user_list(
        &self,
        r: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let (meta, _, _) = r.into_parts();
        instrumented(&self.server, SERVICE, "UserList", self.user_list(&meta)).await
    }

    async fn user_change_password(
        &self,
        r: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        instrumented(
            &self.server,
            SERVICE,
            "UserChangePassword",
            self.user_change_password(&meta, r),
        )
        .await
    }

    async fn role_get(
        &self,
        r: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let (meta, _, r) = r.into_parts();
        instrumented(&self.server, SERVICE, "RoleGet", self.role_get(&meta, r)).await
    }

    async fn role_list(
        &self,
        r: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let (meta, _, _) = r.into_parts();
        instrumented(&self.server, SERVICE, "RoleList", self.role_list(&meta)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_prefixes_are_sixteen_letters() {
        let (a, b) = (simple_token_prefix(), simple_token_prefix());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_alphabetic()));
        assert_ne!(a, b);
    }
}
