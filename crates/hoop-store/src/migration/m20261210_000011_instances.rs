//! Several gateways on one database: `instances` (each gateway's lease), the owner instance
//! of every session (`sessions.instance_id`), and recordings kept in the database
//! (`recordings`, `recording_chunks`) for `recordings = "database"`.
//!
//! Number 11: number 10 is reserved for another change. The migrator applies what a database
//! has not applied by name, so the two may land in either order.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
    Hostname,
    Version,
    Listen,
    StartedAt,
    RenewedAt,
    ExpiresAt,
    StoppedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    InstanceId,
    Status,
}

#[derive(DeriveIden)]
enum Recordings {
    Table,
    SessionId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RecordingChunks {
    Table,
    SessionId,
    Seq,
    Data,
}

const SESSIONS_OPEN_BY_INSTANCE: &str = "idx_sessions_status_instance";
const CHUNKS_PK: &str = "pk_recording_chunks";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .col(string_len(Instances::Id, 63).primary_key())
                    .col(string_len(Instances::Hostname, 255))
                    .col(string_len(Instances::Version, 63))
                    .col(string_len(Instances::Listen, 255))
                    .col(timestamp_with_time_zone(Instances::StartedAt))
                    .col(timestamp_with_time_zone(Instances::RenewedAt))
                    .col(timestamp_with_time_zone(Instances::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Instances::StoppedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::InstanceId).string_len(63).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(SESSIONS_OPEN_BY_INSTANCE)
                    .table(Sessions::Table)
                    .col(Sessions::Status)
                    .col(Sessions::InstanceId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Recordings::Table)
                    .col(string_len(Recordings::SessionId, 64).primary_key())
                    .col(timestamp_with_time_zone(Recordings::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecordingChunks::Table)
                    .col(string_len(RecordingChunks::SessionId, 64))
                    .col(big_integer(RecordingChunks::Seq))
                    .col(blob(RecordingChunks::Data))
                    .primary_key(
                        Index::create()
                            .name(CHUNKS_PK)
                            .col(RecordingChunks::SessionId)
                            .col(RecordingChunks::Seq),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RecordingChunks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Recordings::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(SESSIONS_OPEN_BY_INSTANCE)
                    .table(Sessions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::InstanceId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Instances::Table).to_owned())
            .await
    }
}
