//! Auth across a three-member cluster of real processes: users, roles and the enabled
//! flag replicate to every member, tokens work wherever the client sends them, a
//! restarted member still enforces them, and leases still expire (the member's own
//! revoke is not a client's). Runs against revkv or, with `REVKV_TEST_TARGET=etcd`,
//! real etcd with the same flags.

use std::time::Duration;

use revkv_tests::cluster::{eventually, serial};
use revkv_tests::{error_line, Etcdctl, TestCluster};

const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:pw";

fn setup(ctl: &Etcdctl) {
    ctl.ok(&["user", "add", "root:rootpw"]);
    ctl.ok(&["user", "grant-role", "root", "root"]);
    ctl.ok(&[ROOT, "role", "add", "app"]);
    ctl.ok(&[
        ROOT,
        "role",
        "grant-permission",
        "app",
        "readwrite",
        "app/",
        "--prefix",
    ]);
    ctl.ok(&[ROOT, "user", "add", "alice:pw"]);
    ctl.ok(&[ROOT, "user", "grant-role", "alice", "app"]);
    assert_eq!(
        ctl.ok(&[ROOT, "auth", "enable"]),
        "Authentication Enabled\n"
    );
}

#[track_caller]
fn refused(ctl: &Etcdctl, args: &[&str], want: &str) {
    let out = ctl.run(args, None);
    assert!(!out.status.success(), "{args:?} succeeded: {}", out.stdout);
    assert_eq!(error_line(&out.stderr), want, "{args:?}");
}

/// Every member answers as the one that enabled auth, and keeps doing so after a
/// restart (the store is on disk, not only in the log it was applied from).
#[test]
fn auth_holds_on_every_member_and_across_a_restart() {
    let _g = serial();
    let mut c = TestCluster::start(3);
    let leader = c.wait_leader(None, 10 * ELECTION_TIMEOUT);
    setup(&c.member(leader).etcdctl());
    for i in 0..3 {
        let ctl = c.member(i).etcdctl();
        let key = format!("app/{i}");
        assert_eq!(ctl.ok(&[ALICE, "put", &key, "v"]), "OK\n", "member {i}");
        assert_eq!(
            ctl.ok(&[ALICE, "get", &key, "--print-value-only"]),
            "v\n",
            "member {i}"
        );
        refused(
            &ctl,
            &[ALICE, "put", "other", "v"],
            "Error: etcdserver: permission denied",
        );
        refused(
            &ctl,
            &["get", &key],
            "Error: etcdserver: user name is empty",
        );
        refused(
            &ctl,
            &["--user=alice:wrong", "get", &key],
            "Error: etcdserver: authentication failed, invalid user ID or password",
        );
        assert_eq!(
            ctl.ok(&[ROOT, "user", "list"]),
            "alice\nroot\n",
            "member {i}"
        );
    }

    let follower = (leader + 1) % 3;
    c.member_mut(follower).stop();
    // A change made while the member is down reaches it through the log.
    c.member(leader)
        .etcdctl()
        .ok(&[ROOT, "role", "revoke-permission", "app", "app/", "--prefix"]);
    c.member_mut(follower).restart();
    let ctl = c.member(follower).etcdctl();
    eventually(10 * ELECTION_TIMEOUT, "the restarted member serves", || {
        ctl.run(&[ROOT, "get", "app/0"], None).status.success()
    });
    refused(
        &ctl,
        &[ALICE, "get", "app/0"],
        "Error: etcdserver: permission denied",
    );
    refused(
        &ctl,
        &["put", "app/0", "v"],
        "Error: etcdserver: user name is empty",
    );
    assert_eq!(
        ctl.ok(&[ROOT, "auth", "disable"]),
        "Authentication Disabled\n"
    );
    for i in 0..3 {
        let ctl = c.member(i).etcdctl();
        eventually(5 * ELECTION_TIMEOUT, "auth disabled everywhere", || {
            ctl.run(&["get", "app/0"], None).status.success()
        });
    }
}

/// A lease whose keys a client could not delete still expires: the leader's revoke is
/// the member's own, not checked against anyone's permissions.
#[test]
fn leases_expire_with_auth_enabled() {
    let _g = serial();
    let c = TestCluster::start(3);
    let leader = c.wait_leader(None, 10 * ELECTION_TIMEOUT);
    let ctl = c.member(leader).etcdctl();
    setup(&ctl);
    let granted = ctl.ok(&[ALICE, "lease", "grant", "3"]);
    let id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_owned();
    ctl.ok(&[ALICE, "put", "app/leased", "v", "--lease", &id]);
    ctl.ok(&[ROOT, "put", "secret", "v", "--lease", &id]);
    // alice may not revoke it now: it holds a key she cannot write.
    refused(
        &ctl,
        &[ALICE, "lease", "revoke", &id],
        "Error: failed to revoke lease (etcdserver: permission denied)",
    );
    eventually(Duration::from_secs(20), "the lease expires", || {
        ctl.ok(&[ROOT, "get", "", "--prefix", "--keys-only"])
            .is_empty()
    });
}
