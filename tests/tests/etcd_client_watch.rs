//! Watch through the `etcd-client` crate (raw gRPC): response fields etcdctl does not
//! show, and a slow-reader stress test.
//!
//! Runs against etcd or revkv per `REVKV_TEST_TARGET`. No timing is asserted:
//! deadlines only bound a hung test, and they are generous.

mod etcd_client_common;

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchResponse, WatchStream};
use etcd_client_common::start;
use revkv_tests::TestServer;

/// Bound on any single wait; a correct server is far faster.
const WAIT: Duration = Duration::from_secs(60);
/// Most the server may grow while a watch reader stalls (etcd's bounded send buffers and
/// revkv's victim parking both keep it far below the size of the undelivered events).
const MEMORY_BOUND: u64 = 64 << 20;

/// etcd-client has no accessor for `fragment`; read it from the response's Debug
/// output, stopping before the (large) events are formatted.
fn is_fragment(r: &WatchResponse) -> bool {
    struct Head(String);
    impl std::fmt::Write for Head {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.push_str(s);
            if self.0.contains("events:") {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut head = Head(String::new());
    let _ = std::fmt::Write::write_fmt(&mut head, format_args!("{r:?}"));
    assert!(
        head.0.contains("fragment:"),
        "unexpected Debug format: {}",
        head.0
    );
    head.0.contains("fragment: true")
}

async fn next(stream: &mut WatchStream) -> WatchResponse {
    etcd_client_common::next_within(stream, WAIT).await
}

#[tokio::test]
async fn created_canceled_and_errors_as_etcd_sends_them() {
    let (_s, mut c) = start().await;
    let rev = c
        .put("k", "v", None)
        .await
        .expect("put")
        .header()
        .expect("h")
        .revision();

    let mut stream = c.watch("k", None).await.expect("watch");
    let created = next(&mut stream).await;
    assert!(created.created() && !created.canceled());
    assert_eq!(created.watch_id(), 0, "the first watch id on a stream is 0");
    assert_eq!(created.header().expect("header").revision(), rev);

    // A client-chosen id, then the same id again: created and canceled at once, id -1.
    stream
        .watch("k", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .expect("send");
    let chosen = next(&mut stream).await;
    assert!(chosen.created() && !chosen.canceled());
    assert_eq!(chosen.watch_id(), 7);
    stream
        .watch("k", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .expect("send");
    let dup = next(&mut stream).await;
    assert!(dup.created() && dup.canceled());
    assert_eq!(dup.watch_id(), -1);
    assert_eq!(
        dup.cancel_reason(),
        "mvcc: duplicate watch ID provided on the WatchStream"
    );

    // An empty range (end before key) is refused the same way.
    stream
        .watch("b", Some(WatchOptions::new().with_range("a")))
        .await
        .expect("send");
    let empty = next(&mut stream).await;
    assert!(empty.created() && empty.canceled());
    assert_eq!(empty.cancel_reason(), "mvcc: watcher range is empty");

    // Auto ids continue after the used ones.
    stream.watch("k", None).await.expect("send");
    assert_eq!(next(&mut stream).await.watch_id(), 1);

    // Cancel answers with canceled and the id; events stop for it.
    stream.cancel(0).await.expect("cancel");
    let canceled = next(&mut stream).await;
    assert!(canceled.canceled() && !canceled.created());
    assert_eq!(canceled.watch_id(), 0);

    let put = c
        .put("k", "w", None)
        .await
        .expect("put")
        .header()
        .expect("h")
        .revision();
    let mut got: Vec<i64> = Vec::new();
    while got.len() < 2 {
        let r = next(&mut stream).await;
        assert_eq!(r.events().len(), 1);
        assert_eq!(r.events()[0].kv().expect("kv").mod_revision(), put);
        got.push(r.watch_id());
    }
    got.sort_unstable();
    assert_eq!(got, vec![1, 7], "the canceled watcher gets nothing");
}

#[tokio::test]
async fn progress_request_reports_the_current_revision() {
    let (_s, mut c) = start().await;
    let mut stream = c.watch("k", None).await.expect("watch");
    next(&mut stream).await;
    let rev = c
        .put("other", "v", None)
        .await
        .expect("put")
        .header()
        .expect("h")
        .revision();
    stream.request_progress().await.expect("progress");
    let p = next(&mut stream).await;
    assert!(p.events().is_empty() && !p.created() && !p.canceled());
    assert_eq!(p.watch_id(), -1);
    assert_eq!(p.header().expect("header").revision(), rev);
}

#[tokio::test]
async fn filters_and_prev_kv() {
    let (_s, mut c) = start().await;
    c.put("f", "1", None).await.expect("put");
    let opts = WatchOptions::new()
        .with_start_revision(2)
        .with_prev_key()
        .with_filters([etcd_client::WatchFilterType::NoPut]);
    let mut stream = c.watch("f", Some(opts)).await.expect("watch");
    assert!(next(&mut stream).await.created());
    c.put("f", "2", None).await.expect("put");
    let del = c
        .delete("f", None)
        .await
        .expect("del")
        .header()
        .expect("h")
        .revision();
    let r = next(&mut stream).await;
    assert_eq!(r.events().len(), 1, "puts are filtered out");
    let e = &r.events()[0];
    assert_eq!(e.event_type(), EventType::Delete);
    assert_eq!(e.kv().expect("kv").mod_revision(), del);
    assert_eq!(e.prev_kv().expect("prev_kv").value(), b"2");
}

/// 10,000 watchers on one stream; the reader stops reading while writes continue.
/// Every write must complete meanwhile, and once the reader resumes every watcher must
/// receive each of its events exactly once, in revision order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watchers_on_a_stalled_stream_get_every_event_once() {
    const WATCHERS: usize = 10_000;
    const KEYS: usize = 100;
    const PREFIX_WATCHERS: usize = 10;
    const WRITES: usize = 1_000;

    let (s, mut c) = start().await;
    let stream = c.watch("stress/0", None).await.expect("watch");
    let (mut sender, mut responses) = stream.split();
    // Watcher i watches key i % KEYS; the last few watch the whole prefix. The first
    // one was created by `watch` above.
    let key_of = |i: usize| -> Option<String> {
        (i < WATCHERS - PREFIX_WATCHERS).then(|| format!("stress/{}", i % KEYS))
    };
    let creator = tokio::spawn(async move {
        for i in 1..WATCHERS {
            let (key, opts) = match key_of(i) {
                Some(k) => (k, None),
                None => (
                    "stress/".to_string(),
                    Some(WatchOptions::new().with_prefix()),
                ),
            };
            sender.watch(key, opts).await.expect("create");
        }
        sender
    });
    // Created responses arrive in request order; map watch ids to watchers.
    let mut watcher_of: HashMap<i64, usize> = HashMap::new();
    while watcher_of.len() < WATCHERS {
        let r = tokio::time::timeout(WAIT, responses.message())
            .await
            .expect("created in time")
            .expect("stream")
            .expect("open");
        assert!(r.created() && !r.canceled(), "{:?}", r.cancel_reason());
        watcher_of.insert(r.watch_id(), watcher_of.len());
    }
    let _sender = creator.await.expect("creator");

    let rss_before = s.rss_bytes();
    // The reader stalls: nothing reads `responses` while these writes run.
    let mut writer = c.clone();
    let mut expected: Vec<Vec<i64>> = vec![Vec::new(); WATCHERS];
    let mut first_rev = 0;
    for n in 0..WRITES {
        let key = format!("stress/{}", n % KEYS);
        // Values of 300 bytes keep every response above h2's "small DATA frame" size:
        // the client buffers what the server sends while it stalls, and h2 (0.4.20+)
        // hangs up on a connection that buffers too many small frames (etcd sends each
        // response in its own frame).
        let value = format!("{n:0>300}");
        let put = tokio::time::timeout(WAIT, writer.put(key.as_str(), value, None))
            .await
            .expect("a write completes while the watch reader is stalled")
            .expect("put");
        let rev = put.header().expect("header").revision();
        if n == 0 {
            first_rev = rev;
        }
        for (i, revs) in expected.iter_mut().enumerate() {
            if key_of(i).is_none_or(|k| k == key) {
                revs.push(rev);
            }
        }
    }

    // Memory stays bounded while the reader stalls: the ~110,000 undelivered events
    // (~35 MB of values) wait in the revision-ordered column family, not in RAM.
    if let (Some(before), Some(after)) = (rss_before, s.rss_bytes()) {
        let grown = after.saturating_sub(before);
        eprintln!("server RSS {before} -> {after} bytes while the reader stalled");
        assert!(
            grown < MEMORY_BOUND,
            "server memory grew by {grown} bytes while the watch reader stalled"
        );
    }

    // The reader resumes: every event arrives, once, in order.
    let total: usize = expected.iter().map(Vec::len).sum();
    let mut got: Vec<Vec<i64>> = vec![Vec::new(); WATCHERS];
    let mut received = 0;
    while received < total {
        let r = tokio::time::timeout(WAIT, responses.message())
            .await
            .unwrap_or_else(|_| panic!("stalled after {received} of {total} events"))
            .expect("stream")
            .expect("open");
        assert!(!r.canceled(), "watcher canceled: {:?}", r.cancel_reason());
        if r.events().is_empty() {
            continue;
        }
        let i = watcher_of[&r.watch_id()];
        for e in r.events() {
            assert_eq!(e.event_type(), EventType::Put);
            got[i].push(e.kv().expect("kv").mod_revision());
            received += 1;
        }
    }
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "watcher {i} (first write at {first_rev})");
    }
}

#[tokio::test]
async fn progress_notify_sends_the_revision_to_idle_watchers() {
    let server =
        TestServer::start_with(&["--experimental-watch-progress-notify-interval", "500ms"]);
    let mut c = Client::connect([server.endpoint()], None)
        .await
        .expect("connect etcd-client");
    let opts = WatchOptions::new().with_progress_notify();
    let mut stream = c.watch("idle", Some(opts)).await.expect("watch");
    let id = next(&mut stream).await.watch_id();
    let rev = c
        .put("elsewhere", "v", None)
        .await
        .expect("put")
        .header()
        .expect("h")
        .revision();
    // An idle watcher gets empty responses addressed to it, with the current revision.
    loop {
        let p = next(&mut stream).await;
        assert!(p.events().is_empty() && !p.canceled());
        assert_eq!(p.watch_id(), id);
        if p.header().expect("header").revision() == rev {
            break;
        }
    }
    // Events still arrive normally.
    let put = c
        .put("idle", "x", None)
        .await
        .expect("put")
        .header()
        .expect("h")
        .revision();
    loop {
        let r = next(&mut stream).await;
        if let Some(e) = r.events().first() {
            assert_eq!(e.kv().expect("kv").mod_revision(), put);
            break;
        }
    }
}

#[tokio::test]
async fn fragment_splits_an_oversized_revision_and_others_get_it_whole() {
    // etcd fragments at --max-request-bytes plus 512 KiB of gRPC overhead.
    let server = TestServer::start_with(&["--max-request-bytes", "600000"]);
    let mut c = Client::connect([server.endpoint()], None)
        .await
        .expect("connect etcd-client");
    let value = vec![b'x'; 200_000];
    for i in 0..10 {
        c.put(format!("frag/{i}"), value.clone(), None)
            .await
            .expect("put");
    }
    let prefix = || WatchOptions::new().with_prefix().with_prev_key();
    let mut split = c
        .watch("frag/", Some(prefix().with_fragment()))
        .await
        .expect("watch");
    assert!(next(&mut split).await.created());
    let mut whole = c.watch("frag/", Some(prefix())).await.expect("watch");
    assert!(next(&mut whole).await.created());
    // One revision deleting ten keys: ten DELETE events, each with a 200 KB prev_kv.
    let del = c
        .delete(
            "frag/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete");
    let rev = del.header().expect("h").revision();
    assert_eq!(del.deleted(), 10);

    // Parts arrive until one is not marked `fragment`.
    let mut parts = Vec::new();
    loop {
        let r = next(&mut split).await;
        let more = is_fragment(&r);
        parts.push(r);
        if !more {
            break;
        }
    }
    assert!(
        parts.len() >= 2,
        "the revision was split into {} parts",
        parts.len()
    );
    assert!(parts.iter().all(|p| p.events().len() < 10));
    let events: Vec<_> = parts.iter().flat_map(|p| p.events()).collect();
    assert_eq!(events.len(), 10);
    for e in &events {
        assert_eq!(e.event_type(), EventType::Delete);
        assert_eq!(e.kv().expect("kv").mod_revision(), rev);
        assert_eq!(e.prev_kv().expect("prev").value().len(), 200_000);
    }
    let r = next(&mut whole).await;
    assert!(!is_fragment(&r));
    assert_eq!(r.events().len(), 10, "without fragment: one response");
}
