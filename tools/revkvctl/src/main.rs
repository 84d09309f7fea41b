//! `revkvctl`: etcdctl 3.4's commands, flags, output formats and exit codes, for
//! revkv and etcd alike.
//!
//! Flow: resolve the command words → parse its flags (pflag grammar) → the
//! command's pure `build` → connect → send → print with the `-w` printer. Every
//! failure ends in [`finish`], which prints `Error: …` and exits with etcdctl's code.

mod argify;
mod command;
mod conn;
mod exit;
mod flags;
mod global;
mod gofmt;
mod printer;
mod prompt;
mod rpctypes;
mod usage;

use std::io::Write;

use command::{Ctx, Resolved};
use exit::{CtlError, CtlResult, ERROR, SUCCESS};

/// Prints the outcome and exits the process with etcdctl's code.
pub fn finish(res: CtlResult) -> ! {
    let _ = std::io::stdout().flush();
    let code = match res {
        Ok(()) => SUCCESS,
        Err(e) => {
            if let Some(m) = &e.message {
                let mut se = std::io::stderr().lock();
                let _ = writeln!(se, "Error: {m}");
                let _ = se.flush();
            }
            e.code
        }
    };
    std::process::exit(code)
}

fn init_tracing(args: &[String]) {
    // Client-side logs only when asked for (`--debug` or RUST_LOG), on stderr.
    let debug = args.iter().any(|a| a == "--debug" || a == "--debug=true");
    let filter = if debug {
        tracing_subscriber::EnvFilter::new("debug")
    } else {
        match tracing_subscriber::EnvFilter::try_from_default_env() {
            Ok(f) => f,
            Err(_) => return,
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Where the first word that is not a flag (nor a global flag's value) is.
fn first_word(args: &[String]) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return None;
        }
        if !a.starts_with('-') || a.len() == 1 {
            return Some(i);
        }
        i += if flags::takes_value(global::SPECS, a) {
            2
        } else {
            1
        };
    }
    None
}

async fn run(args: Vec<String>, env: Vec<(String, String)>) -> CtlResult {
    // cobra's `help [command]`: `help` as the first word, global flags around it.
    if let Some(at) = first_word(&args).filter(|&i| args[i] == "help") {
        let mut rest = args.clone();
        rest.remove(at);
        let text = match command::resolve(&rest) {
            Resolved::Run(cmd, _) => usage::command_help(cmd),
            Resolved::Group(path) => usage::group_help(&path),
            Resolved::Unknown(word, path) => return Err(usage::unknown_command(&word, &path)),
        };
        command::out(text.as_bytes());
        return Ok(());
    }
    let (cmd, rest) = match command::resolve(&args) {
        Resolved::Run(cmd, rest) => (cmd, rest),
        Resolved::Unknown(word, path) => return Err(usage::unknown_command(&word, &path)),
        Resolved::Group(path) => {
            command::out(usage::group_help(&path).as_bytes());
            return Ok(());
        }
    };
    let mut specs: Vec<flags::Spec> = cmd.specs.to_vec();
    specs.push(command::HELP.short('h'));
    specs.extend_from_slice(global::SPECS);
    let parsed = match flags::parse(&specs, &rest) {
        Ok(p) => p,
        Err(e) => return Err(usage::flag_error(cmd, &e)),
    };
    if parsed.bool(&specs, "help") {
        command::out(usage::command_help(cmd).as_bytes());
        return Ok(());
    }
    let ctx = Ctx {
        parsed,
        env,
        specs: cmd.specs,
    };
    command::run(cmd, ctx).await
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    init_tracing(&args);
    let env: Vec<(String, String)> = std::env::vars().collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => finish(Err(CtlError::new(ERROR, e.to_string()))),
    };
    let res = rt.block_on(run(args, env));
    finish(res)
}
