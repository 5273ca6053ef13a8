//! `hoop sessions …`

use anyhow::{Result, bail};
use hoop_proto::v1::{
    GetSessionRequest, KillSessionRequest, ListSessionsRequest, Session, VerifySessionRequest,
    VerifySessionResponse,
};

use crate::cli::{OutputFormat, SessionsCommand};
use crate::client::Api;
use crate::commands::{Outcome, replay};
use crate::output::{
    self, bytes, details, duration, or_dash, printable, quote_args, table, timestamp, yes_no,
};

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: SessionsCommand,
) -> Result<Outcome> {
    let text = match command {
        SessionsCommand::List {
            connection,
            user,
            status,
            page_size,
        } => {
            let filter = ListSessionsRequest {
                connection: connection.unwrap_or_default(),
                user: user.unwrap_or_default(),
                status: status.unwrap_or_default(),
                page_size,
                ..ListSessionsRequest::default()
            };
            let sessions = list_all(api, filter).await?;
            match format {
                OutputFormat::Json => output::json_list("sessions", &sessions)?,
                OutputFormat::Table => sessions_table(&sessions),
            }
        }
        SessionsCommand::Show { id } => {
            let session = api
                .sessions
                .get_session(GetSessionRequest { id })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&session)?,
                OutputFormat::Table => session_details(&session),
            }
        }
        SessionsCommand::Kill { id } => {
            let session = api
                .sessions
                .kill_session(KillSessionRequest { id })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&session)?,
                OutputFormat::Table => format!(
                    "killed session {}\n\n{}",
                    session.id,
                    session_details(&session)
                ),
            }
        }
        SessionsCommand::Replay {
            id,
            format: replay_format,
            timing,
            speed,
        } => {
            // Writes the recording itself, as it streams.
            let speed = timing.then_some(speed);
            let status = replay::run(api, &id, replay_format, speed).await?;
            return Ok(Outcome::Exit(status));
        }
        SessionsCommand::Verify { id } => {
            let report = api
                .sessions
                .verify_session(VerifySessionRequest { id })
                .await?
                .into_inner();
            let text = match format {
                OutputFormat::Json => output::json(&report)?,
                OutputFormat::Table => verify_report(&report),
            };
            return Ok(Outcome::Print(text, if report.ok { 0 } else { 1 }));
        }
    };
    Ok(Outcome::Print(text, 0))
}

/// The report of `hoop sessions verify`: a one-line verdict, then the details.
fn verify_report(r: &VerifySessionResponse) -> String {
    let summary = if r.ok {
        let events = if r.events == 1 {
            "1 event verifies".to_owned()
        } else {
            format!("{} events verify", r.events)
        };
        if r.expected_digest.is_empty() {
            format!(
                "ok: {events}; the session has no stored digest, so the chain was checked as far as it goes"
            )
        } else {
            format!(
                "ok: {events}; final digest {} matches the stored digest",
                short_digest(&r.digest)
            )
        }
    } else {
        let place = match r.failed_event {
            Some(event) => format!("event {event} (byte {})", r.failed_byte_offset),
            None => format!("byte {}", r.failed_byte_offset),
        };
        let detail = r.detail.split_whitespace().collect::<Vec<_>>().join(" ");
        let detail = if detail.is_empty() {
            "the recording does not verify".to_owned()
        } else {
            detail
        };
        format!("FAILED: {place}: {detail}")
    };
    let mut rows = vec![
        ("events", r.events.to_string()),
        ("digest", or_dash(&r.digest)),
        ("expected_digest", or_dash(&r.expected_digest)),
        ("closed", yes_no(r.closed)),
        ("truncated", yes_no(r.truncated)),
    ];
    if r.ok {
        // A failure's detail is on the first line already.
        rows.push(("detail", or_dash(&r.detail)));
    }
    let view = details(&rows);
    format!("{summary}\n\n{view}")
}

/// The start of a hex digest, enough to tell digests apart at a glance.
fn short_digest(digest: &str) -> String {
    const SHOWN: usize = 12;
    match digest.get(..SHOWN) {
        Some(start) if digest.len() > SHOWN => format!("{start}…"),
        _ => or_dash(digest),
    }
}

/// Every session `filter` matches, following `next_page_token`.
async fn list_all(api: &mut Api, filter: ListSessionsRequest) -> Result<Vec<Session>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = api
            .sessions
            .list_sessions(ListSessionsRequest {
                page_token: page_token.clone(),
                ..filter.clone()
            })
            .await?
            .into_inner();
        all.extend(page.sessions);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        if page.next_page_token == page_token {
            bail!("the gateway returned the same page token twice");
        }
        page_token = page.next_page_token;
    }
}

fn sessions_table(sessions: &[Session]) -> String {
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                or_dash(&s.connection),
                or_dash(&s.user),
                or_dash(&s.verb),
                or_dash(&s.status),
                exit_code(s),
                timestamp(s.start_time.as_ref()),
                session_duration(s),
                bytes(s.bytes_out),
            ]
        })
        .collect();
    table(
        &[
            "id",
            "connection",
            "user",
            "verb",
            "status",
            "exit",
            "started",
            "duration",
            "out",
        ],
        rows,
    )
}

/// `key: value` lines of every field of a session.
fn session_details(s: &Session) -> String {
    let metrics = s
        .metrics
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ");
    // One per line: values such as `audit.digest` are long.
    let attributes = s
        .attributes
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("\n");
    details(&[
        ("id", s.id.clone()),
        ("connection", or_dash(&s.connection)),
        ("connection_type", or_dash(&s.connection_type)),
        ("user", or_dash(&s.user)),
        ("verb", or_dash(&s.verb)),
        ("args", or_dash(&printable(&quote_args(&s.args), false))),
        ("status", or_dash(&s.status)),
        ("exit_code", exit_code(s)),
        ("reason", or_dash(&s.reason)),
        ("started", timestamp(s.start_time.as_ref())),
        ("ended", timestamp(s.end_time.as_ref())),
        ("duration", session_duration(s)),
        ("bytes_in", exact_bytes(s.bytes_in)),
        ("bytes_out", exact_bytes(s.bytes_out)),
        ("metrics", or_dash(&metrics)),
        ("attributes", or_dash(&attributes)),
    ])
}

/// The exit code, `-` while there is none.
fn exit_code(s: &Session) -> String {
    s.exit_code
        .map_or_else(|| "-".to_owned(), |code| code.to_string())
}

/// How long the session took; `running` while an open session has no end time.
fn session_duration(s: &Session) -> String {
    if s.end_time.is_none() && matches!(s.status.as_str(), "open" | "") {
        return "running".to_owned();
    }
    duration(s.start_time.as_ref(), s.end_time.as_ref())
}

/// `1.5 KiB (1536 bytes)`, or `12 B` below a KiB.
fn exact_bytes(count: i64) -> String {
    if count < 1024 {
        bytes(count)
    } else {
        format!("{} ({count} bytes)", bytes(count))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use prost_types::Timestamp;

    use super::*;

    fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    fn done() -> Session {
        Session {
            id: "0193a1b2".to_owned(),
            connection: "pg".to_owned(),
            connection_type: "command".to_owned(),
            user: "ann".to_owned(),
            verb: "exec".to_owned(),
            args: vec!["-c".to_owned(), "echo 'hi'".to_owned()],
            status: "done".to_owned(),
            exit_code: Some(3),
            reason: "exited with code 3".to_owned(),
            start_time: at(86_400, 0),
            end_time: at(86_401, 250_000_000),
            bytes_in: 12,
            bytes_out: 1536,
            metrics: BTreeMap::from([
                ("dlp.EMAIL_ADDRESS".to_owned(), 2),
                ("audit.chunks".to_owned(), 7),
            ]),
            attributes: BTreeMap::from([
                ("audit.events".to_owned(), "9".to_owned()),
                ("audit.digest".to_owned(), "9f86d081884c7d65".to_owned()),
            ]),
        }
    }

    fn open() -> Session {
        Session {
            id: "0193a1b3".to_owned(),
            connection: "sh".to_owned(),
            user: "bob".to_owned(),
            verb: "exec".to_owned(),
            status: "open".to_owned(),
            start_time: at(86_500, 0),
            ..Session::default()
        }
    }

    #[test]
    fn list_table() {
        let text = sessions_table(&[open(), done()]);
        assert_eq!(
            text,
            "ID         CONNECTION   USER   VERB   STATUS   EXIT   STARTED                DURATION   OUT\n\
             0193a1b3   sh           bob    exec   open     -      1970-01-02T00:01:40Z   running    0 B\n\
             0193a1b2   pg           ann    exec   done     3      1970-01-02T00:00:00Z   1.2s       1.5 KiB"
        );
    }

    #[test]
    fn details_view() {
        let text = session_details(&done());
        assert_eq!(
            text,
            "id:              0193a1b2\n\
             connection:      pg\n\
             connection_type: command\n\
             user:            ann\n\
             verb:            exec\n\
             args:            -c 'echo '\\''hi'\\'''\n\
             status:          done\n\
             exit_code:       3\n\
             reason:          exited with code 3\n\
             started:         1970-01-02T00:00:00Z\n\
             ended:           1970-01-02T00:00:01Z\n\
             duration:        1.2s\n\
             bytes_in:        12 B\n\
             bytes_out:       1.5 KiB (1536 bytes)\n\
             metrics:         audit.chunks=7 dlp.EMAIL_ADDRESS=2\n\
             attributes:      audit.digest=9f86d081884c7d65\n\
             \x20                audit.events=9"
        );
        let text = session_details(&open());
        assert!(text.contains("args:            -\n"), "{text}");
        assert!(text.contains("exit_code:       -\n"), "{text}");
        assert!(text.contains("ended:           -\n"), "{text}");
        assert!(text.contains("duration:        running\n"), "{text}");
        assert!(text.contains("\nmetrics:         -\n"), "{text}");
        assert!(text.ends_with("\nattributes:      -"), "{text}");
    }

    fn verified() -> VerifySessionResponse {
        VerifySessionResponse {
            ok: true,
            events: 7,
            digest: "9f86d081884c7d659a2feaa0c55ad015".to_owned(),
            expected_digest: "9f86d081884c7d659a2feaa0c55ad015".to_owned(),
            closed: true,
            truncated: false,
            failed_event: None,
            failed_byte_offset: 0,
            detail: String::new(),
        }
    }

    #[test]
    fn verify_ok_report() {
        assert_eq!(
            verify_report(&verified()),
            "ok: 7 events verify; final digest 9f86d081884c… matches the stored digest\n\
             \n\
             events:          7\n\
             digest:          9f86d081884c7d659a2feaa0c55ad015\n\
             expected_digest: 9f86d081884c7d659a2feaa0c55ad015\n\
             closed:          yes\n\
             truncated:       no\n\
             detail:          -"
        );
        let interrupted = VerifySessionResponse {
            events: 1,
            expected_digest: String::new(),
            closed: false,
            detail: "no final digest: the session was interrupted".to_owned(),
            ..verified()
        };
        let text = verify_report(&interrupted);
        assert!(
            text.starts_with(
                "ok: 1 event verifies; the session has no stored digest, so the chain was checked as far as it goes\n\n"
            ),
            "{text}"
        );
        assert!(text.contains("\nexpected_digest: -\n"), "{text}");
        assert!(
            text.ends_with("\ndetail:          no final digest: the session was interrupted"),
            "{text}"
        );
    }

    #[test]
    fn verify_failed_report() {
        let failed = VerifySessionResponse {
            ok: false,
            events: 3,
            digest: "abc".to_owned(),
            failed_event: Some(3),
            failed_byte_offset: 1234,
            detail: "event 3 does not match\nits link".to_owned(),
            ..verified()
        };
        let text = verify_report(&failed);
        assert!(
            text.starts_with("FAILED: event 3 (byte 1234): event 3 does not match its link\n\n"),
            "{text}"
        );
        assert!(text.ends_with("\ntruncated:       no"), "{text}");
        let failed = VerifySessionResponse {
            failed_event: None,
            failed_byte_offset: 0,
            detail: String::new(),
            ..failed
        };
        assert!(
            verify_report(&failed).starts_with("FAILED: byte 0: the recording does not verify\n\n")
        );
    }

    #[test]
    fn digests_shorten() {
        assert_eq!(short_digest("0123456789abcdef"), "0123456789ab…");
        assert_eq!(short_digest("0123456789ab"), "0123456789ab");
        assert_eq!(short_digest(""), "-");
    }

    #[test]
    fn ended_session_without_end_time_is_not_running() {
        let session = Session {
            status: "interrupted".to_owned(),
            ..open()
        };
        assert_eq!(session_duration(&session), "-");
    }
}
