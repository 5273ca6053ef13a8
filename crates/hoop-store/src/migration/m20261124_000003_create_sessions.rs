//! Sessions: one row per session, written when it opens and settled when it ends.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Connection,
    ConnectionType,
    UserName,
    Verb,
    Status,
    ExitCode,
    Reason,
    StartedAt,
    EndedAt,
    BytesIn,
    BytesOut,
    Metrics,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign keys: a session's history outlives its connection and its user.
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string_len(Sessions::Id, 40).primary_key())
                    .col(string_len(Sessions::Connection, 63))
                    .col(string_len(Sessions::ConnectionType, 32))
                    .col(string_len(Sessions::UserName, 63))
                    .col(string_len(Sessions::Verb, 16))
                    .col(string_len(Sessions::Status, 16))
                    .col(integer_null(Sessions::ExitCode))
                    .col(text(Sessions::Reason))
                    .col(timestamp_with_time_zone(Sessions::StartedAt))
                    .col(timestamp_with_time_zone_null(Sessions::EndedAt))
                    .col(big_integer(Sessions::BytesIn))
                    .col(big_integer(Sessions::BytesOut))
                    .col(json(Sessions::Metrics))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_sessions_started_at", Sessions::StartedAt),
            ("idx_sessions_connection", Sessions::Connection),
            ("idx_sessions_user_name", Sessions::UserName),
            ("idx_sessions_status", Sessions::Status),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Sessions::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}
