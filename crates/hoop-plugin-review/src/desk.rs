//! The host interface of the review plugin: [`ReviewDesk`], which the gateway implements over
//! its database, and the records it exchanges with the plugin.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use hoop_core::Verb;
use sha2::{Digest as _, Sha256};

/// What the review plugin needs from its host (the gateway implements it over its database).
///
/// Every method may fail with [`DeskError::Unavailable`] (e.g. the database is down): the
/// plugin then fails the session closed.
#[async_trait]
pub trait ReviewDesk: Send + Sync + fmt::Debug + 'static {
    /// Creates a PENDING review and returns it.
    ///
    /// The host gives it an id, keeps the requester, connection, input (and its hash, which
    /// the plugin computed: store [`NewReview::input_sha256`] as is), arguments, reviewer
    /// groups and the policy (`min_approvals`, `access_duration`), and notifies reviewers.
    async fn create(&self, request: NewReview) -> Result<ReviewRecord, DeskError>;

    /// The review with this id, or `None`.
    async fn get(&self, id: &str) -> Result<Option<ReviewRecord>, DeskError>;

    /// Marks an APPROVED one-time review EXECUTED by `session_id` and returns it.
    ///
    /// Exactly one caller wins: a compare-and-set from APPROVED to EXECUTED. Any other
    /// caller gets [`DeskError::Conflict`] saying the review's current status, and
    /// [`DeskError::NotFound`] if there is no such review.
    async fn claim(&self, id: &str, session_id: &str) -> Result<ReviewRecord, DeskError>;

    /// The user's active time-based grant on the connection, if any: an APPROVED
    /// [`ReviewKind::Jit`] review of `user` on `connection` whose
    /// [`grant_ends_at`](ReviewRecord::grant_ends_at) is in the future.
    async fn active_grant(
        &self,
        user: &str,
        connection: &str,
    ) -> Result<Option<ReviewRecord>, DeskError>;

    /// Every active time-based grant of the user on the connection (as
    /// [`active_grant`](Self::active_grant) finds them), the one ending last first: a grant
    /// lets in only sessions with the arguments it was approved for, so the plugin looks for
    /// the one whose arguments match.
    ///
    /// The default returns what [`active_grant`](Self::active_grant) finds.
    async fn active_grants(
        &self,
        user: &str,
        connection: &str,
    ) -> Result<Vec<ReviewRecord>, DeskError> {
        Ok(self
            .active_grant(user, connection)
            .await?
            .into_iter()
            .collect())
    }

    /// Expires, as of now, every review whose deadline passed: PENDING past its TTL,
    /// APPROVED one-time reviews not run within the TTL of their approval, and APPROVED
    /// time-based reviews whose grant ended. Returns them. Each review is expired at most
    /// once, also when several hosts share the desk.
    ///
    /// The default expires nothing (a desk whose reviews never expire).
    async fn expire_due(&self) -> Result<Vec<ReviewRecord>, DeskError> {
        Ok(Vec::new())
    }

    /// When [`expire_due`](Self::expire_due) next has something to do, if ever.
    async fn next_deadline(&self) -> Result<Option<SystemTime>, DeskError> {
        Ok(None)
    }
}

/// The resource the host provides in [`hoop_core::Resources`]: where reviews live.
///
/// Building the plugin without it is a configuration error: a connection with reviewers
/// never runs sessions unreviewed.
#[derive(Debug, Clone)]
pub struct Reviews(pub Arc<dyn ReviewDesk>);

/// A failure of the [`ReviewDesk`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeskError {
    /// The review is not in the state the operation needs (e.g. a claim of a review that is
    /// not APPROVED, or already EXECUTED); the message says its current status.
    #[error("conflict: {0}")]
    Conflict(String),
    /// No review has this id.
    #[error("no review `{0}`")]
    NotFound(String),
    /// The desk could not answer (e.g. the database is unreachable).
    #[error("review desk unavailable: {0}")]
    Unavailable(String),
    /// The requester may not ask for another review now (e.g. they have as many pending
    /// reviews as the host allows); the message says which limit. The plugin denies the
    /// session with it.
    #[error("{0}")]
    LimitReached(String),
}

/// What kind of access a review grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewKind {
    /// One `exec` of exactly the reviewed input and arguments.
    OneTime,
    /// Time-based (just in time): `connect` sessions on the connection until the grant ends.
    Jit,
}

impl ReviewKind {
    /// The kind as an upper-case word (`ONE_TIME`, `JIT`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewKind::OneTime => "ONE_TIME",
            ReviewKind::Jit => "JIT",
        }
    }
}

impl fmt::Display for ReviewKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewStatus {
    /// Waiting for reviewers.
    Pending,
    /// Approved: a one-time review may run once, a time-based one grants access until
    /// [`ReviewRecord::grant_ends_at`].
    Approved,
    /// A reviewer rejected it.
    Rejected,
    /// Someone withdrew it (or the access it granted).
    Revoked,
    /// Nobody decided in time, or the grant ended.
    Expired,
    /// A one-time review that ran (in [`ReviewRecord::session_id`]).
    Executed,
}

impl ReviewStatus {
    /// The status as an upper-case word (`PENDING`, `APPROVED`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "PENDING",
            ReviewStatus::Approved => "APPROVED",
            ReviewStatus::Rejected => "REJECTED",
            ReviewStatus::Revoked => "REVOKED",
            ReviewStatus::Expired => "EXPIRED",
            ReviewStatus::Executed => "EXECUTED",
        }
    }
}

impl fmt::Display for ReviewStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A review the plugin asks the desk to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReview {
    /// One-time (`exec`) or time-based (`connect`).
    pub kind: ReviewKind,
    /// The connection's name.
    pub connection: String,
    /// The requesting user's name.
    pub requester: String,
    /// The session that asked (it is held until the review is decided).
    pub session_id: String,
    /// How the session uses the connection.
    pub verb: Verb,
    /// The exact input of an `exec` (`None` for `connect`).
    pub input: Option<Bytes>,
    /// Lower-case hex SHA-256 of `input` (of the empty input when an `exec` has none);
    /// `None` for `connect`. Store it as is: tickets are checked against it.
    pub input_sha256: Option<String>,
    /// The arguments appended to the connection's command.
    pub args: Vec<String>,
    /// Groups whose members may approve.
    pub groups: Vec<String>,
    /// How many approving decisions the review needs, if the connection says (the host's
    /// default otherwise).
    pub min_approvals: Option<u32>,
    /// For time-based reviews: how long the access lasts once approved.
    pub access_duration: Option<Duration>,
}

/// A reviewer's decision on a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The reviewer's user name.
    pub reviewer: String,
    /// The reviewer group the reviewer decided for.
    pub group: String,
    /// Whether they approved (`false`: rejected).
    pub approved: bool,
    /// Why, if they said.
    pub reason: Option<String>,
    /// When.
    pub decided_at: SystemTime,
}

/// A review as the desk keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRecord {
    /// Its id (what clients present as a ticket).
    pub id: String,
    /// One-time or time-based.
    pub kind: ReviewKind,
    /// Where it stands.
    pub status: ReviewStatus,
    /// The connection's name.
    pub connection: String,
    /// The requesting user's name.
    pub requester: String,
    /// Lower-case hex SHA-256 of the reviewed input (one-time reviews).
    pub input_sha256: Option<String>,
    /// The reviewed arguments: what a one-time review runs with, and what the sessions under
    /// a time-based grant must have.
    pub args: Vec<String>,
    /// Groups whose members may approve.
    pub groups: Vec<String>,
    /// The reviewers' decisions, in the order they were made.
    pub decisions: Vec<Decision>,
    /// Why it ended as it did when no decision says it (e.g. why it was revoked), if known.
    pub reason: Option<String>,
    /// Who revoked it, if it was revoked.
    pub revoked_by: Option<String>,
    /// When the access of an approved time-based review ends.
    pub grant_ends_at: Option<SystemTime>,
    /// The session that ran an EXECUTED one-time review.
    pub session_id: Option<String>,
}

impl ReviewRecord {
    /// The approving decisions as `user (group)`, comma-separated (what the session
    /// attribute [`APPROVED_BY_ATTRIBUTE`](crate::APPROVED_BY_ATTRIBUTE) holds).
    pub fn approved_by(&self) -> String {
        self.decisions_by(true)
    }

    fn decisions_by(&self, approved: bool) -> String {
        self.decisions
            .iter()
            .filter(|d| d.approved == approved)
            .map(|d| format!("{} ({})", d.reviewer, d.group))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Why the review does not (or no longer) let a session in, in words naming who decided:
    /// `review abc was rejected by bob (dba): not during business hours`.
    pub fn refusal(&self) -> String {
        let id = &self.id;
        match self.status {
            ReviewStatus::Rejected => {
                let rejections: Vec<String> = self
                    .decisions
                    .iter()
                    .filter(|d| !d.approved)
                    .map(|d| match &d.reason {
                        Some(reason) if !reason.is_empty() => {
                            format!("{} ({}): {reason}", d.reviewer, d.group)
                        }
                        _ => format!("{} ({})", d.reviewer, d.group),
                    })
                    .collect();
                if rejections.is_empty() {
                    with_reason(format!("review {id} was rejected"), self.reason.as_deref())
                } else {
                    format!("review {id} was rejected by {}", rejections.join("; "))
                }
            }
            ReviewStatus::Revoked => {
                let head = match &self.revoked_by {
                    Some(by) => format!("review {id} was revoked by {by}"),
                    None => format!("review {id} was revoked"),
                };
                with_reason(head, self.reason.as_deref())
            }
            ReviewStatus::Expired => {
                with_reason(format!("review {id} expired"), self.reason.as_deref())
            }
            ReviewStatus::Executed => match &self.session_id {
                Some(session) => format!("review {id} already ran (session {session})"),
                None => format!("review {id} already ran"),
            },
            ReviewStatus::Pending => format!("review {id} is PENDING, not APPROVED"),
            ReviewStatus::Approved => match (self.kind, self.grant_ends_at) {
                (ReviewKind::Jit, Some(ends)) => format!(
                    "the access granted by review {id} ended at {}",
                    humantime::format_rfc3339_seconds(ends)
                ),
                (ReviewKind::Jit, None) => {
                    format!("review {id} is APPROVED but grants no access period")
                }
                (ReviewKind::OneTime, _) => format!("review {id} is APPROVED"),
            },
        }
    }
}

fn with_reason(head: String, reason: Option<&str>) -> String {
    match reason {
        Some(reason) if !reason.is_empty() => format!("{head}: {reason}"),
        _ => head,
    }
}

/// Lower-case hex SHA-256 of `data`: how inputs are compared with reviewed inputs.
pub fn input_sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(HEX[usize::from(byte >> 4)]);
        hex.push(HEX[usize::from(byte & 0x0f)]);
    }
    hex
}

const HEX: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            input_sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
