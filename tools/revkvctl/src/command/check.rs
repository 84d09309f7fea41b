//! `check perf` and `check datascale`: etcdctl's built-in load checks. Both write
//! random keys under a prefix from many clients at once, report, and delete the keys
//! again (then compact and defragment when asked).

use std::sync::Arc;
use std::time::{Duration, Instant};

use revkv_client::{DeleteOptions, GetOptions, Kv, PutOptions};
use revkv_proto::etcdserverpb as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{out, Ctx};
use crate::conn::{CallError, Conn};
use crate::exit::{CtlError, CtlResult, BAD_FEATURE, ERROR, INVALID_INPUT};
use crate::flags::{Kind, Spec};
use crate::global::Global;
use crate::unary;

const LOAD_HELP_PERF: &str = "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)";
const LOAD_HELP_DATASCALE: &str = "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)";
const AUTO_COMPACT: Spec = Spec::new(
    "auto-compact",
    Kind::Bool,
    "false",
    "Compact storage with last revision after test is finished.",
);
const AUTO_DEFRAG: Spec = Spec::new(
    "auto-defrag",
    Kind::Bool,
    "false",
    "Defragment storage after test is finished.",
);

/// `check perf`'s flags.
pub const PERF_SPECS: &[Spec] = &[
    AUTO_COMPACT,
    AUTO_DEFRAG,
    Spec::new("load", Kind::Str, "s", LOAD_HELP_PERF),
    Spec::new(
        "prefix",
        Kind::Str,
        "/etcdctl-check-perf/",
        "The prefix for writing the performance check's keys.",
    ),
];

/// `check datascale`'s flags.
pub const DATASCALE_SPECS: &[Spec] = &[
    AUTO_COMPACT,
    AUTO_DEFRAG,
    Spec::new("load", Kind::Str, "s", LOAD_HELP_DATASCALE),
    Spec::new(
        "prefix",
        Kind::Str,
        "/etcdctl-check-datascale/",
        "The prefix for writing the datascale check's keys.",
    ),
];

/// One of etcdctl's workloads, which both checks name alike: how many clients, and
/// `check perf`'s writes per second (for [`PERF_SECONDS`]) or `check datascale`'s
/// key-values of `kv_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Load {
    clients: usize,
    rate: u32,
    puts: usize,
    kv_size: usize,
}

/// How long `check perf` writes.
const PERF_SECONDS: u64 = 60;

fn load(name: &str) -> Option<Load> {
    let (clients, rate, puts, kv_size) = match name {
        "s" | "small" => (50, 150, 10_000, 1024),
        "m" | "medium" => (200, 1000, 100_000, 1024),
        "l" | "large" => (500, 8000, 1_000_000, 1024),
        "xl" | "xLarge" => (1000, 15000, 3_000_000, 1000),
        _ => return None,
    };
    Some(Load {
        clients,
        rate,
        puts,
        kv_size,
    })
}

/// What the load's requests did (etcd's `report.Stats`, the parts the checks use).
#[derive(Debug, Default, PartialEq)]
struct Stats {
    requests_per_sec: f64,
    slowest: f64,
    stddev: f64,
    /// Error messages and how often each came back.
    errors: Vec<(String, u64)>,
}

impl Stats {
    fn of(latencies: &[f64], errors: Vec<(String, u64)>, elapsed: Duration) -> Stats {
        let n = latencies.len() as f64;
        let mean = latencies.iter().sum::<f64>() / n.max(1.0);
        let var = latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n.max(1.0);
        Stats {
            requests_per_sec: n / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            slowest: latencies.iter().copied().fold(0.0, f64::max),
            stddev: var.sqrt(),
            errors,
        }
    }
}

/// What both checks print when requests failed: nothing when none did.
fn error_lines(errors: &[(String, u64)]) -> Vec<String> {
    if errors.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["FAIL: too many errors".to_owned()];
    lines.extend(
        errors
            .iter()
            .map(|(e, n)| format!("FAIL: ERROR({e}) -> {n}")),
    );
    lines
}

/// `check perf`'s verdict lines and whether it passed.
fn perf_verdict(s: &Stats, limit: u32) -> (Vec<String>, bool) {
    let mut lines = error_lines(&s.errors);
    let mut ok = lines.is_empty();
    let rps = s.requests_per_sec as i64 + 1;
    if s.requests_per_sec / f64::from(limit) <= 0.9 {
        lines.push(format!("FAIL: Throughput too low: {rps} writes/s"));
        ok = false;
    } else {
        lines.push(format!("PASS: Throughput is {rps} writes/s"));
    }
    if s.slowest > 0.5 {
        lines.push(format!("Slowest request took too long: {:.6}s", s.slowest));
        ok = false;
    } else {
        lines.push(format!("PASS: Slowest request took {:.6}s", s.slowest));
    }
    if s.stddev > 0.1 {
        lines.push(format!("Stddev too high: {:.6}s", s.stddev));
        ok = false;
    } else {
        lines.push(format!("PASS: Stddev is {:.6}s", s.stddev));
    }
    lines.push(if ok { "PASS" } else { "FAIL" }.to_owned());
    (lines, ok)
}

/// A key under `prefix` made from a random varint in a `size`-byte buffer, as etcdctl
/// makes them (`binary.PutVarint` of a random int63 into zeroed bytes).
fn random_key(prefix: &str, size: usize) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    let start = k.len();
    k.resize(start + size, 0);
    // Zig-zag varint of a non-negative int63, as Go's PutVarint writes it.
    let mut v = (rand::random::<u64>() >> 1) << 1;
    let mut i = start;
    while v >= 0x80 && i < k.len() {
        k[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    if i < k.len() {
        k[i] = v as u8;
    }
    k
}

/// Tokens a late producer may still take (see [`Pace::Rate`]).
const CATCH_UP: u32 = 10;

/// How the producer hands out keys: a fixed number as fast as the clients take them,
/// or paced by a rate limiter until a deadline.
#[derive(Debug, Clone, Copy)]
enum Pace {
    Count(usize),
    /// A token every `interval` until `until`. A turn that comes late may take up to
    /// [`CATCH_UP`] tokens it missed. etcdctl's `rate.NewLimiter(limit, 1)` keeps
    /// none, so every late wake-up of its producer lowers the offered rate below the
    /// limit the check claims (BENCHMARKS item 31); a sleep here overshoots by tens
    /// of microseconds, a third of the 125 µs interval of `--load=l`.
    Rate {
        interval: Duration,
        until: Instant,
    },
}

/// Puts random keys under `prefix` (`key_size` bytes after it) with `value` from
/// `clients` connections, as `pace` hands them out; returns every latency in seconds,
/// the errors by message, and how long it all took.
async fn run_load(
    g: &Global,
    clients: usize,
    pace: Pace,
    (prefix, key_size): (String, usize),
    value: Vec<u8>,
    on_done: impl Fn() + Send + Sync + 'static,
) -> CtlResult<(Vec<f64>, Vec<(String, u64)>, Duration)> {
    let conns = (0..clients.max(1))
        .map(|_| Conn::open(&g.endpoints, g))
        .collect::<CtlResult<Vec<_>>>()?;
    let (tx, mut keys) = tokio::sync::mpsc::channel::<Vec<u8>>(conns.len());
    // The producer is a thread of its own: the runtime's timers tick in milliseconds,
    // too coarse for a limiter that hands out a token every 125 µs.
    let producer = std::thread::spawn(move || produce(&tx, pace, &prefix, key_size));
    // At most one put in flight per client, as etcdctl's client goroutines, each on
    // the next connection in turn.
    let slots = Arc::new(tokio::sync::Semaphore::new(conns.len()));
    let value = Arc::new(value);
    let on_done = Arc::new(on_done);
    let start = Instant::now();
    let mut puts = tokio::task::JoinSet::new();
    let mut latencies = Vec::new();
    let mut errors: Vec<(String, u64)> = Vec::new();
    let mut turn = 0;
    while let Some(key) = keys.recv().await {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CtlError::error(e.to_string()))?;
        let kv = conns[turn % conns.len()].kv();
        turn += 1;
        let (value, on_done) = (value.clone(), on_done.clone());
        puts.spawn(async move {
            let t = Instant::now();
            let result = kv
                .put_with(key, value.to_vec(), PutOptions::default())
                .await
                .map(|_| t.elapsed().as_secs_f64())
                .map_err(|e| CallError::from(e).message());
            on_done();
            drop(slot);
            result
        });
        // Reap what finished, so the set stays as small as the puts in flight.
        while let Some(done) = puts.try_join_next() {
            record(done, &mut latencies, &mut errors)?;
        }
    }
    while let Some(done) = puts.join_next().await {
        record(done, &mut latencies, &mut errors)?;
    }
    let _ = producer.join();
    Ok((latencies, errors, start.elapsed()))
}

/// Adds one finished put to the latencies or the errors.
fn record(
    done: Result<Result<f64, String>, tokio::task::JoinError>,
    latencies: &mut Vec<f64>,
    errors: &mut Vec<(String, u64)>,
) -> CtlResult {
    match done.map_err(|e| CtlError::error(e.to_string()))? {
        Ok(latency) => latencies.push(latency),
        Err(message) => count_error(errors, message),
    }
    Ok(())
}

fn count_error(errors: &mut Vec<(String, u64)>, message: String) {
    match errors.iter_mut().find(|(m, _)| *m == message) {
        Some((_, n)) => *n += 1,
        None => errors.push((message, 1)),
    }
}

fn produce(tx: &tokio::sync::mpsc::Sender<Vec<u8>>, pace: Pace, prefix: &str, key_size: usize) {
    match pace {
        Pace::Count(n) => {
            for _ in 0..n {
                if tx.blocking_send(random_key(prefix, key_size)).is_err() {
                    return;
                }
            }
        }
        Pace::Rate { interval, until } => {
            let mut due = Instant::now();
            loop {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let now = Instant::now();
                if now >= until {
                    return;
                }
                due = due.max(now.checked_sub(interval * CATCH_UP).unwrap_or(now)) + interval;
                if tx.blocking_send(random_key(prefix, key_size)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Fails with etcdctl's message when keys already exist under `prefix`.
async fn ensure_empty(conn: &Conn, prefix: &str) -> CtlResult {
    let resp = conn
        .kv()
        .get_with(prefix, GetOptions::new().with_prefix().with_limit(1))
        .await
        .map_err(|e| CtlError::error(CallError::from(e).message()))?;
    if !resp.kvs.is_empty() {
        return Err(CtlError::new(
            INVALID_INPUT,
            format!("prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"),
        ));
    }
    Ok(())
}

/// Deletes the check's keys; with `compact`, compacts to the revision of the delete.
async fn clean_up(conn: &Conn, prefix: &str, compact: bool) -> Result<(), CallError> {
    let resp = conn
        .kv()
        .delete_with(prefix, DeleteOptions::new().with_prefix())
        .await?;
    if compact {
        let rev = resp.header.revision;
        out(format!("Compacting with revision {rev}\n").as_bytes());
        conn.kv().compact(rev, false).await?;
        out(format!("Compacted with revision {rev}\n").as_bytes());
    }
    Ok(())
}

/// Defragments every endpoint, one at a time.
async fn defrag_all(g: &Global) -> CtlResult {
    for ep in &g.endpoints {
        out(format!("Defragmenting {ep:?}\n").as_bytes());
        let conn = Conn::open(std::slice::from_ref(ep), g)?;
        unary!(
            conn,
            conn.maintenance(),
            defragment,
            pb::DefragmentRequest {}
        )
        .map_err(|e| CtlError::error(e.message()))?;
        out(format!("Defragmented {ep:?}\n").as_bytes());
    }
    Ok(())
}

/// The endpoint's `process_resident_memory_bytes` from its `/metrics`, or why not
/// (the line etcdctl prints).
async fn resident_memory(endpoint: &str) -> Result<f64, String> {
    const KEY: &str = "process_resident_memory_bytes";
    let body = http_get(endpoint, "/metrics")
        .await
        .map_err(|e| format!("fetch error: {e}"))?;
    let value = body
        .lines()
        .find_map(|l| l.strip_prefix(KEY))
        .map(str::trim)
        .ok_or_else(|| format!("could not find: {KEY}"))?;
    value
        .parse::<f64>()
        .map_err(|e| format!("parse error: {e}"))
}

/// A plain HTTP/1.1 GET of `path` on `endpoint` (`host:port` or `http://host:port`);
/// the body, de-chunked.
async fn http_get(endpoint: &str, path: &str) -> std::io::Result<String> {
    let host = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(std::io::Error::other(format!("GET {path}: {status}")));
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    })
}

/// The payload of a chunked HTTP/1.1 body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

fn progress(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(" {pos} / {len} {wide_bar} {percent}% {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// What both checks start from: their flags, and a connection to a cluster that has
/// no keys under the prefix yet.
struct Setup {
    load: Load,
    prefix: String,
    compact: bool,
    defrag: bool,
    conn: Conn,
    g: Global,
}

impl Setup {
    async fn new(ctx: &mut Ctx) -> CtlResult<Setup> {
        let name = ctx.str("load");
        let load = load(&name)
            .ok_or_else(|| CtlError::new(BAD_FEATURE, format!("unknown load option {name}")))?;
        let prefix = ctx.str("prefix");
        let (compact, defrag) = (ctx.bool("auto-compact"), ctx.bool("auto-defrag"));
        let (conn, _, g) = ctx.client().await?;
        ensure_empty(&conn, &prefix).await?;
        Ok(Setup {
            load,
            prefix,
            compact,
            defrag,
            conn,
            g,
        })
    }

    /// Deletes the check's keys, then compacts and defragments as asked. `check perf`
    /// reports a failed delete and goes on (`tolerant`); `check datascale` stops.
    async fn finish(&self, tolerant: bool) -> CtlResult {
        if let Err(e) = clean_up(&self.conn, &self.prefix, self.compact).await {
            if !tolerant {
                return Err(CtlError::error(e.message()));
            }
            out(format!(
                "FAIL: Cleanup failed during key deletion: ERROR({})\n",
                e.message()
            )
            .as_bytes());
        }
        if self.defrag {
            defrag_all(&self.g).await?;
        }
        Ok(())
    }
}

/// Runs `check perf`.
pub async fn perf(ctx: &mut Ctx) -> CtlResult {
    let setup = Setup::new(ctx).await?;
    let load = setup.load;
    let bar = progress(PERF_SECONDS);
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            for _ in 0..PERF_SECONDS {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
        })
    };
    let pace = Pace::Rate {
        interval: Duration::from_secs_f64(1.0 / f64::from(load.rate)),
        until: Instant::now() + Duration::from_secs(PERF_SECONDS),
    };
    let (lat, errors, elapsed) = run_load(
        &setup.g,
        load.clients,
        pace,
        (setup.prefix.clone(), 256),
        vec![0; 1024],
        || {},
    )
    .await?;
    let _ = ticker.await;
    bar.finish();
    setup.finish(true).await?;
    let (lines, ok) = perf_verdict(&Stats::of(&lat, errors, elapsed), load.rate);
    out(format!("{}\n", lines.join("\n")).as_bytes());
    if ok {
        Ok(())
    } else {
        Err(CtlError::silent(ERROR))
    }
}

/// A resident memory reading, or etcdctl's lines saying why there is none and a
/// failure.
fn memory_or_fail(read: Result<f64, String>, when: &str) -> CtlResult<f64> {
    match read {
        Ok(b) if b > 0.0 => Ok(b),
        other => {
            if let Err(why) = other {
                out(format!("{why}\n").as_bytes());
            }
            out(format!(
                "FAIL: Could not read process_resident_memory_bytes {when} the put operations.\n"
            )
            .as_bytes());
            Err(CtlError::silent(ERROR))
        }
    }
}

/// Runs `check datascale`.
pub async fn datascale(ctx: &mut Ctx) -> CtlResult {
    let setup = Setup::new(ctx).await?;
    let load = setup.load;
    let first = setup.g.endpoints.first().cloned().unwrap_or_default();
    let before = memory_or_fail(resident_memory(&first).await, "before")?;
    out(format!(
        "Start data scale check for work load [{} key-value pairs, {} bytes per key-value, {} concurrent clients].\n",
        load.puts, load.kv_size, load.clients
    )
    .as_bytes());
    let bar = progress(load.puts as u64);
    let half = load.kv_size / 2;
    let counter = bar.clone();
    let (_, errors, _) = run_load(
        &setup.g,
        load.clients,
        Pace::Count(load.puts),
        (setup.prefix.clone(), half),
        vec![0; half],
        move || counter.inc(1),
    )
    .await?;
    bar.finish();
    // Read before the keys are deleted, as etcdctl does.
    let after = memory_or_fail(resident_memory(&first).await, "after")?;
    setup.finish(false).await?;
    let failed = error_lines(&errors);
    if !failed.is_empty() {
        out(format!("{}\n", failed.join("\n")).as_bytes());
        return Err(CtlError::silent(ERROR));
    }
    let mb = (after - before) / (1024.0 * 1024.0);
    out(format!("PASS: Approximate system memory used : {mb:.2} MB.\n").as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_are_etcdctls() {
        assert_eq!(
            load("l"),
            Some(Load {
                clients: 500,
                rate: 8000,
                puts: 1_000_000,
                kv_size: 1024
            })
        );
        assert_eq!(load("xxl"), None);
        assert_eq!(
            load("s").map(|l| (l.clients, l.rate, l.puts)),
            Some((50, 150, 10_000))
        );
        assert_eq!(load("xl").map(|l| l.kv_size), Some(1000));
        // etcdctl's aliases.
        assert_eq!(load("small"), load("s"));
        assert_eq!(load("xLarge"), load("xl"));
    }

    #[test]
    fn the_perf_verdict_uses_etcdctls_thresholds_and_wording() {
        let good = Stats {
            requests_per_sec: 149.2,
            slowest: 0.0875,
            stddev: 0.011,
            errors: vec![],
        };
        let (lines, ok) = perf_verdict(&good, 150);
        assert!(ok);
        assert_eq!(
            lines,
            [
                "PASS: Throughput is 150 writes/s",
                "PASS: Slowest request took 0.087500s",
                "PASS: Stddev is 0.011000s",
                "PASS"
            ]
        );
        let bad = Stats {
            requests_per_sec: 6490.5,
            slowest: 0.786915,
            stddev: 0.2,
            errors: vec![("etcdserver: request timed out".to_owned(), 3)],
        };
        let (lines, ok) = perf_verdict(&bad, 8000);
        assert!(!ok);
        assert_eq!(
            lines,
            [
                "FAIL: too many errors",
                "FAIL: ERROR(etcdserver: request timed out) -> 3",
                "FAIL: Throughput too low: 6491 writes/s",
                "Slowest request took too long: 0.786915s",
                "Stddev too high: 0.200000s",
                "FAIL"
            ]
        );
    }

    #[test]
    fn stats_are_rate_max_and_population_stddev() {
        let s = Stats::of(&[0.1, 0.3], vec![], Duration::from_secs(2));
        assert!((s.requests_per_sec - 1.0).abs() < 1e-9);
        assert!((s.slowest - 0.3).abs() < 1e-9);
        assert!((s.stddev - 0.1).abs() < 1e-9);
    }

    #[test]
    fn keys_are_the_prefix_and_a_varint_in_fixed_size() {
        let k = random_key("/p/", 512);
        assert_eq!(k.len(), 3 + 512);
        assert!(k.starts_with(b"/p/"));
        // A varint of a value below 2^63 ends within 10 bytes; the rest is zeros.
        assert!(k[3 + 10..].iter().all(|&b| b == 0));
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(
            dechunk("5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"),
            "hello, world"
        );
        assert_eq!(dechunk(""), "");
    }
}
