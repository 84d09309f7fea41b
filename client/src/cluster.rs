//! [`ClusterClient`]: membership calls, with etcd's `Member` as a plain type.

use std::sync::Arc;

use revkv_proto::etcdserverpb::{self as pb, cluster_client::ClusterClient as RawCluster};

use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::response::ResponseHeader;

/// One member of the cluster (etcd's `Member`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// for m in client.cluster().member_list().await?.members {
///     println!("{:x}, {}, {:?}, {:?}, {}", m.id, m.name, m.peer_urls, m.client_urls, m.is_learner);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    /// Member ID.
    pub id: u64,
    /// Name; empty while the member has not started.
    pub name: String,
    /// URLs the peers reach it on.
    pub peer_urls: Vec<String>,
    /// URLs clients reach it on; empty while the member has not started.
    pub client_urls: Vec<String>,
    /// A non-voting learner.
    pub is_learner: bool,
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Member {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
            is_learner: m.is_learner,
        }
    }
}

fn members(ms: Vec<pb::Member>) -> Vec<Member> {
    ms.into_iter().map(Into::into).collect()
}

/// Answer to a member listing (etcd's `MemberListResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.cluster().member_list().await?;
/// println!("{} members", r.members.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberListResponse {
    /// Header.
    pub header: ResponseHeader,
    /// Every member.
    pub members: Vec<Member>,
}

/// Answer to a member add (etcd's `MemberAddResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.cluster().member_add(["http://10.0.0.4:2380"], true).await?;
/// println!("added {:x}", r.member.id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberAddResponse {
    /// Header.
    pub header: ResponseHeader,
    /// The member added.
    pub member: Member,
    /// Every member, the new one included.
    pub members: Vec<Member>,
}

/// Answer to a member remove (etcd's `MemberRemoveResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.cluster().member_remove(0x1234).await?;
/// println!("{} left", r.members.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberRemoveResponse {
    /// Header.
    pub header: ResponseHeader,
    /// The remaining members.
    pub members: Vec<Member>,
}

/// Answer to a member update (etcd's `MemberUpdateResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.cluster().member_update(0x1234, ["http://10.0.0.4:2380"]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberUpdateResponse {
    /// Header.
    pub header: ResponseHeader,
    /// Every member.
    pub members: Vec<Member>,
}

/// Answer to a learner promotion (etcd's `MemberPromoteResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.cluster().member_promote(0x1234).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberPromoteResponse {
    /// Header.
    pub header: ResponseHeader,
    /// Every member.
    pub members: Vec<Member>,
}

/// The cluster handle of a [`crate::Client`].
///
/// ```no_run
/// # async fn f() -> revkv_client::Result<()> {
/// let client = revkv_client::Client::connect(["127.0.0.1:2379"], Default::default()).await?;
/// for m in client.cluster().member_list().await?.members {
///     println!("{:x}, {}, {}", m.id, m.name, m.client_urls.join(","));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClusterClient {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient").finish_non_exhaustive()
    }
}

impl ClusterClient {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        ClusterClient { pool }
    }

    /// Every member.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let n = client.cluster().member_list().await?.members.len();
    /// # Ok(()) }
    /// ```
    pub async fn member_list(&self) -> Result<MemberListResponse> {
        let req = pb::MemberListRequest {
            linearizable: false,
        };
        let r = self
            .pool
            .call(true, |ch| async move {
                RawCluster::new(ch).member_list(req).await
            })
            .await?
            .into_inner();
        Ok(MemberListResponse {
            header: r.header.into(),
            members: members(r.members),
        })
    }

    /// Adds a member (a learner if `is_learner`) reachable on `peer_urls`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let added = client.cluster().member_add(["http://127.0.0.1:32380"], false).await?;
    /// println!("added {:x}", added.member.id);
    /// # Ok(()) }
    /// ```
    pub async fn member_add<S: Into<String>>(
        &self,
        peer_urls: impl IntoIterator<Item = S>,
        is_learner: bool,
    ) -> Result<MemberAddResponse> {
        let req = pb::MemberAddRequest {
            peer_ur_ls: peer_urls.into_iter().map(Into::into).collect(),
            is_learner,
        };
        let r = self
            .pool
            .call(false, |ch| {
                let req = req.clone();
                async move { RawCluster::new(ch).member_add(req).await }
            })
            .await?
            .into_inner();
        Ok(MemberAddResponse {
            header: r.header.into(),
            member: r
                .member
                .map(Into::into)
                .ok_or(Error::UnexpectedResponse("member add without the member"))?,
            members: members(r.members),
        })
    }

    /// Removes member `id`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// client.cluster().member_remove(0x8e9e05c52164694d).await?;
    /// # Ok(()) }
    /// ```
    pub async fn member_remove(&self, id: u64) -> Result<MemberRemoveResponse> {
        let req = pb::MemberRemoveRequest { id };
        let r = self
            .pool
            .call(false, |ch| async move {
                RawCluster::new(ch).member_remove(req).await
            })
            .await?
            .into_inner();
        Ok(MemberRemoveResponse {
            header: r.header.into(),
            members: members(r.members),
        })
    }

    /// Changes the peer URLs of member `id`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// client.cluster().member_update(0x8e9e05c52164694d, ["http://10.0.0.1:2380"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn member_update<S: Into<String>>(
        &self,
        id: u64,
        peer_urls: impl IntoIterator<Item = S>,
    ) -> Result<MemberUpdateResponse> {
        let req = pb::MemberUpdateRequest {
            id,
            peer_ur_ls: peer_urls.into_iter().map(Into::into).collect(),
        };
        let r = self
            .pool
            .call(false, |ch| {
                let req = req.clone();
                async move { RawCluster::new(ch).member_update(req).await }
            })
            .await?
            .into_inner();
        Ok(MemberUpdateResponse {
            header: r.header.into(),
            members: members(r.members),
        })
    }

    /// Promotes learner `id` to a voting member.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// client.cluster().member_promote(0x8e9e05c52164694d).await?;
    /// # Ok(()) }
    /// ```
    pub async fn member_promote(&self, id: u64) -> Result<MemberPromoteResponse> {
        let req = pb::MemberPromoteRequest { id };
        let r = self
            .pool
            .call(false, |ch| async move {
                RawCluster::new(ch).member_promote(req).await
            })
            .await?
            .into_inner();
        Ok(MemberPromoteResponse {
            header: r.header.into(),
            members: members(r.members),
        })
    }
}
