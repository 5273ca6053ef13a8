//! The `postgres` scenario: pgbench through `hoop connect` vs straight to the database, on a
//! scratch database of the server `HOOP_TEST_POSTGRES_URL` names. TPS of `pgbench -S -c 8`,
//! the latency a simple query gains (p50 of `select 1` from pgbench's per-transaction log,
//! one client), and the same with dlp masking three columns of every row.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Options;
use crate::gateway::{Gateway, authed};
use crate::report::{Report, Row};

/// Seconds of each pgbench run.
fn secs(options: &Options) -> u64 {
    options.pg_secs.max(1)
}

pub(crate) async fn postgres(
    gw: &Gateway,
    binary: &Path,
    options: &Options,
    report: &mut Report,
) -> Result<()> {
    let Some(hoop_rs::Backend::Postgres(url)) = hoop_rs::Backend::postgres().await else {
        bail!(
            "set HOOP_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test): the scenario makes a scratch database there"
        );
    };
    let (host, port, user, db) = parse_url(&url)?;
    // The same SSLMODE on both sides, when one is given.
    let url = match &options.pg_sslmode {
        Some(mode) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}sslmode={mode}")
        }
        None => url,
    };
    let mut env: Vec<(&str, String)> = vec![
        ("HOST", host.clone()),
        ("PORT", port.clone()),
        ("USER", user.clone()),
        ("DB", db.clone()),
    ];
    if let Some(mode) = &options.pg_sslmode {
        env.push(("SSLMODE", mode.clone()));
    }
    let cli = binary.with_file_name("hoop");
    pgbench(&["-i", "-q", "-s", "1", &url]).await?;
    psql(
        &url,
        "create table people (id int primary key, email text, phone text, note text);
         insert into people select i, 'user' || i || '@corp.example', '+1 415 555 ' || lpad((i % 10000)::text, 4, '0'),
           'reach me at user' || i || '@mail.example' from generate_series(1, 1000) i;",
    )
    .await?;
    let mut connections =
        pb::connection_service_client::ConnectionServiceClient::new(gw.channel().await?);
    for (name, redact) in [
        ("bench-pg", vec![]),
        (
            "bench-pg-dlp",
            vec!["EMAIL_ADDRESS".to_owned(), "PHONE_NUMBER".to_owned()],
        ),
    ] {
        connections
            .create_connection(authed(pb::CreateConnectionRequest {
                connection: Some(pb::Connection {
                    name: name.to_owned(),
                    r#type: "postgres".to_owned(),
                    env: env
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect(),
                    redact_types: redact,
                    ..Default::default()
                }),
            }))
            .await
            .with_context(|| format!("CreateConnection {name}"))?;
    }
    let (_plain, plain) = serve(&cli, gw, "bench-pg").await?;
    let (_masked, masked) = serve(&cli, gw, "bench-pg-dlp").await?;
    let t = secs(options).to_string();
    let scratch = tempfile::tempdir()?;
    let select1 = scratch.path().join("select1.sql");
    std::fs::write(&select1, "select 1;\n")?;
    let people = scratch.path().join("people.sql");
    std::fs::write(
        &people,
        "\\set id random(1, 1000)\nselect email, phone, note from people where id = :id;\n",
    )?;
    let select1 = select1.display().to_string();
    let people = people.display().to_string();

    // TPS, -S, 8 clients.
    let direct = tps(&["-n", "-S", "-c", "8", "-j", "2", "-T", &t, &url]).await?;
    let through = tps(&["-n", "-S", "-c", "8", "-j", "2", "-T", &t, &plain]).await?;
    let ratio = through / direct;
    report.row(Row {
        scenario: "postgres".into(),
        metric: format!("pgbench -S -c 8 -T {t} (TPS)"),
        gateway: format!("{through:.0}"),
        baseline: format!("{direct:.0} (direct)"),
        ratio: format!("{ratio:.2}x"),
        goal: ">= 0.4x".into(),
        met: Some(ratio >= 0.4),
    });
    // Added latency per simple query, one client.
    let direct = p50(
        &scratch.path().join("d1"),
        &["-n", "-c", "1", "-T", &t, "-f", &select1, &url],
    )
    .await?;
    let through = p50(
        &scratch.path().join("g1"),
        &["-n", "-c", "1", "-T", &t, "-f", &select1, &plain],
    )
    .await?;
    let added = through - direct;
    report.row(Row {
        scenario: "postgres".into(),
        metric: "select 1, p50 latency (ms)".into(),
        gateway: format!("{through:.3}"),
        baseline: format!("{direct:.3} (direct)"),
        ratio: format!("+{added:.3} ms"),
        goal: "<= 1 ms added".into(),
        met: Some(added <= 1.0),
    });
    // dlp masking three columns of every row.
    let direct_tps = tps(&["-n", "-c", "8", "-j", "2", "-T", &t, "-f", &people, &url]).await?;
    let masked_tps = tps(&["-n", "-c", "8", "-j", "2", "-T", &t, "-f", &people, &masked]).await?;
    report.row(Row {
        scenario: "postgres".into(),
        metric: "3 masked columns, -c 8 (TPS)".into(),
        gateway: format!("{masked_tps:.0}"),
        baseline: format!("{direct_tps:.0} (direct)"),
        ratio: format!("{:.2}x", masked_tps / direct_tps),
        goal: ">= 0.4x".into(),
        met: Some(masked_tps / direct_tps >= 0.4),
    });
    let direct = p50(
        &scratch.path().join("d2"),
        &["-n", "-c", "1", "-T", &t, "-f", &people, &url],
    )
    .await?;
    let through = p50(
        &scratch.path().join("g2"),
        &["-n", "-c", "1", "-T", &t, "-f", &people, &masked],
    )
    .await?;
    report.row(Row {
        scenario: "postgres".into(),
        metric: "3 masked columns, p50 latency (ms)".into(),
        gateway: format!("{through:.3}"),
        baseline: format!("{direct:.3} (direct)"),
        ratio: format!("+{:.3} ms", through - direct),
        goal: "<= 1 ms added".into(),
        met: Some(through - direct <= 1.0),
    });
    Ok(())
}

fn parse_url(url: &str) -> Result<(String, String, String, String)> {
    let rest = url.split_once("://").context("database URL")?.1;
    let (auth, rest) = rest
        .split_once('@')
        .context("database URL without a user")?;
    let user = auth.split(':').next().unwrap_or_default().to_owned();
    let (hostport, db) = rest
        .split_once('/')
        .context("database URL without a database")?;
    let db = db.split('?').next().unwrap_or_default().to_owned();
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    Ok((host.to_owned(), port.to_owned(), user, db))
}

/// `hoop connect NAME --port 0`: the child and its DSN.
async fn serve(cli: &Path, gw: &Gateway, name: &str) -> Result<(Child, String)> {
    let mut child = Command::new(cli)
        .args(["connect", name, "--port", "0"])
        .env("HOOP_GATEWAY", format!("http://{}", gw.addr))
        .env("HOOP_TOKEN", crate::gateway::ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("run {}", cli.display()))?;
    let stdout = child.stdout.take().context("hoop connect's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut dsn = None;
    while let Some(line) = lines.next_line().await? {
        if line.starts_with("postgres://") {
            dsn = Some(line.clone());
        }
        if line.contains(" psql '") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, dsn.context("hoop connect printed no DSN")?))
}

async fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .await
        .context("run psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

async fn pgbench(args: &[&str]) -> Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        Command::new("pgbench").args(args).output(),
    )
    .await
    .context("pgbench timed out")?
    .context("run pgbench")?;
    if !out.status.success() {
        bail!("pgbench {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn tps(args: &[&str]) -> Result<f64> {
    let out = pgbench(args).await?;
    out.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {out}"))
}

/// The median transaction latency (ms) of a pgbench run, from its per-transaction log.
async fn p50(dir: &Path, args: &[&str]) -> Result<f64> {
    std::fs::create_dir_all(dir)?;
    let prefix = dir.join("log").display().to_string();
    let mut all: Vec<&str> = vec!["-l", "--log-prefix", &prefix];
    all.extend_from_slice(args);
    pgbench(&all).await?;
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            // client_id transaction_no time script_no time_epoch time_us
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<f64>().ok())
            {
                latencies.push(us / 1000.0);
            }
        }
    }
    if latencies.is_empty() {
        bail!("pgbench wrote no per-transaction log");
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies[latencies.len() / 2])
}
