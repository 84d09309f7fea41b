//! The one mapping from revkv errors to gRPC statuses, with etcd's codes and strings
//! (etcd's `api/v3rpc/rpctypes/error.go`), so stock clients recognise them.

use tonic::{Code, Status};

use super::validate::RequestError;
use crate::{apply, auth, cluster, lease, mvcc, raft, watch, Error};

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let e = match e {
            Error::Recipe(super::recipes::RecipeError::Relayed(inner)) => {
                return Status::new(Code::Unknown, Status::from(*inner).message().to_string())
            }
            e => e,
        };
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
                apply::Error::Corrupt => (Code::DataLoss, "etcdserver: corrupt cluster"),
                apply::Error::NoSpace => (
                    Code::ResourceExhausted,
                    "etcdserver: mvcc: database space exceeded",
                ),
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
            Error::Cluster(c) => match c {
                cluster::Error::IdExists => (
                    Code::FailedPrecondition,
                    "etcdserver: member ID already exist",
                ),
                cluster::Error::PeerUrlExists => (
                    Code::FailedPrecondition,
                    "etcdserver: Peer URLs already exists",
                ),
                cluster::Error::IdNotFound | cluster::Error::IdRemoved => {
                    (Code::NotFound, "etcdserver: member not found")
                }
                cluster::Error::NotLearner => (
                    Code::FailedPrecondition,
                    "etcdserver: can only promote a learner member",
                ),
                cluster::Error::TooManyLearners => (
                    Code::FailedPrecondition,
                    "etcdserver: too many learner members in cluster",
                ),
                // etcd 3.4 maps this one to a client-side error value rather than a
                // status, so its clients see it with code Unknown; so do ours.
                cluster::Error::NotEnoughStarted | cluster::Error::LastVoter => (
                    Code::Unknown,
                    "etcdserver: re-configuration failed due to not enough started members",
                ),
                cluster::Error::LearnerNotReady => (
                    Code::FailedPrecondition,
                    "etcdserver: can only promote a learner member which is in sync with leader",
                ),
                cluster::Error::BadUrls => (
                    Code::InvalidArgument,
                    "etcdserver: given member URLs are invalid",
                ),
                cluster::Error::Unhealthy => (Code::Unavailable, "etcdserver: unhealthy cluster"),
                cluster::Error::NotLeader => (Code::FailedPrecondition, "etcdserver: not leader"),
                cluster::Error::BadLeaderTransferee => (
                    Code::FailedPrecondition,
                    "etcdserver: bad leader transferee",
                ),
                // Not in etcd's error map: its clients see code Unknown.
                cluster::Error::LeaderTransferTimeout => (
                    Code::Unknown,
                    "etcdserver: request timed out, leader transfer took too long",
                ),
                cluster::Error::NotSupportedForLearner => (
                    Code::Unavailable,
                    "etcdserver: rpc not supported for learner",
                ),
                cluster::Error::Removed => (Code::Unavailable, "etcdserver: server stopped"),
                cluster::Error::Forwarded(status) => return status.clone(),
                _ => return internal(&e),
            },
            Error::Auth(
                auth::Error::Corrupt(_)
                | auth::Error::Hash(_)
                | auth::Error::Token(_)
                | auth::Error::Options(_),
            ) => return internal(&e),
            Error::Auth(a) => auth_status(a),
            Error::UnmappedAuth(_) => return Status::new(Code::Unknown, e.to_string()),
            // etcd's lock and election servers return these as plain Go errors.
            Error::Recipe(r) => return Status::new(Code::Unknown, r.to_string()),
            Error::Storage(_) | Error::Backup(_) => return internal(&e),
            Error::Unsupported(_) => (Code::Unimplemented, "etcdserver: unsupported request"),
            Error::Forwarded(s) => return s.clone(),
        };
        Status::new(code, msg)
    }
}

/// etcd's status for an auth error (`rpctypes/error.go`).
fn auth_status(e: &auth::Error) -> (Code, &'static str) {
    use auth::Error as A;
    match e {
        A::NotEnabled => (
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled",
        ),
        A::AuthFailed => (
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
        ),
        A::InvalidToken => (Code::Unauthenticated, "etcdserver: invalid auth token"),
        A::OldRevision => (
            Code::InvalidArgument,
            "etcdserver: revision of auth store is old",
        ),
        A::PermissionDenied => (Code::PermissionDenied, "etcdserver: permission denied"),
        A::UserEmpty => (Code::InvalidArgument, "etcdserver: user name is empty"),
        A::UserAlreadyExists => (
            Code::FailedPrecondition,
            "etcdserver: user name already exists",
        ),
        A::UserNotFound => (Code::FailedPrecondition, "etcdserver: user name not found"),
        A::RoleEmpty => (Code::InvalidArgument, "etcdserver: role name is empty"),
        A::RoleAlreadyExists => (
            Code::FailedPrecondition,
            "etcdserver: role name already exists",
        ),
        A::RoleNotFound => (Code::FailedPrecondition, "etcdserver: role name not found"),
        A::RoleNotGranted => (
            Code::FailedPrecondition,
            "etcdserver: role is not granted to the user",
        ),
        A::PermissionNotGranted => (
            Code::FailedPrecondition,
            "etcdserver: permission is not granted to the role",
        ),
        A::PermissionNotGiven => (Code::InvalidArgument, "etcdserver: permission not given"),
        A::RootUserMissing => (
            Code::FailedPrecondition,
            "etcdserver: root user does not exist",
        ),
        A::RootRoleMissing => (
            Code::FailedPrecondition,
            "etcdserver: root user does not have root role",
        ),
        A::InvalidManagement => (Code::InvalidArgument, "etcdserver: invalid auth management"),
        // Damage and failures of the member itself, not the request's fault.
        A::Corrupt(_) | A::Hash(_) | A::Token(_) | A::Options(_) => {
            (Code::Internal, "etcdserver: auth store failure")
        }
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

    #[test]
    fn membership_errors_are_etcds() {
        let check = |e: cluster::Error, code: Code, msg: &str| {
            let s: Status = Error::from(e).into();
            assert_eq!((s.code(), s.message()), (code, msg));
        };
        check(
            cluster::Error::IdExists,
            Code::FailedPrecondition,
            "etcdserver: member ID already exist",
        );
        check(
            cluster::Error::PeerUrlExists,
            Code::FailedPrecondition,
            "etcdserver: Peer URLs already exists",
        );
        check(
            cluster::Error::IdRemoved,
            Code::NotFound,
            "etcdserver: member not found",
        );
        check(
            cluster::Error::LearnerNotReady,
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member which is in sync with leader",
        );
        check(
            cluster::Error::NotSupportedForLearner,
            Code::Unavailable,
            "etcdserver: rpc not supported for learner",
        );
        let relayed = Status::failed_precondition("from the leader");
        let s: Status = Error::from(cluster::Error::Forwarded(relayed)).into();
        assert_eq!(s.message(), "from the leader");
    }
}
