//! The plugin's own tables, shipped as a [`PluginMigration`] the host runs after its own, and
//! their sea-orm entities. Times are whole milliseconds since the Unix epoch (`BIGINT`), so
//! that comparisons and ordering are the same on SQLite and PostgreSQL.
//!
//! - `webhook_endpoints`: one row per endpoint; `secret` (and `previous_secret` during a
//!   rotation) sealed through the host's sealer ([`EndpointSecrets`](crate::EndpointSecrets)).
//! - `webhook_deliveries`: the durable outbox, one row per (endpoint, event): its payload as
//!   sent, status, attempts, when the next attempt is due, and the lease of the gateway
//!   sending it.
//! - `webhook_attempts`: every attempt: status code, latency, first KiB of the answer, error.
//! - `webhook_inputs`: the masked, cut input of `exec` sessions on connections with the plugin
//!   attached, for the payloads of their events.

// sea-orm-migration declares `&SchemaManager` without its lifetime.
#![allow(elided_lifetimes_in_paths)]

use hoop_core::PluginMigration;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// The migrations of the plugin's tables, in order.
pub(crate) static MIGRATIONS: &[PluginMigration] = &[PluginMigration::new(TABLES, || {
    Box::new(Box::new(Tables) as Box<dyn MigrationTrait>)
})];

const TABLES: &str = "m20261203_webhooks_000001_tables";

struct Tables;

impl MigrationName for Tables {
    fn name(&self) -> &str {
        TABLES
    }
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Name,
    Url,
    Description,
    Enabled,
    Events,
    Connections,
    Secret,
    PreviousSecret,
    PreviousSecretUntil,
    DisabledReason,
    CreatedMs,
    UpdatedMs,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    Endpoint,
    EventId,
    EventType,
    Connection,
    Payload,
    Status,
    Attempts,
    NextAttemptMs,
    LeaseOwner,
    LeaseUntilMs,
    LastStatusCode,
    LastError,
    CreatedMs,
    UpdatedMs,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    Attempt,
    TimeMs,
    StatusCode,
    LatencyMs,
    Response,
    Error,
}

#[derive(DeriveIden)]
enum WebhookInputs {
    Table,
    SessionId,
    Input,
    InputSize,
    InputTruncated,
    CreatedMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Tables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(string_len(WebhookEndpoints::Name, 63).primary_key())
                    .col(text(WebhookEndpoints::Url))
                    .col(text(WebhookEndpoints::Description))
                    .col(boolean(WebhookEndpoints::Enabled))
                    .col(text(WebhookEndpoints::Events))
                    .col(text(WebhookEndpoints::Connections))
                    .col(text(WebhookEndpoints::Secret))
                    .col(text_null(WebhookEndpoints::PreviousSecret))
                    .col(big_integer_null(WebhookEndpoints::PreviousSecretUntil))
                    .col(text_null(WebhookEndpoints::DisabledReason))
                    .col(big_integer(WebhookEndpoints::CreatedMs))
                    .col(big_integer(WebhookEndpoints::UpdatedMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(string_len(WebhookDeliveries::Id, 40).primary_key())
                    .col(string_len(WebhookDeliveries::Endpoint, 63))
                    .col(big_integer(WebhookDeliveries::EventId))
                    .col(string_len(WebhookDeliveries::EventType, 40))
                    .col(string_len_null(WebhookDeliveries::Connection, 63))
                    .col(text(WebhookDeliveries::Payload))
                    .col(string_len(WebhookDeliveries::Status, 16))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(big_integer(WebhookDeliveries::NextAttemptMs))
                    .col(string_len_null(WebhookDeliveries::LeaseOwner, 40))
                    .col(big_integer_null(WebhookDeliveries::LeaseUntilMs))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(big_integer(WebhookDeliveries::CreatedMs))
                    .col(big_integer(WebhookDeliveries::UpdatedMs))
                    .to_owned(),
            )
            .await?;
        // One delivery per endpoint and event: ingesting an event twice (after a crash, or
        // by two gateways) adds nothing.
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_endpoint_event")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Endpoint)
                    .col(WebhookDeliveries::EventId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptMs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(
                        big_integer(WebhookAttempts::Id)
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(string_len(WebhookAttempts::DeliveryId, 40))
                    .col(integer(WebhookAttempts::Attempt))
                    .col(big_integer(WebhookAttempts::TimeMs))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(big_integer(WebhookAttempts::LatencyMs))
                    .col(text(WebhookAttempts::Response))
                    .col(text_null(WebhookAttempts::Error))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookInputs::Table)
                    .col(string_len(WebhookInputs::SessionId, 64).primary_key())
                    .col(text(WebhookInputs::Input))
                    .col(big_integer(WebhookInputs::InputSize))
                    .col(boolean(WebhookInputs::InputTruncated))
                    .col(big_integer(WebhookInputs::CreatedMs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookInputs::Table.into_iden(),
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// `webhook_endpoints`.
#[allow(unreachable_pub)]
pub(crate) mod endpoint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_endpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub url: String,
        pub description: String,
        pub enabled: bool,
        pub events: String,
        pub connections: String,
        pub secret: String,
        pub previous_secret: Option<String>,
        pub previous_secret_until: Option<i64>,
        pub disabled_reason: Option<String>,
        pub created_ms: i64,
        pub updated_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `webhook_deliveries`.
#[allow(unreachable_pub)]
pub(crate) mod delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub endpoint: String,
        pub event_id: i64,
        pub event_type: String,
        pub connection: Option<String>,
        pub payload: String,
        pub status: String,
        pub attempts: i32,
        pub next_attempt_ms: i64,
        pub lease_owner: Option<String>,
        pub lease_until_ms: Option<i64>,
        pub last_status_code: Option<i32>,
        pub last_error: Option<String>,
        pub created_ms: i64,
        pub updated_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `webhook_attempts`.
#[allow(unreachable_pub)]
pub(crate) mod attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_attempts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub delivery_id: String,
        pub attempt: i32,
        pub time_ms: i64,
        pub status_code: Option<i32>,
        pub latency_ms: i64,
        pub response: String,
        pub error: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `webhook_inputs`.
#[allow(unreachable_pub)]
pub(crate) mod input {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_inputs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: String,
        pub input: String,
        pub input_size: i64,
        pub input_truncated: bool,
        pub created_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
