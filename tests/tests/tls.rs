//! TLS with etcd's flags, driven by stock etcdctl over real sockets: an `https://`
//! client URL with `--cert-file`/`--key-file`, client certificates with
//! `--client-cert-auth`/`--trusted-ca-file`, `--auto-tls`, etcd's start-up error for an
//! `https://` URL without a certificate, revkv-client over TLS, and three members on
//! `https://` peer URLs (`--peer-*` flags, `--peer-auto-tls`).
//!
//! The certificates are made per test (a CA, a server certificate for 127.0.0.1, a
//! client certificate), so nothing secret is checked in. Runs against etcd or revkv
//! per `REVKV_TEST_TARGET`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use revkv_tests::{error_line, target, Etcdctl, Target, TestCluster, TestServer};

/// PEM files of one test's small PKI.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A member's certificate for peer TLS: server and client authentication.
    peer_cert: PathBuf,
    peer_key: PathBuf,
    /// A client certificate from a CA the server does not trust.
    stranger_cert: PathBuf,
    stranger_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (p.self_signed(&key).expect("CA certificate"), key)
}

fn leaf(
    sans: &[&str],
    usages: &[ExtendedKeyUsagePurpose],
    ca: &(rcgen::Certificate, KeyPair),
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    p.distinguished_name.push(DnType::CommonName, "revkv-test");
    p.extended_key_usages = usages.to_vec();
    let cert = p.signed_by(&key, &ca.0, &ca.1).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, pem: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).expect("write pem");
        p
    };
    let root = ca("revkv test CA");
    let (sc, sk) = leaf(
        &["127.0.0.1", "localhost"],
        &[ExtendedKeyUsagePurpose::ServerAuth],
        &root,
    );
    let (cc, ck) = leaf(&[], &[ExtendedKeyUsagePurpose::ClientAuth], &root);
    let (pc, pk) = leaf(
        &["127.0.0.1", "localhost"],
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        &root,
    );
    let (xc, xk) = leaf(
        &[],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        &ca("someone else"),
    );
    Pki {
        ca: write("ca.pem", &root.0.pem()),
        server_cert: write("server.pem", &sc),
        server_key: write("server-key.pem", &sk),
        client_cert: write("client.pem", &cc),
        client_key: write("client-key.pem", &ck),
        peer_cert: write("peer.pem", &pc),
        peer_key: write("peer-key.pem", &pk),
        stranger_cert: write("stranger.pem", &xc),
        stranger_key: write("stranger-key.pem", &xk),
        _dir: dir,
    }
}

/// Whether the suite drives stock etcdctl (not revkvctl standing in for it, which
/// differs where `docs/COMPATIBILITY.md` says).
fn stock_etcdctl() -> bool {
    std::env::var_os(revkv_tests::etcdctl::ETCDCTL_BIN_ENV).is_none()
}

/// A server on an `https://` URL that admits only clients with a certificate from
/// the test CA.
fn start_client_cert_auth(pki: &Pki) -> TestServer {
    TestServer::start_tls(&[
        "--cert-file",
        s(&pki.server_cert),
        "--key-file",
        s(&pki.server_key),
        "--client-cert-auth",
        "--trusted-ca-file",
        s(&pki.ca),
    ])
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// etcdctl against the server's `https://` URL with `flags` before every command.
fn ctl(server: &TestServer, flags: &[&str]) -> (Etcdctl, Vec<String>) {
    let mut f: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    f.extend(["--dial-timeout".into(), "2s".into()]);
    (Etcdctl::new(server.tls_endpoint()), f)
}

fn with<'a>(flags: &'a [String], args: &[&'a str]) -> Vec<&'a str> {
    flags
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect()
}

#[test]
fn etcdctl_talks_tls_to_an_https_client_url() {
    let pki = pki();
    let server = TestServer::start_tls(&[
        "--cert-file",
        s(&pki.server_cert),
        "--key-file",
        s(&pki.server_key),
    ]);
    let (ctl, flags) = ctl(&server, &["--cacert", s(&pki.ca)]);
    assert_eq!(ctl.ok(&with(&flags, &["put", "k", "v"])), "OK\n");
    assert_eq!(
        ctl.ok(&with(&flags, &["get", "k", "--print-value-only"])),
        "v\n"
    );
    let health = ctl.run(&with(&flags, &["endpoint", "health"]), None);
    assert!(health.status.success(), "{}", health.stderr);
    assert!(
        health.stderr.contains("is healthy") || health.stdout.contains("is healthy"),
        "{health:?}"
    );
    // The plain port serves the same data.
    assert_eq!(
        server.etcdctl().ok(&["get", "k", "--print-value-only"]),
        "v\n"
    );

    // A client that does not trust the server's CA does not get through.
    let (bare, flags) = self::ctl(&server, &[]);
    let out = bare.run(&with(&flags, &["get", "k"]), None);
    assert!(!out.status.success(), "untrusted server accepted: {out:?}");
}

#[test]
fn client_cert_auth_admits_only_certificates_the_trusted_ca_signed() {
    let pki = pki();
    let server = start_client_cert_auth(&pki);
    let (ctl, flags) = ctl(
        &server,
        &[
            "--cacert",
            s(&pki.ca),
            "--cert",
            s(&pki.client_cert),
            "--key",
            s(&pki.client_key),
        ],
    );
    assert_eq!(ctl.ok(&with(&flags, &["put", "k", "v"])), "OK\n");
    assert_eq!(
        ctl.ok(&with(&flags, &["get", "k", "--print-value-only"])),
        "v\n"
    );

    for (what, extra) in [
        ("no client certificate", vec![]),
        (
            "a certificate from another CA",
            vec![
                "--cert",
                s(&pki.stranger_cert),
                "--key",
                s(&pki.stranger_key),
            ],
        ),
    ] {
        let mut f = vec!["--cacert", s(&pki.ca)];
        f.extend(extra);
        let (c, flags) = self::ctl(&server, &f);
        let out = c.run(&with(&flags, &["get", "k"]), None);
        assert!(!out.status.success(), "{what} accepted: {out:?}");
        if stock_etcdctl() {
            assert_eq!(
                error_line(&out.stderr),
                "Error: context deadline exceeded",
                "{what}"
            );
        }
    }
}

#[test]
fn auto_tls_serves_a_self_signed_certificate() {
    let server = TestServer::start_tls(&["--auto-tls"]);
    // Where etcd keeps its generated certificate too.
    let fixtures = server.data_dir().join("fixtures/client");
    assert!(fixtures.join("cert.pem").is_file());
    assert!(fixtures.join("key.pem").is_file());
    if stock_etcdctl() {
        // etcdctl 3.4 sets up TLS without certificate flags only when told the
        // transport is not insecure.
        let (ctl, flags) = ctl(
            &server,
            &["--insecure-transport=false", "--insecure-skip-tls-verify"],
        );
        assert_eq!(ctl.ok(&with(&flags, &["put", "k", "v"])), "OK\n");
    }
    // The generated certificate, trusted as it is.
    let cert = fixtures.join("cert.pem");
    let (ctl, flags) = ctl(&server, &["--cacert", s(&cert)]);
    assert_eq!(ctl.ok(&with(&flags, &["put", "k", "w"])), "OK\n");
}

#[test]
fn an_https_url_without_a_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = match target() {
        Target::Revkv => revkv_tests::server::revkv_bin(),
        Target::Etcd => "/usr/bin/etcd".into(),
    };
    let client = format!("https://127.0.0.1:{}", revkv_tests::free_port());
    let peer = format!("http://127.0.0.1:{}", revkv_tests::free_port());
    let out = std::process::Command::new(bin)
        .args(["--data-dir", s(&dir.path().join("d"))])
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .arg(format!("--initial-cluster=default={peer}"))
        .output()
        .expect("run the server");
    assert!(!out.status.success(), "started without a certificate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "TLS key/cert (--cert-file, --key-file) must be provided for client url {client} with HTTPS scheme"
    );
    assert!(stderr.contains(&want), "stderr: {stderr}");
}

/// revkv-client over TLS: both of its transports (unary calls on its own h2
/// connection, watches on tonic's channel), with a client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revkv_client_speaks_tls_with_a_client_certificate() {
    use revkv_client::{Client, ConnectOptions, Kv, TlsOptions, WatchOptions};
    let pki = pki();
    let server = start_client_cert_auth(&pki);
    let tls = TlsOptions::new()
        .with_ca_file(&pki.ca)
        .with_identity(&pki.client_cert, &pki.client_key);
    let client = Client::connect([server.tls_endpoint()], ConnectOptions::new().with_tls(tls))
        .await
        .expect("connect over TLS");
    let (_watcher, mut events) = client
        .watch()
        .watch("k", WatchOptions::new())
        .await
        .expect("watch over TLS");
    client.kv().put("k", "v").await.expect("put over TLS");
    let got = client.kv().get("k").await.expect("get over TLS");
    assert_eq!(got.kvs[0].value, b"v");
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
        .expect("watch response");
    assert_eq!(seen.events[0].kv.key, b"k");

    // Without the client certificate the server does not let it in.
    let refused = Client::connect(
        [server.tls_endpoint()],
        ConnectOptions::new()
            .with_dial_timeout(std::time::Duration::from_secs(1))
            .with_tls(TlsOptions::new().with_ca_file(&pki.ca)),
    )
    .await;
    if let Ok(c) = refused {
        // TLS 1.3 reports a refused client certificate after the handshake: the
        // first call fails instead.
        assert!(
            c.kv().get("k").await.is_err(),
            "admitted without a certificate"
        );
    }
}

/// Peer TLS with etcd's flags: three members on `https://` peer URLs with
/// `--peer-cert-file`/`--peer-key-file`, each requiring the others' certificates
/// (`--peer-client-cert-auth --peer-trusted-ca-file`), replicate writes and survive a
/// member's restart. The certificates serve both ends of a peer connection, as etcd's
/// do, so they allow server and client authentication.
#[test]
fn members_replicate_over_peer_tls() {
    let _g = revkv_tests::cluster::serial();
    let pki = pki();
    let args = [
        "--peer-cert-file",
        s(&pki.peer_cert),
        "--peer-key-file",
        s(&pki.peer_key),
        "--peer-client-cert-auth",
        "--peer-trusted-ca-file",
        s(&pki.ca),
    ];
    let mut c = TestCluster::start_peer_tls(3, &args);
    assert!(c.member(0).peer_url().starts_with("https://"));
    c.member(0).etcdctl().ok(&["put", "k", "v"]);
    for i in 0..3 {
        let m = c.member(i);
        revkv_tests::cluster::eventually(
            std::time::Duration::from_secs(10),
            "the write on every member",
            || {
                m.etcdctl()
                    .run(&["get", "k", "--print-value-only", "--consistency=s"], None)
                    .stdout
                    == "v\n"
            },
        );
    }
    // A follower forwards lease renewals to the leader over the peer connection.
    let leader = c.wait_leader(None, std::time::Duration::from_secs(10));
    let follower = c.member((leader + 1) % 3).etcdctl();
    let granted = follower.ok(&["lease", "grant", "60"]);
    let id = granted.split_whitespace().nth(1).expect("lease id");
    let renewed = follower.ok(&["lease", "keep-alive", "--once", id]);
    assert!(renewed.contains("keepalived with TTL"), "{renewed}");

    c.member_mut(1).stop();
    c.member_mut(1).restart();
    c.member(1).etcdctl().ok(&["put", "k2", "v2"]);
    assert_eq!(
        c.member(2)
            .etcdctl()
            .ok(&["get", "k2", "--print-value-only"]),
        "v2\n"
    );
}

/// `--peer-auto-tls`: self-signed peer certificates, which members accept from each
/// other without verification, as etcd's do.
#[test]
fn members_replicate_over_peer_auto_tls() {
    let _g = revkv_tests::cluster::serial();
    let c = TestCluster::start_peer_tls(3, &["--peer-auto-tls"]);
    c.member(0).etcdctl().ok(&["put", "k", "v"]);
    assert_eq!(
        c.member(2)
            .etcdctl()
            .ok(&["get", "k", "--print-value-only"]),
        "v\n"
    );
}
