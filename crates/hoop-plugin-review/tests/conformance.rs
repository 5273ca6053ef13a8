//! The review plugin passes hoop-testkit's conformance check: an `exec` is held for review
//! (by policy), and a `connect` under an active time-based grant runs a whole session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hoop_core::{Resources, Verb};
use hoop_plugin_review::{
    Decision, DeskError, ID_ATTRIBUTE, NewReview, ReviewDesk, ReviewKind, ReviewRecord,
    ReviewStatus, Reviews,
};
use hoop_testkit::SessionBuilder;
use hoop_testkit::conformance::{self, Check, Conformance, Status};

/// A review desk in memory: reviews the plugin creates stay PENDING; `grants` are the
/// active time-based grants, by (user, connection).
#[derive(Debug, Default)]
struct Desk {
    reviews: Mutex<BTreeMap<String, ReviewRecord>>,
    grants: Mutex<BTreeMap<(String, String), ReviewRecord>>,
}

#[async_trait]
impl ReviewDesk for Desk {
    async fn create(&self, request: NewReview) -> Result<ReviewRecord, DeskError> {
        let mut reviews = self.reviews.lock().unwrap();
        let record = ReviewRecord {
            id: format!("r{}", reviews.len() + 1),
            kind: request.kind,
            status: ReviewStatus::Pending,
            connection: request.connection,
            requester: request.requester,
            input_sha256: request.input_sha256,
            args: request.args,
            groups: request.groups,
            decisions: Vec::new(),
            reason: None,
            revoked_by: None,
            grant_ends_at: None,
            session_id: None,
        };
        reviews.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    async fn get(&self, id: &str) -> Result<Option<ReviewRecord>, DeskError> {
        Ok(self.reviews.lock().unwrap().get(id).cloned())
    }

    async fn claim(&self, id: &str, session_id: &str) -> Result<ReviewRecord, DeskError> {
        let mut reviews = self.reviews.lock().unwrap();
        let review = reviews
            .get_mut(id)
            .ok_or_else(|| DeskError::NotFound(id.to_owned()))?;
        if review.status != ReviewStatus::Approved {
            return Err(DeskError::Conflict(review.status.to_string()));
        }
        review.status = ReviewStatus::Executed;
        review.session_id = Some(session_id.to_owned());
        Ok(review.clone())
    }

    async fn active_grant(
        &self,
        user: &str,
        connection: &str,
    ) -> Result<Option<ReviewRecord>, DeskError> {
        let grants = self.grants.lock().unwrap();
        Ok(grants
            .get(&(user.to_owned(), connection.to_owned()))
            .cloned())
    }
}

fn grant(user: &str, connection: &str) -> ReviewRecord {
    ReviewRecord {
        id: "g1".to_owned(),
        kind: ReviewKind::Jit,
        status: ReviewStatus::Approved,
        connection: connection.to_owned(),
        requester: user.to_owned(),
        input_sha256: None,
        args: Vec::new(),
        groups: vec!["dba".to_owned()],
        decisions: vec![Decision {
            reviewer: "bob".to_owned(),
            group: "dba".to_owned(),
            approved: true,
            reason: None,
            decided_at: SystemTime::now(),
        }],
        reason: None,
        revoked_by: None,
        grant_ends_at: Some(SystemTime::now() + Duration::from_secs(3600)),
        session_id: None,
    }
}

#[tokio::test]
async fn the_review_plugin_conforms() {
    let desk = Arc::new(Desk::default());
    let resources = Resources::new().with(Reviews(desk.clone()));
    let factory = hoop_plugin_review::REGISTRATION;

    // An exec without a ticket creates a review and is held: accepted, by policy.
    let report = conformance::check(factory, &resources).await;
    println!("{report}");
    let plain = report.result(Check::PlainSession).unwrap();
    assert_eq!(plain.status, Status::Skipped, "{report}");
    assert!(plain.detail.starts_with("open: held by review"), "{report}");
    assert!(report.passed(Check::CloseAfterDenyOnOpen), "{report}");

    // A connect under an active grant runs a whole session.
    desk.grants.lock().unwrap().insert(
        ("alice".to_owned(), "conformance".to_owned()),
        grant("alice", "conformance"),
    );
    let session = SessionBuilder::new()
        .id("granted")
        .connection("conformance", "postgres")
        .verb(Verb::Connect);
    let report = Conformance::new(factory, &resources)
        .with_session(session)
        .check()
        .await;
    println!("{report}");
    assert!(
        report.results.iter().all(|r| r.status == Status::Passed),
        "{report}"
    );
    let plain = &report.result(Check::PlainSession).unwrap().detail;
    assert!(plain.contains(ID_ATTRIBUTE), "{plain}");
}
