//! KV behaviour as observed through the stock `etcdctl` 3.4 (API v3).
//!
//! Every expectation here is etcd's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd` and must pass unchanged against revkv.
//! Each test starts its own single-member server on free ports.

use revkv_tests::{b64, error_line, header_revision, json_i64, unb64, Etcdctl, TestServer};
use serde_json::{json, Value};

const ERR_KEY_NOT_FOUND: &str = "Error: etcdserver: key not found";
const ERR_EMPTY_KEY: &str = "Error: etcdserver: key is not provided";
const ERR_COMPACTED: &str = "Error: etcdserver: mvcc: required revision has been compacted";
const ERR_FUTURE_REV: &str = "Error: etcdserver: mvcc: required revision is a future revision";
const ERR_TOO_LARGE: &str = "Error: etcdserver: request is too large";
const ERR_DUP_KEY: &str = "Error: etcdserver: duplicate key given in txn request";

fn start() -> (TestServer, Etcdctl) {
    let server = TestServer::start();
    let ctl = server.etcdctl();
    (server, ctl)
}

/// Decoded keys of a `get -w json` document (empty if `kvs` is absent).
fn json_keys(v: &Value) -> Vec<String> {
    v.get("kvs")
        .and_then(Value::as_array)
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    let k = kv["key"].as_str().expect("key is a base64 string");
                    String::from_utf8(unb64(k)).expect("utf8 key")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The keys printed by `get --keys-only` (simple format: each key followed by
/// an empty line).
fn keys_only(ctl: &Etcdctl, args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.push("--keys-only");
    let out = ctl.ok(&a);
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sorted field names of a JSON object.
fn fields(v: &Value) -> Vec<&str> {
    let mut f: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    f.sort_unstable();
    f
}

/// Asserts the server still serves reads and writes (used after errors).
#[track_caller]
fn assert_still_serving(ctl: &Etcdctl) {
    assert_eq!(ctl.ok(&["put", "still/alive", "yes"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "still/alive"]), "still/alive\nyes\n");
}

// ---------------------------------------------------------------------------
// put / get basics

#[test]
fn put_prints_ok_and_get_prints_key_then_value() {
    let (_s, ctl) = start();
    assert_eq!(ctl.ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "foo"]), "foo\nbar\n");
    // A missing key prints nothing and succeeds.
    assert_eq!(ctl.ok(&["get", "missing"]), "");
    // Overwrite.
    assert_eq!(ctl.ok(&["put", "foo", "baz"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "foo"]), "foo\nbaz\n");
    // Spaces and newlines are kept verbatim.
    assert_eq!(ctl.ok(&["put", "a b", "c d"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "a b"]), "a b\nc d\n");
    assert_eq!(ctl.ok(&["put", "multi", "line1\nline2"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "multi"]), "multi\nline1\nline2\n");
    // Without a value argument etcdctl reads the value from stdin, verbatim.
    assert_eq!(ctl.ok_stdin(&["put", "stdin"], "from stdin\n"), "OK\n");
    assert_eq!(
        ctl.ok(&["get", "stdin", "--print-value-only"]),
        "from stdin\n\n"
    );
    // Serializable reads see the same data on a single member.
    assert_eq!(ctl.ok(&["get", "foo", "--consistency=s"]), "foo\nbaz\n");
}

#[test]
fn fresh_store_is_at_revision_1_and_first_put_makes_revision_2() {
    let (_s, ctl) = start();
    let empty = ctl.json(&["get", "foo"]);
    // Zero-valued fields are omitted by etcdctl's JSON printer: no kvs, no
    // count, no more.
    assert_eq!(fields(&empty), ["header"], "{empty}");
    assert_eq!(
        fields(&empty["header"]),
        ["cluster_id", "member_id", "raft_term", "revision"],
        "{empty}"
    );
    assert_eq!(header_revision(&empty), 1);
    assert!(json_i64(&empty, &["header", "raft_term"]) >= 1);
    assert!(empty["header"]["cluster_id"].as_u64().expect("cluster_id") > 0);
    assert!(empty["header"]["member_id"].as_u64().expect("member_id") > 0);

    // `put -w json` prints only the header (no prev_kv unless asked).
    let put = ctl.json(&["put", "foo", "bar"]);
    assert_eq!(fields(&put), ["header"], "{put}");
    assert_eq!(header_revision(&put), 2);
    assert_eq!(put["header"]["cluster_id"], empty["header"]["cluster_id"]);
    assert_eq!(put["header"]["member_id"], empty["header"]["member_id"]);

    let got = ctl.json(&["get", "foo"]);
    assert_eq!(fields(&got), ["count", "header", "kvs"], "{got}");
    assert_eq!(header_revision(&got), 2);
    assert_eq!(got["count"], 1);
    assert_eq!(
        got["kvs"],
        json!([{
            "key": "Zm9v",
            "create_revision": 2,
            "mod_revision": 2,
            "version": 1,
            "value": "YmFy"
        }])
    );
}

#[test]
fn get_json_fields_are_base64_and_zero_fields_are_omitted() {
    let (_s, ctl) = start();
    let key = "dir/ключ";
    let value = "värde with spaces";
    let r1 = ctl.put_rev(key, value);
    let other = ctl.put_rev("other", "x");
    let r2 = ctl.put_rev(key, "second");
    assert_eq!(other, r1 + 1);
    assert_eq!(r2, r1 + 2);

    let v = ctl.json(&["get", key]);
    assert_eq!(header_revision(&v), r2);
    let kv = &v["kvs"][0];
    // No lease => no "lease" field.
    assert_eq!(
        fields(kv),
        ["create_revision", "key", "mod_revision", "value", "version"],
        "{v}"
    );
    assert_eq!(kv["key"], b64(key));
    assert_eq!(kv["value"], b64("second"));
    assert_eq!(unb64(kv["key"].as_str().expect("str")), key.as_bytes());
    assert_eq!(kv["create_revision"], r1);
    assert_eq!(kv["mod_revision"], r2);
    assert_eq!(kv["version"], 2);

    // An empty value is omitted from the JSON as well.
    let re = ctl.put_rev("empty", "");
    let v = ctl.json(&["get", "empty"]);
    assert_eq!(
        v["kvs"],
        json!([{"key": b64("empty"), "create_revision": re, "mod_revision": re, "version": 1}])
    );
    assert_eq!(ctl.ok(&["get", "empty"]), "empty\n\n");
}

#[test]
fn get_rev_reads_old_values() {
    let (_s, ctl) = start();
    let revs: Vec<i64> = (1..=5)
        .map(|i| ctl.put_rev("foo", &format!("v{i}")))
        .collect();
    for w in revs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "each put makes exactly one revision");
    }
    let bar = ctl.put_rev("bar", "b");
    let current = bar;

    for (i, rev) in revs.iter().enumerate() {
        let r = rev.to_string();
        assert_eq!(
            ctl.ok(&["get", "foo", "--rev", &r]),
            format!("foo\nv{}\n", i + 1)
        );
        let v = ctl.json(&["get", "foo", &format!("--rev={r}")]);
        // The header carries the *current* revision, not the requested one.
        assert_eq!(header_revision(&v), current);
        assert_eq!(v["kvs"][0]["mod_revision"], *rev);
        assert_eq!(v["kvs"][0]["create_revision"], revs[0]);
        assert_eq!(v["kvs"][0]["version"], i + 1);
    }
    // Before the key existed: nothing (not an error).
    let before = (revs[0] - 1).to_string();
    assert_eq!(ctl.ok(&["get", "foo", "--rev", &before]), "");
    // Ranges at an old revision only see keys that existed then.
    let r0 = revs[0].to_string();
    assert_eq!(
        keys_only(&ctl, &["get", "--prefix", "", "--rev", &r0]),
        ["foo"]
    );
    assert_eq!(
        keys_only(&ctl, &["get", "--prefix", "", "--rev", &bar.to_string()]),
        ["bar", "foo"]
    );
    // --rev=0 means "latest".
    assert_eq!(ctl.ok(&["get", "foo", "--rev=0"]), "foo\nv5\n");

    // After a delete the old revisions are still readable.
    assert_eq!(ctl.ok(&["del", "foo"]), "1\n");
    let del_rev = ctl.revision();
    assert_eq!(del_rev, current + 1);
    assert_eq!(ctl.ok(&["get", "foo"]), "");
    assert_eq!(
        ctl.ok(&["get", "foo", "--rev", &(del_rev - 1).to_string()]),
        "foo\nv5\n"
    );
    assert_eq!(ctl.ok(&["get", "foo", "--rev", &del_rev.to_string()]), "");
}

#[test]
fn get_future_revision_fails() {
    let (_s, ctl) = start();
    ctl.put_rev("foo", "bar");
    let current = ctl.revision();
    // The current revision itself is fine.
    assert_eq!(
        ctl.ok(&["get", "foo", "--rev", &current.to_string()]),
        "foo\nbar\n"
    );
    for rev in [current + 1, current + 1000] {
        assert_eq!(
            ctl.fail_error(&["get", "foo", "--rev", &rev.to_string()]),
            ERR_FUTURE_REV
        );
    }
    assert_eq!(ctl.revision(), current);
    assert_still_serving(&ctl);
}

// ---------------------------------------------------------------------------
// ranges

fn put_all(ctl: &Etcdctl, kvs: &[(&str, &str)]) {
    for (k, v) in kvs {
        assert_eq!(ctl.ok(&["put", k, v]), "OK\n");
    }
}

#[test]
fn get_prefix_range_and_from_key() {
    let (_s, ctl) = start();
    put_all(
        &ctl,
        &[
            ("k/b", "2"),
            ("j", "0"),
            ("k/a", "1"),
            ("k0", "4"),
            ("k", "k"),
            ("l", "5"),
            ("k/c", "3"),
        ],
    );
    assert_eq!(
        ctl.ok(&["get", "--prefix", "k/"]),
        "k/a\n1\nk/b\n2\nk/c\n3\n"
    );
    assert_eq!(
        keys_only(&ctl, &["get", "--prefix", "k"]),
        ["k", "k/a", "k/b", "k/c", "k0"]
    );
    assert_eq!(ctl.ok(&["get", "--prefix", "nomatch"]), "");
    // Explicit range [k/a, k/c): end is exclusive.
    assert_eq!(keys_only(&ctl, &["get", "k/a", "k/c"]), ["k/a", "k/b"]);
    // Key greater than range end: empty.
    assert_eq!(ctl.ok(&["get", "l", "a"]), "");
    assert_eq!(
        keys_only(&ctl, &["get", "--from-key", "k/b"]),
        ["k/b", "k/c", "k0", "l"]
    );
    // etcdctl sends key "\0" with range_end "\0" for an empty prefix / from-key:
    // all keys.
    let all = ["j", "k", "k/a", "k/b", "k/c", "k0", "l"];
    assert_eq!(keys_only(&ctl, &["get", "--prefix", ""]), all);
    assert_eq!(keys_only(&ctl, &["get", "--from-key", ""]), all);
    let v = ctl.json(&["get", "--from-key", ""]);
    assert_eq!(v["count"], 7);
    assert_eq!(json_keys(&v), all);
}

#[test]
fn get_limit_sets_more_and_total_count() {
    let (_s, ctl) = start();
    for i in 1..=5 {
        assert_eq!(
            ctl.ok(&["put", &format!("k/{i}"), &format!("v{i}")]),
            "OK\n"
        );
    }
    ctl.ok(&["put", "z", "outside"]);

    let v = ctl.json(&["get", "--prefix", "k/", "--limit=2"]);
    assert_eq!(json_keys(&v), ["k/1", "k/2"]);
    assert_eq!(v["more"], true, "{v}");
    // count is the total number of keys in the range, not the number returned.
    assert_eq!(v["count"], 5, "{v}");

    for limit in ["5", "10", "0"] {
        let v = ctl.json(&["get", "--prefix", "k/", "--limit", limit]);
        assert_eq!(v["kvs"].as_array().expect("kvs").len(), 5);
        assert_eq!(v["count"], 5);
        assert!(v.get("more").is_none(), "more is omitted when false: {v}");
    }
    assert_eq!(
        ctl.ok(&["get", "--prefix", "k/", "--limit=2"]),
        "k/1\nv1\nk/2\nv2\n"
    );
    let v = ctl.json(&["get", "--from-key", "", "--limit=1"]);
    assert_eq!(json_keys(&v), ["k/1"]);
    assert_eq!(v["count"], 6);
    assert_eq!(v["more"], true);
}

/// Builds a store where key, create, mod, version and value orders all
/// differ (and have no ties):
///
/// | key | create | version | final mod | value |
/// | s/a | 2nd    | 3       | 3rd       | m     |
/// | s/b | 4th    | 4       | 2nd       | z     |
/// | s/c | 1st    | 1       | 1st       | q     |
/// | s/d | 3rd    | 2       | 4th       | e     |
fn sort_fixture(ctl: &Etcdctl) {
    put_all(
        ctl,
        &[
            ("s/c", "q"),
            ("s/a", "x"),
            ("s/d", "x"),
            ("s/b", "x"),
            ("s/b", "x"),
            ("s/b", "x"),
            ("s/b", "z"),
            ("s/a", "x"),
            ("s/a", "m"),
            ("s/d", "e"),
        ],
    );
}

#[test]
fn get_sort_by_every_target_and_order() {
    let (_s, ctl) = start();
    sort_fixture(&ctl);
    let cases: &[(&str, [&str; 4])] = &[
        ("KEY", ["s/a", "s/b", "s/c", "s/d"]),
        ("CREATE", ["s/c", "s/a", "s/d", "s/b"]),
        ("MODIFY", ["s/c", "s/b", "s/a", "s/d"]),
        ("VERSION", ["s/c", "s/d", "s/a", "s/b"]),
        ("VALUE", ["s/d", "s/a", "s/c", "s/b"]),
    ];
    for (target, asc) in cases {
        let sort = format!("--sort-by={target}");
        let got = keys_only(&ctl, &["get", "--prefix", "s/", &sort, "--order=ASCEND"]);
        assert_eq!(got, asc, "{target} ASCEND");
        // Without --order, ascending is the default.
        let got = keys_only(&ctl, &["get", "--prefix", "s/", &sort]);
        assert_eq!(got, asc, "{target} default order");
        let mut desc = asc.to_vec();
        desc.reverse();
        let got = keys_only(&ctl, &["get", "--prefix", "s/", &sort, "--order=DESCEND"]);
        assert_eq!(got, desc, "{target} DESCEND");
    }
    // --order without --sort-by sorts by key.
    assert_eq!(
        keys_only(&ctl, &["get", "--prefix", "s/", "--order=DESCEND"]),
        ["s/d", "s/c", "s/b", "s/a"]
    );
    // Values come along with their keys.
    assert_eq!(
        ctl.ok(&["get", "--prefix", "s/", "--sort-by=VALUE"]),
        "s/d\ne\ns/a\nm\ns/c\nq\ns/b\nz\n"
    );
}

#[test]
fn get_sort_is_applied_before_limit() {
    let (_s, ctl) = start();
    sort_fixture(&ctl);
    // The server sorts the whole range, then truncates: the top two values
    // overall, not the first two keys re-sorted.
    let v = ctl.json(&[
        "get",
        "--prefix",
        "s/",
        "--sort-by=VALUE",
        "--order=DESCEND",
        "--limit=2",
    ]);
    assert_eq!(json_keys(&v), ["s/b", "s/c"]);
    assert_eq!(v["more"], true);
    assert_eq!(v["count"], 4);
    let v = ctl.json(&[
        "get",
        "--prefix",
        "s/",
        "--sort-by=KEY",
        "--order=DESCEND",
        "--limit=1",
    ]);
    assert_eq!(json_keys(&v), ["s/d"]);
    assert_eq!(v["more"], true);
    assert_eq!(v["count"], 4);
    let v = ctl.json(&["get", "--prefix", "s/", "--sort-by=MODIFY", "--limit=3"]);
    assert_eq!(json_keys(&v), ["s/c", "s/b", "s/a"]);
}

#[test]
fn get_keys_only_and_print_value_only() {
    let (_s, ctl) = start();
    put_all(&ctl, &[("p/a", "va"), ("p/b", "vb"), ("p/c", "vc")]);
    // keys-only in simple format: each key followed by an empty (value) line.
    assert_eq!(
        ctl.ok(&["get", "--prefix", "p/", "--keys-only"]),
        "p/a\n\np/b\n\np/c\n\n"
    );
    let v = ctl.json(&["get", "--prefix", "p/", "--keys-only"]);
    assert_eq!(v["count"], 3);
    for kv in v["kvs"].as_array().expect("kvs") {
        assert_eq!(
            fields(kv),
            ["create_revision", "key", "mod_revision", "version"],
            "keys-only returns no value: {v}"
        );
    }
    assert_eq!(
        ctl.ok(&["get", "--prefix", "p/", "--print-value-only"]),
        "va\nvb\nvc\n"
    );
    assert_eq!(ctl.ok(&["get", "p/b", "--print-value-only"]), "vb\n");
    assert_eq!(ctl.ok(&["get", "p/x", "--print-value-only"]), "");
}

// ---------------------------------------------------------------------------
// put options, versions

#[test]
fn put_prev_kv_prints_previous_pair() {
    let (_s, ctl) = start();
    // No previous pair: just OK.
    assert_eq!(ctl.ok(&["put", "--prev-kv", "k", "v1"]), "OK\n");
    assert_eq!(ctl.ok(&["put", "--prev-kv", "k", "v2"]), "OK\nk\nv1\n");
    let r2 = ctl.json(&["get", "k"])["kvs"][0]["mod_revision"].clone();
    let created = ctl.json(&["get", "k"])["kvs"][0]["create_revision"].clone();
    let v = ctl.json(&["put", "--prev-kv", "k", "v3"]);
    assert_eq!(fields(&v), ["header", "prev_kv"], "{v}");
    assert_eq!(
        v["prev_kv"],
        json!({
            "key": b64("k"),
            "create_revision": created,
            "mod_revision": r2,
            "version": 2,
            "value": b64("v2")
        })
    );
    // Without a previous pair, -w json has no prev_kv at all.
    let v = ctl.json(&["put", "--prev-kv", "fresh", "x"]);
    assert_eq!(fields(&v), ["header"], "{v}");
}

#[test]
fn put_ignore_value_and_ignore_lease_need_an_existing_key() {
    let (_s, ctl) = start();
    let before = ctl.revision();
    assert_eq!(
        ctl.fail_error(&["put", "--ignore-value", "nokey"]),
        ERR_KEY_NOT_FOUND
    );
    assert_eq!(
        ctl.fail_error(&["put", "--ignore-lease", "nokey", "v"]),
        ERR_KEY_NOT_FOUND
    );
    assert_eq!(ctl.revision(), before, "failed puts make no revision");
    assert_eq!(ctl.ok(&["get", "nokey"]), "");

    let r1 = ctl.put_rev("k", "v1");
    // --ignore-value keeps the value but is still a write: new mod_revision,
    // version + 1.
    let r2 = header_revision(&ctl.json(&["put", "--ignore-value", "k"]));
    assert_eq!(r2, r1 + 1);
    let v = ctl.json(&["get", "k"]);
    assert_eq!(v["kvs"][0]["value"], b64("v1"));
    assert_eq!(v["kvs"][0]["version"], 2);
    assert_eq!(v["kvs"][0]["mod_revision"], r2);
    assert_eq!(v["kvs"][0]["create_revision"], r1);
    // --ignore-lease on an existing key: new value, lease untouched.
    assert_eq!(ctl.ok(&["put", "--ignore-lease", "k", "v2"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "k"]), "k\nv2\n");
    let v = ctl.json(&["get", "k"]);
    assert_eq!(v["kvs"][0]["version"], 3);
    assert!(v["kvs"][0].get("lease").is_none());
    // With --prev-kv, --ignore-value reports the pair it kept.
    assert_eq!(
        ctl.ok(&["put", "--ignore-value", "--prev-kv", "k"]),
        "OK\nk\nv2\n"
    );
}

#[test]
fn version_increments_and_restarts_after_delete() {
    let (_s, ctl) = start();
    let mut revs = Vec::new();
    for i in 1..=3 {
        revs.push(ctl.put_rev("k", &format!("v{i}")));
        let v = ctl.json(&["get", "k"]);
        assert_eq!(v["kvs"][0]["version"], i);
        assert_eq!(v["kvs"][0]["create_revision"], revs[0]);
        assert_eq!(v["kvs"][0]["mod_revision"], revs[i - 1]);
    }
    assert_eq!(ctl.ok(&["del", "k"]), "1\n");
    let del_rev = ctl.revision();
    assert_eq!(del_rev, revs[2] + 1);
    let again = ctl.put_rev("k", "new");
    assert_eq!(again, del_rev + 1);
    let v = ctl.json(&["get", "k"]);
    assert_eq!(
        v["kvs"][0],
        json!({
            "key": b64("k"),
            "create_revision": again,
            "mod_revision": again,
            "version": 1,
            "value": b64("new")
        })
    );
    // History before the delete still shows the old generation.
    let v = ctl.json(&["get", "k", "--rev", &revs[2].to_string()]);
    assert_eq!(v["kvs"][0]["create_revision"], revs[0]);
    assert_eq!(v["kvs"][0]["version"], 3);
}

// ---------------------------------------------------------------------------
// del

#[test]
fn del_prints_count_and_missing_key_makes_no_revision() {
    let (_s, ctl) = start();
    ctl.put_rev("k", "v");
    let before = ctl.revision();
    assert_eq!(ctl.ok(&["del", "missing"]), "0\n");
    assert_eq!(ctl.revision(), before, "deleting nothing makes no revision");
    let v = ctl.json(&["del", "missing"]);
    // deleted: 0 is omitted.
    assert_eq!(fields(&v), ["header"], "{v}");
    assert_eq!(header_revision(&v), before);

    let v = ctl.json(&["del", "k"]);
    assert_eq!(fields(&v), ["deleted", "header"], "{v}");
    assert_eq!(v["deleted"], 1);
    assert_eq!(header_revision(&v), before + 1);
    assert_eq!(ctl.ok(&["get", "k"]), "");
    assert_eq!(ctl.ok(&["del", "k"]), "0\n");
}

#[test]
fn del_prev_kv_prints_count_then_pairs() {
    let (_s, ctl) = start();
    put_all(&ctl, &[("a", "1"), ("b", "2"), ("c", "3")]);
    assert_eq!(ctl.ok(&["del", "--prev-kv", "missing"]), "0\n");
    assert_eq!(ctl.ok(&["del", "--prev-kv", "c"]), "1\nc\n3\n");
    let rb = ctl.json(&["get", "b"])["kvs"][0]["mod_revision"].clone();
    // Range [a, c) with --prev-kv.
    assert_eq!(ctl.ok(&["del", "--prev-kv", "a", "c"]), "2\na\n1\nb\n2\n");
    ctl.ok(&["put", "b", "again"]);
    let v = ctl.json(&["del", "--prev-kv", "b"]);
    assert_eq!(fields(&v), ["deleted", "header", "prev_kvs"], "{v}");
    assert_eq!(v["deleted"], 1);
    let prev = &v["prev_kvs"][0];
    assert_eq!(prev["key"], b64("b"));
    assert_eq!(prev["value"], b64("again"));
    assert_eq!(prev["version"], 1);
    assert!(prev["create_revision"].as_i64().expect("i64") > rb.as_i64().expect("i64"));
}

#[test]
fn del_prefix_and_from_key_are_one_revision() {
    let (_s, ctl) = start();
    put_all(
        &ctl,
        &[
            ("p/1", "a"),
            ("p/2", "b"),
            ("p/3", "c"),
            ("q", "q"),
            ("r/1", "r"),
            ("s", "s"),
        ],
    );
    let before = ctl.revision();
    assert_eq!(ctl.ok(&["del", "--prefix", "p/"]), "3\n");
    assert_eq!(ctl.revision(), before + 1, "a range delete is one revision");
    assert_eq!(ctl.ok(&["get", "--prefix", "p/"]), "");
    // All deleted keys share the deletion revision: reading just before it
    // still shows all three.
    assert_eq!(
        keys_only(
            &ctl,
            &["get", "--prefix", "p/", "--rev", &before.to_string()]
        ),
        ["p/1", "p/2", "p/3"]
    );
    assert_eq!(ctl.ok(&["del", "--from-key", "r"]), "2\n");
    assert_eq!(keys_only(&ctl, &["get", "--from-key", ""]), ["q"]);
    assert_eq!(ctl.revision(), before + 2);
    assert_eq!(ctl.ok(&["del", "--prefix", ""]), "1\n");
    assert_eq!(ctl.ok(&["get", "--from-key", ""]), "");
}

// ---------------------------------------------------------------------------
// txn

/// Builds etcdctl's non-interactive txn input: compares, blank line, success
/// ops, blank line, failure ops, blank line.
fn txn_input(compares: &[&str], success: &[&str], failure: &[&str]) -> String {
    let mut s = String::new();
    for part in [compares, success, failure] {
        for line in part {
            s.push_str(line);
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

#[test]
fn txn_success_branch() {
    let (_s, ctl) = start();
    ctl.put_rev("t1", "v1");
    let before = ctl.revision();
    let input = txn_input(
        &[r#"value("t1") = "v1""#],
        &["put t2 s", "get t1", "del nothing"],
        &["put t3 f"],
    );
    assert_eq!(
        ctl.ok_stdin(&["txn"], &input),
        "SUCCESS\n\nOK\n\nt1\nv1\n\n0\n"
    );
    assert_eq!(ctl.revision(), before + 1);
    assert_eq!(ctl.ok(&["get", "t2"]), "t2\ns\n");
    assert_eq!(ctl.ok(&["get", "t3"]), "");
}

#[test]
fn txn_failure_branch() {
    let (_s, ctl) = start();
    ctl.put_rev("t1", "v1");
    let before = ctl.revision();
    let input = txn_input(
        &[r#"value("t1") = "other""#],
        &["put t2 s"],
        &["put t3 f", "get t1"],
    );
    assert_eq!(ctl.ok_stdin(&["txn"], &input), "FAILURE\n\nOK\n\nt1\nv1\n");
    assert_eq!(ctl.revision(), before + 1);
    assert_eq!(ctl.ok(&["get", "t2"]), "");
    assert_eq!(ctl.ok(&["get", "t3"]), "t3\nf\n");
    // An empty failure branch: nothing happens, no revision.
    let input = txn_input(&[r#"value("t1") = "other""#], &["put t2 s"], &[]);
    assert_eq!(ctl.ok_stdin(&["txn"], &input), "FAILURE\n");
    assert_eq!(ctl.revision(), before + 1);
    // No compares at all: success.
    assert_eq!(
        ctl.ok_stdin(&["txn"], txn_input(&[], &[], &[])),
        "SUCCESS\n"
    );
}

#[test]
fn txn_compares_on_value_version_create_and_mod() {
    let (_s, ctl) = start();
    let created = ctl.put_rev("k", "b");
    let modded = ctl.put_rev("k", "c");
    let txn = |cmp: &str| -> String {
        let out = ctl.ok_stdin(&["txn"], txn_input(&[cmp], &[], &[]));
        out.trim_end().to_owned()
    };
    let c = created.to_string();
    let m = modded.to_string();
    let cases: Vec<(String, &str)> = vec![
        (r#"value("k") = "c""#.into(), "SUCCESS"),
        (r#"value("k") = "b""#.into(), "FAILURE"),
        (r#"value("k") != "b""#.into(), "SUCCESS"),
        (r#"value("k") > "b""#.into(), "SUCCESS"),
        (r#"value("k") < "c""#.into(), "FAILURE"),
        (r#"value("k") < "cc""#.into(), "SUCCESS"),
        (r#"version("k") = "2""#.into(), "SUCCESS"),
        (r#"version("k") > "1""#.into(), "SUCCESS"),
        (r#"version("k") < "2""#.into(), "FAILURE"),
        (r#"version("k") != "2""#.into(), "FAILURE"),
        (format!(r#"create("k") = "{c}""#), "SUCCESS"),
        (format!(r#"create("k") < "{m}""#), "SUCCESS"),
        (format!(r#"create("k") = "{m}""#), "FAILURE"),
        (format!(r#"mod("k") = "{m}""#), "SUCCESS"),
        (format!(r#"mod("k") > "{c}""#), "SUCCESS"),
        (format!(r#"mod("k") != "{m}""#), "FAILURE"),
        // A missing key has version/create/mod 0...
        (r#"version("missing") = "0""#.into(), "SUCCESS"),
        (r#"create("missing") = "0""#.into(), "SUCCESS"),
        (r#"mod("missing") = "0""#.into(), "SUCCESS"),
        (r#"version("missing") > "0""#.into(), "FAILURE"),
        // ...but any value compare on a missing key is false.
        (r#"value("missing") = """#.into(), "FAILURE"),
        (r#"value("missing") != "x""#.into(), "FAILURE"),
    ];
    for (cmp, want) in &cases {
        assert_eq!(txn(cmp), *want, "compare {cmp}");
    }
    // Several compares are ANDed.
    let input = txn_input(
        &[
            r#"value("k") = "c""#,
            r#"version("k") = "2""#,
            &format!(r#"create("k") = "{c}""#),
            &format!(r#"mod("k") = "{m}""#),
        ],
        &["get k"],
        &[],
    );
    assert_eq!(ctl.ok_stdin(&["txn"], &input), "SUCCESS\n\nk\nc\n");
    let input = txn_input(
        &[r#"value("k") = "c""#, r#"version("k") = "9""#],
        &["get k"],
        &["get missing"],
    );
    assert_eq!(ctl.ok_stdin(&["txn"], &input), "FAILURE\n\n");
}

#[test]
fn txn_json_output() {
    let (_s, ctl) = start();
    ctl.put_rev("t1", "v1");
    let x = ctl.put_rev("x", "y");
    let before = ctl.revision();

    // Success branch with a write: every op response's header carries only
    // the txn's revision.
    let v = ctl.json_stdin(
        &["txn"],
        txn_input(
            &[r#"value("t1") = "v1""#],
            &["put d 1", "get x", "del x2", "put e 2"],
            &[],
        ),
    );
    let rev = before + 1;
    assert_eq!(fields(&v), ["header", "responses", "succeeded"], "{v}");
    assert_eq!(v["succeeded"], true);
    assert_eq!(header_revision(&v), rev);
    assert_eq!(
        v["responses"],
        json!([
            {"Response": {"ResponsePut": {"header": {"revision": rev}}}},
            {"Response": {"ResponseRange": {
                "header": {"revision": rev},
                "kvs": [{"key": b64("x"), "create_revision": x, "mod_revision": x,
                         "version": 1, "value": b64("y")}],
                "count": 1
            }}},
            {"Response": {"ResponseDeleteRange": {"header": {"revision": rev}}}},
            {"Response": {"ResponsePut": {"header": {"revision": rev}}}},
        ]),
        "{v}"
    );
    // Both puts of one txn share its revision.
    assert_eq!(ctl.json(&["get", "d"])["kvs"][0]["mod_revision"], rev);
    assert_eq!(ctl.json(&["get", "e"])["kvs"][0]["mod_revision"], rev);

    // Failure branch: `succeeded` (false) is omitted.
    let v = ctl.json_stdin(
        &["txn"],
        txn_input(&[r#"value("t1") = "nope""#], &[], &["del d"]),
    );
    assert_eq!(fields(&v), ["header", "responses"], "{v}");
    assert_eq!(header_revision(&v), rev + 1);
    assert_eq!(
        v["responses"],
        json!([{"Response": {"ResponseDeleteRange": {"header": {"revision": rev + 1}, "deleted": 1}}}])
    );

    // A read-only txn makes no revision; its headers carry the current one.
    let v = ctl.json_stdin(&["txn"], txn_input(&[], &["get d"], &[]));
    assert_eq!(header_revision(&v), rev + 1);
    assert_eq!(
        v["responses"],
        json!([{"Response": {"ResponseRange": {"header": {"revision": rev + 1}}}}])
    );
    assert_eq!(ctl.revision(), rev + 1);
}

#[test]
fn txn_ops_see_earlier_writes_and_accept_flags() {
    let (_s, ctl) = start();
    let r1 = ctl.put_rev("k", "old");
    ctl.put_rev("k", "newer");
    // A get after a put of the same key in one txn sees the new value.
    let input = txn_input(&[], &["put k inside", "get k"], &[]);
    assert_eq!(
        ctl.ok_stdin(&["txn"], &input),
        "SUCCESS\n\nOK\n\nk\ninside\n"
    );
    // Ops accept the usual flags.
    let input = txn_input(
        &[],
        &[
            &format!("get k --rev={r1}"),
            "get --prefix \"\" --keys-only --limit=1",
        ],
        &[],
    );
    assert_eq!(ctl.ok_stdin(&["txn"], &input), "SUCCESS\n\nk\nold\n\nk\n\n");
    // The same key in the success and the failure branch is fine.
    let input = txn_input(&[], &["put d 1"], &["put d 2"]);
    assert_eq!(ctl.ok_stdin(&["txn"], &input), "SUCCESS\n\nOK\n");
    assert_eq!(ctl.ok(&["get", "d"]), "d\n1\n");
}

#[test]
fn txn_duplicate_keys_are_rejected() {
    let (_s, ctl) = start();
    ctl.put_rev("d", "orig");
    let before = ctl.revision();
    let bad = [
        txn_input(&[], &["put d 1", "put d 2"], &[]),
        txn_input(&[], &["put d 1", "del d"], &[]),
        txn_input(&[], &["put d/1 1", "del --prefix d/"], &[]),
        // Checked in the branch that is not taken, too.
        txn_input(&[], &[], &["put d 1", "put d 2"]),
    ];
    for input in &bad {
        assert_eq!(
            error_line(&ctl.fail_stdin(&["txn"], input)),
            ERR_DUP_KEY,
            "{input:?}"
        );
    }
    assert_eq!(ctl.revision(), before);
    assert_eq!(ctl.ok(&["get", "d"]), "d\norig\n");
    assert_still_serving(&ctl);
}

// ---------------------------------------------------------------------------
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
    assert!(st["raftTerm"].as_u64().expect("raftTerm") >= 1, "{v}");
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
