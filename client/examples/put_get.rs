//! Put a key and read it back.
//!
//! `cargo run -p revkv-client --example put_get -- 127.0.0.1:2379`

use revkv_client::{Client, ConnectOptions, GetOptions, Kv};

#[tokio::main]
async fn main() -> revkv_client::Result<()> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2379".into());
    let client = Client::connect([endpoint], ConnectOptions::new()).await?;
    let kv = client.kv();
    let put = kv.put("example/greeting", "hello").await?;
    println!("put at revision {}", put.header.revision);
    let got = kv
        .get_with("example/", GetOptions::new().with_prefix())
        .await?;
    for kv in got.kvs {
        println!(
            "{} = {}",
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(&kv.value)
        );
    }
    Ok(())
}
