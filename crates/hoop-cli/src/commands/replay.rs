//! `hoop sessions replay …`: prints a session's recording as the user saw it, as JSON lines
//! or as an asciinema recording, optionally in real time.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hoop_proto::v1::{GetSessionEventsRequest, RecordingEvent, RecordingEventKind};

use crate::cli::ReplayFormat;
use crate::client::Api;
use crate::commands::stream::{EXIT_BROKEN_PIPE, write_live};

/// Longest single wait with `--timing`, however long the session was idle.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Terminal size written in an asciicast header: the recording does not know the user's.
const CAST_WIDTH: u32 = 80;
const CAST_HEIGHT: u32 = 24;

/// Prints the recording of session `id` as it streams; with `speed`, waits between events as
/// the session did, `speed` times faster. Returns the status to exit with; a stream that
/// fails (e.g. `DATA_LOSS` for an altered recording) fails after the events before the
/// failure are printed.
pub(crate) async fn run(
    api: &mut Api,
    id: &str,
    format: ReplayFormat,
    speed: Option<f64>,
) -> Result<u8> {
    let mut events = api
        .sessions
        .get_session_events(GetSessionEventsRequest { id: id.to_owned() })
        .await?
        .into_inner();
    let mut renderer = Renderer::new(format, id);
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    // Offset of the last event printed, for --timing.
    let mut clock: i128 = 0;
    let end = loop {
        let event = match events.message().await {
            Ok(Some(event)) => event,
            Ok(None) => break Ok(()),
            Err(status) => break Err(status),
        };
        let pieces = renderer.event(&event);
        if pieces.is_empty() {
            continue;
        }
        if let Some(speed) = speed {
            let at = offset_nanos(&event);
            tokio::time::sleep(pause(clock, at, speed)).await;
            clock = at;
        }
        if !write_pieces(&mut out, &mut err, &pieces)? {
            return Ok(EXIT_BROKEN_PIPE);
        }
    };
    if !write_pieces(&mut out, &mut err, &renderer.finish())? {
        return Ok(EXIT_BROKEN_PIPE);
    }
    end?;
    Ok(0)
}

/// Where a piece of output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Stdout,
    Stderr,
}

/// Writes and flushes each piece. `Ok(false)` once stdout is closed; a failing stderr is
/// ignored (there is nowhere to report it).
fn write_pieces(
    out: &mut impl Write,
    err: &mut impl Write,
    pieces: &[(Sink, Vec<u8>)],
) -> Result<bool> {
    for (sink, bytes) in pieces {
        match sink {
            Sink::Stdout => {
                if !write_live(out, bytes)? {
                    return Ok(false);
                }
            }
            Sink::Stderr => {
                let _ = write_live(err, bytes);
            }
        }
    }
    Ok(true)
}

/// How long to wait before showing the event at offset `at` (nanoseconds), the previous
/// one shown being at `previous`: the gap divided by `speed`, at most [`MAX_PAUSE`].
fn pause(previous: i128, at: i128, speed: f64) -> Duration {
    #[allow(clippy::cast_precision_loss)]
    let gap = (at - previous).max(0) as f64 / 1e9 / speed;
    Duration::try_from_secs_f64(gap)
        .unwrap_or(MAX_PAUSE)
        .min(MAX_PAUSE)
}

/// An event's time since the session started, in nanoseconds (0 when unset).
fn offset_nanos(event: &RecordingEvent) -> i128 {
    event.offset.as_ref().map_or(0, |d| {
        i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos)
    })
}

/// `count / per_second` as a JSON number: `1.5`, `0.0`.
fn seconds_json(count: i128, per_second: f64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let seconds = count as f64 / per_second;
    serde_json::Value::from(seconds).to_string()
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The name of an event kind in `--format json`.
fn kind_name(kind: RecordingEventKind) -> &'static str {
    match kind {
        RecordingEventKind::Header => "header",
        RecordingEventKind::Stdin => "stdin",
        RecordingEventKind::Stdout => "stdout",
        RecordingEventKind::Stderr => "stderr",
        RecordingEventKind::Close => "close",
        RecordingEventKind::Unspecified => "unspecified",
    }
}

/// One line of `--format json` (with its newline): `index`, `offset` in seconds, `kind`,
/// and the data as `text` when it is UTF-8, else as `base64`.
fn json_line(event: &RecordingEvent) -> String {
    let data = match std::str::from_utf8(&event.data) {
        Ok(text) => format!("\"text\":{}", json_string(text)),
        Err(_) => format!("\"base64\":\"{}\"", BASE64.encode(&event.data)),
    };
    format!(
        "{{\"index\":{},\"offset\":{},\"kind\":\"{}\",{data}}}\n",
        event.index,
        seconds_json(offset_nanos(event), 1e9),
        kind_name(event.kind()),
    )
}

/// The first line of an asciicast v2 recording (with its newline).
fn cast_header(title: &str, timestamp: Option<u64>) -> String {
    let timestamp = timestamp.map_or_else(String::new, |t| format!("\"timestamp\":{t},"));
    format!(
        "{{\"version\":2,\"width\":{CAST_WIDTH},\"height\":{CAST_HEIGHT},{timestamp}\"title\":{}}}\n",
        json_string(title)
    )
}

/// The session's start (UNIX seconds) from a header event's JSON metadata.
fn started_at(header: &[u8]) -> Option<u64> {
    let metadata: serde_json::Value = serde_json::from_slice(header).ok()?;
    let millis = metadata.get("started_at_unix_ms")?.as_u64()?;
    (millis > 0).then_some(millis / 1000)
}

/// An asciicast v2 event line (with its newline): `[seconds, "o" or "i", "text"]`.
fn cast_frame(micros: i128, code: &str, text: &str) -> String {
    format!(
        "[{}, {}, {}]\n",
        seconds_json(micros, 1e6),
        json_string(code),
        json_string(text)
    )
}

/// Turns recording events into output, in one of the formats.
struct Renderer {
    format: ReplayFormat,
    cast: Cast,
    /// The session's statements are shown in text, as a psql prompt would (a database
    /// session records its statements as input, which a terminal would have echoed).
    statements: Option<String>,
}

impl Renderer {
    fn new(format: ReplayFormat, id: &str) -> Self {
        Self {
            format,
            cast: Cast::new(format!("hoop session {id}")),
            statements: None,
        }
    }

    /// The output of one event, in order.
    fn event(&mut self, event: &RecordingEvent) -> Vec<(Sink, Vec<u8>)> {
        match self.format {
            ReplayFormat::Text => {
                let sink = match event.kind() {
                    RecordingEventKind::Stdout => Sink::Stdout,
                    RecordingEventKind::Stderr => Sink::Stderr,
                    RecordingEventKind::Header => {
                        self.statements = database_prompt(&event.data);
                        return Vec::new();
                    }
                    RecordingEventKind::Stdin => {
                        return match &self.statements {
                            Some(name) => stdout(prompted(name, &event.data)),
                            None => Vec::new(),
                        };
                    }
                    _ => return Vec::new(),
                };
                if event.data.is_empty() {
                    return Vec::new();
                }
                vec![(sink, event.data.clone())]
            }
            ReplayFormat::Json => vec![(Sink::Stdout, json_line(event).into_bytes())],
            ReplayFormat::Asciicast => stdout(self.cast.event(event)),
        }
    }

    /// What is left to print once the events ended (or failed).
    fn finish(&mut self) -> Vec<(Sink, Vec<u8>)> {
        match self.format {
            ReplayFormat::Text | ReplayFormat::Json => Vec::new(),
            ReplayFormat::Asciicast => stdout(self.cast.finish()),
        }
    }
}

/// Connection types whose recorded input is statements, shown in the text replay.
const DATABASE_TYPES: &[&str] = &["postgres"];

/// The connection's name, if the header says it is a database session.
fn database_prompt(header: &[u8]) -> Option<String> {
    let header: serde_json::Value = serde_json::from_slice(header).ok()?;
    let kind = header.get("connection_type")?.as_str()?;
    DATABASE_TYPES
        .contains(&kind)
        .then(|| header.get("connection")?.as_str().map(str::to_owned))
        .flatten()
}

/// Statements as psql shows them at its prompt: `name=> ` on the first line, `name-> ` on
/// the others.
fn prompted(name: &str, data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let mark = if i == 0 { "=>" } else { "->" };
        out.push_str(&format!("{name}{mark} {line}\n"));
    }
    out
}

fn stdout(text: String) -> Vec<(Sink, Vec<u8>)> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![(Sink::Stdout, text.into_bytes())]
    }
}

/// Renders an asciicast v2 recording: a header line, then a frame per input or output
/// event. Each stream's bytes are decoded as UTF-8 across events, so that a character split
/// between two chunks stays whole.
struct Cast {
    title: String,
    header_written: bool,
    /// Offset of the last event, in microseconds.
    last: i128,
    stdout: Utf8Stream,
    stderr: Utf8Stream,
    stdin: Utf8Stream,
}

impl Cast {
    fn new(title: String) -> Self {
        Self {
            title,
            header_written: false,
            last: 0,
            stdout: Utf8Stream::default(),
            stderr: Utf8Stream::default(),
            stdin: Utf8Stream::default(),
        }
    }

    /// The lines for one event: the header before the first event, then its frame.
    fn event(&mut self, event: &RecordingEvent) -> String {
        let mut text = String::new();
        if !self.header_written {
            self.header_written = true;
            let timestamp = (event.kind() == RecordingEventKind::Header)
                .then(|| started_at(&event.data))
                .flatten();
            text.push_str(&cast_header(&self.title, timestamp));
        }
        // Rounded to the microsecond, as asciinema writes them.
        self.last = (offset_nanos(event) + 500).div_euclid(1000);
        let (code, data) = match event.kind() {
            RecordingEventKind::Stdout => ("o", self.stdout.decode(&event.data)),
            RecordingEventKind::Stderr => ("o", self.stderr.decode(&event.data)),
            RecordingEventKind::Stdin => ("i", self.stdin.decode(&event.data)),
            _ => return text,
        };
        if !data.is_empty() {
            text.push_str(&cast_frame(self.last, code, &data));
        }
        text
    }

    /// The header if no event came, and what is left of an incomplete character.
    fn finish(&mut self) -> String {
        let mut text = String::new();
        if !self.header_written {
            self.header_written = true;
            text.push_str(&cast_header(&self.title, None));
        }
        for (code, rest) in [
            ("o", self.stdout.finish()),
            ("o", self.stderr.finish()),
            ("i", self.stdin.finish()),
        ] {
            if !rest.is_empty() {
                text.push_str(&cast_frame(self.last, code, &rest));
            }
        }
        text
    }
}

/// Decodes a byte stream that arrives in chunks as UTF-8; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
struct Utf8Stream {
    /// The start of a character whose end is still to come.
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `chunk`, after what was pending; an incomplete character at its end is
    /// kept for the next chunk.
    fn decode(&mut self, chunk: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(chunk);
        let mut text = String::new();
        let mut rest = bytes.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    return text;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(valid));
                    match err.error_len() {
                        Some(invalid) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(invalid..).unwrap_or_default();
                        }
                        None => {
                            self.pending = after.to_vec();
                            return text;
                        }
                    }
                }
            }
        }
    }

    /// What is pending, once the stream ended: an incomplete character is invalid.
    fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(index: u64, kind: RecordingEventKind, nanos: i64, data: &[u8]) -> RecordingEvent {
        RecordingEvent {
            index,
            kind: kind.into(),
            offset: Some(prost_types::Duration {
                seconds: nanos / 1_000_000_000,
                nanos: i32::try_from(nanos % 1_000_000_000).unwrap(),
            }),
            data: data.to_vec(),
        }
    }

    fn recording() -> Vec<RecordingEvent> {
        use RecordingEventKind::*;
        vec![
            event(
                0,
                Header,
                0,
                br#"{"session":"s-1","user":"ann","started_at_unix_ms":1700000000123}"#,
            ),
            event(1, Stdin, 1_500_000_000, b"ls\n"),
            event(2, Stdout, 1_750_000_000, b"a \xe2\x82"),
            event(3, Stdout, 1_800_000_000, b"\xac b\n"),
            event(4, Stderr, 2_000_000_000, b"oops \xff\n"),
            event(
                5,
                Close,
                3_000_000_001,
                br#"{"reason":"exited with code 0","exit_code":0}"#,
            ),
        ]
    }

    /// Renders every event then finishes: (stdout, stderr).
    fn render(format: ReplayFormat, events: &[RecordingEvent]) -> (Vec<u8>, Vec<u8>) {
        let mut renderer = Renderer::new(format, "s-1");
        let mut pieces = Vec::new();
        for event in events {
            pieces.extend(renderer.event(event));
        }
        pieces.extend(renderer.finish());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(write_pieces(&mut out, &mut err, &pieces).unwrap());
        (out, err)
    }

    #[test]
    fn database_sessions_show_their_statements() {
        let events = vec![
            event(
                0,
                RecordingEventKind::Header,
                0,
                br#"{"session":"s","connection":"pg","connection_type":"postgres"}"#,
            ),
            event(
                1,
                RecordingEventKind::Stdin,
                1,
                b"select $1\n-- params: $1 = '1'\n",
            ),
            event(2, RecordingEventKind::Stdout, 2, b" ?column? \n(1 row)\n"),
        ];
        let (out, _) = render(ReplayFormat::Text, &events);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pg=> select $1\npg-> -- params: $1 = '1'\n ?column? \n(1 row)\n"
        );
    }

    #[test]
    fn text_is_what_the_user_saw() {
        let (out, err) = render(ReplayFormat::Text, &recording());
        assert_eq!(out, b"a \xe2\x82\xac b\n");
        assert_eq!(err, b"oops \xff\n");
    }

    #[test]
    fn json_has_one_line_per_event() {
        let (out, err) = render(ReplayFormat::Json, &recording());
        assert!(err.is_empty());
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[0],
            r#"{"index":0,"offset":0.0,"kind":"header","text":"{\"session\":\"s-1\",\"user\":\"ann\",\"started_at_unix_ms\":1700000000123}"}"#
        );
        assert_eq!(
            lines[1],
            r#"{"index":1,"offset":1.5,"kind":"stdin","text":"ls\n"}"#
        );
        // Not UTF-8 on its own: base64.
        assert_eq!(
            lines[2],
            r#"{"index":2,"offset":1.75,"kind":"stdout","base64":"YSDigg=="}"#
        );
        assert_eq!(
            lines[4],
            r#"{"index":4,"offset":2.0,"kind":"stderr","base64":"b29wcyD/Cg=="}"#
        );
        assert_eq!(
            lines[5],
            r#"{"index":5,"offset":3.000000001,"kind":"close","text":"{\"reason\":\"exited with code 0\",\"exit_code\":0}"}"#
        );
        for line in lines {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value["offset"].is_f64(), "{line}");
        }
    }

    #[test]
    fn json_line_of_an_unset_offset_and_unknown_kind() {
        let event = RecordingEvent {
            index: 7,
            kind: 42,
            offset: None,
            data: Vec::new(),
        };
        assert_eq!(
            json_line(&event),
            "{\"index\":7,\"offset\":0.0,\"kind\":\"unspecified\",\"text\":\"\"}\n"
        );
    }

    #[test]
    fn asciicast_has_a_header_then_frames() {
        let (out, err) = render(ReplayFormat::Asciicast, &recording());
        assert!(err.is_empty());
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1700000000,\"title\":\"hoop session s-1\"}\n\
             [1.5, \"i\", \"ls\\n\"]\n\
             [1.75, \"o\", \"a \"]\n\
             [1.8, \"o\", \"€ b\\n\"]\n\
             [2.0, \"o\", \"oops \u{FFFD}\\n\"]\n"
        );
        for line in out.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    #[test]
    fn asciicast_without_header_or_events() {
        let (out, _) = render(ReplayFormat::Asciicast, &[]);
        assert_eq!(
            out,
            b"{\"version\":2,\"width\":80,\"height\":24,\"title\":\"hoop session s-1\"}\n"
        );
        // A header without a start time, an incomplete character at the very end.
        let events = [
            event(0, RecordingEventKind::Header, 0, b"{\"session\":\"s-1\"}"),
            event(1, RecordingEventKind::Stdout, 2_000_000, b"x\xe2\x82"),
        ];
        let (out, _) = render(ReplayFormat::Asciicast, &events);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"version\":2,\"width\":80,\"height\":24,\"title\":\"hoop session s-1\"}\n\
             [0.002, \"o\", \"x\"]\n\
             [0.002, \"o\", \"\u{FFFD}\"]\n"
        );
    }

    #[test]
    fn header_timestamps() {
        assert_eq!(
            started_at(br#"{"started_at_unix_ms":1700000000999}"#),
            Some(1_700_000_000)
        );
        assert_eq!(started_at(br#"{"started_at_unix_ms":0}"#), None);
        assert_eq!(started_at(br#"{"started_at_unix_ms":"soon"}"#), None);
        assert_eq!(started_at(b"not json"), None);
        assert_eq!(
            cast_header("t \"q\"", Some(5)),
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":5,\"title\":\"t \\\"q\\\"\"}\n"
        );
    }

    #[test]
    fn utf8_across_chunks() {
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.decode(b"\xf0\x9f"), "");
        assert_eq!(stream.decode(b"\x98"), "");
        assert_eq!(stream.decode(b"\x80!"), "😀!");
        assert_eq!(stream.decode(b"a\xffb\xc3"), "a\u{FFFD}b");
        // The pending start turns out invalid.
        assert_eq!(stream.decode(b"z"), "\u{FFFD}z");
        assert_eq!(stream.finish(), "");
        assert_eq!(stream.decode(b"\xe2\x82"), "");
        assert_eq!(stream.finish(), "\u{FFFD}");
        assert_eq!(stream.finish(), "");
    }

    #[test]
    fn pauses_follow_offsets_divided_by_speed_and_capped() {
        let ms = |n: i128| n * 1_000_000;
        assert_eq!(pause(0, ms(500), 1.0), Duration::from_millis(500));
        assert_eq!(pause(ms(500), ms(1500), 2.0), Duration::from_millis(500));
        assert_eq!(pause(ms(0), ms(100), 0.5), Duration::from_millis(200));
        assert_eq!(pause(0, ms(60_000), 1.0), MAX_PAUSE);
        assert_eq!(pause(0, ms(3000), 1e-300), MAX_PAUSE);
        assert_eq!(pause(ms(10), ms(5), 1.0), Duration::ZERO);
    }

    #[test]
    fn closed_stdout_stops_closed_stderr_does_not() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let pieces = [(Sink::Stderr, b"e".to_vec()), (Sink::Stdout, b"o".to_vec())];
        let mut out = Vec::new();
        assert!(write_pieces(&mut out, &mut Closed, &pieces).unwrap());
        assert_eq!(out, b"o");
        assert!(!write_pieces(&mut Closed, &mut Vec::new(), &pieces).unwrap());
    }
}
