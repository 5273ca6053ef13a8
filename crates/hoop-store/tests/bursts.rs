//! A burst of session ends, against real databases (SQLite always, PostgreSQL when
//! `HOOP_TEST_POSTGRES_URL` is set): every end is recorded, once, even with a small pool and
//! a short acquire timeout; reads meanwhile succeed or fail as transient.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::Utc;
use hoop_store::testing::{POSTGRES_URL_VAR, scratch_postgres_database};
use hoop_store::{
    Limits, PoolSettings, SecretBox, SessionEnd, SessionFilter, SessionRecord, Store,
};

const KEY: &str = "0123456789abcdef0123456789abcdef-test";
const SESSIONS: usize = 1000;

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
    let pool = PoolSettings {
        max_connections: Some(4),
        acquire_timeout: Duration::from_millis(100),
    };
    let mut stores = Vec::new();
    for url in urls {
        let store = Store::connect_with(&url, SecretBox::new(KEY).unwrap(), pool)
            .await
            .unwrap()
            .with_limits(Limits::default());
        store.migrate().await.unwrap();
        stores.push(store);
    }
    stores
}

fn session(id: String) -> SessionRecord {
    SessionRecord {
        id,
        connection: "burst".into(),
        connection_type: "command".into(),
        user: "alice".into(),
        verb: "connect".into(),
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

fn end(code: i32) -> SessionEnd {
    SessionEnd {
        status: "done".into(),
        exit_code: code,
        reason: format!("exited with code {code}"),
        bytes_in: 1,
        bytes_out: 2,
        metrics: Default::default(),
        attributes: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_ends_at_once_are_all_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        let ids: Vec<String> = (0..SESSIONS).map(|i| format!("s{i:04}")).collect();
        for id in &ids {
            // A start is not retried by the store (its caller is told UNAVAILABLE): the
            // test retries, as a client would.
            let mut tries = 0;
            while let Err(err) = store.create_session(&session(id.clone())).await {
                assert!(err.is_transient() && tries < 50, "{err}");
                tries += 1;
            }
        }
        let first_event = store.last_event_id().await.unwrap();
        // Reads all along.
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for _ in 0..20 {
                    if let Err(err) = store
                        .list_sessions(&SessionFilter::default(), None, 1000)
                        .await
                    {
                        failures.push(err);
                    }
                }
                failures
            })
        };
        // Every session ends at the same moment, each with its own exit code.
        let mut ends = tokio::task::JoinSet::new();
        for (i, id) in ids.iter().enumerate() {
            let (store, id) = (store.clone(), id.clone());
            let code = i32::try_from(i % 100).unwrap();
            ends.spawn(async move { (store.finish_session(&id, &end(code)).await, code) });
        }
        while let Some(joined) = ends.join_next().await {
            let (settled, code) = joined.unwrap();
            let record = settled.unwrap();
            assert_eq!(
                (record.status.as_str(), record.exit_code),
                ("done", Some(code))
            );
        }
        for err in reader.await.unwrap() {
            assert!(err.is_transient(), "a read failed for good: {err}");
        }
        let all = store
            .list_sessions(&SessionFilter::default(), None, 2000)
            .await
            .unwrap();
        assert_eq!(all.len(), SESSIONS);
        for record in &all {
            assert_eq!(record.status, "done", "{record:?}");
            assert!(record.ended_at.is_some());
        }
        // One `session.closed` each, no more.
        let events = store
            .read_events(first_event, 10 * SESSIONS as u64)
            .await
            .unwrap();
        let closed = events.iter().filter(|e| e.kind == "session.closed").count();
        assert_eq!(closed, SESSIONS);
        // Settling again keeps the first ending and appends nothing.
        let again = store.finish_session(&ids[7], &end(99)).await.unwrap();
        assert_eq!(again.exit_code, Some(7));
        assert_eq!(
            store.last_event_id().await.unwrap(),
            events.last().map_or(first_event, |e| e.id)
        );
        // An unknown session is still NOT_FOUND.
        let missing = store.finish_session("nope", &end(0)).await.unwrap_err();
        assert!(
            matches!(missing, hoop_store::StoreError::NotFound { .. }),
            "{missing}"
        );
    }
}
