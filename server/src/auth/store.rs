//! The auth store: users, roles, the enabled flag and the auth revision (etcd's
//! `auth/store.go`).
//!
//! The store is a copy in memory of the `auth` column family, kept in step by apply:
//! every change method takes the batch of the entry being applied, changes the copy and
//! writes the records it changed, plus the raised revision, into that batch. The copy
//! is loaded at start and again after a snapshot install.
//!
//! Records (`auth` column family):
//! - `enabled` -> one byte, 1 when auth is enabled;
//! - `revision` -> the auth revision, big-endian u64 (1 for a store never changed);
//! - `user/<name>` -> `authpb.User` (roles sorted, password a bcrypt hash);
//! - `role/<name>` -> `authpb.Role` (permissions sorted by key).
//!
//! Rules, as etcd's:
//! - enabling needs a user `root` holding the role `root`; enabling an enabled store
//!   or disabling a disabled one changes nothing (and raises no revision);
//! - while enabled, the user `root` cannot be deleted nor lose the role `root`, and the
//!   role `root` cannot be deleted;
//! - the role `root` may be granted without having been added; it permits everything;
//! - deleting a role revokes it from every user;
//! - granting a permission with a key range the role already has replaces its type.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use prost::Message;
use revkv_proto::authpb::{Permission, Role, User, UserAddOptions};
use rocksdb::WriteBatch;

use super::jwt::{Jwt, TokenConfig};
use super::perms::{self, Access};
use super::tokens::Tokens;
use super::{AuthConfig, AuthInfo, Error, ROOT};
use crate::storage::{decode_u64, encode_u64, Storage, CF_AUTH};

const ENABLED: &[u8] = b"enabled";
const REVISION: &[u8] = b"revision";
const USER_PREFIX: &[u8] = b"user/";
const ROLE_PREFIX: &[u8] = b"role/";

fn record_key(prefix: &[u8], name: &str) -> Vec<u8> {
    [prefix, name.as_bytes()].concat()
}

#[derive(Clone, Debug, Default)]
struct State {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

/// A record a change wrote, to be put into (or deleted from) the batch.
enum Changed {
    User(String),
    Role(String),
    Enabled,
}

/// The auth store of one member (see the module docs).
pub struct AuthStore {
    storage: Storage,
    /// A copy of `state.enabled` for the per-request check, which must cost nothing
    /// while auth is off.
    enabled: AtomicBool,
    state: RwLock<State>,
    /// The simple tokens this member knows (always empty with JWTs).
    tokens: Tokens,
    /// With `--auth-token=jwt`: the signer and verifier that replace the table.
    jwt: Option<Jwt>,
    cfg: AuthConfig,
}

impl AuthStore {
    /// The store recorded in `storage`.
    pub fn open(storage: Storage, cfg: AuthConfig) -> Result<AuthStore, Error> {
        let jwt = match &cfg.token {
            TokenConfig::Simple => None,
            TokenConfig::Jwt(j) => Some(Jwt::open(j).map_err(Error::Options)?),
        };
        let store = AuthStore {
            jwt,
            storage,
            enabled: AtomicBool::new(false),
            state: RwLock::default(),
            tokens: Tokens::new(cfg.token_ttl),
            cfg,
        };
        store.reload()?;
        Ok(store)
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// Replaces the copy in memory with what `storage` records (after a snapshot
    /// install). Tokens stay: they name users, and a user gone is checked anyway.
    pub fn reload(&self) -> Result<(), Error> {
        let db = self.storage.db();
        let cf = self.storage.cf(CF_AUTH);
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| Error::Corrupt(format!("{what}: {e}"));
        let get = |key: &[u8]| db.get_cf(cf, key).map_err(|e| corrupt("read", &e));
        let mut st = State {
            enabled: get(ENABLED)?.is_some_and(|v| v.first() == Some(&1)),
            revision: match get(REVISION)? {
                Some(v) => decode_u64(&v).ok_or_else(|| corrupt("revision", &"not 8 bytes"))?,
                None => 1,
            },
            ..State::default()
        };
        for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item.map_err(|e| corrupt("scan", &e))?;
            if let Some(name) = k.strip_prefix(USER_PREFIX) {
                let user = User::decode(&*v).map_err(|e| corrupt("user", &e))?;
                st.users
                    .insert(String::from_utf8_lossy(name).into_owned(), user);
            } else if let Some(name) = k.strip_prefix(ROLE_PREFIX) {
                let role = Role::decode(&*v).map_err(|e| corrupt("role", &e))?;
                st.roles
                    .insert(String::from_utf8_lossy(name).into_owned(), role);
            }
        }
        self.enabled.store(st.enabled, Ordering::Release);
        *self.state.write() = st;
        Ok(())
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    /// Who `token` names: for a simple token, checked at the current revision; a JWT
    /// says which revision it was made at.
    pub fn info_for_token(&self, token: &str) -> Result<AuthInfo, Error> {
        if let Some(jwt) = &self.jwt {
            let (username, revision) = jwt.verify(token).ok_or(Error::InvalidToken)?;
            return Ok(AuthInfo { username, revision });
        }
        let username = self.tokens.user(token).ok_or(Error::InvalidToken)?;
        Ok(AuthInfo {
            username,
            revision: self.revision(),
        })
    }

    /// Checks `name`'s password; returns the revision it was checked at. bcrypt is
    /// slow on purpose: call it off the async workers.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, Error> {
        let (hash, revision) = {
            let st = self.state.read();
            if !st.enabled {
                return Err(Error::NotEnabled);
            }
            let user = st.users.get(name).ok_or(Error::AuthFailed)?;
            if user.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(Error::AuthFailed);
            }
            (user.password.clone(), st.revision)
        };
        if super::password_matches(password, &hash) {
            Ok(revision)
        } else {
            Err(Error::AuthFailed)
        }
    }

    /// etcd's `isOpPermitted`: may `info`'s user do `access` on `key`..`range_end`?
    pub fn check(
        &self,
        info: &AuthInfo,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Error> {
        if !self.is_enabled() {
            return Ok(());
        }
        let st = self.state.read();
        if !st.enabled {
            return Ok(());
        }
        if info.revision == 0 {
            return Err(Error::UserEmpty);
        }
        if info.revision < st.revision {
            return Err(Error::OldRevision);
        }
        let user = st
            .users
            .get(&info.username)
            .ok_or(Error::PermissionDenied)?;
        if has_root_role(user) {
            return Ok(());
        }
        let granted = user
            .roles
            .iter()
            .filter_map(|r| st.roles.get(r))
            .flat_map(|r| &r.key_permission);
        if perms::permits(granted, access, key, range_end) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// etcd's `IsAdminPermitted`: is `info`'s user one with the `root` role?
    pub fn check_admin(&self, info: &AuthInfo) -> Result<(), Error> {
        if !self.is_enabled() {
            return Ok(());
        }
        let st = self.state.read();
        if !st.enabled {
            return Ok(());
        }
        if info.username.is_empty() {
            return Err(Error::UserEmpty);
        }
        let user = st.users.get(&info.username).ok_or(Error::UserNotFound)?;
        if has_root_role(user) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// True when `user` holds `role` (etcd lets a user read its own roles).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.state
            .read()
            .users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    pub fn user(&self, name: &str) -> Result<User, Error> {
        self.state
            .read()
            .users
            .get(name)
            .cloned()
            .ok_or(Error::UserNotFound)
    }

    pub fn role(&self, name: &str) -> Result<Role, Error> {
        self.state
            .read()
            .roles
            .get(name)
            .cloned()
            .ok_or(Error::RoleNotFound)
    }

    pub fn user_names(&self) -> Vec<String> {
        self.state.read().users.keys().cloned().collect()
    }

    pub fn role_names(&self) -> Vec<String> {
        self.state.read().roles.keys().cloned().collect()
    }

    // ---- changes, made only by apply ----

    /// Runs `f` on the state; when it changed something, raises the revision and
    /// writes the changed records into `wb`.
    fn change<R>(
        &self,
        wb: &mut WriteBatch,
        f: impl FnOnce(&mut State, &mut Vec<Changed>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut st = self.state.write();
        let mut changed = Vec::new();
        let r = f(&mut st, &mut changed)?;
        if changed.is_empty() {
            return Ok(r);
        }
        st.revision += 1;
        let cf = self.storage.cf(CF_AUTH);
        for c in changed {
            match c {
                Changed::User(name) => {
                    let key = record_key(USER_PREFIX, &name);
                    match st.users.get(&name) {
                        Some(u) => wb.put_cf(cf, key, u.encode_to_vec()),
                        None => wb.delete_cf(cf, key),
                    }
                }
                Changed::Role(name) => {
                    let key = record_key(ROLE_PREFIX, &name);
                    match st.roles.get(&name) {
                        Some(r) => wb.put_cf(cf, key, r.encode_to_vec()),
                        None => wb.delete_cf(cf, key),
                    }
                }
                Changed::Enabled => wb.put_cf(cf, ENABLED, [u8::from(st.enabled)]),
            }
        }
        wb.put_cf(cf, REVISION, encode_u64(st.revision));
        self.enabled.store(st.enabled, Ordering::Release);
        Ok(r)
    }

    pub fn enable(&self, wb: &mut WriteBatch) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            if st.enabled {
                return Ok(());
            }
            let root = st.users.get(ROOT).ok_or(Error::RootUserMissing)?;
            if !has_root_role(root) {
                return Err(Error::RootRoleMissing);
            }
            st.enabled = true;
            changed.push(Changed::Enabled);
            Ok(())
        })
    }

    pub fn disable(&self, wb: &mut WriteBatch) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            if st.enabled {
                st.enabled = false;
                changed.push(Changed::Enabled);
            }
            Ok(())
        })?;
        self.tokens.clear();
        Ok(())
    }

    /// Makes the token for `name`: the simple token `prefix.index`, or a JWT at the
    /// current revision (the password was checked by the proposer; the user may have
    /// gone since).
    pub fn authenticate(&self, name: &str, prefix: &str, index: u64) -> Result<String, Error> {
        let revision = {
            let st = self.state.read();
            if !st.enabled {
                return Err(Error::NotEnabled);
            }
            if !st.users.contains_key(name) {
                return Err(Error::AuthFailed);
            }
            st.revision
        };
        if let Some(jwt) = &self.jwt {
            return jwt.sign(name, revision);
        }
        let token = format!("{prefix}.{index}");
        self.tokens.assign(token.clone(), name.to_owned());
        Ok(token)
    }

    pub fn user_add(
        &self,
        wb: &mut WriteBatch,
        name: &str,
        hashed_password: Vec<u8>,
        no_password: bool,
    ) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            if name.is_empty() {
                return Err(Error::UserEmpty);
            }
            if st.users.contains_key(name) {
                return Err(Error::UserAlreadyExists);
            }
            st.users.insert(
                name.to_owned(),
                User {
                    name: name.as_bytes().to_vec(),
                    password: hashed_password,
                    roles: Vec::new(),
                    options: Some(UserAddOptions { no_password }),
                },
            );
            changed.push(Changed::User(name.to_owned()));
            Ok(())
        })
    }

    pub fn user_delete(&self, wb: &mut WriteBatch, name: &str) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            if st.enabled && name == ROOT {
                return Err(Error::InvalidManagement);
            }
            st.users.remove(name).ok_or(Error::UserNotFound)?;
            changed.push(Changed::User(name.to_owned()));
            Ok(())
        })?;
        self.tokens.invalidate_user(name);
        Ok(())
    }

    pub fn user_change_password(
        &self,
        wb: &mut WriteBatch,
        name: &str,
        hashed_password: Vec<u8>,
    ) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            let user = st.users.get_mut(name).ok_or(Error::UserNotFound)?;
            user.password = hashed_password;
            changed.push(Changed::User(name.to_owned()));
            Ok(())
        })?;
        self.tokens.invalidate_user(name);
        Ok(())
    }

    pub fn user_grant_role(
        &self,
        wb: &mut WriteBatch,
        name: &str,
        role: &str,
    ) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            if !st.users.contains_key(name) {
                return Err(Error::UserNotFound);
            }
            if role != ROOT && !st.roles.contains_key(role) {
                return Err(Error::RoleNotFound);
            }
            let user = st.users.get_mut(name).ok_or(Error::UserNotFound)?;
            if let Err(at) = user.roles.binary_search_by(|r| r.as_str().cmp(role)) {
                user.roles.insert(at, role.to_owned());
                changed.push(Changed::User(name.to_owned()));
            }
            Ok(())
        })
    }

    pub fn user_revoke_role(
        &self,
        wb: &mut WriteBatch,
        name: &str,
        role: &str,
    ) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            if st.enabled && name == ROOT && role == ROOT {
                return Err(Error::InvalidManagement);
            }
            let user = st.users.get_mut(name).ok_or(Error::UserNotFound)?;
            let at = user
                .roles
                .iter()
                .position(|r| r == role)
                .ok_or(Error::RoleNotGranted)?;
            user.roles.remove(at);
            changed.push(Changed::User(name.to_owned()));
            Ok(())
        })
    }

    pub fn role_add(&self, wb: &mut WriteBatch, name: &str) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            if name.is_empty() {
                return Err(Error::RoleEmpty);
            }
            if st.roles.contains_key(name) {
                return Err(Error::RoleAlreadyExists);
            }
            st.roles.insert(
                name.to_owned(),
                Role {
                    name: name.as_bytes().to_vec(),
                    key_permission: Vec::new(),
                },
            );
            changed.push(Changed::Role(name.to_owned()));
            Ok(())
        })
    }

    pub fn role_delete(&self, wb: &mut WriteBatch, name: &str) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            if st.enabled && name == ROOT {
                return Err(Error::InvalidManagement);
            }
            st.roles.remove(name).ok_or(Error::RoleNotFound)?;
            changed.push(Changed::Role(name.to_owned()));
            for (user_name, user) in st.users.iter_mut() {
                if let Some(at) = user.roles.iter().position(|r| r == name) {
                    user.roles.remove(at);
                    changed.push(Changed::User(user_name.clone()));
                }
            }
            Ok(())
        })
    }

    pub fn role_grant_permission(
        &self,
        wb: &mut WriteBatch,
        name: &str,
        perm: Option<Permission>,
    ) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            let role = st.roles.get_mut(name).ok_or(Error::RoleNotFound)?;
            let perm = perm.ok_or(Error::PermissionNotGiven)?;
            let perms = &mut role.key_permission;
            match perms
                .iter_mut()
                .find(|p| p.key == perm.key && p.range_end == perm.range_end)
            {
                Some(p) => p.perm_type = perm.perm_type,
                None => {
                    let at = perms.partition_point(|p| p.key <= perm.key);
                    perms.insert(at, perm);
                }
            }
            changed.push(Changed::Role(name.to_owned()));
            Ok(())
        })
    }

    pub fn role_revoke_permission(
        &self,
        wb: &mut WriteBatch,
        name: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Error> {
        self.change(wb, |st, changed| {
            let role = st.roles.get_mut(name).ok_or(Error::RoleNotFound)?;
            let at = role
                .key_permission
                .iter()
                .position(|p| p.key == key && p.range_end == range_end)
                .ok_or(Error::PermissionNotGranted)?;
            role.key_permission.remove(at);
            changed.push(Changed::Role(name.to_owned()));
            Ok(())
        })
    }
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;
    use revkv_proto::authpb::permission::Type;

    fn open(dir: &std::path::Path) -> (Storage, AuthStore) {
        let storage = Storage::open(dir, &StorageConfig::default()).expect("open");
        let store = AuthStore::open(storage.clone(), AuthConfig::default()).expect("auth");
        (storage, store)
    }

    fn apply(
        storage: &Storage,
        f: impl FnOnce(&mut WriteBatch) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut wb = WriteBatch::default();
        let r = f(&mut wb);
        storage.write(wb, false).expect("write");
        r
    }

    fn info(user: &str, store: &AuthStore) -> AuthInfo {
        AuthInfo {
            username: user.into(),
            revision: store.revision(),
        }
    }

    #[test]
    fn enabling_needs_root_with_the_root_role() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (st, auth) = open(dir.path());
        assert_eq!(
            apply(&st, |wb| auth.enable(wb)),
            Err(Error::RootUserMissing)
        );
        apply(&st, |wb| auth.user_add(wb, ROOT, Vec::new(), true)).expect("add");
        assert_eq!(
            apply(&st, |wb| auth.enable(wb)),
            Err(Error::RootRoleMissing)
        );
        apply(&st, |wb| auth.user_grant_role(wb, ROOT, ROOT)).expect("grant");
        let rev = auth.revision();
        apply(&st, |wb| auth.enable(wb)).expect("enable");
        assert!(auth.is_enabled());
        assert_eq!(auth.revision(), rev + 1);
        apply(&st, |wb| auth.enable(wb)).expect("enable again");
        assert_eq!(auth.revision(), rev + 1, "a no-op raises nothing");
        assert_eq!(
            apply(&st, |wb| auth.user_delete(wb, ROOT)),
            Err(Error::InvalidManagement)
        );
        assert_eq!(
            apply(&st, |wb| auth.user_revoke_role(wb, ROOT, ROOT)),
            Err(Error::InvalidManagement)
        );
    }

    #[test]
    fn permissions_are_checked_and_survive_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (st, auth) = open(dir.path());
        apply(&st, |wb| auth.user_add(wb, ROOT, Vec::new(), true)).expect("root");
        apply(&st, |wb| auth.user_grant_role(wb, ROOT, ROOT)).expect("grant");
        apply(&st, |wb| auth.user_add(wb, "alice", Vec::new(), true)).expect("alice");
        apply(&st, |wb| auth.role_add(wb, "r")).expect("role");
        let perm = Permission {
            perm_type: Type::Read as i32,
            key: b"foo".to_vec(),
            range_end: Vec::new(),
        };
        apply(&st, |wb| auth.role_grant_permission(wb, "r", Some(perm))).expect("perm");
        apply(&st, |wb| auth.user_grant_role(wb, "alice", "r")).expect("grant r");
        // Disabled: anything goes.
        let nobody = AuthInfo::default();
        assert_eq!(auth.check(&nobody, Access::Write, b"x", b""), Ok(()));
        apply(&st, |wb| auth.enable(wb)).expect("enable");
        assert_eq!(
            auth.check(&nobody, Access::Read, b"foo", b""),
            Err(Error::UserEmpty)
        );
        let alice = info("alice", &auth);
        assert_eq!(auth.check(&alice, Access::Read, b"foo", b""), Ok(()));
        assert_eq!(
            auth.check(&alice, Access::Write, b"foo", b""),
            Err(Error::PermissionDenied)
        );
        assert_eq!(auth.check_admin(&alice), Err(Error::PermissionDenied));
        assert_eq!(auth.check_admin(&info(ROOT, &auth)), Ok(()));
        // Deleting the role takes it from alice, and makes her old check stale.
        apply(&st, |wb| auth.role_delete(wb, "r")).expect("delete role");
        assert_eq!(
            auth.check(&alice, Access::Read, b"foo", b""),
            Err(Error::OldRevision)
        );
        let (_, again) = (
            drop(auth),
            AuthStore::open(st.clone(), AuthConfig::default()).expect("reopen"),
        );
        assert!(again.is_enabled());
        assert_eq!(
            again.user("alice").expect("alice").roles,
            Vec::<String>::new()
        );
        assert_eq!(again.role("r"), Err(Error::RoleNotFound));
        assert_eq!(again.user_names(), ["alice", "root"]);
    }
}
