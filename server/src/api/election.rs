//! The Election service (etcd's `v3election`): etcd's `concurrency.Election` run in
//! the server.
//!
//! A campaigner joins the election's participants under `name/` with the key
//! `name/<lease in hex>` holding its value (see [`recipes`](super::recipes)); the
//! oldest key is the leader, and its value the proclamation. `Campaign` answers once
//! the caller's key is the oldest, `Proclaim` rewrites the value while the key is
//! still the one created at the leader's revision, `Resign` deletes it, `Leader`
//! reads the oldest key and `Observe` streams every proclamation in order.

use std::time::Instant;

use revkv_proto::etcdserverpb::request_op::Request as Op;
use revkv_proto::etcdserverpb::{PutRequest, ResponseHeader, TxnRequest};
use revkv_proto::mvccpb::event::EventType;
use revkv_proto::mvccpb::KeyValue;
use revkv_proto::v3electionpb::election_server::Election;
use revkv_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::recipes::{
    create_revision_is, existing, join, joined_at, op, participant_key, prefix_of, relayed, Local,
    RecipeError, Withdraw,
};
use super::{instrumented, record};
use crate::Error;

const SERVICE: &str = "v3electionpb.Election";

/// Observe responses buffered before the stream stops reading the election.
const OBSERVE_BUFFER: usize = 16;

pub struct ElectionService {
    local: Local,
}

impl ElectionService {
    pub fn new(local: Local) -> Self {
        ElectionService { local }
    }

    /// This service acting for the caller whose token `meta` carries.
    fn caller(&self, meta: &tonic::metadata::MetadataMap) -> Result<Self, Error> {
        Ok(Self::new(self.local.for_caller(super::token(meta))?))
    }

    async fn campaign(&self, req: CampaignRequest) -> Result<CampaignResponse, Error> {
        let lease = self.local.session(req.lease).await?;
        let prefix = prefix_of(&req.name);
        let key = participant_key(&prefix, lease);
        let joined = self
            .local
            .txn(join(&prefix, &key, req.value.clone(), lease))
            .await?;
        let header = joined.header.unwrap_or_default();
        let (rev, _) = joined_at(&joined);
        // Campaigning again with the same lease resumes that candidacy, with the new
        // value if it differs.
        if existing(&joined).is_some_and(|kv| kv.value != req.value) {
            if let Err(e) = self.proclaim_as(&key, rev, lease, req.value).await {
                let _ = self.local.withdraw(key, rev).await;
                return Err(e);
            }
        }
        let withdraw = Withdraw::new(&self.local, key.clone(), rev);
        let waited = self.local.wait_deletes(&prefix, rev - 1).await;
        // etcd takes the key back out only when the campaigner gave up (dropped
        // call, the guard above); a failed wait leaves it in place.
        withdraw.disarm();
        waited?;
        Ok(CampaignResponse {
            header: Some(header),
            leader: Some(LeaderKey {
                name: req.name,
                key,
                rev,
                lease,
            }),
        })
    }

    async fn proclaim(&self, req: ProclaimRequest) -> Result<ProclaimResponse, Error> {
        let leader = req.leader.ok_or(RecipeError::MissingLeaderKey)?;
        // As etcd's session: lease 0 grants a new one, which the value is put with.
        let lease = self.local.session(leader.lease).await?;
        let header = self
            .proclaim_as(&leader.key, leader.rev, lease, req.value)
            .await?;
        Ok(ProclaimResponse {
            header: Some(header),
        })
    }

    /// Puts `value` on `key` if it is still the leadership key created at `rev`.
    async fn proclaim_as(
        &self,
        key: &[u8],
        rev: i64,
        lease: i64,
        value: Vec<u8>,
    ) -> Result<ResponseHeader, Error> {
        let resp = self
            .local
            .txn(TxnRequest {
                compare: vec![create_revision_is(key, rev)],
                success: vec![op(Op::RequestPut(PutRequest {
                    key: key.to_vec(),
                    value,
                    lease,
                    ..Default::default()
                }))],
                failure: Vec::new(),
            })
            .await?;
        if !resp.succeeded {
            return Err(RecipeError::NotLeader.into());
        }
        Ok(resp.header.unwrap_or_default())
    }

    async fn resign(&self, req: ResignRequest) -> Result<ResignResponse, Error> {
        let leader = req.leader.ok_or(RecipeError::MissingLeaderKey)?;
        let header = self.local.withdraw(leader.key, leader.rev).await?;
        Ok(ResignResponse {
            header: Some(header),
        })
    }

    async fn leader(&self, req: LeaderRequest) -> Result<LeaderResponse, Error> {
        let resp = self.local.first_created(&prefix_of(&req.name)).await?;
        let kv = resp.kvs.into_iter().next().ok_or(RecipeError::NoLeader)?;
        Ok(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        })
    }
}

/// Streams the proclamations of the election under `prefix` into `tx` until the
/// client goes away or reading the election fails. As etcd's `Election.Observe`: the
/// current leader's key and value, every later value of that key, and after its
/// deletion the next leader's, in turn. A failure ends the stream without an error,
/// as etcd's does.
async fn observe(local: Local, prefix: Vec<u8>, tx: mpsc::Sender<Result<LeaderResponse, Status>>) {
    let send = |header: ResponseHeader, kv: KeyValue| {
        tx.send(Ok(LeaderResponse {
            header: Some(header),
            kv: Some(kv),
        }))
    };
    loop {
        let Ok(current) = local.first_created(&prefix).await else {
            return;
        };
        let header = current.header.unwrap_or_default();
        let (header, kv) = match current.kvs.into_iter().next() {
            Some(kv) => (header, kv),
            // No leader yet: the first key put under the prefix is the next one.
            None => match first_put(&local, &prefix, header.revision).await {
                Some(found) => found,
                None => return,
            },
        };
        let from = header.revision + 1;
        if send(header, kv.clone()).await.is_err() {
            return;
        }
        // Every value of the leader's key until it is deleted.
        let Ok(mut stream) = local.watch(&kv.key, false, from) else {
            return;
        };
        'leader: loop {
            let Some(delivery) = stream.recv().await else {
                return;
            };
            if delivery.compact_revision != 0 {
                return;
            }
            let header = local.server().header(delivery.revision);
            for event in &delivery.events {
                if event.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                let Some(kv) = event.kv.clone() else { continue };
                if send(header, kv).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits for the first put under `prefix` from revision `from`; its header carries
/// the put's revision.
async fn first_put(local: &Local, prefix: &[u8], from: i64) -> Option<(ResponseHeader, KeyValue)> {
    let mut stream = local.watch(prefix, true, from).ok()?;
    loop {
        let delivery = stream.recv().await?;
        if delivery.compact_revision != 0 {
            return None;
        }
        let put = delivery
            .events
            .iter()
            .find(|e| e.r#type == EventType::Put as i32)
            .and_then(|e| e.kv.clone());
        if let Some(kv) = put {
            return Some((local.server().header(kv.mod_revision), kv));
        }
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        r: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let server = self.local.server();
        let caller = self.caller(r.metadata());
        instrumented(
            server,
            SERVICE,
            "Campaign",
            relayed(async {
                let caller = caller?;
                caller.campaign(r.into_inner()).await
            }),
        )
        .await
    }

    async fn proclaim(
        &self,
        r: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let server = self.local.server();
        let caller = self.caller(r.metadata());
        instrumented(
            server,
            SERVICE,
            "Proclaim",
            relayed(async {
                let caller = caller?;
                caller.proclaim(r.into_inner()).await
            }),
        )
        .await
    }

    async fn leader(&self, r: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let server = self.local.server();
        let caller = self.caller(r.metadata());
        instrumented(
            server,
            SERVICE,
            "Leader",
            relayed(async {
                let caller = caller?;
                caller.leader(r.into_inner()).await
            }),
        )
        .await
    }

    async fn observe(
        &self,
        r: Request<LeaderRequest>,
    ) -> Result<Response<BoxStream<LeaderResponse>>, Status> {
        let (tx, rx) = mpsc::channel(OBSERVE_BUFFER);
        let local = self
            .local
            .for_caller(super::token(r.metadata()))
            .map_err(Status::from)?;
        let prefix = prefix_of(&r.into_inner().name);
        tokio::spawn(async move {
            let start = Instant::now();
            // Ends as soon as the client does, not at the next proclamation.
            let closed = tx.clone();
            let server = local.server().clone();
            tokio::select! {
                _ = observe(local, prefix, tx) => {}
                _ = closed.closed() => {}
            }
            let code = if closed.is_closed() {
                tonic::Code::Cancelled
            } else {
                tonic::Code::Ok
            };
            record(&server, (SERVICE, "Observe", "server_stream"), code, start);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(&self, r: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let server = self.local.server();
        let caller = self.caller(r.metadata());
        instrumented(
            server,
            SERVICE,
            "Resign",
            relayed(async {
                let caller = caller?;
                caller.resign(r.into_inner()).await
            }),
        )
        .await
    }
}
