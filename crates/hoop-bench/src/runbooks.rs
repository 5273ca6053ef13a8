//! `runbooks`: a runbook run (RunRunbook: parameters checked, template rendered, session
//! started through the session starter port) vs a plain `Exec` of the very script it
//! renders, interleaved in one run, on a `sh` connection.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use pb::runbook_service_client::RunbookServiceClient;
use pb::session_event::Event;
use pb::session_service_client::SessionServiceClient;
use tonic::transport::Channel;

use crate::Options;
use crate::gateway::{Gateway, authed};
use crate::report::{Report, Row, Stats, added_ms, ms};
use crate::scenarios::{EXEC_TIMEOUT, ensure_connection};

/// The connection the scenario runs on.
const CONNECTION: &str = "bench-sh";
/// The runbook, in the repository the bench makes.
const PATH: &str = "bench.runbook.sh";
const RUNBOOK: &str = "+++\ndescription = \"Prints its parameter\"\n[params.name]\ntype = \"string\"\nrequired = true\npattern = \"[a-z]+\"\n+++\nprintf '%s\\n' {{ name }}\n";
/// What it renders to with `name=bench`: what the plain Exec runs.
const RENDERED: &str = "printf '%s\\n' 'bench'\n";

/// Makes a git repository holding the runbook in `dir`; returns the gateway config naming it.
pub(crate) fn make_repository(dir: &Path) -> Result<String> {
    std::fs::write(dir.join(PATH), RUNBOOK).context("writing the runbook")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "commit",
            "-q",
            "-m",
            "bench",
        ],
    ] {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .context("running git (is it installed?)")?;
        if !status.success() {
            bail!("git {args:?} failed");
        }
    }
    Ok(format!(
        "[[plugins.runbooks.repositories]]\nname = \"bench\"\nurl = \"file://{}\"\nbranch = \"main\"\n",
        dir.display()
    ))
}

/// Time to the session's `started` event and to its end.
struct Timing {
    started: Duration,
    ended: Duration,
}

async fn finish(
    mut stream: tonic::Streaming<pb::SessionEvent>,
    t: Instant,
    what: &str,
) -> Result<Timing> {
    let mut started = None;
    let mut exit = None;
    let mut output = Vec::new();
    while let Some(event) = stream
        .message()
        .await
        .with_context(|| format!("{what} stream"))?
    {
        match event.event {
            Some(Event::Started(_)) => started = Some(t.elapsed()),
            Some(Event::Output(o)) => output.extend(o.data),
            Some(Event::Exit(e)) => exit = Some(e.exit_code),
            Some(Event::Held(_)) | None => {}
        }
    }
    let ended = t.elapsed();
    if exit != Some(0) || output != b"bench\n" {
        bail!(
            "{what} ended with exit {exit:?} and output {:?}",
            String::from_utf8_lossy(&output)
        );
    }
    Ok(Timing {
        started: started.context("no `started` event")?,
        ended,
    })
}

async fn run_runbook(client: &mut RunbookServiceClient<Channel>) -> Result<Timing> {
    let request = pb::RunRunbookRequest {
        connection: CONNECTION.to_owned(),
        repository: "bench".to_owned(),
        path: PATH.to_owned(),
        params: [("name".to_owned(), "bench".to_owned())].into(),
        r#ref: String::new(),
    };
    let t = Instant::now();
    let stream = tokio::time::timeout(EXEC_TIMEOUT, client.run_runbook(authed(request)))
        .await
        .context("RunRunbook timed out")?
        .context("RunRunbook")?
        .into_inner();
    finish(stream, t, "RunRunbook").await
}

async fn exec_script(client: &mut SessionServiceClient<Channel>) -> Result<Timing> {
    let request = pb::ExecRequest {
        connection: CONNECTION.to_owned(),
        input: RENDERED.as_bytes().to_vec(),
        ..Default::default()
    };
    let t = Instant::now();
    let stream = tokio::time::timeout(EXEC_TIMEOUT, client.exec(authed(request)))
        .await
        .context("Exec timed out")?
        .context("Exec")?
        .into_inner();
    finish(stream, t, "Exec").await
}

pub(crate) async fn runbooks(gw: &Gateway, options: &Options, report: &mut Report) -> Result<()> {
    ensure_connection(gw, CONNECTION, &["sh"]).await?;
    let channel = gw.channel().await?;
    let mut plugins = pb::plugin_service_client::PluginServiceClient::new(channel.clone());
    let attached = plugins
        .attach_plugin(authed(pb::AttachPluginRequest {
            connection: CONNECTION.to_owned(),
            plugin: "runbooks".to_owned(),
            // None: `{}`, every runbook of every repository.
            config: None,
        }))
        .await;
    if let Err(status) = attached
        && status.code() != tonic::Code::AlreadyExists
    {
        return Err(status).context("attaching runbooks");
    }
    let mut runbooks = RunbookServiceClient::new(channel.clone());
    let mut sessions = SessionServiceClient::new(channel);
    // The first fetch runs when the gateway starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = runbooks
            .list_runbooks(authed(pb::ListRunbooksRequest {
                connection: CONNECTION.to_owned(),
                repository: String::new(),
            }))
            .await
            .context("ListRunbooks")?
            .into_inner();
        if listed.runbooks.iter().any(|r| r.path == PATH) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the bench repository was not fetched within 60 s: {listed:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("  warm-up: {} runs of each side", options.warmup_runs);
    for _ in 0..options.warmup_runs {
        run_runbook(&mut runbooks).await?;
        exec_script(&mut sessions).await?;
    }
    let n = options.latency_runs;
    let (mut rb_start, mut rb_end, mut ex_start, mut ex_end) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let r = run_runbook(&mut runbooks).await?;
        rb_start.push(r.started);
        rb_end.push(r.ended);
        let e = exec_script(&mut sessions).await?;
        ex_start.push(e.started);
        ex_end.push(e.ended);
        if (i + 1).is_multiple_of(100) {
            eprintln!("  {}/{n} runs of each side", i + 1);
        }
    }
    let stats = |v: &[Duration]| Stats::of(v).context("no samples");
    let (rs, re, es, ee) = (
        stats(&rb_start)?,
        stats(&rb_end)?,
        stats(&ex_start)?,
        stats(&ex_end)?,
    );
    let row = |metric: String, gw: Duration, base: Duration| Row {
        scenario: "runbooks".to_owned(),
        metric,
        gateway: ms(gw),
        baseline: ms(base),
        ratio: added_ms(gw, base),
        goal: "-".to_owned(),
        met: None,
    };
    report.row(row(
        format!("RunRunbook vs Exec, to `started` p50 (n={n})"),
        rs.p50,
        es.p50,
    ));
    report.row(row(
        format!("RunRunbook vs Exec, to `started` p99 (n={n})"),
        rs.p99,
        es.p99,
    ));
    report.row(row(
        format!("RunRunbook vs Exec, to exit p50 (n={n})"),
        re.p50,
        ee.p50,
    ));
    report.row(row(
        format!("RunRunbook vs Exec, to exit p99 (n={n})"),
        re.p99,
        ee.p99,
    ));
    report.row(row(
        format!("RunRunbook vs Exec, to exit mean (n={n})"),
        re.mean,
        ee.mean,
    ));
    report.note(format!(
        "runbooks: the same script (`{}`) on a `sh` connection; baseline = plain Exec of the rendered script",
        RENDERED.trim_end()
    ));
    Ok(())
}
