//! The event log against real databases: SQLite always, PostgreSQL when
//! `HOOP_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use hoop_store::testing::{POSTGRES_URL_VAR, scratch_postgres_database};
use hoop_store::{Connection, NewEvent, SecretBox, Store};

const KEY: &str = "0123456789abcdef0123456789abcdef-test";

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

/// Writers append concurrently while a reader follows the log by cursor: every batch the
/// reader gets starts right after its cursor (the visible log is always a prefix), so it
/// ends with every event, each once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_a_prefix_of_the_log_while_writers_race() {
    const WRITERS: usize = 8;
    const EACH: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..EACH {
                    let event = NewEvent::new(
                        "connection.updated",
                        serde_json::json!({ "writer": w, "i": i }),
                    );
                    // Two events per transaction: they stay together and in order.
                    store
                        .append_events(vec![event.clone(), event.user(format!("w{w}"))])
                        .await
                        .unwrap();
                }
            }));
        }
        let total = WRITERS * EACH * 2;
        let mut cursor = 0;
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while seen < total {
            assert!(
                tokio::time::Instant::now() < deadline,
                "reader stalled at {seen}"
            );
            let batch = store.read_events(cursor, 100).await.unwrap();
            for event in &batch {
                assert_eq!(event.id, cursor + 1, "gap or reorder after {cursor}");
                cursor = event.id;
            }
            seen += batch.len();
            if batch.is_empty() {
                tokio::task::yield_now().await;
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.last_event_id().await.unwrap(), cursor);
        assert!(store.read_events(cursor, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn pruning_never_lets_ids_be_reused_and_cursors_persist() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        let wake = store.event_notifications();
        store
            .acting_as("admin")
            .create_connection(&Connection::new("db", "command"), &[])
            .await
            .unwrap();
        assert!(wake.has_changed().unwrap(), "an append wakes the readers");
        let events = store.read_events(0, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "connection.created");
        assert_eq!(events[0].user.as_deref(), Some("admin"));
        assert_eq!(events[0].connection.as_deref(), Some("db"));
        let first = events[0].id;

        let pruned = store
            .prune_events(chrono::Utc::now() + chrono::TimeDelta::seconds(1))
            .await
            .unwrap();
        assert_eq!(pruned, 1);
        assert!(store.read_events(0, 10).await.unwrap().is_empty());
        store.delete_connection("db").await.unwrap();
        let after = store.read_events(0, 10).await.unwrap();
        assert_eq!(after.len(), 1);
        assert!(after[0].id > first, "ids are never reused");
        assert_eq!(after[0].user, None, "no actor: the event names nobody");

        assert_eq!(store.load_cursor("counter").await.unwrap(), None);
        store.save_cursor("counter", 7).await.unwrap();
        store.save_cursor("counter", 9).await.unwrap();
        assert_eq!(store.load_cursor("counter").await.unwrap(), Some(9));
    }
}

#[tokio::test]
async fn a_failed_change_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        let conn = Connection::new("db", "command");
        store.create_connection(&conn, &[]).await.unwrap();
        assert!(store.create_connection(&conn, &[]).await.is_err());
        assert!(store.delete_connection("missing").await.is_err());
        assert!(store.detach("db", "slack").await.is_err());
        let kinds: Vec<String> = store
            .read_events(0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["connection.created"]);
    }
}

/// Writers whose transactions read before they write (creating a connection checks nothing
/// exists; settling a session reads it) race with plain appends: on SQLite each waits for
/// its turn instead of failing with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_wait_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(&dir).await {
        let mut tasks = Vec::new();
        for w in 0..6 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    let name = format!("c{w}-{i}");
                    store
                        .create_connection(&Connection::new(&name, "command"), &[])
                        .await
                        .unwrap();
                    store
                        .append_events(vec![NewEvent::new("session.held", serde_json::json!({}))])
                        .await
                        .unwrap();
                    store.delete_connection(&name).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.last_event_id().await.unwrap(), 6 * 40 * 3);
    }
}
