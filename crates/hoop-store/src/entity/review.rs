//! `reviews`: requests for a one-time execution or for just-in-time access, held until
//! reviewers decide.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub status: String,
    pub connection: String,
    pub requester: String,
    pub verb: String,
    pub input: Option<Vec<u8>>,
    pub input_sha256: Option<String>,
    pub args: Json,
    pub groups: Json,
    pub min_approvals: Option<i32>,
    pub access_duration_ms: Option<i64>,
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub decided_at: Option<DateTimeUtc>,
    pub grant_ends_at: Option<DateTimeUtc>,
    pub session_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::review_decision::Entity")]
    Decisions,
}

impl Related<super::review_decision::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Decisions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
