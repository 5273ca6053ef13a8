//! `hoop-gateway`: the hoop-rs access gateway.
//!
//! ```text
//! hoop-gateway [--config FILE] [serve]   # serve the gRPC API (default)
//! hoop-gateway [--config FILE] migrate   # apply database migrations and exit
//! hoop-gateway [--config FILE] reindex   # rebuild the search index from the recordings
//! ```

/// mimalloc instead of glibc's malloc: a session's output passes through buffers of a
/// quarter megabyte and more, which glibc hands back to the kernel as soon as they are freed
/// (heap trimming) and faults in again, zeroed, for the next chunk (see BENCHMARKS.md,
/// "Allocator and fewer copies").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod access;
mod agents;
mod auth;
mod bootstrap;
mod config;
mod connections;
mod control;
mod error;
mod events;
mod grpc;
mod instances;
mod local_agent;
mod pg;
mod pglink;
mod plugins;
mod recordings;
#[cfg(feature = "plugin-indexer")]
mod reindex;
mod reviews;
mod runtime;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a bad configuration (sysexits EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

/// The hoop-rs access gateway: sessions on databases and servers pass through the plugins
/// attached to each connection (audit, dlp, review, slack, ...).
#[derive(Debug, Parser)]
#[command(name = "hoop-gateway", version)]
struct Cli {
    /// TOML config file. Every key can be overridden by HOOP_<KEY> (e.g. HOOP_LISTEN).
    #[arg(long, short, env = "HOOP_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the gRPC API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Rebuild the search index (`<data_dir>/index`) from the recordings of every ended
    /// session on the connections with `indexer` attached, with a progress bar. Stop the
    /// gateway first: it holds the index while it serves.
    #[cfg(feature = "plugin-indexer")]
    Reindex,
    /// Internal: the local agent, which the gateway starts itself to run sessions (it
    /// speaks on its stdin and stdout, and exits when its stdin ends).
    #[command(name = "local-agent", hide = true)]
    LocalAgent(local_agent::LocalAgentCli),
}

fn init_logging() -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("HOOP_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec)
            .map_err(|e| format!("HOOP_LOG: invalid filter `{spec}`: {e}"))?,
        Err(_) => EnvFilter::new("info"),
    };
    let format = std::env::var("HOOP_LOG_FORMAT").unwrap_or_else(|_| "text".to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.as_str() {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => {
            return Err(format!(
                "HOOP_LOG_FORMAT: must be `text` or `json`, got `{other}`"
            ));
        }
    }
    Ok(())
}

/// Every session holds a few descriptors (pipes or a terminal, its recording, its
/// stream); raise the soft limit on open files to the hard limit so that a default
/// `ulimit -n` of 1024 does not cap the gateway at a few hundred sessions.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {err}");
    }
}

/// Keeps what the gateway holds (the admin token, the secret key, decrypted connection
/// secrets) away from other processes of its OS user: no core dumps, no ptrace, and
/// `/proc/<pid>/environ` and `mem` readable by root only. Files the gateway creates (the
/// database and its journal, recordings, keys) are private to its user (umask 077).
fn protect_process() {
    if let Err(err) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!("cannot make the gateway non-dumpable: {err}");
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

fn main() -> ExitCode {
    // A session's helper process (this binary, re-executed by the agent) never gets here.
    if let Some(code) = hoop_agent::dispatch_helper_mode() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    if let Some(Command::LocalAgent(args)) = &cli.command {
        return local_agent::main(args);
    }
    if let Err(message) = init_logging() {
        eprintln!("hoop-gateway: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let config = match config::Config::load(cli.config.as_deref(), env) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("hoop-gateway: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The one crypto provider of rustls here is ring; install it before anything uses TLS.
    // (It fails only if one is installed already, which is just as good.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let command = cli.command.unwrap_or(Command::Serve);
    let tls = match command {
        Command::Serve => match config.server_identity() {
            Ok(tls) => tls,
            Err(err) => {
                tracing::error!("{err}");
                eprintln!("hoop-gateway: {err}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        _ => None,
    };
    raise_open_file_limit();
    if matches!(command, Command::Serve) {
        protect_process();
    }
    // File I/O of recordings runs on the blocking pool; a bounded pool keeps the thread
    // count (and the allocator arenas that come with threads) flat under many sessions.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("hoop-gateway: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => server::serve(config, tls).await,
            Command::Migrate => server::migrate(config).await,
            #[cfg(feature = "plugin-indexer")]
            Command::Reindex => reindex::reindex(config).await,
            Command::LocalAgent(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("hoop-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}
