//! KV behaviour through the `etcd-client` crate (raw gRPC): status codes and
//! etcd's error messages, and request fields etcdctl 3.4 cannot send
//! (count_only, revision filters, nested txns, compare ranges), and the backend `Hash`.
//!
//! Runs against etcd or revkv per `REVKV_TEST_TARGET`.

mod etcd_client_common;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, Error, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse,
};
use etcd_client_common::{start, status};
use tonic::Code;

fn keys(kvs: &[etcd_client::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8(kv.key().to_vec()).expect("utf8 key"))
        .collect()
}

async fn revision(c: &mut Client) -> i64 {
    c.get("revkv-tests/probe", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
}

#[tokio::test]
async fn put_get_roundtrip_and_headers() {
    let (_s, mut c) = start().await;
    let put = c.put("foo", "bar", None).await.expect("put");
    let h = put.header().expect("put header");
    assert_eq!(
        h.revision(),
        2,
        "first put on a fresh store makes revision 2"
    );
    assert_ne!(h.cluster_id(), 0);
    assert_ne!(h.member_id(), 0);
    assert!(h.raft_term() >= 1);
    assert!(put.prev_key().is_none());

    let put = c
        .put("foo", "baz", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put prev_kv");
    let prev = put.prev_key().expect("prev_kv");
    assert_eq!(prev.value(), b"bar");
    assert_eq!(prev.version(), 1);
    assert_eq!(prev.create_revision(), 2);
    assert_eq!(prev.mod_revision(), 2);
    assert_eq!(prev.lease(), 0);

    let got = c.get("foo", None).await.expect("get");
    assert_eq!(got.count(), 1);
    assert!(!got.more());
    let kv = &got.kvs()[0];
    assert_eq!(kv.key(), b"foo");
    assert_eq!(kv.value(), b"baz");
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (2, 3, 2)
    );
    let h = got.header().expect("get header");
    assert_eq!(h.revision(), 3);

    // Binary keys and values (not UTF-8, embedded NUL) round-trip.
    let key = vec![0xff, 0x00, 0x01];
    let value = vec![0x00, 0xfe, 0x80, 0x00];
    c.put(key.clone(), value.clone(), None).await.expect("put");
    let got = c.get(key.clone(), None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), value.as_slice());

    let del = c
        .delete("foo", Some(DeleteOptions::new().with_prev_key()))
        .await
        .expect("delete");
    assert_eq!(del.deleted(), 1);
    assert_eq!(del.prev_kvs()[0].value(), b"baz");
    assert_eq!(del.header().expect("header").revision(), 5);
}

#[tokio::test]
async fn ranges_count_only_keys_only_limit_and_sort() {
    let (_s, mut c) = start().await;
    for (k, v) in [
        ("p/c", "1"),
        ("p/a", "3"),
        ("p/b", "2"),
        ("q", "x"),
        ("o", "y"),
    ] {
        c.put(k, v, None).await.expect("put");
    }
    let r = c
        .get("p/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("prefix");
    assert_eq!(keys(r.kvs()), ["p/a", "p/b", "p/c"]);
    assert_eq!(r.count(), 3);

    let r = c
        .get(
            "p/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("count_only");
    assert!(r.kvs().is_empty(), "count_only returns no kvs");
    assert_eq!(r.count(), 3);
    assert!(!r.more());

    let r = c
        .get("p/", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .expect("keys_only");
    assert_eq!(keys(r.kvs()), ["p/a", "p/b", "p/c"]);
    assert!(r.kvs().iter().all(|kv| kv.value().is_empty()));
    assert!(r.kvs().iter().all(|kv| kv.version() == 1));

    let r = c
        .get("p/", Some(GetOptions::new().with_prefix().with_limit(2)))
        .await
        .expect("limit");
    assert_eq!(keys(r.kvs()), ["p/a", "p/b"]);
    assert!(r.more());
    assert_eq!(r.count(), 3);

    // Explicit [start, end) range and "all keys" (key "\0", range_end "\0").
    let r = c
        .get("p/a", Some(GetOptions::new().with_range("p/c")))
        .await
        .expect("range");
    assert_eq!(keys(r.kvs()), ["p/a", "p/b"]);
    let r = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("all");
    assert_eq!(keys(r.kvs()), ["o", "p/a", "p/b", "p/c", "q"]);
    let r = c
        .get("p/b", Some(GetOptions::new().with_from_key()))
        .await
        .expect("from key");
    assert_eq!(keys(r.kvs()), ["p/b", "p/c", "q"]);

    let r = c
        .get(
            "p/",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Value, SortOrder::Descend)
                    .with_limit(2),
            ),
        )
        .await
        .expect("sorted");
    assert_eq!(keys(r.kvs()), ["p/a", "p/b"]);
    assert!(r.more());
    assert_eq!(r.count(), 3);
}

#[tokio::test]
async fn revision_filters_do_not_change_count() {
    let (_s, mut c) = start().await;
    let mut revs = Vec::new();
    for k in ["f/a", "f/b", "f/c", "f/d"] {
        revs.push(
            c.put(k, "v", None)
                .await
                .expect("put")
                .header()
                .expect("header")
                .revision(),
        );
    }
    let r = c
        .get(
            "f/",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_min_mod_revision(revs[1])
                    .with_max_mod_revision(revs[2]),
            ),
        )
        .await
        .expect("filtered");
    assert_eq!(keys(r.kvs()), ["f/b", "f/c"]);
    // count reflects the range, not the filters.
    assert_eq!(r.count(), 4);
    let r = c
        .get(
            "f/",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_min_create_revision(revs[3]),
            ),
        )
        .await
        .expect("filtered");
    assert_eq!(keys(r.kvs()), ["f/d"]);
}

#[tokio::test]
async fn txn_branches_and_op_responses() {
    let (_s, mut c) = start().await;
    let r1 = c
        .put("t1", "v1", None)
        .await
        .expect("put")
        .header()
        .expect("header")
        .revision();

    let resp = c
        .txn(
            Txn::new()
                .when([
                    Compare::value("t1", CompareOp::Equal, "v1"),
                    Compare::version("t1", CompareOp::Equal, 1),
                    Compare::create_revision("t1", CompareOp::Equal, r1),
                    Compare::mod_revision("t1", CompareOp::Less, r1 + 1),
                ])
                .and_then([
                    TxnOp::put("t2", "s", None),
                    TxnOp::get("t2", None),
                    TxnOp::delete("missing", None),
                ])
                .or_else([TxnOp::put("t3", "f", None)]),
        )
        .await
        .expect("txn");
    assert!(resp.succeeded());
    let rev = resp.header().expect("header").revision();
    assert_eq!(rev, r1 + 1);
    let ops = resp.op_responses();
    assert_eq!(ops.len(), 3);
    match &ops[0] {
        TxnOpResponse::Put(p) => assert_eq!(p.header().expect("op header").revision(), rev),
        other => panic!("expected put response, got {other:?}"),
    }
    match &ops[1] {
        TxnOpResponse::Get(g) => {
            assert_eq!(keys(g.kvs()), ["t2"]);
            assert_eq!(g.kvs()[0].mod_revision(), rev);
        }
        other => panic!("expected range response, got {other:?}"),
    }
    match &ops[2] {
        TxnOpResponse::Delete(d) => assert_eq!(d.deleted(), 0),
        other => panic!("expected delete response, got {other:?}"),
    }

    let resp = c
        .txn(
            Txn::new()
                .when([Compare::value("t1", CompareOp::NotEqual, "v1")])
                .and_then([TxnOp::put("t2", "again", None)])
                .or_else([TxnOp::put("t3", "f", None), TxnOp::get("t1", None)]),
        )
        .await
        .expect("txn");
    assert!(!resp.succeeded());
    assert_eq!(resp.header().expect("header").revision(), rev + 1);
    assert_eq!(resp.op_responses().len(), 2);
    let t3 = c.get("t3", None).await.expect("get");
    assert_eq!(t3.kvs()[0].value(), b"f");

    // A compare over a range holds only if it holds for every key in it.
    c.put("r/1", "a", None).await.expect("put");
    c.put("r/2", "a", None).await.expect("put");
    let all_a = Txn::new().when([Compare::value("r/", CompareOp::Equal, "a").with_prefix()]);
    assert!(c.txn(all_a.clone()).await.expect("txn").succeeded());
    c.put("r/3", "b", None).await.expect("put");
    assert!(!c.txn(all_a).await.expect("txn").succeeded());

    // Nested txn: the inner compare sees the state before the outer ops.
    let resp = c
        .txn(
            Txn::new().and_then([TxnOp::txn(
                Txn::new()
                    .when([Compare::version("n", CompareOp::Equal, 0)])
                    .and_then([TxnOp::put("n", "inner", None)]),
            )]),
        )
        .await
        .expect("nested txn");
    assert!(resp.succeeded());
    match &resp.op_responses()[0] {
        TxnOpResponse::Txn(t) => assert!(t.succeeded()),
        other => panic!("expected nested txn response, got {other:?}"),
    }
    let n = c.get("n", None).await.expect("get");
    assert_eq!(n.kvs()[0].value(), b"inner");
}

#[tokio::test]
async fn compaction_errors_are_out_of_range() {
    let (_s, mut c) = start().await;
    let mut revs = Vec::new();
    for i in 0..4 {
        revs.push(
            c.put("k", format!("v{i}"), None)
                .await
                .expect("put")
                .header()
                .expect("header")
                .revision(),
        );
    }
    let current = revision(&mut c).await;
    let resp = c.compact(revs[2], None).await.expect("compact");
    assert_eq!(resp.header().expect("header").revision(), current);

    let (code, msg) = status(
        c.get("k", Some(GetOptions::new().with_revision(revs[1])))
            .await,
    );
    assert_eq!(code, Code::OutOfRange);
    assert_eq!(
        msg,
        "etcdserver: mvcc: required revision has been compacted"
    );

    let (code, msg) = status(c.compact(revs[1], None).await);
    assert_eq!(code, Code::OutOfRange);
    assert_eq!(
        msg,
        "etcdserver: mvcc: required revision has been compacted"
    );

    let (code, msg) = status(c.compact(current + 5, None).await);
    assert_eq!(code, Code::OutOfRange);
    assert_eq!(
        msg,
        "etcdserver: mvcc: required revision is a future revision"
    );

    let (code, msg) = status(
        c.get("k", Some(GetOptions::new().with_revision(current + 1)))
            .await,
    );
    assert_eq!(code, Code::OutOfRange);
    assert_eq!(
        msg,
        "etcdserver: mvcc: required revision is a future revision"
    );

    // A txn reading a compacted revision fails as a whole.
    let (code, msg) = status(
        c.txn(Txn::new().and_then([TxnOp::get(
            "k",
            Some(GetOptions::new().with_revision(revs[0])),
        )]))
        .await,
    );
    assert_eq!(code, Code::OutOfRange);
    assert_eq!(
        msg,
        "etcdserver: mvcc: required revision has been compacted"
    );

    let got = c
        .get("k", Some(GetOptions::new().with_revision(revs[2])))
        .await
        .expect("get at compacted revision");
    assert_eq!(got.kvs()[0].value(), b"v2");
}

#[tokio::test]
async fn invalid_argument_errors() {
    let (_s, mut c) = start().await;
    c.put("exists", "v", None).await.expect("put");
    let before = revision(&mut c).await;

    let (code, msg) = status(c.put("", "v", None).await);
    assert_eq!(
        (code, msg.as_str()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let (code, msg) = status(c.get("", None).await);
    assert_eq!(
        (code, msg.as_str()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let (code, msg) = status(c.delete("", None).await);
    assert_eq!(
        (code, msg.as_str()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );

    let (code, msg) = status(
        c.put("nokey", "", Some(PutOptions::new().with_ignore_value()))
            .await,
    );
    assert_eq!(
        (code, msg.as_str()),
        (Code::InvalidArgument, "etcdserver: key not found")
    );
    let (code, msg) = status(
        c.put("nokey", "v", Some(PutOptions::new().with_ignore_lease()))
            .await,
    );
    assert_eq!(
        (code, msg.as_str()),
        (Code::InvalidArgument, "etcdserver: key not found")
    );

    let (code, msg) = status(
        c.txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
            .await,
    );
    assert_eq!(
        (code, msg.as_str()),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request"
        )
    );

    // Default --max-txn-ops is 128 (per branch).
    let ops: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("many/{i}"), "v", None))
        .collect();
    let (code, msg) = status(c.txn(Txn::new().and_then(ops)).await);
    assert_eq!(
        (code, msg.as_str()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    let ops: Vec<TxnOp> = (0..128)
        .map(|i| TxnOp::put(format!("many/{i}"), "v", None))
        .collect();
    let resp = c.txn(Txn::new().and_then(ops)).await.expect("128 ops");
    assert_eq!(resp.header().expect("header").revision(), before + 1);

    let (code, msg) = status(c.put("big", vec![b'x'; 1_600_000], None).await);
    assert_eq!(
        (code, msg.as_str()),
        (Code::InvalidArgument, "etcdserver: request is too large")
    );

    let (code, msg) = status(
        c.put("leased", "v", Some(PutOptions::new().with_lease(0x1234)))
            .await,
    );
    assert_eq!(
        (code, msg.as_str()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );

    // None of the failures made a revision; the server still serves.
    assert_eq!(revision(&mut c).await, before + 1);
    let got = c.get("exists", None).await.expect("get after errors");
    assert_eq!(got.kvs()[0].value(), b"v");
}

/// Maintenance `Hash` sums up the member's whole backend: the same while nothing is
/// written, different after a write, with the store's revision in its header.
#[tokio::test]
async fn backend_hash_is_stable_until_a_write() {
    let (_s, mut c) = start().await;
    c.put("h", "1", None).await.expect("put");
    let rev = revision(&mut c).await;
    let first = c.hash().await.expect("hash");
    let again = c.hash().await.expect("hash");
    assert_eq!(first.hash(), again.hash());
    assert_eq!(first.header().expect("header").revision(), rev);

    c.put("h", "2", None).await.expect("put");
    let after = c.hash().await.expect("hash");
    assert_ne!(after.hash(), first.hash());
    assert_eq!(after.header().expect("header").revision(), rev + 1);
}

/// A CORRUPT alarm (raised through the API here; etcd raises it after a failed
/// corruption check) stops every write through the log with "corrupt cluster" while
/// reads go on; deactivating it ends that.
#[tokio::test]
async fn corrupt_alarm_refuses_writes_until_deactivated() {
    use etcd_client::{AlarmAction, AlarmOptions, AlarmType};
    let (_s, mut c) = start().await;
    c.put("k", "v", None).await.expect("put");
    let member = c
        .status()
        .await
        .expect("status")
        .header()
        .expect("header")
        .member_id();
    let mut on = AlarmOptions::new();
    on.with_member(member);
    let raised = c
        .alarm(AlarmAction::Activate, AlarmType::Corrupt, Some(on))
        .await
        .expect("activate");
    assert_eq!(raised.alarms().len(), 1);
    assert_eq!(raised.alarms()[0].member_id(), member);
    assert_eq!(raised.alarms()[0].alarm(), AlarmType::Corrupt);

    let corrupt = (Code::DataLoss, "etcdserver: corrupt cluster".to_owned());
    assert_eq!(status(c.put("k", "w", None).await), corrupt);
    assert_eq!(status(c.delete("k", None).await), corrupt);
    assert_eq!(status(c.lease_grant(10, None).await), corrupt);
    let got = c.get("k", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"v");

    let mut off = AlarmOptions::new();
    off.with_member(member);
    c.alarm(AlarmAction::Deactivate, AlarmType::Corrupt, Some(off))
        .await
        .expect("deactivate");
    let listed = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("list");
    assert!(listed.alarms().is_empty());
    c.put("k", "w", None).await.expect("put after deactivation");
}

/// `Authenticate` on a cluster whose authentication is off: etcd's FailedPrecondition,
/// which clients take as "no token needed"; `AuthDisable` succeeds.
#[tokio::test]
async fn authenticate_says_authentication_is_not_enabled() {
    let (_s, c) = start().await;
    let mut auth = c.auth_client();
    assert_eq!(
        status(auth.authenticate("root".into(), "secret".into()).await),
        (
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled".to_owned()
        )
    );
    let disabled = auth.auth_disable().await.expect("auth disable");
    assert!(disabled.header().is_some_and(|h| h.member_id() != 0));
}

/// A request message past `--max-request-bytes` plus gRPC's 512 KiB allowance is
/// refused by the gRPC layer itself, before any handler sees it; the member keeps
/// serving. (A value between the two limits is the handler's "request is too large",
/// covered by the etcdctl suite.)
#[tokio::test]
async fn messages_past_the_grpc_limit_are_refused_and_the_server_serves_on() {
    let (_s, mut c) = start().await;
    let big = vec![b'a'; 2_621_440];
    assert_too_large(c.put("big", big.clone(), None).await, 2_621_450);
    assert_too_large(c.get(big, None).await, 2_621_445);
    assert_serves_on(&mut c).await;
}

/// grpc-go's refusal of a request message of `len` bytes (past the 2 MiB limit).
#[track_caller]
fn assert_too_large<T: std::fmt::Debug>(r: Result<T, Error>, len: usize) {
    let (code, msg) = status(r);
    assert_eq!(code, Code::ResourceExhausted, "{msg}");
    assert_eq!(
        msg,
        format!("grpc: received message larger than max ({len} vs. 2097152)")
    );
}

/// A put and a get after a refusal: the member still serves.
async fn assert_serves_on(c: &mut Client) {
    c.put("small", "ok", None).await.expect("put after");
    let got = c.get("small", None).await.expect("get after");
    assert_eq!(got.kvs()[0].value(), b"ok");
}

/// The same refusal, in the same words, from the other services: a unary call
/// (`MemberAdd`) and a stream (`Watch`, which ends with it). The member serves on.
#[tokio::test]
async fn other_services_refuse_oversized_messages_in_the_same_words() {
    let (_s, mut c) = start().await;
    let url = format!("http://{}", "a".repeat(2_621_440));
    // The request: the URL's tag, its 4-byte length, and 2,621,447 bytes of URL.
    assert_too_large(c.member_add([url], None).await, 2_621_452);
    // etcd's answer has no headers before the status, so the client sees it when the
    // stream opens; revkv's stream opens first and ends with it. The request: a
    // WatchRequest holding a WatchCreateRequest (2,621,445 bytes) holding the key.
    match c.watch(vec![b'k'; 2_621_440], None).await {
        Ok(mut stream) => assert_too_large(stream.message().await, 2_621_450),
        Err(e) => assert_too_large::<()>(Err(e), 2_621_450),
    }
    assert_serves_on(&mut c).await;
}
