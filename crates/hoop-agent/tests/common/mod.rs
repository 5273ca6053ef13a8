//! A gateway's side of the agent's protocol, through channels, for the tests.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hoop_agent::{Agent, AgentError, AgentOptions};
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_message::Message as Out;
use hoop_proto::v1::gateway_message::Message as In;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How long any one wait of a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The binary that runs the agent's helper modes.
pub fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hoop-agent"))
}

pub fn options() -> AgentOptions {
    AgentOptions {
        helper_exe: Some(helper()),
        ..AgentOptions::default()
    }
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// A unique `sleep` argument (a valid duration of 600 s and a bit), to find the process by
/// its command line.
pub fn marker() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!(
        "600.{}{:04}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The pids of processes running `sleep <marker>`.
pub fn processes_with(marker: &str) -> Vec<i32> {
    let wanted = format!("sleep\0{marker}\0");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.ends_with(wanted.as_bytes()) && c.starts_with(b"sleep\0"))
                .unwrap_or(false)
        })
        .collect()
}

/// A name of its own for the helper binary (a symbolic link to it in `dir`): the agent's
/// helpers then show it as their argv\[0\], so a test finds its own agent's supervisors
/// and exec helpers among those of the tests running beside it.
pub fn named_helper(dir: &std::path::Path) -> (PathBuf, String) {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let name = format!(
        "hoop-agent-t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(&name);
    std::os::unix::fs::symlink(helper(), &path).expect("a link to the helper binary");
    (path, name)
}

/// The arguments of a process (empty once it exited, even as a zombie).
fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The running processes whose argv\[0\] is `name` and argv\[1\] `mode` (a helper mode).
pub fn helpers_named(name: &str, mode: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            let args = cmdline(*pid);
            args.first().is_some_and(|a| a == name) && args.get(1).is_some_and(|a| a == mode)
        })
        .collect()
}

/// The running children of `parent` in helper mode `mode`.
pub fn helpers_under(parent_pid: i32, mode: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            parent(*pid) == Some(parent_pid) && cmdline(*pid).get(1).is_some_and(|a| a == mode)
        })
        .collect()
}

/// Whether `pid` still runs (a zombie does not) with the arguments it had (`args`): a
/// reused pid is not it.
pub fn still_runs(pid: i32, args: &[String]) -> bool {
    let now = cmdline(pid);
    !now.is_empty() && now == args
}

/// The arguments of each of `pids`, to ask [`still_runs`] about them later.
pub fn with_args(pids: &[i32]) -> Vec<(i32, Vec<String>)> {
    pids.iter().map(|pid| (*pid, cmdline(*pid))).collect()
}

/// Polls until `check` holds, at most [`WAIT`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a session did, as the gateway saw it.
#[derive(Debug, Default)]
pub struct Outcome {
    pub pid: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub input_acked: u64,
    pub exit_code: i32,
    pub error: String,
}

impl Outcome {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// The gateway's side of a serve loop running in a task.
pub struct Gateway {
    tx: Option<mpsc::Sender<Result<pb::GatewayMessage, Infallible>>>,
    rx: mpsc::Receiver<pb::AgentMessage>,
    /// Messages received for sessions other than the one waited for.
    stash: HashMap<String, VecDeque<Out>>,
    /// Sessions whose `spawned` came.
    spawned: HashSet<String>,
    pub serve: Option<tokio::task::JoinHandle<Result<(), AgentError>>>,
    pub hello: pb::AgentHello,
    /// The agent being served (its stats).
    pub agent: Agent,
}

impl Gateway {
    pub async fn start() -> Self {
        Self::with(options()).await
    }

    pub async fn with(options: AgentOptions) -> Self {
        let agent = Agent::new(&options).expect("agent");
        let (tx, incoming) = mpsc::channel(64);
        let (outgoing, mut rx) = mpsc::channel(64);
        let served = agent.clone();
        let serve =
            tokio::spawn(
                async move { served.serve(ReceiverStream::new(incoming), outgoing).await },
            );
        let hello = match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(pb::AgentMessage {
                message: Some(Out::Hello(hello)),
            })) => hello,
            other => panic!("expected hello first, got {other:?}"),
        };
        Self {
            tx: Some(tx),
            rx,
            stash: HashMap::new(),
            spawned: HashSet::new(),
            serve: Some(serve),
            hello,
            agent,
        }
    }

    pub async fn send(&self, message: In) {
        self.tx
            .as_ref()
            .expect("the gateway's stream is open")
            .send(Ok(pb::GatewayMessage {
                message: Some(message),
            }))
            .await
            .expect("the agent takes messages");
    }

    pub async fn start_session(
        &self,
        id: &str,
        argv: &[&str],
        env: &[(&str, &str)],
        terminal: Option<(u32, u32)>,
    ) {
        self.send(In::Start(pb::AgentStart {
            session_id: id.to_owned(),
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            terminal: terminal.map(|(rows, cols)| pb::TerminalSize { rows, cols }),
            tcp: None,
            // As the gateway asks.
            output_window: hoop_agent::OUTPUT_WINDOW,
        }))
        .await;
    }

    pub async fn input(&self, id: &str, data: &[u8]) {
        self.send(In::Input(pb::AgentInput {
            session_id: id.to_owned(),
            data: data.to_vec().into(),
        }))
        .await;
    }

    pub async fn close_input(&self, id: &str) {
        self.send(In::CloseInput(pb::AgentCloseInput {
            session_id: id.to_owned(),
        }))
        .await;
    }

    pub async fn kill(&self, id: &str) {
        self.send(In::Kill(pb::AgentKill {
            session_id: id.to_owned(),
        }))
        .await;
    }

    pub async fn resize(&self, id: &str, rows: u32, cols: u32) {
        self.send(In::Resize(pb::AgentResize {
            session_id: id.to_owned(),
            size: Some(pb::TerminalSize { rows, cols }),
        }))
        .await;
    }

    pub async fn ack(&self, id: &str, bytes: u64) {
        self.send(In::OutputAck(pb::AgentOutputAck {
            session_id: id.to_owned(),
            bytes,
        }))
        .await;
    }

    /// Ends the gateway's stream (the gateway is gone).
    pub fn hang_up(&mut self) {
        self.tx = None;
    }

    /// The next message for session `id`, waiting at most `wait`; `None` on timeout.
    pub async fn next_within(&mut self, id: &str, wait: Duration) -> Option<Out> {
        let message = self.receive(id, wait).await;
        match &message {
            Some(Out::Spawned(_)) => {
                assert!(self.spawned.insert(id.to_owned()), "spawned twice");
            }
            Some(Out::Output(_)) => assert!(self.spawned.contains(id), "output before spawned"),
            _ => {}
        }
        message
    }

    async fn receive(&mut self, id: &str, wait: Duration) -> Option<Out> {
        if let Some(message) = self.stash.get_mut(id).and_then(VecDeque::pop_front) {
            return Some(message);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()?
                .expect("the agent's stream is open");
            let message = message.message.expect("a message");
            let session = match &message {
                Out::Hello(_) => panic!("a second hello"),
                Out::Spawned(m) => &m.session_id,
                Out::Output(m) => &m.session_id,
                Out::InputAck(m) => &m.session_id,
                Out::Exit(m) => &m.session_id,
            };
            if session == id {
                return Some(message);
            }
            self.stash
                .entry(session.clone())
                .or_default()
                .push_back(message);
        }
    }

    /// The next message for session `id`.
    pub async fn next(&mut self, id: &str) -> Out {
        match self.next_within(id, WAIT).await {
            Some(message) => message,
            None => panic!("no message for session {id} within {WAIT:?}"),
        }
    }

    /// Reads session `id` to its exit, acknowledging output as it comes.
    pub async fn finish(&mut self, id: &str) -> Outcome {
        let mut outcome = Outcome::default();
        self.finish_into(id, &mut outcome).await;
        outcome
    }

    pub async fn finish_into(&mut self, id: &str, outcome: &mut Outcome) {
        loop {
            match self.next(id).await {
                Out::Spawned(spawned) => outcome.pid = Some(spawned.pid),
                Out::Output(output) => {
                    self.ack(id, output.data.len() as u64).await;
                    if output.stream == pb::OutputStream::Stderr as i32 {
                        outcome.stderr.extend_from_slice(&output.data);
                    } else {
                        outcome.stdout.extend_from_slice(&output.data);
                    }
                }
                Out::InputAck(ack) => outcome.input_acked += ack.bytes,
                Out::Exit(exit) => {
                    outcome.exit_code = exit.exit_code;
                    outcome.error = exit.error;
                    return;
                }
                Out::Hello(_) => panic!("a second hello"),
            }
        }
    }

    /// Reads session `id` until its stdout contains `text` (acknowledging output).
    pub async fn wait_for_output(&mut self, id: &str, text: &str, outcome: &mut Outcome) {
        while !outcome.stdout().contains(text) {
            match self.next(id).await {
                Out::Spawned(spawned) => outcome.pid = Some(spawned.pid),
                Out::Output(output) => {
                    self.ack(id, output.data.len() as u64).await;
                    if output.stream == pb::OutputStream::Stderr as i32 {
                        outcome.stderr.extend_from_slice(&output.data);
                    } else {
                        outcome.stdout.extend_from_slice(&output.data);
                    }
                }
                Out::InputAck(ack) => outcome.input_acked += ack.bytes,
                Out::Exit(exit) => panic!(
                    "session {id} exited ({} {}) before printing {text:?}; output: {:?}, stderr: {:?}",
                    exit.exit_code,
                    exit.error,
                    outcome.stdout(),
                    String::from_utf8_lossy(&outcome.stderr)
                ),
                Out::Hello(_) => panic!("a second hello"),
            }
        }
    }

    /// Waits for the serve loop to return.
    pub async fn served(&mut self) -> Result<(), AgentError> {
        let serve = self.serve.take().expect("serving");
        tokio::time::timeout(WAIT, serve)
            .await
            .expect("serve returns in time")
            .expect("serve does not panic")
    }
}
