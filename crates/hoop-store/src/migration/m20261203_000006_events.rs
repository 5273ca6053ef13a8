//! The durable event log: `events` (one row per state change, appended in the transaction of
//! the change) and `event_cursors` (how far each named consumer has read).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    Type,
    Time,
    Connection,
    UserName,
    Data,
}

#[derive(DeriveIden)]
enum EventCursors {
    Table,
    Consumer,
    EventId,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `big_integer` + auto increment: BIGSERIAL on PostgreSQL; on SQLite an INTEGER
        // PRIMARY KEY AUTOINCREMENT, so ids are never reused even after pruning.
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(big_integer(Events::Id).auto_increment().primary_key())
                    .col(string_len(Events::Type, 40))
                    .col(timestamp_with_time_zone(Events::Time))
                    .col(string_len_null(Events::Connection, 63))
                    .col(string_len_null(Events::UserName, 63))
                    .col(json(Events::Data))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_time")
                    .table(Events::Table)
                    .col(Events::Time)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventCursors::Table)
                    .col(string_len(EventCursors::Consumer, 120).primary_key())
                    .col(big_integer(EventCursors::EventId))
                    .col(timestamp_with_time_zone(EventCursors::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventCursors::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}
