//! `hoop-agent`: runs sessions' programs for a hoop-rs gateway.
//!
//! ```text
//! hoop-agent --gateway URL --token hag_… [--ca FILE] [--user U] [--working-dir D]
//! hoop-agent local-agent [--user U] [--working-dir D]    # serve one gateway on stdin/stdout
//! ```
//!
//! With `--gateway`, the agent dials out to the gateway (`AgentService.Serve`, `http://` or
//! `https://`), runs the sessions it is sent, and reconnects with backoff (0.5 s doubling up
//! to 10 s) whenever the connection ends; its sessions end with the connection. A gateway
//! that refuses the token (UNAUTHENTICATED or PERMISSION_DENIED: the agent was deleted, or
//! the token is wrong) is logged as an error and tried again every minute, so an agent
//! stays put through a gateway's restore or reconfiguration; it never gives up on its own.
//! SIGINT or SIGTERM end every session and the agent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::{Parser, Subcommand};
use hoop_agent::{Agent, LocalAgentArgs};
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_service_client::AgentServiceClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Endpoint;

/// Runs sessions' programs for a hoop-rs gateway: dials out to it and runs what it is sent.
#[derive(Debug, Parser)]
#[command(name = "hoop-agent", version)]
struct Cli {
    /// The gateway's URL: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, env = "HOOP_GATEWAY", value_name = "URL")]
    gateway: Option<String>,
    /// The agent's token (`hag_…`, from `hoop agents create`). Prefer HOOP_AGENT_TOKEN:
    /// every user of the host can read a process's command line.
    #[arg(
        long,
        env = "HOOP_AGENT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<Token>,
    /// PEM file of the CA that signed the gateway's certificate (https:// only; default:
    /// the webpki roots).
    #[arg(long, env = "HOOP_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    #[command(flatten)]
    sessions: LocalAgentArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one gateway on stdin and stdout (length-prefixed protobuf frames), until stdin
    /// ends: what the gateway runs as its local agent.
    LocalAgent(LocalAgentArgs),
}

/// The agent's token: never printed.
#[derive(Clone)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

impl std::str::FromStr for Token {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let token = s.trim();
        if token.is_empty() {
            return Err("the token is empty".to_owned());
        }
        Ok(Self(token.to_owned()))
    }
}

fn main() -> ExitCode {
    if let Some(code) = hoop_agent::dispatch_helper_mode() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    if let Err(message) = init_logging() {
        eprintln!("hoop-agent: {message}");
        return ExitCode::from(2);
    }
    if let Some(Command::LocalAgent(args)) = &cli.command {
        let code = hoop_agent::run_local_agent(args);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hoop-agent: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(remote(cli));
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("hoop-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("HOOP_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec)
            .map_err(|e| format!("HOOP_LOG: invalid filter `{spec}`: {e}"))?,
        Err(_) => EnvFilter::new("info"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

/// The first wait before connecting again.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest wait before connecting again.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The wait after the gateway refused the token.
const REFUSED_RETRY: Duration = Duration::from_secs(60);

/// How one connection ended.
enum Served {
    /// Asked to stop (SIGINT, SIGTERM).
    Shutdown,
    /// The gateway refused the token.
    Refused(tonic::Status),
    /// The connection could not be made or was lost; `connected` if it served a while.
    Lost { connected: bool, reason: String },
}

async fn remote(cli: Cli) -> Result<()> {
    let gateway = cli
        .gateway
        .ok_or_else(|| anyhow!("no gateway: pass --gateway URL or set HOOP_GATEWAY"))?;
    let token = cli
        .token
        .ok_or_else(|| anyhow!("no token: pass --token or set HOOP_AGENT_TOKEN"))?;
    hoop_proto::client::install_crypto_provider();
    let endpoint = gateway_endpoint(&gateway, cli.ca.as_deref())?;
    if nix::unistd::Uid::effective().is_root() && cli.sessions.user.is_none() {
        bail!(
            "hoop-agent runs as root and would run sessions as root: pass --user USER (e.g. \
             --user nobody) to run them as USER with its groups, or --user root if that is \
             really meant"
        );
    }
    let auth = Auth::new(&token.0)?;
    let agent = Agent::new(&cli.sessions.options())?;
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut backoff = BACKOFF_MIN;
    loop {
        let wait = match serve_once(&agent, &endpoint, &auth, &gateway, stop.clone()).await {
            Served::Shutdown => return Ok(()),
            Served::Refused(status) => {
                tracing::error!(
                    code = ?status.code(),
                    "the gateway {gateway} refused the agent's token ({}): the agent may have been deleted (`hoop agents list`); trying again in {}s",
                    status.message(),
                    REFUSED_RETRY.as_secs()
                );
                REFUSED_RETRY
            }
            Served::Lost { connected, reason } => {
                if connected {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(
                    "{} {gateway}: {reason}; connecting again in {:.1}s",
                    if connected {
                        "lost the connection to"
                    } else {
                        "cannot connect to"
                    },
                    backoff.as_secs_f64()
                );
                let wait = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                wait
            }
        };
        let mut stop = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Serves one connection to the gateway.
async fn serve_once(
    agent: &Agent,
    endpoint: &Endpoint,
    auth: &Auth,
    gateway: &str,
    mut stop: watch::Receiver<bool>,
) -> Served {
    let channel = tokio::select! {
        channel = endpoint.connect() => match channel {
            Ok(channel) => channel,
            Err(err) => return Served::Lost { connected: false, reason: error_chain(&err) },
        },
        _ = stop.wait_for(|stop| *stop) => return Served::Shutdown,
    };
    let mut client = AgentServiceClient::with_interceptor(channel, auth.clone());
    let (outgoing, requests) = mpsc::channel::<pb::AgentMessage>(64);
    let (incoming_tx, incoming) = mpsc::channel::<Result<pb::GatewayMessage, tonic::Status>>(16);
    let gateway_name = gateway.to_owned();
    // The call starts here, while `serve` queues `hello`, its first message: the gateway
    // answers once it has it.
    let pump = tokio::spawn(async move {
        let response = match client.serve(ReceiverStream::new(requests)).await {
            Ok(response) => response,
            Err(status) => {
                let _ = incoming_tx.send(Err(status.clone())).await;
                return (false, Some(status));
            }
        };
        tracing::info!("connected to {gateway_name}");
        println!("connected to {gateway_name}");
        let mut stream = response.into_inner();
        while let Some(message) = stream.next().await {
            let failed = message.as_ref().err().cloned();
            if incoming_tx.send(message).await.is_err() {
                return (true, None);
            }
            if failed.is_some() {
                return (true, failed);
            }
        }
        (true, None)
    });
    let abort = pump.abort_handle();
    let served = tokio::select! {
        served = agent.serve(ReceiverStream::new(incoming), outgoing) => Some(served),
        _ = stop.wait_for(|stop| *stop) => None,
    };
    let Some(served) = served else {
        // Ending the gateway's stream ends every session: serve them out.
        abort.abort();
        return Served::Shutdown;
    };
    abort.abort();
    let (connected, status) = pump.await.unwrap_or((true, None));
    if let Some(status) = status
        && matches!(
            status.code(),
            Code::Unauthenticated | Code::PermissionDenied
        )
    {
        return Served::Refused(status);
    }
    let reason = match served {
        Ok(()) => "the gateway ended the stream".to_owned(),
        Err(err) => err.to_string(),
    };
    Served::Lost { connected, reason }
}

/// An error with its sources, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Layers often repeat their cause's words: say them once.
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Auth {
    header: AsciiMetadataValue,
}

impl Auth {
    fn new(token: &str) -> Result<Self> {
        let mut header = AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            anyhow!("the token contains characters that cannot be sent in a header")
        })?;
        header.set_sensitive(true);
        Ok(Self { header })
    }
}

impl Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}

/// The endpoint of the gateway at `url` (as the CLI builds it: `http://`, or `https://`
/// trusting the CA in the PEM file `ca`, or the webpki roots without it), with keep-alives:
/// a gateway that vanishes without closing the connection is noticed.
fn gateway_endpoint(url: &str, ca: Option<&Path>) -> Result<Endpoint> {
    Ok(hoop_proto::client::gateway_endpoint(url, ca)?
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true))
}
