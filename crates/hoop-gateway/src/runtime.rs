//! The session runtime: runs a `command` connection's program for one session, with every
//! byte passing through the connection's plugin chain.
//!
//! The child gets the connection's argv plus the client's arguments (never through a shell),
//! an environment of `PATH` and the connection's decrypted `env` only (nothing else of the
//! gateway's environment), and its own process group, which is killed when the session ends
//! early (client gone, plugin verdict). Output flows through a bounded channel: a slow client
//! slows the child down instead of growing memory.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use bytes::Bytes;
use hoop_core::{Chain, ChainSession, Chunk, CloseReason, Outcome, SessionInfo, Stream};
use hoop_proto::v1 as pb;
use hoop_store::{Connection, SessionEnd, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tonic::Status;

/// The sessions running on this gateway, so they can be killed.
#[derive(Debug, Default)]
pub(crate) struct Running {
    sessions: std::sync::Mutex<std::collections::HashMap<String, RunningSession>>,
}

#[derive(Debug)]
struct RunningSession {
    kill: Option<tokio::sync::oneshot::Sender<String>>,
    done: tokio::sync::watch::Receiver<bool>,
}

/// The runtime's side of a registered session.
#[derive(Debug)]
pub(crate) struct Registration {
    kill: tokio::sync::oneshot::Receiver<String>,
    done: tokio::sync::watch::Sender<bool>,
}

/// Why a session could not be killed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KillError {
    /// Not running here (ended, or running on another gateway).
    NotRunning,
}

impl Running {
    /// Registers a session that is about to run.
    pub(crate) fn register(&self, id: &str) -> Registration {
        let (kill_tx, kill) = tokio::sync::oneshot::channel();
        let (done, done_rx) = tokio::sync::watch::channel(false);
        if let Ok(mut map) = self.sessions.lock() {
            map.insert(
                id.to_owned(),
                RunningSession {
                    kill: Some(kill_tx),
                    done: done_rx,
                },
            );
        }
        Registration { kill, done }
    }

    /// Asks a running session to end, killed by `by`, and waits until it is settled.
    pub(crate) async fn kill(&self, id: &str, by: &str) -> Result<(), KillError> {
        let (sender, mut done) = {
            let mut map = self.sessions.lock().map_err(|_| KillError::NotRunning)?;
            let entry = map.get_mut(id).ok_or(KillError::NotRunning)?;
            (entry.kill.take(), entry.done.clone())
        };
        if let Some(sender) = sender {
            let _ = sender.send(by.to_owned());
        }
        let _ = done.wait_for(|settled| *settled).await;
        Ok(())
    }

    fn remove(&self, id: &str) {
        if let Ok(mut map) = self.sessions.lock() {
            map.remove(id);
        }
    }
}

/// Size of one read from the child's stdout or stderr.
const READ_CHUNK: usize = 32 * 1024;
/// Exit code reported when the session never ran its program.
pub(crate) const NOT_RUN: i32 = -1;

pub(crate) type EventSender = mpsc::Sender<Result<pb::SessionEvent, Status>>;

fn event(e: pb::session_event::Event) -> Result<pb::SessionEvent, Status> {
    Ok(pb::SessionEvent { event: Some(e) })
}

/// How the session ended.
struct Ending {
    status: &'static str,
    exit_code: i32,
    reason: CloseReason,
}

/// Everything an exec session needs.
pub(crate) struct ExecJob {
    pub(crate) store: Store,
    pub(crate) chain: Chain,
    pub(crate) info: SessionInfo,
    pub(crate) connection: Connection,
    pub(crate) input: Vec<u8>,
    pub(crate) args: Vec<String>,
    pub(crate) events: EventSender,
    /// Turns `true` when the gateway shuts down.
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
    /// The registry of running sessions, and this session's entry in it.
    pub(crate) running: std::sync::Arc<Running>,
    pub(crate) registration: Registration,
}

/// Runs an exec session to its end and settles its record.
pub(crate) async fn run_exec(job: ExecJob) {
    let ExecJob {
        store,
        chain,
        info,
        connection,
        input,
        args,
        events,
        mut shutdown,
        running,
        registration,
    } = job;
    let Registration { mut kill, done } = registration;
    let id = info.id.to_string();
    let _ = events
        .send(event(pb::session_event::Event::Started(
            pb::SessionStarted {
                session_id: id.clone(),
            },
        )))
        .await;
    let mut session = chain.start(info);
    let mut counters = Counters::default();
    let ending = drive(
        &mut session,
        &connection,
        input,
        &args,
        &events,
        &mut Stops {
            shutdown: &mut shutdown,
            kill: &mut kill,
        },
        &mut counters,
    )
    .await;
    let reason_text = ending.reason.to_string();
    let metrics = match session.close(ending.reason).await {
        Some(cx) => cx
            .metrics
            .iter()
            .map(|(k, v)| (k.to_owned(), i64::try_from(v).unwrap_or(i64::MAX)))
            .collect(),
        None => Default::default(),
    };
    let end = SessionEnd {
        status: ending.status.to_owned(),
        exit_code: ending.exit_code,
        reason: reason_text.clone(),
        bytes_in: counters.bytes_in,
        bytes_out: counters.bytes_out,
        metrics,
    };
    if let Err(err) = store.finish_session(&id, &end).await {
        tracing::error!(session = %id, error = %err, "cannot settle the session record");
    }
    running.remove(&id);
    let _ = done.send(true);
    tracing::info!(session = %id, status = ending.status, exit_code = ending.exit_code, reason = %reason_text, "session ended");
    let _ = events
        .send(event(pb::session_event::Event::Exit(pb::SessionExit {
            exit_code: ending.exit_code,
            reason: reason_text,
        })))
        .await;
}

#[derive(Default)]
struct Counters {
    bytes_in: i64,
    bytes_out: i64,
}

fn add(counter: &mut i64, n: usize) {
    *counter = counter.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
}

/// An ending decided by a plugin's outcome, if it was not `Continue`.
fn plugin_ending(outcome: Outcome, opening: bool) -> Option<Ending> {
    let status = if opening { "denied" } else { "killed" };
    match outcome {
        Outcome::Continue => None,
        Outcome::Denied { plugin, reason } => Some(Ending {
            status,
            exit_code: NOT_RUN,
            reason: CloseReason::Denied {
                plugin,
                reason: reason.to_string(),
            },
        }),
        Outcome::Failed { plugin, error } => Some(Ending {
            status,
            exit_code: NOT_RUN,
            reason: CloseReason::PluginFailed {
                plugin,
                error: error.to_string(),
            },
        }),
        Outcome::Held { plugin, request } => Some(Ending {
            status: "denied",
            exit_code: NOT_RUN,
            reason: CloseReason::Denied {
                plugin,
                reason: format!(
                    "held for approval ({}), which this gateway cannot wait for yet",
                    request.reason
                ),
            },
        }),
        _ => Some(Ending {
            status,
            exit_code: NOT_RUN,
            reason: CloseReason::Error {
                message: "unknown plugin outcome".to_owned(),
            },
        }),
    }
}

fn error_ending(message: String) -> Ending {
    Ending {
        status: "killed",
        exit_code: NOT_RUN,
        reason: CloseReason::Error { message },
    }
}

async fn drive(
    session: &mut ChainSession,
    connection: &Connection,
    input: Vec<u8>,
    args: &[String],
    events: &EventSender,
    stops: &mut Stops<'_>,
    counters: &mut Counters,
) -> Ending {
    match session.open().await {
        Ok(outcome) => {
            if let Some(ending) = plugin_ending(outcome, true) {
                return ending;
            }
        }
        Err(err) => return error_ending(err.to_string()),
    }
    add(&mut counters.bytes_in, input.len());
    let mut stdin_chunk = Chunk::new(Stream::Stdin, input);
    match session.input(&mut stdin_chunk).await {
        Ok(outcome) => {
            if let Some(ending) = plugin_ending(outcome, true) {
                return ending;
            }
        }
        Err(err) => return error_ending(err.to_string()),
    }

    let Some((program, fixed_args)) = connection.command.split_first() else {
        return error_ending("the connection has no command".to_owned());
    };
    let mut command = Command::new(program);
    command.args(fixed_args).args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .envs(&connection.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let (code, what) = match err.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found"),
                std::io::ErrorKind::PermissionDenied => (126, "permission denied"),
                _ => (126, "cannot start the command"),
            };
            return Ending {
                status: "done",
                exit_code: code,
                reason: CloseReason::Error {
                    message: format!("{what}: {program}"),
                },
            };
        }
    };
    let group = child.id().and_then(|id| i32::try_from(id).ok());

    // Feed stdin on its own task so a large input cannot deadlock with the output.
    if let Some(mut stdin) = child.stdin.take() {
        let data = stdin_chunk.data;
        tokio::spawn(async move {
            let _ = stdin.write_all(&data).await;
            let _ = stdin.shutdown().await;
        });
    }
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(group);
        return error_ending("the command's output pipes are missing".to_owned());
    };

    let mut out_buf = vec![0u8; READ_CHUNK];
    let mut err_buf = vec![0u8; READ_CHUNK];
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let (stream, read) = tokio::select! {
            read = stdout.read(&mut out_buf), if out_open => (Stream::Stdout, read),
            read = stderr.read(&mut err_buf), if err_open => (Stream::Stderr, read),
            () = events.closed() => {
                kill_group(group);
                return Ending { status: "killed", exit_code: NOT_RUN, reason: CloseReason::ClientGone };
            }
            _ = stops.shutdown.wait_for(|down| *down) => {
                kill_group(group);
                return Ending { status: "killed", exit_code: NOT_RUN, reason: CloseReason::Shutdown };
            }
            Ok(by) = &mut *stops.kill => {
                kill_group(group);
                return Ending { status: "killed", exit_code: NOT_RUN, reason: CloseReason::Killed { by } };
            }
        };
        let n = match read {
            Ok(0) | Err(_) => {
                match stream {
                    Stream::Stdout => out_open = false,
                    _ => err_open = false,
                }
                continue;
            }
            Ok(n) => n,
        };
        let buf = if stream == Stream::Stdout {
            &out_buf
        } else {
            &err_buf
        };
        let mut chunk = Chunk::new(stream, Bytes::copy_from_slice(&buf[..n]));
        match session.output(&mut chunk).await {
            Ok(outcome) => {
                if let Some(ending) = plugin_ending(outcome, false) {
                    kill_group(group);
                    return ending;
                }
            }
            Err(err) => {
                kill_group(group);
                return error_ending(err.to_string());
            }
        }
        if chunk.data.is_empty() {
            continue;
        }
        add(&mut counters.bytes_out, chunk.data.len());
        let output = pb::SessionOutput {
            stream: if stream == Stream::Stdout {
                pb::OutputStream::Stdout
            } else {
                pb::OutputStream::Stderr
            } as i32,
            data: chunk.data.to_vec(),
        };
        if events
            .send(event(pb::session_event::Event::Output(output)))
            .await
            .is_err()
        {
            kill_group(group);
            return Ending {
                status: "killed",
                exit_code: NOT_RUN,
                reason: CloseReason::ClientGone,
            };
        }
    }
    match child.wait().await {
        Ok(status) => {
            let code = status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(NOT_RUN);
            Ending {
                status: "done",
                exit_code: code,
                reason: CloseReason::Exit { code },
            }
        }
        Err(err) => error_ending(format!("cannot wait for the command: {err}")),
    }
}

/// What, besides the child and the client, can end a session.
struct Stops<'a> {
    shutdown: &'a mut tokio::sync::watch::Receiver<bool>,
    kill: &'a mut tokio::sync::oneshot::Receiver<String>,
}

/// Kills the child's whole process group (the child leads it).
fn kill_group(group: Option<i32>) {
    if let Some(pid) = group {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
