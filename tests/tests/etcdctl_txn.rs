//! Txn behaviour as observed through the stock `etcdctl` 3.4 (API v3).
//!
//! Every expectation here is etcd's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd` and must pass unchanged against revkv.
//! Each test starts its own single-member server on free ports.

use revkv_tests::etcdctl::txn_input;
use revkv_tests::{b64, error_line, header_revision};
use serde_json::json;

mod kv_common;
use kv_common::*;

// ---------------------------------------------------------------------------
// txn

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
