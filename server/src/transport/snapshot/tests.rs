//! Snapshots over real loopback sockets, with mailboxes standing in for raft.

use std::path::Path;
use std::time::{Duration, Instant};

use raft::prelude::{ConfState, Snapshot};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio_stream::wrappers::TcpListenerStream;

use super::super::Transport;
use super::*;
use crate::raft::{Command, Mailbox};
use crate::storage::{encode_u64, meta, Storage, StorageConfig, CF_META, CF_REV};

fn cfg() -> TransportConfig {
    TransportConfig::new(
        Duration::from_millis(10),
        Duration::from_millis(100),
        1 << 20,
    )
}

fn snapshots(dir: &Path, cluster: u64, applied: u64) -> Arc<Snapshots> {
    let st = Storage::open(dir, &StorageConfig::default()).expect("open");
    let mut wb = rocksdb::WriteBatch::default();
    wb.put_cf(st.cf(CF_META), meta::APPLIED_INDEX, encode_u64(applied));
    for i in 0..3000u64 {
        // More than one chunk in all.
        wb.put_cf(st.cf(CF_REV), encode_u64(i), vec![(i % 251) as u8; 1000]);
    }
    st.write(wb, true).expect("write");
    Snapshots::open(dir, cluster, st).expect("snapshots")
}

fn leader_snapshot(snaps: &Snapshots) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match snaps.raft_snapshot(0, |_| Ok(3), &ConfState::default()) {
            Ok(s) => return s,
            Err(_) => {
                assert!(Instant::now() < deadline, "no checkpoint");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn msg_snapshot(snap: Snapshot) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = 1;
    m.to = 2;
    m.set_snapshot(snap);
    m
}

/// Sends a snapshot from member 1 (cluster `a_cluster`, applied 42) to member 2
/// (cluster `b_cluster`, applied `b_applied`); returns how raft on 1 heard it ended,
/// whether 2's raft got the message, and 2's snap dir entries.
async fn send_one(a_cluster: u64, b_cluster: u64, b_applied: u64) -> (bool, bool, Vec<String>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a_snaps = snapshots(&tmp.path().join("a"), a_cluster, 42);
    let b_snaps = snapshots(&tmp.path().join("b"), b_cluster, b_applied);
    b_snaps.note_applied(b_applied);
    let (a_box, b_box) = (Mailbox::with_capacity(64), Mailbox::with_capacity(64));
    let a = Transport::new(
        Identity {
            cluster_id: a_cluster,
            member_id: 1,
        },
        cfg(),
        a_box.peer_inbox(),
        Handle::current(),
    )
    .with_snapshots(a_snaps.clone());
    let b = Transport::new(
        Identity {
            cluster_id: b_cluster,
            member_id: 2,
        },
        cfg(),
        b_box.peer_inbox(),
        Handle::current(),
    )
    .with_snapshots(b_snaps.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(b.service())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    a.add_peer(2, vec![url]).expect("add");
    let snap = tokio::task::spawn_blocking(move || leader_snapshot(&a_snaps))
        .await
        .expect("checkpoint");
    a.send(vec![msg_snapshot(snap)]);

    let deadline = Instant::now() + Duration::from_secs(20);
    let ok = loop {
        match a_box.receiver().try_recv() {
            Ok(Command::ReportSnapshot { to: 2, ok }) => break ok,
            Ok(_) => {}
            Err(_) => {
                assert!(Instant::now() < deadline, "no snapshot report");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let stepped = b_box.receiver().try_iter().any(|c| {
        matches!(c, Command::Step(m) if m.get_msg_type() == MessageType::MsgSnapshot
            && m.get_snapshot().get_metadata().index == 42)
    });
    let mut entries: Vec<String> = std::fs::read_dir(tmp.path().join("b").join("snap"))
        .expect("snap dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    (ok, stepped, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_streamed_verified_and_handed_to_raft() {
    let (ok, stepped, entries) = send_one(7, 7, 5).await;
    assert!(ok, "the sender reports success to raft");
    assert!(stepped, "the receiver's raft gets the MsgSnapshot");
    assert_eq!(entries, vec!["recv-42".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_cluster_is_refused_before_any_file_is_written() {
    let (ok, stepped, entries) = send_one(0xaaaa, 0xbbbb, 5).await;
    assert!(!ok, "the sender reports failure to raft");
    assert!(!stepped);
    assert!(entries.is_empty(), "{entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_not_newer_than_the_applied_index_is_refused() {
    let (ok, stepped, entries) = send_one(7, 7, 42).await;
    assert!(!ok);
    assert!(!stepped);
    assert!(entries.is_empty(), "{entries:?}");
}
