//! What the `etcd_client_*` suites share.

use etcd_client::Client;
use revkv_tests::TestServer;

/// A fresh server (revkv or etcd, per `REVKV_TEST_TARGET`) and an etcd-client on it.
pub async fn start() -> (TestServer, Client) {
    let server = TestServer::start();
    let client = Client::connect([server.endpoint()], None)
        .await
        .expect("connect etcd-client");
    (server, client)
}
