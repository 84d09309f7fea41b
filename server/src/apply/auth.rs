//! Auth at apply: the permission check of a client's write (etcd's `authApplierV3`),
//! and the auth store's changes.
//!
//! A client's request carries the user its token named and the auth revision it was
//! checked at ([`RequestHeader`]). While auth is enabled, apply checks it against the
//! store as of the entry, so a permission revoked after the request arrived but before
//! it committed still refuses it, on every member alike. The member's own proposals
//! (`checked` clear: lease expiry, publishing its attributes) are not checked.

use std::collections::HashMap;

use revkv_proto::etcdserverpb::{
    request_op::Request as Op, AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse,
    AuthRoleDeleteResponse, AuthRoleGrantPermissionResponse, AuthRoleRevokePermissionResponse,
    AuthUserAddResponse, AuthUserChangePasswordResponse, AuthUserDeleteResponse,
    AuthUserGrantRoleResponse, AuthUserRevokeRoleResponse, AuthenticateResponse, TxnRequest,
};
use revkv_proto::revkvpb::{internal_raft_request::Request, RequestHeader};

use super::{Outcome, Response};
use crate::auth::{check, AuthInfo, AuthStore};
use crate::mvcc::ApplyBatch;

/// Who sent `header`'s request, if it is a client's that auth must check.
pub fn checked_info(auth: &AuthStore, header: Option<&RequestHeader>) -> Option<AuthInfo> {
    let h = header.filter(|h| h.checked)?;
    auth.is_enabled().then(|| AuthInfo {
        username: h.username.clone(),
        revision: h.auth_revision,
    })
}

/// Refuses a client's KV or lease request its user may not make.
pub fn permit(
    auth: &AuthStore,
    info: &AuthInfo,
    batch: &ApplyBatch<'_>,
    req: &Request,
) -> Result<(), crate::Error> {
    let mut held = HashMap::new();
    for id in leases_named(req) {
        held.insert(id, batch.attached_keys(id)?);
    }
    let lease_keys = |id: i64| held.get(&id).cloned().unwrap_or_default();
    match req {
        Request::Put(p) => check::put(auth, info, p, &lease_keys)?,
        Request::DeleteRange(d) => check::delete_range(auth, info, d)?,
        Request::Txn(t) => check::txn(auth, info, t, &lease_keys)?,
        Request::LeaseRevoke(r) => check::lease_revoke(auth, info, &lease_keys(r.id))?,
        _ => {}
    }
    Ok(())
}

/// The leases whose keys checking `req` needs.
fn leases_named(req: &Request) -> Vec<i64> {
    fn in_txn(t: &TxnRequest, out: &mut Vec<i64>) {
        for op in t.success.iter().chain(&t.failure) {
            match &op.request {
                Some(Op::RequestPut(p)) if p.lease != 0 => out.push(p.lease),
                Some(Op::RequestTxn(inner)) => in_txn(inner, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    match req {
        Request::Put(p) if p.lease != 0 => out.push(p.lease),
        Request::Txn(t) => in_txn(t, &mut out),
        Request::LeaseRevoke(r) => out.push(r.id),
        _ => {}
    }
    out
}

/// True for the requests that change the auth store (each needs the `root` role
/// while auth is enabled).
pub fn is_management(req: &Request) -> bool {
    matches!(
        req,
        Request::AuthEnable(_)
            | Request::AuthDisable(_)
            | Request::UserAdd(_)
            | Request::UserDelete(_)
            | Request::UserChangePassword(_)
            | Request::UserGrantRole(_)
            | Request::UserRevokeRole(_)
            | Request::RoleAdd(_)
            | Request::RoleDelete(_)
            | Request::RoleGrantPermission(_)
            | Request::RoleRevokePermission(_)
    )
}

/// Applies an auth request at raft index `index`; `None` for any other request.
pub fn apply(
    auth: &AuthStore,
    batch: &mut ApplyBatch<'_>,
    index: u64,
    req: &Request,
) -> Option<Outcome> {
    let wb = batch.write_batch();
    let r = match req {
        Request::AuthEnable(_) => auth
            .enable(wb)
            .map(|()| Response::AuthEnable(AuthEnableResponse::default())),
        Request::AuthDisable(_) => auth
            .disable(wb)
            .map(|()| Response::AuthDisable(AuthDisableResponse::default())),
        Request::Authenticate(a) => {
            auth.authenticate(&a.name, &a.simple_token, index)
                .map(|token| {
                    Response::Authenticate(AuthenticateResponse {
                        header: None,
                        token,
                    })
                })
        }
        Request::UserAdd(u) => auth
            .user_add(
                wb,
                &u.name,
                u.hashed_password.clone().into_bytes(),
                u.options.as_ref().is_some_and(|o| o.no_password),
            )
            .map(|()| Response::UserAdd(AuthUserAddResponse::default())),
        Request::UserDelete(u) => auth
            .user_delete(wb, &u.name)
            .map(|()| Response::UserDelete(AuthUserDeleteResponse::default())),
        Request::UserChangePassword(u) => auth
            .user_change_password(wb, &u.name, u.hashed_password.clone().into_bytes())
            .map(|()| Response::UserChangePassword(AuthUserChangePasswordResponse::default())),
        Request::UserGrantRole(g) => auth
            .user_grant_role(wb, &g.user, &g.role)
            .map(|()| Response::UserGrantRole(AuthUserGrantRoleResponse::default())),
        Request::UserRevokeRole(r) => auth
            .user_revoke_role(wb, &r.name, &r.role)
            .map(|()| Response::UserRevokeRole(AuthUserRevokeRoleResponse::default())),
        Request::RoleAdd(r) => auth
            .role_add(wb, &r.name)
            .map(|()| Response::RoleAdd(AuthRoleAddResponse::default())),
        Request::RoleDelete(r) => auth
            .role_delete(wb, &r.role)
            .map(|()| Response::RoleDelete(AuthRoleDeleteResponse::default())),
        Request::RoleGrantPermission(g) => auth
            .role_grant_permission(wb, &g.name, g.perm.clone())
            .map(|()| Response::RoleGrantPermission(AuthRoleGrantPermissionResponse::default())),
        Request::RoleRevokePermission(r) => auth
            .role_revoke_permission(wb, &r.role, &r.key, &r.range_end)
            .map(|()| Response::RoleRevokePermission(AuthRoleRevokePermissionResponse::default())),
        _ => return None,
    };
    Some(r.map_err(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, Error};
    use crate::mvcc::KvStore;
    use crate::storage::{Storage, StorageConfig};
    use revkv_proto::authpb::{permission::Type, Permission};
    use revkv_proto::etcdserverpb::{AuthRoleRevokePermissionRequest, PutRequest};
    use rocksdb::WriteBatch;

    fn header(user: &str, revision: u64) -> RequestHeader {
        RequestHeader {
            id: 1,
            username: user.into(),
            auth_revision: revision,
            checked: true,
        }
    }

    fn put(key: &str) -> Request {
        Request::Put(PutRequest {
            key: key.into(),
            ..Default::default()
        })
    }

    /// A write checked before a revocation but applied after it is refused: apply
    /// judges it against the store as of its own entry.
    #[test]
    fn a_revocation_is_never_outrun_by_a_write_in_flight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("storage");
        let store = KvStore::open(storage.clone()).expect("store");
        let auth = AuthStore::open(storage.clone(), AuthConfig::default()).expect("auth");
        let mut wb = WriteBatch::default();
        auth.user_add(&mut wb, "root", Vec::new(), true)
            .expect("root");
        auth.user_grant_role(&mut wb, "root", "root")
            .expect("grant");
        auth.user_add(&mut wb, "alice", Vec::new(), true)
            .expect("alice");
        auth.role_add(&mut wb, "app").expect("role");
        let perm = Permission {
            perm_type: Type::Readwrite as i32,
            key: b"app/".to_vec(),
            range_end: b"app0".to_vec(),
        };
        auth.role_grant_permission(&mut wb, "app", Some(perm))
            .expect("perm");
        auth.user_grant_role(&mut wb, "alice", "app")
            .expect("grant app");
        auth.enable(&mut wb).expect("enable");
        storage.write(wb, false).expect("write");

        let batch = ApplyBatch::new(&store);
        let checked_at = auth.revision();
        let alice = checked_info(&auth, Some(&header("alice", checked_at))).expect("checked");
        assert_eq!(permit(&auth, &alice, &batch, &put("app/x")).ok(), Some(()));
        assert!(matches!(
            permit(&auth, &alice, &batch, &put("other")),
            Err(crate::Error::Auth(Error::PermissionDenied))
        ));
        // The member's own proposals are not checked at all.
        let own = RequestHeader {
            checked: false,
            ..header("", 0)
        };
        assert_eq!(checked_info(&auth, Some(&own)), None);

        let mut batch = ApplyBatch::new(&store);
        let revoke = Request::RoleRevokePermission(AuthRoleRevokePermissionRequest {
            role: "app".into(),
            key: b"app/".to_vec(),
            range_end: b"app0".to_vec(),
        });
        assert!(is_management(&revoke));
        assert!(matches!(apply(&auth, &mut batch, 9, &revoke), Some(Ok(_))));
        // Checked at the old revision: refused as stale, then as denied once re-checked.
        assert!(matches!(
            permit(&auth, &alice, &batch, &put("app/x")),
            Err(crate::Error::Auth(Error::OldRevision))
        ));
        let fresh = checked_info(&auth, Some(&header("alice", auth.revision()))).expect("checked");
        assert!(matches!(
            permit(&auth, &fresh, &batch, &put("app/x")),
            Err(crate::Error::Auth(Error::PermissionDenied))
        ));
    }
}
