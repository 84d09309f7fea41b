//! The peer transport: raft messages between members over gRPC (`revkvpb.Peer`).
//!
//! Sending: the raft task hands its outgoing messages to [`Transport::send`], which
//! only pushes them onto one bounded queue per peer and never waits. A sender task
//! per peer (tokio) dials the peer, checks its identity and streams the queue to it,
//! reconnecting with backoff. A full queue drops the message and reports the peer
//! unreachable to raft, which then probes it instead of streaming to it.
//!
//! Receiving: [`PeerService`] accepts the streams other members dial and passes each
//! message to the raft task ([`PeerInbox`]).
//!
//! Identity: every stream starts with a hello carrying the cluster ID, and every
//! message carries it again. The accepting side refuses a stream of another cluster
//! (or meant for another member); the dialing side refuses a peer whose reply names
//! another cluster or member. A refused peer never gets a raft message from us and
//! none of its messages reach raft, so a mis-configured member can neither join nor
//! disturb a cluster. Both sides log the two IDs.
//!
//! Removal: a member removed from the cluster may never apply its own removal (the
//! leader stops replicating to it once the change commits). The accepting side
//! therefore refuses a removed member's streams and messages with a refusal that
//! says so, and the removed member's senders report it ([`Transport::removed`]), so
//! it stops, as etcd's peers answer a removed member with "410 Gone".
//!
//! Membership: the peer service also answers `Members` (the cluster ID and member
//! list) for a member joining a running cluster ([`fetch_membership`]).

mod activity;
mod sender;
mod service;
mod snapshot;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use raft::prelude::Message;
use revkv_proto::revkvpb;
use revkv_proto::tls::Connector;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use activity::PeerActivity;
pub use service::PeerService;

use crate::raft::snapshot::Snapshots;
use crate::raft::PeerInbox;

/// Why a peer stream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid peer URL {0:?}")]
    BadUrl(String),
    #[error("cannot connect: {}", chain(.0))]
    Connect(#[from] tonic::transport::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("peer answered {code:?}: {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("peer cluster ID {remote:x} does not match local cluster ID {local:x}")]
    ClusterMismatch { remote: u64, local: u64 },
    #[error("peer member ID {remote:x} does not match the expected member ID {expected:x}")]
    MemberMismatch { remote: u64, expected: u64 },
    #[error("peer closed the stream")]
    Closed,
    #[error("the member has been permanently removed from the cluster")]
    Removed,
    #[error("encoding a raft message: {0}")]
    Encode(#[from] protobuf::ProtobufError),
    #[error("snapshot: {0}")]
    Snapshot(#[from] crate::raft::snapshot::Error),
}

impl Error {
    /// The peer is not the member of our cluster we meant to reach (by its reply or
    /// by its refusal of our hello).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::ClusterMismatch { .. }
                | Error::MemberMismatch { .. }
                | Error::Refused {
                    code: tonic::Code::FailedPrecondition,
                    ..
                }
        )
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Refused {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// gRPC metadata keys on a refusal: the refusing member's cluster and member ID (hex),
/// so the dialer can report the mismatch in its own terms.
const CLUSTER_ID_KEY: &str = "revkv-cluster-id";
const MEMBER_ID_KEY: &str = "revkv-member-id";
/// gRPC metadata key on the refusal of a removed member's stream (its ID, hex).
const REMOVED_KEY: &str = "revkv-removed-member";
/// How that refusal's message ends (checked too, in case metadata is lost on the way).
const REMOVED_SUFFIX: &str = "has been permanently removed from the cluster";

/// What the peer service needs to know of the membership (the applier keeps it).
pub trait Directory: Send + Sync + 'static {
    /// The cluster ID and current members, for a joining member.
    fn membership(&self) -> revkvpb::Membership;
    /// Whether `member` was removed from the cluster.
    fn is_removed(&self, member: u64) -> bool;
}

/// Connects to a peer's URL: one channel with HTTP/2 keep-alives, so a dead peer is
/// noticed even on a stream that is idle.
async fn dial(
    url: &str,
    cfg: &TransportConfig,
) -> Result<revkv_proto::revkvpb::peer_client::PeerClient<tonic::transport::Channel>, Error> {
    let dial = cfg.dial_timeout;
    let (target, dialer) = cfg.connector.for_tonic(url);
    let endpoint = tonic::transport::Endpoint::from_shared(target)
        .map_err(|_| Error::BadUrl(url.to_string()))?
        .connect_timeout(dial)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5));
    let channel = tokio::time::timeout(dial, endpoint.connect_with_connector(dialer))
        .await
        .map_err(|_| Error::Timeout(dial))??;
    Ok(revkv_proto::revkvpb::peer_client::PeerClient::new(channel)
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(cfg.max_message_bytes))
}

/// An error with its sources, which tonic's transport errors keep to themselves.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Logs a repeating complaint about one peer at most once per `every`; a refused
/// peer retries forever and must not flood the log.
struct LogLimiter {
    every: Duration,
    last: Mutex<HashMap<u64, std::time::Instant>>,
}

impl LogLimiter {
    fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// True when a message about `peer` should be logged now.
    fn allow(&self, peer: u64) -> bool {
        let now = std::time::Instant::now();
        let mut last = self.last.lock();
        match last.get(&peer) {
            Some(t) if now.duration_since(*t) < self.every => false,
            _ => {
                last.insert(peer, now);
                true
            }
        }
    }
}

/// Tunables of the transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Messages queued per peer before new ones are dropped (etcd: 4096).
    pub queue_len: usize,
    /// Bound on connecting and on the handshake.
    pub dial_timeout: Duration,
    /// First and longest wait between reconnection attempts.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Wait before dialing again a peer that turned out to belong to another cluster
    /// (or to be another member): a configuration error, fixed by a human if at all.
    pub refused_backoff: Duration,
    /// Largest encoded peer message accepted or sent (one raft message with entries).
    pub max_message_bytes: usize,
    /// How recent a peer's traffic must be for it to count as active.
    pub active_window: Duration,
    /// Least time between two acknowledgements on an accepted stream.
    pub ack_interval: Duration,
    /// How long a stream may go without a message before the dialer sends an empty
    /// one (etcd's link heartbeat), so that peers with nothing to say to each other
    /// (two followers) still count as active: the reconfiguration checks
    /// (`cluster::reconfig`) need every voter connected.
    pub link_heartbeat: Duration,
    /// How peers are dialed: TLS for `https://` peer URLs (`crate::tls::peer_dialer`).
    pub connector: Connector,
}

impl TransportConfig {
    /// Defaults derived from the raft timing flags and `--max-request-bytes`.
    pub fn new(heartbeat: Duration, election: Duration, max_request_bytes: usize) -> Self {
        TransportConfig {
            queue_len: 4096,
            dial_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1).max(heartbeat * 4),
            refused_backoff: Duration::from_secs(5),
            // Raft fills a message with up to 1 MiB of entries but always includes one,
            // and an entry may be as large as a request.
            max_message_bytes: max_request_bytes + (4 << 20),
            active_window: election,
            ack_interval: heartbeat,
            link_heartbeat: election / 3,
            connector: Connector::new(None),
        }
    }
}

/// Who we are, as told to every peer.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    pub cluster_id: u64,
    pub member_id: u64,
}

struct PeerQueue {
    tx: mpsc::Sender<Message>,
    task: JoinHandle<()>,
    /// Where snapshots to this peer are sent (they bypass the queue).
    urls: Vec<String>,
}

pub struct Transport {
    me: Identity,
    cfg: TransportConfig,
    inbox: PeerInbox,
    activity: Arc<PeerActivity>,
    runtime: Handle,
    peers: RwLock<HashMap<u64, PeerQueue>>,
    /// Tasks serving accepted streams, aborted at shutdown.
    accepted: Arc<Mutex<Vec<JoinHandle<()>>>>,
    directory: OnceLock<Arc<dyn Directory>>,
    /// Set when a peer refused us because we were removed from the cluster.
    removed: Arc<watch::Sender<bool>>,
    /// Checkpoints to send and where received ones go; without it snapshots are
    /// neither sent nor accepted.
    snapshots: Option<Arc<Snapshots>>,
}

impl Transport {
    pub fn new(me: Identity, cfg: TransportConfig, inbox: PeerInbox, runtime: Handle) -> Self {
        Transport {
            me,
            activity: Arc::new(PeerActivity::new(cfg.active_window)),
            cfg,
            inbox,
            runtime,
            peers: RwLock::new(HashMap::new()),
            accepted: Arc::default(),
            directory: OnceLock::new(),
            removed: Arc::new(watch::channel(false).0),
            snapshots: None,
        }
    }

    /// Sends and accepts raft snapshots through `snapshots`.
    pub fn with_snapshots(mut self, snapshots: Arc<Snapshots>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Gives the peer service its view of the membership; call before
    /// [`Transport::service`] (later calls are ignored).
    pub fn set_directory(&self, directory: Arc<dyn Directory>) {
        let _ = self.directory.set(directory);
    }

    /// Becomes true when a peer said this member was removed from the cluster.
    pub fn removed(&self) -> watch::Receiver<bool> {
        self.removed.subscribe()
    }

    /// Starts streaming to `peer` at `urls` (tried in turn).
    pub fn add_peer(&self, peer: u64, urls: Vec<String>) -> Result<(), Error> {
        if urls.is_empty() {
            return Err(Error::BadUrl(String::new()));
        }
        for url in &urls {
            if !crate::config::is_member_url(url) {
                return Err(Error::BadUrl(url.clone()));
            }
        }
        let (tx, rx) = mpsc::channel(self.cfg.queue_len.max(1));
        let sender = sender::PeerSender {
            me: self.me,
            peer,
            urls: urls.clone(),
            cfg: self.cfg.clone(),
            rx,
            inbox: self.inbox.clone(),
            activity: self.activity.clone(),
            removed: self.removed.clone(),
        };
        let task = self.runtime.spawn(sender.run());
        if let Some(old) = self
            .peers
            .write()
            .insert(peer, PeerQueue { tx, task, urls })
        {
            old.task.abort();
        }
        Ok(())
    }

    /// Stops streaming to `peer`.
    pub fn remove_peer(&self, peer: u64) {
        if let Some(q) = self.peers.write().remove(&peer) {
            q.task.abort();
        }
        self.activity.remove(peer);
    }

    /// Queues messages for their peers without blocking; called by the raft task.
    pub fn send(&self, msgs: Vec<Message>) {
        let mut unreachable = Vec::new();
        {
            let peers = self.peers.read();
            for m in msgs {
                let to = m.to;
                let Some(q) = peers.get(&to) else {
                    tracing::debug!(to = format!("{to:x}"), "no transport for raft message");
                    continue;
                };
                if m.get_msg_type() == raft::prelude::MessageType::MsgSnapshot {
                    self.send_snapshot(m, q.urls.clone());
                    continue;
                }
                if q.tx.try_send(m).is_err() && !unreachable.contains(&to) {
                    unreachable.push(to);
                }
            }
        }
        for peer in unreachable {
            tracing::debug!(
                peer = format!("{peer:x}"),
                "peer queue full; dropped a raft message"
            );
            self.inbox.unreachable(peer);
        }
    }

    /// Streams a snapshot on a task of its own (see `snapshot.rs`).
    fn send_snapshot(&self, msg: Message, urls: Vec<String>) {
        let to = msg.to;
        let Some(snapshots) = self.snapshots.clone() else {
            tracing::warn!(
                to = format!("{to:x}"),
                "cannot send a raft snapshot: no snapshot store"
            );
            self.inbox.report_snapshot(to, false);
            return;
        };
        let send = snapshot::SnapshotSend {
            me: self.me,
            peer: to,
            urls,
            cfg: self.cfg.clone(),
            snapshots,
            inbox: self.inbox.clone(),
            msg,
        };
        let task = self.runtime.spawn(snapshot::send(send));
        let mut tasks = self.accepted.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// The gRPC service other members dial, to be served on `--listen-peer-urls`.
    pub fn service(&self) -> revkv_proto::revkvpb::peer_server::PeerServer<PeerService> {
        let svc = PeerService {
            me: self.me,
            inbox: self.inbox.clone(),
            activity: self.activity.clone(),
            ack_interval: self.cfg.ack_interval,
            tasks: self.accepted.clone(),
            refusals: Arc::new(LogLimiter::new(Duration::from_secs(30))),
            directory: self.directory.get().cloned(),
            snapshots: self.snapshots.clone(),
        };
        revkv_proto::revkvpb::peer_server::PeerServer::new(svc)
            .max_decoding_message_size(self.cfg.max_message_bytes)
            .max_encoding_message_size(self.cfg.max_message_bytes)
    }

    /// How this member dials its peers (also for requests it forwards to the leader).
    pub fn connector(&self) -> &Connector {
        &self.cfg.connector
    }

    pub fn activity(&self) -> &PeerActivity {
        &self.activity
    }

    /// Stops every sender and every accepted stream.
    pub fn shutdown(&self) {
        for (_, q) in self.peers.write().drain() {
            q.task.abort();
        }
        for t in self.accepted.lock().drain(..) {
            t.abort();
        }
    }
}

/// Asks the members at `urls` (in turn, until one answers) for the cluster ID and
/// current membership.
pub async fn fetch_membership(
    urls: &[String],
    timeout: Duration,
    connector: &Connector,
) -> Result<revkvpb::Membership, Error> {
    let mut last = Error::BadUrl(String::new());
    for url in urls {
        match fetch_one(url, timeout, connector).await {
            Ok(m) => return Ok(m),
            Err(e) => {
                tracing::warn!(url, error = %e, "cannot fetch the membership from peer");
                last = e;
            }
        }
    }
    Err(last)
}

async fn fetch_one(
    url: &str,
    timeout: Duration,
    connector: &Connector,
) -> Result<revkvpb::Membership, Error> {
    let (target, dialer) = connector.for_tonic(url);
    let endpoint = tonic::transport::Endpoint::from_shared(target)
        .map_err(|_| Error::BadUrl(url.to_string()))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = tokio::time::timeout(timeout, endpoint.connect_with_connector(dialer))
        .await
        .map_err(|_| Error::Timeout(timeout))??;
    let mut client = revkvpb::peer_client::PeerClient::new(channel);
    let resp = client.members(revkvpb::MembersRequest {}).await?;
    Ok(resp.into_inner())
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
