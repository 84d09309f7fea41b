//! The `fields` format: one `"Name" : value` line per field, strings as Go `%q`.

use revkv_proto::etcdserverpb::{self as pb, response_op};
use revkv_proto::mvccpb;

use super::{alarm_type_name, event_type_name, DbStatus, EpHashKv, EpHealth, EpStatus};
use crate::gofmt::quote;

fn hdr(out: &mut String, h: Option<&pb::ResponseHeader>) {
    let h = h.copied().unwrap_or_default();
    out.push_str(&format!("\"ClusterID\" : {}\n", h.cluster_id));
    out.push_str(&format!("\"MemberID\" : {}\n", h.member_id));
    out.push_str(&format!("\"Revision\" : {}\n", h.revision));
    out.push_str(&format!("\"RaftTerm\" : {}\n", h.raft_term));
}

fn kv(out: &mut String, pfx: &str, kv: &mvccpb::KeyValue) {
    out.push_str(&format!("\"{pfx}Key\" : {}\n", quote(&kv.key)));
    out.push_str(&format!(
        "\"{pfx}CreateRevision\" : {}\n",
        kv.create_revision
    ));
    out.push_str(&format!("\"{pfx}ModRevision\" : {}\n", kv.mod_revision));
    out.push_str(&format!("\"{pfx}Version\" : {}\n", kv.version));
    out.push_str(&format!("\"{pfx}Value\" : {}\n", quote(&kv.value)));
    out.push_str(&format!("\"{pfx}Lease\" : {}\n", kv.lease));
}

fn get_into(out: &mut String, r: &pb::RangeResponse) {
    hdr(out, r.header.as_ref());
    for x in &r.kvs {
        kv(out, "", x);
    }
    out.push_str(&format!("\"More\" : {}\n", r.more));
    out.push_str(&format!("\"Count\" : {}\n", r.count));
}

fn put_into(out: &mut String, r: &pb::PutResponse) {
    hdr(out, r.header.as_ref());
    if let Some(prev) = &r.prev_kv {
        kv(out, "Prev", prev);
    }
}

fn del_into(out: &mut String, r: &pb::DeleteRangeResponse) {
    hdr(out, r.header.as_ref());
    out.push_str(&format!("\"Deleted\" : {}\n", r.deleted));
    for x in &r.prev_kvs {
        kv(out, "Prev", x);
    }
}

/// `get`.
pub fn get(r: &pb::RangeResponse) -> Vec<u8> {
    let mut out = String::new();
    get_into(&mut out, r);
    out.into_bytes()
}

/// `put`.
pub fn put(r: &pb::PutResponse) -> Vec<u8> {
    let mut out = String::new();
    put_into(&mut out, r);
    out.into_bytes()
}

/// `del`.
pub fn del(r: &pb::DeleteRangeResponse) -> Vec<u8> {
    let mut out = String::new();
    del_into(&mut out, r);
    out.into_bytes()
}

/// `txn`: the header and outcome, then each response with its own header.
pub fn txn(r: &pb::TxnResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    out.push_str(&format!("\"Succeeded\" : {}\n", r.succeeded));
    for op in &r.responses {
        match &op.response {
            Some(response_op::Response::ResponseRange(g)) => get_into(&mut out, g),
            Some(response_op::Response::ResponsePut(p)) => put_into(&mut out, p),
            Some(response_op::Response::ResponseDeleteRange(d)) => del_into(&mut out, d),
            Some(response_op::Response::ResponseTxn(_)) | None => out.push_str(&format!(
                "\"Unknown\" : {}\n",
                quote(format!("{op:?}").as_bytes())
            )),
        }
    }
    out.into_bytes()
}

/// One watch response.
pub fn watch(r: &pb::WatchResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for ev in &r.events {
        out.push_str(&format!("\"Type\" : {}\n", event_type_name(ev.r#type)));
        if let Some(prev) = &ev.prev_kv {
            kv(&mut out, "Prev", prev);
        }
        kv(&mut out, "", &ev.kv.clone().unwrap_or_default());
    }
    out.into_bytes()
}

/// A response with only a header (lease revoke).
pub fn header_only(h: Option<&pb::ResponseHeader>) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, h);
    out.into_bytes()
}

/// Lease grant and keep-alive.
pub fn id_ttl(h: Option<&pb::ResponseHeader>, id: i64, ttl: i64) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, h);
    out.push_str(&format!("\"ID\" : {id}\n\"TTL\" : {ttl}\n"));
    out.into_bytes()
}

/// `lease timetolive`.
pub fn time_to_live(r: &pb::LeaseTimeToLiveResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    out.push_str(&format!(
        "\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
        r.id, r.ttl, r.granted_ttl
    ));
    for k in &r.keys {
        out.push_str(&format!("\"Key\" : {}\n", quote(k)));
    }
    out.into_bytes()
}

/// `lease list`.
pub fn leases(r: &pb::LeaseLeasesResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for l in &r.leases {
        out.push_str(&format!("\"ID\" : {}\n", l.id));
    }
    out.into_bytes()
}

/// `member list`.
pub fn member_list(r: &pb::MemberListResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for m in &r.members {
        out.push_str(&format!("\"ID\" : {}\n", m.id));
        out.push_str(&format!("\"Name\" : {}\n", quote(m.name.as_bytes())));
        for u in &m.peer_ur_ls {
            out.push_str(&format!("\"PeerURL\" : {}\n", quote(u.as_bytes())));
        }
        for u in &m.client_ur_ls {
            out.push_str(&format!("\"ClientURL\" : {}\n", quote(u.as_bytes())));
        }
        out.push_str(&format!("\"IsLearner\" : {}\n\n", m.is_learner));
    }
    out.into_bytes()
}

/// `endpoint health`.
pub fn endpoint_health(hs: &[EpHealth]) -> Vec<u8> {
    let mut out = String::new();
    for h in hs {
        out.push_str(&format!("\"Endpoint\" : {}\n", quote(h.ep.as_bytes())));
        out.push_str(&format!("\"Health\" : {}\n", h.health));
        out.push_str(&format!("\"Took\" : {}\n", h.took));
        out.push_str(&format!("\"Error\" : {}\n\n", h.error));
    }
    out.into_bytes()
}

/// `endpoint status`.
pub fn endpoint_status(eps: &[EpStatus]) -> Vec<u8> {
    let mut out = String::new();
    for ep in eps {
        let r = &ep.resp;
        hdr(&mut out, r.header.as_ref());
        out.push_str(&format!("\"Version\" : {}\n", quote(r.version.as_bytes())));
        out.push_str(&format!("\"DBSize\" : {}\n", r.db_size));
        out.push_str(&format!("\"Leader\" : {}\n", r.leader));
        out.push_str(&format!("\"IsLearner\" : {}\n", r.is_learner));
        out.push_str(&format!("\"RaftIndex\" : {}\n", r.raft_index));
        out.push_str(&format!("\"RaftTerm\" : {}\n", r.raft_term));
        out.push_str(&format!(
            "\"RaftAppliedIndex\" : {}\n",
            r.raft_applied_index
        ));
        // Go's `%v` of a []string.
        out.push_str(&format!("\"Errors\" : [{}]\n", r.errors.join(" ")));
        out.push_str(&format!("\"Endpoint\" : {}\n\n", quote(ep.ep.as_bytes())));
    }
    out.into_bytes()
}

/// `snapshot status`.
pub fn db_status(s: &DbStatus) -> Vec<u8> {
    format!(
        "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
        s.hash, s.revision, s.total_key, s.total_size
    )
    .into_bytes()
}

/// `endpoint hashkv`.
pub fn endpoint_hashkv(hs: &[EpHashKv]) -> Vec<u8> {
    let mut out = String::new();
    for h in hs {
        hdr(&mut out, h.resp.header.as_ref());
        out.push_str(&format!("\"Endpoint\" : {}\n", quote(h.ep.as_bytes())));
        out.push_str(&format!("\"Hash\" : {}\n\n", h.resp.hash));
    }
    out.into_bytes()
}

/// `alarm list|disarm`.
pub fn alarm(r: &pb::AlarmResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for a in &r.alarms {
        out.push_str(&format!("\"MemberID\" : {}\n", a.member_id));
        out.push_str(&format!("\"AlarmType\" : {}\n\n", alarm_type_name(a.alarm)));
    }
    out.into_bytes()
}
