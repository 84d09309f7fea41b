//! `txn-put`: `--total` transactions, each putting `--txn-ops` keys in its success
//! branch (no compares), as etcd's `benchmark txn-put`. Keys go through the key space
//! in order so that the keys of one transaction are distinct (etcd refuses a txn that
//! puts one key twice).

use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use crate::keys::{random_bytes, KeyGen};
use crate::report::Report;
use crate::rpc::{Rpc, RpcError};
use crate::runner::{self, Load, Worker};

#[derive(Args, Debug, Clone)]
pub struct TxnPutArgs {
    /// Total number of transactions.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Puts per transaction.
    #[arg(long, default_value_t = 1)]
    pub txn_ops: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Number of distinct keys written.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Transactions per second over the whole run; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
}

/// A validated txn-put run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnPutPlan {
    pub load: Load,
    pub keys: KeyGen,
    pub txn_ops: u64,
    pub val_size: usize,
}

/// Flags → plan.
pub fn plan(args: &TxnPutArgs, clients: usize) -> Result<TxnPutPlan> {
    let keys = KeyGen::new(args.key_size, args.key_space_size, true)?;
    if args.txn_ops == 0 {
        bail!("--txn-ops must be at least 1");
    }
    if args.txn_ops > args.key_space_size {
        bail!(
            "--txn-ops {} exceeds --key-space-size {}: a txn may not put one key twice",
            args.txn_ops,
            args.key_space_size
        );
    }
    Ok(TxnPutPlan {
        load: Load::new(args.total, clients, args.rate)?,
        keys,
        txn_ops: args.txn_ops,
        val_size: args.val_size,
    })
}

impl TxnPutPlan {
    /// Key numbers of transaction `i`: `txn_ops` consecutive numbers of the space.
    pub fn key_numbers(&self, i: u64) -> impl Iterator<Item = u64> + '_ {
        (0..self.txn_ops)
            .map(move |j| (i.wrapping_mul(self.txn_ops).wrapping_add(j)) % self.keys.space)
    }
}

struct TxnWorker {
    rpc: Rpc,
    plan: TxnPutPlan,
    value: Arc<Vec<u8>>,
}

impl Worker for TxnWorker {
    fn call(&mut self, i: u64) -> impl Future<Output = Result<(), RpcError>> + Send {
        let pairs = self
            .plan
            .key_numbers(i)
            .map(|n| (self.plan.keys.key(n), self.value.as_ref().clone()))
            .collect();
        let rpc = self.rpc.clone();
        async move { rpc.txn_put(pairs).await }
    }
}

pub async fn run(plan: TxnPutPlan, rpc: Rpc) -> Result<Report> {
    let value = Arc::new(random_bytes(plan.val_size));
    let workers = (0..plan.load.clients)
        .map(|_| TxnWorker {
            rpc: rpc.clone(),
            plan: plan.clone(),
            value: Arc::clone(&value),
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
        args: TxnPutArgs,
    }

    fn plan_of(argv: &[&str]) -> Result<TxnPutPlan> {
        let args = Cmd::try_parse_from(std::iter::once("txn-put").chain(argv.iter().copied()))
            .expect("parse")
            .args;
        plan(&args, 2)
    }

    #[test]
    fn txn_keys_are_distinct_and_walk_the_space() {
        let p = plan_of(&["--txn-ops", "3", "--key-space-size", "7"]).expect("plan");
        let txn = |i| p.key_numbers(i).collect::<Vec<_>>();
        assert_eq!(txn(0), [0, 1, 2]);
        assert_eq!(txn(1), [3, 4, 5]);
        assert_eq!(txn(2), [6, 0, 1]);
        assert_eq!(
            p.load,
            Load {
                total: 10_000,
                clients: 2,
                rate: 0
            }
        );
    }

    #[test]
    fn more_ops_than_keys_is_refused() {
        assert!(plan_of(&["--txn-ops", "2"]).is_err());
        assert!(plan_of(&["--txn-ops", "0"]).is_err());
        assert!(plan_of(&["--txn-ops", "2", "--key-space-size", "2"]).is_ok());
    }
}
