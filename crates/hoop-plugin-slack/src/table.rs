//! The plugin's own table, `slack_messages`: every message it posted (a review's message in
//! each channel, a session's parent notice in each channel), so later events update or
//! thread under them, and so a restart never posts one twice.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, QueryOrder};

/// The migration that creates the table (its name is unique across the host).
pub const MIGRATION_NAME: &str = "m20261203_slack_000001_messages";

/// One posted message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "slack_messages")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// What it is about: `review:<id>` or `session:<id>`.
    pub subject: String,
    /// Channel ID.
    pub channel: String,
    /// The message's `ts`.
    pub ts: String,
    /// When the subject began (review created, session opened).
    pub subject_time: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub use migration::Migration;

mod migration {
    // sea-orm-migration declares `&SchemaManager` without its lifetime.
    #![allow(elided_lifetimes_in_paths)]

    use sea_orm_migration::prelude::*;

    use super::MIGRATION_NAME;

    #[derive(DeriveIden)]
    enum SlackMessages {
        Table,
        Id,
        Subject,
        Channel,
        Ts,
        SubjectTime,
    }

    /// Creates `slack_messages`.
    #[derive(Debug)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            MIGRATION_NAME
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(SlackMessages::Table)
                        .col(
                            ColumnDef::new(SlackMessages::Id)
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(
                            ColumnDef::new(SlackMessages::Subject)
                                .string_len(100)
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(SlackMessages::Channel)
                                .string_len(32)
                                .not_null(),
                        )
                        .col(ColumnDef::new(SlackMessages::Ts).string_len(32).not_null())
                        .col(
                            ColumnDef::new(SlackMessages::SubjectTime)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("idx_slack_messages_subject_channel")
                        .table(SlackMessages::Table)
                        .col(SlackMessages::Subject)
                        .col(SlackMessages::Channel)
                        .unique()
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table(SlackMessages::Table).to_owned())
                .await
        }
    }
}

/// The messages posted about `subject`, oldest first.
pub(crate) async fn messages_of(
    db: &DatabaseConnection,
    subject: &str,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::Subject.eq(subject))
        .order_by_asc(Column::Id)
        .all(db)
        .await
}

/// Records a posted message (a second record of the same subject and channel is ignored).
pub(crate) async fn record(
    db: &DatabaseConnection,
    subject: &str,
    channel: &str,
    ts: &str,
    subject_time: chrono_like::Time,
) -> Result<(), DbErr> {
    let row = ActiveModel {
        subject: Set(subject.to_owned()),
        channel: Set(channel.to_owned()),
        ts: Set(ts.to_owned()),
        subject_time: Set(subject_time),
        ..Default::default()
    };
    match Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([Column::Subject, Column::Channel])
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(db)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Time as the table keeps it.
pub(crate) mod chrono_like {
    /// `DateTimeUtc` of sea-orm (chrono).
    pub(crate) type Time = sea_orm::prelude::DateTimeUtc;
}
