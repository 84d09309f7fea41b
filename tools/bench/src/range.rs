//! `range <key> [end]`: reads `key` (or `[key, end)`) `--total` times, linearizable
//! (`--consistency l`, the default) or serializable (`s`), as etcd's `benchmark range`.

use std::future::Future;

use anyhow::{bail, Result};
use clap::Args;

use crate::report::Report;
use crate::rpc::{Rpc, RpcError};
use crate::runner::{self, Load, Worker};

#[derive(Args, Debug, Clone)]
pub struct RangeArgs {
    /// Key to read (or the start of the range).
    pub key: String,
    /// End of the range (exclusive); omitted = just `key`.
    pub end: Option<String>,
    /// Total number of range requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// l = linearizable, s = serializable.
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Ranges per second over the whole run; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
}

/// A validated range run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    pub load: Load,
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub serializable: bool,
}

/// Flags → plan.
pub fn plan(args: &RangeArgs, clients: usize) -> Result<RangePlan> {
    let serializable = serializable(&args.consistency)?;
    Ok(RangePlan {
        load: Load::new(args.total, clients, args.rate)?,
        key: args.key.as_bytes().to_vec(),
        range_end: args.end.as_deref().unwrap_or_default().as_bytes().to_vec(),
        serializable,
    })
}

/// `--consistency l|s` → whether reads are serializable.
pub fn serializable(consistency: &str) -> Result<bool> {
    match consistency {
        "l" => Ok(false),
        "s" => Ok(true),
        other => bail!("--consistency {other:?}: expected l (linearizable) or s (serializable)"),
    }
}

struct RangeWorker {
    rpc: Rpc,
    plan: RangePlan,
}

impl Worker for RangeWorker {
    fn call(&mut self, _i: u64) -> impl Future<Output = Result<(), RpcError>> + Send {
        let (rpc, key, end) = (
            self.rpc.clone(),
            self.plan.key.clone(),
            self.plan.range_end.clone(),
        );
        let serializable = self.plan.serializable;
        async move { rpc.range(key, end, serializable).await }
    }
}

pub async fn run(plan: RangePlan, rpc: Rpc) -> Result<Report> {
    let workers = (0..plan.load.clients)
        .map(|_| RangeWorker {
            rpc: rpc.clone(),
            plan: plan.clone(),
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
        args: RangeArgs,
    }

    fn plan_of(argv: &[&str], clients: usize) -> Result<RangePlan> {
        let args = Cmd::try_parse_from(std::iter::once("range").chain(argv.iter().copied()))
            .expect("parse")
            .args;
        plan(&args, clients)
    }

    #[test]
    fn single_key_linearizable_by_default() {
        let p = plan_of(&["foo"], 3).expect("plan");
        assert_eq!(p.key, b"foo");
        assert!(p.range_end.is_empty());
        assert!(!p.serializable);
        assert_eq!(
            p.load,
            Load {
                total: 10_000,
                clients: 3,
                rate: 0
            }
        );
    }

    #[test]
    fn range_and_serializable() {
        let p = plan_of(
            &[
                "a",
                "z",
                "--consistency",
                "s",
                "--total",
                "5",
                "--rate",
                "9",
            ],
            1,
        )
        .expect("plan");
        assert_eq!(
            (p.key.as_slice(), p.range_end.as_slice()),
            (&b"a"[..], &b"z"[..])
        );
        assert!(p.serializable);
        assert_eq!(
            p.load,
            Load {
                total: 5,
                clients: 1,
                rate: 9
            }
        );
    }

    #[test]
    fn unknown_consistency_is_refused() {
        assert!(plan_of(&["a", "--consistency", "x"], 1).is_err());
    }
}
