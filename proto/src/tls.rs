//! TLS for the client side of revkv's connections (clients to `https://` client URLs,
//! members to `https://` peer URLs): the rustls configuration from PEM data, and the
//! dialer that speaks TCP, or TLS on top of it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
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

use crate::io::{Coalescing, TcpConnector};

pub use tokio_rustls::rustls::ClientConfig as RustlsClientConfig;

/// Where Debian keeps the system's trusted CAs, used when no CA is given.
pub const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {what}: {why}")]
pub struct TlsError {
    what: String,
    why: String,
}

fn tls_error(what: &str, why: impl std::fmt::Display) -> TlsError {
    TlsError {
        what: what.to_owned(),
        why: why.to_string(),
    }
}

/// The client side's TLS settings, as PEM data.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The CAs that sign the servers' certificates; `None` = the system's
    /// ([`SYSTEM_CAS`]).
    pub ca_pem: Option<Vec<u8>>,
    /// This side's certificate chain and key, for servers that ask for one.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate (etcd's `--insecure-skip-tls-verify`, and its
    /// peers under `--peer-auto-tls`).
    pub insecure_skip_verify: bool,
}

impl ClientTls {
    /// The rustls configuration (ALPN `h2`, as gRPC needs).
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("protocol versions", e))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        } else {
            let system;
            let pem = match &self.ca_pem {
                Some(pem) => pem,
                None => {
                    system = std::fs::read(SYSTEM_CAS).map_err(|e| tls_error(SYSTEM_CAS, e))?;
                    &system
                }
            };
            let mut roots = RootCertStore::empty();
            for cert in certs(pem, "CA")? {
                roots.add(cert).map_err(|e| tls_error("CA", e))?;
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &self.identity_pem {
            Some((cert, key)) => {
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| tls_error("key", e))?;
                builder
                    .with_client_auth_cert(certs(cert, "certificate")?, key)
                    .map_err(|e| tls_error("certificate", e))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(what, e))?;
    if certs.is_empty() {
        return Err(tls_error(what, "no certificate in the PEM data"));
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
pub struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
    /// TLS whatever the URI says: tonic, when built with its own TLS (another crate in
    /// the build may enable it), refuses to hand an `https` URI to a custom connector,
    /// so the stream channel is given the `http` form and this connector instead.
    force_tls: bool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("force_tls", &self.force_tls)
            .finish()
    }
}

impl Connector {
    pub fn new(tls: Option<Arc<ClientConfig>>) -> Connector {
        Connector {
            tls: tls.map(tokio_rustls::TlsConnector::from),
            force_tls: false,
        }
    }

    /// This connector, dialing TLS for `http` URIs too.
    pub fn forcing_tls(&self) -> Connector {
        Connector {
            force_tls: true,
            ..self.clone()
        }
    }

    /// The URL to give tonic for `url`, and the connector to dial it with: tonic built
    /// with its own TLS refuses `https` with a custom connector, so an `https` URL is
    /// handed over as `http` with a connector that dials TLS regardless.
    pub fn for_tonic(&self, url: &str) -> (String, Connector) {
        match url.strip_prefix("https://") {
            Some(rest) => (format!("http://{rest}"), self.forcing_tls()),
            None => (url.to_owned(), self.clone()),
        }
    }

    /// A connection to `uri`.
    pub async fn dial(&self, uri: Uri) -> io::Result<Stream> {
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
pub enum Stream {
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
    fn skip_verify_needs_no_ca() {
        let c = ClientTls {
            insecure_skip_verify: true,
            ..Default::default()
        }
        .config()
        .expect("config");
        assert_eq!(c.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn pem_without_a_certificate_is_refused() {
        let err = ClientTls {
            ca_pem: Some(b"not pem".to_vec()),
            ..Default::default()
        }
        .config()
        .expect_err("no certificate")
        .to_string();
        assert_eq!(err, "TLS: CA: no certificate in the PEM data");
    }

    #[test]
    fn https_uris_dial_tcp_on_port_443_by_default() {
        let u: Uri = "https://example.invalid".parse().expect("uri");
        assert_eq!(
            uri_with_scheme(&u, "http").expect("uri").to_string(),
            "http://example.invalid:443/"
        );
    }

    #[test]
    fn tonic_gets_https_urls_as_http_with_a_tls_connector() {
        let c = Connector::new(None);
        let (url, dialer) = c.for_tonic("https://h:1");
        assert_eq!(url, "http://h:1");
        assert!(dialer.force_tls);
        let (url, dialer) = c.for_tonic("http://h:1");
        assert_eq!(url, "http://h:1");
        assert!(!dialer.force_tls);
    }
}
