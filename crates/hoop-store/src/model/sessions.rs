//! Sessions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

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
    /// The arguments appended to the connection's command.
    pub args: Vec<String>,
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
    /// The gateway instance that runs (or ran) it; `None` for sessions recorded before
    /// instances existed. [`Store::create_session`](crate::Store::create_session) sets the
    /// store's own instance when this is `None`.
    pub instance: Option<String>,
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
