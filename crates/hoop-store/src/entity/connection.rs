//! `connections`: targets of sessions. `env_encrypted` holds the secret environment,
//! encrypted with the gateway's secret key; `env_keys` only its variable names.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub kind: String,
    pub command: Json,
    pub env_keys: Json,
    pub env_encrypted: String,
    pub reviewers: Json,
    pub redact_types: Json,
    pub access_exec: bool,
    pub access_connect: bool,
    pub access_runbooks: bool,
    pub tags: Json,
    pub session_timeout_ms: Option<i64>,
    pub min_approvals: Option<i32>,
    pub review_ttl_ms: Option<i64>,
    pub access_max_duration_ms: Option<i64>,
    pub allow_args: bool,
    pub agent: String,
    pub mask_columns: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::plugin_attachment::Entity")]
    Plugins,
}

impl Related<super::plugin_attachment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Plugins.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
