//! Watch behaviour as observed through the stock `etcdctl` 3.4 (API v3).
//!
//! `etcdctl watch` runs until killed, so each test runs it as a child process, reads its
//! stdout line by line with a generous deadline, and kills it at the end. Every
//! expectation is etcd's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd` and must pass unchanged against revkv.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use revkv_tests::etcdctl::{ETCDCTL_BIN, ETCDCTL_BIN_ENV};
use revkv_tests::{json, Etcdctl, TestServer};

/// Deadline for output that should appear at once; generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

/// A running `etcdctl watch ...`; killed when dropped.
struct WatchProc {
    child: Child,
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl WatchProc {
    fn spawn(ctl: &Etcdctl, args: &[&str]) -> WatchProc {
        let bin = std::env::var_os(ETCDCTL_BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(ETCDCTL_BIN));
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", ctl.endpoint()))
            .arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn etcdctl watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        WatchProc {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next stdout line, or `None` at EOF or after `timeout`.
    fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Reads exactly `expected.len()` lines and compares them.
    #[track_caller]
    fn expect_lines(&self, expected: &[&str]) {
        let mut got = Vec::new();
        while got.len() < expected.len() {
            match self.line(WAIT) {
                Some(l) => got.push(l),
                None => break,
            }
        }
        assert_eq!(got, expected, "etcdctl watch output");
    }

    /// Waits (bounded) for the process to exit; returns its status, remaining stdout
    /// and stderr.
    fn wait_exit(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "etcdctl watch did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        while let Some(l) = self.line(Duration::from_secs(5)) {
            out.push_str(&l);
            out.push('\n');
        }
        let err = self
            .stderr
            .take()
            .map(|t| t.join().expect("stderr reader"))
            .unwrap_or_default();
        (status, out, err)
    }
}

impl Drop for WatchProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> (TestServer, Etcdctl) {
    let server = TestServer::start();
    let ctl = server.etcdctl();
    (server, ctl)
}

#[test]
fn watch_rev_replays_history_then_follows_new_writes() {
    let (_s, ctl) = start();
    assert_eq!(ctl.put_rev("foo", "a"), 2);
    ctl.put_rev("foo", "b"); // 3
    ctl.put_rev("foo/x", "1"); // 4: another key
    assert_eq!(ctl.ok(&["del", "foo"]), "1\n"); // 5

    let w = WatchProc::spawn(&ctl, &["--rev", "1", "foo"]);
    w.expect_lines(&["PUT", "foo", "a", "PUT", "foo", "b", "DELETE", "foo", ""]);
    ctl.put_rev("foo", "c"); // 6
    w.expect_lines(&["PUT", "foo", "c"]);

    // From the middle of history: only revisions at or after it.
    let mid = WatchProc::spawn(&ctl, &["--rev", "3", "foo"]);
    mid.expect_lines(&["PUT", "foo", "b", "DELETE", "foo", "", "PUT", "foo", "c"]);

    // JSON shows one response per catch-up batch with the full key-values.
    let j = WatchProc::spawn(&ctl, &["--rev", "2", "foo", "-w", "json"]);
    let line = j.line(WAIT).expect("json line");
    let v = json(&line);
    let events = v["Events"].as_array().expect("events");
    assert_eq!(events.len(), 4, "{v}");
    assert_eq!(events[0]["kv"]["value"], revkv_tests::b64("a"));
    assert_eq!(events[0]["kv"]["create_revision"], 2);
    assert_eq!(events[1]["kv"]["version"], 2);
    // DELETE (type 1) carries the key and its revision only.
    assert_eq!(events[2]["type"], 1);
    assert_eq!(
        events[2]["kv"],
        serde_json::json!({"key": revkv_tests::b64("foo"), "mod_revision": 5})
    );
    assert_eq!(events[3]["kv"]["create_revision"], 6);
    assert!(v["Header"]["revision"].as_i64().expect("revision") >= 6);
}

#[test]
fn watch_prefix_prev_kv_prints_previous_values() {
    let (_s, ctl) = start();
    ctl.put_rev("svc/a", "1"); // 2
    ctl.put_rev("other", "x"); // 3
    ctl.put_rev("svc/a", "2"); // 4
    ctl.put_rev("svc/b", "1"); // 5
    assert_eq!(ctl.ok(&["del", "svc/a"]), "1\n"); // 6

    let w = WatchProc::spawn(&ctl, &["--prefix", "--prev-kv", "--rev", "2", "svc/"]);
    // With --prev-kv etcdctl prints the previous key and value before the new ones
    // (nothing for a creation).
    w.expect_lines(&[
        "PUT", "svc/a", "1", // create: no prev
        "PUT", "svc/a", "1", "svc/a", "2", // update: prev then new
        "PUT", "svc/b", "1", // create
        "DELETE", "svc/a", "2", "svc/a", "", // delete: prev then the key
    ]);
    // Live events get prev_kv too.
    ctl.put_rev("svc/b", "2");
    w.expect_lines(&["PUT", "svc/b", "1", "svc/b", "2"]);

    // Without --prev-kv the same history prints no previous values.
    let plain = WatchProc::spawn(&ctl, &["--prefix", "--rev", "4", "svc/"]);
    plain.expect_lines(&[
        "PUT", "svc/a", "2", "PUT", "svc/b", "1", "DELETE", "svc/a", "", "PUT", "svc/b", "2",
    ]);
}

#[test]
fn compaction_cancels_a_watch_from_an_older_revision() {
    let (_s, ctl) = start();
    for v in ["a", "b", "c", "d"] {
        ctl.put_rev("foo", v); // 2..=5
    }
    assert_eq!(ctl.ok(&["compact", "4"]), "compacted revision 4\n");

    let w = WatchProc::spawn(&ctl, &["--rev", "2", "foo"]);
    let (status, out, err) = w.wait_exit();
    assert_eq!(status.code(), Some(5), "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
         Error: watch is canceled by the server\n"
    );

    // The canceled response carries compact_revision (and, as etcd, no header revision).
    let w = WatchProc::spawn(&ctl, &["--rev", "3", "foo", "-w", "json"]);
    let (status, out, _) = w.wait_exit();
    assert_eq!(status.code(), Some(5));
    let v = json(out.lines().next().expect("json line"));
    assert_eq!(v["CompactRevision"], 4, "{v}");
    assert_eq!(v["Canceled"], true, "{v}");
    assert_eq!(v["Events"], serde_json::json!([]), "{v}");
    assert!(v["Header"].get("revision").is_none(), "{v}");

    // From the compaction revision on, history is still there.
    let ok = WatchProc::spawn(&ctl, &["--rev", "4", "foo"]);
    ok.expect_lines(&["PUT", "foo", "c", "PUT", "foo", "d"]);
}

/// Reads one simple-format event (no prev_kv, single-line values): type, key, value.
fn event(w: &WatchProc) -> (String, String, String) {
    let next = || w.line(WAIT).expect("watch output ended early");
    (next(), next(), next())
}

#[test]
fn a_live_watch_sees_put_then_delete() {
    let (_s, ctl) = start();
    let w = WatchProc::spawn(&ctl, &["--prefix", "live/"]);
    // The watch is in place once it reports a write; until then keep writing a
    // sentinel (the process may still be connecting).
    let mut sentinels = 0;
    let deadline = Instant::now() + WAIT;
    let first_line = loop {
        assert!(
            Instant::now() < deadline,
            "watch never reported the sentinel"
        );
        sentinels += 1;
        ctl.put_rev("live/ready", &sentinels.to_string());
        if let Some(l) = w.line(Duration::from_millis(500)) {
            break l;
        }
    };
    let first = (
        first_line,
        w.line(WAIT).expect("key"),
        w.line(WAIT).expect("value"),
    );
    ctl.put_rev("live/key", "v");
    assert_eq!(ctl.ok(&["del", "live/key"]), "1\n");
    let mut events = vec![first];
    while !events.iter().any(|(t, _, _)| t == "DELETE") {
        events.push(event(&w));
    }
    // The sentinel writes from the first one seen, in order, then the put and the
    // delete, each exactly once.
    let first_seen: usize = events[0].2.parse().expect("sentinel number");
    let mut expected: Vec<(String, String, String)> = (first_seen..=sentinels)
        .map(|i| ("PUT".into(), "live/ready".into(), i.to_string()))
        .collect();
    expected.push(("PUT".into(), "live/key".into(), "v".into()));
    expected.push(("DELETE".into(), "live/key".into(), String::new()));
    assert_eq!(events, expected);
    assert!(w.line(Duration::from_millis(300)).is_none(), "nothing more");
}

/// `lease grant 3`, `put --lease`, wait: the watch sees the PUT and then, once the lease
/// expires, the DELETE of the same key at a later revision.
#[test]
fn a_watch_sees_the_delete_when_a_lease_expires() {
    let (_s, ctl) = start();
    let granted = ctl.ok(&["lease", "grant", "3"]);
    // "lease 694d7a5c8e1f2a03 granted with TTL(3s)"
    let id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id in grant output")
        .to_string();
    let put_rev = ctl.put_rev("exp/k", "v");
    ctl.ok(&["put", "--lease", &id, "exp/k", "leased"]);
    // From the first put's revision, so the watch cannot miss anything while it starts.
    let w = WatchProc::spawn(&ctl, &["--rev", &put_rev.to_string(), "--prefix", "exp/"]);
    assert_eq!(event(&w), ("PUT".into(), "exp/k".into(), "v".into()));
    assert_eq!(event(&w), ("PUT".into(), "exp/k".into(), "leased".into()));
    let started = Instant::now();
    assert_eq!(event(&w), ("DELETE".into(), "exp/k".into(), String::new()));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "deleted long before the 3 s TTL ran out"
    );
    assert!(ctl.ok(&["get", "exp/k"]).is_empty());
}
