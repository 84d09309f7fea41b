//! The one error type of the client.
//!
//! A server error keeps its gRPC code and etcd's message unchanged (for example
//! `InvalidArgument` / `etcdserver: requested lease not found`), so callers can match
//! on [`Error::code`] and compare [`Error::message`] with etcd's strings.

use std::time::Duration;

/// Result of every client call.
///
/// ```
/// fn parse(s: &str) -> revkv_client::Result<i64> {
///     s.parse().map_err(|_| revkv_client::Error::InvalidArgument(format!("bad number {s:?}")))
/// }
/// assert!(parse("x").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a client call can fail with.
///
/// ```
/// use revkv_client::Error;
/// let err = Error::from(tonic::Status::out_of_range("etcdserver: mvcc: required revision has been compacted"));
/// assert_eq!(err.code(), tonic::Code::OutOfRange);
/// assert!(!err.never_sent());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server (or the gRPC layer) answered with a status; `message` is etcd's
    /// string, e.g. `etcdserver: mvcc: required revision has been compacted`.
    #[error("{message}")]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message as the server sent it.
        message: String,
    },
    /// No endpoint could be reached within the dial timeout.
    #[error("failed to connect to any of {endpoints}: {reason}")]
    Connect {
        /// The endpoints tried, comma separated.
        endpoints: String,
        /// Why the last one failed.
        reason: String,
    },
    /// The call did not finish within its deadline (the `Timeout` decorator or
    /// `ConnectOptions::request_timeout`); etcd's Go client says the same.
    #[error("context deadline exceeded")]
    Timeout(Duration),
    /// The `Ordering` decorator saw a response older than one it had already seen.
    #[error("revision {got} is older than revision {seen} already seen")]
    StaleRevision {
        /// Highest revision seen before this response.
        seen: i64,
        /// Revision of the rejected response.
        got: i64,
    },
    /// The request could not be built (for example a compaction inside a txn).
    #[error("{0}")]
    InvalidArgument(String),
    /// The server answered with a response of the wrong kind for the request.
    #[error("unexpected response: {0}")]
    UnexpectedResponse(&'static str),
    /// No connection to `endpoint` could be made, so the request provably never left
    /// the client: resending it elsewhere is safe even for a write (see
    /// [`Error::never_sent`]).
    #[error("{endpoint}: {reason}")]
    Unreachable {
        /// The endpoint the connection was attempted to.
        endpoint: String,
        /// Why connecting failed (e.g. `tcp connect error: Connection refused`).
        reason: String,
    },
    /// A kept-alive lease ran out or was revoked (the keep-alive answered TTL <= 0).
    #[error("lease {0:016x} expired or revoked")]
    LeaseExpired(i64),
    /// A background stream (watch, keep-alive, snapshot) ended or the client was dropped.
    #[error("{0}")]
    Closed(&'static str),
}

impl Error {
    /// The gRPC code of this error, as the server sent it or as it maps locally.
    ///
    /// ```
    /// use revkv_client::Error;
    ///
    /// let err = Error::from(tonic::Status::not_found("etcdserver: requested lease not found"));
    /// assert_eq!(err.code(), tonic::Code::NotFound);
    /// ```
    pub fn code(&self) -> tonic::Code {
        match self {
            Error::Rpc { code, .. } => *code,
            Error::Connect { .. } => tonic::Code::Unavailable,
            Error::Timeout(_) => tonic::Code::DeadlineExceeded,
            Error::StaleRevision { .. } | Error::UnexpectedResponse(_) => tonic::Code::Internal,
            Error::InvalidArgument(_) => tonic::Code::InvalidArgument,
            Error::Unreachable { .. } => tonic::Code::Unavailable,
            Error::LeaseExpired(_) => tonic::Code::NotFound,
            Error::Closed(_) => tonic::Code::Cancelled,
        }
    }

    /// Whether the request provably never reached a server (no connection could be
    /// made), so that resending it is safe even when it is a write.
    ///
    /// ```
    /// use revkv_client::Error;
    ///
    /// let refused = Error::Unreachable { endpoint: "127.0.0.1:1".into(), reason: "refused".into() };
    /// assert!(refused.never_sent());
    /// assert!(!Error::from(tonic::Status::unavailable("etcdserver: no leader")).never_sent());
    /// ```
    pub fn never_sent(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::Unreachable { .. })
    }

    /// The message: etcd's string for server errors.
    ///
    /// ```
    /// use revkv_client::Error;
    ///
    /// let err = Error::from(tonic::Status::not_found("etcdserver: requested lease not found"));
    /// assert_eq!(err.message(), "etcdserver: requested lease not found");
    /// ```
    pub fn message(&self) -> String {
        match self {
            Error::Rpc { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl Error {
    /// The error for a failed call to `endpoint`: [`Error::Unreachable`] when the
    /// connection itself failed (tonic reports a `ConnectError` in the source chain, so
    /// nothing was written to the wire), else the status as the server sent it.
    pub(crate) fn from_call(endpoint: &str, status: tonic::Status) -> Self {
        let mut source = std::error::Error::source(&status);
        while let Some(err) = source {
            if err.is::<tonic::ConnectError>() {
                return Error::Unreachable {
                    endpoint: endpoint.to_owned(),
                    reason: status.message().to_owned(),
                };
            }
            source = err.source();
        }
        Error::from(status)
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Rpc {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_code_and_etcd_message() {
        let err = Error::from(tonic::Status::out_of_range(
            "etcdserver: mvcc: required revision has been compacted",
        ));
        assert_eq!(err.code(), tonic::Code::OutOfRange);
        assert_eq!(
            err.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(err.to_string(), err.message());
    }

    #[test]
    fn local_errors_map_to_codes() {
        assert_eq!(
            Error::Timeout(Duration::from_secs(1)).code(),
            tonic::Code::DeadlineExceeded
        );
        assert_eq!(
            Error::StaleRevision { seen: 5, got: 3 }.code(),
            tonic::Code::Internal
        );
    }
}
