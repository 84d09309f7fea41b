//! Compaction, maintenance, error and durability behaviour as observed through the stock `etcdctl` 3.4 (API v3).
//!
//! Every expectation here is etcd's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd` and must pass unchanged against revkv.
//! Each test starts its own single-member server on free ports.

use std::time::Duration;

use revkv_tests::cluster::eventually;
use revkv_tests::{b64, error_line, header_revision, http_get, TestServer};

mod kv_common;
use kv_common::*;

// compaction

#[test]
fn compaction_makes_old_revisions_unreadable() {
    let (_s, ctl) = start();
    let revs: Vec<i64> = (1..=5)
        .map(|i| ctl.put_rev("foo", &format!("v{i}")))
        .collect();
    let current = ctl.revision();
    let r = |i: usize| revs[i].to_string();

    assert_eq!(
        ctl.ok(&["compaction", &r(2)]),
        format!("compacted revision {}\n", revs[2])
    );
    // Compaction does not create a revision.
    assert_eq!(ctl.revision(), current);
    for below in [revs[1], revs[0], 1] {
        assert_eq!(
            ctl.fail_error(&["get", "foo", "--rev", &below.to_string()]),
            ERR_COMPACTED,
            "rev {below}"
        );
    }
    // The compaction revision itself and later ones stay readable.
    assert_eq!(ctl.ok(&["get", "foo", "--rev", &r(2)]), "foo\nv3\n");
    assert_eq!(ctl.ok(&["get", "foo", "--rev", &r(4)]), "foo\nv5\n");
    assert_eq!(ctl.ok(&["get", "foo"]), "foo\nv5\n");
    // The current version/create_revision are untouched by compaction.
    let v = ctl.json(&["get", "foo"]);
    assert_eq!(v["kvs"][0]["version"], 5);
    assert_eq!(v["kvs"][0]["create_revision"], revs[0]);

    // Compacting at or below the compacted revision fails.
    assert_eq!(ctl.fail_error(&["compaction", &r(2)]), ERR_COMPACTED);
    assert_eq!(ctl.fail_error(&["compaction", &r(1)]), ERR_COMPACTED);
    // Compacting beyond the current revision fails.
    assert_eq!(
        ctl.fail_error(&["compaction", &(current + 10).to_string()]),
        ERR_FUTURE_REV
    );
    // Compacting exactly at the current revision is allowed.
    assert_eq!(
        ctl.ok(&["compaction", &current.to_string()]),
        format!("compacted revision {current}\n")
    );
    assert_eq!(
        ctl.fail_error(&["get", "foo", "--rev", &r(3)]),
        ERR_COMPACTED
    );
    assert_eq!(
        ctl.fail_error(&["get", "foo", "--rev", &(current + 1).to_string()]),
        ERR_FUTURE_REV
    );
    assert_still_serving(&ctl);
}

#[test]
fn compaction_physical() {
    let (_s, ctl) = start();
    let revs: Vec<i64> = (1..=4)
        .map(|i| ctl.put_rev("foo", &format!("v{i}")))
        .collect();
    ctl.ok(&["del", "foo"]);
    ctl.put_rev("bar", "b");
    let current = ctl.revision();
    // --physical waits until the compaction is applied to the backend; the
    // output is the same.
    assert_eq!(
        ctl.ok(&["compaction", "--physical", &revs[2].to_string()]),
        format!("compacted revision {}\n", revs[2])
    );
    assert_eq!(
        ctl.fail_error(&["get", "foo", "--rev", &revs[1].to_string()]),
        ERR_COMPACTED
    );
    assert_eq!(
        ctl.ok(&["get", "foo", "--rev", &revs[3].to_string()]),
        "foo\nv4\n"
    );
    // -w json does not change compaction's output.
    assert_eq!(
        ctl.ok(&[
            "compaction",
            "--physical",
            &current.to_string(),
            "-w",
            "json"
        ]),
        format!("compacted revision {current}\n")
    );
    assert_eq!(ctl.ok(&["get", "foo"]), "");
    assert_eq!(ctl.ok(&["get", "--prefix", ""]), "bar\nb\n");
    assert_eq!(ctl.revision(), current);
}

// ---------------------------------------------------------------------------
// maintenance

#[test]
fn endpoint_status_json() {
    let (s, ctl) = start();
    for i in 0..5 {
        ctl.put_rev(&format!("k{i}"), "v");
    }
    let rev = ctl.revision();
    let v = ctl.json(&["endpoint", "status"]);
    let arr = v.as_array().expect("status JSON is an array");
    assert_eq!(arr.len(), 1, "{v}");
    let e = &arr[0];
    assert_eq!(fields(e), ["Endpoint", "Status"], "{v}");
    assert_eq!(e["Endpoint"], s.endpoint());
    let st = &e["Status"];
    assert!(
        !st["version"].as_str().expect("version string").is_empty(),
        "{v}"
    );
    assert!(st["dbSize"].as_i64().expect("dbSize") > 0, "{v}");
    assert_eq!(st["leader"], st["header"]["member_id"], "{v}");
    let raft_index = st["raftIndex"].as_u64().expect("raftIndex");
    assert!(raft_index > 0, "{v}");
    // A fresh member starts at term 1 and its first election makes term 2 (etcd's
    // raft bootstraps there).
    assert_eq!(st["raftTerm"], 2, "{v}");
    assert_eq!(st["raftTerm"], st["header"]["raft_term"], "{v}");
    assert_eq!(header_revision(st), rev, "{v}");
    // raft_index counts at least our writes.
    assert!(raft_index >= 5, "{v}");
    // etcd 3.4 fields.
    let applied = st["raftAppliedIndex"].as_u64().expect("raftAppliedIndex");
    assert!(applied > 0 && applied <= raft_index, "{v}");
    let in_use = st["dbSizeInUse"].as_i64().expect("dbSizeInUse");
    assert!(
        in_use > 0 && in_use <= st["dbSize"].as_i64().expect("dbSize"),
        "{v}"
    );
    // Not a learner, no errors: both omitted.
    assert!(st.get("isLearner").is_none(), "{v}");
    assert!(st.get("errors").is_none(), "{v}");

    // Simple format: "endpoint, id (hex), version, size, is leader, is learner,
    // raft term, raft index, raft applied index, errors".
    let line = ctl.ok(&["endpoint", "status"]);
    let cols: Vec<&str> = line.trim_end_matches('\n').split(", ").collect();
    assert_eq!(cols.len(), 10, "{line:?}");
    assert_eq!(cols[0], s.endpoint());
    let member_id = st["header"]["member_id"].as_u64().expect("member_id");
    assert_eq!(cols[1], format!("{member_id:x}"));
    assert_eq!(cols[2], st["version"].as_str().expect("version"));
    assert_eq!(cols[4], "true", "single member is the leader: {line:?}");
    assert_eq!(cols[5], "false", "{line:?}");
    assert_eq!(cols[9], "", "{line:?}");

    // The member id in every response header is the same one.
    let g = ctl.json(&["get", "k0"]);
    assert_eq!(g["header"]["member_id"], st["header"]["member_id"]);
    assert_eq!(g["header"]["cluster_id"], st["header"]["cluster_id"]);
}

#[test]
fn maintenance_calls_work_with_url_endpoints() {
    let (s, _) = start();
    // For these calls etcdctl dials each endpoint itself, and given a URL (as with
    // `--endpoints http://…`, and always with `--cluster`, which dials the members'
    // client URLs) its gRPC library sends the whole URL as the HTTP/2 :authority.
    let url = s.client_url();
    let ctl = revkv_tests::Etcdctl::new(url.clone());
    ctl.ok(&["put", "k", "v"]);
    for (args, answer) in [
        (&["endpoint", "status"][..], "Status"),
        (&["endpoint", "status", "--cluster"], "Status"),
        (&["endpoint", "hashkv"], "HashKV"),
        (&["endpoint", "hashkv", "--cluster"], "HashKV"),
    ] {
        let v = ctl.json(args);
        assert_eq!(v[0]["Endpoint"], url, "{args:?}: {v}");
        assert!(header_revision(&v[0][answer]) >= 2, "{args:?}: {v}");
    }
    for args in [&["defrag"][..], &["defrag", "--cluster"]] {
        let out = ctl.run(args, None);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(
            out.stdout
                .contains(&format!("Finished defragmenting etcd member[{url}]")),
            "{args:?}: {out:?}"
        );
    }
}

#[test]
fn endpoint_health() {
    let (s, ctl) = start();
    // etcdctl 3.4 prints the health line on stderr.
    let out = ctl.run(&["endpoint", "health"], None);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{} is healthy: successfully committed proposal",
            s.endpoint()
        )),
        "{out:?}"
    );
    let v = ctl.json(&["endpoint", "health"]);
    assert_eq!(v[0]["endpoint"], s.endpoint());
    assert_eq!(v[0]["health"], true);
}

#[test]
fn check_datascale_reads_the_servers_memory_and_passes() {
    let (s, ctl) = start();
    // It reads `process_resident_memory_bytes` from /metrics before and after writing
    // 10,000 keys of 1 KiB, then compacts and defragments as asked.
    let out = ctl.run(
        &[
            "check",
            "datascale",
            "--load=s",
            "--auto-compact",
            "--auto-defrag",
        ],
        None,
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("PASS: Approximate system memory used"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Defragmented \"{}\"", s.endpoint())),
        "{text}"
    );
    // It deletes its keys again.
    let left = ctl.ok(&[
        "get",
        "--prefix",
        "/etcdctl-check-datascale/",
        "--keys-only",
    ]);
    assert_eq!(left.trim(), "", "keys left behind");
}

// ---------------------------------------------------------------------------
// errors

#[test]
fn empty_key_is_rejected() {
    let (_s, ctl) = start();
    let before = ctl.revision();
    assert_eq!(ctl.fail_error(&["put", "", "v"]), ERR_EMPTY_KEY);
    assert_eq!(ctl.fail_error(&["get", ""]), ERR_EMPTY_KEY);
    assert_eq!(ctl.fail_error(&["del", ""]), ERR_EMPTY_KEY);
    assert_eq!(ctl.revision(), before);
    assert_still_serving(&ctl);
}

#[test]
fn request_larger_than_max_request_bytes_is_rejected() {
    let (_s, ctl) = start();
    let before = ctl.revision();
    // Default --max-request-bytes is 1.5 MiB.
    let big = vec![b'a'; 1_600_000];
    let err = ctl.fail_stdin(&["put", "big"], &big);
    assert_eq!(error_line(&err), ERR_TOO_LARGE);
    assert_eq!(ctl.revision(), before);
    assert_eq!(ctl.ok(&["get", "big"]), "");
    // Just under the limit is fine and round-trips exactly.
    let ok = vec![b'b'; 1_000_000];
    assert_eq!(ctl.ok_stdin(&["put", "ok"], &ok), "OK\n");
    let got = ctl.ok(&["get", "ok", "--print-value-only"]);
    assert_eq!(got.len(), ok.len() + 1);
    assert!(got.bytes().take(ok.len()).all(|b| b == b'b'));
    assert_still_serving(&ctl);
}

#[test]
fn max_request_bytes_flag_is_honoured() {
    let s = TestServer::start_with(&["--max-request-bytes", "1024"]);
    let ctl = s.etcdctl();
    assert_eq!(ctl.ok(&["put", "small", &"x".repeat(500)]), "OK\n");
    let err = ctl.fail_stdin(&["put", "big"], vec![b'y'; 2048]);
    assert_eq!(error_line(&err), ERR_TOO_LARGE);
    assert_still_serving(&ctl);
}

// ---------------------------------------------------------------------------
// durability

#[test]
fn kill9_keeps_every_acknowledged_write() {
    let (mut s, ctl) = start();
    const N: usize = 200;
    let mut acked = Vec::with_capacity(N);
    for i in 0..N {
        let key = format!("dur/{i:04}");
        let rev = ctl.put_rev(&key, &format!("value-{i}"));
        acked.push((key, rev));
    }
    let last = acked.last().expect("N > 0").1;
    assert_eq!(ctl.revision(), last);

    s.kill9();
    s.restart();

    let v = ctl.json(&["get", "--prefix", "dur/"]);
    assert_eq!(header_revision(&v), last, "store revision survives kill -9");
    assert_eq!(v["count"], N);
    let kvs = v["kvs"].as_array().expect("kvs");
    assert_eq!(kvs.len(), N);
    for (kv, (i, (key, rev))) in kvs.iter().zip(acked.iter().enumerate()) {
        assert_eq!(kv["key"], b64(key));
        assert_eq!(kv["value"], b64(format!("value-{i}")));
        assert_eq!(kv["mod_revision"], *rev, "{key}");
        assert_eq!(kv["create_revision"], *rev, "{key}");
        assert_eq!(kv["version"], 1, "{key}");
    }
    // History survived too, and new writes continue from the old revision.
    assert_eq!(
        keys_only(
            &ctl,
            &["get", "--prefix", "dur/", "--rev", &acked[1].1.to_string()]
        ),
        ["dur/0000", "dur/0001"]
    );
    assert_eq!(ctl.put_rev("after", "x"), last + 1);
}

/// With a tiny `--snapshot-count` the member considers compacting its raft log after
/// every 20 entries; values of many sizes, then kill -9, then a graceful restart:
/// every acknowledged write is still there after both.
#[test]
fn kill9_with_a_tiny_snapshot_count_keeps_every_acknowledged_write() {
    let mut s = TestServer::start_with(&["--snapshot-count", "20"]);
    let ctl = s.etcdctl();
    const N: usize = 120;
    let mut last = 0;
    for i in 0..N {
        last = ctl.put_rev(&format!("log/{i:04}"), &"v".repeat(i));
    }
    s.kill9();
    s.restart();
    let v = ctl.json(&["get", "--prefix", "log/", "--keys-only"]);
    assert_eq!(header_revision(&v), last, "store revision survives kill -9");
    assert_eq!(v["count"], N);
    assert_eq!(
        ctl.ok(&["get", "log/0119", "--print-value-only"]),
        format!("{}\n", "v".repeat(119))
    );
    let after = ctl.put_rev("log/after", "x");
    assert_eq!(after, last + 1);
    s.restart();
    assert_eq!(
        ctl.revision(),
        after,
        "a graceful restart after the crash keeps it all"
    );
    assert_eq!(ctl.ok(&["get", "log/after", "--print-value-only"]), "x\n");
}

#[test]
fn graceful_restart_keeps_data_and_compaction() {
    let (mut s, ctl) = start();
    let revs: Vec<i64> = (1..=3)
        .map(|i| ctl.put_rev("k", &format!("v{i}")))
        .collect();
    ctl.ok(&["compaction", &revs[1].to_string()]);
    let current = ctl.revision();
    s.stop();
    assert!(
        ctl.run(&["get", "k", "--dial-timeout=200ms"], None)
            .status
            .code()
            != Some(0)
    );
    s.restart();
    assert_eq!(ctl.revision(), current);
    assert_eq!(ctl.ok(&["get", "k"]), "k\nv3\n");
    assert_eq!(
        ctl.ok(&["get", "k", "--rev", &revs[1].to_string()]),
        "k\nv2\n"
    );
    assert_eq!(
        ctl.fail_error(&["get", "k", "--rev", &revs[0].to_string()]),
        ERR_COMPACTED,
        "the compacted revision survives a restart"
    );
    let v = ctl.json(&["get", "k"]);
    assert_eq!(v["kvs"][0]["version"], 3);
    assert_eq!(ctl.put_rev("k", "v4"), current + 1);
}

// defragmentation and hashes

fn db_size(ctl: &revkv_tests::Etcdctl) -> i64 {
    let v = ctl.json(&["endpoint", "status"]);
    v[0]["Status"]["dbSize"].as_i64().expect("dbSize")
}

#[test]
fn defrag_gives_back_the_space_of_deleted_and_compacted_data() {
    let (s, ctl) = start();
    let value = vec![b'x'; 1 << 20];
    for i in 0..6 {
        // The value comes from stdin when the command line has none.
        ctl.ok_stdin(&["put", &format!("big{i}")], &value);
    }
    ctl.ok(&["del", "big", "--prefix"]);
    let rev = ctl.revision().to_string();
    ctl.ok(&["compaction", "--physical", &rev]);
    let before = db_size(&ctl);
    assert!(before > 4 << 20, "6 MiB written, dbSize {before}");

    assert_eq!(
        ctl.ok(&["defrag"]),
        format!("Finished defragmenting etcd member[{}]\n", s.endpoint())
    );
    let after = db_size(&ctl);
    assert!(after < before / 4, "dbSize {before} -> {after}");
    // Nothing live was lost, and the member goes on serving.
    assert_eq!(ctl.revision().to_string(), rev);
    assert_still_serving(&ctl);
}

fn hash_kv(ctl: &revkv_tests::Etcdctl, rev: i64) -> (u64, i64) {
    let v = ctl.json(&["endpoint", "hashkv", "--rev", &rev.to_string()]);
    let h = &v[0]["HashKV"];
    (
        h["hash"].as_u64().expect("hash"),
        h["compact_revision"].as_i64().unwrap_or(0),
    )
}

#[test]
fn endpoint_hashkv_follows_the_history_up_to_a_revision() {
    let (s, ctl) = start();
    ctl.put_rev("a", "1");
    ctl.put_rev("b", "2");
    let rev = ctl.revision();
    let (h1, _) = hash_kv(&ctl, 0);
    assert_eq!(hash_kv(&ctl, 0).0, h1, "the same data hashes the same");
    assert_eq!(hash_kv(&ctl, rev).0, h1, "0 means the current revision");

    ctl.put_rev("a", "3");
    let (h2, _) = hash_kv(&ctl, 0);
    assert_ne!(h2, h1, "a write changes the hash");
    assert_eq!(hash_kv(&ctl, rev).0, h1, "and not the hash of the past");

    // Simple format: "endpoint, hash".
    let line = ctl.ok(&["endpoint", "hashkv"]);
    assert_eq!(line, format!("{}, {h2}\n", s.endpoint()));

    ctl.ok(&["compaction", &rev.to_string()]);
    assert_eq!(
        hash_kv(&ctl, 0).1,
        rev,
        "the compaction revision is reported"
    );
    let err = ctl.fail(&["endpoint", "hashkv", "--rev", &(rev - 1).to_string()]);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    let err = ctl.fail(&["endpoint", "hashkv", "--rev", "1000"]);
    assert!(
        err.contains("required revision is a future revision"),
        "{err}"
    );
    assert_still_serving(&ctl);
}

/// etcd's Cluster service answers with a header that has no revision (its cluster
/// server never sets one), whatever the store's revision.
#[test]
fn member_answers_carry_a_header_without_a_revision() {
    let (_s, ctl) = start();
    ctl.put_rev("k", "v");
    let no_revision = |v: &serde_json::Value, what: &str| {
        let h = &v["header"];
        assert!(h["cluster_id"].as_u64().is_some(), "{what}: {v}");
        assert!(h["member_id"].as_u64().is_some(), "{what}: {v}");
        assert!(h.get("revision").is_none(), "{what}: {v}");
    };
    no_revision(&ctl.json(&["member", "list"]), "member list");
    let added = ctl.json(&[
        "member",
        "add",
        "extra",
        "--learner",
        "--peer-urls=http://127.0.0.1:1",
    ]);
    no_revision(&added, "member add");
    let id = added["member"]["ID"].as_u64().expect("new member id");
    let hex = format!("{id:x}");
    no_revision(
        &ctl.json(&["member", "update", &hex, "--peer-urls=http://127.0.0.1:2"]),
        "member update",
    );
    no_revision(&ctl.json(&["member", "remove", &hex]), "member remove");
    assert_still_serving(&ctl);
}

// ---------------------------------------------------------------------------
// auth, while it is disabled

/// With authentication off, etcdctl's `--user` (which authenticates before every
/// command) gets etcd's "authentication is not enabled" and goes on without a token,
/// and `auth disable` succeeds.
#[test]
fn credentials_are_ignored_while_authentication_is_off() {
    let (_s, ctl) = start();
    assert_eq!(ctl.ok(&["--user", "root:secret", "put", "k", "v"]), "OK\n");
    assert_eq!(
        ctl.ok(&[
            "--user",
            "root",
            "--password",
            "secret",
            "get",
            "k",
            "--print-value-only"
        ]),
        "v\n"
    );
    assert_eq!(ctl.ok(&["auth", "disable"]), "Authentication Disabled\n");
}

// ---------------------------------------------------------------------------
// quota and alarms

const ERR_NO_SPACE: &str = "Error: etcdserver: mvcc: database space exceeded";

/// Outgrowing `--quota-backend-bytes` raises the NOSPACE alarm; while it holds, writes
/// that add data fail everywhere — even once compaction and defragmentation made room,
/// and across a restart — while reads, deletes and compaction go on; `alarm disarm`
/// ends it.
#[test]
fn quota_raises_a_nospace_alarm_until_disarmed() {
    let mut s = TestServer::start_with(&["--quota-backend-bytes", "1048576"]);
    let ctl = s.etcdctl();
    assert_eq!(ctl.ok(&["alarm", "list"]), "");
    assert_eq!(ctl.json(&["alarm", "list"]), serde_json::json!({}));
    let status = ctl.json(&["endpoint", "status"]);
    let member = status[0]["Status"]["header"]["member_id"]
        .as_u64()
        .expect("member_id");
    assert!(status[0]["Status"].get("errors").is_none(), "{status}");

    let refused = ctl.put_until_refused("big/");
    assert_eq!(refused, ERR_NO_SPACE);

    let alarm = format!("memberID:{member} alarm:NOSPACE \n");
    assert_eq!(ctl.ok(&["alarm", "list"]), alarm);
    // etcd 3.4 answers Alarm without a response header.
    assert_eq!(
        ctl.json(&["alarm", "list"]),
        serde_json::json!({"alarms": [{"memberID": member, "alarm": 1}]})
    );
    let status = ctl.json(&["endpoint", "status"]);
    assert_eq!(
        status[0]["Status"]["errors"],
        serde_json::json!([alarm.trim_end_matches('\n')]),
        "{status}"
    );
    assert!(ctl
        .ok(&["endpoint", "status"])
        .ends_with(&format!(", memberID:{member} alarm:NOSPACE \n")));

    // Capped: nothing that adds data commits, whatever the size now.
    assert_eq!(ctl.fail_error(&["put", "small", "v"]), ERR_NO_SPACE);
    assert_eq!(
        ctl.fail_error(&["lease", "grant", "10"]),
        format!("Error: failed to grant lease ({})", &ERR_NO_SPACE[7..])
    );
    assert_eq!(
        error_line(&ctl.fail_stdin(&["txn"], "\nput t v\n\n\n")),
        ERR_NO_SPACE
    );
    // Reads, read-only txns, deletes and compaction still work.
    assert_eq!(
        ctl.ok_stdin(&["txn"], "\nget big/000 --keys-only\n\n\n"),
        "SUCCESS\n\nbig/000\n\n"
    );
    let deleted: usize = ctl
        .ok(&["del", "--prefix", "big/"])
        .trim()
        .parse()
        .expect("count");
    assert!(deleted > 0);
    let rev = ctl.revision();
    assert_eq!(
        ctl.ok(&["compaction", &rev.to_string()]),
        format!("compacted revision {rev}\n")
    );
    ctl.ok(&["defrag"]);
    assert_eq!(ctl.fail_error(&["put", "small", "v"]), ERR_NO_SPACE);

    // An alarm makes the member report itself unhealthy over HTTP.
    let port = s.client_port();
    let health = || {
        let addr = ([127, 0, 0, 1], port).into();
        let (code, body) = http_get(addr, "/health").expect("GET /health");
        (code, revkv_tests::json(&body))
    };
    assert_eq!(health(), (503, serde_json::json!({"health": "false"})));

    // The alarm is replicated state: it survives a restart.
    s.restart_answering();
    eventually(Duration::from_secs(20), "the alarm after a restart", || {
        ctl.run(&["alarm", "list"], None).stdout == alarm
    });
    assert_eq!(ctl.fail_error(&["put", "small", "v"]), ERR_NO_SPACE);
    assert_eq!(health(), (503, serde_json::json!({"health": "false"})));

    // Disarming answers the alarms it ended; then writes work again.
    assert_eq!(ctl.ok(&["alarm", "disarm"]), alarm);
    assert_eq!(ctl.ok(&["alarm", "list"]), "");
    assert_eq!(ctl.ok(&["alarm", "disarm"]), "");
    assert_eq!(ctl.ok(&["put", "small", "v"]), "OK\n");
    assert_eq!(health(), (200, serde_json::json!({"health": "true"})));
    assert!(ctl.json(&["endpoint", "status"])[0]["Status"]
        .get("errors")
        .is_none());
    assert_still_serving(&ctl);
}
