//! Leases through `revkv-client` against a real server: grant / time-to-live /
//! leases / revoke, etcd's errors for a missing lease, and `KeepAlive` keeping a
//! lease alive past its TTL and letting it expire once dropped.
//!
//! Runs against etcd or revkv per `REVKV_TEST_TARGET`. Waits are bounded; nothing is
//! asserted about how fast the server is.

use std::time::Duration;

use revkv_client::{Client, ConnectOptions, Error, Kv, PutOptions};
use revkv_tests::TestServer;
use tokio::time::Instant;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

async fn start() -> (TestServer, Client) {
    let server = TestServer::start();
    let client = Client::connect([server.endpoint()], ConnectOptions::new())
        .await
        .expect("connect");
    (server, client)
}

#[tokio::test]
async fn grant_inspect_list_revoke() {
    let (_s, client) = start().await;
    let lease = client.lease();
    let granted = lease.grant(60).await.expect("grant");
    assert_ne!(granted.id, 0);
    assert_eq!(granted.ttl, 60);
    assert!(granted.error.is_empty());

    let chosen = lease
        .grant_with_id(60, 0x1234)
        .await
        .expect("grant with id");
    assert_eq!(chosen.id, 0x1234);

    client
        .kv()
        .put_with("l/a", "1", PutOptions::new().with_lease(granted.id))
        .await
        .expect("put");
    client
        .kv()
        .put_with("l/b", "1", PutOptions::new().with_lease(granted.id))
        .await
        .expect("put");

    let ttl = lease.time_to_live(granted.id, true).await.expect("ttl");
    assert_eq!(ttl.id, granted.id);
    assert_eq!(ttl.granted_ttl, 60);
    assert!(ttl.ttl > 0 && ttl.ttl <= 60, "{ttl:?}");
    let mut keys = ttl.keys.clone();
    keys.sort();
    assert_eq!(keys, vec![b"l/a".to_vec(), b"l/b".to_vec()]);
    let no_keys = lease.time_to_live(granted.id, false).await.expect("ttl");
    assert!(no_keys.keys.is_empty());

    let mut ids = lease.leases().await.expect("leases").leases;
    ids.sort();
    let mut want = vec![granted.id, 0x1234];
    want.sort();
    assert_eq!(ids, want);

    lease.revoke(granted.id).await.expect("revoke");
    assert_eq!(
        client.kv().get("l/a").await.expect("get").count,
        0,
        "keys go with the lease"
    );
    let gone = lease
        .time_to_live(granted.id, false)
        .await
        .expect("ttl of a revoked lease");
    assert_eq!(gone.ttl, -1);
}

#[tokio::test]
async fn missing_lease_errors_are_etcds() {
    let (_s, client) = start().await;
    let lease = client.lease();
    for err in [
        lease.revoke(0x777).await.expect_err("revoke"),
        lease
            .keep_alive_once(0x777)
            .await
            .expect_err("keep alive once"),
    ] {
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        assert_eq!(err.message(), "etcdserver: requested lease not found");
    }
    let err = lease
        .grant_with_id(60, 0x42)
        .await
        .and(lease.grant_with_id(60, 0x42).await)
        .expect_err("duplicate id");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "etcdserver: lease already exists");
}

#[tokio::test]
async fn keep_alive_once_renews() {
    let (_s, client) = start().await;
    let granted = client.lease().grant(30).await.expect("grant");
    let r = client
        .lease()
        .keep_alive_once(granted.id)
        .await
        .expect("keep alive once");
    assert_eq!((r.id, r.ttl), (granted.id, 30));
}

#[tokio::test]
async fn keep_alive_holds_a_lease_past_its_ttl_and_stops_on_drop() {
    let (_s, client) = start().await;
    let granted = client.lease().grant(2).await.expect("grant");
    let ttl = Duration::from_secs(granted.ttl as u64);
    client
        .kv()
        .with_lease(granted.id)
        .put("alive", "1")
        .await
        .expect("put");

    let mut keep = client
        .lease()
        .keep_alive(granted.id)
        .await
        .expect("keep alive");
    assert_eq!(keep.id(), granted.id);
    // Hold the lease for more than twice its TTL, reading every renewal.
    let until = Instant::now() + ttl * 2 + Duration::from_secs(1);
    let mut renewals = 0;
    while Instant::now() < until {
        let r = tokio::time::timeout(WAIT, keep.next())
            .await
            .expect("a renewal in time")
            .expect("renewals go on")
            .expect("renewal");
        assert_eq!(r.id, granted.id);
        assert!(r.ttl > 0);
        renewals += 1;
    }
    assert!(renewals >= 2, "renewed more than once ({renewals})");
    assert_eq!(keep.ttl(), granted.ttl);
    assert_eq!(
        client.kv().get("alive").await.expect("get").count,
        1,
        "alive past its TTL"
    );

    drop(keep);
    let deadline = Instant::now() + WAIT;
    while client.kv().get("alive").await.expect("get").count == 1 {
        assert!(
            Instant::now() < deadline,
            "lease never expired after the keep-alive stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gone = client
        .lease()
        .time_to_live(granted.id, false)
        .await
        .expect("ttl");
    assert_eq!(gone.ttl, -1);
}

#[tokio::test]
async fn keep_alive_stream_ends_when_the_lease_is_revoked() {
    let (_s, client) = start().await;
    let granted = client.lease().grant(3).await.expect("grant");
    let mut keep = client
        .lease()
        .keep_alive(granted.id)
        .await
        .expect("keep alive");
    let first = tokio::time::timeout(WAIT, keep.next())
        .await
        .expect("first renewal in time")
        .expect("a first renewal")
        .expect("renewal");
    assert_eq!(first.id, granted.id);
    client.lease().revoke(granted.id).await.expect("revoke");
    let mut last = None;
    while let Some(item) = tokio::time::timeout(WAIT, keep.next())
        .await
        .expect("keep-alive ends in time")
    {
        last = Some(item);
    }
    assert_eq!(last, Some(Err(Error::LeaseExpired(granted.id))));
}
