//! `users.slack_id`: a user's Slack member ID (`U…`), which the slack plugin maps clicks in
//! Slack to. Optional, and unique among users: one Slack account acts as one hoop user.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    SlackId,
}

const USERS_SLACK_ID: &str = "idx_users_slack_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::SlackId).string_len(32).null())
                    .to_owned(),
            )
            .await?;
        // Unique where set: both databases let any number of rows hold NULL.
        manager
            .create_index(
                Index::create()
                    .name(USERS_SLACK_ID)
                    .table(Users::Table)
                    .col(Users::SlackId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(USERS_SLACK_ID)
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::SlackId)
                    .to_owned(),
            )
            .await
    }
}
