//! `lease grant|revoke|timetolive|list|keep-alive`.

use std::time::Duration;

use revkv_proto::etcdserverpb as pb;
use tokio_stream::StreamExt;

use super::{out, Ctx};
use crate::conn::{CallError, Conn};
use crate::exit::{CtlError, CtlResult, BAD_CONNECTION};
use crate::flags::{Kind, Spec};
use crate::gofmt;
use crate::printer::Format;
use crate::rpctypes::LEASE_NOT_FOUND;
use crate::unary;

/// `lease timetolive`'s flags.
pub const TTL_SPECS: &[Spec] = &[Spec::new(
    "keys",
    Kind::Bool,
    "false",
    "Get keys attached to this lease",
)];
/// `lease keep-alive`'s flags.
pub const KEEPALIVE_SPECS: &[Spec] = &[Spec::new(
    "once",
    Kind::Bool,
    "false",
    "Resets the keep-alive time to its original value and exits immediately",
)];

/// A lease request built from the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `lease grant <ttl>`.
    Grant(pb::LeaseGrantRequest),
    /// `lease revoke <id>`.
    Revoke(pb::LeaseRevokeRequest),
    /// `lease timetolive <id> [--keys]`.
    TimeToLive(pb::LeaseTimeToLiveRequest),
    /// `lease list`.
    List,
    /// `lease keep-alive <id> [--once]`.
    KeepAlive {
        /// The lease.
        id: i64,
        /// One renewal only.
        once: bool,
    },
}

fn lease_id(arg: &str) -> CtlResult<i64> {
    gofmt::parse_int(arg, 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

/// The request of `lease <sub> args` (etcdctl's argument checks, in its order).
pub fn build(sub: &str, args: &[String], keys: bool, once: bool) -> CtlResult<Request> {
    let one = |msg: &str| -> CtlResult<&String> {
        match args {
            [a] => Ok(a),
            _ => Err(CtlError::bad_args(msg)),
        }
    };
    Ok(match sub {
        "grant" => {
            let a = one("lease grant command needs TTL argument")?;
            let ttl = gofmt::parse_int(a, 10)
                .map_err(|e| CtlError::bad_args(format!("bad TTL ({e})")))?;
            Request::Grant(pb::LeaseGrantRequest { ttl, id: 0 })
        }
        "revoke" => Request::Revoke(pb::LeaseRevokeRequest {
            id: lease_id(one("lease revoke command needs 1 argument")?)?,
        }),
        "timetolive" => Request::TimeToLive(pb::LeaseTimeToLiveRequest {
            id: lease_id(one("lease timetolive command needs lease ID as argument")?)?,
            keys,
        }),
        "list" => Request::List,
        _ => Request::KeepAlive {
            id: lease_id(one("lease keep-alive command needs lease ID as argument")?)?,
            once,
        },
    })
}

/// Runs `lease <sub>`.
pub async fn execute(sub: &str, ctx: &mut Ctx) -> CtlResult {
    let req = build(sub, ctx.args(), ctx.bool("keys"), ctx.bool("once"))?;
    let (conn, printer, _) = ctx.client().await?;
    let bytes = match req {
        Request::Grant(r) => {
            let resp = unary!(conn, conn.lease(), lease_grant, r)
                .map_err(|e| CtlError::error(format!("failed to grant lease ({})", e.message())))?;
            printer.grant(&resp)?
        }
        Request::Revoke(r) => {
            let id = r.id;
            let resp = unary!(conn, conn.lease(), lease_revoke, r).map_err(|e| {
                CtlError::error(format!("failed to revoke lease ({})", e.message()))
            })?;
            printer.revoke(id, &resp)?
        }
        Request::TimeToLive(r) => {
            let keys = r.keys;
            let resp = unary!(conn, conn.lease(), lease_time_to_live, r)
                .map_err(|e| CtlError::error(e.message()))?;
            printer.time_to_live(&resp, keys)?
        }
        Request::List => {
            let resp = unary!(conn, conn.lease(), lease_leases, pb::LeaseLeasesRequest {})
                .map_err(|e| CtlError::error(format!("failed to list leases ({})", e.message())))?;
            printer.leases(&resp)?
        }
        Request::KeepAlive { id, once: true } => {
            let resp = tokio::time::timeout(conn.command_timeout, keep_alive_once(&conn, id))
                .await
                .unwrap_or(Err(CallError::Deadline))
                .map_err(|e| CtlError::new(BAD_CONNECTION, e.message()))?;
            printer.keep_alive(&resp)?
        }
        Request::KeepAlive { id, once: false } => {
            keep_alive(&conn, id, &printer).await?;
            if printer.format == Format::Simple {
                out(format!("lease {id:016x} expired or revoked.\n").as_bytes());
            }
            return Ok(());
        }
    };
    out(&bytes);
    Ok(())
}

/// One renewal; a TTL of 0 or less means the lease is gone (clientv3's
/// `KeepAliveOnce`).
async fn keep_alive_once(conn: &Conn, id: i64) -> Result<pb::LeaseKeepAliveResponse, CallError> {
    let mut stream = open_keep_alive(conn, id).await?;
    match stream.next().await {
        Some(Ok(r)) if r.ttl > 0 => Ok(r),
        Some(Ok(_)) => Err(lease_not_found()),
        Some(Err(s)) => Err(CallError::Status(s)),
        None => Err(CallError::Status(tonic::Status::unavailable(
            "keep-alive stream closed",
        ))),
    }
}

fn lease_not_found() -> CallError {
    CallError::Status(tonic::Status::not_found(LEASE_NOT_FOUND))
}

/// Opens the keep-alive stream, sending one request now and one every `every`
/// after that (driven by the returned stream's sender task).
pub(super) async fn open_keep_alive(
    conn: &Conn,
    id: i64,
) -> Result<tonic::Streaming<pb::LeaseKeepAliveResponse>, CallError> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let _ = tx.send(pb::LeaseKeepAliveRequest { id }).await;
    // The sender lives in a task that renews at a third of the TTL (as clientv3);
    // the first answer tells the TTL, so start with a short period.
    tokio::spawn(async move {
        let mut period = Duration::from_millis(500);
        loop {
            tokio::time::sleep(period).await;
            if tx.send(pb::LeaseKeepAliveRequest { id }).await.is_err() {
                return;
            }
            period = Duration::from_secs(1);
        }
    });
    let mut client = conn.lease();
    let req = conn.request(tokio_stream::wrappers::ReceiverStream::new(rx));
    client
        .lease_keep_alive(req)
        .await
        .map(tonic::Response::into_inner)
        .map_err(CallError::Status)
}

/// Keeps the lease alive until it is gone, printing each renewal.
async fn keep_alive(conn: &Conn, id: i64, printer: &crate::printer::Printer) -> CtlResult {
    let mut stream = open_keep_alive(conn, id)
        .await
        .map_err(|e| CtlError::new(BAD_CONNECTION, e.message()))?;
    let mut next_print = tokio::time::Instant::now();
    while let Some(item) = stream.next().await {
        let resp =
            item.map_err(|s| CtlError::new(BAD_CONNECTION, CallError::Status(s).message()))?;
        if resp.ttl <= 0 {
            break;
        }
        // clientv3 delivers a renewal to the caller at most every TTL/3.
        let now = tokio::time::Instant::now();
        if now >= next_print {
            out(&printer.keep_alive(&resp)?);
            next_print = now + Duration::from_secs((resp.ttl / 3).max(1) as u64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn args_map_to_requests() {
        let cases: Vec<(&str, &[&str], bool, bool, Request)> = vec![
            (
                "grant",
                &["100"],
                false,
                false,
                Request::Grant(pb::LeaseGrantRequest { ttl: 100, id: 0 }),
            ),
            (
                "revoke",
                &["2040a20a89c74c0a"],
                false,
                false,
                Request::Revoke(pb::LeaseRevokeRequest {
                    id: 0x2040a20a89c74c0a,
                }),
            ),
            (
                "timetolive",
                &["1234"],
                true,
                false,
                Request::TimeToLive(pb::LeaseTimeToLiveRequest {
                    id: 0x1234,
                    keys: true,
                }),
            ),
            ("list", &[], false, false, Request::List),
            (
                "keep-alive",
                &["ab"],
                false,
                true,
                Request::KeepAlive {
                    id: 0xab,
                    once: true,
                },
            ),
        ];
        for (sub, args, keys, once, want) in cases {
            assert_eq!(
                build(sub, &argv(args), keys, once).expect("builds"),
                want,
                "{sub}"
            );
        }
        let errs: &[(&str, &[&str], &str)] = &[
            ("grant", &[], "lease grant command needs TTL argument"),
            ("grant", &["x"], "bad TTL (strconv.ParseInt: parsing \"x\": invalid syntax)"),
            ("revoke", &[], "lease revoke command needs 1 argument"),
            ("revoke", &["zz"], "bad lease ID arg (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"),
            ("timetolive", &[], "lease timetolive command needs lease ID as argument"),
            ("keep-alive", &["a", "b"], "lease keep-alive command needs lease ID as argument"),
        ];
        for (sub, args, msg) in errs {
            assert_eq!(
                build(sub, &argv(args), false, false),
                Err(CtlError::bad_args(*msg))
            );
        }
    }
}
