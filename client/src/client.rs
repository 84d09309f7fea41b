//! [`Client`]: the connection to a cluster, handing out one handle per etcd service.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::cluster::ClusterClient;
use crate::error::Result;
use crate::kv_client::KvClient;
use crate::lease::LeaseClient;
use crate::maintenance::MaintenanceClient;
use crate::pool::Pool;
use crate::watch::WatchClient;

/// How a [`Client`] connects, with etcd's `clientv3.Config` fields.
///
/// ```
/// use std::time::Duration;
/// use revkv_client::ConnectOptions;
///
/// let options = ConnectOptions::new()
///     .with_dial_timeout(Duration::from_secs(5))
///     .with_keep_alive(Duration::from_secs(2), Duration::from_secs(6))
///     .with_request_timeout(Duration::from_secs(5))
///     .with_auto_sync_interval(Duration::from_secs(30));
/// assert_eq!(options.dial_timeout, Duration::from_secs(5));
/// assert_eq!(ConnectOptions::default().dial_timeout, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Longest a connection attempt to one endpoint may take (etcd's `DialTimeout`).
    pub dial_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings (etcd's `DialKeepAliveTime`); `None` = off.
    pub keep_alive_time: Option<Duration>,
    /// How long a ping may go unanswered before the connection is dropped (etcd's
    /// `DialKeepAliveTimeout`).
    pub keep_alive_timeout: Duration,
    /// Ping even when no call or stream is open (etcd's `PermitWithoutStream`).
    pub permit_without_stream: bool,
    /// Deadline of each unary call, failover included; `None` = none.
    pub request_timeout: Option<Duration>,
    /// Refresh the endpoint list from the member list this often (etcd's
    /// `AutoSyncInterval`); `None` = never.
    pub auto_sync_interval: Option<Duration>,
    /// TLS for `https://` endpoints; `None` = `https://` endpoints cannot be dialed.
    pub tls: Option<crate::TlsOptions>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            dial_timeout: Duration::from_secs(2),
            keep_alive_time: None,
            keep_alive_timeout: Duration::from_secs(20),
            permit_without_stream: false,
            request_timeout: None,
            auto_sync_interval: None,
            tls: None,
        }
    }
}

impl ConnectOptions {
    /// etcd's defaults: 2 s dial timeout, no keep-alive, no request timeout, no sync.
    ///
    /// ```
    /// let options = revkv_client::ConnectOptions::new();
    /// assert!(options.request_timeout.is_none());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the dial timeout.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = revkv_client::ConnectOptions::new().with_dial_timeout(Duration::from_secs(1));
    /// assert_eq!(o.dial_timeout, Duration::from_secs(1));
    /// ```
    pub fn with_dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    /// Pings every `time`, dropping a connection whose ping goes unanswered for
    /// `timeout` (etcdctl's `--keepalive-time` / `--keepalive-timeout`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = revkv_client::ConnectOptions::new()
    ///     .with_keep_alive(Duration::from_secs(2), Duration::from_secs(6));
    /// assert_eq!(o.keep_alive_time, Some(Duration::from_secs(2)));
    /// ```
    pub fn with_keep_alive(mut self, time: Duration, timeout: Duration) -> Self {
        self.keep_alive_time = Some(time);
        self.keep_alive_timeout = timeout;
        self
    }

    /// Pings also while no call is open.
    ///
    /// ```
    /// let o = revkv_client::ConnectOptions::new().with_permit_without_stream(true);
    /// assert!(o.permit_without_stream);
    /// ```
    pub fn with_permit_without_stream(mut self, permit: bool) -> Self {
        self.permit_without_stream = permit;
        self
    }

    /// Bounds every unary call (etcdctl's `--command-timeout`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = revkv_client::ConnectOptions::new().with_request_timeout(Duration::from_secs(5));
    /// assert_eq!(o.request_timeout, Some(Duration::from_secs(5)));
    /// ```
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Syncs the endpoint list from the member list every `interval`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = revkv_client::ConnectOptions::new().with_auto_sync_interval(Duration::from_secs(60));
    /// assert_eq!(o.auto_sync_interval, Some(Duration::from_secs(60)));
    /// ```
    pub fn with_auto_sync_interval(mut self, interval: Duration) -> Self {
        self.auto_sync_interval = Some(interval);
        self
    }

    /// Sets the TLS settings for `https://` endpoints.
    ///
    /// ```
    /// let tls = revkv_client::TlsOptions::new().with_ca_file("ca.pem");
    /// let o = revkv_client::ConnectOptions::new().with_tls(tls);
    /// assert!(o.tls.is_some());
    /// ```
    pub fn with_tls(mut self, tls: crate::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A connection to a revkv (or etcd) cluster through any of several endpoints.
///
/// Cheap to clone; every handle it gives out shares its connections. Unary calls are
/// spread round robin over the endpoints and fail over to the next one when an
/// endpoint cannot be reached (any call) or answers `Unavailable`, e.g.
/// `etcdserver: no leader` (reads only: a write that may have been sent is not
/// resent).
///
/// Calls that must reach one member (etcdctl's `endpoint status` asks each one) go
/// through [`MaintenanceClient::at`], or a `Client` connected to just that endpoint.
///
/// ```no_run
/// use revkv_client::{Client, ConnectOptions, Kv};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379", "127.0.0.1:22379"], ConnectOptions::new()).await?;
/// client.kv().put("greeting", "hello").await?;
/// let got = client.kv().get("greeting").await?;
/// assert_eq!(got.kvs[0].value, b"hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.pool.endpoints())
            .finish()
    }
}

impl Client {
    /// Connects to `endpoints` (`host:port` or `http://host:port`). Returns once one
    /// endpoint accepted a connection within `dial_timeout`, or
    /// [`crate::Error::Connect`] if none did.
    ///
    /// ```no_run
    /// # async fn f() -> revkv_client::Result<()> {
    /// let client = revkv_client::Client::connect(["127.0.0.1:2379"], Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<E, S>(endpoints: E, options: ConnectOptions) -> Result<Client>
    where
        E: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.as_ref().to_owned())
            .collect();
        let pool = Arc::new(Pool::new(&endpoints, options)?);
        pool.probe().await?;
        if let Some(interval) = pool.options.auto_sync_interval {
            tokio::spawn(auto_sync(Arc::downgrade(&pool), interval));
        }
        Ok(Client { pool })
    }

    /// The KV handle.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::Kv;
    /// client.kv().put("k", "v").await?;
    /// # Ok(()) }
    /// ```
    pub fn kv(&self) -> KvClient {
        KvClient::new(self.pool.clone())
    }

    /// The watch handle.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::WatchOptions;
    /// let (_watcher, _stream) = client.watch().watch("k", WatchOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub fn watch(&self) -> WatchClient {
        WatchClient::new(self.pool.clone())
    }

    /// The lease handle.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let lease = client.lease().grant(10).await?;
    /// # Ok(()) }
    /// ```
    pub fn lease(&self) -> LeaseClient {
        LeaseClient::new(self.pool.clone())
    }

    /// The cluster (membership) handle.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let members = client.cluster().member_list().await?.members;
    /// # Ok(()) }
    /// ```
    pub fn cluster(&self) -> ClusterClient {
        ClusterClient::new(self.pool.clone())
    }

    /// The maintenance handle.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let status = client.maintenance().status().await?;
    /// # Ok(()) }
    /// ```
    pub fn maintenance(&self) -> MaintenanceClient {
        MaintenanceClient::new(self.pool.clone())
    }

    /// The endpoints calls currently go to, as `http://host:port`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// println!("{:?}", client.endpoints());
    /// # }
    /// ```
    pub fn endpoints(&self) -> Vec<String> {
        self.pool.endpoints()
    }

    /// The endpoints the client was started with (normalized).
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// assert!(!client.initial_endpoints().is_empty());
    /// # }
    /// ```
    pub fn initial_endpoints(&self) -> Vec<String> {
        self.pool.initial().to_vec()
    }

    /// Replaces the endpoint list, under the same rule as a sync: an empty (or
    /// unusable) list is not adopted; the last good list is kept. Returns the list
    /// now in effect.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let kept = client.set_endpoints(Vec::<String>::new())?;
    /// assert!(!kept.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn set_endpoints<S: AsRef<str>>(
        &self,
        endpoints: impl IntoIterator<Item = S>,
    ) -> Result<Vec<String>> {
        let list: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.as_ref().to_owned())
            .collect();
        self.pool.set_endpoints(&list)
    }

    /// Replaces the endpoint list by the client URLs of the started, voting members
    /// (etcd's `Sync`). A member list without any keeps the current list; a failed
    /// member list call leaves it unchanged and returns the error. Returns the list
    /// now in effect.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let endpoints = client.sync_endpoints().await?;
    /// # Ok(()) }
    /// ```
    pub async fn sync_endpoints(&self) -> Result<Vec<String>> {
        sync(&self.pool).await
    }
}

/// One endpoint sync of `pool`.
async fn sync(pool: &Arc<Pool>) -> Result<Vec<String>> {
    let members = ClusterClient::new(pool.clone()).member_list().await?;
    let urls: Vec<String> = members
        .members
        .into_iter()
        // Like etcd: a member that has not started (no name) has no usable URLs, and
        // learners do not serve client requests.
        .filter(|m| !m.name.is_empty() && !m.is_learner)
        .flat_map(|m| m.client_urls)
        .collect();
    pool.set_endpoints(&urls)
}

/// Syncs every `interval` until the client and all its handles are gone.
async fn auto_sync(pool: Weak<Pool>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(pool) = pool.upgrade() else { return };
        if let Err(e) = sync(&pool).await {
            tracing::debug!(error = %e, "endpoint auto sync failed; keeping the list");
        }
    }
}
