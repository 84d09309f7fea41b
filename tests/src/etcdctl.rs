//! Running the stock `etcdctl` (API v3) against a test server.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

/// Default etcdctl binary.
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";
/// Environment variable overriding the etcdctl binary.
pub const ETCDCTL_BIN_ENV: &str = "REVKV_ETCDCTL";

/// The stock etcdctl: `$REVKV_ETCDCTL`, or /usr/bin/etcdctl.
pub fn etcdctl_bin() -> PathBuf {
    std::env::var_os(ETCDCTL_BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ETCDCTL_BIN))
}

/// Result of one etcdctl invocation.
#[derive(Debug)]
pub struct CmdOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (lossily decoded).
    pub stdout: String,
    /// Standard error (lossily decoded).
    pub stderr: String,
}

/// Runs `etcdctl --endpoints=<endpoint> ...` with `ETCDCTL_API=3`.
#[derive(Debug, Clone)]
pub struct Etcdctl {
    bin: PathBuf,
    endpoint: String,
}

impl Etcdctl {
    /// A runner for `endpoint` (`host:port`).
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            bin: etcdctl_bin(),
            endpoint: endpoint.into(),
        }
    }

    /// The endpoint passed as `--endpoints`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs etcdctl with `args` and, if given, `stdin` piped in (otherwise
    /// stdin is /dev/null).
    ///
    /// # Panics
    /// If etcdctl cannot be spawned.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> CmdOutput {
        let mut child = ctl_command(&self.bin, &self.endpoint, args, stdin.is_some())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        // Feed stdin from a thread so a large input cannot deadlock against a
        // child that is writing output.
        let writer = stdin.map(|input| {
            let mut pipe = child.stdin.take().expect("piped stdin");
            let input = input.to_vec();
            std::thread::spawn(move || {
                // The child may exit (e.g. on an error) before reading it all.
                let _ = pipe.write_all(&input);
            })
        });
        let out = child.wait_with_output().expect("wait for etcdctl");
        if let Some(w) = writer {
            w.join().expect("stdin writer thread");
        }
        CmdOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs etcdctl, asserts it succeeded and returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.expect_ok(args, None)
    }

    /// Like [`Etcdctl::ok`] with `input` on stdin.
    #[track_caller]
    pub fn ok_stdin(&self, args: &[&str], input: impl AsRef<[u8]>) -> String {
        self.expect_ok(args, Some(input.as_ref()))
    }

    /// Runs etcdctl, asserts it failed and returns stderr.
    #[track_caller]
    pub fn fail(&self, args: &[&str]) -> String {
        self.expect_fail(args, None)
    }

    /// Like [`Etcdctl::fail`] with `input` on stdin.
    #[track_caller]
    pub fn fail_stdin(&self, args: &[&str], input: impl AsRef<[u8]>) -> String {
        self.expect_fail(args, Some(input.as_ref()))
    }

    /// Runs etcdctl, asserts it failed and returns its `Error: ...` line
    /// (see [`error_line`]).
    #[track_caller]
    pub fn fail_error(&self, args: &[&str]) -> String {
        error_line(&self.fail(args))
    }

    /// Runs etcdctl with `-w json` appended, asserts success and parses stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-w", "json"]);
        crate::json(&self.ok(&a))
    }

    /// Like [`Etcdctl::json`] with `input` on stdin.
    #[track_caller]
    pub fn json_stdin(&self, args: &[&str], input: impl AsRef<[u8]>) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-w", "json"]);
        crate::json(&self.ok_stdin(&a, input))
    }

    /// Current store revision (`header.revision` of `get` on a key).
    #[track_caller]
    pub fn revision(&self) -> i64 {
        crate::header_revision(&self.json(&["get", "revkv-tests/revision-probe"]))
    }

    /// `put key value -w json` and returns the revision it created.
    #[track_caller]
    pub fn put_rev(&self, key: &str, value: &str) -> i64 {
        crate::header_revision(&self.json(&["put", key, value]))
    }

    /// Puts 64 KiB values at `<prefix>000`, `<prefix>001`, … until one is refused and
    /// returns the refusal's `Error: ` line: the way to outgrow a small
    /// `--quota-backend-bytes`.
    ///
    /// # Panics
    /// If 100 such puts all succeed.
    #[track_caller]
    pub fn put_until_refused(&self, prefix: &str) -> String {
        let value = "x".repeat(64 * 1024);
        (0..100)
            .find_map(|i| {
                let out = self.run(&["put", &format!("{prefix}{i:03}"), &value], None);
                (!out.status.success()).then(|| error_line(&out.stderr))
            })
            .expect("some of 100 puts of 64 KiB refused")
    }

    #[track_caller]
    fn expect_ok(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed with {}\nstdout: {}\nstderr: {}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    #[track_caller]
    fn expect_fail(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "etcdctl {args:?} unexpectedly succeeded\nstdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
        out.stderr
    }
}

/// The last line of etcdctl's stderr that starts with `Error: ` (etcdctl 3.4
/// prints the gRPC status message that way, after a client-side retry
/// warning in JSON that is not part of the server's behaviour).
///
/// # Panics
/// If there is no such line.
#[track_caller]
pub fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no `Error: ` line in etcdctl stderr: {stderr:?}"))
        .to_owned()
}

/// `bin --endpoints=<endpoint> args…` with `ETCDCTL_API=3`, none of the caller's other
/// `ETCDCTL_*` variables (they would change the CLI's behaviour), piped output, and a
/// piped or closed stdin.
pub fn ctl_command(
    bin: &std::path::Path,
    endpoint: &str,
    args: &[&str],
    piped_stdin: bool,
) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(if piped_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// etcdctl's non-interactive `txn` input: compares, blank line, success ops, blank
/// line, failure ops, blank line.
pub fn txn_input(compares: &[&str], success: &[&str], failure: &[&str]) -> String {
    let mut s = String::new();
    for part in [compares, success, failure] {
        for line in part {
            s.push_str(line);
            s.push('\n');
        }
        s.push('\n');
    }
    s
}
