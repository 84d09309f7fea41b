//! KV behaviour as observed through the stock `etcdctl` 3.4 (API v3).
//!
//! Every expectation here is etcd's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd` and must pass unchanged against revkv.
//! Each test starts its own single-member server on free ports.

use revkv_tests::{b64, header_revision, json_i64, unb64, Etcdctl};
use serde_json::json;

mod kv_common;
use kv_common::*;

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
