//! `--auth-token=jwt,…`: tokens are JWTs signed with the member's key, carrying etcd's
//! claims (`username`, `revision`, `exp`); a token made before the auth store changed
//! is refused as "revision of auth store is old"; bad options stop the server.
//!
//! Every expectation is etcd 3.4's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd`.

use std::net::SocketAddr;
use std::time::Duration;

use revkv_tests::server::{run_until_exit, single_member_flags};
use revkv_tests::{b64, error_line, free_port, http_request, Etcdctl, TestServer};
use serde_json::{json, Value};

/// An ES256 key pair written as PEM files: (dir, public, private).
fn keys() -> (tempfile::TempDir, String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let dir = tempfile::tempdir().expect("tempdir");
    let (public, private) = (dir.path().join("k.pub"), dir.path().join("k.pem"));
    std::fs::write(&public, key.public_key_pem()).expect("write");
    std::fs::write(&private, key.serialize_pem()).expect("write");
    let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    (dir, path(public), path(private))
}

/// Adds `root:rootpw` with the root role, enables auth and writes `k` as root.
fn enable_auth(ctl: &Etcdctl) {
    ctl.ok(&["user", "add", "root:rootpw"]);
    ctl.ok(&["user", "grant-role", "root", "root"]);
    ctl.ok(&["--user=root:rootpw", "auth", "enable"]);
    assert_eq!(ctl.ok(&["--user=root:rootpw", "put", "k", "v"]), "OK\n");
}

fn post(s: &TestServer, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let addr: SocketAddr = ([127, 0, 0, 1], s.client_port()).into();
    let headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
    let a = http_request(
        addr,
        "POST",
        path,
        &headers,
        &body.to_string(),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let v = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.body));
    (a.status, v)
}

/// Standard base64 of a base64url JWT segment, so the suite's decoder reads it.
fn unb64url(seg: &str) -> Vec<u8> {
    let mut s: String = seg
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    revkv_tests::unb64(&s)
}

#[test]
fn tokens_are_jwts_with_etcds_claims() {
    let (_keys, public, private) = keys();
    let opt =
        format!("--auth-token=jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=5m");
    let s = TestServer::start_with(&[&opt]);
    let ctl = s.etcdctl();
    enable_auth(&ctl);

    let (code, auth) = post(
        &s,
        "/v3/auth/authenticate",
        None,
        json!({"name": "root", "password": "rootpw"}),
    );
    assert_eq!(code, 200, "{auth}");
    let token = auth["token"].as_str().expect("token").to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header: Value = serde_json::from_slice(&unb64url(parts[0])).expect("header");
    assert_eq!(header["alg"], "ES256");
    let claims: Value = serde_json::from_slice(&unb64url(parts[1])).expect("claims");
    assert_eq!(claims["username"], "root");
    let revision = claims["revision"].as_u64().expect("revision claim");
    assert!(claims["exp"].as_u64().is_some(), "{claims}");

    let range = json!({"key": b64("k")});
    let (code, got) = post(&s, "/v3/kv/range", Some(&token), range.clone());
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["count"], "1");
    // Any change to the store makes the token stale; a new one works.
    ctl.ok(&["--user=root:rootpw", "user", "add", "bob:pw"]);
    let stale = "etcdserver: revision of auth store is old";
    assert_eq!(
        post(&s, "/v3/kv/range", Some(&token), range.clone()),
        (400, json!({"error": stale, "message": stale, "code": 3}))
    );
    let (_, again) = post(
        &s,
        "/v3/auth/authenticate",
        None,
        json!({"name": "root", "password": "rootpw"}),
    );
    let fresh = again["token"].as_str().expect("token");
    let claims: Value =
        serde_json::from_slice(&unb64url(fresh.split('.').nth(1).expect("claims"))).expect("json");
    assert_eq!(claims["revision"].as_u64(), Some(revision + 1));
    assert_eq!(post(&s, "/v3/kv/range", Some(fresh), range).0, 200);
    // A forged token is no token.
    let bad = "etcdserver: invalid auth token";
    assert_eq!(
        post(
            &s,
            "/v3/kv/range",
            Some(&format!("{fresh}x")),
            json!({"key": b64("k")})
        ),
        (401, json!({"error": bad, "message": bad, "code": 16}))
    );
    // etcdctl logs in and out with them like with simple tokens.
    let out = ctl.run(&["--user=root:wrong", "get", "k"], None);
    assert_eq!(
        error_line(&out.stderr),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
}

#[test]
fn unusable_jwt_options_stop_the_server() {
    let (_keys, public, _) = keys();
    for opt in [
        "--auth-token=jwt,pub-key=/nonexistent/k.pub,sign-method=ES256".to_owned(),
        format!("--auth-token=jwt,pub-key={public},sign-method=NONE"),
        "--auth-token=bogus".to_owned(),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut args = single_member_flags(&tmp.path().join("d").to_string_lossy(), free_port());
        args.push(opt.clone());
        let out = run_until_exit(&args, Duration::from_secs(20));
        assert!(!out.status.success(), "{opt}: exited successfully");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("invalid auth options"),
            "{opt}: stderr {stderr}"
        );
    }
}

/// With only `priv-key`, the public key is derived from it, as etcd does.
#[test]
fn a_private_key_alone_signs_and_verifies() {
    let (_keys, _, private) = keys();
    let opt = format!("--auth-token=jwt,priv-key={private},sign-method=ES256");
    let s = TestServer::start_with(&[&opt]);
    let ctl = s.etcdctl();
    enable_auth(&ctl);
    assert_eq!(
        ctl.ok(&["--user=root:rootpw", "get", "k", "--print-value-only"]),
        "v\n"
    );
}
