//! Client connections served by single-threaded runtimes ("shards"), one thread each,
//! dealt round-robin by an accept loop on the main runtime.
//!
//! Why not the main (work-stealing) runtime: a request is finished by the applier
//! thread, which wakes the request's task from outside the runtime. tokio then unparks
//! a worker, and that worker, finding work, unparks its sibling to look for more; on
//! two cores the sibling often runs first on the same CPU while the response waits.
//! A shard's thread is the only one that runs its connections, so a completion wakes
//! exactly that thread. docs/BENCHMARKS.md item 28 has the figures (one client,
//! 200 clients over 16 connections and over one, `etcdctl check perf`).
//!
//! A connection stays on its shard for life; the accept loop deals connections, not
//! requests, so many connections are needed to use every shard (clients open their
//! own: etcdctl and `revkv-bench` open one per client or `--conns`).

use std::time::Duration;

use revkv_proto::io::Coalescing;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::service::Routes;

/// How long the accept loop pauses after a failed accept (e.g. out of file
/// descriptors), so that it does not spin while the condition lasts.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves `routes` on `listener` from `shards` threads until `stop` turns true, then
/// lets open requests finish; `kill` turning true cuts whatever is still open.
/// Resolves once every shard thread has stopped, with the first serving error.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shards: usize,
    stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let mut conns = Vec::with_capacity(shards);
    let mut done = Vec::with_capacity(shards);
    for n in 0..shards.max(1) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let shard = Shard {
            routes: routes.clone(),
            conns: rx,
            stop: stop.clone(),
            kill: kill.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("grpc-shard-{n}"))
            .spawn(move || {
                let _ = done_tx.send(shard.run());
            });
        match spawned {
            Ok(_) => {
                conns.push(tx);
                done.push(done_rx);
            }
            Err(e) => tracing::error!(error = %e, "cannot start a client connection thread"),
        }
    }
    accept(&listener, &conns, stop).await;
    // The shards see their connection channels close and stop taking new ones.
    drop(conns);
    let mut outcome = Ok(());
    for rx in done {
        if let Ok(Err(e)) = rx.await {
            if outcome.is_ok() {
                outcome = Err(e);
            }
        }
    }
    outcome
}

/// Deals accepted connections to the shards, round-robin, until `stop`.
async fn accept(
    listener: &TcpListener,
    shards: &[mpsc::UnboundedSender<std::net::TcpStream>],
    mut stop: watch::Receiver<bool>,
) {
    if shards.is_empty() {
        return;
    }
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let conn = match accepted {
            Ok((conn, _)) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a client connection failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Without it, a small answer queued behind a watch event waits for the
        // client's delayed ACK (40 ms on Linux).
        if let Err(e) = conn.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a client connection");
        }
        // The socket leaves this runtime's reactor and joins its shard's.
        match conn.into_std() {
            Ok(conn) => {
                if shards[next % shards.len()].send(conn).is_err() {
                    // That shard has stopped (it failed); the others go on.
                    tracing::warn!("a client connection thread has stopped");
                }
                next = next.wrapping_add(1);
            }
            Err(e) => tracing::warn!(error = %e, "cannot hand a client connection over"),
        }
    }
}

/// One shard: a current-thread runtime serving the connections it is handed.
struct Shard {
    routes: Routes,
    conns: mpsc::UnboundedReceiver<std::net::TcpStream>,
    stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
}

impl Shard {
    fn run(self) -> Result<(), tonic::transport::Error> {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a client connection runtime");
                return Ok(());
            }
        };
        let Shard {
            routes,
            conns,
            mut stop,
            mut kill,
        } = self;
        let outcome = rt.block_on(async move {
            let incoming = futures::stream::unfold(conns, |mut conns| async move {
                let conn = conns.recv().await?;
                let conn = tokio::net::TcpStream::from_std(conn).map(Coalescing::new);
                Some((conn, conns))
            });
            let serving = tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
            tokio::select! {
                outcome = serving => outcome,
                _ = kill.wait_for(|k| *k) => Ok(()),
            }
        });
        // Dropping the runtime cancels the connections still open after a kill.
        drop(rt);
        outcome
    }
}
