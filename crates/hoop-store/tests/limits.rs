//! Per-user limits, session arguments, connection `allow_args`/`agent` and review input
//! previews, against real databases: SQLite always, PostgreSQL when
//! `HOOP_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hoop_store::testing::{POSTGRES_URL_VAR, scratch_postgres_database};
use hoop_store::{
    Connection, Limits, NewReview, ReviewFilter, ReviewKind, SecretBox, SessionEnd, SessionRecord,
    Store, StoreError,
};

const KEY: &str = "0123456789abcdef0123456789abcdef-test";

async fn stores(dir: &tempfile::TempDir, limits: Limits) -> Vec<Store> {
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
            .unwrap()
            .with_limits(limits);
        store.migrate().await.unwrap();
        stores.push(store);
    }
    stores
}

fn session(id: &str, user: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        connection: "sh".into(),
        connection_type: "command".into(),
        user: user.into(),
        verb: "exec".into(),
        args: Vec::new(),
        status: "open".into(),
        exit_code: None,
        reason: String::new(),
        started_at: Utc::now(),
        ended_at: None,
        bytes_in: 0,
        bytes_out: 0,
        metrics: Default::default(),
        attributes: Default::default(),
        instance: None,
    }
}

fn done() -> SessionEnd {
    SessionEnd {
        status: "done".into(),
        exit_code: 0,
        reason: "exited with code 0".into(),
        bytes_in: 0,
        bytes_out: 0,
        metrics: Default::default(),
        attributes: Default::default(),
    }
}

fn review(requester: &str, input: &[u8]) -> NewReview {
    let now = Utc::now();
    NewReview {
        kind: ReviewKind::OneTime,
        connection: "pg".into(),
        requester: requester.into(),
        verb: "exec".into(),
        input: Some(input.to_vec()),
        args: Vec::new(),
        groups: vec!["dba".into()],
        min_approvals: None,
        access_duration: None,
        created_at: now,
        expires_at: now + TimeDelta::hours(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_sessions_per_user_are_limited_even_when_starts_race() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        running_sessions_per_user: Some(3),
        ..Limits::default()
    };
    for store in stores(&dir, limits).await {
        assert_eq!(store.limits(), limits);
        store.create_session(&session("a1", "alice")).await.unwrap();
        store.create_session(&session("a2", "alice")).await.unwrap();
        // Eight starts race for the last place: exactly one gets it.
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .create_session(&session(&format!("r{i}"), "alice"))
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(()) => won += 1,
                Err(StoreError::LimitReached {
                    limit,
                    max,
                    message,
                }) => {
                    assert_eq!((limit, max), ("running_sessions_per_user", 3));
                    assert!(
                        message.contains("running_sessions_per_user")
                            && message.contains("at most 3"),
                        "{message}"
                    );
                }
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(won, 1);
        // Nothing was written for the refused ones.
        assert!(matches!(
            store.get_session("r9").await,
            Err(StoreError::NotFound { .. })
        ));
        // Another user has places of their own; a session that ended frees one.
        store.create_session(&session("b1", "bob")).await.unwrap();
        assert!(matches!(
            store.create_session(&session("a3", "alice")).await,
            Err(StoreError::LimitReached { .. })
        ));
        store.finish_session("a1", &done()).await.unwrap();
        store.create_session(&session("a3", "alice")).await.unwrap();
        // Sessions recorded as already ended (not `open`) do not count and are not refused.
        let mut ended = session("a4", "alice");
        ended.status = "denied".into();
        store.create_session(&ended).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_reviews_per_user_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        pending_reviews_per_user: Some(2),
        ..Limits::default()
    };
    for store in stores(&dir, limits).await {
        let first = store.create_review(&review("alice", b"1")).await.unwrap();
        // Two race for the second place.
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.create_review(&review("alice", b"2")).await })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::LimitReached { limit, max, .. }) => {
                    assert_eq!((limit, max), ("pending_reviews_per_user", 2));
                }
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(won, 1);
        let mine = ReviewFilter {
            requester: Some("alice".into()),
            ..ReviewFilter::default()
        };
        assert_eq!(store.list_reviews(&mine, None, 100).await.unwrap().len(), 2);
        // The check ahead of a request says the same.
        assert!(matches!(
            store.check_pending_review_limit("alice", Utc::now()).await,
            Err(StoreError::LimitReached { max: 2, .. })
        ));
        store
            .check_pending_review_limit("bob", Utc::now())
            .await
            .unwrap();
        // Bob is not limited by alice's reviews.
        store.create_review(&review("bob", b"1")).await.unwrap();
        // A review that is no longer pending frees a place.
        store
            .transition_review(
                &first.id,
                &[hoop_store::ReviewStatus::Pending],
                hoop_store::ReviewStatus::Revoked,
                Some("revoked by alice"),
                None,
                Utc::now(),
            )
            .await
            .unwrap();
        store.create_review(&review("alice", b"3")).await.unwrap();
        // A pending review past its deadline (not expired by the task yet) does not count.
        let later = review("alice", b"4");
        assert!(matches!(
            store.create_review(&later).await,
            Err(StoreError::LimitReached { .. })
        ));
        let mut after_deadline = later.clone();
        after_deadline.created_at = Utc::now() + TimeDelta::hours(2);
        after_deadline.expires_at = after_deadline.created_at + TimeDelta::hours(1);
        store.create_review(&after_deadline).await.unwrap();
    }
}

#[tokio::test]
async fn listings_carry_a_preview_and_the_size_of_inputs_never_the_input() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir, Limits::default()).await {
        // 2.6 MB of text whose 1024th byte falls inside a two-byte character.
        let mut input = "a".repeat(1023).into_bytes();
        input.extend("é".repeat(1_300_000).as_bytes());
        let big = store.create_review(&review("alice", &input)).await.unwrap();
        let small = store
            .create_review(&review("alice", b"select 1;\n"))
            .await
            .unwrap();
        let mut jit = review("alice", b"");
        jit.kind = ReviewKind::Jit;
        jit.verb = "connect".into();
        jit.input = None;
        jit.access_duration = Some(Duration::from_secs(600));
        let jit = store.create_review(&jit).await.unwrap();

        let listed = store
            .list_reviews(&ReviewFilter::default(), None, 10)
            .await
            .unwrap();
        let by_id = |id: &str| listed.iter().find(|r| r.id == id).unwrap();
        let b = by_id(&big.id);
        assert_eq!(b.input, None);
        assert_eq!(b.input_size, Some(u64::try_from(input.len()).unwrap()));
        assert_eq!(
            b.input_preview.as_deref(),
            Some("a".repeat(1023).as_bytes())
        );
        assert_eq!(b.input_sha256, big.input_sha256);
        let s = by_id(&small.id);
        assert_eq!(
            (s.input.as_deref(), s.input_size, s.input_preview.as_deref()),
            (None, Some(10), Some(&b"select 1;\n"[..]))
        );
        let j = by_id(&jit.id);
        assert_eq!(
            (&j.input, j.input_size, &j.input_preview),
            (&None, None, &None)
        );

        // Read alone, a review has its whole input, with the same size and preview.
        let got = store.get_review(&big.id).await.unwrap();
        assert_eq!(got.input.as_deref(), Some(&input[..]));
        assert_eq!(
            (got.input_size, &got.input_preview),
            (b.input_size, &b.input_preview)
        );
    }
}

#[tokio::test]
async fn args_and_agents_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir, Limits::default()).await {
        let plain = store
            .create_connection(&Connection::new("plain", "command"), &[])
            .await
            .unwrap();
        assert_eq!((plain.allow_args, plain.agent.as_str()), (false, "local"));
        let mut conn = Connection::new("sh", "command");
        conn.allow_args = true;
        conn.agent = "edge-1".into();
        let created = store.create_connection(&conn, &[]).await.unwrap();
        assert_eq!(
            (created.allow_args, created.agent.as_str()),
            (true, "edge-1")
        );
        // An empty agent is stored as `local`.
        let mut changed = created.clone();
        changed.allow_args = false;
        changed.agent = String::new();
        let updated = store.update_connection(&changed, false, &[]).await.unwrap();
        assert_eq!(
            (updated.allow_args, updated.agent.as_str()),
            (false, "local")
        );
        let listed = store.list_connections(None, 10).await.unwrap();
        assert!(listed.iter().all(|c| c.agent == "local" && !c.allow_args));

        let mut record = session("s1", "alice");
        record.args = vec!["-c".into(), "echo 'a b'; id".into()];
        store.create_session(&record).await.unwrap();
        let got = store.get_session("s1").await.unwrap();
        assert_eq!(got.args, record.args);
        let ended = store.finish_session("s1", &done()).await.unwrap();
        assert_eq!(ended.args, record.args);
        store.create_session(&session("s2", "alice")).await.unwrap();
        assert!(store.get_session("s2").await.unwrap().args.is_empty());
    }
}
