//! Applying membership changes: raft conf changes (add, promote, remove) and the
//! membership requests that travel as normal entries (peer URL updates, published
//! attributes).
//!
//! A change is checked against the membership as of the entry before it
//! ([`Membership::validate`], the same on every member), then the raft node switches
//! configuration (the raft task owns it; the applier waits for it, so the switch
//! happens in log order), and the new configuration and membership go into the same
//! write batch as the applied index. Side effects outside the state machine — peers
//! for the transport, noticing our own removal — happen only once that batch is
//! written.

use std::sync::Arc;

use parking_lot::RwLock;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfState, Entry};
use revkv_proto::etcdserverpb::{
    self, MemberAddResponse, MemberPromoteResponse, MemberRemoveResponse, MemberUpdateResponse,
};

use super::{Outcome, Response};
use crate::cluster::{self, conf_change, Change, Member, Membership};
use crate::mvcc::ApplyBatch;
use crate::raft::LogStore;
use crate::storage::{meta, CF_META};

/// What the rest of the member must do about an applied change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEffect {
    /// A new member, or new peer URLs for one: (re)start streaming to it.
    Upsert(Member),
    Removed(u64),
}

/// Switches the raft node's configuration for a committed conf change.
pub type ConfChanger = Box<dyn Fn(ConfChange) -> Result<ConfState, crate::raft::Error> + Send>;

/// The applier's membership state.
pub struct Members {
    /// The membership as of the last applied entry.
    membership: Membership,
    /// What readers (MemberList, the peer service) see: updated after each write.
    shared: Arc<RwLock<Membership>>,
    conf_changer: ConfChanger,
    on_change: Box<dyn Fn(&MemberEffect) + Send>,
    dirty: bool,
    effects: Vec<MemberEffect>,
}

impl Members {
    pub fn new(
        shared: Arc<RwLock<Membership>>,
        conf_changer: ConfChanger,
        on_change: Box<dyn Fn(&MemberEffect) + Send>,
    ) -> Members {
        let membership = shared.read().clone();
        Members {
            membership,
            shared,
            conf_changer,
            on_change,
            dirty: false,
            effects: Vec::new(),
        }
    }

    /// Applies a committed conf change entry. `Err` only when the raft node is gone
    /// (the member is stopping); a refused change is an `Ok` outcome carrying the
    /// refusal, identical on every member.
    pub fn conf_change(
        &mut self,
        batch: &mut ApplyBatch<'_>,
        e: &Entry,
    ) -> Result<(u64, Outcome), crate::Error> {
        let decoded = ConfChange::parse_from_bytes(&e.data)
            .map_err(|err| cluster::Error::Corrupt(format!("conf change entry: {err}")))
            .and_then(|cc| conf_change::decode(&cc).map(|(id, change)| (id, change, cc)));
        let (id, change, cc) = match decoded {
            Ok(d) => d,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "undecodable conf change entry");
                return Ok((0, Err(err.into())));
            }
        };
        if let Err(err) = self.membership.validate(&change) {
            tracing::info!(index = e.index, ?change, reason = %err, "refused a membership change");
            return Ok((id, Err(err.into())));
        }
        let cs = match (self.conf_changer)(cc) {
            Ok(cs) => cs,
            Err(crate::raft::Error::Raft(err)) => {
                // Raft refuses the same change on every member.
                tracing::warn!(index = e.index, error = %err, "raft refused a conf change");
                return Ok((id, Err(crate::raft::Error::Raft(err).into())));
            }
            Err(err) => return Err(err.into()),
        };
        LogStore::put_conf_state(batch.store().storage(), batch.write_batch(), &cs)
            .map_err(crate::raft::Error::from)?;
        tracing::info!(index = e.index, ?change, "applied a membership change");
        let response = self.apply(change)?;
        Ok((id, Ok(response)))
    }

    /// Applies a membership request carried by a normal entry.
    pub fn request(&mut self, change: Change) -> Outcome {
        if let Err(err) = self.membership.validate(&change) {
            return Err(err.into());
        }
        self.apply(change)
    }

    /// Applies a validated change and describes the result as etcd's response.
    fn apply(&mut self, change: Change) -> Outcome {
        self.membership.apply(change.clone())?;
        self.dirty = true;
        let members = self.members_proto();
        Ok(match change {
            Change::Add(m) => {
                self.effects.push(MemberEffect::Upsert(m.clone()));
                Response::MemberAdd(MemberAddResponse {
                    header: None,
                    member: Some(to_etcd(&m)),
                    members,
                })
            }
            Change::Promote(_) => Response::MemberPromote(MemberPromoteResponse {
                header: None,
                members,
            }),
            Change::Remove(id) => {
                self.effects.push(MemberEffect::Removed(id));
                Response::MemberRemove(MemberRemoveResponse {
                    header: None,
                    members,
                })
            }
            Change::UpdatePeerUrls { id, .. } => {
                if let Some(m) = self.membership.get(id) {
                    self.effects.push(MemberEffect::Upsert(m.clone()));
                }
                Response::MemberUpdate(MemberUpdateResponse {
                    header: None,
                    members,
                })
            }
            Change::Attributes { .. } => Response::MemberAttr,
        })
    }

    /// Adds the changed membership to the batch about to be written.
    pub fn persist(&mut self, batch: &mut ApplyBatch<'_>) {
        if self.dirty {
            let cf = batch.store().storage().cf(CF_META);
            let encoded = self.membership.encode();
            batch.write_batch().put_cf(cf, meta::MEMBERS, encoded);
        }
    }

    /// After the batch is written: shows readers the new membership and reports the
    /// changes' effects.
    pub fn publish(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        *self.shared.write() = self.membership.clone();
        for effect in std::mem::take(&mut self.effects) {
            (self.on_change)(&effect);
        }
    }

    /// After a snapshot install: the membership is the one the snapshot carried (the
    /// leader's, as of the snapshot's index). Peers that came or went meanwhile are
    /// reported like applied changes.
    pub fn reload(&mut self, storage: &crate::storage::Storage) -> Result<(), crate::Error> {
        let raw = storage
            .db()
            .get_pinned_cf(storage.cf(CF_META), meta::MEMBERS)
            .map_err(crate::storage::Error::from)?;
        let Some(raw) = raw else {
            return Ok(());
        };
        let decoded = <revkv_proto::revkvpb::Membership as prost::Message>::decode(&raw[..])
            .map_err(|e| cluster::Error::Corrupt(format!("installed member list: {e}")))?;
        let loaded = Membership::from_proto(decoded);
        for m in loaded.members() {
            if self.membership.get(m.id) != Some(m) {
                self.effects.push(MemberEffect::Upsert(m.clone()));
            }
        }
        for m in self.membership.members() {
            if !loaded.contains(m.id) {
                self.effects.push(MemberEffect::Removed(m.id));
            }
        }
        self.membership = loaded;
        self.dirty = true;
        self.publish();
        Ok(())
    }

    fn members_proto(&self) -> Vec<etcdserverpb::Member> {
        self.membership.members().map(to_etcd).collect()
    }
}

/// A member as etcd's API shows it.
pub fn to_etcd(m: &Member) -> etcdserverpb::Member {
    etcdserverpb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::KvStore;
    use crate::storage::{Storage, StorageConfig};
    use raft::prelude::{ConfChangeType, EntryType};
    use std::sync::Mutex;

    fn member(id: u64, learner: bool) -> Member {
        Member {
            id,
            name: String::new(),
            peer_urls: vec![format!("http://127.0.0.1:{id}")],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    fn entry(index: u64, request_id: u64, change: &Change) -> Entry {
        let cc = conf_change::encode(request_id, change).expect("encode");
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryConfChange);
        e.index = index;
        e.data = cc.write_to_bytes().expect("bytes").into();
        e
    }

    #[test]
    fn conf_changes_reach_raft_the_membership_and_the_disk_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let store = KvStore::open(storage.clone()).expect("store");
        let shared = Arc::new(RwLock::new(Membership::new(
            7,
            vec![member(1, false), member(2, false)],
        )));
        let raft_saw: Arc<Mutex<Vec<(ConfChangeType, u64)>>> = Arc::default();
        let effects: Arc<Mutex<Vec<MemberEffect>>> = Arc::default();
        let (saw, eff) = (raft_saw.clone(), effects.clone());
        let mut members = Members::new(
            shared.clone(),
            Box::new(move |cc| {
                saw.lock()
                    .expect("lock")
                    .push((cc.get_change_type(), cc.node_id));
                Ok(ConfState {
                    voters: vec![1, 2],
                    learners: vec![3],
                    ..Default::default()
                })
            }),
            Box::new(move |e| eff.lock().expect("lock").push(e.clone())),
        );

        let mut batch = ApplyBatch::new(&store);
        let (id, out) = members
            .conf_change(&mut batch, &entry(5, 42, &Change::Add(member(3, true))))
            .expect("applied");
        assert_eq!(id, 42);
        match out.expect("accepted") {
            Response::MemberAdd(r) => {
                assert_eq!(r.member.expect("member").id, 3);
                assert_eq!(r.members.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        // Refused at apply: raft never hears of it.
        let (id, out) = members
            .conf_change(&mut batch, &entry(6, 43, &Change::Promote(1)))
            .expect("applied");
        assert_eq!(id, 43);
        assert!(matches!(
            out,
            Err(crate::Error::Cluster(cluster::Error::NotLearner))
        ));
        assert_eq!(
            *raft_saw.lock().expect("lock"),
            vec![(ConfChangeType::AddLearnerNode, 3)]
        );
        // Nothing is visible or done before the batch is written.
        assert_eq!(shared.read().len(), 2);
        assert!(effects.lock().expect("lock").is_empty());
        members.persist(&mut batch);
        batch.commit(Some(6)).expect("commit");
        members.publish();
        assert!(shared.read().is_learner(3));
        assert_eq!(
            *effects.lock().expect("lock"),
            vec![MemberEffect::Upsert(member(3, true))]
        );
        // On disk: the membership and the configuration, with the applied index.
        let raw = storage
            .db()
            .get_cf(storage.cf(CF_META), meta::MEMBERS)
            .expect("get")
            .expect("members");
        let on_disk = Membership::from_proto(prost::Message::decode(&raw[..]).expect("decode"));
        assert_eq!(on_disk, *shared.read());
        let cs = LogStore::persisted_conf_state(&storage)
            .expect("read")
            .expect("conf state");
        assert_eq!(cs.learners, vec![3]);
        assert_eq!(
            storage.get_meta_u64(meta::APPLIED_INDEX).expect("get"),
            Some(6)
        );
    }
}
