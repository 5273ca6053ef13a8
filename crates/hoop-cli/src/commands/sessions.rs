//! `hoop sessions …`

use anyhow::{Result, bail};
use hoop_proto::v1::{GetSessionRequest, KillSessionRequest, ListSessionsRequest, Session};

use crate::cli::{OutputFormat, SessionsCommand};
use crate::client::Api;
use crate::output::{self, bytes, details, duration, or_dash, table, timestamp};

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: SessionsCommand,
) -> Result<String> {
    match command {
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
                OutputFormat::Json => output::json_list("sessions", &sessions),
                OutputFormat::Table => Ok(sessions_table(&sessions)),
            }
        }
        SessionsCommand::Show { id } => {
            let session = api
                .sessions
                .get_session(GetSessionRequest { id })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&session),
                OutputFormat::Table => Ok(session_details(&session)),
            }
        }
        SessionsCommand::Kill { id } => {
            let session = api
                .sessions
                .kill_session(KillSessionRequest { id })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&session),
                OutputFormat::Table => Ok(format!(
                    "killed session {}\n\n{}",
                    session.id,
                    session_details(&session)
                )),
            }
        }
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
    details(&[
        ("id", s.id.clone()),
        ("connection", or_dash(&s.connection)),
        ("connection_type", or_dash(&s.connection_type)),
        ("user", or_dash(&s.user)),
        ("verb", or_dash(&s.verb)),
        ("status", or_dash(&s.status)),
        ("exit_code", exit_code(s)),
        ("reason", or_dash(&s.reason)),
        ("started", timestamp(s.start_time.as_ref())),
        ("ended", timestamp(s.end_time.as_ref())),
        ("duration", session_duration(s)),
        ("bytes_in", exact_bytes(s.bytes_in)),
        ("bytes_out", exact_bytes(s.bytes_out)),
        ("metrics", or_dash(&metrics)),
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
             status:          done\n\
             exit_code:       3\n\
             reason:          exited with code 3\n\
             started:         1970-01-02T00:00:00Z\n\
             ended:           1970-01-02T00:00:01Z\n\
             duration:        1.2s\n\
             bytes_in:        12 B\n\
             bytes_out:       1.5 KiB (1536 bytes)\n\
             metrics:         audit.chunks=7 dlp.EMAIL_ADDRESS=2"
        );
        let text = session_details(&open());
        assert!(text.contains("exit_code:       -\n"), "{text}");
        assert!(text.contains("ended:           -\n"), "{text}");
        assert!(text.contains("duration:        running\n"), "{text}");
        assert!(text.ends_with("metrics:         -"), "{text}");
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
