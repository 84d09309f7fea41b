//! An in-memory [`Kv`] for the decorators' unit tests: a revisioned map with etcd's
//! range, txn and prev-kv semantics (no history, no leases), plus scripted answers
//! (errors, stale headers) and a delay, and a record of every op it received.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::Result;
use crate::kv::Kv;
use crate::op::{Compare, CompareOp, CompareTarget, Op, OpResponse, TxnResponse};
use crate::options::KeyRange;
use crate::response::{
    CompactResponse, DeleteResponse, GetResponse, KeyValue, PutResponse, ResponseHeader,
};

#[derive(Default)]
struct State {
    revision: i64,
    kvs: BTreeMap<Vec<u8>, KeyValue>,
}

/// The fake store.
#[derive(Default)]
pub(crate) struct FakeKv {
    state: Mutex<State>,
    script: Mutex<VecDeque<Result<OpResponse>>>,
    ops: Mutex<Vec<Op>>,
    delay: Mutex<Option<Duration>>,
}

impl FakeKv {
    /// The next call answers `r` instead of touching the store.
    pub(crate) fn script(&self, r: Result<OpResponse>) {
        lock(&self.script).push_back(r);
    }
    /// Every call sleeps `d` first.
    pub(crate) fn set_delay(&self, d: Duration) {
        *lock(&self.delay) = Some(d);
    }
    /// Every op received, in order.
    pub(crate) fn ops(&self) -> Vec<Op> {
        lock(&self.ops).clone()
    }

    fn apply(&self, op: Op) -> OpResponse {
        let mut s = lock(&self.state);
        let write = !op.is_read_only();
        if write {
            s.revision += 1;
        }
        let rev = s.revision.max(1);
        apply(&mut s, op, rev)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        cluster_id: 1,
        member_id: 1,
        revision,
        raft_term: 1,
    }
}

fn in_range(k: &[u8], key: &[u8], range: &KeyRange) -> bool {
    let end = range.range_end(key);
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end.as_slice()
    }
}

fn keys(s: &State, key: &[u8], range: &KeyRange) -> Vec<Vec<u8>> {
    s.kvs
        .keys()
        .filter(|k| in_range(k, key, range))
        .cloned()
        .collect()
}

fn holds(s: &State, c: &Compare) -> bool {
    let ks = keys(s, &c.key, &c.range);
    let absent = KeyValue::default();
    let kvs: Vec<&KeyValue> = if ks.is_empty() {
        vec![&absent]
    } else {
        ks.iter().filter_map(|k| s.kvs.get(k)).collect()
    };
    kvs.into_iter().all(|kv| {
        let ord = match &c.target {
            CompareTarget::Version(v) => kv.version.cmp(v),
            CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
            CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
            CompareTarget::Value(v) => kv.value.cmp(v),
            CompareTarget::Lease(v) => kv.lease.cmp(v),
        };
        match c.op {
            CompareOp::Equal => ord.is_eq(),
            CompareOp::Greater => ord.is_gt(),
            CompareOp::Less => ord.is_lt(),
            CompareOp::NotEqual => ord.is_ne(),
        }
    })
}

fn apply(s: &mut State, op: Op, rev: i64) -> OpResponse {
    match op {
        Op::Get { key, options } => {
            let kvs: Vec<KeyValue> = keys(s, &key, &options.range)
                .iter()
                .filter_map(|k| s.kvs.get(k).cloned())
                .collect();
            OpResponse::Get(GetResponse {
                header: header(rev),
                count: kvs.len() as i64,
                kvs,
                more: false,
            })
        }
        Op::Put {
            key,
            value,
            options,
        } => {
            let prev = s.kvs.get(&key).cloned();
            let kv = KeyValue {
                key: key.clone(),
                create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                mod_revision: rev,
                version: prev.as_ref().map_or(1, |p| p.version + 1),
                value,
                lease: options.lease,
            };
            s.kvs.insert(key, kv);
            OpResponse::Put(PutResponse {
                header: header(rev),
                prev_kv: prev.filter(|_| options.prev_kv),
            })
        }
        Op::Delete { key, options } => {
            let ks = keys(s, &key, &options.range);
            let prev: Vec<KeyValue> = ks.iter().filter_map(|k| s.kvs.remove(k)).collect();
            OpResponse::Delete(DeleteResponse {
                header: header(rev),
                deleted: prev.len() as i64,
                prev_kvs: if options.prev_kv { prev } else { Vec::new() },
            })
        }
        Op::Txn(t) => {
            let succeeded = t.compare.iter().all(|c| holds(s, c));
            let branch = if succeeded { t.success } else { t.failure };
            let responses = branch.into_iter().map(|o| apply(s, o, rev)).collect();
            OpResponse::Txn(TxnResponse {
                header: header(rev),
                succeeded,
                responses,
            })
        }
        Op::Compact { .. } => OpResponse::Compact(CompactResponse {
            header: header(rev),
        }),
    }
}

impl Kv for FakeKv {
    async fn execute(&self, op: Op) -> Result<OpResponse> {
        lock(&self.ops).push(op.clone());
        let delay = *lock(&self.delay);
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let scripted = lock(&self.script).pop_front();
        match scripted {
            Some(r) => r,
            None => Ok(self.apply(op)),
        }
    }
}
