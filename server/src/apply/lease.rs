//! LeaseGrant and LeaseRevoke as the applier executes them.
//!
//! Both write the lease record into the apply batch, so a lease and the keys it owns
//! change in the same RocksDB write as the applied index. Neither result depends on a
//! clock: the lessor's deadline bookkeeping happens beside, not inside, the result.

use revkv_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, ResponseHeader,
};

use crate::lease::{self, Lessor};
use crate::mvcc::{self, ApplyBatch, WriteTxn};
use crate::Error;

pub fn grant(
    batch: &mut ApplyBatch<'_>,
    lessor: &Lessor,
    req: &LeaseGrantRequest,
) -> Result<LeaseGrantResponse, Error> {
    lessor.grant(batch.write_batch(), req.id, req.ttl)?;
    Ok(LeaseGrantResponse {
        header: Some(ResponseHeader {
            revision: batch.rev(),
            ..Default::default()
        }),
        id: req.id,
        ttl: req.ttl,
        error: String::new(),
    })
}

/// Deletes every key attached to the lease in **one** revision (one request, so
/// watchers get all the DELETE events together), in key order so every member writes
/// the same sub-revisions, then drops the lease.
pub fn revoke(
    batch: &mut ApplyBatch<'_>,
    lessor: &Lessor,
    req: &LeaseRevokeRequest,
) -> Result<LeaseRevokeResponse, Error> {
    if !crate::apply::Leases::exists(lessor, req.id) {
        return Err(lease::Error::NotFound.into());
    }
    let mut t = batch.txn();
    let result = delete_attached(&mut t, req.id);
    let rev = t.end();
    result?;
    lessor.revoke(batch.write_batch(), req.id)?;
    Ok(LeaseRevokeResponse {
        header: Some(ResponseHeader {
            revision: rev,
            ..Default::default()
        }),
    })
}

fn delete_attached(t: &mut WriteTxn<'_, '_>, id: i64) -> Result<(), mvcc::Error> {
    for key in t.attached_keys(id)? {
        // Only a key whose live version still carries this lease: the attachment
        // records follow every put and delete; this guards against one that outlived
        // its key.
        if t.get(&key)?.is_some_and(|kv| kv.lease == id) {
            t.delete_range(&key, &[])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use revkv_proto::mvccpb::event::EventType;

    use super::*;
    use crate::apply::kv;
    use crate::lease::LessorConfig;
    use crate::mvcc::{KvStore, RangeOptions};
    use crate::storage::{Storage, StorageConfig};
    use revkv_proto::etcdserverpb::{DeleteRangeRequest, PutRequest};

    fn open(dir: &std::path::Path) -> (Arc<KvStore>, Lessor) {
        let storage = Storage::open(dir, &StorageConfig::default()).expect("storage");
        let store = KvStore::open(storage.clone()).expect("store");
        let lessor = Lessor::open(storage, LessorConfig::default()).expect("lessor");
        (store, lessor)
    }

    fn put(
        batch: &mut ApplyBatch<'_>,
        lessor: &Lessor,
        key: &str,
        lease: i64,
    ) -> Result<i64, Error> {
        let req = PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        };
        let mut t = batch.txn();
        let r = kv::check_put(&t, lessor, &req).and_then(|()| kv::put(&mut t, &req));
        t.end();
        Ok(r?.header.map_or(0, |h| h.revision))
    }

    fn live_keys(store: &KvStore) -> Vec<Vec<u8>> {
        store
            .range(b"\0", b"\0", RangeOptions::default())
            .expect("range")
            .kvs
            .into_iter()
            .map(|kv| kv.key)
            .collect()
    }

    fn grant_req(id: i64, ttl: i64) -> LeaseGrantRequest {
        LeaseGrantRequest { id, ttl }
    }

    #[tokio::test(start_paused = true)]
    async fn revoke_deletes_every_attached_key_in_one_revision() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, lessor) = open(dir.path());
        let mut b = ApplyBatch::new(&store);
        let g = grant(&mut b, &lessor, &grant_req(5, 10)).expect("grant");
        assert_eq!(
            (g.id, g.ttl, g.header.map(|h| h.revision)),
            (5, 10, Some(1))
        );
        for k in ["c", "a", "b"] {
            put(&mut b, &lessor, k, 5).expect("put");
        }
        put(&mut b, &lessor, "free", 0).expect("put");
        let c = b.commit(Some(1)).expect("commit");
        assert_eq!(c.rev, 5);
        assert_eq!(lessor.attached_keys(5).expect("keys"), [b"a", b"b", b"c"]);

        let mut b = ApplyBatch::new(&store);
        let r = revoke(&mut b, &lessor, &LeaseRevokeRequest { id: 5 }).expect("revoke");
        assert_eq!(r.header.map(|h| h.revision), Some(6));
        let c = b.commit(Some(2)).expect("commit");
        let deletes: Vec<(Vec<u8>, i64)> = c
            .events
            .iter()
            .filter(|e| e.r#type == EventType::Delete as i32)
            .filter_map(|e| e.kv.as_ref().map(|kv| (kv.key.clone(), kv.mod_revision)))
            .collect();
        assert_eq!(
            deletes,
            vec![(b"a".to_vec(), 6), (b"b".to_vec(), 6), (b"c".to_vec(), 6)]
        );
        assert_eq!(live_keys(&store), [b"free".to_vec()]);
        assert!(lessor.attached_keys(5).expect("keys").is_empty());
        assert!(!crate::apply::Leases::exists(&lessor, 5));

        let mut b = ApplyBatch::new(&store);
        assert!(matches!(
            revoke(&mut b, &lessor, &LeaseRevokeRequest { id: 5 }),
            Err(Error::Lease(lease::Error::NotFound))
        ));
        assert!(matches!(
            put(&mut b, &lessor, "x", 5),
            Err(Error::Apply(crate::apply::Error::LeaseNotFound))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn revoke_spares_keys_that_left_the_lease() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, lessor) = open(dir.path());
        let mut b = ApplyBatch::new(&store);
        grant(&mut b, &lessor, &grant_req(1, 10)).expect("grant");
        grant(&mut b, &lessor, &grant_req(2, 10)).expect("grant");
        for k in ["moved", "unleased", "deleted", "stays"] {
            put(&mut b, &lessor, k, 1).expect("put");
        }
        put(&mut b, &lessor, "moved", 2).expect("move to lease 2");
        put(&mut b, &lessor, "unleased", 0).expect("drop the lease");
        let mut t = b.txn();
        kv::delete_range(
            &mut t,
            &DeleteRangeRequest {
                key: b"deleted".to_vec(),
                ..Default::default()
            },
        )
        .expect("delete");
        t.end();
        b.commit(Some(1)).expect("commit");
        // Re-created without a lease after the delete: not the lease's any more.
        let mut b = ApplyBatch::new(&store);
        put(&mut b, &lessor, "deleted", 0).expect("re-create");
        b.commit(Some(2)).expect("commit");
        assert_eq!(lessor.attached_keys(1).expect("keys"), [b"stays".to_vec()]);

        let mut b = ApplyBatch::new(&store);
        revoke(&mut b, &lessor, &LeaseRevokeRequest { id: 1 }).expect("revoke");
        b.commit(Some(3)).expect("commit");
        assert_eq!(
            live_keys(&store),
            [b"deleted".to_vec(), b"moved".to_vec(), b"unleased".to_vec()]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn grant_and_revoke_in_one_batch_and_duplicate_grants() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, lessor) = open(dir.path());
        let mut b = ApplyBatch::new(&store);
        grant(&mut b, &lessor, &grant_req(9, 10)).expect("grant");
        assert!(matches!(
            grant(&mut b, &lessor, &grant_req(9, 20)),
            Err(Error::Lease(lease::Error::Exists))
        ));
        put(&mut b, &lessor, "k", 9).expect("put in the same batch sees the grant");
        let r = revoke(&mut b, &lessor, &LeaseRevokeRequest { id: 9 }).expect("revoke");
        assert_eq!(r.header.map(|h| h.revision), Some(3));
        b.commit(Some(1)).expect("commit");
        assert!(live_keys(&store).is_empty());
        // Nothing of the lease reached disk: a restart restores no lease.
        drop(lessor);
        let lessor =
            Lessor::open(store.storage().clone(), LessorConfig::default()).expect("reopen");
        assert!(lessor.is_empty());
        assert!(lessor.attached_keys(9).expect("keys").is_empty());
    }
}
