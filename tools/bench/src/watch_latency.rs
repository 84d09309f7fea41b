//! `watch-latency`: opens `--watchers` watchers (one stream each, spread over the
//! connections) on one key, then puts that key `--total` times at `--put-rate`, and
//! reports two distributions: put latency, and watch latency (from just before a put
//! is sent until a watcher receives its event), as etcd's `benchmark watch-latency`.
//!
//! Each value starts with the put's number, so a watcher can tell which put an event
//! belongs to without any coordination with the putter. Watchers stop when they have
//! seen every put or a grace period after the last put, so the run is bounded even if
//! events are lost (they are then counted as errors).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::keys::random_bytes;
use crate::report::Report;
use crate::rpc::{Rpc, RpcError, Watch};
use crate::runner::{self, Load, Worker};

/// How long watchers keep waiting for events after the last put was answered.
pub(crate) const GRACE: Duration = Duration::from_secs(5);
/// Bytes at the start of each value holding the put's number.
const NUMBER_LEN: usize = 8;
/// Error counted for each event a watcher never received.
const MISSING: &str = "watch event not received";

#[derive(Args, Debug, Clone)]
pub struct WatchLatencyArgs {
    /// Total number of puts (each one is watched by every watcher).
    #[arg(long, default_value_t = 1_000)]
    pub total: u64,
    /// Puts per second; 0 = unlimited.
    #[arg(long, default_value_t = 100)]
    pub put_rate: u32,
    /// Number of watchers on the key, one watch stream each.
    #[arg(long, default_value_t = 10)]
    pub watchers: usize,
    /// Key size in bytes.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size in bytes (at least 8: the put number).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
}

/// A validated watch-latency run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLatencyPlan {
    /// The puts: one putter, so events arrive in put order.
    pub puts: Load,
    pub watchers: usize,
    pub key_size: usize,
    pub val_size: usize,
}

/// Flags → plan.
pub fn plan(args: &WatchLatencyArgs) -> Result<WatchLatencyPlan> {
    if args.watchers == 0 {
        bail!("--watchers must be at least 1");
    }
    if args.val_size < NUMBER_LEN {
        bail!("--val-size must be at least {NUMBER_LEN} (the value carries the put number)");
    }
    if args.key_size == 0 {
        bail!("--key-size must be at least 1");
    }
    Ok(WatchLatencyPlan {
        puts: Load::new(args.total, 1, args.put_rate)?,
        watchers: args.watchers,
        key_size: args.key_size,
        val_size: args.val_size,
    })
}

/// The value of put number `n`: `n` big-endian, zero-padded to `len` bytes.
pub fn value_of(n: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    v[..NUMBER_LEN].copy_from_slice(&n.to_be_bytes());
    v
}

/// The put number an event's value carries.
pub fn number_of(value: &[u8]) -> Option<u64> {
    value
        .get(..NUMBER_LEN)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

/// When each put was sent, indexed by put number.
pub(crate) type SendTimes = Arc<[OnceLock<Instant>]>;

struct Putter {
    rpc: Rpc,
    key: Vec<u8>,
    val_size: usize,
    sent: SendTimes,
}

impl Worker for Putter {
    fn call(&mut self, i: u64) -> impl Future<Output = Result<(), RpcError>> + Send {
        let (rpc, key, value) = (
            self.rpc.clone(),
            self.key.clone(),
            value_of(i, self.val_size),
        );
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| self.sent.get(i)) {
            let _ = slot.set(Instant::now());
        }
        async move { rpc.put(key, value).await.map(|_| ()) }
    }
}

/// Receives until `expected` events arrived or the deadline passes.
pub(crate) async fn receive(
    mut w: Watch,
    expected: u64,
    sent: SendTimes,
    mut deadline: watch::Receiver<Option<Instant>>,
) -> Received {
    let mut lats = Vec::new();
    let mut errors = BTreeMap::new();
    let mut seen = 0u64;
    while seen < expected {
        tokio::select! {
            r = w.next() => match r {
                Ok(Some(resp)) => {
                    let now = Instant::now();
                    for ev in resp.events {
                        seen += 1;
                        let at = ev.kv.as_ref()
                            .and_then(|kv| number_of(&kv.value))
                            .and_then(|n| usize::try_from(n).ok())
                            .and_then(|n| sent.get(n))
                            .and_then(OnceLock::get);
                        if let Some(at) = at {
                            lats.push(now.saturating_duration_since(*at));
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    *errors.entry(e).or_default() += 1;
                    break;
                }
            },
            () = passed(&mut deadline) => break,
        }
    }
    if seen < expected {
        *errors.entry(MISSING.to_owned()).or_default() += expected - seen;
    }
    (lats, errors)
}

/// Completes when the deadline has been set and has passed.
async fn passed(deadline: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let d = *deadline.borrow_and_update();
        if let Some(d) = d {
            tokio::time::sleep_until(d).await;
            return;
        }
        if deadline.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs the plan; returns (put report, watch report).
pub async fn run(plan: WatchLatencyPlan, rpc: Rpc) -> Result<(Report, Report)> {
    let key = random_bytes(plan.key_size);
    let total = usize::try_from(plan.puts.total).map_err(|_| anyhow!("--total too large"))?;
    let sent: SendTimes = (0..total).map(|_| OnceLock::new()).collect();
    let (set_deadline, deadline) = watch::channel(None);
    let mut tasks = Vec::with_capacity(plan.watchers);
    for i in 0..plan.watchers {
        let w = rpc
            .watch(key.clone())
            .await
            .map_err(|e| anyhow!("opening watcher {i}: {e}"))?;
        tasks.push(tokio::spawn(receive(
            w,
            plan.puts.total,
            Arc::clone(&sent),
            deadline.clone(),
        )));
    }
    let putter = Putter {
        rpc,
        key,
        val_size: plan.val_size,
        sent,
    };
    put_and_receive(plan.puts, putter, tasks, set_deadline).await
}

/// Events a receiver saw (latencies) and the errors it counted.
pub(crate) type Received = (Vec<Duration>, BTreeMap<String, u64>);

/// Runs the putter, then gives the receivers [`GRACE`] to see the last events, and
/// returns (put report, event report).
pub(crate) async fn put_and_receive<W: Worker>(
    puts: Load,
    putter: W,
    receivers: Vec<tokio::task::JoinHandle<Received>>,
    set_deadline: watch::Sender<Option<Instant>>,
) -> Result<(Report, Report)> {
    let start = Instant::now();
    let put_report = runner::run(puts, vec![putter], &runner::progress_bar(puts.total)).await?;
    let _ = set_deadline.send(Some(Instant::now() + GRACE));
    let mut lats = Vec::new();
    let mut errors = BTreeMap::new();
    for r in receivers {
        let (l, e) = r.await?;
        lats.extend(l);
        for (msg, n) in e {
            *errors.entry(msg).or_default() += n;
        }
    }
    Ok((put_report, Report::new(start.elapsed(), lats, errors)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> WatchLatencyArgs {
        WatchLatencyArgs {
            total: 1_000,
            put_rate: 100,
            watchers: 10,
            key_size: 32,
            val_size: 32,
        }
    }

    #[test]
    fn plan_uses_one_putter_at_put_rate() {
        let p = plan(&args()).expect("plan");
        assert_eq!(
            p.puts,
            Load {
                total: 1_000,
                clients: 1,
                rate: 100
            }
        );
        assert_eq!(p.watchers, 10);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(plan(&WatchLatencyArgs {
            watchers: 0,
            ..args()
        })
        .is_err());
        assert!(plan(&WatchLatencyArgs {
            val_size: 7,
            ..args()
        })
        .is_err());
        assert!(plan(&WatchLatencyArgs {
            key_size: 0,
            ..args()
        })
        .is_err());
    }

    #[test]
    fn values_carry_the_put_number() {
        let v = value_of(123_456, 32);
        assert_eq!(v.len(), 32);
        assert_eq!(number_of(&v), Some(123_456));
        assert_eq!(number_of(b"short"), None);
    }
}
