//! `defrag [--cluster]`: one Defragment call per endpoint.

use revkv_proto::etcdserverpb as pb;

use super::{endpoint, err, out, Ctx};
use crate::conn::Conn;
use crate::exit::{CtlError, CtlResult, ERROR};
use crate::flags::{Kind, Spec};
use crate::unary;

/// `defrag`'s flags.
pub const SPECS: &[Spec] = &[
    Spec::new(
        "cluster",
        Kind::Bool,
        "false",
        "use all endpoints from the cluster member list",
    ),
    Spec::new(
        "data-dir",
        Kind::Str,
        "",
        "Optional. If present, defragments a data directory not in use by etcd.",
    ),
];

/// Runs `defrag` (every output format prints the same lines).
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    if !ctx.str("data-dir").is_empty() {
        return Err(CtlError::bad_args(
            "offline defragmentation (--data-dir) is not supported by revkvctl",
        ));
    }
    let (_, _, g) = ctx.client().await?;
    let mut failures = 0;
    for ep in endpoint::endpoints(&g, ctx.bool("cluster")).await? {
        let conn = Conn::open(std::slice::from_ref(&ep), &g)?;
        match unary!(
            conn,
            conn.maintenance(),
            defragment,
            pb::DefragmentRequest {}
        ) {
            Ok(_) => out(format!("Finished defragmenting etcd member[{ep}]\n").as_bytes()),
            Err(e) => {
                failures += 1;
                err(
                    format!("Failed to defragment etcd member[{ep}] ({})\n", e.message())
                        .as_bytes(),
                );
            }
        }
    }
    if failures > 0 {
        return Err(CtlError::silent(ERROR));
    }
    Ok(())
}
