//! Arguments and agents: whether a connection lets clients append arguments to its command
//! (`connections.allow_args`, off by default) and which agent runs its sessions
//! (`connections.agent`, `local` by default); the arguments each session ran with
//! (`sessions.args`); and an index to count a user's open sessions (the per-user limit).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Connections {
    Table,
    AllowArgs,
    Agent,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    UserName,
    Status,
    Args,
}

const SESSIONS_USER_STATUS: &str = "idx_sessions_user_name_status";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(
                        ColumnDef::new(Connections::AllowArgs)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(
                        ColumnDef::new(Connections::Agent)
                            .string_len(63)
                            .not_null()
                            .default("local"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(
                        ColumnDef::new(Sessions::Args)
                            .json()
                            .not_null()
                            .default("[]"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(SESSIONS_USER_STATUS)
                    .table(Sessions::Table)
                    .col(Sessions::UserName)
                    .col(Sessions::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(SESSIONS_USER_STATUS)
                    .table(Sessions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::Args)
                    .to_owned(),
            )
            .await?;
        for col in [Connections::Agent, Connections::AllowArgs] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Connections::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
