//! The `json` format: what etcdctl 3.4 gets from `json.Marshal` of each response.
//!
//! KV, member, alarm and revoke answers are etcd's protobuf structs (proto json
//! tags, all `omitempty`). Lease grant/keep-alive/timetolive/list and watch are
//! clientv3 wrapper structs: the header is embedded (its fields inlined) or named
//! `Header`, and some fields have no `omitempty`. Each function mirrors one of them.

use revkv_proto::etcdserverpb::{self as pb, response_op};
use revkv_proto::mvccpb;

use super::gojson::{self, Obj};
use super::{DbStatus, EpHashKv, EpHealth, EpStatus};

/// The header's fields, for structs that embed `*pb.ResponseHeader`.
fn header_fields(o: &mut Obj, h: Option<&pb::ResponseHeader>) {
    if let Some(h) = h {
        o.int_omit("cluster_id", h.cluster_id)
            .int_omit("member_id", h.member_id)
            .int_omit("revision", h.revision)
            .int_omit("raft_term", h.raft_term);
    }
}

/// `pb.ResponseHeader`.
fn header(h: &pb::ResponseHeader) -> String {
    let mut o = Obj::new();
    header_fields(&mut o, Some(h));
    o.finish()
}

/// A `header,omitempty` field (a nil pointer is dropped).
fn header_field(o: &mut Obj, h: Option<&pb::ResponseHeader>) {
    if let Some(h) = h {
        o.raw("header", &header(h));
    }
}

/// `mvccpb.KeyValue`.
pub fn kv(kv: &mvccpb::KeyValue) -> String {
    Obj::new()
        .bytes_omit("key", &kv.key)
        .int_omit("create_revision", kv.create_revision)
        .int_omit("mod_revision", kv.mod_revision)
        .int_omit("version", kv.version)
        .bytes_omit("value", &kv.value)
        .int_omit("lease", kv.lease)
        .finish()
}

fn kvs(list: &[mvccpb::KeyValue]) -> Vec<String> {
    list.iter().map(kv).collect()
}

/// A response with only a header (revoke, move-leader).
pub fn header_only(h: Option<&pb::ResponseHeader>) -> String {
    let mut o = Obj::new();
    header_field(&mut o, h);
    o.finish()
}

/// `pb.RangeResponse`.
pub fn range(r: &pb::RangeResponse) -> String {
    let mut o = Obj::new();
    header_field(&mut o, r.header.as_ref());
    o.list_omit("kvs", &kvs(&r.kvs))
        .bool_omit("more", r.more)
        .int_omit("count", r.count)
        .finish()
}

/// `pb.PutResponse`.
pub fn put(r: &pb::PutResponse) -> String {
    let mut o = Obj::new();
    header_field(&mut o, r.header.as_ref());
    if let Some(prev) = &r.prev_kv {
        o.raw("prev_kv", &kv(prev));
    }
    o.finish()
}

/// `pb.DeleteRangeResponse`.
pub fn del(r: &pb::DeleteRangeResponse) -> String {
    let mut o = Obj::new();
    header_field(&mut o, r.header.as_ref());
    o.int_omit("deleted", r.deleted)
        .list_omit("prev_kvs", &kvs(&r.prev_kvs))
        .finish()
}

/// `pb.TxnResponse`; each `ResponseOp` is Go's oneof wrapper,
/// `{"Response":{"ResponseRange":{…}}}`.
pub fn txn(r: &pb::TxnResponse) -> String {
    let ops: Vec<String> = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                Some(response_op::Response::ResponseRange(g)) => {
                    Obj::new().raw("ResponseRange", &range(g)).finish()
                }
                Some(response_op::Response::ResponsePut(p)) => {
                    Obj::new().raw("ResponsePut", &put(p)).finish()
                }
                Some(response_op::Response::ResponseDeleteRange(d)) => {
                    Obj::new().raw("ResponseDeleteRange", &del(d)).finish()
                }
                Some(response_op::Response::ResponseTxn(t)) => {
                    Obj::new().raw("ResponseTxn", &txn(t)).finish()
                }
                None => "null".to_owned(),
            };
            Obj::new().raw("Response", &inner).finish()
        })
        .collect();
    let mut o = Obj::new();
    header_field(&mut o, r.header.as_ref());
    o.bool_omit("succeeded", r.succeeded)
        .list_omit("responses", &ops)
        .finish()
}

/// `mvccpb.Event`.
fn event(e: &mvccpb::Event) -> String {
    let mut o = Obj::new();
    o.int_omit("type", e.r#type);
    if let Some(k) = &e.kv {
        o.raw("kv", &kv(k));
    }
    if let Some(p) = &e.prev_kv {
        o.raw("prev_kv", &kv(p));
    }
    o.finish()
}

/// clientv3's `WatchResponse`: `Header` by value, no omitempty anywhere.
pub fn watch(r: &pb::WatchResponse) -> String {
    let events: Vec<String> = r.events.iter().map(event).collect();
    // clientv3 always makes the slice, so no events is `[]`, never `null`.
    let events = gojson::list(&events);
    Obj::new()
        .raw("Header", &header(&r.header.unwrap_or_default()))
        .raw("Events", &events)
        .int("CompactRevision", r.compact_revision)
        .bool("Canceled", r.canceled)
        .bool("Created", r.created)
        .finish()
}

/// clientv3's `LeaseGrantResponse`: embedded header, `ID`, `TTL`, `Error`.
pub fn grant(r: &pb::LeaseGrantResponse) -> String {
    let mut o = Obj::new();
    header_fields(&mut o, r.header.as_ref());
    o.int("ID", r.id)
        .int("TTL", r.ttl)
        .str("Error", &r.error)
        .finish()
}

/// clientv3's `LeaseKeepAliveResponse`: embedded header, `ID`, `TTL`.
pub fn keep_alive(r: &pb::LeaseKeepAliveResponse) -> String {
    let mut o = Obj::new();
    header_fields(&mut o, r.header.as_ref());
    o.int("ID", r.id).int("TTL", r.ttl).finish()
}

/// clientv3's `LeaseTimeToLiveResponse`: embedded header, `id`, `ttl`,
/// `granted-ttl`, `keys` (null when none).
pub fn time_to_live(r: &pb::LeaseTimeToLiveResponse) -> String {
    let keys = if r.keys.is_empty() {
        "null".to_owned()
    } else {
        gojson::list(
            &r.keys
                .iter()
                .map(|k| format!("\"{}\"", gojson::base64(k)))
                .collect::<Vec<_>>(),
        )
    };
    let mut o = Obj::new();
    header_fields(&mut o, r.header.as_ref());
    o.int("id", r.id)
        .int("ttl", r.ttl)
        .int("granted-ttl", r.granted_ttl)
        .raw("keys", &keys)
        .finish()
}

/// clientv3's `LeaseLeasesResponse`: embedded header, `leases` (never null).
pub fn leases(r: &pb::LeaseLeasesResponse) -> String {
    let items: Vec<String> = r
        .leases
        .iter()
        .map(|l| Obj::new().int("id", l.id).finish())
        .collect();
    let mut o = Obj::new();
    header_fields(&mut o, r.header.as_ref());
    o.raw("leases", &gojson::list(&items)).finish()
}

/// `pb.Member`.
fn member(m: &pb::Member) -> String {
    let urls = |u: &[String]| u.iter().map(|s| gojson::string(s)).collect::<Vec<_>>();
    Obj::new()
        .int_omit("ID", m.id)
        .str_omit("name", &m.name)
        .list_omit("peerURLs", &urls(&m.peer_ur_ls))
        .list_omit("clientURLs", &urls(&m.client_ur_ls))
        .bool_omit("isLearner", m.is_learner)
        .finish()
}

/// `pb.MemberAddResponse`.
pub fn member_add(r: &pb::MemberAddResponse) -> String {
    let mut o = Obj::new();
    header_field(&mut o, r.header.as_ref());
    if let Some(m) = &r.member {
        o.raw("member", &member(m));
    }
    let ms: Vec<String> = r.members.iter().map(member).collect();
    o.list_omit("members", &ms).finish()
}

/// A `{header, members}` response (list, remove, update, promote).
pub fn members_response(h: Option<&pb::ResponseHeader>, members: &[pb::Member]) -> String {
    let mut o = Obj::new();
    header_field(&mut o, h);
    let ms: Vec<String> = members.iter().map(member).collect();
    o.list_omit("members", &ms).finish()
}

/// `[]epHealth`.
pub fn endpoint_health(hs: &[EpHealth]) -> String {
    let items: Vec<String> = hs
        .iter()
        .map(|h| {
            Obj::new()
                .str("endpoint", &h.ep)
                .bool("health", h.health)
                .str("took", &h.took)
                .str_omit("error", &h.error)
                .finish()
        })
        .collect();
    gojson::list(&items)
}

/// etcd 3.4's `pb.StatusResponse` (newer fields are not part of its struct).
fn status(r: &pb::StatusResponse) -> String {
    let mut o = Obj::new();
    header_field(&mut o, r.header.as_ref());
    let errors: Vec<String> = r.errors.iter().map(|e| gojson::string(e)).collect();
    o.str_omit("version", &r.version)
        .int_omit("dbSize", r.db_size)
        .int_omit("leader", r.leader)
        .int_omit("raftIndex", r.raft_index)
        .int_omit("raftTerm", r.raft_term)
        .int_omit("raftAppliedIndex", r.raft_applied_index)
        .list_omit("errors", &errors)
        .int_omit("dbSizeInUse", r.db_size_in_use)
        .bool_omit("isLearner", r.is_learner)
        .finish()
}

/// `[]epStatus`: `{"Endpoint":…, "Status":{…}}`.
pub fn endpoint_status(eps: &[EpStatus]) -> String {
    let items: Vec<String> = eps
        .iter()
        .map(|e| {
            Obj::new()
                .str("Endpoint", &e.ep)
                .raw("Status", &status(&e.resp))
                .finish()
        })
        .collect();
    gojson::list(&items)
}

/// etcd's `snapshot.Status` (no field omitted when zero).
pub fn db_status(s: &DbStatus) -> String {
    Obj::new()
        .int("hash", s.hash)
        .int("revision", s.revision)
        .int("totalKey", s.total_key)
        .int("totalSize", s.total_size)
        .finish()
}

/// A list of etcdctl's `epHashKV`, with etcd 3.4's `pb.HashKVResponse` (no
/// `hash_revision`, a 3.6 field).
pub fn endpoint_hashkv(hs: &[EpHashKv]) -> String {
    let items: Vec<String> = hs
        .iter()
        .map(|h| {
            let mut r = Obj::new();
            header_field(&mut r, h.resp.header.as_ref());
            r.int_omit("hash", h.resp.hash)
                .int_omit("compact_revision", h.resp.compact_revision);
            Obj::new()
                .str("Endpoint", &h.ep)
                .raw("HashKV", &r.finish())
                .finish()
        })
        .collect();
    gojson::list(&items)
}

/// `pb.AlarmResponse`.
pub fn alarm(r: &pb::AlarmResponse) -> String {
    let mut o = Obj::new();
    header_field(&mut o, r.header.as_ref());
    let alarms: Vec<String> = r
        .alarms
        .iter()
        .map(|a| {
            Obj::new()
                .int_omit("memberID", a.member_id)
                .int_omit("alarm", a.alarm)
                .finish()
        })
        .collect();
    o.list_omit("alarms", &alarms).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        })
    }

    #[test]
    fn shapes_match_etcdctl() {
        let get = pb::RangeResponse {
            header: hdr(),
            kvs: vec![mvccpb::KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            range(&get),
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":3,"raft_term":4},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}],"count":1}"#
        );
        let grant = pb::LeaseGrantResponse {
            header: hdr(),
            id: 10,
            ttl: 100,
            error: String::new(),
        };
        assert_eq!(
            super::grant(&grant),
            r#"{"cluster_id":1,"member_id":2,"revision":3,"raft_term":4,"ID":10,"TTL":100,"Error":""}"#
        );
        let ttl = pb::LeaseTimeToLiveResponse {
            header: hdr(),
            id: 4660,
            ttl: -1,
            granted_ttl: 0,
            keys: vec![],
        };
        assert_eq!(
            time_to_live(&ttl),
            r#"{"cluster_id":1,"member_id":2,"revision":3,"raft_term":4,"id":4660,"ttl":-1,"granted-ttl":0,"keys":null}"#
        );
        assert_eq!(alarm(&pb::AlarmResponse::default()), "{}");
    }
}
