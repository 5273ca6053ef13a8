//! The [`Store`]: every read and write of the gateway's state.
//!
//! This module holds the handle itself (connecting, migrating, the secret-key check, the
//! acting user, the event notifications) and the helpers shared by the per-aggregate modules
//! (among them `commit_with_events`), each with its own `impl Store` block:
//! [`users`] (users, group memberships, API keys), [`agents`], [`connections`] (connections and plugin
//! attachments), [`sessions`] and [`reviews`] (reviews and their decisions).

mod agents;
mod connections;
mod instances;
mod recordings;
mod reviews;
mod sessions;
mod settler;
mod users;
mod wakeups;

use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto::SecretBox;
use crate::entity::meta;
use crate::error::StoreError;
use crate::events::NewEvent;
use crate::migration::Migrator;

pub use instances::{InstanceClaim, InstanceRecord, NewInstance, RESTART_REASON, Renewal};

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Key of the PostgreSQL advisory lock held while migrating, so that several gateways
/// starting at once on one database migrate one after the other.
const MIGRATION_LOCK_KEY: i64 = 0x686f_6f70_5f6d_6967; // "hoop_mig"

const SECRET_CHECK_KEY: &str = "secret_check";
const SECRET_CHECK_VALUE: &[u8] = b"hoop-rs secret check";

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Per-user limits the store enforces as it records sessions and reviews: the count and the
/// insert happen in one write transaction, serialized per user (SQLite's write lock; on
/// PostgreSQL a transaction-scoped advisory lock on the user), so concurrent requests cannot
/// both pass the last free place. `None` means no limit (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most `open` sessions one user may have at once
    /// ([`create_session`](Store::create_session) refuses more).
    pub running_sessions_per_user: Option<u32>,
    /// Most `PENDING` reviews one user may have asked for at once
    /// ([`create_review`](Store::create_review) refuses more).
    pub pending_reviews_per_user: Option<u32>,
}

/// Classes of the per-user advisory locks (PostgreSQL) that serialize limit checks.
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
enum UserLock {
    RunningSessions = 0x6873_0001,
    PendingReviews = 0x6873_0002,
    // 0x6873_0003: a running gateway's instance_id (`instances::INSTANCE_LOCK_CLASS`).
}

/// How the store's connection pool is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once; `None`: 4 on SQLite (one writer at a time is its
    /// rule), sqlx's default on PostgreSQL.
    pub max_connections: Option<u32>,
    /// How long a read or write waits for a free connection before it fails with a
    /// transient error (see [`StoreError::is_transient`]).
    pub acquire_timeout: Duration,
}

/// [`PoolSettings::acquire_timeout`] unless configured.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        }
    }
}

/// The gateway's persistent state.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    secrets: SecretBox,
    backend: Backend,
    /// Bumped after every commit that appended events: wakes the log's readers.
    appended: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// How many events of each type were appended through this store (any handle on it),
    /// counted before the wake-up: a reader waiting for some types reads again only when
    /// one of them was appended.
    appended_kinds: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    /// Who makes the changes made through this handle (see [`Store::acting_as`]).
    actor: Option<std::sync::Arc<str>>,
    /// Per-user limits (see [`Store::with_limits`]).
    limits: Limits,
    /// The gateway instance sessions created through this store belong to (see
    /// [`Store::with_instance`]).
    instance: Option<std::sync::Arc<str>>,
    /// A token of this process, sent with the wake-ups of other gateways (PostgreSQL
    /// `NOTIFY`) so that it can ignore its own.
    origin: std::sync::Arc<str>,
    /// Bumped when events of unknown types may have been appended (by another gateway):
    /// counted in every [`appended_count`](Store::appended_count).
    any_appended: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The writer of session ends and session events (see `settler`).
    writer: std::sync::Arc<settler::Writer>,
    /// On SQLite, the turn to write: held by every write transaction from its `BEGIN` to
    /// its end (see [`WriteTxn`]).
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// How long a writer waits for its turn: the pool's acquire timeout (a writer that
    /// waits longer fails as one that found no connection free).
    turn_timeout: Duration,
}

/// A transaction that writes. On SQLite it holds the store's turn to write until it ends
/// (committed, or rolled back when dropped): SQLite lets one connection write at a time, and
/// a transaction that finds another one writing waits in SQLite's busy handler, which
/// sleeps 1, 2, 5, 10… ms between tries. Waiting for the turn in this process instead, a
/// writer starts the moment the one before it ends (the busy handler remains for other
/// processes on the same file). PostgreSQL needs no turn.
pub(crate) struct WriteTxn {
    // Declared first, dropped first: a transaction dropped without commit starts its
    // rollback before the turn passes on.
    txn: sea_orm::DatabaseTransaction,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTxn {
    /// Commits the transaction, then gives the turn to write back.
    pub(crate) async fn commit(self) -> Result<(), sea_orm::DbErr> {
        let Self { txn, _turn } = self;
        txn.commit().await
    }
}

impl std::ops::Deref for WriteTxn {
    type Target = sea_orm::DatabaseTransaction;

    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> sea_orm::DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.txn.execute(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
        self.txn.query_one(stmt).await
    }

    async fn query_all(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
        self.txn.query_all(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.txn.is_mock_connection()
    }
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH` — created if missing — or
    /// `postgres://…`). Does not migrate: call [`migrate`](Self::migrate).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database cannot be reached or the URL is not supported.
    pub async fn connect(url: &str, secrets: SecretBox) -> Result<Self> {
        Self::connect_with(url, secrets, PoolSettings::default()).await
    }

    /// [`connect`](Self::connect) with a pool sized by `pool`.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database cannot be reached or the URL is not supported.
    pub async fn connect_with(url: &str, secrets: SecretBox, pool: PoolSettings) -> Result<Self> {
        let (url, backend) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains("mode=") {
                format!("sqlite:{rest}")
            } else if rest.contains('?') {
                format!("sqlite:{rest}&mode=rwc")
            } else {
                format!("sqlite:{rest}?mode=rwc")
            };
            (url, Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_owned(), Backend::Postgres)
        } else {
            return Err(StoreError::Db(sea_orm::DbErr::Custom(
                "database_url must start with sqlite:// or postgres://".to_owned(),
            )));
        };
        let mut options = ConnectOptions::new(url);
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(pool.acquire_timeout);
        if let Some(max) = pool.max_connections {
            options.max_connections(max.max(1));
        }
        if backend == Backend::Sqlite {
            // One writer at a time is SQLite's rule; a small pool avoids busy errors.
            // No ping before handing out a connection: an embedded database's connection
            // cannot go stale, and each ping is a round trip to the connection's thread
            // (sqlx runs every SQLite connection on a thread of its own). A session's start
            // and end take several connections from the pool: the pings were a third of
            // those trips (see BENCHMARKS.md, issue 17, exec).
            options
                .max_connections(pool.max_connections.unwrap_or(4).max(1))
                .min_connections(1)
                .test_before_acquire(false);
            // Write-ahead log with `synchronous = NORMAL`: a commit is durable against a
            // crash of the gateway (the WAL is in the OS cache) and loses at most the last
            // transactions on a power cut, never corrupts; it doubles session throughput
            // over the default rollback journal (see BENCHMARKS.md). Recordings keep their
            // own durability rule (fsync at least every 100 ms) and do not depend on this.
            options.map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
            });
        }
        let db = Database::connect(options).await?;
        Ok(Self {
            db,
            secrets,
            backend,
            appended: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
            appended_kinds: std::sync::Arc::default(),
            actor: None,
            limits: Limits::default(),
            instance: None,
            origin: std::sync::Arc::from(crate::crypto::random_token("")),
            any_appended: std::sync::Arc::default(),
            writer: std::sync::Arc::default(),
            write_turn: std::sync::Arc::default(),
            turn_timeout: pool.acquire_timeout,
        })
    }

    /// This store, enforcing `limits` (handles cloned from it and [`acting_as`] ones
    /// too).
    ///
    /// [`acting_as`]: Self::acting_as
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// This store, recording the sessions it creates as run by gateway instance `id`
    /// (handles cloned from it too).
    #[must_use]
    pub fn with_instance(mut self, id: &str) -> Self {
        self.instance = Some(std::sync::Arc::from(id));
        self
    }

    /// The instance set with [`with_instance`](Self::with_instance), if any.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Serializes, until `txn` ends, the transactions that check limit `lock` for `user`.
    /// SQLite needs nothing: [`begin_write`](Self::begin_write) took its write lock.
    async fn lock_user(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        lock: UserLock,
        user: &str,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            txn.execute(sea_orm::Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                [(lock as i32).into(), user.into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// A handle on the same database whose changes are made by user `name`: the events they
    /// append name that user. Cheap: it shares the connection pool.
    #[must_use]
    pub fn acting_as(&self, name: &str) -> Self {
        let mut store = self.clone();
        store.actor = Some(std::sync::Arc::from(name));
        store
    }

    /// The user set with [`acting_as`](Self::acting_as), if any.
    pub fn actor(&self) -> Option<&str> {
        self.actor.as_deref()
    }

    /// Appends `events` as the last statements of `txn`, commits it and wakes the readers.
    pub(crate) async fn commit_with_events(
        &self,
        txn: WriteTxn,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let kinds: Vec<String> = events.iter().map(|e| e.kind.clone()).collect();
        crate::events::append(self.backend, &txn, events).await?;
        if self.backend == Backend::Postgres && !kinds.is_empty() {
            let names: Vec<&str> = kinds.iter().map(String::as_str).collect();
            wakeups::notify(&txn, &self.origin, &names).await?;
        }
        txn.commit().await?;
        if !kinds.is_empty() {
            self.events_appended(&kinds);
        }
        Ok(())
    }

    /// Appends `events` that go with no other change, and wakes the readers. On SQLite the
    /// append is one `INSERT` of its own, atomic without a transaction (no `BEGIN` and
    /// `COMMIT`: two fewer trips to the connection's thread); on PostgreSQL it is a
    /// transaction, for the lock that orders the log (see [`crate::events`]).
    pub(crate) async fn append_alone(&self, events: Vec<NewEvent>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if self.backend == Backend::Postgres {
            let txn = self.begin_with_write().await?;
            return self.commit_with_events(txn, events).await;
        }
        let kinds: Vec<String> = events.iter().map(|e| e.kind.clone()).collect();
        {
            let _turn = self.write_turn().await?;
            crate::events::append(self.backend, &self.db, events).await?;
        }
        self.events_appended(&kinds);
        Ok(())
    }

    /// A receiver whose value changes after events were appended through this store, or by
    /// another gateway on the same PostgreSQL database once
    /// [`spawn_remote_wakeups`](Self::spawn_remote_wakeups) runs (a wake-up for the log's
    /// readers, not a delivery).
    pub fn event_notifications(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// How many events whose type passes `matches` were appended through this store since
    /// it was opened (by any handle on it), plus, on PostgreSQL once
    /// [`spawn_remote_wakeups`](Self::spawn_remote_wakeups) runs, those other gateways
    /// said they appended (and a count of wake-ups of unknown types). A
    /// reader takes it before reading the log, and after a wake-up reads again only if it
    /// changed.
    pub fn appended_count(&self, matches: impl Fn(&str) -> bool) -> u64 {
        let counts = self
            .appended_kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let any = self.any_appended.load(std::sync::atomic::Ordering::Relaxed);
        counts
            .iter()
            .filter(|(kind, _)| matches(kind))
            .fold(any, |sum, (_, n)| sum.wrapping_add(*n))
    }

    /// Counts the appended `kinds` and wakes the log's readers; called after a commit that
    /// appended events.
    pub(crate) fn events_appended(&self, kinds: &[String]) {
        {
            let mut counts = self
                .appended_kinds
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for kind in kinds {
                let n = counts.entry(kind.clone()).or_default();
                *n = n.wrapping_add(1);
            }
        }
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock at once, with a
    /// statement that changes nothing: a transaction that read first and wrote later would
    /// fail with "database is locked" when another connection wrote in between, instead of
    /// waiting its turn (the busy timeout only applies to a transaction that has read
    /// nothing yet). The statement touches sea-orm's own migration table, the one table
    /// every migrated database has. PostgreSQL needs nothing of the kind.
    pub(crate) async fn begin_write(&self) -> Result<WriteTxn> {
        let txn = self.begin_with_write().await?;
        if self.backend == Backend::Sqlite {
            txn.execute_unprepared("UPDATE seaql_migrations SET version = version WHERE 0")
                .await?;
        }
        Ok(txn)
    }

    /// Begins a transaction whose first statement writes (an `INSERT`, an `UPDATE`): that
    /// statement takes SQLite's write lock itself, waiting its turn, so the extra statement
    /// of [`begin_write`](Self::begin_write) is not needed.
    pub(crate) async fn begin_with_write(&self) -> Result<WriteTxn> {
        // The turn first, the pool's connection then: a writer waiting for its turn holds
        // no connection that readers could use.
        let turn = self.write_turn().await?;
        Ok(WriteTxn {
            txn: self.db.begin().await?,
            _turn: turn,
        })
    }

    /// On SQLite, the turn to write (see [`WriteTxn`]); nothing on PostgreSQL. Waiting
    /// longer than the pool's acquire timeout fails as a pool timeout does (transient:
    /// `UNAVAILABLE` for a request, retried for a session's end).
    async fn write_turn(&self) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>> {
        match self.backend {
            Backend::Sqlite => {
                let turn = std::sync::Arc::clone(&self.write_turn).lock_owned();
                match tokio::time::timeout(self.turn_timeout, turn).await {
                    Ok(guard) => Ok(Some(guard)),
                    Err(_) => Err(StoreError::Db(sea_orm::DbErr::ConnectionAcquire(
                        sea_orm::ConnAcquireErr::Timeout,
                    ))),
                }
            }
            Backend::Postgres => Ok(None),
        }
    }

    /// The database backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying sea-orm connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Applies every pending migration. On PostgreSQL this holds an advisory lock, so
    /// gateways starting together migrate one at a time.
    ///
    /// # Errors
    /// [`StoreError::Db`] if a migration fails.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => Migrator::up(&self.db, None).await?,
            Backend::Postgres => {
                let txn = self.db.begin().await?;
                txn.execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                ))
                .await?;
                Migrator::up(&txn, None).await?;
                txn.commit().await?;
            }
        }
        Ok(())
    }

    /// Names of the migrations applied so far, in order.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn applied_migrations(&self) -> Result<Vec<String>> {
        let applied = Migrator::get_applied_migrations(&self.db).await?;
        Ok(applied.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Checks that the secret key is the one this database's secrets were written with (and
    /// records it on first use), so a wrong key stops start-up rather than reads.
    ///
    /// # Errors
    /// [`StoreError::InvalidSecretKey`] if the key differs.
    pub async fn check_secret_key(&self) -> Result<()> {
        let sealed = self.secrets.seal(SECRET_CHECK_KEY, SECRET_CHECK_VALUE)?;
        meta::Entity::insert(meta::ActiveModel {
            key: Set(SECRET_CHECK_KEY.to_owned()),
            value: Set(sealed),
        })
        .on_conflict(
            OnConflict::column(meta::Column::Key)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&self.db)
        .await?;
        let stored = meta::Entity::find_by_id(SECRET_CHECK_KEY)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Corrupt("secret check value vanished".to_owned()))?;
        match self.secrets.open(SECRET_CHECK_KEY, &stored.value) {
            Ok(value) if value == SECRET_CHECK_VALUE => Ok(()),
            _ => Err(StoreError::InvalidSecretKey(
                "does not match the key this database's secrets were encrypted with".to_owned(),
            )),
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: DeserializeOwned>(value: serde_json::Value, what: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A duration as stored: whole milliseconds (saturating).
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A stored duration in milliseconds; negative ones read as unset.
fn duration_from_db(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// A count as stored (saturating).
fn count_to_db(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A stored count; negative ones read as unset.
fn count_from_db(n: i32) -> Option<u32> {
    u32::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_writer_waits_for_its_turn_at_most_the_acquire_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/hoop.db", dir.path().display());
        let secrets = SecretBox::new("0123456789abcdef0123456789abcdef-test").unwrap();
        let pool = PoolSettings {
            max_connections: None,
            acquire_timeout: Duration::from_millis(100),
        };
        let store = Store::connect_with(&url, secrets, pool).await.unwrap();
        store.migrate().await.unwrap();
        let event = || vec![NewEvent::new("session.started", serde_json::json!({}))];
        let holding = store.begin_write().await.unwrap();
        // The turn is taken: the append gives up as a pool timeout does (transient).
        let err = store.append_events(event()).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        // A waiting writer gets the turn as soon as the holder ends.
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.append_events(event()).await }
        });
        tokio::task::yield_now().await;
        holding.commit().await.unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(store.read_events(0, 10).await.unwrap().len(), 1);
    }
}
