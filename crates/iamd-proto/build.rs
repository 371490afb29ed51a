//! Compiles the repository's `proto/` (kept at the top, where clients
//! find it) with protox (no system protoc) and tonic-prost-build,
//! and writes the descriptor set that gRPC reflection serves.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto");
    let fds = protox::compile(["iamd/v1/authorizer.proto"], ["../../proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("iamd_descriptor.bin"), fds.encode_to_vec())?;
    // Decode errors are INVALID_ARGUMENT (src/codec.rs).
    // A signed request is rare and large: boxed, so that every other
    // request stays small.
    tonic_prost_build::configure()
        .codec_path("crate::codec::Codec")
        .boxed(".iamd.v1.AuthorizeRequest.signed")
        .compile_fds(fds)?;
    Ok(())
}
