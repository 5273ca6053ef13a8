//! [`WebhookStore`]: endpoints and deliveries in the plugin's own tables. The management API
//! (the gateway's `WebhookService`) calls it, and so does the plugin's delivery work.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoop_core::events::EventFilter;
use hoop_core::names::check_connection_name;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, Statement, TransactionTrait,
};

use crate::crypto::{EndpointSecrets, generate_secret};
use crate::error::WebhookError;
use crate::schema::{attempt, delivery, endpoint, input};

/// How long the old secret stays valid after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Longest endpoint URL.
const MAX_URL: usize = 2048;
/// Longest description.
const MAX_DESCRIPTION: usize = 1024;
/// Most entries in `events` and in `connections`.
const MAX_FILTERS: usize = 64;
/// Default and largest page of `list_deliveries`.
const DEFAULT_PAGE: u64 = 50;
const MAX_PAGE: u64 = 1000;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

pub(crate) fn to_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// What an endpoint is made with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSpec {
    /// `^[a-z0-9][a-z0-9_-]{0,62}$`, unique, immutable.
    pub name: String,
    /// `http://` or `https://`, without credentials.
    pub url: String,
    /// Free text (at most 1024 characters).
    pub description: String,
    /// Whether events are sent to it.
    pub enabled: bool,
    /// Exact event types or `family.*` prefixes; empty: every type.
    pub events: Vec<String>,
    /// Connection names whose events it gets; empty: every connection (with the plugin
    /// attached) and the events of no connection.
    pub connections: Vec<String>,
}

/// A change of an endpoint: each `Some` field replaces the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointUpdate {
    /// New URL.
    pub url: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Enable (which clears `disabled_reason`) or disable.
    pub enabled: Option<bool>,
    /// New event filter.
    pub events: Option<Vec<String>>,
    /// New connection filter.
    pub connections: Option<Vec<String>>,
}

/// An endpoint as stored (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Name.
    pub name: String,
    /// URL.
    pub url: String,
    /// Description.
    pub description: String,
    /// Whether events are sent to it.
    pub enabled: bool,
    /// Event filter (empty: every type).
    pub events: Vec<String>,
    /// Connection filter (empty: every connection).
    pub connections: Vec<String>,
    /// Why the gateway disabled it (e.g. it answered `410 Gone`), if it did.
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs (a second signature).
    pub previous_secret_until: Option<SystemTime>,
    /// When it was created.
    pub created: SystemTime,
    /// When it was last changed.
    pub updated: SystemTime,
}

/// An endpoint with its secret, which is shown once: when the endpoint is created, and when
/// its secret is rotated.
#[derive(Clone)]
pub struct WithSecret {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its `whsec_…` secret.
    pub secret: String,
}

impl std::fmt::Debug for WithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithSecret")
            .field("endpoint", &self.endpoint)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being sent).
    Pending,
    /// An attempt got a 2xx answer.
    Succeeded,
    /// Every attempt of the schedule failed, or the endpoint answered `410 Gone`.
    Failed,
}

impl DeliveryStatus {
    /// `pending`, `succeeded` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// The status named `text`.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] naming `field`.
    pub fn parse(text: &str, field: &str) -> Result<Self, WebhookError> {
        match text {
            "pending" => Ok(Self::Pending),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            other => Err(WebhookError::invalid(
                field,
                format!("unknown status `{other}`: pending, succeeded or failed"),
            )),
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt of a round (a redelivery starts a new round).
    pub attempt: u32,
    /// When it was made.
    pub time: SystemTime,
    /// The HTTP status of the answer, if one came.
    pub status_code: Option<u16>,
    /// How long it took.
    pub latency: Duration,
    /// The first KiB of the answer's body (lossy UTF-8).
    pub response: String,
    /// Why it failed without an answer (refused destination, timeout, connection error).
    pub error: Option<String>,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The `webhook-id` it is sent with, the same on every attempt and redelivery.
    pub id: String,
    /// The endpoint.
    pub endpoint: String,
    /// The event's id in the event log.
    pub event_id: u64,
    /// The event's type.
    pub event_type: String,
    /// The event's connection, if any.
    pub connection: Option<String>,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made in the current round.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt: Option<SystemTime>,
    /// The HTTP status of the last answer, if any.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was created (the event was ingested).
    pub created: SystemTime,
    /// When it last changed.
    pub updated: SystemTime,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<Attempt>,
    /// The body it is sent with.
    pub payload: String,
}

/// Endpoints and deliveries, over the host's database (see the crate docs).
#[derive(Clone)]
pub struct WebhookStore {
    db: DatabaseConnection,
    key: EndpointSecrets,
}

impl std::fmt::Debug for WebhookStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookStore").finish_non_exhaustive()
    }
}

/// A field path inside the endpoint of a request.
fn at(field: &str) -> String {
    format!("endpoint.{field}")
}

/// Checks an endpoint name (named `field`).
fn check_name(name: &str, field: &str) -> Result<(), WebhookError> {
    if name.is_empty() {
        return Err(WebhookError::invalid(field, "required"));
    }
    check_connection_name(name).map_err(|e| WebhookError::invalid(field, e.to_string()))
}

/// Checks an endpoint URL: `http(s)://host…`, no credentials, at most 2048 characters.
pub(crate) fn check_url(text: &str) -> Result<reqwest::Url, WebhookError> {
    let field = at("url");
    if text.is_empty() {
        return Err(WebhookError::invalid(
            field,
            "required: the http(s) URL to POST events to",
        ));
    }
    if text.len() > MAX_URL {
        return Err(WebhookError::invalid(
            field,
            format!("at most {MAX_URL} characters"),
        ));
    }
    let url = reqwest::Url::parse(text).map_err(|e| {
        WebhookError::invalid(
            &field,
            format!("not a URL ({e}): write e.g. https://example.com/hooks"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookError::invalid(
            field,
            format!("scheme `{}`: only http and https are allowed", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::invalid(field, "the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(WebhookError::invalid(
            field,
            "must not carry credentials (user:password@): URLs are shown in reads and logs; \
             the endpoint authenticates the gateway by the signature",
        ));
    }
    Ok(url)
}

fn check_events(events: &[String]) -> Result<(), WebhookError> {
    if events.len() > MAX_FILTERS {
        return Err(WebhookError::invalid(
            at("events"),
            format!("at most {MAX_FILTERS} entries"),
        ));
    }
    if let Err(e) = EventFilter::parse(events) {
        return Err(WebhookError::invalid(
            format!("endpoint.events[{}]", e.index),
            e.to_string(),
        ));
    }
    for (i, event) in events.iter().enumerate() {
        if events[..i].contains(event) {
            return Err(WebhookError::invalid(
                format!("endpoint.events[{i}]"),
                format!("`{event}` is listed twice"),
            ));
        }
    }
    Ok(())
}

fn check_connections(connections: &[String]) -> Result<(), WebhookError> {
    if connections.len() > MAX_FILTERS {
        return Err(WebhookError::invalid(
            at("connections"),
            format!("at most {MAX_FILTERS} entries"),
        ));
    }
    for (i, name) in connections.iter().enumerate() {
        let field = format!("endpoint.connections[{i}]");
        check_connection_name(name).map_err(|e| WebhookError::invalid(&field, e.to_string()))?;
        if connections[..i].contains(name) {
            return Err(WebhookError::invalid(
                field,
                format!("`{name}` is listed twice"),
            ));
        }
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), WebhookError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(WebhookError::invalid(
            at("description"),
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn endpoint_view(row: &endpoint::Model) -> Endpoint {
    Endpoint {
        name: row.name.clone(),
        url: row.url.clone(),
        description: row.description.clone(),
        enabled: row.enabled,
        events: from_json(&row.events),
        connections: from_json(&row.connections),
        disabled_reason: row.disabled_reason.clone(),
        previous_secret_until: row
            .previous_secret_until
            .filter(|until| *until > now_ms())
            .map(from_ms),
        created: from_ms(row.created_ms),
        updated: from_ms(row.updated_ms),
    }
}

fn status_of(text: &str) -> DeliveryStatus {
    match text {
        "succeeded" => DeliveryStatus::Succeeded,
        "failed" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Pending,
    }
}

fn delivery_view(row: delivery::Model, attempts: Vec<attempt::Model>) -> Delivery {
    let status = status_of(&row.status);
    Delivery {
        id: row.id,
        endpoint: row.endpoint,
        event_id: u64::try_from(row.event_id).unwrap_or_default(),
        event_type: row.event_type,
        connection: row.connection,
        status,
        attempts: u32::try_from(row.attempts).unwrap_or_default(),
        next_attempt: (status == DeliveryStatus::Pending).then(|| from_ms(row.next_attempt_ms)),
        last_status_code: row.last_status_code.and_then(|c| u16::try_from(c).ok()),
        last_error: row.last_error,
        created: from_ms(row.created_ms),
        updated: from_ms(row.updated_ms),
        attempt_log: attempts
            .into_iter()
            .map(|a| Attempt {
                attempt: u32::try_from(a.attempt).unwrap_or_default(),
                time: from_ms(a.time_ms),
                status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
                latency: Duration::from_millis(u64::try_from(a.latency_ms).unwrap_or_default()),
                response: a.response,
                error: a.error,
            })
            .collect(),
        payload: row.payload,
    }
}

fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

impl WebhookStore {
    /// A store over `db` (with the plugin's migrations applied), sealing secrets with `key`.
    pub fn new(db: DatabaseConnection, key: EndpointSecrets) -> Self {
        Self { db, key }
    }

    pub(crate) fn key(&self) -> &EndpointSecrets {
        &self.key
    }

    async fn find(&self, name: &str) -> Result<endpoint::Model, WebhookError> {
        endpoint::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| WebhookError::NotFound(format!("no webhook endpoint named `{name}`")))
    }

    /// Creates an endpoint with a fresh secret, returned once.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] naming the field (`endpoint.url`, `endpoint.events[1]`, …),
    /// [`WebhookError::AlreadyExists`] for a name taken.
    pub async fn create_endpoint(&self, spec: EndpointSpec) -> Result<WithSecret, WebhookError> {
        check_name(&spec.name, &at("name"))?;
        check_url(&spec.url)?;
        check_description(&spec.description)?;
        check_events(&spec.events)?;
        check_connections(&spec.connections)?;
        let exists = || {
            WebhookError::AlreadyExists(format!(
                "endpoint.name: a webhook endpoint named `{}` exists already",
                spec.name
            ))
        };
        if endpoint::Entity::find_by_id(spec.name.clone())
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(exists());
        }
        let secret = generate_secret()?;
        let now = now_ms();
        let row = endpoint::ActiveModel {
            name: Set(spec.name.clone()),
            url: Set(spec.url),
            description: Set(spec.description),
            enabled: Set(spec.enabled),
            events: Set(to_json(&spec.events)),
            connections: Set(to_json(&spec.connections)),
            secret: Set(self.key.seal(&spec.name, secret.as_bytes())?),
            previous_secret: Set(None),
            previous_secret_until: Set(None),
            disabled_reason: Set(None),
            created_ms: Set(now),
            updated_ms: Set(now),
        };
        let row = match row.insert(&self.db).await {
            Ok(row) => row,
            Err(err) if is_unique_violation(&err) => return Err(exists()),
            Err(err) => return Err(err.into()),
        };
        if row.enabled {
            crate::ingest::endpoints_changed();
        }
        Ok(WithSecret {
            endpoint: endpoint_view(&row),
            secret,
        })
    }

    /// The endpoint named `name`.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`].
    pub async fn get_endpoint(&self, name: &str) -> Result<Endpoint, WebhookError> {
        check_name(name, "name")?;
        Ok(endpoint_view(&self.find(name).await?))
    }

    /// Every endpoint, by name.
    ///
    /// # Errors
    /// [`WebhookError::Db`].
    pub async fn list_endpoints(&self) -> Result<Vec<Endpoint>, WebhookError> {
        let rows = endpoint::Entity::find()
            .order_by_asc(endpoint::Column::Name)
            .all(&self.db)
            .await?;
        Ok(rows.iter().map(endpoint_view).collect())
    }

    pub(crate) async fn endpoint_rows(&self) -> Result<Vec<endpoint::Model>, WebhookError> {
        Ok(endpoint::Entity::find().all(&self.db).await?)
    }

    /// Changes an endpoint.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] naming the field, [`WebhookError::NotFound`].
    pub async fn update_endpoint(
        &self,
        name: &str,
        update: EndpointUpdate,
    ) -> Result<Endpoint, WebhookError> {
        check_name(name, &at("name"))?;
        if let Some(url) = &update.url {
            check_url(url)?;
        }
        if let Some(description) = &update.description {
            check_description(description)?;
        }
        if let Some(events) = &update.events {
            check_events(events)?;
        }
        if let Some(connections) = &update.connections {
            check_connections(connections)?;
        }
        let row = self.find(name).await?;
        let mut active: endpoint::ActiveModel = row.into();
        if let Some(url) = update.url {
            active.url = Set(url);
        }
        if let Some(description) = update.description {
            active.description = Set(description);
        }
        if let Some(enabled) = update.enabled {
            active.enabled = Set(enabled);
            if enabled {
                active.disabled_reason = Set(None);
            }
        }
        if let Some(events) = update.events {
            active.events = Set(to_json(&events));
        }
        if let Some(connections) = update.connections {
            active.connections = Set(to_json(&connections));
        }
        active.updated_ms = Set(now_ms());
        let row = active.update(&self.db).await?;
        crate::dispatch::wake();
        crate::ingest::endpoints_changed();
        Ok(endpoint_view(&row))
    }

    /// Deletes an endpoint with its deliveries and their attempts.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`].
    pub async fn delete_endpoint(&self, name: &str) -> Result<(), WebhookError> {
        check_name(name, "name")?;
        let txn = self.db.begin().await?;
        let ids: Vec<String> = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::Id)
            .filter(delivery::Column::Endpoint.eq(name))
            .into_tuple()
            .all(&txn)
            .await?;
        for chunk in ids.chunks(500) {
            attempt::Entity::delete_many()
                .filter(attempt::Column::DeliveryId.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await?;
        }
        delivery::Entity::delete_many()
            .filter(delivery::Column::Endpoint.eq(name))
            .exec(&txn)
            .await?;
        let deleted = endpoint::Entity::delete_by_id(name.to_owned())
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(WebhookError::NotFound(format!(
                "no webhook endpoint named `{name}`"
            )));
        }
        txn.commit().await?;
        Ok(())
    }

    /// Gives an endpoint a fresh secret, returned once; the old one keeps signing (a second
    /// signature) for [`ROTATION_OVERLAP`].
    ///
    /// # Errors
    /// [`WebhookError::NotFound`].
    pub async fn rotate_secret(&self, name: &str) -> Result<WithSecret, WebhookError> {
        check_name(name, "name")?;
        let row = self.find(name).await?;
        let secret = generate_secret()?;
        let now = now_ms();
        let old = row.secret.clone();
        let mut active: endpoint::ActiveModel = row.into();
        active.secret = Set(self.key.seal(name, secret.as_bytes())?);
        active.previous_secret = Set(Some(old));
        active.previous_secret_until = Set(Some(
            now + i64::try_from(ROTATION_OVERLAP.as_millis()).unwrap_or(i64::MAX),
        ));
        active.updated_ms = Set(now);
        let row = active.update(&self.db).await?;
        Ok(WithSecret {
            endpoint: endpoint_view(&row),
            secret,
        })
    }

    /// An endpoint's deliveries, newest event first: at most `page_size` (0: 50; at most
    /// 1000) with an event id below `before_event` (0: from the newest), and the event id to
    /// pass as `before_event` for the next page (0: no more).
    ///
    /// # Errors
    /// [`WebhookError::NotFound`] for an unknown endpoint.
    pub async fn list_deliveries(
        &self,
        endpoint: &str,
        status: Option<DeliveryStatus>,
        page_size: u64,
        before_event: u64,
    ) -> Result<(Vec<Delivery>, u64), WebhookError> {
        check_name(endpoint, "endpoint")?;
        self.find(endpoint).await?;
        let size = match page_size {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let mut query = delivery::Entity::find()
            .filter(delivery::Column::Endpoint.eq(endpoint))
            .order_by_desc(delivery::Column::EventId)
            .limit(size + 1);
        if let Some(status) = status {
            query = query.filter(delivery::Column::Status.eq(status.as_str()));
        }
        if before_event > 0 {
            query = query.filter(
                delivery::Column::EventId.lt(i64::try_from(before_event).unwrap_or(i64::MAX)),
            );
        }
        let mut rows = query.all(&self.db).await?;
        let next = if rows.len() > usize::try_from(size).unwrap_or(usize::MAX) {
            rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
            rows.last()
                .map_or(0, |r| u64::try_from(r.event_id).unwrap_or_default())
        } else {
            0
        };
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let attempts = attempt::Entity::find()
            .filter(attempt::Column::DeliveryId.is_in(ids))
            .order_by_asc(attempt::Column::Id)
            .all(&self.db)
            .await?;
        let deliveries = rows
            .into_iter()
            .map(|row| {
                let mine = attempts
                    .iter()
                    .filter(|a| a.delivery_id == row.id)
                    .cloned()
                    .collect();
                delivery_view(row, mine)
            })
            .collect();
        Ok((deliveries, next))
    }

    /// Sends event `event_id` to `endpoint` again, with the same `webhook-id`: the delivery
    /// becomes pending with a new round of attempts, the first at once.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`] when the endpoint never got the event (filters, or it did
    /// not exist yet), [`WebhookError::FailedPrecondition`] when the endpoint is disabled.
    pub async fn redeliver(&self, endpoint: &str, event_id: u64) -> Result<Delivery, WebhookError> {
        check_name(endpoint, "endpoint")?;
        if event_id == 0 {
            return Err(WebhookError::invalid(
                "event_id",
                "required: the event's id",
            ));
        }
        let ep = self.find(endpoint).await?;
        if !ep.enabled {
            return Err(WebhookError::FailedPrecondition(format!(
                "webhook endpoint `{endpoint}` is disabled: enable it first (hoop webhooks \
                 update {endpoint} --enabled=true)"
            )));
        }
        let event = i64::try_from(event_id).unwrap_or(i64::MAX);
        let row = delivery::Entity::find()
            .filter(delivery::Column::Endpoint.eq(endpoint))
            .filter(delivery::Column::EventId.eq(event))
            .one(&self.db)
            .await?
            .ok_or_else(|| {
                WebhookError::NotFound(format!(
                    "event {event_id} was never delivered to webhook endpoint `{endpoint}` \
                     (its filters left it out, or the endpoint did not exist then)"
                ))
            })?;
        let now = now_ms();
        let mut active: delivery::ActiveModel = row.into();
        active.status = Set(DeliveryStatus::Pending.as_str().to_owned());
        active.attempts = Set(0);
        active.next_attempt_ms = Set(now);
        active.lease_owner = Set(None);
        active.lease_until_ms = Set(None);
        active.updated_ms = Set(now);
        let row = active.update(&self.db).await?;
        crate::dispatch::wake();
        let attempts = attempt::Entity::find()
            .filter(attempt::Column::DeliveryId.eq(row.id.clone()))
            .order_by_asc(attempt::Column::Id)
            .all(&self.db)
            .await?;
        Ok(delivery_view(row, attempts))
    }

    /// Adds deliveries; those of an (endpoint, event) already there are left alone.
    pub(crate) async fn insert_deliveries(
        &self,
        rows: Vec<delivery::ActiveModel>,
    ) -> Result<(), WebhookError> {
        if rows.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin().await?;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<delivery::ActiveModel> = rows.by_ref().take(200).collect();
            let insert = delivery::Entity::insert_many(chunk).on_conflict(
                OnConflict::columns([delivery::Column::Endpoint, delivery::Column::EventId])
                    .do_nothing()
                    .to_owned(),
            );
            match insert.exec_without_returning(&txn).await {
                Ok(_) | Err(DbErr::RecordNotInserted) => {}
                Err(err) => return Err(err.into()),
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// The stored input of session `session_id`, if the plugin captured one.
    pub(crate) async fn input(
        &self,
        session_id: &str,
    ) -> Result<Option<input::Model>, WebhookError> {
        Ok(input::Entity::find_by_id(session_id.to_owned())
            .one(&self.db)
            .await?)
    }

    /// Claims up to `limit` deliveries that are due, for `owner`, until `lease_until`: each
    /// is claimed by one gateway (on PostgreSQL with `FOR UPDATE SKIP LOCKED`).
    pub(crate) async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u64,
    ) -> Result<Vec<Claimed>, WebhookError> {
        let backend = self.db.get_database_backend();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let statement = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                r#"UPDATE webhook_deliveries SET lease_owner = $1, lease_until_ms = $2
                   WHERE id IN (
                     SELECT d.id FROM webhook_deliveries d
                     JOIN webhook_endpoints e ON e.name = d.endpoint
                     WHERE d.status = 'pending' AND d.next_attempt_ms <= $3
                       AND (d.lease_until_ms IS NULL OR d.lease_until_ms < $3) AND e.enabled
                     ORDER BY d.next_attempt_ms LIMIT $4
                     FOR UPDATE OF d SKIP LOCKED)
                   RETURNING id, endpoint, event_id, payload, attempts"#,
                [owner.into(), lease_until.into(), now.into(), limit.into()],
            ),
            _ => Statement::from_sql_and_values(
                backend,
                r#"UPDATE webhook_deliveries SET lease_owner = ?, lease_until_ms = ?
                   WHERE id IN (
                     SELECT d.id FROM webhook_deliveries d
                     JOIN webhook_endpoints e ON e.name = d.endpoint
                     WHERE d.status = 'pending' AND d.next_attempt_ms <= ?
                       AND (d.lease_until_ms IS NULL OR d.lease_until_ms < ?) AND e.enabled
                     ORDER BY d.next_attempt_ms LIMIT ?)
                   RETURNING id, endpoint, event_id, payload, attempts"#,
                [
                    owner.into(),
                    lease_until.into(),
                    now.into(),
                    now.into(),
                    limit.into(),
                ],
            ),
        };
        let rows = self.db.query_all(statement).await?;
        rows.iter()
            .map(|row| {
                Ok(Claimed {
                    id: row.try_get("", "id")?,
                    endpoint: row.try_get("", "endpoint")?,
                    event_id: row.try_get("", "event_id")?,
                    payload: row.try_get("", "payload")?,
                    attempts: row.try_get("", "attempts")?,
                })
            })
            .collect::<Result<_, DbErr>>()
            .map_err(Into::into)
    }

    /// When the next pending delivery of an enabled endpoint can be claimed, if any: when
    /// its next attempt is due, or its lease runs out if that is later.
    pub(crate) async fn next_due(&self) -> Result<Option<i64>, WebhookError> {
        let backend = self.db.get_database_backend();
        let statement = Statement::from_string(
            backend,
            r#"SELECT MIN(CASE WHEN d.lease_until_ms IS NOT NULL
                                AND d.lease_until_ms >= d.next_attempt_ms
                               THEN d.lease_until_ms + 1 ELSE d.next_attempt_ms END) AS next
               FROM webhook_deliveries d JOIN webhook_endpoints e ON e.name = d.endpoint
               WHERE d.status = 'pending' AND e.enabled"#,
        );
        let row = self.db.query_one(statement).await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<i64>>("", "next")?,
            None => None,
        })
    }

    /// Records the outcomes of attempts, in one transaction.
    pub(crate) async fn record(
        &self,
        owner: &str,
        outcomes: &[Recorded],
    ) -> Result<(), WebhookError> {
        let txn = self.db.begin().await?;
        for outcome in outcomes {
            attempt::ActiveModel {
                delivery_id: Set(outcome.id.clone()),
                attempt: Set(outcome.attempt),
                time_ms: Set(outcome.time_ms),
                status_code: Set(outcome.status_code),
                latency_ms: Set(outcome.latency_ms),
                response: Set(outcome.response.clone()),
                error: Set(outcome.error.clone()),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
            let mut update = delivery::Entity::update_many()
                .col_expr(
                    delivery::Column::Status,
                    Expr::value(outcome.status.as_str()),
                )
                .col_expr(delivery::Column::Attempts, Expr::value(outcome.attempt))
                .col_expr(
                    delivery::Column::LeaseOwner,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    delivery::Column::LeaseUntilMs,
                    Expr::value(Option::<i64>::None),
                )
                .col_expr(
                    delivery::Column::LastStatusCode,
                    Expr::value(outcome.status_code),
                )
                .col_expr(
                    delivery::Column::LastError,
                    Expr::value(outcome.error.clone()),
                )
                .col_expr(delivery::Column::UpdatedMs, Expr::value(outcome.time_ms));
            if let Some(next) = outcome.next_attempt_ms {
                update = update.col_expr(delivery::Column::NextAttemptMs, Expr::value(next));
            }
            update
                .filter(delivery::Column::Id.eq(outcome.id.clone()))
                .filter(delivery::Column::LeaseOwner.eq(owner))
                .exec(&txn)
                .await?;
            if let Some(reason) = &outcome.disable {
                endpoint::Entity::update_many()
                    .col_expr(endpoint::Column::Enabled, Expr::value(false))
                    .col_expr(
                        endpoint::Column::DisabledReason,
                        Expr::value(reason.clone()),
                    )
                    .col_expr(endpoint::Column::UpdatedMs, Expr::value(outcome.time_ms))
                    .filter(endpoint::Column::Name.eq(outcome.endpoint.clone()))
                    .exec(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// Deletes inputs stored before `cutoff_ms`.
    pub(crate) async fn prune_inputs(&self, cutoff_ms: i64) -> Result<u64, WebhookError> {
        Ok(input::Entity::delete_many()
            .filter(input::Column::CreatedMs.lt(cutoff_ms))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: String,
    pub(crate) endpoint: String,
    pub(crate) event_id: i64,
    pub(crate) payload: String,
    pub(crate) attempts: i32,
}

/// The outcome of one attempt, as stored.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) id: String,
    pub(crate) endpoint: String,
    pub(crate) attempt: i32,
    pub(crate) time_ms: i64,
    pub(crate) status_code: Option<i32>,
    pub(crate) latency_ms: i64,
    pub(crate) response: String,
    pub(crate) error: Option<String>,
    pub(crate) status: DeliveryStatus,
    pub(crate) next_attempt_ms: Option<i64>,
    pub(crate) disable: Option<String>,
}

/// Stores the input of a session (once: a second call for the same session is a no-op).
pub(crate) async fn save_input(
    db: &DatabaseConnection,
    row: input::ActiveModel,
) -> Result<(), WebhookError> {
    let insert = input::Entity::insert(row).on_conflict(
        OnConflict::column(input::Column::SessionId)
            .do_nothing()
            .to_owned(),
    );
    match insert.exec_without_returning(db).await {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
