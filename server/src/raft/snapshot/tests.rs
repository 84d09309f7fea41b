use std::time::{Duration, Instant};

use super::*;
use crate::storage::{encode_u64, meta, StorageConfig, CF_META};

const CLUSTER: u64 = 0xc1;

fn store_at(dir: &Path, applied: u64) -> Storage {
    let st = Storage::open(dir, &StorageConfig::default()).expect("open");
    let mut wb = rocksdb::WriteBatch::default();
    wb.put_cf(st.cf(CF_META), meta::APPLIED_INDEX, encode_u64(applied));
    for i in 0..200u64 {
        wb.put_cf(st.cf(crate::storage::CF_REV), encode_u64(i), vec![7u8; 300]);
    }
    st.write(wb, true).expect("write");
    st
}

/// Polls the leader side until its checkpoint is ready.
fn leader_snapshot(snaps: &Snapshots, min_index: u64) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(20);
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    loop {
        match snaps.raft_snapshot(min_index, |_| Ok(4), &cs) {
            Ok(s) => return s,
            Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)) => {
                assert!(Instant::now() < deadline, "no checkpoint");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn msg_for(snap: Snapshot, from: u64, to: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = from;
    m.to = to;
    m.set_snapshot(snap);
    m
}

/// Streams the checkpoint of `d` from `src` into `stage` in `chunk`-byte pieces,
/// letting `tamper` change each piece.
fn stream(
    src: &Path,
    stage: &mut Staging,
    chunk: usize,
    tamper: impl Fn(&str, &mut Vec<u8>),
) -> Result<(), Error> {
    for (name, size) in checkpoint::list_files(src)? {
        let bytes = fs::read(src.join(&name)).expect("read");
        let mut offset = 0usize;
        loop {
            let end = (offset + chunk).min(bytes.len());
            let mut piece = bytes[offset..end].to_vec();
            tamper(&name, &mut piece);
            stage.write(&name, offset as u64, size, &piece)?;
            offset = end;
            if offset >= bytes.len() {
                break;
            }
        }
    }
    Ok(())
}

struct Pair {
    _tmp: tempfile::TempDir,
    leader: Arc<Snapshots>,
    follower: Arc<Snapshots>,
    snap: Snapshot,
}

fn pair() -> Pair {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let leader = Snapshots::open(&a, CLUSTER, store_at(&a, 42)).expect("snaps");
    let follower = Snapshots::open(&b, CLUSTER, store_at(&b, 5)).expect("snaps");
    let snap = leader_snapshot(&leader, 0);
    Pair {
        _tmp: tmp,
        leader,
        follower,
        snap,
    }
}

#[test]
fn leader_serves_a_descriptor_of_its_checkpoint_not_the_data() {
    let p = pair();
    let d = descriptor(&p.snap).expect("descriptor");
    assert_eq!((d.cluster_id, d.index, d.term), (CLUSTER, 42, 4));
    assert_eq!(p.snap.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
    assert!(p.snap.data.len() < 128, "the descriptor is small");
    let (d2, dir) = p
        .leader
        .outgoing(&msg_for(p.snap.clone(), 1, 2))
        .expect("outgoing");
    assert_eq!(d2, d);
    assert_eq!(checkpoint::digest(&dir).expect("digest").sha1, d.sha1);
    // A checkpoint older than what raft needs is not served; a new one is made.
    assert!(matches!(
        p.leader.raft_snapshot(43, |_| Ok(4), &ConfState::default()),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
}

#[test]
fn chunks_are_staged_verified_and_admitted() {
    let p = pair();
    let d = descriptor(&p.snap).expect("descriptor");
    let (_, src) = p
        .leader
        .outgoing(&msg_for(p.snap.clone(), 1, 2))
        .expect("outgoing");
    let msg = msg_for(p.snap.clone(), 1, 2);
    assert!(matches!(p.follower.admit(&msg, 5), Err(Error::Missing(42))));

    let mut stage = p.follower.stage(d.clone()).expect("stage");
    stream(&src, &mut stage, 1000, |_, _| {}).expect("stream");
    let dir = stage.finish().expect("verified");
    assert_eq!(dir, p.follower.received_dir(42));
    assert_eq!(checkpoint::digest(&dir).expect("digest").sha1, d.sha1);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&dir).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    p.follower.admit(&msg, 5).expect("admitted");

    // Refusals: stale, foreign cluster.
    assert!(matches!(
        p.follower.admit(&msg, 42),
        Err(Error::Stale {
            index: 42,
            applied: 42
        })
    ));
    let mut foreign = d.clone();
    foreign.cluster_id = 0xbad;
    assert!(matches!(
        p.follower.check_descriptor(&foreign, None),
        Err(Error::ClusterMismatch {
            remote: 0xbad,
            local: CLUSTER
        })
    ));
    p.follower.installed();
    assert!(!dir.exists(), "installed checkpoints are removed");
}

#[test]
fn corrupt_reordered_or_misnamed_chunks_are_refused_and_leave_nothing() {
    let p = pair();
    let d = descriptor(&p.snap).expect("descriptor");
    let (_, src) = p
        .leader
        .outgoing(&msg_for(p.snap.clone(), 1, 2))
        .expect("outgoing");

    let mut stage = p.follower.stage(d.clone()).expect("stage");
    let staging_dir = stage.dir().to_path_buf();
    stream(&src, &mut stage, 4096, |name, piece| {
        if name.ends_with(".sst") && !piece.is_empty() {
            piece[0] ^= 0xff;
        }
    })
    .expect("stream");
    assert!(matches!(stage.finish(), Err(Error::Checksum { .. })));
    assert!(!staging_dir.exists());
    assert!(!p.follower.received_dir(42).exists());

    let mut stage = p.follower.stage(d.clone()).expect("stage");
    assert!(matches!(
        stage.write("CURRENT", 5, 10, b"x"),
        Err(Error::Order(_))
    ));
    for bad in ["../escape", ".hidden", "a/b", ""] {
        assert!(
            matches!(stage.write(bad, 0, 1, b"x"), Err(Error::BadName(_))),
            "{bad}"
        );
    }
    stage.write("b", 0, 1, b"x").expect("write");
    assert!(
        matches!(stage.write("a", 0, 1, b"x"), Err(Error::Order(_))),
        "name order"
    );
    assert!(
        matches!(stage.write("b", 0, 1, b"x"), Err(Error::Order(_))),
        "offset gap"
    );

    // A truncated transfer fails verification too.
    let mut stage = p.follower.stage(d).expect("stage");
    let files = checkpoint::list_files(&src).expect("list");
    let (name, size) = &files[0];
    let bytes = fs::read(src.join(name)).expect("read");
    stage.write(name, 0, *size, &bytes).expect("write");
    assert!(matches!(stage.finish(), Err(Error::Checksum { .. })));
}
