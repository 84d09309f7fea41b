//! `endpoint health|status|hashkv [--cluster]`: one probe per endpoint.

use std::time::Instant;

use revkv_client::{GetOptions, Kv};
use revkv_proto::etcdserverpb as pb;

use super::{err, out, Ctx};
use crate::conn::{CallError, Conn};
use crate::exit::{CtlError, CtlResult, ERROR};
use crate::flags::{Kind, Spec};
use crate::global::Global;
use crate::gofmt;
use crate::printer::{EpHashKv, EpHealth, EpStatus};
use crate::unary;

/// `endpoint`'s own flag, which every `endpoint` command takes.
const CLUSTER: Spec = Spec::new(
    "cluster",
    Kind::Bool,
    "false",
    "use all endpoints from the cluster member list",
)
.inherited();

/// `endpoint health|status`'s flags.
pub const SPECS: &[Spec] = &[CLUSTER];

/// `endpoint hashkv`'s flags.
pub const HASHKV_SPECS: &[Spec] = &[
    CLUSTER,
    Spec::new(
        "rev",
        Kind::Int,
        "0",
        "maximum revision to hash (default: all revisions)",
    ),
];

/// The endpoints to probe: `--endpoints`, or with `--cluster` every member's
/// client URLs (etcdctl's `endpointsFromCluster`).
pub async fn endpoints(g: &Global, cluster: bool) -> CtlResult<Vec<String>> {
    if !cluster {
        return Ok(g.endpoints.clone());
    }
    let mut g2 = g.clone();
    // etcdctl bounds this member list by the dial timeout.
    g2.command_timeout = g.dial_timeout;
    let conn = Conn::connect(&g2).await?;
    let resp = unary!(
        conn,
        conn.cluster(),
        member_list,
        pb::MemberListRequest {
            linearizable: false
        }
    )
    .map_err(|e| {
        CtlError::error(format!(
            "failed to fetch endpoints from etcd cluster member list: {}",
            e.message()
        ))
    })?;
    Ok(resp
        .members
        .into_iter()
        .flat_map(|m| m.client_ur_ls)
        .collect())
}

/// One health probe: a get of `health` (permission denied counts as healthy).
async fn probe(ep: String, g: Global) -> EpHealth {
    let start = Instant::now();
    let res = match Conn::open(std::slice::from_ref(&ep), &g) {
        Ok(conn) => conn
            .kv()
            .get_with("health", GetOptions::new())
            .await
            .map(|_| ())
            .map_err(|e| crate::conn::CallError::from(e).message()),
        Err(e) => Err(e.message.unwrap_or_default()),
    };
    let took = gofmt::duration_string(start.elapsed());
    match res {
        Ok(()) => EpHealth {
            ep,
            health: true,
            took,
            error: String::new(),
        },
        Err(e) if e == "etcdserver: permission denied" => EpHealth {
            ep,
            health: true,
            took,
            error: String::new(),
        },
        Err(e) => EpHealth {
            ep,
            health: false,
            took,
            error: e,
        },
    }
}

/// Runs `endpoint <sub>`.
pub async fn execute(sub: &str, ctx: &mut Ctx) -> CtlResult {
    let (g, printer) = ctx.global()?;
    let eps = endpoints(&g, ctx.bool("cluster")).await?;
    if sub == "health" {
        let probes: Vec<_> = eps
            .into_iter()
            .map(|ep| tokio::spawn(probe(ep, g.clone())))
            .collect();
        let mut hs = Vec::new();
        for p in probes {
            if let Ok(h) = p.await {
                hs.push(h);
            }
        }
        let (so, se) = printer.endpoint_health(&hs);
        out(&so);
        err(&se);
        if hs.iter().any(|h| !h.error.is_empty()) {
            return Err(CtlError::error("unhealthy cluster"));
        }
        return Ok(());
    }
    let conn = Conn::connect(&g).await?;
    drop(conn);
    if sub == "hashkv" {
        let req = pb::HashKvRequest {
            revision: ctx.int("rev"),
        };
        let (list, failed) = per_endpoint(&g, eps, "hash", |conn| async move {
            unary!(conn, conn.maintenance(), hash_kv, req)
        })
        .await?;
        let list: Vec<EpHashKv> = list
            .into_iter()
            .map(|(ep, resp)| EpHashKv { ep, resp })
            .collect();
        out(&printer.endpoint_hashkv(&list));
        // Unlike `status`, etcdctl's `hashkv` also exits with the last error.
        return match failed {
            Some(last) => Err(CtlError::error(last)),
            None => Ok(()),
        };
    }
    // status
    let (list, failed) = per_endpoint(&g, eps, "status", |conn| async move {
        unary!(conn, conn.maintenance(), status, pb::StatusRequest {})
    })
    .await?;
    let list: Vec<EpStatus> = list
        .into_iter()
        .map(|(ep, resp)| EpStatus { ep, resp })
        .collect();
    out(&printer.endpoint_status(&list));
    match failed {
        Some(_) => Err(CtlError::silent(ERROR)),
        None => Ok(()),
    }
}

/// Asks every endpoint in turn, printing etcdctl's "Failed to get the <what> of
/// endpoint" line for each that fails; returns the answers and the last failure.
async fn per_endpoint<T, F, Fut>(
    g: &Global,
    eps: Vec<String>,
    what: &str,
    mut call: F,
) -> CtlResult<(Vec<(String, T)>, Option<String>)>
where
    F: FnMut(Conn) -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut list = Vec::new();
    let mut failed = None;
    for ep in eps {
        let conn = Conn::open(std::slice::from_ref(&ep), g)?;
        match call(conn).await {
            Ok(resp) => list.push((ep, resp)),
            Err(e) => {
                let msg = e.message();
                err(format!("Failed to get the {what} of endpoint {ep} ({msg})\n").as_bytes());
                failed = Some(msg);
            }
        }
    }
    Ok((list, failed))
}
