//! ReviewService: the reviews (access requests) that sessions on connections with reviewers
//! are held on, created by real Exec and Connect calls, seen, decided and revoked through
//! the API.

use std::time::Duration;

use hoop_rs::{
    Backend, Gateway, Setup, admin, assert_status, authed, command_connection, e2e, eventually,
    exec, pb,
};
use tonic::Code;

e2e!(
    a_reviewer_approves_a_held_exec_which_then_runs,
    a_rejection_needs_a_reason_and_denies_the_session,
    min_approvals_needs_distinct_reviewers,
    without_min_approvals_every_group_approves,
    requesters_revoke_pending_reviews_and_admins_approved_ones,
    listings_filter_page_and_show_only_what_the_caller_may_see,
    a_time_based_review_grants_access_until_revoked,
    a_grant_ends_its_sessions_when_it_expires,
    pending_reviews_survive_a_restart,
    no_path_opens_a_session_without_an_approval,
    a_review_pending_past_its_ttl_expires_and_ends_its_session,
    waiting_for_approval_does_not_use_up_the_session_time_limit,
    a_hidden_review_answers_like_a_missing_one,
);

/// How long any single step may take.
const STEP: Duration = Duration::from_secs(30);

const INPUT: &[u8] = b"SELECT * FROM accounts;\n";
/// Its SHA-256, lower-case hex (`printf 'SELECT * FROM accounts;\n' | sha256sum`).
const INPUT_SHA256: &str = "5d780bf11dc3b24153c4bb8cbdbb302f7ee131454b0ede3fd43eb1afc47522a3";

async fn create(gw: &Gateway, conn: pb::Connection) {
    tokio::time::timeout(
        STEP,
        gw.connections()
            .await
            .create_connection(admin(pb::CreateConnectionRequest {
                connection: Some(conn),
            })),
    )
    .await
    .expect("CreateConnection timed out")
    .unwrap();
}

/// A connection running `cat` (the output is the input) whose sessions need approval by
/// `reviewers`.
fn reviewed(name: &str, reviewers: &[&str]) -> pb::Connection {
    let mut conn = command_connection(name, &["cat"]);
    conn.reviewers = reviewers.iter().map(|g| g.to_string()).collect();
    conn
}

/// The people of these tests: alice and carol develop, bob and dave are DBAs, erin is an
/// SRE, frank is both, ann audits. Returns their tokens in that order.
struct People {
    alice: String,
    bob: String,
    carol: String,
    dave: String,
    erin: String,
    frank: String,
    ann: String,
}

async fn people(gw: &Gateway) -> People {
    People {
        alice: gw.user_with_token("alice", &["dev"]).await,
        bob: gw.user_with_token("bob", &["dba"]).await,
        carol: gw.user_with_token("carol", &["dev"]).await,
        dave: gw.user_with_token("dave", &["dba"]).await,
        erin: gw.user_with_token("erin", &["sre"]).await,
        frank: gw.user_with_token("frank", &["dba", "sre"]).await,
        ann: gw.user_with_token("ann", &["auditor"]).await,
    }
}

fn run(conn: &str, input: &[u8]) -> pb::ExecRequest {
    pb::ExecRequest {
        connection: conn.into(),
        input: input.to_vec(),
        ..Default::default()
    }
}

/// An Exec held for review.
struct Held {
    session_id: String,
    held: pb::SessionHeld,
    events: tonic::Streaming<pb::SessionEvent>,
}

/// What the rest of a session's stream brought.
#[derive(Debug, Default)]
struct Rest {
    stdout: Vec<u8>,
    exit_code: Option<i32>,
    reason: String,
}

/// Starts an Exec and reads its events until it is held.
async fn exec_until_held(gw: &Gateway, token: &str, req: pb::ExecRequest) -> Held {
    use pb::session_event::Event;
    let mut events = tokio::time::timeout(STEP, gw.sessions().await.exec(authed(token, req)))
        .await
        .expect("Exec timed out")
        .unwrap()
        .into_inner();
    let mut session_id = String::new();
    loop {
        let event = tokio::time::timeout(STEP, events.message())
            .await
            .expect("no `held` event in time")
            .unwrap()
            .expect("the session ended without being held")
            .event
            .unwrap();
        match event {
            Event::Started(s) => session_id = s.session_id,
            Event::Held(held) => {
                return Held {
                    session_id,
                    held,
                    events,
                };
            }
            other => panic!("unexpected {other:?} before `held`"),
        }
    }
}

impl Held {
    fn id(&self) -> String {
        self.held.review_id.clone()
    }

    /// Reads the session's remaining events to its end.
    async fn rest(mut self) -> Rest {
        use pb::session_event::Event;
        let mut rest = Rest::default();
        while let Some(event) = tokio::time::timeout(STEP, self.events.message())
            .await
            .expect("the held session did not go on in time")
            .unwrap()
        {
            match event.event.unwrap() {
                Event::Output(o) => rest.stdout.extend(o.data),
                Event::Exit(e) => {
                    rest.exit_code = Some(e.exit_code);
                    rest.reason = e.reason;
                }
                Event::Started(_) | Event::Held(_) => {}
            }
        }
        rest
    }
}

/// Creates a pending review by `token` on `conn` and leaves: the session ends, the review
/// stays pending.
async fn pending_review(gw: &Gateway, token: &str, conn: &str, input: &[u8]) -> String {
    let held = exec_until_held(gw, token, run(conn, input)).await;
    held.id()
}

async fn get(gw: &Gateway, token: &str, id: &str) -> Result<pb::Review, tonic::Status> {
    tokio::time::timeout(
        STEP,
        gw.reviews()
            .await
            .get_review(authed(token, pb::GetReviewRequest { id: id.to_owned() })),
    )
    .await
    .expect("GetReview timed out")
    .map(tonic::Response::into_inner)
}

async fn approve(
    gw: &Gateway,
    token: &str,
    id: &str,
    group: &str,
) -> Result<pb::Review, tonic::Status> {
    let req = pb::ApproveReviewRequest {
        id: id.to_owned(),
        group: group.to_owned(),
        reason: String::new(),
    };
    tokio::time::timeout(STEP, gw.reviews().await.approve_review(authed(token, req)))
        .await
        .expect("ApproveReview timed out")
        .map(tonic::Response::into_inner)
}

async fn reject(
    gw: &Gateway,
    token: &str,
    id: &str,
    reason: &str,
) -> Result<pb::Review, tonic::Status> {
    let req = pb::RejectReviewRequest {
        id: id.to_owned(),
        reason: reason.to_owned(),
        group: String::new(),
    };
    tokio::time::timeout(STEP, gw.reviews().await.reject_review(authed(token, req)))
        .await
        .expect("RejectReview timed out")
        .map(tonic::Response::into_inner)
}

async fn revoke(
    gw: &Gateway,
    token: &str,
    id: &str,
    reason: &str,
) -> Result<pb::Review, tonic::Status> {
    let req = pb::RevokeReviewRequest {
        id: id.to_owned(),
        reason: reason.to_owned(),
    };
    tokio::time::timeout(STEP, gw.reviews().await.revoke_review(authed(token, req)))
        .await
        .expect("RevokeReview timed out")
        .map(tonic::Response::into_inner)
}

async fn list(
    gw: &Gateway,
    token: &str,
    req: pb::ListReviewsRequest,
) -> Result<pb::ListReviewsResponse, tonic::Status> {
    tokio::time::timeout(STEP, gw.reviews().await.list_reviews(authed(token, req)))
        .await
        .expect("ListReviews timed out")
        .map(tonic::Response::into_inner)
}

/// The ids of every review `token` lists with `req`, page by page.
async fn list_ids(gw: &Gateway, token: &str, mut req: pb::ListReviewsRequest) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = list(gw, token, req.clone()).await.unwrap();
        ids.extend(page.reviews.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        req.page_token = page.next_page_token;
    }
    panic!("more than 100 pages");
}

fn awaiting_me() -> pb::ListReviewsRequest {
    pb::ListReviewsRequest {
        awaiting_me: true,
        ..Default::default()
    }
}

fn status(review: &pb::Review) -> pb::ReviewStatus {
    pb::ReviewStatus::try_from(review.status).unwrap()
}

fn seconds(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().expect("a timestamp").seconds
}

async fn a_reviewer_approves_a_held_exec_which_then_runs(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;

    let held = exec_until_held(&gw, &p.alice, run("pg", INPUT)).await;
    let id = held.id();
    assert!(!id.is_empty());
    assert_eq!(held.held.groups, ["dba"]);
    assert!(held.held.reason.contains("dba"), "{:?}", held.held);

    // Bob's queue has it.
    let queue = list(&gw, &p.bob, awaiting_me()).await.unwrap();
    assert_eq!(
        queue.reviews.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&id]
    );

    // The exact request, for the reviewer to read.
    let review = get(&gw, &p.bob, &id).await.unwrap();
    assert_eq!(status(&review), pb::ReviewStatus::Pending);
    assert_eq!(review.kind, pb::ReviewKind::OneTime as i32);
    assert_eq!(
        (
            review.requester.as_str(),
            review.connection.as_str(),
            review.verb.as_str()
        ),
        ("alice", "pg", "exec")
    );
    assert_eq!(review.input, INPUT);
    assert_eq!(review.input_sha256, INPUT_SHA256);
    assert!(review.args.is_empty());
    assert_eq!(review.groups, ["dba"]);
    assert_eq!(review.min_approvals, 0);
    assert!(review.decisions.is_empty());
    assert!(review.decide_time.is_none());
    // The default TTL: 24 hours.
    assert_eq!(
        seconds(&review.expire_time) - seconds(&review.create_time),
        24 * 3600
    );

    // Not by the requester, nor by someone outside the groups (who cannot even see it: to
    // them it does not exist).
    assert_status(
        approve(&gw, &p.alice, &id, "").await,
        Code::PermissionDenied,
        "requesters cannot approve their own request",
    );
    assert_status(
        approve(&gw, &p.carol, &id, "").await,
        Code::NotFound,
        &format!("review `{id}` not found"),
    );
    assert_status(get(&gw, &p.carol, &id).await, Code::NotFound, &id);
    assert!(
        list(&gw, &p.carol, Default::default())
            .await
            .unwrap()
            .reviews
            .is_empty()
    );
    assert_status(get(&gw, &p.bob, "no-such-review").await, Code::NotFound, "");
    assert_status(get(&gw, &p.bob, "").await, Code::InvalidArgument, "id");
    // Admins and auditors see it, but decide only as members of the review's groups.
    assert_status(
        approve(&gw, hoop_rs::ADMIN_TOKEN, &id, "").await,
        Code::PermissionDenied,
        "dba",
    );
    assert_status(
        approve(&gw, &p.ann, &id, "").await,
        Code::PermissionDenied,
        "only members of the review's groups (dba) may approve",
    );

    let approved = approve(&gw, &p.bob, &id, "").await.unwrap();
    assert_eq!(status(&approved), pb::ReviewStatus::Approved);
    assert_eq!(approved.decisions.len(), 1);
    let decision = &approved.decisions[0];
    assert_eq!(
        (
            decision.reviewer.as_str(),
            decision.group.as_str(),
            decision.approved
        ),
        ("bob", "dba", true)
    );
    assert!(decision.decide_time.is_some());
    assert!(approved.decide_time.is_some());

    // Decided once: no second decision.
    assert_status(
        approve(&gw, &p.dave, &id, "").await,
        Code::FailedPrecondition,
        "not PENDING",
    );
    assert_status(
        approve(&gw, &p.bob, &id, "").await,
        Code::FailedPrecondition,
        "",
    );
    assert!(
        list(&gw, &p.bob, awaiting_me())
            .await
            .unwrap()
            .reviews
            .is_empty()
    );

    // The held session goes on and runs exactly the reviewed input, once.
    let session_id = held.session_id.clone();
    let rest = held.rest().await;
    assert_eq!(rest.exit_code, Some(0), "{rest:?}");
    assert_eq!(rest.stdout, INPUT);
    let executed = get(&gw, &p.alice, &id).await.unwrap();
    assert_eq!(status(&executed), pb::ReviewStatus::Executed);
    assert_eq!(executed.session_id, session_id);
}

async fn a_rejection_needs_a_reason_and_denies_the_session(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;
    let held = exec_until_held(&gw, &p.alice, run("pg", INPUT)).await;
    let id = held.id();

    assert_status(
        reject(&gw, &p.bob, &id, "").await,
        Code::InvalidArgument,
        "reason",
    );
    assert_status(
        reject(&gw, &p.bob, &id, "  ").await,
        Code::InvalidArgument,
        "reason",
    );
    assert_status(
        reject(&gw, &p.alice, &id, "changed my mind").await,
        Code::PermissionDenied,
        "requesters cannot reject their own request",
    );
    assert_status(
        reject(&gw, &p.carol, &id, "no").await,
        Code::NotFound,
        &format!("review `{id}` not found"),
    );
    assert_status(
        reject(&gw, &p.ann, &id, "no").await,
        Code::PermissionDenied,
        "only members of the review's groups (dba) may reject",
    );

    let rejected = reject(&gw, &p.bob, &id, "not during business hours")
        .await
        .unwrap();
    assert_eq!(status(&rejected), pb::ReviewStatus::Rejected);
    assert_eq!(rejected.reason, "not during business hours");
    let decision = &rejected.decisions[0];
    assert_eq!(
        (
            decision.reviewer.as_str(),
            decision.approved,
            decision.reason.as_str()
        ),
        ("bob", false, "not during business hours")
    );
    assert_status(
        approve(&gw, &p.dave, &id, "").await,
        Code::FailedPrecondition,
        "REJECTED, not PENDING",
    );

    // The held session ends, saying who rejected it and why.
    let rest = held.rest().await;
    assert_eq!(rest.exit_code, Some(-1), "{rest:?}");
    assert!(rest.stdout.is_empty());
    assert!(
        rest.reason
            .contains("rejected by bob (dba): not during business hours"),
        "{rest:?}"
    );
}

async fn min_approvals_needs_distinct_reviewers(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    let mut conn = reviewed("pg", &["dba"]);
    conn.min_approvals = Some(2);
    create(&gw, conn).await;
    let held = exec_until_held(&gw, &p.alice, run("pg", INPUT)).await;
    let id = held.id();
    assert_eq!(get(&gw, &p.bob, &id).await.unwrap().min_approvals, 2);

    let once = approve(&gw, &p.bob, &id, "dba").await.unwrap();
    assert_eq!(status(&once), pb::ReviewStatus::Pending);
    assert_eq!(once.decisions.len(), 1);
    // Bob has decided: it no longer awaits him, but still awaits dave.
    assert!(
        list(&gw, &p.bob, awaiting_me())
            .await
            .unwrap()
            .reviews
            .is_empty()
    );
    assert_eq!(
        list(&gw, &p.dave, awaiting_me())
            .await
            .unwrap()
            .reviews
            .len(),
        1
    );
    assert_status(
        approve(&gw, &p.bob, &id, "").await,
        Code::FailedPrecondition,
        "bob already decided",
    );

    let twice = approve(&gw, &p.dave, &id, "").await.unwrap();
    assert_eq!(status(&twice), pb::ReviewStatus::Approved);
    let reviewers: Vec<&str> = twice
        .decisions
        .iter()
        .map(|d| d.reviewer.as_str())
        .collect();
    assert_eq!(reviewers, ["bob", "dave"]);
    let rest = held.rest().await;
    assert_eq!(rest.stdout, INPUT, "{rest:?}");
}

async fn without_min_approvals_every_group_approves(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba", "sre"])).await;
    let held = exec_until_held(&gw, &p.alice, run("pg", INPUT)).await;
    let id = held.id();
    assert_eq!(held.held.groups, ["dba", "sre"]);

    // Frank is in both groups: he must say which one he decides for.
    assert_status(
        approve(&gw, &p.frank, &id, "").await,
        Code::InvalidArgument,
        "group: user `frank` is in several of the review's groups (dba, sre)",
    );
    assert_status(
        approve(&gw, &p.frank, &id, "dev").await,
        Code::PermissionDenied,
        "group `dev`",
    );
    // Bob is not in sre.
    assert_status(
        approve(&gw, &p.bob, &id, "sre").await,
        Code::PermissionDenied,
        "not a member of group `sre`",
    );

    let dba = approve(&gw, &p.bob, &id, "").await.unwrap();
    assert_eq!(
        status(&dba),
        pb::ReviewStatus::Pending,
        "sre has not approved"
    );
    // A second dba approval does not stand for sre.
    let still = approve(&gw, &p.frank, &id, "dba").await.unwrap();
    assert_eq!(status(&still), pb::ReviewStatus::Pending);
    let both = approve(&gw, &p.erin, &id, "").await.unwrap();
    assert_eq!(status(&both), pb::ReviewStatus::Approved);
    let groups: Vec<&str> = both.decisions.iter().map(|d| d.group.as_str()).collect();
    assert_eq!(groups, ["dba", "dba", "sre"]);
    let rest = held.rest().await;
    assert_eq!(rest.exit_code, Some(0), "{rest:?}");
}

async fn requesters_revoke_pending_reviews_and_admins_approved_ones(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;

    // The requester withdraws a pending request: the held session ends.
    let held = exec_until_held(&gw, &p.alice, run("pg", INPUT)).await;
    let id = held.id();
    // Carol may not even see it; ann (auditor) sees it but may not revoke it.
    assert_status(
        revoke(&gw, &p.carol, &id, "").await,
        Code::NotFound,
        &format!("review `{id}` not found"),
    );
    assert_status(
        revoke(&gw, &p.ann, &id, "").await,
        Code::PermissionDenied,
        "only the requester, members of the review's groups (dba) and admins may revoke",
    );
    let revoked = revoke(&gw, &p.alice, &id, "wrong query").await.unwrap();
    assert_eq!(status(&revoked), pb::ReviewStatus::Revoked);
    assert_eq!(revoked.reason, "revoked by alice: wrong query");
    assert_status(
        revoke(&gw, &p.alice, &id, "").await,
        Code::FailedPrecondition,
        "REVOKED, not PENDING or APPROVED",
    );
    assert_status(
        approve(&gw, &p.bob, &id, "").await,
        Code::FailedPrecondition,
        "not PENDING",
    );
    let rest = held.rest().await;
    assert_eq!(rest.exit_code, Some(-1), "{rest:?}");
    assert!(
        rest.reason.contains("revoked by alice: wrong query"),
        "{rest:?}"
    );

    // An approved review nobody ran yet (the requester left while it was pending) is
    // revoked by an admin, who is in none of its groups.
    let id = pending_review(&gw, &p.alice, "pg", INPUT).await;
    let approved = approve(&gw, &p.bob, &id, "").await.unwrap();
    assert_eq!(status(&approved), pb::ReviewStatus::Approved);
    let revoked = revoke(&gw, hoop_rs::ADMIN_TOKEN, &id, "").await.unwrap();
    assert_eq!(status(&revoked), pb::ReviewStatus::Revoked);
    assert_eq!(revoked.reason, "revoked by admin");
    // The decisions stay on record.
    assert_eq!(revoked.decisions.len(), 1);

    // A reviewer may revoke too.
    let id = pending_review(&gw, &p.alice, "pg", INPUT).await;
    let revoked = revoke(&gw, &p.dave, &id, "use the replica").await.unwrap();
    assert_eq!(revoked.reason, "revoked by dave: use the replica");
    assert_status(
        revoke(&gw, &p.dave, "", "").await,
        Code::InvalidArgument,
        "id",
    );
    assert_status(
        revoke(&gw, &p.dave, "no-such-review", "").await,
        Code::NotFound,
        "",
    );
}

async fn listings_filter_page_and_show_only_what_the_caller_may_see(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;
    let mut ops = reviewed("ops", &["sre"]);
    ops.review_ttl = Some(prost_types::Duration {
        seconds: 120,
        nanos: 0,
    });
    create(&gw, ops).await;

    // Oldest first: three of alice's on pg, then one of erin's on ops.
    let mut alices = Vec::new();
    for n in 0..3 {
        let input = format!("SELECT {n};\n");
        alices.push(pending_review(&gw, &p.alice, "pg", input.as_bytes()).await);
        // Distinct creation times (kept to the millisecond), so the order is certain.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let erins = pending_review(&gw, &p.erin, "ops", b"uptime\n").await;
    let newest_first: Vec<String> = std::iter::once(erins.clone())
        .chain(alices.iter().rev().cloned())
        .collect();

    // The connection's TTL sets when a review expires.
    let review = get(&gw, &p.erin, &erins).await.unwrap();
    assert_eq!(
        seconds(&review.expire_time) - seconds(&review.create_time),
        120
    );

    let all = pb::ListReviewsRequest::default();
    // Admins and auditors see everything, newest first.
    assert_eq!(
        list_ids(&gw, hoop_rs::ADMIN_TOKEN, all.clone()).await,
        newest_first
    );
    assert_eq!(list_ids(&gw, &p.ann, all.clone()).await, newest_first);
    // Others see their own and their groups'.
    assert_eq!(
        list_ids(&gw, &p.alice, all.clone()).await,
        newest_first[1..]
    );
    assert_eq!(list_ids(&gw, &p.bob, all.clone()).await, newest_first[1..]);
    assert_eq!(list_ids(&gw, &p.erin, all.clone()).await, [erins.as_str()]);
    assert_eq!(list_ids(&gw, &p.frank, all.clone()).await, newest_first);
    assert!(list_ids(&gw, &p.carol, all.clone()).await.is_empty());
    assert_status(get(&gw, &p.bob, &erins).await, Code::NotFound, "");
    assert!(get(&gw, &p.ann, &erins).await.is_ok());

    // mine, awaiting_me.
    let mine = pb::ListReviewsRequest {
        mine: true,
        ..Default::default()
    };
    assert_eq!(
        list_ids(&gw, &p.alice, mine.clone()).await,
        newest_first[1..]
    );
    assert_eq!(list_ids(&gw, &p.erin, mine.clone()).await, [erins.as_str()]);
    assert!(list_ids(&gw, &p.bob, mine.clone()).await.is_empty());
    assert!(list_ids(&gw, hoop_rs::ADMIN_TOKEN, mine).await.is_empty());
    assert_eq!(
        list_ids(&gw, &p.bob, awaiting_me()).await,
        newest_first[1..]
    );
    assert_eq!(list_ids(&gw, &p.frank, awaiting_me()).await, newest_first);
    // Erin's own request does not await her, and admins await nothing as such.
    assert!(list_ids(&gw, &p.erin, awaiting_me()).await.is_empty());
    assert!(
        list_ids(&gw, hoop_rs::ADMIN_TOKEN, awaiting_me())
            .await
            .is_empty()
    );

    // Status and connection filters.
    approve(&gw, &p.bob, &alices[0], "").await.unwrap();
    let by_status = |s: pb::ReviewStatus| pb::ListReviewsRequest {
        status: s as i32,
        ..Default::default()
    };
    assert_eq!(
        list_ids(
            &gw,
            hoop_rs::ADMIN_TOKEN,
            by_status(pb::ReviewStatus::Approved)
        )
        .await,
        [alices[0].clone()]
    );
    assert_eq!(
        list_ids(&gw, &p.alice, by_status(pb::ReviewStatus::Pending)).await,
        [alices[2].clone(), alices[1].clone()]
    );
    assert!(
        list_ids(&gw, &p.bob, by_status(pb::ReviewStatus::Rejected))
            .await
            .is_empty()
    );
    assert_eq!(
        list_ids(&gw, &p.bob, awaiting_me()).await,
        [alices[2].clone(), alices[1].clone()]
    );
    let awaiting_approved = pb::ListReviewsRequest {
        status: pb::ReviewStatus::Approved as i32,
        ..awaiting_me()
    };
    assert!(list_ids(&gw, &p.bob, awaiting_approved).await.is_empty());
    let on_ops = pb::ListReviewsRequest {
        connection: "ops".into(),
        ..Default::default()
    };
    assert_eq!(
        list_ids(&gw, hoop_rs::ADMIN_TOKEN, on_ops.clone()).await,
        [erins.as_str()]
    );
    assert!(list_ids(&gw, &p.bob, on_ops).await.is_empty());

    // Paging, for those who see everything and for those whose listing is filtered.
    for token in [hoop_rs::ADMIN_TOKEN, p.frank.as_str(), p.bob.as_str()] {
        let expected = list_ids(&gw, token, all.clone()).await;
        for size in [1, 2, 3] {
            let paged = pb::ListReviewsRequest {
                page_size: size,
                ..Default::default()
            };
            let first = list(&gw, token, paged.clone()).await.unwrap();
            let size = usize::try_from(size).unwrap();
            assert_eq!(first.reviews.len(), size.min(expected.len()));
            assert_eq!(first.next_page_token.is_empty(), size >= expected.len());
            assert_eq!(
                list_ids(&gw, token, paged).await,
                expected,
                "page size {size}"
            );
        }
    }
    let whole = pb::ListReviewsRequest {
        page_size: 4,
        ..Default::default()
    };
    assert!(
        list(&gw, hoop_rs::ADMIN_TOKEN, whole)
            .await
            .unwrap()
            .next_page_token
            .is_empty()
    );

    // Bad requests name their field.
    let bad_token = pb::ListReviewsRequest {
        page_token: "not-a-token".into(),
        ..Default::default()
    };
    assert_status(
        list(&gw, &p.bob, bad_token).await,
        Code::InvalidArgument,
        "page_token",
    );
    let bad_size = pb::ListReviewsRequest {
        page_size: -1,
        ..Default::default()
    };
    assert_status(
        list(&gw, &p.bob, bad_size).await,
        Code::InvalidArgument,
        "page_size",
    );
    let bad_status = pb::ListReviewsRequest {
        status: 42,
        ..Default::default()
    };
    assert_status(
        list(&gw, &p.bob, bad_status).await,
        Code::InvalidArgument,
        "status",
    );
    assert_status(
        list(&gw, "hpk_not-a-key", all).await,
        Code::Unauthenticated,
        "",
    );
}

async fn a_time_based_review_grants_access_until_revoked(backend: Backend) {
    use pb::session_event::Event;
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
            connection: "pg".into(),
            access_duration: Some(prost_types::Duration {
                seconds: 300,
                nanos: 0,
            }),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut events = tokio::time::timeout(
        STEP,
        gw.sessions().await.connect(authed(
            &p.alice,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )),
    )
    .await
    .expect("Connect timed out")
    .unwrap()
    .into_inner();
    let mut next = async || {
        tokio::time::timeout(STEP, events.message())
            .await
            .expect("no session event in time")
            .unwrap()
            .map(|e| e.event.unwrap())
    };
    let id = loop {
        match next().await.expect("the session ended without being held") {
            Event::Started(_) => {}
            Event::Held(held) => break held.review_id,
            other => panic!("unexpected {other:?} before `held`"),
        }
    };

    let review = get(&gw, &p.bob, &id).await.unwrap();
    assert_eq!(review.kind, pb::ReviewKind::Jit as i32);
    assert_eq!(review.verb, "connect");
    assert!(review.input.is_empty() && review.input_sha256.is_empty());
    assert_eq!(review.access_duration.map(|d| d.seconds), Some(300));

    let approved = approve(&gw, &p.bob, &id, "").await.unwrap();
    assert_eq!(status(&approved), pb::ReviewStatus::Approved);
    assert_eq!(
        seconds(&approved.grant_end_time) - seconds(&approved.decide_time),
        300
    );

    // The session runs under the grant.
    tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Input(b"hello\n".to_vec())),
    })
    .await
    .unwrap();
    let mut out = Vec::new();
    while out != b"hello\n" {
        match next().await.expect("the session ended") {
            Event::Output(o) => out.extend(o.data),
            other => panic!("unexpected {other:?}"),
        }
    }

    // Revoking the grant ends it.
    let revoked = revoke(&gw, &p.bob, &id, "done").await.unwrap();
    assert_eq!(status(&revoked), pb::ReviewStatus::Revoked);
    assert_eq!(revoked.reason, "revoked by bob: done");
    let exit = loop {
        match next().await.expect("the session ended without an exit") {
            Event::Exit(exit) => break exit,
            Event::Output(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(exit.reason.contains("revoked by bob"), "{exit:?}");
    drop(tx);
}

/// An interactive session on `conn` asking for `seconds` of access.
struct Interactive {
    tx: tokio::sync::mpsc::Sender<pb::ConnectRequest>,
    events: tonic::Streaming<pb::SessionEvent>,
}

impl Interactive {
    async fn open(gw: &Gateway, token: &str, conn: &str, seconds: i64) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(pb::ConnectRequest {
            request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
                connection: conn.into(),
                access_duration: Some(prost_types::Duration { seconds, nanos: 0 }),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let events = tokio::time::timeout(
            STEP,
            gw.sessions().await.connect(authed(
                token,
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )),
        )
        .await
        .expect("Connect timed out")
        .unwrap()
        .into_inner();
        Self { tx, events }
    }

    async fn next(&mut self) -> pb::session_event::Event {
        tokio::time::timeout(STEP, self.events.message())
            .await
            .expect("no session event in time")
            .unwrap()
            .expect("the stream ended")
            .event
            .unwrap()
    }

    /// Reads up to `started` (and returns the review id if the session was held instead of
    /// going on).
    async fn held(&mut self) -> Option<String> {
        use pb::session_event::Event;
        match self.next().await {
            Event::Started(_) => {}
            other => panic!("unexpected {other:?}"),
        }
        // Echo a line: either it comes back (the session runs) or `held` comes first.
        self.tx
            .send(pb::ConnectRequest {
                request: Some(pb::connect_request::Request::Input(b"ping\n".to_vec())),
            })
            .await
            .unwrap();
        match self.next().await {
            Event::Held(held) => Some(held.review_id),
            Event::Output(o) => {
                assert_eq!(o.data, &b"ping\n"[..]);
                None
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Reads output until the session exits; returns the exit reason.
    async fn exit_reason(&mut self) -> String {
        use pb::session_event::Event;
        loop {
            match self.next().await {
                Event::Exit(exit) => return exit.reason,
                Event::Output(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

async fn a_grant_ends_its_sessions_when_it_expires(backend: Backend) {
    use pb::session_event::Event;
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;

    // Alice asks for 3 seconds of access; bob approves.
    let mut first = Interactive::open(&gw, &p.alice, "pg", 3).await;
    let id = first.held().await.expect("held for review");
    approve(&gw, &p.bob, &id, "").await.unwrap();
    let mut out = Vec::new();
    while out != b"ping\n" {
        match first.next().await {
            Event::Output(o) => out.extend(o.data),
            other => panic!("unexpected {other:?}"),
        }
    }
    // A second session under the same grant needs no new review.
    let mut second = Interactive::open(&gw, &p.alice, "pg", 3).await;
    assert_eq!(second.held().await, None, "the grant covers it");

    // Both end when the grant does: its clock started at the approval, not at each connect.
    let reason = first.exit_reason().await;
    assert!(
        reason.contains(&format!("access review {id} ended")),
        "{reason}"
    );
    let reason = second.exit_reason().await;
    assert!(
        reason.contains(&format!("access review {id} ended")),
        "{reason}"
    );
    // The review says so (its expiry runs on the same deadline, independently).
    eventually(STEP, "the grant to be EXPIRED", || async {
        let review = get(&gw, &p.alice, &id).await.unwrap();
        (status(&review) == pb::ReviewStatus::Expired).then_some(())
    })
    .await;

    // After it, connecting asks again.
    let mut third = Interactive::open(&gw, &p.alice, "pg", 3).await;
    let again = third.held().await.expect("a new review");
    assert_ne!(again, id);
    drop(third.tx);
}

async fn pending_reviews_survive_a_restart(backend: Backend) {
    let setup = Setup::new(backend);
    let gw = setup.start().await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;
    // Alice asks and leaves; the gateway restarts.
    let id = pending_review(&gw, &p.alice, "pg", INPUT).await;
    let setup = gw.stop().await;
    let gw = setup.start().await;
    let review = get(&gw, &p.bob, &id).await.unwrap();
    assert_eq!(status(&review), pb::ReviewStatus::Pending);

    // Before approval the review cannot run.
    let early = exec(
        &gw,
        &p.alice,
        pb::ExecRequest {
            review_id: id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(early.exit_code, Some(-1));
    assert!(early.reason.contains("PENDING"), "{}", early.reason);
    assert!(early.stdout.is_empty());

    approve(&gw, &p.bob, &id, "").await.unwrap();
    let ran = exec(
        &gw,
        &p.alice,
        pb::ExecRequest {
            review_id: id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ran.exit_code, Some(0), "{}", ran.reason);
    assert_eq!(ran.stdout, INPUT, "the reviewed input ran");
    assert!(ran.held.is_empty());
    let review = get(&gw, &p.bob, &id).await.unwrap();
    assert_eq!(status(&review), pb::ReviewStatus::Executed);
    assert_eq!(review.session_id, ran.session_id);
    // The session says which review let it in and who approved.
    let session = gw
        .sessions()
        .await
        .get_session(admin(pb::GetSessionRequest {
            id: ran.session_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.attributes.get("review.id"), Some(&id));
    assert_eq!(
        session
            .attributes
            .get("review.approved_by")
            .map(String::as_str),
        Some("bob (dba)")
    );
    // So does the recording's header.
    let (events, error) = hoop_rs::recording(&gw, hoop_rs::ADMIN_TOKEN, &ran.session_id)
        .await
        .unwrap();
    assert!(error.is_none(), "{error:?}");
    let header: serde_json::Value = serde_json::from_slice(&events[0].data).unwrap();
    assert_eq!(header["attributes"]["review.id"], id.as_str());
    assert_eq!(header["attributes"]["review.approved_by"], "bob (dba)");
}

async fn no_path_opens_a_session_without_an_approval(backend: Backend) {
    // A connection declared in config gets the same check as one made through the API.
    let setup = Setup::new(backend).with_toml(
        r#"
[[connections]]
name = "declared"
command = ["cat"]
reviewers = ["dba"]
"#,
    );
    let gw = setup.start().await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;

    // Exec: held, the program does not run.
    let held = exec_until_held(&gw, &p.alice, run("declared", INPUT)).await;
    let declared_review = held.id();
    drop(held);
    // Connect: held too.
    let mut interactive = Interactive::open(&gw, &p.alice, "declared", 60).await;
    assert!(interactive.held().await.is_some());
    drop(interactive.tx);

    // A pending review is no ticket.
    let pending = exec(
        &gw,
        &p.alice,
        pb::ExecRequest {
            review_id: declared_review.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(pending.exit_code, Some(-1));
    assert!(pending.stdout.is_empty());

    // An approved review opens only its own request: not another connection, not other
    // input, not twice.
    approve(&gw, &p.bob, &declared_review, "").await.unwrap();
    for (conn, input, why) in [
        ("pg", INPUT, "for connection declared"),
        ("declared", &b"DROP TABLE accounts;\n"[..], "input differs"),
    ] {
        let other = exec(
            &gw,
            &p.alice,
            pb::ExecRequest {
                connection: conn.into(),
                input: input.to_vec(),
                review_id: declared_review.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(other.exit_code, Some(-1), "{conn}: {}", other.reason);
        assert!(other.reason.contains(why), "{conn}: {}", other.reason);
        assert!(other.stdout.is_empty());
    }
    // Someone else cannot use alice's review: to them it does not exist.
    let result = exec(
        &gw,
        &p.carol,
        pb::ExecRequest {
            review_id: declared_review.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_status(result, Code::NotFound, "not found");

    let ran = exec(
        &gw,
        &p.alice,
        pb::ExecRequest {
            review_id: declared_review.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ran.stdout, INPUT);
    let again = exec(
        &gw,
        &p.alice,
        pb::ExecRequest {
            review_id: declared_review,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.exit_code, Some(-1));
    assert!(again.reason.contains("already ran"), "{}", again.reason);
    assert!(again.stdout.is_empty());
}

async fn a_review_pending_past_its_ttl_expires_and_ends_its_session(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    let mut conn = reviewed("pg", &["dba"]);
    conn.review_ttl = Some(prost_types::Duration {
        seconds: 2,
        nanos: 0,
    });
    create(&gw, conn).await;
    let held = exec_until_held(&gw, &p.alice, run("pg", INPUT)).await;
    let id = held.id();
    // Nobody decides: after 2 s the review expires and the waiting session ends with it.
    let rest = held.rest().await;
    assert_eq!(rest.exit_code, Some(-1));
    assert!(rest.reason.contains("expired"), "{}", rest.reason);
    assert!(rest.stdout.is_empty());
    let review = get(&gw, &p.bob, &id).await.unwrap();
    assert_eq!(status(&review), pb::ReviewStatus::Expired);
    assert_eq!(
        seconds(&review.expire_time) - seconds(&review.create_time),
        2
    );
    // Too late to decide.
    let late = approve(&gw, &p.bob, &id, "").await;
    assert_status(late, Code::FailedPrecondition, "EXPIRED");
}

async fn waiting_for_approval_does_not_use_up_the_session_time_limit(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    let mut conn = reviewed("pg", &["dba"]);
    conn.session_timeout = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    create(&gw, conn).await;
    let held = exec_until_held(&gw, &p.alice, run("pg", INPUT)).await;
    let id = held.id();
    // Longer than the time limit passes before the approval (nothing is expected to happen
    // meanwhile, so there is no event to wait for).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    approve(&gw, &p.bob, &id, "").await.unwrap();
    let rest = held.rest().await;
    assert_eq!(rest.exit_code, Some(0), "{}", rest.reason);
    assert_eq!(rest.stdout, INPUT);
}

/// An id no review has (reviews have UUIDs).
const MADE_UP_ID: &str = "00000000-0000-4000-8000-000000000000";

/// Asserts that `hidden` (a call naming review `id`, which the caller may not see) failed
/// exactly as `missing` (the same call naming [`MADE_UP_ID`]): same code, same message once
/// the id is substituted, NOT_FOUND.
#[track_caller]
fn answers_like_missing<T: std::fmt::Debug>(
    what: &str,
    id: &str,
    hidden: Result<T, tonic::Status>,
    missing: Result<T, tonic::Status>,
) {
    let hidden = hidden.expect_err(&format!("{what}: the hidden review answered"));
    let missing = missing.expect_err(&format!("{what}: the made-up review answered"));
    assert_eq!(missing.code(), Code::NotFound, "{what}: {missing:?}");
    assert_eq!(hidden.code(), missing.code(), "{what}: {hidden:?}");
    assert_eq!(
        hidden.message().replace(id, MADE_UP_ID),
        missing.message(),
        "{what}"
    );
    // (The id itself is left out: a random UUID may hold the letters `dba`.)
    assert!(
        !hidden.message().replace(id, MADE_UP_ID).contains("dba"),
        "{what}: {hidden:?}"
    );
}

/// Whatever its status, a review someone may not see (not theirs, none of its groups theirs,
/// not an admin or auditor) answers Get, Approve, Reject and Revoke exactly like an id there
/// is no review of: nothing says it exists, let alone its groups.
async fn a_hidden_review_answers_like_a_missing_one(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let p = people(&gw).await;
    create(&gw, reviewed("pg", &["dba"])).await;

    // alice's reviews on pg: one pending, one approved, one revoked.
    let pending = pending_review(&gw, &p.alice, "pg", INPUT).await;
    let approved = pending_review(&gw, &p.alice, "pg", INPUT).await;
    approve(&gw, &p.bob, &approved, "").await.unwrap();
    let revoked = pending_review(&gw, &p.alice, "pg", INPUT).await;
    revoke(&gw, &p.alice, &revoked, "").await.unwrap();

    // carol is a developer like alice; erin reviews other connections (sre).
    for token in [&p.carol, &p.erin] {
        for id in [&pending, &approved, &revoked] {
            answers_like_missing(
                "get",
                id,
                get(&gw, token, id).await,
                get(&gw, token, MADE_UP_ID).await,
            );
            for group in ["", "dba", "sre"] {
                answers_like_missing(
                    "approve",
                    id,
                    approve(&gw, token, id, group).await,
                    approve(&gw, token, MADE_UP_ID, group).await,
                );
            }
            answers_like_missing(
                "reject",
                id,
                reject(&gw, token, id, "no").await,
                reject(&gw, token, MADE_UP_ID, "no").await,
            );
            answers_like_missing(
                "revoke",
                id,
                revoke(&gw, token, id, "").await,
                revoke(&gw, token, MADE_UP_ID, "").await,
            );
        }
    }

    // None of that changed anything.
    let mut statuses = Vec::new();
    for id in [&pending, &approved, &revoked] {
        statuses.push(status(&get(&gw, &p.bob, id).await.unwrap()));
    }
    assert_eq!(
        statuses,
        [
            pb::ReviewStatus::Pending,
            pb::ReviewStatus::Approved,
            pb::ReviewStatus::Revoked
        ]
    );
    let untouched = get(&gw, hoop_rs::ADMIN_TOKEN, &pending).await.unwrap();
    assert!(untouched.decisions.is_empty(), "{untouched:?}");

    // Those who may see it still get precise answers: the requester may not approve her own,
    // an auditor may not decide or revoke.
    assert_status(
        approve(&gw, &p.alice, &pending, "").await,
        Code::PermissionDenied,
        "requesters cannot approve their own request",
    );
    assert_status(
        revoke(&gw, &p.ann, &pending, "").await,
        Code::PermissionDenied,
        "may revoke",
    );
    assert_status(
        revoke(&gw, &p.alice, &revoked, "").await,
        Code::FailedPrecondition,
        "REVOKED",
    );
}
