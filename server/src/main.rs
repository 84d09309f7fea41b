//! `revkv`: flags -> Config -> run.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = revkv_server::Config::parse();
    if cfg.version {
        println!("revkv Version: {}", env!("CARGO_PKG_VERSION"));
        println!("API version: 3.4");
        return std::process::ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},raft=warn", cfg.log_level))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for a log file or a Procfile runner.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Files the server creates (RocksDB's included) are private to its user: 0600.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("revkv: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(revkv_server::run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("revkv: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// jemalloc for the server's own (Rust) allocations; RocksDB keeps glibc's malloc.
/// Under 200-client puts glibc's allocator was ~15 % of server CPU, mostly outside its
/// per-thread caches (`_int_malloc`, `unlink_chunk`, `malloc_consolidate`): buffers are
/// allocated on one thread and freed on another. jemalloc cut server CPU per put by
/// 15-20 %. Its options (background purging, a 300 ms decay, and an eager arena for
/// allocations of 128 KiB or more, which keep the watch tables as dense as glibc
/// did) are compiled in from `.cargo/config.toml`; docs/BENCHMARKS.md has the figures.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
