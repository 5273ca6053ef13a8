//! The store against real databases: SQLite always, PostgreSQL when
//! `HOOP_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use hoop_store::migration::Migrator;
use hoop_store::testing::{POSTGRES_URL_VAR, scratch_postgres_database};
use hoop_store::{Attachment, Connection, SecretBox, Store, StoreError, User};
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::MigratorTrait;

const KEY: &str = "0123456789abcdef0123456789abcdef-test";

/// Database URLs to run each test on: a fresh SQLite file, and a fresh PostgreSQL database
/// when the server is configured.
async fn databases(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![format!("sqlite://{}/hoop.db", dir.path().display())];
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(server) => urls.push(
            scratch_postgres_database(&server, "hoop_store")
                .await
                .unwrap(),
        ),
        Err(_) => eprintln!("{POSTGRES_URL_VAR} unset: PostgreSQL part skipped"),
    }
    urls
}

fn user(name: &str, groups: &[&str]) -> User {
    let now = chrono::Utc::now();
    User {
        name: name.into(),
        email: format!("{name}@example.com"),
        slack_id: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn a_database_at_an_older_migration_upgrades_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        // Bring the database to the first migration only, as an older gateway left it.
        Migrator::up(store.db(), Some(1)).await.unwrap();
        assert_eq!(
            store.applied_migrations().await.unwrap(),
            ["m20261124_000001_create_users"]
        );
        // Written as that version wrote it (today's code knows columns it did not have).
        let db = store.db();
        let backend = db.get_database_backend();
        let (user_sql, group_sql) = match backend {
            sea_orm::DatabaseBackend::Postgres => (
                "INSERT INTO users (name, email, created_at, updated_at) VALUES ($1, $2, $3, $3)",
                "INSERT INTO user_groups (user_name, group_name) VALUES ($1, $2)",
            ),
            _ => (
                "INSERT INTO users (name, email, created_at, updated_at) VALUES (?, ?, ?, ?)",
                "INSERT INTO user_groups (user_name, group_name) VALUES (?, ?)",
            ),
        };
        let now = chrono::Utc::now();
        let mut values: Vec<sea_orm::Value> = vec!["alice".into(), "a@x.io".into(), now.into()];
        if backend != sea_orm::DatabaseBackend::Postgres {
            values.push(now.into());
        }
        db.execute(Statement::from_sql_and_values(backend, user_sql, values))
            .await
            .unwrap();
        db.execute(Statement::from_sql_and_values(
            backend,
            group_sql,
            vec!["alice".into(), "dba".into()],
        ))
        .await
        .unwrap();

        store.migrate().await.unwrap();
        assert_eq!(
            store.applied_migrations().await.unwrap(),
            [
                "m20261124_000001_create_users",
                "m20261124_000002_create_connections",
                "m20261124_000003_create_sessions",
                "m20261124_000004_session_attributes_and_timeout",
                "m20261124_000005_reviews",
                "m20261203_000006_events",
                "m20261203_000007_args_and_agent",
                "m20261203_000008_agents",
                "m20261203_000009_user_slack_id",
                "m20261210_000011_instances",
                "m20261212_000012_mask_columns"
            ]
        );
        let alice = store.get_user("alice").await.unwrap();
        assert_eq!(alice.groups, ["dba"]);
        assert_eq!(
            alice.slack_id, None,
            "users from before Slack IDs have none"
        );
        // The new tables work.
        let mut conn = Connection::new("pg", "command");
        conn.session_timeout = Some(std::time::Duration::from_millis(90_500));
        store.create_connection(&conn, &[]).await.unwrap();
        let got = store.get_connection("pg", false).await.unwrap();
        assert_eq!(got.session_timeout, conn.session_timeout);
        // Migrating again is a no-op.
        store.migrate().await.unwrap();
    }
}

#[tokio::test]
async fn a_database_from_before_reviews_upgrades_and_keeps_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        // As the gateway left it before reviews: four migrations, a connection.
        Migrator::up(store.db(), Some(4)).await.unwrap();
        assert_eq!(store.applied_migrations().await.unwrap().len(), 4);
        let backend = store.db().get_database_backend();
        store
            .db()
            .execute(Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm::DatabaseBackend::Postgres => {
                        "INSERT INTO connections (name, kind, command, env_keys, env_encrypted, \
                         reviewers, redact_types, access_exec, access_connect, \
                         access_runbooks, tags, session_timeout_ms, created_at, updated_at) \
                         VALUES ($1, 'command', '[\"psql\"]', '[]', '', '[\"dba\"]', '[]', \
                         true, true, true, '{}', 60000, $2, $2)"
                    }
                    _ => {
                        "INSERT INTO connections (name, kind, command, env_keys, env_encrypted, \
                         reviewers, redact_types, access_exec, access_connect, \
                         access_runbooks, tags, session_timeout_ms, created_at, updated_at) \
                         VALUES (?, 'command', '[\"psql\"]', '[]', '', '[\"dba\"]', '[]', \
                         true, true, true, '{}', 60000, ?, ?)"
                    }
                },
                match backend {
                    sea_orm::DatabaseBackend::Postgres => {
                        vec!["pg".into(), chrono::Utc::now().into()]
                    }
                    _ => vec![
                        "pg".into(),
                        chrono::Utc::now().into(),
                        chrono::Utc::now().into(),
                    ],
                },
            ))
            .await
            .unwrap();

        store.migrate().await.unwrap();
        assert_eq!(
            store.applied_migrations().await.unwrap().last().unwrap(),
            "m20261212_000012_mask_columns"
        );
        let conn = store.get_connection("pg", false).await.unwrap();
        assert_eq!(conn.command, ["psql"]);
        assert_eq!(conn.reviewers, ["dba"]);
        assert_eq!(
            conn.session_timeout,
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(
            (
                conn.min_approvals,
                conn.review_ttl,
                conn.access_max_duration
            ),
            (None, None, None)
        );
        // The new settings can be set, and reviews recorded.
        let mut changed = conn.clone();
        changed.min_approvals = Some(1);
        let updated = store.update_connection(&changed, false, &[]).await.unwrap();
        assert_eq!(updated.min_approvals, Some(1));
        let now = chrono::Utc::now();
        let review = store
            .create_review(&hoop_store::NewReview {
                kind: hoop_store::ReviewKind::Jit,
                connection: "pg".into(),
                requester: "alice".into(),
                verb: "connect".into(),
                input: None,
                args: Vec::new(),
                groups: conn.reviewers.clone(),
                min_approvals: updated.min_approvals,
                access_duration: Some(std::time::Duration::from_secs(600)),
                created_at: now,
                expires_at: now + chrono::TimeDelta::hours(24),
            })
            .await
            .unwrap();
        assert_eq!(store.get_review(&review.id).await.unwrap(), review);

        // Older connections neither take args nor name an agent: they run on `local`.
        assert_eq!((conn.allow_args, conn.agent.as_str()), (false, "local"));

        // The migration reverts cleanly (with the ones after it) and applies again.
        let after_reviews = store.applied_migrations().await.unwrap().len() - 4;
        Migrator::down(store.db(), Some(u32::try_from(after_reviews).unwrap()))
            .await
            .unwrap();
        assert_eq!(store.applied_migrations().await.unwrap().len(), 4);
        store.migrate().await.unwrap();
        let again = store.get_connection("pg", false).await.unwrap();
        assert_eq!((again.min_approvals, again.command), (None, conn.command));
        assert!(matches!(
            store.get_review(&review.id).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_bound_to_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.check_secret_key().await.unwrap();
        let mut conn = Connection::new("pg", "command");
        conn.env = BTreeMap::from([("PGPASSWORD".to_owned(), "hunter2-very-secret".to_owned())]);
        let created = store.create_connection(&conn, &[]).await.unwrap();
        assert_eq!(
            created.env,
            BTreeMap::from([("PGPASSWORD".to_owned(), String::new())])
        );
        let full = store.get_connection("pg", true).await.unwrap();
        assert_eq!(full.env["PGPASSWORD"], "hunter2-very-secret");

        // Nothing in the raw row holds the plaintext.
        let backend = store.db().get_database_backend();
        let rows = store
            .db()
            .query_all(Statement::from_string(
                backend,
                "SELECT env_encrypted FROM connections",
            ))
            .await
            .unwrap();
        let raw: String = rows[0].try_get("", "env_encrypted").unwrap();
        assert!(raw.starts_with("v1:") && !raw.contains("hunter2"), "{raw}");

        // Another key is refused up front.
        let other = Store::connect(&url, SecretBox::new(&format!("{KEY}-other")).unwrap())
            .await
            .unwrap();
        assert!(matches!(
            other.check_secret_key().await,
            Err(StoreError::InvalidSecretKey(_))
        ));
        assert!(matches!(
            other.get_connection("pg", true).await,
            Err(StoreError::Crypto(_))
        ));
    }
}

#[tokio::test]
async fn connections_and_attachments_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let audit = Attachment {
            plugin: "audit".into(),
            config: serde_json::json!({}),
            enabled: true,
        };
        store
            .create_connection(
                &Connection::new("a", "command"),
                std::slice::from_ref(&audit),
            )
            .await
            .unwrap();
        store
            .create_connection(
                &Connection::new("b", "command"),
                std::slice::from_ref(&audit),
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .create_connection(&Connection::new("a", "command"), &[])
                .await,
            Err(StoreError::AlreadyExists {
                kind: "connection",
                ..
            })
        ));
        let slack = Attachment {
            plugin: "slack".into(),
            config: serde_json::json!({"channels": ["C0123456789"]}),
            enabled: true,
        };
        store.attach("a", &slack).await.unwrap();
        assert!(matches!(
            store.attach("a", &slack).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(
            store.list_attachments("a").await.unwrap(),
            [audit.clone(), slack.clone()]
        );
        assert_eq!(
            store.list_attachments("b").await.unwrap(),
            std::slice::from_ref(&audit)
        );
        store.detach("a", "slack").await.unwrap();
        assert!(matches!(
            store.detach("a", "slack").await,
            Err(StoreError::NotFound { .. })
        ));

        let page = store.list_connections(None, 1).await.unwrap();
        assert_eq!(page.len(), 1);
        let next = store
            .list_connections(Some(&page[0].name), 10)
            .await
            .unwrap();
        assert_eq!(
            next.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["b"]
        );

        store.delete_connection("a").await.unwrap();
        assert!(matches!(
            store.list_attachments("a").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.get_connection("a", false).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn users_are_found_by_slack_id_and_by_an_email_only_they_have() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for name in ["bob", "carol", "dave"] {
            store.create_user(&user(name, &["dba"])).await.unwrap();
        }
        assert_eq!(store.find_user_by_slack_id("U0BOB").await.unwrap(), None);
        let bob = store.set_user_slack_id("bob", Some("U0BOB")).await.unwrap();
        assert_eq!(bob.slack_id.as_deref(), Some("U0BOB"));
        let found = store.find_user_by_slack_id("U0BOB").await.unwrap().unwrap();
        assert_eq!(
            (found.name.as_str(), found.groups.as_slice()),
            ("bob", &["dba".to_owned()][..])
        );
        // One Slack account, one user.
        assert!(matches!(
            store.set_user_slack_id("carol", Some("U0BOB")).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(store.get_user("carol").await.unwrap().slack_id, None);
        // Setting one's own again is fine; clearing frees it.
        store.set_user_slack_id("bob", Some("U0BOB")).await.unwrap();
        store.set_user_slack_id("bob", None).await.unwrap();
        store
            .set_user_slack_id("carol", Some("U0BOB"))
            .await
            .unwrap();
        assert!(matches!(
            store.set_user_slack_id("nobody", Some("U0X")).await,
            Err(StoreError::NotFound { .. })
        ));

        // By e-mail, ignoring case; an e-mail two users share names nobody.
        let carol = store
            .find_user_by_email("CAROL@Example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(carol.name, "carol");
        assert_eq!(store.find_user_by_email("").await.unwrap(), None);
        store
            .update_user("dave", Some("carol@example.com"), None)
            .await
            .unwrap();
        assert_eq!(
            store.find_user_by_email("carol@example.com").await.unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn agents_are_found_by_token_hash_and_deleted_for_good() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let hash = hoop_store::hash_token("hag_secret");
        let created = store
            .acting_as("admin")
            .create_agent("edge", &hash)
            .await
            .unwrap();
        assert_eq!(created.name, "edge");
        assert!(matches!(
            store
                .create_agent("edge", &hoop_store::hash_token("other"))
                .await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(
            store.find_agent(&hash).await.unwrap(),
            Some(created.clone())
        );
        assert_eq!(store.find_agent("nope").await.unwrap(), None);
        assert_eq!(store.list_agents().await.unwrap(), [created]);
        store.acting_as("admin").delete_agent("edge").await.unwrap();
        assert_eq!(store.find_agent(&hash).await.unwrap(), None);
        assert!(matches!(
            store.delete_agent("edge").await,
            Err(StoreError::NotFound { .. })
        ));
        // Both changes are in the event log, with who made them.
        let events = store.read_events(0, 100).await.unwrap();
        let kinds: Vec<_> = events
            .iter()
            .map(|e| (e.kind.as_str(), e.user.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("agent.created", Some("admin")),
                ("agent.deleted", Some("admin"))
            ]
        );
    }
}
