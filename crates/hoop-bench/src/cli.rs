//! `cli-streaming`: the real `hoop` CLI as the client. `hoop exec` of a connection running
//! `head -c N /dev/zero`, its stdout to `/dev/null`, audit recording every byte, against a
//! raw pipe of the same bytes (`head -c N /dev/zero | cat > /dev/null`), alternating in the
//! same run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::Options;
use crate::gateway::{ADMIN_TOKEN, Gateway};
use crate::report::{Report, Row, mb};
use crate::scenarios::{CpuMeter, CpuUsage, EXEC_TIMEOUT, ensure_connection};

/// Goal: `hoop exec` at this fraction of a raw pipe's MB/s, or more.
const CLI_STREAMING_GOAL: f64 = 0.35;

/// The `hoop` binary: `--cli`, else `hoop` next to the gateway binary.
fn cli_binary(options: &Options, gateway: &Path) -> PathBuf {
    options.cli.clone().unwrap_or_else(|| {
        gateway
            .parent()
            .map_or_else(|| PathBuf::from("hoop"), |dir| dir.join("hoop"))
    })
}

/// The recordings in the gateway's data dir now.
fn recordings(gw: &Gateway) -> HashSet<PathBuf> {
    let dir = gw.recording_path("x");
    let Some(dir) = dir.parent() else {
        return HashSet::new();
    };
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// One `hoop exec`; returns its wall time.
async fn cli_run(cli: &Path, gw: &Gateway, connection: &str) -> Result<Duration> {
    let t = Instant::now();
    let mut child = Command::new(cli)
        .args(["exec", connection])
        .env("HOOP_GATEWAY", format!("http://{}", gw.addr))
        .env("HOOP_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", cli.display()))?;
    let mut stderr = child.stderr.take().context("hoop's stderr is not piped")?;
    let status = tokio::time::timeout(EXEC_TIMEOUT, child.wait())
        .await
        .context("hoop exec timed out")?
        .context("waiting for hoop exec")?;
    let elapsed = t.elapsed();
    if !status.success() {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        bail!(
            "hoop exec {connection} exited with {status}: {}",
            text.trim()
        );
    }
    Ok(elapsed)
}

/// One raw pipe of the same bytes through `cat`; returns its wall time.
async fn pipe_run(bytes: u64) -> Result<Duration> {
    let t = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {bytes} /dev/zero | cat > /dev/null"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("cannot run the raw pipe")?;
    if !status.success() {
        bail!("the raw pipe exited with {status}");
    }
    Ok(t.elapsed())
}

/// Waits until no session of `connection` is open (their recordings closed), then deletes
/// the recordings that were not there `before`; returns their total size.
async fn settle_and_delete(
    gw: &Gateway,
    connection: &str,
    before: &HashSet<PathBuf>,
) -> Result<u64> {
    let channel = gw.channel().await?;
    let give_up = Instant::now() + Duration::from_secs(30);
    while gw.open_sessions(channel.clone(), connection).await? > 0 {
        if Instant::now() >= give_up {
            bail!("sessions of `{connection}` still open 30 s after their clients ended");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut size = 0;
    for path in recordings(gw).difference(before) {
        size += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(path).with_context(|| format!("cannot delete {}", path.display()))?;
    }
    Ok(size)
}

/// `cli-streaming`: `hoop exec` of `head -c N /dev/zero` to `/dev/null` vs a raw pipe,
/// `--cli-runs` of each, alternating; the best of each side is reported.
pub(crate) async fn cli_streaming(
    gw: &Gateway,
    gateway_binary: &Path,
    options: &Options,
    report: &mut Report,
) -> Result<()> {
    let cli = cli_binary(options, gateway_binary);
    if !cli.is_file() {
        bail!(
            "the hoop CLI {} is not built: `cargo build --release -p hoop-cli` (or pass --cli PATH)",
            cli.display()
        );
    }
    let bytes = options.cli_stream_bytes;
    let connection = format!("bench-stream-{bytes}");
    let size = bytes.to_string();
    ensure_connection(gw, &connection, &["head", "-c", &size, "/dev/zero"]).await?;
    let runs = options.cli_runs.max(1);
    let mut cli_times = Vec::with_capacity(runs);
    let mut pipe_times = Vec::with_capacity(runs);
    let mut cpu = CpuUsage::default();
    let mut recorded = Vec::with_capacity(runs);
    for run in 1..=runs {
        let before = recordings(gw);
        let meter = CpuMeter::start(gw)?;
        let t = cli_run(&cli, gw, &connection).await?;
        cpu += meter.usage()?;
        cli_times.push(t);
        eprintln!(
            "  run {run}/{runs}: hoop exec {:.2} s, {:.0} MB/s",
            t.as_secs_f64(),
            bytes as f64 / 1e6 / t.as_secs_f64()
        );
        let size = settle_and_delete(gw, &connection, &before).await?;
        if size < bytes {
            bail!(
                "the recording of the hoop exec session holds {size} bytes, less than the {bytes} of output"
            );
        }
        recorded.push(size);
        let t = pipe_run(bytes).await?;
        pipe_times.push(t);
        eprintln!(
            "  run {run}/{runs}: raw pipe {:.2} s, {:.0} MB/s",
            t.as_secs_f64(),
            bytes as f64 / 1e6 / t.as_secs_f64()
        );
    }
    let rate = |t: &Duration| bytes as f64 / 1e6 / t.as_secs_f64();
    let best = |times: &[Duration]| times.iter().min().copied().unwrap_or_default();
    let (c, p) = (best(&cli_times), best(&pipe_times));
    let ratio = rate(&c) / rate(&p);
    report.row(Row {
        scenario: "cli-streaming".to_owned(),
        metric: format!("MB/s, `hoop exec` of {} to /dev/null", mb(bytes)),
        gateway: format!("{:.0} MB/s ({:.2} s)", rate(&c), c.as_secs_f64()),
        baseline: format!("{:.0} MB/s ({:.2} s)", rate(&p), p.as_secs_f64()),
        ratio: format!("{ratio:.2}×"),
        goal: format!("≥ {CLI_STREAMING_GOAL:.2}×"),
        met: Some(ratio >= CLI_STREAMING_GOAL),
    });
    let list = |times: &[Duration]| {
        times
            .iter()
            .map(|t| format!("{:.0}", rate(t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    report.note(format!(
        "cli-streaming: best of {runs} alternating runs; hoop exec MB/s {}, raw pipe MB/s {}; recordings {} each (checked, then deleted); hoop exec side {cpu} (the bench client here is the `hoop` process)",
        list(&cli_times),
        list(&pipe_times),
        recorded
            .first()
            .map_or_else(|| "-".to_owned(), |size| mb(*size))
    ));
    Ok(())
}
