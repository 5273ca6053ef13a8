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
    /// Distinct approving reviewers that approve a review; `None` means one approval from
    /// each reviewer group.
    pub min_approvals: Option<u32>,
    /// Longest a review may stay pending before it expires; `None` means the gateway's
    /// default (24 hours).
    pub review_ttl: Option<std::time::Duration>,
    /// Longest just-in-time access a user may ask for; `None` means the gateway's default
    /// (4 hours).
    pub access_max_duration: Option<std::time::Duration>,
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
            min_approvals: None,
            review_ttl: None,
            access_max_duration: None,
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

/// What a review grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewKind {
    /// One execution of an exact input (`exec`); executed at most once once approved.
    OneTime,
    /// Just-in-time access (`connect`) for a duration from the approval.
    Jit,
}

impl ReviewKind {
    /// The stored name: `onetime` or `jit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneTime => "onetime",
            Self::Jit => "jit",
        }
    }
}

impl std::fmt::Display for ReviewKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ReviewKind {
    type Err = String;

    /// Parses a stored name (`onetime` or `jit`, case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "onetime" => Ok(Self::OneTime),
            "jit" => Ok(Self::Jit),
            _ => Err(format!(
                "unknown review kind `{s}` (expected onetime or jit)"
            )),
        }
    }
}

/// Where a review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewStatus {
    /// Waiting for reviewers.
    Pending,
    /// Approved: a one-time review may run once; a JIT review grants access until its
    /// grant ends.
    Approved,
    /// A reviewer rejected it.
    Rejected,
    /// Revoked after approval (or withdrawn while pending).
    Revoked,
    /// Pending longer than the connection's review TTL, or a JIT grant that ended.
    Expired,
    /// A one-time review that ran.
    Executed,
}

impl ReviewStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Revoked,
        Self::Expired,
        Self::Executed,
    ];

    /// The stored name, upper case (`PENDING`, `APPROVED`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Revoked => "REVOKED",
            Self::Expired => "EXPIRED",
            Self::Executed => "EXECUTED",
        }
    }

    /// Whether no transition leaves this status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Revoked | Self::Expired | Self::Executed
        )
    }
}

impl std::fmt::Display for ReviewStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ReviewStatus {
    type Err = String;

    /// Parses a status name (`PENDING`, …, case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown review status `{s}` (expected PENDING, APPROVED, REJECTED, \
                     REVOKED, EXPIRED or EXECUTED)"
                )
            })
    }
}

/// A review: a session held until reviewers approve it, with the decisions so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Identifier (a UUID).
    pub id: String,
    /// One-time or just-in-time.
    pub kind: ReviewKind,
    /// Where it stands.
    pub status: ReviewStatus,
    /// Connection name (kept after the connection is deleted).
    pub connection: String,
    /// Who asked.
    pub requester: String,
    /// `exec` (one-time) or `connect` (JIT).
    pub verb: String,
    /// The exact input to run (one-time); `None` for JIT.
    pub input: Option<Vec<u8>>,
    /// Hex SHA-256 of `input`, when there is one.
    pub input_sha256: Option<String>,
    /// The exact arguments to run with.
    pub args: Vec<String>,
    /// Reviewer groups at request time.
    pub groups: Vec<String>,
    /// Distinct approving reviewers that approve it; `None` means one per group.
    pub min_approvals: Option<u32>,
    /// Access asked for (JIT).
    pub access_duration: Option<std::time::Duration>,
    /// Why it was rejected, revoked or expired.
    pub reason: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it expires if still pending.
    pub expires_at: DateTime<Utc>,
    /// When it was approved or rejected.
    pub decided_at: Option<DateTime<Utc>>,
    /// When the access it grants ends (JIT, once approved): `decided_at` + the duration.
    pub grant_ends_at: Option<DateTime<Utc>>,
    /// The session that executed it (one-time) or the first session under it (JIT).
    pub session_id: Option<String>,
    /// The decisions so far, oldest first.
    pub decisions: Vec<ReviewDecision>,
}

/// One reviewer's decision on a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewDecision {
    /// The reviewer (a user name).
    pub reviewer: String,
    /// The reviewer group they decided for.
    pub group: String,
    /// Approved (`true`) or rejected.
    pub approved: bool,
    /// Their comment.
    pub reason: Option<String>,
    /// When they decided.
    pub decided_at: DateTime<Utc>,
}

/// A review to create; it starts `PENDING`. The store picks its id and hashes its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReview {
    /// One-time or just-in-time.
    pub kind: ReviewKind,
    /// Connection name.
    pub connection: String,
    /// Who asks.
    pub requester: String,
    /// `exec` (one-time) or `connect` (JIT).
    pub verb: String,
    /// The exact input to run (one-time).
    pub input: Option<Vec<u8>>,
    /// The exact arguments to run with.
    pub args: Vec<String>,
    /// Reviewer groups (the connection's, now).
    pub groups: Vec<String>,
    /// Distinct approving reviewers that approve it; `None` means one per group.
    pub min_approvals: Option<u32>,
    /// Access asked for; required for JIT reviews.
    pub access_duration: Option<std::time::Duration>,
    /// When it is asked for.
    pub created_at: DateTime<Utc>,
    /// When it expires if still pending (`created_at` + the connection's review TTL).
    pub expires_at: DateTime<Utc>,
}

/// A reviewer's decision to record with
/// [`Store::decide_review`](crate::Store::decide_review).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDecision {
    /// The reviewer (a user name).
    pub reviewer: String,
    /// The reviewer group they decide for.
    pub group: String,
    /// Approve (`true`) or reject.
    pub approved: bool,
    /// Their comment; becomes the review's reason on a rejection.
    pub reason: Option<String>,
    /// When they decide.
    pub at: DateTime<Utc>,
}

/// When approvals approve a review.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalRule {
    /// Groups that must each approve (when `min_approvals` is `None`).
    pub groups: Vec<String>,
    /// Distinct approving reviewers that suffice, whatever their groups.
    pub min_approvals: Option<u32>,
}

impl ApprovalRule {
    /// The rule a review was created with: its groups and its `min_approvals`.
    pub fn of(review: &Review) -> Self {
        Self {
            groups: review.groups.clone(),
            min_approvals: review.min_approvals,
        }
    }

    /// Whether `decisions` (all of them approvals or not) satisfy the rule: enough distinct
    /// approving reviewers, or an approval for every group.
    pub fn is_satisfied_by(&self, decisions: &[ReviewDecision]) -> bool {
        let approvals = decisions.iter().filter(|d| d.approved);
        match self.min_approvals {
            Some(n) => {
                let reviewers: std::collections::BTreeSet<&str> =
                    approvals.map(|d| d.reviewer.as_str()).collect();
                reviewers.len() >= usize::try_from(n).unwrap_or(usize::MAX)
            }
            None => {
                let groups: std::collections::BTreeSet<&str> =
                    approvals.map(|d| d.group.as_str()).collect();
                self.groups.iter().all(|g| groups.contains(g.as_str()))
            }
        }
    }
}

/// Filters of a review listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewFilter {
    /// Only this status.
    pub status: Option<ReviewStatus>,
    /// Only this connection.
    pub connection: Option<String>,
    /// Only this requester.
    pub requester: Option<String>,
    /// Only `PENDING` reviews with at least one of these groups among their groups (what a
    /// reviewer in these groups may decide). An empty list matches nothing.
    pub awaiting_groups: Option<Vec<String>>,
    /// Leave out the reviews this user already decided.
    pub exclude_decided_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_statuses_and_kinds_parse_their_names() {
        for status in ReviewStatus::ALL {
            assert_eq!(status.as_str().parse::<ReviewStatus>(), Ok(status));
            assert_eq!(
                status.as_str().to_lowercase().parse::<ReviewStatus>(),
                Ok(status)
            );
        }
        assert!("DONE".parse::<ReviewStatus>().is_err());
        for kind in [ReviewKind::OneTime, ReviewKind::Jit] {
            assert_eq!(kind.as_str().parse::<ReviewKind>(), Ok(kind));
        }
        assert!("once".parse::<ReviewKind>().is_err());
    }

    #[test]
    fn approval_rules() {
        let decision = |reviewer: &str, group: &str, approved: bool| ReviewDecision {
            reviewer: reviewer.into(),
            group: group.into(),
            approved,
            reason: None,
            decided_at: Utc::now(),
        };
        let all = ApprovalRule {
            groups: vec!["dba".into(), "sre".into()],
            min_approvals: None,
        };
        let two = ApprovalRule {
            min_approvals: Some(2),
            ..all.clone()
        };
        let dba_twice = [decision("a", "dba", true), decision("b", "dba", true)];
        assert!(!all.is_satisfied_by(&dba_twice));
        assert!(two.is_satisfied_by(&dba_twice));
        let with_rejection = [decision("a", "dba", true), decision("b", "sre", false)];
        assert!(!all.is_satisfied_by(&with_rejection));
        assert!(!two.is_satisfied_by(&with_rejection));
        assert!(all.is_satisfied_by(&[decision("a", "dba", true), decision("b", "sre", true)]));
    }
}
