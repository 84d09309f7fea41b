//! The Lock service (etcd's `v3lock`): etcd's `concurrency.Mutex` run in the server.
//!
//! `Lock` joins the lock's participants under `name/` with the key
//! `name/<lease in hex>` (see [`recipes`](super::recipes)) and answers once that key
//! is the oldest; `Unlock` deletes the key it was given. A caller that gives up while
//! waiting (or whose wait fails) leaves no key behind.

use revkv_proto::v3lockpb::lock_server::Lock;
use revkv_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use super::instrumented;
use super::recipes::{join, joined_at, participant_key, prefix_of, relayed, Local, Withdraw};
use crate::Error;

const SERVICE: &str = "v3lockpb.Lock";

pub struct LockService {
    local: Local,
}

impl LockService {
    pub fn new(local: Local) -> Self {
        LockService { local }
    }

    /// This service acting for the caller whose token `meta` carries.
    fn caller(&self, meta: &tonic::metadata::MetadataMap) -> Result<Self, Error> {
        Ok(Self::new(self.local.for_caller(super::token(meta))?))
    }

    async fn lock(&self, req: LockRequest) -> Result<LockResponse, Error> {
        let lease = self.local.session(req.lease).await?;
        let prefix = prefix_of(&req.name);
        let key = participant_key(&prefix, lease);
        let joined = self
            .local
            .txn(join(&prefix, &key, Vec::new(), lease))
            .await?;
        let header = joined.header.unwrap_or_default();
        let (mine, oldest) = joined_at(&joined);
        if oldest.is_none_or(|rev| rev == mine) {
            return Ok(LockResponse {
                header: Some(header),
                key,
            });
        }
        let withdraw = Withdraw::new(&self.local, key.clone(), mine);
        let header = self.local.wait_deletes(&prefix, mine - 1).await?;
        withdraw.disarm();
        Ok(LockResponse {
            header: Some(header),
            key,
        })
    }

    async fn unlock(&self, req: UnlockRequest) -> Result<UnlockResponse, Error> {
        let header = self.local.delete(req.key).await?;
        Ok(UnlockResponse {
            header: Some(header),
        })
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, r: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let server = self.local.server();
        let caller = self.caller(r.metadata());
        instrumented(
            server,
            SERVICE,
            "Lock",
            relayed(async {
                let caller = caller?;
                caller.lock(r.into_inner()).await
            }),
        )
        .await
    }

    async fn unlock(&self, r: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let server = self.local.server();
        let caller = self.caller(r.metadata());
        instrumented(
            server,
            SERVICE,
            "Unlock",
            relayed(async {
                let caller = caller?;
                caller.unlock(r.into_inner()).await
            }),
        )
        .await
    }
}
