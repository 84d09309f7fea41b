//! The state machine: committed raft entries -> the keyspace.
//!
//! The applier consumes committed entries in order, on its own thread or, for a small
//! batch that finds it idle, on the raft thread (see [`handoff`]). Each batch of
//! entries becomes one [`ApplyBatch`] — one RocksDB write that also records the
//! applied index — so replay after a crash starts exactly after the last batch that
//! reached disk and never applies an entry twice. Apply reads no clock and no other
//! local state, so every member computes the same result from the same log.

pub mod auth;
pub mod handoff;
pub mod kv;
pub mod lease;
pub mod member;
pub mod range;
mod restore;
pub mod txn;

use std::sync::Arc;

use prost::Message as _;
use raft::prelude::{Entry, EntryType};
use revkv_proto::etcdserverpb::{
    AlarmResponse, AlarmType, AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse,
    AuthRoleDeleteResponse, AuthRoleGrantPermissionResponse, AuthRoleRevokePermissionResponse,
    AuthUserAddResponse, AuthUserChangePasswordResponse, AuthUserDeleteResponse,
    AuthUserGrantRoleResponse, AuthUserRevokeRoleResponse, AuthenticateResponse, CompactionRequest,
    CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse,
    MemberAddResponse, MemberPromoteResponse, MemberRemoveResponse, MemberUpdateResponse,
    PutResponse, ResponseHeader, TxnResponse,
};
use revkv_proto::revkvpb::{internal_raft_request::Request, InternalRaftRequest};

use crate::alarm::Alarms;
use crate::auth::AuthStore;
use crate::cluster::Change;
use crate::lease::Lessor;
use crate::mvcc::{self, compact::Compactor, ApplyBatch, KvStore};
use crate::wait::Wait;

/// Errors a request can fail with while being applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key not found")]
    KeyNotFound,
    #[error("requested lease not found")]
    LeaseNotFound,
    /// A write refused while a `NOSPACE` alarm is active (etcd's capped applier).
    #[error("no space")]
    NoSpace,
    /// A request refused while a `CORRUPT` alarm is active (etcd's corrupt applier).
    #[error("corrupt cluster")]
    Corrupt,
    #[error(transparent)]
    Mvcc(#[from] mvcc::Error),
}

/// What an applied request produced.
#[derive(Debug)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    MemberAdd(MemberAddResponse),
    MemberRemove(MemberRemoveResponse),
    MemberPromote(MemberPromoteResponse),
    MemberUpdate(MemberUpdateResponse),
    /// A member's published attributes were recorded.
    MemberAttr,
    Alarm(AlarmResponse),
    AuthEnable(AuthEnableResponse),
    AuthDisable(AuthDisableResponse),
    Authenticate(AuthenticateResponse),
    UserAdd(AuthUserAddResponse),
    UserDelete(AuthUserDeleteResponse),
    UserChangePassword(AuthUserChangePasswordResponse),
    UserGrantRole(AuthUserGrantRoleResponse),
    UserRevokeRole(AuthUserRevokeRoleResponse),
    RoleAdd(AuthRoleAddResponse),
    RoleDelete(AuthRoleDeleteResponse),
    RoleGrantPermission(AuthRoleGrantPermissionResponse),
    RoleRevokePermission(AuthRoleRevokePermissionResponse),
}

/// One applied response type: how to take it out of a [`Response`] and where its header
/// is, so a proposer asks for the type it expects instead of matching every variant.
pub trait Applied: Sized {
    /// `Err` hands back a response of another kind (a bug: ids are never reused).
    fn from_response(r: Response) -> Result<Self, Box<Response>>;
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! applied {
    ($($variant:ident => $ty:ty),* $(,)?) => {$(
        impl Applied for $ty {
            fn from_response(r: Response) -> Result<Self, Box<Response>> {
                match r {
                    Response::$variant(r) => Ok(r),
                    other => Err(Box::new(other)),
                }
            }
            fn header_mut(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        }
    )*};
}

applied! {
    Put => PutResponse,
    DeleteRange => DeleteRangeResponse,
    Txn => TxnResponse,
    Compaction => CompactionResponse,
    LeaseGrant => LeaseGrantResponse,
    LeaseRevoke => LeaseRevokeResponse,
    MemberAdd => MemberAddResponse,
    MemberRemove => MemberRemoveResponse,
    MemberPromote => MemberPromoteResponse,
    MemberUpdate => MemberUpdateResponse,
    Alarm => AlarmResponse,
    AuthEnable => AuthEnableResponse,
    AuthDisable => AuthDisableResponse,
    Authenticate => AuthenticateResponse,
    UserAdd => AuthUserAddResponse,
    UserDelete => AuthUserDeleteResponse,
    UserChangePassword => AuthUserChangePasswordResponse,
    UserGrantRole => AuthUserGrantRoleResponse,
    UserRevokeRole => AuthUserRevokeRoleResponse,
    RoleAdd => AuthRoleAddResponse,
    RoleDelete => AuthRoleDeleteResponse,
    RoleGrantPermission => AuthRoleGrantPermissionResponse,
    RoleRevokePermission => AuthRoleRevokePermissionResponse,
}

/// The result delivered to the proposer's waiter.
pub type Outcome = Result<Response, crate::Error>;

/// Lease existence as the applier needs it ([`Lessor`] implements it).
pub trait Leases: Send + Sync {
    fn exists(&self, id: i64) -> bool;
}

/// The state machine's writer: everything applying an entry needs.
pub struct Applier {
    pub store: Arc<KvStore>,
    pub leases: Arc<Lessor>,
    pub wait: Arc<Wait<Outcome>>,
    pub compactor: Arc<Compactor>,
    /// Receives each committed batch's events; never blocks (slow watchers become
    /// victims inside the hub).
    pub watch: Arc<crate::watch::Hub>,
    /// Told the applied index (raft log compaction, ReadIndex waits).
    pub on_applied: Box<dyn Fn(u64) + Send>,
    pub applied: u64,
    /// The membership and the raft configuration.
    pub members: member::Members,
    /// The cluster's alarms (shared with the API, which lists them).
    pub alarms: Arc<Alarms>,
    /// Users, roles and tokens (shared with the API, which checks requests).
    pub auth: Arc<AuthStore>,
}

impl Applier {
    fn apply_entries(&mut self, entries: &[Entry]) -> Result<(), crate::Error> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        if last <= self.applied {
            return Ok(());
        }
        let mut batch = ApplyBatch::new(&self.store);
        let mut outcomes = Vec::new();
        for e in entries.iter().filter(|e| e.index > self.applied) {
            match e.get_entry_type() {
                EntryType::EntryConfChange => {
                    outcomes.push(self.members.conf_change(&mut batch, e)?);
                    continue;
                }
                EntryType::EntryConfChangeV2 => {
                    // Never proposed by revkv; the same on every member.
                    tracing::error!(index = e.index, "unexpected ConfChangeV2 entry; skipped");
                    continue;
                }
                // Leader no-ops carry nothing.
                EntryType::EntryNormal if e.data.is_empty() => continue,
                EntryType::EntryNormal => {}
            }
            let req = match InternalRaftRequest::decode(&e.data[..]) {
                Ok(r) => r,
                Err(err) => {
                    // Every member fails the same way on the same bytes, so skipping
                    // keeps them identical.
                    tracing::error!(index = e.index, error = %err, "undecodable raft entry");
                    continue;
                }
            };
            let id = req.header.as_ref().map(|h| h.id).unwrap_or(0);
            let outcome = apply_request(
                &self.leases,
                &mut self.members,
                &self.alarms,
                &self.auth,
                &mut batch,
                (e.index, req),
            );
            if let Err(crate::Error::Apply(Error::Mvcc(
                e @ (mvcc::Error::Corrupt(_) | mvcc::Error::Storage(_)),
            ))) = &outcome
            {
                return Err(mvcc::Error::Corrupt(e.to_string()).into());
            }
            outcomes.push((id, outcome));
        }
        self.members.persist(&mut batch);
        let mut done = batch.commit(Some(last))?;
        self.applied = last;
        self.members.publish();
        // Before the waiters: a client that sees its write acknowledged and then
        // watches from "now" must not receive that write.
        self.watch
            .notify(done.rev, std::mem::take(&mut done.events));
        if let Some(rev) = done.compact_rev {
            self.compactor.schedule(rev);
        }
        // Raft learns the applied index before any waiter wakes: a client that
        // proposes its next membership change as soon as the last one returns must not
        // find raft still counting the last one as pending (raft drops a conf change
        // proposed while another is unapplied).
        (self.on_applied)(last);
        self.wait.trigger_all(outcomes);
        Ok(())
    }
}

/// Applies one normal entry's request to the batch (and the membership).
fn apply_request(
    lessor: &Arc<Lessor>,
    members: &mut member::Members,
    alarms: &Alarms,
    auth_store: &AuthStore,
    batch: &mut ApplyBatch<'_>,
    (index, req): (u64, InternalRaftRequest),
) -> Outcome {
    let leases = &**lessor;
    // etcd's auth applier, outermost: a client's request its user may not make
    // changes nothing, whatever the alarms.
    if let (Some(info), Some(r)) = (
        auth::checked_info(auth_store, req.header.as_ref()),
        &req.request,
    ) {
        if auth::is_management(r) {
            auth_store.check_admin(&info)?;
        } else {
            auth::permit(auth_store, &info, batch, r)?;
        }
    }
    if let Some(outcome) = req
        .request
        .as_ref()
        .and_then(|r| auth::apply(auth_store, batch, index, r))
    {
        return outcome;
    }
    // etcd's corrupt applier: while a corruption alarm holds, no request through the
    // log commits but alarms and membership (reads served outside the log go on).
    if alarms.any(AlarmType::Corrupt)
        && matches!(
            &req.request,
            Some(
                Request::Put(_)
                    | Request::DeleteRange(_)
                    | Request::Txn(_)
                    | Request::Compaction(_)
                    | Request::LeaseGrant(_)
                    | Request::LeaseRevoke(_)
            )
        )
    {
        return Err(Error::Corrupt.into());
    }
    // etcd's capped applier: while the space alarm holds, nothing that adds data
    // commits, on every member alike (the alarm is itself replicated state).
    if alarms.any(AlarmType::Nospace) {
        let adds_data = match &req.request {
            Some(Request::Put(_)) | Some(Request::LeaseGrant(_)) => true,
            Some(Request::Txn(x)) => txn::has_put(x),
            _ => false,
        };
        if adds_data {
            return Err(Error::NoSpace.into());
        }
    }
    match req.request {
        Some(Request::Alarm(a)) => {
            let store = batch.store();
            Ok(Response::Alarm(alarms.apply(
                store.storage(),
                batch.write_batch(),
                &a,
            )))
        }
        Some(Request::Put(p)) => {
            let mut t = batch.txn();
            let r = kv::check_put(&t, leases, &p).and_then(|()| kv::put(&mut t, &p));
            t.end();
            Ok(Response::Put(r?))
        }
        Some(Request::DeleteRange(d)) => {
            let mut t = batch.txn();
            let r = kv::delete_range(&mut t, &d);
            t.end();
            Ok(Response::DeleteRange(r?))
        }
        Some(Request::Txn(x)) => {
            let mut t = batch.txn();
            let r = txn::txn(&mut t, leases, &x);
            t.end();
            Ok(Response::Txn(r?))
        }
        Some(Request::Compaction(c)) => Ok(Response::Compaction(compact(batch, &c)?)),
        Some(Request::LeaseGrant(g)) => Ok(Response::LeaseGrant(lease::grant(batch, lessor, &g)?)),
        Some(Request::LeaseRevoke(r)) => {
            Ok(Response::LeaseRevoke(lease::revoke(batch, lessor, &r)?))
        }
        Some(Request::MemberAttr(a)) => members.request(Change::Attributes {
            id: a.id,
            name: a.name,
            client_urls: a.client_urls,
        }),
        Some(Request::MemberUpdate(u)) => members.request(Change::UpdatePeerUrls {
            id: u.id,
            peer_urls: u.peer_ur_ls,
        }),
        Some(other) => Err(crate::Error::Unsupported(format!("{other:?}"))),
        None => Err(crate::Error::Unsupported("empty request".into())),
    }
}

fn compact(batch: &mut ApplyBatch<'_>, c: &CompactionRequest) -> Result<CompactionResponse, Error> {
    batch.compact(c.revision)?;
    Ok(CompactionResponse {
        header: Some(ResponseHeader {
            revision: batch.rev(),
            ..Default::default()
        }),
    })
}

/// Serves a read-only txn against the current state, outside raft (etcd does the same
/// once the read is linearized). The batch is dropped, never committed.
pub fn read_only_txn(
    store: &KvStore,
    leases: &dyn Leases,
    req: &revkv_proto::etcdserverpb::TxnRequest,
) -> Result<TxnResponse, Error> {
    // Its reads go to the live database, not a pinned snapshot, so a snapshot install
    // must not run underneath it.
    let _no_install = store.read_gate();
    let mut batch = ApplyBatch::new(store);
    let mut t = batch.txn();
    txn::txn(&mut t, leases, req)
}
