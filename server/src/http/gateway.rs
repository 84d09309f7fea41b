//! etcd's gRPC JSON gateway: `POST /v3/<service>/<method>` (and the older `/v3beta/`)
//! with a JSON request, answered with JSON, as etcd 3.4's grpc-gateway does, so `curl`
//! scripts written for etcd work unchanged.
//!
//! The JSON is proto3's, as etcd prints it: fields by their `.proto` names, fields at
//! their defaults left out, 64-bit integers as strings, bytes as base64 and enums by
//! name; a request may use either the `.proto` or the JSON (lowerCamel) names. Each call
//! goes to the same service method a gRPC call reaches, with the `Authorization` header
//! as its auth token. A refusal is HTTP's status for the gRPC code with etcd's body
//! `{"error":…,"message":…,"code":…}`.
//!
//! Served: every call of KV, Lease, Cluster, Maintenance, Auth, Lock and Election.
//! A streaming call's answers are lines `{"result":…}`; its requests (watch, lease
//! keep-alive) are the JSON objects of the body, back to back.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, SerializeOptions};
use revkv_proto::etcdserverpb::{
    auth_server::Auth, cluster_server::Cluster, kv_server::Kv, lease_server::Lease,
    maintenance_server::Maintenance,
};
use revkv_proto::v3electionpb::election_server::Election;
use revkv_proto::v3lockpb::lock_server::Lock;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::api::{
    auth::AuthService, cluster::ClusterService, election::ElectionService, kv::KvService,
    lease::LeaseService, lock::LockService, maintenance::MaintenanceService, recipes,
};
use crate::server::Server;

/// The calls whose answers stream (see [`Call::stream`]).
const STREAMING: [&str; 4] = [
    "watch",
    "lease/keepalive",
    "maintenance/snapshot",
    "election/observe",
];

/// `POST /v3/{rpc}` and `/v3beta/{rpc}`.
pub async fn serve(
    State(server): State<Arc<Server>>,
    Path(rpc): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get("grpc-metadata-token"))
        .and_then(|v| MetadataValue::try_from(v.as_bytes()).ok());
    let call = Call {
        server,
        token,
        body,
    };
    let answer = match STREAMING.contains(&rpc.as_str()) {
        true => call.stream(&rpc).await,
        false => dispatch(call, &rpc).await.map(Body::from),
    }
    .map(|body| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    });
    let mut resp = match answer {
        Ok(resp) => resp,
        Err(status) => refusal(&status),
    };
    // etcd's gateway answers browsers from anywhere.
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    resp
}

/// One gateway request: whom it goes to and what it carries.
struct Call {
    server: Arc<Server>,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
    body: Bytes,
}

/// Proto3 JSON as etcd's gateway prints it.
fn to_json<P: Message>(name: &str, m: &P) -> Result<String, Status> {
    let desc = revkv_proto::descriptors()
        .get_message_by_name(name)
        .ok_or_else(|| Status::internal(format!("no descriptor for {name}")))?;
    let printed = DynamicMessage::decode(desc, m.encode_to_vec().as_slice())
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut out = Vec::new();
    printed
        .serialize_with_options(
            &mut serde_json::Serializer::new(&mut out),
            &SerializeOptions::new()
                .use_proto_field_name(true)
                .skip_default_fields(true),
        )
        .map_err(|e| Status::internal(e.to_string()))?;
    String::from_utf8(out).map_err(|e| Status::internal(e.to_string()))
}

/// A message of type `Q` (named `name`) from proto3 JSON, unknown fields ignored as
/// grpc-gateway does.
fn from_json<'de, Q, D>(name: &str, json: D) -> Result<Q, Status>
where
    Q: Message + Default,
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    let desc = revkv_proto::descriptors()
        .get_message_by_name(name)
        .ok_or_else(|| Status::internal(format!("no descriptor for {name}")))?;
    let dynamic = DynamicMessage::deserialize_with_options(
        desc,
        json,
        &DeserializeOptions::new().deny_unknown_fields(false),
    )
    .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Q::decode(dynamic.encode_to_vec().as_slice())
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

impl Call {
    /// The body's JSON requests, one or more back to back, as `Q` (named `name`).
    fn requests<Q: Message + Default>(&self, name: &str) -> Result<Vec<Q>, Status> {
        serde_json::Deserializer::from_slice(&self.body)
            .into_iter::<serde_json::Value>()
            .map(|value| {
                let value = value.map_err(|e| Status::invalid_argument(e.to_string()))?;
                from_json(name, value)
            })
            .collect()
    }

    /// A streaming call: the body's requests go in (see [`Call::requests`]); each
    /// answer (named `resp`) comes out as a line `{"result":…}` while the client
    /// stays. A failure ends the stream.
    async fn streaming<Q, P, S, Fut>(
        self,
        (req, resp): (&'static str, &'static str),
        f: impl FnOnce(Arc<Server>, Option<Bytes>, Vec<Q>) -> Fut,
    ) -> Result<Body, Status>
    where
        Q: Message + Default,
        P: Message + 'static,
        S: futures::Stream<Item = Result<P, Status>> + Send + 'static,
        Fut: Future<Output = Result<S, Status>>,
    {
        use futures::StreamExt;
        let requests = self.requests::<Q>(req)?;
        let token = self.token.map(|t| Bytes::copy_from_slice(t.as_bytes()));
        let answers = f(self.server, token, requests).await?;
        Ok(Body::from_stream(
            answers
                .take_while(|r| std::future::ready(r.is_ok()))
                .filter_map(move |r| async move {
                    let line = to_json(resp, &r.ok()?).ok()?;
                    Some(Ok::<_, std::convert::Infallible>(Bytes::from(format!(
                        "{{\"result\":{line}}}\n"
                    ))))
                }),
        ))
    }

    /// The streaming calls: watch and lease keep-alive (requests streamed in), and
    /// snapshot and election observe (one request, answers streamed out).
    async fn stream(self, rpc: &str) -> Result<Body, Status> {
        match rpc {
            "watch" => {
                self.streaming(
                    ("etcdserverpb.WatchRequest", "etcdserverpb.WatchResponse"),
                    |server, token, requests| async move {
                        crate::api::watch::open(server, token, in_stream(requests))
                    },
                )
                .await
            }
            "lease/keepalive" => {
                self.streaming(
                    (
                        "etcdserverpb.LeaseKeepAliveRequest",
                        "etcdserverpb.LeaseKeepAliveResponse",
                    ),
                    |server, _, requests| async move {
                        LeaseService::new(server).keep_alive(in_stream(requests))
                    },
                )
                .await
            }
            "maintenance/snapshot" => {
                self.streaming(
                    (
                        "etcdserverpb.SnapshotRequest",
                        "etcdserverpb.SnapshotResponse",
                    ),
                    |server, token, requests| async move {
                        let r = first(requests, token);
                        Ok(Maintenance::snapshot(&MaintenanceService::new(server), r)
                            .await?
                            .into_inner())
                    },
                )
                .await
            }
            "election/observe" => {
                self.streaming(
                    ("v3electionpb.LeaderRequest", "v3electionpb.LeaderResponse"),
                    |server, token, requests| async move {
                        let r = first(requests, token);
                        let svc = ElectionService::new(recipes::Local::new(server));
                        Ok(Election::observe(&svc, r).await?.into_inner())
                    },
                )
                .await
            }
            _ => Err(Status::new(Code::NotFound, NOT_FOUND)),
        }
    }

    /// Decodes the JSON body as `Q` (named `req` in the descriptors), calls `f`, and
    /// prints its answer (named `resp`) as JSON.
    async fn unary<Q, P, Fut>(
        self,
        (req, resp): (&str, &str),
        f: impl FnOnce(Arc<Server>, tonic::Request<Q>) -> Fut,
    ) -> Result<String, Status>
    where
        Q: Message + Default,
        P: Message,
        Fut: Future<Output = Result<tonic::Response<P>, Status>>,
    {
        // grpc-gateway reads an empty body as an empty message.
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        let q = from_json(req, &mut de)?;
        de.end()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut request = tonic::Request::new(q);
        if let Some(t) = self.token {
            request.metadata_mut().insert("authorization", t);
        }
        let answer = f(self.server, request).await?.into_inner();
        to_json(resp, &answer)
    }
}

/// The one request of a server-streaming call (an empty body is an empty request),
/// with the caller's token.
fn first<Q: Default>(requests: Vec<Q>, token: Option<Bytes>) -> tonic::Request<Q> {
    let mut r = tonic::Request::new(requests.into_iter().next().unwrap_or_default());
    if let Some(t) = token.and_then(|t| MetadataValue::try_from(t.as_ref()).ok()) {
        r.metadata_mut().insert("authorization", t);
    }
    r
}

/// The requests of a client-streaming call, as the stream its handler reads.
fn in_stream<Q>(requests: Vec<Q>) -> impl futures::Stream<Item = Result<Q, Status>> + Unpin {
    futures::stream::iter(requests.into_iter().map(Ok))
}

/// `unary!(call, Service::new(..), Trait, method, package, Request, Response)`.
macro_rules! unary {
    ($call:expr, $svc:expr, $tr:ident, $method:ident, $pkg:literal, $q:ident, $p:ident) => {
        $call
            .unary(
                (
                    concat!($pkg, ".", stringify!($q)),
                    concat!($pkg, ".", stringify!($p)),
                ),
                |server: Arc<Server>, r| async move {
                    let svc = $svc(server);
                    $tr::$method(&svc, r).await
                },
            )
            .await
    };
}

async fn dispatch(call: Call, rpc: &str) -> Result<String, Status> {
    let kv = KvService::new;
    let lease = LeaseService::new;
    let cluster = ClusterService::new;
    let mnt = MaintenanceService::new;
    let auth = AuthService::new;
    let lock = |s| LockService::new(recipes::Local::new(s));
    let election = |s| ElectionService::new(recipes::Local::new(s));
    match rpc {
        "kv/range" => unary!(
            call,
            kv,
            Kv,
            range,
            "etcdserverpb",
            RangeRequest,
            RangeResponse
        ),
        "kv/put" => unary!(call, kv, Kv, put, "etcdserverpb", PutRequest, PutResponse),
        "kv/deleterange" => unary!(
            call,
            kv,
            Kv,
            delete_range,
            "etcdserverpb",
            DeleteRangeRequest,
            DeleteRangeResponse
        ),
        "kv/txn" => unary!(call, kv, Kv, txn, "etcdserverpb", TxnRequest, TxnResponse),
        "kv/compaction" => unary!(
            call,
            kv,
            Kv,
            compact,
            "etcdserverpb",
            CompactionRequest,
            CompactionResponse
        ),
        "lease/grant" => unary!(
            call,
            lease,
            Lease,
            lease_grant,
            "etcdserverpb",
            LeaseGrantRequest,
            LeaseGrantResponse
        ),
        "lease/revoke" | "kv/lease/revoke" => unary!(
            call,
            lease,
            Lease,
            lease_revoke,
            "etcdserverpb",
            LeaseRevokeRequest,
            LeaseRevokeResponse
        ),
        "lease/timetolive" | "kv/lease/timetolive" => unary!(
            call,
            lease,
            Lease,
            lease_time_to_live,
            "etcdserverpb",
            LeaseTimeToLiveRequest,
            LeaseTimeToLiveResponse
        ),
        "lease/leases" | "kv/lease/leases" => unary!(
            call,
            lease,
            Lease,
            lease_leases,
            "etcdserverpb",
            LeaseLeasesRequest,
            LeaseLeasesResponse
        ),
        "cluster/member/add" => unary!(
            call,
            cluster,
            Cluster,
            member_add,
            "etcdserverpb",
            MemberAddRequest,
            MemberAddResponse
        ),
        "cluster/member/remove" => unary!(
            call,
            cluster,
            Cluster,
            member_remove,
            "etcdserverpb",
            MemberRemoveRequest,
            MemberRemoveResponse
        ),
        "cluster/member/update" => unary!(
            call,
            cluster,
            Cluster,
            member_update,
            "etcdserverpb",
            MemberUpdateRequest,
            MemberUpdateResponse
        ),
        "cluster/member/list" => unary!(
            call,
            cluster,
            Cluster,
            member_list,
            "etcdserverpb",
            MemberListRequest,
            MemberListResponse
        ),
        "cluster/member/promote" => unary!(
            call,
            cluster,
            Cluster,
            member_promote,
            "etcdserverpb",
            MemberPromoteRequest,
            MemberPromoteResponse
        ),
        "maintenance/alarm" => unary!(
            call,
            mnt,
            Maintenance,
            alarm,
            "etcdserverpb",
            AlarmRequest,
            AlarmResponse
        ),
        "maintenance/status" => unary!(
            call,
            mnt,
            Maintenance,
            status,
            "etcdserverpb",
            StatusRequest,
            StatusResponse
        ),
        "maintenance/defragment" => unary!(
            call,
            mnt,
            Maintenance,
            defragment,
            "etcdserverpb",
            DefragmentRequest,
            DefragmentResponse
        ),
        // etcd binds Hash and HashKV to the same path; the first binding, Hash, wins.
        "maintenance/hash" => unary!(
            call,
            mnt,
            Maintenance,
            hash,
            "etcdserverpb",
            HashRequest,
            HashResponse
        ),
        "maintenance/transfer-leadership" => unary!(
            call,
            mnt,
            Maintenance,
            move_leader,
            "etcdserverpb",
            MoveLeaderRequest,
            MoveLeaderResponse
        ),
        "auth/enable" => unary!(
            call,
            auth,
            Auth,
            auth_enable,
            "etcdserverpb",
            AuthEnableRequest,
            AuthEnableResponse
        ),
        "auth/disable" => unary!(
            call,
            auth,
            Auth,
            auth_disable,
            "etcdserverpb",
            AuthDisableRequest,
            AuthDisableResponse
        ),
        "auth/authenticate" => unary!(
            call,
            auth,
            Auth,
            authenticate,
            "etcdserverpb",
            AuthenticateRequest,
            AuthenticateResponse
        ),
        "auth/user/add" => unary!(
            call,
            auth,
            Auth,
            user_add,
            "etcdserverpb",
            AuthUserAddRequest,
            AuthUserAddResponse
        ),
        "auth/user/get" => unary!(
            call,
            auth,
            Auth,
            user_get,
            "etcdserverpb",
            AuthUserGetRequest,
            AuthUserGetResponse
        ),
        "auth/user/list" => unary!(
            call,
            auth,
            Auth,
            user_list,
            "etcdserverpb",
            AuthUserListRequest,
            AuthUserListResponse
        ),
        "auth/user/delete" => unary!(
            call,
            auth,
            Auth,
            user_delete,
            "etcdserverpb",
            AuthUserDeleteRequest,
            AuthUserDeleteResponse
        ),
        "auth/user/changepw" => unary!(
            call,
            auth,
            Auth,
            user_change_password,
            "etcdserverpb",
            AuthUserChangePasswordRequest,
            AuthUserChangePasswordResponse
        ),
        "auth/user/grant" => unary!(
            call,
            auth,
            Auth,
            user_grant_role,
            "etcdserverpb",
            AuthUserGrantRoleRequest,
            AuthUserGrantRoleResponse
        ),
        "auth/user/revoke" => unary!(
            call,
            auth,
            Auth,
            user_revoke_role,
            "etcdserverpb",
            AuthUserRevokeRoleRequest,
            AuthUserRevokeRoleResponse
        ),
        "auth/role/add" => unary!(
            call,
            auth,
            Auth,
            role_add,
            "etcdserverpb",
            AuthRoleAddRequest,
            AuthRoleAddResponse
        ),
        "auth/role/get" => unary!(
            call,
            auth,
            Auth,
            role_get,
            "etcdserverpb",
            AuthRoleGetRequest,
            AuthRoleGetResponse
        ),
        "auth/role/list" => unary!(
            call,
            auth,
            Auth,
            role_list,
            "etcdserverpb",
            AuthRoleListRequest,
            AuthRoleListResponse
        ),
        "auth/role/delete" => unary!(
            call,
            auth,
            Auth,
            role_delete,
            "etcdserverpb",
            AuthRoleDeleteRequest,
            AuthRoleDeleteResponse
        ),
        "auth/role/grant" => unary!(
            call,
            auth,
            Auth,
            role_grant_permission,
            "etcdserverpb",
            AuthRoleGrantPermissionRequest,
            AuthRoleGrantPermissionResponse
        ),
        "auth/role/revoke" => unary!(
            call,
            auth,
            Auth,
            role_revoke_permission,
            "etcdserverpb",
            AuthRoleRevokePermissionRequest,
            AuthRoleRevokePermissionResponse
        ),
        "lock/lock" => unary!(
            call,
            lock,
            Lock,
            lock,
            "v3lockpb",
            LockRequest,
            LockResponse
        ),
        "lock/unlock" => unary!(
            call,
            lock,
            Lock,
            unlock,
            "v3lockpb",
            UnlockRequest,
            UnlockResponse
        ),
        "election/campaign" => unary!(
            call,
            election,
            Election,
            campaign,
            "v3electionpb",
            CampaignRequest,
            CampaignResponse
        ),
        "election/proclaim" => unary!(
            call,
            election,
            Election,
            proclaim,
            "v3electionpb",
            ProclaimRequest,
            ProclaimResponse
        ),
        "election/leader" => unary!(
            call,
            election,
            Election,
            leader,
            "v3electionpb",
            LeaderRequest,
            LeaderResponse
        ),
        "election/resign" => unary!(
            call,
            election,
            Election,
            resign,
            "v3electionpb",
            ResignRequest,
            ResignResponse
        ),
        _ => Err(Status::new(Code::NotFound, NOT_FOUND)),
    }
}

/// grpc-gateway's HTTP status for a gRPC code (`runtime.HTTPStatusFromCode`).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The message of an unknown path, answered as Go's `http.NotFound`.
const NOT_FOUND: &str = "gateway: no such call";

/// etcd's error body: `{"error":msg,"message":msg,"code":n}`.
fn refusal(status: &Status) -> Response {
    if status.code() == Code::NotFound && status.message() == NOT_FOUND {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not Found\n",
        )
            .into_response();
    }
    let msg = serde_json::Value::from(status.message()).to_string();
    let body = format!(
        r#"{{"error":{msg},"message":{msg},"code":{}}}"#,
        status.code() as i32
    );
    (
        http_status(status.code()),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
