//! One session on the agent's side: its supervisor, its pipes (or terminal), and the flow
//! control of its bytes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::task::Poll;

use bytes::{BufMut, Bytes, BytesMut};
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_message::Message as Out;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use crate::exec::CANNOT_START;
use crate::pool::{Pool, Slot};
use crate::serve::{Inner, Workdir};
use crate::spec::{Report, SupervisorSpec, WorkDir};
use crate::{INPUT_WINDOW, OUTPUT_CHUNK};

/// The first read of a chunk of the program's stdout or stderr: more is read only if this
/// filled up (an idle session holds no more than this per stream).
const FIRST_READ: usize = 16 * 1024;
/// A pipe's size by default (Linux): a read this large found the pipe full.
const DEFAULT_PIPE: usize = 64 * 1024;
/// What a pipe the program fills faster than the gateway takes is grown to (the default
/// `/proc/sys/fs/pipe-max-size`): the program writes on while a chunk is passed on, with
/// fewer switches between it and the agent. Only such pipes, so that idle sessions do not
/// count against the user's pipe allowance (`pipe-user-pages-soft`).
const BUSY_PIPE: i32 = 1024 * 1024;

/// The program's stdout or stderr as the session reads it.
pub(crate) trait OutputSource: AsyncRead + Send + Unpin {
    /// Grows its pipe to [`BUSY_PIPE`] (best effort; nothing for a terminal).
    fn grow(&self) {}
}

fn grow_pipe(fd: impl std::os::fd::AsFd) {
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(BUSY_PIPE));
}

impl OutputSource for tokio::process::ChildStdout {
    fn grow(&self) {
        grow_pipe(self);
    }
}

impl OutputSource for tokio::process::ChildStderr {
    fn grow(&self) {
        grow_pipe(self);
    }
}

impl OutputSource for pty_process::OwnedReadPty {}

impl OutputSource for tokio::io::Empty {}

/// One stream of the program's output: its first-read buffer, and whether its pipe grew.
struct OutputStream {
    first: Vec<u8>,
    grown: bool,
}

impl OutputStream {
    fn new() -> Self {
        Self {
            first: vec![0; FIRST_READ],
            grown: false,
        }
    }

    /// After a first read of `n` bytes into `first`, reads on while the pipe has data, up
    /// to `cap` bytes in all (never waiting): the chunk to send.
    async fn chunk(&mut self, source: &mut dyn OutputSource, n: usize, cap: usize) -> Bytes {
        let first = self.first.get(..n).unwrap_or_default();
        if n < FIRST_READ || cap <= n {
            return Bytes::copy_from_slice(first);
        }
        let mut chunk = BytesMut::with_capacity(cap);
        chunk.extend_from_slice(first);
        while chunk.len() < cap {
            let room = cap - chunk.len();
            let mut limited = (&mut chunk).limit(room);
            let mut read = std::pin::pin!(source.read_buf(&mut limited));
            match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                Poll::Ready(Ok(got)) if got > 0 => {}
                _ => break,
            }
        }
        if !self.grown && chunk.len() >= DEFAULT_PIPE {
            self.grown = true;
            source.grow();
        }
        chunk.freeze()
    }
}
/// How long a supervisor asked to end may take before it is SIGKILLed itself.
const SUPERVISOR_GRACE: Duration = Duration::from_secs(5);
/// How long the supervisor's reports may take to end once it exited.
const REPORTS_AFTER_EXIT: Duration = Duration::from_millis(200);
/// End of transmission (Ctrl-D): end-of-file for a program reading a terminal.
const EOT: u8 = 0x04;

/// What the router hands a session.
#[derive(Debug)]
pub(crate) enum Control {
    Input(Bytes),
    CloseInput,
    Resize(pb::TerminalSize),
    OutputAck(u64),
    Kill,
    /// The gateway is gone: end the session without telling it.
    GatewayGone,
}

/// Runs a session to its end; returns its id. A pipe session starts from a ready slot of
/// `pool` when there is one.
pub(crate) async fn run(
    agent: Arc<Inner>,
    pool: Option<Arc<Pool>>,
    start: pb::AgentStart,
    mut controls: mpsc::UnboundedReceiver<Control>,
    outgoing: mpsc::Sender<pb::AgentMessage>,
) -> String {
    let id = start.session_id.clone();
    let window = crate::output_window(start.output_window);
    let program = start.argv.first().cloned().unwrap_or_default();
    tracing::info!(session = %id, %program, terminal = start.terminal.is_some(), "session starting");
    let mut input = Input::default();
    let mut pool = pool;
    let mut again = false;
    let ending = loop {
        let spawned = match launch(&agent, pool.as_ref(), &start, again) {
            Ok(spawned) => spawned,
            Err(error) => {
                break Ending {
                    code: CANNOT_START,
                    error,
                    tell_gateway: true,
                };
            }
        };
        let from_slot = spawned.from_slot;
        match drive(&id, spawned, &mut controls, &outgoing, &mut input, window).await {
            Ok(ending) => break ending,
            // Nothing of the session ran, and the gateway saw nothing of it: once more, with
            // a supervisor of its own (this drive only loses a slot's supervisor).
            Err(Lost(_)) if from_slot => {
                tracing::warn!(session = %id, "the ready supervisor of the session died before it took the session: starting another");
                pool = None;
                again = true;
            }
            Err(Lost(ending)) => break ending,
        }
    };
    tracing::info!(session = %id, exit_code = ending.code, error = %ending.error, "session ended");
    if ending.tell_gateway {
        let exit = message(Out::Exit(pb::AgentExit {
            session_id: id.clone(),
            exit_code: ending.code,
            error: ending.error,
        }));
        // A gateway that stops reading must not hold the session forever.
        tokio::select! {
            _ = outgoing.send(exit) => {}
            () = gateway_gone(&mut controls) => {}
        }
    }
    id
}

/// Resolves when the router says the gateway is gone.
async fn gateway_gone(controls: &mut mpsc::UnboundedReceiver<Control>) {
    loop {
        match controls.recv().await {
            None | Some(Control::GatewayGone) => return,
            Some(_) => {}
        }
    }
}

fn message(message: Out) -> pb::AgentMessage {
    pb::AgentMessage {
        message: Some(message),
    }
}

/// How a session ended.
struct Ending {
    code: i32,
    error: String,
    /// Whether to send `exit` (not when the gateway is gone).
    tell_gateway: bool,
}

/// A supervisor that has the session's spec, and the session's ends of its pipes.
pub(crate) struct Spawned {
    pub(crate) child: tokio::process::Child,
    pub(crate) supervisor: Pid,
    pub(crate) stdout: Box<dyn OutputSource>,
    /// `None` on a terminal (everything is stdout there).
    pub(crate) stderr: Option<Box<dyn OutputSource>>,
    pub(crate) stdin: Stdin,
    pub(crate) reports: Lines<BufReader<pipe::Receiver>>,
    /// Writes what did not fit at once of the spec to the supervisor.
    pub(crate) spec_writer: Option<tokio::task::JoinHandle<()>>,
    /// Whether the supervisor was a ready slot (started before the session).
    pub(crate) from_slot: bool,
    /// The pool to replenish once the program runs (or the start ended).
    pub(crate) replenish: Option<Arc<Pool>>,
}

/// The end of a drive whose supervisor exited without a word (killed before it took the
/// session): nothing of the session ran, so it may start again; otherwise, this ending.
struct Lost(Ending);

/// The gateway's input, kept across a start that lost its supervisor.
#[derive(Default)]
struct Input {
    queue: VecDeque<Pending>,
    /// Input received and not acknowledged yet.
    unacked: u64,
    close_requested: bool,
}

/// Where input goes.
pub(crate) enum Stdin {
    Pipe(tokio::process::ChildStdin),
    Terminal(pty_process::OwnedWritePty),
}

impl Stdin {
    async fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Pipe(pipe) => pipe.write(data).await,
            Self::Terminal(pty) => pty.write(data).await,
        }
    }
}

/// A terminal size as the proto carries it, if it is valid (each side 1 to 1000).
fn terminal_size(size: &pb::TerminalSize) -> Option<pty_process::Size> {
    let side = |n: u32| u16::try_from(n).ok().filter(|n| (1..=1000).contains(n));
    Some(pty_process::Size::new(side(size.rows)?, side(size.cols)?))
}

/// A directory name for a session id: the id itself when it is made of letters, digits,
/// `-` and `_` (at most 64 of them, as the gateway's ids are) and `suffixed` is false;
/// otherwise what is left of it after those, with `-<n>` (a number unique in the agent) so
/// that two ids never share one.
fn dir_name(id: &str, unique: &AtomicU64, suffixed: bool) -> String {
    let name: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    if name == id && !name.is_empty() && !suffixed {
        return name;
    }
    let n = unique.fetch_add(1, Ordering::Relaxed);
    if name.is_empty() {
        format!("session-{n}")
    } else {
        format!("{name}-{n}")
    }
}

/// Hands the session to a supervisor: a ready slot of `pool` (pipe sessions), else one
/// started now (`again`: the first start lost its supervisor). Errors are the message of
/// the session's `exit`.
fn launch(
    agent: &Inner,
    pool: Option<&Arc<Pool>>,
    start: &pb::AgentStart,
    again: bool,
) -> Result<Spawned, String> {
    if start.argv.is_empty() {
        return Err("the session has no command".to_owned());
    }
    let size = match &start.terminal {
        Some(size) => Some(terminal_size(size).ok_or_else(|| {
            format!(
                "invalid terminal size {}x{}: rows and columns must be between 1 and 1000",
                size.rows, size.cols
            )
        })?),
        None => None,
    };
    let spec = SupervisorSpec {
        agent_pid: agent.pid,
        argv: start.argv.clone(),
        env: start.env.clone(),
        terminal: size.is_some(),
        run_as: agent.run_as.clone(),
        lang: agent.lang.clone(),
        workdir: match &agent.workdir {
            Workdir::Fixed(dir) => WorkDir::Fixed(dir.clone()),
            Workdir::Fresh(base) => WorkDir::Fresh {
                base: base.path().to_path_buf(),
                // A second start (the first lost its supervisor) gets a name of its own:
                // that supervisor may have made the first.
                name: dir_name(&start.session_id, &agent.unique, again),
            },
        },
    };
    let spec = serde_json::to_vec(&spec).map_err(|e| format!("cannot start the session: {e}"))?;
    if size.is_none()
        && let Some(pool) = pool
    {
        while let Some(slot) = pool.take() {
            match slot.hand(&spec) {
                Ok(mut spawned) => {
                    spawned.from_slot = true;
                    spawned.replenish = Some(Arc::clone(pool));
                    agent.slot_starts.fetch_add(1, Ordering::Relaxed);
                    return Ok(spawned);
                }
                Err(err) => tracing::warn!(
                    session = %start.session_id, error = %err,
                    "a ready session supervisor did not take the session: trying another"
                ),
            }
        }
    }
    agent.fresh_starts.fetch_add(1, Ordering::Relaxed);
    let spawned = Slot::start(&agent.launcher, size).and_then(|slot| slot.hand(&spec));
    if let Some(pool) = pool
        && spawned.is_err()
    {
        pool.replenish();
    }
    let mut spawned = spawned.map_err(|e| format!("cannot start the session: {e}"))?;
    // A pipe session found no slot ready: the pool fills up once this one's program runs.
    spawned.replenish = pool.filter(|_| size.is_none()).cloned();
    Ok(spawned)
}

/// Asks the supervisor to end the session if the session's task goes away first (the serve
/// future dropped): the supervisor kills the session's processes.
struct SupervisorGuard(Option<Pid>);

impl Drop for SupervisorGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGTERM);
        }
    }
}

/// Why a session is being ended early.
#[derive(PartialEq, Eq)]
enum Stop {
    Kill,
    GatewayGone,
    Protocol(String),
}

/// Input waiting for the program: bytes, how much of them is written, and whether they are
/// input of the gateway (acknowledged) or the end-of-file of a terminal (not).
struct Pending {
    data: Bytes,
    written: usize,
    counted: bool,
}

async fn write_front(stdin: &mut Stdin, queue: &VecDeque<Pending>) -> std::io::Result<usize> {
    match queue.front() {
        Some(front) => stdin.write(&front.data[front.written..]).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs a started session until its supervisor has exited (and, unless it was ended early,
/// its output has been read to the end and taken by the gateway). Input waits in `input`
/// until the program runs: a supervisor that exits without a word (killed before it took
/// the session) is [`Lost`], and the session may start again with its input intact.
async fn drive(
    id: &str,
    spawned: Spawned,
    controls: &mut mpsc::UnboundedReceiver<Control>,
    outgoing: &mpsc::Sender<pb::AgentMessage>,
    input: &mut Input,
    output_window: u64,
) -> Result<Ending, Lost> {
    let Spawned {
        mut child,
        supervisor,
        mut stdout,
        stderr,
        stdin,
        mut reports,
        spec_writer,
        from_slot: _,
        mut replenish,
    } = spawned;
    let mut guard = SupervisorGuard(Some(supervisor));
    let mut stderr = stderr.unwrap_or_else(|| Box::new(tokio::io::empty()));
    let mut stdin = Some(stdin);
    let terminal = matches!(stdin, Some(Stdin::Terminal(_)));

    let mut announced = false;
    let mut failure: Option<(i32, String)> = None;
    let mut exited: Option<i32> = None;
    let (mut stdout_open, mut stderr_open, mut reports_open) = (true, !terminal, true);
    let mut unacked_out: u64 = 0;
    let Input {
        queue,
        unacked: unacked_in,
        close_requested,
    } = input;
    // Input is closed (or its pipe broke): what comes now is dropped.
    let mut input_closed = false;
    let mut outbox: VecDeque<pb::AgentMessage> = VecDeque::new();
    let mut outputs_queued = 0usize;
    let mut stop: Option<Stop> = None;
    let mut grace: Option<tokio::time::Instant> = None;
    // Once the supervisor exited, its reports are all in the pipe; the pipe's end of file
    // normally follows at once, but a process that inherited the pipe by accident (a spawn
    // in another thread of the agent's process) may hold it open: then stop waiting.
    let mut reports_deadline: Option<tokio::time::Instant> = None;
    let mut out = OutputStream::new();
    let mut err = OutputStream::new();

    loop {
        if exited.is_some() {
            let done = match &stop {
                Some(Stop::GatewayGone) => true,
                Some(_) => outbox.is_empty(),
                // A program that never started has no output to wait for.
                None => {
                    (!announced || (!stdout_open && !stderr_open))
                        && !reports_open
                        && outbox.is_empty()
                }
            };
            if done {
                break;
            }
        }
        if announced && *close_requested && queue.is_empty() && !input_closed {
            *close_requested = false;
            input_closed = true;
            match stdin.take() {
                // Dropping the pipe's end closes the program's stdin.
                Some(Stdin::Pipe(pipe)) => drop(pipe),
                Some(Stdin::Terminal(pty)) => {
                    queue.push_back(Pending {
                        data: Bytes::from_static(&[EOT]),
                        written: 0,
                        counted: false,
                    });
                    // Kept for resizes.
                    stdin = Some(Stdin::Terminal(pty));
                }
                None => {}
            }
        }
        let window = output_window.saturating_sub(unacked_out);
        let cap = usize::try_from(window)
            .unwrap_or(OUTPUT_CHUNK)
            .min(OUTPUT_CHUNK);
        let first_cap = cap.min(FIRST_READ);
        let may_read = announced && stop.is_none() && outputs_queued == 0 && cap > 0;
        let writable = announced && stop.is_none() && stdin.is_some() && !queue.is_empty();
        tokio::select! {
            line = reports.next_line(), if reports_open => match line {
                Ok(Some(line)) => match serde_json::from_str::<Report>(&line) {
                    Ok(Report::Spawned(pid)) => {
                        announced = true;
                        if let Some(pool) = replenish.take() {
                            pool.replenish();
                        }
                        outbox.push_back(message(Out::Spawned(pb::AgentSpawned {
                            session_id: id.to_owned(),
                            pid,
                        })));
                    }
                    Ok(Report::Failed { code, message }) => failure = Some((code, message)),
                    Ok(Report::Warning(warning)) => tracing::warn!(session = %id, "{warning}"),
                    // Everything of the session is gone: its end need not wait for the
                    // supervisor's own exit (nor its reaping, which tokio does anyway).
                    Ok(Report::Exited(code)) => {
                        if exited.is_none() {
                            guard.0 = None;
                            exited = Some(code);
                        }
                        reports_open = false;
                    }
                    Err(err) => tracing::warn!(session = %id, error = %err, "an invalid report of the session's supervisor"),
                },
                Ok(None) | Err(_) => reports_open = false,
            },
            read = stdout.read(&mut out.first[..first_cap]), if may_read && stdout_open => match read {
                Ok(n) if n > 0 => {
                    let data = out.chunk(&mut *stdout, n, cap).await;
                    unacked_out += data.len() as u64;
                    outputs_queued += 1;
                    outbox.push_back(output(id, pb::OutputStream::Stdout, data));
                }
                _ => stdout_open = false,
            },
            read = stderr.read(&mut err.first[..first_cap]), if may_read && stderr_open => match read {
                Ok(n) if n > 0 => {
                    let data = err.chunk(&mut *stderr, n, cap).await;
                    unacked_out += data.len() as u64;
                    outputs_queued += 1;
                    outbox.push_back(output(id, pb::OutputStream::Stderr, data));
                }
                _ => stderr_open = false,
            },
            written = async {
                match stdin.as_mut() {
                    Some(sink) => write_front(sink, queue).await,
                    None => std::future::pending().await,
                }
            }, if writable => match written {
                Ok(n) => {
                    if let Some(front) = queue.front_mut() {
                        front.written += n;
                        if front.counted {
                            acknowledge(&mut outbox, id, n as u64);
                            // Acknowledged: out of the gateway's window again.
                            *unacked_in = unacked_in.saturating_sub(n as u64);
                        }
                        if front.written >= front.data.len() {
                            queue.pop_front();
                        }
                    }
                }
                Err(_) => {
                    // The program closed its stdin: further input has nowhere to go.
                    queue.clear();
                    input_closed = true;
                    *close_requested = false;
                    if let Some(Stdin::Pipe(_)) = stdin {
                        stdin = None;
                    }
                }
            },
            control = controls.recv() => {
                let mut end = |why: Stop| end_early(&guard, &mut stop, &mut grace, why);
                match control {
                    Some(Control::Input(data)) => {
                        *unacked_in += data.len() as u64;
                        if *unacked_in > INPUT_WINDOW {
                            end(Stop::Protocol(format!(
                                "protocol error: the gateway sent more than {INPUT_WINDOW} bytes of unacknowledged input"
                            )));
                        } else if !input_closed && !*close_requested && !data.is_empty() {
                            queue.push_back(Pending { data, written: 0, counted: true });
                        }
                    }
                    Some(Control::OutputAck(bytes)) => {
                        unacked_out = unacked_out.saturating_sub(bytes);
                    }
                    Some(Control::Resize(size)) => {
                        if let (Some(Stdin::Terminal(pty)), Some(size)) = (&stdin, terminal_size(&size)) {
                            let _ = pty.resize(size);
                        }
                    }
                    Some(Control::CloseInput) => *close_requested = true,
                    Some(Control::Kill) => end(Stop::Kill),
                    Some(Control::GatewayGone) | None => gone(&guard, &mut stop, &mut grace),
                }
            },
            permit = outgoing.reserve(), if !outbox.is_empty() => match permit {
                Ok(permit) => {
                    if let Some(next) = outbox.pop_front() {
                        if matches!(next.message, Some(Out::Output(_))) {
                            outputs_queued -= 1;
                        }
                        permit.send(next);
                    }
                }
                Err(_) => gone(&guard, &mut stop, &mut grace),
            },
            status = child.wait(), if exited.is_none() => {
                guard.0 = None;
                reports_deadline = Some(tokio::time::Instant::now() + REPORTS_AFTER_EXIT);
                exited = Some(match status {
                    Ok(status) => exit_code(status),
                    Err(err) => {
                        tracing::error!(session = %id, error = %err, "cannot wait for the session's supervisor");
                        CANNOT_START
                    }
                });
            },
            () = sleep_until(reports_deadline), if reports_open && reports_deadline.is_some() => {
                tracing::debug!(session = %id, "the supervisor's report pipe stays open after its exit");
                reports_open = false;
            },
            () = sleep_until(grace), if grace.is_some() && exited.is_none() => {
                grace = None;
                tracing::error!(session = %id, "the session's supervisor did not end in time: killing it (processes of the session may remain)");
                let _ = child.start_kill();
            },
        }
        if stop == Some(Stop::GatewayGone) {
            outbox.clear();
            outputs_queued = 0;
        }
    }
    if let Some(writer) = spec_writer {
        writer.abort();
    }
    if let Some(pool) = replenish {
        pool.replenish();
    }
    let code = exited.unwrap_or(CANNOT_START);

    let tell_gateway = stop != Some(Stop::GatewayGone);
    if let Some((code, error)) = failure {
        return Ok(Ending {
            code,
            error,
            tell_gateway,
        });
    }
    let error = match stop {
        Some(Stop::Protocol(error)) => error,
        Some(Stop::Kill) if !announced => "killed before the program started".to_owned(),
        None if !announced => {
            // Not a word from the supervisor: killed (or crashed) before it took the session.
            return Err(Lost(Ending {
                code,
                error: format!(
                    "the session's supervisor ended before starting the program (exit code {code})"
                ),
                tell_gateway,
            }));
        }
        _ if !announced => {
            format!("the session's supervisor ended before starting the program (exit code {code})")
        }
        _ => String::new(),
    };
    Ok(Ending {
        code,
        error,
        tell_gateway,
    })
}

/// Asks the supervisor to end the session (once), for `why`.
fn end_early(
    guard: &SupervisorGuard,
    stop: &mut Option<Stop>,
    grace: &mut Option<tokio::time::Instant>,
    why: Stop,
) {
    if stop.is_some() {
        return;
    }
    if let Some(pid) = guard.0 {
        let _ = kill(pid, Signal::SIGTERM);
        *grace = Some(tokio::time::Instant::now() + SUPERVISOR_GRACE);
    }
    *stop = Some(why);
}

/// The gateway is gone: end the session (if it is not ending yet) and tell nobody.
fn gone(
    guard: &SupervisorGuard,
    stop: &mut Option<Stop>,
    grace: &mut Option<tokio::time::Instant>,
) {
    end_early(guard, stop, grace, Stop::GatewayGone);
    *stop = Some(Stop::GatewayGone);
}

fn output(id: &str, stream: pb::OutputStream, data: Bytes) -> pb::AgentMessage {
    message(Out::Output(pb::AgentOutput {
        session_id: id.to_owned(),
        stream: stream as i32,
        data,
    }))
}

/// Adds `bytes` to the input acknowledgement waiting last in the outbox, or queues one.
fn acknowledge(outbox: &mut VecDeque<pb::AgentMessage>, id: &str, bytes: u64) {
    if let Some(pb::AgentMessage {
        message: Some(Out::InputAck(ack)),
    }) = outbox.back_mut()
    {
        ack.bytes += bytes;
        return;
    }
    outbox.push_back(message(Out::InputAck(pb::AgentInputAck {
        session_id: id.to_owned(),
        bytes,
    })));
}

/// The exit code of a status: its code, or 128+N for signal N.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(CANNOT_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_are_tame() {
        let n = AtomicU64::new(1);
        assert_eq!(dir_name("3f2a-77_b", &n, false), "3f2a-77_b");
        assert_eq!(dir_name("../../etc", &n, false), "etc-1");
        assert_eq!(dir_name("../..", &n, false), "session-2");
        assert_eq!(dir_name("a.b", &n, false), "ab-3");
        assert_eq!(dir_name("ab", &n, false), "ab");
        assert_eq!(
            dir_name(&"x".repeat(100), &n, false),
            format!("{}-4", "x".repeat(64))
        );
        // A second start of a session never reuses the first one's directory.
        assert_eq!(dir_name("ab", &n, true), "ab-5");
    }

    #[test]
    fn terminal_sizes_are_checked() {
        let size = |rows, cols| pb::TerminalSize { rows, cols };
        assert!(terminal_size(&size(24, 80)).is_some());
        assert!(terminal_size(&size(0, 80)).is_none());
        assert!(terminal_size(&size(24, 1001)).is_none());
        assert!(terminal_size(&size(70_000, 80)).is_none());
    }

    #[test]
    fn acknowledgements_coalesce() {
        let mut outbox = VecDeque::new();
        acknowledge(&mut outbox, "s", 3);
        acknowledge(&mut outbox, "s", 4);
        assert_eq!(outbox.len(), 1);
        outbox.push_back(output(
            "s",
            pb::OutputStream::Stdout,
            Bytes::from_static(b"x"),
        ));
        acknowledge(&mut outbox, "s", 1);
        assert_eq!(outbox.len(), 3);
        let Some(Out::InputAck(ack)) = &outbox[0].message else {
            panic!("not an ack")
        };
        assert_eq!(ack.bytes, 7);
    }
}
