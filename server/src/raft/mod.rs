//! Consensus: the raft node driver and its persistent log (tikv's `raft` crate).

mod appends;
mod conf_gate;
pub mod entry_log;
mod handle;
pub mod log_store;
pub mod node;
mod reads;
pub mod snapshot;

pub use handle::{RaftHandle, RaftStatus};
pub use log_store::LogStore;
pub use node::{spawn, Command, Mailbox, NodeSinks, PeerInbox, RaftConfig};

/// Errors of the raft layer; the first five are etcd's client-visible ones.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("no leader")]
    NoLeader,
    #[error("request timed out")]
    Timeout,
    #[error("server stopped")]
    Stopped,
    #[error("leader changed")]
    LeaderChanged,
    #[error("too many requests")]
    TooManyRequests,
    #[error("installing a raft snapshot needs the peer transport, which this member lacks")]
    SnapshotUnsupported,
    #[error("installing a raft snapshot failed: {0}")]
    SnapshotInstall(String),
    #[error("raft: {0}")]
    Raft(std::sync::Arc<raft::Error>),
}

impl From<raft::Error> for Error {
    fn from(e: raft::Error) -> Self {
        Error::Raft(std::sync::Arc::new(e))
    }
}

/// Routes the raft crate's slog records into `tracing`.
pub(crate) struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{}", record.msg())
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{}", record.msg()),
            // The crate logs every election step at info; that is debug detail for us.
            slog::Level::Info => tracing::debug!(target: "raft", "{}", record.msg()),
            _ => tracing::trace!(target: "raft", "{}", record.msg()),
        }
        Ok(())
    }
}
