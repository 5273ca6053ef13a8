//! Engine throughput, one core, every built-in type on.
//!
//! `cargo bench -p hoop-plugin-dlp --bench engine`. Inputs are generated deterministically:
//! 64 MiB of PII-free logs and prose, and 32 MiB of psql output where every row has an
//! e-mail address, a card number and a phone number. Each is masked one-shot
//! (`Engine::redact`, which allocates a fresh output buffer per call, and
//! `Engine::redact_into` with a reused buffer), streamed in 4 KiB chunks
//! (`StreamRedactor`, output buffer reused per chunk) and streamed in 256 KiB chunks into a
//! fresh output buffer each, as the plugin does with a session's output (the local agent
//! reads up to 256 KiB at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/corpus.rs"]
mod corpus;

use std::sync::LazyLock;

use divan::Bencher;
use divan::counter::BytesCount;
use hoop_plugin_dlp::engine::{Engine, EngineConfig};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(EngineConfig::all_builtin()).unwrap());
static CLEAN: LazyLock<Vec<u8>> = LazyLock::new(|| corpus::clean_logs(64 << 20, 7));
static DENSE: LazyLock<Vec<u8>> = LazyLock::new(|| corpus::dense_table(32 << 20, 11));

fn main() {
    // Build inputs before timing starts.
    LazyLock::force(&ENGINE);
    LazyLock::force(&CLEAN);
    LazyLock::force(&DENSE);
    divan::main();
}

fn one_shot(b: Bencher<'_, '_>, input: &'static [u8]) {
    b.counter(BytesCount::of_slice(input))
        .bench(|| divan::black_box(ENGINE.redact(input)).output.len());
}

fn one_shot_reused(b: Bencher<'_, '_>, input: &'static [u8]) {
    let mut out = Vec::with_capacity(input.len() + input.len() / 8);
    b.counter(BytesCount::of_slice(input)).bench_local(|| {
        out.clear();
        ENGINE.redact_into(input, &mut out).masked_bytes
    });
}

fn stream_4k(b: Bencher<'_, '_>, input: &'static [u8]) {
    b.counter(BytesCount::of_slice(input)).bench(|| {
        let mut s = ENGINE.stream();
        let mut out = Vec::with_capacity(8192);
        let mut total = 0;
        for chunk in input.chunks(4096) {
            s.push(chunk, &mut out);
            total += out.len();
            out.clear();
        }
        s.flush(&mut out);
        total + out.len()
    });
}

/// What the plugin does per chunk of a session's output: a fresh output buffer (it becomes
/// the chunk's `Bytes`).
fn stream_256k(b: Bencher<'_, '_>, input: &'static [u8]) {
    b.counter(BytesCount::of_slice(input)).bench(|| {
        let mut s = ENGINE.stream();
        let mut total = 0;
        for chunk in input.chunks(256 * 1024) {
            let mut out = Vec::with_capacity(chunk.len() + 64);
            s.push(chunk, &mut out);
            total += divan::black_box(bytes::Bytes::from(out)).len();
        }
        let mut out = Vec::new();
        s.flush(&mut out);
        total + out.len()
    });
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn clean_logs_one_shot(b: Bencher<'_, '_>) {
    one_shot(b, &CLEAN);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn clean_logs_one_shot_reused_buffer(b: Bencher<'_, '_>) {
    one_shot_reused(b, &CLEAN);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn clean_logs_stream_4k(b: Bencher<'_, '_>) {
    stream_4k(b, &CLEAN);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn clean_logs_stream_256k(b: Bencher<'_, '_>) {
    stream_256k(b, &CLEAN);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn dense_table_one_shot(b: Bencher<'_, '_>) {
    one_shot(b, &DENSE);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn dense_table_one_shot_reused_buffer(b: Bencher<'_, '_>) {
    one_shot_reused(b, &DENSE);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn dense_table_stream_4k(b: Bencher<'_, '_>) {
    stream_4k(b, &DENSE);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn dense_table_stream_256k(b: Bencher<'_, '_>) {
    stream_256k(b, &DENSE);
}
