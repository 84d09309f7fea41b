//! etcd's gRPC JSON gateway (`POST /v3/...`), as `curl` scripts use it: proto3 JSON with
//! the `.proto` field names, 64-bit integers as strings and bytes as base64; refusals
//! as HTTP statuses with `{"error","message","code"}`; watch as a stream of
//! `{"result":…}` lines; the auth token in `Authorization`.
//!
//! Every expectation is etcd 3.4's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd`.

use std::net::SocketAddr;
use std::time::Duration;

use revkv_tests::{b64, http_request, HttpAnswer, TestServer};
use serde_json::{json, Value};

fn addr(s: &TestServer) -> SocketAddr {
    ([127, 0, 0, 1], s.client_port()).into()
}

fn post_with(s: &TestServer, path: &str, headers: &[(&str, &str)], body: &str) -> HttpAnswer {
    http_request(addr(s), "POST", path, headers, body, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// The answer's JSON with the member-specific header fields taken out.
#[track_caller]
fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let a = post_with(s, path, &[], &body.to_string());
    (a.status, normalized(&a.body))
}

#[track_caller]
fn normalized(body: &str) -> Value {
    let mut v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    strip_ids(&mut v);
    v
}

/// Removes cluster_id, member_id and raft_term wherever a header has them.
fn strip_ids(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in ["cluster_id", "member_id", "raft_term"] {
                m.remove(k);
            }
            m.values_mut().for_each(strip_ids);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_ids),
        _ => {}
    }
}

fn refusal(msg: &str, code: i32) -> Value {
    json!({"error": msg, "message": msg, "code": code})
}

#[test]
fn kv_calls_in_proto3_json() {
    let s = TestServer::start();
    let (foo, bar, baz) = (b64("foo"), b64("bar"), b64("baz"));
    let put = post(&s, "/v3/kv/put", json!({"key": foo, "value": bar}));
    assert_eq!(put, (200, json!({"header": {"revision": "2"}})));
    // Field names as in the .proto or as JSON names; unknown fields are ignored.
    let put = post(
        &s,
        "/v3/kv/put",
        json!({"key": foo, "value": baz, "prev_kv": true, "ignored": 1}),
    );
    let prev = json!({"key": foo, "create_revision": "2", "mod_revision": "2", "version": "1", "value": bar});
    assert_eq!(
        put,
        (200, json!({"header": {"revision": "3"}, "prev_kv": prev}))
    );
    let now = json!({"key": foo, "create_revision": "2", "mod_revision": "3", "version": "2", "value": baz});
    assert_eq!(
        post(&s, "/v3/kv/range", json!({"key": foo})),
        (
            200,
            json!({"header": {"revision": "3"}, "kvs": [now], "count": "1"})
        )
    );
    assert_eq!(
        post(&s, "/v3/kv/range", json!({"key": foo, "countOnly": true})),
        (200, json!({"header": {"revision": "3"}, "count": "1"}))
    );
    // The older prefix serves the same calls.
    assert_eq!(
        post(
            &s,
            "/v3beta/kv/range",
            json!({"key": foo, "count_only": true})
        ),
        (200, json!({"header": {"revision": "3"}, "count": "1"}))
    );
    let txn = post(
        &s,
        "/v3/kv/txn",
        json!({
            "compare": [{"key": foo, "result": "EQUAL", "target": "VALUE", "value": baz}],
            "success": [{"request_range": {"key": foo}}],
        }),
    );
    assert_eq!(
        txn,
        (
            200,
            json!({"header": {"revision": "3"}, "succeeded": true, "responses": [
                {"response_range": {"header": {"revision": "3"}, "kvs": [now], "count": "1"}}
            ]})
        )
    );
    assert_eq!(
        post(
            &s,
            "/v3/kv/deleterange",
            json!({"key": foo, "prev_kv": true})
        ),
        (
            200,
            json!({"header": {"revision": "4"}, "deleted": "1", "prev_kvs": [now]})
        )
    );
    assert_eq!(
        post(&s, "/v3/kv/compaction", json!({"revision": "3"})),
        (200, json!({"header": {"revision": "4"}}))
    );
    let (code, grant) = post(&s, "/v3/lease/grant", json!({"TTL": 30}));
    assert_eq!((code, &grant["TTL"]), (200, &json!("30")), "{grant}");
    assert!(grant["ID"]
        .as_str()
        .is_some_and(|id| id.parse::<i64>().is_ok()));
}

#[test]
fn refusals_as_http_statuses_with_etcds_body() {
    let s = TestServer::start();
    assert_eq!(
        post(&s, "/v3/kv/put", json!({"key": ""})),
        (400, refusal("etcdserver: key is not provided", 3))
    );
    // An empty body is an empty request.
    let empty = post_with(&s, "/v3/kv/range", &[], "");
    assert_eq!(
        (empty.status, normalized(&empty.body)),
        (400, refusal("etcdserver: key is not provided", 3))
    );
    assert_eq!(
        post(
            &s,
            "/v3/kv/range",
            json!({"key": b64("k"), "revision": "100"})
        ),
        (
            400,
            refusal(
                "etcdserver: mvcc: required revision is a future revision",
                11
            )
        )
    );
    assert_eq!(
        post(
            &s,
            "/v3/auth/authenticate",
            json!({"name": "root", "password": "x"})
        ),
        (412, refusal("etcdserver: authentication is not enabled", 9))
    );
    // Malformed JSON: refused as InvalidArgument (the parser's words differ from Go's).
    let bad = post_with(&s, "/v3/kv/put", &[], "{bad");
    assert_eq!(bad.status, 400);
    assert_eq!(normalized(&bad.body)["code"], json!(3));
    let unknown = post_with(&s, "/v3/no/such", &[], "{}");
    assert_eq!(
        (unknown.status, unknown.body.as_str()),
        (404, "Not Found\n")
    );
    let get = http_request(
        addr(&s),
        "GET",
        "/v3/kv/range",
        &[],
        "",
        Duration::from_secs(5),
    )
    .expect("GET");
    assert_eq!(get.status, 405);
    assert_eq!(
        empty.header("access-control-allow-origin"),
        Some("*"),
        "{:?}",
        empty.headers
    );
}

#[test]
fn watch_streams_result_lines() {
    let s = TestServer::start();
    let (a, b) = (b64("a"), b64("b"));
    post(&s, "/v3/kv/put", json!({"key": a, "value": b}));
    post(&s, "/v3/kv/put", json!({"key": b, "value": a}));
    // Two watchers on one stream: the body may hold several requests back to back.
    let body = format!(
        "{}{}",
        json!({"create_request": {"key": a, "start_revision": "1"}}),
        json!({"create_request": {"key": b, "start_revision": "1"}})
    );
    let w = http_request(
        addr(&s),
        "POST",
        "/v3/watch",
        &[],
        &body,
        Duration::from_secs(2),
    )
    .expect("watch");
    assert_eq!(w.status, 200);
    let lines: Vec<Value> = w.body.lines().map(normalized).collect();
    let created = |id: Option<&str>| {
        let mut r = json!({"header": {"revision": "3"}, "created": true});
        if let Some(id) = id {
            r["watch_id"] = json!(id);
        }
        json!({"result": r})
    };
    let event = |id: Option<&str>, key: &str, value: &str, rev: &str| {
        let mut r = json!({"header": {"revision": "3"}, "events": [{"kv": {
            "key": key, "create_revision": rev, "mod_revision": rev, "version": "1", "value": value
        }}]});
        if let Some(id) = id {
            r["watch_id"] = json!(id);
        }
        json!({"result": r})
    };
    assert_eq!(lines.len(), 4, "{}", w.body);
    assert_eq!(lines[0], created(None));
    assert_eq!(lines[1], created(Some("1")));
    // Each watcher's history, in some order.
    let mut rest = lines[2..].to_vec();
    rest.sort_by_key(|l| l.to_string());
    let mut want = vec![event(None, &a, &b, "2"), event(Some("1"), &b, &a, "3")];
    want.sort_by_key(|l| l.to_string());
    assert_eq!(rest, want);
}

#[test]
fn the_authorization_header_carries_the_token() {
    let s = TestServer::start();
    let ok = |path: &str, body: Value| {
        let (code, v) = post(&s, path, body);
        assert_eq!(code, 200, "{path}: {v}");
        v
    };
    ok(
        "/v3/auth/user/add",
        json!({"name": "root", "password": "pw"}),
    );
    ok(
        "/v3/auth/user/grant",
        json!({"user": "root", "role": "root"}),
    );
    ok("/v3/auth/enable", json!({}));
    assert_eq!(
        post(&s, "/v3/kv/range", json!({"key": b64("k")})),
        (400, refusal("etcdserver: user name is empty", 3))
    );
    let auth = ok(
        "/v3/auth/authenticate",
        json!({"name": "root", "password": "pw"}),
    );
    let token = auth["token"].as_str().expect("token").to_owned();
    let r = post_with(
        &s,
        "/v3/kv/put",
        &[("Authorization", &token)],
        &json!({"key": b64("k"), "value": b64("v")}).to_string(),
    );
    assert_eq!(
        (r.status, normalized(&r.body)),
        (200, json!({"header": {"revision": "2"}}))
    );
    let users = post_with(&s, "/v3/auth/user/list", &[("Authorization", &token)], "{}");
    assert_eq!(
        (users.status, normalized(&users.body)["users"].clone()),
        (200, json!(["root"]))
    );
    // Lock and Election act as their caller: alice may lock under app/ only.
    let as_root = |path: &str, body: Value| {
        let a = post_with(&s, path, &[("Authorization", &token)], &body.to_string());
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    };
    as_root("/v3/auth/role/add", json!({"name": "app"}));
    as_root(
        "/v3/auth/role/grant",
        json!({"name": "app", "perm": {"permType": "READWRITE", "key": b64("app/"), "range_end": b64("app0")}}),
    );
    as_root(
        "/v3/auth/user/add",
        json!({"name": "alice", "password": "pw"}),
    );
    as_root(
        "/v3/auth/user/grant",
        json!({"user": "alice", "role": "app"}),
    );
    let alice = ok(
        "/v3/auth/authenticate",
        json!({"name": "alice", "password": "pw"}),
    )["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let call = |path: &str, token: &str, body: Value| {
        let a = post_with(&s, path, &[("Authorization", token)], &body.to_string());
        (a.status, normalized(&a.body))
    };
    let (code, locked) = call("/v3/lock/lock", &alice, json!({"name": b64("app/l")}));
    assert_eq!(code, 200, "{locked}");
    // The in-process client's refusal comes back as Unknown, as from etcd's.
    assert_eq!(
        call("/v3/lock/lock", &alice, json!({"name": b64("other")})),
        (500, refusal("etcdserver: permission denied", 2))
    );
    assert_eq!(
        post(&s, "/v3/lock/lock", json!({"name": b64("other")})),
        (500, refusal("etcdserver: user name is empty", 2))
    );
    // An empty Authorization header is a token, and not a valid one.
    assert_eq!(
        call("/v3/lock/lock", "", json!({"name": b64("other")})),
        (500, refusal("etcdserver: invalid auth token", 2))
    );
    assert_eq!(
        call(
            "/v3/election/campaign",
            &alice,
            json!({"name": b64("other"), "value": b64("v")})
        ),
        (500, refusal("etcdserver: permission denied", 2))
    );

    let key = json!({"key": b64("k")}).to_string();
    let bad = post_with(&s, "/v3/kv/range", &[("Authorization", "nope.1")], &key);
    assert_eq!(
        (bad.status, normalized(&bad.body)),
        (401, refusal("etcdserver: invalid auth token", 16))
    );
    // The request is validated before its token is looked at.
    let bad = post_with(&s, "/v3/kv/range", &[("Authorization", "nope.1")], "{}");
    assert_eq!(
        (bad.status, normalized(&bad.body)),
        (400, refusal("etcdserver: key is not provided", 3))
    );
}

#[test]
fn lease_keepalive_snapshot_and_observe_stream_result_lines() {
    let s = TestServer::start();
    let stream = |path: &str, body: &str| {
        let a = http_request(addr(&s), "POST", path, &[], body, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.body.lines().map(normalized).collect::<Vec<Value>>()
    };
    let (code, _) = post(&s, "/v3/lease/grant", json!({"TTL": 30, "ID": "77"}));
    assert_eq!(code, 200);
    // Each request object of the body is one renewal; an unknown lease renews to TTL 0.
    let renewed = json!({"result": {"header": {"revision": "1"}, "ID": "77", "TTL": "30"}});
    assert_eq!(
        stream("/v3/lease/keepalive", r#"{"ID":"77"}{"ID":"77"}"#),
        [renewed.clone(), renewed]
    );
    assert_eq!(
        stream("/v3/lease/keepalive", r#"{"ID":"78"}"#),
        [json!({"result": {"header": {"revision": "1"}, "ID": "78"}})]
    );
    let (code, won) = post(
        &s,
        "/v3/election/campaign",
        json!({"name": b64("e"), "value": b64("v"), "lease": "77"}),
    );
    assert_eq!(code, 200, "{won}");
    let key = won["leader"]["key"].clone();
    assert_eq!(
        stream(
            "/v3/election/observe",
            &json!({"name": b64("e")}).to_string()
        ),
        [json!({"result": {"header": {"revision": "2"}, "kv": {
            "key": key, "create_revision": "2", "mod_revision": "2", "version": "1",
            "value": b64("v"), "lease": "77"
        }}})]
    );
    // A snapshot streams its bytes in base64 chunks.
    let snap = stream("/v3/maintenance/snapshot", "{}");
    assert!(!snap.is_empty());
    assert!(
        snap.iter().all(|l| l["result"]["blob"].is_string()),
        "{snap:?}"
    );
}

#[test]
fn a_value_as_large_as_grpc_takes_fits() {
    let s = TestServer::start();
    let value = b64(vec![b'x'; 1024 * 1024]);
    let (code, v) = post(&s, "/v3/kv/put", json!({"key": b64("big"), "value": value}));
    assert_eq!(code, 200, "{v}");
    let (code, v) = post(
        &s,
        "/v3/kv/range",
        json!({"key": b64("big"), "count_only": true}),
    );
    assert_eq!((code, &v["count"]), (200, &json!("1")), "{v}");
}
