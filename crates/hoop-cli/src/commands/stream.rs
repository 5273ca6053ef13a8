//! Printing a running session's events, shared by `hoop exec` and `hoop connect`: output
//! chunks to hoop's stdout and stderr as they arrive, the wait for reviewers, the exit
//! reason, the status to exit with.

use std::io::{ErrorKind, Write};

use anyhow::{Result, anyhow};
use hoop_proto::v1::{OutputStream, SessionEvent, SessionHeld, session_event::Event};

use crate::cli::OutputFormat;
use crate::output;
use crate::spinner::Spinner;

/// Exit status when hoop's stdout is closed before the session ends (`hoop exec … | head`):
/// the session is abandoned, and hoop exits as if SIGPIPE had ended it (128 + 13).
pub(crate) const EXIT_BROKEN_PIPE: u8 = 141;

/// The process exit status for a session's exit code: the code itself when it fits
/// (0..=255), else 1 (e.g. -1 for a session that never ran).
pub(crate) fn exit_status(exit_code: i32) -> u8 {
    u8::try_from(exit_code).unwrap_or(1)
}

/// The error for an event stream that ended before the session's `exit` event.
pub(crate) fn no_exit_status() -> anyhow::Error {
    anyhow!("the session ended without an exit status")
}

/// Writes session events to hoop's stdout and stderr.
pub(crate) struct Printer<O, E> {
    format: OutputFormat,
    out: O,
    err: E,
    /// stdout and stderr show on one screen (an interactive session on a terminal), so the
    /// exit reason follows the output of either.
    one_screen: bool,
    /// The output the exit reason would follow does not end with a newline.
    mid_line: bool,
    /// stderr is a terminal: a held session shows a spinner there while it waits.
    spin: bool,
    /// Turning while the session is held; stopped by the next event.
    spinner: Option<Spinner>,
}

impl<O: Write, E: Write> Printer<O, E> {
    pub(crate) fn new(format: OutputFormat, out: O, err: E) -> Self {
        Self {
            format,
            out,
            err,
            one_screen: false,
            mid_line: false,
            spin: false,
            spinner: None,
        }
    }

    /// Tells the printer that hoop's stderr is a terminal: while a session waits for
    /// reviewers, a spinner turns on it (on hoop's own stderr).
    pub(crate) fn with_spinner(mut self, on: bool) -> Self {
        self.spin = on;
        self
    }

    /// Tells the printer that stdout and stderr show on one screen.
    pub(crate) fn on_one_screen(mut self) -> Self {
        self.one_screen = true;
        self
    }

    /// Prints one event: output chunks go, as raw bytes, to the stream they came from (one
    /// JSON line per event on stdout with `--output json`). Returns the status to exit with
    /// once the session ended, or once stdout is closed.
    ///
    /// A `held` event prints `waiting for approval by <groups> (review <id>)` to stderr, with
    /// a spinner until the next event when stderr is a terminal.
    pub(crate) fn event(&mut self, event: &SessionEvent) -> Result<Option<u8>> {
        // The wait is over: the spinner's line is left reading the waiting line.
        drop(self.spinner.take());
        if self.format == OutputFormat::Json {
            let mut line = output::json_line(event)?;
            line.push('\n');
            if !write_live(&mut self.out, line.as_bytes())? {
                return Ok(Some(EXIT_BROKEN_PIPE));
            }
        }
        match &event.event {
            Some(Event::Output(chunk)) if self.format == OutputFormat::Table => {
                let to_stderr = chunk.stream() == OutputStream::Stderr;
                if to_stderr {
                    // Nowhere to report a failing stderr: the chunk is dropped.
                    let _ = write_live(&mut self.err, &chunk.data);
                } else if !write_live(&mut self.out, &chunk.data)? {
                    return Ok(Some(EXIT_BROKEN_PIPE));
                }
                if let Some(&last) = chunk.data.last()
                    && (to_stderr || self.one_screen)
                {
                    self.mid_line = last != b'\n';
                }
            }
            Some(Event::Exit(exit)) => {
                let reason = exit.reason.split_whitespace().collect::<Vec<_>>().join(" ");
                if exit.exit_code != 0 && !reason.is_empty() {
                    // On a line of its own, even after output without a final newline.
                    let start = if self.mid_line { "\n" } else { "" };
                    let line = format!("{start}hoop: {reason}\n");
                    let _ = write_live(&mut self.err, line.as_bytes());
                }
                return Ok(Some(exit_status(exit.exit_code)));
            }
            Some(Event::Held(held)) => {
                // On a line of its own, even after output without a final newline.
                let start = if self.mid_line { "\n" } else { "" };
                self.mid_line = false;
                let text = waiting_line(held);
                if self.spin {
                    let _ = write_live(&mut self.err, start.as_bytes());
                    self.spinner = Some(Spinner::start(std::io::stderr(), text));
                } else {
                    let line = format!("{start}{text}\n");
                    let _ = write_live(&mut self.err, line.as_bytes());
                }
            }
            // `started` prints nothing (its session id is in `hoop sessions list`).
            _ => {}
        }
        Ok(None)
    }
}

/// What hoop prints while a session is held: `waiting for approval by dba, ops (review ID)`.
fn waiting_line(held: &SessionHeld) -> String {
    let by = if held.groups.is_empty() {
        String::new()
    } else {
        format!(" by {}", held.groups.join(", "))
    };
    let review = if held.review_id.is_empty() {
        String::new()
    } else {
        format!(" (review {})", held.review_id)
    };
    format!("waiting for approval{by}{review}")
}

/// hoop's stdout for a session's output: its descriptor, written directly. Each chunk is
/// written whole and flushed as it comes anyway, and `std::io::Stdout`'s line buffering
/// would scan every chunk for its last newline first (about a tenth of hoop's CPU when a
/// session streams hundreds of megabytes). std's own handle if the descriptor cannot be
/// duplicated.
pub(crate) fn session_stdout() -> Box<dyn Write> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
            return Box::new(std::fs::File::from(fd));
        }
    }
    Box::new(std::io::stdout())
}

/// Writes `bytes` and flushes, so output shows as it comes. `Ok(false)` when the reader went
/// away (broken pipe).
pub(crate) fn write_live(writer: &mut impl Write, bytes: &[u8]) -> Result<bool> {
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
                data: data.to_vec().into(),
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

    fn held(review_id: &str, groups: &[&str]) -> SessionEvent {
        SessionEvent {
            event: Some(Event::Held(SessionHeld {
                review_id: review_id.to_owned(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                reason: "waiting".to_owned(),
            })),
        }
    }

    #[test]
    fn held_prints_the_waiting_line_then_goes_on() {
        let (out, err, status) = print_all(
            OutputFormat::Table,
            &[
                started(),
                held("r-1", &["dba"]),
                chunk(OutputStream::Stdout, b"ran\n"),
                exit(0, "exited with code 0"),
            ],
        );
        assert_eq!(out, b"ran\n");
        assert_eq!(err, b"waiting for approval by dba (review r-1)\n");
        assert_eq!(status, Some(0));
    }

    #[test]
    fn a_rejection_ends_the_wait_with_its_reason() {
        let (out, err, status) = print_all(
            OutputFormat::Table,
            &[
                started(),
                held("r-1", &["dba", "sre"]),
                exit(
                    -1,
                    "denied by review: review r-1 was rejected by bob (dba): not now",
                ),
            ],
        );
        assert_eq!(out, b"");
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "waiting for approval by dba, sre (review r-1)\n\
             hoop: denied by review: review r-1 was rejected by bob (dba): not now\n"
        );
        assert_eq!(status, Some(1));
    }

    #[test]
    fn held_after_output_without_newline_starts_a_line() {
        let (_, err, _) = print_all(
            OutputFormat::Table,
            &[
                chunk(OutputStream::Stderr, b"partial"),
                held("r-9", &[]),
                exit(2, "exited with code 2"),
            ],
        );
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "partial\nwaiting for approval (review r-9)\nhoop: exited with code 2\n"
        );
    }

    #[test]
    fn held_in_json_is_a_line_on_stdout_and_the_waiting_line_on_stderr() {
        let (out, err, _) = print_all(OutputFormat::Json, &[held("r-1", &["dba"]), exit(0, "")]);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out.lines().next(),
            Some(r#"{"held":{"reviewId":"r-1","groups":["dba"],"reason":"waiting"}}"#)
        );
        assert_eq!(err, b"waiting for approval by dba (review r-1)\n");
    }

    #[test]
    fn waiting_lines() {
        let line = |id: &str, groups: &[&str]| {
            let Some(Event::Held(held)) = held(id, groups).event else {
                unreachable!()
            };
            waiting_line(&held)
        };
        assert_eq!(
            line("r-1", &["dba"]),
            "waiting for approval by dba (review r-1)"
        );
        assert_eq!(
            line("r-1", &["dba", "ops"]),
            "waiting for approval by dba, ops (review r-1)"
        );
        assert_eq!(line("", &[]), "waiting for approval");
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
    fn on_one_screen_the_reason_follows_stdout_too() {
        let events = [
            chunk(OutputStream::Stderr, b"err\n"),
            chunk(OutputStream::Stdout, b"$ "),
            exit(130, "exited with code 130"),
        ];
        let (_, err, _) = print_all(OutputFormat::Table, &events);
        assert_eq!(err, b"err\nhoop: exited with code 130\n");

        let mut printer = Printer::new(OutputFormat::Table, Vec::new(), Vec::new()).on_one_screen();
        for event in &events {
            printer.event(event).unwrap();
        }
        assert_eq!(printer.err, b"err\n\nhoop: exited with code 130\n");
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
        assert_eq!(
            no_exit_status().to_string(),
            "the session ended without an exit status"
        );
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
