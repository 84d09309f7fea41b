//! Authentication and authorization (etcd's `auth` package): users, roles, key
//! permissions, and simple tokens.
//!
//! - [`store::AuthStore`] holds the users, the roles, the enabled flag and the auth
//!   revision. It changes only by applying raft entries, writing each change into the
//!   entry's batch (the `auth` column family), so every member holds the same store
//!   and a snapshot carries it.
//! - Every change to it (users, roles, permissions, enable/disable) raises the auth
//!   revision. A client request carries the revision its token was checked at; apply
//!   refuses it ("revision of auth store is old") when permissions changed in between.
//! - While auth is disabled nothing is checked: no token is needed, and one sent is
//!   ignored. While it is enabled, every KV, Watch and lease-revoke request needs a
//!   token whose user's roles permit the keys it touches, and management calls need a
//!   user with the `root` role.
//! - Passwords are bcrypt hashes, made by the proposing member before the request
//!   enters the log (the plain text is never logged, and apply stays cheap).

pub mod check;
pub mod jwt;
pub mod perms;
pub mod store;
pub mod tokens;

pub use perms::Access;
pub use store::AuthStore;

/// The role that may do anything, and the user that must hold it for auth to be
/// enabled.
pub const ROOT: &str = "root";

/// The auth-related flags, with etcd's names and defaults.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `--auth-token`: simple tokens or JWTs.
    pub token: jwt::TokenConfig,
    /// `--auth-token-ttl`: how long a simple token lives after its last use.
    pub token_ttl: std::time::Duration,
    /// `--bcrypt-cost`: the cost of password hashes.
    pub bcrypt_cost: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token: jwt::TokenConfig::Simple,
            token_ttl: std::time::Duration::from_secs(300),
            bcrypt_cost: bcrypt::DEFAULT_COST,
        }
    }
}

/// Who sent a request, as its token said: etcd's `AuthInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// Empty for a request without a token.
    pub username: String,
    /// The auth revision the token was checked at (0 without a token).
    pub revision: u64,
}

/// Who sent a request, or why the token it sent was refused. A KV request is validated
/// before its token counts, as in etcd, so a bad token shows only on a valid request.
pub type Caller = Result<AuthInfo, Error>;

/// Errors of authentication and authorization, each one of etcd's.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("authentication is not enabled")]
    NotEnabled,
    #[error("authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("invalid auth token")]
    InvalidToken,
    #[error("revision of auth store is old")]
    OldRevision,
    #[error("permission denied")]
    PermissionDenied,
    #[error("user name is empty")]
    UserEmpty,
    #[error("user name already exists")]
    UserAlreadyExists,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name is empty")]
    RoleEmpty,
    #[error("role name already exists")]
    RoleAlreadyExists,
    #[error("role name not found")]
    RoleNotFound,
    #[error("role is not granted to the user")]
    RoleNotGranted,
    #[error("permission is not granted to the role")]
    PermissionNotGranted,
    #[error("permission not given")]
    PermissionNotGiven,
    #[error("root user does not exist")]
    RootUserMissing,
    #[error("root user does not have root role")]
    RootRoleMissing,
    #[error("invalid auth management")]
    InvalidManagement,
    /// A stored record that does not decode: the store is damaged.
    #[error("corrupt auth record {0}")]
    Corrupt(String),
    #[error("hashing the password: {0}")]
    Hash(String),
    /// `--auth-token` names keys this member cannot use.
    #[error("invalid auth options: {0}")]
    Options(String),
    /// A JWT this member cannot make (no private key, a signing failure).
    #[error("making a token: {0}")]
    Token(String),
}

/// A bcrypt hash of `password` at `cost`.
pub fn hash_password(password: &str, cost: u32) -> Result<String, Error> {
    bcrypt::hash(password, cost).map_err(|e| Error::Hash(e.to_string()))
}

/// True when `password` matches `hash` (an empty hash matches nothing).
pub fn password_matches(password: &str, hash: &[u8]) -> bool {
    std::str::from_utf8(hash)
        .ok()
        .filter(|h| !h.is_empty())
        .is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("secret", 4).expect("hash");
        assert!(password_matches("secret", h.as_bytes()));
        assert!(!password_matches("Secret", h.as_bytes()));
        assert!(!password_matches("", b""));
    }
}
