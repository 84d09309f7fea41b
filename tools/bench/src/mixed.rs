//! `mixed`: a read/write workload over one key space, like etcd's `benchmark
//! txn-mixed` but with plain ranges and puts. Request `i` reads a key with
//! probability `--read-ratio` (linearizable or serializable per `--consistency`) and
//! otherwise puts it. Reports the whole run and the reads and writes apart.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::keys::{random_bytes, KeyGen};
use crate::report::Report;
use crate::rpc::{Rpc, RpcError};
use crate::runner::{self, Load, Worker};

#[derive(Args, Debug, Clone)]
pub struct MixedArgs {
    /// Total number of requests (reads and writes).
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Fraction of requests that are reads, 0.0..=1.0.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Number of distinct keys read and written.
    #[arg(long, default_value_t = 1_000)]
    pub key_space_size: u64,
    /// Use keys 0, 1, 2, … in order instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,
    /// l = linearizable reads, s = serializable.
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Requests per second over the whole run; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
}

/// A validated mixed run.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedPlan {
    pub load: Load,
    pub keys: KeyGen,
    pub val_size: usize,
    pub read_ratio: f64,
    pub serializable: bool,
}

/// Flags → plan.
pub fn plan(args: &MixedArgs, clients: usize) -> Result<MixedPlan> {
    if !(0.0..=1.0).contains(&args.read_ratio) {
        bail!(
            "--read-ratio {}: expected a fraction in 0.0..=1.0",
            args.read_ratio
        );
    }
    Ok(MixedPlan {
        load: Load::new(args.total, clients, args.rate)?,
        keys: KeyGen::new(args.key_size, args.key_space_size, args.sequential_keys)?,
        val_size: args.val_size,
        read_ratio: args.read_ratio,
        serializable: crate::range::serializable(&args.consistency)?,
    })
}

/// Successful latencies by kind, shared by the workers.
#[derive(Default)]
struct Split {
    reads: Vec<Duration>,
    writes: Vec<Duration>,
}

struct MixedWorker {
    rpc: Rpc,
    plan: Arc<MixedPlan>,
    value: Arc<Vec<u8>>,
    rng: StdRng,
    split: Arc<Mutex<Split>>,
}

impl Worker for MixedWorker {
    fn call(&mut self, i: u64) -> impl Future<Output = Result<(), RpcError>> + Send {
        let key = self.plan.keys.key(self.plan.keys.number(i, &mut self.rng));
        let read = self.rng.gen_bool(self.plan.read_ratio);
        let (rpc, plan, value, split) = (
            self.rpc.clone(),
            Arc::clone(&self.plan),
            Arc::clone(&self.value),
            Arc::clone(&self.split),
        );
        async move {
            let t = Instant::now();
            if read {
                rpc.range(key, Vec::new(), plan.serializable).await?;
            } else {
                rpc.put(key, value.as_ref().clone()).await?;
            }
            let took = t.elapsed();
            let mut s = split.lock().unwrap_or_else(PoisonError::into_inner);
            if read {
                s.reads.push(took);
            } else {
                s.writes.push(took);
            }
            Ok(())
        }
    }
}

/// Runs the plan; returns (all requests, reads, writes).
pub async fn run(plan: MixedPlan, rpc: Rpc) -> Result<(Report, Report, Report)> {
    let plan = Arc::new(plan);
    let value = Arc::new(random_bytes(plan.val_size));
    let split = Arc::new(Mutex::new(Split::default()));
    let workers = (0..plan.load.clients)
        .map(|_| MixedWorker {
            rpc: rpc.clone(),
            plan: Arc::clone(&plan),
            value: Arc::clone(&value),
            rng: StdRng::from_entropy(),
            split: Arc::clone(&split),
        })
        .collect();
    let all = runner::run(plan.load, workers, &runner::progress_bar(plan.load.total)).await?;
    let split = std::mem::take(&mut *split.lock().unwrap_or_else(PoisonError::into_inner));
    let elapsed = all.elapsed;
    Ok((
        all,
        Report::new(elapsed, split.reads, BTreeMap::new()),
        Report::new(elapsed, split.writes, BTreeMap::new()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> MixedArgs {
        MixedArgs {
            total: 100,
            read_ratio: 0.9,
            key_size: 8,
            val_size: 8,
            key_space_size: 1_000,
            sequential_keys: false,
            consistency: "s".into(),
            rate: 0,
        }
    }

    #[test]
    fn plan_carries_ratio_and_consistency() {
        let p = plan(&args(), 4).expect("plan");
        assert!(p.serializable);
        assert_eq!(p.read_ratio, 0.9);
        assert_eq!(p.load.clients, 4);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(plan(
            &MixedArgs {
                read_ratio: 1.5,
                ..args()
            },
            1
        )
        .is_err());
        assert!(plan(
            &MixedArgs {
                consistency: "x".into(),
                ..args()
            },
            1
        )
        .is_err());
        assert!(plan(&args(), 0).is_err());
    }
}
