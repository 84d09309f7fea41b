use super::*;
use crate::storage::{encode_u64, StorageConfig};

fn open(dir: &Path) -> Storage {
    Storage::open(dir, &StorageConfig::default()).expect("open")
}

fn put(st: &Storage, cf: &str, k: &[u8], v: &[u8]) {
    let mut wb = WriteBatch::default();
    wb.put_cf(st.cf(cf), k, v);
    st.write(wb, false).expect("write");
}

fn dump(st: &Storage, cf: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut it = st.db().raw_iterator_cf(st.cf(cf));
    it.seek_to_first();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        out.push((k.to_vec(), v.to_vec()));
        it.next();
    }
    out
}

/// A leader-like store at applied index 10 and a follower-like one at 3, each with
/// its own identity and data the other lacks.
fn two_members(tmp: &Path) -> (Storage, Storage) {
    let leader = open(&tmp.join("leader"));
    put(&leader, CF_META, meta::APPLIED_INDEX, &encode_u64(10));
    put(&leader, CF_META, meta::CURRENT_REV, &encode_u64(7));
    put(&leader, CF_META, meta::CLUSTER_ID, &encode_u64(0xc1));
    put(&leader, CF_META, meta::MEMBER_ID, &encode_u64(0xa));
    for i in 0..50u64 {
        put(&leader, CF_REV, &encode_u64(i), b"leader-event");
        put(
            &leader,
            CF_KEY,
            format!("k{i}").as_bytes(),
            b"leader-version",
        );
    }
    put(&leader, CF_LEASE, b"l1", b"ttl");
    put(&leader, CF_RAFT, b"e-leader-log", b"never copied");

    let follower = open(&tmp.join("follower"));
    put(&follower, CF_META, meta::APPLIED_INDEX, &encode_u64(3));
    put(&follower, CF_META, meta::CLUSTER_ID, &encode_u64(0xc1));
    put(&follower, CF_META, meta::MEMBER_ID, &encode_u64(0xb));
    put(&follower, CF_META, b"zz-only-follower", b"x");
    put(&follower, CF_REV, &encode_u64(999), b"stale event");
    put(&follower, CF_KEY, b"\xff\xff\xffonly-follower", b"stale");
    put(&follower, CF_AUTH, b"user", b"stale");
    put(&follower, CF_RAFT, b"e-follower-log", b"old");
    (leader, follower)
}

fn plan(dir: PathBuf) -> InstallPlan {
    InstallPlan {
        dir,
        raft_records: vec![
            (b"hard_state".to_vec(), b"hs".to_vec()),
            (b"truncated".to_vec(), b"10/1".to_vec()),
        ],
    }
}

/// The follower holds the leader's state machine, its own identity, and only the
/// planned raft records.
fn assert_installed(leader: &Storage, follower: &Storage) {
    for cf in [CF_REV, CF_KEY, CF_LEASE, CF_AUTH] {
        assert_eq!(dump(follower, cf), dump(leader, cf), "column family {cf}");
    }
    assert_eq!(
        follower.get_meta_u64(meta::APPLIED_INDEX).expect("get"),
        Some(10)
    );
    assert_eq!(
        follower.get_meta_u64(meta::CURRENT_REV).expect("get"),
        Some(7)
    );
    assert_eq!(
        follower.get_meta_u64(meta::MEMBER_ID).expect("get"),
        Some(0xb)
    );
    assert_eq!(dump(follower, CF_META).len(), dump(leader, CF_META).len());
    assert_eq!(
        dump(follower, CF_RAFT),
        vec![
            (b"hard_state".to_vec(), b"hs".to_vec()),
            (b"truncated".to_vec(), b"10/1".to_vec()),
        ]
    );
    assert!(pending_install(follower).expect("pending").is_none());
}

#[test]
fn install_replaces_the_state_machine_but_not_identity_or_raft_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (leader, follower) = two_members(tmp.path());
    let ckpt = tmp.path().join("ckpt");
    create(&leader, &ckpt).expect("checkpoint");
    assert_eq!(applied_index(&ckpt).expect("applied"), 10);
    let plan = plan(ckpt);
    begin_install(&follower, &plan).expect("begin");
    assert_eq!(
        pending_install(&follower).expect("pending"),
        Some(plan.clone())
    );
    finish_install(&follower, &plan).expect("finish");
    make_durable(&follower).expect("sync");
    assert_installed(&leader, &follower);
}

#[test]
fn a_crash_mid_install_is_completed_at_start_up_and_one_before_it_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (leader, follower) = two_members(tmp.path());
    let ckpt = tmp.path().join("ckpt");
    create(&leader, &ckpt).expect("checkpoint");

    // Crash before the journal: the old state is intact and nothing is redone.
    drop(follower);
    let follower = open(&tmp.path().join("follower"));
    assert!(recover(&follower).expect("recover").is_none());
    assert_eq!(
        follower.get_meta_u64(meta::APPLIED_INDEX).expect("get"),
        Some(3)
    );

    // Crash after the journal, half-way through the copy.
    let plan = plan(ckpt);
    begin_install(&follower, &plan).expect("begin");
    clear_cf(&follower, CF_REV, |_| false).expect("clear");
    put(&follower, CF_REV, &encode_u64(1), b"half-copied");
    drop(follower);

    let follower = open(&tmp.path().join("follower"));
    assert_eq!(recover(&follower).expect("recover"), Some(plan));
    assert_installed(&leader, &follower);
    // Running it again after the commit finds nothing to do.
    assert!(recover(&follower).expect("recover").is_none());
}

#[test]
fn digest_covers_names_sizes_and_content() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (leader, _follower) = two_members(tmp.path());
    let ckpt = tmp.path().join("ckpt");
    create(&leader, &ckpt).expect("checkpoint");
    let d = digest(&ckpt).expect("digest");
    assert_eq!(d, digest(&ckpt).expect("digest"));
    let files = list_files(&ckpt).expect("list");
    assert_eq!(d.files, files.len() as u64);
    assert_eq!(d.total_bytes, files.iter().map(|(_, n)| n).sum::<u64>());
    let (name, _) = files
        .iter()
        .find(|(_, n)| *n > 0)
        .expect("a non-empty file");
    let path = ckpt.join(name);
    let mut bytes = fs::read(&path).expect("read");
    bytes[0] ^= 1;
    fs::write(&path, bytes).expect("write");
    assert_ne!(d.sha1, digest(&ckpt).expect("digest").sha1);
}

#[test]
fn install_plans_round_trip_and_garbage_is_refused() {
    let p = plan(PathBuf::from("/data/snap/recv-10"));
    assert_eq!(InstallPlan::decode(&p.encode()), Some(p.clone()));
    let bytes = p.encode();
    assert_eq!(InstallPlan::decode(&bytes[..bytes.len() - 1]), None);
    assert_eq!(InstallPlan::decode(&[0, 0, 0, 9, 1]), None);
}
