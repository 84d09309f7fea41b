//! `revkv-bench` end to end: the built load generator against a real server, read
//! through its `--json` summary, then the server checked for what the run wrote.
//!
//! Runs against etcd or revkv per `REVKV_TEST_TARGET`; the tool must drive both.
//! Needs the `revkv-bench` binary (`cargo build -p revkv-bench`, or `REVKV_BENCH_BIN`).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use revkv_tests::{json, revkv_bench_bin, TestServer};

/// Runs `revkv-bench --endpoints <endpoint> --json <args>`.
fn bench(endpoint: &str, args: &[&str]) -> Output {
    Command::new(revkv_bench_bin())
        .arg("--endpoints")
        .arg(endpoint)
        .arg("--json")
        .args(args)
        .output()
        .expect("run revkv-bench")
}

/// Runs the tool, requires success, and returns its JSON summary.
#[track_caller]
fn bench_json(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let out = bench(endpoint, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "revkv-bench {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    json(&stdout)
}

/// Every request succeeded: `total` successes, no failures, no error messages, and
/// sane latency figures.
#[track_caller]
fn assert_all_succeeded(v: &serde_json::Value, command: &str, total: u64) {
    assert_eq!(v["command"], command, "{v}");
    assert_eq!(v["successes"].as_u64(), Some(total), "{v}");
    assert_eq!(v["failures"].as_u64(), Some(0), "{v}");
    assert_eq!(v["errors"].as_object().map(|m| m.len()), Some(0), "{v}");
    assert!(v["requests_per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
    let pct = &v["latency_secs"]["percentiles"];
    let p = |name: &str| pct[name].as_f64().unwrap_or(-1.0);
    assert!(p("p50") > 0.0, "{v}");
    assert!(p("p50") <= p("p99") && p("p99") <= p("p99.9") && p("p99.9") <= p("max"));
    let histogram_total: u64 = v["histogram"]
        .as_array()
        .expect("histogram array")
        .iter()
        .map(|b| b["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(histogram_total, total, "{v}");
}

#[tokio::test]
async fn put_and_range_runs_report_every_request_and_write_the_keys() {
    let server = TestServer::start();
    let ep = server.endpoint();

    // 200 puts over 4 clients, each to its own key (sequential over 200 keys).
    let put = bench_json(
        &ep,
        &[
            "--clients",
            "4",
            "put",
            "--total",
            "200",
            "--key-space-size",
            "200",
            "--sequential-keys",
        ],
    );
    assert_all_succeeded(&put, "put", 200);

    let mut client = Client::connect([ep.clone()], None)
        .await
        .expect("connect etcd-client");
    let all = client
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .expect("count keys");
    assert_eq!(all.count(), 200, "the 200 distinct keys exist afterwards");

    // Ranges, both consistencies, over two connections.
    client.put("bench/k", "v", None).await.expect("put probe");
    for consistency in ["l", "s"] {
        let range = bench_json(
            &ep,
            &[
                "--clients",
                "4",
                "--conns",
                "2",
                "range",
                "bench/",
                "bench0",
                "--total",
                "100",
                "--consistency",
                consistency,
            ],
        );
        assert_all_succeeded(&range, "range", 100);
    }
}

#[test]
fn an_unreachable_endpoint_fails_fast_and_is_named() {
    // A port nothing listens on: bind it, note it, close it.
    let port = revkv_tests::free_port();
    let ep = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = bench(&ep, &["put", "--total", "10"]);
    assert!(!out.status.success(), "succeeded against nothing");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&ep), "endpoint not named: {stderr}");
    assert!(out.stdout.is_empty(), "printed a report: {:?}", out.stdout);
}
