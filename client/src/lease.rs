//! [`LeaseClient`]: grant, revoke, inspect and keep alive leases.

use std::sync::Arc;

use revkv_proto::etcdserverpb::{self as pb, lease_client::LeaseClient as RawLease};

use crate::error::Result;
use crate::keepalive::{keep_alive_once, KeepAlive};
use crate::pool::Pool;
use crate::response::ResponseHeader;

/// Answer to a grant (etcd's `LeaseGrantResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.lease().grant(10).await?;
/// println!("lease {:016x} granted with TTL({}s)", r.id, r.ttl);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseGrantResponse {
    /// Header.
    pub header: ResponseHeader,
    /// The lease ID.
    pub id: i64,
    /// The TTL the server granted, in seconds.
    pub ttl: i64,
    /// An error text, if the server set one.
    pub error: String,
}

/// Answer to a revoke (etcd's `LeaseRevokeResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.lease().revoke(0x1234).await?;
/// println!("revoked at revision {}", r.header.revision);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseRevokeResponse {
    /// Header.
    pub header: ResponseHeader,
}

/// Answer to one keep-alive (etcd's `LeaseKeepAliveResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.lease().keep_alive_once(0x1234).await?;
/// println!("lease {:016x} keepalived with TTL({})", r.id, r.ttl);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseKeepAliveResponse {
    /// Header.
    pub header: ResponseHeader,
    /// The lease ID.
    pub id: i64,
    /// The renewed TTL in seconds; `<= 0` if the lease no longer exists.
    pub ttl: i64,
}

/// Answer to a time-to-live query (etcd's `LeaseTimeToLiveResponse`).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.lease().time_to_live(0x1234, true).await?;
/// println!("granted {}s, {}s left", r.granted_ttl, r.ttl);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseTimeToLiveResponse {
    /// Header.
    pub header: ResponseHeader,
    /// The lease ID.
    pub id: i64,
    /// Remaining TTL in seconds; -1 if the lease does not exist.
    pub ttl: i64,
    /// The TTL granted at creation or last renewal.
    pub granted_ttl: i64,
    /// Keys attached to the lease, when asked for.
    pub keys: Vec<Vec<u8>>,
}

/// Answer to a lease listing (etcd's `LeaseLeasesResponse`, IDs flattened).
///
/// ```
/// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
/// let r = client.lease().leases().await?;
/// println!("{} leases", r.leases.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseLeasesResponse {
    /// Header.
    pub header: ResponseHeader,
    /// IDs of every lease.
    pub leases: Vec<i64>,
}

impl From<pb::LeaseKeepAliveResponse> for LeaseKeepAliveResponse {
    fn from(r: pb::LeaseKeepAliveResponse) -> Self {
        LeaseKeepAliveResponse {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
        }
    }
}

/// The lease handle of a [`crate::Client`].
///
/// ```no_run
/// use revkv_client::{Client, Kv, PutOptions};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379"], Default::default()).await?;
/// let lease = client.lease().grant(10).await?;
/// client.kv().put_with("session", "alive", PutOptions::new().with_lease(lease.id)).await?;
/// let mut keep = client.lease().keep_alive(lease.id).await?;
/// while let Some(resp) = keep.next().await {
///     println!("lease {:016x} keepalived with TTL({})", resp?.id, keep.ttl());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LeaseClient {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for LeaseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseClient").finish_non_exhaustive()
    }
}

impl LeaseClient {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        LeaseClient { pool }
    }

    /// Grants a lease of `ttl` seconds with a server-chosen ID.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let lease = client.lease().grant(30).await?;
    /// println!("lease {:016x} granted with TTL({}s)", lease.id, lease.ttl);
    /// # Ok(()) }
    /// ```
    pub async fn grant(&self, ttl: i64) -> Result<LeaseGrantResponse> {
        self.grant_with_id(ttl, 0).await
    }

    /// Grants a lease of `ttl` seconds with ID `id` (0 = server-chosen).
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let lease = client.lease().grant_with_id(30, 0x1234).await?;
    /// assert_eq!(lease.id, 0x1234);
    /// # Ok(()) }
    /// ```
    pub async fn grant_with_id(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        let req = pb::LeaseGrantRequest { ttl, id };
        let r = self
            .pool
            .call(false, |ch| async move {
                RawLease::new(ch).lease_grant(req).await
            })
            .await?
            .into_inner();
        Ok(LeaseGrantResponse {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
            error: r.error,
        })
    }

    /// Revokes lease `id`, deleting its keys.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// client.lease().revoke(0x1234).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        let req = pb::LeaseRevokeRequest { id };
        let r = self
            .pool
            // Revoking twice answers "lease not found" the second time, never revokes
            // more: etcd's client counts it repeatable.
            .call(true, |ch| async move {
                RawLease::new(ch).lease_revoke(req).await
            })
            .await?
            .into_inner();
        Ok(LeaseRevokeResponse {
            header: r.header.into(),
        })
    }

    /// Remaining and granted TTL of lease `id`, with its keys if `with_keys`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let ttl = client.lease().time_to_live(0x1234, true).await?;
    /// println!("{}s of {}s left, {} keys", ttl.ttl, ttl.granted_ttl, ttl.keys.len());
    /// # Ok(()) }
    /// ```
    pub async fn time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseTimeToLiveResponse> {
        let req = pb::LeaseTimeToLiveRequest {
            id,
            keys: with_keys,
        };
        let r = self
            .pool
            .call(true, |ch| async move {
                RawLease::new(ch).lease_time_to_live(req).await
            })
            .await?
            .into_inner();
        Ok(LeaseTimeToLiveResponse {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
            granted_ttl: r.granted_ttl,
            keys: r.keys,
        })
    }

    /// Every lease's ID.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// for id in client.lease().leases().await?.leases {
    ///     println!("{id:016x}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leases(&self) -> Result<LeaseLeasesResponse> {
        let r = self
            .pool
            .call(true, |ch| async move {
                RawLease::new(ch)
                    .lease_leases(pb::LeaseLeasesRequest {})
                    .await
            })
            .await?
            .into_inner();
        Ok(LeaseLeasesResponse {
            header: r.header.into(),
            leases: r.leases.into_iter().map(|l| l.id).collect(),
        })
    }

    /// Renews lease `id` once. A lease that no longer exists answers `NotFound` /
    /// `etcdserver: requested lease not found`, as etcd's `KeepAliveOnce` does.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let resp = client.lease().keep_alive_once(0x1234).await?;
    /// println!("TTL {}", resp.ttl);
    /// # Ok(()) }
    /// ```
    pub async fn keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        keep_alive_once(&self.pool, id).await
    }

    /// Keeps lease `id` alive in the background (renewing every TTL/3, as etcd's
    /// client does) until the returned [`KeepAlive`] is dropped. The first renewal is
    /// sent at once.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let mut keep = client.lease().keep_alive(0x1234).await?;
    /// let first = keep.next().await.expect("a first renewal")?;
    /// drop(keep); // renewals stop; the lease expires after its TTL
    /// # Ok(()) }
    /// ```
    pub async fn keep_alive(&self, id: i64) -> Result<KeepAlive> {
        KeepAlive::start(self.pool.clone(), id).await
    }
}
