//! Runs the DLP engine on stdin and prints what it finds, one JSON object per line:
//! `{"type":"EMAIL_ADDRESS","start":12,"end":35}` (byte offsets into the input). Then
//! masks the whole input repeatedly for at least two seconds on one core and prints the
//! throughput to stderr as JSON. Used by `bench/presidio/compare.py` to compare with
//! Presidio on the same input; also a small example of the engine API.
//!
//! ```sh
//! cargo run --release -p hoop-plugin-dlp --example findings -- \
//!     EMAIL_ADDRESS,CREDIT_CARD_NUMBER,PHONE_NUMBER < input.txt
//! ```

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use hoop_plugin_dlp::engine::{Engine, EngineConfig, builtin_types};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let types: Vec<String> = match std::env::args().nth(1) {
        Some(list) if list != "all" => list.split(',').map(str::to_owned).collect(),
        _ => builtin_types().iter().map(|t| t.name.to_owned()).collect(),
    };
    let engine = Engine::new(EngineConfig::new(types))?;
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;

    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for finding in engine.findings(&input) {
        let line = serde_json::json!({
            "type": finding.info_type,
            "start": finding.start,
            "end": finding.end,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;

    let started = Instant::now();
    let mut rounds = 0u64;
    let mut masked = 0usize;
    while rounds == 0 || started.elapsed() < Duration::from_secs(2) {
        masked += engine.redact(&input).output.len();
        rounds += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes = input.len() as u64 * rounds;
    let report = serde_json::json!({
        "bytes": bytes,
        "rounds": rounds,
        "seconds": seconds,
        "mb_per_s": bytes as f64 / seconds / 1e6,
        "output_bytes": masked,
    });
    eprintln!("{report}");
    Ok(())
}
