//! The recording's hash chain, one core: a link over a 256 KiB payload (what the local
//! agent reads at a time) in each format version.
//!
//! `cargo bench -p hoop-plugin-audit --bench chain`.
#![allow(missing_docs)]

use divan::Bencher;
use divan::counter::BytesCount;
use hoop_plugin_audit::recording::{Digest, EventKind, FormatVersion};

const PAYLOAD: usize = 256 * 1024;

fn main() {
    divan::main();
}

fn link(b: Bencher<'_, '_>, version: FormatVersion) {
    // Not zeros: some hashes have shortcuts for them.
    let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 31 % 251) as u8).collect();
    let mut prev = Digest::from_bytes([7; 32]);
    b.counter(BytesCount::new(PAYLOAD)).bench_local(|| {
        prev = prev.chain_in(version, EventKind::Stdout, 1, &payload);
        prev
    });
}

#[divan::bench(sample_count = 100)]
fn link_256k_v1_sha256(b: Bencher<'_, '_>) {
    link(b, FormatVersion::V1);
}

#[divan::bench(sample_count = 100)]
fn link_256k_v2_blake3(b: Bencher<'_, '_>) {
    link(b, FormatVersion::V2);
}
