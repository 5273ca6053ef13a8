//! Generated gRPC code for the `hoop.v1` management API.
//!
//! The `.proto` files under `proto/hoop/v1/` at the top of the repository are the source of
//! truth; this crate compiles them at build time with protox, so no system `protoc` is
//! needed.

/// The `hoop.v1` package: messages, clients (`*_client`) and servers (`*_server`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("hoop.v1");
}

#[cfg(feature = "client")]
pub mod client;

/// The largest HTTP/2 frame the gateway's server and its clients accept (1 MiB; the
/// protocol's default is 16 KiB): a session's output message (up to 256 KiB) goes in one
/// frame rather than sixteen.
pub const HTTP2_MAX_FRAME: u32 = 1024 * 1024;
/// HTTP/2 flow-control window of one stream, for the gateway's server and its clients.
pub const HTTP2_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// HTTP/2 flow-control window of a whole connection, for the gateway's server and its
/// clients.
pub const HTTP2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// Encoded `FileDescriptorSet` of every hoop proto file (with its imports), for gRPC server
/// reflection and for rendering messages as canonical protobuf JSON.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hoop_descriptor.bin"));
