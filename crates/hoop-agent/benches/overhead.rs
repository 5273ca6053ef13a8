//! How much a session's start costs through the agent (supervisor, exec helper) compared
//! with spawning the program directly, with the agent's ready slots and without them.
//! A bench binary (not part of `cargo test`); run with
//! `cargo bench -p hoop-agent --bench overhead`.
//!
//! The configurations take turns, one run each, so that a change of the machine's load
//! weighs on all of them alike. `HOOP_OVERHEAD_RUNS` sets the runs of each (100 by
//! default), `HOOP_OVERHEAD_PAUSE_MS` a pause before each run (0 by default: back to back,
//! as a benchmark does; slots are started again during a pause). `HOOP_OVERHEAD_LOCAL_AGENTS`
//! lists (`:`-separated) the binaries run as local agents (`<binary> local-agent`, as the
//! gateway runs its own: `target/release/hoop-gateway` is one), the `hoop-agent` binary by
//! default.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use hoop_agent::{AgentOptions, read_frame, write_frame};
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_message::Message as Out;
use hoop_proto::v1::gateway_message::Message as In;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

/// A local agent (`hoop-agent local-agent`, a process of its own), spoken to in frames on
/// its stdin and stdout as the gateway does.
struct Local {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::process::ChildStdout,
    _tmp: tempfile::TempDir,
}

impl Local {
    async fn start(exe: &std::path::Path, args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(exe)
            .arg("local-agent")
            .args(args)
            .env("TMPDIR", tmp.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let hello: pb::AgentMessage = read_frame(&mut stdout).await.unwrap().unwrap();
        assert!(matches!(hello.message, Some(Out::Hello(_))));
        Self {
            child,
            stdin: Some(stdin),
            stdout,
            _tmp: tmp,
        }
    }

    /// Runs `argv` to its exit; its exit code.
    async fn run(&mut self, id: &str, argv: &[&str]) -> i32 {
        let start = In::Start(pb::AgentStart {
            session_id: id.to_owned(),
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            ..Default::default()
        });
        let message = pb::GatewayMessage {
            message: Some(start),
        };
        write_frame(self.stdin.as_mut().unwrap(), &message)
            .await
            .unwrap();
        loop {
            let message: pb::AgentMessage = read_frame(&mut self.stdout).await.unwrap().unwrap();
            if let Some(Out::Exit(exit)) = message.message {
                return exit.exit_code;
            }
        }
    }
}

impl Local {
    /// Ends the agent as the gateway does: its stdin closes.
    async fn finish(mut self) {
        self.stdin = None;
        assert!(self.child.wait().await.unwrap().success());
    }
}

/// Where a configuration runs `true`.
enum Runner {
    Direct,
    Agent(Gateway),
    Local(Local),
}

/// One way of running `true`, and how long each run took.
struct Configuration {
    name: String,
    runner: Runner,
    times: Vec<Duration>,
}

impl Configuration {
    fn gateway(&self) -> Option<&Gateway> {
        match &self.runner {
            Runner::Agent(gateway) => Some(gateway),
            _ => None,
        }
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(spawn_overhead());
}

async fn spawn_overhead() {
    let runs = usize::try_from(env_number("HOOP_OVERHEAD_RUNS", 100)).unwrap();
    let pause = Duration::from_millis(env_number("HOOP_OVERHEAD_PAUSE_MS", 0));
    let mut users = vec![("the agent's user", None)];
    if common::is_root() {
        users.push(("nobody", Some("nobody".to_owned())));
    }
    let mut configurations = vec![Configuration {
        name: "direct".to_owned(),
        runner: Runner::Direct,
        times: Vec::new(),
    }];
    for (user, run_as) in users {
        for without_slots in [false, true] {
            let options = AgentOptions {
                run_as: run_as.clone(),
                without_slots,
                ..common::options()
            };
            configurations.push(Configuration {
                name: format!(
                    "as {user}, {}",
                    if without_slots {
                        "without slots"
                    } else {
                        "with slots"
                    }
                ),
                runner: Runner::Agent(Gateway::with(options).await),
                times: Vec::new(),
            });
        }
    }
    // The local agent's own process, as the gateway runs it (with slots).
    let local_args: &[&str] = if common::is_root() {
        &["--user", "nobody"]
    } else {
        &[]
    };
    let local_agents: Vec<std::path::PathBuf> = match std::env::var("HOOP_OVERHEAD_LOCAL_AGENTS") {
        Ok(list) => list.split(':').map(std::path::PathBuf::from).collect(),
        Err(_) => vec![common::helper()],
    };
    for exe in local_agents {
        configurations.push(Configuration {
            name: format!("local agent {}", exe.display()),
            runner: Runner::Local(Local::start(&exe, local_args).await),
            times: Vec::new(),
        });
    }
    // Every agent's slots are ready.
    common::eventually("the slots are ready", || {
        configurations.iter().all(|c| {
            c.gateway().is_none_or(|g| {
                g.agent.stats().ready_slots
                    == if c.name.contains("without") {
                        0
                    } else {
                        hoop_agent::READY_SLOTS
                    }
            })
        })
    })
    .await;
    for i in 0..runs {
        for configuration in &mut configurations {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let started = Instant::now();
            let id = format!("t{i}");
            match &mut configuration.runner {
                Runner::Direct => {
                    let status = tokio::process::Command::new("true").status().await.unwrap();
                    assert!(status.success());
                }
                Runner::Agent(gateway) => {
                    gateway.start_session(&id, &["true"], &[], None).await;
                    assert_eq!(gateway.finish(&id).await.exit_code, 0);
                }
                Runner::Local(local) => assert_eq!(local.run(&id, &["true"]).await, 0),
            }
            configuration.times.push(started.elapsed());
        }
    }
    let direct = percentile(&mut configurations[0].times, 50);
    let mut report = format!("start-to-exit of `true`, {runs} runs of each, pause {pause:?}:");
    for configuration in &mut configurations {
        let (p50, p90) = (
            percentile(&mut configuration.times, 50),
            percentile(&mut configuration.times, 90),
        );
        report.push_str(&format!(
            "\n  {:<36} p50 {p50:>10.3?} p90 {p90:>10.3?}",
            configuration.name
        ));
        if !matches!(configuration.runner, Runner::Direct) {
            report.push_str(&format!(
                "  added p50 {:>10.3?}",
                p50.saturating_sub(direct)
            ));
        }
        if let Some(gateway) = configuration.gateway() {
            let stats = gateway.agent.stats();
            report.push_str(&format!(
                "  ({} from slots, {} fresh)",
                stats.slot_starts, stats.fresh_starts
            ));
        }
    }
    println!("{report}");
    for configuration in configurations {
        if let Runner::Local(local) = configuration.runner {
            local.finish().await;
        }
    }
}
