//! Membership through etcd's Cluster API, driven by stock etcdctl: listing members
//! with the client URLs they published, adding a learner that joins with
//! `--initial-cluster-state existing`, catches up and is promoted, removing a member
//! (which then stops), etcd's refusals, and moving the leader. Runs against revkv or,
//! with `REVKV_TEST_TARGET=etcd`, real etcd with the same flags.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use revkv_tests::{error_line, json, target, Etcdctl, Target, TestCluster};

/// Multi-process clusters on a small machine: one test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls until `pred` holds, or panics with `what` after `timeout`.
#[track_caller]
fn eventually(timeout: Duration, what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a reconfiguration, retrying while etcd's strict check says "unhealthy
/// cluster": it wants every peer connected for 5 s, which a member that just started
/// is not yet.
#[track_caller]
fn reconfigure(ctl: &Etcdctl, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ctl.run(args, None);
        if out.status.success() {
            return out.stdout;
        }
        let err = error_line(&out.stderr);
        assert_eq!(
            err, "Error: etcdserver: unhealthy cluster",
            "etcdctl {args:?} failed"
        );
        assert!(Instant::now() < deadline, "still {err} after 20 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One member of `member list -w json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    id: u64,
    name: String,
    peer_urls: Vec<String>,
    client_urls: Vec<String>,
    is_learner: bool,
}

fn member_list(ctl: &Etcdctl) -> Vec<Listed> {
    let v = ctl.json(&["member", "list"]);
    let strings = |m: &serde_json::Value, f: &str| -> Vec<String> {
        m.get(f)
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    v.get("members")
        .and_then(|m| m.as_array())
        .expect("members in member list")
        .iter()
        .map(|m| Listed {
            id: m.get("ID").and_then(|x| x.as_u64()).expect("ID"),
            name: m
                .get("name")
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_owned(),
            peer_urls: strings(m, "peerURLs"),
            client_urls: strings(m, "clientURLs"),
            is_learner: m.get("isLearner").and_then(|x| x.as_bool()) == Some(true),
        })
        .collect()
}

/// The `ID` etcdctl prints as hex.
fn hex(id: u64) -> String {
    format!("{id:x}")
}

/// Parses `etcdctl member add` output: the new member's ID and the
/// `ETCD_INITIAL_CLUSTER` to start it with.
fn parse_member_add(out: &str) -> (u64, String) {
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Member "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| panic!("no member ID in {out:?}"));
    let initial = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {out:?}"));
    (id, initial)
}

#[test]
fn member_list_shows_every_member_with_the_client_urls_it_published() {
    let _g = serial();
    let c = TestCluster::start(3);
    let ctl = c.etcdctl();
    // Members publish their attributes once they see a leader.
    eventually(Duration::from_secs(10), "every member published", || {
        member_list(&ctl).iter().all(|m| !m.client_urls.is_empty())
    });
    let mut listed = member_list(&ctl);
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(listed.len(), 3);
    for (i, m) in listed.iter().enumerate() {
        let member = c.member(i);
        assert_eq!(m.name, member.name());
        assert_eq!(m.peer_urls, vec![member.peer_url()]);
        assert_eq!(m.client_urls, vec![member.client_url()]);
        assert!(!m.is_learner);
        let status = member.status().expect("status");
        assert_eq!(m.id, status.member_id, "member list ID is the member's own");
    }
    // Every member lists the same, and the header names the cluster.
    for i in 0..3 {
        let v = c.member(i).etcdctl().json(&["member", "list"]);
        let cluster = v["header"]["cluster_id"].as_u64().expect("cluster_id");
        assert_eq!(cluster, c.member(0).status().expect("status").cluster_id);
        let mut theirs = member_list(&c.member(i).etcdctl());
        theirs.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(theirs, listed);
    }
    let table = ctl.ok(&["member", "list", "-w", "table"]);
    for i in 0..3 {
        assert!(table.contains(&c.member(i).client_url()), "{table}");
        assert!(table.contains(&c.member(i).peer_url()), "{table}");
    }
    assert!(table.contains("started"), "{table}");
}

#[test]
fn a_learner_joins_catches_up_is_promoted_and_the_old_leader_removed() {
    let _g = serial();
    let mut c = TestCluster::start(1);
    let ctl = c.member(0).etcdctl();
    for i in 0..20 {
        ctl.ok(&["put", &format!("k{i}"), &format!("v{i}")]);
    }
    eventually(Duration::from_secs(10), "m0 published", || {
        member_list(&ctl).iter().all(|m| !m.name.is_empty())
    });

    let new = c.prepare_member("m1");
    let peer = c.member(new).peer_url();
    let out = ctl.ok(&["member", "add", "m1", "--learner", "--peer-urls", &peer]);
    let (id, initial) = parse_member_add(&out);
    // Every member, by ID order (as etcd lists them).
    let mut entries: Vec<&str> = initial.split(',').collect();
    entries.sort_unstable();
    assert_eq!(
        entries,
        vec![
            format!("m0={}", c.member(0).peer_url()),
            format!("m1={peer}")
        ],
        "{out}"
    );
    let listed = member_list(&ctl);
    let added = listed.iter().find(|m| m.id == id).expect("listed");
    assert!(added.is_learner);
    assert_eq!(added.peer_urls, vec![peer.clone()]);
    assert!(added.name.is_empty(), "not started yet: {added:?}");

    // A second learner is one too many.
    let err = ctl.fail_error(&[
        "member",
        "add",
        "m9",
        "--learner",
        "--peer-urls",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(
        err,
        "Error: etcdserver: too many learner members in cluster"
    );

    c.member_mut(new).set_initial_cluster(&initial);
    c.member_mut(new).spawn();
    let learner = c.member(new).etcdctl();
    eventually(Duration::from_secs(20), "the learner caught up", || {
        let out = learner.run(
            &["get", "k19", "--consistency=s", "--print-value-only"],
            None,
        );
        out.status.success() && out.stdout.trim() == "v19"
    });
    // etcd 3.4 serves a learner's clients serializable reads and status only.
    let err = learner.fail_error(&["get", "k19"]);
    assert_eq!(err, "Error: etcdserver: rpc not supported for learner");
    let err = learner.fail_error(&["put", "k", "v"]);
    assert_eq!(err, "Error: etcdserver: rpc not supported for learner");
    // So are the other maintenance calls. (Streams are refused too, with Unavailable,
    // which etcdctl's `snapshot save` retries without end, against etcd as against revkv.)
    for args in [&["endpoint", "hashkv"][..], &["defrag"]] {
        let out = learner.run(args, None);
        assert!(!out.status.success(), "{args:?} succeeded on a learner");
        assert!(
            out.stderr
                .contains("etcdserver: rpc not supported for learner"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let status = learner.json(&["endpoint", "status"]);
    assert_eq!(
        status[0]["Status"]["isLearner"].as_bool(),
        Some(true),
        "{status}"
    );
    eventually(Duration::from_secs(10), "the learner published", || {
        member_list(&ctl).iter().any(|m| {
            m.id == id && m.name == "m1" && m.client_urls == vec![c.member(new).client_url()]
        })
    });

    // Promotion is refused until the learner is in sync; then it is a voter.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ctl.run(&["member", "promote", &hex(id)], None);
        if out.status.success() {
            assert!(out.stdout.contains("promoted"), "{}", out.stdout);
            break;
        }
        assert_eq!(
            error_line(&out.stderr),
            "Error: etcdserver: can only promote a learner member which is in sync with leader"
        );
        assert!(Instant::now() < deadline, "never in sync");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(member_list(&ctl).iter().all(|m| !m.is_learner));
    let err = ctl.fail_error(&["member", "promote", &hex(id)]);
    assert_eq!(err, "Error: etcdserver: can only promote a learner member");
    // A voter serves everything; the write needs both members now.
    eventually(
        Duration::from_secs(10),
        "the promoted member serves writes",
        || learner.run(&["put", "from-m1", "x"], None).status.success(),
    );
    assert_eq!(
        ctl.ok(&["get", "from-m1", "--print-value-only"]).trim(),
        "x"
    );

    // The leader can be removed too (here through the other member): it stops, and
    // the member left alone leads.
    let old = c.member(0).status().expect("status").member_id;
    let out = reconfigure(&learner, &["member", "remove", &hex(old)]);
    assert!(out.contains("removed"), "{out}");
    let exited = c.member_mut(0).wait_exit(Duration::from_secs(20));
    assert!(
        exited.is_some(),
        "removed leader still running\n{}",
        c.member(0).log_tail(20)
    );
    eventually(
        Duration::from_secs(20),
        "the remaining member leads",
        || {
            learner
                .run(&["put", "after-remove", "y"], None)
                .status
                .success()
        },
    );
    let listed = member_list(&learner);
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].name.as_str()), (id, "m1"));
    let err = learner.fail_error(&["member", "remove", &hex(old)]);
    assert_eq!(err, "Error: etcdserver: member not found");
}

/// A follower answers membership changes as the leader does: etcd's checks want every
/// voter connected, and followers, which have no raft traffic between them, must still
/// see each other (revkv failed these with "unhealthy cluster" on every follower).
#[test]
fn membership_changes_work_through_a_follower() {
    let _g = serial();
    let c = TestCluster::start(3);
    let leader = c.wait_leader(None, Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let ctl = c.member(follower).etcdctl();

    // A voter that never starts, added and removed through the follower.
    let peer = format!("http://127.0.0.1:{}", revkv_tests::free_port());
    let out = reconfigure(&ctl, &["member", "add", "mx", "--peer-urls", &peer]);
    let (id, _) = parse_member_add(&out);
    let out = reconfigure(&ctl, &["member", "remove", &hex(id)]);
    assert!(out.contains("removed"), "{out}");

    // The started leader, removed through the follower.
    let leader_id = c.member(leader).status().expect("status").member_id;
    let out = reconfigure(&ctl, &["member", "remove", &hex(leader_id)]);
    assert!(out.contains("removed"), "{out}");
    let listed = member_list(&ctl);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|m| m.id != leader_id));
    let new_leader = c.wait_leader(Some(leader), Duration::from_secs(10));
    assert_ne!(new_leader, leader);
    c.member(new_leader).etcdctl().ok(&["put", "k", "v"]);
    assert_eq!(ctl.ok(&["get", "k", "--print-value-only"]).trim(), "v");
}

#[test]
fn removing_a_follower_shrinks_the_list_and_stops_it() {
    let _g = serial();
    let mut c = TestCluster::start(3);
    let leader = c.wait_leader(None, Duration::from_secs(10));
    let victim = (leader + 1) % 3;
    let ctl = c.member(leader).etcdctl();
    let id = c.member(victim).status().expect("status").member_id;
    let out = reconfigure(&ctl, &["member", "remove", &hex(id)]);
    assert!(out.contains("removed"), "{out}");
    let listed = member_list(&ctl);
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|m| m.id != id));
    let exited = c.member_mut(victim).wait_exit(Duration::from_secs(20));
    let status = exited.unwrap_or_else(|| {
        panic!(
            "removed member still running\n{}",
            c.member(victim).log_tail(20)
        )
    });
    if target() == Target::Revkv {
        // revkv says why and exits non-zero (etcd's exit status is not checked).
        assert!(!status.success());
        assert!(
            c.member(victim)
                .log()
                .contains("the member has been permanently removed from the cluster"),
            "{}",
            c.member(victim).log_tail(20)
        );
    }
    // The two left are a full cluster of two.
    let other = 3 - leader - victim;
    c.member(other).etcdctl().ok(&["put", "k", "v"]);
    assert_eq!(ctl.ok(&["get", "k", "--print-value-only"]).trim(), "v");
}

#[test]
fn membership_changes_are_refused_with_etcds_errors() {
    let _g = serial();
    let c = TestCluster::start(1);
    let ctl = c.member(0).etcdctl();
    let me = c.member(0).status().expect("status").member_id;
    let err = ctl.fail_error(&[
        "member",
        "add",
        "dup",
        "--peer-urls",
        &c.member(0).peer_url(),
    ]);
    assert_eq!(err, "Error: etcdserver: Peer URLs already exists");
    let err = ctl.fail_error(&["member", "remove", "1234abcd"]);
    assert_eq!(err, "Error: etcdserver: member not found");
    let err = ctl.fail_error(&[
        "member",
        "update",
        "1234abcd",
        "--peer-urls=http://127.0.0.1:9",
    ]);
    assert_eq!(err, "Error: etcdserver: member not found");
    let err = ctl.fail_error(&["member", "promote", &hex(me)]);
    assert_eq!(err, "Error: etcdserver: can only promote a learner member");
    let err = ctl.fail_error(&["member", "promote", "1234abcd"]);
    assert_eq!(err, "Error: etcdserver: member not found");
    // The last voter cannot go.
    let err = ctl.fail_error(&["member", "remove", &hex(me)]);
    assert_eq!(
        err,
        "Error: etcdserver: re-configuration failed due to not enough started members"
    );
    // Updating a member's peer URLs is recorded.
    let url = c.member(0).peer_url();
    ctl.ok(&["member", "update", &hex(me), &format!("--peer-urls={url}")]);
    let listed = member_list(&ctl);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].peer_urls, vec![url]);
}

#[test]
fn move_leader_hands_leadership_to_the_target() {
    let _g = serial();
    let c = TestCluster::start(3);
    let leader = c.wait_leader(None, Duration::from_secs(10));
    let target = (leader + 1) % 3;
    let target_id = c.member(target).status().expect("status").member_id;
    let out = c
        .member(leader)
        .etcdctl()
        .ok(&["move-leader", &hex(target_id)]);
    assert!(out.contains("Leadership transferred"), "{out}");
    let now = c.wait_leader(Some(leader), Duration::from_secs(10));
    assert_eq!(now, target);
    let err = c
        .member(target)
        .etcdctl()
        .fail_error(&["move-leader", "1234abcd"]);
    assert_eq!(err, "Error: etcdserver: bad leader transferee");
    let status = json(
        &c.member(target)
            .etcdctl()
            .ok(&["endpoint", "status", "-w", "json"]),
    );
    assert_eq!(status[0]["Status"]["leader"].as_u64(), Some(target_id));

    // And back, printed as JSON: etcd's answer carries no header of its own.
    let leader_id = c.member(leader).status().expect("status").member_id;
    let out = c
        .member(target)
        .etcdctl()
        .ok(&["move-leader", &hex(leader_id), "-w", "json"]);
    assert_eq!(out, "{}\n");
    assert_eq!(c.wait_leader(Some(target), Duration::from_secs(10)), leader);
}

#[test]
fn a_voter_joins_then_a_learner_is_promoted_through_a_follower_and_all_survive_restart() {
    let _g = serial();
    let mut c = TestCluster::start(1);
    let ctl = c.member(0).etcdctl();
    ctl.ok(&["put", "k", "v"]);

    // A voter joins a one-member cluster (etcd allows growing from one member).
    let m1 = c.prepare_member("m1");
    let peer = c.member(m1).peer_url();
    let out = reconfigure(&ctl, &["member", "add", "m1", "--peer-urls", &peer]);
    let (_, initial) = parse_member_add(&out);
    c.member_mut(m1).set_initial_cluster(&initial);
    c.member_mut(m1).spawn();
    eventually(Duration::from_secs(30), "the new voter is healthy", || {
        c.member(m1).is_healthy()
    });
    assert_eq!(
        c.member(m1)
            .etcdctl()
            .ok(&["get", "k", "--print-value-only"])
            .trim(),
        "v"
    );

    // A learner joins, and is promoted through whichever member does not lead.
    let m2 = c.prepare_member("m2");
    let peer = c.member(m2).peer_url();
    let out = reconfigure(
        &c.member(m1).etcdctl(),
        &["member", "add", "m2", "--learner", "--peer-urls", &peer],
    );
    let (id, initial) = parse_member_add(&out);
    c.member_mut(m2).set_initial_cluster(&initial);
    c.member_mut(m2).spawn();
    let leader = c.wait_leader(None, Duration::from_secs(10));
    let follower = c.member(1 - leader).etcdctl();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = follower.run(&["member", "promote", &hex(id)], None);
        if out.status.success() {
            break;
        }
        let err = error_line(&out.stderr);
        assert!(
            err == "Error: etcdserver: can only promote a learner member which is in sync with leader"
                || err == "Error: etcdserver: unhealthy cluster"
                || err == "Error: etcdserver: re-configuration failed due to not enough started members",
            "{err}"
        );
        assert!(Instant::now() < deadline, "never promoted: {err}");
        std::thread::sleep(Duration::from_millis(250));
    }
    eventually(Duration::from_secs(30), "three healthy voters", || {
        (0..3).all(|i| c.member(i).is_healthy())
    });
    eventually(Duration::from_secs(10), "every member published", || {
        let listed = member_list(&ctl);
        listed.len() == 3
            && listed
                .iter()
                .all(|m| !m.is_learner && !m.client_urls.is_empty())
    });
    let before = member_list(&ctl);

    // Each keeps the membership across a restart; the cluster works throughout.
    for i in 0..3 {
        c.member_mut(i).kill9();
        c.member_mut(i).restart();
        c.member(i)
            .etcdctl()
            .ok(&["put", &format!("after-restart-{i}"), "x"]);
    }
    eventually(
        Duration::from_secs(10),
        "the same members after restarts",
        || member_list(&c.member(2).etcdctl()) == before,
    );
}
