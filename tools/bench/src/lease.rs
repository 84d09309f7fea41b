//! `lease-keepalive`: grants one lease, then renews it `--total` times. Each client
//! keeps one LeaseKeepAlive stream open and sends one renewal at a time on it, so a
//! request's latency is one renewal round trip (etcd's benchmark opens a stream per
//! renewal, which mostly measures stream set-up).

use anyhow::{anyhow, Result};
use clap::Args;

use crate::report::Report;
use crate::rpc::{KeepAlive, Rpc, RpcError};
use crate::runner::{self, Load, Worker};

/// TTL of the lease the run renews, in seconds (etcd's benchmark uses 100 too):
/// long enough that it never expires during a run.
const LEASE_TTL: i64 = 100;

#[derive(Args, Debug, Clone)]
pub struct LeaseArgs {
    /// Total number of keep-alive requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
}

/// A validated lease-keepalive run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePlan {
    pub load: Load,
    pub ttl: i64,
}

/// Flags → plan.
pub fn plan(args: &LeaseArgs, clients: usize) -> Result<LeasePlan> {
    Ok(LeasePlan {
        load: Load::new(args.total, clients, 0)?,
        ttl: LEASE_TTL,
    })
}

struct KeepAliveWorker {
    rpc: Rpc,
    lease: i64,
    /// Opened on the first request; dropped after an error so the next reopens it.
    stream: Option<KeepAlive>,
}

impl Worker for KeepAliveWorker {
    async fn call(&mut self, _i: u64) -> Result<(), RpcError> {
        let stream = match self.stream.take() {
            Some(mut s) => {
                s.renew(self.lease).await?;
                s
            }
            None => self.rpc.keep_alive_stream(self.lease).await?,
        };
        self.stream = Some(stream);
        Ok(())
    }
}

pub async fn run(plan: LeasePlan, rpc: Rpc) -> Result<Report> {
    let lease = rpc
        .lease_grant(plan.ttl)
        .await
        .map_err(|e| anyhow!("granting the lease to renew: {e}"))?;
    let workers = (0..plan.load.clients)
        .map(|_| KeepAliveWorker {
            rpc: rpc.clone(),
            lease,
            stream: None,
        })
        .collect();
    runner::run(plan.load, workers, &runner::progress_bar(plan.load.total)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_carries_total_and_clients() {
        let p = plan(&LeaseArgs { total: 42 }, 5).expect("plan");
        assert_eq!(
            p.load,
            Load {
                total: 42,
                clients: 5,
                rate: 0
            }
        );
        assert_eq!(p.ttl, LEASE_TTL);
        assert!(plan(&LeaseArgs { total: 1 }, 0).is_err());
    }
}
