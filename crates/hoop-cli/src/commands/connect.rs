//! `hoop connect …`: an interactive session. hoop's stdin goes to the program as it is read,
//! and the program's output is printed as it arrives. When stdin is a terminal, the program
//! runs on a terminal of the same size on the gateway, and hoop's terminal is in raw mode.

use std::io::{ErrorKind, IsTerminal, Read};

use anyhow::{Context, Result, anyhow};
use hoop_proto::v1::{
    CloseStdin, ConnectOpen, ConnectRequest, connect_request::Request, session_event::Event,
};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cli::{OutputFormat, UsageError};
use crate::client::Api;
use crate::commands::stream::{Printer, no_exit_status, session_stdout, write_live};
use crate::convert;
use crate::terminal::{self, RawMode};

/// Most bytes of stdin sent in one `input` request.
const CHUNK_SIZE: usize = 32 * 1024;

/// Requests waiting to be sent to the gateway; stdin is not read while the queue is full.
const REQUEST_QUEUE: usize = 16;

/// Runs the session: stdin is forwarded while the events are printed as they arrive.
/// `duration`: how long the access to ask reviewers for should last. Returns the status to
/// exit with: the session's exit code, or 128 + N when signal N ended hoop first.
pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    connection: String,
    args: Vec<String>,
    duration: Option<std::time::Duration>,
) -> Result<u8> {
    let on_terminal = std::io::stdin().is_terminal();
    let (requests, queue) = mpsc::channel(REQUEST_QUEUE);
    let access_duration = match duration {
        Some(duration) => Some(
            convert::to_proto_duration(duration)
                .ok_or_else(|| UsageError("--duration is too long".to_owned()))?,
        ),
        None => None,
    };
    let open = ConnectOpen {
        connection,
        args,
        terminal: on_terminal.then(terminal::size),
        access_duration,
        postgres_cancel: None,
    };
    requests
        .try_send(request(Request::Open(open)))
        .map_err(|_| anyhow!("cannot queue the session's first request"))?;
    let mut events = api
        .sessions
        .connect(ReceiverStream::new(queue))
        .await?
        .into_inner();

    // From here on, these signals end the session rather than hoop, so that the terminal
    // gets its mode back.
    let mut signals = Signals::new(on_terminal)?;
    let mut raw_mode = if on_terminal {
        Some(RawMode::enable()?)
    } else {
        None
    };
    // Resizes are sent from here; the thread sends what it reads.
    let resizes = on_terminal.then(|| requests.clone());
    std::thread::Builder::new()
        .name("stdin".to_owned())
        // Not joined: once the session ended, hoop exits even while it is blocked reading.
        .spawn(move || forward_stdin(&requests, on_terminal))
        .context("starting the thread that reads stdin")?;

    let mut printer = Printer::new(format, session_stdout(), std::io::stderr())
        .with_spinner(std::io::stderr().is_terminal());
    if on_terminal {
        printer = printer.on_one_screen();
    }
    // Waiting for reviewers: the terminal is in its own mode meanwhile.
    let mut held = false;
    let status = loop {
        tokio::select! {
            event = events.message() => {
                let Some(event) = event? else {
                    return Err(no_exit_status());
                };
                match event.event {
                    // The reason, if any, is printed on a terminal back in its own mode.
                    Some(Event::Exit(_)) => raw_mode = None,
                    // While the session waits, the waiting line prints as usual and Ctrl-C
                    // ends hoop (the session is not running yet).
                    Some(Event::Held(_)) => {
                        raw_mode = None;
                        held = true;
                    }
                    _ => {}
                }
                if let Some(status) = printer.event(&event)? {
                    break status;
                }
                if held && !matches!(event.event, Some(Event::Held(_))) {
                    // Approved: the session runs.
                    held = false;
                    if on_terminal && raw_mode.is_none() {
                        raw_mode = Some(RawMode::enable()?);
                    }
                }
            }
            caught = signals.next() => match caught {
                Caught::Resize => {
                    if let Some(resizes) = &resizes {
                        // Best effort: with the queue full (the program is not reading its
                        // input), this size is skipped; the next resize sends the new one.
                        let _ = resizes.try_send(request(Request::Resize(terminal::size())));
                    }
                }
                Caught::End(status) => break status,
            },
        }
    };
    // Dropping the event stream cancels the call if the session still runs: the gateway
    // kills the program. Then the terminal gets its mode back.
    drop(events);
    drop(raw_mode);
    Ok(status)
}

fn request(request: Request) -> ConnectRequest {
    ConnectRequest {
        request: Some(request),
    }
}

/// Reads stdin on a thread of its own (reading blocks) and queues it for the gateway.
fn forward_stdin(requests: &mpsc::Sender<ConnectRequest>, raw_mode: bool) {
    let mut send = |message| requests.blocking_send(message).is_ok();
    if let StdinEnd::Failed(err) = pump_stdin(&mut std::io::stdin(), &mut send) {
        // The program's stdin is closed; the session goes on.
        let end = if raw_mode { "\r\n" } else { "\n" };
        let line = format!("hoop: cannot read stdin: {err}; the program's stdin is closed{end}");
        let _ = write_live(&mut std::io::stderr(), line.as_bytes());
    }
}

/// How forwarding stdin ended.
#[derive(Debug)]
enum StdinEnd {
    /// End of stdin: `close_stdin` was sent.
    Closed,
    /// The call is over: nothing more can be sent.
    Gone,
    /// Reading failed; `close_stdin` was sent.
    Failed(std::io::Error),
}

/// Sends `stdin` as `input` requests of up to [`CHUNK_SIZE`] bytes, as it is read, then
/// `close_stdin` at its end. `send` returns false once the call is over.
fn pump_stdin(stdin: &mut impl Read, send: &mut impl FnMut(ConnectRequest) -> bool) -> StdinEnd {
    let mut buf = vec![0; CHUNK_SIZE];
    loop {
        let read = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => {
                send(request(Request::CloseStdin(CloseStdin {})));
                return StdinEnd::Failed(err);
            }
        };
        let chunk = buf.get(..read).unwrap_or_default();
        if !send(request(Request::Input(chunk.to_vec()))) {
            return StdinEnd::Gone;
        }
    }
    if send(request(Request::CloseStdin(CloseStdin {}))) {
        StdinEnd::Closed
    } else {
        StdinEnd::Gone
    }
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caught {
    /// SIGWINCH: the terminal changed size.
    Resize,
    /// SIGINT, SIGTERM or SIGHUP: end the session; exit with this status (128 + N).
    End(u8),
}

/// The signals hoop handles during an interactive session.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    /// Only on a terminal.
    window_change: Option<Signal>,
}

impl Signals {
    fn new(on_terminal: bool) -> Result<Self> {
        let listen = |kind| signal(kind).context("listening for signals");
        Ok(Self {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
            hangup: listen(SignalKind::hangup())?,
            window_change: if on_terminal {
                Some(listen(SignalKind::window_change())?)
            } else {
                None
            },
        })
    }

    /// Waits for the next signal.
    async fn next(&mut self) -> Caught {
        let window_change = async {
            match &mut self.window_change {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.interrupt.recv() => Caught::End(128 + 2),
            _ = self.terminate.recv() => Caught::End(128 + 15),
            _ = self.hangup.recv() => Caught::End(128 + 1),
            _ = window_change => Caught::Resize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `pump_stdin` over `input`, read in pieces of `piece` bytes at most: the requests
    /// sent and how it ended.
    fn pump(input: &[u8], piece: usize) -> (Vec<Request>, StdinEnd) {
        struct Pieces<'a>(&'a [u8], usize);
        impl Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut sent = Vec::new();
        let end = pump_stdin(&mut Pieces(input, piece), &mut |r: ConnectRequest| {
            sent.push(r.request.unwrap());
            true
        });
        (sent, end)
    }

    fn input(data: &[u8]) -> Request {
        Request::Input(data.to_vec())
    }

    fn close() -> Request {
        Request::CloseStdin(CloseStdin {})
    }

    #[test]
    fn stdin_is_sent_as_read_then_closed() {
        let (sent, end) = pump(b"ab\x03\x04\xffc", 3);
        assert_eq!(sent, [input(b"ab\x03"), input(b"\x04\xffc"), close()]);
        assert!(matches!(end, StdinEnd::Closed), "{end:?}");

        let (sent, end) = pump(b"", 3);
        assert_eq!(sent, [close()]);
        assert!(matches!(end, StdinEnd::Closed), "{end:?}");
    }

    #[test]
    fn chunks_are_at_most_32_kib() {
        let data = vec![b'x'; CHUNK_SIZE * 2 + 5];
        let (sent, _) = pump(&data, usize::MAX);
        let sizes: Vec<usize> = sent
            .iter()
            .map(|r| match r {
                Request::Input(data) => data.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, [CHUNK_SIZE, CHUNK_SIZE, 5, 0]);
    }

    #[test]
    fn a_finished_call_stops_reading() {
        let mut calls = 0;
        let end = pump_stdin(&mut &b"abc"[..], &mut |_| {
            calls += 1;
            false
        });
        assert!(matches!(end, StdinEnd::Gone), "{end:?}");
        assert_eq!(calls, 1);
        let end = pump_stdin(&mut &b""[..], &mut |_| false);
        assert!(matches!(end, StdinEnd::Gone), "{end:?}");
    }

    #[test]
    fn read_errors_close_stdin() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("bad descriptor"))
            }
        }
        let mut sent = Vec::new();
        let end = pump_stdin(&mut Broken, &mut |r: ConnectRequest| {
            sent.push(r.request.unwrap());
            true
        });
        assert_eq!(sent, [close()]);
        let StdinEnd::Failed(err) = end else {
            panic!("{end:?}");
        };
        assert_eq!(err.to_string(), "bad descriptor");
    }
}
