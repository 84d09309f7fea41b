//! Backups as an etcd user takes them: `etcdctl snapshot save` against a running
//! member, then `snapshot status` and `snapshot restore` offline, and a member started
//! on the restored data dir.
//!
//! Every expectation is etcd's: the suite passes against real etcd with
//! `REVKV_TEST_TARGET=etcd`. `save` runs through the configured etcdctl (stock, or
//! revkvctl standing in). The offline commands read the server's own file format — a
//! bbolt file for etcd, a revkv backup for revkv — so they run through the tool that
//! owns that format: stock etcdctl for etcd, revkvctl for revkv.

use std::path::{Path, PathBuf};
use std::time::Duration;

use revkv_tests::revkvctl::{revkvctl_bin, run_cli, Run};
use revkv_tests::{target, Etcdctl, Target, TestServer};

/// The tool that reads this target's snapshot files offline.
fn offline(args: &[&str]) -> Run {
    let bin = match target() {
        Target::Etcd => PathBuf::from(revkv_tests::etcdctl::ETCDCTL_BIN),
        Target::Revkv => revkvctl_bin(),
    };
    // No endpoint is dialled; the offline commands never connect.
    run_cli(
        &bin,
        "127.0.0.1:1",
        args,
        None,
        &[],
        Duration::from_secs(60),
    )
}

fn offline_ok(args: &[&str]) -> String {
    let r = offline(args);
    assert_eq!(r.code, Some(0), "{args:?} failed: {}", r.stderr);
    r.stdout
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Writes some history (overwrites, a delete, a lease) and returns the revision.
fn populate(ctl: &Etcdctl) -> i64 {
    for i in 0..20 {
        ctl.ok(&["put", &format!("key{i:02}"), &format!("value{i}")]);
    }
    ctl.ok(&["put", "foo", "v1"]);
    ctl.ok(&["put", "foo", "v2"]);
    ctl.ok(&["del", "key05"]);
    let lease = ctl.json(&["lease", "grant", "600"]);
    let id = format!("{:x}", lease["ID"].as_i64().expect("lease id"));
    ctl.ok(&["put", "leased", "x", "--lease", &id]);
    ctl.revision()
}

fn save(ctl: &Etcdctl, file: &Path) {
    let out = ctl.ok(&["snapshot", "save", path_str(file)]);
    assert_eq!(out, format!("Snapshot saved at {}\n", file.display()));
    let len = std::fs::metadata(file).expect("saved file").len();
    // What etcdctl itself checks before it keeps a download: whole 512-byte pages
    // followed by a SHA-256.
    assert_eq!(len % 512, 32, "snapshot length {len}");
}

#[test]
fn a_saved_snapshot_reports_its_revision_and_restores_into_a_new_member() {
    let source = TestServer::start();
    let ctl = source.etcdctl();
    let rev = populate(&ctl);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("backup.db");
    save(&ctl, &file);
    // Saving changes nothing.
    assert_eq!(ctl.revision(), rev);

    let simple = offline_ok(&["snapshot", "status", path_str(&file)]);
    let fields: Vec<&str> = simple.trim_end().split(", ").collect();
    assert_eq!(fields.len(), 4, "{simple:?}");
    assert!(u32::from_str_radix(fields[0], 16).is_ok(), "{simple:?}");
    assert_eq!(fields[1], rev.to_string());
    let json: serde_json::Value = serde_json::from_str(&offline_ok(&[
        "snapshot",
        "status",
        path_str(&file),
        "-w",
        "json",
    ]))
    .expect("status json");
    assert_eq!(json["revision"], rev);
    assert!(json["totalKey"].as_u64().expect("totalKey") > 20);
    assert!(json["totalSize"].as_u64().expect("totalSize") > 0);
    assert_eq!(
        format!("{:x}", json["hash"].as_u64().expect("hash")),
        fields[0]
    );

    // The new member: a fresh server's ports and identity, its data dir replaced
    // by the restore.
    let mut restored = TestServer::start();
    let fresh_id = restored.etcdctl().json(&["endpoint", "status"])[0]["Status"]["header"]
        ["member_id"]
        .clone();
    restored.stop();
    let data = restored.data_dir();
    std::fs::remove_dir_all(&data).expect("remove fresh data dir");
    let peer = format!("http://127.0.0.1:{}", restored.peer_port());
    let cluster = format!("default={peer}");
    let restore = [
        "snapshot",
        "restore",
        path_str(&file),
        "--data-dir",
        path_str(&data),
        "--name",
        "default",
        "--initial-cluster",
        &cluster,
        "--initial-advertise-peer-urls",
        &peer,
    ];
    let r = offline(&restore);
    assert_eq!(r.code, Some(0), "restore failed: {}", r.stderr);
    assert!(r.stderr.contains("restored snapshot"), "{}", r.stderr);
    // Restoring over an existing data dir is refused.
    let again = offline(&restore);
    assert_eq!(again.code, Some(1));
    assert_eq!(
        again.stderr.lines().last(),
        Some(format!("Error: data-dir {:?} exists", path_str(&data)).as_str())
    );

    restored.restart();
    let rc = restored.etcdctl();
    // The keyspace and its revision come from the snapshot ...
    assert_eq!(rc.revision(), rev);
    assert_eq!(rc.ok(&["get", "foo"]), "foo\nv2\n");
    assert_eq!(rc.ok(&["get", "key05"]), "");
    assert_eq!(rc.ok(&["get", "key07"]), "key07\nvalue7\n");
    let listed = rc.ok(&["get", "key", "--prefix", "--keys-only"]);
    assert_eq!(listed.lines().filter(|l| !l.is_empty()).count(), 19);
    // ... with its history ...
    let foo = rc.json(&["get", "foo"]);
    let mod_rev = foo["kvs"][0]["mod_revision"]
        .as_i64()
        .expect("mod_revision");
    assert_eq!(
        rc.ok(&["get", "foo", "--rev", &(mod_rev - 1).to_string()]),
        "foo\nv1\n"
    );
    // ... and its leases.
    let leased = rc.json(&["get", "leased"]);
    let lease = leased["kvs"][0]["lease"].as_i64().expect("lease kept");
    assert!(rc.ok(&["lease", "list"]).contains(&format!("{lease:x}")));
    // The identity comes from the restore's flags, not from the source member.
    let status = rc.json(&["endpoint", "status"]);
    assert_eq!(status[0]["Status"]["header"]["member_id"], fresh_id);
    let members = rc.ok(&["member", "list"]);
    assert_eq!(members.lines().count(), 1, "{members}");
    assert!(members.contains(&peer), "{members}");
    // And it serves writes from there on.
    assert_eq!(rc.put_rev("new", "1"), rev + 1);
}

#[test]
fn offline_commands_refuse_missing_and_damaged_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("missing.db");
    let r = offline(&["snapshot", "status", path_str(&missing)]);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "Error: stat {}: no such file or directory",
            missing.display()
        )
    );

    let source = TestServer::start();
    let ctl = source.etcdctl();
    ctl.ok(&["put", "a", "1"]);
    let file = dir.path().join("backup.db");
    save(&ctl, &file);
    // A flipped byte in the middle fails the digest check of a restore.
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).expect("write");
    let data = dir.path().join("restored");
    let r = offline(&[
        "snapshot",
        "restore",
        path_str(&damaged),
        "--data-dir",
        path_str(&data),
    ]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r
        .stderr
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("Error: ")));
    // etcd leaves its half-made data dir behind; revkv removes it.
    if target() == Target::Revkv {
        assert!(!data.exists(), "a failed restore leaves nothing behind");
    }
}
