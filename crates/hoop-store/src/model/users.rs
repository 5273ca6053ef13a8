//! Users and their API keys.

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
    /// Slack member ID (`U…`), unique among users, if set.
    pub slack_id: Option<String>,
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
