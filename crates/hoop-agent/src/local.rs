//! The local agent: a child process of the gateway that serves it over its stdin and stdout
//! (frames of [`read_frame`](crate::read_frame)/[`write_frame`](crate::write_frame):
//! `GatewayMessage`s in, `AgentMessage`s out). End of file on stdin means the gateway is
//! gone: every session is killed and the agent exits. Logs go to stderr.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use hoop_proto::v1 as pb;
use nix::sys::stat::{SFlag, fstat};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::frame::write_agent_frame;
use crate::{Agent, AgentError, AgentOptions, read_frame};

/// The arguments of the local agent (`<exe> local-agent [--user U] [--working-dir D]`), for
/// the gateway's subcommand and the `hoop-agent` binary's alike.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LocalAgentArgs {
    /// Run sessions as this user, with its groups (when the agent runs as root).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run sessions in this directory (default: a fresh directory per session, removed
    /// afterwards).
    #[arg(long, value_name = "DIR")]
    pub working_dir: Option<PathBuf>,
}

impl LocalAgentArgs {
    /// The agent's options.
    pub fn options(&self) -> AgentOptions {
        AgentOptions {
            run_as: self.user.clone(),
            working_dir: self.working_dir.clone(),
            helper_exe: None,
            without_slots: false,
        }
    }
}

/// The size the agent's stdout pipe towards the gateway is grown to (the default
/// `/proc/sys/fs/pipe-max-size`).
const GATEWAY_PIPE: i32 = 1024 * 1024;

/// How long the agent's last messages may take to reach a gateway that stopped reading.
const LAST_WORDS: Duration = Duration::from_secs(5);

/// Serves the gateway on this process's stdin and stdout until stdin ends (the gateway is
/// gone), then kills every session and returns.
///
/// # Errors
/// Those of [`Agent::new`]; [`AgentError::Incoming`] when stdin breaks or holds something
/// that is not a frame of a `GatewayMessage`.
pub async fn serve_stdio(options: &AgentOptions) -> Result<(), AgentError> {
    let agent = Agent::new(options)?;
    let mut reader = stdin_reader()?;
    let mut writer = stdout_writer()?;
    let (incoming_tx, incoming) = mpsc::channel::<Result<pb::GatewayMessage, AgentError>>(16);
    let reading = tokio::spawn(async move {
        loop {
            match read_frame::<pb::GatewayMessage, _>(&mut reader).await {
                Ok(Some(message)) => {
                    if incoming_tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    let _ = incoming_tx.send(Err(err)).await;
                    return;
                }
            }
        }
    });
    let (outgoing, mut to_write) = mpsc::channel::<pb::AgentMessage>(64);
    let writing = tokio::spawn(async move {
        while let Some(message) = to_write.recv().await {
            if let Err(err) = write_agent_frame(&mut writer, &message).await {
                tracing::warn!(error = %err, "cannot write to the gateway");
                return;
            }
        }
    });
    let result = agent.serve(ReceiverStream::new(incoming), outgoing).await;
    reading.abort();
    // Every sender is gone with the sessions: the writer ends once it wrote what is left.
    if tokio::time::timeout(LAST_WORDS, writing).await.is_err() {
        tracing::warn!("the gateway does not read the agent's last messages");
    }
    result
}

/// Runs the local agent to its end on a runtime of its own; returns the process's exit code
/// (0 once the gateway is gone, 1 after an error, which is logged). For a `local-agent`
/// subcommand of a binary that has no runtime running.
pub fn run_local_agent(args: &LocalAgentArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the local agent's runtime");
            return 1;
        }
    };
    let result = runtime.block_on(serve_stdio(&args.options()));
    // Nothing may hold the exit: a read of a terminal's stdin would.
    runtime.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!(error = %err, "the local agent failed");
            1
        }
    }
}

/// What kind of file a standard descriptor is.
fn kind(fd: impl AsFd) -> Option<SFlag> {
    let stat = fstat(fd).ok()?;
    Some(SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT)
}

fn dup(fd: impl AsFd, what: &str) -> Result<OwnedFd, AgentError> {
    fd.as_fd()
        .try_clone_to_owned()
        .map_err(|e| AgentError::io(format!("cannot take {what}"), e))
}

/// Stdin, read without a blocking thread when it is a pipe or a socket (so that nothing
/// outlives the agent's end); through tokio's blocking pool otherwise (a file, a terminal).
fn stdin_reader() -> Result<Box<dyn AsyncRead + Send + Unpin>, AgentError> {
    let stdin = std::io::stdin();
    Ok(match kind(&stdin) {
        Some(SFlag::S_IFIFO) => Box::new(
            tokio::net::unix::pipe::Receiver::from_owned_fd(dup(&stdin, "stdin")?)
                .map_err(|e| AgentError::io("cannot read stdin", e))?,
        ),
        Some(SFlag::S_IFSOCK) => Box::new(socket(dup(&stdin, "stdin")?)?),
        _ => Box::new(tokio::fs::File::from_std(std::fs::File::from(dup(
            &stdin, "stdin",
        )?))),
    })
}

/// Stdout, like [`stdin_reader`].
fn stdout_writer() -> Result<Box<dyn AsyncWrite + Send + Unpin>, AgentError> {
    let stdout = std::io::stdout();
    Ok(match kind(&stdout) {
        Some(SFlag::S_IFIFO) => {
            // Room for a whole output message or more: the gateway reads it in one go
            // rather than in pieces of the default 64 KiB (best effort).
            let _ = nix::fcntl::fcntl(&stdout, nix::fcntl::FcntlArg::F_SETPIPE_SZ(GATEWAY_PIPE));
            Box::new(
                tokio::net::unix::pipe::Sender::from_owned_fd(dup(&stdout, "stdout")?)
                    .map_err(|e| AgentError::io("cannot write stdout", e))?,
            )
        }
        Some(SFlag::S_IFSOCK) => Box::new(socket(dup(&stdout, "stdout")?)?),
        _ => Box::new(tokio::fs::File::from_std(std::fs::File::from(dup(
            &stdout, "stdout",
        )?))),
    })
}

fn socket(fd: OwnedFd) -> Result<tokio::net::UnixStream, AgentError> {
    let socket = std::os::unix::net::UnixStream::from(fd);
    socket
        .set_nonblocking(true)
        .map_err(|e| AgentError::io("cannot use the socket", e))?;
    tokio::net::UnixStream::from_std(socket).map_err(|e| AgentError::io("cannot use the socket", e))
}
