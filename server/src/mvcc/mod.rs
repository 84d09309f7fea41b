//! The revisioned keyspace: etcd's MVCC semantics over RocksDB.
//!
//! # Model
//!
//! The store has a *current revision*, starting at 1 for an empty store. Every modifying
//! request advances it by exactly one **main revision**; the individual changes inside
//! that request are numbered by **sub revision** 0, 1, 2, … A put that follows a put of
//! the same key in the same txn is impossible (the API rejects duplicate keys), so each
//! key changes at most once per main revision.
//!
//! Each key has a history of versions. Take key `foo`:
//!
//! ```text
//!   put foo=a      rev 2   -> {create_revision: 2, mod_revision: 2, version: 1}
//!   put foo=b      rev 3   -> {create_revision: 2, mod_revision: 3, version: 2}
//!   delete foo     rev 4   -> tombstone at 4 (the key's generation ends)
//!   put foo=c      rev 5   -> {create_revision: 5, mod_revision: 5, version: 1}
//! ```
//!
//! * `create_revision` is the revision of the first put of the key's current
//!   *generation*; a delete ends the generation and the next put starts a new one, so
//!   `version` restarts at 1 and `create_revision` becomes the new put's revision.
//! * `mod_revision` is the revision of the change that wrote this version.
//! * `version` counts the puts in the current generation.
//! * `lease` is the lease the key was attached to when this version was written.
//!
//! Reading `foo` at revision R returns the newest version with `mod_revision <= R`,
//! or nothing when that version is a tombstone (or there is none): at 3 it is `b`, at 4
//! nothing, at 5 `c`. Reads at R > current fail with [`Error::FutureRev`].
//!
//! # Compaction
//!
//! Compacting at C forgets history before C: for every key, versions older than its
//! newest version at or below C are removed, and that newest version goes too if it is a
//! tombstone. Reads at R < C then fail with [`Error::Compacted`]; reads at R >= C are
//! unaffected. The compaction revision is recorded first (so such reads fail at once),
//! and the old versions are removed afterwards in bounded background batches.
//!
//! # Storage
//!
//! Nothing here grows with the number of keys in memory: both orderings live in RocksDB
//! (see [`crate::storage::keys`]), and opening the store reads three meta values.

pub mod compact;
pub mod hash;
pub mod history;
pub mod record;
pub mod scan;
pub mod store;
pub mod write;

pub use hash::KvHash;
pub use store::{KvStore, RangeOptions, RangeResult};
pub use write::{ApplyBatch, WriteTxn};

/// Errors of the MVCC layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("corrupt mvcc data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(e.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests;
