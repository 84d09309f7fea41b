//! TLS on the client listeners, configured with etcd's flags.
//!
//! A `https://` URL in `--listen-client-urls` serves gRPC and the HTTP endpoints over
//! TLS, with the certificate and key of `--cert-file` and `--key-file`. With
//! `--client-cert-auth` every client must present a certificate signed by the CA in
//! `--trusted-ca-file`. `--auto-tls` without files makes a self-signed certificate for
//! the listeners' hosts, kept in `<data-dir>/fixtures/client/` and reused on restart, as
//! etcd does. On `http://` URLs the flags do nothing (etcd warns and ignores them).
//!
//! ALPN offers `h2` only: gRPC needs it, and HTTP clients of the endpoints (`curl`,
//! Go's `net/http`) speak HTTP/2 over TLS.

use std::path::{Path, PathBuf};

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
    #[error("cannot generate the --auto-tls certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write the --auto-tls certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The TLS settings shared by every `https://` client listener; `None` when there is
/// none.
pub fn client_tls(cfg: &Config) -> Result<Option<ServerTlsConfig>, Error> {
    let given = !cfg.cert_file.is_empty() && !cfg.key_file.is_empty();
    if !cfg.has_tls_listener() {
        if given || cfg.client_cert_auth {
            tracing::warn!(
                "the client URLs are http:// while TLS flags (--cert-file, --key-file, \
                 --client-cert-auth) are set; ignoring them"
            );
        }
        return Ok(None);
    }
    let (cert, key) = if given {
        if cfg.auto_tls {
            tracing::warn!("ignoring client auto TLS since certs given");
        }
        (PathBuf::from(&cfg.cert_file), PathBuf::from(&cfg.key_file))
    } else {
        let hosts = cfg
            .listen_client_urls
            .iter()
            .filter_map(|u| u.strip_prefix("https://"))
            .filter_map(|hp| hp.trim_end_matches('/').rsplit_once(':'))
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .collect();
        self_cert(&cfg.data_dir().join("fixtures").join("client"), hosts)?
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read("cert file", &cert)?,
        read("key file", &key)?,
    ));
    if cfg.client_cert_auth {
        let ca = read("trusted CA file", Path::new(&cfg.trusted_ca_file))?;
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(Some(tls))
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// `dir/cert.pem` and `dir/key.pem`: made once (a self-signed certificate for
/// `hosts`), then reused, so clients that pinned it keep working across restarts.
fn self_cert(dir: &Path, hosts: Vec<String>) -> Result<(PathBuf, PathBuf), Error> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let made = rcgen::generate_simple_self_signed(hosts)?;
    // Key first: a crash between the two writes leaves no certificate, so the next
    // start makes a new pair instead of pairing a certificate with a missing key.
    std::fs::write(&key, made.key_pair.serialize_pem()).map_err(write_err(&key))?;
    std::fs::write(&cert, made.cert.pem()).map_err(write_err(&cert))?;
    tracing::info!(dir = %dir.display(), "generated a self-signed client certificate (--auto-tls)");
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
        assert!(client_tls(&c).expect("ignored").is_none());
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
        assert!(client_tls(&c).expect("generated").is_some());
        let cert = dir.path().join("data/fixtures/client/cert.pem");
        let first = std::fs::read(&cert).expect("cert written");
        assert!(first.starts_with(b"-----BEGIN CERTIFICATE-----"));
        client_tls(&c).expect("reused");
        assert_eq!(std::fs::read(&cert).expect("cert kept"), first);
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
        let err = client_tls(&c).expect_err("missing file").to_string();
        assert!(
            err.starts_with("cannot read the cert file /nonexistent/cert.pem"),
            "{err}"
        );
    }
}
