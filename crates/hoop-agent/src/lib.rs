//! `hoop-agent`: the process that runs sessions' programs for a gateway.
//!
//! The gateway decides (plugins, reviews, recordings); an agent executes. The agent speaks
//! `AgentService.Serve` (`proto/hoop/v1/agent.proto`): it receives session starts and their
//! input as [`GatewayMessage`](hoop_proto::v1::GatewayMessage)s and answers with
//! [`AgentMessage`](hoop_proto::v1::AgentMessage)s (`hello` first, then `spawned`, `output`,
//! `input_ack`, `exit`). The same loop, [`Agent::serve`], runs over any transport:
//!
//! - the `hoop-agent` binary dials a gateway over gRPC (`hoop-agent --gateway URL --token
//!   hag_…`), reconnecting with backoff;
//! - the *local agent*, a child process of the gateway, speaks length-prefixed frames on its
//!   stdin and stdout ([`serve_stdio`], [`write_frame`], [`read_frame`]).
//!
//! # Process isolation
//!
//! Every session runs under a **supervisor** of its own: a helper process in a hidden
//! helper mode ([`SUPERVISOR_MODE`]). It is the small session helper binary
//! ([`SESSION_HELPER`], [`run_session_helper`]) when that is installed beside the agent's
//! executable and built from the same sources, else the agent's own binary executed again
//! (binaries call [`dispatch_helper_mode`] first thing in `main`). The supervisor is a child subreaper, so
//! whatever the program leaves behind (`setsid -f`, shell job control, double forks)
//! reparents to it; when the program exits, when the agent asks it to end (SIGTERM) or
//! when the agent dies (its parent-death signal), it SIGKILLs every remaining descendant,
//! reaps them, removes the session's fresh working directory and exits with the program's
//! status. When the agent runs as root, the supervisor stays root (the session's user cannot
//! signal it) and the program runs as [`AgentOptions::run_as`] with that user's groups,
//! set by a second helper ([`EXEC_MODE`]) between the supervisor and the program (which
//! also gives a terminal session its terminal). A session on pipes that keeps the agent's
//! user needs no second helper: the supervisor starts its program with `posix_spawn`.
//!
//! The helpers start before their session is known: every connection keeps
//! [`READY_SLOTS`] of them ready (supervisor, and exec helper when sessions change user,
//! waiting as the agent's user), so that a session's start on pipes only writes its spec
//! to a pipe.
//!
//! The session spec (argv, the connection's environment, which may hold secrets) reaches
//! the helpers through pipes, never through argv (world-readable in `/proc/*/cmdline`) nor
//! through their environment. The program's environment is a login environment of the user
//! it runs as plus the connection's `env`, and nothing of the agent's. See the crate's
//! README for the whole model and its limits.
//!
//! # Flow control
//!
//! At most [`OUTPUT_WINDOW`] bytes of a session's output are unacknowledged at any time:
//! the agent stops reading the program's stdout and stderr until `output_ack`s arrive, so a
//! slow session never holds more memory nor blocks another. Input is acknowledged
//! (`input_ack`) once written to the program; more than [`INPUT_WINDOW`] unacknowledged
//! input bytes is a protocol error that ends the session.

mod error;
mod exec;
mod fds;
mod frame;
mod local;
mod login;
mod pool;
mod procs;
mod serve;
mod session;
mod spawn;
mod spec;
mod supervisor;
mod tcp;

pub use error::AgentError;
pub use frame::{MAX_FRAME, read_frame, write_frame};
pub use local::{LocalAgentArgs, run_local_agent, serve_stdio};
pub use serve::{Agent, AgentOptions, AgentStats, serve};

/// The most output bytes of one session a gateway of this version leaves unacknowledged,
/// as it says in `AgentStart.output_window`: past it, the agent stops reading the program's
/// stdout and stderr until `output_ack`s arrive. Eight reads of [`OUTPUT_CHUNK`] (2 MiB):
/// enough to keep the pipeline from the program to the client busy while the gateway
/// passes chunks on (four, 1 MiB, left the gateway waiting for output a quarter of the
/// time when streaming through the local agent; see BENCHMARKS.md).
pub const OUTPUT_WINDOW: u64 = 8 * OUTPUT_CHUNK as u64;

/// The output window of a session whose start does not say (`output_window` 0: a gateway
/// older than the field, whose window this was).
pub const LEGACY_OUTPUT_WINDOW: u64 = 4 * OUTPUT_CHUNK as u64;

/// The largest output window an agent grants a gateway that asks (16 MiB): memory held per
/// session stays bounded whatever a gateway says.
pub const MAX_OUTPUT_WINDOW: u64 = 64 * OUTPUT_CHUNK as u64;

/// The output window of a session whose start asked for `asked` bytes
/// (`AgentStart.output_window`): [`LEGACY_OUTPUT_WINDOW`] for 0, otherwise `asked` kept
/// between one [`OUTPUT_CHUNK`] and [`MAX_OUTPUT_WINDOW`].
pub fn output_window(asked: u64) -> u64 {
    if asked == 0 {
        LEGACY_OUTPUT_WINDOW
    } else {
        asked.clamp(OUTPUT_CHUNK as u64, MAX_OUTPUT_WINDOW)
    }
}

/// The most output bytes one read from a program takes (reads go on while its pipe has data,
/// up to this): one `output` message.
pub const OUTPUT_CHUNK: usize = 256 * 1024;

/// The most input bytes of one session the agent accepts without having acknowledged them
/// (`input_ack`, sent once written to the program). A gateway that sends more breaks the
/// protocol: that session ends with an error.
pub const INPUT_WINDOW: u64 = 256 * 1024;

/// How many *slots* an agent keeps ready per connection it serves: supervisors started
/// ahead of their session (each with its exec helper when sessions change user), waiting
/// as the agent's user for a session's spec, with the program's pipes already made. A
/// session on pipes takes one and only hands it its spec (the agent's binary is not executed on its way), and a new
/// slot starts in the background. When none is ready, and for sessions on a terminal, the
/// session starts its supervisor itself. Slots end with the connection (and with the
/// agent), never become the session's user before they have a session, and a slot whose
/// supervisor died is dropped, never handed a session. See the crate's README.
pub const READY_SLOTS: usize = 2;

/// The hidden first argument that runs a session's supervisor (see [`dispatch_helper_mode`]).
pub const SUPERVISOR_MODE: &str = "__hoop-session-supervisor";

/// The hidden first argument that drops privileges and executes a session's program (see
/// [`dispatch_helper_mode`]).
pub const EXEC_MODE: &str = "__hoop-session-exec";

/// The file name of the small *session helper* binary (`hoop-session-helper`, built with the
/// gateway): when it is installed beside the agent's own executable, supervisors and exec
/// helpers run it rather than the agent's binary again (see [`AgentOptions::helper_exe`]).
/// It runs the same helper modes ([`run_session_helper`]) but is a small fraction of the
/// gateway's size, so a session's helpers start several times faster.
pub const SESSION_HELPER: &str = "hoop-session-helper";

/// The argument that makes the session helper print its [`helper_fingerprint`] (how an
/// agent checks, once when it starts, that the helper beside it speaks its protocol).
pub const FINGERPRINT_ARG: &str = "--hoop-fingerprint";

/// What identifies the helpers' protocol (the specs and reports they exchange with the
/// agent over pipes, and what the helpers do): the crate's version and a hash of the
/// sources of the helper modes. A helper binary built from other sources prints another
/// one, and the agent does not use it.
pub fn helper_fingerprint() -> String {
    /// FNV-1a, at compile time.
    const fn fnv(bytes: &[u8]) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        hash
    }
    /// Every source the helper modes run: a helper of a build whose supervisor or exec
    /// helper behaves otherwise (not only one whose spec differs) is not used.
    const SOURCES: [&[u8]; 7] = [
        include_bytes!("spec.rs"),
        include_bytes!("supervisor.rs"),
        include_bytes!("exec.rs"),
        include_bytes!("fds.rs"),
        include_bytes!("login.rs"),
        include_bytes!("procs.rs"),
        include_bytes!("error.rs"),
    ];
    const HASH: u64 = {
        let mut hash = 0;
        let mut i = 0;
        while i < SOURCES.len() {
            hash ^= fnv(SOURCES[i]).rotate_left(i as u32);
            i += 1;
        }
        hash
    };
    format!("hoop-agent {} {HASH:016x}", env!("CARGO_PKG_VERSION"))
}

/// The `main` of the session helper binary ([`SESSION_HELPER`]): runs the helper mode its
/// arguments name, prints [`helper_fingerprint`] for [`FINGERPRINT_ARG`], and otherwise
/// says it is not meant to be run by hand. Returns the process's exit code.
pub fn run_session_helper() -> i32 {
    if let Some(code) = dispatch_helper_mode() {
        return code;
    }
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next()) {
        (Some(arg), None) if arg == FINGERPRINT_ARG => {
            println!("{}", helper_fingerprint());
            0
        }
        _ => {
            eprintln!(
                "{SESSION_HELPER}: runs the processes of sessions for the hoop-rs agent (the gateway's local agent, or hoop-agent) installed beside it; it is not meant to be run by hand"
            );
            2
        }
    }
}

/// Runs the helper mode named by the process's first argument, if it names one, and returns
/// the exit code the process must exit with; `None` for an ordinary start.
///
/// Every binary that runs an [`Agent`] (the `hoop-agent` binary, and the gateway for its
/// local agent) must call this first thing in `main`, before parsing its arguments or
/// starting any thread or runtime, and exit with the code it returns:
///
/// ```no_run
/// // First thing in `main`:
/// if let Some(code) = hoop_agent::dispatch_helper_mode() {
///     std::process::exit(code);
/// }
/// // ... the binary's own work
/// ```
pub fn dispatch_helper_mode() -> Option<i32> {
    let mut args = std::env::args_os();
    let mode = args.nth(1)?;
    if mode == SUPERVISOR_MODE {
        Some(supervisor::run(args.collect()))
    } else if mode == EXEC_MODE {
        Some(exec::run(args.collect()))
    } else {
        None
    }
}
