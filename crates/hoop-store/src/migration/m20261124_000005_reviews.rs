//! Access reviews: `reviews` (one row per request for a one-time execution or for
//! just-in-time access), `review_decisions` (one row per reviewer's decision), and the
//! review settings of a connection.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Reviews {
    Table,
    Id,
    Kind,
    Status,
    Connection,
    Requester,
    Verb,
    Input,
    InputSha256,
    Args,
    Groups,
    MinApprovals,
    AccessDurationMs,
    Reason,
    CreatedAt,
    UpdatedAt,
    ExpiresAt,
    DecidedAt,
    GrantEndsAt,
    SessionId,
}

#[derive(DeriveIden)]
enum ReviewDecisions {
    Table,
    Id,
    ReviewId,
    Reviewer,
    GroupName,
    Approved,
    Reason,
    DecidedAt,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    MinApprovals,
    ReviewTtlMs,
    AccessMaxDurationMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key to `connections` or `users`: a review's history outlives both.
        manager
            .create_table(
                Table::create()
                    .table(Reviews::Table)
                    .col(string_len(Reviews::Id, 40).primary_key())
                    .col(string_len(Reviews::Kind, 16))
                    .col(string_len(Reviews::Status, 16))
                    .col(string_len(Reviews::Connection, 63))
                    .col(string_len(Reviews::Requester, 63))
                    .col(string_len(Reviews::Verb, 16))
                    .col(blob_null(Reviews::Input))
                    .col(string_len_null(Reviews::InputSha256, 64))
                    .col(json(Reviews::Args))
                    .col(json(Reviews::Groups))
                    .col(integer_null(Reviews::MinApprovals))
                    .col(big_integer_null(Reviews::AccessDurationMs))
                    .col(text_null(Reviews::Reason))
                    .col(timestamp_with_time_zone(Reviews::CreatedAt))
                    .col(timestamp_with_time_zone(Reviews::UpdatedAt))
                    .col(timestamp_with_time_zone(Reviews::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Reviews::DecidedAt))
                    .col(timestamp_with_time_zone_null(Reviews::GrantEndsAt))
                    .col(string_len_null(Reviews::SessionId, 40))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_reviews_status", Reviews::Status),
            ("idx_reviews_connection", Reviews::Connection),
            ("idx_reviews_requester", Reviews::Requester),
            ("idx_reviews_created_at", Reviews::CreatedAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Reviews::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ReviewDecisions::Table)
                    .col(pk_auto(ReviewDecisions::Id))
                    .col(string_len(ReviewDecisions::ReviewId, 40))
                    .col(string_len(ReviewDecisions::Reviewer, 63))
                    // `group` is a reserved word in SQL.
                    .col(string_len(ReviewDecisions::GroupName, 63))
                    .col(boolean(ReviewDecisions::Approved))
                    .col(text_null(ReviewDecisions::Reason))
                    .col(timestamp_with_time_zone(ReviewDecisions::DecidedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReviewDecisions::Table, ReviewDecisions::ReviewId)
                            .to(Reviews::Table, Reviews::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One decision per reviewer and review; also the index of a review's decisions.
        manager
            .create_index(
                Index::create()
                    .name("idx_review_decisions_review_reviewer")
                    .table(ReviewDecisions::Table)
                    .col(ReviewDecisions::ReviewId)
                    .col(ReviewDecisions::Reviewer)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(integer_null(Connections::MinApprovals))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(big_integer_null(Connections::ReviewTtlMs))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(big_integer_null(Connections::AccessMaxDurationMs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            Connections::AccessMaxDurationMs,
            Connections::ReviewTtlMs,
            Connections::MinApprovals,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Connections::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ReviewDecisions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Reviews::Table).to_owned())
            .await
    }
}
