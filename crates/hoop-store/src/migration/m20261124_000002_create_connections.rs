//! Connections, their plugin attachments, and the `meta` table.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Connections {
    Table,
    Name,
    Kind,
    Command,
    EnvKeys,
    EnvEncrypted,
    Reviewers,
    RedactTypes,
    AccessExec,
    AccessConnect,
    AccessRunbooks,
    Tags,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PluginAttachments {
    Table,
    ConnectionName,
    Plugin,
    Config,
    Enabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Meta {
    Table,
    Key,
    Value,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Connections::Table)
                    .col(string_len(Connections::Name, 63).primary_key())
                    .col(string_len(Connections::Kind, 32))
                    .col(json(Connections::Command))
                    .col(json(Connections::EnvKeys))
                    .col(text(Connections::EnvEncrypted))
                    .col(json(Connections::Reviewers))
                    .col(json(Connections::RedactTypes))
                    .col(boolean(Connections::AccessExec))
                    .col(boolean(Connections::AccessConnect))
                    .col(boolean(Connections::AccessRunbooks))
                    .col(json(Connections::Tags))
                    .col(timestamp_with_time_zone(Connections::CreatedAt))
                    .col(timestamp_with_time_zone(Connections::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PluginAttachments::Table)
                    .col(string_len(PluginAttachments::ConnectionName, 63))
                    .col(string_len(PluginAttachments::Plugin, 63))
                    .col(json(PluginAttachments::Config))
                    .col(boolean(PluginAttachments::Enabled))
                    .col(timestamp_with_time_zone(PluginAttachments::CreatedAt))
                    .col(timestamp_with_time_zone(PluginAttachments::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(PluginAttachments::ConnectionName)
                            .col(PluginAttachments::Plugin),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PluginAttachments::Table, PluginAttachments::ConnectionName)
                            .to(Connections::Table, Connections::Name)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Meta::Table)
                    .col(string_len(Meta::Key, 63).primary_key())
                    .col(text(Meta::Value))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Meta::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PluginAttachments::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Connections::Table).to_owned())
            .await
    }
}
