//! The HTTP endpoints on the client port and group commit, through real processes.
//!
//! Runs against etcd or revkv per `REVKV_TEST_TARGET`: etcd names the same metrics and
//! batches its WAL fsyncs the same way, so the expectations hold for both.

use std::net::SocketAddr;

use etcd_client::Client;
use revkv_tests::{http_get, json, TestServer};

fn addr(s: &TestServer) -> SocketAddr {
    format!("127.0.0.1:{}", s.client_port())
        .parse()
        .expect("client address")
}

/// The value of an unlabelled metric (or a histogram's `_count`) in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("metric {name} missing"))
        .trim()
        .parse()
        .expect("numeric metric")
}

#[test]
fn health_version_and_metrics() {
    // etcd exports the per-method latency histograms only at this level.
    let s = TestServer::start_with(&["--metrics=extensive"]);
    let (code, body) = http_get(addr(&s), "/health").expect("GET /health");
    assert_eq!(code, 200);
    // etcd 3.4's exact body: no `reason` field (that came with 3.5).
    assert_eq!(json(&body), serde_json::json!({"health": "true"}));
    let (code, body) = http_get(addr(&s), "/version").expect("GET /version");
    assert_eq!(code, 200);
    let v = json(&body);
    assert!(v["etcdserver"]
        .as_str()
        .is_some_and(|s| s.starts_with("3.")));
    assert!(v["etcdcluster"]
        .as_str()
        .is_some_and(|s| s.starts_with("3.")));

    let ctl = s.etcdctl();
    ctl.ok(&["put", "m", "1"]);
    ctl.ok(&["put", "m", "2"]);
    ctl.ok(&["get", "m"]);
    let (code, text) = http_get(addr(&s), "/metrics").expect("GET /metrics");
    assert_eq!(code, 200);
    assert_eq!(metric(&text, "etcd_debugging_mvcc_current_revision"), 3.0);
    assert!(metric(&text, "etcd_mvcc_db_total_size_in_bytes") > 0.0);
    assert!(metric(&text, "etcd_server_has_leader") == 1.0);
    assert!(metric(&text, "etcd_server_proposals_applied_total") >= 2.0);
    assert!(text.contains("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2"));
    assert!(text.contains("grpc_server_handling_seconds_bucket{grpc_method=\"Range\""));
}

/// Paths that are neither an endpoint nor a gRPC method are 404s with Go's text, as
/// etcd's (its v2 API is off by default, and revkv serves no JSON gateway).
#[test]
fn unknown_paths_are_not_found() {
    let s = TestServer::start();
    for path in ["/nonexistent", "/v2/keys/", "/v2/members"] {
        let (code, body) = http_get(addr(&s), path).expect("GET");
        assert_eq!(
            (code, body.as_str()),
            (404, "404 page not found\n"),
            "{path}"
        );
    }
}

/// 200 concurrent puts are all acknowledged with distinct revisions, and they share log
/// fsyncs: the WAL is synced fewer times than there were writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_fsyncs() {
    const WRITERS: usize = 200;
    let s = TestServer::start();
    let client = Client::connect([s.endpoint()], None)
        .await
        .expect("connect");
    let (_, before) = http_get(addr(&s), "/metrics").expect("metrics");
    let fsyncs_before = metric(&before, "etcd_disk_wal_fsync_duration_seconds_count");
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = c.put(format!("gc/{i}"), "v", None).await.expect("put");
            r.header().expect("header").revision()
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.expect("join"));
    }
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), WRITERS, "every put got its own revision");
    assert_eq!(revs, (2..2 + WRITERS as i64).collect::<Vec<_>>());
    let (_, after) = http_get(addr(&s), "/metrics").expect("metrics");
    let fsyncs = metric(&after, "etcd_disk_wal_fsync_duration_seconds_count") - fsyncs_before;
    assert!(
        fsyncs < WRITERS as f64,
        "{fsyncs} fsyncs for {WRITERS} concurrent writes: no group commit"
    );
}

/// Streams are counted in `grpc_server_handled_total` when they end, as
/// go-grpc-prometheus counts them for etcd, with the code they ended with (for a
/// stream its client ended, etcd gives `OK`, `Canceled` or `Unavailable` depending on
/// which side of the stream closed first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_counted_when_they_end() {
    let s = TestServer::start();
    let mut client = Client::connect([s.endpoint()], None)
        .await
        .expect("connect");
    let stream = client.watch("w", None).await.expect("watch");
    drop(stream);
    let lease = client.lease_grant(30, None).await.expect("grant").id();
    let (keeper, stream) = client.lease_keep_alive(lease).await.expect("keep-alive");
    drop((keeper, stream));
    // etcd answers Observe's headers with the first proclamation, so there is one.
    client.campaign("vote", "a", lease).await.expect("campaign");
    let observed = client.observe("vote").await.expect("observe");
    drop(observed);

    let streams = [
        ("Watch", "etcdserverpb.Watch", "bidi_stream"),
        ("LeaseKeepAlive", "etcdserverpb.Lease", "bidi_stream"),
        ("Observe", "v3electionpb.Election", "server_stream"),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (code, text) = http_get(addr(&s), "/metrics").expect("GET /metrics");
        assert_eq!(code, 200);
        let handled: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("grpc_server_handled_total{") && !l.ends_with(" 0"))
            .collect();
        let missing: Vec<&str> = streams
            .iter()
            .filter(|(method, service, kind)| {
                let labels = format!(
                    "grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}} 1"
                );
                !handled.iter().any(|l| l.ends_with(&labels))
            })
            .map(|(method, _, _)| *method)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not counted: {missing:?}; counted:\n{}",
            handled.join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
