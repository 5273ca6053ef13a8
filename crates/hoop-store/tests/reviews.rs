//! Access reviews against real databases: SQLite always, PostgreSQL when
//! `HOOP_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hoop_store::testing::{POSTGRES_URL_VAR, scratch_postgres_database};
use hoop_store::{
    ApprovalRule, Connection, NewDecision, NewReview, Review, ReviewFilter, ReviewKind,
    ReviewStatus, SecretBox, Store, StoreError,
};
use sha2::{Digest, Sha256};

const KEY: &str = "0123456789abcdef0123456789abcdef-test";

/// Fresh, migrated stores to run each test on: a SQLite file, and a PostgreSQL database
/// when the server is configured.
async fn stores(dir: &tempfile::TempDir) -> Vec<Store> {
    let mut urls = vec![format!("sqlite://{}/hoop.db", dir.path().display())];
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(server) => urls.push(
            scratch_postgres_database(&server, "hoop_store")
                .await
                .unwrap(),
        ),
        Err(_) => eprintln!("{POSTGRES_URL_VAR} unset: PostgreSQL part skipped"),
    }
    let mut stores = Vec::new();
    for url in urls {
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        stores.push(store);
    }
    stores
}

/// A fixed instant plus `secs` seconds (whole milliseconds survive both backends).
fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
}

fn onetime(conn: &str, requester: &str, groups: &[&str]) -> NewReview {
    NewReview {
        kind: ReviewKind::OneTime,
        connection: conn.into(),
        requester: requester.into(),
        verb: "exec".into(),
        input: Some(b"SELECT 1;\n".to_vec()),
        args: vec!["-c".into(), "x".into()],
        groups: groups.iter().map(|g| g.to_string()).collect(),
        min_approvals: None,
        access_duration: None,
        created_at: t(0),
        expires_at: t(3600),
    }
}

fn jit(conn: &str, requester: &str, groups: &[&str], duration: Duration) -> NewReview {
    NewReview {
        kind: ReviewKind::Jit,
        verb: "connect".into(),
        input: None,
        args: Vec::new(),
        access_duration: Some(duration),
        ..onetime(conn, requester, groups)
    }
}

fn approve(reviewer: &str, group: &str, at: DateTime<Utc>) -> NewDecision {
    NewDecision {
        reviewer: reviewer.into(),
        group: group.into(),
        approved: true,
        reason: None,
        at,
    }
}

fn reject(reviewer: &str, group: &str, reason: &str, at: DateTime<Utc>) -> NewDecision {
    NewDecision {
        approved: false,
        reason: Some(reason.into()),
        ..approve(reviewer, group, at)
    }
}

fn conflict_message<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(message)) => message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn ids(reviews: &[Review]) -> Vec<&str> {
    reviews.iter().map(|r| r.id.as_str()).collect()
}

/// Creates a review and approves it with one decision per group.
async fn approved(store: &Store, new: &NewReview, at: DateTime<Utc>) -> Review {
    let review = store.create_review(new).await.unwrap();
    let mut last = review.clone();
    for (i, group) in review.groups.iter().enumerate() {
        last = store
            .decide_review(
                &review.id,
                &approve(&format!("reviewer{i}"), group, at),
                ApprovalRule::of(&review),
            )
            .await
            .unwrap();
    }
    assert_eq!(last.status, ReviewStatus::Approved);
    last
}

#[tokio::test]
async fn reviews_are_created_read_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        let mut first = onetime("pg", "alice", &["dba"]);
        first.created_at = t(1);
        let a = store.create_review(&first).await.unwrap();
        assert_eq!(a.id.len(), 36, "{}", a.id);
        assert_eq!(a.kind, ReviewKind::OneTime);
        assert_eq!(a.status, ReviewStatus::Pending);
        assert_eq!(a.input.as_deref(), Some(&b"SELECT 1;\n"[..]));
        let digest: String = Sha256::digest(b"SELECT 1;\n")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(a.input_sha256.as_deref(), Some(digest.as_str()));
        assert_eq!(a.args, ["-c", "x"]);
        assert_eq!(a.groups, ["dba"]);
        assert_eq!(
            (a.created_at, a.updated_at, a.expires_at),
            (t(1), t(1), t(3600))
        );
        assert_eq!((a.decided_at, a.grant_ends_at), (None, None));
        assert!(a.decisions.is_empty() && a.reason.is_none() && a.session_id.is_none());
        assert_eq!(store.get_review(&a.id).await.unwrap(), a);

        let mut second = jit("pg", "bob", &["sre", "dba"], Duration::from_secs(600));
        second.created_at = t(2);
        second.min_approvals = Some(1);
        let b = store.create_review(&second).await.unwrap();
        assert_eq!(b.kind, ReviewKind::Jit);
        assert_eq!(b.verb, "connect");
        assert_eq!((b.input.as_ref(), b.input_sha256.as_ref()), (None, None));
        assert_eq!(b.access_duration, Some(Duration::from_secs(600)));
        assert_eq!(b.min_approvals, Some(1));

        let mut third = onetime("mysql", "alice", &["sre"]);
        third.created_at = t(3);
        let c = store.create_review(&third).await.unwrap();

        // A fourth, at the same time as the third: the id breaks the tie.
        let mut fourth = onetime("mysql", "carol", &["ops"]);
        fourth.created_at = t(3);
        let d = store.create_review(&fourth).await.unwrap();

        assert!(matches!(
            store.get_review("no-such-review").await,
            Err(StoreError::NotFound { kind: "review", .. })
        ));
        let mut no_duration = jit("pg", "bob", &["dba"], Duration::ZERO);
        no_duration.access_duration = None;
        assert!(matches!(
            store.create_review(&no_duration).await,
            Err(StoreError::Invalid(_))
        ));

        // Newest first, ties by id (descending); paging with the last (created_at, id).
        let (c_or_d_first, c_or_d_second) = if c.id > d.id { (&c, &d) } else { (&d, &c) };
        let all = store
            .list_reviews(&ReviewFilter::default(), None, 100)
            .await
            .unwrap();
        assert_eq!(
            ids(&all),
            [
                c_or_d_first.id.as_str(),
                c_or_d_second.id.as_str(),
                &b.id,
                &a.id
            ]
        );
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_reviews(&ReviewFilter::default(), after.clone(), 1)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some((last.created_at, last.id.clone()));
            pages.extend(page);
        }
        assert_eq!(ids(&pages), ids(&all));

        let list = |filter: ReviewFilter| {
            let store = store.clone();
            async move {
                let reviews = store.list_reviews(&filter, None, 100).await.unwrap();
                reviews.into_iter().map(|r| r.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(ReviewFilter {
                requester: Some("alice".into()),
                ..Default::default()
            })
            .await,
            [c.id.as_str(), a.id.as_str()]
        );
        assert_eq!(
            list(ReviewFilter {
                connection: Some("pg".into()),
                ..Default::default()
            })
            .await,
            [b.id.as_str(), a.id.as_str()]
        );
        assert_eq!(
            list(ReviewFilter {
                awaiting_groups: Some(vec!["dba".into()]),
                ..Default::default()
            })
            .await,
            [b.id.as_str(), a.id.as_str()]
        );
        assert_eq!(
            list(ReviewFilter {
                awaiting_groups: Some(vec!["sre".into(), "nobody".into()]),
                ..Default::default()
            })
            .await,
            [c.id.as_str(), b.id.as_str()]
        );
        assert!(
            list(ReviewFilter {
                awaiting_groups: Some(Vec::new()),
                ..Default::default()
            })
            .await
            .is_empty()
        );

        // Decisions: b is approved by dave (min_approvals 1); eve approves a half-way.
        store
            .decide_review(&b.id, &approve("dave", "sre", t(10)), ApprovalRule::of(&b))
            .await
            .unwrap();
        let rule = ApprovalRule {
            groups: vec!["dba".into(), "sre".into()],
            min_approvals: None,
        };
        store
            .decide_review(&a.id, &approve("eve", "dba", t(11)), rule)
            .await
            .unwrap();
        assert_eq!(
            list(ReviewFilter {
                status: Some(ReviewStatus::Approved),
                ..Default::default()
            })
            .await,
            [b.id.as_str()]
        );
        assert_eq!(
            list(ReviewFilter {
                status: Some(ReviewStatus::Pending),
                connection: Some("pg".into()),
                ..Default::default()
            })
            .await,
            [a.id.as_str()]
        );
        // No longer awaiting once approved.
        assert_eq!(
            list(ReviewFilter {
                awaiting_groups: Some(vec!["dba".into()]),
                ..Default::default()
            })
            .await,
            [a.id.as_str()]
        );
        // What eve has still to decide: not a.
        assert_eq!(
            list(ReviewFilter {
                awaiting_groups: Some(vec!["dba".into(), "sre".into(), "ops".into()]),
                exclude_decided_by: Some("eve".into()),
                ..Default::default()
            })
            .await,
            [c_or_d_first.id.as_str(), c_or_d_second.id.as_str()]
        );
        let listed_a = store
            .list_reviews(
                &ReviewFilter {
                    requester: Some("alice".into()),
                    connection: Some("pg".into()),
                    ..Default::default()
                },
                None,
                10,
            )
            .await
            .unwrap();
        assert_eq!(listed_a.len(), 1);
        assert_eq!(listed_a[0].decisions.len(), 1);
        assert_eq!(listed_a[0].decisions[0].reviewer, "eve");
        // Listings leave the input out: its size and preview stand for it.
        let mut got = store.get_review(&a.id).await.unwrap();
        assert_eq!(got.input.as_deref(), Some(&b"SELECT 1;\n"[..]));
        got.input = None;
        assert_eq!(listed_a[0], got);
    }
}

#[tokio::test]
async fn every_group_must_approve_unless_min_approvals_is_set() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        // All groups: two approvals from dba do not stand for sre.
        let review = store
            .create_review(&onetime("pg", "alice", &["dba", "sre"]))
            .await
            .unwrap();
        let rule = ApprovalRule::of(&review);
        let r = store
            .decide_review(&review.id, &approve("bob", "dba", t(10)), rule.clone())
            .await
            .unwrap();
        assert_eq!(r.status, ReviewStatus::Pending);
        assert_eq!(r.updated_at, t(10));
        let r = store
            .decide_review(&review.id, &approve("carol", "dba", t(11)), rule.clone())
            .await
            .unwrap();
        assert_eq!(r.status, ReviewStatus::Pending);
        assert_eq!(r.decided_at, None);
        let r = store
            .decide_review(&review.id, &approve("dave", "sre", t(12)), rule.clone())
            .await
            .unwrap();
        assert_eq!(r.status, ReviewStatus::Approved);
        assert_eq!(r.decided_at, Some(t(12)));
        assert_eq!(r.grant_ends_at, None, "one-time reviews grant no time");
        assert_eq!(
            r.decisions
                .iter()
                .map(|d| (
                    d.reviewer.as_str(),
                    d.group.as_str(),
                    d.approved,
                    d.decided_at
                ))
                .collect::<Vec<_>>(),
            [
                ("bob", "dba", true, t(10)),
                ("carol", "dba", true, t(11)),
                ("dave", "sre", true, t(12))
            ]
        );
        let message = conflict_message(
            store
                .decide_review(&review.id, &approve("erin", "sre", t(13)), rule)
                .await,
        );
        assert!(message.contains("is APPROVED, not PENDING"), "{message}");

        // min_approvals: distinct reviewers, whatever their groups; a JIT grant starts.
        let mut new = jit("pg", "alice", &["dba", "sre"], Duration::from_secs(1800));
        new.min_approvals = Some(2);
        let review = store.create_review(&new).await.unwrap();
        let rule = ApprovalRule::of(&review);
        let r = store
            .decide_review(&review.id, &approve("bob", "dba", t(20)), rule.clone())
            .await
            .unwrap();
        assert_eq!(r.status, ReviewStatus::Pending);
        let r = store
            .decide_review(&review.id, &approve("carol", "dba", t(21)), rule)
            .await
            .unwrap();
        assert_eq!(r.status, ReviewStatus::Approved);
        assert_eq!(r.decided_at, Some(t(21)));
        assert_eq!(r.grant_ends_at, Some(t(21 + 1800)));
        assert_eq!(store.get_review(&review.id).await.unwrap(), r);
    }
}

#[tokio::test]
async fn a_rejection_rejects_and_decisions_are_refused_when_they_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        let review = store
            .create_review(&onetime("pg", "alice", &["dba", "sre"]))
            .await
            .unwrap();
        let rule = ApprovalRule::of(&review);
        store
            .decide_review(&review.id, &approve("bob", "dba", t(10)), rule.clone())
            .await
            .unwrap();
        // The same reviewer cannot decide twice, not even for another group.
        let message = conflict_message(
            store
                .decide_review(&review.id, &approve("bob", "sre", t(11)), rule.clone())
                .await,
        );
        assert!(message.contains("bob already decided"), "{message}");
        assert_eq!(
            store.get_review(&review.id).await.unwrap().decisions.len(),
            1
        );
        let r = store
            .decide_review(
                &review.id,
                &reject("carol", "sre", "not during the freeze", t(12)),
                rule.clone(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, ReviewStatus::Rejected);
        assert_eq!(r.reason.as_deref(), Some("not during the freeze"));
        assert_eq!(r.decided_at, Some(t(12)));
        assert_eq!(r.decisions.len(), 2);
        assert!(!r.decisions[1].approved);
        let message = conflict_message(
            store
                .decide_review(&review.id, &approve("dave", "sre", t(13)), rule)
                .await,
        );
        assert!(message.contains("is REJECTED, not PENDING"), "{message}");

        // Past its expiry time a pending review takes no decision (even before the expiry
        // job ran).
        let review = store
            .create_review(&onetime("pg", "alice", &["dba"]))
            .await
            .unwrap();
        let message = conflict_message(
            store
                .decide_review(
                    &review.id,
                    &approve("bob", "dba", t(3600)),
                    ApprovalRule::of(&review),
                )
                .await,
        );
        assert!(message.contains("expired"), "{message}");
        let r = store.get_review(&review.id).await.unwrap();
        assert_eq!(r.status, ReviewStatus::Pending);
        assert!(r.decisions.is_empty());

        assert!(matches!(
            store
                .decide_review(
                    "no-such-review",
                    &approve("bob", "dba", t(1)),
                    ApprovalRule::default()
                )
                .await,
            Err(StoreError::NotFound { kind: "review", .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_transitions_apply_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        // Many executions of one approved review, from as many tasks: one runs.
        let review = approved(&store, &onetime("pg", "alice", &["dba"]), t(10)).await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, id) = (store.clone(), review.id.clone());
                tokio::spawn(async move {
                    store
                        .transition_review(
                            &id,
                            &[ReviewStatus::Approved],
                            ReviewStatus::Executed,
                            None,
                            Some(&format!("s{i}")),
                            t(20),
                        )
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(r) => {
                    wins += 1;
                    assert_eq!(r.status, ReviewStatus::Executed);
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(wins, 1);

        // Approvals from six groups at once under the all-groups rule: all are recorded and
        // exactly one of them (the last to run) approves.
        let groups = ["g0", "g1", "g2", "g3", "g4", "g5"];
        let review = store
            .create_review(&onetime("pg", "alice", &groups))
            .await
            .unwrap();
        let tasks: Vec<_> = groups
            .iter()
            .enumerate()
            .map(|(i, group)| {
                let (store, review) = (store.clone(), review.clone());
                let decision = approve(&format!("r{i}"), group, t(10));
                tokio::spawn(async move {
                    store
                        .decide_review(&review.id, &decision, ApprovalRule::of(&review))
                        .await
                })
            })
            .collect();
        let mut approvals = 0;
        for task in tasks {
            if task.await.unwrap().unwrap().status == ReviewStatus::Approved {
                approvals += 1;
            }
        }
        assert_eq!(approvals, 1);
        let r = store.get_review(&review.id).await.unwrap();
        assert_eq!(r.status, ReviewStatus::Approved);
        assert_eq!(r.decisions.len(), 6);

        for round in 0..5 {
            // Two executions of one approved one-time review: one runs.
            let review = approved(&store, &onetime("pg", "alice", &["dba"]), t(10)).await;
            let exec = |session: &'static str| {
                store.transition_review(
                    &review.id,
                    &[ReviewStatus::Approved],
                    ReviewStatus::Executed,
                    None,
                    Some(session),
                    t(20),
                )
            };
            let (one, two) = tokio::join!(exec("s1"), exec("s2"));
            let (won, lost, winner) = match (one, two) {
                (Ok(r), Err(e)) => (r, e, "s1"),
                (Err(e), Ok(r)) => (r, e, "s2"),
                other => panic!("round {round}: expected one winner, got {other:?}"),
            };
            assert_eq!(won.status, ReviewStatus::Executed);
            assert_eq!(won.session_id.as_deref(), Some(winner));
            assert_eq!(won.updated_at, t(20));
            let message = conflict_message::<()>(Err(lost));
            assert!(message.contains("is EXECUTED, not APPROVED"), "{message}");
            assert_eq!(store.get_review(&review.id).await.unwrap(), won);

            // Two approvals racing under min_approvals 1: one approves, the other is late.
            let mut new = onetime("pg", "alice", &["dba", "sre"]);
            new.min_approvals = Some(1);
            let review = store.create_review(&new).await.unwrap();
            let (bob, carol) = (approve("bob", "dba", t(10)), approve("carol", "sre", t(10)));
            let (one, two) = tokio::join!(
                store.decide_review(&review.id, &bob, ApprovalRule::of(&review)),
                store.decide_review(&review.id, &carol, ApprovalRule::of(&review)),
            );
            let won = match (one, two) {
                (Ok(r), Err(StoreError::Conflict(_))) | (Err(StoreError::Conflict(_)), Ok(r)) => r,
                other => panic!("round {round}: expected one approval, got {other:?}"),
            };
            assert_eq!(won.status, ReviewStatus::Approved);
            assert_eq!(won.decisions.len(), 1);

            // Two approvals racing under the all-groups rule: both count, the second one
            // to run sees the first and approves.
            let review = store
                .create_review(&onetime("pg", "alice", &["dba", "sre"]))
                .await
                .unwrap();
            let (bob, carol) = (approve("bob", "dba", t(10)), approve("carol", "sre", t(10)));
            let (one, two) = tokio::join!(
                store.decide_review(&review.id, &bob, ApprovalRule::of(&review)),
                store.decide_review(&review.id, &carol, ApprovalRule::of(&review)),
            );
            let mut statuses = [one.unwrap().status, two.unwrap().status];
            statuses.sort_by_key(|s| s.as_str());
            assert_eq!(statuses, [ReviewStatus::Approved, ReviewStatus::Pending]);
            let r = store.get_review(&review.id).await.unwrap();
            assert_eq!(r.status, ReviewStatus::Approved);
            assert_eq!(r.decisions.len(), 2);

            // An approval racing the expiry job: one of them wins, and the review ends
            // either APPROVED (the expiry found nothing) or EXPIRED (the approval failed).
            let mut new = onetime("pg", "alice", &["dba"]);
            new.expires_at = t(100);
            let review = store.create_review(&new).await.unwrap();
            let bob = approve("bob", "dba", t(99));
            let (decided, expired) = tokio::join!(
                store.decide_review(&review.id, &bob, ApprovalRule::of(&review)),
                store.expire_reviews(t(100)),
            );
            let expired = expired.unwrap();
            let r = store.get_review(&review.id).await.unwrap();
            match decided {
                Ok(d) => {
                    assert_eq!(d.status, ReviewStatus::Approved);
                    assert!(!ids(&expired).contains(&review.id.as_str()));
                    assert_eq!(r.status, ReviewStatus::Approved);
                }
                Err(StoreError::Conflict(_)) => {
                    assert!(ids(&expired).contains(&review.id.as_str()));
                    assert_eq!(r.status, ReviewStatus::Expired);
                    assert!(r.decisions.is_empty());
                }
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
    }
}

#[tokio::test]
async fn transitions_are_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        // Revoking an approved grant.
        let review = approved(
            &store,
            &jit("pg", "alice", &["dba"], Duration::from_secs(600)),
            t(10),
        )
        .await;
        assert!(
            store
                .active_grant("alice", "pg", t(11))
                .await
                .unwrap()
                .is_some()
        );
        // The first session under the grant is recorded; later ones leave it.
        for session in ["s1", "s2"] {
            let r = store
                .transition_review(
                    &review.id,
                    &[ReviewStatus::Approved],
                    ReviewStatus::Approved,
                    None,
                    Some(session),
                    t(12),
                )
                .await
                .unwrap();
            assert_eq!(r.session_id.as_deref(), Some("s1"));
        }
        let r = store
            .transition_review(
                &review.id,
                &[ReviewStatus::Approved, ReviewStatus::Pending],
                ReviewStatus::Revoked,
                Some("revoked by admin"),
                None,
                t(20),
            )
            .await
            .unwrap();
        assert_eq!(r.status, ReviewStatus::Revoked);
        assert_eq!(r.reason.as_deref(), Some("revoked by admin"));
        assert_eq!(r.updated_at, t(20));
        assert_eq!(r.session_id.as_deref(), Some("s1"));
        assert_eq!(r.decided_at, Some(t(10)));
        assert!(
            store
                .active_grant("alice", "pg", t(21))
                .await
                .unwrap()
                .is_none()
        );
        let message = conflict_message(
            store
                .transition_review(
                    &review.id,
                    &[ReviewStatus::Approved, ReviewStatus::Pending],
                    ReviewStatus::Revoked,
                    None,
                    None,
                    t(21),
                )
                .await,
        );
        assert!(
            message.contains("is REVOKED, not PENDING or APPROVED")
                || message.contains("is REVOKED, not APPROVED or PENDING"),
            "{message}"
        );

        // Revoking (withdrawing) a pending one.
        let pending = store
            .create_review(&onetime("pg", "alice", &["dba"]))
            .await
            .unwrap();
        let r = store
            .transition_review(
                &pending.id,
                &[ReviewStatus::Approved, ReviewStatus::Pending],
                ReviewStatus::Revoked,
                None,
                None,
                t(5),
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.reason), (ReviewStatus::Revoked, None));
        // Executing needs APPROVED.
        let message = conflict_message(
            store
                .transition_review(
                    &pending.id,
                    &[ReviewStatus::Approved],
                    ReviewStatus::Executed,
                    None,
                    Some("s9"),
                    t(6),
                )
                .await,
        );
        assert!(message.contains("is REVOKED, not APPROVED"), "{message}");
        assert_eq!(
            store.get_review(&pending.id).await.unwrap().session_id,
            None
        );

        assert!(matches!(
            store
                .transition_review(
                    "no-such-review",
                    &[ReviewStatus::Approved],
                    ReviewStatus::Executed,
                    None,
                    None,
                    t(1),
                )
                .await,
            Err(StoreError::NotFound { kind: "review", .. })
        ));
    }
}

#[tokio::test]
async fn pending_reviews_and_grants_expire() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        assert_eq!(store.next_review_deadline().await.unwrap(), None);
        assert!(store.expire_reviews(t(0)).await.unwrap().is_empty());

        // Pending until t(100) and t(300); a grant t(50)..t(250); a one-time review approved
        // at t(10) (its TTL of an hour now runs from the approval: until t(3610)) and a
        // rejected one.
        let mut new = onetime("pg", "alice", &["dba"]);
        new.expires_at = t(100);
        let soon = store.create_review(&new).await.unwrap();
        new.expires_at = t(300);
        let later = store.create_review(&new).await.unwrap();
        let grant = approved(
            &store,
            &jit("pg", "bob", &["dba"], Duration::from_secs(200)),
            t(50),
        )
        .await;
        assert_eq!(grant.grant_ends_at, Some(t(250)));
        let once = approved(&store, &onetime("pg", "carol", &["dba"]), t(10)).await;
        let rejected = store
            .create_review(&onetime("pg", "carol", &["dba"]))
            .await
            .unwrap();
        store
            .decide_review(
                &rejected.id,
                &reject("bob", "dba", "no", t(10)),
                ApprovalRule::of(&rejected),
            )
            .await
            .unwrap();

        assert_eq!(store.next_review_deadline().await.unwrap(), Some(t(100)));
        assert!(store.expire_reviews(t(99)).await.unwrap().is_empty());

        let expired = store.expire_reviews(t(100)).await.unwrap();
        assert_eq!(ids(&expired), [soon.id.as_str()]);
        assert_eq!(expired[0].status, ReviewStatus::Expired);
        assert_eq!(
            expired[0].reason.as_deref(),
            Some("pending longer than the review TTL")
        );
        assert_eq!(expired[0].updated_at, t(100));
        assert_eq!(store.get_review(&soon.id).await.unwrap(), expired[0]);
        assert!(store.expire_reviews(t(100)).await.unwrap().is_empty());
        assert_eq!(store.next_review_deadline().await.unwrap(), Some(t(250)));

        let expired = store.expire_reviews(t(250)).await.unwrap();
        assert_eq!(ids(&expired), [grant.id.as_str()]);
        assert_eq!(expired[0].status, ReviewStatus::Expired);
        assert_eq!(expired[0].reason.as_deref(), Some("access expired"));
        assert_eq!(expired[0].decisions.len(), 1);
        assert_eq!(store.next_review_deadline().await.unwrap(), Some(t(300)));

        let expired = store.expire_reviews(t(300)).await.unwrap();
        assert_eq!(ids(&expired), [later.id.as_str()]);
        assert_eq!(store.next_review_deadline().await.unwrap(), Some(t(3610)));
        assert!(store.expire_reviews(t(3609)).await.unwrap().is_empty());
        assert_eq!(
            store.get_review(&once.id).await.unwrap().status,
            ReviewStatus::Approved
        );
        let expired = store.expire_reviews(t(3610)).await.unwrap();
        assert_eq!(ids(&expired), [once.id.as_str()]);
        assert_eq!(
            expired[0].reason.as_deref(),
            Some("approved but not run within the review TTL of its approval")
        );
        assert_eq!(store.next_review_deadline().await.unwrap(), None);
        assert_eq!(
            store.get_review(&rejected.id).await.unwrap().status,
            ReviewStatus::Rejected
        );
        // An expired review takes no decision.
        let message = conflict_message(
            store
                .decide_review(
                    &later.id,
                    &approve("bob", "dba", t(200)),
                    ApprovalRule::of(&later),
                )
                .await,
        );
        assert!(message.contains("is EXPIRED, not PENDING"), "{message}");
    }
}

#[tokio::test]
async fn active_grant_is_the_latest_ending_approved_jit_review() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        assert!(
            store
                .active_grant("alice", "pg", t(0))
                .await
                .unwrap()
                .is_none()
        );
        // Pending: no grant.
        store
            .create_review(&jit("pg", "alice", &["dba"], Duration::from_secs(600)))
            .await
            .unwrap();
        assert!(
            store
                .active_grant("alice", "pg", t(0))
                .await
                .unwrap()
                .is_none()
        );
        let short = approved(
            &store,
            &jit("pg", "alice", &["dba"], Duration::from_secs(100)),
            t(10),
        )
        .await;
        let long = approved(
            &store,
            &jit("pg", "alice", &["dba"], Duration::from_secs(1000)),
            t(20),
        )
        .await;
        // Others' and other connections' grants, and approved one-time reviews, do not
        // count.
        approved(
            &store,
            &jit("pg", "bob", &["dba"], Duration::from_secs(5000)),
            t(10),
        )
        .await;
        approved(
            &store,
            &jit("mysql", "alice", &["dba"], Duration::from_secs(5000)),
            t(10),
        )
        .await;
        approved(&store, &onetime("pg", "alice", &["dba"]), t(10)).await;

        let got = store.active_grant("alice", "pg", t(30)).await.unwrap();
        assert_eq!(got.as_ref().map(|r| r.id.as_str()), Some(long.id.as_str()));
        assert_eq!(got.unwrap().grant_ends_at, Some(t(1020)));
        // Revoke the long one: the short one is still running.
        store
            .transition_review(
                &long.id,
                &[ReviewStatus::Approved],
                ReviewStatus::Revoked,
                Some("revoked"),
                None,
                t(40),
            )
            .await
            .unwrap();
        let got = store.active_grant("alice", "pg", t(50)).await.unwrap();
        assert_eq!(got.map(|r| r.id), Some(short.id.clone()));
        // Its end is exclusive.
        assert!(
            store
                .active_grant("alice", "pg", t(110))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .active_grant("alice", "pg", t(109))
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn connection_review_settings_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        let plain = store
            .create_connection(&Connection::new("plain", "command"), &[])
            .await
            .unwrap();
        assert_eq!(
            (
                plain.min_approvals,
                plain.review_ttl,
                plain.access_max_duration
            ),
            (None, None, None)
        );
        let mut conn = Connection::new("pg", "command");
        conn.reviewers = vec!["dba".into(), "sre".into()];
        conn.min_approvals = Some(2);
        conn.review_ttl = Some(Duration::from_secs(3600));
        conn.access_max_duration = Some(Duration::from_millis(7_200_500));
        let created = store.create_connection(&conn, &[]).await.unwrap();
        assert_eq!(created.min_approvals, Some(2));
        assert_eq!(created.review_ttl, Some(Duration::from_secs(3600)));
        assert_eq!(
            created.access_max_duration,
            Some(Duration::from_millis(7_200_500))
        );
        assert_eq!(store.get_connection("pg", false).await.unwrap(), created);
        let listed = store.list_connections(None, 10).await.unwrap();
        assert_eq!(listed.iter().find(|c| c.name == "pg"), Some(&created));

        let mut changed = created.clone();
        changed.min_approvals = None;
        changed.review_ttl = Some(Duration::from_secs(60));
        changed.access_max_duration = None;
        let updated = store.update_connection(&changed, false, &[]).await.unwrap();
        assert_eq!(
            (
                updated.min_approvals,
                updated.review_ttl,
                updated.access_max_duration
            ),
            (None, Some(Duration::from_secs(60)), None)
        );

        // A review outlives its connection.
        let review = store
            .create_review(&onetime("pg", "alice", &["dba"]))
            .await
            .unwrap();
        store.delete_connection("pg").await.unwrap();
        assert_eq!(store.get_review(&review.id).await.unwrap().connection, "pg");
    }
}
