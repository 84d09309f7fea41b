//! Start-up failures: one clear error line on stderr and a non-zero exit, the same
//! conditions under which etcd refuses to start.

use std::net::TcpListener;
use std::process::Output;
use std::time::Duration;

use revkv_tests::free_port;
use revkv_tests::server::{run_until_exit, single_member_flags as flags};

fn run_server(args: &[String]) -> Output {
    run_until_exit(args, Duration::from_secs(30))
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
