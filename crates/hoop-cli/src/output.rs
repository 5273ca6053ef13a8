//! Rendering results: canonical protobuf JSON, kubectl-like tables and `key: value` views.

use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use comfy_table::{Table, presets::NOTHING};
use hoop_proto::v1;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use prost_types::Timestamp;

/// A generated message and its full protobuf name, for rendering as canonical JSON.
pub(crate) trait ProtoMessage: prost::Message + Sized {
    /// Full name, e.g. `hoop.v1.Connection`.
    const FULL_NAME: &'static str;
}

macro_rules! proto_messages {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl ProtoMessage for $ty {
            const FULL_NAME: &'static str = $name;
        })*

        /// Text from the gateway, safe to print on a terminal: control characters (escape
/// sequences) and the invisible characters that reorder text (bidirectional overrides) are
/// shown escaped, e.g. `\u{1b}`, so that what reviewers read is what runs. Newlines are kept
/// when `keep_newlines`, else shown as `\n`; tabs become a space on a single line.
pub(crate) fn printable(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\t' if keep_newlines => out.push('\t'),
            '\t' => out.push(' '),
            '\u{200e}'
            | '\u{200f}'
            | '\u{061c}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => out.extend(c.escape_unicode()),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// Arguments as a shell would need them: quoted when they hold anything but plain
/// characters.
pub(crate) fn quote_args(args: &[String]) -> String {
    args.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
        pub(crate) const ALL_FULL_NAMES: &[&str] = &[$($name),*];
    };
}

proto_messages! {
    v1::Connection => "hoop.v1.Connection",
    v1::PluginAttachment => "hoop.v1.PluginAttachment",
    v1::Plugin => "hoop.v1.Plugin",
    v1::ListPluginsResponse => "hoop.v1.ListPluginsResponse",
    v1::ListConnectionPluginsResponse => "hoop.v1.ListConnectionPluginsResponse",
    v1::User => "hoop.v1.User",
    v1::ApiKey => "hoop.v1.ApiKey",
    v1::CreateApiKeyResponse => "hoop.v1.CreateApiKeyResponse",
    v1::ListApiKeysResponse => "hoop.v1.ListApiKeysResponse",
    v1::Session => "hoop.v1.Session",
    v1::SessionEvent => "hoop.v1.SessionEvent",
    v1::VerifySessionResponse => "hoop.v1.VerifySessionResponse",
    v1::ListInfoTypesResponse => "hoop.v1.ListInfoTypesResponse",
    v1::Review => "hoop.v1.Review",
    v1::Event => "hoop.v1.Event",
    v1::CreateAgentResponse => "hoop.v1.CreateAgentResponse",
    v1::CreateEndpointResponse => "hoop.v1.CreateEndpointResponse",
    v1::ListEndpointsResponse => "hoop.v1.ListEndpointsResponse",
    v1::Endpoint => "hoop.v1.Endpoint",
    v1::RotateEndpointSecretResponse => "hoop.v1.RotateEndpointSecretResponse",
    v1::ListDeliveriesResponse => "hoop.v1.ListDeliveriesResponse",
    v1::Delivery => "hoop.v1.Delivery",
    v1::ListAgentsResponse => "hoop.v1.ListAgentsResponse",
    v1::ListInstancesResponse => "hoop.v1.ListInstancesResponse",
    v1::ListRunbooksResponse => "hoop.v1.ListRunbooksResponse",
    v1::Runbook => "hoop.v1.Runbook",
    v1::SearchSessionsResponse => "hoop.v1.SearchSessionsResponse",
    () => "google.protobuf.Empty",
}

fn descriptor_pool() -> Result<&'static DescriptorPool> {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let pool = DescriptorPool::decode(hoop_proto::FILE_DESCRIPTOR_SET)
        .context("decoding the embedded protobuf descriptors")?;
    Ok(POOL.get_or_init(|| pool))
}

fn dynamic<M: ProtoMessage>(message: &M) -> Result<DynamicMessage> {
    let descriptor = descriptor_pool()?
        .get_message_by_name(M::FULL_NAME)
        .ok_or_else(|| anyhow!("message {} is not in the descriptor set", M::FULL_NAME))?;
    DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .with_context(|| format!("re-decoding a {}", M::FULL_NAME))
}

/// Canonical protobuf JSON (lowerCamelCase names, RFC 3339 timestamps, 64-bit integers as
/// strings), default-valued fields included, as grpcurl prints it.
fn serialize_options() -> SerializeOptions {
    SerializeOptions::new().skip_default_fields(false)
}

/// A message as a canonical JSON value (object keys sorted).
#[cfg(test)]
pub(crate) fn to_json<M: ProtoMessage>(message: &M) -> Result<serde_json::Value> {
    dynamic(message)?
        .serialize_with_options(serde_json::value::Serializer, &serialize_options())
        .with_context(|| format!("rendering a {} as JSON", M::FULL_NAME))
}

/// A message as pretty-printed canonical JSON, fields in field-number order.
pub(crate) fn json<M: ProtoMessage>(message: &M) -> Result<String> {
    let mut buf = Vec::new();
    let mut serializer = serde_json::Serializer::pretty(&mut buf);
    dynamic(message)?
        .serialize_with_options(&mut serializer, &serialize_options())
        .with_context(|| format!("rendering a {} as JSON", M::FULL_NAME))?;
    String::from_utf8(buf).context("rendering JSON")
}

/// A message as canonical JSON on one line (without the newline), fields in field-number
/// order: one line of a newline-delimited JSON stream.
pub(crate) fn json_line<M: ProtoMessage>(message: &M) -> Result<String> {
    let mut buf = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut buf);
    dynamic(message)?
        .serialize_with_options(&mut serializer, &serialize_options())
        .with_context(|| format!("rendering a {} as JSON", M::FULL_NAME))?;
    String::from_utf8(buf).context("rendering JSON")
}

/// Several messages as one object holding them under `field`, e.g. `{"connections": [..]}`,
/// formatted like [`json`].
pub(crate) fn json_list<M: ProtoMessage>(field: &str, messages: &[M]) -> Result<String> {
    let field = serde_json::to_string(field).context("rendering JSON")?;
    if messages.is_empty() {
        return Ok(format!("{{\n  {field}: []\n}}"));
    }
    let items = messages
        .iter()
        .map(|message| {
            // Pretty JSON escapes newlines inside strings, so every line can be indented.
            Ok(json(message)?
                .lines()
                .map(|line| format!("    {line}"))
                .collect::<Vec<_>>()
                .join("\n"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("{{\n  {field}: [\n{}\n  ]\n}}", items.join(",\n")))
}

/// A borderless table with upper-case headers, like kubectl prints.
pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    table.set_header(headers.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    table.trim_fmt()
}

/// Aligned `key: value` lines; the further lines of a multi-line value are indented to
/// line up under its first.
pub(crate) fn details(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    let indent = format!("\n{:width$} ", "");
    pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{:<width$} {}",
                format!("{key}:"),
                value.replace('\n', &indent)
            )
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A timestamp as RFC 3339 UTC to the second, `-` when unset.
pub(crate) fn timestamp(ts: Option<&Timestamp>) -> String {
    match ts {
        Some(ts) => Timestamp {
            seconds: ts.seconds,
            nanos: 0,
        }
        .to_string(),
        None => "-".to_owned(),
    }
}

/// `-` for an empty cell.
pub(crate) fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value.to_owned()
    }
}

/// A list joined by commas, `-` when empty.
pub(crate) fn list(values: &[String]) -> String {
    or_dash(&values.join(","))
}

pub(crate) fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// The time from `start` to `end`, short: `340ms`, `1.2s` (tenths truncated), `2m5s`,
/// `1h2m`, `3d4h`. `-` when either is unset; an end before the start counts as zero.
pub(crate) fn duration(start: Option<&Timestamp>, end: Option<&Timestamp>) -> String {
    let (Some(start), Some(end)) = (start, end) else {
        return "-".to_owned();
    };
    let nanos = (i128::from(end.seconds) - i128::from(start.seconds)) * 1_000_000_000
        + (i128::from(end.nanos) - i128::from(start.nanos));
    let millis = nanos.max(0) / 1_000_000;
    let secs = millis / 1000;
    match secs {
        0 => format!("{millis}ms"),
        1..60 => format!("{secs}.{}s", millis % 1000 / 100),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A `google.protobuf.Duration` as a short text humantime parses back: `90s` is `1m30s`,
/// then `30m`, `1h30m`, `7d`, with `ms`, `us` or `ns` for a fraction of a second. `-` when
/// unset.
pub(crate) fn short_duration(d: Option<&prost_types::Duration>) -> String {
    let Some(d) = d else {
        return "-".to_owned();
    };
    if d.seconds < 0 || d.nanos < 0 {
        // Not a valid length of time; shown as is.
        return format!("{}s{}ns", d.seconds, d.nanos);
    }
    let mut text = String::new();
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut rest = d.seconds;
    for (size, unit) in units {
        if rest >= size {
            text.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    let nanos = d.nanos;
    if nanos != 0 {
        text.push_str(&if nanos % 1_000_000 == 0 {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos % 1000 == 0 {
            format!("{}us", nanos / 1000)
        } else {
            format!("{nanos}ns")
        });
    }
    if text.is_empty() {
        text.push_str("0s");
    }
    text
}

/// A byte count, human-readable: `512 B`, then one decimal in binary units: `1.5 KiB`,
/// `20.0 MiB`, up to EiB.
pub(crate) fn bytes(count: i64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let count = u128::from(count.unsigned_abs());
    // Tenths of the unit, rounded half up; the next unit when it would read 1024.0 or more.
    let tenths = |divisor: u128| (count * 10 + divisor / 2) / divisor;
    let mut unit = 0;
    let mut divisor: u128 = 1024;
    while tenths(divisor) >= 10_240 && unit + 1 < UNITS.len() {
        unit += 1;
        divisor *= 1024;
    }
    let tenths = tenths(divisor);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hoop_proto::v1::{AccessModes, Connection, PluginAttachment, User};
    use prost_types::Struct;

    use super::*;

    fn sample_connection() -> Connection {
        Connection {
            name: "pg".to_owned(),
            r#type: "command".to_owned(),
            command: vec!["psql".to_owned(), "-h".to_owned(), "db".to_owned()],
            env: BTreeMap::from([("PGPASSWORD".to_owned(), String::new())]),
            reviewers: vec![],
            redact_types: vec!["EMAIL_ADDRESS".to_owned()],
            access_modes: Some(AccessModes {
                exec: Some(true),
                connect: None,
                runbooks: Some(false),
            }),
            tags: BTreeMap::new(),
            plugins: vec![PluginAttachment {
                name: "slack".to_owned(),
                config: Some(
                    crate::convert::parse_config(r##"{"channel":"#ops","n":2}"##).unwrap(),
                ),
                active: true,
                status: "active".to_owned(),
            }],
            create_time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            update_time: Some(Timestamp {
                seconds: 1_700_000_001,
                nanos: 500_000_000,
            }),
            session_timeout: Some(prost_types::Duration {
                seconds: 5400,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn connection_as_canonical_json() {
        let json = to_json(&sample_connection()).unwrap();
        assert_eq!(json["name"], "pg");
        assert_eq!(json["type"], "command");
        assert_eq!(json["command"], serde_json::json!(["psql", "-h", "db"]));
        assert_eq!(json["env"], serde_json::json!({"PGPASSWORD": ""}));
        assert_eq!(json["redactTypes"], serde_json::json!(["EMAIL_ADDRESS"]));
        // Default values are printed too.
        assert_eq!(json["reviewers"], serde_json::json!([]));
        assert_eq!(json["tags"], serde_json::json!({}));
        // Unset optional fields are not.
        assert_eq!(
            json["accessModes"],
            serde_json::json!({"exec": true, "runbooks": false})
        );
        assert_eq!(json["createTime"], "2023-11-14T22:13:20Z");
        assert_eq!(json["updateTime"], "2023-11-14T22:13:21.500Z");
        assert_eq!(json["sessionTimeout"], "5400s");
        assert_eq!(
            json["plugins"][0]["config"],
            serde_json::json!({"channel": "#ops", "n": 2.0})
        );
        assert_eq!(json["plugins"][0]["active"], true);
        assert!(json.get("redact_types").is_none());
        assert!(json.get("create_time").is_none());
    }

    #[test]
    fn json_keeps_field_order() {
        let text = json(&sample_connection()).unwrap();
        let name = text.find("\"name\"").unwrap();
        let kind = text.find("\"type\"").unwrap();
        let redact = text.find("\"redactTypes\"").unwrap();
        let created = text.find("\"createTime\"").unwrap();
        assert!(name < kind && kind < redact && redact < created, "{text}");
        assert!(text.starts_with("{\n  \"name\": \"pg\",\n"), "{text}");
    }

    #[test]
    fn json_list_wraps_items() {
        let text = json_list("connections", &[sample_connection()]).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let object = value.as_object().unwrap();
        assert_eq!(object.len(), 1);
        assert_eq!(value["connections"][0]["name"], "pg");
        // Same text as serde_json would print for the same value, field order aside.
        let expected = serde_json::json!({"connections": [to_json(&sample_connection()).unwrap()]});
        assert_eq!(value, expected);
        let text = json_list("users", &[User::default(), User::default()]).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["users"].as_array().unwrap().len(), 2);
        assert!(
            text.starts_with("{\n  \"users\": [\n    {\n      \"name\": \"\",\n"),
            "{text}"
        );
        let empty: Vec<Connection> = vec![];
        assert_eq!(
            json_list("connections", &empty).unwrap(),
            "{\n  \"connections\": []\n}"
        );
    }

    #[test]
    fn every_rendered_message_is_in_the_descriptor_set() {
        let pool = descriptor_pool().unwrap();
        for name in ALL_FULL_NAMES {
            assert!(pool.get_message_by_name(name).is_some(), "{name}");
        }
        assert_eq!(json(&()).unwrap(), "{}");
        assert_eq!(
            to_json(&PluginAttachment {
                config: Some(Struct::default()),
                ..PluginAttachment::default()
            })
            .unwrap()["config"],
            serde_json::json!({})
        );
    }

    #[test]
    fn table_is_borderless_and_trimmed() {
        let text = table(
            &["name", "type"],
            vec![
                vec!["pg".to_owned(), "command".to_owned()],
                vec!["mysql-prod".to_owned(), "command".to_owned()],
            ],
        );
        assert_eq!(
            text,
            "NAME         TYPE\npg           command\nmysql-prod   command"
        );
    }

    #[test]
    fn details_align() {
        let text = details(&[("name", "pg".to_owned()), ("reviewers", String::new())]);
        assert_eq!(text, "name:      pg\nreviewers:");
        let text = details(&[
            ("attributes", "a=1\nb=2 \n\nc".to_owned()),
            ("id", "x".to_owned()),
        ]);
        assert_eq!(
            text,
            "attributes: a=1\n            b=2\n\n            c\nid:         x"
        );
    }

    #[test]
    fn short_durations() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        let cases = [
            (d(90, 0), "1m30s"),
            (d(1800, 0), "30m"),
            (d(5400, 0), "1h30m"),
            (d(7200, 0), "2h"),
            (d(604_800, 0), "7d"),
            (d(90_061, 0), "1d1h1m1s"),
            (d(1, 500_000_000), "1s500ms"),
            (d(0, 1500), "1500ns"),
            (d(2, 3000), "2s3us"),
            (d(0, 0), "0s"),
            (d(-1, 0), "-1s0ns"),
        ];
        for (duration, expected) in cases {
            assert_eq!(short_duration(Some(&duration)), expected);
            if duration.seconds >= 0 {
                // What is printed parses back to the same duration.
                let parsed = humantime::parse_duration(expected).unwrap();
                assert_eq!(parsed.as_secs(), duration.seconds.unsigned_abs());
                assert_eq!(i64::from(parsed.subsec_nanos()), i64::from(duration.nanos));
            }
        }
        assert_eq!(short_duration(None), "-");
    }

    #[test]
    fn session_event_as_one_json_line() {
        use hoop_proto::v1::{
            OutputStream, SessionEvent, SessionExit, SessionOutput, SessionStarted,
            session_event::Event,
        };
        let output = SessionEvent {
            event: Some(Event::Output(SessionOutput {
                stream: OutputStream::Stderr.into(),
                data: b"hi\n\xff".to_vec().into(),
            })),
        };
        assert_eq!(
            json_line(&output).unwrap(),
            r#"{"output":{"stream":"STDERR","data":"aGkK/w=="}}"#
        );
        let started = SessionEvent {
            event: Some(Event::Started(SessionStarted {
                session_id: "s-1".to_owned(),
            })),
        };
        assert_eq!(
            json_line(&started).unwrap(),
            r#"{"started":{"sessionId":"s-1"}}"#
        );
        let exit = SessionEvent {
            event: Some(Event::Exit(SessionExit {
                exit_code: 0,
                reason: String::new(),
            })),
        };
        assert_eq!(
            json_line(&exit).unwrap(),
            r#"{"exit":{"exitCode":0,"reason":""}}"#
        );
        assert_eq!(json_line(&SessionEvent::default()).unwrap(), "{}");
    }

    #[test]
    fn durations() {
        let at = |seconds, nanos| Timestamp { seconds, nanos };
        let start = at(100, 900_000_000);
        let cases = [
            (at(100, 900_000_000), "0ms"),
            (at(101, 240_000_000), "340ms"),
            (at(102, 150_000_000), "1.2s"),
            (at(160, 899_000_000), "59.9s"),
            (at(160, 900_000_000), "1m0s"),
            (at(225, 900_000_000), "2m5s"),
            (at(3_820, 900_000_000), "1h2m"),
            (at(100 + 3 * 86_400 + 4 * 3600 + 59, 0), "3d4h"),
            (at(50, 0), "0ms"),
        ];
        for (end, expected) in cases {
            assert_eq!(duration(Some(&start), Some(&end)), expected, "{end:?}");
        }
        assert_eq!(duration(Some(&start), None), "-");
        assert_eq!(duration(None, Some(&start)), "-");
        let extreme = duration(Some(&at(i64::MIN, 0)), Some(&at(i64::MAX, 999_999_999)));
        assert!(extreme.ends_with('h'), "{extreme}");
    }

    #[test]
    fn byte_counts() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (10 * 1024 + 51, "10.0 KiB"),
            (10 * 1024 + 52, "10.1 KiB"),
            (1024 * 1024 - 1, "1.0 MiB"),
            (1024 * 1024 - 52, "1023.9 KiB"),
            (20 * 1024 * 1024, "20.0 MiB"),
            (5 * (1 << 30), "5.0 GiB"),
            (i64::MAX, "8.0 EiB"),
            (-5, "-5 B"),
        ];
        for (count, expected) in cases {
            assert_eq!(bytes(count), expected, "{count}");
        }
    }

    #[test]
    fn timestamps() {
        let ts = Timestamp {
            seconds: 0,
            nanos: 7,
        };
        assert_eq!(timestamp(Some(&ts)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(None), "-");
    }
}
