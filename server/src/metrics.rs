//! Prometheus metrics, named as etcd names them so existing dashboards keep working.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

mod process;

/// etcd's (go-grpc-prometheus) latency buckets, in seconds.
const BUCKETS: [f64; N_BUCKETS] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const N_BUCKETS: usize = 11;

/// Appends one unlabelled sample with its HELP and TYPE lines.
fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; N_BUCKETS],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of `name` with `labels`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

/// An RPC as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rpc {
    pub service: &'static str,
    pub method: &'static str,
    pub kind: &'static str,
}

/// Counters and histograms of one member.
#[derive(Default)]
pub struct Metrics {
    handled: Mutex<BTreeMap<(Rpc, &'static str), u64>>,
    latency: Mutex<BTreeMap<Rpc, Histogram>>,
    wal_fsync: Mutex<Histogram>,
    pub proposals_failed: AtomicU64,
}

/// Gauges read at scrape time from the live server.
pub struct Gauges {
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub current_rev: i64,
    pub compact_rev: i64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub has_leader: bool,
    pub is_leader: bool,
}

impl Metrics {
    /// Records one finished RPC with its gRPC status code name (Go's spelling).
    pub fn observe(&self, rpc: Rpc, code: &'static str, elapsed: Duration) {
        *self.handled.lock().entry((rpc, code)).or_default() += 1;
        self.latency.lock().entry(rpc).or_default().observe(elapsed);
    }

    /// Records one synced raft log write (etcd's WAL fsync).
    pub fn observe_wal_fsync(&self, elapsed: Duration) {
        self.wal_fsync.lock().observe(elapsed);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let labels = |r: &Rpc| {
            format!(
                "grpc_method=\"{}\",grpc_service=\"{}\",grpc_type=\"{}\"",
                r.method, r.service, r.kind
            )
        };
        out.push_str("# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n# TYPE grpc_server_handled_total counter\n");
        for ((rpc, code), n) in self.handled.lock().iter() {
            let _ = writeln!(
                out,
                "grpc_server_handled_total{{grpc_code=\"{code}\",{}}} {n}",
                labels(rpc)
            );
        }
        out.push_str("# HELP grpc_server_handling_seconds Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.\n# TYPE grpc_server_handling_seconds histogram\n");
        for (rpc, h) in self.latency.lock().iter() {
            h.render(&mut out, "grpc_server_handling_seconds", &labels(rpc));
        }
        out.push_str("# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.\n# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n");
        self.wal_fsync
            .lock()
            .render(&mut out, "etcd_disk_wal_fsync_duration_seconds", "");
        let gauges: [(&str, &str, &str, f64); 9] = [
            (
                "etcd_mvcc_db_total_size_in_bytes",
                "gauge",
                "Total size of the underlying database physically allocated in bytes.",
                g.db_size as f64,
            ),
            (
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "gauge",
                "Total size of the underlying database logically in use in bytes.",
                g.db_size_in_use as f64,
            ),
            (
                "etcd_debugging_mvcc_current_revision",
                "gauge",
                "The current revision of store.",
                g.current_rev as f64,
            ),
            (
                "etcd_debugging_mvcc_compact_revision",
                "gauge",
                "The revision of the last compaction in store.",
                g.compact_rev as f64,
            ),
            (
                "etcd_server_proposals_committed_total",
                "gauge",
                "The total number of consensus proposals committed.",
                g.committed_index as f64,
            ),
            (
                "etcd_server_proposals_applied_total",
                "gauge",
                "The total number of consensus proposals applied.",
                g.applied_index as f64,
            ),
            (
                "etcd_server_proposals_failed_total",
                "counter",
                "The total number of failed proposals seen.",
                self.proposals_failed.load(Ordering::Relaxed) as f64,
            ),
            (
                "etcd_server_has_leader",
                "gauge",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
                f64::from(u8::from(g.has_leader)),
            ),
            (
                "etcd_server_is_leader",
                "gauge",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                f64::from(u8::from(g.is_leader)),
            ),
        ];
        for (name, kind, help, v) in gauges {
            write_metric(&mut out, name, kind, help, v);
        }
        process::render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        let rpc = Rpc {
            service: "etcdserverpb.KV",
            method: "Range",
            kind: "unary",
        };
        m.observe(rpc, "OK", Duration::from_millis(3));
        m.observe(rpc, "OK", Duration::from_millis(30));
        m.observe(rpc, "OutOfRange", Duration::from_millis(1));
        let g = Gauges {
            db_size: 10,
            db_size_in_use: 5,
            current_rev: 7,
            compact_rev: 2,
            committed_index: 9,
            applied_index: 9,
            has_leader: true,
            is_leader: true,
        };
        let text = m.render(&g);
        assert!(text.contains("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2"));
        assert!(text.contains("grpc_server_handling_seconds_bucket{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\",le=\"0.005\"} 2"));
        assert!(text.contains("grpc_server_handling_seconds_count{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 3"));
        assert!(text.contains("etcd_debugging_mvcc_current_revision 7"));
        assert!(text.contains("etcd_server_is_leader 1"));
    }
}
