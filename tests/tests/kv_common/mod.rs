//! Helpers shared by the etcdctl KV suites (`etcdctl_kv`, `etcdctl_txn`,
//! `etcdctl_maintenance`); each suite uses a subset.
#![allow(dead_code)]

use revkv_tests::{unb64, Etcdctl, TestServer};
use serde_json::Value;

pub const ERR_KEY_NOT_FOUND: &str = "Error: etcdserver: key not found";
pub const ERR_EMPTY_KEY: &str = "Error: etcdserver: key is not provided";
pub const ERR_COMPACTED: &str = "Error: etcdserver: mvcc: required revision has been compacted";
pub const ERR_FUTURE_REV: &str = "Error: etcdserver: mvcc: required revision is a future revision";
pub const ERR_TOO_LARGE: &str = "Error: etcdserver: request is too large";
pub const ERR_DUP_KEY: &str = "Error: etcdserver: duplicate key given in txn request";

pub fn start() -> (TestServer, Etcdctl) {
    let server = TestServer::start();
    let ctl = server.etcdctl();
    (server, ctl)
}

/// Decoded keys of a `get -w json` document (empty if `kvs` is absent).
pub fn json_keys(v: &Value) -> Vec<String> {
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
pub fn keys_only(ctl: &Etcdctl, args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.push("--keys-only");
    let out = ctl.ok(&a);
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sorted field names of a JSON object.
pub fn fields(v: &Value) -> Vec<&str> {
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
pub fn assert_still_serving(ctl: &Etcdctl) {
    assert_eq!(ctl.ok(&["put", "still/alive", "yes"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "still/alive"]), "still/alive\nyes\n");
}
