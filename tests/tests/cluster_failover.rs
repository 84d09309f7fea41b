//! Three-member clusters under failure: leases and watches across a leader change,
//! lease requests at a follower (which only the leader can answer), and a follower cut
//! off from its peers refusing linearizable reads it cannot prove fresh. Runs against
//! revkv or, with `REVKV_TEST_TARGET=etcd`, real etcd with the same flags.
//!
//! No timing is asserted beyond what the lease TTLs themselves imply; waits only bound
//! a hung test.

use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, PutOptions, WatchOptions, WatchStream};
use revkv_tests::cluster::{eventually, get, serial};
use revkv_tests::{target, Target, TestCluster};

/// etcd's default election timeout, which these clusters run with.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on one wait for a watch event.
const WAIT: Duration = Duration::from_secs(30);

/// The index of a member other than `not`.
fn other(not: usize) -> usize {
    (not + 1) % 3
}

async fn connect(endpoint: String) -> Client {
    Client::connect([endpoint], None)
        .await
        .expect("connect etcd-client")
}

/// The next watch events as (type, key) pairs, until `n` have arrived.
async fn events(stream: &mut WatchStream, n: usize) -> Vec<(EventType, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let resp = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("watch event within the deadline")
            .expect("watch stream error")
            .expect("watch stream ended");
        assert!(!resp.canceled(), "watch canceled: {resp:?}");
        for e in resp.events() {
            let key = e.kv().map(|kv| kv.key_str().expect("utf8").to_owned());
            out.push((e.event_type(), key.unwrap_or_default()));
        }
    }
    out
}

/// Puts through `client`, retrying while the cluster elects a leader.
async fn put_retrying(client: &mut Client, key: &str, value: &str, opts: Option<PutOptions>) {
    let deadline = Instant::now() + 20 * ELECTION_TIMEOUT;
    loop {
        match client.put(key, value, opts.clone()).await {
            Ok(_) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "put {key} kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The guard only serializes whole cluster tests across threads; no task of this test
// waits for it, so holding it across awaits cannot deadlock.
#[allow(clippy::await_holding_lock)]
async fn a_watch_and_a_kept_alive_lease_on_a_follower_survive_killing_the_leader() {
    let _g = serial();
    let mut c = TestCluster::start(3);
    let leader = c.wait_leader(None, 10 * ELECTION_TIMEOUT);
    let follower = other(leader);
    let mut client = connect(c.member(follower).endpoint()).await;

    let mut stream = client
        .watch("w/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let ttl = 5;
    let lease = client.lease_grant(ttl, None).await.expect("grant").id();
    client
        .put("w/leased", "x", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with lease");
    client.put("w/1", "before", None).await.expect("put");

    // Renew from the follower throughout; each renewal must reach the leader, the only
    // member whose deadlines count.
    let (mut keeper, mut renewals) = client.lease_keep_alive(lease).await.expect("keep-alive");
    let renewing = tokio::spawn(async move {
        let mut renewed = 0u32;
        for _ in 0..40 {
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(5), renewals.message()).await {
                Ok(Ok(Some(r))) if r.ttl() > 0 => renewed += 1,
                Ok(Ok(Some(r))) => panic!("lease reported gone while kept alive: {r:?}"),
                // A renewal lost with the old leader; the next one goes to the new.
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        renewed
    });

    c.member_mut(leader).kill9();
    c.wait_leader(Some(leader), 10 * ELECTION_TIMEOUT);
    put_retrying(&mut client, "w/2", "after", None).await;

    // Outlive the lease's TTL twice over while it is renewed through the follower.
    tokio::time::sleep(Duration::from_secs(2 * ttl as u64)).await;
    let got = client.get("w/leased", None).await.expect("get");
    assert_eq!(got.count(), 1, "the kept-alive lease expired");
    let renewed = renewing.await.expect("renewing task");
    assert!(renewed >= 10, "only {renewed} renewals answered");

    // Unrenewed, the lease expires under the new leader and its key goes with it.
    let deadline = Instant::now() + Duration::from_secs(4 * ttl as u64);
    while client.get("w/leased", None).await.map_or(1, |r| r.count()) != 0 {
        assert!(Instant::now() < deadline, "lease never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every event exactly once and in order, across the leader change.
    let seen = events(&mut stream, 4).await;
    assert_eq!(
        seen,
        vec![
            (EventType::Put, "w/leased".to_owned()),
            (EventType::Put, "w/1".to_owned()),
            (EventType::Put, "w/2".to_owned()),
            (EventType::Delete, "w/leased".to_owned()),
        ]
    );
}

#[test]
fn keep_alive_and_time_to_live_at_a_follower_are_answered_by_the_leader() {
    let _g = serial();
    let c = TestCluster::start(3);
    let leader = c.wait_leader(None, 10 * ELECTION_TIMEOUT);
    let follower = c.member(other(leader)).etcdctl();
    let granted = c.member(leader).etcdctl().ok(&["lease", "grant", "4"]);
    // "lease 694d77aa9e38260f granted with TTL(4s)"
    let id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_owned();

    // Renewed from the follower past three TTLs: only renewals that reach the leader
    // keep it alive.
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        let out = follower.ok(&["lease", "keep-alive", "--once", &id]);
        assert_eq!(out, format!("lease {id} keepalived with TTL(4)\n"));
        std::thread::sleep(Duration::from_secs(1));
    }
    let ttl = follower.ok(&["lease", "timetolive", &id]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(4s), remaining(")),
        "{ttl}"
    );
    assert!(!ttl.contains("already expired"), "{ttl}");

    // Left alone it expires, and the follower reports that too.
    eventually(Duration::from_secs(15), "the lease to expire", || {
        follower.ok(&["lease", "timetolive", &id]) == format!("lease {id} already expired\n")
    });
}

#[test]
fn a_follower_cut_off_from_its_peers_serves_no_stale_linearizable_read() {
    let _g = serial();
    let mut c = TestCluster::start(3);
    let leader = c.wait_leader(None, 10 * ELECTION_TIMEOUT);
    let cut = other(leader);
    let third = other(cut);
    let cut_ctl = c.member(cut).etcdctl();
    c.member(leader).etcdctl().ok(&["put", "k", "v1"]);
    assert_eq!(get(&cut_ctl, "k", false).as_deref(), Some("v1"));

    // The follower misses a write the other two commit (killed, not paused: a paused
    // process would find the write waiting in its socket buffers when it wakes)...
    c.member_mut(cut).kill9();
    c.member(leader).etcdctl().ok(&["put", "k", "v2"]);
    // ...and comes back alone: its peers stop answering before it restarts.
    c.member(leader).pause();
    c.member(third).pause();
    c.member_mut(cut).spawn();
    if target() == Target::Revkv {
        // revkv serves serializable reads from its own state at once, which shows the
        // state is stale. (etcd serves no client request until it has published itself
        // through a leader, so alone it answers nothing at all.)
        eventually(
            Duration::from_secs(30),
            "the restarted member to serve serializable reads",
            || {
                cut_ctl
                    .run(
                        &["get", "k", "--consistency=s", "--command-timeout=2s"],
                        None,
                    )
                    .status
                    .success()
            },
        );
        assert_eq!(get(&cut_ctl, "k", true).as_deref(), Some("v1"));
    } else {
        std::thread::sleep(2 * ELECTION_TIMEOUT);
    }
    // ...but a linearizable read must not be answered from it.
    let out = cut_ctl.run(
        &["get", "k", "--print-value-only", "--command-timeout=3s"],
        None,
    );
    assert!(
        !out.status.success(),
        "a cut-off follower served a linearizable read: {:?}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("v1"),
        "stale read served: {:?}",
        out.stdout
    );

    c.member(leader).resume();
    c.member(third).resume();
    eventually(
        20 * ELECTION_TIMEOUT,
        "the reconnected follower to answer with the committed value",
        || {
            let out = cut_ctl.run(
                &["get", "k", "--print-value-only", "--command-timeout=3s"],
                None,
            );
            out.status.success() && out.stdout == "v2\n"
        },
    );
}
