//! The local agent: the agent process the gateway starts itself, so that `hoop-gateway`
//! alone runs sessions, never in its own process.
//!
//! It is this binary again (`hoop-gateway local-agent`), started with an empty environment
//! (none of the gateway's `HOOP_*` values, tokens or keys reach it), talking over its stdin
//! and stdout: the same messages as `AgentService.Serve`, framed by length. When the gateway
//! runs as root, it runs sessions as `[agent] user` (default `nobody`). When its stdin ends
//! (the gateway exited, however it exited) it kills every session's processes and exits. If
//! it dies, the gateway starts it again; the sessions it ran end as `interrupted`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hoop_proto::v1 as pb;
use tokio::process::{Child, Command};

use crate::agents::{Agents, LOCAL_AGENT};
use crate::config::AgentSettings;

/// The hidden subcommand that runs the local agent.
pub(crate) const SUBCOMMAND: &str = "local-agent";

/// The arguments of `hoop-gateway local-agent`: the agent's, and the gateway's logging
/// (passed as arguments: the local agent's environment is empty).
#[derive(Debug, clap::Args)]
pub(crate) struct LocalAgentCli {
    #[command(flatten)]
    agent: hoop_agent::LocalAgentArgs,
    /// The gateway's `HOOP_LOG` filter.
    #[arg(long, default_value = "info")]
    log: String,
    /// The gateway's `HOOP_LOG_FORMAT`.
    #[arg(long, default_value = "text")]
    log_format: String,
}

/// `hoop-gateway local-agent`: serves the gateway that started it on stdin and stdout until
/// stdin ends. Logs go to stderr, the gateway's, in the gateway's format.
pub(crate) fn main(args: &LocalAgentCli) -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let args = &args.agent;
    // The gateway keeps its files private (umask 077); sessions get the usual default.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let code = hoop_agent::run_local_agent(args);
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
/// First wait before starting a local agent that died again; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the agent may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How the gateway starts its local agent.
#[derive(Debug, Clone)]
pub(crate) struct LocalAgent {
    settings: AgentSettings,
    program: std::path::PathBuf,
}

impl LocalAgent {
    /// Checks the settings against this host: when the gateway runs as root, the run-as user
    /// must exist. When it does not run as root, says once that sessions share its user.
    pub(crate) fn new(settings: AgentSettings) -> anyhow::Result<Self> {
        let program = std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find the gateway's own executable: {e}"))?;
        if nix::unistd::geteuid().is_root() {
            match nix::unistd::User::from_name(&settings.user) {
                Ok(Some(_)) => {}
                Ok(None) => anyhow::bail!(
                    "agent.user: no user `{}` on this host: create it or set [agent] user",
                    settings.user
                ),
                Err(err) => anyhow::bail!("agent.user: cannot look up `{}`: {err}", settings.user),
            }
            tracing::info!(user = %settings.user, "the local agent runs sessions as this user");
        } else {
            let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| nix::unistd::geteuid().to_string());
            tracing::warn!(
                user = %me,
                "the gateway does not run as root, so sessions on the local agent run as its own OS user `{me}`: they can read and change what the gateway can (its data dir, its database, its recordings). Run the gateway as root (sessions then run as [agent] user), or run sessions on a hoop-agent elsewhere"
            );
        }
        Ok(Self { settings, program })
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.arg(SUBCOMMAND);
        if nix::unistd::geteuid().is_root() {
            command.arg("--user").arg(&self.settings.user);
        }
        if let Some(dir) = &self.settings.working_dir {
            command.arg("--working-dir").arg(dir);
        }
        // The gateway's logging settings (checked when it started), so the agent's lines
        // look like its own.
        for (var, flag) in [("HOOP_LOG", "--log"), ("HOOP_LOG_FORMAT", "--log-format")] {
            if let Ok(value) = std::env::var(var) {
                command.arg(flag).arg(value);
            }
        }
        command.env_clear();
        // The language of messages is the one thing of the gateway's environment sessions
        // get (a login sets it too).
        if let Some(lang) = std::env::var_os("LANG") {
            command.env("LANG", lang);
        }
        // A process group of its own: Ctrl-C, SIGHUP or `kill %1` on the gateway's terminal
        // do not reach it (the end of its stdin stops it, once the gateway is done).
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true);
        command
    }

    /// Starts the local agent and keeps it running until `shutdown`; registered in
    /// `agents` as `local` whenever it is up. Returns once it is first up (or failed to
    /// come up: then the error).
    pub(crate) async fn run(
        self,
        agents: Arc<Agents>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let (first, up) = self.start().await?;
        let task = tokio::spawn(async move {
            let mut next = Some((first, up));
            let mut backoff = FIRST_BACKOFF;
            loop {
                let (child, hello) = match next.take() {
                    Some(started) => started,
                    None => match self.start().await {
                        Ok(started) => started,
                        Err(err) => {
                            tracing::error!("cannot start the local agent: {err:#}");
                            tokio::select! {
                                () = tokio::time::sleep(backoff) => {}
                                () = shutting_down(&mut shutdown) => return,
                            }
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue;
                        }
                    },
                };
                let started_at = tokio::time::Instant::now();
                let stopped = serve(&agents, child, hello, &mut shutdown).await;
                if stopped {
                    return;
                }
                if started_at.elapsed() > MAX_BACKOFF * 2 {
                    backoff = FIRST_BACKOFF;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutting_down(&mut shutdown) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        Ok(task)
    }

    /// Starts the process and waits for its hello.
    async fn start(&self) -> anyhow::Result<(Running, pb::AgentHello)> {
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start the local agent: {e}"))?;
        let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            anyhow::bail!("the local agent's pipes are missing");
        };
        let hello = match tokio::time::timeout(
            HELLO_TIMEOUT,
            hoop_agent::read_frame::<pb::AgentMessage, _>(&mut stdout),
        )
        .await
        {
            Ok(Ok(Some(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Hello(hello)),
            }))) => hello,
            Ok(Ok(_)) => anyhow::bail!("the local agent did not say hello"),
            Ok(Err(err)) => anyhow::bail!("the local agent failed to start: {err}"),
            Err(_) => anyhow::bail!(
                "the local agent did not say hello within {}s",
                HELLO_TIMEOUT.as_secs()
            ),
        };
        Ok((
            Running {
                child,
                stdin,
                stdout,
            },
            hello,
        ))
    }
}

/// A started local agent process.
struct Running {
    child: Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
}

/// Serves one local agent process until it ends (returns `false`) or the gateway shuts
/// down (returns `true`; the agent is told by the end of its stdin and waited for).
async fn serve(
    agents: &Agents,
    running: Running,
    hello: pb::AgentHello,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let Running {
        mut child,
        mut stdin,
        stdout,
    } = running;
    let (to_agent, mut queue) = crate::agents::queue();
    let incoming = frames(stdout);
    let serving = agents.serve(LOCAL_AGENT, hello, incoming, to_agent);
    tokio::pin!(serving);
    let (stopped, reason) = loop {
        tokio::select! {
            reason = &mut serving => break (false, reason),
            Some(message) = queue.recv() => {
                // A message that cannot be written (the agent stopped reading, or it is too
                // big to frame) ends the link: dropping it silently would leave its session,
                // or a kill, hanging. The agent is started again; its sessions end as
                // interrupted.
                if let Err(err) = hoop_agent::write_frame(&mut stdin, &message).await {
                    break (false, format!("cannot write to the local agent: {err}"));
                }
            }
            () = shutting_down(shutdown) => break (true, "the gateway is shutting down".to_owned()),
        }
    };
    drop(queue);
    // The end of its stdin tells the agent to kill every session and exit.
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    match status {
        Ok(Ok(status)) if stopped => tracing::info!(%status, "local agent stopped"),
        Ok(Ok(status)) => {
            tracing::error!(%status, reason = %reason, "the local agent ended; starting it again");
        }
        _ => {
            let _ = child.kill().await;
            tracing::error!(reason = %reason, "the local agent did not stop: killed it");
        }
    }
    stopped
}

/// The agent's messages, read frame by frame until the end of its stdout (a broken frame
/// is an error, then the end).
fn frames(
    stdout: tokio::process::ChildStdout,
) -> tokio_stream::wrappers::ReceiverStream<Result<pb::AgentMessage, hoop_agent::AgentError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut stdout = tokio::io::BufReader::new(stdout);
        loop {
            let item = match hoop_agent::read_frame::<pb::AgentMessage, _>(&mut stdout).await {
                Ok(Some(message)) => Ok(message),
                Ok(None) => return,
                Err(err) => Err(err),
            };
            let last = item.is_err();
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Resolves once the gateway starts shutting down.
async fn shutting_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}
