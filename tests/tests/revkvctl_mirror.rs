//! `revkvctl make-mirror` against stock etcdctl 3.4's. Each CLI mirrors its own source
//! server into its own fresh destination while the same writes go to both sources;
//! the two destinations must end with the same keys, values and revisions (one
//! destination revision per source revision), and the CLIs must print the same and
//! exit the same way.
//!
//! Runs against revkv (default) or real etcd (`REVKV_TEST_TARGET=etcd`).

use std::time::{Duration, Instant};

use revkv_tests::etcdctl::{ctl_command, etcdctl_bin};
use revkv_tests::revkvctl::{revkvctl_bin, run_cli, without_client_logs as quiet, Run};
use revkv_tests::TestServer;

const LIMIT: Duration = Duration::from_secs(20);

fn wait_for_revision(s: &TestServer, rev: i64) {
    let deadline = Instant::now() + LIMIT;
    let ctl = s.etcdctl();
    while ctl.revision() < rev {
        assert!(
            Instant::now() < deadline,
            "destination stuck at revision {} (waiting for {rev})",
            ctl.revision()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `make-mirror <args> <dst>` from `src`; once `dst` holds the base copy (revision
/// `base`), applies `writes` to `src`, waits for `dst` to reach `last`, then kills the
/// mirror (it never ends by itself) and returns what it printed.
fn mirror(
    bin: &std::path::Path,
    src: &mut TestServer,
    dst: &TestServer,
    args: &[&str],
    (base, last): (i64, i64),
    writes: impl FnOnce(&mut TestServer),
) -> Run {
    let dst_ep = dst.endpoint();
    let mut all = args.to_vec();
    all.push(&dst_ep);
    let child = ctl_command(bin, &src.endpoint(), &all, false)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    wait_for_revision(dst, base);
    writes(src);
    wait_for_revision(dst, last);
    // Nothing more may arrive: give a stray write the time to show up.
    std::thread::sleep(Duration::from_millis(300));
    revkv_tests::signal(&child, "-KILL");
    let out = child.wait_with_output().expect("wait");
    quiet(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The destination's keys and values, the revisions of each, and its revision.
fn contents(s: &TestServer) -> serde_json::Value {
    let v = s.etcdctl().json(&["get", "", "--prefix"]);
    serde_json::json!({ "revision": v["header"]["revision"], "kvs": v["kvs"] })
}

fn keys_and_values(s: &TestServer) -> String {
    s.etcdctl().ok(&["get", "", "--prefix"])
}

fn seed(s: &TestServer) {
    let ctl = s.etcdctl();
    ctl.ok(&["put", "a/1", "one"]);
    ctl.ok(&["put", "a/2", "two"]);
    ctl.ok(&["put", "x", "out"]);
}

/// Changes under `a/` (one of them a txn of two puts, one revision) and one outside.
fn changes(s: &TestServer) {
    let ctl = s.etcdctl();
    ctl.ok(&["put", "a/1", "uno"]);
    ctl.ok(&["del", "a/2"]);
    ctl.ok_stdin(
        &["txn"],
        "value(\"x\") = \"out\"\n\nput a/3 three\nput a/4 four\n\n\n",
    );
    ctl.ok(&["put", "x", "skip"]);
    ctl.ok(&["put", "a/5", "five"]);
}

fn more_changes(s: &TestServer) {
    let ctl = s.etcdctl();
    ctl.ok(&["del", "a/1"]);
    ctl.ok(&["put", "x", "again"]);
}

#[test]
fn make_mirror_matches_etcdctl() {
    let (etcdctl, revkvctl) = (etcdctl_bin(), revkvctl_bin());
    let (mut sa, mut sb) = (TestServer::start(), TestServer::start());
    seed(&sa);
    seed(&sb);

    // Argument errors, one of them found only after the source was asked for its
    // revision.
    let (da, db) = (TestServer::start(), TestServer::start());
    for args in [
        vec!["make-mirror"],
        vec!["make-mirror", "a", "b"],
        vec![
            "make-mirror",
            "--dest-prefix",
            "m/",
            "--no-dest-prefix",
            "DST",
        ],
    ] {
        let fix = |ep: String| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if *a == "DST" {
                        ep.clone()
                    } else {
                        (*a).to_owned()
                    }
                })
                .collect()
        };
        let (wa, wb) = (fix(da.endpoint()), fix(db.endpoint()));
        let wa: Vec<&str> = wa.iter().map(String::as_str).collect();
        let wb: Vec<&str> = wb.iter().map(String::as_str).collect();
        // With a global flag from the environment too, which applies once.
        for env in [&[][..], &[("ETCDCTL_DIAL_TIMEOUT", "3s")]] {
            let want = quiet(run_cli(&etcdctl, &sa.endpoint(), &wa, None, env, LIMIT));
            let got = quiet(run_cli(&revkvctl, &sb.endpoint(), &wb, None, env, LIMIT));
            assert_eq!(got, want, "{args:?} with {env:?}");
        }
    }
    assert_eq!(contents(&da)["revision"], 1, "nothing was mirrored");

    // A prefix to another prefix: the base copy (two puts), then one destination
    // revision per source revision under the prefix.
    let args = ["make-mirror", "--prefix", "a/", "--dest-prefix", "m/"];
    let want = mirror(&etcdctl, &mut sa, &da, &args, (3, 7), |s| changes(s));
    let got = mirror(&revkvctl, &mut sb, &db, &args, (3, 7), |s| changes(s));
    assert_eq!(got, want, "what the mirrors printed");
    assert_eq!(got.stdout, "", "the total is printed every 30 s only");
    assert_eq!(contents(&db), contents(&da));
    assert_eq!(
        keys_and_values(&db),
        "m/1\nuno\nm/3\nthree\nm/4\nfour\nm/5\nfive\n"
    );

    // The whole keyspace (no --prefix) under a destination prefix.
    let (da, db) = (TestServer::start(), TestServer::start());
    let args = ["make-mirror", "--dest-prefix", "all/"];
    let want = mirror(&etcdctl, &mut sa, &da, &args, (6, 8), |s| more_changes(s));
    let got = mirror(&revkvctl, &mut sb, &db, &args, (6, 8), |s| more_changes(s));
    assert_eq!(got, want, "what the mirrors printed");
    assert_eq!(contents(&db), contents(&da));
    assert_eq!(
        keys_and_values(&db),
        "all/a/3\nthree\nall/a/4\nfour\nall/a/5\nfive\nall/x\nagain\n"
    );

    // --no-dest-prefix: the prefix comes off.
    let (da, db) = (TestServer::start(), TestServer::start());
    let args = ["make-mirror", "--prefix", "a/", "--no-dest-prefix"];
    let want = mirror(&etcdctl, &mut sa, &da, &args, (4, 4), |_| {});
    let got = mirror(&revkvctl, &mut sb, &db, &args, (4, 4), |_| {});
    assert_eq!(got, want);
    assert_eq!(contents(&db), contents(&da));
    assert_eq!(keys_and_values(&db), "3\nthree\n4\nfour\n5\nfive\n");

    // The source restarted under a running mirror: it watches again from the next
    // revision and misses nothing.
    let (da, db) = (TestServer::start(), TestServer::start());
    let args = ["make-mirror", "--prefix", "a/"];
    let restart_and_put = |s: &mut TestServer| {
        s.restart();
        s.etcdctl().ok(&["put", "a/6", "six"]);
    };
    let want = mirror(&etcdctl, &mut sa, &da, &args, (4, 5), restart_and_put);
    let got = mirror(&revkvctl, &mut sb, &db, &args, (4, 5), restart_and_put);
    assert_eq!(got, want);
    assert_eq!(contents(&db), contents(&da));
    assert_eq!(
        keys_and_values(&db),
        "a/3\nthree\na/4\nfour\na/5\nfive\na/6\nsix\n"
    );
}
