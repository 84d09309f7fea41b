//! etcd's concurrency recipes (its `clientv3/concurrency` package) run inside the
//! server, for the Lock and Election services: etcd serves those through a client of
//! itself, and so do we, through the KV, Lease and Watch handlers in-process.
//!
//! The recipes share one shape. A participant writes its own key under a prefix,
//! `prefix/<lease in hex>`, attached to its lease, in a txn that only creates the key
//! if it does not exist (so the same lease twice is one participant). Participants
//! are ordered by their keys' create revisions: the oldest key holds the lock or
//! leads the election. A later one waits until every key under the prefix created
//! before its own is deleted ([`Local::wait_deletes`]), watching the newest of them
//! at a time. A lease that expires or is revoked deletes its key and so passes the
//! turn on.

use std::sync::Arc;

use revkv_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use revkv_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use revkv_proto::etcdserverpb::request_op::Request as Op;
use revkv_proto::etcdserverpb::response_op::Response as OpResponse;
use revkv_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use revkv_proto::mvccpb::event::EventType;
use revkv_proto::mvccpb::KeyValue;
use revkv_proto::prefix_end;

use super::kv::KvService;
use super::lease::LeaseService;
use crate::auth::{AuthInfo, Caller};
use crate::server::Server;
use crate::{mvcc, watch, Error};

/// etcd's `concurrency` session TTL, for a Lock or Campaign that names no lease.
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// What the Lock and Election services fail with, in etcd's words. Its clients see
/// every one with code Unknown: etcd's servers return plain Go errors, their own and
/// those of the client through which they call etcd (which turns each error status
/// into its message).
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// An error of the KV, Lease or Watch call a recipe made, passed on as etcd's
    /// client passes it on: its status's message, code Unknown.
    #[error("{0}")]
    Relayed(Box<Error>),
    #[error("election: no leader")]
    NoLeader,
    #[error("election: not leader")]
    NotLeader,
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    #[error("lost watcher waiting for delete")]
    LostWatcher,
}

/// Runs a Lock or Election handler, passing the errors of its calls on as etcd's
/// in-process client does ([`RecipeError::Relayed`]).
pub async fn relayed<T>(
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    fut.await.map_err(|e| match e {
        Error::Recipe(_) => e,
        other => RecipeError::Relayed(Box::new(other)).into(),
    })
}

/// An in-process client of this member.
#[derive(Clone)]
pub struct Local {
    server: Arc<Server>,
    kv: KvService,
    leases: LeaseService,
    /// Whose calls these are: the Lock or Election caller's, checked as theirs.
    user: Caller,
}

impl Local {
    pub fn new(server: Arc<Server>) -> Local {
        Local {
            kv: KvService::new(server.clone()),
            leases: LeaseService::new(server.clone()),
            server,
            user: Ok(AuthInfo::default()),
        }
    }

    /// This client acting for the caller whose token is `token` (etcd's lock and
    /// election servers pass the caller's context, token included, to their client).
    pub fn for_caller(&self, token: Option<&[u8]>) -> Result<Local, Error> {
        Ok(Local {
            user: Ok(self.server.auth_info(token)?),
            ..self.clone()
        })
    }

    /// etcd's `concurrency.NewSession` with the caller's lease, orphaned (nobody keeps
    /// it alive): 0 grants a lease of [`DEFAULT_SESSION_TTL`].
    pub async fn session(&self, lease: i64) -> Result<i64, Error> {
        if lease != 0 {
            return Ok(lease);
        }
        let granted = self
            .leases
            .grant(LeaseGrantRequest {
                ttl: DEFAULT_SESSION_TTL,
                id: 0,
            })
            .await?;
        Ok(granted.id)
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Error> {
        self.kv.txn(&self.user, req).await
    }

    /// Deletes `key`; returns the response header.
    pub async fn delete(&self, key: Vec<u8>) -> Result<ResponseHeader, Error> {
        let resp = self
            .kv
            .delete_range(
                &self.user,
                DeleteRangeRequest {
                    key,
                    ..Default::default()
                },
            )
            .await?;
        Ok(resp.header.unwrap_or_default())
    }

    /// The oldest key under `prefix` (etcd's `WithFirstCreate`), linearizably.
    pub async fn first_created(&self, prefix: &[u8]) -> Result<RangeResponse, Error> {
        self.kv.range(&self.user, first_created(prefix)).await
    }

    /// Waits until no key under `prefix` created at or before `max_create_rev` is
    /// left; returns the header of the read that found none.
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_rev: i64,
    ) -> Result<ResponseHeader, Error> {
        loop {
            let resp = self
                .kv
                .range(
                    &self.user,
                    RangeRequest {
                        key: prefix.to_vec(),
                        range_end: prefix_end(prefix),
                        sort_order: SortOrder::Descend as i32,
                        sort_target: SortTarget::Create as i32,
                        limit: 1,
                        max_create_revision: max_create_rev,
                        ..Default::default()
                    },
                )
                .await?;
            let header = resp.header.unwrap_or_default();
            let Some(newest) = resp.kvs.into_iter().next() else {
                return Ok(header);
            };
            self.wait_delete(newest.key, header.revision).await?;
        }
    }

    /// Waits for a delete of `key` at or after revision `from`.
    async fn wait_delete(&self, key: Vec<u8>, from: i64) -> Result<(), Error> {
        let mut stream = self.open_watch(watch::WatchRequest {
            key,
            start_revision: from,
            no_put: true,
            ..Default::default()
        })?;
        while let Some(delivery) = stream.recv().await {
            if delivery.compact_revision != 0 {
                return Err(mvcc::Error::Compacted.into());
            }
            if delivery
                .events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32)
            {
                return Ok(());
            }
        }
        Err(RecipeError::LostWatcher.into())
    }

    /// Watches `key` (or, with `prefix`, every key under it) from revision `from`.
    pub fn watch(&self, key: &[u8], prefix: bool, from: i64) -> Result<watch::WatchStream, Error> {
        self.open_watch(watch::WatchRequest {
            key: key.to_vec(),
            range_end: if prefix { prefix_end(key) } else { Vec::new() },
            start_revision: from,
            ..Default::default()
        })
    }

    fn open_watch(&self, req: watch::WatchRequest) -> Result<watch::WatchStream, Error> {
        let stream = self.server.watch.open_stream();
        stream.watch(&req).map_err(|e| match e {
            watch::Error::Compacted => Error::from(mvcc::Error::Compacted),
            _ => RecipeError::LostWatcher.into(),
        })?;
        Ok(stream)
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Deletes a participant's `key` if it is still the one created at `rev` (etcd's
    /// `Election.Resign`); returns the response header.
    pub async fn withdraw(&self, key: Vec<u8>, rev: i64) -> Result<ResponseHeader, Error> {
        let resp = self
            .txn(TxnRequest {
                compare: vec![create_revision_is(&key, rev)],
                success: vec![op(Op::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                }))],
                failure: Vec::new(),
            })
            .await?;
        Ok(resp.header.unwrap_or_default())
    }
}

/// Takes a participant's key back out when dropped armed: a caller that gave up while
/// it waited (its call was dropped) must not leave a key behind that blocks everyone
/// after it until its lease ends.
pub struct Withdraw {
    local: Option<Local>,
    key: Vec<u8>,
    rev: i64,
}

impl Withdraw {
    pub fn new(local: &Local, key: Vec<u8>, rev: i64) -> Withdraw {
        Withdraw {
            local: Some(local.clone()),
            key,
            rev,
        }
    }

    /// The wait ended in a way that keeps the key.
    pub fn disarm(mut self) {
        self.local = None;
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let Some(local) = self.local.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (key, rev) = (std::mem::take(&mut self.key), self.rev);
        runtime.spawn(async move {
            if let Err(e) = local.withdraw(key.clone(), rev).await {
                tracing::warn!(
                    key = %String::from_utf8_lossy(&key),
                    error = %e,
                    "could not withdraw an abandoned lock or campaign key"
                );
            }
        });
    }
}

/// From the answer to [`join`]: the participant's key's create revision, and the
/// oldest participant's.
pub fn joined_at(resp: &TxnResponse) -> (i64, Option<i64>) {
    let rev = resp.header.as_ref().map_or(0, |h| h.revision);
    let mine = if resp.succeeded {
        rev
    } else {
        existing(resp).map_or(rev, |kv| kv.create_revision)
    };
    (mine, first_kv(resp, 1).map(|kv| kv.create_revision))
}

/// From the answer to [`join`] when the key was there already: that key.
pub fn existing(resp: &TxnResponse) -> Option<&KeyValue> {
    if resp.succeeded {
        None
    } else {
        first_kv(resp, 0)
    }
}

fn first_kv(resp: &TxnResponse, i: usize) -> Option<&KeyValue> {
    match resp.responses.get(i)?.response.as_ref()? {
        OpResponse::ResponseRange(r) => r.kvs.first(),
        _ => None,
    }
}

/// `name/`, the prefix of a lock's or an election's keys.
pub fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// A participant's key: the prefix and its lease in lowercase hex (Go's `%x`).
pub fn participant_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(format!("{lease:x}").as_bytes());
    k
}

/// Joins the participants under `prefix` as `key` with `value` unless `key` exists:
/// `then` puts it and reads the oldest key, `else` reads `key` and the oldest.
pub fn join(prefix: &[u8], key: &[u8], value: Vec<u8>, lease: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![create_revision_is(key, 0)],
        success: vec![
            op(Op::RequestPut(PutRequest {
                key: key.to_vec(),
                value,
                lease,
                ..Default::default()
            })),
            op(Op::RequestRange(first_created(prefix))),
        ],
        failure: vec![
            op(Op::RequestRange(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })),
            op(Op::RequestRange(first_created(prefix))),
        ],
    }
}

/// A compare of `key`'s create revision with `rev`.
pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

pub fn op(request: Op) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        limit: 1,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use revkv_proto::etcdserverpb::{RangeResponse, ResponseOp};

    use super::*;

    #[test]
    fn keys_are_the_prefix_and_the_lease_in_lowercase_hex() {
        let prefix = prefix_of(b"door");
        assert_eq!(prefix, b"door/");
        assert_eq!(
            participant_key(&prefix, 0x694d_7e1f_00ab),
            b"door/694d7e1f00ab"
        );
    }

    fn ranged(create_revision: Option<i64>) -> ResponseOp {
        ResponseOp {
            response: Some(OpResponse::ResponseRange(RangeResponse {
                kvs: create_revision
                    .map(|create_revision| KeyValue {
                        create_revision,
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            })),
        }
    }

    fn answer(succeeded: bool, mine: Option<i64>, oldest: Option<i64>) -> TxnResponse {
        TxnResponse {
            header: Some(ResponseHeader {
                revision: 40,
                ..Default::default()
            }),
            succeeded,
            // `then` answers the put (no range) first; `else` the read of the key.
            responses: vec![
                if succeeded {
                    ResponseOp::default()
                } else {
                    ranged(mine)
                },
                ranged(oldest),
            ],
        }
    }

    #[test]
    fn a_new_key_was_created_at_the_txn_revision() {
        assert_eq!(joined_at(&answer(true, None, Some(40))), (40, Some(40)));
        assert_eq!(joined_at(&answer(true, None, Some(12))), (40, Some(12)));
        assert!(existing(&answer(true, None, Some(12))).is_none());
    }

    #[test]
    fn a_key_that_was_there_keeps_its_create_revision() {
        let resp = answer(false, Some(30), Some(12));
        assert_eq!(joined_at(&resp), (30, Some(12)));
        assert_eq!(existing(&resp).map(|kv| kv.create_revision), Some(30));
    }
}
