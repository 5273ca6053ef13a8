//! `dlp`: end-to-end output throughput of a session with the `dlp` plugin on (every
//! built-in info type) vs off, on the same gateway and the same generated data.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use pb::dlp_service_client::DlpServiceClient;
use pb::session_service_client::SessionServiceClient;
use tonic::transport::Channel;

use crate::Options;
use crate::corpus::{self, EMAIL_MARKER, Generated};
use crate::gateway::{Gateway, authed};
use crate::report::{Report, Row, mb};
use crate::scenarios::{CpuMeter, CpuUsage, EXEC_TIMEOUT, exec_with, settled_session};

/// Sample lines kept for the notes (rows left unmasked, lines masked in PII-free logs).
const SAMPLES: usize = 3;
/// Longest sample line quoted, in characters.
const SAMPLE_CHARS: usize = 160;
/// The info types every row of the PII-dense table holds one value of.
const TABLE_TYPES: [&str; 3] = ["EMAIL_ADDRESS", "CREDIT_CARD_NUMBER", "PHONE_NUMBER"];
/// Session metric of the bytes the dlp plugin masked.
const MASKED_BYTES: &str = "dlp.masked_bytes";

/// The two inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// PII-dense psql table output.
    Table,
    /// PII-free logs and prose.
    Logs,
}

impl Input {
    fn slug(self) -> &'static str {
        match self {
            Input::Table => "table",
            Input::Logs => "logs",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Input::Table => "PII-dense table",
            Input::Logs => "PII-free logs",
        }
    }

    /// What `Generated::rows` counts.
    fn rows_word(self) -> &'static str {
        match self {
            Input::Table => "rows",
            Input::Logs => "lines",
        }
    }
}

/// Removes a file when dropped (the generated inputs are large).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.0)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("warning: cannot delete {}: {err}", self.0.display());
        }
    }
}

/// What the bench finds in a session's output, looking at it line by line as it arrives.
#[derive(Debug)]
struct Scan {
    /// The unfinished last line of the output so far.
    carry: Vec<u8>,
    /// `[NAME]` of every info type the on side masks, with how often it occurs.
    tags: Vec<(Vec<u8>, u64)>,
    /// Table data rows (first non-blank byte a digit, with a `|`).
    rows: u64,
    /// Data rows whose e-mail, card and phone fields are exactly the three tags.
    masked_rows: u64,
    /// Lines containing [`EMAIL_MARKER`] (a raw e-mail domain of the table).
    marker_lines: u64,
    /// Lines containing `@`.
    at_lines: u64,
    /// The first data rows that are not fully masked.
    unmasked: Vec<String>,
    /// The first lines with a tag in them.
    tagged: Vec<String>,
}

impl Scan {
    fn new(types: &[String]) -> Scan {
        Scan {
            carry: Vec::new(),
            tags: types
                .iter()
                .map(|t| (format!("[{t}]").into_bytes(), 0))
                .collect(),
            rows: 0,
            masked_rows: 0,
            marker_lines: 0,
            at_lines: 0,
            unmasked: Vec::new(),
            tagged: Vec::new(),
        }
    }

    /// Takes the next chunk of output.
    fn push(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if !self.carry.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.carry.extend_from_slice(&rest[..i]);
                    let line = std::mem::take(&mut self.carry);
                    self.line(&line);
                    self.carry = line;
                    self.carry.clear();
                    rest = &rest[i + 1..];
                }
                None => {
                    self.carry.extend_from_slice(rest);
                    return;
                }
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.line(&rest[..i]);
            rest = &rest[i + 1..];
        }
        self.carry.extend_from_slice(rest);
    }

    /// The output has ended.
    fn finish(&mut self) {
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            self.line(&line);
        }
    }

    fn line(&mut self, line: &[u8]) {
        if line.contains(&b'@') {
            self.at_lines += 1;
        }
        if contains(line, EMAIL_MARKER) {
            self.marker_lines += 1;
        }
        let mut tagged = false;
        let mut rest = line;
        while let Some(i) = rest.iter().position(|&b| b == b'[') {
            rest = &rest[i..];
            let name_len = rest
                .iter()
                .skip(1)
                .position(|&b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
                .unwrap_or(rest.len() - 1);
            let tag_len = name_len + 2;
            if name_len > 0
                && rest.get(name_len + 1) == Some(&b']')
                && let Some(tag) = rest.get(..tag_len)
                && let Some(entry) = self.tags.iter_mut().find(|(t, _)| t == tag)
            {
                entry.1 += 1;
                tagged = true;
                rest = &rest[tag_len..];
            } else {
                rest = &rest[1..];
            }
        }
        if tagged && self.tagged.len() < SAMPLES {
            self.tagged.push(sample(line));
        }
        let is_row = line
            .trim_ascii_start()
            .first()
            .is_some_and(u8::is_ascii_digit)
            && line.contains(&b'|');
        if is_row {
            self.rows += 1;
            if masked_row(line) {
                self.masked_rows += 1;
            } else if self.unmasked.len() < SAMPLES {
                self.unmasked.push(sample(line));
            }
        }
    }

    /// Occurrences of `[name]`.
    fn count(&self, name: &str) -> u64 {
        let tag = format!("[{name}]");
        self.tags
            .iter()
            .find(|(t, _)| t == tag.as_bytes())
            .map_or(0, |(_, n)| *n)
    }

    /// `NAME n` for every tag that occurs, except `skip`.
    fn other_tags(&self, skip: &[&str]) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(t, n)| {
                let name = String::from_utf8_lossy(t.get(1..t.len() - 1)?).into_owned();
                (!skip.contains(&name.as_str())).then(|| format!("{name} {n}"))
            })
            .collect()
    }
}

/// Whether `hay` contains `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    hay.iter()
        .enumerate()
        .any(|(i, &b)| b == first && hay.get(i + 1..i + 1 + rest.len()) == Some(rest))
}

/// Whether a table row reads `id | name | [EMAIL_ADDRESS] | [CREDIT_CARD_NUMBER] |
/// [PHONE_NUMBER] | city`, with id, name and city untouched.
fn masked_row(line: &[u8]) -> bool {
    let fields: Vec<&[u8]> = line.split(|&b| b == b'|').map(<[u8]>::trim_ascii).collect();
    let [id, name, email, card, phone, city] = fields.as_slice() else {
        return false;
    };
    !id.is_empty()
        && id.iter().all(u8::is_ascii_digit)
        && !name.is_empty()
        && !name.contains(&b'[')
        && !city.is_empty()
        && !city.contains(&b'[')
        && *email == b"[EMAIL_ADDRESS]"
        && *card == b"[CREDIT_CARD_NUMBER]"
        && *phone == b"[PHONE_NUMBER]"
}

/// A line for the notes: lossy UTF-8, cut to [`SAMPLE_CHARS`], in backticks.
fn sample(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut cut: String = text.chars().take(SAMPLE_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("`{}`", cut.replace('`', "'"))
}

/// `256 MiB` when `bytes` is a whole number of MiB, else MB.
fn size_label(bytes: u64) -> String {
    if bytes > 0 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        mb(bytes)
    }
}

/// The built-in info types the gateway's engine knows (`DlpService.ListInfoTypes`); checks
/// that the table's three are there and masked with the `redact` style (`[NAME]` tags).
async fn builtin_types(gw: &Gateway) -> Result<Vec<String>> {
    let mut client = DlpServiceClient::new(gw.channel().await?);
    let listed = client
        .list_info_types(authed(pb::ListInfoTypesRequest {}))
        .await
        .context("ListInfoTypes")?
        .into_inner();
    let builtin: Vec<&pb::InfoType> = listed.info_types.iter().filter(|t| !t.custom).collect();
    for name in TABLE_TYPES {
        let Some(info) = builtin.iter().find(|t| t.name == name) else {
            bail!(
                "the gateway does not list the built-in info type {name} (it lists {:?})",
                builtin.iter().map(|t| &t.name).collect::<Vec<_>>()
            );
        };
        if info.style != "redact" {
            bail!(
                "{name} is masked with the `{}` style on this gateway; the bench checks `[{name}]` tags and needs `redact`",
                info.style
            );
        }
    }
    Ok(builtin.into_iter().map(|t| t.name.clone()).collect())
}

/// Creates (or finds) connection `name` running `cat path` with `redact_types`, and checks
/// that the dlp plugin is active exactly when they are non-empty.
async fn dlp_connection(
    gw: &Gateway,
    name: &str,
    path: &Path,
    redact_types: &[String],
) -> Result<()> {
    let file = path.to_string_lossy();
    let connection = match gw
        .create_command_connection_with(name, &["cat", &file], redact_types)
        .await
    {
        Ok(created) => created,
        Err(err)
            if err
                .downcast_ref::<tonic::Status>()
                .is_some_and(|s| s.code() == tonic::Code::AlreadyExists) =>
        {
            gw.get_connection(name).await?
        }
        Err(err) => return Err(err),
    };
    let want = !redact_types.is_empty();
    let dlp = connection.plugins.iter().find(|p| p.name == "dlp");
    if dlp.is_some_and(|p| p.active) != want {
        bail!(
            "connection {name}: expected the dlp plugin {}, got {:?}",
            if want { "active" } else { "inactive" },
            dlp.map(|p| (p.active, &p.status))
        );
    }
    if want && connection.redact_types.len() != redact_types.len() {
        bail!(
            "connection {name} masks {:?}, expected {redact_types:?} (left over from an earlier run?)",
            connection.redact_types
        );
    }
    Ok(())
}

/// One run of `Exec` on a connection.
struct Run {
    elapsed: Duration,
    stdout_bytes: u64,
    session: pb::Session,
    cpu: CpuUsage,
    recording: u64,
}

impl Run {
    /// MB/s of the target's output (`input` bytes).
    fn rate(&self, input: u64) -> f64 {
        input as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    /// The session's `dlp.*` metrics.
    fn dlp_metrics(&self) -> Vec<(&str, i64)> {
        self.session
            .metrics
            .iter()
            .filter(|(k, _)| k.starts_with("dlp."))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }

    fn metric(&self, name: &str) -> Option<i64> {
        self.session.metrics.get(name).copied()
    }
}

/// `name=value, ...`, or `none`.
fn list_metrics(metrics: &[(&str, i64)]) -> String {
    if metrics.is_empty() {
        return "none".to_owned();
    }
    metrics
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `Exec` on `connection` once: times it, counts its output (and hands it to `scan`,
/// if given), and deletes the session's recording once the session has settled.
async fn run_once(
    gw: &Gateway,
    client: &mut SessionServiceClient<Channel>,
    connection: &str,
    mut scan: Option<&mut Scan>,
) -> Result<Run> {
    let meter = CpuMeter::start(gw)?;
    let t = Instant::now();
    let outcome = tokio::time::timeout(
        EXEC_TIMEOUT,
        exec_with(client, connection, |chunk| {
            if let Some(scan) = scan.as_mut() {
                scan.push(chunk);
            }
        }),
    )
    .await
    .with_context(|| format!("exec on {connection} timed out"))??;
    let elapsed = t.elapsed();
    let cpu = meter.usage()?;
    if let Some(scan) = scan {
        scan.finish();
    }
    if outcome.exit_code != Some(0) || outcome.stderr_bytes != 0 {
        bail!(
            "exec on {connection}: exit {:?} ({}), {} bytes of stderr",
            outcome.exit_code,
            outcome.reason,
            outcome.stderr_bytes
        );
    }
    let session = settled_session(gw, &outcome.session_id).await?;
    let path = gw.recording_path(&outcome.session_id);
    let recording = std::fs::metadata(&path)
        .with_context(|| format!("no recording at {}", path.display()))?
        .len();
    std::fs::remove_file(&path).with_context(|| format!("cannot delete {}", path.display()))?;
    Ok(Run {
        elapsed,
        stdout_bytes: outcome.stdout_bytes,
        session,
        cpu,
        recording,
    })
}

/// The fastest run.
fn best(runs: &[Run]) -> Result<&Run> {
    runs.iter()
        .min_by_key(|r| r.elapsed)
        .context("no measured runs")
}

/// The runs of one input.
struct Measured {
    input: Input,
    generated: Generated,
    generate_time: Duration,
    /// The unmeasured dlp-on run whose output was scanned.
    checked: Run,
    scan: Scan,
    off: Vec<Run>,
    on: Vec<Run>,
}

/// `dlp`: MB/s of output through a session with the dlp plugin masking every built-in info
/// type vs the same session without it, on PII-dense table output and PII-free logs.
pub(crate) async fn dlp(gw: &Gateway, options: &Options, report: &mut Report) -> Result<()> {
    let size = options.dlp_bytes;
    if size == 0 {
        bail!("--dlp-bytes must be positive");
    }
    let runs = options.dlp_runs.max(1);
    let types = builtin_types(gw).await?;
    eprintln!(
        "  dlp on: redact_types = the {} built-in info types",
        types.len()
    );
    let mut client = SessionServiceClient::new(gw.channel().await?);
    let mut failures: Vec<String> = Vec::new();
    for input in [Input::Table, Input::Logs] {
        let label = input.label();
        let path = gw
            .scratch_dir()
            .join(format!("dlp-{}-{size}.txt", input.slug()));
        let _remove = RemoveOnDrop(path.clone());
        let t = Instant::now();
        let generated = match input {
            Input::Table => corpus::pii_table(&path, size)?,
            Input::Logs => corpus::clean_logs(&path, size)?,
        };
        let generate_time = t.elapsed();
        eprintln!(
            "  {label}: generated {} ({} {}) in {:.1} s",
            mb(generated.bytes),
            generated.rows,
            input.rows_word(),
            generate_time.as_secs_f64()
        );
        let off_name = format!("bench-dlp-{}-off", input.slug());
        let on_name = format!("bench-dlp-{}-on", input.slug());
        dlp_connection(gw, &off_name, &path, &[]).await?;
        dlp_connection(gw, &on_name, &path, &types).await?;

        // First an unmeasured run with dlp on whose output is checked line by line (which
        // costs the bench client more CPU than counting bytes; it also warms up).
        let mut scan = Scan::new(&types);
        let checked = run_once(gw, &mut client, &on_name, Some(&mut scan)).await?;
        eprintln!(
            "  {label} dlp on, checked run: {:.2} s, {} of output, {} [EMAIL_ADDRESS] for {} {}",
            checked.elapsed.as_secs_f64(),
            mb(checked.stdout_bytes),
            scan.count("EMAIL_ADDRESS"),
            generated.rows,
            input.rows_word()
        );

        let mut off: Vec<Run> = Vec::with_capacity(runs);
        let mut on: Vec<Run> = Vec::with_capacity(runs);
        for i in 0..runs {
            for (side, name) in [("off", &off_name), ("on", &on_name)] {
                let run = run_once(gw, &mut client, name, None).await?;
                eprintln!(
                    "  {label} dlp {side} run {}/{runs}: {:.2} s, {:.0} MB/s, {} of output",
                    i + 1,
                    run.elapsed.as_secs_f64(),
                    run.rate(generated.bytes),
                    mb(run.stdout_bytes)
                );
                if side == "off" {
                    if run.stdout_bytes != generated.bytes {
                        bail!(
                            "{label} with dlp off: got {} bytes of output, expected {}",
                            run.stdout_bytes,
                            generated.bytes
                        );
                    }
                    off.push(run);
                } else {
                    on.push(run);
                }
            }
        }
        let measured = Measured {
            input,
            generated,
            generate_time,
            checked,
            scan,
            off,
            on,
        };
        failures.extend(report_input(&measured, size, report)?);
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// Adds the row and notes of one input; returns what failed its checks.
fn report_input(m: &Measured, size: u64, report: &mut Report) -> Result<Vec<String>> {
    let label = m.input.label();
    let bytes = m.generated.bytes;
    let rows = m.generated.rows;
    let best_off = best(&m.off)?;
    let best_on = best(&m.on)?;
    let (on_rate, off_rate) = (best_on.rate(bytes), best_off.rate(bytes));
    report.row(Row {
        scenario: "dlp".to_owned(),
        metric: format!("MB/s, {} {label}, dlp on vs off", size_label(size)),
        gateway: format!("{on_rate:.0} MB/s ({:.2} s)", best_on.elapsed.as_secs_f64()),
        baseline: format!(
            "{off_rate:.0} MB/s ({:.2} s)",
            best_off.elapsed.as_secs_f64()
        ),
        ratio: format!("{:.2}×", on_rate / off_rate),
        goal: "-".to_owned(),
        met: None,
    });
    let rates = |runs: &[Run]| {
        runs.iter()
            .map(|r| format!("{:.0}", r.rate(bytes)))
            .collect::<Vec<_>>()
            .join("/")
    };
    let all_runs = || std::iter::once(&m.checked).chain(&m.off).chain(&m.on);
    let recorded: u64 = all_runs().map(|r| r.recording).sum();
    report.note(format!(
        "dlp ({label}): {} of `cat` output ({rows} {}, generated in {:.1} s); best of {} runs per side, alternating off, on, off, on: off {} MB/s, on {} MB/s; output with dlp on {}; {} recordings ({} in all) deleted afterwards",
        mb(bytes),
        m.input.rows_word(),
        m.generate_time.as_secs_f64(),
        m.off.len(),
        rates(&m.off),
        rates(&m.on),
        mb(best_on.stdout_bytes),
        all_runs().count(),
        mb(recorded)
    ));
    let cpu = |runs: &[Run]| {
        let mut total = CpuUsage::default();
        for run in runs {
            total += run.cpu;
        }
        total
    };
    report.note(format!(
        "dlp ({label}, dlp off, {} runs): {}",
        m.off.len(),
        cpu(&m.off)
    ));
    report.note(format!(
        "dlp ({label}, dlp on, {} runs): {}",
        m.on.len(),
        cpu(&m.on)
    ));

    let mut failures = Vec::new();
    // Every dlp-on run must give the same output as the checked one: the chunk boundaries
    // differ from run to run, and a value split across chunks must still be masked.
    for (i, run) in m.on.iter().enumerate() {
        if run.stdout_bytes != m.checked.stdout_bytes
            || run.dlp_metrics() != m.checked.dlp_metrics()
        {
            failures.push(format!(
                "{label} with dlp on, run {}: {} bytes of output and metrics {}, but the checked run gave {} bytes and {}",
                i + 1,
                run.stdout_bytes,
                list_metrics(&run.dlp_metrics()),
                m.checked.stdout_bytes,
                list_metrics(&m.checked.dlp_metrics())
            ));
        }
    }
    let scan = &m.scan;
    match m.input {
        Input::Table => {
            let emails = scan.count("EMAIL_ADDRESS");
            if scan.at_lines > 0 || scan.marker_lines > 0 || emails != rows {
                failures.push(format!(
                    "{label} with dlp on: {emails} [EMAIL_ADDRESS] for {rows} rows, {} lines with `@`, {} lines with `{}` (raw e-mail domains){}",
                    scan.at_lines,
                    scan.marker_lines,
                    String::from_utf8_lossy(EMAIL_MARKER),
                    scan.unmasked
                        .first()
                        .map(|s| format!("; first row not fully masked: {s}"))
                        .unwrap_or_default()
                ));
            }
            let counts: Vec<String> = TABLE_TYPES
                .iter()
                .map(|t| format!("{} [{t}]", scan.count(t)))
                .collect();
            let others = scan.other_tags(&TABLE_TYPES);
            report.note(format!(
                "dlp ({label}, dlp on, checked run): output has {} for {rows} rows ({} rows exactly `id | name | [EMAIL_ADDRESS] | [CREDIT_CARD_NUMBER] | [PHONE_NUMBER] | city`), {} lines with `@`, {} with `{}`, other tags: {}",
                counts.join(", "),
                scan.masked_rows,
                scan.at_lines,
                scan.marker_lines,
                String::from_utf8_lossy(EMAIL_MARKER),
                if others.is_empty() {
                    "none".to_owned()
                } else {
                    others.join(", ")
                }
            ));
            if scan.masked_rows != rows || scan.rows != rows {
                report.note(format!(
                    "dlp ({label}, dlp on): WARNING: {} of {} rows not fully masked; first: {}",
                    scan.rows.saturating_sub(scan.masked_rows),
                    scan.rows,
                    scan.unmasked.join(", ")
                ));
            }
            let expected = i64::try_from(rows).unwrap_or(i64::MAX);
            let mut metrics: Vec<String> = TABLE_TYPES
                .iter()
                .map(|t| {
                    let key = format!("dlp.{t}");
                    match m.checked.metric(&key) {
                        Some(v) if v == expected => format!("{key}={v}"),
                        Some(v) => format!("{key}={v} (**expected {expected}**)"),
                        None => format!("{key} missing (**expected {expected}**)"),
                    }
                })
                .collect();
            metrics.push(match m.checked.metric(MASKED_BYTES) {
                Some(v) => format!("{MASKED_BYTES}={v}"),
                None => format!("{MASKED_BYTES} missing"),
            });
            let others: Vec<(&str, i64)> = m
                .checked
                .dlp_metrics()
                .into_iter()
                .filter(|(k, _)| {
                    *k != MASKED_BYTES && !TABLE_TYPES.iter().any(|t| k.get(4..) == Some(*t))
                })
                .collect();
            if !others.is_empty() {
                metrics.push(format!("others: {}", list_metrics(&others)));
            }
            report.note(format!(
                "dlp ({label}, dlp on): session metrics {} (the same in every dlp-on run: {})",
                metrics.join(", "),
                if m.on
                    .iter()
                    .all(|r| r.dlp_metrics() == m.checked.dlp_metrics())
                {
                    "yes"
                } else {
                    "**no**"
                }
            ));
        }
        Input::Logs => {
            let masked = scan.other_tags(&[]);
            if masked.is_empty() {
                report.note(format!(
                    "dlp ({label}, dlp on): nothing masked (session metrics: {})",
                    list_metrics(&m.checked.dlp_metrics())
                ));
            } else {
                report.note(format!(
                    "dlp ({label}, dlp on): false positives: {} (session metrics: {}); first lines: {}",
                    masked.join(", "),
                    list_metrics(&m.checked.dlp_metrics()),
                    scan.tagged.join(", ")
                ));
            }
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> Vec<String> {
        TABLE_TYPES.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn scan_counts_tags_and_rows_across_chunks() {
        let text = b"    id | name | email | card | phone | city\n---+---\n        1 | Wei Chen   | [EMAIL_ADDRESS]   | [CREDIT_CARD_NUMBER] | [PHONE_NUMBER] | Oslo\n        2 | Zoe Ali | zoe@example.com | [CREDIT_CARD_NUMBER] | [PHONE_NUMBER] | Lyon\n(2 rows)\n\n";
        for split in 1..text.len() {
            let mut scan = Scan::new(&types());
            for chunk in text.chunks(split) {
                scan.push(chunk);
            }
            scan.finish();
            assert_eq!(scan.count("EMAIL_ADDRESS"), 1);
            assert_eq!(scan.count("CREDIT_CARD_NUMBER"), 2);
            assert_eq!(scan.count("PHONE_NUMBER"), 2);
            assert_eq!(scan.rows, 2);
            assert_eq!(scan.masked_rows, 1);
            assert_eq!(scan.at_lines, 1);
            assert_eq!(scan.marker_lines, 1);
            assert_eq!(scan.unmasked.len(), 1);
        }
    }

    #[test]
    fn other_tags_and_unknown_brackets() {
        let mut scan = Scan::new(&["IP_ADDRESS".to_owned(), "URL".to_owned()]);
        scan.push(b"[req=1] [worker-3] [IP_ADDRESS] [URL] [URL] [NOPE] [\n");
        scan.finish();
        assert_eq!(scan.other_tags(&["URL"]), vec!["IP_ADDRESS 1".to_owned()]);
        assert_eq!(scan.count("URL"), 2);
        assert_eq!(scan.tagged.len(), 1);
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(256 << 20), "256 MiB");
        assert_eq!(size_label(1_000_000), "1.0 MB");
        assert!(contains(b"a@example.com", EMAIL_MARKER));
        assert!(!contains(b"exampl", EMAIL_MARKER));
    }
}
