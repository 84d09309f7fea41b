//! The cluster's membership as the log has built it, and the rules a change must pass.
//!
//! Every member holds the same [`Membership`] because every change reaches it through
//! the raft log and [`Membership::apply`] decides from the membership alone (no clock,
//! no local state): the same entries give the same members on every member, and an
//! entry refused on one member is refused on all. The checks are etcd's
//! (`membership/cluster.go: ValidateConfigurationChange`), with etcd's reasons.
//!
//! Removed IDs are kept forever, as etcd keeps them: a removed member can never be
//! added back under its old ID, and peers refuse its traffic so it learns that it
//! was removed. They also make a replayed log harmless to a member that joined
//! with the current membership: an old "add" meets an existing or removed ID, an
//! old "remove" an unknown one, and both are refused on that member as they would
//! be anywhere.

use std::collections::{BTreeMap, BTreeSet};

use revkv_proto::revkvpb;

use super::{Error, Member};

/// etcd's limit on learners in a cluster (`maxLearners`).
pub const MAX_LEARNERS: usize = 1;

/// One change to the membership, as decoded from a log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new member (a voter, or a learner if `is_learner`).
    Add(Member),
    /// A learner becomes a voter.
    Promote(u64),
    Remove(u64),
    /// New peer URLs for a member (etcd's `MemberUpdate`).
    UpdatePeerUrls {
        id: u64,
        peer_urls: Vec<String>,
    },
    /// A member's own name and client URLs (etcd's "publish").
    Attributes {
        id: u64,
        name: String,
        client_urls: Vec<String>,
    },
}

impl Change {
    /// The member the change is about.
    pub fn id(&self) -> u64 {
        match self {
            Change::Add(m) => m.id,
            Change::Promote(id)
            | Change::Remove(id)
            | Change::UpdatePeerUrls { id, .. }
            | Change::Attributes { id, .. } => *id,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub cluster_id: u64,
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

impl Membership {
    pub fn new(cluster_id: u64, members: Vec<Member>) -> Membership {
        Membership {
            cluster_id,
            members: members.into_iter().map(|m| (m.id, m)).collect(),
            removed: BTreeSet::new(),
        }
    }

    /// Members sorted by ID, as etcd lists them.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.members.contains_key(&id)
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    pub fn is_learner(&self, id: u64) -> bool {
        self.get(id).is_some_and(|m| m.is_learner)
    }

    pub fn voters(&self) -> Vec<u64> {
        self.members()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    pub fn learners(&self) -> Vec<u64> {
        self.members()
            .filter(|m| m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// Whether `change` may be applied, with etcd's reason if not.
    pub fn validate(&self, change: &Change) -> Result<(), Error> {
        let id = change.id();
        if self.is_removed(id) {
            return Err(Error::IdRemoved);
        }
        match change {
            Change::Add(m) => {
                if self.contains(id) {
                    return Err(Error::IdExists);
                }
                if m.peer_urls.is_empty() {
                    return Err(Error::BadUrls);
                }
                if self.url_taken(&m.peer_urls, None) {
                    return Err(Error::PeerUrlExists);
                }
                if m.is_learner && self.learners().len() + 1 > MAX_LEARNERS {
                    return Err(Error::TooManyLearners);
                }
            }
            Change::Promote(_) => match self.get(id) {
                None => return Err(Error::IdNotFound),
                Some(m) if !m.is_learner => return Err(Error::NotLearner),
                Some(_) => {}
            },
            Change::Remove(_) => {
                let m = self.get(id).ok_or(Error::IdNotFound)?;
                // Raft cannot run without a voter; etcd's strict check refuses this
                // earlier, and this holds even without it.
                if !m.is_learner && self.voters().len() == 1 {
                    return Err(Error::LastVoter);
                }
            }
            Change::UpdatePeerUrls { peer_urls, .. } => {
                if !self.contains(id) {
                    return Err(Error::IdNotFound);
                }
                if peer_urls.is_empty() {
                    return Err(Error::BadUrls);
                }
                if self.url_taken(peer_urls, Some(id)) {
                    return Err(Error::PeerUrlExists);
                }
            }
            Change::Attributes { .. } => {
                if !self.contains(id) {
                    return Err(Error::IdNotFound);
                }
            }
        }
        Ok(())
    }

    /// Validates and applies `change`.
    pub fn apply(&mut self, change: Change) -> Result<(), Error> {
        self.validate(&change)?;
        match change {
            Change::Add(m) => {
                self.members.insert(m.id, m);
            }
            Change::Promote(id) => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.is_learner = false;
                }
            }
            Change::Remove(id) => {
                self.members.remove(&id);
                self.removed.insert(id);
            }
            Change::UpdatePeerUrls { id, peer_urls } => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.peer_urls = peer_urls;
                }
            }
            Change::Attributes {
                id,
                name,
                client_urls,
            } => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.name = name;
                    m.client_urls = client_urls;
                }
            }
        }
        Ok(())
    }

    /// Whether any of `urls` belongs to a member other than `except`.
    fn url_taken(&self, urls: &[String], except: Option<u64>) -> bool {
        self.members()
            .filter(|m| Some(m.id) != except)
            .flat_map(|m| &m.peer_urls)
            .any(|u| urls.contains(u))
    }

    pub fn to_proto(&self) -> revkvpb::Membership {
        revkvpb::Membership {
            cluster_id: self.cluster_id,
            members: self.members().map(member_to_proto).collect(),
            removed: self.removed.iter().copied().collect(),
        }
    }

    pub fn from_proto(m: revkvpb::Membership) -> Membership {
        Membership {
            cluster_id: m.cluster_id,
            members: m
                .members
                .into_iter()
                .map(|m| (m.id, member_from_proto(m)))
                .collect(),
            removed: m.removed.into_iter().collect(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.to_proto())
    }
}

pub fn member_to_proto(m: &Member) -> revkvpb::Member {
    revkvpb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_urls: m.peer_urls.clone(),
        client_urls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

pub fn member_from_proto(m: revkvpb::Member) -> Member {
    Member {
        id: m.id,
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
        is_learner: m.is_learner,
    }
}

/// The ID etcd gives a member added at run time: SHA-1 over its sorted peer URLs and
/// the Unix time in seconds (`membership.NewMember` with an empty cluster name), so
/// re-adding the same URLs later gives a new ID. Computed by the proposer; the log
/// carries the result, so apply stays deterministic.
pub fn new_member_id(peer_urls: &[String], unix_secs: u64) -> u64 {
    super::member_id(peer_urls, &unix_secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str, learner: bool) -> Member {
        Member {
            id,
            name: String::new(),
            peer_urls: vec![url.to_string()],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    fn three() -> Membership {
        Membership::new(
            9,
            vec![
                member(1, "http://a:1", false),
                member(2, "http://b:2", false),
                member(3, "http://c:3", false),
            ],
        )
    }

    #[test]
    fn adds_are_checked_like_etcd() {
        let mut m = three();
        assert!(matches!(
            m.apply(Change::Add(member(2, "http://x:9", false))),
            Err(Error::IdExists)
        ));
        assert!(matches!(
            m.apply(Change::Add(member(4, "http://b:2", false))),
            Err(Error::PeerUrlExists)
        ));
        m.apply(Change::Add(member(4, "http://d:4", true)))
            .expect("a learner");
        assert!(matches!(
            m.apply(Change::Add(member(5, "http://e:5", true))),
            Err(Error::TooManyLearners)
        ));
        assert_eq!(m.learners(), vec![4]);
        assert_eq!(m.voters(), vec![1, 2, 3]);
    }

    #[test]
    fn promote_remove_and_removed_ids() {
        let mut m = three();
        assert!(matches!(
            m.apply(Change::Promote(2)),
            Err(Error::NotLearner)
        ));
        assert!(matches!(
            m.apply(Change::Promote(7)),
            Err(Error::IdNotFound)
        ));
        m.apply(Change::Add(member(4, "http://d:4", true)))
            .expect("add");
        m.apply(Change::Promote(4)).expect("promote");
        assert_eq!(m.voters(), vec![1, 2, 3, 4]);
        m.apply(Change::Remove(4)).expect("remove");
        assert!(m.is_removed(4));
        // A removed ID never comes back, and removing it again is refused.
        assert!(matches!(
            m.apply(Change::Add(member(4, "http://d:4", false))),
            Err(Error::IdRemoved)
        ));
        assert!(matches!(m.apply(Change::Remove(4)), Err(Error::IdRemoved)));
        assert!(matches!(m.apply(Change::Remove(8)), Err(Error::IdNotFound)));
        m.apply(Change::Remove(1)).expect("remove");
        m.apply(Change::Remove(2)).expect("remove");
        assert!(matches!(m.apply(Change::Remove(3)), Err(Error::LastVoter)));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn updates_attributes_and_round_trip() {
        let mut m = three();
        assert!(matches!(
            m.apply(Change::UpdatePeerUrls {
                id: 1,
                peer_urls: vec!["http://b:2".into()]
            }),
            Err(Error::PeerUrlExists)
        ));
        // A member may keep (or re-list) its own URLs.
        m.apply(Change::UpdatePeerUrls {
            id: 1,
            peer_urls: vec!["http://a:1".into(), "http://a:11".into()],
        })
        .expect("update");
        m.apply(Change::Attributes {
            id: 2,
            name: "b".into(),
            client_urls: vec!["http://b:2379".into()],
        })
        .expect("publish");
        assert!(matches!(
            m.apply(Change::Attributes {
                id: 7,
                name: "x".into(),
                client_urls: Vec::new()
            }),
            Err(Error::IdNotFound)
        ));
        m.apply(Change::Remove(3)).expect("remove");
        let back = Membership::from_proto(m.to_proto());
        assert_eq!(back, m);
        assert_eq!(back.get(2).map(|b| b.name.as_str()), Some("b"));
        assert!(back.is_removed(3));
    }

    #[test]
    fn new_member_ids_depend_on_time() {
        let urls = vec!["http://127.0.0.1:2380".to_string()];
        assert_ne!(new_member_id(&urls, 1), new_member_id(&urls, 2));
        assert_eq!(new_member_id(&urls, 5), new_member_id(&urls, 5));
    }
}
