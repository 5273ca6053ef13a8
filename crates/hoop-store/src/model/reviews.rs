//! Access reviews and their decisions.

use chrono::{DateTime, Utc};

/// Most bytes of a review's input in its [`Review::input_preview`]: 1 KiB.
pub const INPUT_PREVIEW_BYTES: usize = 1024;

/// The preview of an input: its first [`INPUT_PREVIEW_BYTES`] bytes, cut back to the last
/// whole character when they end inside a UTF-8 sequence (so the preview of a text is text).
/// An input that is not UTF-8 is cut at the byte.
pub fn input_preview(input: &[u8]) -> Vec<u8> {
    preview_of_head(input, input.len())
}

/// The preview of an input of `size` bytes from its first bytes `head` (at least the first
/// [`INPUT_PREVIEW_BYTES`], or all of it).
pub(crate) fn preview_of_head(head: &[u8], size: usize) -> Vec<u8> {
    let head = head.get(..INPUT_PREVIEW_BYTES).unwrap_or(head);
    match std::str::from_utf8(head) {
        // Invalid only in a sequence the cut left incomplete: drop that sequence.
        Err(e) if e.error_len().is_none() && head.len() < size => head[..e.valid_up_to()].to_vec(),
        _ => head.to_vec(),
    }
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
    /// The exact input to run (one-time); `None` for JIT, and in listings
    /// ([`Store::list_reviews`](crate::Store::list_reviews) returns
    /// [`input_preview`](Self::input_preview) and [`input_size`](Self::input_size) only).
    pub input: Option<Vec<u8>>,
    /// Hex SHA-256 of the input, when there is one.
    pub input_sha256: Option<String>,
    /// Size of the input in bytes, when there is one.
    pub input_size: Option<u64>,
    /// The input's first bytes, at most [`INPUT_PREVIEW_BYTES`], when there is one (see
    /// [`input_preview`]).
    pub input_preview: Option<Vec<u8>>,
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
    fn previews_are_a_kib_cut_at_a_character() {
        assert_eq!(input_preview(b"select 1;"), b"select 1;");
        let long = "x".repeat(2000);
        assert_eq!(input_preview(long.as_bytes()), &long.as_bytes()[..1024]);
        // 1023 ASCII bytes then `é` (2 bytes): the cut would split it, so it goes.
        let text = format!("{}é and more", "a".repeat(1023));
        assert_eq!(input_preview(text.as_bytes()), "a".repeat(1023).as_bytes());
        // Not UTF-8: cut at the byte.
        let binary = vec![0xff_u8; 1500];
        assert_eq!(input_preview(&binary).len(), 1024);
        // An input that ends inside a sequence is not cut: it is shown as it is.
        assert_eq!(input_preview(&[b'a', 0xc3]), [b'a', 0xc3]);
    }

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
