//! Spawning a single-member etcd or revkv process for one test.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{target, Etcdctl, Target};

/// Path of the real etcd binary.
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// Environment variable overriding the revkv binary location.
pub const REVKV_BIN_ENV: &str = "REVKV_BIN";
/// How long a server may take to report healthy.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Ports handed out by this process, so that concurrently running tests in
/// one binary never get the same port twice.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A currently free TCP port on 127.0.0.1 (bind to port 0, read it, drop).
///
/// Never returns the same port twice within one test process.
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0 to find a free port");
        let mut seen = handed_out()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.insert(port) {
            return port;
        }
    }
}

/// Environment variable overriding the revkv-bench binary location.
pub const REVKV_BENCH_BIN_ENV: &str = "REVKV_BENCH_BIN";

/// Locates the revkv binary: `$REVKV_BIN`, else `<profile dir>/revkv` next to
/// the running test executable (`target/debug/deps/x` → `target/debug/revkv`).
///
/// # Panics
/// If the binary does not exist.
pub fn revkv_bin() -> PathBuf {
    workspace_bin("revkv", REVKV_BIN_ENV, "-p revkv-server --bin revkv")
}

/// Locates the load generator: `$REVKV_BENCH_BIN`, else `<profile dir>/revkv-bench`
/// next to the running test executable.
///
/// # Panics
/// If the binary does not exist.
pub fn revkv_bench_bin() -> PathBuf {
    workspace_bin("revkv-bench", REVKV_BENCH_BIN_ENV, "-p revkv-bench")
}

/// A binary of this workspace: `$env` if set, else `name` in the profile directory
/// of the running test executable. Test executables of another package cannot use
/// `CARGO_BIN_EXE_*`, so they look where cargo puts every binary of the workspace.
pub(crate) fn workspace_bin(name: &str, env: &str, build: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env}={} does not exist; build it first: cargo build {build}",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut candidates = Vec::new();
    // `<profile>/deps/<test exe>`: look in `deps/..` first, then `deps/`.
    for dir in exe
        .ancestors()
        .skip(1)
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let c = dir.join(name);
        if c.is_file() {
            return c;
        }
        candidates.push(c);
    }
    panic!(
        "{name} binary not found (looked at {candidates:?}; set {env} to override); \
         build it first: cargo build {build}"
    );
}

/// Why waiting for health failed.
enum WaitError {
    Exited(ExitStatus),
    Timeout,
}

/// One server process (etcd or revkv, per [`target()`]) with its own data
/// directory and ports. Dropping it kills the process.
pub struct TestServer {
    target: Target,
    /// Removed when the server is dropped (after `Drop::drop` killed the child).
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    extra_args: Vec<String>,
    /// A second client port served over TLS (`https://`), if asked for; the plain one
    /// stays for the harness's health checks.
    tls_port: Option<u16>,
    child: Option<Child>,
}

impl TestServer {
    /// Starts a server with default flags and waits until healthy.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra command-line flags (appended after the
    /// standard ones) and waits until healthy.
    ///
    /// If the process exits before becoming healthy (e.g. a port was grabbed
    /// by someone else between [`free_port`] and the bind) it is retried with
    /// fresh ports a couple of times.
    ///
    /// # Panics
    /// If the server cannot be started; the message contains the log tail.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_inner(args, false)
    }

    /// Like [`TestServer::start_with`], with a second client URL,
    /// `https://127.0.0.1:<tls port>` ([`TestServer::tls_endpoint`]); `args` must carry
    /// the TLS flags (`--cert-file`, `--key-file`, …).
    pub fn start_tls(args: &[&str]) -> Self {
        Self::start_inner(args, true)
    }

    fn start_inner(args: &[&str], tls: bool) -> Self {
        let target = target();
        let extra_args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let mut last_failure = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("revkv-test-")
                .tempdir()
                .expect("create temp dir");
            let mut server = TestServer {
                target,
                dir,
                client_port: free_port(),
                peer_port: free_port(),
                extra_args: extra_args.clone(),
                tls_port: tls.then(free_port),
                child: None,
            };
            server.spawn();
            match server.wait_healthy() {
                Ok(()) => return server,
                Err(WaitError::Exited(status)) => {
                    last_failure = format!(
                        "{target:?} exited with {status} before becoming healthy\n--- log tail ---\n{}",
                        server.log_tail(60)
                    );
                    server.child = None;
                }
                Err(WaitError::Timeout) => server.panic_unhealthy("start"),
            }
        }
        panic!("could not start server after 3 attempts: {last_failure}");
    }

    /// The implementation under test.
    pub fn target(&self) -> Target {
        self.target
    }

    /// `127.0.0.1:<client port>`, as passed to `etcdctl --endpoints`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `https://127.0.0.1:<tls port>` of a server started with [`TestServer::start_tls`].
    ///
    /// # Panics
    /// If the server has no TLS port.
    pub fn tls_endpoint(&self) -> String {
        let port = self.tls_port.expect("started without a TLS port");
        format!("https://127.0.0.1:{port}")
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.endpoint())
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The peer port.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The `--data-dir` passed to the server.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file receiving the server's stdout and stderr (appended across
    /// restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The whole server log so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's resident memory (`VmRSS` from `/proc`), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kib * 1024)
    }

    /// An `etcdctl` runner pointed at this server.
    pub fn etcdctl(&self) -> Etcdctl {
        Etcdctl::new(self.endpoint())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// SIGKILL the process and reap it.
    ///
    /// # Panics
    /// If the server is not running.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: server is not running");
        // std's Child::kill sends SIGKILL on Unix.
        let _ = child.kill();
        child.wait().expect("wait for killed server");
    }

    /// SIGTERM the process and wait (bounded) for it to exit.
    ///
    /// # Panics
    /// If the server is not running or does not exit within 20 s (it is then
    /// SIGKILLed).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("stop: server is not running");
        crate::signal(&child, "-TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not exit within {STOP_TIMEOUT:?} of SIGTERM\n--- log tail ---\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again with the same data dir, ports and flags and
    /// waits until healthy. A running process is stopped (SIGTERM) first.
    ///
    /// # Panics
    /// If the server does not become healthy.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
        if self.wait_healthy().is_err() {
            self.panic_unhealthy("restart");
        }
    }

    /// Like [`TestServer::restart`], but waits only until `/health` answers at all
    /// (healthy or not): a member with an active alarm reports itself unhealthy.
    ///
    /// # Panics
    /// If the server exits or does not answer within the health timeout.
    pub fn restart_answering(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let addr: SocketAddr = ([127, 0, 0, 1], self.client_port).into();
        while http_get(addr, "/health").is_err() {
            if Instant::now() > deadline || !self.is_running() {
                self.panic_unhealthy("restart");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn command(&self) -> Command {
        let bin: PathBuf = match self.target {
            Target::Etcd => PathBuf::from(ETCD_BIN),
            Target::Revkv => revkv_bin(),
        };
        let mut client = format!("http://127.0.0.1:{}", self.client_port);
        if let Some(port) = self.tls_port {
            client.push_str(&format!(",https://127.0.0.1:{port}"));
        }
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg("default")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("default={peer}"))
            .args(&self.extra_args);
        // Keep the environment from leaking configuration into the server.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let log: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let log2 = log.try_clone().expect("clone log fd");
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        self.child = Some(child);
    }

    fn wait_healthy(&mut self) -> Result<(), WaitError> {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let addr: SocketAddr = ([127, 0, 0, 1], self.client_port).into();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(WaitError::Exited(status));
                }
            }
            if health_ok(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(WaitError::Timeout);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn panic_unhealthy(&mut self, what: &str) -> ! {
        let status = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(s))) => format!("exited with {s}"),
            Some(_) => "still running".to_owned(),
            None => "not running".to_owned(),
        };
        panic!(
            "{what}: {:?} server on {} not healthy within {HEALTH_TIMEOUT:?} ({status}); data dir {}\n--- log tail ---\n{}",
            self.target,
            self.endpoint(),
            self.data_dir().display(),
            self.log_tail(60)
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `GET /health` answered `200` with a body containing `"health":"true"`.
fn health_ok(addr: SocketAddr) -> bool {
    http_get(addr, "/health")
        .map(|(status, body)| status == 200 && body.contains("\"health\":\"true\""))
        .unwrap_or(false)
}

/// A minimal HTTP/1.1 GET returning (status code, raw body text).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let timeout = Duration::from_secs(1);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// An HTTP/1.1 answer: status, headers (names lower-cased) and body (de-chunked).
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 request with `body` and extra `headers`. The answer is read until
/// the server closes the connection or `wait` passes (a streaming answer is cut there).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    wait: Duration,
) -> std::io::Result<HttpAnswer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n{body}")?;
    let deadline = std::time::Instant::now() + wait;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, raw_body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(raw_body)
    } else {
        raw_body.to_owned()
    };
    Ok(HttpAnswer {
        status,
        headers,
        body,
    })
}

/// The data of a chunked body (trailers and a cut-off last chunk dropped).
fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        raw = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The flags of a single-member server with its data in `data_dir` and clients on
/// `client_port` (the peer port is a free one), the same for revkv and etcd.
pub fn single_member_flags(data_dir: &str, client_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    [
        "--name",
        "default",
        "--data-dir",
        data_dir,
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        &format!("--initial-cluster=default={peer_url}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the target's server binary with `args` and waits for it to exit, as a server
/// that refuses to start does.
///
/// # Panics
/// If it is still running after `limit` (it is killed first).
pub fn run_until_exit(args: &[String], limit: Duration) -> std::process::Output {
    let bin = match crate::target() {
        crate::Target::Revkv => revkv_bin(),
        crate::Target::Etcd => "/usr/bin/etcd".into(),
    };
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("ETCD_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server with {args:?} was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("server output")
}
