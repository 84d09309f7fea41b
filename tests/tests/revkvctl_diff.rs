//! revkvctl against stock etcdctl 3.4: the same command lines, byte for byte.
//!
//! Each case runs `/usr/bin/etcdctl` (or `$REVKV_ETCDCTL`) and revkvctl and asserts
//! identical stdout, stderr and exit code. Read-only cases share one server. Cases
//! that write run each CLI against its *own* fresh server with the same command
//! history, so revisions line up. Normalizations (only what legitimately differs
//! between the two runs):
//!
//! * N1 — etcdctl's client-side zap log lines on stderr (`{"level":"warn",…}`:
//!   clientv3's retry interceptor and snapshot progress) carry a timestamp and a
//!   random client id; revkvctl logs nothing unless asked, so they are dropped.
//! * N2 — `took` durations of `endpoint health` are timings; replaced by `<took>`.
//! * N3 — (write cases only, two servers) cluster and member IDs, lease IDs,
//!   IDs of added members and the servers' ports differ per server; each is
//!   replaced, in decimal and hex, by a placeholder named after its role.
//! * N4 — (two servers) lists the server orders by random IDs (members by ID,
//!   leases in map order) are compared as sets of lines / of JSON members.
//!
//! Runs against revkv (default) or real etcd (`REVKV_TEST_TARGET=etcd`).

use std::time::Duration;

use revkv_tests::etcdctl::etcdctl_bin;
use revkv_tests::revkvctl::{revkvctl_bin, run_cli, Run};
use revkv_tests::{json, TestServer};

const LIMIT: Duration = Duration::from_secs(20);

/// N1 and N2.
fn normalize(r: &Run) -> Run {
    let stderr: String = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("{\"level\":"))
        .map(|l| format!("{}\n", took(l)))
        .collect();
    let mut stdout: String = r.stdout.split_inclusive('\n').map(took).collect();
    if stdout.contains(" TOOK ") {
        // The took column's width follows the timing: collapse padding and rules.
        stdout = stdout
            .lines()
            .map(|l| {
                let cells: Vec<String> = l.split('|').map(|c| c.trim().to_owned()).collect();
                let mut cells = cells;
                if cells.len() == 6 && cells[2] != "HEALTH" && !cells[3].is_empty() {
                    cells[3] = "<took>".into();
                }
                let joined = cells.join("|");
                let mut out = String::new();
                for ch in joined.chars() {
                    if !(ch == '-' && out.ends_with('-')) {
                        out.push(ch);
                    }
                }
                out + "\n"
            })
            .collect();
    }
    Run {
        code: r.code,
        stdout,
        stderr,
    }
}

/// N2: `took = 1.2ms`, `"took":"1.2ms"`, `"Took" : 1.2ms`, and the table cell.
fn took(line: &str) -> String {
    let mut out = line.to_owned();
    for (pre, post) in [
        ("took = ", "\n"),
        ("\"took\":\"", "\""),
        ("\"Took\" : ", "\n"),
    ] {
        if let Some(i) = out.find(pre) {
            let start = i + pre.len();
            let end = out[start..]
                .find(post)
                .map(|e| start + e)
                .unwrap_or(out.len());
            out.replace_range(start..end, "<took>");
        }
    }
    out
}

/// One command line (and optional stdin) to run with both CLIs.
struct Case {
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
}

fn case(args: &[&str]) -> Case {
    Case {
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        stdin: None,
    }
}

fn with_stdin(args: &[&str], stdin: &str) -> Case {
    Case {
        stdin: Some(stdin.as_bytes().to_vec()),
        ..case(args)
    }
}

fn run(bin: &std::path::Path, ep: &str, c: &Case) -> Run {
    let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
    normalize(&run_cli(bin, ep, &args, c.stdin.as_deref(), &[], LIMIT))
}

#[track_caller]
fn assert_same(c: &Case, want: &Run, got: &Run) {
    assert_eq!(
        got, want,
        "revkvctl differs from etcdctl for {:?} (stdin {:?})\n--- etcdctl stdout ---\n{}\n--- revkvctl stdout ---\n{}\n--- etcdctl stderr ---\n{}\n--- revkvctl stderr ---\n{}",
        c.args,
        c.stdin.as_ref().map(|s| String::from_utf8_lossy(s).into_owned()),
        want.stdout,
        got.stdout,
        want.stderr,
        got.stderr
    );
}

fn formats() -> [&'static str; 4] {
    ["simple", "json", "fields", "table"]
}

/// Read-only command lines (and errors caught before any write), both CLIs against
/// one server.
#[test]
fn read_only_commands_match_etcdctl() {
    let s = TestServer::start();
    let ep = s.endpoint();
    let ctl = s.etcdctl();
    ctl.ok(&["put", "foo", "bar"]);
    ctl.ok(&["put", "foo", "bar2"]);
    ctl.ok(&["put", "dir/a", "1"]);
    ctl.ok(&["put", "dir/b", "line1\nline2 \"q\" <&>"]);
    ctl.ok(&["put", "dir/c", ""]);
    ctl.ok(&["put", "ключ", "värde"]);
    let lease = ctl.ok(&["lease", "grant", "1000"]);
    let lease_id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_owned();
    ctl.ok(&["put", "leased", "v", "--lease", &lease_id]);

    let mut cases = Vec::new();
    for w in formats() {
        for args in [
            vec!["get", "foo"],
            vec!["get", "missing"],
            vec!["get", "dir/", "--prefix"],
            vec!["get", "", "--prefix", "--keys-only"],
            vec!["get", "", "--from-key", "--limit=2"],
            vec!["get", "dir/a", "dir/c"],
            vec!["get", "foo", "--rev=2"],
            vec![
                "get",
                "dir/",
                "--prefix",
                "--order=DESCEND",
                "--sort-by=MODIFY",
            ],
            vec!["get", "dir/", "--prefix", "--sort-by=value"],
            vec!["get", "foo", "--consistency=s"],
            vec!["get", "ключ", "--hex"],
            vec!["get", "leased"],
            vec!["get", "foo", "--rev=1000"],
            vec!["member", "list"],
            vec!["endpoint", "status"],
            vec!["endpoint", "health"],
            vec!["endpoint", "hashkv"],
            vec!["endpoint", "hashkv", "--rev=1000"],
            vec!["lease", "list"],
            vec!["lease", "timetolive", "1234"],
            vec!["lease", "timetolive", "1234", "--keys"],
            vec!["version"],
            vec!["lease", "revoke", "1234"],
            vec!["lease", "keep-alive", "--once", "1234"],
            vec!["member", "remove", "1234"],
            vec!["member", "update", "1234", "--peer-urls=http://127.0.0.1:1"],
            vec!["member", "promote", "1234"],
            vec!["move-leader", "1234"],
        ] {
            let mut a = args.clone();
            a.extend(["-w", w]);
            cases.push(case(&a));
        }
    }
    // `alarm list -w fields` crashes etcdctl 3.4 (nil header), so not that format.
    for w in ["simple", "json", "table"] {
        cases.push(case(&["alarm", "list", "-w", w]));
    }
    // Grants (and prints nothing but the error).
    cases.push(case(&["lease", "grant", "100", "-w", "table"]));
    for args in [
        // Argument errors (etcdctl's wording and exit codes).
        &["get"][..],
        &["get", "a", "--prefix", "--from-key"],
        &["get", "a", "b", "--prefix"],
        &["get", "a", "--order=x"],
        &["get", "a", "--sort-by=x"],
        &["get", "a", "--consistency=x"],
        &["get", "a", "-w", "bogus"],
        &["get", "foo", "--print-value-only"],
        &["get", "dir/", "--prefix", "--print-value-only", "--hex"],
        &["get", "foo", "--print-value-only", "-w", "json"],
        &["put"],
        &["put", "k"],
        &["put", "k", "v", "--ignore-value"],
        &["put", "k", "v", "--lease=zz"],
        &["del"],
        &["del", "a", "b", "--prefix"],
        &["txn", "extra"],
        &["compaction"],
        &["compaction", "x"],
        &["compaction", "1000"],
        &["lease", "grant"],
        &["lease", "grant", "x"],
        &["lease", "revoke"],
        &["lease", "revoke", "zz"],
        &["lease", "timetolive"],
        &["lease", "keep-alive"],
        &["member", "add"],
        &["member", "add", "x"],
        &["member", "remove"],
        &["member", "remove", "zz"],
        &["member", "update", "1"],
        &["move-leader"],
        &["snapshot", "save"],
        &["watch"],
        &["watch", "k", "--"],
        &["watch", "a", "b", "--prefix"],
        &["compact", "x"],
        &["mem", "li"],
        // Flag errors print the usage on stdout.
        &["get", "foo", "--bogus"],
        &["put", "--lease"],
        &["--dial-timeout=x", "get", "foo"],
        &["bogus"],
        &[
            "get",
            "foo",
            "--endpoints",
            "127.0.0.1:1",
            "--command-timeout=300ms",
        ],
        &[
            "endpoint",
            "health",
            "--endpoints",
            "127.0.0.1:1",
            "--command-timeout=300ms",
        ],
        &[
            "endpoint",
            "status",
            "--endpoints",
            "127.0.0.1:1",
            "--command-timeout=300ms",
        ],
    ] {
        cases.push(case(args));
    }
    for (input, w) in [
        ("bogus\n", "simple"),
        ("version(\"foo\") = \"x\"\n", "simple"),
        ("mod(\"foo\")\n", "simple"),
        ("val(\"k\")=\"x\"\n", "simple"),
        ("\n\nget\n\n", "simple"),
        ("\n\n", "json"),
        (
            "mod(\"foo\") > \"0\"\n\nget foo\nget dir/ --prefix --limit=1\n\nget missing\n\n",
            "simple",
        ),
        (
            "mod(\"foo\") > \"0\"\n\nget foo\nget dir/ --prefix --limit=1\n\nget missing\n\n",
            "json",
        ),
        (
            "mod(\"foo\") > \"0\"\n\nget foo\nget dir/ --prefix --limit=1\n\nget missing\n\n",
            "fields",
        ),
        (
            "value(\"foo\") = \"nope\"\n\nget foo\n\nget foo --keys-only\n\n",
            "simple",
        ),
    ] {
        cases.push(with_stdin(&["txn", "-w", w], input));
    }
    cases.push(with_stdin(
        &["txn", "-i"],
        "ver(\"foo\") = \"2\"\n\nget foo\n\n\n",
    ));

    let (etcdctl, revkvctl) = (etcdctl_bin(), revkvctl_bin());
    for c in &cases {
        let want = run(&etcdctl, &ep, c);
        let got = run(&revkvctl, &ep, c);
        assert_same(c, &want, &got);
    }
}

/// N3: server-specific IDs, found in `endpoint status -w json`.
struct Ids {
    subst: Vec<(String, String)>,
}

impl Ids {
    fn of(s: &TestServer) -> Ids {
        let v = s.etcdctl().json(&["endpoint", "status"]);
        let h = &v[0]["Status"]["header"];
        let mut ids = Ids { subst: Vec::new() };
        // Each server listens on its own ports.
        ids.subst
            .push((format!(":{}", s.peer_port()), ":<PEER-PORT>".into()));
        ids.subst
            .push((format!(":{}", s.client_port()), ":<CLIENT-PORT>".into()));
        ids.add(h["cluster_id"].as_u64().expect("cluster_id"), "CLUSTER");
        ids.add(h["member_id"].as_u64().expect("member_id"), "MEMBER");
        ids
    }

    fn add(&mut self, id: u64, name: &str) {
        self.subst.push((id.to_string(), format!("<{name}>")));
        self.subst
            .push((format!("{id:016x}"), format!("<{name}-hex>")));
        // `%16x` pads with spaces: replace the padded form before the bare one.
        self.subst
            .push((format!("{id:16x}"), format!("<{name}-hex>")));
        self.subst
            .push((format!("{id:x}"), format!("<{name}-hex>")));
    }

    /// Learns IDs printed by `lease grant` / `member add`.
    fn learn(&mut self, out: &str) {
        if out.contains("\"TTL\" : ") {
            for l in out.lines() {
                if let Some(id) = l
                    .strip_prefix("\"ID\" : ")
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    let n = self.subst.len();
                    self.add(id, &format!("LEASE{n}"));
                }
            }
        }
        if let Some(rest) = out.strip_prefix("lease ") {
            if let Some(hex) = rest.split_whitespace().next() {
                if let Ok(id) = u64::from_str_radix(hex, 16) {
                    let n = self.subst.len();
                    self.add(id, &format!("LEASE{n}"));
                }
            }
        }
        if let Some(rest) = out.strip_prefix("Member ") {
            if let Some(hex) = rest.split_whitespace().next() {
                if let Ok(id) = u64::from_str_radix(hex, 16) {
                    let n = self.subst.len();
                    self.add(id, &format!("NEWMEMBER{n}"));
                }
            }
        }
    }

    fn apply(&self, r: &Run) -> Run {
        let f = |s: &str| {
            let mut s = s.to_owned();
            for (from, to) in &self.subst {
                s = s.replace(from.as_str(), to);
            }
            if s.contains("-hex>") && s.starts_with('+') {
                s = table_unpadded(&s);
            }
            s
        };
        Run {
            code: r.code,
            stdout: f(&r.stdout),
            stderr: f(&r.stderr),
        }
    }
}

/// A table's column width follows its widest cell, and a random hex ID is 15
/// digits one time in 16: once IDs are placeholders, compare tables without
/// their padding (cells trimmed, border runs collapsed).
fn table_unpadded(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.starts_with('+') {
                l.split('+')
                    .map(|c| if c.is_empty() { "" } else { "-" })
                    .collect::<Vec<_>>()
                    .join("+")
            } else {
                l.split('|').map(str::trim).collect::<Vec<_>>().join("|")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if s.ends_with('\n') { "\n" } else { "" }
}

/// Runs the same history with each CLI on its own fresh server; `args` may name
/// the placeholder `{LEASE}` (the lease each CLI granted last).
fn diff_history(history: &[Case], sort_members: bool) {
    let (etcdctl, revkvctl) = (etcdctl_bin(), revkvctl_bin());
    let (sa, sb) = (TestServer::start(), TestServer::start());
    let (mut ia, mut ib) = (Ids::of(&sa), Ids::of(&sb));
    let (mut lease_a, mut lease_b) = (String::new(), String::new());
    for c in history {
        let subst = |lease: &str| Case {
            args: c.args.iter().map(|a| a.replace("{LEASE}", lease)).collect(),
            stdin: c.stdin.clone(),
        };
        let (ca, cb) = (subst(&lease_a), subst(&lease_b));
        let want = run(&etcdctl, &sa.endpoint(), &ca);
        let got = run(&revkvctl, &sb.endpoint(), &cb);
        for (r, ids, lease) in [
            (&want, &mut ia, &mut lease_a),
            (&got, &mut ib, &mut lease_b),
        ] {
            ids.learn(&r.stdout);
            if r.stdout.starts_with("lease ") && r.stdout.contains("granted with TTL") {
                *lease = r
                    .stdout
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
            }
            if let Some(v) = r
                .stdout
                .strip_suffix('\n')
                .filter(|s| s.starts_with('{') && s.contains("\"TTL\""))
            {
                if let Some(id) = json(v)["ID"].as_u64() {
                    *lease = format!("{id:x}");
                    ids.add(id, "LEASEJ");
                }
            }
        }
        let (want, got) = (ia.apply(&want), ib.apply(&got));
        // etcd lists leases in map order.
        if sort_members || c.args.starts_with(&["lease".to_owned(), "list".to_owned()]) {
            assert_same(c, &member_order(&want), &member_order(&got));
        } else {
            assert_same(c, &want, &got);
        }
    }
}

/// N4 (member cases only): servers list members by ID, and the ID of an added
/// member is random, so the order of members is compared as a set: lines sorted,
/// comma-separated lists sorted, JSON member arrays sorted.
fn member_order(r: &Run) -> Run {
    let mut lines: Vec<String> = r
        .stdout
        .lines()
        .map(|l| {
            if l.starts_with('{') {
                // IDs are placeholders now (not JSON numbers): sort the member objects
                // as text, each without the separators and closing brackets that
                // depend on where in the array it sits.
                let mut parts: Vec<&str> = l
                    .split("{\"ID\":")
                    .map(|p| p.trim_end_matches([',', ']', '}']))
                    .collect();
                parts.sort_unstable();
                parts.join(" | ")
            } else if let Some((k, list)) = l.split_once('=') {
                let mut parts: Vec<&str> = list.trim_matches('"').split(',').collect();
                parts.sort_unstable();
                format!("{k}={}", parts.join(","))
            } else {
                l.to_owned()
            }
        })
        .collect();
    lines.sort();
    Run {
        code: r.code,
        stdout: lines.join("\n"),
        stderr: r.stderr.clone(),
    }
}

#[test]
fn kv_writes_match_etcdctl() {
    let mut h = Vec::new();
    for w in formats() {
        h.push(case(&["put", "foo", &format!("v-{w}"), "-w", w]));
        h.push(case(&["put", "foo", "again", "--prev-kv", "-w", w]));
        h.push(case(&["get", "foo", "-w", w]));
        h.push(case(&["put", &format!("d/{w}/1"), "x", "-w", w]));
        h.push(case(&["put", &format!("d/{w}/2"), "y", "-w", w]));
        h.push(case(&[
            "del",
            &format!("d/{w}/"),
            "--prefix",
            "--prev-kv",
            "-w",
            w,
        ]));
        h.push(case(&["del", "nothing", "-w", w]));
        h.push(with_stdin(
            &["txn", "-w", w],
            "mod(\"foo\") > \"0\"\n\nput t1 v1\nget foo\ndel t1\n\nput t2 v2\n\n",
        ));
        h.push(with_stdin(
            &["txn", "-w", w],
            "value(\"foo\") = \"zz\"\n\nput a b\n\nget foo\nput t3 d --prev-kv\n\n",
        ));
    }
    h.push(with_stdin(&["put", "stdin"], "from stdin\n"));
    h.push(case(&["get", "stdin", "--print-value-only"]));
    h.push(case(&["put", "stdin", "--ignore-value"]));
    h.push(case(&["put", "", "x"]));
    h.push(with_stdin(
        &["txn", "-i"],
        "\n\nput 'abcdef' 'x y' --prev-kv\n\n\n",
    ));
    h.push(case(&["get", "", "--prefix"]));
    h.push(with_stdin(&["txn"], "\n\nput dup 1\nput dup 2\n\n\n"));
    h.push(case(&["compaction", "3"]));
    h.push(case(&["compaction", "3"]));
    h.push(case(&["compaction", "5", "--physical", "-w", "json"]));
    h.push(case(&["get", "foo", "--rev=2"]));
    // A compacted watch ends by itself (exit 5), in every format.
    for w in formats() {
        h.push(case(&["watch", "foo", "--rev=2", "-w", w]));
    }
    diff_history(&h, false);
}

#[test]
fn lease_commands_match_etcdctl() {
    let mut h = Vec::new();
    // Not `-w table`: that grant fails to print but still creates a lease whose ID
    // nobody saw (the read-only test covers the table error).
    for w in ["simple", "json", "fields"] {
        h.push(case(&["lease", "grant", "100", "-w", w]));
        h.push(case(&["lease", "grant", "200"]));
        h.push(case(&["put", &format!("lk-{w}"), "v", "--lease={LEASE}"]));
        h.push(case(&["lease", "timetolive", "{LEASE}", "--keys", "-w", w]));
        h.push(case(&["lease", "keep-alive", "--once", "{LEASE}", "-w", w]));
        h.push(case(&["get", &format!("lk-{w}"), "-w", w]));
        h.push(case(&["lease", "revoke", "{LEASE}", "-w", w]));
        h.push(case(&["lease", "revoke", "{LEASE}", "-w", w]));
        h.push(case(&["lease", "keep-alive", "--once", "{LEASE}", "-w", w]));
    }
    h.push(case(&["lease", "list"]));
    diff_history(&h, false);
}

#[test]
fn member_commands_match_etcdctl() {
    let mut h = Vec::new();
    h.push(case(&[
        "member",
        "add",
        "l1",
        "--learner",
        "--peer-urls=http://127.0.0.1:1",
    ]));
    for w in formats() {
        h.push(case(&["member", "list", "-w", w]));
    }
    h.push(case(&[
        "member",
        "add",
        "l2",
        "--learner",
        "--peer-urls=http://127.0.0.1:2",
    ]));
    h.push(case(&[
        "member",
        "add",
        "l2",
        "--learner",
        "--peer-urls=http://127.0.0.1:2",
        "-w",
        "fields",
    ]));
    diff_history(&h, true);
}

/// `watch` with an exec command and live events: bounded runs compared on output.
#[test]
fn watch_matches_etcdctl() {
    let (etcdctl, revkvctl) = (etcdctl_bin(), revkvctl_bin());
    let s = TestServer::start();
    let ctl = s.etcdctl();
    ctl.ok(&["put", "w1", "a"]);
    ctl.ok(&["put", "w1", "b"]);
    ctl.ok(&["del", "w1"]);
    ctl.ok(&["put", "w2", "c d"]);
    for args in [
        &["watch", "w1", "--rev=2", "--prev-kv"][..],
        &["watch", "w", "--prefix", "--rev=2", "-w", "json"],
        &["watch", "w", "--prefix", "--rev=2", "-w", "fields"],
        &["watch", "w1", "w3", "--rev=2", "--hex"],
        &["watch", "w", "--prefix", "--rev=2", "--", "sh", "-c", "echo \"$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\""],
    ] {
        let c = case(args);
        let a: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let limit = Duration::from_millis(1500);
        let want = normalize(&run_cli(&etcdctl, &s.endpoint(), &a, None, &[], limit));
        let got = normalize(&run_cli(&revkvctl, &s.endpoint(), &a, None, &[], limit));
        assert_eq!(got.stdout, want.stdout, "{args:?}");
        assert_eq!(got.stderr, want.stderr, "{args:?}");
    }
}

#[test]
fn tables_compare_without_id_width() {
    let wide =
        "+------------------+-------+\n|        ID        | NAME  |\n| <MEMBER-hex> | default |\n";
    let narrow =
        "+-----------------+-------+\n|       ID        | NAME  |\n|<MEMBER-hex> | default |\n";
    assert_eq!(table_unpadded(wide), table_unpadded(narrow));
    assert_eq!(
        table_unpadded(wide),
        "+-+-+\n|ID|NAME|\n|<MEMBER-hex>|default|\n"
    );
}

/// `<name>/<lease in hex>` keys name a session lease each CLI granted on its own
/// server: the hex is replaced by `<lease>`.
fn lease_keys(r: &Run, names: &[&str]) -> Run {
    let fix = |s: &str| {
        let mut out = s.to_owned();
        for name in names {
            let pre = format!("{name}/");
            let mut from = 0;
            while let Some(i) = out[from..].find(&pre) {
                let start = from + i + pre.len();
                let end = out[start..]
                    .find(|c: char| !c.is_ascii_hexdigit())
                    .map_or(out.len(), |n| start + n);
                out.replace_range(start..end, "<lease>");
                from = start;
            }
        }
        out
    };
    Run {
        code: r.code,
        stdout: fix(&r.stdout),
        stderr: fix(&r.stderr),
    }
}

/// Runs a command that holds on until a signal: waits until it printed `lines`
/// lines, sends SIGINT, and returns what it printed and how it exited.
fn until_sigint(bin: &std::path::Path, ep: &str, args: &[&str], lines: usize) -> Run {
    use std::io::{BufRead, Read};
    let mut child = revkv_tests::etcdctl::ctl_command(bin, ep, args, false)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut so = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut stdout = String::new();
    for _ in 0..lines {
        so.read_line(&mut stdout).expect("read a line");
    }
    revkv_tests::signal(&child, "-INT");
    let status = child.wait().expect("wait");
    let _ = so.read_to_string(&mut stdout);
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    normalize(&Run {
        code: status.code(),
        stdout,
        stderr,
    })
}

#[test]
fn lock_and_elect_match_etcdctl() {
    let (etcdctl, revkvctl) = (etcdctl_bin(), revkvctl_bin());
    let (sa, sb) = (TestServer::start(), TestServer::start());
    let (ia, ib) = (Ids::of(&sa), Ids::of(&sb));
    let names = ["door", "vote"];
    let cases = [
        case(&["lock"]),
        case(&[
            "lock",
            "door",
            "--",
            "sh",
            "-c",
            "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV",
        ]),
        case(&["lock", "door", "--", "sh", "-c", "exit 3"]),
        case(&["elect"]),
        case(&["elect", "vote"]),
        case(&["elect", "-l", "vote", "yes"]),
        case(&["elect", "vote", "yes", "extra"]),
        case(&["get", "--prefix", "door/", "-w", "json"]),
    ];
    for c in &cases {
        let want = ia.apply(&lease_keys(&run(&etcdctl, &sa.endpoint(), c), &names));
        let got = ib.apply(&lease_keys(&run(&revkvctl, &sb.endpoint(), c), &names));
        assert_same(c, &want, &got);
    }
    // Held until SIGINT: the key (and its empty value) printed as `get` prints it,
    // then released on the signal with a clean exit.
    for (args, lines) in [
        (&["lock", "door"][..], 2),
        (&["elect", "vote", "yes"][..], 2),
    ] {
        let c = case(args);
        let want = lease_keys(&until_sigint(&etcdctl, &sa.endpoint(), args, lines), &names);
        let got = lease_keys(
            &until_sigint(&revkvctl, &sb.endpoint(), args, lines),
            &names,
        );
        assert_same(&c, &want, &got);
    }
    let gone = case(&["get", "--prefix", "door/", "--keys-only"]);
    let want = run(&etcdctl, &sa.endpoint(), &gone);
    assert_eq!(want.stdout, "", "the lock is released");
    assert_same(&gone, &want, &run(&revkvctl, &sb.endpoint(), &gone));
}
