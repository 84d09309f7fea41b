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
