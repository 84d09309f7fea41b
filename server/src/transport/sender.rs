//! One task per peer: dial, handshake, then stream the peer's queue to it.

use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::Message;
use revkv_proto::revkvpb::{RaftMessage, SendResponse};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::{
    Error, Identity, PeerActivity, TransportConfig, CLUSTER_ID_KEY, MEMBER_ID_KEY, REMOVED_KEY,
    REMOVED_SUFFIX,
};
use crate::raft::PeerInbox;

/// Raft messages buffered inside one open gRPC stream; the per-peer queue in front
/// of it is the real buffer.
const STREAM_BUFFER: usize = 256;

pub(super) struct PeerSender {
    pub me: Identity,
    pub peer: u64,
    pub urls: Vec<String>,
    pub cfg: TransportConfig,
    pub rx: mpsc::Receiver<Message>,
    pub inbox: PeerInbox,
    pub activity: Arc<PeerActivity>,
    /// Set when the peer says we were removed from the cluster.
    pub removed: Arc<watch::Sender<bool>>,
}

/// An open, verified stream to the peer.
struct Stream {
    out: mpsc::Sender<RaftMessage>,
    replies: Streaming<SendResponse>,
}

/// How a connected stream ended.
enum Ended {
    /// The transport dropped this peer: the task is done.
    Removed,
    Broken(Error),
}

impl PeerSender {
    pub async fn run(mut self) {
        let peer = format!("{:x}", self.peer);
        let mut backoff = self.cfg.backoff_min;
        // The last failure logged, so a peer that stays down is reported once, not
        // at every retry.
        let mut failing: Option<String> = None;
        for attempt in 0usize.. {
            let url = self.urls[attempt % self.urls.len()].clone();
            let wait = match self.connect(&url).await {
                Ok(stream) => {
                    if failing.take().is_some() {
                        tracing::info!(peer, url, "connected to peer");
                    }
                    backoff = self.cfg.backoff_min;
                    match self.pump(stream).await {
                        Ended::Removed => return,
                        Ended::Broken(Error::Removed) => self.we_were_removed(),
                        Ended::Broken(e) => {
                            tracing::warn!(peer, url, error = %e, "peer stream broke; reconnecting");
                            self.inbox.unreachable(self.peer);
                        }
                    }
                    backoff
                }
                Err(Error::Removed) => {
                    self.we_were_removed();
                    self.cfg.refused_backoff
                }
                Err(e) => {
                    let msg = e.to_string();
                    if failing.as_deref() != Some(msg.as_str()) {
                        if e.is_refusal() {
                            tracing::error!(
                                peer,
                                url,
                                local_cluster_id = format!("{:x}", self.me.cluster_id),
                                "refusing to send to peer: {msg}"
                            );
                        } else {
                            tracing::warn!(peer, url, error = %e, "cannot reach peer");
                        }
                        failing = Some(msg);
                    }
                    if e.is_refusal() {
                        // A configuration error: retried, since it may be fixed, but
                        // slowly.
                        self.cfg.refused_backoff
                    } else {
                        let wait = backoff;
                        backoff = (backoff * 2).min(self.cfg.backoff_max);
                        wait
                    }
                }
            };
            if !self.discard_until(Instant::now() + wait).await {
                return;
            }
        }
    }

    fn we_were_removed(&self) {
        if !self.removed.send_replace(true) {
            tracing::error!(
                peer = format!("{:x}", self.peer),
                "peer says this member has been permanently removed from the cluster"
            );
        }
    }

    /// Dials `url` and completes the handshake: our hello, then the peer's reply,
    /// which must name our cluster and the member we meant to reach.
    async fn connect(&self, url: &str) -> Result<Stream, Error> {
        let dial = self.cfg.dial_timeout;
        let mut client = super::dial(url, &self.cfg).await?;
        let (out, out_rx) = mpsc::channel(STREAM_BUFFER);
        // The hello: an empty message, as a link heartbeat is.
        out.try_send(self.link_heartbeat())
            .map_err(|_| Error::Closed)?;
        let resp = timeout(dial, client.send(ReceiverStream::new(out_rx)))
            .await
            .map_err(|_| Error::Timeout(dial))?
            .map_err(|s| self.refusal(s))?;
        let mut replies = resp.into_inner();
        let hello = timeout(dial, replies.message())
            .await
            .map_err(|_| Error::Timeout(dial))??
            .ok_or(Error::Closed)?;
        self.check(&hello)?;
        self.activity.saw(self.peer);
        Ok(Stream { out, replies })
    }

    /// A message that carries no raft message, only who is talking to whom.
    fn link_heartbeat(&self) -> RaftMessage {
        RaftMessage {
            cluster_id: self.me.cluster_id,
            from: self.me.member_id,
            to: self.peer,
            message: Vec::new(),
        }
    }

    fn check(&self, reply: &SendResponse) -> Result<(), Error> {
        self.check_ids(reply.cluster_id, reply.member_id)
    }

    fn check_ids(&self, cluster: u64, member: u64) -> Result<(), Error> {
        if cluster != self.me.cluster_id {
            return Err(Error::ClusterMismatch {
                remote: cluster,
                local: self.me.cluster_id,
            });
        }
        if member != self.peer {
            return Err(Error::MemberMismatch {
                remote: member,
                expected: self.peer,
            });
        }
        Ok(())
    }

    /// A refused handshake, restated from our side when the peer said who it is.
    fn refusal(&self, status: tonic::Status) -> Error {
        let id = |key| {
            status
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| u64::from_str_radix(v, 16).ok())
        };
        if status.code() == tonic::Code::FailedPrecondition {
            if status.metadata().get(REMOVED_KEY).is_some()
                || status.message().ends_with(REMOVED_SUFFIX)
            {
                return Error::Removed;
            }
            if let (Some(cluster), Some(member)) = (id(CLUSTER_ID_KEY), id(MEMBER_ID_KEY)) {
                if let Err(e) = self.check_ids(cluster, member) {
                    return e;
                }
            }
        }
        status.into()
    }

    /// Streams queued messages until the stream breaks or the peer is removed.
    async fn pump(&mut self, mut stream: Stream) -> Ended {
        let mut next_beat = Instant::now() + self.cfg.link_heartbeat;
        loop {
            tokio::select! {
                _ = sleep_until(next_beat) => {
                    if stream.out.send(self.link_heartbeat()).await.is_err() {
                        return Ended::Broken(Error::Closed);
                    }
                    next_beat = Instant::now() + self.cfg.link_heartbeat;
                }
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { return Ended::Removed };
                    let message = match msg.write_to_bytes() {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode a raft message; dropped");
                            continue;
                        }
                    };
                    let m = RaftMessage {
                        cluster_id: self.me.cluster_id,
                        from: self.me.member_id,
                        to: self.peer,
                        message,
                    };
                    // Waits only for this peer's stream; the raft task is never held up
                    // because it only ever try-sends into the queue.
                    if stream.out.send(m).await.is_err() {
                        return Ended::Broken(Error::Closed);
                    }
                    next_beat = Instant::now() + self.cfg.link_heartbeat;
                }
                reply = stream.replies.message() => match reply {
                    Ok(Some(ack)) => {
                        if let Err(e) = self.check(&ack) {
                            return Ended::Broken(e);
                        }
                        self.activity.saw(self.peer);
                    }
                    Ok(None) => return Ended::Broken(Error::Closed),
                    Err(status) => return Ended::Broken(self.refusal(status)),
                },
            }
        }
    }

    /// Waits until `deadline`, dropping what is queued meanwhile (raft resends what
    /// matters) and telling raft once that the peer is unreachable. False when the
    /// peer was removed.
    async fn discard_until(&mut self, deadline: Instant) -> bool {
        let mut reported = false;
        loop {
            tokio::select! {
                _ = sleep_until(deadline) => return true,
                msg = self.rx.recv() => {
                    if msg.is_none() {
                        return false;
                    }
                    if !reported {
                        self.inbox.unreachable(self.peer);
                        reported = true;
                    }
                }
            }
        }
    }
}
