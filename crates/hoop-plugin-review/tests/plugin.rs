//! The review plugin in a chain, against an in-memory review desk driven by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hoop_core::events::{MemoryEventLog, types};
use hoop_core::{
    Chain, ChainSession, CloseReason, ConnectionInfo, Outcome, PluginConfig, PluginFactory, Ports,
    Registry, Resources, SessionInfo, SessionRequest, UserInfo, Verb,
};
use hoop_plugin_review::{
    APPROVED_BY_ATTRIBUTE, Decision, DeskError, GRANT_ENDS_AT_ATTRIBUTE, ID_ATTRIBUTE, NewReview,
    ReviewDesk, ReviewFactory, ReviewKind, ReviewRecord, ReviewStatus, Reviews, input_sha256,
};

// ---- the fake desk ---------------------------------------------------------------------

#[derive(Debug, Default)]
struct Desk {
    state: Mutex<State>,
    down: AtomicBool,
    /// Refuses new reviews, as a desk at its requester's pending-review limit does.
    full: AtomicBool,
    /// The event log the gateway's store writes with each change of a review.
    log: Arc<MemoryEventLog>,
}

#[derive(Debug, Default)]
struct State {
    next: u32,
    reviews: BTreeMap<String, ReviewRecord>,
    requests: BTreeMap<String, NewReview>,
}

impl Desk {
    fn check_up(&self) -> Result<(), DeskError> {
        if self.down.load(Ordering::SeqCst) {
            Err(DeskError::Unavailable("database is down".to_owned()))
        } else {
            Ok(())
        }
    }

    fn review(&self, id: &str) -> ReviewRecord {
        self.state.lock().unwrap().reviews[id].clone()
    }

    fn request(&self, id: &str) -> NewReview {
        self.state.lock().unwrap().requests[id].clone()
    }

    fn count(&self) -> usize {
        self.state.lock().unwrap().reviews.len()
    }

    fn only_id(&self) -> String {
        let state = self.state.lock().unwrap();
        assert_eq!(state.reviews.len(), 1, "{:?}", state.reviews);
        state.reviews.keys().next().unwrap().clone()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ReviewRecord)) {
        let mut state = self.state.lock().unwrap();
        f(state.reviews.get_mut(id).unwrap());
    }

    fn decide(&self, id: &str, reviewer: &str, group: &str, approved: bool, reason: Option<&str>) {
        let duration = self.request_opt(id).and_then(|r| r.access_duration);
        self.update(id, |r| {
            r.decisions.push(Decision {
                reviewer: reviewer.to_owned(),
                group: group.to_owned(),
                approved,
                reason: reason.map(str::to_owned),
                decided_at: SystemTime::now(),
            });
            r.status = if approved {
                ReviewStatus::Approved
            } else {
                ReviewStatus::Rejected
            };
            if approved && r.kind == ReviewKind::Jit {
                r.grant_ends_at = Some(SystemTime::now() + duration.unwrap());
            }
        });
    }

    fn approve(&self, id: &str) {
        self.decide(id, "bob", "dba", true, None);
        self.decide(id, "carol", "sre", true, None);
    }

    fn request_opt(&self, id: &str) -> Option<NewReview> {
        self.state.lock().unwrap().requests.get(id).cloned()
    }

    /// Puts an approved review straight into the desk (as if made and approved earlier).
    fn insert(&self, record: ReviewRecord) {
        let mut state = self.state.lock().unwrap();
        state.reviews.insert(record.id.clone(), record);
    }
}

#[async_trait]
impl ReviewDesk for Desk {
    async fn create(&self, request: NewReview) -> Result<ReviewRecord, DeskError> {
        self.check_up()?;
        if self.full.load(Ordering::SeqCst) {
            return Err(DeskError::LimitReached(format!(
                "limit pending_reviews_per_user reached: user `{}` already has 2 pending \
                 reviews (at most 2)",
                request.requester
            )));
        }
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let id = format!("r{}", state.next);
        let record = ReviewRecord {
            id: id.clone(),
            kind: request.kind,
            status: ReviewStatus::Pending,
            connection: request.connection.clone(),
            requester: request.requester.clone(),
            input_sha256: request.input_sha256.clone(),
            args: request.args.clone(),
            groups: request.groups.clone(),
            decisions: Vec::new(),
            reason: None,
            revoked_by: None,
            grant_ends_at: None,
            session_id: None,
        };
        state.reviews.insert(id.clone(), record.clone());
        state.requests.insert(id.clone(), request);
        self.log.append(
            types::REVIEW_CREATED,
            None,
            None,
            serde_json::json!({ "review_id": id }),
        );
        Ok(record)
    }

    async fn get(&self, id: &str) -> Result<Option<ReviewRecord>, DeskError> {
        self.check_up()?;
        tokio::task::yield_now().await;
        Ok(self.state.lock().unwrap().reviews.get(id).cloned())
    }

    async fn claim(&self, id: &str, session_id: &str) -> Result<ReviewRecord, DeskError> {
        self.check_up()?;
        tokio::task::yield_now().await;
        let mut state = self.state.lock().unwrap();
        let record = state
            .reviews
            .get_mut(id)
            .ok_or_else(|| DeskError::NotFound(id.to_owned()))?;
        if record.kind != ReviewKind::OneTime || record.status != ReviewStatus::Approved {
            return Err(DeskError::Conflict(format!(
                "review {id} is {}",
                record.status
            )));
        }
        record.status = ReviewStatus::Executed;
        record.session_id = Some(session_id.to_owned());
        Ok(record.clone())
    }

    async fn active_grant(
        &self,
        user: &str,
        connection: &str,
    ) -> Result<Option<ReviewRecord>, DeskError> {
        self.check_up()?;
        let now = SystemTime::now();
        Ok(self
            .state
            .lock()
            .unwrap()
            .reviews
            .values()
            .find(|r| {
                r.kind == ReviewKind::Jit
                    && r.status == ReviewStatus::Approved
                    && r.requester == user
                    && r.connection == connection
                    && r.grant_ends_at.is_some_and(|t| t > now)
            })
            .cloned())
    }

    async fn active_grants(
        &self,
        user: &str,
        connection: &str,
    ) -> Result<Vec<ReviewRecord>, DeskError> {
        self.check_up()?;
        let now = SystemTime::now();
        Ok(self
            .state
            .lock()
            .unwrap()
            .reviews
            .values()
            .filter(|r| {
                r.kind == ReviewKind::Jit
                    && r.status == ReviewStatus::Approved
                    && r.requester == user
                    && r.connection == connection
                    && r.grant_ends_at.is_some_and(|t| t > now)
            })
            .cloned()
            .collect())
    }
}

// ---- helpers ---------------------------------------------------------------------------

const INPUT: &str = "DELETE FROM users WHERE id = 7;\n";

fn config() -> PluginConfig {
    PluginConfig::from_value(serde_json::json!({
        "reviewers": ["dba", "sre"],
        "access_max_duration_ms": 3_600_000,
    }))
    .unwrap()
}

fn chain(desk: &Arc<Desk>) -> Chain {
    let resources = Resources::new().with(Reviews(desk.clone()));
    let plugin = ReviewFactory.build(&config(), &resources).unwrap();
    Chain::new(vec![plugin])
}

fn exec_info(session: &str, user: &str, conn: &str, request: SessionRequest) -> SessionInfo {
    SessionInfo::new(
        session,
        UserInfo::new(user),
        ConnectionInfo::new(conn, "command"),
        Verb::Exec,
    )
    .with_request(request)
}

fn exec_request() -> SessionRequest {
    SessionRequest::new()
        .with_input(INPUT)
        .with_args(["--db", "prod"])
}

fn exec(chain: &Chain, session: &str) -> ChainSession {
    chain.start(exec_info(session, "alice", "pg", exec_request()))
}

fn ticket(chain: &Chain, session: &str, id: &str) -> ChainSession {
    chain.start(exec_info(
        session,
        "alice",
        "pg",
        exec_request().with_ticket(id),
    ))
}

fn connect(chain: &Chain, session: &str, duration: Option<Duration>) -> ChainSession {
    let mut request = SessionRequest::new();
    if let Some(d) = duration {
        request = request.with_access_duration(d);
    }
    chain.start(
        SessionInfo::new(
            session,
            UserInfo::new("alice"),
            ConnectionInfo::new("pg", "postgres"),
            Verb::Connect,
        )
        .with_request(request),
    )
}

fn connect_with_args(
    chain: &Chain,
    session: &str,
    args: &[&str],
    ticket: Option<&str>,
) -> ChainSession {
    let mut request = SessionRequest::new().with_args(args.iter().copied());
    if let Some(ticket) = ticket {
        request = request.with_ticket(ticket);
    }
    chain.start(
        SessionInfo::new(
            session,
            UserInfo::new("alice"),
            ConnectionInfo::new("pg", "postgres"),
            Verb::Connect,
        )
        .with_request(request),
    )
}

fn approved_one_time(id: &str) -> ReviewRecord {
    ReviewRecord {
        id: id.to_owned(),
        kind: ReviewKind::OneTime,
        status: ReviewStatus::Approved,
        connection: "pg".to_owned(),
        requester: "alice".to_owned(),
        input_sha256: Some(input_sha256(INPUT.as_bytes())),
        args: vec!["--db".to_owned(), "prod".to_owned()],
        groups: vec!["dba".to_owned(), "sre".to_owned()],
        decisions: vec![Decision {
            reviewer: "bob".to_owned(),
            group: "dba".to_owned(),
            approved: true,
            reason: None,
            decided_at: SystemTime::now(),
        }],
        reason: None,
        revoked_by: None,
        grant_ends_at: None,
        session_id: None,
    }
}

fn grant(id: &str, ends_in: Duration) -> ReviewRecord {
    ReviewRecord {
        kind: ReviewKind::Jit,
        input_sha256: None,
        args: Vec::new(),
        grant_ends_at: Some(SystemTime::now() + ends_in),
        ..approved_one_time(id)
    }
}

#[track_caller]
fn held(outcome: Outcome) -> hoop_core::HoldRequest {
    match outcome {
        Outcome::Held { plugin, request } => {
            assert_eq!(plugin, "review");
            request
        }
        other => panic!("expected Held, got {other:?}"),
    }
}

#[track_caller]
fn denied(outcome: Outcome) -> String {
    match outcome {
        Outcome::Denied { plugin, reason } => {
            assert_eq!(plugin, "review");
            reason.to_string()
        }
        other => panic!("expected Denied, got {other:?}"),
    }
}

#[track_caller]
fn allowed(outcome: Outcome) {
    assert!(matches!(outcome, Outcome::Continue), "{outcome:?}");
}

fn attribute(session: &ChainSession, name: &str) -> Option<String> {
    session
        .ctx()
        .unwrap()
        .attributes
        .get(name)
        .map(str::to_owned)
}

// ---- exec: one-time reviews ------------------------------------------------------------

#[tokio::test]
async fn exec_without_ticket_is_held_on_a_new_review_then_runs_once_approved() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);
    let mut session = exec(&chain, "s1");

    let hold = held(session.open().await.unwrap());
    let id = desk.only_id();
    assert_eq!(hold.request_id.as_deref(), Some(id.as_str()));
    assert_eq!(hold.groups, ["dba", "sre"]);
    assert!(
        hold.reason.contains("waiting for approval by dba, sre"),
        "{}",
        hold.reason
    );

    let review = desk.review(&id);
    assert_eq!(review.kind, ReviewKind::OneTime);
    assert_eq!(review.status, ReviewStatus::Pending);
    assert_eq!(review.requester, "alice");
    assert_eq!(review.connection, "pg");
    assert_eq!(review.args, ["--db", "prod"]);
    assert_eq!(review.input_sha256, Some(input_sha256(INPUT.as_bytes())));
    let request = desk.request(&id);
    assert_eq!(request.input.as_deref(), Some(INPUT.as_bytes()));
    assert_eq!(request.verb, Verb::Exec);
    assert_eq!(request.session_id, "s1");
    assert_eq!(request.groups, ["dba", "sre"]);
    assert_eq!(request.access_duration, None);

    // Asked again while pending: held on the same review, no second one.
    let again = held(session.open().await.unwrap());
    assert_eq!(again.request_id.as_deref(), Some(id.as_str()));
    assert_eq!(desk.count(), 1);

    desk.approve(&id);
    allowed(session.open().await.unwrap());
    let review = desk.review(&id);
    assert_eq!(review.status, ReviewStatus::Executed);
    assert_eq!(review.session_id.as_deref(), Some("s1"));
    assert_eq!(attribute(&session, ID_ATTRIBUTE), Some(id.clone()));
    assert_eq!(
        attribute(&session, APPROVED_BY_ATTRIBUTE).as_deref(),
        Some("bob (dba), carol (sre)")
    );
    assert_eq!(attribute(&session, GRANT_ENDS_AT_ATTRIBUTE), None);
    let cx = session.close(CloseReason::Exit { code: 0 }).await.unwrap();
    assert_eq!(cx.attributes.get(ID_ATTRIBUTE), Some(id.as_str()));

    // The same review as a ticket now: it already ran.
    let mut second = ticket(&chain, "s2", &id);
    let reason = denied(second.open().await.unwrap());
    assert_eq!(reason, format!("review {id} already ran (session s1)"));
}

/// A held session waits on the event log for its review's decision: neither its review's
/// creation (already in the log when it starts waiting) nor another review's decision
/// wakes it, and its own approval does.
#[tokio::test]
async fn a_held_exec_wakes_on_its_reviews_decision_not_on_its_creation() {
    let desk = Arc::new(Desk::default());
    let ports = Ports {
        events: Some(desk.log.clone()),
        ..Default::default()
    };
    let resources = Resources::new().with(Reviews(desk.clone())).with(ports);
    let chain = Chain::new(vec![ReviewFactory.build(&config(), &resources).unwrap()]);
    let mut session = exec(&chain, "s1");
    let hold = held(session.open().await.unwrap());
    let watch = hold.watch.clone().expect("a watch on the event log");
    let id = desk.only_id();
    desk.log.append(
        types::REVIEW_APPROVED,
        None,
        None,
        serde_json::json!({ "review_id": "someone-elses" }),
    );
    // The log is in memory: one poll reads all of it, then waits for more.
    let changed = watch.changed();
    tokio::pin!(changed);
    let first = std::future::poll_fn(|cx| Poll::Ready(changed.as_mut().poll(cx))).await;
    assert!(
        first.is_pending(),
        "woken by a change that is not its decision"
    );

    desk.approve(&id);
    desk.log.append(
        types::REVIEW_APPROVED,
        None,
        None,
        serde_json::json!({ "review_id": id }),
    );
    tokio::time::timeout(Duration::from_secs(30), changed)
        .await
        .expect("woken by its approval");
    allowed(session.open().await.unwrap());
}

#[tokio::test]
async fn exec_without_input_hashes_the_empty_input() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);
    let mut session = chain.start(exec_info("s1", "alice", "pg", SessionRequest::new()));
    held(session.open().await.unwrap());
    let id = desk.only_id();
    assert_eq!(desk.review(&id).input_sha256, Some(input_sha256(b"")));
    desk.approve(&id);
    allowed(session.open().await.unwrap());
}

#[tokio::test]
async fn rejected_review_denies_naming_the_reviewer() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);
    let mut session = exec(&chain, "s1");
    held(session.open().await.unwrap());
    let id = desk.only_id();
    desk.decide(&id, "bob", "dba", false, Some("not during business hours"));
    let reason = denied(session.open().await.unwrap());
    assert_eq!(
        reason,
        format!("review {id} was rejected by bob (dba): not during business hours")
    );
    assert!(session.open().await.is_err(), "the session has ended");
}

#[tokio::test]
async fn expired_and_revoked_reviews_deny() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);

    let mut session = exec(&chain, "s1");
    held(session.open().await.unwrap());
    let id = desk.only_id();
    desk.update(&id, |r| r.status = ReviewStatus::Expired);
    assert_eq!(
        denied(session.open().await.unwrap()),
        format!("review {id} expired")
    );

    let mut session = exec(&chain, "s2");
    let id = held(session.open().await.unwrap()).request_id.unwrap();
    desk.approve(&id);
    desk.update(&id, |r| {
        r.status = ReviewStatus::Revoked;
        r.revoked_by = Some("dave".to_owned());
        r.reason = Some("wrong database".to_owned());
    });
    assert_eq!(
        denied(session.open().await.unwrap()),
        format!("review {id} was revoked by dave: wrong database")
    );
}

#[tokio::test]
async fn approved_matching_ticket_runs_once() {
    let desk = Arc::new(Desk::default());
    desk.insert(approved_one_time("abc"));
    let chain = chain(&desk);

    let mut session = ticket(&chain, "s1", "abc");
    allowed(session.open().await.unwrap());
    assert_eq!(desk.count(), 1, "no review was created");
    let review = desk.review("abc");
    assert_eq!(review.status, ReviewStatus::Executed);
    assert_eq!(review.session_id.as_deref(), Some("s1"));
    assert_eq!(attribute(&session, ID_ATTRIBUTE).as_deref(), Some("abc"));
    assert_eq!(
        attribute(&session, APPROVED_BY_ATTRIBUTE).as_deref(),
        Some("bob (dba)")
    );

    let mut again = ticket(&chain, "s2", "abc");
    assert_eq!(
        denied(again.open().await.unwrap()),
        "review abc already ran (session s1)"
    );
}

#[tokio::test]
async fn tickets_that_do_not_match_the_session_are_denied() {
    let desk = Arc::new(Desk::default());
    desk.insert(approved_one_time("abc"));
    let chain = chain(&desk);

    let tampered = chain.start(exec_info(
        "s1",
        "alice",
        "pg",
        SessionRequest::new()
            .with_input("DROP TABLE users;\n")
            .with_args(["--db", "prod"])
            .with_ticket("abc"),
    ));
    let other_args = chain.start(exec_info(
        "s2",
        "alice",
        "pg",
        SessionRequest::new()
            .with_input(INPUT)
            .with_args(["--db", "staging"])
            .with_ticket("abc"),
    ));
    let other_user = chain.start(exec_info(
        "s3",
        "mallory",
        "pg",
        exec_request().with_ticket("abc"),
    ));
    let other_connection = chain.start(exec_info(
        "s4",
        "alice",
        "mysql",
        exec_request().with_ticket("abc"),
    ));
    let no_input = chain.start(exec_info(
        "s5",
        "alice",
        "pg",
        SessionRequest::new()
            .with_args(["--db", "prod"])
            .with_ticket("abc"),
    ));

    for (mut session, expected) in [
        (
            tampered,
            "the input differs from the reviewed input of review abc",
        ),
        (
            other_args,
            "the arguments differ from the arguments reviewed in review abc",
        ),
        (other_user, "review abc was requested by alice"),
        (
            other_connection,
            "review abc is for connection pg, not mysql",
        ),
        (
            no_input,
            "the input differs from the reviewed input of review abc",
        ),
    ] {
        assert_eq!(denied(session.open().await.unwrap()), expected);
    }
    assert_eq!(
        desk.review("abc").status,
        ReviewStatus::Approved,
        "not claimed"
    );
    assert_eq!(desk.count(), 1, "no review was created");
}

#[tokio::test]
async fn pending_unknown_and_time_based_tickets_are_denied() {
    let desk = Arc::new(Desk::default());
    desk.insert(ReviewRecord {
        status: ReviewStatus::Pending,
        decisions: Vec::new(),
        ..approved_one_time("abc")
    });
    desk.insert(grant("jit", Duration::from_secs(600)));
    let chain = chain(&desk);

    let mut pending = ticket(&chain, "s1", "abc");
    assert_eq!(
        denied(pending.open().await.unwrap()),
        "review abc is PENDING, not APPROVED"
    );
    let mut unknown = ticket(&chain, "s2", "nope");
    assert_eq!(
        denied(unknown.open().await.unwrap()),
        "review nope does not exist"
    );
    let mut jit = ticket(&chain, "s3", "jit");
    assert!(denied(jit.open().await.unwrap()).starts_with("review jit is a time-based review"),);
    let mut rejected = {
        desk.update("abc", |r| {
            r.status = ReviewStatus::Rejected;
            r.decisions.push(Decision {
                reviewer: "bob".to_owned(),
                group: "dba".to_owned(),
                approved: false,
                reason: Some("no".to_owned()),
                decided_at: SystemTime::now(),
            });
        });
        ticket(&chain, "s4", "abc")
    };
    assert_eq!(
        denied(rejected.open().await.unwrap()),
        "review abc was rejected by bob (dba): no"
    );
    assert_eq!(desk.count(), 2, "no review was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_review_let_exactly_one_session_run() {
    for round in 0..20 {
        let desk = Arc::new(Desk::default());
        desk.insert(approved_one_time("abc"));
        let chain = chain(&desk);
        let runs: Vec<_> = (0..2)
            .map(|i| {
                let mut session = ticket(&chain, &format!("s{round}-{i}"), "abc");
                tokio::spawn(async move { session.open().await.unwrap() })
            })
            .collect();
        let mut continued = 0;
        let mut denials = Vec::new();
        for run in runs {
            match run.await.unwrap() {
                Outcome::Continue => continued += 1,
                other => denials.push(denied(other)),
            }
        }
        assert_eq!(continued, 1, "{denials:?}");
        let winner = desk.review("abc").session_id.unwrap();
        assert_eq!(
            denials,
            [format!("review abc already ran (session {winner})")]
        );
    }
}

// ---- connect: time-based grants --------------------------------------------------------

#[tokio::test]
async fn connect_with_an_active_grant_runs_and_records_it() {
    let desk = Arc::new(Desk::default());
    desk.insert(grant("g1", Duration::from_secs(600)));
    let chain = chain(&desk);
    let mut session = connect(&chain, "s1", None);
    allowed(session.open().await.unwrap());
    assert_eq!(desk.count(), 1, "no review was created");
    assert_eq!(attribute(&session, ID_ATTRIBUTE).as_deref(), Some("g1"));
    assert_eq!(
        attribute(&session, APPROVED_BY_ATTRIBUTE).as_deref(),
        Some("bob (dba)")
    );
    let ends = attribute(&session, GRANT_ENDS_AT_ATTRIBUTE).unwrap();
    let ends = humantime::parse_rfc3339(&ends).unwrap();
    let expected = desk.review("g1").grant_ends_at.unwrap();
    let diff = expected
        .duration_since(ends)
        .unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_secs(1), "{diff:?}");

    // Also as a ticket.
    let mut with_ticket = chain.start(
        SessionInfo::new(
            "s2",
            UserInfo::new("alice"),
            ConnectionInfo::new("pg", "postgres"),
            Verb::Connect,
        )
        .with_request(SessionRequest::new().with_ticket("g1")),
    );
    allowed(with_ticket.open().await.unwrap());
}

#[tokio::test]
async fn connect_without_a_grant_requests_one_and_is_held_until_approved() {
    let desk = Arc::new(Desk::default());
    // An ended grant does not count.
    desk.insert(grant("old", Duration::ZERO));
    let chain = chain(&desk);
    let mut session = connect(&chain, "s1", Some(Duration::from_secs(1800)));
    let hold = held(session.open().await.unwrap());
    let id = hold.request_id.unwrap();
    assert_eq!(hold.groups, ["dba", "sre"]);
    let request = desk.request(&id);
    assert_eq!(request.kind, ReviewKind::Jit);
    assert_eq!(request.verb, Verb::Connect);
    assert_eq!(request.access_duration, Some(Duration::from_secs(1800)));
    assert_eq!(request.input, None);
    assert_eq!(desk.review(&id).status, ReviewStatus::Pending);

    held(session.open().await.unwrap());
    assert_eq!(desk.count(), 2, "still one request");

    desk.approve(&id);
    allowed(session.open().await.unwrap());
    assert_eq!(attribute(&session, ID_ATTRIBUTE), Some(id.clone()));
    assert_eq!(
        attribute(&session, APPROVED_BY_ATTRIBUTE).as_deref(),
        Some("bob (dba), carol (sre)")
    );
    assert!(attribute(&session, GRANT_ENDS_AT_ATTRIBUTE).is_some());
    assert_eq!(
        desk.review(&id).status,
        ReviewStatus::Approved,
        "grants are not claimed"
    );

    // The grant now lets further connects in at once.
    let mut next = connect(&chain, "s2", None);
    allowed(next.open().await.unwrap());
    assert_eq!(attribute(&next, ID_ATTRIBUTE), Some(id));
}

#[tokio::test]
async fn connect_without_a_duration_asks_for_the_maximum() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);
    let mut session = connect(&chain, "s1", None);
    let id = held(session.open().await.unwrap()).request_id.unwrap();
    assert_eq!(
        desk.request(&id).access_duration,
        Some(Duration::from_secs(3600))
    );
}

#[tokio::test]
async fn connect_asking_for_more_than_the_maximum_is_denied() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);
    let mut session = connect(&chain, "s1", Some(Duration::from_secs(2 * 3600)));
    let reason = denied(session.open().await.unwrap());
    assert_eq!(
        reason,
        "the access duration asked for (2h) exceeds the maximum of 1h on connection pg"
    );
    assert_eq!(desk.count(), 0);
}

#[tokio::test]
async fn rejected_and_expired_grants_deny_the_connect() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);

    let mut session = connect(&chain, "s1", None);
    let id = held(session.open().await.unwrap()).request_id.unwrap();
    desk.decide(&id, "carol", "sre", false, Some("use staging"));
    assert_eq!(
        denied(session.open().await.unwrap()),
        format!("review {id} was rejected by carol (sre): use staging")
    );

    let mut session = connect(&chain, "s2", None);
    let id = held(session.open().await.unwrap()).request_id.unwrap();
    desk.update(&id, |r| r.status = ReviewStatus::Expired);
    assert_eq!(
        denied(session.open().await.unwrap()),
        format!("review {id} expired")
    );

    let mut session = connect(&chain, "s3", None);
    let id = held(session.open().await.unwrap()).request_id.unwrap();
    desk.approve(&id);
    desk.update(&id, |r| {
        r.status = ReviewStatus::Revoked;
        r.revoked_by = Some("dave".to_owned());
    });
    assert_eq!(
        denied(session.open().await.unwrap()),
        format!("review {id} was revoked by dave")
    );

    // An ended grant presented as a ticket.
    desk.insert(grant("old", Duration::ZERO));
    let mut session = chain.start(
        SessionInfo::new(
            "s4",
            UserInfo::new("alice"),
            ConnectionInfo::new("pg", "postgres"),
            Verb::Connect,
        )
        .with_request(SessionRequest::new().with_ticket("old")),
    );
    assert!(
        denied(session.open().await.unwrap())
            .starts_with("the access granted by review old ended at "),
    );
}

#[tokio::test]
async fn a_grant_binds_the_arguments_it_was_asked_with() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);
    let mut first = connect_with_args(&chain, "s1", &["-c", "psql prod"], None);
    let id = held(first.open().await.unwrap()).request_id.unwrap();
    assert_eq!(desk.request(&id).args, ["-c", "psql prod"]);
    desk.approve(&id);
    allowed(first.open().await.unwrap());

    // The same arguments run under the grant; others are refused, naming both, and no
    // second review is asked for while the grant runs.
    let mut same = connect_with_args(&chain, "s2", &["-c", "psql prod"], None);
    allowed(same.open().await.unwrap());
    assert_eq!(attribute(&same, ID_ATTRIBUTE), Some(id.clone()));
    let mut other = connect_with_args(&chain, "s3", &["-c", "rm -rf /"], None);
    assert_eq!(
        denied(other.open().await.unwrap()),
        format!(
            r#"the arguments ["-c","rm -rf /"] differ from the arguments ["-c","psql prod"] that review {id} grants access with: connect with exactly those, or revoke the grant (hoop reviews revoke {id}) and ask again"#
        )
    );
    let mut none = connect_with_args(&chain, "s4", &[], None);
    assert!(denied(none.open().await.unwrap()).starts_with("the arguments [] differ"),);
    assert_eq!(desk.count(), 1);
    // Presenting the grant as a ticket does not get round it.
    let mut ticket = connect_with_args(&chain, "s5", &["-c", "sh"], Some(&id));
    assert!(
        denied(ticket.open().await.unwrap()).starts_with(r#"the arguments ["-c","sh"] differ"#),
    );
    let mut ticket = connect_with_args(&chain, "s6", &["-c", "psql prod"], Some(&id));
    allowed(ticket.open().await.unwrap());

    // With grants for several argument lists, the matching one lets the session in.
    let mut other_grant = grant("g2", Duration::from_secs(7200));
    other_grant.args = vec!["-c".to_owned(), "rm -rf /".to_owned()];
    desk.insert(other_grant);
    let mut matching = connect_with_args(&chain, "s7", &["-c", "psql prod"], None);
    allowed(matching.open().await.unwrap());
    assert_eq!(attribute(&matching, ID_ATTRIBUTE), Some(id));
    let mut matching = connect_with_args(&chain, "s8", &["-c", "rm -rf /"], None);
    allowed(matching.open().await.unwrap());
    assert_eq!(attribute(&matching, ID_ATTRIBUTE).as_deref(), Some("g2"));
}

#[tokio::test]
async fn a_desk_at_its_limit_denies_the_session_saying_which_limit() {
    let desk = Arc::new(Desk::default());
    desk.full.store(true, Ordering::SeqCst);
    let chain = chain(&desk);
    for mut session in [exec(&chain, "s1"), connect(&chain, "s2", None)] {
        let reason = denied(session.open().await.unwrap());
        assert!(
            reason.starts_with("limit pending_reviews_per_user reached: user `alice`"),
            "{reason}"
        );
    }
    assert_eq!(desk.count(), 0);
}

// ---- failing closed --------------------------------------------------------------------

#[tokio::test]
async fn desk_errors_fail_the_session_closed() {
    let desk = Arc::new(Desk::default());
    let chain = chain(&desk);
    desk.down.store(true, Ordering::SeqCst);
    for mut session in [exec(&chain, "s1"), connect(&chain, "s2", None)] {
        match session.open().await.unwrap() {
            Outcome::Failed { plugin, error } => {
                assert_eq!(plugin, "review");
                assert!(error.to_string().contains("database is down"), "{error}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        assert!(session.open().await.is_err(), "the session has ended");
    }

    // Down while a held session is asked again.
    desk.down.store(false, Ordering::SeqCst);
    let mut session = exec(&chain, "s3");
    held(session.open().await.unwrap());
    desk.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        session.open().await.unwrap(),
        Outcome::Failed { .. }
    ));
}

#[test]
fn build_without_the_reviews_resource_is_a_config_error() {
    let err = ReviewFactory
        .build(&config(), &Resources::new())
        .unwrap_err();
    assert!(err.to_string().contains("Reviews"), "{err}");
    assert!(ReviewFactory.validate(&config()).is_ok());

    let registry = Registry::builtin().unwrap();
    std::hint::black_box(&hoop_plugin_review::REGISTRATION);
    let config = config();
    let err = registry
        .build_chain([("review", &config)], &Resources::new())
        .unwrap_err();
    assert!(
        err.to_string().starts_with("plugin `review`: config:"),
        "{err}"
    );
    let desk: Arc<Desk> = Arc::default();
    let chain = registry
        .build_chain([("review", &config)], &Resources::new().with(Reviews(desk)))
        .unwrap();
    assert_eq!(chain.names().collect::<Vec<_>>(), ["review"]);
}
