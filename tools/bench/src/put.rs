//! `put`: writes `--total` keys of `--key-size` bytes with `--val-size`-byte values,
//! drawn from `--key-space-size` keys (random, or in order with `--sequential-keys`).
//! Flags and defaults follow etcd's `benchmark put`.

use std::future::Future;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::keys::{random_bytes, KeyGen};
use crate::report::Report;
use crate::rpc::{Rpc, RpcError};
use crate::runner::{self, Load, Worker};

#[derive(Args, Debug, Clone)]
pub struct PutArgs {
    /// Total number of put requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Number of distinct keys written.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Write keys 0, 1, 2, … (wrapping at the key space) instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Puts per second over the whole run; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
}

/// A validated put run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutPlan {
    pub load: Load,
    pub keys: KeyGen,
    pub val_size: usize,
}

/// Flags → plan; refuses combinations that cannot run as asked.
pub fn plan(args: &PutArgs, clients: usize) -> Result<PutPlan> {
    Ok(PutPlan {
        load: Load::new(args.total, clients, args.rate)?,
        keys: KeyGen::new(args.key_size, args.key_space_size, args.sequential_keys)?,
        val_size: args.val_size,
    })
}

struct PutWorker {
    rpc: Rpc,
    keys: KeyGen,
    value: Arc<Vec<u8>>,
    rng: StdRng,
}

impl Worker for PutWorker {
    fn call(&mut self, i: u64) -> impl Future<Output = Result<(), RpcError>> + Send {
        let key = self.keys.key(self.keys.number(i, &mut self.rng));
        let value = self.value.as_ref().clone();
        let rpc = self.rpc.clone();
        async move { rpc.put(key, value).await.map(|_| ()) }
    }
}

pub async fn run(plan: PutPlan, rpc: Rpc) -> Result<Report> {
    let value = Arc::new(random_bytes(plan.val_size));
    let workers = (0..plan.load.clients)
        .map(|_| PutWorker {
            rpc: rpc.clone(),
            keys: plan.keys,
            value: Arc::clone(&value),
            rng: StdRng::from_entropy(),
        })
        .collect();
    runner::run(plan.load, workers, &runner::progress_bar(plan.load.total)).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: PutArgs,
    }

    fn parse(argv: &[&str]) -> PutArgs {
        Cmd::try_parse_from(std::iter::once("put").chain(argv.iter().copied()))
            .expect("parse")
            .args
    }

    #[test]
    fn defaults_are_etcds() {
        let p = plan(&parse(&[]), 1).expect("plan");
        assert_eq!(
            p.load,
            Load {
                total: 10_000,
                clients: 1,
                rate: 0
            }
        );
        assert_eq!(
            p.keys,
            KeyGen {
                size: 8,
                space: 1,
                sequential: false
            }
        );
        assert_eq!(p.val_size, 8);
    }

    #[test]
    fn flags_reach_the_plan() {
        let args = parse(&[
            "--total",
            "20000",
            "--key-space-size",
            "100000",
            "--val-size",
            "256",
            "--sequential-keys",
            "--rate",
            "500",
        ]);
        let p = plan(&args, 200).expect("plan");
        assert_eq!(
            p.load,
            Load {
                total: 20_000,
                clients: 200,
                rate: 500
            }
        );
        assert_eq!(
            p.keys,
            KeyGen {
                size: 8,
                space: 100_000,
                sequential: true
            }
        );
        assert_eq!(p.val_size, 256);
    }

    #[test]
    fn impossible_runs_are_refused() {
        assert!(plan(&parse(&["--key-size", "1", "--key-space-size", "1000"]), 1).is_err());
        assert!(plan(&parse(&["--key-space-size", "0"]), 1).is_err());
        assert!(plan(&parse(&[]), 0).is_err());
    }
}
