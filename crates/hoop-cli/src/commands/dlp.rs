//! `hoop dlp …`: the info types the gateway masks (`types`), and masking stdin locally with
//! the gateway's engine (`redact`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use hoop_plugin_dlp::engine::{DlpError, Engine, MAX_HOLDBACK, Style};
use hoop_plugin_dlp::{DlpSettings, hash_key_from_secret};
use hoop_proto::v1::{InfoType, ListInfoTypesRequest};

use crate::cli::{MaskStyle, OutputFormat, RedactArgs, UsageError};
use crate::client::Api;
use crate::convert;
use crate::output::{self, or_dash, table};

/// Bytes read from stdin at a time.
const CHUNK: usize = 64 * 1024;
/// Widest example shown in the table of `hoop dlp types`, in characters.
const CELL_WIDTH: usize = 40;
/// The variable holding the gateway's secret key, as the gateway reads it.
const SECRET_KEY_VAR: &str = "HOOP_SECRET_KEY";
/// File of the gateway's secret key, inside its data dir.
const SECRET_KEY_FILE: &str = "secret-key";
/// What `--types` accepts for every type.
const ALL: &str = "all";

/// `hoop dlp types`
pub(crate) async fn types(api: &mut Api, format: OutputFormat) -> Result<String> {
    let response = api
        .dlp
        .list_info_types(ListInfoTypesRequest {})
        .await?
        .into_inner();
    match format {
        OutputFormat::Json => output::json(&response),
        OutputFormat::Table => Ok(types_table(&response.info_types)),
    }
}

fn types_table(types: &[InfoType]) -> String {
    table(
        &["name", "style", "example", "masked", "description"],
        types
            .iter()
            .map(|t| {
                let name = if t.custom {
                    format!("{} (custom)", t.name)
                } else {
                    t.name.clone()
                };
                vec![
                    name,
                    or_dash(&t.style),
                    cell(&t.example),
                    cell(&t.masked_example),
                    or_dash(&t.description),
                ]
            })
            .collect(),
    )
}

/// A value for one table cell: on one line (control characters escaped, e.g. `\n`), at most
/// [`CELL_WIDTH`] characters with `…` marking a cut, `-` when empty.
fn cell(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    if escaped.chars().count() > CELL_WIDTH {
        escaped = escaped.chars().take(CELL_WIDTH - 1).collect();
        escaped.push('…');
    }
    or_dash(&escaped)
}

/// `hoop dlp redact`: masks stdin to stdout and prints the summary to stderr.
pub(crate) fn redact(args: &RedactArgs, data_dir: &Path) -> Result<()> {
    let config = args.config.as_deref();
    let mut settings = match config {
        Some(path) => load_settings(path)?,
        None => DlpSettings::default(),
    };
    if let Some(style) = args.style {
        settings.default_style = style_of(style);
    }
    let types = resolve_types(&args.types, &settings)?;
    let mut random_key = None;
    if uses_hash(&settings) {
        let (key, source) = hash_key(std::env::var_os(SECRET_KEY_VAR), data_dir);
        settings.hash_key = key;
        if let KeySource::Random(path) = source {
            random_key = Some(path);
        }
    }
    settings.check().map_err(|err| {
        let key = match err.field_path() {
            Some(path) => format!("dlp.{path}"),
            None => "dlp".to_owned(),
        };
        match config {
            Some(path) => anyhow!("{}: {key}: {}", path.display(), err.message()),
            None => anyhow!("{key}: {}", err.message()),
        }
    })?;
    let engine = settings.engine(&types).map_err(engine_error)?;
    if let Some(path) = random_key
        && types.iter().any(|t| settings.style_of(t) == Style::Hash)
    {
        eprintln!(
            "hoop: {SECRET_KEY_VAR} is unset and {} cannot be read: the hash style uses a random \
             key for this run, so its tags will not match the gateway's",
            path.display()
        );
    }
    let summary = match redact_stream(&engine, io::stdin().lock(), io::stdout().lock()) {
        Ok(summary) => summary,
        // The reader went away (`hoop dlp redact … | head`): not an error.
        Err(err) if err.kind() == ErrorKind::BrokenPipe => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    if !args.quiet {
        eprintln!("hoop: {summary}");
    }
    Ok(())
}

fn style_of(style: MaskStyle) -> Style {
    match style {
        MaskStyle::Redact => Style::Redact,
        MaskStyle::Mask => Style::Mask,
        MaskStyle::Partial => Style::Partial,
        MaskStyle::Hash => Style::Hash,
    }
}

/// Whether any style of `settings` is `hash` (then they need a hash key).
fn uses_hash(settings: &DlpSettings) -> bool {
    settings.default_style == Style::Hash || settings.styles.values().any(|s| *s == Style::Hash)
}

/// The types `--types` names: a comma-separated list, where `all` stands for every type of
/// `settings` (built-in and custom); without duplicates. Unknown names are left for the
/// engine to refuse.
fn resolve_types(value: &str, settings: &DlpSettings) -> Result<Vec<String>> {
    let mut types: Vec<String> = Vec::new();
    for item in convert::split_list(value) {
        let names = if item == ALL {
            settings.valid_names()
        } else {
            vec![item]
        };
        for name in names {
            if !types.contains(&name) {
                types.push(name);
            }
        }
    }
    if types.is_empty() {
        return Err(UsageError(format!(
            "--types: no info types given; valid types: {}, or {ALL}",
            settings.valid_names().join(", ")
        ))
        .into());
    }
    Ok(types)
}

/// An engine error: an unknown type is a usage error.
fn engine_error(err: DlpError) -> anyhow::Error {
    match err {
        DlpError::UnknownType { name, valid } => UsageError(format!(
            "unknown info type `{name}` in --types; valid types: {}, or {ALL}",
            valid.join(", ")
        ))
        .into(),
        other => anyhow!(other),
    }
}

/// Where the hash key came from.
#[derive(Debug, PartialEq, Eq)]
enum KeySource {
    /// `HOOP_SECRET_KEY`.
    Env,
    /// The data dir's secret-key file.
    File,
    /// Neither was there: a random key; the path is the file that could not be read.
    Random(PathBuf),
}

/// The key of the `hash` style, derived as the gateway does from its secret key: the value
/// of `HOOP_SECRET_KEY` (`env`), else the data dir's `secret-key` file (trimmed), else a
/// random key.
fn hash_key(env: Option<OsString>, data_dir: &Path) -> (Vec<u8>, KeySource) {
    if let Some(secret) = env.filter(|v| !v.is_empty()) {
        return (
            hash_key_from_secret(&secret.into_encoded_bytes()),
            KeySource::Env,
        );
    }
    let path = data_dir.join(SECRET_KEY_FILE);
    if let Ok(contents) = std::fs::read_to_string(&path) {
        let secret = contents.trim();
        if !secret.is_empty() {
            return (hash_key_from_secret(secret.as_bytes()), KeySource::File);
        }
    }
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    (key, KeySource::Random(path))
}

/// The `[dlp]` table of the gateway config file at `path` (its other keys are ignored);
/// the defaults when it has none.
fn load_settings(path: &Path) -> Result<DlpSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    parse_settings(&text).map_err(|message| anyhow!("{}: {message}", path.display()))
}

/// Parses the `[dlp]` table of a gateway config; errors name the line or the key at fault
/// (e.g. `dlp.custom_types[0].regex: …`).
fn parse_settings(text: &str) -> Result<DlpSettings, String> {
    let file: toml::Table = toml::from_str(text).map_err(|err| toml_error(text, &err))?;
    let Some(dlp) = file.get("dlp") else {
        return Ok(DlpSettings::default());
    };
    let toml::Value::Table(dlp) = dlp else {
        return Err(format!(
            "dlp: expected a table ([dlp]), found {}",
            dlp.type_str()
        ));
    };
    match dlp.clone().try_into::<DlpSettings>() {
        Ok(settings) => Ok(settings),
        Err(err) => {
            let (key, message) = locate(dlp).unwrap_or_else(|| (String::new(), err.to_string()));
            let key = if key.is_empty() {
                "dlp".to_owned()
            } else {
                format!("dlp.{key}")
            };
            Err(format!("{key}: {}", message.trim_end()))
        }
    }
}

/// A TOML syntax error: `line L, column C: message`.
fn toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end().replace('\n', ", ");
    match err.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// The key of the `[dlp]` table at fault, relative to it (`styles.URL`,
/// `custom_types[1].regex`, `custom_types[1]`), and the error: found by deserializing parts
/// of the table alone (every key of the settings has a default).
fn locate(dlp: &toml::Table) -> Option<(String, String)> {
    fn parse(key: &str, value: toml::Value) -> Result<(), String> {
        let mut table = toml::Table::new();
        table.insert(key.to_owned(), value);
        table
            .try_into::<DlpSettings>()
            .map(drop)
            .map_err(|err| err.message().to_owned())
    }
    for (key, value) in dlp {
        let Err(message) = parse(key, value.clone()) else {
            continue;
        };
        match value {
            toml::Value::Table(entries) => {
                for (name, entry) in entries {
                    let mut one = toml::Table::new();
                    one.insert(name.clone(), entry.clone());
                    if let Err(message) = parse(key, toml::Value::Table(one)) {
                        return Some((format!("{key}.{name}"), message));
                    }
                }
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let Err(message) = parse(key, toml::Value::Array(vec![item.clone()])) else {
                        continue;
                    };
                    if let toml::Value::Table(fields) = item {
                        // The field whose removal makes the item parse.
                        for field in fields.keys() {
                            let mut without = fields.clone();
                            without.remove(field);
                            let fixed = toml::Value::Array(vec![toml::Value::Table(without)]);
                            if parse(key, fixed).is_ok() {
                                return Some((format!("{key}[{i}].{field}"), message));
                            }
                        }
                    }
                    return Some((format!("{key}[{i}]"), message));
                }
            }
            _ => {}
        }
        return Some((key.clone(), message));
    }
    None
}

/// What was masked.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    /// Values masked per info type.
    counts: BTreeMap<String, u64>,
    /// Input bytes masked.
    masked_bytes: u64,
}

impl fmt::Display for Summary {
    /// `masked 4 values: EMAIL_ADDRESS 3, CREDIT_CARD_NUMBER 1 (62 bytes)`: most frequent
    /// types first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.counts.values().sum();
        let plural =
            |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        write!(f, "masked {total} {}", plural(total, "value", "values"))?;
        if total == 0 {
            return Ok(());
        }
        let mut counts: Vec<(&String, &u64)> =
            self.counts.iter().filter(|(_, n)| **n > 0).collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let counts: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
        write!(
            f,
            ": {} ({} {})",
            counts.join(", "),
            self.masked_bytes,
            plural(self.masked_bytes, "byte", "bytes")
        )
    }
}

/// Masks `input` into `output` as a stream: read in chunks of [`CHUNK`] bytes, each chunk's
/// masked output written (and flushed) as soon as the engine releases it; at most
/// [`MAX_HOLDBACK`] bytes wait for the rest of a possible value.
fn redact_stream(
    engine: &Engine,
    mut input: impl Read,
    mut output: impl Write,
) -> io::Result<Summary> {
    let annotate =
        |what: &str, err: io::Error| io::Error::new(err.kind(), format!("{what}: {err}"));
    let mut redactor = engine.stream();
    let mut buf = vec![0; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + MAX_HOLDBACK);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(annotate("reading stdin", err)),
        };
        out.clear();
        redactor.push(buf.get(..n).unwrap_or(&buf), &mut out);
        if !out.is_empty() {
            output
                .write_all(&out)
                .and_then(|()| output.flush())
                .map_err(|err| annotate("writing stdout", err))?;
        }
    }
    out.clear();
    redactor.flush(&mut out);
    output
        .write_all(&out)
        .and_then(|()| output.flush())
        .map_err(|err| annotate("writing stdout", err))?;
    Ok(Summary {
        counts: redactor.counts(),
        masked_bytes: redactor.masked_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = "4111 1111 1111 1111";

    fn engine(settings: &DlpSettings, types: &[&str]) -> Engine {
        let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        settings.engine(&types).unwrap()
    }

    /// Yields its bytes a few at a time, with an interruption first.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        interrupted: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(ErrorKind::Interrupted.into());
            }
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn streams_like_the_one_shot_engine() {
        let engine = engine(
            &DlpSettings::default(),
            &["EMAIL_ADDRESS", "CREDIT_CARD_NUMBER"],
        );
        let mut input = format!("mail jane.doe@example.com, card {CARD}\n").into_bytes();
        input.extend_from_slice(b"bad \xff\xfe byte, no newline at the end: bob@example.org");
        let expected = engine.redact(&input);
        for step in [1, 3, 7, 4096] {
            let mut output = Vec::new();
            let reader = Trickle {
                data: &input,
                step,
                interrupted: false,
            };
            let summary = redact_stream(&engine, reader, &mut output).unwrap();
            assert_eq!(output, expected.output, "step {step}");
            assert_eq!(summary.counts, expected.counts);
            assert_eq!(summary.masked_bytes, expected.masked_bytes);
        }
        let text = String::from_utf8_lossy(&expected.output);
        assert!(text.starts_with("mail [EMAIL_ADDRESS], card [CREDIT_CARD_NUMBER]\nbad "));
        assert!(expected.output.windows(2).any(|w| w == b"\xff\xfe"));
        assert_eq!(expected.counts["EMAIL_ADDRESS"], 2);
    }

    #[test]
    fn large_input_is_streamed_whole() {
        let engine = engine(&DlpSettings::default(), &["EMAIL_ADDRESS"]);
        let line = "user-000 <ann@example.com> logged in\n";
        let input = line.repeat(10_000).into_bytes();
        let mut output = Vec::new();
        let summary = redact_stream(&engine, input.as_slice(), &mut output).unwrap();
        assert_eq!(summary.counts["EMAIL_ADDRESS"], 10_000);
        assert_eq!(
            String::from_utf8(output).unwrap(),
            "user-000 <[EMAIL_ADDRESS]> logged in\n".repeat(10_000)
        );
    }

    #[test]
    fn summaries() {
        let summary = |counts: &[(&str, u64)], masked_bytes| Summary {
            counts: counts.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            masked_bytes,
        };
        assert_eq!(summary(&[], 0).to_string(), "masked 0 values");
        assert_eq!(
            summary(&[("CREDIT_CARD_NUMBER", 1), ("EMAIL_ADDRESS", 3)], 123).to_string(),
            "masked 4 values: EMAIL_ADDRESS 3, CREDIT_CARD_NUMBER 1 (123 bytes)"
        );
        assert_eq!(
            summary(&[("URL", 1)], 1).to_string(),
            "masked 1 value: URL 1 (1 byte)"
        );
        assert_eq!(
            summary(&[("URL", 2), ("IP_ADDRESS", 2)], 30).to_string(),
            "masked 4 values: IP_ADDRESS 2, URL 2 (30 bytes)"
        );
    }

    #[test]
    fn types_list_and_all() {
        let settings = parse_settings(
            "[[dlp.custom_types]]\nname = \"EMPLOYEE_ID\"\nregex = \"EMP-[0-9]{6}\"\n",
        )
        .unwrap();
        assert_eq!(
            resolve_types(" URL, EMAIL_ADDRESS,URL,", &settings).unwrap(),
            ["URL", "EMAIL_ADDRESS"]
        );
        let all = resolve_types("all", &settings).unwrap();
        assert_eq!(all, settings.valid_names());
        assert_eq!(all.last().map(String::as_str), Some("EMPLOYEE_ID"));
        assert_eq!(
            resolve_types("URL,all", &settings).unwrap().len(),
            all.len()
        );
        let err = resolve_types(" , ", &settings).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
        assert!(
            err.to_string()
                .starts_with("--types: no info types given; valid types: "),
            "{err}"
        );
    }

    #[test]
    fn unknown_types_are_usage_errors() {
        let err = DlpSettings::default()
            .engine(&["SHOE_SIZE".to_owned()])
            .unwrap_err();
        let err = engine_error(err);
        assert!(err.downcast_ref::<UsageError>().is_some());
        let text = err.to_string();
        assert!(
            text.starts_with(
                "unknown info type `SHOE_SIZE` in --types; valid types: AWS_ACCESS_KEY_ID, "
            ),
            "{text}"
        );
        assert!(
            text.contains("EMAIL_ADDRESS") && text.ends_with(", or all"),
            "{text}"
        );
        let other = engine_error(DlpError::MissingHashKey);
        assert!(other.downcast_ref::<UsageError>().is_none());
    }

    #[test]
    fn settings_from_a_gateway_config() {
        let text = r#"
listen = "127.0.0.1:8010"
admin_token = "ignored-by-the-cli-0123456789"

[[connections]]
name = "pg"

[dlp]
default_style = "mask"
styles = { EMPLOYEE_ID = "redact" }

[[dlp.custom_types]]
name = "EMPLOYEE_ID"
regex = "EMP-[0-9]{6}"
"#;
        let settings = parse_settings(text).unwrap();
        assert_eq!(settings.default_style, Style::Mask);
        settings.check().unwrap();
        let engine = engine(&settings, &["EMPLOYEE_ID", "EMAIL_ADDRESS"]);
        let out = engine.redact(b"EMP-123456 a@example.com\n").output;
        assert_eq!(out, b"[EMPLOYEE_ID] *@*******.***\n");

        let empty = parse_settings("listen = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(empty.default_style, Style::Redact);
        assert!(empty.custom_types.is_empty());
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = |text: &str| parse_settings(text).unwrap_err();
        assert_eq!(
            err("[dlp]\ndefault_style = \"loud\"\n"),
            "dlp.default_style: unknown variant `loud`, expected one of `redact`, `mask`, `partial`, `hash`"
        );
        assert!(
            err("[dlp]\nstyles = { URL = \"mask\", IP_ADDRESS = 3 }\n")
                .starts_with("dlp.styles.IP_ADDRESS: invalid type: "),
        );
        assert!(
            err("[dlp]\ncolour = 1\n").starts_with("dlp.colour: unknown field `colour`"),
            "{}",
            err("[dlp]\ncolour = 1\n")
        );
        let two = "[[dlp.custom_types]]\nname = \"A_ONE\"\nregex = \"x\"\n\n\
                   [[dlp.custom_types]]\nname = \"B_TWO\"\nregex = 7\n";
        assert!(
            err(two).starts_with("dlp.custom_types[1].regex: invalid type: integer `7`"),
            "{}",
            err(two)
        );
        assert_eq!(
            err("[[dlp.custom_types]]\nregex = \"x\"\n"),
            "dlp.custom_types[0]: missing field `name`"
        );
        assert_eq!(
            err("dlp = 3\n"),
            "dlp: expected a table ([dlp]), found integer"
        );
        assert_eq!(
            err("listen = \n"),
            "line 1, column 10: invalid string, expected `\"`, `'`"
        );
        assert!(
            err("a = 1\n[dlp\n").starts_with("line 2, column "),
            "{}",
            err("a = 1\n[dlp\n")
        );
    }

    #[test]
    fn bad_regex_is_found_by_the_check() {
        let settings =
            parse_settings("[[dlp.custom_types]]\nname = \"EMPLOYEE_ID\"\nregex = \"EMP-[0-9\"\n")
                .unwrap();
        let err = settings.check().unwrap_err();
        assert_eq!(err.field_path(), Some("custom_types[0].regex"));
    }

    #[test]
    fn hash_key_sources() {
        let dir = std::env::temp_dir().join(format!("hoop-cli-dlp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = "s3cret-key-of-the-gateway-0123456789";

        let (from_env, source) = hash_key(Some(secret.into()), &dir);
        assert_eq!(source, KeySource::Env);
        assert_eq!(from_env, hash_key_from_secret(secret.as_bytes()));

        let (random, source) = hash_key(Some(OsString::new()), &dir);
        assert_eq!(source, KeySource::Random(dir.join("secret-key")));
        assert_eq!(random.len(), 32);
        assert_ne!(hash_key(None, &dir).0, random, "a new key per run");

        std::fs::write(dir.join("secret-key"), format!("{secret}\n")).unwrap();
        let (from_file, source) = hash_key(None, &dir);
        assert_eq!(source, KeySource::File);
        assert_eq!(from_file, from_env, "same key as the gateway's");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hash_style_needs_the_key() {
        let mut settings = DlpSettings::default();
        assert!(!uses_hash(&settings));
        settings.default_style = style_of(MaskStyle::Hash);
        assert!(uses_hash(&settings));
        settings.hash_key = hash_key_from_secret(b"k");
        let out = engine(&settings, &["EMAIL_ADDRESS"])
            .redact(b"jane.doe@example.com")
            .output;
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with("[EMAIL_ADDRESS:") && out.len() == 32,
            "{out}"
        );
    }

    #[test]
    fn types_table_marks_custom_types_and_shortens_examples() {
        let types = [
            InfoType {
                name: "EMAIL_ADDRESS".to_owned(),
                description: "e-mail address".to_owned(),
                example: "jane.doe@example.com".to_owned(),
                custom: false,
                style: "redact".to_owned(),
                masked_example: "[EMAIL_ADDRESS]".to_owned(),
            },
            InfoType {
                name: "EMPLOYEE_ID".to_owned(),
                description: "custom info type".to_owned(),
                example: String::new(),
                custom: true,
                style: "mask".to_owned(),
                masked_example: String::new(),
            },
        ];
        let text = types_table(&types);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME                   STYLE    EXAMPLE                MASKED            DESCRIPTION",
                "EMAIL_ADDRESS          redact   jane.doe@example.com   [EMAIL_ADDRESS]   e-mail address",
                "EMPLOYEE_ID (custom)   mask     -                      -                 custom info type",
            ]
        );
        assert_eq!(cell("a\nb\tc"), "a\\nb\\tc");
        let long = cell(&"x".repeat(100));
        assert_eq!(long.chars().count(), CELL_WIDTH);
        assert!(long.ends_with("x…"));
        assert_eq!(cell(&"é".repeat(CELL_WIDTH)), "é".repeat(CELL_WIDTH));
    }
}
