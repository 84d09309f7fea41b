//! revkv: an etcd-compatible, revisioned key-value store on RocksDB, replicated with Raft.
//!
//! The crate is organised as DESIGN §1 lays out: `storage` owns RocksDB, `mvcc` the
//! revisioned keyspace, `raft` the consensus node, `apply` the state machine, `api` the
//! gRPC services and `http` the plain HTTP endpoints on the client port; `cluster`
//! decides which cluster a member belongs to and `transport` carries raft messages
//! between members. `server` wires one member together and `run` serves it until a
//! signal.

pub mod alarm;
pub mod api;
pub mod apply;
pub mod auth;
pub mod backup;
pub mod cluster;
pub mod config;
pub mod doorbell;
mod error;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod mvcc;
pub mod raft;
pub mod run;
pub mod server;
pub mod storage;
pub mod tls;
pub mod transport;
pub mod wait;
pub mod watch;

pub use config::Config;
pub use error::Error;
pub use run::{run, RunError};
