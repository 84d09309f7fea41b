//! The gRPC/protobuf types revkv speaks.
//!
//! revkv is wire compatible with etcd's v3 API, so this crate carries our own
//! copy of etcd's `.proto` definitions (packages `etcdserverpb`, `mvccpb`,
//! `authpb`, `v3lockpb` and `v3electionpb`, with etcd's exact message, field and service names and field
//! numbers) and compiles them with tonic/prost. Keeping etcd's package names
//! means the generated services answer on etcd's gRPC paths, e.g.
//! `/etcdserverpb.KV/Range`, so unmodified etcd clients and `etcdctl` work
//! against revkv.
//!
//! The crate also holds revkv's own messages (package `revkvpb`): the raft
//! log entry payload ([`revkvpb::InternalRaftRequest`]) and the peer transport
//! service ([`revkvpb::peer_server::Peer`]).
//!
//! Beside the messages: [`codec`], the prost codec with small starting buffers the
//! generated services and clients use, and [`io`], the TCP transport on which HTTP/2
//! packs small frames into one write (servers accept and clients dial through it).
//!
//! The messages are generated at build time from the files under `proto/`;
//! the build uses a vendored `protoc`, so no system install is needed.

pub mod codec;
pub mod io;
pub mod tls;

/// etcd's `mvccpb` package: [`mvccpb::KeyValue`] and watch [`mvccpb::Event`]s.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `authpb` package: users, roles and permissions.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's `etcdserverpb` package: the KV, Watch, Lease, Cluster, Maintenance
/// and Auth services and their request/response messages.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// etcd's `v3lockpb` package: the Lock service.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// etcd's `v3electionpb` package: the Election service.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// revkv's internal messages: raft log entry payloads and the peer transport.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod revkvpb {
    tonic::include_proto!("revkvpb");
}

/// The descriptors of every generated message, for proto3 JSON (etcd's gateway).
pub fn descriptors() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        // Written by build.rs from the same protos as the code: a decode failure is a
        // build defect, caught by the test below.
        prost_reflect::DescriptorPool::decode(
            &include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"))[..],
        )
        .unwrap_or_default()
    })
}

/// The `range_end` under which a range covers every key that starts with `prefix`
/// (etcd's `GetPrefixRangeEnd`): the prefix up to its last byte below 0xff, that
/// byte incremented; `"\0"`, the end of the keyspace, when every byte is 0xff.
///
/// ```
/// assert_eq!(revkv_proto::prefix_end(b"app/"), b"app0");
/// assert_eq!(revkv_proto::prefix_end(b"a\xff"), b"b");
/// assert_eq!(revkv_proto::prefix_end(b"\xff"), vec![0]);
/// ```
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// grpc-go's name of a status code (`codes.Code.String()`), as etcd's Prometheus
/// labels and its clients' `rpc error: code = …` messages spell it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_descriptors_decode_and_name_etcds_messages() {
        let pool = super::descriptors();
        assert!(pool
            .get_message_by_name("etcdserverpb.RangeRequest")
            .is_some());
        assert!(pool.get_message_by_name("mvccpb.KeyValue").is_some());
    }

    use prost::Message;

    use crate::etcdserverpb::{self, PutRequest, RangeRequest};
    use crate::{mvccpb, revkvpb};

    #[test]
    fn put_request_uses_etcd_field_numbers() {
        let req = PutRequest {
            key: b"k".to_vec(),
            value: b"val".to_vec(),
            lease: 300,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        };
        let expected: &[u8] = &[
            0x0a, 0x01, b'k', // field 1 (key), length-delimited, len 1
            0x12, 0x03, b'v', b'a', b'l', // field 2 (value), len 3
            0x18, 0xac, 0x02, // field 3 (lease), varint 300
            0x20, 0x01, // field 4 (prev_kv), true
            0x28, 0x01, // field 5 (ignore_value), true
            0x30, 0x01, // field 6 (ignore_lease), true
        ];
        assert_eq!(req.encode_to_vec(), expected);
        assert_eq!(PutRequest::decode(expected), Ok(req));
    }

    #[test]
    fn default_put_request_encodes_to_nothing() {
        assert!(PutRequest::default().encode_to_vec().is_empty());
    }

    #[test]
    fn range_request_round_trip() {
        let req = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 10,
            revision: 42,
            sort_order: etcdserverpb::range_request::SortOrder::Descend as i32,
            sort_target: etcdserverpb::range_request::SortTarget::Mod as i32,
            serializable: true,
            keys_only: true,
            count_only: false,
            min_mod_revision: 1,
            max_mod_revision: 2,
            min_create_revision: 3,
            max_create_revision: 4,
        };
        let bytes = req.encode_to_vec();
        assert_eq!(RangeRequest::decode(bytes.as_slice()), Ok(req));
        // sort_order is field 5 (tag 0x28) and DESCEND is 2.
        assert!(bytes.windows(2).any(|w| w == [0x28, 0x02]));
    }

    #[test]
    fn key_value_uses_etcd_field_numbers() {
        let kv = mvccpb::KeyValue {
            key: b"k".to_vec(),
            create_revision: 1,
            mod_revision: 2,
            version: 3,
            value: b"v".to_vec(),
            lease: 4,
        };
        let expected: &[u8] = &[
            0x0a, 0x01, b'k', 0x10, 0x01, 0x18, 0x02, 0x20, 0x03, 0x2a, 0x01, b'v', 0x30, 0x04,
        ];
        assert_eq!(kv.encode_to_vec(), expected);
    }

    #[test]
    fn internal_raft_request_round_trip() {
        let req = revkvpb::InternalRaftRequest {
            header: Some(revkvpb::RequestHeader {
                id: 7,
                ..Default::default()
            }),
            request: Some(revkvpb::internal_raft_request::Request::Put(PutRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        };
        let bytes = req.encode_to_vec();
        // header is field 1, put is field 3.
        assert_eq!(&bytes[..4], &[0x0a, 0x02, 0x08, 0x07]);
        assert_eq!(bytes[4], 0x1a);
        assert_eq!(
            revkvpb::InternalRaftRequest::decode(bytes.as_slice()),
            Ok(req)
        );
    }

    #[test]
    fn service_names_match_etcd() {
        use tonic::server::NamedService;

        use crate::etcdserverpb::{
            auth_server, cluster_server, kv_server, lease_server, maintenance_server, watch_server,
        };
        use crate::revkvpb::peer_server;

        let names = [
            (kv_server::SERVICE_NAME, "etcdserverpb.KV"),
            (watch_server::SERVICE_NAME, "etcdserverpb.Watch"),
            (lease_server::SERVICE_NAME, "etcdserverpb.Lease"),
            (cluster_server::SERVICE_NAME, "etcdserverpb.Cluster"),
            (maintenance_server::SERVICE_NAME, "etcdserverpb.Maintenance"),
            (auth_server::SERVICE_NAME, "etcdserverpb.Auth"),
            (peer_server::SERVICE_NAME, "revkvpb.Peer"),
        ];
        for (got, want) in names {
            assert_eq!(got, want);
        }
        assert_eq!(
            <kv_server::KvServer<()> as NamedService>::NAME,
            "etcdserverpb.KV"
        );
        assert_eq!(
            <peer_server::PeerServer<()> as NamedService>::NAME,
            "revkvpb.Peer"
        );
    }

    /// Every RPC of etcd's six services, by its full gRPC path. The generated
    /// server routes on these exact strings.
    const ETCD_METHOD_PATHS: &[&str] = &[
        "/etcdserverpb.KV/Range",
        "/etcdserverpb.KV/Put",
        "/etcdserverpb.KV/DeleteRange",
        "/etcdserverpb.KV/Txn",
        "/etcdserverpb.KV/Compact",
        "/etcdserverpb.Watch/Watch",
        "/etcdserverpb.Lease/LeaseGrant",
        "/etcdserverpb.Lease/LeaseRevoke",
        "/etcdserverpb.Lease/LeaseKeepAlive",
        "/etcdserverpb.Lease/LeaseTimeToLive",
        "/etcdserverpb.Lease/LeaseLeases",
        "/etcdserverpb.Cluster/MemberAdd",
        "/etcdserverpb.Cluster/MemberRemove",
        "/etcdserverpb.Cluster/MemberUpdate",
        "/etcdserverpb.Cluster/MemberList",
        "/etcdserverpb.Cluster/MemberPromote",
        "/etcdserverpb.Maintenance/Alarm",
        "/etcdserverpb.Maintenance/Status",
        "/etcdserverpb.Maintenance/Defragment",
        "/etcdserverpb.Maintenance/Hash",
        "/etcdserverpb.Maintenance/HashKV",
        "/etcdserverpb.Maintenance/Snapshot",
        "/etcdserverpb.Maintenance/MoveLeader",
        "/etcdserverpb.Maintenance/Downgrade",
        "/etcdserverpb.Auth/AuthEnable",
        "/etcdserverpb.Auth/AuthDisable",
        "/etcdserverpb.Auth/AuthStatus",
        "/etcdserverpb.Auth/Authenticate",
        "/etcdserverpb.Auth/UserAdd",
        "/etcdserverpb.Auth/UserGet",
        "/etcdserverpb.Auth/UserList",
        "/etcdserverpb.Auth/UserDelete",
        "/etcdserverpb.Auth/UserChangePassword",
        "/etcdserverpb.Auth/UserGrantRole",
        "/etcdserverpb.Auth/UserRevokeRole",
        "/etcdserverpb.Auth/RoleAdd",
        "/etcdserverpb.Auth/RoleGet",
        "/etcdserverpb.Auth/RoleList",
        "/etcdserverpb.Auth/RoleDelete",
        "/etcdserverpb.Auth/RoleGrantPermission",
        "/etcdserverpb.Auth/RoleRevokePermission",
    ];

    #[test]
    fn generated_code_routes_every_etcd_method_path() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
        for path in ETCD_METHOD_PATHS {
            // Once in the client, once in the server's router.
            let quoted = format!("\"{path}\"");
            assert_eq!(generated.matches(&quoted).count(), 2, "{path}");
        }
        let all = generated.matches("\"/etcdserverpb.").count();
        assert_eq!(all, 2 * ETCD_METHOD_PATHS.len(), "unexpected extra RPCs");

        let peer = include_str!(concat!(env!("OUT_DIR"), "/revkvpb.rs"));
        assert_eq!(peer.matches("\"/revkvpb.Peer/Send\"").count(), 2);
    }
}
