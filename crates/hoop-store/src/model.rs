//! The store's records, as plain Rust values.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// A user and their groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Unique, immutable name.
    pub name: String,
    /// Email address (may be empty).
    pub email: String,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

/// An API key (never its token: only a hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Identifier.
    pub id: String,
    /// The user it acts as.
    pub user: String,
    /// A label.
    pub description: String,
    /// First characters of the token.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Which ways of using a connection are enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessModes {
    /// One-shot sessions.
    pub exec: bool,
    /// Interactive sessions.
    pub connect: bool,
    /// Runbook executions.
    pub runbooks: bool,
}

impl Default for AccessModes {
    fn default() -> Self {
        Self {
            exec: true,
            connect: true,
            runbooks: true,
        }
    }
}

/// A connection. `env` holds the decrypted secrets only when asked for
/// ([`Store::get_connection`](crate::Store::get_connection) with `with_secrets`); otherwise
/// the variable names map to empty strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Unique, immutable name.
    pub name: String,
    /// Connection type (`command`, …).
    pub kind: String,
    /// argv of the program a `command` connection runs.
    pub command: Vec<String>,
    /// Environment: secret values.
    pub env: BTreeMap<String, String>,
    /// Reviewer groups (the `review` plugin's config).
    pub reviewers: Vec<String>,
    /// Info types to mask (the `dlp` plugin's config).
    pub redact_types: Vec<String>,
    /// Enabled access modes.
    pub access: AccessModes,
    /// Free-form labels.
    pub tags: BTreeMap<String, String>,
    /// Longest a session may run; `None` means no limit.
    pub session_timeout: Option<std::time::Duration>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Connection {
    /// A new connection of `kind` with nothing else set; timestamps are now.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        let now = Utc::now();
        Self {
            name: name.into(),
            kind: kind.into(),
            command: Vec::new(),
            env: BTreeMap::new(),
            reviewers: Vec::new(),
            redact_types: Vec::new(),
            access: AccessModes::default(),
            tags: BTreeMap::new(),
            session_timeout: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A plugin attached to a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// Plugin name.
    pub plugin: String,
    /// Its config (a JSON object).
    pub config: serde_json::Value,
    /// Whether it runs on sessions.
    pub enabled: bool,
}

/// The record of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Identifier.
    pub id: String,
    /// Connection name (kept after the connection is deleted).
    pub connection: String,
    /// Connection type at the time.
    pub connection_type: String,
    /// Who ran it.
    pub user: String,
    /// `exec` or `connect`.
    pub verb: String,
    /// `open`, `done`, `denied`, `killed` or `interrupted`.
    pub status: String,
    /// Exit code, once ended.
    pub exit_code: Option<i32>,
    /// Why it ended.
    pub reason: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Bytes of input.
    pub bytes_in: i64,
    /// Bytes of output.
    pub bytes_out: i64,
    /// Counters plugins recorded.
    pub metrics: BTreeMap<String, i64>,
    /// Text values plugins attached (e.g. `audit.digest`).
    pub attributes: BTreeMap<String, String>,
}

/// How a session ended, to settle its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Final status.
    pub status: String,
    /// Exit code.
    pub exit_code: i32,
    /// Why it ended.
    pub reason: String,
    /// Bytes of input.
    pub bytes_in: i64,
    /// Bytes of output.
    pub bytes_out: i64,
    /// Counters plugins recorded.
    pub metrics: BTreeMap<String, i64>,
    /// Text values plugins attached (e.g. `audit.digest`).
    pub attributes: BTreeMap<String, String>,
}

/// Filters of a session listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this connection.
    pub connection: Option<String>,
    /// Only this user.
    pub user: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Started at or after.
    pub start_after: Option<DateTime<Utc>>,
    /// Started before.
    pub start_before: Option<DateTime<Utc>>,
}
