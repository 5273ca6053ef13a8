//! Reviews (access requests) on the gateway's side: the [`ReviewDesk`] the `review` plugin
//! keeps its reviews in ([`StoreDesk`], over the store). Every change of a review appends its
//! event to the durable event log in the same transaction (the store does that); the plugin
//! reads the log to wake held sessions and end sessions under revoked or expired grants, and
//! runs the expiry task through [`ReviewDesk::expire_due`].
//!
//! Who revoked a review is kept in its reason: RevokeReview writes `revoked by <user>` or
//! `revoked by <user>: <why>` (user names have no `:`), and [`record`] reads it back into
//! [`ReviewRecord::revoked_by`] and [`ReviewRecord::reason`].

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SubsecRound as _, Utc};
use hoop_plugin_review::{
    Decision, DeskError, NewReview, ReviewDesk, ReviewKind as DeskKind, ReviewRecord,
    ReviewStatus as DeskStatus,
};
use hoop_store::{Review, ReviewKind, ReviewStatus, Store, StoreError};

/// How long a review may stay pending when its connection does not say.
pub(crate) const DEFAULT_REVIEW_TTL: Duration = Duration::from_secs(24 * 3600);

/// The review desk over the store: what the `review` plugin creates, reads and claims
/// reviews through.
#[derive(Debug, Clone)]
pub(crate) struct StoreDesk {
    store: Store,
}

impl StoreDesk {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }
}

/// A store failure as the desk reports it: conflicts and missing reviews as such, anything
/// else (logged) as unavailable.
fn desk_error(err: StoreError, doing: &str) -> DeskError {
    match err {
        StoreError::Conflict(message) => DeskError::Conflict(message),
        StoreError::NotFound { name, .. } => DeskError::NotFound(name),
        StoreError::LimitReached { message, .. } => DeskError::LimitReached(message),
        other => {
            tracing::error!(error = %other, "review desk: {doing} failed");
            DeskError::Unavailable(format!("{doing}: {other}"))
        }
    }
}

fn to_chrono(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

#[async_trait::async_trait]
impl ReviewDesk for StoreDesk {
    async fn create(&self, request: NewReview) -> Result<ReviewRecord, DeskError> {
        let connection = self
            .store
            .get_connection(&request.connection, false)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => DeskError::Unavailable(format!(
                    "connection `{}` no longer exists",
                    request.connection
                )),
                other => desk_error(other, "reading the connection"),
            })?;
        let ttl = connection.review_ttl.unwrap_or(DEFAULT_REVIEW_TTL);
        // The store hashes the input itself, as the plugin did: the same SHA-256, lower-case
        // hex. Check that the plugin's hash is of this input, so tickets compared against
        // the stored hash compare against what the plugin computed.
        let input = request.input.as_ref().map(|b| b.to_vec());
        let computed = input.as_deref().map(hoop_plugin_review::input_sha256);
        if computed != request.input_sha256 {
            return Err(DeskError::Unavailable(
                "the review's input hash does not match its input".to_owned(),
            ));
        }
        // Whole milliseconds: what both databases keep.
        let now = Utc::now().trunc_subsecs(3);
        let new = hoop_store::NewReview {
            kind: match request.kind {
                DeskKind::OneTime => ReviewKind::OneTime,
                DeskKind::Jit => ReviewKind::Jit,
            },
            connection: request.connection.clone(),
            requester: request.requester.clone(),
            verb: request.verb.as_str().to_owned(),
            input,
            args: request.args,
            groups: request.groups,
            min_approvals: request.min_approvals,
            access_duration: request.access_duration,
            created_at: now,
            expires_at: now
                .checked_add_signed(to_chrono(ttl))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        let review = self
            .store
            .create_review(&new)
            .await
            .map_err(|e| desk_error(e, "creating a review"))?;
        if review.input_sha256 != computed {
            // Both sides hash the same way; if that ever changes, fail closed.
            tracing::error!(review = %review.id, "the store hashed a review's input differently");
            return Err(DeskError::Unavailable(
                "the stored input hash differs from the reviewed input's".to_owned(),
            ));
        }
        tracing::info!(
            review = %review.id,
            kind = %review.kind,
            requester = %review.requester,
            connection = %review.connection,
            session = %request.session_id,
            groups = ?review.groups,
            "review requested"
        );
        Ok(record(&review))
    }

    async fn get(&self, id: &str) -> Result<Option<ReviewRecord>, DeskError> {
        match self.store.get_review(id).await {
            Ok(review) => Ok(Some(record(&review))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(desk_error(e, "reading a review")),
        }
    }

    async fn claim(&self, id: &str, session_id: &str) -> Result<ReviewRecord, DeskError> {
        let current = self
            .store
            .get_review(id)
            .await
            .map_err(|e| desk_error(e, "reading a review"))?;
        if current.kind != ReviewKind::OneTime {
            return Err(DeskError::Conflict(format!(
                "review `{id}` is time-based: only one-time reviews are claimed"
            )));
        }
        let review = self
            .store
            .acting_as(&current.requester)
            .claim_review(id, session_id, Utc::now())
            .await
            .map_err(|e| desk_error(e, "claiming a review"))?;
        tracing::info!(review = %id, session = %session_id, "review executed");
        Ok(record(&review))
    }

    async fn active_grant(
        &self,
        user: &str,
        connection: &str,
    ) -> Result<Option<ReviewRecord>, DeskError> {
        self.store
            .active_grant(user, connection, Utc::now())
            .await
            .map(|grant| grant.as_ref().map(record))
            .map_err(|e| desk_error(e, "looking up a grant"))
    }

    async fn active_grants(
        &self,
        user: &str,
        connection: &str,
    ) -> Result<Vec<ReviewRecord>, DeskError> {
        self.store
            .active_grants(user, connection, Utc::now())
            .await
            .map(|grants| grants.iter().map(record).collect())
            .map_err(|e| desk_error(e, "looking up grants"))
    }

    async fn expire_due(&self) -> Result<Vec<ReviewRecord>, DeskError> {
        let expired = self
            .store
            .expire_reviews(Utc::now())
            .await
            .map_err(|e| desk_error(e, "expiring reviews"))?;
        Ok(expired.iter().map(record).collect())
    }

    async fn next_deadline(&self) -> Result<Option<SystemTime>, DeskError> {
        self.store
            .next_review_deadline()
            .await
            .map(|d| d.map(SystemTime::from))
            .map_err(|e| desk_error(e, "reading the next review deadline"))
    }
}

/// The reason RevokeReview records: who revoked, and why if they said.
pub(crate) fn revoked_reason(by: &str, why: &str) -> String {
    let why = why.trim();
    if why.is_empty() {
        format!("revoked by {by}")
    } else {
        format!("revoked by {by}: {why}")
    }
}

/// Who revoked a review and why, from a reason [`revoked_reason`] wrote.
fn parse_revoked(reason: &str) -> Option<(String, Option<String>)> {
    let rest = reason.strip_prefix("revoked by ")?;
    let (by, why) = match rest.split_once(": ") {
        Some((by, why)) => (by, Some(why.to_owned())),
        None => (rest, None),
    };
    if by.is_empty() || by.contains(char::is_whitespace) {
        return None;
    }
    Some((by.to_owned(), why))
}

/// A stored review as the plugin sees it.
pub(crate) fn record(review: &Review) -> ReviewRecord {
    let (revoked_by, reason) = match (&review.status, &review.reason) {
        (ReviewStatus::Revoked, Some(reason)) => match parse_revoked(reason) {
            Some((by, why)) => (Some(by), why),
            None => (None, Some(reason.clone())),
        },
        (_, reason) => (None, reason.clone()),
    };
    ReviewRecord {
        id: review.id.clone(),
        kind: match review.kind {
            ReviewKind::OneTime => DeskKind::OneTime,
            ReviewKind::Jit => DeskKind::Jit,
        },
        status: match review.status {
            ReviewStatus::Pending => DeskStatus::Pending,
            ReviewStatus::Approved => DeskStatus::Approved,
            ReviewStatus::Rejected => DeskStatus::Rejected,
            ReviewStatus::Revoked => DeskStatus::Revoked,
            ReviewStatus::Expired => DeskStatus::Expired,
            ReviewStatus::Executed => DeskStatus::Executed,
        },
        connection: review.connection.clone(),
        requester: review.requester.clone(),
        input_sha256: review.input_sha256.clone(),
        args: review.args.clone(),
        groups: review.groups.clone(),
        decisions: review
            .decisions
            .iter()
            .map(|d| Decision {
                reviewer: d.reviewer.clone(),
                group: d.group.clone(),
                approved: d.approved,
                reason: d.reason.clone(),
                decided_at: SystemTime::from(d.decided_at),
            })
            .collect(),
        reason,
        revoked_by,
        grant_ends_at: review.grant_ends_at.map(SystemTime::from),
        session_id: review.session_id.clone(),
    }
}

/// Reviews for plugins that let reviewers decide outside the API (the slack plugin's
/// buttons): [`hoop_core::ports::ReviewDecisions`] over exactly the code ApproveReview and
/// RejectReview run ([`crate::grpc::reviews::decide_as`]), acting as the hoop user the
/// plugin names, so the rules cannot diverge.
#[derive(Debug)]
pub(crate) struct GatewayReviews {
    store: Store,
    registry: hoop_core::Registry,
}

impl GatewayReviews {
    pub(crate) fn new(store: Store, registry: hoop_core::Registry) -> Self {
        Self { store, registry }
    }

    /// `user` as an API caller (a plugin acting for them).
    async fn caller(&self, user: &str) -> Result<crate::auth::Caller, hoop_core::PortError> {
        match self.store.get_user(user).await {
            Ok(user) => Ok(crate::auth::Caller {
                user,
                credential: crate::auth::Credential::Plugin {
                    name: "reviews".to_owned(),
                },
            }),
            Err(StoreError::NotFound { .. }) => Err(hoop_core::PortError::NotFound(format!(
                "user `{user}` not found"
            ))),
            Err(other) => Err(unavailable(&other)),
        }
    }

    async fn run(
        &self,
        id: &str,
        user: &str,
        group: &str,
        verdict: &hoop_core::ports::ReviewVerdict,
        dry_run: bool,
    ) -> Result<Review, hoop_core::PortError> {
        use hoop_core::ports::ReviewVerdict;
        use hoop_plugin_review::rules::{self, DecisionKind};
        let caller = self.caller(user).await?;
        let (kind, reason) = match verdict {
            ReviewVerdict::Approve => (DecisionKind::Approve, ""),
            ReviewVerdict::Reject { reason } => (DecisionKind::Reject, reason.as_str()),
        };
        let reason = rules::check_reason(reason, kind == DecisionKind::Reject)
            .map_err(crate::grpc::reviews::rule_error)
            .map_err(|e| api_port_error(&e))?;
        crate::grpc::reviews::decide_as(
            &self.store,
            &self.registry,
            &caller,
            id,
            group,
            kind,
            reason,
            dry_run,
        )
        .await
        .map(crate::grpc::reviews::Decided::review)
        .map_err(|e| api_port_error(&e))
    }
}

fn unavailable(err: &StoreError) -> hoop_core::PortError {
    tracing::warn!(error = %err, "reviews port: store failure");
    hoop_core::PortError::Unavailable("the gateway's store failed (see the gateway log)".to_owned())
}

/// An API refusal as the port reports it: the API's very message.
fn api_port_error(err: &crate::error::Error) -> hoop_core::PortError {
    use crate::error::Error;
    match err {
        Error::NotFound(m) => hoop_core::PortError::NotFound(m.clone()),
        Error::InvalidArgument { .. }
        | Error::FailedPrecondition(_)
        | Error::PermissionDenied(_)
        | Error::AlreadyExists(_)
        | Error::ResourceExhausted(_)
        | Error::Unauthenticated(_) => hoop_core::PortError::Refused(err.to_string()),
        Error::Internal(m) | Error::Unavailable(m) => hoop_core::PortError::Unavailable(m.clone()),
    }
}

/// A stored review as the port shows it.
pub(crate) fn review_view(review: Review) -> hoop_core::ports::ReviewView {
    let mut view = hoop_core::ports::ReviewView::new(
        review.id.clone(),
        review.connection.clone(),
        review.requester.clone(),
    );
    view.kind = review.kind.as_str().to_owned();
    view.status = review.status.as_str().to_owned();
    view.verb = review.verb.clone();
    view.input = review.input.map(bytes::Bytes::from);
    view.args = review.args.clone();
    view.approvals_needed = review
        .min_approvals
        .unwrap_or_else(|| u32::try_from(review.groups.len()).unwrap_or(u32::MAX));
    view.groups = review.groups.clone();
    view.votes = review
        .decisions
        .iter()
        .map(|d| hoop_core::ports::ReviewVote {
            reviewer: d.reviewer.clone(),
            group: d.group.clone(),
            approved: d.approved,
            reason: d.reason.clone(),
        })
        .collect();
    view.reason = review.reason.clone();
    view.access_duration = review.access_duration;
    view.session_id = review.session_id.clone();
    view
}

#[async_trait::async_trait]
impl hoop_core::ports::ReviewDecisions for GatewayReviews {
    async fn review(
        &self,
        id: &str,
    ) -> Result<Option<hoop_core::ports::ReviewView>, hoop_core::PortError> {
        match self.store.get_review(id).await {
            Ok(review) => Ok(Some(review_view(review))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(other) => Err(unavailable(&other)),
        }
    }

    async fn check(
        &self,
        id: &str,
        user: &str,
        group: &str,
        verdict: &hoop_core::ports::ReviewVerdict,
    ) -> Result<(), hoop_core::PortError> {
        self.run(id, user, group, verdict, true).await.map(drop)
    }

    async fn decide(
        &self,
        id: &str,
        user: &str,
        group: &str,
        verdict: hoop_core::ports::ReviewVerdict,
    ) -> Result<hoop_core::ports::ReviewView, hoop_core::PortError> {
        self.run(id, user, group, &verdict, false)
            .await
            .map(review_view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hoop_core::Verb;
    use hoop_store::{ApprovalRule, Connection, NewDecision, SecretBox};

    const KEY: &str = "0123456789abcdef0123456789abcdef-test";

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}/hoop.db", dir.path().display());
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut conn = Connection::new("pg", "command");
        conn.command = vec!["psql".into()];
        conn.reviewers = vec!["dba".into()];
        conn.review_ttl = Some(Duration::from_secs(600));
        store.create_connection(&conn, &[]).await.unwrap();
        store
    }

    fn exec_request(input: &[u8]) -> NewReview {
        NewReview {
            kind: DeskKind::OneTime,
            connection: "pg".into(),
            requester: "alice".into(),
            session_id: "s1".into(),
            verb: Verb::Exec,
            input: Some(Bytes::copy_from_slice(input)),
            input_sha256: Some(hoop_plugin_review::input_sha256(input)),
            args: vec!["-c".into()],
            groups: vec!["dba".into()],
            min_approvals: None,
            access_duration: None,
        }
    }

    fn approve(reviewer: &str) -> NewDecision {
        NewDecision {
            reviewer: reviewer.into(),
            group: "dba".into(),
            approved: true,
            reason: None,
            at: Utc::now(),
        }
    }

    /// The types of the events appended so far.
    async fn event_types(store: &Store) -> Vec<String> {
        store
            .read_events(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    #[tokio::test]
    async fn the_desk_creates_and_claims_once_with_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let desk = StoreDesk::new(store.clone());

        let created = desk.create(exec_request(b"SELECT 1;\n")).await.unwrap();
        assert_eq!(created.status, DeskStatus::Pending);
        assert_eq!(
            created.input_sha256.as_deref(),
            Some(hoop_plugin_review::input_sha256(b"SELECT 1;\n").as_str())
        );
        let stored = store.get_review(&created.id).await.unwrap();
        assert_eq!(
            stored.expires_at - stored.created_at,
            chrono::TimeDelta::seconds(600)
        );

        // Not approved: no claim.
        assert!(matches!(
            desk.claim(&created.id, "s1").await,
            Err(DeskError::Conflict(m)) if m.contains("PENDING")
        ));
        store
            .decide_review(
                &created.id,
                &approve("bob"),
                ApprovalRule {
                    groups: vec!["dba".into()],
                    min_approvals: None,
                },
            )
            .await
            .unwrap();
        let claimed = desk.claim(&created.id, "s2").await.unwrap();
        assert_eq!(claimed.status, DeskStatus::Executed);
        assert_eq!(claimed.session_id.as_deref(), Some("s2"));
        assert_eq!(claimed.approved_by(), "bob (dba)");
        assert!(matches!(
            desk.claim(&created.id, "s3").await,
            Err(DeskError::Conflict(m)) if m.contains("EXECUTED")
        ));
        assert!(matches!(
            desk.claim("nope", "s3").await,
            Err(DeskError::NotFound(_))
        ));
        assert_eq!(desk.get("nope").await.unwrap(), None);
        assert_eq!(
            desk.get(&created.id).await.unwrap().unwrap().status,
            DeskStatus::Executed
        );
        assert_eq!(
            event_types(&store).await[1..],
            ["review.created", "review.approved", "review.executed"]
        );
    }

    #[tokio::test]
    async fn a_hash_that_is_not_of_the_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let desk = StoreDesk::new(store(&dir).await);
        let mut request = exec_request(b"x");
        request.input_sha256 = Some(hoop_plugin_review::input_sha256(b"y"));
        assert!(matches!(
            desk.create(request).await,
            Err(DeskError::Unavailable(_))
        ));
        let mut request = exec_request(b"x");
        request.connection = "gone".into();
        assert!(matches!(
            desk.create(request).await,
            Err(DeskError::Unavailable(m)) if m.contains("gone")
        ));
    }

    #[tokio::test]
    async fn revocations_name_who_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let desk = StoreDesk::new(store.clone());
        for (why, expected_reason) in [("not needed", Some("not needed")), ("", None)] {
            let created = desk.create(exec_request(b"x")).await.unwrap();
            store
                .transition_review(
                    &created.id,
                    &[ReviewStatus::Pending],
                    ReviewStatus::Revoked,
                    Some(&revoked_reason("alice", why)),
                    None,
                    Utc::now(),
                )
                .await
                .unwrap();
            let record = desk.get(&created.id).await.unwrap().unwrap();
            assert_eq!(record.revoked_by.as_deref(), Some("alice"));
            assert_eq!(record.reason.as_deref(), expected_reason);
            let refusal = record.refusal();
            assert!(
                refusal.starts_with(&format!("review {} was revoked by alice", created.id)),
                "{refusal}"
            );
        }
    }

    #[tokio::test]
    async fn the_desk_expires_what_is_due_and_says_when_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let desk = StoreDesk::new(store.clone());
        assert_eq!(desk.next_deadline().await.unwrap(), None);
        // A review that is already past its deadline.
        let past = Utc::now().trunc_subsecs(3) - chrono::TimeDelta::seconds(10);
        let review = store
            .create_review(&hoop_store::NewReview {
                kind: ReviewKind::OneTime,
                connection: "pg".into(),
                requester: "alice".into(),
                verb: "exec".into(),
                input: Some(b"x".to_vec()),
                args: Vec::new(),
                groups: vec!["dba".into()],
                min_approvals: None,
                access_duration: None,
                created_at: past,
                expires_at: past + chrono::TimeDelta::seconds(1),
            })
            .await
            .unwrap();
        let due = desk.next_deadline().await.unwrap().unwrap();
        assert!(due <= SystemTime::now());
        let expired = desk.expire_due().await.unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, review.id);
        assert_eq!(expired[0].status, DeskStatus::Expired);
        assert!(desk.expire_due().await.unwrap().is_empty(), "expired once");
        assert_eq!(
            desk.get(&review.id).await.unwrap().unwrap().refusal(),
            format!(
                "review {} expired: pending longer than the review TTL",
                review.id
            )
        );
        assert_eq!(event_types(&store).await.last().unwrap(), "review.expired");
    }

    #[test]
    fn revoked_reasons_round_trip() {
        assert_eq!(revoked_reason("bob", "  "), "revoked by bob");
        assert_eq!(
            parse_revoked(&revoked_reason("bob.smith", "oops: wrong one")),
            Some(("bob.smith".into(), Some("oops: wrong one".into())))
        );
        assert_eq!(parse_revoked("pending longer than the review TTL"), None);
    }
}
