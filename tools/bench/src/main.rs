//! `revkv-bench`: an end-to-end load generator speaking etcd's v3 gRPC API, modelled
//! on etcd's `tools/benchmark`, so the same command measures revkv and real etcd.
//!
//! Every subcommand is bounded by `--total` and stops by itself. While it runs, a
//! progress bar is drawn on stderr; at the end it prints etcd's summary (or, with
//! `--json`, one JSON object on stdout). It exits non-zero when an endpoint cannot be
//! reached or when not a single request succeeded.

mod conn;
mod keys;
mod lease;
mod mixed;
mod put;
mod range;
mod report;
mod rpc;
mod runner;
mod txn_put;
mod watch;
mod watch_latency;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::report::Report;
use crate::rpc::Rpc;

#[derive(Parser, Debug)]
#[command(
    name = "revkv-bench",
    version,
    about = "Load generator for etcd v3 API servers (revkv, etcd)"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags every subcommand takes (before or after the subcommand name).
#[derive(Args, Debug, Clone)]
struct Global {
    /// Comma-separated gRPC endpoints (`host:port` or `http://host:port`).
    #[arg(long, global = true, default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// Number of gRPC connections, spread over the endpoints.
    #[arg(long, global = true, default_value_t = 1)]
    conns: usize,
    /// Number of concurrent requesters, sharing the connections.
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Put keys.
    Put(put::PutArgs),
    /// Range over a key or a key range.
    Range(range::RangeArgs),
    /// Transactions of puts.
    TxnPut(txn_put::TxnPutArgs),
    /// Renew one lease over keep-alive streams.
    LeaseKeepalive(lease::LeaseArgs),
    /// Latency from a put to its watch events.
    WatchLatency(watch_latency::WatchLatencyArgs),
    /// Many watchers over many streams: creation time, event latency, server RSS.
    Watch(watch::WatchArgs),
    /// Reads and puts mixed over one key space.
    Mixed(mixed::MixedArgs),
}

/// What a run measured: one report, or several named ones plus named figures.
enum Outcome {
    One(Report),
    Named(Vec<(&'static str, Report)>, Vec<(&'static str, f64)>),
}

impl Outcome {
    fn reports(&self) -> Vec<&Report> {
        match self {
            Outcome::One(r) => vec![r],
            Outcome::Named(v, _) => v.iter().map(|(_, r)| r).collect(),
        }
    }
}

fn command_name(cmd: &Cmd) -> &'static str {
    match cmd {
        Cmd::Put(_) => "put",
        Cmd::Range(_) => "range",
        Cmd::TxnPut(_) => "txn-put",
        Cmd::LeaseKeepalive(_) => "lease-keepalive",
        Cmd::WatchLatency(_) => "watch-latency",
        Cmd::Watch(_) => "watch",
        Cmd::Mixed(_) => "mixed",
    }
}

async fn execute(cli: Cli) -> Result<Outcome> {
    let g = &cli.global;
    let endpoints = conn::parse_endpoints(&g.endpoints)?;
    // Plans first: a flag mistake is reported before any connection is made.
    let outcome = match cli.cmd {
        Cmd::Put(a) => {
            let plan = put::plan(&a, g.clients)?;
            Outcome::One(put::run(plan, connect(&endpoints, g.conns, false).await?).await?)
        }
        Cmd::Range(a) => {
            let plan = range::plan(&a, g.clients)?;
            Outcome::One(range::run(plan, connect(&endpoints, g.conns, false).await?).await?)
        }
        Cmd::TxnPut(a) => {
            let plan = txn_put::plan(&a, g.clients)?;
            Outcome::One(txn_put::run(plan, connect(&endpoints, g.conns, false).await?).await?)
        }
        Cmd::LeaseKeepalive(a) => {
            let plan = lease::plan(&a, g.clients)?;
            Outcome::One(lease::run(plan, connect(&endpoints, g.conns, true).await?).await?)
        }
        Cmd::WatchLatency(a) => {
            let plan = watch_latency::plan(&a)?;
            let (puts, watches) =
                watch_latency::run(plan, connect(&endpoints, g.conns, true).await?).await?;
            Outcome::Named(vec![("put", puts), ("watch", watches)], Vec::new())
        }
        Cmd::Watch(a) => {
            let plan = watch::plan(&a)?;
            let o = watch::run(plan, connect(&endpoints, g.conns, true).await?).await?;
            let figures = o
                .rss_per_watcher
                .map(|b| vec![("server_rss_bytes_per_watcher", b)])
                .unwrap_or_default();
            Outcome::Named(
                vec![("create", o.create), ("put", o.puts), ("watch", o.events)],
                figures,
            )
        }
        Cmd::Mixed(a) => {
            let plan = mixed::plan(&a, g.clients)?;
            let (all, reads, writes) =
                mixed::run(plan, connect(&endpoints, g.conns, false).await?).await?;
            Outcome::Named(
                vec![("all", all), ("read", reads), ("write", writes)],
                Vec::new(),
            )
        }
    };
    Ok(outcome)
}

/// `conns` clients (and, for the streaming workloads, `conns` raw connections).
async fn connect(endpoints: &[String], conns: usize, streaming: bool) -> Result<Rpc> {
    let clients = conn::clients(endpoints, conns).await?;
    let channels = if streaming {
        conn::dial(endpoints, conns).await?
    } else {
        Vec::new()
    };
    Ok(Rpc::new(clients, channels))
}

/// The `--json` document: the report's fields plus the command (and, for several
/// reports, one object per report under its name).
fn to_json(command: &str, outcome: &Outcome) -> Value {
    match outcome {
        Outcome::One(r) => {
            let mut v = r.to_json();
            if let Some(m) = v.as_object_mut() {
                m.insert("command".to_owned(), json!(command));
            }
            v
        }
        Outcome::Named(named, figures) => {
            let mut m = serde_json::Map::new();
            m.insert("command".to_owned(), json!(command));
            for (name, r) in named {
                m.insert((*name).to_owned(), r.to_json());
            }
            for (name, v) in figures {
                m.insert((*name).to_owned(), json!(v));
            }
            Value::Object(m)
        }
    }
}

fn to_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::One(r) => r.to_text(),
        Outcome::Named(named, figures) => {
            let mut out: String = named
                .iter()
                .map(|(name, r)| format!("\n{name} latency:{}", r.to_text()))
                .collect();
            for (name, v) in figures {
                out.push_str(&format!("\n{name}: {v:.0}\n"));
            }
            out
        }
    }
}

/// The same allocator as the server: the load generator shares the machine with the
/// system it measures, and CPU it spends in glibc's malloc is CPU neither server gets.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = command_name(&cli.cmd);
    let json_out = cli.global.json;
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("revkv-bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match rt.block_on(execute(cli)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("revkv-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if json_out {
        println!("{}", to_json(command, &outcome));
    } else {
        print!("{}", to_text(&outcome));
    }
    let attempted = outcome
        .reports()
        .iter()
        .any(|r| r.successes() + r.failures() > 0);
    let none_ok = outcome.reports().iter().all(|r| r.successes() == 0);
    if attempted && none_ok {
        eprintln!("revkv-bench: no request succeeded");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let a =
            Cli::try_parse_from(["revkv-bench", "--clients", "4", "put", "--json"]).expect("parse");
        assert_eq!(a.global.clients, 4);
        assert!(a.global.json);
        assert_eq!(a.global.endpoints, "127.0.0.1:2379");
        assert_eq!(a.global.conns, 1);
        let b = Cli::try_parse_from([
            "revkv-bench",
            "range",
            "k",
            "--endpoints",
            "a:1,b:2",
            "--conns",
            "16",
        ])
        .expect("parse");
        assert_eq!(b.global.endpoints, "a:1,b:2");
        assert_eq!(b.global.conns, 16);
        assert_eq!(command_name(&b.cmd), "range");
    }

    #[test]
    fn subcommand_names_are_etcds() {
        for name in [
            "put",
            "txn-put",
            "lease-keepalive",
            "watch-latency",
            "watch",
            "mixed",
        ] {
            let cli = Cli::try_parse_from(["revkv-bench", name]).expect(name);
            assert_eq!(command_name(&cli.cmd), name);
        }
        Cli::command_for_test();
    }

    impl Cli {
        /// clap's own consistency checks on the whole command tree.
        fn command_for_test() {
            use clap::CommandFactory;
            Cli::command().debug_assert();
        }
    }

    #[test]
    fn json_of_one_report_is_flat_with_the_command() {
        let v = to_json("put", &Outcome::One(Report::default()));
        assert_eq!(v["command"], "put");
        assert_eq!(v["successes"], 0);
        let v = to_json(
            "watch-latency",
            &Outcome::Named(
                vec![("put", Report::default()), ("watch", Report::default())],
                vec![("server_rss_bytes_per_watcher", 300.0)],
            ),
        );
        assert_eq!(v["put"]["failures"], 0);
        assert!(v["watch"].is_object());
        assert_eq!(v["server_rss_bytes_per_watcher"], 300.0);
    }
}
