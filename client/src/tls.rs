//! TLS to `https://` endpoints, with the settings etcd's client takes (`--cacert`,
//! `--cert`/`--key`, `--insecure-skip-tls-verify`). The dialer both transports use
//! (tonic's channel for streams, the unary h2 connection) is
//! [`revkv_proto::tls::Connector`], shared with the server's peer connections.

use std::path::Path;
use std::sync::Arc;

pub(crate) use revkv_proto::tls::Connector;
use revkv_proto::tls::{ClientTls, RustlsClientConfig};

use crate::error::{Error, Result};

/// TLS settings for `https://` endpoints.
///
/// ```
/// let tls = revkv_client::TlsOptions::new().with_ca_file("/etc/revkv/ca.pem");
/// assert!(!tls.insecure_skip_verify);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CAs that sign the servers' certificates (etcdctl's `--cacert`);
    /// `None` = the system's CAs.
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM files of this client's certificate and key (`--cert`, `--key`), for servers
    /// that run with `--client-cert-auth`.
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Accept any server certificate (`--insecure-skip-tls-verify`; tests only).
    pub insecure_skip_verify: bool,
}

impl TlsOptions {
    /// No CA file (the system's CAs), no client certificate, verification on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CAs in `path` (PEM).
    pub fn with_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents the certificate and key in these PEM files.
    pub fn with_identity(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    /// Skips verifying the server's certificate.
    pub fn with_insecure_skip_verify(mut self) -> Self {
        self.insecure_skip_verify = true;
        self
    }

    /// The rustls configuration these settings describe (ALPN `h2`, as gRPC needs).
    pub(crate) fn client_config(&self) -> Result<Arc<RustlsClientConfig>> {
        let identity_pem = match &self.identity {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        ClientTls {
            ca_pem: self.ca_file.as_deref().map(read).transpose()?,
            identity_pem,
            insecure_skip_verify: self.insecure_skip_verify,
        }
        .config()
        .map_err(|e| Error::InvalidArgument(e.to_string()))
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::InvalidArgument(format!("TLS: {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = TlsOptions::new()
            .with_ca_file("/nonexistent/ca.pem")
            .client_config()
            .expect_err("missing file")
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn skip_verify_needs_no_ca() {
        TlsOptions::new()
            .with_insecure_skip_verify()
            .client_config()
            .expect("config");
    }
}
