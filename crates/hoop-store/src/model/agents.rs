use chrono::{DateTime, Utc};

/// An agent that may serve sessions (never its token: only a hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Unique name; connections name it in their `agent` field.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}
