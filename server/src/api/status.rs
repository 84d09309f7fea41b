//! The one mapping from revkv errors to gRPC statuses, with etcd's codes and strings
//! (etcd's `api/v3rpc/rpctypes/error.go`), so stock clients recognise them.

use tonic::{Code, Status};

use super::validate::RequestError;
use crate::{apply, lease, mvcc, raft, watch, Error};

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let (code, msg): (Code, &str) = match &e {
            Error::Request(r) => match r {
                RequestError::EmptyKey => {
                    (Code::InvalidArgument, "etcdserver: key is not provided")
                }
                RequestError::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
                RequestError::ValueProvided => {
                    (Code::InvalidArgument, "etcdserver: value is provided")
                }
                RequestError::LeaseProvided => {
                    (Code::InvalidArgument, "etcdserver: lease is provided")
                }
                RequestError::TooManyOps => (
                    Code::InvalidArgument,
                    "etcdserver: too many operations in txn request",
                ),
                RequestError::DuplicateKey => (
                    Code::InvalidArgument,
                    "etcdserver: duplicate key given in txn request",
                ),
                RequestError::InvalidSortOption => {
                    (Code::InvalidArgument, "etcdserver: invalid sort option")
                }
                RequestError::TooLarge => {
                    (Code::InvalidArgument, "etcdserver: request is too large")
                }
                RequestError::NoSpace => (
                    Code::ResourceExhausted,
                    "etcdserver: mvcc: database space exceeded",
                ),
            },
            Error::Apply(a) => match a {
                apply::Error::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
                apply::Error::LeaseNotFound => {
                    (Code::NotFound, "etcdserver: requested lease not found")
                }
                apply::Error::Mvcc(mvcc::Error::Compacted) => (
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision has been compacted",
                ),
                apply::Error::Mvcc(mvcc::Error::FutureRev) => (
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision is a future revision",
                ),
                apply::Error::Mvcc(_) => return internal(&e),
            },
            Error::Raft(r) => match r {
                raft::Error::NoLeader => (Code::Unavailable, "etcdserver: no leader"),
                raft::Error::Timeout => (Code::Unavailable, "etcdserver: request timed out"),
                raft::Error::Stopped => (Code::Unavailable, "etcdserver: server stopped"),
                raft::Error::LeaderChanged => (Code::Unavailable, "etcdserver: leader changed"),
                raft::Error::TooManyRequests => {
                    (Code::ResourceExhausted, "etcdserver: too many requests")
                }
                raft::Error::SnapshotUnsupported
                | raft::Error::SnapshotInstall(_)
                | raft::Error::Raft(_) => return internal(&e),
            },
            Error::Lease(l) => match l {
                lease::Error::NotFound => (Code::NotFound, "etcdserver: requested lease not found"),
                lease::Error::Exists => {
                    (Code::FailedPrecondition, "etcdserver: lease already exists")
                }
                lease::Error::TtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL"),
                lease::Error::NotLeader => (Code::FailedPrecondition, "etcdserver: not leader"),
                lease::Error::Storage(_) | lease::Error::Corrupt(_) => return internal(&e),
            },
            Error::Storage(_) => return internal(&e),
            Error::Unsupported(_) => (Code::Unimplemented, "etcdserver: unsupported request"),
            Error::Forwarded(s) => return s.clone(),
        };
        Status::new(code, msg)
    }
}

/// The `cancel_reason` etcd sends when it refuses to create a watcher (a watch
/// response, not a status: the stream stays open). etcd's strings from
/// `mvcc/watcher.go` and `rpctypes/error.go`.
pub fn watch_cancel_reason(e: &watch::Error) -> &'static str {
    match e {
        watch::Error::DuplicateId => "mvcc: duplicate watch ID provided on the WatchStream",
        watch::Error::EmptyRange => "mvcc: watcher range is empty",
        watch::Error::NotExist => "mvcc: watcher does not exist",
        watch::Error::Compacted => "etcdserver: mvcc: required revision has been compacted",
    }
}

/// Failures of the server itself: logged in full, reported to the client briefly.
fn internal(e: &Error) -> Status {
    tracing::error!(error = %e, "internal error");
    Status::internal(format!("etcdserver: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_codes_and_strings() {
        let s: Status = Error::from(mvcc::Error::Compacted).into();
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s: Status = Error::from(RequestError::DuplicateKey).into();
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request"
            )
        );
        let s: Status = Error::from(raft::Error::NoLeader).into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        let s: Status = Error::from(lease::Error::Exists).into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::FailedPrecondition, "etcdserver: lease already exists")
        );
        let s: Status = Error::from(lease::Error::TtlTooLarge).into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::OutOfRange, "etcdserver: too large lease TTL")
        );
        let s: Status = Error::from(lease::Error::NotFound).into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "etcdserver: requested lease not found")
        );
        let s: Status = Error::from(apply::Error::LeaseNotFound).into();
        assert_eq!(s.code(), Code::NotFound);
    }
}
