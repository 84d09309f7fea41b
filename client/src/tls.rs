//! TLS to `https://` endpoints, with the settings etcd's client takes (`--cacert`,
//! `--cert`/`--key`, `--insecure-skip-tls-verify`), and the dialer both transports
//! use (tonic's channel for streams, the unary h2 connection).

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use revkv_proto::io::{Coalescing, TcpConnector};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::codegen::http::Uri;
use tonic::codegen::Service;

use crate::error::{Error, Result};

/// Where Debian keeps the system's trusted CAs, used when no CA file is given.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

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
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS versions", e))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        } else {
            let path = self
                .ca_file
                .as_deref()
                .unwrap_or_else(|| Path::new(SYSTEM_CAS));
            let mut roots = RootCertStore::empty();
            for cert in certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| tls_error(&path.display().to_string(), e))?;
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &self.identity {
            Some((cert, key)) => {
                let key_pem = read(key)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| tls_error(&key.display().to_string(), e))?;
                builder
                    .with_client_auth_cert(certs(cert)?, key)
                    .map_err(|e| tls_error("client certificate", e))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("TLS: {what}: {e}"))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| tls_error(&path.display().to_string(), e))
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error(&path.display().to_string(), e))?;
    if certs.is_empty() {
        return Err(tls_error(
            &path.display().to_string(),
            "no certificate in the file",
        ));
    }
    Ok(certs)
}

/// `--insecure-skip-tls-verify`: every server certificate is accepted; the handshake's
/// signatures are still checked, so the session is at least with the key holder.
#[derive(Debug)]
struct AnyServer(Arc<tokio_rustls::rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Dials `http://` endpoints over TCP and `https://` ones over TLS on top of it.
#[derive(Clone, Default)]
pub(crate) struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
    /// TLS whatever the URI says: tonic, when built with its own TLS (another crate in
    /// the build may enable it), refuses to hand an `https` URI to a custom connector,
    /// so the stream channel is given the `http` form and this connector instead.
    force_tls: bool,
}

impl Connector {
    pub(crate) fn new(tls: Option<Arc<ClientConfig>>) -> Connector {
        Connector {
            tls: tls.map(tokio_rustls::TlsConnector::from),
            force_tls: false,
        }
    }

    /// This connector, dialing TLS for `http` URIs too.
    pub(crate) fn forcing_tls(&self) -> Connector {
        Connector {
            force_tls: true,
            ..self.clone()
        }
    }

    /// A connection to `uri`.
    pub(crate) async fn dial(&self, uri: Uri) -> io::Result<Stream> {
        let secure = self.force_tls || uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default().to_owned();
        let plain = uri_with_scheme(&uri, "http")?;
        let tcp = TcpConnector.call(plain).await?.into_inner();
        if !secure {
            return Ok(Stream::Plain(tcp));
        }
        let tls = self.tls.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{uri}: an https endpoint needs TLS settings"),
            )
        })?;
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .to_owned();
        Ok(Stream::Tls(Box::new(tls.connect(name, tcp).await?)))
    }
}

/// `uri` with its scheme replaced (the TCP dialer speaks `http` only) and its port
/// made explicit (443 for `https`).
fn uri_with_scheme(uri: &Uri, scheme: &str) -> io::Result<Uri> {
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let host = uri.host().unwrap_or_default();
    format!("{scheme}://{host}:{port}")
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.dial(uri).await.map(TokioIo::new) })
    }
}

/// A dialed connection, plain or TLS.
pub(crate) enum Stream {
    Plain(Coalescing<TcpStream>),
    Tls(Box<tokio_rustls::client::TlsStream<Coalescing<TcpStream>>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
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
        let c = TlsOptions::new()
            .with_insecure_skip_verify()
            .client_config()
            .expect("config");
        assert_eq!(c.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn https_uris_dial_tcp_on_port_443_by_default() {
        let u: Uri = "https://example.invalid".parse().expect("uri");
        assert_eq!(
            uri_with_scheme(&u, "http").expect("uri").to_string(),
            "http://example.invalid:443/"
        );
    }
}
