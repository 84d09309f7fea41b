//! Locating the `revkvctl` binary and running it (or stock etcdctl) for diff tests.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Environment variable overriding the revkvctl binary location.
pub const REVKVCTL_BIN_ENV: &str = "REVKVCTL_BIN";

/// Locates revkvctl: `$REVKVCTL_BIN`, else `<profile dir>/revkvctl` next to the
/// running test executable (where cargo puts every binary of the workspace).
///
/// # Panics
/// If the binary does not exist.
pub fn revkvctl_bin() -> PathBuf {
    crate::server::workspace_bin("revkvctl", REVKVCTL_BIN_ENV, "-p revkvctl")
}

/// What one CLI run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// `r` without etcdctl's client-side zap log lines on stderr (`{"level":…}`: they carry
/// timestamps and random client ids, and revkvctl logs nothing unless asked).
pub fn without_client_logs(r: Run) -> Run {
    Run {
        stderr: r
            .stderr
            .lines()
            .filter(|l| !l.starts_with("{\"level\":"))
            .map(|l| format!("{l}\n"))
            .collect(),
        ..r
    }
}

/// Runs `bin --endpoints=<endpoint> args…` with `ETCDCTL_API=3` and no other
/// `ETCDCTL_*` variables (plus `env`), feeding `stdin`; kills it after `limit`.
///
/// # Panics
/// If the binary cannot be spawned.
pub fn run_cli(
    bin: &std::path::Path,
    endpoint: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &str)],
    limit: Duration,
) -> Run {
    let mut cmd = crate::etcdctl::ctl_command(bin, endpoint, args, stdin.is_some());
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned(),
    }
}
