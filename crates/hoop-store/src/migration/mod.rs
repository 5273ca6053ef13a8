//! Schema migrations, the same on SQLite and PostgreSQL. A migration that has shipped is
//! never edited: changes come as new migrations.

// sea-orm-migration declares `&SchemaManager` without its lifetime.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_users;
mod m20261124_000002_create_connections;
mod m20261124_000003_create_sessions;
mod m20261124_000004_session_attributes_and_timeout;
mod m20261124_000005_reviews;
mod m20261203_000006_events;
mod m20261203_000007_args_and_agent;
mod m20261203_000008_agents;
mod m20261203_000009_user_slack_id;
mod m20261210_000011_instances;
mod m20261212_000012_mask_columns;

use std::sync::Mutex;

use crate::error::StoreError;

/// Builds one migration a plugin ships, type-erased: `Box<Box<dyn MigrationTrait>>` as
/// `Box<dyn Any>` (what `hoop_core::PluginMigration::build` returns).
pub type PluginMigrationBuilder = fn() -> Box<dyn std::any::Any + Send>;

/// The plugins' migrations, run after the store's own (see [`register_plugin_migrations`]).
static PLUGIN_MIGRATIONS: Mutex<Vec<PluginMigrationBuilder>> = Mutex::new(Vec::new());

/// The store's own migrations, in order.
fn own() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261124_000001_create_users::Migration),
        Box::new(m20261124_000002_create_connections::Migration),
        Box::new(m20261124_000003_create_sessions::Migration),
        Box::new(m20261124_000004_session_attributes_and_timeout::Migration),
        Box::new(m20261124_000005_reviews::Migration),
        Box::new(m20261203_000006_events::Migration),
        Box::new(m20261203_000007_args_and_agent::Migration),
        Box::new(m20261203_000008_agents::Migration),
        Box::new(m20261203_000009_user_slack_id::Migration),
        // 10 is reserved for another change; it goes before this one when it lands.
        Box::new(m20261210_000011_instances::Migration),
        Box::new(m20261212_000012_mask_columns::Migration),
    ]
}

fn build(builder: PluginMigrationBuilder) -> Option<Box<dyn MigrationTrait>> {
    builder()
        .downcast::<Box<dyn MigrationTrait>>()
        .ok()
        .map(|boxed| *boxed)
}

/// Sets the migrations plugins ship for their own tables, `(name, builder)` in order: the
/// migrator runs them after the store's own (in this process; call before
/// [`Store::migrate`](crate::Store::migrate)). Replaces what an earlier call set.
///
/// # Errors
/// [`StoreError::Invalid`], and nothing is set, if a builder does not build a sea-orm
/// migration, if a migration reports another name than the one given, or if a name is
/// taken (by the store or by another plugin migration).
pub fn register_plugin_migrations(
    migrations: &[(&str, PluginMigrationBuilder)],
) -> Result<(), StoreError> {
    let mut names: Vec<String> = own().iter().map(|m| m.name().to_owned()).collect();
    for (name, builder) in migrations {
        let Some(migration) = build(*builder) else {
            return Err(StoreError::Invalid(format!(
                "plugin migration `{name}` is not a sea-orm migration (build must return \
                 Box<Box<dyn MigrationTrait>>)"
            )));
        };
        if migration.name() != *name {
            return Err(StoreError::Invalid(format!(
                "plugin migration `{name}` calls itself `{}`",
                migration.name()
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(StoreError::Invalid(format!(
                "migration name `{name}` is used twice"
            )));
        }
        names.push((*name).to_owned());
    }
    let mut registered = PLUGIN_MIGRATIONS.lock().unwrap_or_else(|e| e.into_inner());
    *registered = migrations.iter().map(|(_, builder)| *builder).collect();
    Ok(())
}

/// Every migration: the store's own, in order, then the plugins' (see
/// [`register_plugin_migrations`]).
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = own();
        let registered = PLUGIN_MIGRATIONS.lock().unwrap_or_else(|e| e.into_inner());
        // Checked when registered: every builder builds a migration.
        all.extend(registered.iter().filter_map(|builder| build(*builder)));
        all
    }
}
