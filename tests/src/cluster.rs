//! Spawning a multi-member cluster of etcd or revkv processes (per [`target()`]) on
//! free loopback ports, each member with its own temporary data directory.
//!
//! Both implementations get the same etcd flags, so a cluster test states etcd's
//! behaviour and checks revkv against it.

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::server::{free_port, http_get, revkv_bin, ETCD_BIN};
use crate::{target, Etcdctl, Target};

/// How long a whole cluster may take to report healthy.
pub const CLUSTER_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// One member process of a [`TestCluster`].
pub struct ClusterMember {
    target: Target,
    name: String,
    client_port: u16,
    peer_port: u16,
    /// The member's directory: `data/` and `server.log` live inside.
    dir: PathBuf,
    token: String,
    initial_cluster: String,
    /// `new` for the members started together, `existing` for one that joins later.
    initial_cluster_state: String,
    extra_args: Vec<String>,
    /// `http` or `https` (peer TLS).
    peer_scheme: &'static str,
    child: Option<Child>,
}

/// What `etcdctl endpoint status -w json` reports for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    pub cluster_id: u64,
    pub member_id: u64,
    /// 0 when the member knows no leader.
    pub leader: u64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    pub revision: i64,
}

impl ClusterMember {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `127.0.0.1:<client port>`, as passed to `etcdctl --endpoints`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port)
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Sets the `--initial-cluster` used from the next start on (a joining member takes
    /// the one `etcdctl member add` prints).
    pub fn set_initial_cluster(&mut self, initial_cluster: &str) {
        self.initial_cluster = initial_cluster.to_owned();
    }

    /// Waits (bounded) for the process to exit on its own and reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The member's stdout and stderr, appended across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn etcdctl(&self) -> Etcdctl {
        Etcdctl::new(self.endpoint())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// `GET /health` says healthy (a leader and a quorum read).
    pub fn is_healthy(&self) -> bool {
        let addr: SocketAddr = ([127, 0, 0, 1], self.client_port).into();
        http_get(addr, "/health")
            .map(|(code, body)| code == 200 && body.contains("\"health\":\"true\""))
            .unwrap_or(false)
    }

    /// The member's view of the cluster, or `None` if it does not answer.
    pub fn status(&self) -> Option<MemberStatus> {
        let out = self.etcdctl().run(
            &[
                "endpoint",
                "status",
                "-w",
                "json",
                "--dial-timeout=1s",
                "--command-timeout=2s",
            ],
            None,
        );
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).ok()?;
        let s = v.get(0)?.get("Status")?;
        let u = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_u64).unwrap_or(0);
        let header = s.get("header");
        Some(MemberStatus {
            cluster_id: u(header.and_then(|h| h.get("cluster_id"))),
            member_id: u(header.and_then(|h| h.get("member_id"))),
            revision: u(header.and_then(|h| h.get("revision"))) as i64,
            leader: u(s.get("leader")),
            raft_term: u(s.get("raftTerm")),
            raft_index: u(s.get("raftIndex")),
            raft_applied_index: u(s.get("raftAppliedIndex")),
        })
    }

    /// SIGKILL the process and reap it.
    ///
    /// # Panics
    /// If the member is not running.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: member is not running");
        let _ = child.kill();
        child.wait().expect("wait for killed member");
    }

    /// Starts the process with the member's flags (it must not be running). Does not
    /// wait for health: a member alone has no quorum.
    ///
    /// # Panics
    /// If the process cannot be spawned.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "member {} already running", self.name);
        std::fs::create_dir_all(&self.dir).expect("create member dir");
        let log: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open member log");
        let log2 = log.try_clone().expect("clone log fd");
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        self.child = Some(child);
    }

    /// SIGSTOP the process: it keeps its sockets but answers nothing, like a member
    /// cut off from the network.
    ///
    /// # Panics
    /// If the member is not running or the signal cannot be sent.
    pub fn pause(&self) {
        self.signal("-STOP");
        // `kill` returns once the signal is queued, not once every thread has stopped:
        // wait for the stopped state, so that nothing sent from here on is answered.
        let pid = self.child.as_ref().expect("member is not running").id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "member {} did not stop",
                self.name
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGCONT a paused process.
    ///
    /// # Panics
    /// If the member is not running or the signal cannot be sent.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("member is not running");
        crate::signal(child, sig);
    }

    /// SIGTERM the process and wait (bounded) for it to exit cleanly.
    ///
    /// # Panics
    /// If the member is not running, or does not exit within 20 s (it is then
    /// SIGKILLed).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("stop: member is not running");
        crate::signal(&child, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "member {} did not exit within 20s of SIGTERM\n--- log tail ---\n{}",
                    self.name,
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts a stopped (e.g. killed) member with its data dir and flags and waits
    /// until it is healthy.
    ///
    /// # Panics
    /// If it does not become healthy within [`CLUSTER_HEALTH_TIMEOUT`].
    pub fn restart(&mut self) {
        self.spawn();
        let deadline = Instant::now() + CLUSTER_HEALTH_TIMEOUT;
        while !self.is_healthy() {
            if !self.is_running() || Instant::now() > deadline {
                panic!(
                    "member {} not healthy after restart\n--- log tail ---\n{}",
                    self.name,
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Changes the `--initial-cluster-token` used from the next start on.
    pub fn set_token(&mut self, token: &str) {
        self.token = token.to_owned();
    }

    /// Deletes the (stopped) member's data dir: its next start is a first start.
    ///
    /// # Panics
    /// If the member is running.
    pub fn wipe_data(&mut self) {
        assert!(self.child.is_none(), "stop member {} first", self.name);
        let _ = std::fs::remove_dir_all(self.data_dir());
    }

    fn command(&self) -> Command {
        let bin: PathBuf = match self.target {
            Target::Etcd => PathBuf::from(ETCD_BIN),
            Target::Revkv => revkv_bin(),
        };
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = self.peer_url();
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg(&self.name)
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
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--initial-cluster-state")
            .arg(&self.initial_cluster_state)
            .args(&self.extra_args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        cmd
    }
}

impl Drop for ClusterMember {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// N members started together with one `--initial-cluster`. Dropping it kills every
/// member and removes the data.
pub struct TestCluster {
    members: Vec<ClusterMember>,
    /// Extra flags every member gets, including members added later.
    args: Vec<String>,
    peer_scheme: &'static str,
    /// Declared last: removed after the members are killed.
    _dir: TempDir,
}

impl TestCluster {
    /// Starts `n` members and waits until every one is healthy.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, &[])
    }

    /// Like [`TestCluster::start`] with extra flags for every member.
    ///
    /// A start that fails because a member exited (say a port was taken between
    /// [`free_port`] and the bind) is retried on fresh ports.
    ///
    /// # Panics
    /// If the cluster cannot be started; the message has every member's log tail.
    pub fn start_with(n: usize, args: &[&str]) -> Self {
        Self::start_scheme(n, args, "http")
    }

    /// Like [`TestCluster::start_with`] on `https://` peer URLs; `args` must carry the
    /// peer TLS flags (`--peer-cert-file`, … or `--peer-auto-tls`).
    pub fn start_peer_tls(n: usize, args: &[&str]) -> Self {
        Self::start_scheme(n, args, "https")
    }

    fn start_scheme(n: usize, args: &[&str], peer_scheme: &'static str) -> Self {
        let mut failure = String::new();
        for _attempt in 0..3 {
            let mut cluster = Self::spawn(n, args, peer_scheme);
            match cluster.wait_healthy() {
                Ok(()) => return cluster,
                Err(e) => failure = e,
            }
        }
        panic!("could not start a {n}-member cluster: {failure}");
    }

    fn spawn(n: usize, args: &[&str], peer_scheme: &'static str) -> Self {
        let target = target();
        let dir = tempfile::Builder::new()
            .prefix("revkv-cluster-")
            .tempdir()
            .expect("create temp dir");
        let token = "revkv-test-cluster".to_owned();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}={peer_scheme}://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<ClusterMember> = ports
            .iter()
            .enumerate()
            .map(|(i, &(client_port, peer_port))| ClusterMember {
                target,
                name: format!("m{i}"),
                client_port,
                peer_port,
                dir: dir.path().join(format!("m{i}")),
                token: token.clone(),
                initial_cluster: initial_cluster.clone(),
                initial_cluster_state: "new".to_owned(),
                extra_args: args.iter().map(|s| (*s).to_owned()).collect(),
                peer_scheme,
                child: None,
            })
            .collect();
        for m in &mut members {
            m.spawn();
        }
        TestCluster {
            members,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            peer_scheme,
            _dir: dir,
        }
    }

    /// A new member on fresh ports, not started and not yet known to the cluster: add
    /// it with `etcdctl member add` (which prints the `--initial-cluster` to give it,
    /// see [`ClusterMember::set_initial_cluster`]), then [`ClusterMember::spawn`] it; it
    /// starts with `--initial-cluster-state existing`. Returns its index.
    pub fn prepare_member(&mut self, name: &str) -> usize {
        let first = self.members.first().expect("a cluster has members");
        let (target, token) = (first.target, first.token.clone());
        let dir = first
            .dir
            .parent()
            .expect("member dirs live in the cluster dir")
            .join(name);
        let peer_port = free_port();
        let mut initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        initial.push(format!(
            "{name}={}://127.0.0.1:{peer_port}",
            self.peer_scheme
        ));
        self.members.push(ClusterMember {
            target,
            name: name.to_owned(),
            client_port: free_port(),
            peer_port,
            dir,
            token,
            initial_cluster: initial.join(","),
            initial_cluster_state: "existing".to_owned(),
            extra_args: self.args.clone(),
            peer_scheme: self.peer_scheme,
            child: None,
        });
        self.members.len() - 1
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + CLUSTER_HEALTH_TIMEOUT;
        loop {
            let mut all = true;
            for m in &mut self.members {
                if !m.is_running() {
                    return Err(format!(
                        "member {} exited\n--- log tail ---\n{}",
                        m.name,
                        m.log_tail(40)
                    ));
                }
                all &= m.is_healthy();
            }
            if all {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not healthy within {CLUSTER_HEALTH_TIMEOUT:?}\n{}",
                    self.log_tails(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member(&self, i: usize) -> &ClusterMember {
        &self.members[i]
    }

    pub fn member_mut(&mut self, i: usize) -> &mut ClusterMember {
        &mut self.members[i]
    }

    /// Every member's endpoint, comma-separated (etcdctl fails over among them).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(ClusterMember::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// An etcdctl runner with every member as an endpoint.
    pub fn etcdctl(&self) -> Etcdctl {
        Etcdctl::new(self.endpoints())
    }

    /// The index of the member that says it is the leader, if one does.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            m.child.is_some()
                && m.status()
                    .is_some_and(|s| s.leader != 0 && s.leader == s.member_id)
        })
    }

    /// Waits until some running member leads, other than `not` if given.
    ///
    /// # Panics
    /// If none does within `timeout`.
    pub fn wait_leader(&self, not: Option<usize>, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            match self.leader() {
                Some(i) if Some(i) != not => return i,
                _ => {}
            }
            if Instant::now() > deadline {
                panic!("no leader within {timeout:?}\n{}", self.log_tails(30));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every member's log tail, labelled, for failure messages.
    pub fn log_tails(&self, n: usize) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} log tail ---\n{}", m.name, m.log_tail(n)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Serialises cluster tests within one test binary: three-process clusters on a small
/// machine starve each other's elections of CPU.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The value of `key` read through `ctl` (`None` if absent), linearizable or not.
///
/// # Panics
/// If etcdctl fails.
#[track_caller]
pub fn get(ctl: &Etcdctl, key: &str, serializable: bool) -> Option<String> {
    let mut args = vec!["get", key, "--print-value-only"];
    if serializable {
        args.push("--consistency=s");
    }
    let out = ctl.ok(&args);
    let v = out.trim_end_matches('\n');
    (!v.is_empty()).then(|| v.to_owned())
}

/// Polls until `pred` holds.
///
/// # Panics
/// With `what` after `timeout`.
#[track_caller]
pub fn eventually(timeout: Duration, what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// All `prefix` keys and values as the member(s) behind `ctl` see them.
///
/// # Panics
/// If etcdctl fails or prints something other than etcd's JSON.
pub fn dump(
    ctl: &Etcdctl,
    prefix: &str,
    serializable: bool,
) -> std::collections::BTreeMap<String, String> {
    let mut args = vec!["get", prefix, "--prefix", "-w", "json"];
    if serializable {
        args.push("--consistency=s");
    }
    let v = crate::json(&ctl.ok(&args));
    v.get("kvs")
        .and_then(|k| k.as_array())
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    let s = |f: &str| {
                        String::from_utf8(crate::unb64(
                            kv.get(f).and_then(|x| x.as_str()).unwrap_or_default(),
                        ))
                        .expect("utf8")
                    };
                    (s("key"), s("value"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every thread of process `pid` is in the stopped state (`T` in its
/// `/proc/PID/task/TID/stat`).
fn is_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| {
                // The state follows the command name, which is in parentheses.
                let rest = stat.rsplit_once(')')?.1;
                rest.split_whitespace().next().map(|state| state == "T")
            })
            .unwrap_or(false)
    })
}
