//! `watch`: fan-out, as etcd's `benchmark watch`. Opens `--streams` watch streams
//! carrying `--watch-per-stream` watchers each, spread round-robin over
//! `--watched-key-total` keys; then puts those keys in turn `--put-total` times at
//! `--put-rate`, and reports three distributions: the time to create each stream's
//! watchers, the put latency, and the event latency (from just before a put is sent
//! until a stream receives the event, for every watcher of the key).
//!
//! With `--rss-pid` it also reads that process's resident set size before and after
//! the watchers are created and reports what each watcher costs it — the server's
//! memory per watcher, when the pid is the server's.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::keys::KeyGen;
use crate::report::Report;
use crate::rpc::{Rpc, RpcError};
use crate::runner::{self, Load, Worker};
use crate::watch_latency::{put_and_receive, receive, value_of, SendTimes};

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Number of watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Watchers on each stream.
    #[arg(long, default_value_t = 10)]
    pub watch_per_stream: usize,
    /// Distinct keys watched; watcher `i` watches key `i % watched-key-total`.
    #[arg(long, default_value_t = 1)]
    pub watched_key_total: u64,
    /// Puts made once every watcher is in place (put `i` writes key `i % watched-key-total`).
    #[arg(long, default_value_t = 1_000)]
    pub put_total: u64,
    /// Puts per second; 0 = unlimited.
    #[arg(long, default_value_t = 100)]
    pub put_rate: u32,
    /// Key size in bytes.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size in bytes (at least 8: the put number).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
    /// Report this process's RSS growth per watcher (give the server's pid).
    #[arg(long)]
    pub rss_pid: Option<u32>,
}

/// A validated fan-out run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchPlan {
    pub streams: usize,
    pub per_stream: usize,
    pub keys: KeyGen,
    /// The puts: one putter, so each stream sees its events in put order.
    pub puts: Load,
    pub val_size: usize,
    pub rss_pid: Option<u32>,
}

/// Flags → plan.
pub fn plan(args: &WatchArgs) -> Result<WatchPlan> {
    if args.streams == 0 || args.watch_per_stream == 0 {
        bail!("--streams and --watch-per-stream must be at least 1");
    }
    if args.val_size < 8 {
        bail!("--val-size must be at least 8 (the value carries the put number)");
    }
    Ok(WatchPlan {
        streams: args.streams,
        per_stream: args.watch_per_stream,
        keys: KeyGen::new(args.key_size, args.watched_key_total, true)?,
        puts: Load::new(args.put_total, 1, args.put_rate)?,
        val_size: args.val_size,
        rss_pid: args.rss_pid,
    })
}

impl WatchPlan {
    fn watchers(&self) -> u64 {
        (self.streams * self.per_stream) as u64
    }

    /// Key number of each watcher on stream `s`.
    fn stream_keys(&self, s: usize) -> impl Iterator<Item = u64> + '_ {
        let first = (s * self.per_stream) as u64;
        (first..first + self.per_stream as u64).map(|w| w % self.keys.space)
    }

    /// Events stream `s` should receive over the whole run.
    fn expected_events(&self, s: usize) -> u64 {
        let mut per_key: HashMap<u64, u64> = HashMap::new();
        for k in self.stream_keys(s) {
            *per_key.entry(k).or_default() += 1;
        }
        (0..self.puts.total)
            .map(|i| per_key.get(&(i % self.keys.space)).copied().unwrap_or(0))
            .sum()
    }
}

/// What a fan-out run measured.
pub struct WatchOutcome {
    /// Time to create each stream's watchers.
    pub create: Report,
    pub puts: Report,
    pub events: Report,
    /// Server RSS growth per watcher, in bytes, when `--rss-pid` was given.
    pub rss_per_watcher: Option<f64>,
}

struct Putter {
    rpc: Rpc,
    keys: KeyGen,
    val_size: usize,
    sent: SendTimes,
}

impl Worker for Putter {
    fn call(&mut self, i: u64) -> impl Future<Output = Result<(), RpcError>> + Send {
        let key = self.keys.key(i % self.keys.space);
        let (rpc, value) = (self.rpc.clone(), value_of(i, self.val_size));
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| self.sent.get(i)) {
            let _ = slot.set(Instant::now());
        }
        async move { rpc.put(key, value).await.map(|_| ()) }
    }
}

/// Resident set size of `pid` in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the RSS of pid {pid}"))?;
    parse_rss(&status).ok_or_else(|| anyhow!("no VmRSS line for pid {pid}"))
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub async fn run(plan: WatchPlan, rpc: Rpc) -> Result<WatchOutcome> {
    let rss_before = plan.rss_pid.map(rss_bytes).transpose()?;
    let bar = runner::progress_bar(plan.streams as u64);
    let start = Instant::now();
    let mut opening = Vec::with_capacity(plan.streams);
    for s in 0..plan.streams {
        let keys: Vec<Vec<u8>> = plan.stream_keys(s).map(|k| plan.keys.key(k)).collect();
        let rpc = rpc.clone();
        opening.push(tokio::spawn(async move {
            let t = Instant::now();
            rpc.watch_many(keys).await.map(|w| (w, t.elapsed()))
        }));
    }
    let mut streams = Vec::with_capacity(plan.streams);
    let mut create_lats = Vec::with_capacity(plan.streams);
    for (s, task) in opening.into_iter().enumerate() {
        let (w, took) = task
            .await?
            .map_err(|e| anyhow!("opening watch stream {s}: {e}"))?;
        streams.push(w);
        create_lats.push(took);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let create = Report::new(start.elapsed(), create_lats, BTreeMap::new());
    let rss_per_watcher = match (plan.rss_pid, rss_before) {
        (Some(pid), Some(before)) => {
            // Let the server finish registering before sampling.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = rss_bytes(pid)?;
            Some(after.saturating_sub(before) as f64 / plan.watchers() as f64)
        }
        _ => None,
    };

    let total = usize::try_from(plan.puts.total).map_err(|_| anyhow!("--put-total too large"))?;
    let sent: SendTimes = (0..total).map(|_| OnceLock::new()).collect();
    let (set_deadline, deadline) = watch::channel(None);
    let receivers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(s, w)| {
            tokio::spawn(receive(
                w,
                plan.expected_events(s),
                Arc::clone(&sent),
                deadline.clone(),
            ))
        })
        .collect();
    let putter = Putter {
        rpc,
        keys: plan.keys,
        val_size: plan.val_size,
        sent,
    };
    let (puts, events) = put_and_receive(plan.puts, putter, receivers, set_deadline).await?;
    Ok(WatchOutcome {
        create,
        puts,
        events,
        rss_per_watcher,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> WatchArgs {
        WatchArgs {
            streams: 4,
            watch_per_stream: 3,
            watched_key_total: 5,
            put_total: 10,
            put_rate: 100,
            key_size: 32,
            val_size: 32,
            rss_pid: None,
        }
    }

    #[test]
    fn watchers_are_spread_round_robin_over_the_keys() {
        let p = plan(&args()).expect("plan");
        assert_eq!(p.watchers(), 12);
        assert_eq!(p.stream_keys(0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(p.stream_keys(1).collect::<Vec<_>>(), [3, 4, 0]);
        // Stream 0 watches keys 0,1,2; puts 0..10 hit each key twice.
        assert_eq!(p.expected_events(0), 6);
        let all: u64 = (0..4).map(|s| p.expected_events(s)).sum();
        // Every put reaches every watcher of its key: keys 0 and 1 have 3 watchers, the
        // other three 2, and each key is put twice.
        assert_eq!(all, 24);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(plan(&WatchArgs {
            streams: 0,
            ..args()
        })
        .is_err());
        assert!(plan(&WatchArgs {
            val_size: 4,
            ..args()
        })
        .is_err());
        assert!(plan(&WatchArgs {
            watched_key_total: 0,
            ..args()
        })
        .is_err());
    }

    #[test]
    fn rss_is_read_from_the_status_file() {
        let status = "Name:\trevkv\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(parse_rss(status), Some(2 * 1024 * 1024));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        assert!(rss_bytes(std::process::id()).expect("own rss") > 0);
    }
}
