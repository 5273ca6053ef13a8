//! The scenarios: each runs the gateway side and the direct side in the same run and adds
//! rows (and notes) to the report.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use pb::session_event::Event;
use pb::session_service_client::SessionServiceClient;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::Options;
use crate::gateway::{self, CpuTimes, Gateway, authed};
use crate::report::{Report, Row, Stats, added_ms, mb, ms};

/// Connection running `true`.
pub(crate) const TRUE_CONNECTION: &str = "bench-true";
/// Connection running `cat` (idle interactive sessions).
const CAT_CONNECTION: &str = "bench-cat";
/// Read buffer of the raw-pipe baseline: the size the agent read its targets' output in
/// before issue 17 (now up to 256 KiB), kept so that ratios compare across runs.
const PIPE_CHUNK: usize = 32 * 1024;
/// Longest one exec may take before the bench gives up on it.
pub(crate) const EXEC_TIMEOUT: Duration = Duration::from_secs(600);
/// Sessions opened at the same time while setting up the idle scenario.
const IDLE_OPEN_CONCURRENCY: usize = 50;

/// Added p50 latency goal.
const LATENCY_GOAL: Duration = Duration::from_millis(5);
/// Sessions/s goal.
const THROUGHPUT_GOAL: f64 = 300.0;
/// Streaming goal, MB/s.
const STREAMING_GOAL: f64 = 200.0;
/// RSS goal with the idle sessions open, bytes.
const IDLE_RSS_GOAL: u64 = 256 * 1024 * 1024;
/// Goal of `idle-rounds`: RSS after the last round over RSS after the first.
const IDLE_ROUNDS_GOAL: f64 = 1.2;

/// What an exec session produced (counts only: output is not kept).
#[derive(Debug, Default)]
pub(crate) struct ExecOutcome {
    pub(crate) session_id: String,
    pub(crate) stdout_bytes: u64,
    pub(crate) stderr_bytes: u64,
    pub(crate) exit_code: Option<i32>,
    pub(crate) reason: String,
}

/// Runs `Exec` on `connection` to its end.
async fn exec(client: &mut SessionServiceClient<Channel>, connection: &str) -> Result<ExecOutcome> {
    exec_with(client, connection, |_| {}).await
}

/// Runs `Exec` on `connection` to its end, handing every chunk of stdout to `on_stdout`.
pub(crate) async fn exec_with(
    client: &mut SessionServiceClient<Channel>,
    connection: &str,
    mut on_stdout: impl FnMut(&[u8]),
) -> Result<ExecOutcome> {
    let request = pb::ExecRequest {
        connection: connection.to_owned(),
        ..Default::default()
    };
    let mut stream = client
        .exec(authed(request))
        .await
        .context("Exec")?
        .into_inner();
    let mut outcome = ExecOutcome::default();
    while let Some(event) = stream.message().await.context("Exec stream")? {
        match event.event {
            Some(Event::Started(s)) => outcome.session_id = s.session_id,
            Some(Event::Output(o)) => {
                let n = o.data.len() as u64;
                if o.stream == pb::OutputStream::Stderr as i32 {
                    outcome.stderr_bytes += n;
                } else {
                    outcome.stdout_bytes += n;
                    on_stdout(&o.data);
                }
            }
            Some(Event::Exit(e)) => {
                outcome.exit_code = Some(e.exit_code);
                outcome.reason = e.reason;
            }
            // The bench's connections have no reviewers: nothing is held.
            Some(Event::Held(_)) | None => {}
        }
    }
    Ok(outcome)
}

/// Runs `Exec` of `true` and checks that it succeeded.
pub(crate) async fn exec_true(client: &mut SessionServiceClient<Channel>) -> Result<()> {
    let outcome = tokio::time::timeout(EXEC_TIMEOUT, exec(client, TRUE_CONNECTION))
        .await
        .context("exec of `true` timed out")??;
    if outcome.exit_code != Some(0) {
        bail!(
            "exec of `true` through the gateway ended with exit {:?} ({})",
            outcome.exit_code,
            outcome.reason
        );
    }
    Ok(())
}

/// Spawns `true` directly, on pipes as the gateway does, and waits for it.
async fn direct_true() -> Result<()> {
    let child = Command::new("true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot spawn `true`")?;
    let output = child
        .wait_with_output()
        .await
        .context("waiting for `true`")?;
    if !output.status.success() {
        bail!("`true` exited with {}", output.status);
    }
    Ok(())
}

/// Creates a command connection unless it exists already.
pub(crate) async fn ensure_connection(gw: &Gateway, name: &str, argv: &[&str]) -> Result<()> {
    match gw.create_command_connection(name, argv).await {
        Ok(()) => Ok(()),
        Err(err)
            if err
                .downcast_ref::<tonic::Status>()
                .is_some_and(|s| s.code() == tonic::Code::AlreadyExists) =>
        {
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// CPU used by the gateway, by its local agent (which runs the sessions), by the sessions'
/// processes (reaped by the agent) and by this bench between two points.
pub(crate) struct CpuMeter {
    pid: String,
    /// The local agent's pid, if it was found.
    agent: Option<String>,
    ticks: f64,
    gateway: CpuTimes,
    agent_start: CpuTimes,
    bench: CpuTimes,
    started: Instant,
}

/// The gateway's local agent: its child whose command line names `local-agent`.
fn local_agent_pid(gateway: &str) -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .to_owned();
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (ppid == gateway && String::from_utf8_lossy(&cmdline).contains("local-agent"))
                .then_some(pid)
        })
}

impl CpuMeter {
    pub(crate) fn start(gw: &Gateway) -> Result<CpuMeter> {
        let pid = gw.pid().to_string();
        let ticks = gateway::clock_ticks();
        let agent = local_agent_pid(&pid);
        let agent_start = agent
            .as_deref()
            .and_then(|a| gateway::cpu_times(a, ticks).ok())
            .unwrap_or_default();
        Ok(CpuMeter {
            gateway: gateway::cpu_times(&pid, ticks)?,
            bench: gateway::cpu_times("self", ticks)?,
            agent,
            agent_start,
            pid,
            ticks,
            started: Instant::now(),
        })
    }

    /// `gateway X s (Y% of one core), targets Z s, bench client W s over T s`.
    fn summary(&self) -> Result<String> {
        Ok(self.usage()?.to_string())
    }

    /// The CPU used since [`CpuMeter::start`].
    pub(crate) fn usage(&self) -> Result<CpuUsage> {
        let wall = self.started.elapsed().as_secs_f64();
        let gateway = gateway::cpu_times(&self.pid, self.ticks)?.since(self.gateway);
        let bench = gateway::cpu_times("self", self.ticks)?.since(self.bench);
        // The agent's children (supervisors and the programs under them) are reaped by it.
        let agent = self
            .agent
            .as_deref()
            .and_then(|a| gateway::cpu_times(a, self.ticks).ok())
            .map(|now| now.since(self.agent_start))
            .unwrap_or_default();
        Ok(CpuUsage {
            wall,
            gateway: gateway.own,
            agent: agent.own,
            targets: gateway.children + agent.children,
            bench: bench.own + bench.children,
        })
    }
}

/// CPU seconds used over `wall` seconds; adds up over several measured stretches.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUsage {
    pub(crate) wall: f64,
    pub(crate) gateway: f64,
    /// The local agent itself (not the sessions it runs).
    pub(crate) agent: f64,
    pub(crate) targets: f64,
    pub(crate) bench: f64,
}

impl std::ops::AddAssign for CpuUsage {
    fn add_assign(&mut self, other: CpuUsage) {
        self.wall += other.wall;
        self.gateway += other.gateway;
        self.agent += other.agent;
        self.targets += other.targets;
        self.bench += other.bench;
    }
}

impl std::fmt::Display for CpuUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wall = self.wall.max(f64::MIN_POSITIVE);
        write!(
            f,
            "CPU over {:.1} s: gateway {:.1} s ({:.0}% of one core), local agent {:.1} s ({:.0}%), sessions' processes {:.1} s, bench client {:.1} s ({:.0}%)",
            self.wall,
            self.gateway,
            100.0 * self.gateway / wall,
            self.agent,
            100.0 * self.agent / wall,
            self.targets,
            self.bench,
            100.0 * self.bench / wall,
        )
    }
}

/// `latency`: sequential exec of `true` through the gateway vs spawning `true` directly,
/// interleaved so that both sides see the same machine load.
pub(crate) async fn latency(gw: &Gateway, options: &Options, report: &mut Report) -> Result<()> {
    ensure_connection(gw, TRUE_CONNECTION, &["true"]).await?;
    let mut client = SessionServiceClient::new(gw.channel().await?);
    eprintln!("  warm-up: {} runs of each side", options.warmup_runs);
    for _ in 0..options.warmup_runs {
        exec_true(&mut client).await?;
        direct_true().await?;
    }
    let n = options.latency_runs;
    let mut via_gateway = Vec::with_capacity(n);
    let mut direct = Vec::with_capacity(n);
    let meter = CpuMeter::start(gw)?;
    for i in 0..n {
        let t = Instant::now();
        exec_true(&mut client).await?;
        via_gateway.push(t.elapsed());
        let t = Instant::now();
        direct_true().await?;
        direct.push(t.elapsed());
        if (i + 1).is_multiple_of(100) {
            eprintln!("  {}/{n} runs of each side", i + 1);
        }
    }
    let g = Stats::of(&via_gateway).context("no latency samples")?;
    let d = Stats::of(&direct).context("no latency samples")?;
    let added_p50 = g.p50.saturating_sub(d.p50);
    let name = "latency";
    let row = |metric: &str, gw: Duration, base: Duration, goal: &str, met| Row {
        scenario: name.to_owned(),
        metric: metric.to_owned(),
        gateway: ms(gw),
        baseline: ms(base),
        ratio: added_ms(gw, base),
        goal: goal.to_owned(),
        met,
    };
    report.row(row(
        &format!("exec `true` p50 (n={n})"),
        g.p50,
        d.p50,
        "≤ 5 ms added",
        Some(added_p50 <= LATENCY_GOAL),
    ));
    report.row(row(
        &format!("exec `true` p99 (n={n})"),
        g.p99,
        d.p99,
        "-",
        None,
    ));
    report.row(row(
        &format!("exec `true` mean (n={n})"),
        g.mean,
        d.mean,
        "-",
        None,
    ));
    report.note(format!(
        "latency: max {} through the gateway, {} direct; {}",
        ms(g.max),
        ms(d.max),
        meter.summary()?
    ));
    Ok(())
}

/// Runs `work` on `tasks` concurrent tasks until `duration` is over; returns how many runs
/// completed, their latencies, and the wall time until the last task finished.
pub(crate) async fn run_concurrently<F, Fut, S>(
    states: Vec<S>,
    duration: Duration,
    work: F,
) -> Result<(u64, Vec<Duration>, Duration)>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = Result<S>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = JoinSet::new();
    for state in states {
        set.spawn(async move {
            let mut state = state;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                state = work(state).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = set.join_next().await {
        all.extend(joined.context("a client task failed")??);
    }
    let elapsed = started.elapsed();
    Ok((all.len() as u64, all, elapsed))
}

/// `throughput`: sessions/s with concurrent clients vs direct spawns/s with concurrent
/// tasks.
pub(crate) async fn throughput(gw: &Gateway, options: &Options, report: &mut Report) -> Result<()> {
    ensure_connection(gw, TRUE_CONNECTION, &["true"]).await?;
    let duration = options.throughput_duration()?;
    let clients = options.clients.max(1);
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients {
        sessions.push(SessionServiceClient::new(gw.channel().await?));
    }
    // Warm-up: every connection runs one session.
    for client in &mut sessions {
        exec_true(client).await?;
    }

    eprintln!(
        "  gateway: {clients} clients (one HTTP/2 connection each) for {:.0} s",
        duration.as_secs_f64()
    );
    let meter = CpuMeter::start(gw)?;
    let (gw_count, gw_latencies, gw_elapsed) =
        run_concurrently(sessions, duration, |mut client| async move {
            exec_true(&mut client).await?;
            Ok(client)
        })
        .await?;
    let cpu = meter.summary()?;
    let gw_rate = gw_count as f64 / gw_elapsed.as_secs_f64();
    eprintln!("  gateway: {gw_count} sessions, {gw_rate:.0}/s");

    eprintln!(
        "  direct: {clients} tasks spawning `true` for {:.0} s",
        duration.as_secs_f64()
    );
    let (d_count, d_latencies, d_elapsed) =
        run_concurrently(vec![(); clients], duration, |()| async move {
            direct_true().await?;
            Ok(())
        })
        .await?;
    let d_rate = d_count as f64 / d_elapsed.as_secs_f64();
    eprintln!("  direct: {d_count} spawns, {d_rate:.0}/s");

    report.row(Row {
        scenario: "throughput".to_owned(),
        metric: format!("sessions/s, {clients} concurrent clients"),
        gateway: format!(
            "{gw_rate:.0}/s ({gw_count} in {:.1} s)",
            gw_elapsed.as_secs_f64()
        ),
        baseline: format!(
            "{d_rate:.0}/s ({d_count} in {:.1} s)",
            d_elapsed.as_secs_f64()
        ),
        ratio: format!("{:.2}×", gw_rate / d_rate),
        goal: "≥ 300/s".to_owned(),
        met: Some(gw_rate >= THROUGHPUT_GOAL),
    });
    if let (Some(g), Some(d)) = (Stats::of(&gw_latencies), Stats::of(&d_latencies)) {
        report.note(format!(
            "throughput: latency under load p50/p99 {}/{} through the gateway, {}/{} direct",
            ms(g.p50),
            ms(g.p99),
            ms(d.p50),
            ms(d.p99)
        ));
    }
    report.note(format!("throughput (gateway side): {cpu}"));
    Ok(())
}

/// Waits until session `id` is no longer open (its recording is closed), for up to 30 s.
async fn wait_settled(gw: &Gateway, id: &str) -> Result<String> {
    Ok(settled_session(gw, id).await?.status)
}

/// Session `id` once it is no longer open (its recording closed, its metrics written), or
/// as it is after 30 s.
pub(crate) async fn settled_session(gw: &Gateway, id: &str) -> Result<pb::Session> {
    let mut client = SessionServiceClient::new(gw.channel().await?);
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let session = client
            .get_session(authed(pb::GetSessionRequest { id: id.to_owned() }))
            .await
            .context("GetSession")?
            .into_inner();
        if session.status != "open" || Instant::now() > give_up {
            return Ok(session);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a direct child's stdout to its end; returns the byte count.
async fn direct_stream(bytes: u64) -> Result<u64> {
    let mut child = Command::new("head")
        .args(["-c", &bytes.to_string(), "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot spawn head")?;
    let mut stdout = child.stdout.take().context("head's stdout is not piped")?;
    let mut buf = vec![0u8; PIPE_CHUNK];
    let mut total = 0u64;
    loop {
        let n = stdout
            .read(&mut buf)
            .await
            .context("reading head's stdout")?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let status = child.wait().await.context("waiting for head")?;
    if !status.success() {
        bail!("head exited with {status}");
    }
    Ok(total)
}

/// `streaming`: bytes of output through the gateway (audit recording them) vs a raw pipe.
pub(crate) async fn streaming(gw: &Gateway, options: &Options, report: &mut Report) -> Result<()> {
    let bytes = options.stream_bytes;
    let connection = format!("bench-stream-{bytes}");
    let size = bytes.to_string();
    ensure_connection(gw, &connection, &["head", "-c", &size, "/dev/zero"]).await?;
    let mut client = SessionServiceClient::new(gw.channel().await?);

    eprintln!("  gateway: {} of output", mb(bytes));
    let meter = CpuMeter::start(gw)?;
    let t = Instant::now();
    let outcome = tokio::time::timeout(EXEC_TIMEOUT, exec(&mut client, &connection))
        .await
        .context("streaming exec timed out")??;
    let gw_elapsed = t.elapsed();
    let cpu = meter.summary()?;
    if outcome.exit_code != Some(0) || outcome.stdout_bytes != bytes {
        bail!(
            "streaming exec: got {} bytes of stdout and {} of stderr, exit {:?} ({}), expected {bytes} bytes and exit 0",
            outcome.stdout_bytes,
            outcome.stderr_bytes,
            outcome.exit_code,
            outcome.reason
        );
    }
    let gw_rate = bytes as f64 / 1e6 / gw_elapsed.as_secs_f64();
    eprintln!(
        "  gateway: {:.1} s, {gw_rate:.0} MB/s",
        gw_elapsed.as_secs_f64()
    );

    // The recording: check it is there, then delete it to free the disk.
    let status = wait_settled(gw, &outcome.session_id).await?;
    let recording = gw.recording_path(&outcome.session_id);
    let recorded = std::fs::metadata(&recording)
        .with_context(|| format!("no recording at {}", recording.display()))?
        .len();
    std::fs::remove_file(&recording)
        .with_context(|| format!("cannot delete {}", recording.display()))?;

    eprintln!("  direct: {} through a raw pipe", mb(bytes));
    let t = Instant::now();
    let direct_bytes = direct_stream(bytes).await?;
    let d_elapsed = t.elapsed();
    if direct_bytes != bytes {
        bail!("raw pipe: got {direct_bytes} bytes, expected {bytes}");
    }
    let d_rate = bytes as f64 / 1e6 / d_elapsed.as_secs_f64();
    eprintln!(
        "  direct: {:.1} s, {d_rate:.0} MB/s",
        d_elapsed.as_secs_f64()
    );

    report.row(Row {
        scenario: "streaming".to_owned(),
        metric: format!("MB/s, {} of output", mb(bytes)),
        gateway: format!("{gw_rate:.0} MB/s ({:.2} s)", gw_elapsed.as_secs_f64()),
        baseline: format!("{d_rate:.0} MB/s ({:.2} s)", d_elapsed.as_secs_f64()),
        ratio: format!("{:.2}×", gw_rate / d_rate),
        goal: "≥ 200 MB/s".to_owned(),
        met: Some(gw_rate >= STREAMING_GOAL),
    });
    report.note(format!(
        "streaming (gateway side): {cpu}; recording {} (session status `{status}`), deleted afterwards",
        mb(recorded)
    ));
    Ok(())
}

/// An open interactive session: dropping it ends the request stream and cancels the call.
struct IdleSession {
    _input: mpsc::Sender<pb::ConnectRequest>,
    events: tonic::Streaming<pb::SessionEvent>,
}

impl IdleSession {
    /// `Some(why)` if the session has ended (or its stream failed) since it started; never
    /// waits.
    async fn ended(&mut self) -> Option<String> {
        match tokio::time::timeout(Duration::ZERO, self.events.message()).await {
            Err(_) => None,
            Ok(Ok(Some(pb::SessionEvent {
                event: Some(Event::Exit(e)),
            }))) => Some(format!("exit {} ({})", e.exit_code, e.reason)),
            Ok(Ok(Some(_))) => None,
            Ok(Ok(None)) => Some("the stream ended".to_owned()),
            Ok(Err(status)) => Some(format!("the stream failed: {status}")),
        }
    }
}

/// Opens an interactive session on the `cat` connection and waits for `started`.
async fn open_idle(channel: Channel) -> Result<IdleSession> {
    let (input, rx) = mpsc::channel(4);
    let open = pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
            connection: CAT_CONNECTION.to_owned(),
            ..Default::default()
        })),
    };
    input
        .send(open)
        .await
        .map_err(|_| anyhow::anyhow!("request stream closed"))?;
    let mut client = SessionServiceClient::new(channel);
    let mut events = client
        .connect(authed(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .context("Connect")?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(60), events.message())
        .await
        .context("no `started` within 60 s")?
        .context("Connect stream")?;
    match first.and_then(|e| e.event) {
        Some(Event::Started(_)) => Ok(IdleSession {
            _input: input,
            events,
        }),
        Some(Event::Exit(e)) => bail!(
            "the session ended at once: exit {} ({})",
            e.exit_code,
            e.reason
        ),
        other => bail!("expected `started`, got {other:?}"),
    }
}

/// Whether an error message looks like running out of file descriptors.
fn is_emfile(message: &str) -> bool {
    message.contains("Too many open files") || message.contains("os error 24")
}

/// `idle`: the gateway's RSS with many idle interactive sessions open.
pub(crate) async fn idle(gw: &Gateway, options: &Options, report: &mut Report) -> Result<()> {
    idle_round(gw, options, report, true).await.map(|_| ())
}

/// RSS of one round of the idle scenario, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleRss {
    /// With the sessions open.
    pub(crate) loaded: u64,
    /// After they all ended.
    pub(crate) after: u64,
}

/// `idle-rounds`: `--idle-rounds` rounds of the idle scenario on the same gateway (open the
/// sessions, leave them idle, drop them); the gateway's RSS after each round, and the last
/// round's over the first's.
pub(crate) async fn idle_rounds(
    gw: &Gateway,
    options: &Options,
    report: &mut Report,
) -> Result<()> {
    let rounds = options.idle_rounds.max(1);
    let mut rss = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        eprintln!("  round {round}/{rounds}");
        let r = idle_round(gw, options, report, false).await?;
        eprintln!(
            "  round {round}: RSS {} with the sessions open, {} after",
            mb(r.loaded),
            mb(r.after)
        );
        rss.push(r);
    }
    let (Some(first), Some(last)) = (rss.first().copied(), rss.last().copied()) else {
        bail!("no rounds ran");
    };
    let list = |f: fn(&IdleRss) -> u64| {
        rss.iter()
            .map(|r| format!("{:.1}", f(r) as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ratio = last.after as f64 / first.after.max(1) as f64;
    report.row(Row {
        scenario: "idle-rounds".to_owned(),
        metric: format!(
            "gateway RSS after round {rounds} vs round 1 ({} idle sessions a round)",
            options.idle_sessions
        ),
        gateway: mb(last.after),
        baseline: format!("{} (round 1)", mb(first.after)),
        ratio: format!("{ratio:.2}×"),
        goal: "≤ 1.20×".to_owned(),
        met: Some(ratio <= IDLE_ROUNDS_GOAL),
    });
    report.note(format!(
        "idle-rounds: RSS (MB) with the sessions open, rounds 1 to {rounds}: {}; after each round: {}; with the sessions open, round {rounds} over round 1: {:.2}×",
        list(|r| r.loaded),
        list(|r| r.after),
        last.loaded as f64 / first.loaded.max(1) as f64
    ));
    Ok(())
}

/// One round of the idle scenario; with `add_row`, its row and notes go in the report
/// (otherwise only failures do).
async fn idle_round(
    gw: &Gateway,
    options: &Options,
    report: &mut Report,
    add_row: bool,
) -> Result<IdleRss> {
    ensure_connection(gw, CAT_CONNECTION, &["cat"]).await?;
    let pid = gw.pid();
    let n = options.idle_sessions;
    let per_channel = options.streams_per_channel.max(1);
    let channel_count = n.div_ceil(per_channel).max(1);

    // Settle, then the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (baseline, baseline_peak) = gateway::rss(pid)?;
    let baseline_fds = gateway::open_fds(pid)?;
    eprintln!(
        "  baseline: RSS {} (peak so far {}), {baseline_fds} open fds",
        mb(baseline),
        mb(baseline_peak)
    );

    let mut channels = Vec::with_capacity(channel_count);
    for _ in 0..channel_count {
        channels.push(gw.channel().await?);
    }
    eprintln!(
        "  opening {n} sessions on `cat` over {channel_count} HTTP/2 connections ({per_channel} streams each)"
    );
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(IDLE_OPEN_CONCURRENCY));
    let mut set = JoinSet::new();
    for i in 0..n {
        let channel = channels
            .get(i / per_channel)
            .cloned()
            .context("no channel for a session")?;
        let limit = Arc::clone(&limit);
        set.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            open_idle(channel).await
        });
    }
    let mut sessions: Vec<IdleSession> = Vec::with_capacity(n);
    let mut errors: Vec<String> = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(session)) => {
                sessions.push(session);
                if sessions.len().is_multiple_of(200) {
                    eprintln!("  {}/{n} open", sessions.len());
                }
            }
            Ok(Err(err)) => errors.push(format!("{err:#}")),
            Err(err) => errors.push(format!("task failed: {err}")),
        }
    }
    let open_time = started.elapsed();
    let opened = sessions.len();
    eprintln!(
        "  {opened}/{n} sessions open in {:.1} s",
        open_time.as_secs_f64()
    );
    if let Some(first) = errors.first() {
        eprintln!(
            "  {} sessions failed to open; first error: {first}",
            errors.len()
        );
        if errors.iter().any(|e| is_emfile(e)) {
            eprintln!(
                "  the gateway ran out of file descriptors (EMFILE): raise its limit (`ulimit -n`, now inherited from this bench) or open fewer sessions (--idle-sessions)"
            );
        }
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    // Sessions that ended on their own while idle do not count as open.
    let mut ended_early: Vec<String> = Vec::new();
    for session in &mut sessions {
        if let Some(why) = session.ended().await {
            ended_early.push(why);
        }
    }
    let idle_now = opened - ended_early.len();
    if let Some(first) = ended_early.first() {
        eprintln!(
            "  {} sessions ended on their own after `started`; first: {first}",
            ended_early.len()
        );
    }
    if gw.saw_emfile() {
        eprintln!(
            "  the gateway logged EMFILE (Too many open files): raise its limit (`ulimit -n`, inherited from this bench) or open fewer sessions (--idle-sessions)"
        );
    }
    let (loaded, peak) = gateway::rss(pid)?;
    let loaded_fds = gateway::open_fds(pid)?;
    let agent_side = agent_memory(&pid.to_string());
    let status_channel = channels.first().cloned().context("no channel")?;
    let open_now = gw
        .open_sessions(status_channel.clone(), CAT_CONNECTION)
        .await?;
    eprintln!(
        "  with {opened} idle sessions: RSS {} (peak {}), {loaded_fds} open fds, {open_now} sessions `open` in ListSessions",
        mb(loaded),
        mb(peak)
    );

    // Close them all: dropping a session ends its request stream and cancels the call.
    let closing = Instant::now();
    drop(sessions);
    let give_up = closing + Duration::from_secs(120);
    let mut remaining = opened;
    // ListSessions may answer UNAVAILABLE while the gateway's database is busy settling the
    // burst: retryable by contract, so counted and polled again.
    let mut unavailable = 0usize;
    loop {
        match gw
            .open_sessions(status_channel.clone(), CAT_CONNECTION)
            .await
        {
            Ok(n) => remaining = n,
            Err(err)
                if err
                    .downcast_ref::<tonic::Status>()
                    .is_some_and(|s| s.code() == tonic::Code::Unavailable) =>
            {
                unavailable += 1;
            }
            Err(err) => return Err(err),
        }
        if remaining == 0 || Instant::now() > give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let close_time = closing.elapsed();
    if unavailable > 0 {
        eprintln!("  ListSessions answered UNAVAILABLE {unavailable} times while they ended");
        report.note(format!(
            "idle: ListSessions answered UNAVAILABLE (retryable) {unavailable} times while the sessions ended"
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, _) = gateway::rss(pid)?;
    let after_fds = gateway::open_fds(pid)?;
    eprintln!(
        "  after closing: {remaining} still open after {:.1} s; RSS {}, {after_fds} open fds",
        close_time.as_secs_f64(),
        mb(after)
    );

    let added = loaded.saturating_sub(baseline);
    let per_session = if opened > 0 {
        added as f64 / opened as f64 / 1024.0
    } else {
        0.0
    };
    if add_row {
        let metric = if idle_now == n {
            format!("gateway RSS, {n} idle sessions")
        } else {
            format!("gateway RSS, {idle_now} of {n} idle sessions (the rest failed)")
        };
        report.row(Row {
            scenario: "idle".to_owned(),
            metric,
            gateway: mb(loaded),
            baseline: format!("{} (no sessions)", mb(baseline)),
            ratio: format!("+{} ({per_session:.0} KiB/session)", mb(added)),
            goal: "≤ 256 MB".to_owned(),
            met: Some(loaded <= IDLE_RSS_GOAL && idle_now == n),
        });
        report.note(format!(
            "idle: {opened} sessions opened in {:.1} s ({IDLE_OPEN_CONCURRENCY} at a time); peak RSS {}; gateway fds {baseline_fds} → {loaded_fds} → {after_fds} (after: with the bench's {channel_count} client connections still open); all ended {:.1} s after the drop ({remaining} left open), RSS after {}",
            open_time.as_secs_f64(),
            mb(peak),
            close_time.as_secs_f64(),
            mb(after)
        ));
        if let Some((supervisors, pss)) = agent_side {
            report.note(format!(
                "idle: the local agent and its {supervisors} session supervisors (one root process per session, which ends everything the session started): PSS {} in all ({:.0} KiB per session), besides the sessions' own programs",
                mb(pss),
                pss as f64 / supervisors.max(1) as f64 / 1024.0
            ));
        }
        if let Some(first) = ended_early.first() {
            report.note(format!(
                "idle: {} sessions ended on their own after `started`; first: {first}",
                ended_early.len()
            ));
        }
        if let Some(first) = errors.first() {
            let hint = if errors.iter().any(|e| is_emfile(e)) || gw.saw_emfile() {
                " (EMFILE: the gateway ran out of file descriptors)"
            } else {
                ""
            };
            report.note(format!(
                "idle: {} sessions failed to open{hint}; first error: {first}",
                errors.len()
            ));
        }
    }
    if remaining > 0 {
        bail!("{remaining} idle sessions were still open 120 s after their calls were dropped");
    }
    if add_row && gw.saw_emfile() {
        report.note(
            "idle: the gateway logged EMFILE (Too many open files) during this run".to_owned(),
        );
    }
    if opened < n {
        bail!(
            "only {opened} of {n} idle sessions opened; first error: {}",
            errors.first().map(String::as_str).unwrap_or("?")
        );
    }
    if idle_now < n || open_now < n {
        bail!(
            "only {idle_now} of {n} sessions stayed open while idle ({open_now} `open` in ListSessions){}; first: {}",
            if gw.saw_emfile() {
                ": the gateway ran out of file descriptors (EMFILE)"
            } else {
                ""
            },
            ended_early.first().map(String::as_str).unwrap_or("?")
        );
    }
    Ok(IdleRss { loaded, after })
}

/// The proportional set size (shared pages split between the processes that map them) of
/// the gateway's local agent and of its children, the sessions' supervisors: how many
/// supervisors there are, and their PSS with the agent's, in bytes.
fn agent_memory(gateway: &str) -> Option<(usize, u64)> {
    let agent = local_agent_pid(gateway)?;
    let pss = |pid: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("Pss:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    };
    let mut total = pss(&agent);
    let mut supervisors = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(agent.as_str()) {
            supervisors += 1;
            total += pss(&pid);
        }
    }
    Some((supervisors, total))
}
