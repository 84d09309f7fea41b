//! etcd's Lock and Election services through the `etcd-client` crate: who holds a
//! lock and who leads, handing over on unlock, resignation and lease revocation,
//! proclamations seen by `Leader` and `Observe`, a waiter that gives up, and the
//! errors in etcd's words.
//!
//! Runs against etcd or revkv per `REVKV_TEST_TARGET`. No timing is asserted beyond
//! "still waiting" checks; deadlines only bound a hung test.

mod etcd_client_common;

use std::time::Duration;

use etcd_client::{
    Client, ElectionClient, GetOptions, LeaderKey, LockOptions, ProclaimOptions, ResignOptions,
};
use etcd_client_common::{start, status};
use tokio::task::JoinHandle;

/// Bound on any single wait; a correct server is far faster.
const WAIT: Duration = Duration::from_secs(60);
/// How long a call that must block is given to (wrongly) return.
const STILL_WAITING: Duration = Duration::from_millis(500);

async fn lease(client: &Client) -> i64 {
    client
        .lease_client()
        .grant(60, None)
        .await
        .expect("grant")
        .id()
}

/// Asserts that `task` has not finished after a while, then hands it back.
async fn still_waiting<T>(task: JoinHandle<T>) -> JoinHandle<T> {
    tokio::time::sleep(STILL_WAITING).await;
    assert!(!task.is_finished(), "returned while another held it");
    task
}

async fn finished<T>(task: JoinHandle<T>) -> T {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("returns within the deadline")
        .expect("task")
}

async fn create_revision(client: &Client, key: &[u8]) -> i64 {
    let resp = client.kv_client().get(key, None).await.expect("get");
    resp.kvs()
        .first()
        .expect("the key exists")
        .create_revision()
}

async fn count(client: &Client, prefix: &str) -> i64 {
    client
        .kv_client()
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("count")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_passes_to_the_next_waiter_on_unlock_and_on_revoke() {
    let (_server, client) = start().await;
    let (a, b, c) = (
        lease(&client).await,
        lease(&client).await,
        lease(&client).await,
    );

    let held = client
        .lock_client()
        .lock("door", Some(LockOptions::new().with_lease(a)))
        .await
        .expect("lock a");
    assert_eq!(held.key(), format!("door/{a:x}").as_bytes());
    let header = held.header().expect("header").revision();
    assert_eq!(create_revision(&client, held.key()).await, header);
    // The same lease again is the same acquisition: at once, the same key.
    let again = client
        .lock_client()
        .lock("door", Some(LockOptions::new().with_lease(a)))
        .await
        .expect("lock a again");
    assert_eq!(again.key(), held.key());

    let mut locks = client.lock_client();
    let waiter_b = still_waiting(tokio::spawn(async move {
        locks
            .lock("door", Some(LockOptions::new().with_lease(b)))
            .await
    }))
    .await;
    let mut locks = client.lock_client();
    let waiter_c = tokio::spawn(async move {
        locks
            .lock("door", Some(LockOptions::new().with_lease(c)))
            .await
    });
    let unlocked = client
        .lock_client()
        .unlock(held.key())
        .await
        .expect("unlock");
    assert!(unlocked.header().expect("header").revision() > header);
    let got_b = finished(waiter_b).await.expect("lock b");
    assert_eq!(got_b.key(), format!("door/{b:x}").as_bytes());
    let waiter_c = still_waiting(waiter_c).await;

    // A holder whose lease is revoked loses the lock with its key.
    client.lease_client().revoke(b).await.expect("revoke b");
    let got_c = finished(waiter_c).await.expect("lock c");
    assert_eq!(got_c.key(), format!("door/{c:x}").as_bytes());
    assert_eq!(count(&client, "door/").await, 1);
}

#[tokio::test]
async fn a_lock_without_a_lease_gets_one_of_sixty_seconds() {
    let (_server, client) = start().await;
    let held = client.lock_client().lock("gate", None).await.expect("lock");
    let key = std::str::from_utf8(held.key()).expect("utf-8 key");
    let hex = key.strip_prefix("gate/").expect("under the lock's prefix");
    let lease = i64::from_str_radix(hex, 16).expect("the lease in hex");
    let ttl = client
        .lease_client()
        .time_to_live(lease, None)
        .await
        .expect("time to live");
    assert_eq!(ttl.granted_ttl(), 60);
    let kv = client.kv_client().get(held.key(), None).await.expect("get");
    assert_eq!(kv.kvs()[0].lease(), lease);
}

#[tokio::test]
async fn a_lock_with_an_unknown_lease_is_refused() {
    let (_server, client) = start().await;
    let r = client
        .lock_client()
        .lock("gate", Some(LockOptions::new().with_lease(0x1234)))
        .await;
    // etcd's lock server calls etcd through a client, which hands it the KV error as
    // a plain error: its callers see the words with code Unknown.
    assert_eq!(
        status(r),
        (
            tonic::Code::Unknown,
            "etcdserver: requested lease not found".to_string()
        )
    );
    assert_eq!(count(&client, "gate/").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_leaves_no_key_behind() {
    let (_server, client) = start().await;
    let (a, b) = (lease(&client).await, lease(&client).await);
    client
        .lock_client()
        .lock("door", Some(LockOptions::new().with_lease(a)))
        .await
        .expect("lock a");
    let gave_up = tokio::time::timeout(
        STILL_WAITING,
        client
            .lock_client()
            .lock("door", Some(LockOptions::new().with_lease(b))),
    )
    .await;
    assert!(gave_up.is_err(), "lock b returned while a held the lock");
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(&client, "door/").await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the abandoned waiter's key is still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value the leader of election `vote` proclaims.
async fn leading_value(election: &mut ElectionClient) -> Vec<u8> {
    let leading = election.leader("vote").await.expect("leader");
    leading.kv().expect("kv").value().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_election_is_led_proclaimed_observed_and_handed_over() {
    let (_server, client) = start().await;
    let (a, b) = (lease(&client).await, lease(&client).await);
    let mut election = client.election_client();

    assert_eq!(
        status(election.leader("vote").await),
        (tonic::Code::Unknown, "election: no leader".to_string())
    );
    // etcd answers an Observe only with its first proclamation (grpc-go sends the
    // response headers with the first message), so the observer runs on its own.
    let mut observing = client.election_client();
    let observer = tokio::spawn(async move {
        let mut observed = observing.observe("vote").await.expect("observe");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let resp = tokio::time::timeout(WAIT, observed.message())
                .await
                .expect("a proclamation within the deadline")
                .expect("observe stream")
                .expect("observe stream open");
            let kv = resp.kv().expect("kv");
            assert!(
                resp.header().expect("header").revision() >= kv.mod_revision(),
                "{seen:?}"
            );
            seen.push((
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            ));
        }
        seen
    });
    // Give the observer time to find no leader, so it sees the first one put.
    tokio::time::sleep(STILL_WAITING).await;

    let won = election
        .campaign("vote", "a1", a)
        .await
        .expect("campaign a");
    let leader_a = won.leader().expect("leader key").clone();
    assert_eq!(leader_a.name(), b"vote");
    assert_eq!(leader_a.key(), format!("vote/{a:x}").as_bytes());
    assert_eq!(leader_a.lease(), a);
    assert_eq!(leader_a.rev(), won.header().expect("header").revision());
    assert_eq!(leading_value(&mut election).await, b"a1");

    let mut campaigns = client.election_client();
    let campaign_b = still_waiting(tokio::spawn(async move {
        campaigns.campaign("vote", "b1", b).await
    }))
    .await;

    election
        .proclaim(
            "a2",
            Some(ProclaimOptions::new().with_leader(leader_a.clone())),
        )
        .await
        .expect("proclaim a2");
    assert_eq!(leading_value(&mut election).await, b"a2");
    let stale = LeaderKey::new()
        .with_name("vote")
        .with_key(leader_a.key())
        .with_rev(leader_a.rev() + 1000)
        .with_lease(a);
    assert_eq!(
        status(
            election
                .proclaim("x", Some(ProclaimOptions::new().with_leader(stale)))
                .await
        ),
        (tonic::Code::Unknown, "election: not leader".to_string())
    );
    assert_eq!(
        status(election.proclaim("x", Some(ProclaimOptions::new())).await),
        (
            tonic::Code::Unknown,
            "\"leader\" field must be provided".to_string()
        )
    );

    election
        .resign(Some(ResignOptions::new().with_leader(leader_a)))
        .await
        .expect("resign a");
    let won_b = finished(campaign_b).await.expect("campaign b");
    let leader_b = won_b.leader().expect("leader key").clone();
    assert_eq!(leader_b.key(), format!("vote/{b:x}").as_bytes());
    assert_eq!(leading_value(&mut election).await, b"b1");

    // Observe saw every proclamation in order, each with its key.
    let seen = finished(observer).await;
    assert_eq!(
        seen,
        [
            (format!("vote/{a:x}"), "a1".to_string()),
            (format!("vote/{a:x}"), "a2".to_string()),
            (format!("vote/{b:x}"), "b1".to_string()),
        ]
    );
    election
        .resign(Some(ResignOptions::new().with_leader(leader_b)))
        .await
        .expect("resign b");
    assert_eq!(count(&client, "vote/").await, 0);
}
