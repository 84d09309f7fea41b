//! The gRPC services of etcd's v3 API, served on the client port next to the HTTP
//! endpoints.
//!
//! Every service etcd declares is registered; methods revkv does not implement yet
//! answer `Unimplemented` (generated default stubs), never a fake success (see
//! [`auth`] for what the Auth service answers).

pub mod auth;
pub mod cluster;
pub mod election;
pub mod forward;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod oversize;
pub mod quota;
pub mod recipes;
pub mod status;
pub mod unary;
pub mod validate;
pub mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use revkv_proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use revkv_proto::v3electionpb::election_server::ElectionServer;
use revkv_proto::v3lockpb::lock_server::LockServer;
use tonic::service::Routes;
use tonic::{Response, Status};

use revkv_proto::revkvpb::internal_raft_request;

use crate::apply::Applied;
use crate::metrics::Rpc;
use crate::server::Server;
use crate::Error;
use revkv_proto::code_name;

/// Runs a handler, maps its error to etcd's status, and records the RPC's metrics.
pub(crate) async fn instrumented<T>(
    server: &Server,
    service: &'static str,
    method: &'static str,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<Response<T>, Status> {
    observed(server, service, method, fut)
        .await
        .map(Response::new)
}

/// [`instrumented`] without tonic's response wrapper, for [`unary`]'s direct path.
pub(crate) async fn observed<T>(
    server: &Server,
    service: &'static str,
    method: &'static str,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Status> {
    let start = Instant::now();
    let result = fut.await.map_err(Status::from);
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    record(server, (service, method, "unary"), code, start);
    result
}

/// Counts one finished RPC and its time, as go-grpc-prometheus does for etcd: a
/// stream when it ends, with the code it ended with. `rpc` is (service, method, kind:
/// `unary`, `server_stream` or `bidi_stream`).
pub(crate) fn record(
    server: &Server,
    (service, method, kind): (&'static str, &'static str, &'static str),
    code: tonic::Code,
    start: Instant,
) {
    let rpc = Rpc {
        service,
        method,
        kind,
    };
    server
        .metrics
        .observe(rpc, code_name(code), start.elapsed());
}

/// Proposes `req` through Raft and returns its applied response with the header filled
/// in, as every mutating handler answers.
pub(crate) async fn propose<T: Applied>(
    server: &Server,
    req: internal_raft_request::Request,
) -> Result<T, Error> {
    applied(server, server.propose(req).await?)
}

/// [`propose`] for a client's request, which apply checks against `user`'s
/// permissions while auth is enabled.
pub(crate) async fn propose_as<T: Applied>(
    server: &Server,
    user: &crate::auth::AuthInfo,
    req: internal_raft_request::Request,
) -> Result<T, Error> {
    applied(server, server.propose_checked(user, req).await?)
}

/// The auth token a request carries: gRPC metadata `token`, as etcd's clients send
/// it (newer ones may send `authorization`).
pub(crate) fn token(meta: &tonic::metadata::MetadataMap) -> Option<&[u8]> {
    meta.get("token")
        .or_else(|| meta.get("authorization"))
        .map(|v| v.as_bytes())
}

/// etcd's `IsAdminPermitted` for the caller whose token is in `meta`: while auth is
/// enabled, only a user with the `root` role may manage the cluster.
pub(crate) fn admin(server: &Server, meta: &tonic::metadata::MetadataMap) -> Result<(), Error> {
    let user = server.auth_info(token(meta))?;
    Ok(server.auth.check_admin(&user)?)
}

/// [`token`] from the raw HTTP/2 headers, for [`unary`]'s direct path.
pub(crate) fn header_token(headers: &http::HeaderMap) -> Option<bytes::Bytes> {
    headers
        .get("token")
        .or_else(|| headers.get("authorization"))
        .map(|v| bytes::Bytes::copy_from_slice(v.as_bytes()))
}

/// Takes the applied response of the type the proposer expects, header filled in.
pub(crate) fn applied<T: Applied>(server: &Server, r: crate::apply::Response) -> Result<T, Error> {
    let mut resp = T::from_response(r)
        .map_err(|other| Error::Unsupported(format!("mismatched apply response {other:?}")))?;
    server.fill_header(resp.header_mut());
    Ok(resp)
}

/// The largest request message the services decode: `--max-request-bytes` plus the
/// 512 KiB of framing overhead etcd's gRPC server allows on top.
pub fn max_request_message(server: &Server) -> usize {
    server.cfg.max_request_bytes + 512 * 1024
}

/// etcd's six services and its Lock and Election services, sized by `--max-request-bytes` like etcd's gRPC server
/// (which allows 512 KiB of framing overhead on top).
pub fn routes(server: Arc<Server>) -> Routes {
    let max = max_request_message(&server);
    Routes::new(
        KvServer::new(kv::KvService::new(server.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        MaintenanceServer::new(maintenance::MaintenanceService::new(server.clone()))
            .max_decoding_message_size(max),
    )
    .add_service(
        WatchServer::new(watch::WatchService::new(server.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        LeaseServer::new(lease::LeaseService::new(server.clone())).max_decoding_message_size(max),
    )
    .add_service(
        ClusterServer::new(cluster::ClusterService::new(server.clone()))
            .max_decoding_message_size(max),
    )
    .add_service(
        AuthServer::new(auth::AuthService::new(server.clone())).max_decoding_message_size(max),
    )
    .add_service(
        LockServer::new(lock::LockService::new(recipes::Local::new(server.clone())))
            .max_decoding_message_size(max),
    )
    .add_service(
        ElectionServer::new(election::ElectionService::new(recipes::Local::new(server)))
            .max_decoding_message_size(max),
    )
}
