//! Raft snapshots over the wire: the `Snapshot` client-streaming call of `revkvpb.Peer`.
//!
//! A MsgSnapshot never enters a peer's message queue. [`Transport::send`] hands it to
//! a task of its own ([`send`]) that dials the peer on a separate connection and
//! streams the checkpoint the message describes, so neither the raft task nor the
//! queue of small messages (heartbeats, appends) ever waits for a large transfer. When
//! the peer answered, or the transfer failed, raft hears `report_snapshot` (raft
//! keeps the peer paused until then, and retries after a failure), as etcd's
//! `snapshotSender` does.
//!
//! The receiving side ([`receive`]) checks the first chunk exactly like the hello of a
//! `Send` stream, refuses a snapshot of another cluster or one not newer than what
//! we applied before any file is written, stages the files, verifies size and
//! checksum, and only then passes the raft message to the raft task.
//!
//! [`Transport::send`]: super::Transport::send

use std::path::PathBuf;
use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use revkv_proto::revkvpb::{RaftMessage, SnapshotChunk, SnapshotResponse};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::service::PeerService;
use super::{Error, Identity, TransportConfig};
use crate::raft::snapshot::{self, Snapshots, Staging};
use crate::raft::PeerInbox;

/// Bytes of file data per chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// The one mapping of snapshot reception errors to gRPC statuses.
fn status(e: snapshot::Error) -> Status {
    use snapshot::Error as E;
    let code = match &e {
        E::ClusterMismatch { .. } | E::Stale { .. } => tonic::Code::FailedPrecondition,
        E::Descriptor(_) | E::Order(_) | E::BadName(_) => tonic::Code::InvalidArgument,
        E::Checksum { .. } => tonic::Code::DataLoss,
        E::Missing(_) => tonic::Code::NotFound,
        E::Storage(_) | E::Io { .. } => tonic::Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// What a snapshot send needs; built by the transport for each MsgSnapshot.
pub(super) struct SnapshotSend {
    pub me: Identity,
    pub peer: u64,
    pub urls: Vec<String>,
    pub cfg: TransportConfig,
    pub snapshots: Arc<Snapshots>,
    pub inbox: PeerInbox,
    pub msg: Message,
}

/// Streams one snapshot and reports the outcome to raft.
pub(super) async fn send(s: SnapshotSend) {
    let peer = format!("{:x}", s.peer);
    let index = s.msg.get_snapshot().get_metadata().index;
    let mut last_err = None;
    for url in &s.urls {
        match stream_to(&s, url).await {
            Ok(bytes) => {
                tracing::info!(peer, url, index, bytes, "sent a raft snapshot");
                s.inbox.report_snapshot(s.peer, true);
                return;
            }
            Err(e) => last_err = Some((url.clone(), e)),
        }
    }
    if let Some((url, e)) = last_err {
        tracing::warn!(peer, url, index, error = %e, "sending a raft snapshot failed");
    }
    s.inbox.report_snapshot(s.peer, false);
}

async fn stream_to(s: &SnapshotSend, url: &str) -> Result<u64, Error> {
    let (d, dir) = s.snapshots.outgoing(&s.msg)?;
    let message = s.msg.write_to_bytes()?;
    let mut client = super::dial(url, &s.cfg).await?;
    let (tx, rx) = mpsc::channel(4);
    let hello = SnapshotChunk {
        cluster_id: s.me.cluster_id,
        from: s.me.member_id,
        to: s.peer,
        message,
        ..Default::default()
    };
    tx.send(hello).await.map_err(|_| Error::Closed)?;
    let reader = tokio::spawn(read_files(dir, tx));
    let resp = client.snapshot(ReceiverStream::new(rx)).await;
    // The reader ends on its own once the call is over (its channel closes).
    let read = reader.await.map_err(|_| Error::Closed)?;
    let resp = resp?.into_inner();
    if resp.cluster_id != s.me.cluster_id {
        return Err(Error::ClusterMismatch {
            remote: resp.cluster_id,
            local: s.me.cluster_id,
        });
    }
    if resp.member_id != s.peer {
        return Err(Error::MemberMismatch {
            remote: resp.member_id,
            expected: s.peer,
        });
    }
    let sent = read?;
    if resp.received_bytes != d.total_bytes || sent != d.total_bytes {
        return Err(Error::Snapshot(snapshot::Error::Checksum {
            expected: format!("{} bytes", d.total_bytes),
            received: format!("{} bytes sent, {} acknowledged", sent, resp.received_bytes),
        }));
    }
    Ok(sent)
}

/// Feeds the checkpoint's files, in name order and in chunks, into the call.
async fn read_files(dir: PathBuf, tx: mpsc::Sender<SnapshotChunk>) -> Result<u64, Error> {
    let files = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || crate::storage::checkpoint::list_files(&dir))
            .await
            .map_err(|_| Error::Closed)?
            .map_err(snapshot::Error::from)?
    };
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK_BYTES];
    for (name, size) in files {
        let path = dir.join(&name);
        let io = |source| {
            Error::Snapshot(snapshot::Error::Io {
                path: path.clone(),
                source,
            })
        };
        let mut f = tokio::fs::File::open(&path).await.map_err(io)?;
        let mut offset = 0u64;
        loop {
            let want = ((size - offset) as usize).min(CHUNK_BYTES);
            let mut n = 0;
            while n < want {
                let got = f.read(&mut buf[n..want]).await.map_err(io)?;
                if got == 0 {
                    return Err(Error::Snapshot(snapshot::Error::Order(format!(
                        "{name} shrank while being sent"
                    ))));
                }
                n += got;
            }
            let chunk = SnapshotChunk {
                file: name.clone(),
                offset,
                data: buf[..n].to_vec(),
                file_size: size,
                ..Default::default()
            };
            tx.send(chunk).await.map_err(|_| Error::Closed)?;
            offset += n as u64;
            total += n as u64;
            if offset >= size {
                break;
            }
        }
    }
    Ok(total)
}

/// The accepting side of `Snapshot` (see the module docs).
pub(super) async fn receive(
    svc: &PeerService,
    snapshots: &Arc<Snapshots>,
    request: Request<Streaming<SnapshotChunk>>,
) -> Result<Response<SnapshotResponse>, Status> {
    let addr = request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut inbound = request.into_inner();
    let hello = tokio::time::timeout(super::service::HELLO_TIMEOUT, inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no snapshot hello"))??
        .ok_or_else(|| Status::cancelled("peer closed the snapshot stream before its hello"))?;
    svc.check(
        &RaftMessage {
            cluster_id: hello.cluster_id,
            from: hello.from,
            to: hello.to,
            message: Vec::new(),
        },
        &addr,
    )?;
    let peer = format!("{:x}", hello.from);
    let msg = Message::parse_from_bytes(&hello.message)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))?;
    if msg.get_msg_type() != MessageType::MsgSnapshot
        || msg.from != hello.from
        || msg.to != svc.me.member_id
    {
        return Err(Status::invalid_argument(
            "a snapshot stream must carry a MsgSnapshot from its sender to us",
        ));
    }
    let d = snapshot::descriptor(msg.get_snapshot()).map_err(status)?;
    if let Err(e) = snapshots.check_descriptor(&d, Some(snapshots.applied())) {
        tracing::warn!(peer, index = d.index, "refused a raft snapshot: {e}");
        return Err(status(e));
    }
    tracing::info!(
        peer,
        index = d.index,
        bytes = d.total_bytes,
        "receiving a raft snapshot"
    );
    let total = d.total_bytes;
    let mut staging = Some(snapshots.stage(d).map_err(status)?);
    loop {
        let chunk = match inbound.message().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(s) => return Err(s),
        };
        let st = staging
            .take()
            .ok_or_else(|| Status::internal("staging lost"))?;
        let st = blocking(move || {
            let mut st = st;
            st.write(&chunk.file, chunk.offset, chunk.file_size, &chunk.data)
                .map(|()| st)
        })
        .await
        .map_err(|e| {
            tracing::warn!(peer, "snapshot reception failed: {e}");
            status(e)
        })?;
        staging = Some(st);
    }
    let st: Staging = staging.ok_or_else(|| Status::internal("staging lost"))?;
    let dir = blocking(move || st.finish()).await.map_err(|e| {
        tracing::warn!(peer, "snapshot reception failed: {e}");
        status(e)
    })?;
    tracing::info!(peer, dir = %dir.display(), "received and verified a raft snapshot");
    if !svc.inbox.step(msg) {
        return Err(Status::unavailable(
            "raft task backlogged; snapshot not taken",
        ));
    }
    svc.activity.saw(hello.from);
    Ok(Response::new(SnapshotResponse {
        cluster_id: svc.me.cluster_id,
        member_id: svc.me.member_id,
        received_bytes: total,
    }))
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, snapshot::Error> + Send + 'static,
) -> Result<T, snapshot::Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| snapshot::Error::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })?
}

#[cfg(test)]
mod tests;
