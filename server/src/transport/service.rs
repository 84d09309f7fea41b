//! The accepting side: streams other members dial to us.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use protobuf::Message as _;
use raft::prelude::Message;
use revkv_proto::revkvpb::peer_server::Peer;
use revkv_proto::revkvpb::{
    MembersRequest, Membership, RaftMessage, SendResponse, SnapshotChunk, SnapshotResponse,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    Directory, Identity, LogLimiter, PeerActivity, CLUSTER_ID_KEY, MEMBER_ID_KEY, REMOVED_KEY,
    REMOVED_SUFFIX,
};
use crate::raft::snapshot::Snapshots;
use crate::raft::PeerInbox;

/// How long a dialer may take to send its hello.
pub(super) const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PeerService {
    pub(super) me: Identity,
    pub(super) inbox: PeerInbox,
    pub(super) activity: Arc<PeerActivity>,
    pub(super) ack_interval: Duration,
    pub(super) tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// A refused member redials every few seconds; say so once in a while, not each
    /// time.
    pub(super) refusals: Arc<LogLimiter>,
    pub(super) directory: Option<Arc<dyn Directory>>,
    /// Where received snapshots are staged; `None` refuses them.
    pub(super) snapshots: Option<Arc<Snapshots>>,
}

/// The refusal a removed member gets, marked so that it knows it was removed.
fn removed_refusal(member: u64) -> Status {
    let mut meta = tonic::metadata::MetadataMap::new();
    if let Ok(v) = format!("{member:x}").parse() {
        meta.insert(REMOVED_KEY, v);
    }
    Status::with_metadata(
        tonic::Code::FailedPrecondition,
        format!("member {member:x} {REMOVED_SUFFIX}"),
        meta,
    )
}

impl PeerService {
    /// The accepting side's identity check; the error names both IDs and is logged
    /// here as well as returned to the dialer.
    pub(super) fn check(&self, m: &RaftMessage, addr: &str) -> Result<(), Status> {
        if m.cluster_id == self.me.cluster_id
            && self
                .directory
                .as_ref()
                .is_some_and(|d| d.is_removed(m.from))
        {
            if self.refusals.allow(m.from) {
                tracing::warn!(
                    peer = format!("{:x}", m.from),
                    remote_addr = addr,
                    "refused a stream from a removed member"
                );
            }
            return Err(removed_refusal(m.from));
        }
        let msg = if m.cluster_id != self.me.cluster_id {
            format!(
                "peer cluster ID {:x} does not match local cluster ID {:x}",
                m.cluster_id, self.me.cluster_id
            )
        } else if m.to != self.me.member_id {
            format!(
                "peer asked for member ID {:x}, but this is member ID {:x}",
                m.to, self.me.member_id
            )
        } else {
            return Ok(());
        };
        let peer = format!("{:x}", m.from);
        if self.refusals.allow(m.from) {
            tracing::error!(peer, remote_addr = addr, "refused a peer stream: {msg}");
        } else {
            tracing::debug!(peer, remote_addr = addr, "refused a peer stream: {msg}");
        }
        // Our IDs travel in metadata so the dialer can name both IDs from its side.
        let mut meta = tonic::metadata::MetadataMap::new();
        for (key, id) in [
            (CLUSTER_ID_KEY, self.me.cluster_id),
            (MEMBER_ID_KEY, self.me.member_id),
        ] {
            if let Ok(v) = format!("{id:x}").parse() {
                meta.insert(key, v);
            }
        }
        Err(Status::with_metadata(
            tonic::Code::FailedPrecondition,
            msg,
            meta,
        ))
    }

    fn reply(&self, received: u64) -> SendResponse {
        SendResponse {
            cluster_id: self.me.cluster_id,
            member_id: self.me.member_id,
            received,
        }
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        let Some(snapshots) = &self.snapshots else {
            return Err(Status::unimplemented(
                "this member does not accept snapshots",
            ));
        };
        super::snapshot::receive(self, snapshots, request).await
    }

    async fn send(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<BoxStream<SendResponse>>, Status> {
        let addr = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut inbound = request.into_inner();
        let hello = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no peer hello"))??
            .ok_or_else(|| Status::cancelled("peer closed the stream before its hello"))?;
        self.check(&hello, &addr)?;
        let from = hello.from;
        self.activity.saw(from);
        let (tx, rx) = mpsc::channel(2);
        // Room for two: this cannot fail.
        let _ = tx.try_send(Ok(self.reply(0)));
        let receiver = Receiver {
            directory: self.directory.clone(),
            me: self.me,
            from,
            inbox: self.inbox.clone(),
            activity: self.activity.clone(),
            ack_interval: self.ack_interval,
            acks: tx,
        };
        let task = tokio::spawn(receiver.run(inbound));
        {
            let mut tasks = self.tasks.lock();
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<Membership>, Status> {
        match &self.directory {
            Some(d) => Ok(Response::new(d.membership())),
            None => Err(Status::unavailable("membership not loaded yet")),
        }
    }
}

/// Reads one accepted stream into the raft task.
struct Receiver {
    directory: Option<Arc<dyn Directory>>,
    me: Identity,
    from: u64,
    inbox: PeerInbox,
    activity: Arc<PeerActivity>,
    ack_interval: Duration,
    acks: mpsc::Sender<Result<SendResponse, Status>>,
}

impl Receiver {
    async fn run(self, mut inbound: Streaming<RaftMessage>) {
        let peer = format!("{:x}", self.from);
        let mut received = 0u64;
        let mut last_ack = Instant::now();
        loop {
            let m = match inbound.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(peer, error = %status, "peer stream ended");
                    break;
                }
            };
            if m.cluster_id != self.me.cluster_id || m.from != self.from {
                // The hello was checked; a stream that changes identity midway is
                // not one we trust with anything further.
                let msg = format!(
                    "peer cluster ID {:x} (member {:x}) does not match local cluster ID {:x} (stream opened by member {:x})",
                    m.cluster_id, m.from, self.me.cluster_id, self.from
                );
                tracing::error!(peer, "closing a peer stream: {msg}");
                let _ = self.acks.send(Err(Status::failed_precondition(msg))).await;
                break;
            }
            if self
                .directory
                .as_ref()
                .is_some_and(|d| d.is_removed(self.from))
            {
                // Removed while the stream was open: tell it so and stop listening.
                let _ = self.acks.send(Err(removed_refusal(self.from))).await;
                break;
            }
            // An empty message is a link heartbeat: the peer is alive, with nothing
            // for raft (followers have nothing to say to each other).
            if !m.message.is_empty() {
                let msg = match Message::parse_from_bytes(&m.message) {
                    Ok(msg) => msg,
                    Err(e) => {
                        tracing::warn!(peer, error = %e, "undecodable raft message from peer; dropped");
                        continue;
                    }
                };
                if msg.to != self.me.member_id || msg.from != self.from {
                    tracing::warn!(
                        peer,
                        to = format!("{:x}", msg.to),
                        "raft message addressed to another member; dropped"
                    );
                    continue;
                }
                received += 1;
                if !self.inbox.step(msg) {
                    tracing::debug!(peer, "raft task backlogged; dropped a peer message");
                }
            }
            self.activity.saw(self.from);
            if last_ack.elapsed() >= self.ack_interval {
                // Best effort: a dialer that is slow to read acks loses some, and
                // the next one carries the total anyway.
                if self.acks.try_send(Ok(self.reply(received))).is_ok() {
                    last_ack = Instant::now();
                }
            }
            if self.acks.is_closed() {
                break;
            }
        }
    }

    fn reply(&self, received: u64) -> SendResponse {
        SendResponse {
            cluster_id: self.me.cluster_id,
            member_id: self.me.member_id,
            received,
        }
    }
}
