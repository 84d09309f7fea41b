//! One member: the pieces wired together, and the two paths every request takes —
//! propose-and-wait for writes, ReadIndex-and-wait for linearizable reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prost::Message as _;
use revkv_proto::etcdserverpb::alarm_request::AlarmAction;
use revkv_proto::etcdserverpb::{AlarmRequest, AlarmType, ResponseHeader};
use revkv_proto::revkvpb::{self, internal_raft_request, InternalRaftRequest, RequestHeader};
use tokio::sync::watch;

use crate::alarm::Alarms;
use crate::api::validate::RequestError;
use crate::apply::member::{MemberEffect, Members};
use crate::apply::{handoff, Applier, Outcome, Response};
use crate::auth::{AuthInfo, AuthStore};
use crate::cluster::{self, Change, Membership};
use crate::config::Config;
use crate::doorbell::{self, Doorbell};
use crate::lease::{self, Lessor, LessorConfig};
use crate::metrics::Metrics;
use crate::mvcc::compact::{Compactor, CompactorConfig};
use crate::mvcc::KvStore;
use crate::raft::entry_log::EntryLogConfig;
use crate::raft::snapshot::{self as raft_snapshot, Snapshots};
use crate::raft::{self, LogStore, Mailbox, NodeSinks, RaftConfig, RaftHandle};
use crate::storage::{self, meta, Storage, StorageConfig};
use crate::transport::{self, Identity, Transport, TransportConfig};
use crate::wait::Wait;
use crate::watch::{Hub, WatchConfig};
use crate::Error;

/// What a running member is made of. Handlers hold an `Arc<Server>`.
pub struct Server {
    pub cfg: Config,
    pub store: Arc<KvStore>,
    pub raft: RaftHandle,
    /// The lease table; also what `Put` consults for "requested lease not found".
    pub leases: Arc<Lessor>,
    pub metrics: Arc<Metrics>,
    /// The watch hub; the applier notifies it of every committed batch.
    pub watch: Arc<Hub>,
    pub cluster_id: u64,
    pub member_id: u64,
    /// The membership as of the applied index (the applier updates it).
    pub membership: Arc<RwLock<Membership>>,
    /// Raft messages to and from the other members.
    pub transport: Arc<Transport>,
    /// The cluster's alarms as of the applied index (the applier updates them).
    pub alarms: Arc<Alarms>,
    /// Users, roles and tokens as of the applied index (the applier updates them).
    pub auth: Arc<AuthStore>,
    wait: Arc<Wait<Outcome>>,
    compactor: Arc<Compactor>,
    applied: watch::Receiver<u64>,
    next_id: AtomicU64,
    /// Set when a background thread failed and the member must stop.
    fatal: watch::Sender<Option<String>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Errors that keep a member from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error(transparent)]
    Mvcc(#[from] crate::mvcc::Error),
    #[error(transparent)]
    Raft(#[from] raft::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error("restoring leases: {0}")]
    Lease(#[from] lease::Error),
    #[error("peer transport: {0}")]
    Transport(#[from] transport::Error),
    #[error("raft snapshots: {0}")]
    Snapshot(#[from] raft_snapshot::Error),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::Error),
    #[error("{0}")]
    Unsupported(String),
}

impl From<::raft::Error> for StartError {
    fn from(e: ::raft::Error) -> Self {
        StartError::Raft(e.into())
    }
}

impl Server {
    /// Opens the data dir, replays what the log holds beyond the applied index, and
    /// starts the raft, apply and compactor threads and the peer senders (on
    /// `runtime`).
    pub fn start(cfg: Config, runtime: tokio::runtime::Handle) -> Result<Arc<Server>, StartError> {
        let storage = Storage::open(&cfg.data_dir(), &StorageConfig::default())?;
        // Before anything reads the state: a snapshot install a crash interrupted is
        // completed first (see `storage::checkpoint`).
        storage::checkpoint::recover(&storage)?;
        let dial = Duration::from_secs(2);
        let dialer = crate::tls::peer_dialer(&cfg)?;
        let fetch_rt = runtime.clone();
        let fetch_dialer = dialer.clone();
        let fetch = move |urls: &[String]| {
            fetch_rt
                .block_on(transport::fetch_membership(urls, dial, &fetch_dialer))
                .map_err(|e| e.to_string())
        };
        let boot = cluster::bootstrap(&storage, &cfg, &fetch)?;
        let (member_id, cluster_id) = (boot.member_id, boot.cluster_id);

        let store = KvStore::open(storage.clone())?;
        let compactor = Arc::new(Compactor::spawn(
            store.clone(),
            CompactorConfig {
                batch_limit: cfg.experimental_compaction_batch_limit.max(1),
                ..Default::default()
            },
        )?);
        let watch = Hub::new(
            store.clone(),
            WatchConfig {
                // etcd raises shorter intervals to its 100 ms minimum.
                progress_notify_interval: cfg
                    .experimental_watch_progress_notify_interval
                    .max(Duration::from_millis(100)),
                fragment_bytes: cfg.max_request_bytes + 512 * 1024,
                ..Default::default()
            },
        );
        watch.spawn_tasks();
        let applied_index = storage.get_meta_u64(meta::APPLIED_INDEX)?.unwrap_or(0);
        // On a fresh start the configuration is the bootstrap membership's (every
        // initial member a voter; for a joining member, the cluster's current voters
        // and learners, itself included); afterwards the persisted configuration wins.
        let snapshots = Snapshots::open(&cfg.data_dir(), cluster_id, storage.clone())?;
        let log = LogStore::open_with(
            storage,
            ::raft::prelude::ConfState {
                voters: boot.voters(),
                learners: boot.learners(),
                ..Default::default()
            },
            EntryLogConfig::default(),
        )?
        .with_snapshots(snapshots.clone());

        let wait: Arc<Wait<Outcome>> = Arc::default();
        let metrics = Arc::new(Metrics::default());
        let apply_bell = Doorbell::default();
        let (install_tx, install_rx) = doorbell::unbounded(&apply_bell);
        let (fatal, _) = watch::channel(None);
        let fatal_inline = fatal.clone();
        let (handoff, apply_loop) = handoff::channel(
            &apply_bell,
            install_rx,
            Box::new(move |why| {
                fatal_inline.send_replace(Some(why));
            }),
        );
        let drop_wait = wait.clone();
        let drop_metrics = metrics.clone();
        let fsync_metrics = metrics.clone();
        let raft_cfg = RaftConfig {
            id: member_id,
            tick: Duration::from_millis(cfg.heartbeat_interval),
            election_ticks: (cfg.election_timeout / cfg.heartbeat_interval.max(1)) as usize,
            snapshot_count: cfg.snapshot_count.max(1),
            catch_up_entries: 5000,
            max_pending: 16 * 1024,
            read_retry: Duration::from_millis(500),
            conf_change_wait: cfg.request_timeout(),
        };
        let mailbox = Mailbox::new(&raft_cfg);
        let transport = Arc::new(
            Transport::new(
                Identity {
                    cluster_id,
                    member_id,
                },
                TransportConfig {
                    connector: dialer,
                    ..TransportConfig::new(
                        Duration::from_millis(cfg.heartbeat_interval),
                        Duration::from_millis(cfg.election_timeout),
                        cfg.max_request_bytes,
                    )
                },
                mailbox.peer_inbox(),
                runtime.clone(),
            )
            .with_snapshots(snapshots),
        );
        for m in boot.peers() {
            transport.add_peer(m.id, m.peer_urls.clone())?;
        }
        let membership = Arc::new(RwLock::new(boot.membership.clone()));
        transport.set_directory(Arc::new(MembershipDirectory(membership.clone())));
        let send_transport = transport.clone();
        let (raft, raft_thread) = raft::spawn(
            raft_cfg,
            log,
            applied_index,
            NodeSinks {
                committed: Box::new(move |entries, spare| handoff.deliver(entries, spare)),
                on_drop: Box::new(move |id, err| {
                    drop_metrics
                        .proposals_failed
                        .fetch_add(1, Ordering::Relaxed);
                    drop_wait.trigger(id, Err(err.into()));
                }),
                on_fsync: Box::new(move |elapsed| fsync_metrics.observe_wal_fsync(elapsed)),
                transport: Box::new(move |msgs| send_transport.send(msgs)),
                install: install_tx,
            },
            mailbox,
        )?;

        let (applied_tx, applied_rx) = watch::channel(applied_index);
        let alarms = Arc::new(Alarms::load(store.storage())?);
        let auth = Arc::new(
            AuthStore::open(
                store.storage().clone(),
                cfg.auth_config().map_err(|e| {
                    StartError::Unsupported(format!("auth: invalid auth options: {e}"))
                })?,
            )
            .map_err(|e| StartError::Unsupported(format!("auth: {e}")))?,
        );
        let leases = Arc::new(Lessor::open(
            store.storage().clone(),
            LessorConfig::from_timing(cfg.heartbeat_interval, cfg.election_timeout),
        )?);
        let raft_for_apply = raft.clone();
        let raft_for_conf = raft.clone();
        let effects_transport = transport.clone();
        let effects_fatal = fatal.clone();
        let effects_runtime = runtime.clone();
        let linger = 10 * Duration::from_millis(cfg.heartbeat_interval);
        let members = Members::new(
            membership.clone(),
            Box::new(move |cc| raft_for_conf.apply_conf_change(cc)),
            Box::new(move |effect| match effect {
                MemberEffect::Removed(id) if *id == member_id => {
                    tracing::error!("the member has been permanently removed from the cluster");
                    // Like etcd, linger for a few heartbeats first: a leader that
                    // removed itself must still tell the others the change committed,
                    // or they may never apply it and wait for its vote forever.
                    let fatal = effects_fatal.clone();
                    effects_runtime.spawn(async move {
                        tokio::time::sleep(linger).await;
                        fatal.send_replace(Some(cluster::Error::Removed.to_string()));
                    });
                }
                MemberEffect::Removed(id) => effects_transport.remove_peer(*id),
                MemberEffect::Upsert(m) if m.id != member_id => {
                    if let Err(e) = effects_transport.add_peer(m.id, m.peer_urls.clone()) {
                        tracing::error!(peer = format!("{:x}", m.id), error = %e, "cannot stream to new member");
                    }
                }
                MemberEffect::Upsert(_) => {}
            }),
        );
        // A peer may tell us of our removal before (or instead of) the log.
        let mut removed = transport.removed();
        let removed_fatal = fatal.clone();
        runtime.spawn(async move {
            if removed.wait_for(|r| *r).await.is_ok() {
                removed_fatal.send_replace(Some(cluster::Error::Removed.to_string()));
            }
        });
        let applier = Applier {
            store: store.clone(),
            leases: leases.clone(),
            wait: wait.clone(),
            compactor: compactor.clone(),
            watch: watch.clone(),
            on_applied: Box::new(move |i| {
                raft_for_apply.applied(i);
                applied_tx.send_replace(i);
            }),
            applied: applied_index,
            members,
            alarms: alarms.clone(),
            auth: auth.clone(),
        };
        let fatal_apply = fatal.clone();
        let apply_thread = std::thread::Builder::new()
            .name("apply".into())
            .spawn(move || {
                if let Err(e) = apply_loop.run(applier) {
                    tracing::error!(error = %e, "apply failed; stopping");
                    fatal_apply.send_replace(Some(format!("apply failed: {e}")));
                }
            })
            .map_err(|e| StartError::Unsupported(format!("cannot start apply thread: {e}")))?;

        let seed = (member_id & 0xFFFF) << 48 | (unix_millis() & 0xFF_FFFF_FFFF) << 8;
        Ok(Arc::new(Server {
            cfg,
            store,
            raft,
            leases,
            metrics,
            watch,
            cluster_id,
            member_id,
            membership,
            transport,
            alarms,
            auth,
            wait,
            compactor,
            applied: applied_rx,
            next_id: AtomicU64::new(seed),
            fatal,
            threads: Mutex::new(vec![raft_thread, apply_thread]),
        }))
    }

    /// Header for a response at `revision` (0 = the current revision).
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision: if revision == 0 {
                self.store.current_rev()
            } else {
                revision
            },
            raft_term: self.raft.status().term(),
        }
    }

    /// The header of etcd's Cluster service answers: like [`Server::header`] but
    /// without a revision, which etcd's cluster server never sets.
    pub fn cluster_header(&self) -> ResponseHeader {
        ResponseHeader {
            revision: 0,
            ..self.header(0)
        }
    }

    /// Completes a header the applier started (its revision, if set, is kept).
    pub fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let rev = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(rev));
    }

    /// A fresh id from this member's request-id generator (etcd's `reqIDGen`): unique
    /// among this member's proposals, and the source of server-chosen lease ids.
    pub fn next_request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Who a client is, from the token it sent (gRPC metadata `token`). Without one
    /// it is nobody (fine while auth is disabled); a token sent must be one this
    /// member knows, even while auth is disabled (which drops them all), as in etcd.
    pub fn auth_info(&self, token: Option<&[u8]>) -> crate::auth::Caller {
        let Some(t) = token else {
            return Ok(AuthInfo::default());
        };
        let t = std::str::from_utf8(t).map_err(|_| crate::auth::Error::InvalidToken)?;
        self.auth.info_for_token(t)
    }

    /// Proposes the member's own write and waits until it is applied. Auth does not
    /// check it: a client's request goes through [`Server::propose_checked`].
    pub async fn propose(
        &self,
        request: internal_raft_request::Request,
    ) -> Result<Response, Error> {
        self.propose_with(None, request).await
    }

    /// Proposes a client's write, sent by `user`, and waits until it is applied; apply
    /// refuses it if auth is enabled and the user may not make it.
    pub async fn propose_checked(
        &self,
        user: &AuthInfo,
        request: internal_raft_request::Request,
    ) -> Result<Response, Error> {
        self.propose_with(Some(user), request).await
    }

    async fn propose_with(
        &self,
        user: Option<&AuthInfo>,
        request: internal_raft_request::Request,
    ) -> Result<Response, Error> {
        let id = self.next_request_id();
        let header = match user {
            Some(u) => RequestHeader {
                id,
                username: u.username.clone(),
                auth_revision: u.revision,
                checked: true,
            },
            None => RequestHeader {
                id,
                ..Default::default()
            },
        };
        let msg = InternalRaftRequest {
            header: Some(header),
            request: Some(request),
        };
        let data = msg.encode_to_vec();
        if data.len() > self.cfg.max_request_bytes {
            return Err(RequestError::TooLarge.into());
        }
        let rx = self.wait.register(id);
        if let Err(e) = self.raft.propose(id, data) {
            self.wait.cancel(id);
            return Err(e.into());
        }
        self.wait_applied(id, rx).await
    }

    /// Proposes a membership change as a raft conf change and waits until it is
    /// applied (or refused) here.
    pub async fn propose_conf_change(&self, change: &Change) -> Result<Response, Error> {
        let id = self.next_request_id();
        let cc = cluster::conf_change::encode(id, change)?;
        let rx = self.wait.register(id);
        if let Err(e) = self.raft.propose_conf_change(id, cc) {
            self.wait.cancel(id);
            return Err(e.into());
        }
        self.wait_applied(id, rx).await
    }

    async fn wait_applied(
        &self,
        id: u64,
        rx: tokio::sync::oneshot::Receiver<Outcome>,
    ) -> Result<Response, Error> {
        match tokio::time::timeout(self.cfg.request_timeout(), rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(raft::Error::Stopped.into()),
            Err(_) => {
                self.wait.cancel(id);
                Err(raft::Error::Timeout.into())
            }
        }
    }

    /// The membership as of the applied index.
    pub fn membership(&self) -> Membership {
        self.membership.read().clone()
    }

    /// Whether this member is a learner (etcd refuses most requests on one).
    pub fn is_learner(&self) -> bool {
        self.membership.read().is_learner(self.member_id)
    }

    /// etcd 3.4 serves a learner's clients only Status and serializable reads.
    pub fn refuse_on_learner(&self) -> Result<(), Error> {
        if self.is_learner() {
            return Err(cluster::Error::NotSupportedForLearner.into());
        }
        Ok(())
    }

    /// Waits until this member has applied everything committed before the call, so a
    /// local read that follows is linearizable.
    pub async fn linearizable_read(&self) -> Result<(), Error> {
        let wait = async {
            let index = self.raft.read_index().await?;
            let mut applied = self.applied.clone();
            applied
                .wait_for(|&a| a >= index)
                .await
                .map_err(|_| raft::Error::Stopped)?;
            Ok::<(), Error>(())
        };
        tokio::time::timeout(self.cfg.request_timeout(), wait)
            .await
            .map_err(|_| raft::Error::Timeout)?
    }

    /// Refuses a write of `cost` bytes (etcd's estimate, `api::quota`) that would take
    /// the database to `--quota-backend-bytes`, raising the `NOSPACE` alarm first (as
    /// etcd's quota check does), so every member refuses writes until an operator
    /// disarms it. A request that adds nothing always passes.
    pub async fn check_quota(&self, cost: u64) -> Result<(), Error> {
        let size = self.store.storage().size_bytes_cached();
        if cost == 0 || size.saturating_add(cost) < self.cfg.quota_bytes() {
            return Ok(());
        }
        if !self.alarms.has(AlarmType::Nospace, self.member_id) {
            let raise = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id,
                alarm: AlarmType::Nospace as i32,
            };
            // The write fails either way; a failed raise is retried by the next one.
            if let Err(e) = self
                .propose(internal_raft_request::Request::Alarm(raise))
                .await
            {
                tracing::warn!(error = %e, "could not raise the NOSPACE alarm");
            }
        }
        Err(RequestError::NoSpace.into())
    }

    /// Waits until old versions below `rev` are physically removed.
    pub async fn wait_compaction(&self, rev: i64) -> Result<(), Error> {
        let mut done = self.compactor.finished();
        done.wait_for(|&d| d >= rev)
            .await
            .map_err(|_| raft::Error::Stopped)?;
        Ok(())
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Resolves when a background thread failed; the member must then exit.
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.subscribe();
        loop {
            if let Some(msg) = rx.borrow_and_update().clone() {
                return msg;
            }
            if rx.changed().await.is_err() {
                return "server stopped".into();
            }
        }
    }

    /// Stops the raft task (which stops the applier) and joins the threads.
    pub fn shutdown(&self) {
        self.transport.shutdown();
        self.raft.shutdown();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        // With the memtables on disk the next start has no WAL to replay: a restart
        // then opens in milliseconds instead of re-inserting up to a write buffer per
        // column family.
        if let Err(e) = self.store.storage().flush() {
            tracing::warn!(error = %e, "flushing the store at shutdown");
        }
    }
}

/// The membership as the peer service sees it.
struct MembershipDirectory(Arc<RwLock<Membership>>);

impl transport::Directory for MembershipDirectory {
    fn membership(&self) -> revkvpb::Membership {
        self.0.read().to_proto()
    }

    fn is_removed(&self, member: u64) -> bool {
        self.0.read().is_removed(member)
    }
}

/// Publishes this member's name and client URLs through raft once there is a leader
/// (etcd's `publish`), so every member lists them; retried until it is applied.
pub async fn publish(server: Arc<Server>) {
    let attrs = revkvpb::MemberAttrRequest {
        id: server.member_id,
        name: server.cfg.name.clone(),
        client_urls: server.cfg.advertise_client_urls.clone(),
    };
    let mut leader = server.raft.status().subscribe_leader();
    loop {
        if leader.wait_for(|&l| l != 0).await.is_err() {
            return;
        }
        match server
            .propose(internal_raft_request::Request::MemberAttr(attrs.clone()))
            .await
        {
            Ok(_) => {
                tracing::info!(
                    name = attrs.name,
                    client_urls = attrs.client_urls.join(","),
                    "published local member to cluster through raft"
                );
                return;
            }
            Err(e @ Error::Cluster(_)) => {
                // Refused at apply (this member is not, or no longer, in the
                // membership): retrying cannot help.
                tracing::error!(error = %e, "publishing the local member was refused");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish local member yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Compacts automatically as `--auto-compaction-*` asks; only the leader proposes.
pub async fn auto_compact(server: Arc<Server>, policy: crate::config::AutoCompaction) {
    use crate::config::AutoCompaction;
    use revkv_proto::etcdserverpb::CompactionRequest;
    // etcd samples the revision every retention/10 (at most hourly) in periodic mode and
    // every 5 minutes in revision mode.
    let (interval, keep) = match policy {
        AutoCompaction::Off => return,
        AutoCompaction::Periodic(d) => (
            (d / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600)),
            10usize,
        ),
        AutoCompaction::Revision(_) => (Duration::from_secs(300), 0),
    };
    let mut samples = std::collections::VecDeque::new();
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let current = server.store.current_rev();
        let target = match policy {
            AutoCompaction::Revision(n) => current - n,
            _ => {
                samples.push_back(current);
                if samples.len() <= keep {
                    continue;
                }
                samples.pop_front().unwrap_or(0)
            }
        };
        let is_leader = server.raft.status().leader() == server.member_id;
        if !is_leader || target <= server.store.compact_rev() || target <= 0 {
            continue;
        }
        let req = internal_raft_request::Request::Compaction(CompactionRequest {
            revision: target,
            physical: false,
        });
        match server.propose(req).await {
            Ok(_) => tracing::info!(revision = target, "auto compaction"),
            Err(e) => tracing::warn!(revision = target, error = %e, "auto compaction failed"),
        }
    }
}
