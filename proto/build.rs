//! Generates the Rust code for the .proto files under `proto/` with
//! tonic-prost-build, using the vendored protoc so no system protoc is needed.

use std::path::PathBuf;

const PROTO_DIR: &str = "proto";

const PROTOS: &[&str] = &[
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/etcdserverpb/rpc.proto",
    "proto/revkvpb/internal.proto",
    "proto/revkvpb/peer.proto",
    "proto/revkvpb/forward.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/v3electionpb/v3election.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let protoc: PathBuf = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);

    // The descriptors of every message, for the JSON gateway's proto3 JSON.
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join("descriptors.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptors)
        .build_server(true)
        .build_client(true)
        // Methods a service does not implement yet answer Unimplemented.
        .generate_default_stubs(true)
        // Smaller starting buffers than tonic's 8 KiB (see `src/codec.rs`).
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_with_config(config, PROTOS, &[PROTO_DIR])?;
    Ok(())
}
