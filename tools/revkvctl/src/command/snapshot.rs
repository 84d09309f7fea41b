//! `snapshot save <filename>`: streams the backend snapshot into a file.

use std::io::Write;

use revkv_proto::etcdserverpb as pb;
use tokio_stream::StreamExt;

use super::{out, Ctx};
use crate::conn::CallError;
use crate::exit::{CtlError, CtlResult, BAD_ARGS, INTERRUPTED};

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
