//! Plain HTTP on the client port, as etcd serves it: `/health`, `/version`, `/metrics`,
//! and the JSON gateway (`/v3/...`, see [`gateway`]).

pub mod gateway;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use revkv_proto::etcdserverpb::AlarmType;

use crate::api::maintenance::ETCD_API_VERSION;
use crate::metrics::Gauges;
use crate::server::Server;

/// The HTTP routes, to be merged with the gRPC ones.
pub fn router(server: Arc<Server>) -> Router {
    // A request as large as gRPC accepts, with base64's third more and JSON around it.
    let gateway_body =
        axum::extract::DefaultBodyLimit::max(crate::api::max_request_message(&server) * 2);
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route(
            "/v3/{*rpc}",
            axum::routing::post(gateway::serve).layer(gateway_body),
        )
        .route(
            "/v3beta/{*rpc}",
            axum::routing::post(gateway::serve).layer(gateway_body),
        )
        .with_state(server)
}

/// Whatever is neither an endpoint above nor a gRPC method. A gRPC call to an unknown
/// method gets gRPC's `Unimplemented`, as tonic answers it; any other request gets
/// etcd's 404 (Go's "404 page not found"), so `curl -f` and status checks see that the
/// path does not exist.
pub async fn fallback(req: axum::extract::Request) -> axum::response::Response {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if grpc {
        tonic::Status::unimplemented("").into_http()
    } else {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "404 page not found\n",
        )
            .into_response()
    }
}

/// Healthy when no alarm is active, there is a leader and a linearizable read
/// completes (etcd 3.4 checks the same, the read through a quorum read).
async fn health(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let alarm =
        server.alarms.list(AlarmType::None as i32).first().map(|a| {
            match AlarmType::try_from(a.alarm) {
                Ok(AlarmType::Nospace) => "ALARM NOSPACE",
                Ok(AlarmType::Corrupt) => "ALARM CORRUPT",
                _ => "ALARM UNKNOWN",
            }
        });
    let reason = if alarm.is_some() {
        alarm
    } else if server.raft.status().leader() == 0 {
        Some("RAFT NO LEADER")
    } else {
        match tokio::time::timeout(Duration::from_secs(1), server.linearizable_read()).await {
            Ok(Ok(())) => None,
            _ => Some("QGET ERROR"),
        }
    };
    // etcd 3.4's body has no reason (3.5 added one); the reason goes to the log, as
    // etcd 3.4 logs it.
    let (code, body) = match reason {
        None => (StatusCode::OK, r#"{"health":"true"}"#),
        Some(r) => {
            tracing::warn!(reason = r, "/health error");
            (StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
        }
    };
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn version() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            r#"{{"etcdserver":"{ETCD_API_VERSION}","etcdcluster":"{}","revkv":"{}"}}"#,
            cluster_version(),
            env!("CARGO_PKG_VERSION")
        ),
    )
}

/// The cluster version is the API's major.minor with patch 0, as etcd reports it.
fn cluster_version() -> String {
    let mut parts = ETCD_API_VERSION.splitn(3, '.');
    format!(
        "{}.{}.0",
        parts.next().unwrap_or("3"),
        parts.next().unwrap_or("4")
    )
}

async fn metrics(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let storage = server.store.storage();
    let raft = server.raft.status();
    let gauges = Gauges {
        db_size: storage.size_bytes(),
        db_size_in_use: storage.size_in_use_bytes(),
        current_rev: server.store.current_rev(),
        compact_rev: server.store.compact_rev(),
        committed_index: raft.commit(),
        applied_index: server.applied_index(),
        has_leader: raft.leader() != 0,
        is_leader: raft.leader() == server.member_id,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        server.metrics.render(&gauges),
    )
}
