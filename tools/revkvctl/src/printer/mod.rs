//! Output formats (`-w simple|json|fields|table`), each in its own module, behind
//! one [`Printer`] that picks the format per response as etcdctl's `printer` does.
//!
//! Every method returns the bytes to write on stdout (or the error etcdctl exits
//! with when the format does not support that response), so a command sends its
//! request first and only then learns that the format is unsupported — as etcdctl.

pub mod fields;
pub mod gojson;
pub mod json;
pub mod simple;
pub mod table;

use revkv_proto::etcdserverpb as pb;
use revkv_proto::mvccpb;

use crate::exit::{CtlError, CtlResult, BAD_FEATURE};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human readable (the default).
    Simple,
    /// The response marshalled with Go's encoding/json.
    Json,
    /// `"Field" : value` lines.
    Fields,
    /// ASCII tables (member list, endpoint status/health only).
    Table,
}

impl Format {
    /// Parses `-w`; `None` for anything etcdctl does not know.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "simple" => Some(Format::Simple),
            "json" => Some(Format::Json),
            "fields" => Some(Format::Fields),
            "table" => Some(Format::Table),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
        }
    }
}

/// What `snapshot status` prints (etcd's `snapshot.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

/// One `endpoint hashkv` answer (etcdctl's `epHashKV`).
#[derive(Debug, Clone, PartialEq)]
pub struct EpHashKv {
    /// The endpoint as given.
    pub ep: String,
    /// The server's answer.
    pub resp: pb::HashKvResponse,
}

/// The result of one `endpoint health` probe (etcdctl's `epHealth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpHealth {
    /// The endpoint as given.
    pub ep: String,
    /// Whether the probe succeeded.
    pub health: bool,
    /// How long it took, as Go prints a duration.
    pub took: String,
    /// Why it failed (empty when healthy).
    pub error: String,
}

/// One `endpoint status` answer (etcdctl's `epStatus`).
#[derive(Debug, Clone, PartialEq)]
pub struct EpStatus {
    /// The endpoint as given.
    pub ep: String,
    /// The server's answer.
    pub resp: pb::StatusResponse,
}

/// Which member command a cluster response answers (their simple lines differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOp {
    /// `member remove <id>`.
    Remove(u64),
    /// `member update <id>`.
    Update(u64),
    /// `member promote <id>`.
    Promote(u64),
}

/// Renders responses in one format.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// The format.
    pub format: Format,
    /// `--hex`: keys and values as `\xNN` in the simple format.
    pub hex: bool,
    /// `get --print-value-only`.
    pub value_only: bool,
}

/// The error of a format that cannot print a response.
fn unsupported(format: Format) -> CtlError {
    CtlError::new(
        BAD_FEATURE,
        format!("{} not supported as output format", format.name()),
    )
}

fn line(mut s: String) -> Vec<u8> {
    s.push('\n');
    s.into_bytes()
}

impl Printer {
    /// A printer for `format`.
    pub fn new(format: Format, hex: bool) -> Self {
        Printer {
            format,
            hex,
            value_only: false,
        }
    }

    /// `get`.
    pub fn get(&self, r: &pb::RangeResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::get(self, r)),
            Format::Json => Ok(line(json::range(r))),
            Format::Fields => Ok(fields::get(r)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `put`.
    pub fn put(&self, r: &pb::PutResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::put(self, r)),
            Format::Json => Ok(line(json::put(r))),
            Format::Fields => Ok(fields::put(r)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `del`.
    pub fn del(&self, r: &pb::DeleteRangeResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::del(self, r)),
            Format::Json => Ok(line(json::del(r))),
            Format::Fields => Ok(fields::del(r)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `txn`.
    pub fn txn(&self, r: &pb::TxnResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::txn(self, r)),
            Format::Json => Ok(line(json::txn(r))),
            Format::Fields => Ok(fields::txn(r)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// One `watch` response.
    pub fn watch(&self, r: &pb::WatchResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::watch(self, &r.events)),
            Format::Json => Ok(line(json::watch(r))),
            Format::Fields => Ok(fields::watch(r)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `lease grant`.
    pub fn grant(&self, r: &pb::LeaseGrantResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(line(format!(
                "lease {:016x} granted with TTL({}s)",
                r.id, r.ttl
            ))),
            Format::Json => Ok(line(json::grant(r))),
            Format::Fields => Ok(fields::id_ttl(r.header.as_ref(), r.id, r.ttl)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `lease revoke`.
    pub fn revoke(&self, id: i64, r: &pb::LeaseRevokeResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(line(format!("lease {id:016x} revoked"))),
            Format::Json => Ok(line(json::header_only(r.header.as_ref()))),
            Format::Fields => Ok(fields::header_only(r.header.as_ref())),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// One `lease keep-alive` answer.
    pub fn keep_alive(&self, r: &pb::LeaseKeepAliveResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(line(format!(
                "lease {:016x} keepalived with TTL({})",
                r.id, r.ttl
            ))),
            Format::Json => Ok(line(json::keep_alive(r))),
            Format::Fields => Ok(fields::id_ttl(r.header.as_ref(), r.id, r.ttl)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `lease timetolive`.
    pub fn time_to_live(&self, r: &pb::LeaseTimeToLiveResponse, keys: bool) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::time_to_live(r, keys)),
            Format::Json => Ok(line(json::time_to_live(r))),
            Format::Fields => Ok(fields::time_to_live(r)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `lease list`.
    pub fn leases(&self, r: &pb::LeaseLeasesResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::leases(r)),
            Format::Json => Ok(line(json::leases(r))),
            Format::Fields => Ok(fields::leases(r)),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `member add`.
    pub fn member_add(&self, r: &pb::MemberAddResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::member_add(r)),
            Format::Json => Ok(line(json::member_add(r))),
            Format::Fields | Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `member remove|update|promote`: all answer the member list.
    pub fn member_change(
        &self,
        op: MemberOp,
        header: Option<&pb::ResponseHeader>,
        members: &[pb::Member],
    ) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::member_change(op, header)),
            Format::Json => Ok(line(json::members_response(header, members))),
            Format::Fields | Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `member list`.
    pub fn member_list(&self, r: &pb::MemberListResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::rows(&table::member_rows(r))),
            Format::Json => Ok(line(json::members_response(r.header.as_ref(), &r.members))),
            Format::Fields => Ok(fields::member_list(r)),
            Format::Table => Ok(table::render(&table::MEMBER_HEADER, &table::member_rows(r))),
        }
    }

    /// `endpoint health`; the simple format writes to stderr, so this returns
    /// (stdout, stderr).
    /// `snapshot status`.
    pub fn db_status(&self, s: &DbStatus) -> Vec<u8> {
        match self.format {
            Format::Simple => simple::rows(&table::db_status_rows(s)),
            Format::Json => line(json::db_status(s)),
            Format::Fields => fields::db_status(s),
            Format::Table => table::render(&table::DB_STATUS_HEADER, &table::db_status_rows(s)),
        }
    }

    /// `endpoint hashkv`.
    pub fn endpoint_hashkv(&self, hs: &[EpHashKv]) -> Vec<u8> {
        match self.format {
            Format::Simple => simple::rows(&table::hashkv_rows(hs)),
            Format::Json => line(json::endpoint_hashkv(hs)),
            Format::Fields => fields::endpoint_hashkv(hs),
            Format::Table => table::render(&table::HASHKV_HEADER, &table::hashkv_rows(hs)),
        }
    }

    pub fn endpoint_health(&self, hs: &[EpHealth]) -> (Vec<u8>, Vec<u8>) {
        match self.format {
            Format::Simple => (Vec::new(), simple::endpoint_health(hs)),
            Format::Json => (line(json::endpoint_health(hs)), Vec::new()),
            Format::Fields => (fields::endpoint_health(hs), Vec::new()),
            Format::Table => (
                table::render(&table::HEALTH_HEADER, &table::health_rows(hs)),
                Vec::new(),
            ),
        }
    }

    /// `endpoint status`.
    pub fn endpoint_status(&self, eps: &[EpStatus]) -> Vec<u8> {
        match self.format {
            Format::Simple => simple::rows(&table::status_rows(eps)),
            Format::Json => line(json::endpoint_status(eps)),
            Format::Fields => fields::endpoint_status(eps),
            Format::Table => table::render(&table::STATUS_HEADER, &table::status_rows(eps)),
        }
    }

    /// `move-leader`.
    pub fn move_leader(
        &self,
        leader: u64,
        target: u64,
        r: &pb::MoveLeaderResponse,
    ) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(line(format!(
                "Leadership transferred from {leader:x} to {target:x}"
            ))),
            Format::Json => Ok(line(json::header_only(r.header.as_ref()))),
            Format::Fields | Format::Table => Err(unsupported(self.format)),
        }
    }

    /// `alarm list|disarm`.
    pub fn alarm(&self, r: &pb::AlarmResponse) -> CtlResult<Vec<u8>> {
        match self.format {
            Format::Simple => Ok(simple::alarm(r)),
            Format::Json => Ok(line(json::alarm(r))),
            Format::Fields => Ok(fields::alarm(r)),
            Format::Table => Err(unsupported(self.format)),
        }
    }
}

/// The name etcd gives an event type (`mvccpb.Event_EventType.String()`).
pub fn event_type_name(t: i32) -> String {
    match mvccpb::event::EventType::try_from(t) {
        Ok(mvccpb::event::EventType::Put) => "PUT".to_owned(),
        Ok(mvccpb::event::EventType::Delete) => "DELETE".to_owned(),
        Err(_) => t.to_string(),
    }
}

/// The name etcd gives an alarm type (`AlarmType.String()`).
pub fn alarm_type_name(t: i32) -> String {
    match pb::AlarmType::try_from(t) {
        Ok(pb::AlarmType::None) => "NONE".to_owned(),
        Ok(pb::AlarmType::Nospace) => "NOSPACE".to_owned(),
        Ok(pb::AlarmType::Corrupt) => "CORRUPT".to_owned(),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// etcdctl 3.4.23's `snapshot status -w <format>` of a file whose status was
    /// hash 0x7bb34742, revision 3, 6 keys, 20480 bytes.
    #[test]
    fn db_status_prints_as_etcdctl() {
        let s = DbStatus {
            hash: 0x7bb3_4742,
            revision: 3,
            total_key: 6,
            total_size: 20480,
        };
        let print = |f| String::from_utf8(Printer::new(f, false).db_status(&s)).expect("utf8");
        assert_eq!(print(Format::Simple), "7bb34742, 3, 6, 20 kB\n");
        assert_eq!(
            print(Format::Table),
            "\
+----------+----------+------------+------------+
|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |
+----------+----------+------------+------------+
| 7bb34742 |        3 |          6 |      20 kB |
+----------+----------+------------+------------+
"
        );
        assert_eq!(
            print(Format::Json),
            "{\"hash\":2075346754,\"revision\":3,\"totalKey\":6,\"totalSize\":20480}\n"
        );
        assert_eq!(
            print(Format::Fields),
            "\"Hash\" : 2075346754\n\"Revision\" : 3\n\"Keys\" : 6\n\"Size\" : 20480\n"
        );
    }
}
