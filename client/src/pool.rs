//! The endpoints a client talks to, one tonic channel each, and the failover rule:
//! a call goes to the endpoints in round-robin order; the next endpoint is tried when
//! the request provably never left (no connection) or, for a repeatable call, when
//! the endpoint answered `Unavailable` (down, or `etcdserver: no leader`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use crate::client::ConnectOptions;
use crate::endpoints::{normalize_endpoint, resolve_endpoints, try_order};
use crate::error::{Error, Result};
use crate::tls::Connector;
use crate::unary::UnaryChannel;

/// How long an endpoint that could not be reached is tried only after the others.
const DOWN_FOR: Duration = Duration::from_secs(2);

/// One endpoint and its (lazily connecting) channels: one for unary calls, one (made
/// by tonic) for streams.
pub(crate) struct Conn {
    pub(crate) uri: String,
    pub(crate) unary: UnaryChannel,
    pub(crate) channel: Channel,
    /// When the endpoint last could not be reached; `None` while it works.
    down_since: Mutex<Option<Instant>>,
}

impl Conn {
    fn new(uri: String, options: &ConnectOptions, connector: &Connector) -> Result<Arc<Conn>> {
        // tonic may refuse `https` with a custom connector (see `Connector::forcing_tls`).
        let channel = match uri.strip_prefix("https://") {
            Some(rest) => endpoint(&format!("http://{rest}"), options)?
                .connect_with_connector_lazy(connector.forcing_tls()),
            None => endpoint(&uri, options)?.connect_with_connector_lazy(connector.clone()),
        };
        let unary = UnaryChannel::new(&uri, options, connector.clone())
            .map_err(|e| Error::InvalidArgument(format!("endpoint {uri}: {e}")))?;
        Ok(Arc::new(Conn {
            uri,
            unary,
            channel,
            down_since: Mutex::new(None),
        }))
    }

    fn is_down(&self) -> bool {
        let since = *self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since.is_some_and(|t| t.elapsed() < DOWN_FOR)
    }

    fn mark(&self, down: bool) {
        *self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = down.then(Instant::now);
    }
}

/// The tonic endpoint for `uri` with the dial timeout and keep-alives of `options`,
/// to be dialled through [`Connector`] (TCP with `TCP_NODELAY`, and TLS for `https`).
fn endpoint(uri: &str, options: &ConnectOptions) -> Result<Endpoint> {
    let mut ep = Endpoint::from_shared(uri.to_owned())
        .map_err(|e| Error::InvalidArgument(format!("endpoint {uri}: {e}")))?
        .connect_timeout(options.dial_timeout);
    if let Some(interval) = options.keep_alive_time {
        ep = ep
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(options.keep_alive_timeout)
            .keep_alive_while_idle(options.permit_without_stream);
    }
    Ok(ep)
}

/// The endpoints of one client.
pub(crate) struct Pool {
    pub(crate) options: ConnectOptions,
    /// The dialer of every connection (TLS settings built once).
    connector: Connector,
    /// The endpoints the client was started with: tried after the current ones, and
    /// the list an endpoint sync falls back to.
    initial: Vec<String>,
    /// The current endpoints (never empty).
    current: RwLock<Vec<Arc<Conn>>>,
    /// Channels to initial endpoints no longer in `current`, made on first use.
    seeds: RwLock<Vec<Arc<Conn>>>,
    /// Round-robin position.
    next: AtomicUsize,
}

impl Pool {
    /// A pool over `endpoints` (normalized, non-empty); channels connect lazily.
    pub(crate) fn new(endpoints: &[String], options: ConnectOptions) -> Result<Pool> {
        let mut initial: Vec<String> = Vec::new();
        for e in endpoints {
            let e = normalize_endpoint(e)?;
            if !initial.contains(&e) {
                initial.push(e);
            }
        }
        if initial.is_empty() {
            return Err(Error::InvalidArgument("no endpoints given".into()));
        }
        let tls = options
            .tls
            .as_ref()
            .map(crate::TlsOptions::client_config)
            .transpose()?;
        let connector = Connector::new(tls);
        let current = initial
            .iter()
            .map(|uri| Conn::new(uri.clone(), &options, &connector))
            .collect::<Result<Vec<_>>>()?;
        Ok(Pool {
            options,
            connector,
            initial,
            current: RwLock::new(current),
            seeds: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
        })
    }

    /// Connects eagerly to the first endpoint that answers within the dial timeout,
    /// as etcd's client does before `New` returns. The connection is the one the
    /// first unary call then uses.
    pub(crate) async fn probe(&self) -> Result<()> {
        let conns = self.current_conns();
        let mut reason = String::new();
        for conn in &conns {
            match conn.unary.connect().await {
                Ok(()) => {
                    conn.mark(false);
                    return Ok(());
                }
                Err(e) => {
                    reason = format!("{}: {e}", conn.uri);
                    conn.mark(true);
                }
            }
        }
        Err(Error::Connect {
            endpoints: self.endpoints().join(","),
            reason,
        })
    }

    /// The current endpoint URIs.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.current_conns().iter().map(|c| c.uri.clone()).collect()
    }

    /// The endpoints the client was started with.
    pub(crate) fn initial(&self) -> &[String] {
        &self.initial
    }

    fn current_conns(&self) -> Vec<Arc<Conn>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the endpoint list by the one [`resolve_endpoints`] picks from
    /// `discovered` (never an empty one); keeps the channels of endpoints that stay.
    /// Returns the list now in effect.
    pub(crate) fn set_endpoints(&self, discovered: &[String]) -> Result<Vec<String>> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let uris: Vec<String> = current.iter().map(|c| c.uri.clone()).collect();
        let chosen = resolve_endpoints(discovered, &uris, &self.initial);
        let mut conns = Vec::with_capacity(chosen.len());
        for uri in &chosen {
            match current.iter().find(|c| &c.uri == uri) {
                Some(c) => conns.push(c.clone()),
                None => conns.push(Conn::new(uri.clone(), &self.options, &self.connector)?),
            }
        }
        *current = conns;
        Ok(chosen)
    }

    /// The endpoints one call tries, in order: the current ones round robin (known
    /// down ones last), then initial endpoints that are no longer current.
    fn plan(&self) -> Vec<Arc<Conn>> {
        let current = self.current_conns();
        let down: Vec<bool> = current.iter().map(|c| c.is_down()).collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut plan: Vec<Arc<Conn>> = try_order(current.len(), start, &down)
            .into_iter()
            .map(|i| current[i].clone())
            .collect();
        for uri in &self.initial {
            if plan.iter().any(|c| &c.uri == uri) {
                continue;
            }
            if let Some(seed) = self.seed(uri) {
                plan.push(seed);
            }
        }
        plan
    }

    fn seed(&self, uri: &str) -> Option<Arc<Conn>> {
        if let Some(c) = self
            .seeds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|c| c.uri == uri)
        {
            return Some(c.clone());
        }
        let conn = Conn::new(uri.to_owned(), &self.options, &self.connector).ok()?;
        self.seeds
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn.clone());
        Some(conn)
    }

    /// Runs `call` against the endpoints until one answers, under the request
    /// timeout if one is set. `repeatable` calls (reads) also move on when an
    /// endpoint answers `Unavailable`; others only when nothing was sent.
    pub(crate) async fn call<T, F, Fut>(&self, repeatable: bool, call: F) -> Result<T>
    where
        F: FnMut(UnaryChannel) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let attempt = self.call_once(repeatable, call);
        match self.options.request_timeout {
            Some(limit) => tokio::time::timeout(limit, attempt)
                .await
                .map_err(|_| Error::Timeout(limit))?,
            None => attempt.await,
        }
    }

    async fn call_once<T, F, Fut>(&self, repeatable: bool, mut call: F) -> Result<T>
    where
        F: FnMut(UnaryChannel) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let mut last: Option<Error> = None;
        for conn in self.plan() {
            match call(conn.unary.clone()).await {
                Ok(v) => {
                    conn.mark(false);
                    return Ok(v);
                }
                Err(status) => {
                    let err = Error::from_call(&conn.uri, status);
                    if err.never_sent() {
                        conn.mark(true);
                    } else if err.code() == tonic::Code::Unavailable && repeatable {
                        tracing::debug!(endpoint = %conn.uri, error = %err, "failing over");
                    } else {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(match last {
            Some(Error::Unreachable { reason, .. }) => Error::Connect {
                endpoints: self.endpoints().join(","),
                reason,
            },
            Some(err) => err,
            None => Error::Connect {
                endpoints: String::new(),
                reason: "no endpoints".into(),
            },
        })
    }

    /// Runs `call` on the endpoint after `after` (for streams that resume elsewhere
    /// after their member failed), trying every endpoint once. Returns the endpoint
    /// that answered with the result.
    pub(crate) async fn open<T, F, Fut>(
        &self,
        after: Option<&str>,
        mut call: F,
    ) -> Result<(String, T)>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let mut plan = self.plan();
        if let Some(failed) = after {
            // The endpoint that just failed goes last.
            if let Some(i) = plan.iter().position(|c| c.uri == failed) {
                let c = plan.remove(i);
                plan.push(c);
            }
        }
        let mut last = None;
        for conn in plan {
            match call(conn.channel.clone()).await {
                Ok(v) => {
                    conn.mark(false);
                    return Ok((conn.uri.clone(), v));
                }
                Err(status) => {
                    let err = Error::from_call(&conn.uri, status);
                    conn.mark(err.never_sent());
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or(Error::Closed("no endpoints")))
    }

    /// A pool of just `endpoint`, sharing this pool's channel to it if it has one
    /// (for calls that must reach one particular member, like `endpoint status`).
    pub(crate) fn pinned(&self, endpoint: &str) -> Result<Pool> {
        let uri = normalize_endpoint(endpoint)?;
        let existing = self
            .current_conns()
            .into_iter()
            .find(|c| c.uri == uri)
            .or_else(|| {
                self.seeds
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .find(|c| c.uri == uri)
                    .cloned()
            });
        let conn = match existing {
            Some(c) => c,
            None => Conn::new(uri.clone(), &self.options, &self.connector)?,
        };
        Ok(Pool {
            options: self.options.clone(),
            connector: self.connector.clone(),
            initial: vec![uri],
            current: RwLock::new(vec![conn]),
            seeds: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
        })
    }
}
