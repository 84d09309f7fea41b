//! The bounded load loop every subcommand shares.
//!
//! `--clients` tasks take request numbers `0..total` from one counter, so the run
//! stops by itself after exactly `--total` requests however fast each client is.
//! An optional `--rate` paces the whole run (not each client) by handing out send
//! slots `1/rate` apart. Latency is measured from just before a request is sent to
//! its answer; time spent waiting for a rate slot is not counted.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::report::Report;
use crate::rpc::RpcError;

/// How much load to generate: the part of a plan every subcommand has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Requests in the whole run.
    pub total: u64,
    /// Concurrent requesters.
    pub clients: usize,
    /// Requests per second over the whole run; 0 = as fast as possible.
    pub rate: u32,
}

impl Load {
    /// Validates the flags shared by every subcommand.
    pub fn new(total: u64, clients: usize, rate: u32) -> Result<Self> {
        if clients == 0 {
            bail!("--clients must be at least 1");
        }
        Ok(Load {
            total,
            clients,
            rate,
        })
    }
}

/// One concurrent requester. `call(i)` performs request number `i`.
pub trait Worker: Send + 'static {
    fn call(&mut self, i: u64) -> impl Future<Output = Result<(), RpcError>> + Send;
}

/// Hands out send times `1/rate` apart, shared by all clients.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rate: u32) -> Option<Arc<Self>> {
        (rate > 0).then(|| {
            Arc::new(Pacer {
                interval: Duration::from_secs(1) / rate,
                next: Mutex::new(Instant::now()),
            })
        })
    }

    /// Waits for this request's slot.
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
pub fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} elapsed {elapsed} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// What one client measured.
#[derive(Default)]
struct Tally {
    lats: Vec<Duration>,
    errors: BTreeMap<String, u64>,
}

/// Runs `load.total` requests over `workers` (one task each) and reports.
///
/// # Errors
/// If a client task panicked.
pub async fn run<W: Worker>(load: Load, workers: Vec<W>, bar: &ProgressBar) -> Result<Report> {
    let counter = Arc::new(AtomicU64::new(0));
    let pacer = Pacer::new(load.rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(workers.len());
    for mut worker in workers {
        let counter = Arc::clone(&counter);
        let pacer = pacer.clone();
        let bar = bar.clone();
        let total = load.total;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if let Some(p) = &pacer {
                    p.wait().await;
                }
                let sent = Instant::now();
                match worker.call(i).await {
                    Ok(()) => tally.lats.push(sent.elapsed()),
                    Err(e) => *tally.errors.entry(e).or_default() += 1,
                }
                bar.inc(1);
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let tally = t.await?;
        all.lats.extend(tally.lats);
        for (e, n) in tally.errors {
            *all.errors.entry(e).or_default() += n;
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok(Report::new(elapsed, all.lats, all.errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every third request.
    struct Flaky(Arc<AtomicU64>);

    impl Worker for Flaky {
        fn call(&mut self, i: u64) -> impl Future<Output = Result<(), RpcError>> + Send {
            self.0.fetch_add(1, Ordering::Relaxed);
            async move {
                if i.is_multiple_of(3) {
                    Err("boom".to_owned())
                } else {
                    Ok(())
                }
            }
        }
    }

    #[tokio::test]
    async fn runs_exactly_total_requests_over_all_clients() {
        let calls = Arc::new(AtomicU64::new(0));
        let workers = (0..4).map(|_| Flaky(Arc::clone(&calls))).collect();
        let load = Load::new(30, 4, 0).expect("load");
        let r = run(load, workers, &ProgressBar::hidden())
            .await
            .expect("run");
        assert_eq!(calls.load(Ordering::Relaxed), 30);
        assert_eq!(r.successes(), 20);
        assert_eq!(r.errors.get("boom"), Some(&10));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_spaces_requests_over_the_whole_run() {
        let calls = Arc::new(AtomicU64::new(0));
        let workers = (0..3).map(|_| Flaky(Arc::clone(&calls))).collect();
        // 11 requests at 10/s: the last slot is 1 s after the first.
        let load = Load::new(11, 3, 10).expect("load");
        let r = run(load, workers, &ProgressBar::hidden())
            .await
            .expect("run");
        assert_eq!(calls.load(Ordering::Relaxed), 11);
        assert!(r.elapsed >= Duration::from_secs(1), "{:?}", r.elapsed);
        assert!(r.elapsed < Duration::from_millis(1100), "{:?}", r.elapsed);
    }

    #[test]
    fn zero_clients_is_refused() {
        assert!(Load::new(10, 0, 0).is_err());
    }
}
