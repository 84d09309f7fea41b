//! Cluster identity: member and cluster IDs derived as etcd derives them, and the
//! membership a member bootstraps with ([`bootstrap`]), the membership the log builds
//! from there ([`membership`]) and how its changes travel as raft conf changes
//! ([`conf_change`]).
//!
//! A member's ID is the first 8 bytes (big-endian) of SHA-1 over its sorted peer URLs
//! followed by the cluster token; the cluster ID is the same over the sorted member IDs.
//! Identical flags therefore give identical IDs on every member (and the same IDs etcd
//! would compute), with no coordination.

mod bootstrap;
pub mod conf_change;
pub mod membership;
pub mod reconfig;

pub use bootstrap::{bootstrap, check_flags, Bootstrap};
pub use membership::{Change, Membership};

use sha1::{Digest, Sha1};

/// One `name=url[,url]` entry of `--initial-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub id: u64,
}

/// A member of the cluster as this member knows it (persisted in the meta column
/// family as `revkvpb.Member`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Known for the local member only until members publish their attributes.
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--initial-cluster entry {0:?} is not name=url")]
    BadEntry(String),
    #[error("couldn't find local name {0:?} in the initial cluster configuration")]
    NameNotFound(String),
    #[error("--initial-cluster has {name}={cluster} but missing from --initial-advertise-peer-urls={advertise}")]
    AdvertiseMismatch {
        name: String,
        cluster: String,
        advertise: String,
    },
    #[error("--initial-cluster lists peer URL {0} for more than one member")]
    DuplicateMember(String),
    #[error("cannot join the existing cluster: {0}")]
    Join(String),
    #[error("reading cluster membership: {0}")]
    Storage(#[from] crate::storage::Error),
    #[error("corrupt cluster membership: {0}")]
    Corrupt(String),

    // Refused membership changes and requests, in etcd's words (the strings clients
    // see are in `api/status.rs`).
    #[error("membership: ID exists")]
    IdExists,
    #[error("membership: peerURL exists")]
    PeerUrlExists,
    #[error("membership: ID not found")]
    IdNotFound,
    #[error("membership: ID removed")]
    IdRemoved,
    #[error("membership: can only promote a learner member")]
    NotLearner,
    #[error("membership: too many learner members in cluster")]
    TooManyLearners,
    #[error("membership: cannot remove the last voting member")]
    LastVoter,
    #[error("given member URLs are invalid")]
    BadUrls,
    #[error("re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("unhealthy cluster")]
    Unhealthy,
    #[error("not leader")]
    NotLeader,
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    #[error("request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    #[error("rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("only adds, promotions and removals travel as raft conf changes")]
    NotConfChange,
    #[error("the member has been permanently removed from the cluster")]
    Removed,
    /// The leader's own answer to a request this member forwarded to it.
    #[error("the leader answered: {}", .0.message())]
    Forwarded(tonic::Status),
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    for u in &urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

/// Parses `--initial-cluster` ("a=http://x:1,a=http://y:2,b=http://z:3"): one member per
/// distinct name, URLs grouped by name.
pub fn parse_initial_cluster(spec: &str, token: &str) -> Result<Vec<InitialMember>, Error> {
    let mut members: Vec<InitialMember> = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| Error::BadEntry(entry.to_string()))?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_string()),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
                id: 0,
            }),
        }
    }
    for m in &mut members {
        m.id = member_id(&m.peer_urls, token);
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_order_independent() {
        let a = parse_initial_cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:2", "t").expect("p");
        let b = parse_initial_cluster("b=http://127.0.0.1:2,a=http://127.0.0.1:1", "t").expect("p");
        let ids = |m: &[InitialMember]| m.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(cluster_id(&ids(&a)), cluster_id(&ids(&b)));
        let other =
            parse_initial_cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:2", "u").expect("p");
        assert_ne!(cluster_id(&ids(&a)), cluster_id(&ids(&other)));
        assert!(parse_initial_cluster("nonsense", "t").is_err());
    }

    #[test]
    fn default_single_member_matches_etcd() {
        // `etcd` with no flags reports member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let m = parse_initial_cluster("default=http://localhost:2380", "etcd-cluster").expect("p");
        assert_eq!(format!("{:x}", m[0].id), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m[0].id])), "cdf818194e3a8c32");
    }
}
