//! The durable event log: appended in the transaction of the change it describes, read by
//! cursor.
//!
//! Ids increase and are never reused. Readers rely on a stronger rule: the events they can
//! see are always a prefix of the log, so a reader that has seen event `n` never later finds
//! an event with a smaller id. SQLite gives that for free (one writer at a time). On
//! PostgreSQL, ids come from a sequence when the row is inserted, but transactions may
//! commit in another order; so every appending transaction first takes a transaction-scoped
//! advisory lock, held until it commits, and appends as its last statement: ids are taken
//! and committed in the same order.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::{event, event_cursor};
use crate::error::StoreError;
use crate::store::{Backend, Store};

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Key of the PostgreSQL advisory lock that orders appends to the event log.
const EVENT_LOCK_KEY: i64 = 0x686f_6f70_5f65_7674; // "hoop_evt"

/// An event to append with a change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The event type, e.g. `session.closed`.
    pub kind: String,
    /// The connection it concerns, if any.
    pub connection: Option<String>,
    /// The user it concerns (who acted, or whose session it is), if any.
    pub user: Option<String>,
    /// What happened.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event of type `kind` with `data`, about no connection or user yet.
    pub fn new(kind: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            connection: None,
            user: None,
            data,
        }
    }

    /// Sets the connection the event concerns.
    #[must_use]
    pub fn connection(mut self, name: impl Into<String>) -> Self {
        self.connection = Some(name.into());
        self
    }

    /// Sets the user the event concerns.
    #[must_use]
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user = Some(name.into());
        self
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Position in the log.
    pub id: u64,
    /// The event type.
    pub kind: String,
    /// When it was appended.
    pub time: DateTime<Utc>,
    /// The connection it concerns, if any.
    pub connection: Option<String>,
    /// The user it concerns, if any.
    pub user: Option<String>,
    /// What happened.
    pub data: serde_json::Value,
}

fn record(row: event::Model) -> EventRecord {
    EventRecord {
        id: u64::try_from(row.id).unwrap_or_default(),
        kind: row.kind,
        time: row.time,
        connection: row.connection,
        user: row.user_name,
        data: row.data,
    }
}

fn to_db_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Appends `events` inside the transaction `txn`, as its last statements (see the module
/// comment). The caller commits, then calls [`Store::events_appended`].
pub(crate) async fn append<C: ConnectionTrait>(
    backend: Backend,
    txn: &C,
    events: Vec<NewEvent>,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    if backend == Backend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({EVENT_LOCK_KEY})"))
            .await?;
    }
    let now = Utc::now();
    // One statement for all of them: a session's end appends two.
    let rows = events.into_iter().map(|new| event::ActiveModel {
        kind: Set(new.kind),
        time: Set(now),
        connection: Set(new.connection),
        user_name: Set(new.user),
        data: Set(new.data),
        ..Default::default()
    });
    event::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

impl Store {
    /// Appends events on their own (for changes that are not stored elsewhere, such as a
    /// session being held) and wakes the readers.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn append_events(&self, events: Vec<NewEvent>) -> Result<()> {
        self.append_alone(events).await
    }

    /// Up to `limit` events with an id greater than `after`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn read_events(&self, after: u64, limit: u64) -> Result<Vec<EventRecord>> {
        let rows = event::Entity::find()
            .filter(event::Column::Id.gt(to_db_id(after)))
            .order_by_asc(event::Column::Id)
            .limit(limit)
            .all(self.db())
            .await?;
        Ok(rows.into_iter().map(record).collect())
    }

    /// The id of the newest event, or 0 if the log is empty.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn last_event_id(&self) -> Result<u64> {
        let row = event::Entity::find()
            .order_by_desc(event::Column::Id)
            .one(self.db())
            .await?;
        Ok(row.map_or(0, |r| u64::try_from(r.id).unwrap_or_default()))
    }

    /// Deletes the events appended before `before`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        let deleted = event::Entity::delete_many()
            .filter(event::Column::Time.lt(before))
            .exec(self.db())
            .await?;
        Ok(deleted.rows_affected)
    }

    /// The saved cursor of `consumer`, if any.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn load_cursor(&self, consumer: &str) -> Result<Option<u64>> {
        let row = event_cursor::Entity::find_by_id(consumer)
            .one(self.db())
            .await?;
        Ok(row.map(|r| u64::try_from(r.event_id).unwrap_or_default()))
    }

    /// Saves the cursor of `consumer`.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn save_cursor(&self, consumer: &str, cursor: u64) -> Result<()> {
        let row = event_cursor::ActiveModel {
            consumer: Set(consumer.to_owned()),
            event_id: Set(to_db_id(cursor)),
            updated_at: Set(Utc::now()),
        };
        event_cursor::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(event_cursor::Column::Consumer)
                    .update_columns([
                        event_cursor::Column::EventId,
                        event_cursor::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(self.db())
            .await?;
        Ok(())
    }
}
