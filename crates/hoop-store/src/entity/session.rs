//! `sessions`: one row per session.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub connection: String,
    pub connection_type: String,
    pub user_name: String,
    pub verb: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub reason: String,
    pub started_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub metrics: Json,
    pub attributes: Json,
    pub args: Json,
    pub instance_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
