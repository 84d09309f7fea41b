use rocksdb::{IteratorMode, WriteBatch};

use super::*;
use crate::storage::{encode_u64, meta, StorageConfig, CF_META, CF_RAFT, CF_REV};

fn populated(dir: &Path) -> Storage {
    let st = Storage::open(dir, &StorageConfig::default()).expect("open");
    let mut wb = WriteBatch::default();
    wb.put_cf(st.cf(CF_META), meta::CURRENT_REV, encode_u64(7));
    wb.put_cf(st.cf(CF_META), meta::APPLIED_INDEX, encode_u64(42));
    wb.put_cf(st.cf(CF_META), meta::CLUSTER_ID, encode_u64(0xabc));
    wb.put_cf(st.cf(CF_META), meta::MEMBER_ID, encode_u64(0xdef));
    wb.put_cf(st.cf(CF_RAFT), b"hard_state", b"old cluster");
    for i in 0..1000u32 {
        wb.put_cf(st.cf(CF_REV), i.to_be_bytes(), vec![b'v'; 100]);
    }
    st.write(wb, true).expect("write");
    st
}

fn save(st: &Storage, snap: &Path, file: &Path) {
    let mut bytes = Vec::new();
    let mut remaining = Vec::new();
    let mut sizes = Vec::new();
    let done = stream(st, snap, &mut |blob, left| {
        sizes.push(blob.len());
        remaining.push(left);
        bytes.extend_from_slice(&blob);
        true
    })
    .expect("stream");
    assert!(done);
    // etcd's counting: bytes still to come after each chunk, then the digest at 0.
    assert!(remaining.windows(2).all(|w| w[0] >= w[1]));
    assert_eq!(remaining[remaining.len() - 2..], [0, 0]);
    assert_eq!(*sizes.last().expect("chunks"), archive::TRAILER);
    assert_eq!(
        remaining[0] + sizes[0] as u64,
        (bytes.len() - archive::TRAILER) as u64
    );
    assert_eq!(
        std::fs::read_dir(snap).expect("snap dir").count(),
        0,
        "the staging checkpoint is removed"
    );
    std::fs::write(file, bytes).expect("write backup");
}

fn options(snapshot: &Path, data_dir: &Path, name: &str) -> RestoreOptions {
    RestoreOptions {
        snapshot: snapshot.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        name: name.into(),
        initial_cluster: "m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380".into(),
        initial_cluster_token: "tok".into(),
        initial_advertise_peer_urls: if name == "m1" {
            "http://127.0.0.1:12380".into()
        } else {
            "http://127.0.0.1:22380".into()
        },
        skip_hash_check: false,
    }
}

/// A temp dir holding a populated member's backup, saved as `backup.db`.
fn saved_backup() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let st = populated(&tmp.path().join("src"));
    let file = tmp.path().join("backup.db");
    save(&st, &tmp.path().join("src/snap"), &file);
    (tmp, file)
}

#[test]
fn a_backup_restores_the_keyspace_under_a_new_identity() {
    let (tmp, file) = saved_backup();

    let s = status(&file).expect("status");
    assert_eq!(s.revision, 7);
    // 4 meta + 1 raft + 1000 rev keys.
    assert_eq!(s.total_key, 1005);
    assert!(s.total_size > 0);
    assert_eq!(
        status(&file).expect("status again"),
        s,
        "the hash is stable"
    );

    let mut ids = Vec::new();
    for name in ["m1", "m2"] {
        let dd = tmp.path().join(name);
        let r = restore(&options(&file, &dd, name)).expect("restore");
        assert_eq!(r.revision, 7);
        let st = Storage::open(&dd, &StorageConfig::default()).expect("open restored");
        assert_eq!(st.get_meta_u64(meta::APPLIED_INDEX).expect("get"), None);
        assert_eq!(
            st.get_meta_u64(meta::MEMBER_ID).expect("get"),
            Some(r.member_id)
        );
        assert_eq!(
            st.get_meta_u64(meta::CLUSTER_ID).expect("get"),
            Some(r.cluster_id)
        );
        assert_eq!(
            st.db()
                .iterator_cf(st.cf(CF_RAFT), IteratorMode::Start)
                .count(),
            0
        );
        assert_eq!(
            st.db()
                .iterator_cf(st.cf(CF_REV), IteratorMode::Start)
                .count(),
            1000
        );
        ids.push(r);
    }
    assert_ne!(ids[0].member_id, ids[1].member_id);
    assert_eq!(ids[0].cluster_id, ids[1].cluster_id);
    assert_ne!(ids[0].cluster_id, 0xabc);
}

#[test]
fn a_refused_restore_leaves_nothing_behind() {
    let (tmp, file) = saved_backup();

    let existing = tmp.path().join("exists");
    std::fs::create_dir(&existing).expect("mkdir");
    assert!(matches!(
        restore(&options(&file, &existing, "m1")),
        Err(Error::DataDirExists(_))
    ));

    let dd = tmp.path().join("unlisted");
    assert!(restore(&options(&file, &dd, "m3")).is_err());
    assert!(!dd.exists());

    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = tmp.path().join("bad.db");
    std::fs::write(&bad, &bytes).expect("write");
    assert!(matches!(
        restore(&options(&bad, &dd, "m1")),
        Err(Error::HashMismatch)
    ));
    assert!(!dd.exists());
    assert!(matches!(status(&bad), Err(Error::HashMismatch)));
}
