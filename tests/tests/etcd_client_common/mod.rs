//! What the `etcd_client_*` suites share.

// Each suite includes this module and uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use etcd_client::{Client, Error, WatchResponse, WatchStream};
use revkv_tests::TestServer;

/// A fresh server (revkv or etcd, per `REVKV_TEST_TARGET`) and an etcd-client on it.
pub async fn start() -> (TestServer, Client) {
    let server = TestServer::start();
    let client = Client::connect([server.endpoint()], None)
        .await
        .expect("connect etcd-client");
    (server, client)
}

/// The gRPC status of a failed call.
#[track_caller]
pub fn status<T: std::fmt::Debug>(r: Result<T, Error>) -> (tonic::Code, String) {
    match r {
        Err(Error::GRpcStatus(s)) => (s.code(), s.message().to_owned()),
        Err(other) => panic!("expected a gRPC status, got {other:?}"),
        Ok(v) => panic!("expected a gRPC error, got {v:?}"),
    }
}

/// The next watch response, within `wait`.
pub async fn next_within(stream: &mut WatchStream, wait: Duration) -> WatchResponse {
    tokio::time::timeout(wait, stream.message())
        .await
        .expect("watch response within the deadline")
        .expect("watch stream error")
        .expect("watch stream ended")
}
