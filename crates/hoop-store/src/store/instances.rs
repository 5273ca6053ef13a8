//! Gateway instances sharing the database: leases, and the sessions of instances that are
//! gone.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};

use super::{Backend, Result, Store};
use crate::entity::{instance, session};
use crate::events::NewEvent;

/// What a gateway says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstance {
    /// Its `instance_id`.
    pub id: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its version.
    pub version: String,
    /// The address its gRPC API listens on.
    pub listen: String,
}

/// A gateway instance as stored, with the count of its open sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// Its `instance_id`.
    pub id: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its version.
    pub version: String,
    /// The address its gRPC API listens on.
    pub listen: String,
    /// When it (last) started.
    pub started_at: DateTime<Utc>,
    /// When it last renewed its lease.
    pub renewed_at: DateTime<Utc>,
    /// When its lease runs out unless renewed.
    pub expires_at: DateTime<Utc>,
    /// When it stopped gracefully, if it did (and has not started again).
    pub stopped_at: Option<DateTime<Utc>>,
    /// How many sessions it runs (status `open`, owned by it).
    pub open_sessions: u64,
}

/// What the last renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The lease was live and is renewed.
    Renewed,
    /// The lease had run out (or the row was gone): other gateways may have settled this
    /// instance's sessions as interrupted. It is taken again.
    Lapsed,
}

/// Two-key advisory lock class under which a running gateway holds its `instance_id`
/// (the second key is `hashtext(instance_id)`).
const INSTANCE_LOCK_CLASS: i32 = 0x6873_0003;

/// A running gateway's exclusive hold on its `instance_id`: on PostgreSQL, a
/// transaction-scoped advisory lock in a transaction left open for the gateway's lifetime
/// (it takes no snapshot between statements, so it holds nothing else back). The server
/// releases it when the transaction ends: when this is dropped, or when the gateway's
/// connection dies with its process. SQLite has one gateway: nothing is held.
#[derive(Debug)]
pub struct InstanceClaim(#[allow(dead_code)] Option<sea_orm::DatabaseTransaction>);

/// The reason given to sessions of this gateway left open by its previous run.
pub const RESTART_REASON: &str = "the gateway stopped while the session ran";

fn lease_delta(lease: Duration) -> TimeDelta {
    TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX)
}

impl Store {
    /// The database's clock on PostgreSQL (every gateway on it compares leases with the
    /// same clock), this host's on SQLite.
    ///
    /// # Errors
    /// [`crate::StoreError::Db`] if the database fails.
    pub async fn db_now(&self) -> Result<DateTime<Utc>> {
        if self.backend() == Backend::Postgres {
            let row = self
                .db()
                .query_one(Statement::from_string(
                    sea_orm::DatabaseBackend::Postgres,
                    "SELECT clock_timestamp() AS now",
                ))
                .await?;
            if let Some(row) = row {
                return Ok(row.try_get::<DateTime<Utc>>("", "now")?);
            }
        }
        Ok(Utc::now())
    }

    /// Claims `id` for this process for as long as the returned claim lives; `None` if
    /// another running gateway holds it (on PostgreSQL; on SQLite there is nothing to claim).
    /// A gateway that crashed holds nothing: its claim ended with its connection.
    ///
    /// # Errors
    /// [`crate::StoreError::Db`] if the database fails.
    pub async fn claim_instance(&self, id: &str) -> Result<Option<InstanceClaim>> {
        use sea_orm::TransactionTrait as _;
        if self.backend() != Backend::Postgres {
            return Ok(Some(InstanceClaim(None)));
        }
        let txn = self.db().begin().await?;
        let row = txn
            .query_one(Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS held",
                [INSTANCE_LOCK_CLASS.into(), id.into()],
            ))
            .await?;
        let held = row
            .map(|r| r.try_get::<bool>("", "held"))
            .transpose()?
            .unwrap_or(false);
        Ok(held.then_some(InstanceClaim(Some(txn))))
    }

    /// Registers (or takes again) the instance `new.id` with a lease of `lease` from now.
    /// Returns the row as it was before when its lease was still live and it had not stopped:
    /// another gateway may be running with the same `instance_id` (or this one restarted
    /// after a crash within the lease).
    ///
    /// # Errors
    /// [`crate::StoreError::Db`] if the database fails.
    pub async fn register_instance(
        &self,
        new: &NewInstance,
        lease: Duration,
    ) -> Result<Option<InstanceRecord>> {
        let now = self.db_now().await?;
        let before = instance::Entity::find_by_id(new.id.as_str())
            .one(self.db())
            .await?;
        let row = instance::ActiveModel {
            id: Set(new.id.clone()),
            hostname: Set(new.hostname.clone()),
            version: Set(new.version.clone()),
            listen: Set(new.listen.clone()),
            started_at: Set(now),
            renewed_at: Set(now),
            expires_at: Set(now + lease_delta(lease)),
            stopped_at: Set(None),
        };
        instance::Entity::insert(row)
            .on_conflict(
                OnConflict::column(instance::Column::Id)
                    .update_columns([
                        instance::Column::Hostname,
                        instance::Column::Version,
                        instance::Column::Listen,
                        instance::Column::StartedAt,
                        instance::Column::RenewedAt,
                        instance::Column::ExpiresAt,
                        instance::Column::StoppedAt,
                    ])
                    .to_owned(),
            )
            .exec(self.db())
            .await?;
        Ok(before
            .filter(|b| b.stopped_at.is_none() && b.expires_at > now)
            .map(|b| instance_from(b, 0)))
    }

    /// Renews the lease of instance `id` for `lease` from now.
    ///
    /// # Errors
    /// [`crate::StoreError::Db`] if the database fails.
    pub async fn renew_instance(&self, new: &NewInstance, lease: Duration) -> Result<Renewal> {
        let now = self.db_now().await?;
        let renewed = instance::Entity::update_many()
            .col_expr(instance::Column::RenewedAt, Expr::value(now))
            .col_expr(
                instance::Column::ExpiresAt,
                Expr::value(now + lease_delta(lease)),
            )
            .filter(instance::Column::Id.eq(new.id.as_str()))
            .filter(instance::Column::ExpiresAt.gt(now))
            .filter(instance::Column::StoppedAt.is_null())
            .exec(self.db())
            .await?;
        if renewed.rows_affected > 0 {
            return Ok(Renewal::Renewed);
        }
        self.register_instance(new, lease).await?;
        Ok(Renewal::Lapsed)
    }

    /// Records that instance `id` stopped gracefully: its lease ends now (its sessions were
    /// settled as it stopped).
    ///
    /// # Errors
    /// [`crate::StoreError::Db`] if the database fails.
    pub async fn stop_instance(&self, id: &str) -> Result<()> {
        let now = self.db_now().await?;
        instance::Entity::update_many()
            .col_expr(instance::Column::ExpiresAt, Expr::value(now))
            .col_expr(instance::Column::StoppedAt, Expr::value(Some(now)))
            .filter(instance::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Every instance that registered, with how many sessions each runs, by id.
    ///
    /// # Errors
    /// [`crate::StoreError::Db`] if the database fails.
    pub async fn list_instances(&self) -> Result<Vec<InstanceRecord>> {
        let rows = instance::Entity::find()
            .order_by_asc(instance::Column::Id)
            .all(self.db())
            .await?;
        let counts: Vec<(Option<String>, i64)> = session::Entity::find()
            .select_only()
            .column(session::Column::InstanceId)
            .column_as(session::Column::Id.count(), "n")
            .filter(session::Column::Status.eq("open"))
            .group_by(session::Column::InstanceId)
            .into_tuple()
            .all(self.db())
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let open = counts
                    .iter()
                    .find(|(id, _)| id.as_deref() == Some(row.id.as_str()))
                    .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or_default());
                instance_from(row, open)
            })
            .collect())
    }

    /// Settles as `interrupted` the open sessions whose instance is gone: whose lease ran out
    /// (or who stopped, or never registered). With `restarted` (at start-up), also this
    /// instance's own (`me`: nothing of its previous run still runs) and those recorded
    /// before instances existed. Sessions of live instances are never touched. Each settled
    /// session gets its `session.closed` event, once however many gateways do this at once.
    /// Returns how many were settled.
    ///
    /// # Errors
    /// [`crate::StoreError::Db`] if the database fails.
    pub async fn interrupt_sessions_of_lost_instances(
        &self,
        me: &str,
        restarted: bool,
    ) -> Result<u64> {
        let now = self.db_now().await?;
        let instances = instance::Entity::find().all(self.db()).await?;
        let live: HashSet<&str> = instances
            .iter()
            .filter(|i| i.stopped_at.is_none() && i.expires_at > now)
            .filter(|i| !(restarted && i.id == me))
            .map(|i| i.id.as_str())
            .collect();
        let open: Vec<(String, Option<String>)> = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .column(session::Column::InstanceId)
            .filter(session::Column::Status.eq("open"))
            .into_tuple()
            .all(self.db())
            .await?;
        let mut total = 0;
        for (owner, ids) in group_lost(&open, &live, restarted) {
            let reason = match owner.as_deref() {
                None => RESTART_REASON.to_owned(),
                Some(id) if id == me => RESTART_REASON.to_owned(),
                Some(id) => match instances.iter().find(|i| i.id == id) {
                    Some(i) => format!(
                        "{RESTART_REASON} (gateway instance `{id}`: its lease expired at {})",
                        i.expires_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    ),
                    None => format!("{RESTART_REASON} (gateway instance `{id}` is unknown)"),
                },
            };
            total += self.interrupt_sessions(&ids, &reason).await?;
        }
        Ok(total)
    }

    /// Settles the sessions `ids` that are still open as `interrupted` for `reason`, with
    /// their `session.closed` events; returns how many.
    async fn interrupt_sessions(&self, ids: &[String], reason: &str) -> Result<u64> {
        let mut total = 0;
        for batch in ids.chunks(500) {
            let txn = self.begin_with_write().await?;
            // Only the rows this statement changed: a session another gateway settled
            // meanwhile is not returned, so its event is never appended twice.
            let settled = session::Entity::update_many()
                .col_expr(session::Column::Status, Expr::value("interrupted"))
                .col_expr(session::Column::Reason, Expr::value(reason))
                .col_expr(session::Column::EndedAt, Expr::value(Some(Utc::now())))
                .filter(session::Column::Id.is_in(batch.iter().cloned()))
                .filter(session::Column::Status.eq("open"))
                .exec_with_returning(&txn)
                .await?;
            total += u64::try_from(settled.len()).unwrap_or(u64::MAX);
            let events = settled
                .into_iter()
                .map(|s| {
                    NewEvent::new(
                        "session.closed",
                        serde_json::json!({
                            "session_id": s.id,
                            "verb": s.verb,
                            "status": "interrupted",
                            "exit_code": null,
                            "reason": reason,
                            "bytes_in": s.bytes_in,
                            "bytes_out": s.bytes_out,
                        }),
                    )
                    .connection(s.connection)
                    .user(s.user_name)
                })
                .collect();
            self.commit_with_events(txn, events).await?;
        }
        Ok(total)
    }
}

/// The open sessions to settle, grouped by owner.
fn group_lost(
    open: &[(String, Option<String>)],
    live: &HashSet<&str>,
    restarted: bool,
) -> Vec<(Option<String>, Vec<String>)> {
    let mut groups: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for (id, owner) in open {
        let lost = match owner {
            None => restarted,
            Some(owner) => !live.contains(owner.as_str()),
        };
        if !lost {
            continue;
        }
        match groups.iter_mut().find(|(o, _)| o == owner) {
            Some((_, ids)) => ids.push(id.clone()),
            None => groups.push((owner.clone(), vec![id.clone()])),
        }
    }
    groups
}

fn instance_from(row: instance::Model, open_sessions: u64) -> InstanceRecord {
    InstanceRecord {
        id: row.id,
        hostname: row.hostname,
        version: row.version,
        listen: row.listen,
        started_at: row.started_at,
        renewed_at: row.renewed_at,
        expires_at: row.expires_at,
        stopped_at: row.stopped_at,
        open_sessions,
    }
}
