//! `lock <lockname> [exec-command arg1 arg2 ...]` and `elect <election-name>
//! [proposal]` / `elect -l <election-name>`, as etcdctl's: a session lease kept
//! alive while the command runs, the lock or the candidacy held through the server's
//! Lock and Election services, released on SIGINT or SIGTERM.

use revkv_proto::etcdserverpb as pb;
use revkv_proto::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ResignRequest};
use revkv_proto::v3lockpb::{LockRequest, UnlockRequest};
use tokio_stream::StreamExt;

use super::lease::open_keep_alive;
use super::{out, Ctx};
use crate::conn::{CallError, Conn};
use crate::exit::{CtlError, CtlResult};
use crate::flags::{Kind, Spec};
use crate::gofmt::quote;
use crate::printer::Printer;
use crate::unary;

/// `lock`'s flags.
pub const LOCK_SPECS: &[Spec] = &[Spec::new("ttl", Kind::Int, "10", "timeout for session")];
/// `elect`'s flags.
pub const ELECT_SPECS: &[Spec] =
    &[Spec::new("listen", Kind::Bool, "false", "observation mode").short('l')];

/// clientv3's default session TTL, which `elect` uses.
const SESSION_TTL: i64 = 60;

/// What `elect` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elect {
    /// `elect <name> <proposal>`.
    Campaign { name: String, proposal: String },
    /// `elect -l <name>`.
    Observe { name: String },
}

/// etcdctl's argument checks for `elect`, in its order.
pub fn build_elect(args: &[String], listen: bool) -> CtlResult<Elect> {
    match args {
        [name] if listen => Ok(Elect::Observe { name: name.clone() }),
        [_] => Err(CtlError::bad_args("no proposal argument but -l not set")),
        [_, _] if listen => Err(CtlError::bad_args("proposal given but -l is set")),
        [name, proposal] => Ok(Elect::Campaign {
            name: name.clone(),
            proposal: proposal.clone(),
        }),
        _ => Err(CtlError::bad_args(
            "elect takes one election name argument and an optional proposal argument",
        )),
    }
}

/// A lease kept alive in the background (clientv3's `concurrency.Session`, which
/// is not closed on exit either: the lease then runs out its TTL).
struct Session {
    lease: i64,
    /// Resolves when the lease can no longer be kept alive (expired or revoked).
    done: tokio::task::JoinHandle<()>,
}

impl Session {
    async fn open(conn: &Conn, ttl: i64) -> CtlResult<Session> {
        let grant = pb::LeaseGrantRequest { ttl, id: 0 };
        let lease = unary!(conn, conn.lease(), lease_grant, grant)
            .map_err(|e| CtlError::error(e.message()))?
            .id;
        let mut renewals = open_keep_alive(conn, lease)
            .await
            .map_err(|e| CtlError::error(e.message()))?;
        let done = tokio::spawn(async move {
            while let Some(Ok(r)) = renewals.next().await {
                if r.ttl <= 0 {
                    break;
                }
            }
        });
        Ok(Session { lease, done })
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// etcdctl's error for a wait ended by a signal.
fn canceled() -> CtlError {
    CtlError::error("context canceled")
}

/// Waits for `call`, ending early (and dropping it, which withdraws from the queue)
/// on a signal.
async fn until_interrupted<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> CtlResult<T> {
    tokio::select! {
        r = call => r
            .map(tonic::Response::into_inner)
            .map_err(|s| CtlError::error(CallError::Status(s).message())),
        _ = interrupted() => Err(canceled()),
    }
}

/// Prints `key` as `get` would.
async fn show(conn: &Conn, printer: &Printer, key: &[u8]) -> CtlResult<usize> {
    let req = pb::RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    let resp =
        unary!(conn, conn.kv_client(), range, req).map_err(|e| CtlError::error(e.message()))?;
    if !resp.kvs.is_empty() {
        out(&printer.get(&resp)?);
    }
    Ok(resp.kvs.len())
}

/// Runs `lock`.
pub async fn lock(ctx: &mut Ctx) -> CtlResult {
    let Some((name, exec)) = ctx.args().split_first() else {
        return Err(CtlError::bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let (name, exec) = (name.clone(), exec.to_vec());
    let ttl = ctx.int("ttl");
    let (conn, printer, _) = ctx.client().await?;
    let session = Session::open(&conn, ttl).await?;
    let req = conn.request(LockRequest {
        name: name.into_bytes(),
        lease: session.lease,
    });
    let held = until_interrupted(conn.lock().lock(req)).await?;
    let unlock = || async {
        let req = UnlockRequest {
            key: held.key.clone(),
        };
        unary!(conn, conn.lock(), unlock, req)
            .map(drop)
            .map_err(|e| CtlError::error(e.message()))
    };
    if let Some((cmd, args)) = exec.split_first() {
        let revision = held.header.map_or(0, |h| h.revision);
        let status = std::process::Command::new(cmd)
            .args(args)
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&held.key).as_ref())
            .env("ETCD_LOCK_REV", revision.to_string())
            .status();
        let unlocked = unlock().await;
        return match status {
            Ok(s) if s.success() => unlocked,
            Ok(s) => Err(CtlError::error(match s.code() {
                Some(c) => format!("exit status {c}"),
                None => s.to_string(),
            })),
            Err(e) => Err(CtlError::error(format!(
                "exec: {}: {e}",
                quote(cmd.as_bytes())
            ))),
        };
    }
    if show(&conn, &printer, &held.key).await? == 0 {
        return Err(CtlError::error("lock lost on init"));
    }
    tokio::select! {
        _ = interrupted() => unlock().await,
        _ = session.done => Err(CtlError::error("session expired")),
    }
}

/// Runs `elect`.
pub async fn elect(ctx: &mut Ctx) -> CtlResult {
    let what = build_elect(ctx.args(), ctx.bool("listen"))?;
    let (conn, printer, _) = ctx.client().await?;
    let session = Session::open(&conn, SESSION_TTL).await?;
    match what {
        Elect::Observe { name } => observe(&conn, &printer, name).await,
        Elect::Campaign { name, proposal } => {
            let req = conn.request(CampaignRequest {
                name: name.into_bytes(),
                lease: session.lease,
                value: proposal.into_bytes(),
            });
            let won = until_interrupted(conn.election().campaign(req)).await?;
            let leader: LeaderKey = won.leader.unwrap_or_default();
            show(&conn, &printer, &leader.key).await?;
            tokio::select! {
                _ = interrupted() => {}
                _ = session.done => return Err(CtlError::error("elect: session expired")),
            }
            let req = ResignRequest {
                leader: Some(leader),
            };
            unary!(conn, conn.election(), resign, req)
                .map(drop)
                .map_err(|e| CtlError::error(e.message()))
        }
    }
}

/// Prints each proclamation as `get` would, until a signal (then exits cleanly) or
/// the stream ends ("observer lost").
async fn observe(conn: &Conn, printer: &Printer, name: String) -> CtlResult {
    let watching = async {
        let req = conn.request(LeaderRequest {
            name: name.into_bytes(),
        });
        let Ok(resp) = conn.election().observe(req).await else {
            return;
        };
        let mut stream = resp.into_inner();
        while let Some(Ok(leader)) = stream.next().await {
            // etcd's observer hands etcdctl a get response of that one key.
            let resp = pb::RangeResponse {
                header: leader.header,
                kvs: leader.kv.into_iter().collect(),
                ..Default::default()
            };
            match printer.get(&resp) {
                Ok(bytes) => out(&bytes),
                Err(_) => return,
            }
        }
    };
    tokio::select! {
        _ = watching => Err(CtlError::error("elect: observer lost")),
        _ = interrupted() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::BAD_ARGS;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn elect_arguments_are_checked_as_etcdctl_checks_them() {
        assert_eq!(
            build_elect(&argv(&["e", "p"]), false),
            Ok(Elect::Campaign {
                name: "e".into(),
                proposal: "p".into()
            })
        );
        assert_eq!(
            build_elect(&argv(&["e"]), true),
            Ok(Elect::Observe { name: "e".into() })
        );
        let refused = |args: &[&str], listen: bool| build_elect(&argv(args), listen);
        for (args, listen, msg) in [
            (
                &[][..],
                false,
                "elect takes one election name argument and an optional proposal argument",
            ),
            (
                &["a", "b", "c"][..],
                false,
                "elect takes one election name argument and an optional proposal argument",
            ),
            (&["e"][..], false, "no proposal argument but -l not set"),
            (&["e", "p"][..], true, "proposal given but -l is set"),
        ] {
            assert_eq!(
                refused(args, listen),
                Err(CtlError::new(BAD_ARGS, msg)),
                "{args:?} {listen}"
            );
        }
    }
}
