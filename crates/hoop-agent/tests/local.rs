//! The local agent (`hoop-agent local-agent`), spoken to in frames over its stdin and stdout
//! as the gateway does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;

use common::{
    WAIT, eventually, helper, helpers_under, marker, processes_with, still_runs, with_args,
};
use hoop_agent::{EXEC_MODE, READY_SLOTS, SUPERVISOR_MODE, read_frame, write_frame};
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_message::Message as Out;
use hoop_proto::v1::gateway_message::Message as In;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

struct Local {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// The agent's temp dir (`TMPDIR`): a killed agent leaves its base directory there.
    _tmp: tempfile::TempDir,
}

impl Local {
    /// Starts a local agent whose own environment holds a secret.
    fn start(args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(helper())
            .arg("local-agent")
            .args(args)
            .env("HOOP_SECRET_X", "must-not-leak")
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            stdin,
            stdout,
            _tmp: tmp,
        }
    }

    /// Starts a local agent on a terminal of its own: the terminal is its controlling
    /// terminal (as when an admin runs it, or the gateway, from a shell), its stdin and
    /// stdout are the frame pipes.
    fn start_on_terminal() -> (Self, pty_process::Pty) {
        let tmp = tempfile::tempdir().unwrap();
        let (pty, pts) = pty_process::open().unwrap();
        let mut child = pty_process::Command::new(helper())
            .arg("local-agent")
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn(pts)
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        (
            Self {
                child,
                stdin,
                stdout,
                _tmp: tmp,
            },
            pty,
        )
    }

    async fn send(&mut self, message: In) {
        let message = pb::GatewayMessage {
            message: Some(message),
        };
        write_frame(self.stdin.as_mut().unwrap(), &message)
            .await
            .unwrap();
    }

    async fn recv(&mut self) -> Out {
        let message: pb::AgentMessage = tokio::time::timeout(WAIT, read_frame(&mut self.stdout))
            .await
            .expect("a message in time")
            .unwrap()
            .expect("a message, not the end");
        message.message.unwrap()
    }

    /// Closes stdin (the gateway is gone) and waits for a clean exit.
    async fn finish(mut self) {
        self.stdin = None;
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the agent exits")
            .unwrap();
        assert!(status.success(), "{status}");
    }

    /// Runs `argv` to its end; its stdout and exit code.
    async fn run(&mut self, id: &str, argv: &[&str], terminal: bool) -> (String, i32) {
        self.send(In::Start(pb::AgentStart {
            session_id: id.to_owned(),
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            env: BTreeMap::from([("CONN_VAR".to_owned(), "from-connection".to_owned())]),
            terminal: terminal.then_some(pb::TerminalSize { rows: 24, cols: 80 }),
            tcp: None,
            output_window: hoop_agent::OUTPUT_WINDOW,
        }))
        .await;
        let mut stdout = Vec::new();
        loop {
            match self.recv().await {
                Out::Output(output) => {
                    assert_eq!(output.session_id, id);
                    self.send(In::OutputAck(pb::AgentOutputAck {
                        session_id: id.to_owned(),
                        bytes: output.data.len() as u64,
                    }))
                    .await;
                    stdout.extend_from_slice(&output.data);
                }
                Out::Exit(exit) => {
                    assert_eq!(exit.error, "");
                    return (String::from_utf8(stdout).unwrap(), exit.exit_code);
                }
                Out::Spawned(_) | Out::InputAck(_) => {}
                Out::Hello(_) => panic!("a second hello"),
            }
        }
    }
}

/// The variables of `env` output.
fn variables(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_session_gets_a_login_environment_and_nothing_of_the_agents() {
    let mut agent = Local::start(&[]);
    assert!(matches!(agent.recv().await, Out::Hello(_)));
    let (output, code) = agent.run("env", &["env"], false).await;
    assert_eq!(code, 0);
    let env = variables(&output);
    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "CONN_VAR", "HOME", "LANG", "LOGNAME", "PATH", "SHELL", "TMPDIR", "USER"
        ],
        "{output}"
    );
    let me = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .unwrap()
        .unwrap();
    assert_eq!(env["USER"], me.name);
    assert_eq!(env["LOGNAME"], me.name);
    assert_eq!(env["HOME"], me.dir.to_str().unwrap());
    assert_eq!(env["SHELL"], me.shell.to_str().unwrap());
    assert_eq!(env["LANG"], "C.UTF-8");
    assert_eq!(env["CONN_VAR"], "from-connection");
    // Temporary files go to the session's fresh directory, removed with it.
    let (pwd, _) = agent
        .run("pwd", &["sh", "-c", "echo \"$TMPDIR\"; pwd"], false)
        .await;
    let lines: Vec<&str> = pwd.lines().collect();
    assert_eq!(lines[0], lines[1], "{pwd}");

    let (output, _) = agent.run("env-tty", &["env"], true).await;
    let env = variables(&output);
    assert_eq!(env.get("TERM").map(String::as_str), Some("xterm-256color"));
    assert!(!env.contains_key("HOOP_SECRET_X"), "{output}");
    agent.finish().await;
}

#[tokio::test]
async fn the_end_of_stdin_ends_every_session_and_the_agent() {
    let mut agent = Local::start(&[]);
    assert!(matches!(agent.recv().await, Out::Hello(_)));
    let marker = marker();
    let script = format!("setsid -f sleep {marker}; echo ready; exec sleep 600");
    agent
        .send(In::Start(pb::AgentStart {
            session_id: "left".to_owned(),
            argv: vec!["sh".to_owned(), "-c".to_owned(), script],
            ..Default::default()
        }))
        .await;
    loop {
        if let Out::Output(output) = agent.recv().await
            && output.data.starts_with(b"ready")
        {
            break;
        }
    }
    eventually("the escaped sleep runs", || {
        !processes_with(&marker).is_empty()
    })
    .await;
    // The gateway is gone.
    agent.stdin = None;
    let status = tokio::time::timeout(WAIT, agent.child.wait())
        .await
        .expect("the agent exits")
        .unwrap();
    assert!(status.success(), "{status}");
    eventually("the escaped sleep is gone", || {
        processes_with(&marker).is_empty()
    })
    .await;
}

#[tokio::test]
async fn garbage_on_stdin_ends_the_agent_with_an_error() {
    let mut agent = Local::start(&[]);
    assert!(matches!(agent.recv().await, Out::Hello(_)));
    let mut stdin = agent.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, &u32::MAX.to_be_bytes())
        .await
        .unwrap();
    let status = tokio::time::timeout(WAIT, agent.child.wait())
        .await
        .expect("the agent exits")
        .unwrap();
    assert_eq!(status.code(), Some(1));
}

#[tokio::test]
async fn bad_options_are_refused_at_start() {
    let agent = Local::start(&["--working-dir", "/no/such/dir"]);
    let out = tokio::time::timeout(WAIT, agent.child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// An agent started from a terminal does not lend it to sessions on pipes: they cannot
/// open it (to read the admin's keystrokes, or push input with TIOCSTI) nor take it over.
/// And sessions cannot gain privileges.
#[tokio::test]
async fn a_session_on_pipes_has_no_controlling_terminal() {
    let (mut agent, _pty) = Local::start_on_terminal();
    assert!(matches!(agent.recv().await, Out::Hello(_)));
    // The agent itself has the terminal: the session must not.
    let (out, code) = agent
        .run(
            "tty",
            &[
                "sh",
                "-c",
                "if (exec 3<>/dev/tty) 2>/dev/null; then echo has-tty; else echo no-tty; fi; \
                 ps -o sid= -p $$ | tr -d ' '; ps -o pid= -p $$ | tr -d ' '; \
                 grep NoNewPrivs /proc/$$/status",
            ],
            false,
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "no-tty", "{out}");
    // It leads a session of its own (its session id is its pid).
    assert_eq!(lines[1], lines[2], "{out}");
    // Nothing it runs gains privileges (setuid binaries, file capabilities).
    assert_eq!(lines[3], "NoNewPrivs:\t1", "{out}");
    agent.finish().await;
}

impl Local {
    /// The agent's ready slots, once they are all there: each supervisor, with its
    /// arguments. These agents keep their own user: their supervisors start programs
    /// themselves and wait with no exec helper under them (one process fewer per slot).
    async fn slots(&self) -> Vec<(i32, Vec<String>)> {
        let agent = i32::try_from(self.child.id().unwrap()).unwrap();
        let mut slots = Vec::new();
        eventually("the agent's slots are ready", || {
            let supervisors = helpers_under(agent, SUPERVISOR_MODE);
            let helpers: Vec<i32> = supervisors
                .iter()
                .flat_map(|pid| helpers_under(*pid, EXEC_MODE))
                .collect();
            slots = with_args(&supervisors);
            slots.extend(with_args(&helpers));
            supervisors.len() == READY_SLOTS && helpers.is_empty()
        })
        .await;
        slots
    }
}

#[tokio::test]
async fn slots_end_with_the_agent() {
    let mut agent = Local::start(&[]);
    assert!(matches!(agent.recv().await, Out::Hello(_)));
    let slots = agent.slots().await;
    agent.finish().await;
    eventually("no slot process is left", || {
        slots.iter().all(|(pid, args)| !still_runs(*pid, args))
    })
    .await;
}

#[tokio::test]
async fn slots_die_with_a_killed_agent() {
    let mut agent = Local::start(&[]);
    assert!(matches!(agent.recv().await, Out::Hello(_)));
    // A session of the agent uses a slot, and others replace it.
    let (output, code) = agent.run("one", &["echo", "one"], false).await;
    assert_eq!((output.as_str(), code), ("one\n", 0));
    let slots = agent.slots().await;
    agent.child.start_kill().unwrap();
    agent.child.wait().await.unwrap();
    eventually("no slot process is left", || {
        slots.iter().all(|(pid, args)| !still_runs(*pid, args))
    })
    .await;
}
