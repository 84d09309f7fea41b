//! [`MaintenanceClient`]: status, alarms, defragmentation, hashes, snapshots and
//! leader moves, to any endpoint or pinned to one with [`MaintenanceClient::at`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use revkv_proto::etcdserverpb::{
    self as pb, alarm_request::AlarmAction as RawAction,
    maintenance_client::MaintenanceClient as RawMaintenance,
};

use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::response::ResponseHeader;

/// Answer to a status request (etcd's `StatusResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let s = client.maintenance().status().await?;
/// println!("{:x} leader {:x} term {} index {}", s.header.member_id, s.leader, s.raft_term, s.raft_index);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusResponse {
    /// Header; `member_id` says which member answered.
    pub header: ResponseHeader,
    /// Server version of the member.
    pub version: String,
    /// Physically allocated backend size in bytes.
    pub db_size: i64,
    /// Member ID of the leader as this member knows it (0 = none).
    pub leader: u64,
    /// Raft committed index.
    pub raft_index: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Raft applied index.
    pub raft_applied_index: u64,
    /// Alarm and health messages, e.g. `etcdserver: no leader`.
    pub errors: Vec<String>,
    /// Logically used backend size in bytes.
    pub db_size_in_use: i64,
    /// The member is a learner.
    pub is_learner: bool,
}

/// Answer to a defragmentation (etcd's `DefragmentResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.maintenance().defragment().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DefragmentResponse {
    /// Header.
    pub header: ResponseHeader,
}

/// Answer to a leader move (etcd's `MoveLeaderResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.maintenance().move_leader(0x1234).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MoveLeaderResponse {
    /// Header.
    pub header: ResponseHeader,
}

/// Kind of alarm (etcd's `AlarmType`).
///
/// ```
/// let a = revkv_client::AlarmMember { member_id: 1, alarm: revkv_client::AlarmType::NoSpace };
/// assert_eq!(a.alarm, revkv_client::AlarmType::NoSpace);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlarmType {
    /// No alarm; in a request, "any alarm".
    #[default]
    None,
    /// Space quota exhausted.
    NoSpace,
    /// Store corruption detected.
    Corrupt,
}

impl AlarmType {
    fn from_wire(v: i32) -> Self {
        match pb::AlarmType::try_from(v) {
            Ok(pb::AlarmType::Nospace) => AlarmType::NoSpace,
            Ok(pb::AlarmType::Corrupt) => AlarmType::Corrupt,
            _ => AlarmType::None,
        }
    }
    fn to_wire(self) -> i32 {
        let t = match self {
            AlarmType::None => pb::AlarmType::None,
            AlarmType::NoSpace => pb::AlarmType::Nospace,
            AlarmType::Corrupt => pb::AlarmType::Corrupt,
        };
        t as i32
    }
}

/// What an alarm request does (etcd's `AlarmRequest.AlarmAction`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// use revkv_client::{AlarmAction, AlarmType};
/// client.maintenance().alarm(AlarmAction::Deactivate, 0, AlarmType::NoSpace).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlarmAction {
    /// List alarms.
    #[default]
    Get,
    /// Raise an alarm.
    Activate,
    /// Clear an alarm.
    Deactivate,
}

/// One raised alarm (etcd's `AlarmMember`).
///
/// ```
/// let a = revkv_client::AlarmMember::default();
/// assert_eq!(a.alarm, revkv_client::AlarmType::None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlarmMember {
    /// Member the alarm is raised on.
    pub member_id: u64,
    /// The alarm.
    pub alarm: AlarmType,
}

/// Answer to an alarm request (etcd's `AlarmResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// use revkv_client::{AlarmAction, AlarmType};
/// let r = client.maintenance().alarm(AlarmAction::Get, 0, AlarmType::None).await?;
/// println!("{} alarms", r.alarms.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlarmResponse {
    /// Header.
    pub header: ResponseHeader,
    /// Alarms raised (for `Get`) or affected.
    pub alarms: Vec<AlarmMember>,
}

/// Answer to a KV hash (etcd's `HashKVResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.maintenance().hash_kv(0).await?;
/// println!("{}", r.hash);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashKvResponse {
    /// Header.
    pub header: ResponseHeader,
    /// Hash of the keys and values up to the requested revision.
    pub hash: u32,
    /// Compact revision the hash started from.
    pub compact_revision: i64,
}

/// One chunk of a snapshot (etcd's `SnapshotResponse`).
///
/// ```
/// let chunk = revkv_client::SnapshotResponse { remaining_bytes: 0, blob: vec![1, 2], ..Default::default() };
/// assert_eq!(chunk.blob.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotResponse {
    /// Header.
    pub header: ResponseHeader,
    /// Bytes still to come after this chunk.
    pub remaining_bytes: u64,
    /// The chunk.
    pub blob: Vec<u8>,
}

/// A snapshot as a stream of chunks; concatenate the blobs to get the file.
///
/// ```no_run
/// use futures::StreamExt;
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let mut snapshot = client.maintenance().snapshot().await?;
/// let mut file = Vec::new();
/// while let Some(chunk) = snapshot.next().await {
///     file.extend_from_slice(&chunk?.blob);
/// }
/// # Ok(()) }
/// ```
pub struct SnapshotStream {
    endpoint: String,
    inner: tonic::Streaming<pb::SnapshotResponse>,
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SnapshotStream {
    /// The endpoint the snapshot comes from.
    ///
    /// ```no_run
    /// # fn f(s: revkv_client::SnapshotStream) { println!("{}", s.endpoint()); }
    /// ```
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl futures::Stream for SnapshotStream {
    type Item = Result<SnapshotResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let endpoint = self.endpoint.clone();
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|r| {
                r.map(|r| SnapshotResponse {
                    header: r.header.into(),
                    remaining_bytes: r.remaining_bytes,
                    blob: r.blob,
                })
                .map_err(|s| Error::from_call(&endpoint, s))
            })
        })
    }
}

/// The maintenance handle of a [`crate::Client`].
///
/// Calls go to any endpoint (with failover) unless the handle is pinned to one with
/// [`MaintenanceClient::at`]: that is how etcdctl's `endpoint status` asks each member.
///
/// ```no_run
/// # async fn f() -> revkv_client::Result<()> {
/// let client = revkv_client::Client::connect(["127.0.0.1:2379", "127.0.0.1:22379"], Default::default()).await?;
/// for ep in client.endpoints() {
///     let s = client.maintenance().status_of(&ep).await?;
///     println!("{ep}: member {:x}, leader {:x}", s.header.member_id, s.leader);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MaintenanceClient {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for MaintenanceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaintenanceClient")
            .field("endpoints", &self.pool.endpoints())
            .finish()
    }
}

impl MaintenanceClient {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        MaintenanceClient { pool }
    }

    /// This handle pinned to `endpoint` (`host:port` or a URL, need not be one of
    /// the client's): every call goes there and nowhere else.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let one = client.maintenance().at("127.0.0.1:22379")?;
    /// one.defragment().await?;
    /// # Ok(()) }
    /// ```
    pub fn at(&self, endpoint: &str) -> Result<MaintenanceClient> {
        Ok(MaintenanceClient {
            pool: Arc::new(self.pool.pinned(endpoint)?),
        })
    }

    /// The status of the member at `endpoint` (shorthand for `at(endpoint)?.status()`).
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let s = client.maintenance().status_of("127.0.0.1:2379").await?;
    /// println!("raft index {}", s.raft_index);
    /// # Ok(()) }
    /// ```
    pub async fn status_of(&self, endpoint: &str) -> Result<StatusResponse> {
        self.at(endpoint)?.status().await
    }

    /// The status of the member that answers.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let s = client.maintenance().status().await?;
    /// println!("version {}, leader {:x}", s.version, s.leader);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<StatusResponse> {
        let r = self
            .pool
            .call(true, |ch| async move {
                RawMaintenance::new(ch).status(pb::StatusRequest {}).await
            })
            .await?
            .into_inner();
        Ok(StatusResponse {
            header: r.header.into(),
            version: r.version,
            db_size: r.db_size,
            leader: r.leader,
            raft_index: r.raft_index,
            raft_term: r.raft_term,
            raft_applied_index: r.raft_applied_index,
            errors: r.errors,
            db_size_in_use: r.db_size_in_use,
            is_learner: r.is_learner,
        })
    }

    /// Defragments the backend of the member that answers (pin with [`Self::at`]).
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// client.maintenance().at("127.0.0.1:2379")?.defragment().await?;
    /// # Ok(()) }
    /// ```
    pub async fn defragment(&self) -> Result<DefragmentResponse> {
        let r = self
            .pool
            .call(false, |ch| async move {
                RawMaintenance::new(ch)
                    .defragment(pb::DefragmentRequest {})
                    .await
            })
            .await?
            .into_inner();
        Ok(DefragmentResponse {
            header: r.header.into(),
        })
    }

    /// Lists, raises or clears alarms (`member_id` 0 = every member).
    ///
    /// ```no_run
    /// use revkv_client::{AlarmAction, AlarmType};
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let raised = client.maintenance().alarm(AlarmAction::Get, 0, AlarmType::None).await?;
    /// for a in raised.alarms {
    ///     println!("memberID:{} alarm:{:?}", a.member_id, a.alarm);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn alarm(
        &self,
        action: AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<AlarmResponse> {
        let req = pb::AlarmRequest {
            action: match action {
                AlarmAction::Get => RawAction::Get,
                AlarmAction::Activate => RawAction::Activate,
                AlarmAction::Deactivate => RawAction::Deactivate,
            } as i32,
            member_id,
            alarm: alarm.to_wire(),
        };
        let r = self
            .pool
            .call(action == AlarmAction::Get, |ch| async move {
                RawMaintenance::new(ch).alarm(req).await
            })
            .await?
            .into_inner();
        Ok(AlarmResponse {
            header: r.header.into(),
            alarms: r
                .alarms
                .into_iter()
                .map(|a| AlarmMember {
                    member_id: a.member_id,
                    alarm: AlarmType::from_wire(a.alarm),
                })
                .collect(),
        })
    }

    /// The hash of the keys and values up to `revision` (0 = latest) on the member
    /// that answers.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let h = client.maintenance().at("127.0.0.1:2379")?.hash_kv(0).await?;
    /// println!("{} (compacted at {})", h.hash, h.compact_revision);
    /// # Ok(()) }
    /// ```
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse> {
        let req = pb::HashKvRequest { revision };
        let r = self
            .pool
            .call(true, |ch| async move {
                RawMaintenance::new(ch).hash_kv(req).await
            })
            .await?
            .into_inner();
        Ok(HashKvResponse {
            header: r.header.into(),
            hash: r.hash,
            compact_revision: r.compact_revision,
        })
    }

    /// Streams a snapshot of the backend of the member that answers.
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let mut s = client.maintenance().at("127.0.0.1:2379")?.snapshot().await?;
    /// while let Some(chunk) = s.next().await {
    ///     let chunk = chunk?;
    ///     println!("{} bytes, {} to go", chunk.blob.len(), chunk.remaining_bytes);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn snapshot(&self) -> Result<SnapshotStream> {
        let (endpoint, inner) = self
            .pool
            .open(None, |ch| async move {
                RawMaintenance::new(ch)
                    .snapshot(pb::SnapshotRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        Ok(SnapshotStream { endpoint, inner })
    }

    /// Asks the leader (the handle must reach it, see [`Self::at`]) to hand
    /// leadership to member `target_id`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// client.maintenance().at("127.0.0.1:2379")?.move_leader(0x8e9e05c52164694d).await?;
    /// # Ok(()) }
    /// ```
    pub async fn move_leader(&self, target_id: u64) -> Result<MoveLeaderResponse> {
        let req = pb::MoveLeaderRequest { target_id };
        let r = self
            .pool
            .call(false, |ch| async move {
                RawMaintenance::new(ch).move_leader(req).await
            })
            .await?
            .into_inner();
        Ok(MoveLeaderResponse {
            header: r.header.into(),
        })
    }
}
