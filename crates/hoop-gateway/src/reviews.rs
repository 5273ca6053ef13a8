//! Reviews (access requests) on the gateway's side: the [`ReviewDesk`] the `review` plugin
//! keeps its reviews in ([`StoreDesk`], over the store), the stream of [`ReviewEvent`]s that
//! announces every change of a review, and the task that expires reviews.
//!
//! Whatever reacts to reviews (the session runtime waking held sessions and ending those
//! under a revoked or expired grant, notification plugins) subscribes to [`ReviewEvents`];
//! the code that changes reviews only publishes.
//!
//! Who revoked a review is kept in its reason: RevokeReview writes `revoked by <user>` or
//! `revoked by <user>: <why>` (user names have no `:`), and [`record`] reads it back into
//! [`ReviewRecord::revoked_by`] and [`ReviewRecord::reason`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SubsecRound as _, Utc};
use hoop_plugin_review::{
    Decision, DeskError, NewReview, ReviewDesk, ReviewKind as DeskKind, ReviewRecord,
    ReviewStatus as DeskStatus,
};
use hoop_store::{Review, ReviewKind, ReviewStatus, Store, StoreError};
use tokio::sync::{Notify, broadcast, watch};

/// How long a review may stay pending when its connection does not say.
pub(crate) const DEFAULT_REVIEW_TTL: Duration = Duration::from_secs(24 * 3600);
/// Events kept for slow subscribers; one that falls further behind misses some (and is told
/// so by its receiver).
const EVENT_CAPACITY: usize = 1024;
/// The longest the expiry task sleeps: reviews created by other gateways on the same
/// database do not wake it.
const EXPIRY_MAX_SLEEP: Duration = Duration::from_secs(60);
/// The shortest it sleeps between rounds, so a deadline it cannot clear never makes it spin.
const EXPIRY_MIN_SLEEP: Duration = Duration::from_millis(100);
/// How long it waits after the store failed.
const EXPIRY_RETRY: Duration = Duration::from_secs(5);

/// What happened to a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReviewEventKind {
    /// A session asked for it: it is PENDING.
    Created,
    /// A reviewer approved it without settling it (more approvals are needed).
    Decided,
    /// It is APPROVED.
    Approved,
    /// A reviewer rejected it.
    Rejected,
    /// Its requester, a reviewer or an admin revoked it (pending or approved).
    Revoked,
    /// It stayed pending past its TTL, or the access it granted ended.
    Expired,
    /// A one-time review ran (a session claimed it).
    Executed,
}

impl ReviewEventKind {
    /// The event a decision that left the review in `status` publishes.
    pub(crate) fn of_decision(status: ReviewStatus) -> Self {
        match status {
            ReviewStatus::Approved => Self::Approved,
            ReviewStatus::Rejected => Self::Rejected,
            _ => Self::Decided,
        }
    }
}

/// A change of a review, with the review as it now is.
#[derive(Debug, Clone)]
pub(crate) struct ReviewEvent {
    pub(crate) kind: ReviewEventKind,
    pub(crate) review: Arc<Review>,
}

/// The gateway's stream of review events (in-process; each gateway sees the changes made
/// through it).
#[derive(Debug, Clone)]
pub(crate) struct ReviewEvents {
    tx: broadcast::Sender<ReviewEvent>,
}

impl Default for ReviewEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl ReviewEvents {
    pub(crate) fn new() -> Self {
        let (tx, _) = broadcast::channel(EVENT_CAPACITY);
        Self { tx }
    }

    /// Announces `kind` on `review` to every subscriber (none is fine).
    pub(crate) fn publish(&self, kind: ReviewEventKind, review: impl Into<Arc<Review>>) {
        let review = review.into();
        tracing::debug!(review = %review.id, event = ?kind, status = %review.status, "review event");
        // An error only means nobody listens right now.
        let _ = self.tx.send(ReviewEvent { kind, review });
    }

    /// Events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ReviewEvent> {
        self.tx.subscribe()
    }
}

/// The review desk over the store: what the `review` plugin creates, reads and claims
/// reviews through.
#[derive(Debug, Clone)]
pub(crate) struct StoreDesk {
    store: Store,
    events: ReviewEvents,
    /// Wakes the expiry task when a review with a new deadline appears.
    wake: Arc<Notify>,
}

impl StoreDesk {
    pub(crate) fn new(store: Store, events: ReviewEvents, wake: Arc<Notify>) -> Self {
        Self {
            store,
            events,
            wake,
        }
    }
}

/// A store failure as the desk reports it: conflicts and missing reviews as such, anything
/// else (logged) as unavailable.
fn desk_error(err: StoreError, doing: &str) -> DeskError {
    match err {
        StoreError::Conflict(message) => DeskError::Conflict(message),
        StoreError::NotFound { name, .. } => DeskError::NotFound(name),
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
        let record = record(&review);
        self.events.publish(ReviewEventKind::Created, review);
        self.wake.notify_one();
        Ok(record)
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
            .transition_review(
                id,
                &[ReviewStatus::Approved],
                ReviewStatus::Executed,
                None,
                Some(session_id),
                Utc::now(),
            )
            .await
            .map_err(|e| desk_error(e, "claiming a review"))?;
        tracing::info!(review = %id, session = %session_id, "review executed");
        let record = record(&review);
        self.events.publish(ReviewEventKind::Executed, review);
        Ok(record)
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

/// Starts the task that expires reviews: pending ones past their TTL and time-based grants
/// that ended, each announced as [`ReviewEventKind::Expired`]. It sleeps until the next
/// deadline (at most a minute, or until `wake`), and ends when `shutdown` turns `true` (or
/// its sender is gone).
pub(crate) fn spawn_expiry(
    store: Store,
    events: ReviewEvents,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_expiry(store, events, wake, shutdown))
}

async fn run_expiry(
    store: Store,
    events: ReviewEvents,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    // An approval sets a grant's end: a new deadline, possibly the next one.
    let mut decisions = events.subscribe();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let wait = match store.next_review_deadline().await {
            Ok(Some(deadline)) if deadline <= Utc::now() => {
                let pause = match expire(&store, &events).await {
                    Ok(true) => continue,
                    // Due but nothing expired (decided meanwhile): look again shortly
                    // rather than spin.
                    Ok(false) => EXPIRY_MIN_SLEEP,
                    Err(()) => EXPIRY_RETRY,
                };
                if paused_until_shutdown(&mut shutdown, pause).await {
                    break;
                }
                continue;
            }
            Ok(Some(deadline)) => (deadline - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(EXPIRY_MIN_SLEEP, EXPIRY_MAX_SLEEP),
            Ok(None) => EXPIRY_MAX_SLEEP,
            Err(err) => {
                tracing::warn!(error = %err, "review expiry: cannot read the next deadline; retrying");
                EXPIRY_RETRY
            }
        };
        // Then look at the deadlines again: one may have come, or a new review may have an
        // earlier one.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
            () = approved(&mut decisions) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    tracing::debug!("review expiry stopped");
}

/// Resolves at the next approval (or when events were missed and one may have come).
async fn approved(events: &mut tokio::sync::broadcast::Receiver<ReviewEvent>) {
    loop {
        match events.recv().await {
            Ok(event) if event.kind == ReviewEventKind::Approved => return,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Waits `pause`; `true` if the gateway started shutting down meanwhile.
async fn paused_until_shutdown(shutdown: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
    }
}

/// Expires what is due now and announces it: whether it expired any review, or `Err` if
/// the store failed (logged).
async fn expire(store: &Store, events: &ReviewEvents) -> Result<bool, ()> {
    match store.expire_reviews(Utc::now()).await {
        Ok(expired) => {
            let any = !expired.is_empty();
            for review in expired {
                tracing::info!(
                    review = %review.id,
                    kind = %review.kind,
                    requester = %review.requester,
                    connection = %review.connection,
                    reason = review.reason.as_deref().unwrap_or_default(),
                    "review expired"
                );
                events.publish(ReviewEventKind::Expired, review);
            }
            Ok(any)
        }
        Err(err) => {
            tracing::warn!(error = %err, "review expiry failed; retrying");
            Err(())
        }
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

    #[tokio::test]
    async fn the_desk_creates_claims_once_and_announces() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let events = ReviewEvents::new();
        let mut rx = events.subscribe();
        let wake = Arc::new(Notify::new());
        let desk = StoreDesk::new(store.clone(), events, Arc::clone(&wake));

        let created = desk.create(exec_request(b"SELECT 1;\n")).await.unwrap();
        assert_eq!(created.status, DeskStatus::Pending);
        assert_eq!(
            created.input_sha256.as_deref(),
            Some(hoop_plugin_review::input_sha256(b"SELECT 1;\n").as_str())
        );
        let event = rx.recv().await.unwrap();
        assert_eq!(event.kind, ReviewEventKind::Created);
        assert_eq!(event.review.id, created.id);
        assert_eq!(
            event.review.expires_at - event.review.created_at,
            chrono::TimeDelta::seconds(600)
        );
        // The expiry task is woken (the permit waits for it).
        tokio::time::timeout(Duration::from_secs(1), wake.notified())
            .await
            .unwrap();

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
        assert_eq!(rx.recv().await.unwrap().kind, ReviewEventKind::Executed);
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
    }

    #[tokio::test]
    async fn a_hash_that_is_not_of_the_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let desk = StoreDesk::new(
            store(&dir).await,
            ReviewEvents::new(),
            Arc::new(Notify::new()),
        );
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
        let desk = StoreDesk::new(store.clone(), ReviewEvents::new(), Arc::new(Notify::new()));
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
    async fn the_expiry_task_expires_and_announces_then_stops() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let events = ReviewEvents::new();
        let mut rx = events.subscribe();
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
        let (shutdown_tx, shutdown) = watch::channel(false);
        let task = spawn_expiry(
            store.clone(),
            events.clone(),
            Arc::new(Notify::new()),
            shutdown,
        );
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.kind, ReviewEventKind::Expired);
        assert_eq!(event.review.id, review.id);
        assert_eq!(event.review.status, ReviewStatus::Expired);
        shutdown_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_new_review_wakes_the_expiry_task_for_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut quick = Connection::new("quick", "command");
        quick.command = vec!["psql".into()];
        quick.reviewers = vec!["dba".into()];
        quick.review_ttl = Some(Duration::from_secs(1));
        store.create_connection(&quick, &[]).await.unwrap();
        let events = ReviewEvents::new();
        let mut rx = events.subscribe();
        let wake = Arc::new(Notify::new());
        let (_shutdown_tx, shutdown) = watch::channel(false);
        // Nothing to expire: the task sleeps its longest (a minute) until woken.
        let task = spawn_expiry(store.clone(), events.clone(), Arc::clone(&wake), shutdown);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let desk = StoreDesk::new(store, events, wake);
        let mut request = exec_request(b"x");
        request.connection = "quick".into();
        let created = desk.create(request).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().kind, ReviewEventKind::Created);
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (event.kind, event.review.id.as_str()),
            (ReviewEventKind::Expired, created.id.as_str())
        );
        assert_eq!(
            event.review.reason.as_deref(),
            Some("pending longer than the review TTL")
        );
        assert_eq!(
            desk.get(&created.id).await.unwrap().unwrap().refusal(),
            format!(
                "review {} expired: pending longer than the review TTL",
                created.id
            )
        );
        task.abort();
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
