//! The `simple` format: keys and values on their own lines, one-line summaries.

use revkv_proto::etcdserverpb::{self as pb, response_op};
use revkv_proto::mvccpb;

use super::{alarm_type_name, event_type_name, EpHealth, MemberOp, Printer};
use crate::gofmt;

/// etcdctl's `printKV`: the key line (unless value-only), then the value line.
fn kv(p: &Printer, out: &mut Vec<u8>, kv: &mvccpb::KeyValue) {
    let (k, v) = if p.hex {
        (
            gofmt::hex_prefixed(&kv.key).into_bytes(),
            gofmt::hex_prefixed(&kv.value).into_bytes(),
        )
    } else {
        (kv.key.clone(), kv.value.clone())
    };
    if !p.value_only {
        out.extend_from_slice(&k);
        out.push(b'\n');
    }
    out.extend_from_slice(&v);
    out.push(b'\n');
}

/// `get`: every key-value.
pub fn get(p: &Printer, r: &pb::RangeResponse) -> Vec<u8> {
    let mut out = Vec::new();
    for x in &r.kvs {
        kv(p, &mut out, x);
    }
    out
}

/// `put`: `OK`, then the previous key-value when asked for.
pub fn put(p: &Printer, r: &pb::PutResponse) -> Vec<u8> {
    let mut out = b"OK\n".to_vec();
    if let Some(prev) = &r.prev_kv {
        kv(p, &mut out, prev);
    }
    out
}

/// `del`: the count, then the deleted key-values when asked for.
pub fn del(p: &Printer, r: &pb::DeleteRangeResponse) -> Vec<u8> {
    let mut out = format!("{}\n", r.deleted).into_bytes();
    for x in &r.prev_kvs {
        kv(p, &mut out, x);
    }
    out
}

/// `txn`: `SUCCESS`/`FAILURE`, then each response after an empty line.
pub fn txn(p: &Printer, r: &pb::TxnResponse) -> Vec<u8> {
    let mut out = if r.succeeded {
        b"SUCCESS\n".to_vec()
    } else {
        b"FAILURE\n".to_vec()
    };
    for op in &r.responses {
        out.push(b'\n');
        match &op.response {
            Some(response_op::Response::ResponseRange(g)) => out.extend(get(p, g)),
            Some(response_op::Response::ResponsePut(x)) => out.extend(put(p, x)),
            Some(response_op::Response::ResponseDeleteRange(d)) => out.extend(del(p, d)),
            // etcdctl 3.4 cannot nest txns; print what it would for an unknown op.
            Some(response_op::Response::ResponseTxn(_)) | None => {
                out.extend_from_slice(format!("unexpected response {op:?}\n").as_bytes())
            }
        }
    }
    out
}

/// One watch response: per event the type, the previous key-value, the key-value.
pub fn watch(p: &Printer, events: &[mvccpb::Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in events {
        out.extend_from_slice(event_type_name(ev.r#type).as_bytes());
        out.push(b'\n');
        if let Some(prev) = &ev.prev_kv {
            kv(p, &mut out, prev);
        }
        kv(p, &mut out, &ev.kv.clone().unwrap_or_default());
    }
    out
}

/// `lease timetolive`.
pub fn time_to_live(r: &pb::LeaseTimeToLiveResponse, keys: bool) -> Vec<u8> {
    if r.granted_ttl == 0 && r.ttl == -1 {
        return format!("lease {:016x} already expired\n", r.id).into_bytes();
    }
    let mut txt = format!(
        "lease {:016x} granted with TTL({}s), remaining({}s)",
        r.id, r.granted_ttl, r.ttl
    )
    .into_bytes();
    if keys {
        // Go's `%v` of a []string: `[a b c]`.
        txt.extend_from_slice(b", attached keys([");
        for (i, k) in r.keys.iter().enumerate() {
            if i > 0 {
                txt.push(b' ');
            }
            txt.extend_from_slice(k);
        }
        txt.extend_from_slice(b"])");
    }
    txt.push(b'\n');
    txt
}

/// `lease list`.
pub fn leases(r: &pb::LeaseLeasesResponse) -> Vec<u8> {
    let mut out = format!("found {} leases\n", r.leases.len());
    for l in &r.leases {
        out.push_str(&format!("{:016x}\n", l.id));
    }
    out.into_bytes()
}

/// `member add`: the summary line (the ETCD_* block is the command's own output).
pub fn member_add(r: &pb::MemberAddResponse) -> Vec<u8> {
    let id = r.member.as_ref().map(|m| m.id).unwrap_or(0);
    let cluster = r.header.as_ref().map(|h| h.cluster_id).unwrap_or(0);
    format!("Member {id:16x} added to cluster {cluster:16x}\n").into_bytes()
}

/// `member remove|update|promote`.
pub fn member_change(op: MemberOp, header: Option<&pb::ResponseHeader>) -> Vec<u8> {
    let cluster = header.map(|h| h.cluster_id).unwrap_or(0);
    let line = match op {
        MemberOp::Remove(id) => format!("Member {id:16x} removed from cluster {cluster:16x}"),
        MemberOp::Update(id) => format!("Member {id:16x} updated in cluster {cluster:16x}"),
        MemberOp::Promote(id) => format!("Member {id:16x} promoted in cluster {cluster:16x}"),
    };
    format!("{line}\n").into_bytes()
}

/// Table rows joined with `, ` (member list, endpoint status).
pub fn rows(rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = String::new();
    for r in rows {
        out.push_str(&r.join(", "));
        out.push('\n');
    }
    out.into_bytes()
}

/// `endpoint health` (etcdctl prints these on stderr).
pub fn endpoint_health(hs: &[EpHealth]) -> Vec<u8> {
    let mut out = String::new();
    for h in hs {
        if h.error.is_empty() {
            out.push_str(&format!(
                "{} is healthy: successfully committed proposal: took = {}\n",
                h.ep, h.took
            ));
        } else {
            out.push_str(&format!(
                "{} is unhealthy: failed to commit proposal: {}\n",
                h.ep, h.error
            ));
        }
    }
    out.into_bytes()
}

/// `alarm list|disarm`: Go's `%+v` of each `AlarmMember` (its proto text form).
pub fn alarm(r: &pb::AlarmResponse) -> Vec<u8> {
    let mut out = String::new();
    for a in &r.alarms {
        out.push_str(&format!(
            "memberID:{} alarm:{} \n",
            a.member_id,
            alarm_type_name(a.alarm)
        ));
    }
    out.into_bytes()
}
