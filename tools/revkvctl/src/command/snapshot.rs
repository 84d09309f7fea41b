//! `snapshot save|status|restore`. `save` streams a member's backup into a file (an
//! etcd member's bbolt file, or a revkv member's backup: see `revkv_server::backup`);
//! `status` and `restore` read revkv backups offline, as etcdctl reads bbolt ones.

use std::io::Write;
use std::path::PathBuf;

use revkv_proto::etcdserverpb as pb;
use revkv_server::backup;
use tokio_stream::StreamExt;

use super::{err, out, Ctx};
use crate::conn::CallError;
use crate::exit::{CtlError, CtlResult, BAD_ARGS, INTERRUPTED};
use crate::flags::{Kind, Spec};
use crate::gofmt::errno_string;
use crate::printer::gojson::Obj;
use crate::printer::DbStatus;

/// `snapshot restore`'s flags, with etcdctl's defaults.
pub const RESTORE_SPECS: &[Spec] = &[
    Spec::new("data-dir", Kind::Str, "", "Path to the data directory"),
    Spec::new(
        "initial-advertise-peer-urls",
        Kind::Str,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster",
    ),
    Spec::new(
        "initial-cluster",
        Kind::Str,
        "default=http://localhost:2380",
        "Initial cluster configuration for restore bootstrap",
    ),
    Spec::new(
        "initial-cluster-token",
        Kind::Str,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during restore bootstrap",
    ),
    Spec::new(
        "name",
        Kind::Str,
        "default",
        "Human-readable name for this member",
    ),
    Spec::new(
        "skip-hash-check",
        Kind::Bool,
        "false",
        "Ignore snapshot integrity hash value (required if copied from data directory)",
    ),
    Spec::new(
        "wal-dir",
        Kind::Str,
        "",
        "Path to the WAL directory (use --data-dir if none given)",
    ),
];

/// Runs `snapshot status <filename>`.
pub fn status(ctx: &mut Ctx) -> CtlResult {
    let [path] = ctx.args() else {
        return Err(CtlError::bad_args(
            "snapshot status requires exactly one argument",
        ));
    };
    let path = PathBuf::from(path);
    let (_, printer) = ctx.global()?;
    stat(&path)?;
    let s = backup::status(&path).map_err(|e| CtlError::error(e.to_string()))?;
    out(&printer.db_status(&DbStatus {
        hash: s.hash,
        revision: s.revision,
        total_key: s.total_key,
        total_size: s.total_size,
    }));
    Ok(())
}

/// etcdctl's first check of a snapshot file, with its message.
fn stat(path: &std::path::Path) -> CtlResult {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| CtlError::error(format!("stat {}: {}", path.display(), errno_string(&e))))
}

/// One of etcd's restore log lines (stderr, JSON; without etcd's timestamp and caller).
fn log_line(msg: &str, fields: &[(&str, String)]) {
    let mut o = Obj::new();
    o.str("level", "info").str("msg", msg);
    for (k, v) in fields {
        o.str(k, v);
    }
    err(format!("{}\n", o.finish()).as_bytes());
}

/// Runs `snapshot restore <filename>`: a new member data dir from a revkv backup.
pub fn restore(ctx: &mut Ctx) -> CtlResult {
    let [path] = ctx.args() else {
        return Err(CtlError::bad_args(
            "snapshot restore requires exactly one argument",
        ));
    };
    let snapshot = PathBuf::from(path);
    stat(&snapshot)?;
    if !ctx.str("wal-dir").is_empty() {
        return Err(CtlError::bad_args(
            "--wal-dir is not supported: revkv keeps its raft log in <data-dir>/wal",
        ));
    }
    let name = ctx.str("name");
    let data_dir = match ctx.str("data-dir") {
        // The server's own default data dir, so `revkv --name <name>` finds it.
        d if d.is_empty() => format!("{name}.revkv"),
        d => d,
    };
    let o = backup::RestoreOptions {
        snapshot,
        data_dir: PathBuf::from(&data_dir),
        name,
        initial_cluster: ctx.str("initial-cluster"),
        initial_cluster_token: ctx.str("initial-cluster-token"),
        initial_advertise_peer_urls: ctx.str("initial-advertise-peer-urls"),
        skip_hash_check: ctx.bool("skip-hash-check"),
    };
    // As etcdctl, an existing data dir is refused before anything is logged.
    if o.data_dir.exists() {
        return Err(CtlError::error(format!("data-dir {data_dir:?} exists")));
    }
    let fields = [("path", path.clone()), ("data-dir", data_dir)];
    log_line("restoring snapshot", &fields);
    let r = backup::restore(&o).map_err(|e| CtlError::error(e.to_string()))?;
    let mut done = fields.to_vec();
    done.extend([
        ("cluster-id", format!("{:x}", r.cluster_id)),
        ("member-id", format!("{:x}", r.member_id)),
        ("revision", r.revision.to_string()),
    ]);
    log_line("restored snapshot", &done);
    Ok(())
}

/// Runs `snapshot save`: writes `<path>.part`, then renames it into place.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    let [path] = ctx.args() else {
        return Err(CtlError::bad_args("snapshot save expects one argument"));
    };
    let path = path.clone();
    let (conn, _, g) = ctx.client().await?;
    if g.endpoints.len() != 1 {
        return Err(CtlError::new(
            BAD_ARGS,
            format!(
                "snapshot must be requested to one selected node, not multiple {:?}",
                g.endpoints
            ),
        ));
    }
    let part = format!("{path}.part");
    let fail = |m: String| CtlError::new(INTERRUPTED, m);
    let mut file = std::fs::File::create(&part).map_err(|e| fail(e.to_string()))?;
    let mut client = conn.maintenance();
    let res = async {
        let mut stream = client
            .snapshot(conn.request(pb::SnapshotRequest {}))
            .await
            .map_err(CallError::Status)?
            .into_inner();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(CallError::Status)?;
            file.write_all(&chunk.blob)
                .map_err(|e| CallError::Status(tonic::Status::internal(e.to_string())))?;
        }
        Ok::<(), CallError>(())
    }
    .await;
    if let Err(e) = res {
        let _ = std::fs::remove_file(&part);
        return Err(fail(e.message()));
    }
    file.sync_all().map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&part, &path).map_err(|e| fail(e.to_string()))?;
    out(format!("Snapshot saved at {path}\n").as_bytes());
    Ok(())
}
