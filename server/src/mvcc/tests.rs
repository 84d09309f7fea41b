//! MVCC semantics on a real RocksDB in a temp dir.

use std::sync::Arc;

use super::compact::{self, compact_range, CompactorConfig};
use super::*;
use crate::storage::{Storage, StorageConfig};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<KvStore>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
    let store = KvStore::open(storage).expect("store");
    Fixture { _dir: dir, store }
}

impl Fixture {
    fn put(&self, k: &str, v: &str) -> i64 {
        let mut b = ApplyBatch::new(&self.store);
        let mut t = b.txn();
        let rev = t.put(k.as_bytes(), v.as_bytes().to_vec(), 0).expect("put");
        t.end();
        b.commit(None).expect("commit");
        rev
    }

    fn delete(&self, k: &str, end: &str) -> i64 {
        let mut b = ApplyBatch::new(&self.store);
        let mut t = b.txn();
        let (n, _) = t.delete_range(k.as_bytes(), end.as_bytes()).expect("del");
        t.end();
        b.commit(None).expect("commit");
        n
    }

    fn get_at(&self, k: &str, rev: i64) -> Option<(String, i64, i64, i64)> {
        let r = self
            .store
            .range(
                k.as_bytes(),
                b"",
                RangeOptions {
                    rev,
                    ..Default::default()
                },
            )
            .expect("range");
        r.kvs.first().map(|kv| {
            (
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
    }

    fn keys(&self, k: &str, end: &str, opts: RangeOptions) -> (Vec<String>, i64) {
        let r = self
            .store
            .range(k.as_bytes(), end.as_bytes(), opts)
            .expect("range");
        let keys = r
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect();
        (keys, r.count)
    }
}

#[test]
fn empty_store_starts_at_revision_one() {
    let f = fixture();
    assert_eq!(f.store.current_rev(), 1);
    assert_eq!(f.get_at("a", 0), None);
}

#[test]
fn versions_generations_and_history() {
    let f = fixture();
    assert_eq!(f.put("foo", "a"), 2);
    assert_eq!(f.put("foo", "b"), 3);
    assert_eq!(f.delete("foo", ""), 1);
    assert_eq!(f.put("foo", "c"), 5);
    assert_eq!(f.get_at("foo", 2), Some(("a".into(), 2, 2, 1)));
    assert_eq!(f.get_at("foo", 3), Some(("b".into(), 2, 3, 2)));
    assert_eq!(f.get_at("foo", 4), None);
    assert_eq!(f.get_at("foo", 0), Some(("c".into(), 5, 5, 1)));
    assert_eq!(f.store.current_rev(), 5);
}

#[test]
fn deleting_nothing_does_not_advance_the_revision() {
    let f = fixture();
    f.put("a", "1");
    assert_eq!(f.delete("zzz", ""), 0);
    assert_eq!(f.store.current_rev(), 2);
}

#[test]
fn future_and_compacted_revisions_are_errors() {
    let f = fixture();
    f.put("a", "1");
    f.put("a", "2");
    f.put("a", "3");
    let err = f.store.range(
        b"a",
        b"",
        RangeOptions {
            rev: 9,
            ..Default::default()
        },
    );
    assert!(matches!(err, Err(Error::FutureRev)));
    let mut b = ApplyBatch::new(&f.store);
    b.compact(3).expect("compact");
    assert!(matches!(b.compact(3), Err(Error::Compacted)));
    b.commit(None).expect("commit");
    let err = f.store.range(
        b"a",
        b"",
        RangeOptions {
            rev: 2,
            ..Default::default()
        },
    );
    assert!(matches!(err, Err(Error::Compacted)));
    // Reading exactly at the compaction revision is allowed.
    assert_eq!(f.get_at("a", 3), Some(("2".into(), 2, 3, 2)));
    let mut b = ApplyBatch::new(&f.store);
    assert!(matches!(b.compact(10), Err(Error::FutureRev)));
    assert!(matches!(b.compact(2), Err(Error::Compacted)));
}

#[test]
fn ranges_prefix_from_key_limit_and_count() {
    let f = fixture();
    for k in ["a", "a\0", "ab", "b", "c"] {
        f.put(k, "v");
    }
    f.delete("b", "");
    let all = RangeOptions::default();
    assert_eq!(f.keys("a", "b", all).0, vec!["a", "a\0", "ab"]);
    assert_eq!(f.keys("a", "\0", all).0, vec!["a", "a\0", "ab", "c"]);
    assert_eq!(f.keys("\0", "\0", all).1, 4);
    let limited = RangeOptions {
        limit: 2,
        ..Default::default()
    };
    assert_eq!(
        f.keys("a", "\0", limited),
        (vec!["a".into(), "a\0".into()], 4)
    );
    let count_only = RangeOptions {
        count_only: true,
        ..Default::default()
    };
    assert_eq!(f.keys("a", "\0", count_only), (vec![], 4));
    let keys_only = RangeOptions {
        keys_only: true,
        ..Default::default()
    };
    let meta = f.store.range(b"ab", b"", keys_only).expect("range");
    let full = f.store.range(b"ab", b"", all).expect("range");
    assert!(meta.kvs[0].value.is_empty());
    assert_eq!(full.kvs[0].value, b"v");
    // Everything else about the key is still there.
    assert_eq!(
        (meta.kvs[0].create_revision, meta.kvs[0].version),
        (full.kvs[0].create_revision, full.kvs[0].version)
    );
    assert_eq!(f.keys("c", "a", all), (vec![], 0));
    // History: at revision 5 "b" was still alive.
    let at5 = RangeOptions {
        rev: 5,
        ..Default::default()
    };
    assert_eq!(f.keys("b", "", at5).0, vec!["b"]);
}

#[test]
fn txn_reads_its_own_writes_and_batch_sees_earlier_requests() {
    let f = fixture();
    let mut b = ApplyBatch::new(&f.store);
    let mut t = b.txn();
    t.put(b"x", b"1".to_vec(), 0).expect("put");
    t.put(b"y", b"2".to_vec(), 0).expect("put");
    let r = t.range(b"x", b"z", RangeOptions::default()).expect("range");
    assert_eq!(r.count, 2);
    assert_eq!(r.rev, 2);
    assert_eq!(t.end(), 2);
    let mut t = b.txn();
    let prev = t.get(b"x").expect("get").expect("x exists");
    assert_eq!(prev.mod_revision, 2);
    t.put(b"x", b"3".to_vec(), 0).expect("put");
    let (n, rev) = t.delete_range(b"y", b"").expect("del");
    assert_eq!((n, rev), (1, 3));
    // Reading a revision made earlier in the same batch works before commit.
    let old = t
        .range(
            b"x",
            b"",
            RangeOptions {
                rev: 2,
                ..Default::default()
            },
        )
        .expect("range");
    assert_eq!(old.kvs[0].value, b"1");
    t.end();
    // Readers see nothing until commit.
    assert_eq!(f.store.current_rev(), 1);
    let done = b.commit(Some(7)).expect("commit");
    assert_eq!(done.rev, 3);
    assert_eq!(done.events.len(), 4);
    assert_eq!(f.get_at("x", 0), Some(("3".into(), 2, 3, 2)));
    assert_eq!(f.get_at("y", 0), None);
    let x_sub = f
        .store
        .range(b"x", b"", RangeOptions::default())
        .expect("range");
    assert_eq!(x_sub.kvs[0].mod_revision, 3);
    assert_eq!(
        f.store
            .storage()
            .get_meta_u64(crate::storage::meta::APPLIED_INDEX)
            .expect("meta"),
        Some(7)
    );
}

#[test]
fn lease_attachments_follow_puts_and_deletes() {
    let f = fixture();
    let mut b = ApplyBatch::new(&f.store);
    let mut t = b.txn();
    t.put(b"a", b"1".to_vec(), 7).expect("put");
    t.put(b"b", b"1".to_vec(), 7).expect("put");
    t.put(b"c", b"1".to_vec(), 8).expect("put");
    assert_eq!(
        t.attached_keys(7).expect("keys"),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    t.end();
    b.commit(None).expect("commit");
    let mut b = ApplyBatch::new(&f.store);
    let mut t = b.txn();
    // Re-put without a lease detaches; deleting detaches; another lease moves it.
    t.put(b"a", b"2".to_vec(), 0).expect("put");
    t.delete_range(b"c", b"").expect("del");
    t.put(b"b", b"2".to_vec(), 9).expect("put");
    assert!(t.attached_keys(7).expect("keys").is_empty());
    assert!(t.attached_keys(8).expect("keys").is_empty());
    assert_eq!(t.attached_keys(9).expect("keys"), vec![b"b".to_vec()]);
    t.end();
    b.commit(None).expect("commit");
    let b = ApplyBatch::new(&f.store);
    assert_eq!(b.attached_keys(9).expect("keys"), vec![b"b".to_vec()]);
    assert!(b.attached_keys(7).expect("keys").is_empty());
}

/// Five versions of `k`, a key put and deleted, another key put, and a compaction at
/// revision 8 (accepted, not yet carried out).
fn history_compacted_at_8(f: &Fixture) {
    for i in 0..5 {
        f.put("k", &format!("v{i}")); // revs 2..=6
    }
    f.put("gone", "x"); // 7
    f.delete("gone", ""); // 8
    f.put("other", "o"); // 9
    let mut b = ApplyBatch::new(&f.store);
    b.compact(8).expect("compact");
    b.commit(None).expect("commit");
}

#[test]
fn physical_compaction_removes_only_unreachable_versions() {
    let f = fixture();
    history_compacted_at_8(&f);
    compact_range(
        &f.store,
        0,
        8,
        &CompactorConfig {
            batch_limit: 1,
            ..Default::default()
        },
    )
    .expect("compact_range");
    // Latest and at-compaction reads are intact.
    assert_eq!(f.get_at("k", 8), Some(("v4".into(), 2, 6, 5)));
    assert_eq!(f.get_at("other", 0), Some(("o".into(), 9, 9, 1)));
    assert_eq!(f.get_at("gone", 8), None);
    // Exactly the live versions remain in both column families.
    let st = f.store.storage();
    let count = |cf| {
        st.db()
            .iterator_cf(st.cf(cf), rocksdb::IteratorMode::Start)
            .count()
    };
    assert_eq!(count(crate::storage::CF_KEY), 2);
    assert_eq!(count(crate::storage::CF_REV), 2);
    assert_eq!(f.store.current_rev(), 9);
}

#[test]
fn state_survives_reopen_without_scanning() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
        let store = KvStore::open(storage).expect("store");
        let mut b = ApplyBatch::new(&store);
        let mut t = b.txn();
        t.put(b"a", b"1".to_vec(), 0).expect("put");
        t.end();
        b.compact(2).expect("compact");
        b.commit(Some(3)).expect("commit");
    }
    let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("open");
    let store = KvStore::open(storage).expect("store");
    assert_eq!(store.current_rev(), 2);
    assert_eq!(store.compact_rev(), 2);
}

mod model {
    //! The store against a naive model: every key's full history in memory.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8, u8),
        Delete(u8, u8),
        /// Several puts of distinct keys in one request (one main revision).
        Multi(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..8, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            1 => (0u8..8, 0u8..9).prop_map(|(a, b)| Op::Delete(a, b)),
            1 => proptest::collection::btree_set(0u8..8, 1..4).prop_map(|s| Op::Multi(s.into_iter().collect())),
        ]
    }

    /// key -> [(main, sub, Some((create, version, value)) | None for a tombstone)]
    type History = BTreeMap<u8, Vec<(i64, i64, Option<(i64, i64, u8)>)>>;

    fn model_get(h: &History, k: u8, rev: i64) -> Option<(i64, i64, i64, u8)> {
        let (main, _, v) = h.get(&k)?.iter().rev().find(|(m, _, _)| *m <= rev)?;
        v.map(|(c, ver, val)| (c, *main, ver, val))
    }

    fn model_put(h: &mut History, k: u8, v: u8, rev: i64, sub: i64) {
        let prev = model_get(h, k, rev);
        let (create, version) = prev.map_or((rev, 1), |(c, _, ver, _)| (c, ver + 1));
        h.entry(k)
            .or_default()
            .push((rev, sub, Some((create, version, v))));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn store_matches_model(ops in proptest::collection::vec(op(), 1..40), compact_at in 0usize..40) {
            let f = fixture();
            let mut h = History::new();
            let mut rev = 1i64;
            for (i, op) in ops.iter().enumerate() {
                let mut b = ApplyBatch::new(&f.store);
                let mut t = b.txn();
                match op {
                    Op::Put(k, v) => {
                        t.put(&[*k], vec![*v], 0).expect("put");
                        model_put(&mut h, *k, *v, rev + 1, 0);
                    }
                    Op::Multi(keys) => {
                        for (sub, k) in keys.iter().enumerate() {
                            t.put(&[*k], vec![*k], 0).expect("put");
                            model_put(&mut h, *k, *k, rev + 1, sub as i64);
                        }
                    }
                    Op::Delete(a, b_end) => {
                        let end = if b_end > a { vec![*b_end] } else { vec![] };
                        let (n, _) = t.delete_range(&[*a], &end).expect("del");
                        let live: Vec<u8> = (0u8..8)
                            .filter(|k| if end.is_empty() { k == a } else { k >= a && k < b_end })
                            .filter(|k| model_get(&h, *k, rev).is_some())
                            .collect();
                        prop_assert_eq!(n, live.len() as i64);
                        for (sub, k) in live.iter().enumerate() {
                            h.entry(*k).or_default().push((rev + 1, sub as i64, None));
                        }
                    }
                }
                let new_rev = t.end();
                let changed = h.values().flatten().any(|(m, _, _)| *m == rev + 1);
                prop_assert_eq!(new_rev, if changed { rev + 1 } else { rev });
                rev = new_rev;
                if i == compact_at && rev > 1 {
                    b.compact(rev - 1).expect("compact");
                }
                let done = b.commit(None).expect("commit");
                if let Some(c) = done.compact_rev {
                    compact::compact_range(&f.store, 0, c, &compact::CompactorConfig::default())
                        .expect("physical");
                }
            }
            let compacted = f.store.compact_rev();
            // Every key at every readable revision agrees with the model.
            for r in compacted.max(1)..=rev {
                for k in 0u8..8 {
                    let got = f.store
                        .range(&[k], b"", RangeOptions { rev: r, ..Default::default() })
                        .expect("range");
                    let got = got.kvs.first().map(|kv| (kv.create_revision, kv.mod_revision, kv.version, kv.value[0]));
                    prop_assert_eq!(got, model_get(&h, k, r), "key {} at rev {}", k, r);
                }
                let all = f.store
                    .range(&[0], &[8], RangeOptions { rev: r, ..Default::default() })
                    .expect("range");
                let expected = (0u8..8).filter(|k| model_get(&h, *k, r).is_some()).count();
                prop_assert_eq!(all.count as usize, expected);
            }
            if compacted > 1 {
                let below = f.store.range(&[0], b"", RangeOptions { rev: compacted - 1, ..Default::default() });
                prop_assert!(matches!(below, Err(Error::Compacted)));
            }
        }
    }
}

/// The `key` CF has a prefix extractor: lookups of one key use prefix blooms, scans
/// across keys must not. Both are checked with versions spread over several table
/// files and the memtable, where prefix mode would go wrong.
#[test]
fn versions_and_scans_are_right_across_flushed_tables_and_the_memtable() {
    let f = fixture();
    let storage = f.store.storage().clone();
    let keys = ["a", "ab", "b", "b\0", "c", "zz"];
    for round in 1..=3i64 {
        for k in keys {
            f.put(k, &format!("{k}{round}"));
        }
        f.put(&format!("only{round}"), "x");
        if round < 3 {
            storage.flush().expect("flush");
        }
    }
    for k in keys {
        let (v, create, _, version) = f.get_at(k, 0).expect("live");
        assert_eq!(v, format!("{k}3"), "{k:?}");
        assert_eq!(
            version, 3,
            "{k:?}: the previous version was found in every round"
        );
        let (_, first_create, _, _) = f.get_at(k, create).expect("first version");
        assert_eq!(first_create, create);
    }
    let all = f
        .store
        .range(b"\0", b"\0", RangeOptions::default())
        .expect("range");
    let names: Vec<String> = all
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert_eq!(
        names,
        ["a", "ab", "b", "b\0", "c", "only1", "only2", "only3", "zz"]
    );
    let span = f
        .store
        .range(b"ab", b"c", RangeOptions::default())
        .expect("span");
    assert_eq!(span.kvs.len(), 3);
    // A key written for the first time after flushes starts at version 1.
    f.put("new", "n");
    assert_eq!(f.get_at("new", 0).expect("new").3, 1);
    f.delete("b", "c");
    f.put("b", "again");
    assert_eq!(f.get_at("b", 0).expect("recreated").3, 1);
}

/// The same history, compacted logically on one store and also physically on the
/// other, hashes the same; new writes change the hash at the new revision only.
#[test]
fn hash_kv_ignores_the_compactor_and_follows_the_history() {
    let (a, b) = (fixture(), fixture());
    history_compacted_at_8(&a);
    history_compacted_at_8(&b);
    compact_range(&b.store, 0, 8, &CompactorConfig::default()).expect("compact_range");

    let ha = a.store.hash_kv(0).expect("hash a");
    assert_eq!(ha, b.store.hash_kv(0).expect("hash b"));
    assert_eq!((ha.rev, ha.compact_rev), (9, 8));
    assert_eq!(
        a.store.hash_kv(8).expect("at 8"),
        b.store.hash_kv(8).expect("at 8")
    );
    assert_ne!(a.store.hash_kv(8).expect("at 8").hash, ha.hash);

    a.put("k", "later"); // 10
    let later = a.store.hash_kv(0).expect("later");
    assert_ne!(later.hash, ha.hash);
    assert_eq!(a.store.hash_kv(9).expect("at 9"), ha);

    assert!(matches!(a.store.hash_kv(7), Err(Error::Compacted)));
    assert!(matches!(a.store.hash_kv(11), Err(Error::FutureRev)));
}
