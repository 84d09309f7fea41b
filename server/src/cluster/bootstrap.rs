//! Which cluster this member belongs to: read from the data dir, or derived from the
//! `--initial-cluster*` flags and recorded there on first start.
//!
//! As in etcd, the data dir is authoritative once written: a restarted member keeps
//! its cluster ID, member ID and member list whatever the flags say now, so a changed
//! flag cannot silently move a member into another cluster.

use prost::Message as _;
use revkv_proto::revkvpb;
use rocksdb::WriteBatch;

use super::{cluster_id, parse_initial_cluster, Error, Member};
use crate::config::Config;
use crate::storage::{self, meta, Storage, CF_META};

/// The identity a member runs with.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub member_id: u64,
    pub cluster_id: u64,
    /// Every member, this one included.
    pub members: Vec<Member>,
    /// True when the data dir was empty and the identity was just derived from flags:
    /// the raft configuration starts with every member as a voter.
    pub fresh: bool,
}

impl Bootstrap {
    pub fn voters(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// The other members: whom the transport dials.
    pub fn peers(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(move |m| m.id != self.member_id)
    }
}

/// Loads the persisted identity, or derives it from the flags and persists it (one
/// synced write) before anything else is written.
pub fn bootstrap(storage: &Storage, cfg: &Config) -> Result<Bootstrap, Error> {
    if let Some(b) = load(storage, cfg)? {
        return Ok(b);
    }
    if cfg.initial_cluster_state == "existing" {
        return Err(Error::JoinUnsupported);
    }
    let b = from_flags(cfg)?;
    let membership = revkvpb::Membership {
        cluster_id: b.cluster_id,
        members: b.members.iter().map(to_proto).collect(),
    };
    let cf = storage.cf(CF_META);
    let mut wb = WriteBatch::default();
    wb.put_cf(cf, meta::MEMBER_ID, storage::encode_u64(b.member_id));
    wb.put_cf(cf, meta::CLUSTER_ID, storage::encode_u64(b.cluster_id));
    wb.put_cf(cf, meta::MEMBERS, membership.encode_to_vec());
    storage.write(wb, true)?;
    tracing::info!(
        member_id = format!("{:x}", b.member_id),
        cluster_id = format!("{:x}", b.cluster_id),
        members = b.members.len(),
        "bootstrapped a new cluster member from --initial-cluster"
    );
    Ok(b)
}

/// The identity `--initial-cluster-state=new` derives from the flags.
fn from_flags(cfg: &Config) -> Result<Bootstrap, Error> {
    let initial = parse_initial_cluster(&cfg.initial_cluster(), &cfg.initial_cluster_token)?;
    let me = initial
        .iter()
        .find(|m| m.name == cfg.name)
        .ok_or_else(|| Error::NameNotFound(cfg.name.clone()))?;
    // etcd refuses a member whose advertised peer URLs differ from its own entry: the
    // others would dial an address it does not answer on.
    let mut listed = me.peer_urls.clone();
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    listed.sort();
    advertised.sort();
    if listed != advertised {
        return Err(Error::AdvertiseMismatch {
            name: me.name.clone(),
            cluster: me.peer_urls.join(","),
            advertise: cfg.initial_advertise_peer_urls.join(","),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for url in initial.iter().flat_map(|m| &m.peer_urls) {
        if !seen.insert(url) {
            return Err(Error::DuplicateMember(url.clone()));
        }
    }
    let member_id = me.id;
    let ids: Vec<u64> = initial.iter().map(|m| m.id).collect();
    let members = initial
        .into_iter()
        .map(|m| Member {
            client_urls: if m.id == member_id {
                cfg.advertise_client_urls.clone()
            } else {
                Vec::new()
            },
            id: m.id,
            name: m.name,
            peer_urls: m.peer_urls,
            is_learner: false,
        })
        .collect();
    Ok(Bootstrap {
        member_id,
        cluster_id: cluster_id(&ids),
        members,
        fresh: true,
    })
}

/// The persisted identity, if the data dir has one.
fn load(storage: &Storage, cfg: &Config) -> Result<Option<Bootstrap>, Error> {
    let (Some(member_id), Some(cid)) = (
        storage.get_meta_u64(meta::MEMBER_ID)?,
        storage.get_meta_u64(meta::CLUSTER_ID)?,
    ) else {
        return Ok(None);
    };
    let raw = storage
        .db()
        .get_pinned_cf(storage.cf(CF_META), meta::MEMBERS)
        .map_err(storage::Error::from)?;
    let members = match raw {
        Some(raw) => {
            let m =
                revkvpb::Membership::decode(&raw[..]).map_err(|e| Error::Corrupt(e.to_string()))?;
            if m.cluster_id != cid {
                return Err(Error::Corrupt(format!(
                    "member list of cluster {:x} stored under cluster {cid:x}",
                    m.cluster_id
                )));
            }
            m.members.into_iter().map(from_proto).collect()
        }
        // Written by a single-member build that recorded only the IDs.
        None => vec![Member {
            id: member_id,
            name: cfg.name.clone(),
            peer_urls: cfg.initial_advertise_peer_urls.clone(),
            client_urls: cfg.advertise_client_urls.clone(),
            is_learner: false,
        }],
    };
    let members: Vec<Member> = members;
    if !members.iter().any(|m| m.id == member_id) {
        return Err(Error::Corrupt(format!(
            "local member {member_id:x} is not in the stored member list"
        )));
    }
    if cfg.initial_cluster.is_some() {
        let flagged = parse_initial_cluster(&cfg.initial_cluster(), &cfg.initial_cluster_token)
            .map(|ms| cluster_id(&ms.iter().map(|m| m.id).collect::<Vec<_>>()));
        if flagged.ok() != Some(cid) {
            tracing::warn!(
                cluster_id = format!("{cid:x}"),
                "the data dir already belongs to a cluster; ignoring --initial-cluster and --initial-cluster-token"
            );
        }
    }
    Ok(Some(Bootstrap {
        member_id,
        cluster_id: cid,
        members,
        fresh: false,
    }))
}

fn to_proto(m: &Member) -> revkvpb::Member {
    revkvpb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_urls: m.peer_urls.clone(),
        client_urls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

fn from_proto(m: revkvpb::Member) -> Member {
    Member {
        id: m.id,
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
        is_learner: m.is_learner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;
    use clap::Parser;

    fn cfg(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("revkv").chain(args.iter().copied())).expect("cfg")
    }

    const THREE: &str = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3";

    #[test]
    fn new_cluster_is_persisted_and_wins_over_later_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let flags = [
            "--name",
            "b",
            "--initial-cluster",
            THREE,
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2",
        ];
        let first = bootstrap(&st, &cfg(&flags)).expect("bootstrap");
        assert!(first.fresh);
        assert_eq!(first.members.len(), 3);
        assert_eq!(first.voters().len(), 3);
        assert_eq!(first.peers().count(), 2);
        assert_eq!(first.members[1].id, first.member_id);

        // Another token would mean another cluster: the data dir keeps the old one.
        let mut other = flags.to_vec();
        other.extend(["--initial-cluster-token", "other"]);
        let again = bootstrap(&st, &cfg(&other)).expect("restart");
        assert!(!again.fresh);
        assert_eq!(
            (again.member_id, again.cluster_id),
            (first.member_id, first.cluster_id)
        );
        assert_eq!(again.members, first.members);
    }

    #[test]
    fn flags_are_checked_like_etcd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let err = bootstrap(
            &st,
            &cfg(&[
                "--name",
                "b",
                "--initial-cluster",
                THREE,
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:9",
            ]),
        )
        .expect_err("mismatch");
        assert!(
            err.to_string().starts_with(
                "--initial-cluster has b=http://127.0.0.1:2 but missing from --initial-advertise-peer-urls=http://127.0.0.1:9"
            ),
            "{err}"
        );
        let err = bootstrap(&st, &cfg(&["--name", "x", "--initial-cluster", THREE]))
            .expect_err("unknown name");
        assert!(matches!(err, Error::NameNotFound(_)));
        let err = bootstrap(
            &st,
            &cfg(&[
                "--name",
                "a",
                "--initial-cluster-state",
                "existing",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:1",
                "--initial-cluster",
                THREE,
            ]),
        )
        .expect_err("join");
        assert!(matches!(err, Error::JoinUnsupported));
        // Nothing was persisted by the refused attempts.
        assert_eq!(st.get_meta_u64(meta::CLUSTER_ID).expect("get"), None);
    }
}
