//! `hoop-bench`: measures the gateway against direct process spawns, side by side in one run.
//!
//! It starts a fresh `hoop-gateway` (SQLite, temporary data dir, default plugins with audit
//! on) and runs the scenarios given (all by default): `latency`, `throughput`, `streaming`,
//! `cli-streaming`, `idle`, `dlp`, `slack`, `runbooks` and `webhooks`; and, when asked for, `index` and `gateways`. Progress goes to stderr; the results go to stdout as a markdown table. See
//! BENCHMARKS.md at the top of the repository for how to read them.

mod cli;
mod corpus;
mod dlp;
mod gateway;
mod gateways;
mod index;
mod postgres;
mod report;
mod runbooks;
mod scenarios;
mod slack;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};

use crate::gateway::Gateway;
use crate::report::Report;

/// Benchmarks of hoop-gateway against direct process spawns (results: markdown on stdout).
#[derive(Debug, Parser)]
#[command(name = "hoop-bench")]
pub(crate) struct Options {
    /// The hoop-gateway binary to start [default: target/release/hoop-gateway, in the target
    /// dir this bench was built in].
    #[arg(long, value_name = "PATH")]
    gateway: Option<PathBuf>,

    /// Scenarios to run, in this order [default: all].
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,

    /// postgres: seconds of each pgbench run (-T).
    #[arg(long, default_value_t = 20)]
    pg_secs: u64,

    /// postgres: SSLMODE of both sides (the connection's env and the direct pgbench's URL);
    /// unset: neither says, so both use `prefer` (TLS, as the server offers it).
    #[arg(long)]
    pg_sslmode: Option<String>,

    /// latency: measured runs of each side (after the warm-up runs).
    #[arg(long, default_value_t = 500)]
    latency_runs: usize,

    /// latency: warm-up runs of each side, not measured.
    #[arg(long, default_value_t = 20)]
    warmup_runs: usize,

    /// throughput: concurrent clients (each on its own HTTP/2 connection) or tasks.
    #[arg(long, default_value_t = 16)]
    clients: usize,

    /// throughput: how long each side runs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    throughput_secs: f64,

    /// streaming: bytes of output (`head -c BYTES /dev/zero`).
    #[arg(long, default_value_t = 1 << 30)]
    stream_bytes: u64,

    /// idle: concurrent idle interactive sessions (`cat`) to open.
    #[arg(long, default_value_t = 1000)]
    idle_sessions: usize,

    /// idle-rounds: rounds of the idle scenario on the same gateway.
    #[arg(long, default_value_t = 5)]
    idle_rounds: usize,

    /// cli-streaming: the `hoop` CLI binary [default: `hoop` next to the gateway binary].
    #[arg(long, value_name = "PATH")]
    cli: Option<PathBuf>,

    /// cli-streaming: bytes of output (`head -c BYTES /dev/zero`).
    #[arg(long, default_value_t = 512 << 20)]
    cli_stream_bytes: u64,

    /// cli-streaming: runs of each side (hoop exec, raw pipe), alternating; the best is
    /// reported.
    #[arg(long, default_value_t = 3)]
    cli_runs: usize,

    /// idle: sessions per HTTP/2 connection (servers cap concurrent streams per connection).
    #[arg(long, default_value_t = 100)]
    streams_per_channel: usize,

    /// dlp: size of each generated input (PII-dense table, PII-free logs), in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    dlp_bytes: u64,

    /// dlp: measured runs of each side (dlp off, dlp on), alternating; the best is reported.
    #[arg(long, default_value_t = 2)]
    dlp_runs: usize,

    /// slack: reviews to post and approve by a click, one after the other.
    #[arg(long, default_value_t = 200)]
    slack_reviews: usize,

    /// webhooks: events queued before the receiver answers (deliveries/s).
    #[arg(long, default_value_t = 5000)]
    webhook_events: usize,

    /// gateways: reviews held on one gateway and approved through the other.
    #[arg(long, default_value_t = 200)]
    gateway_reviews: usize,

    /// webhooks: events sent one at a time (event-to-delivery latency).
    #[arg(long, default_value_t = 200)]
    webhook_latency_runs: usize,

    /// index: sessions to generate (each `--index-session-bytes` of recorded text).
    #[arg(long, default_value_t = 10_000)]
    index_sessions: usize,

    /// index: bytes of recorded text per session (half input, half the echoed output).
    #[arg(long, default_value_t = 100_000)]
    index_session_bytes: usize,

    /// index: runs of each query through SearchService.
    #[arg(long, default_value_t = 50)]
    index_query_runs: usize,

    /// index: runs of each `grep -r` baseline (the median is reported).
    #[arg(long, default_value_t = 3)]
    index_grep_runs: usize,
}

impl Options {
    fn throughput_duration(&self) -> Result<Duration> {
        Duration::try_from_secs_f64(self.throughput_secs)
            .map_err(|e| anyhow::anyhow!("--throughput-secs: {e}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Sequential exec of `true` through the gateway vs spawning `true` directly.
    Latency,
    /// Sessions/s with concurrent clients vs direct spawns/s with concurrent tasks.
    Throughput,
    /// MB/s of output through the gateway (audit on) vs a raw pipe.
    Streaming,
    /// MB/s of `hoop exec` (the real CLI) to /dev/null vs a raw pipe through `cat`.
    CliStreaming,
    /// Gateway RSS with many idle interactive sessions open.
    Idle,
    /// Gateway RSS after each of `--idle-rounds` rounds of the idle scenario.
    IdleRounds,
    /// MB/s of output through a session with the dlp plugin on vs off.
    Dlp,
    /// Slack plugin against a fake Slack: review.created → chat.postMessage, and a Socket
    /// Mode click → the held exec's release.
    Slack,
    /// A runbook run (render + start through the plugin) vs a plain Exec of the same
    /// script.
    Runbooks,
    /// Webhook deliveries/s to a local receiver and event-to-delivery latency.
    Webhooks,
    /// The indexer: generated sessions indexed live and rebuilt, 10 queries vs `grep -r`.
    /// Not in the default set (it writes about 1 GB): name it.
    Index,
    /// Two gateways on one PostgreSQL database (HOOP_TEST_POSTGRES_URL): approval-to-release
    /// latency across them, sessions/s on two vs one. Not in the default set.
    Gateways,
    /// PostgreSQL through `hoop connect` (HOOP_TEST_POSTGRES_URL): pgbench -S TPS vs direct,
    /// added p50 latency of a simple query, and both with dlp masking three columns. Not in
    /// the default set.
    Postgres,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Latency => "latency",
            Scenario::Throughput => "throughput",
            Scenario::Streaming => "streaming",
            Scenario::CliStreaming => "cli-streaming",
            Scenario::Idle => "idle",
            Scenario::IdleRounds => "idle-rounds",
            Scenario::Dlp => "dlp",
            Scenario::Slack => "slack",
            Scenario::Runbooks => "runbooks",
            Scenario::Webhooks => "webhooks",
            Scenario::Index => "index",
            Scenario::Gateways => "gateways",
            Scenario::Postgres => "postgres",
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    match run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("hoop-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The default gateway binary: `release/hoop-gateway` in the target dir this binary is in
/// (`target/<profile>/hoop-bench`), else `target/release/hoop-gateway`.
fn default_gateway() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("release").join("hoop-gateway")))
        .unwrap_or_else(|| PathBuf::from("target/release/hoop-gateway"))
}

/// Runs the scenarios; `Ok(false)` when one of them failed.
async fn run(options: Options) -> Result<bool> {
    let binary = options.gateway.clone().unwrap_or_else(default_gateway);
    if !binary.is_file() {
        bail!(
            "gateway binary {} not found: build it first with `cargo build --release -p hoop-gateway` (or pass --gateway PATH)",
            binary.display()
        );
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: hoop-bench is a debug build, so the client side is slow: run it with `cargo run --release -p hoop-bench`"
        );
    }
    let scenarios = if options.scenarios.is_empty() {
        vec![
            Scenario::Latency,
            Scenario::Throughput,
            Scenario::Streaming,
            Scenario::CliStreaming,
            Scenario::Idle,
            Scenario::Dlp,
            Scenario::Slack,
            Scenario::Runbooks,
            Scenario::Webhooks,
        ]
    } else {
        options.scenarios.clone()
    };

    // The runbooks scenario needs a repository in the gateway's config from the start.
    let repository = tempfile::Builder::new()
        .prefix("hoop-bench-runbooks-")
        .tempdir()?;
    let extra_toml = if scenarios.contains(&Scenario::Runbooks) {
        runbooks::make_repository(repository.path())?
    } else {
        String::new()
    };
    eprintln!("starting {} ...", binary.display());
    let mut gw = Gateway::start_with(&binary, &extra_toml).await?;
    eprintln!("gateway pid {} listening on {}", gw.pid(), gw.addr);

    let mut report = Report::default();
    report.note(format!("gateway binary: `{}`", binary.display()));
    let mut all_ok = true;
    for scenario in scenarios {
        let name = scenario.name();
        eprintln!("[{name}] start");
        let started = std::time::Instant::now();
        let result = match scenario {
            Scenario::Latency => scenarios::latency(&gw, &options, &mut report).await,
            Scenario::Throughput => scenarios::throughput(&gw, &options, &mut report).await,
            Scenario::Streaming => scenarios::streaming(&gw, &options, &mut report).await,
            Scenario::CliStreaming => cli::cli_streaming(&gw, &binary, &options, &mut report).await,
            Scenario::Idle => scenarios::idle(&gw, &options, &mut report).await,
            Scenario::IdleRounds => scenarios::idle_rounds(&gw, &options, &mut report).await,
            Scenario::Dlp => dlp::dlp(&gw, &options, &mut report).await,
            Scenario::Slack => slack::slack(&binary, &options, &mut report).await,
            Scenario::Runbooks => runbooks::runbooks(&gw, &options, &mut report).await,
            Scenario::Webhooks => webhooks::webhooks(&gw, &options, &mut report).await,
            Scenario::Index => index::index(&gw, &binary, &options, &mut report).await,
            Scenario::Gateways => gateways::gateways(&binary, &options, &mut report).await,
            Scenario::Postgres => postgres::postgres(&gw, &binary, &options, &mut report).await,
        };
        match result {
            Ok(()) => eprintln!("[{name}] done in {:.1} s", started.elapsed().as_secs_f64()),
            Err(err) => {
                all_ok = false;
                eprintln!("[{name}] FAILED: {err:#}");
                eprintln!("the gateway's last log lines:\n{}", gw.recent_logs());
                report.failed(name, &format!("{err:#}"));
            }
        }
        if !gw.is_running() {
            eprintln!(
                "the gateway is no longer running; its last log lines:\n{}",
                gw.recent_logs()
            );
            print!("{}", report.markdown());
            bail!("the gateway died during the {name} scenario");
        }
    }

    if let Err(err) = gw.stop().await {
        eprintln!("warning: stopping the gateway: {err:#}");
    }
    print!("{}", report.markdown());
    Ok(all_ok)
}
