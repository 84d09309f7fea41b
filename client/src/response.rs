//! KV responses as plain Rust types.
//!
//! Each mirrors etcd's message field for field (same names), with the header always
//! present and bytes as `Vec<u8>`, so etcd's documentation reads straight onto them.

use revkv_proto::{etcdserverpb as pb, mvccpb};

/// Who answered and at which point of the history (etcd's `ResponseHeader`).
///
/// ```
/// let h = revkv_client::ResponseHeader { revision: 5, ..Default::default() };
/// assert_eq!(h.revision, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseHeader {
    /// ID of the cluster that answered.
    pub cluster_id: u64,
    /// ID of the member that answered.
    pub member_id: u64,
    /// The store's revision when the request was served.
    pub revision: i64,
    /// The member's raft term.
    pub raft_term: u64,
}

impl From<Option<pb::ResponseHeader>> for ResponseHeader {
    fn from(h: Option<pb::ResponseHeader>) -> Self {
        let h = h.unwrap_or_default();
        ResponseHeader {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        }
    }
}

/// One key at one revision (etcd's `mvccpb.KeyValue`).
///
/// ```
/// let kv = revkv_client::KeyValue { key: b"k".to_vec(), version: 1, ..Default::default() };
/// assert_eq!(kv.version, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// Revision of the key's creation (since its last delete).
    pub create_revision: i64,
    /// Revision of the key's last change.
    pub mod_revision: i64,
    /// Number of changes since creation (1 when just created).
    pub version: i64,
    /// The value.
    pub value: Vec<u8>,
    /// Lease the key is attached to (0 = none).
    pub lease: i64,
}

impl From<mvccpb::KeyValue> for KeyValue {
    fn from(kv: mvccpb::KeyValue) -> Self {
        KeyValue {
            key: kv.key,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: kv.value,
            lease: kv.lease,
        }
    }
}

impl From<KeyValue> for mvccpb::KeyValue {
    fn from(kv: KeyValue) -> Self {
        mvccpb::KeyValue {
            key: kv.key,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: kv.value,
            lease: kv.lease,
        }
    }
}

/// Answer to a get (etcd's `RangeResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// use revkv_client::Kv;
/// let r = client.kv().get("k").await?;
/// println!("{} keys at revision {}", r.count, r.header.revision);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetResponse {
    /// Header.
    pub header: ResponseHeader,
    /// The keys found (empty with `count_only`).
    pub kvs: Vec<KeyValue>,
    /// More keys matched than the limit let through.
    pub more: bool,
    /// Number of keys in the range.
    pub count: i64,
}

impl From<pb::RangeResponse> for GetResponse {
    fn from(r: pb::RangeResponse) -> Self {
        GetResponse {
            header: r.header.into(),
            kvs: r.kvs.into_iter().map(Into::into).collect(),
            more: r.more,
            count: r.count,
        }
    }
}

/// Answer to a put (etcd's `PutResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// use revkv_client::{Kv, PutOptions};
/// let r = client.kv().put_with("k", "v", PutOptions::new().with_prev_kv()).await?;
/// println!("was {:?}", r.prev_kv.map(|kv| kv.value));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutResponse {
    /// Header; its revision is the put's.
    pub header: ResponseHeader,
    /// The previous key-value, when asked for and present.
    pub prev_kv: Option<KeyValue>,
}

impl From<pb::PutResponse> for PutResponse {
    fn from(r: pb::PutResponse) -> Self {
        PutResponse {
            header: r.header.into(),
            prev_kv: r.prev_kv.map(Into::into),
        }
    }
}

/// Answer to a delete (etcd's `DeleteRangeResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// use revkv_client::Kv;
/// let r = client.kv().delete("k").await?;
/// println!("{} deleted", r.deleted);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteResponse {
    /// Header.
    pub header: ResponseHeader,
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted key-values, when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

impl From<pb::DeleteRangeResponse> for DeleteResponse {
    fn from(r: pb::DeleteRangeResponse) -> Self {
        DeleteResponse {
            header: r.header.into(),
            deleted: r.deleted,
            prev_kvs: r.prev_kvs.into_iter().map(Into::into).collect(),
        }
    }
}

/// Answer to a compaction (etcd's `CompactionResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// use revkv_client::Kv;
/// let r = client.kv().compact(5, false).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactResponse {
    /// Header.
    pub header: ResponseHeader,
}

impl From<pb::CompactionResponse> for CompactResponse {
    fn from(r: pb::CompactionResponse) -> Self {
        CompactResponse {
            header: r.header.into(),
        }
    }
}
