//! The decision rules of reviews: who sees a review, which group a user decides it for, who
//! may revoke it, and what a reason may be.
//!
//! The rules are pure: they look at a user ([`UserInfo`]: name and groups) and a review
//! ([`ReviewSubject`]: id, requester and reviewer groups) and answer with a [`RuleError`]
//! saying why not. Hosts (the gateway's `ReviewService`) map the errors to their own
//! answers; whatever else a host hides (e.g. connections hidden by `access_control`) it
//! checks before asking these rules.
//!
//! * **Who sees a review** ([`visible`]): its requester, the members of any of its groups,
//!   and members of [`READ_ALL_GROUPS`] (`admin`, `auditor`). To anyone else it does not
//!   exist ([`RuleError::NotVisible`]): hosts answer exactly what they answer for an id
//!   there is no review of, so neither its existence nor its groups leak.
//! * **Who decides** ([`decision_group`]): members of one of its groups other than the
//!   requester (admins too, but only as group members), each for one group.
//! * **Who revokes** ([`may_revoke`]): its requester, a member of one of its groups, or an
//!   admin ([`ADMIN_GROUP`]).
//! * **Reasons** ([`check_reason`]): trimmed, at most [`MAX_REASON_BYTES`]; required to
//!   reject.

use hoop_core::UserInfo;

use crate::desk::ReviewRecord;

/// The group that manages everything: its members may revoke any review they see.
pub const ADMIN_GROUP: &str = "admin";
/// Groups whose members see every review.
pub const READ_ALL_GROUPS: &[&str] = &[ADMIN_GROUP, "auditor"];
/// The longest reason a reviewer or revoker may give, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;

/// What the rules look at of a review: its id, its requester and its reviewer groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewSubject<'a> {
    /// The review's id.
    pub id: &'a str,
    /// The name of the user who asked for it.
    pub requester: &'a str,
    /// The groups whose members may decide it.
    pub groups: &'a [String],
}

impl<'a> ReviewSubject<'a> {
    /// The review `id` asked for by `requester`, decided by members of `groups`.
    pub fn new(id: &'a str, requester: &'a str, groups: &'a [String]) -> Self {
        Self {
            id,
            requester,
            groups,
        }
    }
}

impl<'a> From<&'a ReviewRecord> for ReviewSubject<'a> {
    fn from(review: &'a ReviewRecord) -> Self {
        Self::new(&review.id, &review.requester, &review.groups)
    }
}

/// Approve or reject: what a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// The reviewer approves.
    Approve,
    /// The reviewer rejects.
    Reject,
}

impl DecisionKind {
    /// The verb, as messages say it (`approve`, `reject`).
    pub fn verb(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approve",
            DecisionKind::Reject => "reject",
        }
    }
}

/// Why a rule refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The user may not see the review: to them it does not exist. Hosts answer exactly
    /// what they answer for a review there is none of.
    #[error("review `{id}` not found")]
    NotVisible {
        /// The review's id.
        id: String,
    },
    /// The user sees the review but may not do what they ask; the message says why.
    #[error("{0}")]
    PermissionDenied(String),
    /// A value of the request breaks a rule: `field` names it, `message` says the rule.
    #[error("{field}: {message}")]
    Invalid {
        /// The request field at fault (e.g. `reason`, `group`).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// Whether `user` reads every review: a member of one of [`READ_ALL_GROUPS`].
pub fn reads_all(user: &UserInfo) -> bool {
    READ_ALL_GROUPS.iter().any(|g| user.in_group(g))
}

/// The review's groups `user` is a member of, in the review's order.
pub fn member_groups<'r>(user: &UserInfo, review: ReviewSubject<'r>) -> Vec<&'r str> {
    review
        .groups
        .iter()
        .filter(|g| user.in_group(g))
        .map(String::as_str)
        .collect()
}

/// Whether `user` may see `review`: theirs, one of their groups may decide it, or they read
/// everything ([`reads_all`]).
///
/// # Errors
/// [`RuleError::NotVisible`] to anyone else.
pub fn visible(user: &UserInfo, review: ReviewSubject<'_>) -> Result<(), RuleError> {
    if review.requester == user.name || !member_groups(user, review).is_empty() || reads_all(user) {
        Ok(())
    } else {
        Err(RuleError::NotVisible {
            id: review.id.to_owned(),
        })
    }
}

/// The group `user` decides `review` for: `asked` if not empty (it must be one of the
/// review's groups and the user a member of it), else the one review group the user is in.
///
/// # Errors
/// In the order checked:
/// * [`RuleError::NotVisible`] if the user may not see the review ([`visible`]);
/// * [`RuleError::PermissionDenied`] if the user requested it (requesters cannot decide
///   their own request), if `asked` is not one of its groups or the user is not a member of
///   it, or if the user is in none of its groups;
/// * [`RuleError::Invalid`] (field `group`) if the user is in several of its groups and
///   `asked` is empty: they must say which one.
pub fn decision_group(
    user: &UserInfo,
    review: ReviewSubject<'_>,
    asked: &str,
    kind: DecisionKind,
) -> Result<String, RuleError> {
    visible(user, review)?;
    let me = &user.name;
    if review.requester == *me {
        return Err(RuleError::PermissionDenied(match kind {
            DecisionKind::Approve => "requesters cannot approve their own request".to_owned(),
            DecisionKind::Reject => {
                "requesters cannot reject their own request: revoke it instead".to_owned()
            }
        }));
    }
    let verb = kind.verb();
    let id = review.id;
    let groups = review.groups.join(", ");
    if !asked.is_empty() {
        if !review.groups.iter().any(|g| g == asked) {
            return Err(RuleError::PermissionDenied(format!(
                "group `{asked}` does not review review `{id}` (its groups: {groups})"
            )));
        }
        if !user.in_group(asked) {
            return Err(RuleError::PermissionDenied(format!(
                "user `{me}` is not a member of group `{asked}`"
            )));
        }
        return Ok(asked.to_owned());
    }
    match member_groups(user, review).as_slice() {
        [] => Err(RuleError::PermissionDenied(format!(
            "only members of the review's groups ({groups}) may {verb} review `{id}`; user \
             `{me}` is in none of them"
        ))),
        [one] => Ok((*one).to_owned()),
        several => Err(RuleError::Invalid {
            field: "group",
            message: format!(
                "user `{me}` is in several of the review's groups ({}): say which one to \
                 {verb} for",
                several.join(", ")
            ),
        }),
    }
}

/// Whether `user` may revoke `review`: its requester, a member of one of its groups, or an
/// admin.
///
/// # Errors
/// [`RuleError::NotVisible`] if the user may not see the review ([`visible`]), else
/// [`RuleError::PermissionDenied`] saying who may.
pub fn may_revoke(user: &UserInfo, review: ReviewSubject<'_>) -> Result<(), RuleError> {
    visible(user, review)?;
    if review.requester == user.name
        || !member_groups(user, review).is_empty()
        || user.in_group(ADMIN_GROUP)
    {
        return Ok(());
    }
    Err(RuleError::PermissionDenied(format!(
        "only the requester, members of the review's groups ({}) and admins may revoke \
         review `{}`",
        review.groups.join(", "),
        review.id
    )))
}

/// Checks the reason given to approve, reject or revoke and returns it trimmed.
///
/// # Errors
/// [`RuleError::Invalid`] (field `reason`) if it is `required` (to reject) and empty, or
/// longer than [`MAX_REASON_BYTES`].
pub fn check_reason(reason: &str, required: bool) -> Result<&str, RuleError> {
    let reason = reason.trim();
    if required && reason.is_empty() {
        return Err(RuleError::Invalid {
            field: "reason",
            message: "required: tell the requester why the review is rejected".to_owned(),
        });
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(RuleError::Invalid {
            field: "reason",
            message: format!("at most {MAX_REASON_BYTES} bytes"),
        });
    }
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo::new(name).with_groups(groups.iter().copied())
    }

    fn groups(groups: &[&str]) -> Vec<String> {
        groups.iter().map(|g| (*g).to_owned()).collect()
    }

    fn review(groups: &[String]) -> ReviewSubject<'_> {
        ReviewSubject::new("r1", "alice", groups)
    }

    #[test]
    fn visibility_follows_requester_groups_and_readers() {
        let g = groups(&["dba", "sre"]);
        let r = review(&g);
        assert_eq!(visible(&user("alice", &["dev"]), r), Ok(()));
        assert_eq!(visible(&user("bob", &["sre"]), r), Ok(()));
        assert_eq!(visible(&user("ann", &["auditor"]), r), Ok(()));
        assert_eq!(visible(&user("root", &["admin"]), r), Ok(()));
        assert_eq!(
            visible(&user("carol", &["dev"]), r),
            Err(RuleError::NotVisible { id: "r1".into() })
        );
        assert!(reads_all(&user("ann", &["dev", "auditor"])));
        assert!(!reads_all(&user("carol", &["dev", "auditors"])));
    }

    #[test]
    fn the_decision_group_is_the_one_the_caller_is_in_or_the_one_named() {
        let g = groups(&["dba", "sre"]);
        let r = review(&g);
        let approve = DecisionKind::Approve;
        let bob = user("bob", &["dba", "dev"]);
        assert_eq!(decision_group(&bob, r, "", approve).unwrap(), "dba");
        assert_eq!(decision_group(&bob, r, "dba", approve).unwrap(), "dba");
        assert!(matches!(
            decision_group(&bob, r, "sre", approve),
            Err(RuleError::PermissionDenied(m)) if m == "user `bob` is not a member of group `sre`"
        ));
        assert!(matches!(
            decision_group(&bob, r, "dev", approve),
            Err(RuleError::PermissionDenied(m))
                if m == "group `dev` does not review review `r1` (its groups: dba, sre)"
        ));
        let both = user("dan", &["sre", "dba"]);
        assert!(matches!(
            decision_group(&both, r, "", approve),
            Err(RuleError::Invalid { field, message })
                if field == "group" && message.contains("(dba, sre)")
                    && message.ends_with("say which one to approve for")
        ));
        assert_eq!(
            decision_group(&both, r, "sre", DecisionKind::Reject).unwrap(),
            "sre"
        );
        let admin = user("root", &["admin"]);
        assert_eq!(
            decision_group(&admin, r, "", approve),
            Err(RuleError::PermissionDenied(
                "only members of the review's groups (dba, sre) may approve review `r1`; user \
                 `root` is in none of them"
                    .to_owned()
            ))
        );
    }

    #[test]
    fn requesters_do_not_decide_their_own_and_outsiders_see_nothing() {
        let g = groups(&["dba"]);
        let r = review(&g);
        let alice = user("alice", &["dba"]);
        assert_eq!(
            decision_group(&alice, r, "", DecisionKind::Approve),
            Err(RuleError::PermissionDenied(
                "requesters cannot approve their own request".to_owned()
            ))
        );
        assert_eq!(
            decision_group(&alice, r, "dba", DecisionKind::Reject),
            Err(RuleError::PermissionDenied(
                "requesters cannot reject their own request: revoke it instead".to_owned()
            ))
        );
        // Visibility comes first: an outsider learns nothing, not even the groups.
        let carol = user("carol", &["dev"]);
        for kind in [DecisionKind::Approve, DecisionKind::Reject] {
            assert_eq!(
                decision_group(&carol, r, "dba", kind),
                Err(RuleError::NotVisible { id: "r1".into() })
            );
        }
        assert_eq!(
            may_revoke(&carol, r),
            Err(RuleError::NotVisible { id: "r1".into() })
        );
    }

    #[test]
    fn requesters_members_and_admins_revoke_auditors_do_not() {
        let g = groups(&["dba", "sre"]);
        let r = review(&g);
        assert_eq!(may_revoke(&user("alice", &[]), r), Ok(()));
        assert_eq!(may_revoke(&user("bob", &["sre"]), r), Ok(()));
        assert_eq!(may_revoke(&user("root", &["admin"]), r), Ok(()));
        assert_eq!(
            may_revoke(&user("ann", &["auditor"]), r),
            Err(RuleError::PermissionDenied(
                "only the requester, members of the review's groups (dba, sre) and admins may \
                 revoke review `r1`"
                    .to_owned()
            ))
        );
    }

    #[test]
    fn reasons_are_checked() {
        assert!(matches!(
            check_reason("  ", true),
            Err(RuleError::Invalid {
                field: "reason",
                ..
            })
        ));
        assert_eq!(check_reason(" fine ", true).unwrap(), "fine");
        assert_eq!(check_reason("", false).unwrap(), "");
        assert_eq!(
            check_reason(&"x".repeat(MAX_REASON_BYTES + 1), false),
            Err(RuleError::Invalid {
                field: "reason",
                message: format!("at most {MAX_REASON_BYTES} bytes"),
            })
        );
        assert_eq!(
            RuleError::Invalid {
                field: "reason",
                message: "at most 4096 bytes".into()
            }
            .to_string(),
            "reason: at most 4096 bytes"
        );
    }

    #[test]
    fn a_record_is_a_subject() {
        let record = crate::ReviewRecord {
            id: "r9".into(),
            kind: crate::ReviewKind::OneTime,
            status: crate::ReviewStatus::Pending,
            connection: "pg".into(),
            requester: "alice".into(),
            input_sha256: None,
            args: Vec::new(),
            groups: groups(&["dba", "sre"]),
            decisions: Vec::new(),
            reason: None,
            revoked_by: None,
            grant_ends_at: None,
            session_id: None,
        };
        let subject = ReviewSubject::from(&record);
        assert_eq!(subject, ReviewSubject::new("r9", "alice", &record.groups));
        assert_eq!(
            member_groups(&user("bob", &["sre", "dba"]), subject),
            ["dba", "sre"]
        );
    }
}
