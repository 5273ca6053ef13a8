//! Sessions.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::{Result, Store, UserLock, from_json, to_json};

/// The status of a session that has not ended.
pub(crate) const OPEN: &str = "open";
/// The attributes a runbook run starts with (see `hoop_core::RunbookRef`), which its
/// `session.opened` event carries as `runbook: {repository, path, commit}`.
const RUNBOOK_REPOSITORY: &str = "runbooks.repository";
const RUNBOOK_PATH: &str = "runbooks.path";
const RUNBOOK_COMMIT: &str = "runbooks.commit";
use crate::entity::session;
use crate::error::StoreError;
use crate::events::NewEvent;
use crate::model::{SessionEnd, SessionFilter, SessionRecord};

impl Store {
    /// Records a session that starts now, and appends its `session.opened` event (with
    /// `runbook: {repository, path, commit}` when the record's attributes name a runbook:
    /// `runbooks.repository`, `runbooks.path`, `runbooks.commit`).
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the id is taken;
    /// [`StoreError::LimitReached`] if the session is `open` and its user already has
    /// [`Limits::running_sessions_per_user`](crate::Limits) open sessions (checked and
    /// recorded atomically: concurrent calls never both take the last place).
    pub async fn create_session(&self, record: &SessionRecord) -> Result<()> {
        // The insert is the first statement, so it takes SQLite's write lock itself (see
        // `begin_write`); the limit is checked after it, counting this session too.
        let txn = self.begin_with_write().await?;
        if self.backend() == crate::store::Backend::Postgres {
            // Serializes the limit check per user before anything is written.
            if self.limits.running_sessions_per_user.is_some() && record.status == OPEN {
                self.lock_user(&txn, UserLock::RunningSessions, &record.user)
                    .await?;
            }
        }
        session::ActiveModel {
            id: Set(record.id.clone()),
            connection: Set(record.connection.clone()),
            connection_type: Set(record.connection_type.clone()),
            user_name: Set(record.user.clone()),
            verb: Set(record.verb.clone()),
            status: Set(record.status.clone()),
            exit_code: Set(record.exit_code),
            reason: Set(record.reason.clone()),
            started_at: Set(record.started_at),
            ended_at: Set(record.ended_at),
            bytes_in: Set(record.bytes_in),
            bytes_out: Set(record.bytes_out),
            metrics: Set(to_json(&record.metrics)?),
            attributes: Set(to_json(&record.attributes)?),
            args: Set(to_json(&record.args)?),
            instance_id: Set(record
                .instance
                .clone()
                .or_else(|| self.instance().map(str::to_owned))),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "session", &record.id))?;
        if let Some(max) = self.limits.running_sessions_per_user
            && record.status == OPEN
        {
            let running = session::Entity::find()
                .filter(session::Column::UserName.eq(record.user.as_str()))
                .filter(session::Column::Status.eq(OPEN))
                .count(&txn)
                .await?;
            // `running` counts this session: the others are one fewer. Returning drops the
            // transaction, which rolls the insert back.
            let others = running.saturating_sub(1);
            if others >= u64::from(max) {
                return Err(StoreError::LimitReached {
                    limit: "running_sessions_per_user",
                    max,
                    message: format!(
                        "limit running_sessions_per_user reached: user `{}` already has \
                         {others} running sessions (at most {max}); end one before starting \
                         another",
                        record.user
                    ),
                });
            }
        }
        let mut data = serde_json::json!({
            "session_id": record.id,
            "verb": record.verb,
            "connection_type": record.connection_type,
        });
        // A runbook run says which runbook (its attributes are set from the start).
        if let Some(path) = record.attributes.get(RUNBOOK_PATH) {
            let get = |key: &str| record.attributes.get(key).cloned().unwrap_or_default();
            data["runbook"] = serde_json::json!({
                "repository": get(RUNBOOK_REPOSITORY),
                "path": path,
                "commit": get(RUNBOOK_COMMIT),
            });
        }
        let event = NewEvent::new("session.opened", data)
            .connection(&record.connection)
            .user(&record.user);
        self.commit_with_events(txn, vec![event]).await
    }

    /// Settles a session that ended now.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such session.
    pub async fn finish_session(&self, id: &str, end: &SessionEnd) -> Result<SessionRecord> {
        self.finish_session_with(id, end, Vec::new()).await
    }

    /// Settles a session that ended now, appending `session.closed` and `extra` events (e.g.
    /// `recording.finished`) in the same transaction. A session that is no longer `open`
    /// (another gateway settled it as `interrupted` while this one's lease had run out)
    /// keeps its ending: it is returned as it is, and nothing is appended.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such session.
    pub async fn finish_session_with(
        &self,
        id: &str,
        end: &SessionEnd,
        extra: Vec<NewEvent>,
    ) -> Result<SessionRecord> {
        // Through the writer, which commits the ends waiting together and tries again when
        // the database is busy (see `settler`).
        match self.settle_end(id, end, extra).await? {
            Some(record) => Ok(record),
            None => {
                let settled = self.get_session(id).await?;
                if settled.status == OPEN {
                    return Err(StoreError::not_found("session", id));
                }
                tracing::warn!(session = %id, status = %settled.status, "the session was already settled; its ending is kept");
                Ok(settled)
            }
        }
    }

    /// Appends events of a running session (`session.started`, `session.held`, …) through
    /// the writer that settles session ends: committed with whatever else waits, and tried
    /// again while the database is busy, for up to five minutes.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails for good (or stays busy that long).
    pub async fn append_session_events(&self, events: Vec<NewEvent>) -> Result<()> {
        self.settle_events(events).await
    }

    /// The session with this id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    pub async fn get_session(&self, id: &str) -> Result<SessionRecord> {
        let row = session::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::not_found("session", id))?;
        session_from(row)
    }

    /// The sessions with these ids that exist, in one query, in no particular order.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn get_sessions(&self, ids: &[String]) -> Result<Vec<SessionRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        session::Entity::find()
            .filter(session::Column::Id.is_in(ids.iter().map(String::as_str)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(session_from)
            .collect()
    }

    /// Sessions matching `filter`, newest first, after the (start time, id) of the last one
    /// of the previous page, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
        after: Option<(chrono::DateTime<Utc>, String)>,
        limit: u64,
    ) -> Result<Vec<SessionRecord>> {
        let mut query = session::Entity::find()
            .order_by_desc(session::Column::StartedAt)
            .order_by_desc(session::Column::Id);
        if let Some(c) = &filter.connection {
            query = query.filter(session::Column::Connection.eq(c.as_str()));
        }
        if let Some(u) = &filter.user {
            query = query.filter(session::Column::UserName.eq(u.as_str()));
        }
        if let Some(s) = &filter.status {
            query = query.filter(session::Column::Status.eq(s.as_str()));
        }
        if let Some(t) = filter.start_after {
            query = query.filter(session::Column::StartedAt.gte(t));
        }
        if let Some(t) = filter.start_before {
            query = query.filter(session::Column::StartedAt.lt(t));
        }
        if let Some((t, id)) = after {
            query = query.filter(
                Condition::any().add(session::Column::StartedAt.lt(t)).add(
                    Condition::all()
                        .add(session::Column::StartedAt.eq(t))
                        .add(session::Column::Id.lt(id)),
                ),
            );
        }
        let rows = query.limit(limit).all(&self.db).await?;
        rows.into_iter().map(session_from).collect()
    }
}

pub(crate) fn session_from(row: session::Model) -> Result<SessionRecord> {
    Ok(SessionRecord {
        metrics: from_json(row.metrics, "metrics")?,
        attributes: from_json(row.attributes, "attributes")?,
        args: from_json(row.args, "args")?,
        id: row.id,
        connection: row.connection,
        connection_type: row.connection_type,
        user: row.user_name,
        verb: row.verb,
        status: row.status,
        exit_code: row.exit_code,
        reason: row.reason,
        started_at: row.started_at,
        ended_at: row.ended_at,
        bytes_in: row.bytes_in,
        bytes_out: row.bytes_out,
        instance: row.instance_id,
    })
}

/// The `session.closed` event of a session just settled.
pub(crate) fn closed_event(record: &SessionRecord) -> NewEvent {
    NewEvent::new(
        "session.closed",
        serde_json::json!({
            "session_id": record.id,
            "verb": record.verb,
            "status": record.status,
            "exit_code": record.exit_code,
            "reason": record.reason,
            "bytes_in": record.bytes_in,
            "bytes_out": record.bytes_out,
        }),
    )
    .connection(&record.connection)
    .user(&record.user)
}
