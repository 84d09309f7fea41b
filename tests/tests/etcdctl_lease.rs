//! Lease behaviour as observed through the stock `etcdctl` 3.4 (API v3), plus the few
//! request fields etcdctl cannot send (a client-chosen lease id) through `etcd-client`.
//!
//! Every expectation here is etcd's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd` and must pass unchanged against revkv. Each test starts its
//! own single-member server on free ports. Lease ids print as 16 hex digits.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, LeaseGrantOptions, LeaseTimeToLiveOptions};
use revkv_tests::etcdctl::{ETCDCTL_BIN, ETCDCTL_BIN_ENV};
use revkv_tests::{b64, error_line, header_revision, json_i64, Etcdctl, TestServer};
use serde_json::Value;

const ERR_LEASE_NOT_FOUND: &str = "Error: etcdserver: requested lease not found";

fn start() -> (TestServer, Etcdctl) {
    let server = TestServer::start();
    let ctl = server.etcdctl();
    (server, ctl)
}

/// `lease grant <ttl>`: checks the output line and returns the id as etcdctl prints it.
#[track_caller]
fn grant(ctl: &Etcdctl, ttl: i64, expect_ttl: i64) -> String {
    let out = ctl.ok(&["lease", "grant", &ttl.to_string()]);
    let id = out
        .strip_prefix("lease ")
        .and_then(|r| r.split_once(' '))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("unexpected grant output {out:?}"));
    assert_eq!(id.len(), 16, "ids print as 16 hex digits: {out:?}");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(out, format!("lease {id} granted with TTL({expect_ttl}s)\n"));
    id
}

fn id_value(hex: &str) -> i64 {
    i64::from_str_radix(hex, 16).expect("hex lease id")
}

/// Polls `cond` every 100 ms until it holds or `limit` passes; returns the wait.
#[track_caller]
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// The `(granted, remaining, keys)` of a `lease timetolive [--keys]` line.
#[track_caller]
fn parse_ttl_line(line: &str, id: &str) -> (i64, i64, Option<Vec<String>>) {
    let rest = line
        .strip_prefix(&format!("lease {id} granted with TTL("))
        .unwrap_or_else(|| panic!("unexpected timetolive output {line:?}"));
    let (granted, rest) = rest.split_once("s), remaining(").expect("remaining");
    let (remaining, rest) = rest.split_once("s)").expect("remaining end");
    let keys = rest
        .strip_prefix(", attached keys([")
        .map(|k| k.trim_end_matches("])\n"))
        .map(|k| k.split_whitespace().map(str::to_owned).collect());
    (
        granted.parse().expect("granted"),
        remaining.parse().expect("remaining"),
        keys,
    )
}

/// `etcdctl lease keep-alive <id>` as a child process, killed when dropped.
struct KeepAlive(Child);

impl KeepAlive {
    fn spawn(endpoint: &str, id: &str) -> KeepAlive {
        let bin = std::env::var_os(ETCDCTL_BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(ETCDCTL_BIN));
        let child = Command::new(bin)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(["lease", "keep-alive", id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcdctl lease keep-alive");
        KeepAlive(child)
    }

    /// Kills the process and returns everything it printed.
    fn stop(mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn grant_prints_the_hex_id_and_raises_short_ttls_to_the_minimum() {
    let (_s, ctl) = start();
    let a = grant(&ctl, 10, 10);
    // etcd's minimum TTL is ceil(1.5 × election timeout) = 2 s by default.
    grant(&ctl, 1, 2);
    let b = grant(&ctl, 0, 2);
    assert_ne!(a, b, "server-chosen ids are unique");
    let v = ctl.json(&["lease", "grant", "30"]);
    assert_eq!(v["TTL"], 30);
    assert!(
        json_i64(&v, &["ID"]) > 0,
        "server-chosen ids are positive: {v}"
    );
    assert_eq!(
        ctl.fail_error(&["lease", "grant", "9000000001"]),
        "Error: failed to grant lease (etcdserver: too large lease TTL)"
    );
}

#[test]
fn an_expired_lease_deletes_its_keys_in_one_revision() {
    let (_s, ctl) = start();
    let id = grant(&ctl, 3, 3);
    assert_eq!(ctl.ok(&["put", "--lease", &id, "eph/a", "1"]), "OK\n");
    let rev = header_revision(&ctl.json(&["put", "--lease", &id, "eph/b", "2"]));
    let v = ctl.json(&["get", "eph/a"]);
    assert_eq!(v["kvs"][0]["lease"].as_i64(), Some(id_value(&id)));
    assert_eq!(
        ctl.ok(&["get", "eph/", "--prefix", "--keys-only"]),
        "eph/a\n\neph/b\n\n"
    );

    let waited = wait_until(
        Duration::from_secs(10),
        "keys of the expired lease gone",
        || {
            ctl.ok(&["get", "eph/", "--prefix", "--keys-only"])
                .is_empty()
        },
    );
    assert!(
        waited >= Duration::from_secs(1),
        "expired too early ({waited:?})"
    );
    assert_eq!(ctl.revision(), rev + 1, "both deletes share one revision");
    assert_eq!(
        ctl.ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    assert_eq!(ctl.ok(&["lease", "list"]), "found 0 leases\n");
}

#[test]
fn keep_alive_holds_a_key_past_its_ttl() {
    let (s, ctl) = start();
    let id = grant(&ctl, 3, 3);
    ctl.ok(&["put", "--lease", &id, "held", "v"]);
    let ka = KeepAlive::spawn(&s.endpoint(), &id);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        ctl.ok(&["get", "held"]),
        "held\nv\n",
        "alive past its 3 s TTL"
    );
    let out = ka.stop();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 3, "keep-alive printed {out:?}");
    for l in lines {
        assert_eq!(l, format!("lease {id} keepalived with TTL(3)"));
    }
    // Without keep-alives the lease runs out.
    wait_until(
        Duration::from_secs(10),
        "key gone after keep-alive stopped",
        || ctl.ok(&["get", "held"]).is_empty(),
    );
    // A keep-alive for the expired lease fails (the server answers TTL 0).
    assert_eq!(
        ctl.fail_error(&["lease", "keep-alive", "--once", &id]),
        ERR_LEASE_NOT_FOUND
    );
    assert_eq!(
        ctl.ok(&["lease", "keep-alive", &id]),
        format!("lease {id} expired or revoked.\n")
    );
}

#[test]
fn keep_alive_once_reports_the_ttl() {
    let (_s, ctl) = start();
    let id = grant(&ctl, 20, 20);
    assert_eq!(
        ctl.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(20)\n")
    );
    let v = ctl.json(&["lease", "keep-alive", "--once", &id]);
    assert_eq!(
        (v["ID"].as_i64(), v["TTL"].as_i64()),
        (Some(id_value(&id)), Some(20))
    );
}

#[test]
fn timetolive_with_and_without_keys() {
    let (_s, ctl) = start();
    let id = grant(&ctl, 60, 60);
    for k in ["zoo", "abc", "foo"] {
        ctl.ok(&["put", "--lease", &id, k, "v"]);
    }
    ctl.ok(&["put", "unleased", "v"]);
    let (granted, remaining, keys) = parse_ttl_line(&ctl.ok(&["lease", "timetolive", &id]), &id);
    assert_eq!((granted, keys), (60, None));
    assert!((55..=60).contains(&remaining), "remaining {remaining}");

    let (granted, remaining, keys) =
        parse_ttl_line(&ctl.ok(&["lease", "timetolive", "--keys", &id]), &id);
    assert_eq!(granted, 60);
    assert!((55..=60).contains(&remaining), "remaining {remaining}");
    let keys: BTreeSet<String> = keys.expect("attached keys").into_iter().collect();
    assert_eq!(
        keys,
        BTreeSet::from(["abc".into(), "foo".into(), "zoo".into()])
    );

    let v = ctl.json(&["lease", "timetolive", "--keys", &id]);
    assert_eq!(v["id"].as_i64(), Some(id_value(&id)));
    assert_eq!(v["granted-ttl"], 60);
    assert!((55..=60).contains(&json_i64(&v, &["ttl"])), "{v}");
    let keys: BTreeSet<&str> = v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let want: BTreeSet<String> = ["abc", "foo", "zoo"].iter().map(b64).collect();
    assert_eq!(keys, want.iter().map(String::as_str).collect());

    // Moving a key off the lease, or deleting it, detaches it.
    ctl.ok(&["put", "zoo", "v2"]);
    ctl.ok(&["del", "abc"]);
    let (_, _, keys) = parse_ttl_line(&ctl.ok(&["lease", "timetolive", "--keys", &id]), &id);
    assert_eq!(keys, Some(vec!["foo".to_owned()]));

    // An unknown lease is reported as TTL -1, which etcdctl prints as expired.
    assert_eq!(
        ctl.ok(&["lease", "timetolive", "1234"]),
        "lease 0000000000001234 already expired\n"
    );
    let v = ctl.json(&["lease", "timetolive", "1234"]);
    assert_eq!(
        (v["ttl"].as_i64(), v["granted-ttl"].as_i64()),
        (Some(-1), Some(0))
    );
}

#[test]
fn lease_list_shows_every_lease() {
    let (_s, ctl) = start();
    assert_eq!(ctl.ok(&["lease", "list"]), "found 0 leases\n");
    let ids: BTreeSet<String> = [30, 40, 50].iter().map(|t| grant(&ctl, *t, *t)).collect();
    let out = ctl.ok(&["lease", "list"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("found 3 leases"));
    let listed: BTreeSet<String> = lines.map(str::to_owned).collect();
    assert_eq!(listed, ids);
    let v = ctl.json(&["lease", "list"]);
    let listed: BTreeSet<i64> = v["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .filter_map(|l| l["id"].as_i64())
        .collect();
    assert_eq!(listed, ids.iter().map(|i| id_value(i)).collect());
}

#[test]
fn revoke_deletes_every_attached_key_in_one_revision() {
    let (_s, ctl) = start();
    let id = grant(&ctl, 60, 60);
    for k in ["r/a", "r/b", "r/c"] {
        ctl.ok(&["put", "--lease", &id, k, "v"]);
    }
    ctl.ok(&["put", "r/free", "v"]);
    let before = ctl.revision();
    assert_eq!(
        ctl.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        ctl.revision(),
        before + 1,
        "one revision for all three deletes"
    );
    assert_eq!(
        ctl.ok(&["get", "r/", "--prefix", "--keys-only"]),
        "r/free\n\n"
    );
    for k in ["r/a", "r/b", "r/c"] {
        let rev = format!("--rev={before}");
        assert_eq!(ctl.ok(&["get", k, &rev, "--keys-only"]), format!("{k}\n\n"));
    }
    assert_eq!(
        ctl.ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    assert_eq!(
        ctl.fail_error(&["lease", "revoke", &id]),
        "Error: failed to revoke lease (etcdserver: requested lease not found)"
    );
    // A lease without keys revokes without a new revision.
    let empty = grant(&ctl, 60, 60);
    let v = ctl.json(&["lease", "revoke", &empty]);
    assert_eq!(header_revision(&v), before + 1);
}

#[test]
fn put_with_an_unknown_lease_fails() {
    let (_s, ctl) = start();
    let before = ctl.revision();
    assert_eq!(
        ctl.fail_error(&["put", "--lease=1234", "k", "v"]),
        ERR_LEASE_NOT_FOUND
    );
    assert_eq!(ctl.revision(), before);
    assert_eq!(ctl.ok(&["get", "k"]), "");
    // Also inside a txn.
    let txn = "\nput --lease=1234 k v\n\n\n";
    assert_eq!(
        error_line(&ctl.fail_stdin(&["txn"], txn)),
        ERR_LEASE_NOT_FOUND
    );
}

#[test]
fn leases_survive_a_restart_with_their_ttl_restarted() {
    let mut s = TestServer::start();
    let ctl = s.etcdctl();
    let long = grant(&ctl, 30, 30);
    let short = grant(&ctl, 4, 4);
    ctl.ok(&["put", "--lease", &long, "long", "v"]);
    ctl.ok(&["put", "--lease", &short, "short", "v"]);
    std::thread::sleep(Duration::from_secs(2));
    s.restart();
    let ctl = s.etcdctl();
    let (granted, remaining, keys) =
        parse_ttl_line(&ctl.ok(&["lease", "timetolive", "--keys", &long]), &long);
    assert_eq!((granted, keys), (30, Some(vec!["long".to_owned()])));
    // Restarted: a full TTL again (etcd adds up to an election timeout).
    assert!((28..=31).contains(&remaining), "remaining {remaining}");
    let listed = ctl.ok(&["lease", "list"]);
    assert!(listed.starts_with("found 2 leases\n"), "{listed}");
    assert_eq!(
        ctl.ok(&["lease", "keep-alive", "--once", &long]),
        format!("lease {long} keepalived with TTL(30)\n")
    );
    // The restored short lease still expires and takes its key with it.
    assert_eq!(ctl.ok(&["get", "short"]), "short\nv\n");
    wait_until(Duration::from_secs(12), "restored lease expires", || {
        ctl.ok(&["get", "short"]).is_empty()
    });
    assert_eq!(ctl.ok(&["get", "long"]), "long\nv\n");
}

async fn connect(s: &TestServer) -> Client {
    Client::connect([s.endpoint()], None)
        .await
        .expect("connect etcd-client")
}

#[tokio::test]
async fn grpc_client_chosen_ids_and_etcd_statuses() {
    let s = TestServer::start();
    let mut c = connect(&s).await;
    let g = c
        .lease_grant(20, Some(LeaseGrantOptions::new().with_id(0x1234)))
        .await
        .expect("grant with id");
    assert_eq!((g.id(), g.ttl()), (0x1234, 20));
    let err = c
        .lease_grant(20, Some(LeaseGrantOptions::new().with_id(0x1234)))
        .await
        .expect_err("duplicate id");
    match err {
        etcd_client::Error::GRpcStatus(st) => {
            assert_eq!(st.code(), tonic::Code::FailedPrecondition);
            assert_eq!(st.message(), "etcdserver: lease already exists");
        }
        other => panic!("expected a gRPC status, got {other:?}"),
    }
    match c.lease_revoke(0x999).await.expect_err("unknown lease") {
        etcd_client::Error::GRpcStatus(st) => {
            assert_eq!(st.code(), tonic::Code::NotFound);
            assert_eq!(st.message(), "etcdserver: requested lease not found");
        }
        other => panic!("expected a gRPC status, got {other:?}"),
    }
    // Keep-alive: the client reads the first answer itself and refuses a TTL <= 0,
    // so an unknown lease (answered with TTL 0) fails to start keeping alive.
    let (mut keeper, mut stream) = c.lease_keep_alive(0x1234).await.expect("keep-alive");
    keeper.keep_alive().await.expect("send");
    let r = stream.message().await.expect("recv").expect("a response");
    assert_eq!((r.id(), r.ttl()), (0x1234, 20));
    assert!(r.header().is_some_and(|h| h.revision() >= 1));
    match c.lease_keep_alive(0x999).await {
        Err(etcd_client::Error::LeaseKeepAliveError(m)) => assert_eq!(m, "lease not found"),
        other => panic!("expected TTL 0 for an unknown lease, got {other:?}"),
    }

    let t = c
        .lease_time_to_live(0x1234, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("ttl");
    assert_eq!((t.id(), t.granted_ttl()), (0x1234, 20));
    assert!(t.keys().is_empty());
    let t = c.lease_time_to_live(0x999, None).await.expect("ttl");
    assert_eq!((t.ttl(), t.granted_ttl()), (-1, 0));
    let ids: Vec<i64> = c
        .leases()
        .await
        .expect("leases")
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    assert_eq!(ids, [0x1234]);
}
