//! `revkv-floor`: a gRPC server that answers every unary call the way a sole voter must
//! answer a Put, with nothing else in the way: the request's bytes are written to a
//! zero-filled log file and `fdatasync`ed on the one runtime thread that read them, then
//! an empty response (a valid, default `PutResponse`) goes back. No consensus, no index,
//! no storage engine, no thread hand-off.
//!
//! It exists to measure what the "≥ 90 % of the disk's fsync rate" bar asks of a
//! server on this machine: `scripts/compare` drives it with the same one-client
//! `revkv-bench put` as revkv and etcd, so its figure is the ceiling any server speaking
//! etcd's API over HTTP/2 on this stack can reach here (docs/BENCHMARKS.md, item 40).

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use tokio::net::{TcpListener, TcpStream};

/// Size of the zero-filled log file; appends wrap around inside it, as revkv's log
/// moves to its next pre-made segment.
const LOG_BYTES: u64 = 64 << 20;

/// A gRPC message frame holding an empty protobuf message: uncompressed, length 0.
const EMPTY_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:2379")]
    listen: SocketAddr,
    /// The log file to create (zero-filled, 64 MiB) and append each request to.
    #[arg(long)]
    log: PathBuf,
}

/// Appends each request to a pre-zeroed file and makes it durable before the response.
/// An append that would pass the end starts again at offset 0.
struct Log {
    file: File,
    len: u64,
    offset: u64,
}

impl Log {
    fn create(path: &Path, len: u64) -> Result<Log> {
        let mut file =
            File::create(path).with_context(|| format!("creating {}", path.display()))?;
        // Zero-filled rather than fallocated, as revkv's segments: an append into an
        // unwritten extent would make each fdatasync write metadata too.
        let zeros = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64);
            file.write_all(&zeros[..n as usize])?;
            left -= n;
        }
        file.sync_all()?;
        Ok(Log {
            file,
            len,
            offset: 0,
        })
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if self.offset + bytes.len() as u64 > self.len {
            self.offset = 0;
        }
        self.file.write_all_at(bytes, self.offset)?;
        self.offset += bytes.len() as u64;
        self.file.sync_data()?;
        Ok(())
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let log = Rc::new(std::cell::RefCell::new(Log::create(&cli.log, LOG_BYTES)?));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(cli.listen)
            .await
            .with_context(|| format!("listening on {}", cli.listen))?;
        loop {
            let (socket, _) = listener.accept().await?;
            let log = log.clone();
            tokio::task::spawn_local(async move {
                if let Err(e) = serve(socket, log).await {
                    eprintln!("revkv-floor: connection: {e:#}");
                }
            });
        }
    })
}

async fn serve(socket: TcpStream, log: Rc<std::cell::RefCell<Log>>) -> Result<()> {
    socket.set_nodelay(true)?;
    let mut conn = h2::server::handshake(socket).await?;
    while let Some(request) = conn.accept().await {
        let (request, respond) = request?;
        let log = log.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = answer(request, respond, &log).await {
                eprintln!("revkv-floor: call: {e:#}");
            }
        });
    }
    Ok(())
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    log: &std::cell::RefCell<Log>,
) -> Result<()> {
    let mut body = request.into_body();
    let mut message = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        message.extend_from_slice(&chunk);
    }
    log.borrow_mut().append(&message)?;
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())?;
    let mut stream = respond.send_response(head, false)?;
    stream.send_data(Bytes::from_static(EMPTY_MESSAGE), false)?;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    stream.send_trailers(trailers)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_land_in_order_and_wrap_at_the_end() {
        let dir = std::env::temp_dir().join(format!("revkv-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("log");
        let mut log = Log::create(&path, 8).expect("create");
        log.append(b"abc").expect("append");
        log.append(b"def").expect("append");
        assert_eq!(std::fs::read(&path).expect("read"), b"abcdef\0\0");
        // "ghi" does not fit in the two bytes left, so it starts over at 0.
        log.append(b"ghi").expect("append");
        assert_eq!(std::fs::read(&path).expect("read"), b"ghidef\0\0");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
