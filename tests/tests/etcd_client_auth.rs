//! Authentication and authorization through the `etcd-client` crate (raw gRPC): the
//! status code and message of every auth error, the simple-token format and when a
//! token stops being valid, the `Auth` service's user/role management, and watch
//! creation without permission.
//!
//! Every expectation is etcd 3.4's, observed by running it (`REVKV_TEST_TARGET=etcd`).
//! Raw `token` metadata is not sent by hand (the tests crate has no protobuf types and
//! etcd-client only sends tokens it obtained); an invalid token is produced the way
//! etcd makes one: by changing or deleting the user, or disabling auth.

mod etcd_client_common;

use std::time::Duration;

use etcd_client::{
    AlarmAction, AlarmType, Client, Compare, CompareOp, ConnectOptions, Error, Permission,
    PermissionType, PutOptions, RoleRevokePermissionOptions, Txn, TxnOp, WatchOptions,
    WatchResponse, WatchStream,
};
use etcd_client_common::{start, status};
use revkv_tests::TestServer;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

const USER_EMPTY: &str = "etcdserver: user name is empty";
const DENIED: &str = "etcdserver: permission denied";
const AUTH_FAILED: &str = "etcdserver: authentication failed, invalid user ID or password";
const INVALID_TOKEN: &str = "etcdserver: invalid auth token";

/// Asserts `r` failed with `code` and `msg`.
#[track_caller]
fn expect_err<T: std::fmt::Debug>(r: Result<T, Error>, code: Code, msg: &str) {
    assert_eq!(status(r), (code, msg.to_owned()));
}

async fn connect_as(s: &TestServer, user: &str, password: &str) -> Result<Client, Error> {
    Client::connect(
        [s.endpoint()],
        Some(ConnectOptions::new().with_user(user, password)),
    )
    .await
}

/// root (with the root role), role `r` (read `foo`, readwrite prefix `dir/`), user
/// alice:pw holding `r`; then enables auth. Returns the (now tokenless) admin client.
async fn setup() -> (TestServer, Client) {
    let (s, c) = start().await;
    let mut a = c.auth_client();
    a.user_add("root", "rootpw", None).await.expect("add root");
    a.role_add("root").await.expect("add role root");
    a.user_grant_role("root", "root").await.expect("grant root");
    a.role_add("r").await.expect("add r");
    a.role_grant_permission("r", Permission::read("foo"))
        .await
        .expect("grant read foo");
    a.role_grant_permission("r", Permission::read_write("dir/").with_prefix())
        .await
        .expect("grant readwrite dir/");
    a.user_add("alice", "pw", None).await.expect("add alice");
    a.user_grant_role("alice", "r").await.expect("grant r");
    a.auth_enable().await.expect("enable");
    (s, c)
}

async fn next(stream: &mut WatchStream) -> WatchResponse {
    etcd_client_common::next_within(stream, WAIT).await
}

#[tokio::test]
async fn enable_preconditions_and_authenticate_while_disabled() {
    let (s, c) = start().await;
    let mut a = c.auth_client();
    expect_err(
        a.auth_enable().await,
        Code::FailedPrecondition,
        "etcdserver: root user does not exist",
    );
    a.user_add("root", "rootpw", None).await.expect("add root");
    expect_err(
        a.auth_enable().await,
        Code::FailedPrecondition,
        "etcdserver: root user does not have root role",
    );
    // Authenticate is refused, whatever the credentials, while auth is off.
    for pw in ["rootpw", "wrong"] {
        expect_err(
            a.authenticate("root".into(), pw.into()).await,
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled",
        );
    }
    a.role_add("root").await.expect("add role root");
    a.user_grant_role("root", "root").await.expect("grant");
    a.auth_enable().await.expect("enable");
    // Once on, enabling again is an admin request like any other.
    expect_err(a.auth_enable().await, Code::InvalidArgument, USER_EMPTY);
    let root = connect_as(&s, "root", "rootpw").await.expect("root");
    let r = root
        .auth_client()
        .auth_enable()
        .await
        .expect("enable twice");
    // Auth changes are not KV writes: headers keep the KV revision (1 on a fresh store).
    assert_eq!(r.header().expect("header").revision(), 1);
}

#[tokio::test]
async fn credentials_are_checked_at_connect() {
    let (s, _c) = setup().await;
    for (user, pw) in [("alice", "wrong"), ("nobody", "pw"), ("", "")] {
        let r = connect_as(&s, user, pw).await.map(|_| ());
        expect_err(r, Code::InvalidArgument, AUTH_FAILED);
    }
    let mut alice = connect_as(&s, "alice", "pw").await.expect("alice");
    alice.get("foo", None).await.expect("alice reads foo");
}

#[tokio::test]
async fn requests_without_a_token() {
    let (_s, mut c) = setup().await;
    expect_err(c.get("foo", None).await, Code::InvalidArgument, USER_EMPTY);
    expect_err(
        c.put("foo", "x", None).await,
        Code::InvalidArgument,
        USER_EMPTY,
    );
    expect_err(
        c.delete("foo", None).await,
        Code::InvalidArgument,
        USER_EMPTY,
    );
    let txn = Txn::new().and_then([TxnOp::get("foo", None)]);
    expect_err(c.txn(txn).await, Code::InvalidArgument, USER_EMPTY);
    let mut a = c.auth_client();
    expect_err(a.user_list().await, Code::InvalidArgument, USER_EMPTY);
    expect_err(a.auth_disable().await, Code::InvalidArgument, USER_EMPTY);
    expect_err(a.user_get("alice").await, Code::InvalidArgument, USER_EMPTY);
    // Maintenance RPCs checking for admin return the auth package's own error, which
    // etcd 3.4 does not translate: code Unknown, "auth: ..." text.
    let empty = "auth: user name is empty";
    expect_err(c.hash().await, Code::Unknown, empty);
    expect_err(c.hash_kv(0).await, Code::Unknown, empty);
    expect_err(c.defragment().await, Code::Unknown, empty);
    // Not checked at all in 3.4.
    c.member_list().await.expect("member list");
    c.status().await.expect("status");
    c.alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("alarm list");
    let lease = c.lease_grant(60, None).await.expect("lease grant");
    c.lease_revoke(lease.id())
        .await
        .expect("revoke an empty lease");
    c.compact(1, None).await.expect("compact");
}

#[tokio::test]
async fn permission_denied_for_keys_outside_the_roles() {
    let (s, _c) = setup().await;
    let mut root = connect_as(&s, "root", "rootpw").await.expect("root");
    root.put("foo", "bar", None).await.expect("root put");
    let mut alice = connect_as(&s, "alice", "pw").await.expect("alice");
    let pd = Code::PermissionDenied;
    expect_err(alice.put("foo", "x", None).await, pd, DENIED);
    expect_err(alice.delete("foo", None).await, pd, DENIED);
    expect_err(alice.get("secret", None).await, pd, DENIED);
    let all = etcd_client::GetOptions::new().with_all_keys();
    expect_err(alice.get("", Some(all)).await, pd, DENIED);
    let cmp = Txn::new()
        .when([Compare::value("secret", CompareOp::Equal, "x")])
        .and_then([TxnOp::put("dir/b", "1", None)]);
    expect_err(alice.txn(cmp).await, pd, DENIED);
    let put = Txn::new().or_else([TxnOp::put("foo", "1", None)]);
    expect_err(alice.txn(put).await, pd, DENIED);

    assert_eq!(
        alice.get("foo", None).await.expect("get").kvs()[0].value(),
        b"bar"
    );
    alice.put("dir/a", "1", None).await.expect("put dir/a");
    let ok = Txn::new()
        .when([Compare::value("foo", CompareOp::Equal, "bar")])
        .and_then([TxnOp::put("dir/b", "2", None)])
        .or_else([TxnOp::get("foo", None)]);
    assert!(alice.txn(ok).await.expect("txn").succeeded());
    let del = alice
        .delete(
            "dir/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete dir/");
    assert_eq!(del.deleted(), 2);
}

#[tokio::test]
async fn admin_rpcs_for_a_user_without_the_root_role() {
    let (s, _c) = setup().await;
    let mut alice = connect_as(&s, "alice", "pw").await.expect("alice");
    let pd = Code::PermissionDenied;
    let mut a = alice.auth_client();
    expect_err(a.user_list().await, pd, DENIED);
    expect_err(a.role_list().await, pd, DENIED);
    expect_err(a.role_add("x").await, pd, DENIED);
    expect_err(a.user_add("bob", "pw", None).await, pd, DENIED);
    expect_err(a.user_get("root").await, pd, DENIED);
    expect_err(a.role_get("root").await, pd, DENIED);
    expect_err(a.auth_disable().await, pd, DENIED);
    expect_err(a.auth_enable().await, pd, DENIED);
    expect_err(a.user_change_password("alice", "pw2").await, pd, DENIED);
    // Herself and her own roles she may read.
    assert_eq!(a.user_get("alice").await.expect("user get").roles(), ["r"]);
    assert_eq!(
        a.role_get("r").await.expect("role get").permissions().len(),
        2
    );

    let denied = "auth: permission denied";
    expect_err(alice.hash().await, Code::Unknown, denied);
    expect_err(alice.hash_kv(0).await, Code::Unknown, denied);
    expect_err(alice.defragment().await, Code::Unknown, denied);
    // etcd refuses the snapshot stream before its first message; a server that opens
    // the stream and fails it on the first message is equivalent to a client.
    let r = match alice.snapshot().await {
        Err(e) => Err(e),
        Ok(mut snap) => tokio::time::timeout(WAIT, snap.message())
            .await
            .expect("snapshot answer"),
    };
    expect_err(r, Code::Unknown, denied);

    alice.member_list().await.expect("member list");
    alice.status().await.expect("status");
    alice
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("alarm list");
    alice.put("dir/x", "1", None).await.expect("put");
    alice
        .compact(2, None)
        .await
        .expect("etcd 3.4 lets any user compact");
}

#[tokio::test]
async fn simple_tokens_and_their_invalidation() {
    let (s, c) = setup().await;
    let mut a = c.auth_client();
    let t1 = a
        .authenticate("alice".into(), "pw".into())
        .await
        .expect("authenticate")
        .token()
        .to_owned();
    let t2 = a
        .authenticate("alice".into(), "pw".into())
        .await
        .expect("authenticate")
        .token()
        .to_owned();
    // etcd's simple token: 16 random ASCII letters, '.', and a decimal index that grows
    // with every Authenticate (it is the request's raft index).
    let index = |t: &str| -> u64 {
        let (rand, idx) = t.split_once('.').unwrap_or_else(|| panic!("token {t:?}"));
        assert_eq!(rand.len(), 16, "token {t:?}");
        assert!(rand.bytes().all(|b| b.is_ascii_alphabetic()), "token {t:?}");
        assert!(
            !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()),
            "token {t:?}"
        );
        idx.parse().expect("index")
    };
    assert_ne!(t1, t2);
    assert!(index(&t2) > index(&t1), "{t1} then {t2}");
    expect_err(
        a.authenticate("alice".into(), "wrong".into()).await,
        Code::InvalidArgument,
        AUTH_FAILED,
    );

    // A password change invalidates the user's tokens: Unauthenticated.
    let mut root = connect_as(&s, "root", "rootpw").await.expect("root");
    let mut alice = connect_as(&s, "alice", "pw").await.expect("alice");
    alice.get("foo", None).await.expect("get");
    root.auth_client()
        .user_change_password("alice", "pw2")
        .await
        .expect("passwd");
    expect_err(
        alice.get("foo", None).await,
        Code::Unauthenticated,
        INVALID_TOKEN,
    );
    expect_err(
        connect_as(&s, "alice", "pw").await.map(|_| ()),
        Code::InvalidArgument,
        AUTH_FAILED,
    );
    // So does deleting the user.
    let mut alice = connect_as(&s, "alice", "pw2")
        .await
        .expect("alice, new password");
    alice.get("foo", None).await.expect("get");
    root.auth_client()
        .user_delete("alice")
        .await
        .expect("delete");
    expect_err(
        alice.get("foo", None).await,
        Code::Unauthenticated,
        INVALID_TOKEN,
    );

    // Disabling auth drops every token; a request still carrying one is refused even
    // though auth is off, while requests without a token now work.
    root.auth_client().auth_disable().await.expect("disable");
    expect_err(
        root.get("foo", None).await,
        Code::Unauthenticated,
        INVALID_TOKEN,
    );
    let mut open = c;
    open.get("foo", None).await.expect("tokenless get");
}

#[tokio::test]
async fn user_and_role_management() {
    let (_s, c) = start().await;
    let mut a = c.auth_client();
    let fp = Code::FailedPrecondition;
    a.user_add("alice", "pw", None).await.expect("add alice");
    expect_err(
        a.user_add("alice", "pw", None).await,
        fp,
        "etcdserver: user name already exists",
    );
    expect_err(
        a.user_add("", "pw", None).await,
        Code::InvalidArgument,
        USER_EMPTY,
    );
    expect_err(
        a.role_add("").await,
        Code::InvalidArgument,
        "etcdserver: role name is empty",
    );
    a.role_add("r").await.expect("add r");
    expect_err(
        a.role_add("r").await,
        fp,
        "etcdserver: role name already exists",
    );
    a.role_grant_permission("r", Permission::read("foo"))
        .await
        .expect("read foo");
    a.role_grant_permission("r", Permission::read_write("dir/").with_prefix())
        .await
        .expect("readwrite dir/");
    a.role_grant_permission("r", Permission::write("w").with_from_key())
        .await
        .expect("write w..");
    // Permissions come back sorted by key; a prefix as its range end, from-key as "\0".
    let perms = a.role_get("r").await.expect("role get").permissions();
    let got: Vec<(i32, &[u8], &[u8])> = perms
        .iter()
        .map(|p| (p.get_type(), p.key(), p.range_end()))
        .collect();
    assert_eq!(
        got,
        [
            (PermissionType::Readwrite as i32, &b"dir/"[..], &b"dir0"[..]),
            (PermissionType::Read as i32, b"foo", b""),
            (PermissionType::Write as i32, b"w", b"\0"),
        ]
    );

    let role_nf = "etcdserver: role name not found";
    let user_nf = "etcdserver: user name not found";
    expect_err(
        a.role_grant_permission("nosuch", Permission::read("k"))
            .await,
        fp,
        role_nf,
    );
    expect_err(a.role_get("nosuch").await, fp, role_nf);
    expect_err(a.role_delete("nosuch").await, fp, role_nf);
    expect_err(
        a.role_revoke_permission("nosuch", "k", None).await,
        fp,
        role_nf,
    );
    expect_err(a.user_get("nosuch").await, fp, user_nf);
    expect_err(a.user_delete("nosuch").await, fp, user_nf);
    expect_err(a.user_change_password("nosuch", "x").await, fp, user_nf);
    expect_err(a.user_grant_role("nosuch", "r").await, fp, user_nf);
    expect_err(a.user_revoke_role("nosuch", "r").await, fp, user_nf);
    expect_err(a.user_grant_role("alice", "nosuch").await, fp, role_nf);

    assert!(a.user_get("alice").await.expect("get").roles().is_empty());
    a.user_grant_role("alice", "r").await.expect("grant r");
    a.user_grant_role("alice", "r")
        .await
        .expect("granting twice is fine");
    assert_eq!(a.user_get("alice").await.expect("get").roles(), ["r"]);
    let not_granted = "etcdserver: role is not granted to the user";
    expect_err(a.user_revoke_role("alice", "other").await, fp, not_granted);
    expect_err(a.user_revoke_role("alice", "nosuch").await, fp, not_granted);
    expect_err(
        a.role_revoke_permission("r", "nothere", None).await,
        fp,
        "etcdserver: permission is not granted to the role",
    );
    let from_key = RoleRevokePermissionOptions::new().with_from_key();
    a.role_revoke_permission("r", "w", Some(from_key))
        .await
        .expect("revoke w..");
    assert_eq!(a.role_get("r").await.expect("get").permissions().len(), 2);

    a.user_add("root", "rootpw", None).await.expect("add root");
    a.role_add("root").await.expect("add role root");
    assert_eq!(
        a.user_list().await.expect("users").users(),
        ["alice", "root"]
    );
    assert_eq!(a.role_list().await.expect("roles").roles(), ["r", "root"]);
    a.user_revoke_role("alice", "r").await.expect("revoke r");
    a.role_delete("r").await.expect("delete r");
    a.user_delete("alice").await.expect("delete alice");
    assert_eq!(a.user_list().await.expect("users").users(), ["root"]);
}

#[tokio::test]
async fn root_user_and_role_are_protected_while_enabled() {
    let (s, c) = setup().await;
    let root = connect_as(&s, "root", "rootpw").await.expect("root");
    let mut a = root.auth_client();
    let mgmt = "etcdserver: invalid auth management";
    expect_err(a.user_delete("root").await, Code::InvalidArgument, mgmt);
    expect_err(
        a.user_revoke_role("root", "root").await,
        Code::InvalidArgument,
        mgmt,
    );
    expect_err(a.role_delete("root").await, Code::InvalidArgument, mgmt);
    a.auth_disable().await.expect("disable");
    // Off again, the root user and role are ordinary.
    let mut a = c.auth_client();
    a.user_revoke_role("root", "root").await.expect("revoke");
    expect_err(
        a.auth_enable().await,
        Code::FailedPrecondition,
        "etcdserver: root user does not have root role",
    );
    a.user_delete("root").await.expect("delete root");
    a.role_delete("root").await.expect("delete role root");
}

#[tokio::test]
async fn lease_revoke_and_put_with_lease_need_write_on_attached_keys() {
    let (s, mut c) = setup().await;
    let mut root = connect_as(&s, "root", "rootpw").await.expect("root");
    let mut alice = connect_as(&s, "alice", "pw").await.expect("alice");
    let lease = root.lease_grant(600, None).await.expect("grant").id();
    let with_lease = || Some(PutOptions::new().with_lease(lease));
    root.put("secret", "s", with_lease())
        .await
        .expect("put secret");
    let pd = Code::PermissionDenied;
    expect_err(alice.put("dir/l", "1", with_lease()).await, pd, DENIED);
    expect_err(alice.lease_revoke(lease).await, pd, DENIED);
    expect_err(
        c.lease_revoke(lease).await,
        Code::InvalidArgument,
        USER_EMPTY,
    );
    root.lease_revoke(lease).await.expect("root revokes");
    expect_err(
        alice.lease_revoke(lease).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );

    let lease = alice.lease_grant(600, None).await.expect("grant").id();
    alice
        .put("dir/l", "1", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with her lease");
    alice.lease_revoke(lease).await.expect("revoke her lease");
    assert!(alice
        .get("dir/l", None)
        .await
        .expect("get")
        .kvs()
        .is_empty());
}

#[tokio::test]
async fn watch_without_permission_is_created_and_canceled_at_once() {
    let (s, mut c) = setup().await;
    let mut alice = connect_as(&s, "alice", "pw").await.expect("alice");
    let mut w = alice.watch("secret", None).await.expect("watch");
    let r = next(&mut w).await;
    assert!(r.created() && r.canceled(), "{r:?}");
    assert_eq!(r.watch_id(), -1);
    assert_eq!(r.compact_revision(), 0);
    // The reason is the Go formatting of the gRPC error, code included.
    assert_eq!(
        r.cancel_reason(),
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );
    assert!(r.events().is_empty());
    assert_eq!(r.header().expect("header").revision(), 1);

    // The stream stays usable and the refused create used up no watch id.
    w.watch("dir/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("send");
    let r = next(&mut w).await;
    assert!(r.created() && !r.canceled(), "{r:?}");
    assert_eq!(r.watch_id(), 0);
    w.watch("a", Some(WatchOptions::new().with_range("z")))
        .await
        .expect("send");
    let r = next(&mut w).await;
    assert!(r.created() && r.canceled(), "{r:?}");
    assert_eq!(r.watch_id(), -1);
    alice.put("dir/a", "1", None).await.expect("put");
    let r = next(&mut w).await;
    assert_eq!(r.watch_id(), 0);
    assert_eq!(r.events()[0].kv().expect("kv").key(), b"dir/a");

    // Without a token the reason is "user name is empty".
    let mut w = c.watch("foo", None).await.expect("watch");
    let r = next(&mut w).await;
    assert!(r.created() && r.canceled(), "{r:?}");
    assert_eq!(r.watch_id(), -1);
    assert_eq!(
        r.cancel_reason(),
        "rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
    );
}
