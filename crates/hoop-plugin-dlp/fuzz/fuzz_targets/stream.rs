//! Streaming equals one-shot for fuzzer-chosen inputs and chunkings; the holdback bound
//! holds; nothing panics.
//!
//! `cargo +nightly fuzz run stream` (from `crates/hoop-plugin-dlp`). The first byte of the
//! input says how many of the next bytes are split points (each a chunk length, 1-256);
//! the rest is the text.
#![no_main]

use std::sync::LazyLock;

use hoop_plugin_dlp::engine::{CustomType, Engine, EngineConfig, MAX_HOLDBACK, Style};
use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let mut config = EngineConfig::all_builtin();
    config.custom = vec![
        CustomType::regex("EMPLOYEE_ID", r"\bE\d{6}\b"),
        CustomType::keywords("PROJECT", ["apollo", "Project X"], true),
    ];
    config
        .styles
        .insert("CREDIT_CARD_NUMBER".into(), Style::Partial);
    config.styles.insert("EMAIL_ADDRESS".into(), Style::Hash);
    config.styles.insert("PRIVATE_KEY".into(), Style::Mask);
    config.hash_key = b"fuzz".to_vec();
    match Engine::new(config) {
        Ok(engine) => engine,
        Err(e) => panic!("engine: {e}"),
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (splits, input) = rest.split_at(n);

    let one = ENGINE.redact(input);

    let mut s = ENGINE.stream();
    let mut out = Vec::new();
    let mut pos = 0;
    for &k in splits {
        let len = (usize::from(k) + 1).min(input.len() - pos);
        s.push(&input[pos..pos + len], &mut out);
        assert!(s.held() <= MAX_HOLDBACK);
        pos += len;
    }
    s.push(&input[pos..], &mut out);
    assert!(s.held() <= MAX_HOLDBACK);
    s.flush(&mut out);
    assert_eq!(s.held(), 0);
    assert!(out == one.output, "stream and one-shot differ");
    assert_eq!(s.counts(), one.counts);
    assert_eq!(s.masked_bytes(), one.masked_bytes);
    let found: u64 = one.counts.values().sum();
    assert!(one.output.len() as u64 <= input.len() as u64 + found * ENGINE.max_tag_len() as u64);
});
