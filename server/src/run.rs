//! Runs a member until SIGINT/SIGTERM: bind the client and peer listeners, start the
//! server, serve gRPC and HTTP on the client ports and the peer transport on the peer
//! ports, and shut down cleanly.

use std::sync::Arc;

use revkv_proto::io::{coalescing_incoming, Coalescing};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::config::Config;
use crate::server::{auto_compact, publish, Server, StartError};

/// How long a stopping member waits for open requests and streams to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a member could not run; each is reported as one line by the binary.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid flags: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on client URL {url}: {source}")]
    Listen { url: String, source: std::io::Error },
    #[error("cannot listen on peer URL {url}: {source}")]
    ListenPeer { url: String, source: std::io::Error },
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] crate::tls::Error),
    #[error("invalid TLS certificate or key: {0}")]
    TlsConfig(tonic::transport::Error),
    #[error("cannot start: {0}")]
    Start(#[from] StartError),
    #[error("serving client requests failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("stopped: {0}")]
    Fatal(String),
}

/// Serves until a shutdown signal arrives or a background thread fails.
pub async fn run(cfg: Config) -> Result<(), RunError> {
    cfg.validate()?;
    // Bind before opening the data dir: a taken port must not leave a half-started
    // member behind.
    let mut listeners = Vec::new();
    for l in cfg.client_listen_addrs()? {
        let bound = TcpListener::bind(l.addr)
            .await
            .map_err(|source| RunError::Listen {
                url: l.url.clone(),
                source,
            })?;
        listeners.push((bound, l.tls));
    }
    let tls = crate::tls::listener_tls(&cfg, &cfg.client_tls_flags())?;
    let peer_tls = crate::tls::listener_tls(&cfg, &cfg.peer_tls_flags())?;
    for t in tls.iter().chain(&peer_tls) {
        // Parse the certificates and keys now, before the member starts.
        tonic::transport::Server::builder()
            .tls_config(t.clone())
            .map_err(RunError::TlsConfig)?;
    }
    let mut peer_listeners = Vec::new();
    for l in cfg.peer_listen_addrs()? {
        let bound = TcpListener::bind(l.addr)
            .await
            .map_err(|source| RunError::ListenPeer {
                url: l.url.clone(),
                source,
            })?;
        peer_listeners.push((bound, l.tls));
    }
    let policy = cfg.auto_compaction()?;
    let runtime = tokio::runtime::Handle::current();
    let server = tokio::task::block_in_place(|| Server::start(cfg, runtime))?;
    tracing::info!(
        member_id = format!("{:x}", server.member_id),
        cluster_id = format!("{:x}", server.cluster_id),
        data_dir = %server.cfg.data_dir().display(),
        members = server.membership.read().len(),
        "revkv started; serving client requests on {} and peers on {}",
        server.cfg.listen_client_urls.join(","),
        server.cfg.listen_peer_urls.join(",")
    );
    let compaction = tokio::spawn(auto_compact(server.clone(), policy));
    let publishing = tokio::spawn(publish(server.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let lease_expiry = crate::lease::expiry::spawn(server.clone(), stop_rx.clone());
    let mut serving = tokio::task::JoinSet::new();
    for (listener, secure) in listeners {
        let routes = crate::api::routes(server.clone())
            .into_axum_router()
            .merge(crate::http::router(server.clone()))
            .fallback(crate::http::fallback);
        let mut stop = stop_rx.clone();
        let mut builder = tonic::transport::Server::builder();
        if let (true, Some(tls)) = (secure, &tls) {
            builder = builder
                .tls_config(tls.clone())
                .map_err(RunError::TlsConfig)?;
        }
        serving.spawn(
            builder
                .accept_http1(true)
                .layer(crate::api::unary::UnaryKvLayer::new(
                    server.clone(),
                    crate::api::max_request_message(&server),
                ))
                .add_routes(tonic::service::Routes::from(routes))
                .serve_with_incoming_shutdown(incoming(listener), async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
        );
    }

    for (listener, secure) in peer_listeners {
        let mut stop = stop_rx.clone();
        let mut builder = tonic::transport::Server::builder();
        if let (true, Some(tls)) = (secure, &peer_tls) {
            builder = builder
                .tls_config(tls.clone())
                .map_err(RunError::TlsConfig)?;
        }
        serving.spawn(
            builder
                .add_service(server.transport.service())
                .add_service(crate::api::forward::ForwardService::new(server.clone()))
                .serve_with_incoming_shutdown(incoming(listener), async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
        );
    }

    let outcome = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("received shutdown signal; stopping");
            Ok(())
        }
        msg = server.fatal() => Err(RunError::Fatal(msg)),
        Some(res) = serving.join_next() => match res {
            Ok(Err(e)) => Err(RunError::Serve(e)),
            _ => Ok(()),
        },
    };
    let _ = stop_tx.send(true);
    // Peer streams never end on their own, and a graceful server stop waits for its
    // open streams: close ours first.
    server.transport.shutdown();
    compaction.abort();
    publishing.abort();
    // Stops on `stop_tx` without proposing anything more.
    let _ = lease_expiry.await;
    // A graceful stop waits for every open stream, and streams opened by clients
    // (watch, keep-alive) or by members still running never end on their own: give
    // in-flight unary requests a moment, then cut what is left, as etcd does.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while serving.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!("closing streams still open after {SHUTDOWN_GRACE:?}");
        serving.shutdown().await;
    }
    let s = Arc::clone(&server);
    let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
    tracing::info!("revkv stopped");
    outcome
}

/// Accepted connections with TCP_NODELAY set. The builder's own `tcp_nodelay` only
/// applies to listeners tonic binds itself; without it, a small unary answer queued
/// behind a watch event on the same connection waits for the peer's delayed ACK
/// (40 ms on Linux), which a fan-out benchmark exposed.
/// Wrapped so that h2 batches small frames into one write (`revkv_proto::io`).
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<Coalescing<tokio::net::TcpStream>>> {
    coalescing_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
