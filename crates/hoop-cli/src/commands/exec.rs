//! `hoop exec …`: runs a connection's command once and streams its output.

use std::io::{ErrorKind, IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use hoop_proto::v1::{ExecRequest, OutputStream, SessionEvent, session_event::Event};

use crate::cli::OutputFormat;
use crate::client::Api;
use crate::output;

/// Exit status when hoop's stdout is closed before the session ends (`hoop exec … | head`):
/// the session is abandoned, and hoop exits as if SIGPIPE had ended it (128 + 13).
const EXIT_BROKEN_PIPE: u8 = 141;

/// Runs the session and copies its events out as they arrive; returns the status to exit
/// with: the session's exit code.
pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    connection: String,
    input: Option<String>,
    args: Vec<String>,
) -> Result<u8> {
    let stdin = std::io::stdin();
    let input = request_input(input, stdin.is_terminal(), stdin.lock())?;
    let mut events = api
        .sessions
        .exec(ExecRequest {
            connection,
            input,
            args,
        })
        .await?
        .into_inner();
    let mut printer = Printer::new(format, std::io::stdout(), std::io::stderr());
    while let Some(event) = events.message().await? {
        if let Some(status) = printer.event(&event)? {
            // `exit` is the last event; an abandoned stream is cancelled when dropped.
            return Ok(status);
        }
    }
    bail!("the session ended without an exit status")
}

/// The bytes to send as the target's stdin: `--input`, else all of `stdin` when it is not a
/// terminal, else nothing.
fn request_input(
    flag: Option<String>,
    stdin_is_terminal: bool,
    stdin: impl Read,
) -> Result<Vec<u8>> {
    if let Some(text) = flag {
        return Ok(text.into_bytes());
    }
    if stdin_is_terminal {
        return Ok(Vec::new());
    }
    let mut input = Vec::new();
    let mut stdin = stdin;
    stdin.read_to_end(&mut input).context("reading stdin")?;
    Ok(input)
}

/// The process exit status for a session's exit code: the code itself when it fits
/// (0..=255), else 1 (e.g. -1 for a session that never ran).
fn exit_status(exit_code: i32) -> u8 {
    u8::try_from(exit_code).unwrap_or(1)
}

/// Writes session events to hoop's stdout and stderr.
struct Printer<O, E> {
    format: OutputFormat,
    out: O,
    err: E,
    /// The target's stderr output so far does not end with a newline.
    err_mid_line: bool,
}

impl<O: Write, E: Write> Printer<O, E> {
    fn new(format: OutputFormat, out: O, err: E) -> Self {
        Self {
            format,
            out,
            err,
            err_mid_line: false,
        }
    }

    /// Prints one event: output chunks go, as raw bytes, to the stream they came from (one
    /// JSON line per event on stdout with `--output json`). Returns the status to exit with
    /// once the session ended, or once stdout is closed.
    fn event(&mut self, event: &SessionEvent) -> Result<Option<u8>> {
        if self.format == OutputFormat::Json {
            let mut line = output::json_line(event)?;
            line.push('\n');
            if !write_live(&mut self.out, line.as_bytes())? {
                return Ok(Some(EXIT_BROKEN_PIPE));
            }
        }
        match &event.event {
            Some(Event::Output(chunk)) if self.format == OutputFormat::Table => {
                if chunk.stream() == OutputStream::Stderr {
                    // Nowhere to report a failing stderr: the chunk is dropped.
                    let _ = write_live(&mut self.err, &chunk.data);
                    if let Some(&last) = chunk.data.last() {
                        self.err_mid_line = last != b'\n';
                    }
                } else if !write_live(&mut self.out, &chunk.data)? {
                    return Ok(Some(EXIT_BROKEN_PIPE));
                }
            }
            Some(Event::Exit(exit)) => {
                let reason = exit.reason.split_whitespace().collect::<Vec<_>>().join(" ");
                if exit.exit_code != 0 && !reason.is_empty() {
                    // On a line of its own, even after output without a final newline.
                    let start = if self.err_mid_line { "\n" } else { "" };
                    let line = format!("{start}hoop: {reason}\n");
                    let _ = write_live(&mut self.err, line.as_bytes());
                }
                return Ok(Some(exit_status(exit.exit_code)));
            }
            // `started` prints nothing (its session id is in `hoop sessions list`).
            _ => {}
        }
        Ok(None)
    }
}

/// Writes `bytes` and flushes, so output shows as it comes. `Ok(false)` when the reader went
/// away (broken pipe).
fn write_live(writer: &mut impl Write, bytes: &[u8]) -> Result<bool> {
    match writer.write_all(bytes).and_then(|()| writer.flush()) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(anyhow::Error::from(err).context("writing the session's output")),
    }
}

#[cfg(test)]
mod tests {
    use hoop_proto::v1::{SessionExit, SessionOutput, SessionStarted};

    use super::*;

    fn started() -> SessionEvent {
        SessionEvent {
            event: Some(Event::Started(SessionStarted {
                session_id: "s-1".to_owned(),
            })),
        }
    }

    fn chunk(stream: OutputStream, data: &[u8]) -> SessionEvent {
        SessionEvent {
            event: Some(Event::Output(SessionOutput {
                stream: stream.into(),
                data: data.to_vec(),
            })),
        }
    }

    fn exit(exit_code: i32, reason: &str) -> SessionEvent {
        SessionEvent {
            event: Some(Event::Exit(SessionExit {
                exit_code,
                reason: reason.to_owned(),
            })),
        }
    }

    /// Feeds events until one ends the session: (stdout, stderr, exit status).
    fn print_all(format: OutputFormat, events: &[SessionEvent]) -> (Vec<u8>, Vec<u8>, Option<u8>) {
        let mut printer = Printer::new(format, Vec::new(), Vec::new());
        let mut status = None;
        for event in events {
            status = printer.event(event).unwrap();
            if status.is_some() {
                break;
            }
        }
        (printer.out, printer.err, status)
    }

    #[test]
    fn exit_codes_map_to_statuses() {
        assert_eq!(exit_status(0), 0);
        assert_eq!(exit_status(3), 3);
        assert_eq!(exit_status(127), 127);
        assert_eq!(exit_status(130), 130);
        assert_eq!(exit_status(255), 255);
        assert_eq!(exit_status(256), 1);
        assert_eq!(exit_status(-1), 1);
        assert_eq!(exit_status(i32::MIN), 1);
    }

    #[test]
    fn input_flag_then_piped_stdin_then_nothing() {
        let piped: &[u8] = b"from\0stdin\xff";
        assert_eq!(
            request_input(Some("flag".to_owned()), false, piped).unwrap(),
            b"flag"
        );
        assert_eq!(
            request_input(Some(String::new()), false, piped).unwrap(),
            b""
        );
        assert_eq!(request_input(None, false, piped).unwrap(), piped);
        assert_eq!(request_input(None, true, piped).unwrap(), b"");
    }

    #[test]
    fn output_is_split_by_stream_byte_for_byte() {
        let (out, err, status) = print_all(
            OutputFormat::Table,
            &[
                started(),
                chunk(OutputStream::Stdout, b"out1 \xff\xfe"),
                chunk(OutputStream::Stderr, b"err1\n"),
                chunk(OutputStream::Unspecified, b"\0out2"),
                exit(0, "exited with code 0"),
            ],
        );
        assert_eq!(out, b"out1 \xff\xfe\0out2");
        assert_eq!(err, b"err1\n");
        assert_eq!(status, Some(0));
    }

    #[test]
    fn failed_exit_prints_its_reason() {
        let (out, err, status) = print_all(
            OutputFormat::Table,
            &[
                chunk(OutputStream::Stderr, b"nope\n"),
                exit(3, "exited with\ncode 3"),
            ],
        );
        assert_eq!(out, b"");
        assert_eq!(err, b"nope\nhoop: exited with code 3\n");
        assert_eq!(status, Some(3));

        let (_, err, status) = print_all(OutputFormat::Table, &[exit(-1, "denied by review")]);
        assert_eq!(err, b"hoop: denied by review\n");
        assert_eq!(status, Some(1));

        let (_, err, _) = print_all(
            OutputFormat::Table,
            &[
                chunk(OutputStream::Stderr, b"no newline"),
                chunk(OutputStream::Stderr, b""),
                chunk(OutputStream::Stdout, b"x"),
                exit(1, "exited with code 1"),
            ],
        );
        assert_eq!(err, b"no newline\nhoop: exited with code 1\n");

        let (_, err, status) = print_all(OutputFormat::Table, &[exit(2, "")]);
        assert_eq!(err, b"");
        assert_eq!(status, Some(2));
    }

    #[test]
    fn no_exit_event_means_no_status() {
        let (out, _, status) = print_all(
            OutputFormat::Table,
            &[
                started(),
                chunk(OutputStream::Stdout, b"x"),
                SessionEvent::default(),
            ],
        );
        assert_eq!(out, b"x");
        assert_eq!(status, None);
    }

    #[test]
    fn json_prints_one_line_per_event() {
        let (out, err, status) = print_all(
            OutputFormat::Json,
            &[
                started(),
                chunk(OutputStream::Stdout, b"hi\n"),
                exit(4, "exited with code 4"),
            ],
        );
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "{\"started\":{\"sessionId\":\"s-1\"}}\n\
             {\"output\":{\"stream\":\"STDOUT\",\"data\":\"aGkK\"}}\n\
             {\"exit\":{\"exitCode\":4,\"reason\":\"exited with code 4\"}}\n"
        );
        assert_eq!(err, b"hoop: exited with code 4\n");
        assert_eq!(status, Some(4));
    }

    /// A writer whose reader went away.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn closed_stdout_ends_quietly_closed_stderr_is_ignored() {
        let mut printer = Printer::new(OutputFormat::Table, ClosedPipe, ClosedPipe);
        assert_eq!(
            printer
                .event(&chunk(OutputStream::Stderr, b"lost"))
                .unwrap(),
            None
        );
        assert_eq!(
            printer
                .event(&chunk(OutputStream::Stdout, b"lost"))
                .unwrap(),
            Some(EXIT_BROKEN_PIPE)
        );
        printer.format = OutputFormat::Json;
        assert_eq!(printer.event(&started()).unwrap(), Some(EXIT_BROKEN_PIPE));
    }

    #[test]
    fn other_write_errors_fail() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut printer = Printer::new(OutputFormat::Table, Full, Vec::new());
        let err = printer
            .event(&chunk(OutputStream::Stdout, b"x"))
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "writing the session's output: disk full"
        );
    }
}
