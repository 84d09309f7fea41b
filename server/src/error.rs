//! The server-wide error: every module's error, wrapped once.
//!
//! The single mapping to a gRPC status (etcd's codes and strings) is in
//! [`crate::api::status`].

use crate::{api, apply, auth, backup, cluster, lease, mvcc, raft, storage};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Apply(#[from] apply::Error),
    #[error(transparent)]
    Raft(#[from] raft::Error),
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error(transparent)]
    Backup(#[from] backup::Error),
    #[error(transparent)]
    Request(#[from] api::validate::RequestError),
    #[error(transparent)]
    Lease(#[from] lease::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// An auth refusal passed on unmapped, as etcd 3.4's maintenance server does
    /// (its clients see code Unknown and the auth package's own words).
    #[error("auth: {0}")]
    UnmappedAuth(auth::Error),
    #[error(transparent)]
    Recipe(#[from] api::recipes::RecipeError),
    #[error("unsupported request: {0}")]
    Unsupported(String),
    /// The leader's answer to a request this member forwarded, passed on unchanged.
    #[error("{}", .0.message())]
    Forwarded(tonic::Status),
}

impl From<mvcc::Error> for Error {
    fn from(e: mvcc::Error) -> Self {
        Error::Apply(apply::Error::Mvcc(e))
    }
}
