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

/// Every migration of the store, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261124_000002_create_connections::Migration),
            Box::new(m20261124_000003_create_sessions::Migration),
            Box::new(m20261124_000004_session_attributes_and_timeout::Migration),
            Box::new(m20261124_000005_reviews::Migration),
            Box::new(m20261203_000006_events::Migration),
        ]
    }
}
