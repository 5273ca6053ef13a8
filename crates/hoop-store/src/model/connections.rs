//! Connections and plugin attachments.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// The agent a connection's sessions run on unless it names another: the one the gateway
/// starts itself.
pub const LOCAL_AGENT: &str = "local";

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
/// the variable names map to empty strings. Its `Debug` shows the names in `env`, never the
/// values.
#[derive(Clone, PartialEq, Eq)]
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
    /// Distinct approving reviewers that approve a review; `None` means one approval from
    /// each reviewer group.
    pub min_approvals: Option<u32>,
    /// Longest a review may stay pending before it expires; `None` means the gateway's
    /// default (24 hours).
    pub review_ttl: Option<std::time::Duration>,
    /// Longest just-in-time access a user may ask for; `None` means the gateway's default
    /// (4 hours).
    pub access_max_duration: Option<std::time::Duration>,
    /// Whether clients may append arguments to `command` (a session's `args`).
    pub allow_args: bool,
    /// The agent that runs the connection's sessions ([`LOCAL_AGENT`] by default).
    pub agent: String,
    /// Columns always masked in results (`postgres` connections): `schema.table.column`,
    /// `table.column` or `*.column` patterns.
    pub mask_columns: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            name,
            kind,
            command,
            env,
            reviewers,
            redact_types,
            access,
            tags,
            session_timeout,
            min_approvals,
            review_ttl,
            access_max_duration,
            allow_args,
            agent,
            mask_columns,
            created_at,
            updated_at,
        } = self;
        let env = EnvNames(env);
        f.debug_struct("Connection")
            .field("name", name)
            .field("kind", kind)
            .field("command", command)
            .field("env", &env)
            .field("reviewers", reviewers)
            .field("redact_types", redact_types)
            .field("access", access)
            .field("tags", tags)
            .field("session_timeout", session_timeout)
            .field("min_approvals", min_approvals)
            .field("review_ttl", review_ttl)
            .field("access_max_duration", access_max_duration)
            .field("allow_args", allow_args)
            .field("agent", agent)
            .field("mask_columns", mask_columns)
            .field("created_at", created_at)
            .field("updated_at", updated_at)
            .finish()
    }
}

/// The names of an environment, each with `<redacted>` for its value.
struct EnvNames<'a>(&'a BTreeMap<String, String>);

impl std::fmt::Debug for EnvNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, format_args!("<redacted>"))))
            .finish()
    }
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
            min_approvals: None,
            review_ttl: None,
            access_max_duration: None,
            allow_args: false,
            agent: LOCAL_AGENT.to_owned(),
            mask_columns: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_debug_shows_env_names_not_values() {
        let mut conn = Connection::new("pg", "command");
        conn.env
            .insert("PGPASSWORD".into(), "hunter2-very-secret".into());
        let debug = format!("{conn:?}");
        assert!(!debug.contains("hunter2-very-secret"), "{debug}");
        assert!(
            debug.contains(r#"env: {"PGPASSWORD": <redacted>}"#),
            "{debug}"
        );
        assert!(debug.contains(r#"name: "pg""#), "{debug}");
        let pretty = format!("{conn:#?}");
        assert!(!pretty.contains("hunter2-very-secret"), "{pretty}");
    }
}
