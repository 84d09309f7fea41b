//! Grant a lease, attach a key, keep it alive for a few renewals, then let it expire.
//!
//! `cargo run -p revkv-client --example lease_keepalive -- 127.0.0.1:2379`

use revkv_client::{Client, ConnectOptions, Kv};

#[tokio::main]
async fn main() -> revkv_client::Result<()> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2379".into());
    let client = Client::connect([endpoint], ConnectOptions::new()).await?;
    let lease = client.lease().grant(5).await?;
    println!("lease {:016x} granted with TTL({}s)", lease.id, lease.ttl);
    client
        .kv()
        .with_lease(lease.id)
        .put("example/session", "alive")
        .await?;

    let mut keep = client.lease().keep_alive(lease.id).await?;
    for _ in 0..3 {
        match keep.next().await {
            Some(resp) => {
                let resp = resp?;
                println!("lease {:016x} keepalived with TTL({})", resp.id, resp.ttl);
            }
            None => break,
        }
    }
    // Dropping the handle stops the renewals; the lease expires after its TTL.
    drop(keep);
    let ttl = client.lease().time_to_live(lease.id, true).await?;
    println!("{}s left, keys {:?}", ttl.ttl, ttl.keys.len());
    Ok(())
}
