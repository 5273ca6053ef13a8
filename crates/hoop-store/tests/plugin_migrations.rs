//! Migrations that plugins ship for their own tables run after the store's own, through the
//! type-erased builders hoop-core's `PluginMigration` carries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// sea-orm-migration declares `&SchemaManager` without its lifetime.
#![allow(elided_lifetimes_in_paths)]

use hoop_store::migration::{PluginMigrationBuilder, register_plugin_migrations};
use hoop_store::testing::{POSTGRES_URL_VAR, scratch_postgres_database};
use hoop_store::{SecretBox, Store};
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string, string_len};

const KEY: &str = "0123456789abcdef0123456789abcdef-test";

/// A plugin's table, as a plugin crate would ship it.
mod m20261203_000001_probe_items {
    use super::*;

    pub(crate) struct Migration;

    // `DeriveMigrationName` names a migration after its file; this one shares a file.
    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261203_000001_probe_items"
        }
    }

    #[derive(DeriveIden)]
    enum ProbeItems {
        Table,
        Id,
        Body,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(ProbeItems::Table)
                        .col(string_len(ProbeItems::Id, 40).primary_key())
                        .col(string(ProbeItems::Body))
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table(ProbeItems::Table).to_owned())
                .await
        }
    }
}

fn probe() -> Box<dyn std::any::Any + Send> {
    Box::new(Box::new(m20261203_000001_probe_items::Migration) as Box<dyn MigrationTrait>)
}

fn not_a_migration() -> Box<dyn std::any::Any + Send> {
    Box::new("nope")
}

#[tokio::test]
async fn plugin_migrations_run_after_the_stores_own_and_bad_ones_are_refused() {
    // Refused, and nothing set: a builder of something else, a wrong name, a taken name.
    let err = register_plugin_migrations(&[("m1", not_a_migration as PluginMigrationBuilder)])
        .unwrap_err();
    assert!(err.to_string().contains("not a sea-orm migration"), "{err}");
    let err = register_plugin_migrations(&[("m20261203_000009_other", probe as _)]).unwrap_err();
    assert!(err.to_string().contains("calls itself"), "{err}");
    let err = register_plugin_migrations(&[
        ("m20261203_000001_probe_items", probe as _),
        ("m20261203_000001_probe_items", probe as _),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("used twice"), "{err}");

    register_plugin_migrations(&[("m20261203_000001_probe_items", probe as _)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}/hoop.db", dir.path().display())];
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(server) => urls.push(
            scratch_postgres_database(&server, "hoop_store")
                .await
                .unwrap(),
        ),
        Err(_) => eprintln!("{POSTGRES_URL_VAR} unset: PostgreSQL part skipped"),
    }
    for url in urls {
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let applied = store.applied_migrations().await.unwrap();
        assert_eq!(applied.last().unwrap(), "m20261203_000001_probe_items");
        assert_eq!(applied[applied.len() - 2], "m20261212_000012_mask_columns");
        // The plugin's table is there.
        let db = store.db();
        db.execute(Statement::from_string(
            db.get_database_backend(),
            "INSERT INTO probe_items (id, body) VALUES ('a', 'b')",
        ))
        .await
        .unwrap();
        // Migrating again is a no-op.
        store.migrate().await.unwrap();
        assert_eq!(store.applied_migrations().await.unwrap(), applied);
    }
}
