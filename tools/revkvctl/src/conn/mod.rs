//! The connection to the cluster, and etcd clientv3's error behaviour.
//!
//! etcdctl 3.4 dials lazily: an unreachable endpoint is not an error by itself; the
//! request keeps waiting for a connection until `--command-timeout` runs out and then
//! fails with `context deadline exceeded`. [`Conn::call`] does the same: it retries a
//! request that could not be sent (no connection) until the deadline.

pub mod kv;

use std::future::Future;
use std::time::Duration;

use revkv_proto::etcdserverpb::{
    auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
    AuthenticateRequest,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::exit::{CtlError, BAD_CONNECTION};
use crate::global::{Global, TlsFlags};

/// How long to wait between attempts to reach an endpoint that refused.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// Why a call failed, before it is worded for the user.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The server answered with a status.
    Status(tonic::Status),
    /// The deadline passed (no connection, or no answer in time).
    Deadline,
}

impl CallError {
    /// The message etcdctl prints for this error (clientv3's `err.Error()`).
    pub fn message(&self) -> String {
        match self {
            CallError::Deadline => "context deadline exceeded".to_owned(),
            CallError::Status(s) => status_message(s.code(), s.message()),
        }
    }

    /// Whether the server said the lease does not exist.
    pub fn is(&self, message: &str) -> bool {
        matches!(self, CallError::Status(s) if s.message() == message)
    }
}

impl From<revkv_client::Error> for CallError {
    fn from(e: revkv_client::Error) -> Self {
        match e {
            revkv_client::Error::Timeout(_) | revkv_client::Error::Connect { .. } => {
                CallError::Deadline
            }
            other => CallError::Status(tonic::Status::new(other.code(), other.message())),
        }
    }
}

/// The error text clientv3 gives a gRPC status: etcd's own errors by their
/// message alone (`rpctypes.Error`), anything else as grpc-go's
/// `rpc error: code = … desc = …`.
pub fn status_message(code: tonic::Code, message: &str) -> String {
    if crate::rpctypes::is_etcd_error(message) {
        return message.to_owned();
    }
    if code == tonic::Code::DeadlineExceeded {
        return "context deadline exceeded".to_owned();
    }
    if code == tonic::Code::Cancelled {
        return "context canceled".to_owned();
    }
    format!(
        "rpc error: code = {} desc = {message}",
        revkv_proto::code_name(code)
    )
}

/// Whether a status means the request never reached a server (so it is safe to
/// send again, whatever it is).
fn not_sent(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Unavailable && !crate::rpctypes::is_etcd_error(s.message())
}

/// `host:port` or `scheme://host:port` → the URL to dial: `https` for a bare
/// `host:port` when TLS flags are set, as etcdctl does.
pub fn endpoint_url(ep: &str, tls: &TlsFlags) -> String {
    if ep.contains("://") {
        ep.to_owned()
    } else if tls.secure_by_default() {
        format!("https://{ep}")
    } else {
        format!("http://{ep}")
    }
}

/// The TLS settings of `https://` endpoints, from etcdctl's flags.
fn client_tls(tls: &TlsFlags) -> Result<ClientTlsConfig, CtlError> {
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| CtlError::new(BAD_CONNECTION, format!("{path}: {e}")))
    };
    if tls.insecure_skip_verify {
        // tonic's TLS has no way to turn verification off.
        return Err(CtlError::new(
            BAD_CONNECTION,
            "--insecure-skip-tls-verify is not supported by revkvctl; pass the server's CA with --cacert",
        ));
    }
    let ca = if tls.cacert.is_empty() {
        revkv_proto::tls::SYSTEM_CAS
    } else {
        &tls.cacert
    };
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    match (tls.cert.is_empty(), tls.key.is_empty()) {
        (true, true) => {}
        (false, false) => {
            config = config.identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
        }
        _ => {
            return Err(CtlError::new(
                BAD_CONNECTION,
                "--cert and --key must be given together",
            ))
        }
    }
    Ok(config)
}

/// A connection to the cluster (all `--endpoints`, balanced).
#[derive(Clone)]
pub struct Conn {
    channel: Channel,
    /// `--command-timeout`.
    pub command_timeout: Duration,
    token: Option<String>,
}

impl Conn {
    /// Opens a lazy connection to `endpoints`.
    pub fn open(endpoints: &[String], g: &Global) -> Result<Conn, CtlError> {
        let mut eps = Vec::with_capacity(endpoints.len());
        for ep in endpoints {
            let url = endpoint_url(ep, &g.tls);
            let secure = url.starts_with("https://");
            let mut e = Endpoint::from_shared(url)
                .map_err(|e| CtlError::new(BAD_CONNECTION, e.to_string()))?
                .connect_timeout(g.dial_timeout)
                .tcp_nodelay(true);
            if secure {
                e = e
                    .tls_config(client_tls(&g.tls)?)
                    .map_err(|e| CtlError::new(BAD_CONNECTION, e.to_string()))?;
            }
            eps.push(e);
        }
        let channel = match eps.len() {
            1 => eps.remove(0).connect_lazy(),
            _ => Channel::balance_list(eps.into_iter()),
        };
        Ok(Conn {
            channel,
            command_timeout: g.command_timeout,
            token: None,
        })
    }

    /// etcdctl's `mustClientFromCmd`: the connection to `--endpoints`, logged in
    /// when `--user` is given.
    pub async fn connect(g: &Global) -> Result<Conn, CtlError> {
        let mut conn = Self::open(&g.endpoints, g)?;
        // clientv3 logs in only with both a name and a password.
        if let Some((user, password)) = g.credentials()? {
            if !password.is_empty() {
                conn.token = conn.authenticate(user, password).await?;
            }
        }
        Ok(conn)
    }

    /// Logs in; `None` when the server has auth disabled (clientv3 then goes on
    /// without a token, so etcdctl prints nothing about it).
    async fn authenticate(
        &self,
        name: String,
        password: String,
    ) -> Result<Option<String>, CtlError> {
        let res = crate::unary!(
            self,
            self.auth(),
            authenticate,
            AuthenticateRequest { name, password }
        );
        match res {
            Ok(r) => Ok(Some(r.token)),
            Err(e) if e.is(crate::rpctypes::AUTH_NOT_ENABLED) => {
                tracing::debug!("server has authentication disabled; going on without a token");
                Ok(None)
            }
            Err(e) => Err(CtlError::new(BAD_CONNECTION, e.message())),
        }
    }

    /// A request carrying the auth token, if any.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = &self.token {
            if let Ok(v) = t.parse() {
                req.metadata_mut().insert("token", v);
            }
        }
        req
    }

    /// Runs one unary call within `--command-timeout`, resending while no
    /// connection could be made.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let attempt = async {
            loop {
                match f().await {
                    Ok(r) => return Ok(r.into_inner()),
                    Err(s) if not_sent(&s) => {
                        tracing::debug!(error = %s, "endpoint not reachable yet; retrying");
                        tokio::time::sleep(RECONNECT_BACKOFF).await;
                    }
                    Err(s) => return Err(CallError::Status(s)),
                }
            }
        };
        match tokio::time::timeout(self.command_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Deadline),
        }
    }

    /// The KV service.
    pub fn kv_client(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// The KV service as a [`revkv_client::Kv`].
    pub fn kv(&self) -> kv::GrpcKv {
        kv::GrpcKv::new(self.clone())
    }

    /// The Watch service.
    pub fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// The Lease service.
    pub fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
    }

    /// The Cluster service.
    pub fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel.clone())
    }

    /// The Maintenance service.
    pub fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// The Auth service.
    pub fn auth(&self) -> AuthClient<Channel> {
        AuthClient::new(self.channel.clone())
    }

    /// The Lock service.
    pub fn lock(&self) -> revkv_proto::v3lockpb::lock_client::LockClient<Channel> {
        revkv_proto::v3lockpb::lock_client::LockClient::new(self.channel.clone())
    }

    /// The Election service.
    pub fn election(&self) -> revkv_proto::v3electionpb::election_client::ElectionClient<Channel> {
        revkv_proto::v3electionpb::election_client::ElectionClient::new(self.channel.clone())
    }
}

/// Shorthand for a unary call on a cloned service client:
/// `unary!(conn, conn.lease(), lease_grant, req)`.
#[macro_export]
macro_rules! unary {
    ($conn:expr, $client:expr, $method:ident, $req:expr) => {{
        let conn = &$conn;
        let client = $client;
        let req = $req;
        conn.call(|| {
            let mut c = client.clone();
            let r = conn.request(req.clone());
            async move { c.$method(r).await }
        })
        .await
    }};
}
