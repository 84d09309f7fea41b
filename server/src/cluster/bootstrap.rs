//! Which cluster this member belongs to: read from the data dir, or derived from the
//! `--initial-cluster*` flags and recorded there on first start.
//!
//! As in etcd, the data dir is authoritative once written: a restarted member keeps
//! its cluster ID, member ID and member list whatever the flags say now, so a changed
//! flag cannot silently move a member into another cluster.
//!
//! A member joining a running cluster (`--initial-cluster-state=existing` on an empty
//! data dir, after `member add`) cannot derive the cluster ID or its own ID from its
//! flags: the cluster ID came from the *initial* members and `member add` chose the
//! new ID. Like etcd, which fetches `/members` from its peers, it asks an existing
//! member for the current membership and finds itself in it by its peer URLs.

use std::time::Duration;

use prost::Message as _;
use revkv_proto::revkvpb;
use rocksdb::WriteBatch;

use super::membership::Membership;
use super::{cluster_id, parse_initial_cluster, Error, InitialMember, Member};
use crate::config::Config;
use crate::storage::{self, meta, Storage, CF_META};

/// How often, and how far apart, a joining member asks again for a membership that
/// does not list it yet (the member it asked may not have applied the `member add`).
const JOIN_ATTEMPTS: usize = 20;
#[cfg(not(test))]
const JOIN_RETRY: Duration = Duration::from_millis(500);
#[cfg(test)]
const JOIN_RETRY: Duration = Duration::from_millis(1);

/// Asks the members at these peer URLs (any one of them) for the current membership.
pub type FetchMembership<'a> = &'a dyn Fn(&[String]) -> Result<revkvpb::Membership, String>;

/// The identity a member runs with.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub member_id: u64,
    pub cluster_id: u64,
    /// Every member, this one included.
    pub membership: Membership,
    /// True when the data dir was empty and the identity was just derived from flags
    /// (or fetched from a peer when joining).
    pub fresh: bool,
}

impl Bootstrap {
    pub fn voters(&self) -> Vec<u64> {
        self.membership.voters()
    }

    pub fn learners(&self) -> Vec<u64> {
        self.membership.learners()
    }

    /// The other members: whom the transport dials.
    pub fn peers(&self) -> impl Iterator<Item = &Member> {
        self.membership
            .members()
            .filter(move |m| m.id != self.member_id)
    }
}

/// Loads the persisted identity, or derives it from the flags (asking `fetch` when
/// joining) and persists it (one synced write) before anything else is written.
pub fn bootstrap(
    storage: &Storage,
    cfg: &Config,
    fetch: FetchMembership<'_>,
) -> Result<Bootstrap, Error> {
    if let Some(b) = load(storage, cfg)? {
        return Ok(b);
    }
    let b = if cfg.initial_cluster_state == "existing" {
        join(cfg, fetch)?
    } else {
        from_flags(cfg)?
    };
    let cf = storage.cf(CF_META);
    let mut wb = WriteBatch::default();
    wb.put_cf(cf, meta::MEMBER_ID, storage::encode_u64(b.member_id));
    wb.put_cf(cf, meta::CLUSTER_ID, storage::encode_u64(b.cluster_id));
    wb.put_cf(cf, meta::MEMBERS, b.membership.encode());
    storage.write(wb, true)?;
    tracing::info!(
        member_id = format!("{:x}", b.member_id),
        cluster_id = format!("{:x}", b.cluster_id),
        members = b.membership.len(),
        "bootstrapped a new cluster member from --initial-cluster"
    );
    Ok(b)
}

/// Checks the `--initial-cluster*` flags as a first start checks them, writing
/// nothing (`snapshot restore` does this before it unpacks anything).
pub fn check_flags(cfg: &Config) -> Result<(), Error> {
    local_entry(cfg).map(|_| ())
}

/// This member's `--initial-cluster` entry, checked against its advertised peer URLs
/// as etcd checks it, and the whole parsed flag.
fn local_entry(cfg: &Config) -> Result<(InitialMember, Vec<InitialMember>), Error> {
    let initial = parse_initial_cluster(&cfg.initial_cluster(), &cfg.initial_cluster_token)?;
    let me = initial
        .iter()
        .find(|m| m.name == cfg.name)
        .ok_or_else(|| Error::NameNotFound(cfg.name.clone()))?
        .clone();
    // etcd refuses a member whose advertised peer URLs differ from its own entry: the
    // others would dial an address it does not answer on.
    if sorted(&me.peer_urls) != sorted(&cfg.initial_advertise_peer_urls) {
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
    Ok((me, initial))
}

fn sorted(urls: &[String]) -> Vec<String> {
    let mut v = urls.to_vec();
    v.sort();
    v
}

/// The identity of a member joining a running cluster: the membership an existing
/// member reports, in which this member (added by `member add`) has its ID.
fn join(cfg: &Config, fetch: FetchMembership<'_>) -> Result<Bootstrap, Error> {
    let (me, initial) = local_entry(cfg)?;
    let others: Vec<String> = initial
        .iter()
        .filter(|m| m.name != me.name)
        .flat_map(|m| m.peer_urls.clone())
        .collect();
    if others.is_empty() {
        return Err(Error::Join(
            "--initial-cluster lists no other member to join".into(),
        ));
    }
    let mine = sorted(&me.peer_urls);
    let mut last = String::new();
    for attempt in 0..JOIN_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(JOIN_RETRY);
        }
        let membership = match fetch(&others) {
            Ok(m) => Membership::from_proto(m),
            Err(e) => {
                last = format!("no member at {} answered: {e}", others.join(","));
                continue;
            }
        };
        let found = membership
            .members()
            .find(|m| sorted(&m.peer_urls) == mine)
            .map(|m| m.id);
        let Some(member_id) = found else {
            last = format!(
                "the cluster has no member with peer URLs {}; add it first with `etcdctl member add {} --peer-urls={}`",
                mine.join(","),
                cfg.name,
                mine.join(",")
            );
            continue;
        };
        return Ok(Bootstrap {
            member_id,
            cluster_id: membership.cluster_id,
            membership,
            fresh: true,
        });
    }
    Err(Error::Join(last))
}

/// The identity `--initial-cluster-state=new` derives from the flags.
fn from_flags(cfg: &Config) -> Result<Bootstrap, Error> {
    let (me, initial) = local_entry(cfg)?;
    let member_id = me.id;
    let ids: Vec<u64> = initial.iter().map(|m| m.id).collect();
    let members = initial
        .into_iter()
        // Names come from the flag; client URLs are learnt when each member publishes
        // them through the log, so every member's copy stays the same.
        .map(|m| Member {
            client_urls: Vec::new(),
            id: m.id,
            name: m.name,
            peer_urls: m.peer_urls,
            is_learner: false,
        })
        .collect();
    let cluster_id = cluster_id(&ids);
    Ok(Bootstrap {
        member_id,
        cluster_id,
        membership: Membership::new(cluster_id, members),
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
    let membership = match raw {
        Some(raw) => {
            let m =
                revkvpb::Membership::decode(&raw[..]).map_err(|e| Error::Corrupt(e.to_string()))?;
            if m.cluster_id != cid {
                return Err(Error::Corrupt(format!(
                    "member list of cluster {:x} stored under cluster {cid:x}",
                    m.cluster_id
                )));
            }
            Membership::from_proto(m)
        }
        // Written by a single-member build that recorded only the IDs.
        None => Membership::new(
            cid,
            vec![Member {
                id: member_id,
                name: cfg.name.clone(),
                peer_urls: cfg.initial_advertise_peer_urls.clone(),
                client_urls: cfg.advertise_client_urls.clone(),
                is_learner: false,
            }],
        ),
    };
    if membership.is_removed(member_id) {
        return Err(Error::Removed);
    }
    if !membership.contains(member_id) {
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
        membership,
        fresh: false,
    }))
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
        let first = bootstrap(&st, &cfg(&flags), NO_PEERS).expect("bootstrap");
        assert!(first.fresh);
        assert_eq!(first.membership.len(), 3);
        assert_eq!(first.voters().len(), 3);
        assert_eq!(first.peers().count(), 2);
        assert!(first.membership.contains(first.member_id));

        // Another token would mean another cluster: the data dir keeps the old one.
        let mut other = flags.to_vec();
        other.extend(["--initial-cluster-token", "other"]);
        let again = bootstrap(&st, &cfg(&other), NO_PEERS).expect("restart");
        assert!(!again.fresh);
        assert_eq!(
            (again.member_id, again.cluster_id),
            (first.member_id, first.cluster_id)
        );
        assert_eq!(again.membership, first.membership);
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
            NO_PEERS,
        )
        .expect_err("mismatch");
        assert!(
            err.to_string().starts_with(
                "--initial-cluster has b=http://127.0.0.1:2 but missing from --initial-advertise-peer-urls=http://127.0.0.1:9"
            ),
            "{err}"
        );
        let err = bootstrap(
            &st,
            &cfg(&["--name", "x", "--initial-cluster", THREE]),
            NO_PEERS,
        )
        .expect_err("unknown name");
        assert!(matches!(err, Error::NameNotFound(_)));
        let err = bootstrap(&st, &cfg(&JOIN_A), NO_PEERS).expect_err("join");
        assert!(matches!(err, Error::Join(_)), "{err}");
        // Nothing was persisted by the refused attempts.
        assert_eq!(st.get_meta_u64(meta::CLUSTER_ID).expect("get"), None);
    }

    const JOIN_A: [&str; 8] = [
        "--name",
        "a",
        "--initial-cluster-state",
        "existing",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:1",
        "--initial-cluster",
        THREE,
    ];

    #[test]
    fn a_joining_member_takes_the_cluster_and_its_id_from_a_peer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let member = |id, url: &str, learner| revkvpb::Member {
            id,
            name: String::new(),
            peer_urls: vec![url.to_string()],
            client_urls: Vec::new(),
            is_learner: learner,
        };
        let existing = revkvpb::Membership {
            cluster_id: 0xc1,
            members: vec![
                member(0xb, "http://127.0.0.1:2", false),
                member(0xc, "http://127.0.0.1:3", false),
            ],
            removed: vec![0xd],
        };
        // The cluster has not added us yet.
        let err = bootstrap(&st, &cfg(&JOIN_A), &|_: &[String]| Ok(existing.clone()))
            .expect_err("not added");
        assert!(err.to_string().contains("member add"), "{err}");

        let mut added = existing.clone();
        added.members.push(member(0xa, "http://127.0.0.1:1", true));
        let asked = std::sync::Mutex::new(Vec::new());
        let fetch = |urls: &[String]| {
            asked.lock().expect("lock").extend(urls.to_vec());
            Ok(added.clone())
        };
        let b = bootstrap(&st, &cfg(&JOIN_A), &fetch).expect("join");
        assert_eq!((b.member_id, b.cluster_id), (0xa, 0xc1));
        assert_eq!(b.voters(), vec![0xb, 0xc]);
        assert_eq!(b.learners(), vec![0xa]);
        assert!(b.membership.is_removed(0xd));
        assert!(!asked
            .lock()
            .expect("lock")
            .contains(&"http://127.0.0.1:1".to_string()));
        // Persisted: a restart needs no peer.
        let again = bootstrap(&st, &cfg(&JOIN_A), NO_PEERS).expect("restart");
        assert_eq!(again.membership, b.membership);
        assert_eq!(again.member_id, 0xa);
    }

    const NO_PEERS: FetchMembership<'static> =
        &|_: &[String]| Err("no peers in a unit test".into());
}
