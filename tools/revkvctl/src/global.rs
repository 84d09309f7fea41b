//! etcdctl's global flags and the `ETCDCTL_*` environment variables behind them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::exit::{CtlError, CtlResult, BAD_FEATURE, ERROR};
use crate::flags::{self, Kind, Parsed, Spec};
use crate::printer::{Format, Printer};

/// The flags every command takes (cobra's persistent flags of the root command).
pub const SPECS: &[Spec] = &[
    Spec::new("cacert", Kind::Str, "", "verify certificates of TLS-enabled secure servers using this CA bundle"),
    Spec::new("cert", Kind::Str, "", "identify secure client using this TLS certificate file"),
    Spec::new("command-timeout", Kind::Duration, "5s", "timeout for short running command (excluding dial timeout)"),
    Spec::new("debug", Kind::Bool, "false", "enable client-side debug logging"),
    Spec::new("dial-timeout", Kind::Duration, "2s", "dial timeout for client connections"),
    Spec::new("discovery-srv", Kind::Str, "", "domain name to query for SRV records describing cluster endpoints").short('d'),
    Spec::new("discovery-srv-name", Kind::Str, "", "service name to query when using DNS discovery"),
    Spec::new("endpoints", Kind::StrSlice, "[127.0.0.1:2379]", "gRPC endpoints"),
    Spec::new("hex", Kind::Bool, "false", "print byte strings as hex encoded strings"),
    Spec::new("insecure-discovery", Kind::Bool, "true", "accept insecure SRV records describing cluster endpoints"),
    Spec::new("insecure-skip-tls-verify", Kind::Bool, "false", "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)"),
    Spec::new("insecure-transport", Kind::Bool, "true", "disable transport security for client connections"),
    Spec::new("keepalive-time", Kind::Duration, "2s", "keepalive time for client connections"),
    Spec::new("keepalive-timeout", Kind::Duration, "6s", "keepalive timeout for client connections"),
    Spec::new("key", Kind::Str, "", "identify secure client using this TLS key file"),
    Spec::new("password", Kind::Str, "", "password for authentication (if this option is used, --user option shouldn't include password)"),
    Spec::new("user", Kind::Str, "", "username[:password] for authentication (prompt if password is not supplied)"),
    Spec::new("write-out", Kind::Str, "simple", "set the output format (fields, json, protobuf, simple, table)").short('w'),
];

/// Environment variables etcdctl reads itself rather than as flags.
const OWN_ENV: &[&str] = &[
    "ETCDCTL_API",
    "ETCDCTL_WATCH_KEY",
    "ETCDCTL_WATCH_RANGE_END",
];

/// The global settings of one invocation.
#[derive(Debug, Clone)]
pub struct Global {
    /// `--endpoints`.
    pub endpoints: Vec<String>,
    /// `--dial-timeout`.
    pub dial_timeout: Duration,
    /// `--command-timeout`.
    pub command_timeout: Duration,
    /// `-w`.
    pub write_out: String,
    /// `--hex`.
    pub hex: bool,
    /// `--user`.
    pub user: String,
    /// `--password`.
    pub password: String,
    /// `--cacert`, `--cert`, `--key`, `--insecure-skip-tls-verify`,
    /// `--insecure-transport`.
    pub tls: TlsFlags,
}

/// etcdctl's TLS flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFlags {
    pub cacert: String,
    pub cert: String,
    pub key: String,
    pub insecure_skip_verify: bool,
    pub insecure_transport: bool,
}

impl TlsFlags {
    /// Whether endpoints given without a scheme are dialed over TLS: as in etcdctl,
    /// when a certificate flag is set or `--insecure-transport=false`.
    pub fn secure_by_default(&self) -> bool {
        !self.cacert.is_empty()
            || !self.cert.is_empty()
            || !self.key.is_empty()
            || !self.insecure_transport
    }
}

/// The env variable etcd's `pkg/flags` maps a flag to.
fn env_name(flag: &str) -> String {
    format!("ETCDCTL_{}", flag.to_uppercase().replace('-', "_"))
}

/// A capnslog line as etcd's `pkg/flags` logs it (`2006-01-02 15:04:05.000000 W | …`).
fn log_line(level: char, msg: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{:06} {level} | pkg/flags: {msg}\n",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        now.subsec_micros()
    )
}

/// Days since 1970-01-01 → (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Fills unset global flags from `ETCDCTL_*` (etcd's `SetPflagsFromEnv`): an env
/// variable that a flag on the command line shadows is fatal, an unknown one is
/// warned about on stderr.
pub fn apply_env(parsed: &mut Parsed, env: &[(String, String)]) -> CtlResult {
    let mut used = Vec::new();
    let mut shadowed = Vec::new();
    for spec in SPECS {
        let key = env_name(spec.name);
        if parsed.is_set(spec.name) {
            shadowed.push(key);
            continue;
        }
        if let Some((_, v)) = env.iter().find(|(k, _)| *k == key) {
            if !v.is_empty() {
                flags::validate(spec.kind, v).map_err(|e| {
                    CtlError::new(ERROR, format!("invalid value {v:?} for {key}: {e}"))
                })?;
                parsed.set(spec.name, v.clone());
            }
            used.push(key);
        }
    }
    for (k, v) in env {
        if used.contains(k) || OWN_ENV.contains(&k.as_str()) {
            continue;
        }
        if shadowed.contains(k) {
            eprint!("{}", log_line('C', &format!("conflicting environment variable {k:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)")));
            return Err(CtlError::silent(ERROR));
        }
        if k.starts_with("ETCDCTL_") {
            eprint!(
                "{}",
                log_line('W', &format!("unrecognized environment variable {k}={v}"))
            );
        }
    }
    Ok(())
}

impl Global {
    /// Reads the global flags (after [`apply_env`]).
    pub fn from_parsed(p: &Parsed) -> Global {
        Global {
            endpoints: p.slice(SPECS, "endpoints"),
            dial_timeout: p.duration(SPECS, "dial-timeout"),
            command_timeout: p.duration(SPECS, "command-timeout"),
            write_out: p.str(SPECS, "write-out"),
            hex: p.bool(SPECS, "hex"),
            user: p.str(SPECS, "user"),
            password: p.str(SPECS, "password"),
            tls: TlsFlags {
                cacert: p.str(SPECS, "cacert"),
                cert: p.str(SPECS, "cert"),
                key: p.str(SPECS, "key"),
                insecure_skip_verify: p.bool(SPECS, "insecure-skip-tls-verify"),
                insecure_transport: p.bool(SPECS, "insecure-transport"),
            },
        }
    }

    /// The printer for `-w` / `--hex` (etcdctl's `initDisplayFromCmd`).
    pub fn printer(&self) -> CtlResult<Printer> {
        match Format::parse(&self.write_out) {
            Some(f) => Ok(Printer::new(f, self.hex)),
            None if self.write_out == "protobuf" => Err(CtlError::new(
                BAD_FEATURE,
                "protobuf output is not supported by revkvctl",
            )),
            None => Err(CtlError::new(BAD_FEATURE, "unsupported output format")),
        }
    }

    /// `--user` / `--password` as (name, password), or `None` without `--user`.
    ///
    /// A `--user` without `:password` (and no `--password`) is asked for it, as etcdctl
    /// asks ([`crate::prompt`]).
    pub fn credentials(&self) -> CtlResult<Option<(String, String)>> {
        if self.user.is_empty() {
            if !self.password.is_empty() {
                return Err(CtlError::bad_args(
                    "empty string is passed to --user option",
                ));
            }
            return Ok(None);
        }
        if !self.password.is_empty() {
            if self.user.contains(':') {
                return Err(CtlError::bad_args(
                    "username contains ':' when --password is given",
                ));
            }
            return Ok(Some((self.user.clone(), self.password.clone())));
        }
        match self.user.split_once(':') {
            Some((u, p)) => Ok(Some((u.to_owned(), p.to_owned()))),
            None => Ok(Some((
                self.user.clone(),
                crate::prompt::ask("Password: ", &mut crate::prompt::read_stdin),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_fills_unset_flags() {
        let mut p = flags::parse(SPECS, &[]).expect("parse");
        let env = vec![
            ("ETCDCTL_ENDPOINTS".to_owned(), "a:1,b:2".to_owned()),
            ("ETCDCTL_WRITE_OUT".to_owned(), "json".to_owned()),
            ("ETCDCTL_API".to_owned(), "3".to_owned()),
        ];
        apply_env(&mut p, &env).expect("env applies");
        let g = Global::from_parsed(&p);
        assert_eq!(g.endpoints, ["a:1", "b:2"]);
        assert_eq!(g.write_out, "json");
        assert_eq!(g.command_timeout, Duration::from_secs(5));
    }

    #[test]
    fn env_shadowed_by_a_flag_is_fatal() {
        let mut p = flags::parse(SPECS, &["--endpoints=x:1".to_owned()]).expect("parse");
        let env = vec![("ETCDCTL_ENDPOINTS".to_owned(), "a:1".to_owned())];
        assert_eq!(apply_env(&mut p, &env), Err(CtlError::silent(ERROR)));
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }
}
