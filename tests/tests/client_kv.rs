//! KV through `revkv-client` against a real server: options, txns, every decorator
//! end to end (alone and stacked), failover when an endpoint is dead, and errors
//! keeping etcd's gRPC code and message.
//!
//! Runs against etcd or revkv per `REVKV_TEST_TARGET`.

use std::time::Duration;

use revkv_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, Error, GetOptions, Kv, Namespace,
    Op, OpResponse, Ordering, PutOptions, Retry, RetryPolicy, SortOrder, SortTarget, Timeout,
    Traced, Txn,
};
use revkv_tests::{free_port, TestServer};
use tonic::Code;

async fn start() -> (TestServer, Client) {
    let server = TestServer::start();
    let client = Client::connect([server.endpoint()], ConnectOptions::new())
        .await
        .expect("connect");
    (server, client)
}

fn keys(kvs: &[revkv_client::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8(kv.key.clone()).expect("utf8 key"))
        .collect()
}

/// An endpoint nobody listens on.
fn dead_endpoint() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[tokio::test]
async fn put_get_delete_with_options() {
    let (_s, client) = start().await;
    let kv = client.kv();
    let put = kv.put("foo", "bar").await.expect("put");
    assert_eq!(put.header.revision, 2, "first put on a fresh store");
    assert_ne!(put.header.cluster_id, 0);
    assert_ne!(put.header.member_id, 0);
    assert!(put.prev_kv.is_none());

    let put = kv
        .put_with("foo", "baz", PutOptions::new().with_prev_kv())
        .await
        .expect("put prev_kv");
    let prev = put.prev_kv.expect("prev_kv");
    assert_eq!((prev.value.as_slice(), prev.version), (&b"bar"[..], 1));

    let got = kv.get("foo").await.expect("get");
    assert_eq!(got.count, 1);
    let foo = &got.kvs[0];
    assert_eq!(foo.value, b"baz");
    assert_eq!(
        (foo.create_revision, foo.mod_revision, foo.version),
        (2, 3, 2)
    );

    for k in ["p/a", "p/b", "p/c", "q"] {
        kv.put(k, k).await.expect("put");
    }
    let prefix = kv
        .get_with("p/", GetOptions::new().with_prefix())
        .await
        .expect("prefix");
    assert_eq!(keys(&prefix.kvs), ["p/a", "p/b", "p/c"]);

    let limited = kv
        .get_with(
            "p/",
            GetOptions::new()
                .with_prefix()
                .with_limit(2)
                .with_sort(SortTarget::Key, SortOrder::Descend),
        )
        .await
        .expect("limit");
    assert_eq!(keys(&limited.kvs), ["p/c", "p/b"]);
    assert!(limited.more);
    assert_eq!(limited.count, 3);

    let count = kv
        .get_with("p/", GetOptions::new().with_prefix().with_count_only())
        .await
        .expect("count");
    assert!(count.kvs.is_empty());
    assert_eq!(count.count, 3);

    let keys_only = kv
        .get_with("p/a", GetOptions::new().with_keys_only())
        .await
        .expect("keys only");
    assert!(keys_only.kvs[0].value.is_empty());

    let from = kv
        .get_with("p/c", GetOptions::new().with_from_key())
        .await
        .expect("from key");
    assert_eq!(keys(&from.kvs), ["p/c", "q"]);

    let range = kv
        .get_with("p/a", GetOptions::new().with_range("p/c"))
        .await
        .expect("range");
    assert_eq!(keys(&range.kvs), ["p/a", "p/b"]);

    let old = kv
        .get_with("foo", GetOptions::new().with_revision(2))
        .await
        .expect("old revision");
    assert_eq!(old.kvs[0].value, b"bar");

    let del = kv
        .delete_with("p/", DeleteOptions::new().with_prefix().with_prev_kv())
        .await
        .expect("delete");
    assert_eq!(del.deleted, 3);
    assert_eq!(keys(&del.prev_kvs), ["p/a", "p/b", "p/c"]);
    assert_eq!(kv.delete("nothing").await.expect("delete").deleted, 0);
}

#[tokio::test]
async fn txn_compares_branches_and_nesting() {
    let (_s, client) = start().await;
    let kv = client.kv();
    kv.put("lock", "free").await.expect("put");

    let take = Txn::new()
        .when([Compare::value("lock", CompareOp::Equal, "free")])
        .and_then([
            Op::put("lock", "me", PutOptions::new()),
            Op::get("lock", GetOptions::new()),
        ])
        .or_else([Op::get("lock", GetOptions::new())]);
    let r = kv.txn(take.clone()).await.expect("txn");
    assert!(r.succeeded);
    assert_eq!(r.responses.len(), 2);
    assert_eq!(r.kvs().next().expect("kv").value, b"me");

    let again = kv.txn(take).await.expect("txn");
    assert!(!again.succeeded);
    assert_eq!(again.kvs().next().expect("kv").value, b"me");

    // Nested txn in the success branch, compare over a prefix.
    kv.put("n/a", "1").await.expect("put");
    kv.put("n/b", "1").await.expect("put");
    let nested = Txn::new()
        .when([Compare::version("n/", CompareOp::Greater, 0).with_prefix()])
        .and_then([Op::Txn(
            Txn::new()
                .when([Compare::value("n/a", CompareOp::Equal, "1")])
                .and_then([Op::delete("n/", DeleteOptions::new().with_prefix())]),
        )]);
    let r = kv.txn(nested).await.expect("nested txn");
    assert!(r.succeeded);
    let OpResponse::Txn(inner) = &r.responses[0] else {
        panic!("expected a nested txn response, got {:?}", r.responses);
    };
    assert!(inner.succeeded);
    let OpResponse::Delete(d) = &inner.responses[0] else {
        panic!("expected a delete response");
    };
    assert_eq!(d.deleted, 2);
}

#[tokio::test]
async fn errors_keep_grpc_code_and_etcd_message() {
    let (_s, client) = start().await;
    let kv = client.kv();

    let err = kv
        .put_with("k", "v", PutOptions::new().with_lease(0x1234))
        .await
        .expect_err("missing lease");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "etcdserver: requested lease not found");

    for i in 0..3 {
        kv.put("c", i.to_string()).await.expect("put");
    }
    let rev = kv.get("c").await.expect("get").header.revision;
    kv.compact(rev, true).await.expect("compact");
    let err = kv
        .get_with("c", GetOptions::new().with_revision(rev - 1))
        .await
        .expect_err("compacted");
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let err = kv.compact(rev - 1, false).await.expect_err("compacted");
    assert_eq!(err.code(), Code::OutOfRange);

    let err = kv
        .get_with("c", GetOptions::new().with_revision(rev + 100))
        .await
        .expect_err("future");
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    assert!(!err.never_sent());
}

#[tokio::test]
async fn namespace_confines_keys_end_to_end() {
    let (_s, client) = start().await;
    let raw = client.kv();
    raw.put("outside", "x").await.expect("put");
    raw.put("app0", "just past the namespace")
        .await
        .expect("put");
    let app = Namespace::new(client.kv(), "app/");
    app.put("a", "1").await.expect("put");
    app.put("b", "2").await.expect("put");

    assert_eq!(raw.get("app/a").await.expect("get").kvs[0].value, b"1");
    let all = app
        .get_with("", GetOptions::new().with_prefix())
        .await
        .expect("get");
    assert_eq!(keys(&all.kvs), ["a", "b"]);
    let from = app
        .get_with("b", GetOptions::new().with_from_key())
        .await
        .expect("from key");
    assert_eq!(
        keys(&from.kvs),
        ["b"],
        "from-key stays inside the namespace"
    );

    let r = app
        .txn(
            Txn::new()
                .when([Compare::value("a", CompareOp::Equal, "1")])
                .and_then([Op::put("a", "3", PutOptions::new().with_prev_kv())]),
        )
        .await
        .expect("txn");
    assert!(r.succeeded);
    let OpResponse::Put(p) = &r.responses[0] else {
        panic!("put response")
    };
    assert_eq!(p.prev_kv.as_ref().expect("prev").key, b"a");

    let del = app
        .delete_with("", DeleteOptions::new().with_prefix().with_prev_kv())
        .await
        .expect("delete");
    assert_eq!(keys(&del.prev_kvs), ["a", "b"]);
    let left = raw
        .get_with("", GetOptions::new().with_from_key())
        .await
        .expect("get");
    assert_eq!(keys(&left.kvs), ["app0", "outside"]);
}

#[tokio::test]
async fn retry_ordering_timeout_with_lease_and_traced_end_to_end() {
    let (_s, client) = start().await;
    let retry = Retry::new(client.kv(), RetryPolicy::new(3, Duration::from_millis(10)));
    retry.put("r", "1").await.expect("put through retry");

    let ordered = Ordering::new(client.kv());
    let put = ordered.put("o", "1").await.expect("put");
    assert_eq!(ordered.seen(), put.header.revision);
    ordered.get("o").await.expect("same or newer revision");

    let timed = Timeout::new(client.kv(), Duration::from_secs(10));
    timed.get("o").await.expect("well within the deadline");

    let lease = client.lease().grant(60).await.expect("grant");
    let leased = client.kv().with_lease(lease.id);
    leased.put("l", "1").await.expect("put");
    assert_eq!(
        client.kv().get("l").await.expect("get").kvs[0].lease,
        lease.id
    );
    let ttl = client
        .lease()
        .time_to_live(lease.id, true)
        .await
        .expect("ttl");
    assert_eq!(ttl.keys, vec![b"l".to_vec()]);

    let traced = Traced::new(client.kv());
    traced.put("t", "1").await.expect("traced put");
    assert_eq!(traced.get("t").await.expect("get").kvs[0].value, b"1");
}

#[tokio::test]
async fn composed_stack_end_to_end() {
    let (_s, client) = start().await;
    let kv = Traced::new(Ordering::new(Timeout::new(
        Namespace::new(Retry::new(client.kv(), RetryPolicy::default()), "stack/"),
        Duration::from_secs(10),
    )));
    let lease = client.lease().grant(60).await.expect("grant");
    let leased = (&kv).with_lease(lease.id);
    leased.put("k", "v").await.expect("put");
    let got = kv
        .get_with("", GetOptions::new().with_prefix())
        .await
        .expect("get");
    assert_eq!(keys(&got.kvs), ["k"]);
    assert_eq!(got.kvs[0].lease, lease.id);
    let raw = client.kv().get("stack/k").await.expect("raw get");
    assert_eq!(raw.kvs[0].value, b"v");

    // The documented composition compiles and works as is.
    let simple = Namespace::new(Retry::new(client.kv(), RetryPolicy::default()), "app/");
    simple.put("x", "1").await.expect("put");
    assert_eq!(client.kv().get("app/x").await.expect("get").count, 1);
}

#[tokio::test]
async fn unary_calls_fail_over_past_a_dead_endpoint() {
    let server = TestServer::start();
    let dead = dead_endpoint();
    let client = Client::connect(
        [dead.clone(), server.endpoint()],
        ConnectOptions::new().with_dial_timeout(Duration::from_secs(1)),
    )
    .await
    .expect("connect through the live endpoint");
    let kv = client.kv();
    // Several rounds so the round robin starts at the dead endpoint too: writes that
    // never left are resent, exactly once each.
    for i in 0..6 {
        kv.put(format!("f/{i}"), "v").await.expect("put fails over");
        let got = kv.get(format!("f/{i}")).await.expect("get fails over");
        assert_eq!(got.kvs[0].version, 1, "each write applied once");
    }
    client
        .lease()
        .grant(10)
        .await
        .expect("lease grant fails over");
    client
        .maintenance()
        .status()
        .await
        .expect("status fails over");

    // Pinned to the dead endpoint, nothing fails over.
    let err = client
        .maintenance()
        .status_of(&dead)
        .await
        .expect_err("dead endpoint");
    assert!(err.never_sent(), "{err:?}");
    assert_eq!(err.code(), Code::Unavailable);
}

#[tokio::test]
async fn connect_fails_when_no_endpoint_answers() {
    let err = Client::connect(
        [dead_endpoint(), dead_endpoint()],
        ConnectOptions::new().with_dial_timeout(Duration::from_millis(500)),
    )
    .await
    .expect_err("nothing listens");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.never_sent());
    assert!(Client::connect(Vec::<String>::new(), ConnectOptions::new())
        .await
        .is_err());
}

#[tokio::test]
async fn request_timeout_bounds_calls() {
    let (_s, client) = start().await;
    // A generous timeout never fires on a healthy server.
    let client2 = Client::connect(
        client.endpoints(),
        ConnectOptions::new().with_request_timeout(Duration::from_secs(10)),
    )
    .await
    .expect("connect");
    client2.kv().put("k", "v").await.expect("put");
}
