//! Start-up failures: one clear error line on stderr and a non-zero exit, the same
//! conditions under which etcd refuses to start.

use std::net::TcpListener;
use std::process::{Command, Output};

use revkv_tests::{free_port, server::revkv_bin, target, Target};

fn run_server(args: &[String]) -> Output {
    let bin = match target() {
        Target::Revkv => revkv_bin(),
        Target::Etcd => "/usr/bin/etcd".into(),
    };
    Command::new(bin)
        .args(args)
        .env_remove("ETCD_NAME")
        .output()
        .expect("spawn server")
}

fn flags(data_dir: &str, client_port: u16) -> Vec<String> {
    let peer = free_port();
    let client = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    [
        "--name",
        "default",
        "--data-dir",
        data_dir,
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        &format!("--initial-cluster=default={peer_url}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn taken_client_port_is_one_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = run_server(&flags(&tmp.path().join("d").to_string_lossy(), port));
    assert!(!out.status.success(), "server started on a taken port");
    let stderr = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    assert!(stderr.contains("already in use"), "stderr: {stderr}");
}

#[test]
fn unusable_data_dir_is_one_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let out = run_server(&flags(&file.join("data").to_string_lossy(), free_port()));
    assert!(
        !out.status.success(),
        "server started on an unusable data dir"
    );
    // Both name the directory they could not use (etcd: "error listing data dir: …").
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&*file.join("data").to_string_lossy()),
        "stderr: {stderr}"
    );
}
