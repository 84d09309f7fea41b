//! Watch through `revkv-client` against real servers: events with prev_kv, prefixes
//! and filters, cancel, progress, namespaces, compaction, and resuming across the
//! SIGKILL of the member the watch is on, with the exact event sequence asserted.
//!
//! Runs against etcd or revkv per `REVKV_TEST_TARGET`. Deadlines only bound a hung
//! test.
// `cluster::serial()` is held for a whole cluster test on purpose: every test has its
// own runtime and thread, so blocking on it never stalls another test's executor.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use revkv_client::{
    Client, ConnectOptions, EventType, GetOptions, Kv, WatchOptions, WatchResponse, WatchStream,
};
use revkv_tests::{cluster::serial, TestCluster, TestServer};

/// Bound on any single wait; a correct server is far faster.
const WAIT: Duration = Duration::from_secs(60);

async fn start() -> (TestServer, Client) {
    let server = TestServer::start();
    let client = Client::connect([server.endpoint()], ConnectOptions::new())
        .await
        .expect("connect");
    (server, client)
}

async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("watch response within the deadline")
        .expect("watch stream ended")
        .expect("watch stream error")
}

/// (kind, key, value) of every event of the next response.
async fn next_events(stream: &mut WatchStream) -> Vec<(EventType, String, String)> {
    let r = next(stream).await;
    r.events
        .iter()
        .map(|e| {
            (
                e.kind,
                String::from_utf8_lossy(&e.kv.key).into_owned(),
                String::from_utf8_lossy(&e.kv.value).into_owned(),
            )
        })
        .collect()
}

fn ev(kind: EventType, k: &str, v: &str) -> (EventType, String, String) {
    (kind, k.to_owned(), v.to_owned())
}

#[tokio::test]
async fn events_with_prev_kv_prefix_and_filters() {
    let (_s, client) = start().await;
    let kv = client.kv();
    let (_w, mut all) = client
        .watch()
        .watch("w/", WatchOptions::new().with_prefix().with_prev_kv())
        .await
        .expect("watch");
    let (_w2, mut deletes) = client
        .watch()
        .watch("w/", WatchOptions::new().with_prefix().with_no_put())
        .await
        .expect("watch deletes");

    kv.put("w/a", "1").await.expect("put");
    kv.put("other", "x").await.expect("put");
    kv.put("w/a", "2").await.expect("put");
    kv.delete("w/a").await.expect("delete");

    let r = next(&mut all).await;
    assert_eq!(r.events.len(), 1);
    let e = &r.events[0];
    assert_eq!(
        (e.kind, e.kv.key.as_slice(), e.kv.value.as_slice()),
        (EventType::Put, &b"w/a"[..], &b"1"[..])
    );
    assert_eq!(e.kv.version, 1);
    assert!(e.prev_kv.is_none(), "a create has no previous value");

    let r = next(&mut all).await;
    let e = &r.events[0];
    assert_eq!(e.kv.value, b"2");
    assert_eq!(e.prev_kv.as_ref().expect("prev_kv").value, b"1");
    assert_eq!(r.header.revision, e.kv.mod_revision);

    let r = next(&mut all).await;
    let e = &r.events[0];
    assert_eq!(e.kind, EventType::Delete);
    assert_eq!(e.prev_kv.as_ref().expect("prev_kv").value, b"2");

    assert_eq!(
        next_events(&mut deletes).await,
        vec![ev(EventType::Delete, "w/a", "")]
    );
}

#[tokio::test]
async fn history_replay_from_a_start_revision() {
    let (_s, client) = start().await;
    let kv = client.kv();
    let first = kv.put("h", "1").await.expect("put").header.revision;
    kv.put("h", "2").await.expect("put");
    kv.put("h", "3").await.expect("put");
    let (_w, mut s) = client
        .watch()
        .watch("h", WatchOptions::new().with_start_revision(first + 1))
        .await
        .expect("watch");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(next_events(&mut s).await);
    }
    assert_eq!(
        seen,
        vec![ev(EventType::Put, "h", "2"), ev(EventType::Put, "h", "3")]
    );
}

#[tokio::test]
async fn cancel_ends_the_stream() {
    let (_s, client) = start().await;
    let (watcher, mut stream) = client
        .watch()
        .watch("c", WatchOptions::new())
        .await
        .expect("watch");
    client.kv().put("c", "1").await.expect("put");
    assert_eq!(
        next_events(&mut stream).await,
        vec![ev(EventType::Put, "c", "1")]
    );
    watcher.cancel().expect("cancel");
    let r = next(&mut stream).await;
    assert!(r.canceled, "{r:?}");
    let end = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("stream ends in time");
    assert!(end.is_none(), "stream ends after the cancel: {end:?}");
    assert!(watcher.cancel().is_err(), "the watch is gone");
}

#[tokio::test]
async fn progress_on_request() {
    let (_s, client) = start().await;
    let rev = client
        .kv()
        .put("p", "1")
        .await
        .expect("put")
        .header
        .revision;
    let (watcher, mut stream) = client
        .watch()
        .watch("p", WatchOptions::new())
        .await
        .expect("watch");
    watcher.request_progress().expect("request progress");
    let r = next(&mut stream).await;
    assert!(r.is_progress_notify(), "{r:?}");
    assert!(r.header.revision >= rev);
}

#[tokio::test]
async fn namespaced_watch_prefixes_and_strips() {
    let (_s, client) = start().await;
    let (_w, mut stream) = client
        .watch()
        .with_namespace("app/")
        .watch("", WatchOptions::new().with_prefix().with_prev_kv())
        .await
        .expect("watch");
    let kv = client.kv();
    kv.put("app0", "outside").await.expect("put");
    kv.put("app/k", "1").await.expect("put");
    kv.put("app/k", "2").await.expect("put");
    assert_eq!(
        next_events(&mut stream).await,
        vec![ev(EventType::Put, "k", "1")]
    );
    let r = next(&mut stream).await;
    assert_eq!(r.events[0].kv.key, b"k");
    assert_eq!(r.events[0].prev_kv.as_ref().expect("prev").key, b"k");
}

#[tokio::test]
async fn compacted_start_revision_surfaces_the_compaction() {
    let (_s, client) = start().await;
    let kv = client.kv();
    let first = kv.put("k", "1").await.expect("put").header.revision;
    kv.put("k", "2").await.expect("put");
    let last = kv.put("k", "3").await.expect("put").header.revision;
    kv.compact(last, true).await.expect("compact");
    let (_w, mut stream) = client
        .watch()
        .watch("k", WatchOptions::new().with_start_revision(first))
        .await
        .expect("watch");
    let r = next(&mut stream).await;
    assert!(r.canceled, "{r:?}");
    assert_eq!(r.compact_revision, last);
    let end = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("stream ends in time");
    assert!(end.is_none());
}

/// Puts `key` until it is applied exactly once: retried only on errors that prove
/// the request never left (a leader being elected answers before proposing).
async fn put_once(kv: &impl Kv, key: &str, value: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match kv.put(key, value).await {
            Ok(_) => return,
            Err(e) if e.never_sent() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("put {key}: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_on_another_member_after_kill9() {
    let _serial = serial();
    let mut cluster = tokio::task::block_in_place(|| TestCluster::start(3));
    let endpoints: Vec<String> = (0..3).map(|i| cluster.member(i).endpoint()).collect();
    let client = Client::connect(&endpoints, ConnectOptions::new())
        .await
        .expect("connect");
    let (watcher, mut stream) = client
        .watch()
        .watch("r/", WatchOptions::new().with_prefix())
        .await
        .expect("watch");
    let writer = client.kv();
    for i in 0..5 {
        put_once(&writer, &format!("r/{i}"), "before").await;
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        got.extend(next(&mut stream).await.events);
    }

    // Kill the member serving the watch, then write while the watch moves.
    let on = watcher.endpoint();
    let victim = (0..3)
        .find(|&i| on.ends_with(&cluster.member(i).endpoint()))
        .unwrap_or_else(|| panic!("watch endpoint {on} is not a member"));
    tokio::task::block_in_place(|| {
        cluster.member_mut(victim).kill9();
        cluster.wait_leader(Some(victim), WAIT);
    });
    for i in 5..10 {
        put_once(&writer, &format!("r/{i}"), "after").await;
    }
    while got.len() < 10 {
        got.extend(next(&mut stream).await.events);
    }
    assert_ne!(watcher.endpoint(), on, "the watch moved");

    // One more put: the next event is exactly it, so nothing was repeated.
    put_once(&writer, "r/end", "end").await;
    got.extend(next(&mut stream).await.events);

    let keys: Vec<String> = got
        .iter()
        .map(|e| String::from_utf8_lossy(&e.kv.key).into_owned())
        .collect();
    let want: Vec<String> = (0..10)
        .map(|i| format!("r/{i}"))
        .chain(["r/end".to_owned()])
        .collect();
    assert_eq!(keys, want, "every event exactly once, in order");
    assert!(
        got.windows(2)
            .all(|w| w[0].kv.mod_revision < w[1].kv.mod_revision),
        "revisions strictly increase"
    );
    let head = writer
        .get_with("r/", GetOptions::new().with_prefix().with_count_only())
        .await
        .expect("count");
    assert_eq!(head.count, 11);
}

/// Several clients, each on its own connections, are each served; SIGTERM with a
/// watch open on every one of them still ends the process promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_is_served_and_a_stop_with_open_watches_is_prompt() {
    let mut server = TestServer::start();
    let mut streams = Vec::new();
    let mut clients = Vec::new();
    for i in 0..5 {
        let client = Client::connect([server.endpoint()], ConnectOptions::new())
            .await
            .expect("connect");
        let key = format!("conn/{i}");
        let (w, mut stream) = client
            .watch()
            .watch(key.as_str(), WatchOptions::new())
            .await
            .expect("watch");
        client
            .kv()
            .put(key.as_str(), i.to_string())
            .await
            .expect("put");
        assert_eq!(
            next_events(&mut stream).await,
            vec![ev(EventType::Put, &key, &i.to_string())]
        );
        let got = client.kv().get(key.as_str()).await.expect("get");
        assert_eq!(got.kvs[0].value, i.to_string().as_bytes());
        streams.push((w, stream));
        clients.push(client);
    }

    let asked = std::time::Instant::now();
    // etcd re-raises the signal once it has stopped, so only the time is asserted.
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopping with open watches took {:?}",
        asked.elapsed()
    );
    // The client keeps its watches, to resume them on a member that comes back.
    drop(streams);
}
