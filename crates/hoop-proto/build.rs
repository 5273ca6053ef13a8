//! Compiles `proto/hoop/v1/*.proto` with protox (a pure-Rust protobuf compiler: no system
//! `protoc` needed) and generates the tonic client and server code from the descriptors.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "hoop/v1/agent.proto",
        "hoop/v1/connection.proto",
        "hoop/v1/dlp.proto",
        "hoop/v1/event.proto",
        "hoop/v1/instance.proto",
        "hoop/v1/plugin.proto",
        "hoop/v1/review.proto",
        "hoop/v1/runbook.proto",
        "hoop/v1/search.proto",
        "hoop/v1/session.proto",
        "hoop/v1/user.proto",
        "hoop/v1/webhook.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("hoop_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Maps as BTreeMap: deterministic order in code, JSON and tables.
        .btree_map(".")
        // Output and input bytes as `Bytes`: a decoded frame's data is a slice of the
        // frame, and a chunk passes from the agent through the plugins to the client's
        // stream without being copied.
        .bytes(".hoop.v1.AgentOutput.data")
        .bytes(".hoop.v1.AgentInput.data")
        .bytes(".hoop.v1.SessionOutput.data")
        .build_client(true)
        .build_server(true)
        // No `Client::connect` constructor: it would clash with the `Connect` RPC of
        // SessionService. Clients build a `Channel` and call `Client::new`.
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
