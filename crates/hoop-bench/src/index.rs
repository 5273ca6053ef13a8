//! `index`: the indexer plugin. Generates sessions through the gateway (a `cat` connection
//! with `indexer` attached: each session's generated text is its input and, echoed, its
//! output, both recorded and indexed), then measures
//! - live indexing: sessions/s and MB/s of recorded text from the first session to the last
//!   one searchable (bounded by how fast sessions run when the indexer keeps up);
//! - a rebuild (`hoop-gateway reindex`) of the same data, copied to a scratch data dir:
//!   the indexer's own throughput (read, verify, index, commit);
//! - 10 representative queries through `SearchService` (p50/p99 over the runs) side by side
//!   with `grep -r` over the recordings directory answering the same text question.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use pb::search_service_client::SearchServiceClient;
use pb::session_service_client::SessionServiceClient;
use tokio::sync::Semaphore;

use crate::Options;
use crate::gateway::{Gateway, authed};
use crate::report::{Report, Row, Stats, ms};

const CONNECTION: &str = "idx";

/// Words the generated text is made of: SQL and log vocabulary.
const WORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "insert",
    "into",
    "update",
    "set",
    "values",
    "join",
    "on",
    "order",
    "by",
    "group",
    "limit",
    "users",
    "orders",
    "invoices",
    "payments",
    "id",
    "status",
    "created_at",
    "amount",
    "email",
    "name",
    "info",
    "warn",
    "debug",
    "request",
    "response",
    "latency",
    "ms",
    "ok",
    "retry",
    "cache",
    "hit",
    "miss",
    "worker",
    "queue",
    "job",
    "done",
    "count",
    "sum",
    "avg",
    "index",
    "scan",
    "seq",
    "rows",
    "returned",
    "commit",
    "begin",
    "refund",
    "customer",
    "session",
    "token",
    "vacuum",
    "analyze",
    "timeout",
    "rollback",
];

/// A deterministic pseudo-random generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Session `i`'s text, about `bytes` long, with planted words: `needle<i>` once, a
/// `drop table customers` every 100 sessions, `permission denied` every 50, `deadlock`
/// every 200.
fn session_text(i: usize, bytes: usize) -> String {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
    let mut text = String::with_capacity(bytes + 200);
    text.push_str(&format!("-- session {i} needle{i}\n"));
    if i % 100 == 7 {
        text.push_str("drop table customers;\n");
    }
    if i % 50 == 3 {
        text.push_str("ERROR: permission denied for table payments\n");
    }
    if i % 200 == 11 {
        text.push_str("ERROR: deadlock detected\n");
    }
    while text.len() < bytes {
        let words = 6 + (rng.next() % 10) as usize;
        for w in 0..words {
            if w > 0 {
                text.push(' ');
            }
            let r = rng.next();
            if r.is_multiple_of(9) {
                // A rarer token: one of 50,000.
                text.push_str(&format!("t{}", r % 50_000));
            } else {
                text.push_str(WORDS[(r % WORDS.len() as u64) as usize]);
            }
        }
        text.push_str(";\n");
    }
    text
}

/// A query, and the words `grep` must find in a file (all of them) to answer the same text
/// question (qualifiers have no grep equivalent: they only narrow the index's answer).
struct Question {
    query: &'static str,
    grep: Vec<&'static str>,
}

fn questions(needle: &'static str) -> Vec<Question> {
    vec![
        Question {
            query: needle,
            grep: vec![needle],
        },
        Question {
            query: "\"drop table customers\"",
            grep: vec!["drop table customers"],
        },
        Question {
            query: "\"permission denied\"",
            grep: vec!["permission denied"],
        },
        Question {
            query: "deadlock",
            grep: vec!["deadlock"],
        },
        Question {
            query: "refund customer",
            grep: vec!["refund", "customer"],
        },
        Question {
            query: "t4242",
            grep: vec!["t4242"],
        },
        Question {
            query: "vacuum connection:idx",
            grep: vec!["vacuum"],
        },
        Question {
            query: "timeout started:-1d",
            grep: vec!["timeout"],
        },
        Question {
            query: "rollback user:admin verb:exec",
            grep: vec!["rollback"],
        },
        Question {
            query: "zzznotthere",
            grep: vec!["zzznotthere"],
        },
    ]
}

async fn search(
    client: &mut SearchServiceClient<tonic::transport::Channel>,
    query: &str,
) -> Result<pb::SearchSessionsResponse> {
    Ok(client
        .search_sessions(authed(pb::SearchSessionsRequest {
            query: query.to_owned(),
            page_size: 20,
            ..Default::default()
        }))
        .await
        .with_context(|| format!("SearchSessions {query}"))?
        .into_inner())
}

/// Files under `dir` holding every one of `words` (case-insensitive, fixed strings), as
/// whole words (`-w`), as `grep -r -l` and then `grep -l` on what it found.
fn grep(dir: &Path, words: &[&str]) -> Result<usize> {
    let mut files: Option<Vec<PathBuf>> = None;
    for word in words {
        let mut cmd = StdCommand::new("grep");
        cmd.args(["-l", "-i", "-w", "-F", "-a"]);
        match &files {
            None => {
                cmd.arg("-r").arg("--").arg(word).arg(dir);
            }
            Some(list) if list.is_empty() => return Ok(0),
            Some(list) => {
                cmd.arg("--").arg(word).args(list);
            }
        }
        let out = cmd.output().context("run grep")?;
        // 1: nothing found.
        if !out.status.success() && out.status.code() != Some(1) {
            bail!("grep failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        files = Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(PathBuf::from)
                .collect(),
        );
    }
    Ok(files.map_or(0, |f| f.len()))
}

/// Copies `from` into `to` while the gateway runs, leaving out the top-level entries named in
/// `skip` (the live index, whose merges delete files as they go); a file that vanishes
/// between listing and copying is left out too.
fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target, &[])?;
        } else {
            match std::fs::copy(entry.path(), &target) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

pub(crate) async fn index(
    gw: &Gateway,
    binary: &Path,
    options: &Options,
    report: &mut Report,
) -> Result<()> {
    let n = options.index_sessions;
    let half = (options.index_session_bytes / 2).max(64);
    gw.create_command_connection(CONNECTION, &["cat"]).await?;
    pb::plugin_service_client::PluginServiceClient::new(gw.channel().await?)
        .attach_plugin(authed(pb::AttachPluginRequest {
            connection: CONNECTION.to_owned(),
            plugin: "indexer".to_owned(),
            config: None,
        }))
        .await
        .context("attach the indexer")?;

    // Sessions, `clients` at a time, each on a shared channel.
    let channel = gw.channel().await?;
    let limit = Arc::new(Semaphore::new(options.clients.max(1)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut text_bytes: u64 = 0;
    for i in 0..n {
        let permit = Arc::clone(&limit).acquire_owned().await?;
        let text = session_text(i, half);
        text_bytes += 2 * text.len() as u64;
        let channel = channel.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let mut client = SessionServiceClient::new(channel);
            let mut stream = client
                .exec(authed(pb::ExecRequest {
                    connection: CONNECTION.to_owned(),
                    input: text.into_bytes(),
                    ..Default::default()
                }))
                .await?
                .into_inner();
            while stream.message().await?.is_some() {}
            Ok::<(), tonic::Status>(())
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
        if i > 0 && i % 1000 == 0 {
            eprintln!("  {i} sessions run");
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let generated = started.elapsed();
    let mut client = SearchServiceClient::new(gw.channel().await?);
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let found = search(&mut client, "connection:idx").await?;
        if found.total_hits == i64::try_from(n)? {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} sessions indexed after an hour",
                found.total_hits
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = started.elapsed();
    let mb = text_bytes as f64 / 1e6;
    report.note(format!(
        "index: {n} sessions, {mb:.0} MB of recorded text (input + output), run in {:.1} s through the gateway",
        generated.as_secs_f64()
    ));
    let row =
        |metric: String, gateway: String, baseline: String, ratio: String, goal: &str, met| Row {
            scenario: "index".to_owned(),
            metric,
            gateway,
            baseline,
            ratio,
            goal: goal.to_owned(),
            met,
        };
    report.row(row(
        "live: sessions run and searchable".to_owned(),
        format!(
            "{:.0} sessions/s, {:.1} MB/s",
            n as f64 / live.as_secs_f64(),
            mb / live.as_secs_f64()
        ),
        format!("{:.0} sessions/s run", n as f64 / generated.as_secs_f64()),
        format!(
            "+{:.1} s after the last session",
            (live - generated).as_secs_f64()
        ),
        "-",
        None,
    ));

    // A rebuild of a copy of the data: the indexer's own throughput.
    let scratch = tempfile::Builder::new()
        .prefix("hoop-bench-reindex-")
        .tempdir()?;
    let data = scratch.path().join("hoop-data");
    copy_dir(&gw.data_dir(), &data, &["index"])?;
    let config = scratch.path().join("hoop.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_token = \"x-bench-admin-token-0123456789\"\n",
            data.display()
        ),
    )?;
    let begun = Instant::now();
    let out = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(&config)
        .arg("reindex")
        .env("HOOP_LOG", "warn")
        .output()
        .await
        .context("run hoop-gateway reindex")?;
    let rebuilt = begun.elapsed();
    if !out.status.success() {
        bail!("reindex failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    report.row(row(
        "rebuild (`hoop-gateway reindex`)".to_owned(),
        format!(
            "{:.0} sessions/s, {:.1} MB/s ({:.1} s)",
            n as f64 / rebuilt.as_secs_f64(),
            mb / rebuilt.as_secs_f64(),
            rebuilt.as_secs_f64()
        ),
        "-".to_owned(),
        "-".to_owned(),
        "-",
        None,
    ));

    // Queries vs grep.
    let needle: &'static str = Box::leak(format!("needle{}", n / 2).into_boxed_str());
    let recordings = gw.data_dir().join("recordings");
    let mut p50s = Vec::new();
    for q in questions(needle) {
        let mut samples = Vec::with_capacity(options.index_query_runs);
        let mut hits = 0;
        for _ in 0..options.index_query_runs.max(1) {
            let t = Instant::now();
            hits = search(&mut client, q.query).await?.total_hits;
            samples.push(t.elapsed());
        }
        let stats = Stats::of(&samples).context("no samples")?;
        let mut greps = Vec::new();
        let mut files = 0;
        for _ in 0..options.index_grep_runs.max(1) {
            let t = Instant::now();
            files = grep(&recordings, &q.grep)?;
            greps.push(t.elapsed());
        }
        greps.sort_unstable();
        let grep_time = greps[greps.len() / 2];
        p50s.push(stats.p50);
        report.row(row(
            format!(
                "query `{}` ({hits} hits; grep: {files} files)",
                q.query.replace('|', "\\|")
            ),
            format!("p50 {} / p99 {}", ms(stats.p50), ms(stats.p99)),
            ms(grep_time),
            format!(
                "{:.0}× faster",
                grep_time.as_secs_f64() / stats.p50.as_secs_f64().max(1e-9)
            ),
            "p50 ≤ 20 ms, ≥ 100×",
            Some(
                stats.p50 <= Duration::from_millis(20)
                    && grep_time.as_secs_f64() >= 100.0 * stats.p50.as_secs_f64(),
            ),
        ));
    }
    if let Some(all) = Stats::of(&p50s) {
        report.note(format!(
            "index: median of the 10 queries' p50: {}",
            ms(all.p50)
        ));
    }
    Ok(())
}
