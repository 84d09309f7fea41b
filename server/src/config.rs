//! Every flag of `revkv`, with etcd's names and defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// etcd's `--max-request-bytes` default: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// etcd's default backend quota when `--quota-backend-bytes` is 0: 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "revkv",
    about = "revkv: an etcd-compatible, revisioned key-value store on RocksDB, replicated with Raft",
    disable_version_flag = true
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,

    /// Path to the data directory [default: ${name}.revkv].
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,

    /// List of URLs to listen on for client traffic (gRPC and HTTP).
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    pub listen_client_urls: Vec<String>,

    /// List of this member's client URLs to advertise to the public.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    pub advertise_client_urls: Vec<String>,

    /// List of URLs to listen on for peer traffic.
    #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
    pub listen_peer_urls: Vec<String>,

    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
    pub initial_advertise_peer_urls: Vec<String>,

    /// Initial cluster configuration for bootstrapping [default: ${name}=${initial-advertise-peer-urls}].
    #[arg(long)]
    pub initial_cluster: Option<String>,

    /// Initial cluster token for the cluster during bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,

    /// Initial cluster state ('new' or 'existing').
    #[arg(long, default_value = "new", value_parser = ["new", "existing"])]
    pub initial_cluster_state: String,

    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strict_reconfig_check: bool,

    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,

    /// Maximum number of operations permitted in a transaction.
    #[arg(long, default_value_t = 128)]
    pub max_txn_ops: usize,

    /// Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).
    #[arg(long, default_value_t = 0)]
    pub quota_backend_bytes: u64,

    /// Interpret 'auto-compaction-retention' as 'periodic' (a duration) or 'revision'.
    #[arg(long, default_value = "periodic", value_parser = ["periodic", "revision"])]
    pub auto_compaction_mode: String,

    /// Auto compaction retention: 0 disables it; hours (or a duration like 30m) in
    /// periodic mode, a number of revisions in revision mode.
    #[arg(long, default_value = "0")]
    pub auto_compaction_retention: String,

    /// Number of committed transactions to trigger a snapshot (raft log compaction).
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_count: u64,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,

    /// Maximum number of keys one physical compaction batch removes.
    #[arg(long, default_value_t = 1000)]
    pub experimental_compaction_batch_limit: usize,

    /// Duration of periodic watch progress notifications (a Go duration, e.g. 10m).
    #[arg(long, default_value = "10m", value_parser = parse_duration_flag)]
    pub experimental_watch_progress_notify_interval: Duration,

    /// Set level of detail for exported metrics, specify 'extensive' to include server side
    /// grpc histogram metrics. (revkv exports the latency histograms at either level; the
    /// flag is accepted so etcd command lines work unchanged.)
    #[arg(long, default_value = "basic", value_parser = ["basic", "extensive"])]
    pub metrics: String,

    /// Specify auth token type and its options: 'simple', or
    /// 'jwt,pub-key=<path>,priv-key=<path>,sign-method=<RS256|…|ES384>[,ttl=5m]'.
    #[arg(long, default_value = "simple")]
    pub auth_token: String,

    /// Time (in seconds) of the auth token's life after its last use.
    #[arg(long, default_value_t = 300)]
    pub auth_token_ttl: u64,

    /// Specify bcrypt algorithm cost factor for auth password hashing.
    #[arg(long, default_value_t = bcrypt::DEFAULT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// Path to the client server TLS cert file.
    #[arg(long, default_value = "")]
    pub cert_file: String,

    /// Path to the client server TLS key file.
    #[arg(long, default_value = "")]
    pub key_file: String,

    /// Enable client cert authentication.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub client_cert_auth: bool,

    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, default_value = "")]
    pub trusted_ca_file: String,

    /// Client TLS using generated certificates.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auto_tls: bool,

    /// Path to the peer server TLS cert file.
    #[arg(long, default_value = "")]
    pub peer_cert_file: String,

    /// Path to the peer server TLS key file.
    #[arg(long, default_value = "")]
    pub peer_key_file: String,

    /// Enable peer client cert authentication.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub peer_client_cert_auth: bool,

    /// Path to the peer server TLS trusted CA file.
    #[arg(long, default_value = "")]
    pub peer_trusted_ca_file: String,

    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub peer_auto_tls: bool,

    /// Log level: debug, info, warn, error.
    #[arg(long, default_value = "info")]
    pub log_level: String,

    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

/// A flag combination that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat}ms]")]
    ElectionTooShort { election: u64, heartbeat: u64 },
    #[error("--election-timeout[{0}ms] is too long, and should be set less than 50000ms")]
    ElectionTooLong(u64),
    #[error("invalid URL {url:?} in --{flag}: expected {expected}")]
    BadUrl {
        flag: &'static str,
        url: String,
        expected: &'static str,
    },
    #[error("TLS key/cert (--cert-file, --key-file) must be provided for client url {0} with HTTPS scheme")]
    TlsFilesMissing(String),
    #[error(
        "--client-cert-auth needs --trusted-ca-file: the CA that signs the client certificates"
    )]
    ClientCertAuthWithoutCa,
    #[error("TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {0} with HTTPS scheme")]
    PeerTlsFilesMissing(String),
    #[error("--peer-client-cert-auth needs --peer-trusted-ca-file: the CA that signs the peers' certificates")]
    PeerClientCertAuthWithoutCa,
    #[error("invalid --auto-compaction-retention {0:?}")]
    BadRetention(String),
}

/// How automatic compaction is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    Off,
    /// Keep this much wall-clock history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

impl Config {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.revkv", self.name)))
    }

    pub fn initial_cluster(&self) -> String {
        self.initial_cluster.clone().unwrap_or_else(|| {
            format!(
                "{}={}",
                self.name,
                self.initial_advertise_peer_urls.join(",")
            )
        })
    }

    pub fn quota_bytes(&self) -> u64 {
        if self.quota_backend_bytes == 0 {
            DEFAULT_QUOTA_BYTES
        } else {
            self.quota_backend_bytes
        }
    }

    /// etcd's limit on a request's duration: 5 s plus two election timeouts.
    /// The auth store's settings; `Err` describes a malformed `--auth-token`.
    pub fn auth_config(&self) -> Result<crate::auth::AuthConfig, String> {
        Ok(crate::auth::AuthConfig {
            token: crate::auth::jwt::TokenConfig::parse(&self.auth_token)?,
            token_ttl: Duration::from_secs(self.auth_token_ttl),
            bcrypt_cost: self.bcrypt_cost,
        })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * Duration::from_millis(self.election_timeout)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if 5 * self.heartbeat_interval > self.election_timeout {
            return Err(ConfigError::ElectionTooShort {
                election: self.election_timeout,
                heartbeat: self.heartbeat_interval,
            });
        }
        if self.election_timeout > 50_000 {
            return Err(ConfigError::ElectionTooLong(self.election_timeout));
        }
        self.client_listen_addrs()?;
        self.peer_listen_addrs()?;
        for u in &self.initial_advertise_peer_urls {
            if !is_member_url(u) {
                return Err(ConfigError::BadUrl {
                    flag: "initial-advertise-peer-urls",
                    url: u.clone(),
                    expected: PEER_URL,
                });
            }
        }
        for l in self.client_listen_addrs()? {
            if l.tls && !self.auto_tls && (self.cert_file.is_empty() || self.key_file.is_empty()) {
                return Err(ConfigError::TlsFilesMissing(l.url));
            }
        }
        if self.client_cert_auth && self.trusted_ca_file.is_empty() && self.has_tls_listener() {
            return Err(ConfigError::ClientCertAuthWithoutCa);
        }
        let peer_files = !self.peer_cert_file.is_empty() && !self.peer_key_file.is_empty();
        for l in self.peer_listen_addrs()? {
            if l.tls && !self.peer_auto_tls && !peer_files {
                return Err(ConfigError::PeerTlsFilesMissing(l.url));
            }
        }
        if self.peer_client_cert_auth
            && self.peer_trusted_ca_file.is_empty()
            && self
                .listen_peer_urls
                .iter()
                .any(|u| u.starts_with("https://"))
        {
            return Err(ConfigError::PeerClientCertAuthWithoutCa);
        }
        self.auto_compaction()?;
        Ok(())
    }

    pub fn peer_listen_addrs(&self) -> Result<Vec<Listener>, ConfigError> {
        listeners(&self.listen_peer_urls, "listen-peer-urls")
    }

    /// The client side's TLS flags.
    pub fn client_tls_flags(&self) -> crate::tls::Flags<'_> {
        crate::tls::Flags {
            prefix: "",
            kind: "client",
            urls: &self.listen_client_urls,
            cert_file: &self.cert_file,
            key_file: &self.key_file,
            client_cert_auth: self.client_cert_auth,
            trusted_ca_file: &self.trusted_ca_file,
            auto_tls: self.auto_tls,
        }
    }

    /// The peer side's TLS flags (`--peer-*`).
    pub fn peer_tls_flags(&self) -> crate::tls::Flags<'_> {
        crate::tls::Flags {
            prefix: "peer-",
            kind: "peer",
            urls: &self.listen_peer_urls,
            cert_file: &self.peer_cert_file,
            key_file: &self.peer_key_file,
            client_cert_auth: self.peer_client_cert_auth,
            trusted_ca_file: &self.peer_trusted_ca_file,
            auto_tls: self.peer_auto_tls,
        }
    }

    pub fn client_listen_addrs(&self) -> Result<Vec<Listener>, ConfigError> {
        listeners(&self.listen_client_urls, "listen-client-urls")
    }

    /// Whether any client URL is `https://` (the TLS flags apply only to those; etcd
    /// warns about and ignores them on `http://` URLs).
    pub fn has_tls_listener(&self) -> bool {
        self.listen_client_urls
            .iter()
            .any(|u| u.starts_with("https://"))
    }

    pub fn auto_compaction(&self) -> Result<AutoCompaction, ConfigError> {
        let r = self.auto_compaction_retention.trim();
        let bad = || ConfigError::BadRetention(r.to_string());
        if self.auto_compaction_mode == "revision" {
            let n: i64 = r.parse().map_err(|_| bad())?;
            return Ok(if n <= 0 {
                AutoCompaction::Off
            } else {
                AutoCompaction::Revision(n)
            });
        }
        // Periodic: a bare number means hours (etcd's rule), otherwise a duration.
        let d = match r.parse::<u64>() {
            Ok(h) => Duration::from_secs(h * 3600),
            Err(_) => parse_duration(r).ok_or_else(bad)?,
        };
        Ok(if d.is_zero() {
            AutoCompaction::Off
        } else {
            AutoCompaction::Periodic(d)
        })
    }
}

/// What a listen, peer or client URL must look like.
const URL: &str = "http://host:port or https://host:port";
const PEER_URL: &str = URL;

/// One `--listen-client-urls` or `--listen-peer-urls` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub url: String,
    pub addr: SocketAddr,
    /// `https://`: serve TLS (see [`crate::tls`]).
    pub tls: bool,
}

fn listeners(urls: &[String], flag: &'static str) -> Result<Vec<Listener>, ConfigError> {
    urls.iter()
        .map(|u| {
            let (tls, addr) = parse_client_url(u).ok_or(ConfigError::BadUrl {
                flag,
                url: u.clone(),
                expected: URL,
            })?;
            Ok(Listener {
                url: u.clone(),
                addr,
                tls,
            })
        })
        .collect()
}

/// Parses `http://host:port` into a socket address (`localhost` is 127.0.0.1).
pub fn parse_http_url(url: &str) -> Option<SocketAddr> {
    parse_host_port(url.strip_prefix("http://")?)
}

/// Parses a client URL, `http://host:port` or `https://host:port`: whether it is
/// TLS, and its socket address.
pub fn parse_client_url(url: &str) -> Option<(bool, SocketAddr)> {
    match url.strip_prefix("https://") {
        Some(rest) => Some((true, parse_host_port(rest)?)),
        None => Some((false, parse_http_url(url)?)),
    }
}

fn parse_host_port(rest: &str) -> Option<SocketAddr> {
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host == "localhost" {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether `url` is `http://host:port` or `https://host:port` with any host name
/// (advertised URLs need not be addresses this member can bind).
pub fn is_member_url(url: &str) -> bool {
    url.strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .map(|r| r.trim_end_matches('/'))
        .and_then(|r| r.rsplit_once(':'))
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// A duration flag: Go syntax, as etcd parses it.
pub(crate) fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    parse_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?} (expected e.g. 10m, 90s, 500ms)"))
}

/// Go-style durations as etcd accepts them: `90s`, `30m`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("revkv").chain(args.iter().copied())).expect("parse")
    }

    #[test]
    fn defaults_are_etcds() {
        let c = parse(&[]);
        assert_eq!(c.data_dir(), PathBuf::from("default.revkv"));
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!(c.max_txn_ops, 128);
        assert_eq!(c.quota_bytes(), 2 << 30);
        assert_eq!(c.initial_cluster(), "default=http://localhost:2380");
        assert_eq!(
            c.client_listen_addrs().expect("addrs"),
            vec![Listener {
                url: "http://127.0.0.1:2379".into(),
                addr: "127.0.0.1:2379".parse().expect("addr"),
                tls: false,
            }]
        );
        assert_eq!(c.auto_compaction().expect("ac"), AutoCompaction::Off);
        assert_eq!(
            c.experimental_watch_progress_notify_interval,
            Duration::from_secs(600)
        );
        c.validate().expect("valid");
    }

    #[test]
    fn election_timeout_is_validated_like_etcd() {
        let c = parse(&["--heartbeat-interval", "300", "--election-timeout", "1000"]);
        assert_eq!(
            c.validate().expect_err("invalid").to_string(),
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
        );
    }

    #[test]
    fn https_client_urls_need_a_cert_and_key_as_in_etcd() {
        let c = parse(&["--listen-client-urls", "https://127.0.0.1:2379"]);
        assert_eq!(
            c.validate().expect_err("no cert").to_string(),
            "TLS key/cert (--cert-file, --key-file) must be provided for client url \
             https://127.0.0.1:2379 with HTTPS scheme"
        );
        let c = parse(&[
            "--listen-client-urls",
            "https://127.0.0.1:2379",
            "--cert-file",
            "c.pem",
            "--key-file",
            "k.pem",
            "--client-cert-auth",
        ]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ClientCertAuthWithoutCa)
        ));
        parse(&[
            "--listen-client-urls",
            "https://127.0.0.1:2379",
            "--auto-tls",
        ])
        .validate()
        .expect("auto-tls needs no files");
        // On http:// URLs the TLS flags are ignored, as etcd does (with a warning).
        parse(&["--client-cert-auth", "--cert-file", "c.pem"])
            .validate()
            .expect("ignored");
    }

    #[test]
    fn retention_and_urls() {
        let c = parse(&["--auto-compaction-retention", "1h30m"]);
        assert_eq!(
            c.auto_compaction().expect("ac"),
            AutoCompaction::Periodic(Duration::from_secs(5400))
        );
        let c = parse(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "100",
        ]);
        assert_eq!(
            c.auto_compaction().expect("ac"),
            AutoCompaction::Revision(100)
        );
        assert_eq!(
            parse_http_url("http://localhost:2379"),
            Some("127.0.0.1:2379".parse().expect("a"))
        );
        assert_eq!(parse_http_url("https://x:1"), None);
        assert_eq!(
            parse_client_url("https://127.0.0.1:2379"),
            Some((true, "127.0.0.1:2379".parse().expect("a")))
        );
        assert_eq!(
            parse_client_url("http://[::1]:2379/"),
            Some((false, "[::1]:2379".parse().expect("a")))
        );
        assert_eq!(parse_client_url("unix://x:1"), None);
        assert!(is_member_url("http://infra1:2380"));
        assert!(!is_member_url("http://infra1"));
        assert!(is_member_url("https://infra1:2380"));
        assert!(!is_member_url("unix://infra1:2380"));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("x"), None);
    }
}
