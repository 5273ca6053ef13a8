//! What the agent tells a session's supervisor, what the supervisor tells the exec helper,
//! and what they answer. JSON over pipes (never argv nor environment: the spec holds the
//! connection's secrets). A spec is the whole content of its pipe: the writer closes it
//! after the spec, and a pipe closed without one dismisses the helper that waited on it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A session, as the agent hands it to the session's supervisor.
#[derive(Serialize, Deserialize)]
pub(crate) struct SupervisorSpec {
    /// The agent's pid: the supervisor ends the session when its parent is no longer it.
    pub(crate) agent_pid: i32,
    /// The program and its arguments.
    pub(crate) argv: Vec<String>,
    /// The connection's environment, added to the login environment.
    pub(crate) env: BTreeMap<String, String>,
    /// Whether the program runs on a terminal (the supervisor's stdio is its slave side).
    pub(crate) terminal: bool,
    /// Run the program as this user (the agent runs as root); `None`: as the agent's user.
    pub(crate) run_as: Option<String>,
    /// `LANG` of the session.
    pub(crate) lang: String,
    pub(crate) workdir: WorkDir,
}

/// Where a session runs.
#[derive(Serialize, Deserialize)]
pub(crate) enum WorkDir {
    /// An existing directory, left as it is.
    Fixed(PathBuf),
    /// A fresh directory `base/name`, created for the session (mode 0700, owned by the
    /// user the program runs as) and removed with everything in it afterwards.
    Fresh { base: PathBuf, name: String },
}

/// The program, as the supervisor hands it to the exec helper (or starts it itself).
#[derive(Serialize, Deserialize)]
pub(crate) struct ExecSpec {
    pub(crate) argv: Vec<String>,
    /// The program's whole environment.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: PathBuf,
    /// Become this user (with its groups) before executing the program.
    pub(crate) become_user: Option<Identity>,
    /// Lead a new session with stdin (a terminal) as controlling terminal.
    pub(crate) terminal: bool,
}

/// A user to become.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// A line from the supervisor to the agent.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// The program runs, with this pid.
    Spawned(u32),
    /// The program could not start: the supervisor exits with `code`.
    Failed { code: i32, message: String },
    /// Something the agent should log.
    Warning(String),
    /// The session is over, with this status: every process of it is gone and its fresh
    /// directory removed. The last report; the supervisor exits with this code right after
    /// (the agent need not wait for that).
    Exited(i32),
}

/// Why the program could not start, from the exec helper to the supervisor (the helper
/// writes it only when it fails, so an empty pipe means the program runs).
#[derive(Serialize, Deserialize)]
pub(crate) struct ExecFailure {
    pub(crate) code: i32,
    pub(crate) message: String,
}

/// Writes `value` as one line of JSON.
pub(crate) fn write_json_line<T: Serialize>(
    mut writer: impl Write,
    value: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line)
}
