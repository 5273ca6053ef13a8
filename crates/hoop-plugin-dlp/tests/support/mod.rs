//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod corpus;

use hoop_plugin_dlp::engine::{Engine, EngineConfig};

/// An engine with every built-in type, default style.
pub fn all() -> Engine {
    Engine::new(EngineConfig::all_builtin()).unwrap()
}

/// Redact `s` with `e` and return the output as a string (lossy).
pub fn red(e: &Engine, s: &str) -> String {
    String::from_utf8_lossy(&e.redact(s.as_bytes()).output).into_owned()
}

/// Stream `input` through a redactor in the given chunk sizes (cycled), flushing at the
/// end; checks the holdback bound after every push.
pub fn stream_chunks(e: &Engine, input: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut s = e.stream();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < input.len() {
        let n = sizes[k % sizes.len()].max(1).min(input.len() - pos);
        s.push(&input[pos..pos + n], &mut out);
        assert!(s.held() <= hoop_plugin_dlp::engine::MAX_HOLDBACK);
        pos += n;
        k += 1;
    }
    s.flush(&mut out);
    assert_eq!(s.held(), 0);
    out
}
