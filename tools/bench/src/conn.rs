//! Dialing the connections a run uses: `revkv-client` clients for unary calls, raw
//! gRPC channels for the streaming workloads.
//!
//! `--conns` HTTP/2 connections are opened up front, assigned to the `--endpoints`
//! round-robin (connection `i` goes to endpoint `i % endpoints`), so a run against
//! three members loads all three. Every connection is dialed before the first request:
//! an unreachable endpoint is reported by name at once instead of showing up as a
//! wall of per-request errors.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use revkv_client::{Client, ConnectOptions};
use tonic::transport::{Channel, Endpoint};

/// How long dialing one connection may take before the run gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound on any single request, so a stalled server cannot hang a bounded run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses `--endpoints`: a comma-separated list of `host:port` or `http://host:port`
/// entries, as etcdctl accepts them. Returns the URLs to dial (`http://` added).
pub fn parse_endpoints(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for raw in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let url = if raw.contains("://") {
            if !raw.starts_with("http://") {
                bail!("endpoint {raw:?}: only http:// is supported (no TLS yet)");
            }
            raw.to_owned()
        } else {
            format!("http://{raw}")
        };
        out.push(url);
    }
    if out.is_empty() {
        bail!("--endpoints is empty");
    }
    Ok(out)
}

/// The endpoint URL connection `i` of `conns` dials.
pub fn endpoint_for(endpoints: &[String], i: usize) -> &str {
    &endpoints[i % endpoints.len()]
}

/// Opens `conns` connections spread over `endpoints`.
///
/// # Errors
/// Names the first endpoint that cannot be reached within 3 s.
pub async fn dial(endpoints: &[String], conns: usize) -> Result<Vec<Channel>> {
    if conns == 0 {
        bail!("--conns must be at least 1");
    }
    let mut out = Vec::with_capacity(conns);
    for i in 0..conns {
        let url = endpoint_for(endpoints, i);
        let endpoint = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("invalid endpoint {url:?}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true);
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {CONNECT_TIMEOUT:?}"))
            .and_then(|r| r.map_err(anyhow::Error::from))
            .with_context(|| format!("cannot connect to endpoint {url}"))?;
        out.push(channel);
    }
    Ok(out)
}

/// Connects `conns` revkv clients spread over `endpoints`, each pinned to its one
/// endpoint so the spread is exactly the one asked for.
///
/// # Errors
/// Names the first endpoint that cannot be reached within 3 s.
pub async fn clients(endpoints: &[String], conns: usize) -> Result<Vec<Client>> {
    if conns == 0 {
        bail!("--conns must be at least 1");
    }
    let mut out = Vec::with_capacity(conns);
    for i in 0..conns {
        let url = endpoint_for(endpoints, i);
        let opts = ConnectOptions::new()
            .with_dial_timeout(CONNECT_TIMEOUT)
            .with_request_timeout(REQUEST_TIMEOUT);
        let client = Client::connect([url], opts)
            .await
            .with_context(|| format!("cannot connect to endpoint {url}"))?;
        out.push(client);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_etcdctl_forms() {
        let eps = parse_endpoints("127.0.0.1:2379, http://127.0.0.1:22379,,").expect("parse");
        assert_eq!(eps, ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]);
        assert!(parse_endpoints("").is_err());
        assert!(parse_endpoints(" , ").is_err());
        assert!(parse_endpoints("https://127.0.0.1:2379").is_err());
    }

    #[test]
    fn connections_spread_round_robin_over_endpoints() {
        let eps: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let got: Vec<&str> = (0..7).map(|i| endpoint_for(&eps, i)).collect();
        assert_eq!(got, ["a", "b", "c", "a", "b", "c", "a"]);
    }
}
