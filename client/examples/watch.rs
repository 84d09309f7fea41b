//! Watch a prefix and print three rounds of events (this example makes the changes).
//!
//! `cargo run -p revkv-client --example watch -- 127.0.0.1:2379`

use revkv_client::{Client, ConnectOptions, Kv, WatchOptions};

#[tokio::main]
async fn main() -> revkv_client::Result<()> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2379".into());
    let client = Client::connect([endpoint], ConnectOptions::new()).await?;
    let (watcher, mut stream) = client
        .watch()
        .watch(
            "example/watch/",
            WatchOptions::new().with_prefix().with_prev_kv(),
        )
        .await?;
    let kv = client.kv();
    kv.put("example/watch/a", "1").await?;
    kv.put("example/watch/a", "2").await?;
    kv.delete("example/watch/a").await?;
    let mut seen = 0;
    while let Some(resp) = stream.next().await {
        let resp = resp?;
        for e in &resp.events {
            println!(
                "{:?} {} = {} (was {:?})",
                e.kind,
                String::from_utf8_lossy(&e.kv.key),
                String::from_utf8_lossy(&e.kv.value),
                e.prev_kv
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(&p.value).into_owned())
            );
            seen += 1;
        }
        if seen == 3 {
            watcher.cancel()?;
        }
        if resp.canceled {
            println!("watch canceled");
        }
    }
    Ok(())
}
