//! Stack decorators over the KV handle: tracing, ordering, timeout, namespace, retry.
//!
//! `RUST_LOG=debug cargo run -p revkv-client --example decorators -- 127.0.0.1:2379`

use std::time::Duration;

use revkv_client::{
    Client, ConnectOptions, GetOptions, Kv, Namespace, Ordering, Retry, RetryPolicy, Timeout,
    Traced,
};

#[tokio::main]
async fn main() -> revkv_client::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2379".into());
    let client = Client::connect([endpoint], ConnectOptions::new()).await?;

    // Outermost first: trace each op, reject stale answers, bound it, confine it to
    // "app/", and retry what is safe to retry.
    let kv = Traced::new(Ordering::new(Timeout::new(
        Namespace::new(Retry::new(client.kv(), RetryPolicy::default()), "app/"),
        Duration::from_secs(5),
    )));
    kv.put("config", "v1").await?;
    let lease = client.lease().grant(30).await?;
    (&kv).with_lease(lease.id).put("session", "me").await?;

    let all = kv.get_with("", GetOptions::new().with_prefix()).await?;
    for kv in all.kvs {
        println!(
            "{} = {} (lease {:x})",
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(&kv.value),
            kv.lease
        );
    }
    let raw = client.kv().get("app/config").await?;
    println!("stored as {:?}", String::from_utf8_lossy(&raw.kvs[0].key));
    Ok(())
}
