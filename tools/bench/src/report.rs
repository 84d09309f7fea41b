//! The end-of-run summary: latency statistics, a histogram, percentiles and error
//! counts, printed like etcd's `pkg/report` (so the two tools' output reads the same)
//! or as one JSON object for scripts.
//!
//! Percentiles come from the sorted list of every latency rather than a bucketed
//! histogram: a run is bounded by `--total`, so the list is at most a few million
//! floats, and exact values make small runs (and the unit tests) meaningful.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

/// Percentiles reported, etcd's list (`pkg/report`): p10 … p99.9.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Number of equal-width histogram buckets between the fastest and slowest request
/// (etcd prints the same 10, plus a last bucket at the slowest latency).
const HISTOGRAM_BUCKETS: usize = 10;
/// Width of the longest histogram bar, in characters.
const BAR_WIDTH: usize = 40;

/// Everything measured by one load loop.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Wall-clock time of the whole loop, first request to last response.
    pub elapsed: Duration,
    /// Latency of every successful request, in seconds, sorted ascending.
    lats: Vec<f64>,
    /// Failed requests counted by error message.
    pub errors: BTreeMap<String, u64>,
}

/// Summary figures of a [`Report`], all latencies in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    pub fastest: f64,
    pub slowest: f64,
    pub average: f64,
    /// Population standard deviation, as etcd computes it.
    pub stddev: f64,
    /// Successful requests per second of wall-clock time.
    pub rps: f64,
}

impl Report {
    /// Builds a report from the successful requests' latencies and the failures.
    pub fn new(elapsed: Duration, lats: Vec<Duration>, errors: BTreeMap<String, u64>) -> Self {
        let mut lats: Vec<f64> = lats.iter().map(Duration::as_secs_f64).collect();
        lats.sort_by(f64::total_cmp);
        Report {
            elapsed,
            lats,
            errors,
        }
    }

    /// Number of successful requests.
    pub fn successes(&self) -> u64 {
        self.lats.len() as u64
    }

    /// Number of failed requests.
    pub fn failures(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Fastest, slowest, average, stddev and throughput (zeros when nothing succeeded).
    pub fn stats(&self) -> Stats {
        let n = self.lats.len();
        if n == 0 {
            return Stats::default();
        }
        let average = self.lats.iter().sum::<f64>() / n as f64;
        let var = self.lats.iter().map(|l| (l - average).powi(2)).sum::<f64>() / n as f64;
        let secs = self.elapsed.as_secs_f64();
        Stats {
            fastest: self.lats[0],
            slowest: self.lats[n - 1],
            average,
            stddev: var.sqrt(),
            rps: if secs > 0.0 { n as f64 / secs } else { 0.0 },
        }
    }

    /// The latency at percentile `p` (0–100] by etcd's rule: the element at
    /// `ceil(p * (n + 1) / 100) - 1`, clamped to the list. `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.lats.len();
        if n == 0 {
            return None;
        }
        let idx = ((p * (n + 1) as f64 / 100.0).ceil() as i64 - 1).clamp(0, n as i64 - 1);
        Some(self.lats[idx as usize])
    }

    /// `(upper bound in seconds, count)` per bucket: 10 equal-width buckets from the
    /// fastest latency plus one ending at the slowest; a latency lands in the first
    /// bucket whose bound is at or above it.
    pub fn histogram(&self) -> Vec<(f64, u64)> {
        let Stats {
            fastest, slowest, ..
        } = self.stats();
        if self.lats.is_empty() {
            return Vec::new();
        }
        let width = (slowest - fastest) / HISTOGRAM_BUCKETS as f64;
        let mut buckets: Vec<(f64, u64)> = (0..HISTOGRAM_BUCKETS)
            .map(|i| (fastest + width * i as f64, 0))
            .collect();
        buckets.push((slowest, 0));
        let mut bi = 0;
        for &lat in &self.lats {
            while lat > buckets[bi].0 && bi + 1 < buckets.len() {
                bi += 1;
            }
            buckets[bi].1 += 1;
        }
        buckets
    }

    /// The human-readable summary, in etcd's layout.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if !self.lats.is_empty() {
            let st = self.stats();
            let _ = writeln!(s, "\nSummary:");
            let _ = writeln!(s, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
            let _ = writeln!(s, "  Slowest:\t{:.4} secs.", st.slowest);
            let _ = writeln!(s, "  Fastest:\t{:.4} secs.", st.fastest);
            let _ = writeln!(s, "  Average:\t{:.4} secs.", st.average);
            let _ = writeln!(s, "  Stddev:\t{:.4} secs.", st.stddev);
            let _ = writeln!(s, "  Requests/sec:\t{:.4}", st.rps);
            s.push_str(&self.histogram_text());
            let _ = writeln!(s, "\nLatency distribution:");
            for p in PERCENTILES {
                if let Some(v) = self.percentile(p) {
                    let _ = writeln!(s, "  {p}% in {:.3} ms.", v * 1000.0);
                }
            }
            let _ = writeln!(s, "  max in {:.3} ms.", st.slowest * 1000.0);
        } else {
            let _ = writeln!(
                s,
                "\nSummary:\n  Total:\t{:.4} secs.\n  no request succeeded",
                self.elapsed.as_secs_f64()
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nError distribution:");
            for (msg, n) in &self.errors {
                let _ = writeln!(s, "  [{n}]\t{msg}");
            }
        }
        s
    }

    fn histogram_text(&self) -> String {
        let buckets = self.histogram();
        let max = buckets.iter().map(|b| b.1).max().unwrap_or(0);
        let mut s = String::from("\nResponse time histogram:\n");
        for (bound, count) in buckets {
            let bar = if max > 0 {
                (count as usize * BAR_WIDTH) / max as usize
            } else {
                0
            };
            let _ = writeln!(s, "  {bound:.4} [{count}]\t|{}", "∎".repeat(bar));
        }
        s
    }

    /// One machine-readable object; latencies in seconds.
    pub fn to_json(&self) -> Value {
        let st = self.stats();
        let mut pct = serde_json::Map::new();
        for p in PERCENTILES {
            pct.insert(format!("p{p}"), json!(self.percentile(p).unwrap_or(0.0)));
        }
        pct.insert("max".to_owned(), json!(st.slowest));
        json!({
            "successes": self.successes(),
            "failures": self.failures(),
            "total_secs": self.elapsed.as_secs_f64(),
            "requests_per_sec": st.rps,
            "latency_secs": {
                "fastest": st.fastest,
                "slowest": st.slowest,
                "average": st.average,
                "stddev": st.stddev,
                "percentiles": pct,
            },
            "histogram": self.histogram().iter()
                .map(|(le, count)| json!({"le_secs": le, "count": count}))
                .collect::<Vec<_>>(),
            "errors": self.errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn stats_of_known_latencies() {
        let r = Report::new(Duration::from_secs(2), ms(&[4, 1, 3, 2]), BTreeMap::new());
        let st = r.stats();
        assert!(close(st.fastest, 0.001));
        assert!(close(st.slowest, 0.004));
        assert!(close(st.average, 0.0025));
        // Population stddev of 1,2,3,4 ms = sqrt(1.25) ms.
        assert!(close(st.stddev, 1.25f64.sqrt() / 1000.0));
        assert!(close(st.rps, 2.0));
        assert_eq!(r.successes(), 4);
        assert_eq!(r.failures(), 0);
    }

    #[test]
    fn percentiles_follow_etcds_rule() {
        // 1..=100 ms: index ceil(p * 101 / 100) - 1.
        let r = Report::new(
            Duration::from_secs(1),
            ms(&(1..=100).collect::<Vec<_>>()),
            BTreeMap::new(),
        );
        let got = |p| r.percentile(p).map(|v| (v * 1000.0).round() as u64);
        assert_eq!(got(10.0), Some(11));
        assert_eq!(got(50.0), Some(51));
        assert_eq!(got(90.0), Some(91));
        assert_eq!(got(99.0), Some(100));
        assert_eq!(got(99.9), Some(100));
        let one = Report::new(Duration::from_secs(1), ms(&[7]), BTreeMap::new());
        for p in PERCENTILES {
            assert_eq!(one.percentile(p), Some(0.007));
        }
        assert_eq!(Report::default().percentile(50.0), None);
    }

    #[test]
    fn histogram_counts_every_latency_once() {
        let r = Report::new(
            Duration::from_secs(1),
            ms(&[10, 10, 11, 15, 20, 29, 30]),
            BTreeMap::new(),
        );
        let h = r.histogram();
        assert_eq!(h.len(), HISTOGRAM_BUCKETS + 1);
        assert_eq!(h.iter().map(|b| b.1).sum::<u64>(), 7);
        assert!(close(h[0].0, 0.010));
        assert!(close(h[HISTOGRAM_BUCKETS].0, 0.030));
        assert_eq!(h[0].1, 2, "both 10 ms land in the first bucket: {h:?}");
        // Bounds rise monotonically.
        assert!(h.windows(2).all(|w| w[0].0 <= w[1].0));
        // All-equal latencies: everything in the first bucket.
        let same = Report::new(Duration::from_secs(1), ms(&[5, 5, 5]), BTreeMap::new());
        assert_eq!(same.histogram()[0].1, 3);
        assert!(Report::default().histogram().is_empty());
    }

    #[test]
    fn text_and_json_carry_errors() {
        let mut errors = BTreeMap::new();
        errors.insert("etcdserver: request timed out".to_owned(), 3);
        let r = Report::new(Duration::from_secs(1), ms(&[1, 2]), errors);
        let text = r.to_text();
        for needle in [
            "Summary:",
            "Requests/sec:",
            "Response time histogram:",
            "50% in",
            "99.9% in",
            "max in",
            "[3]\tetcdserver: request timed out",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        let v = r.to_json();
        assert_eq!(v["successes"], 2);
        assert_eq!(v["failures"], 3);
        assert_eq!(v["errors"]["etcdserver: request timed out"], 3);
        assert!(close(
            v["latency_secs"]["percentiles"]["max"]
                .as_f64()
                .unwrap_or(0.0),
            0.002
        ));
        assert!(v["latency_secs"]["percentiles"]["p99.9"].is_number());
    }

    #[test]
    fn empty_report_says_nothing_succeeded() {
        let text = Report::default().to_text();
        assert!(text.contains("no request succeeded"), "{text}");
        assert_eq!(Report::default().to_json()["successes"], 0);
    }
}
