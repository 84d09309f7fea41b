//! A member that fell behind the leader's compacted raft log catches up from a
//! snapshot of the state machine, then follows the log again. Runs against revkv or,
//! with `REVKV_TEST_TARGET=etcd`, real etcd 3.4 with the same flags.
//!
//! Both compact the log every `--snapshot-count` applied entries and keep 5000
//! entries behind the applied index for slow followers (etcd's fixed
//! `SnapshotCatchUpEntries`), so more than 5000 + `--snapshot-count` writes while a
//! member is down leave it behind the log.

use std::time::{Duration, Instant};

use revkv_tests::{target, Target, TestCluster};

/// Small, so the log is compacted often (etcd 3.4 accepts it too).
const SNAPSHOT_COUNT: &str = "--snapshot-count=100";
/// Raft entries written while the member is down: one put each.
const WRITES: usize = 5300;
/// Puts in flight at once.
const CONCURRENCY: usize = 32;
const PREFIX: &str = "snap/";

#[track_caller]
fn eventually(timeout: Duration, what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes `n` keys under [`PREFIX`] through `endpoints`, `CONCURRENCY` at a time,
/// each in its own request (so each is one raft entry).
fn write_many(endpoints: Vec<String>, n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let client = etcd_client::Client::connect(endpoints, None)
            .await
            .expect("connect");
        let mut tasks = Vec::new();
        for w in 0..CONCURRENCY {
            let mut kv = client.kv_client();
            tasks.push(tokio::spawn(async move {
                let mut i = w;
                while i < n {
                    let key = format!("{PREFIX}{i:06}");
                    let mut tries = 0;
                    loop {
                        match kv.put(key.as_str(), format!("v{i}"), None).await {
                            Ok(_) => break,
                            Err(e) => {
                                tries += 1;
                                assert!(tries < 20, "put {key}: {e}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    i += CONCURRENCY;
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer task");
        }
    });
}

/// Live keys under [`PREFIX`] on one member, read locally (serializable).
fn local_count(c: &TestCluster, i: usize) -> Option<u64> {
    let out = c.member(i).etcdctl().run(
        &[
            "get",
            PREFIX,
            "--prefix",
            "--keys-only",
            "--limit=1",
            "--consistency=s",
            "-w",
            "json",
            "--command-timeout=5s",
        ],
        None,
    );
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).ok()?;
    Some(
        v.get("count")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    )
}

#[test]
fn a_member_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let mut c = TestCluster::start_with(3, &[SNAPSHOT_COUNT]);
    let leader = c.wait_leader(None, Duration::from_secs(10));
    let lagging = (leader + 1) % 3;
    c.etcdctl().ok(&["put", "before", "1"]);
    eventually(
        Duration::from_secs(10),
        "the first write everywhere",
        || {
            local_count(&c, lagging).is_some()
                && c.member(lagging)
                    .etcdctl()
                    .run(
                        &["get", "before", "--consistency=s", "--print-value-only"],
                        None,
                    )
                    .stdout
                    .trim()
                    == "1"
        },
    );
    c.member_mut(lagging).stop();

    let up: Vec<String> = (0..3)
        .filter(|&i| i != lagging)
        .map(|i| c.member(i).endpoint())
        .collect();
    write_many(up, WRITES);
    let leader = c.wait_leader(Some(lagging), Duration::from_secs(10));
    let leader_status = c.member(leader).status().expect("leader status");

    c.member_mut(lagging).restart();
    eventually(
        Duration::from_secs(90),
        "the restarted member to hold every key at the leader's revision",
        || {
            local_count(&c, lagging) == Some(WRITES as u64)
                && c.member(lagging)
                    .status()
                    .is_some_and(|s| s.revision >= leader_status.revision)
        },
    );
    let caught_up = c.member(lagging).status().expect("status");
    let now_leader = c.member(leader).status().expect("leader status");
    assert_eq!(
        caught_up.revision, now_leader.revision,
        "same revision as the leader"
    );

    // The history came along too: a read at an old revision answers the same.
    let old_rev = (leader_status.revision / 2).to_string();
    let at_old = |i: usize| {
        c.member(i).etcdctl().ok(&[
            "get",
            PREFIX,
            "--prefix",
            "--keys-only",
            "--limit=1",
            "--consistency=s",
            "-w",
            "json",
            "--rev",
            &old_rev,
        ])
    };
    let count = |out: String| {
        serde_json::from_str::<serde_json::Value>(out.trim())
            .ok()
            .and_then(|v| v.get("count").and_then(serde_json::Value::as_u64))
    };
    let old_count = count(at_old(lagging));
    assert!(
        old_count.is_some_and(|n| n > 0 && n < WRITES as u64),
        "{old_count:?}"
    );
    assert_eq!(
        old_count,
        count(at_old(leader)),
        "history at revision {old_rev}"
    );

    // It caught up from a snapshot, not from the log (which no longer reaches back).
    let log = c.member(lagging).log();
    let by_snapshot = match target() {
        Target::Revkv => log.contains("installed a raft snapshot"),
        Target::Etcd => log.contains("incoming snapshot") || log.contains("applied snapshot"),
    };
    assert!(
        by_snapshot,
        "no snapshot install in the member's log\n{}",
        c.member(lagging).log_tail(60)
    );

    // And then follows the log as usual.
    c.member(leader).etcdctl().ok(&["put", "after", "2"]);
    eventually(
        Duration::from_secs(10),
        "a later write on the member",
        || {
            c.member(lagging)
                .etcdctl()
                .run(
                    &["get", "after", "--consistency=s", "--print-value-only"],
                    None,
                )
                .stdout
                .trim()
                == "2"
        },
    );
    assert_eq!(
        local_count(&c, lagging),
        Some(WRITES as u64),
        "keys intact after more writes"
    );
}
