//! Deterministic inputs of the `dlp` scenario: PII-dense psql table output and PII-free
//! logs and prose, written to files (generated at each run, never committed).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use anyhow::{Context, Result};

/// Seed of the PII-dense table.
const TABLE_SEED: u64 = 0x6470_6c5f_7461_626c;
/// Seed of the logs.
const LOGS_SEED: u64 = 0x6470_6c5f_6c6f_6773;

/// The text every e-mail address of the table has in its domain, and that nothing else in
/// the table contains: masked output must not contain it.
pub(crate) const EMAIL_MARKER: &[u8] = b"example";

/// SplitMix64: small, seedable, good enough for test data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; 0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        let i = self.below(xs.len() as u64) as usize;
        xs.get(i).copied().unwrap_or_default()
    }

    /// A decimal digit `0..=9`.
    fn digit(&mut self) -> u8 {
        self.below(10) as u8
    }
}

const FIRST: &[&str] = &[
    "James", "Maria", "Wei", "Aisha", "Lucas", "Sofia", "Kenji", "Olga", "Pedro", "Fatima", "Liam",
    "Chloe", "Ahmed", "Ingrid", "Diego", "Yuki", "Noah", "Emma", "Ravi", "Zoe",
];
const LAST: &[&str] = &[
    "Smith", "Garcia", "Chen", "Khan", "Silva", "Rossi", "Tanaka", "Ivanova", "Santos", "Haddad",
    "Brown", "Martin", "Ali", "Larsen", "Lopez", "Sato", "Miller", "Dubois",
];
const CITIES: &[&str] = &[
    "Lisbon",
    "Austin",
    "Osaka",
    "Berlin",
    "Sao Paulo",
    "Toronto",
    "Nairobi",
    "Oslo",
    "Seattle",
    "Madrid",
    "Chennai",
    "Lyon",
];
/// E-mail domains: every one contains [`EMAIL_MARKER`].
const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "corp.example",
    "shop.example.co.uk",
];
const WORDS: &[&str] = &[
    "the",
    "request",
    "was",
    "processed",
    "after",
    "a",
    "short",
    "delay",
    "and",
    "cache",
    "returned",
    "stale",
    "data",
    "for",
    "several",
    "minutes",
    "while",
    "operators",
    "investigated",
    "connection",
    "pool",
    "exhausted",
    "retry",
    "succeeded",
    "on",
    "second",
    "attempt",
    "report",
    "generated",
    "queue",
    "drained",
    "deployment",
    "rolled",
    "back",
    "because",
    "health",
    "checks",
    "failed",
    "in",
    "region",
    "with",
    "latency",
    "above",
    "threshold",
    "nightly",
    "job",
    "completed",
    "without",
    "errors",
    "schema",
    "migration",
    "applied",
    "to",
    "replica",
];
const LEVELS: &[&str] = &["INFO ", "DEBUG", "WARN ", "ERROR", "TRACE"];
const MODULES: &[&str] = &[
    "api::handler",
    "db::pool",
    "worker::queue",
    "auth::session",
    "cache::lru",
    "http::server",
    "storage::segment",
];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v2/users",
    "/healthz",
    "/static/app.js",
    "/metrics",
    "/api/v1/reports/daily",
];
const FILES: &[&str] = &[
    "/var/lib/hoop/data",
    "/srv/app/releases",
    "/etc/hoop/conf.d",
    "/tmp/build/cache",
    "/usr/local/share/app",
];
const HOSTS: &[&str] = &[
    "localhost",
    "db-primary",
    "cache-1",
    "queue.internal",
    "api",
];

/// A generated input file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Generated {
    /// Its size.
    pub(crate) bytes: u64,
    /// Data rows (the table) or lines (the logs).
    pub(crate) rows: u64,
}

/// Lines, buffered and counted, into a file.
struct Lines {
    out: BufWriter<File>,
    line: String,
    bytes: u64,
    count: u64,
}

impl Lines {
    fn create(path: &Path) -> Result<Lines> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Lines {
            out: BufWriter::with_capacity(1 << 20, file),
            line: String::with_capacity(256),
            bytes: 0,
            count: 0,
        })
    }

    /// Writes the line built in `self.line` (plus a newline) and clears it.
    fn emit(&mut self) -> Result<()> {
        self.line.push('\n');
        self.out
            .write_all(self.line.as_bytes())
            .context("cannot write a generated input")?;
        self.bytes += self.line.len() as u64;
        self.count += 1;
        self.line.clear();
        Ok(())
    }

    /// Flushes the file and waits until it is on disk, so that writing it back does not
    /// overlap the measured runs.
    fn finish(self) -> Result<u64> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .context("cannot write a generated input")?;
        file.sync_all()
            .context("cannot write a generated input (fsync)")?;
        Ok(self.bytes)
    }
}

/// Completes `digits` (prefix + random body, last digit missing) with its Luhn check digit.
fn luhn_complete(digits: &mut Vec<u8>) {
    let mut sum = 0u32;
    // The check digit will be at index 0 from the right, so the digits already there
    // are doubled at even positions from the right (counting from 0 at the last one).
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    digits.push(((10 - sum % 10) % 10) as u8);
}

/// Appends the digits with a separator after each group of `groups` (none when `sep` is
/// `None`).
fn push_grouped(line: &mut String, digits: &[u8], groups: &[usize], sep: Option<char>) {
    let mut i = 0;
    for (g, &len) in groups.iter().enumerate() {
        if g > 0
            && let Some(sep) = sep
        {
            line.push(sep);
        }
        for &d in digits.iter().skip(i).take(len) {
            line.push(char::from(b'0' + d));
        }
        i += len;
    }
}

/// A Luhn-valid card number of a known issuer, spaced, dashed or plain by `row`.
fn push_card(rng: &mut Rng, line: &mut String, row: u64) {
    // Visa, Mastercard (51-55 and 2221), American Express (34, 37), Discover.
    let (mut digits, len) = match rng.below(6) {
        0 | 1 => (vec![4], 16),
        2 => (vec![5, 1 + rng.below(5) as u8], 16),
        3 => (vec![2, 2, 2, 1], 16),
        4 => (vec![3, if rng.below(2) == 0 { 4 } else { 7 }], 15),
        _ => (vec![6, 0, 1, 1], 16),
    };
    while digits.len() < len - 1 {
        digits.push(rng.digit());
    }
    luhn_complete(&mut digits);
    let groups: &[usize] = if len == 15 { &[4, 6, 5] } else { &[4, 4, 4, 4] };
    let sep = match row % 3 {
        0 => Some(' '),
        1 => Some('-'),
        _ => None,
    };
    push_grouped(line, &digits, groups, sep);
}

/// A phone number in one of three formats, by `row`: `(415) 555-0132`,
/// `+1 415-555-0132`, `+44 20 7946 0958`.
fn push_phone(rng: &mut Rng, line: &mut String, row: u64) {
    let area = rng.range(200, 999);
    let exchange = rng.range(200, 999);
    let number = rng.below(10_000);
    let _ = match (row / 3) % 3 {
        0 => write!(line, "({area}) {exchange}-{number:04}"),
        1 => write!(line, "+1 {area}-{exchange}-{number:04}"),
        _ => write!(
            line,
            "+44 20 {:04} {:04}",
            rng.below(10_000),
            rng.below(10_000)
        ),
    };
}

/// An e-mail address whose domain contains [`EMAIL_MARKER`].
fn push_email(rng: &mut Rng, line: &mut String, first: &str, last: &str) {
    let domain = rng.pick(EMAIL_DOMAINS);
    let _ = match rng.below(4) {
        0 => write!(line, "{first}.{last}@{domain}"),
        1 => write!(line, "{first}{last}{}@{domain}", rng.range(1, 99)),
        2 => write!(line, "{}.{last}@{domain}", first.get(..1).unwrap_or("x")),
        _ => write!(line, "{first}_{last}+{}@{domain}", rng.range(1, 9)),
    };
}

/// Pads `line` with spaces from byte `from` to `width` bytes.
fn pad(line: &mut String, from: usize, width: usize) {
    let used = line.len() - from;
    for _ in used..width {
        line.push(' ');
    }
}

/// Writes at least `size` bytes (whole rows) of psql output to `path`: a header, rows of
/// id, name, e-mail, card number, phone number and city, and the `(N rows)` footer.
pub(crate) fn pii_table(path: &Path, size: u64) -> Result<Generated> {
    let mut rng = Rng::new(TABLE_SEED);
    let mut lines = Lines::create(path)?;
    lines.line.push_str(
        "    id    |        name        |              email               |        card         |      phone       |   city",
    );
    lines.emit()?;
    lines.line.push_str(
        "----------+--------------------+----------------------------------+---------------------+------------------+-----------",
    );
    lines.emit()?;
    let mut rows = 0u64;
    let mut lower_first = String::new();
    let mut lower_last = String::new();
    while lines.bytes < size {
        rows += 1;
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        lower_first.clear();
        lower_first.push_str(first);
        lower_first.make_ascii_lowercase();
        lower_last.clear();
        lower_last.push_str(last);
        lower_last.make_ascii_lowercase();
        let line = &mut lines.line;
        let _ = write!(line, " {rows:>8} | ");
        let at = line.len();
        let _ = write!(line, "{first} {last}");
        pad(line, at, 18);
        line.push_str(" | ");
        let at = line.len();
        push_email(&mut rng, line, &lower_first, &lower_last);
        pad(line, at, 32);
        line.push_str(" | ");
        let at = line.len();
        push_card(&mut rng, line, rows);
        pad(line, at, 19);
        line.push_str(" | ");
        let at = line.len();
        push_phone(&mut rng, line, rows);
        pad(line, at, 16);
        line.push_str(" | ");
        line.push_str(rng.pick(CITIES));
        lines.emit()?;
    }
    let _ = write!(lines.line, "({rows} rows)");
    lines.emit()?;
    lines.line.clear();
    lines.emit()?;
    Ok(Generated {
        bytes: lines.finish()?,
        rows,
    })
}

fn push_timestamp(rng: &mut Rng, line: &mut String, second: u64) {
    let (h, m, s) = (second / 3600 % 24, second / 60 % 60, second % 60);
    let day = 1 + second / 86_400 % 28;
    let ms = rng.below(1000);
    let _ = write!(line, "2026-11-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z");
}

fn push_uuid(rng: &mut Rng, line: &mut String) {
    let a = rng.next_u64();
    let b = rng.next_u64();
    let _ = write!(
        line,
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        8 + (b >> 62),
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    );
}

fn push_sentence(rng: &mut Rng, line: &mut String, words: u64) {
    for i in 0..words {
        let word = rng.pick(WORDS);
        if i == 0 {
            let mut chars = word.chars();
            if let Some(c) = chars.next() {
                line.push(c.to_ascii_uppercase());
                line.push_str(chars.as_str());
            }
        } else {
            line.push(' ');
            line.push_str(word);
        }
    }
    line.push('.');
}

/// Writes at least `size` bytes (whole lines) of PII-free logs and prose to `path`:
/// timestamps, log levels, UUIDs, paths, version strings, ports, durations, counts and
/// English sentences.
pub(crate) fn clean_logs(path: &Path, size: u64) -> Result<Generated> {
    let mut rng = Rng::new(LOGS_SEED);
    let mut lines = Lines::create(path)?;
    let mut second = 0u64;
    while lines.bytes < size {
        second += rng.below(3);
        let line = &mut lines.line;
        match rng.below(8) {
            0..=2 => {
                push_timestamp(&mut rng, line, second);
                let _ = write!(line, " {} {} [req=", rng.pick(LEVELS), rng.pick(MODULES));
                push_uuid(&mut rng, line);
                let _ = write!(
                    line,
                    "] {} {}/{} {} {}ms bytes={} version={}.{}.{}",
                    rng.pick(&["GET", "POST", "PUT", "DELETE"]),
                    rng.pick(PATHS),
                    rng.range(1, 99_999),
                    rng.pick(&["200", "201", "204", "304", "404", "500"]),
                    rng.range(1, 900),
                    rng.range(100, 99_999),
                    rng.below(5),
                    rng.below(30),
                    rng.below(20)
                );
            }
            3 => {
                push_timestamp(&mut rng, line, second);
                let _ = write!(
                    line,
                    " WARN  worker::queue [worker-{}] retrying job {} after {} ms (attempt {}/5)",
                    rng.below(16),
                    rng.range(1000, 999_999),
                    rng.range(10, 5000),
                    rng.range(1, 5)
                );
            }
            4 => {
                push_timestamp(&mut rng, line, second);
                let _ = write!(
                    line,
                    " INFO  http::server listening on {}:{} (pid {}), build {}.{}.{}-rc.{} commit {:07x}",
                    rng.pick(HOSTS),
                    rng.pick(&["8080", "8443", "5432", "6379", "9090", "3000"]),
                    rng.range(100, 65_000),
                    rng.below(5),
                    rng.below(30),
                    rng.below(20),
                    rng.range(1, 9),
                    rng.below(1 << 28)
                );
            }
            5 => {
                push_timestamp(&mut rng, line, second);
                let _ = write!(
                    line,
                    " DEBUG storage::segment flushed {}/segment-{:06}.log ({} KiB) in {}.{} ms, {} entries",
                    rng.pick(FILES),
                    rng.below(1_000_000),
                    rng.range(4, 65_536),
                    rng.below(100),
                    rng.below(10),
                    rng.range(1, 100_000)
                );
            }
            _ => {
                for i in 0..rng.range(2, 4) {
                    if i > 0 {
                        line.push(' ');
                    }
                    let words = rng.range(6, 16);
                    push_sentence(&mut rng, line, words);
                }
            }
        }
        lines.emit()?;
    }
    let rows = lines.count;
    Ok(Generated {
        bytes: lines.finish()?,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luhn_ok(digits: &[u8]) -> bool {
        let mut sum = 0u32;
        for (i, &d) in digits.iter().rev().enumerate() {
            let mut v = u32::from(d);
            if i % 2 == 1 {
                v *= 2;
                if v > 9 {
                    v -= 9;
                }
            }
            sum += v;
        }
        sum.is_multiple_of(10)
    }

    #[test]
    fn cards_are_luhn_valid_and_vary_in_format() {
        let mut rng = Rng::new(1);
        let mut seen = [false; 3];
        for row in 0..300 {
            let mut line = String::new();
            push_card(&mut rng, &mut line, row);
            let digits: Vec<u8> = line
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            assert!(luhn_ok(&digits), "{line}");
            assert!(matches!(digits.len(), 15 | 16), "{line}");
            let i = if line.contains(' ') {
                0
            } else if line.contains('-') {
                1
            } else {
                2
            };
            seen[i] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn table_rows_hold_one_of_each_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.txt");
        let generated = pii_table(&path, 64 * 1024).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(generated.bytes, text.len() as u64);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        assert_eq!(rows.len() as u64, generated.rows);
        for row in &rows {
            let fields: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(fields.len(), 6, "{row}");
            assert!(
                fields[2].contains("@") && fields[2].contains("example"),
                "{row}"
            );
            assert!(!fields[1].contains("example") && !fields[5].contains("example"));
        }
        assert!(text.contains(&format!("({} rows)", generated.rows)));
    }

    #[test]
    fn logs_have_no_at_signs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.txt");
        let generated = clean_logs(&path, 64 * 1024).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(generated.bytes, text.len() as u64);
        assert!(!text.contains('@'));
        assert!(!text.contains("example"));
    }
}
