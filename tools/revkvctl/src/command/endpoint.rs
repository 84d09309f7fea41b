//! `endpoint health|status [--cluster]`: one probe per endpoint.

use std::time::Instant;

use revkv_client::{GetOptions, Kv};
use revkv_proto::etcdserverpb as pb;

use super::{err, out, Ctx};
use crate::conn::Conn;
use crate::exit::{CtlError, CtlResult, ERROR};
use crate::flags::{Kind, Spec};
use crate::global::Global;
use crate::gofmt;
use crate::printer::{EpHealth, EpStatus};
use crate::unary;

/// `endpoint`'s flags.
pub const SPECS: &[Spec] = &[Spec::new(
    "cluster",
    Kind::Bool,
    "false",
    "use all endpoints from the cluster member list",
)];

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
    // status
    let conn = Conn::connect(&g).await?;
    drop(conn);
    let mut list = Vec::new();
    let mut failed = false;
    for ep in eps {
        let conn = Conn::open(std::slice::from_ref(&ep), &g)?;
        match unary!(conn, conn.maintenance(), status, pb::StatusRequest {}) {
            Ok(resp) => list.push(EpStatus { ep, resp }),
            Err(e) => {
                failed = true;
                err(format!(
                    "Failed to get the status of endpoint {ep} ({})\n",
                    e.message()
                )
                .as_bytes());
            }
        }
    }
    out(&printer.endpoint_status(&list));
    if failed {
        return Err(CtlError::silent(ERROR));
    }
    Ok(())
}
