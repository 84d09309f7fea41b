//! Black-box test harness for revkv.
//!
//! Every test in this crate encodes *etcd's* behaviour and runs against either
//! a real etcd 3.4 (`/usr/bin/etcd`) or the `revkv` binary, selected with the
//! environment variable `REVKV_TEST_TARGET=etcd|revkv` (default `revkv`).
//!
//! * [`TestServer`] spawns one single-member server on free ports with its own
//!   temporary data directory and waits until `/health` reports healthy.
//! * [`TestCluster`] does the same for N members bootstrapped together.
//! * [`Etcdctl`] runs the stock `/usr/bin/etcdctl` (API v3) against it.
//! * [`linearizability::check`] checks histories of concurrent puts and gets.
//! * [`b64`] / [`unb64`] and [`json`] help with `-w json` output.

pub mod cluster;
pub mod etcdctl;
pub mod linearizability;
pub mod revkvctl;
pub mod server;

pub use cluster::{ClusterMember, MemberStatus, TestCluster};
pub use etcdctl::{error_line, CmdOutput, Etcdctl};
pub use server::{free_port, http_get, http_request, revkv_bench_bin, HttpAnswer, TestServer};

/// Sends `sig` (`-TERM`, `-INT`, `-KILL`, `-STOP`, …) to `child` with kill(1), as a user
/// would: the workspace forbids `unsafe`, so no libc call.
///
/// # Panics
/// If kill cannot be run or fails (the process is gone).
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("run kill {sig}: {e}"));
    assert!(ok.success(), "kill {sig} {} failed", child.id());
}

/// Which server implementation the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Real etcd 3.4 at `/usr/bin/etcd`.
    Etcd,
    /// The `revkv` binary from this workspace (or `REVKV_BIN`).
    Revkv,
}

/// Environment variable selecting the target.
pub const TARGET_ENV: &str = "REVKV_TEST_TARGET";

/// The target selected by `REVKV_TEST_TARGET` (default [`Target::Revkv`]).
///
/// # Panics
/// On an unknown value, so a typo never silently tests the wrong server.
pub fn target() -> Target {
    match std::env::var(TARGET_ENV) {
        Err(std::env::VarError::NotPresent) => Target::Revkv,
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "revkv" => Target::Revkv,
            "etcd" => Target::Etcd,
            other => panic!("{TARGET_ENV}={other:?}: expected `etcd` or `revkv`"),
        },
        Err(e) => panic!("{TARGET_ENV}: {e}"),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard (padded) base64, as Go's `encoding/json` prints `[]byte` fields.
pub fn b64(data: impl AsRef<[u8]>) -> String {
    let data = data.as_ref();
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64.
///
/// # Panics
/// On malformed input (this is test code: malformed base64 is a failure).
pub fn unb64(s: &str) -> Vec<u8> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64
            .iter()
            .position(|&x| x == c)
            .unwrap_or_else(|| panic!("invalid base64 byte {c:?} in {s:?}"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Parses JSON printed by `etcdctl -w json`.
///
/// # Panics
/// If `s` is not valid JSON (the message includes the text).
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}): {s:?}"))
}

/// `v[path...]` as i64, panicking with the whole document if absent.
///
/// # Panics
/// If a field is missing or not an integer.
pub fn json_i64(v: &serde_json::Value, path: &[&str]) -> i64 {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .unwrap_or_else(|| panic!("missing field {path:?} in {v}"));
    }
    cur.as_i64()
        .unwrap_or_else(|| panic!("field {path:?} is not an i64 in {v}"))
}

/// `header.revision` of an `etcdctl -w json` document.
pub fn header_revision(v: &serde_json::Value) -> i64 {
    json_i64(v, &["header", "revision"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("bar2", "YmFyMg=="),
        ] {
            assert_eq!(b64(raw), enc);
            assert_eq!(unb64(enc), raw.as_bytes());
        }
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(unb64(&b64(&all)), all);
    }
}
