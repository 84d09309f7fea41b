//! TLS on the client and peer listeners, and on this member's connections to its
//! peers, configured with etcd's flags.
//!
//! A `https://` URL in `--listen-client-urls` serves gRPC and the HTTP endpoints over
//! TLS, with the certificate and key of `--cert-file` and `--key-file`. With
//! `--client-cert-auth` every client must present a certificate signed by the CA in
//! `--trusted-ca-file`. `--auto-tls` without files makes a self-signed certificate for
//! the listeners' hosts, kept in `<data-dir>/fixtures/client/` and reused on restart, as
//! etcd does. On `http://` URLs the flags do nothing (etcd warns and ignores them).
//!
//! The peer side is the same with the `--peer-*` flags and `https://` peer URLs
//! (`<data-dir>/fixtures/peer/`). A member dials its peers with its peer certificate as
//! its client certificate and trusts `--peer-trusted-ca-file`; under `--peer-auto-tls`
//! it accepts any peer certificate, as etcd does, since each one is self-signed.
//!
//! ALPN offers `h2` only: gRPC needs it, and HTTP clients of the endpoints (`curl`,
//! Go's `net/http`) speak HTTP/2 over TLS.

use std::path::{Path, PathBuf};

use revkv_proto::tls::{ClientTls, Connector};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::Config;

/// Why the TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate the --{0}auto-tls certificate: {1}")]
    Generate(&'static str, rcgen::Error),
    #[error("cannot write the auto TLS certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("peer TLS: {0}")]
    Client(#[from] revkv_proto::tls::TlsError),
}

/// One side's TLS flags: etcd has a client set and a `--peer-` set.
pub struct Flags<'a> {
    /// `""` for the client side, `"peer-"` for the peer side (flag names, messages).
    pub prefix: &'static str,
    /// `client` or `peer`: the directory under `<data-dir>/fixtures/`.
    pub kind: &'static str,
    pub urls: &'a [String],
    pub cert_file: &'a str,
    pub key_file: &'a str,
    pub client_cert_auth: bool,
    pub trusted_ca_file: &'a str,
    pub auto_tls: bool,
}

impl Flags<'_> {
    fn has_tls_url(&self) -> bool {
        self.urls.iter().any(|u| u.starts_with("https://"))
    }

    fn files_given(&self) -> bool {
        !self.cert_file.is_empty() && !self.key_file.is_empty()
    }

    /// The certificate and key to serve (and, for peers, to dial with): the files
    /// given, or the auto TLS pair (made on first use).
    fn identity_files(&self, cfg: &Config) -> Result<(PathBuf, PathBuf), Error> {
        if self.files_given() {
            if self.auto_tls {
                tracing::warn!("ignoring {}auto TLS since certs given", self.prefix);
            }
            return Ok((PathBuf::from(self.cert_file), PathBuf::from(self.key_file)));
        }
        let hosts = self
            .urls
            .iter()
            .filter_map(|u| u.strip_prefix("https://"))
            .filter_map(|hp| hp.trim_end_matches('/').rsplit_once(':'))
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .collect();
        self_cert(
            &cfg.data_dir().join("fixtures").join(self.kind),
            hosts,
            self.prefix,
        )
    }
}

/// The TLS settings shared by every `https://` listener of one side; `None` when
/// there is none.
pub fn listener_tls(cfg: &Config, flags: &Flags<'_>) -> Result<Option<ServerTlsConfig>, Error> {
    if !flags.has_tls_url() {
        if flags.files_given() || flags.client_cert_auth {
            tracing::warn!(
                "the {} URLs are http:// while TLS flags (--{p}cert-file, --{p}key-file, \
                 --{p}client-cert-auth) are set; ignoring them",
                flags.kind,
                p = flags.prefix
            );
        }
        return Ok(None);
    }
    let (cert, key) = flags.identity_files(cfg)?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read("cert file", &cert)?,
        read("key file", &key)?,
    ));
    if flags.client_cert_auth {
        let ca = read("trusted CA file", Path::new(flags.trusted_ca_file))?;
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(Some(tls))
}

/// How this member dials its peers: plain TCP for `http://` peer URLs, and TLS with
/// the peer flags for `https://` ones (a member without peer TLS flags cannot dial
/// those).
pub fn peer_dialer(cfg: &Config) -> Result<Connector, Error> {
    let flags = cfg.peer_tls_flags();
    if !flags.files_given() && !flags.auto_tls {
        return Ok(Connector::new(None));
    }
    let (cert, key) = flags.identity_files(cfg)?;
    let ca_pem = match flags.trusted_ca_file {
        "" => None,
        path => Some(read("peer trusted CA file", Path::new(path))?),
    };
    let tls = ClientTls {
        ca_pem,
        identity_pem: Some((read("cert file", &cert)?, read("key file", &key)?)),
        insecure_skip_verify: flags.auto_tls && !flags.files_given(),
    };
    Ok(Connector::new(Some(tls.config()?)))
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// `dir/cert.pem` and `dir/key.pem`: made once (a self-signed certificate for
/// `hosts`, good for both ends of a connection), then reused, so clients that pinned
/// it keep working across restarts.
fn self_cert(
    dir: &Path,
    hosts: Vec<String>,
    prefix: &'static str,
) -> Result<(PathBuf, PathBuf), Error> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let generate = |e| Error::Generate(prefix, e);
    let mut params = rcgen::CertificateParams::new(hosts).map_err(generate)?;
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key_pair = rcgen::KeyPair::generate().map_err(generate)?;
    let made = params.self_signed(&key_pair).map_err(generate)?;
    // Key first: a crash between the two writes leaves no certificate, so the next
    // start makes a new pair instead of pairing a certificate with a missing key.
    std::fs::write(&key, key_pair.serialize_pem()).map_err(write_err(&key))?;
    std::fs::write(&cert, made.pem()).map_err(write_err(&cert))?;
    tracing::info!(dir = %dir.display(), "generated a self-signed certificate (--{prefix}auto-tls)");
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("revkv").chain(args.iter().copied()))
            .expect("flags parse")
    }

    #[test]
    fn plain_listeners_need_no_tls() {
        let c = config(&["--cert-file", "/nonexistent.pem"]);
        assert!(listener_tls(&c, &c.client_tls_flags())
            .expect("ignored")
            .is_none());
        assert!(listener_tls(&c, &c.peer_tls_flags())
            .expect("no peer TLS")
            .is_none());
    }

    #[test]
    fn auto_tls_makes_a_certificate_once_and_reuses_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8 path");
        let c = config(&[
            "--data-dir",
            data,
            "--listen-client-urls",
            "https://127.0.0.1:2379,https://[::1]:2379",
            "--auto-tls",
        ]);
        assert!(listener_tls(&c, &c.client_tls_flags())
            .expect("generated")
            .is_some());
        let cert = dir.path().join("data/fixtures/client/cert.pem");
        let first = std::fs::read(&cert).expect("cert written");
        assert!(first.starts_with(b"-----BEGIN CERTIFICATE-----"));
        listener_tls(&c, &c.client_tls_flags()).expect("reused");
        assert_eq!(std::fs::read(&cert).expect("cert kept"), first);
    }

    #[test]
    fn peer_auto_tls_dials_with_its_own_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let c = config(&[
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--listen-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2380",
            "--peer-auto-tls",
        ]);
        peer_dialer(&c).expect("dialer");
        assert!(data.join("fixtures/peer/key.pem").is_file());
    }

    #[test]
    fn a_missing_cert_file_is_named() {
        let c = config(&[
            "--listen-client-urls",
            "https://127.0.0.1:2379",
            "--cert-file",
            "/nonexistent/cert.pem",
            "--key-file",
            "/nonexistent/key.pem",
        ]);
        let err = listener_tls(&c, &c.client_tls_flags())
            .expect_err("missing file")
            .to_string();
        assert!(
            err.starts_with("cannot read the cert file /nonexistent/cert.pem"),
            "{err}"
        );
    }
}
