//! What a session is: who opened it, on which connection, how, and the data that flows.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// Identifier of a session, unique per gateway deployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// Wraps an identifier.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SessionId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for SessionId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

/// How the session uses the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verb {
    /// One-shot: the input is sent, the target runs, the output comes back.
    Exec,
    /// Interactive: input and output flow until either side closes.
    Connect,
}

impl Verb {
    /// The verb as a lower-case word (`exec`, `connect`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Exec => "exec",
            Verb::Connect => "connect",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user a session runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// Unique user name.
    pub name: String,
    /// Email address (may be empty).
    pub email: String,
    /// Groups the user belongs to.
    pub groups: Vec<String>,
    /// The user's Slack member ID (`U…`), if they set one.
    pub slack_id: Option<String>,
}

impl UserInfo {
    /// A user with no email and no groups.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            email: String::new(),
            groups: Vec::new(),
            slack_id: None,
        }
    }

    /// Sets the Slack member ID.
    pub fn with_slack_id(mut self, slack_id: Option<String>) -> Self {
        self.slack_id = slack_id;
        self
    }

    /// Sets the email address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets the groups.
    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the user is a member of `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The connection a session runs on (never its secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Unique connection name.
    pub name: String,
    /// Connection type, e.g. `command`.
    pub kind: String,
    /// Free-form labels of the connection.
    pub tags: BTreeMap<String, String>,
}

impl ConnectionInfo {
    /// A connection with no tags.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            tags: BTreeMap::new(),
        }
    }

    /// Sets the tags.
    pub fn with_tags(mut self, tags: BTreeMap<String, String>) -> Self {
        self.tags = tags;
        self
    }
}

/// Everything plugins may know about a session; fixed when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Session identifier.
    pub id: SessionId,
    /// Who opened it.
    pub user: UserInfo,
    /// Where it runs.
    pub connection: ConnectionInfo,
    /// How it uses the connection.
    pub verb: Verb,
    /// When it started.
    pub started_at: SystemTime,
    /// What the user asked to run, as far as it is known when the session opens.
    pub request: SessionRequest,
}

/// What a session was asked to run, known before it opens: what plugins deciding on open
/// (e.g. an approval workflow) look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRequest {
    /// Arguments appended to the connection's command.
    pub args: Vec<String>,
    /// The whole input of a non-interactive session (`exec`), known up front; `None` for
    /// interactive sessions, whose input arrives as it is typed.
    pub input: Option<Bytes>,
    /// An earlier approval the client presents to run under (e.g. an approved review's id).
    pub ticket: Option<String>,
    /// How long the access asked for should last, for time-based approvals.
    pub access_duration: Option<Duration>,
    /// The runbook this session runs, when a plugin (runbooks) started it to run one: its
    /// `input` is then the rendered runbook. Hosts check the connection's `runbooks` access
    /// mode instead of `exec` for such a session, and its attributes start with the
    /// runbook's ([`RunbookRef::attributes`]), so they are stored with the session and in its
    /// recording's header.
    pub runbook: Option<RunbookRef>,
}

/// Which runbook a session runs: the repository, the file and the commit it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunbookRef {
    /// The repository's name (as the runbooks plugin's settings name it).
    pub repository: String,
    /// The runbook file's path within the repository's runbook directory.
    pub path: String,
    /// The full commit id the runbook was read at.
    pub commit: String,
}

impl RunbookRef {
    /// Attribute naming the runbook's repository.
    pub const REPOSITORY_ATTRIBUTE: &'static str = "runbooks.repository";
    /// Attribute naming the runbook's path.
    pub const PATH_ATTRIBUTE: &'static str = "runbooks.path";
    /// Attribute naming the commit the runbook was read at.
    pub const COMMIT_ATTRIBUTE: &'static str = "runbooks.commit";

    /// The runbook at `path` in `repository`, read at `commit`.
    pub fn new(
        repository: impl Into<String>,
        path: impl Into<String>,
        commit: impl Into<String>,
    ) -> Self {
        Self {
            repository: repository.into(),
            path: path.into(),
            commit: commit.into(),
        }
    }

    /// The session attributes that name it: `runbooks.repository`, `runbooks.path` and
    /// `runbooks.commit`.
    pub fn attributes(&self) -> [(&'static str, &str); 3] {
        [
            (Self::REPOSITORY_ATTRIBUTE, self.repository.as_str()),
            (Self::PATH_ATTRIBUTE, self.path.as_str()),
            (Self::COMMIT_ATTRIBUTE, self.commit.as_str()),
        ]
    }
}

impl SessionRequest {
    /// An empty request: no arguments, no input, no ticket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the arguments.
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the up-front input.
    pub fn with_input(mut self, input: impl Into<Bytes>) -> Self {
        self.input = Some(input.into());
        self
    }

    /// Sets the presented approval.
    pub fn with_ticket(mut self, ticket: impl Into<String>) -> Self {
        self.ticket = Some(ticket.into());
        self
    }

    /// Sets the access duration asked for.
    pub fn with_access_duration(mut self, duration: Duration) -> Self {
        self.access_duration = Some(duration);
        self
    }

    /// Marks the session as a run of `runbook` (see [`SessionRequest::runbook`]).
    pub fn with_runbook(mut self, runbook: RunbookRef) -> Self {
        self.runbook = Some(runbook);
        self
    }
}

impl SessionInfo {
    /// A session starting now.
    pub fn new(
        id: impl Into<SessionId>,
        user: UserInfo,
        connection: ConnectionInfo,
        verb: Verb,
    ) -> Self {
        Self {
            id: id.into(),
            user,
            connection,
            verb,
            started_at: SystemTime::now(),
            request: SessionRequest::default(),
        }
    }

    /// Sets what the session was asked to run.
    pub fn with_request(mut self, request: SessionRequest) -> Self {
        self.request = request;
        self
    }
}

/// Which stream a chunk of data belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// From the user to the target.
    Stdin,
    /// The target's standard output.
    Stdout,
    /// The target's standard error.
    Stderr,
}

impl Stream {
    /// The stream as a lower-case word (`stdin`, `stdout`, `stderr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A piece of session data on its way through the chain.
///
/// Hooks may rewrite `data` in place (to mask it, for instance) or empty it to drop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The stream the data belongs to.
    pub stream: Stream,
    /// The bytes, which need not be UTF-8.
    pub data: Bytes,
}

impl Chunk {
    /// A chunk of `data` on `stream`.
    pub fn new(stream: Stream, data: impl Into<Bytes>) -> Self {
        Self {
            stream,
            data: data.into(),
        }
    }
}

/// Why a session closed; every plugin's [`on_close`](crate::Plugin::on_close) receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The target exited with this code.
    Exit {
        /// Exit code of the target.
        code: i32,
    },
    /// A plugin denied the session (on open or on a chunk).
    Denied {
        /// The plugin that denied it.
        plugin: String,
        /// Its reason.
        reason: String,
    },
    /// A plugin hook failed, so the session was ended (plugins fail closed).
    PluginFailed {
        /// The plugin that failed.
        plugin: String,
        /// The failure.
        error: String,
    },
    /// Someone killed the session.
    Killed {
        /// Who killed it.
        by: String,
    },
    /// The session ran past its time limit.
    Timeout,
    /// The client went away.
    ClientGone,
    /// The gateway is shutting down.
    Shutdown,
    /// The session could not run (e.g. the target could not be started).
    Error {
        /// What went wrong.
        message: String,
    },
    /// The session was dropped without being closed; the chain closed it on its own.
    Abandoned,
    /// The plugin left the session's chain while the session was held: the connection's
    /// settings changed and the plugin is no longer on it. Only that plugin receives this.
    Detached,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Exit { code } => write!(f, "exited with code {code}"),
            CloseReason::Denied { plugin, reason } => write!(f, "denied by {plugin}: {reason}"),
            CloseReason::PluginFailed { plugin, error } => {
                write!(f, "plugin {plugin} failed: {error}")
            }
            CloseReason::Killed { by } => write!(f, "killed by {by}"),
            CloseReason::Timeout => f.write_str("session timed out"),
            CloseReason::ClientGone => f.write_str("client went away"),
            CloseReason::Shutdown => f.write_str("gateway shut down"),
            CloseReason::Error { message } => write!(f, "error: {message}"),
            CloseReason::Abandoned => f.write_str("session abandoned"),
            CloseReason::Detached => f.write_str("plugin detached while the session was held"),
        }
    }
}
