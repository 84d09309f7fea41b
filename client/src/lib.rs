//! Rust client for revkv — and for etcd, since revkv speaks etcd's v3 API.
//!
//! KV calls all go through one funnel, [`Kv::execute`], so behaviour is added by
//! wrapping: a decorator is a small type around another [`Kv`].

mod error;
mod kv;
mod op;
mod options;
mod response;

pub use error::{Error, Result};
pub use kv::Kv;
pub use op::{Compare, CompareOp, CompareTarget, Op, OpResponse, Txn, TxnResponse};
pub use options::{
    prefix_end, DeleteOptions, GetOptions, KeyRange, PutOptions, SortOrder, SortTarget,
};
pub use response::{
    CompactResponse, DeleteResponse, GetResponse, KeyValue, PutResponse, ResponseHeader,
};
/// The wire types, for callers that need a message the plain types do not carry.
pub use revkv_proto as proto;
