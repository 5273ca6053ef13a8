//! The [`Store`]: every read and write of the gateway's state.

use std::collections::BTreeMap;
use std::time::Duration;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, OnConflict, Query, SimpleExpr};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::crypto::SecretBox;
use crate::entity::{
    api_key, connection, meta, plugin_attachment, review, review_decision, session, user,
    user_group,
};
use crate::error::StoreError;
use crate::events::NewEvent;
use crate::migration::Migrator;
use crate::model::{
    AccessModes, ApiKey, ApprovalRule, Attachment, Connection, NewDecision, NewReview, Review,
    ReviewDecision, ReviewFilter, ReviewKind, ReviewStatus, SessionEnd, SessionFilter,
    SessionRecord, User,
};

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

/// The gateway's persistent state.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    secrets: SecretBox,
    backend: Backend,
    /// Bumped after every commit that appended events: wakes the log's readers.
    appended: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Who makes the changes made through this handle (see [`Store::acting_as`]).
    actor: Option<std::sync::Arc<str>>,
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH` — created if missing — or
    /// `postgres://…`). Does not migrate: call [`migrate`](Self::migrate).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database cannot be reached or the URL is not supported.
    pub async fn connect(url: &str, secrets: SecretBox) -> Result<Self> {
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
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // One writer at a time is SQLite's rule; a small pool avoids busy errors.
            options.max_connections(4).min_connections(1);
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
            actor: None,
        })
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

    /// An event about connection `name`, by the acting user.
    fn connection_event(&self, kind: &str, name: &str, data: serde_json::Value) -> NewEvent {
        let mut event = NewEvent::new(kind, data).connection(name);
        event.user = self.actor.as_deref().map(str::to_owned);
        event
    }

    /// The event `kind` (`review.created`, `review.approved`, …) telling that `review` is now
    /// as it is, by the acting user (else the requester).
    fn review_event(&self, review: &Review, kind: &str) -> NewEvent {
        let user = self
            .actor
            .as_deref()
            .map_or_else(|| review.requester.clone(), str::to_owned);
        let approvers: Vec<String> = review
            .decisions
            .iter()
            .filter(|d| d.approved)
            .map(|d| format!("{} ({})", d.reviewer, d.group))
            .collect();
        NewEvent::new(
            kind,
            serde_json::json!({
                "review_id": review.id,
                "kind": review.kind.as_str(),
                "status": review.status.as_str(),
                "requester": review.requester,
                "verb": review.verb,
                "groups": review.groups,
                "approved_by": approvers,
                "reason": review.reason,
                "session_id": review.session_id,
                "grant_ends_at": review.grant_ends_at.map(|t| t.to_rfc3339()),
            }),
        )
        .connection(&review.connection)
        .user(user)
    }

    /// Appends `events` as the last statements of `txn`, commits it and wakes the readers.
    async fn commit_with_events(
        &self,
        txn: sea_orm::DatabaseTransaction,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let any = !events.is_empty();
        crate::events::append(self.backend, &txn, events).await?;
        txn.commit().await?;
        if any {
            self.events_appended();
        }
        Ok(())
    }

    /// A receiver whose value changes after events were appended through this store (a
    /// wake-up for the log's readers, not a delivery: events appended by other gateways on
    /// the same database do not change it).
    pub fn event_notifications(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Wakes the log's readers; called after a commit that appended events.
    pub(crate) fn events_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
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

    // === users ===

    /// Creates a user with their groups.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the name is taken.
    pub async fn create_user(&self, new: &User) -> Result<User> {
        let txn = self.db.begin().await?;
        if user::Entity::find_by_id(&new.name)
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(StoreError::exists("user", &new.name));
        }
        let now = Utc::now();
        user::ActiveModel {
            name: Set(new.name.clone()),
            email: Set(new.email.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "user", &new.name))?;
        replace_groups(&txn, &new.name, &new.groups).await?;
        txn.commit().await?;
        self.get_user(&new.name).await
    }

    /// The user named `name`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    pub async fn get_user(&self, name: &str) -> Result<User> {
        let row = user::Entity::find_by_id(name)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::not_found("user", name))?;
        let mut groups = groups_of(&self.db, std::slice::from_ref(&row.name)).await?;
        Ok(user_from(row, &mut groups))
    }

    /// Users ordered by name, starting after `after`, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_users(&self, after: Option<&str>, limit: u64) -> Result<Vec<User>> {
        let mut query = user::Entity::find().order_by_asc(user::Column::Name);
        if let Some(after) = after {
            query = query.filter(user::Column::Name.gt(after));
        }
        let rows = query.limit(limit).all(&self.db).await?;
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let mut groups = groups_of(&self.db, &names).await?;
        Ok(rows
            .into_iter()
            .map(|r| user_from(r, &mut groups))
            .collect())
    }

    /// Changes a user's email and/or groups (`None` leaves a field as it is).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    pub async fn update_user(
        &self,
        name: &str,
        email: Option<&str>,
        groups: Option<&[String]>,
    ) -> Result<User> {
        let txn = self.db.begin().await?;
        let row = user::Entity::find_by_id(name)
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::not_found("user", name))?;
        let mut active: user::ActiveModel = row.into();
        if let Some(email) = email {
            active.email = Set(email.to_owned());
        }
        active.updated_at = Set(Utc::now());
        active.update(&txn).await?;
        if let Some(groups) = groups {
            replace_groups(&txn, name, groups).await?;
        }
        txn.commit().await?;
        self.get_user(name).await
    }

    /// Deletes a user, their group memberships and their API keys.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let txn = self.db.begin().await?;
        api_key::Entity::delete_many()
            .filter(api_key::Column::UserName.eq(name))
            .exec(&txn)
            .await?;
        user_group::Entity::delete_many()
            .filter(user_group::Column::UserName.eq(name))
            .exec(&txn)
            .await?;
        let deleted = user::Entity::delete_by_id(name).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::not_found("user", name));
        }
        txn.commit().await?;
        Ok(())
    }

    /// Makes sure `name` exists and belongs to `group` (for the built-in admin), keeping
    /// any other groups it has.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn ensure_user_in_group(&self, name: &str, group: &str) -> Result<User> {
        let now = Utc::now();
        user::Entity::insert(user::ActiveModel {
            name: Set(name.to_owned()),
            email: Set(String::new()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(user::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&self.db)
        .await?;
        user_group::Entity::insert(user_group::ActiveModel {
            user_name: Set(name.to_owned()),
            group_name: Set(group.to_owned()),
        })
        .on_conflict(
            OnConflict::columns([user_group::Column::UserName, user_group::Column::GroupName])
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&self.db)
        .await?;
        self.get_user(name).await
    }

    // === API keys ===

    /// Records a new API key for `user`, given the SHA-256 hash of its token (hex) and the
    /// token's first characters.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if the user does not exist.
    pub async fn create_api_key(
        &self,
        user_name: &str,
        description: &str,
        prefix: &str,
        token_hash: &str,
    ) -> Result<ApiKey> {
        let txn = self.db.begin().await?;
        if user::Entity::find_by_id(user_name)
            .one(&txn)
            .await?
            .is_none()
        {
            return Err(StoreError::not_found("user", user_name));
        }
        let mut id_bytes = [0u8; 8];
        OsRng.fill_bytes(&mut id_bytes);
        let id = format!("ak_{}", hex(&id_bytes));
        let row = api_key::ActiveModel {
            id: Set(id.clone()),
            user_name: Set(user_name.to_owned()),
            description: Set(description.to_owned()),
            prefix: Set(prefix.to_owned()),
            token_hash: Set(token_hash.to_owned()),
            created_at: Set(Utc::now()),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "api key", &id))?;
        txn.commit().await?;
        Ok(api_key_from(row))
    }

    /// The key with this token hash and its user, if the key exists (revoked or not).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn find_api_key(&self, token_hash: &str) -> Result<Option<(ApiKey, User)>> {
        let Some(row) = api_key::Entity::find()
            .filter(api_key::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let user = match self.get_user(&row.user_name).await {
            Ok(user) => user,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some((api_key_from(row), user)))
    }

    /// The key with this id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    pub async fn get_api_key(&self, id: &str) -> Result<ApiKey> {
        api_key::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(api_key_from)
            .ok_or_else(|| StoreError::not_found("api key", id))
    }

    /// A user's keys, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_api_keys(&self, user_name: &str) -> Result<Vec<ApiKey>> {
        let rows = api_key::Entity::find()
            .filter(api_key::Column::UserName.eq(user_name))
            .order_by_asc(api_key::Column::CreatedAt)
            .order_by_asc(api_key::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(api_key_from).collect())
    }

    /// Revokes a key (revoking twice keeps the first time).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKey> {
        let row = api_key::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::not_found("api key", id))?;
        if row.revoked_at.is_some() {
            return Ok(api_key_from(row));
        }
        let mut active: api_key::ActiveModel = row.into();
        active.revoked_at = Set(Some(Utc::now()));
        Ok(api_key_from(active.update(&self.db).await?))
    }

    // === connections ===

    /// Creates a connection with its plugin attachments, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the name is taken.
    pub async fn create_connection(
        &self,
        conn: &Connection,
        attachments: &[Attachment],
    ) -> Result<Connection> {
        let txn = self.db.begin().await?;
        if connection::Entity::find_by_id(&conn.name)
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(StoreError::exists("connection", &conn.name));
        }
        let now = Utc::now();
        let mut row = self.connection_row(conn, true)?;
        row.created_at = Set(now);
        row.updated_at = Set(now);
        row.insert(&txn)
            .await
            .map_err(|e| StoreError::from_insert(e, "connection", &conn.name))?;
        for attachment in attachments {
            insert_attachment(&txn, &conn.name, attachment).await?;
        }
        let event = self.connection_event(
            "connection.created",
            &conn.name,
            serde_json::json!({ "name": conn.name, "type": conn.kind }),
        );
        self.commit_with_events(txn, vec![event]).await?;
        self.get_connection(&conn.name, false).await
    }

    /// The connection named `name`; with `with_secrets`, `env` holds the decrypted values,
    /// otherwise only the variable names (with empty values).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none; [`StoreError::Crypto`] if its secrets
    /// cannot be decrypted.
    pub async fn get_connection(&self, name: &str, with_secrets: bool) -> Result<Connection> {
        let row = connection::Entity::find_by_id(name)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::not_found("connection", name))?;
        self.connection_from(row, with_secrets)
    }

    /// Connections ordered by name, starting after `after`, at most `limit`, without
    /// secrets.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_connections(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Connection>> {
        let mut query = connection::Entity::find().order_by_asc(connection::Column::Name);
        if let Some(after) = after {
            query = query.filter(connection::Column::Name.gt(after));
        }
        let rows = query.limit(limit).all(&self.db).await?;
        rows.into_iter()
            .map(|row| self.connection_from(row, false))
            .collect()
    }

    /// Replaces a connection's fields with `conn`'s (keeping its secrets unless
    /// `replace_env`) and upserts `attachments`, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such connection.
    pub async fn update_connection(
        &self,
        conn: &Connection,
        replace_env: bool,
        attachments: &[Attachment],
    ) -> Result<Connection> {
        let txn = self.db.begin().await?;
        let existing = connection::Entity::find_by_id(&conn.name)
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::not_found("connection", &conn.name))?;
        let mut row = self.connection_row(conn, replace_env)?;
        row.created_at = Set(existing.created_at);
        row.updated_at = Set(Utc::now());
        row.update(&txn).await?;
        for attachment in attachments {
            upsert_attachment(&txn, &conn.name, attachment).await?;
        }
        let event = self.connection_event(
            "connection.updated",
            &conn.name,
            serde_json::json!({ "name": conn.name, "change": "fields" }),
        );
        self.commit_with_events(txn, vec![event]).await?;
        self.get_connection(&conn.name, false).await
    }

    /// Deletes a connection and its plugin attachments.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such connection.
    pub async fn delete_connection(&self, name: &str) -> Result<()> {
        let txn = self.db.begin().await?;
        plugin_attachment::Entity::delete_many()
            .filter(plugin_attachment::Column::ConnectionName.eq(name))
            .exec(&txn)
            .await?;
        let deleted = connection::Entity::delete_by_id(name).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::not_found("connection", name));
        }
        let event = self.connection_event(
            "connection.deleted",
            name,
            serde_json::json!({ "name": name }),
        );
        self.commit_with_events(txn, vec![event]).await
    }

    // === plugin attachments ===

    /// The plugins attached to a connection, by plugin name.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such connection.
    pub async fn list_attachments(&self, conn: &str) -> Result<Vec<Attachment>> {
        if connection::Entity::find_by_id(conn)
            .one(&self.db)
            .await?
            .is_none()
        {
            return Err(StoreError::not_found("connection", conn));
        }
        self.attachments_of(&[conn.to_owned()])
            .await
            .map(|mut all| all.remove(conn).unwrap_or_default())
    }

    /// The attachments of several connections at once, keyed by connection name.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn attachments_of(
        &self,
        conns: &[String],
    ) -> Result<BTreeMap<String, Vec<Attachment>>> {
        let rows = plugin_attachment::Entity::find()
            .filter(plugin_attachment::Column::ConnectionName.is_in(conns.iter().cloned()))
            .order_by_asc(plugin_attachment::Column::ConnectionName)
            .order_by_asc(plugin_attachment::Column::Plugin)
            .all(&self.db)
            .await?;
        let mut out: BTreeMap<String, Vec<Attachment>> = BTreeMap::new();
        for row in rows {
            out.entry(row.connection_name)
                .or_default()
                .push(Attachment {
                    plugin: row.plugin,
                    config: row.config,
                    enabled: row.enabled,
                });
        }
        Ok(out)
    }

    /// Attaches a plugin to a connection.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such connection,
    /// [`StoreError::AlreadyExists`] if the plugin is already attached.
    pub async fn attach(&self, conn: &str, attachment: &Attachment) -> Result<()> {
        let txn = self.db.begin().await?;
        touch_connection(&txn, conn).await?;
        let key = (conn.to_owned(), attachment.plugin.clone());
        if plugin_attachment::Entity::find_by_id(key)
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(StoreError::exists(
                "plugin attachment",
                format!("{}/{}", conn, attachment.plugin),
            ));
        }
        insert_attachment(&txn, conn, attachment).await?;
        let event = self.connection_event(
            "connection.updated",
            conn,
            serde_json::json!({ "name": conn, "change": "plugin_attached", "plugin": attachment.plugin }),
        );
        self.commit_with_events(txn, vec![event]).await
    }

    /// Replaces the config of a plugin attached to a connection.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if the connection or the attachment does not exist.
    pub async fn update_attachment(&self, conn: &str, attachment: &Attachment) -> Result<()> {
        let txn = self.db.begin().await?;
        touch_connection(&txn, conn).await?;
        let key = (conn.to_owned(), attachment.plugin.clone());
        let row = plugin_attachment::Entity::find_by_id(key)
            .one(&txn)
            .await?
            .ok_or_else(|| {
                StoreError::not_found(
                    "plugin attachment",
                    format!("{}/{}", conn, attachment.plugin),
                )
            })?;
        let mut active: plugin_attachment::ActiveModel = row.into();
        active.config = Set(attachment.config.clone());
        active.enabled = Set(attachment.enabled);
        active.updated_at = Set(Utc::now());
        active.update(&txn).await?;
        let event = self.connection_event(
            "connection.updated",
            conn,
            serde_json::json!({ "name": conn, "change": "plugin_configured", "plugin": attachment.plugin }),
        );
        self.commit_with_events(txn, vec![event]).await
    }

    /// Detaches a plugin from a connection.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if the connection or the attachment does not exist.
    pub async fn detach(&self, conn: &str, plugin: &str) -> Result<()> {
        let txn = self.db.begin().await?;
        touch_connection(&txn, conn).await?;
        let deleted = plugin_attachment::Entity::delete_by_id((conn.to_owned(), plugin.to_owned()))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::not_found(
                "plugin attachment",
                format!("{conn}/{plugin}"),
            ));
        }
        let event = self.connection_event(
            "connection.updated",
            conn,
            serde_json::json!({ "name": conn, "change": "plugin_detached", "plugin": plugin }),
        );
        self.commit_with_events(txn, vec![event]).await
    }

    // === sessions ===

    /// Records a session that starts now.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the id is taken.
    pub async fn create_session(&self, record: &SessionRecord) -> Result<()> {
        let txn = self.db.begin().await?;
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
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "session", &record.id))?;
        let event = NewEvent::new(
            "session.opened",
            serde_json::json!({
                "session_id": record.id,
                "verb": record.verb,
                "connection_type": record.connection_type,
            }),
        )
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
    /// `recording.finished`) in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such session.
    pub async fn finish_session_with(
        &self,
        id: &str,
        end: &SessionEnd,
        extra: Vec<NewEvent>,
    ) -> Result<SessionRecord> {
        let txn = self.db.begin().await?;
        let row = session::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::not_found("session", id))?;
        let mut active: session::ActiveModel = row.into();
        active.status = Set(end.status.clone());
        active.exit_code = Set(Some(end.exit_code));
        active.reason = Set(end.reason.clone());
        active.ended_at = Set(Some(Utc::now()));
        active.bytes_in = Set(end.bytes_in);
        active.bytes_out = Set(end.bytes_out);
        active.metrics = Set(to_json(&end.metrics)?);
        active.attributes = Set(to_json(&end.attributes)?);
        let record = session_from(active.update(&txn).await?)?;
        let mut events = vec![
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
            .user(&record.user),
        ];
        events.extend(extra);
        self.commit_with_events(txn, events).await?;
        Ok(record)
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

    /// Marks every session still `open` as `interrupted` (run at start-up, after a crash).
    /// Returns how many were marked.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn interrupt_open_sessions(&self) -> Result<u64> {
        let txn = self.db.begin().await?;
        let open = session::Entity::find()
            .filter(session::Column::Status.eq("open"))
            .order_by_asc(session::Column::StartedAt)
            .all(&txn)
            .await?;
        let reason = "the gateway stopped while the session ran";
        let result = session::Entity::update_many()
            .col_expr(session::Column::Status, Expr::value("interrupted"))
            .col_expr(session::Column::Reason, Expr::value(reason))
            .col_expr(session::Column::EndedAt, Expr::value(Utc::now()))
            .filter(session::Column::Id.is_in(open.iter().map(|s| s.id.clone())))
            .filter(session::Column::Status.eq("open"))
            .exec(&txn)
            .await?;
        let events = open
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
        Ok(result.rows_affected)
    }

    // === reviews ===
    //
    // Every transition is a compare-and-set on `status` (`UPDATE … WHERE status = …`), so of
    // two racing transitions exactly one applies and the other fails with
    // `StoreError::Conflict`. Transactions that read before they write start with that
    // update: it takes SQLite's write lock first (a concurrent writer then waits instead of
    // failing) and PostgreSQL's row lock (concurrent deciders of one review queue up and see
    // each other's decisions).

    /// Records a new `PENDING` review with a fresh UUID and the SHA-256 of its input.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] if a JIT review has no access duration.
    pub async fn create_review(&self, new: &NewReview) -> Result<Review> {
        if new.kind == ReviewKind::Jit && new.access_duration.is_none() {
            return Err(StoreError::Invalid(
                "a just-in-time review needs an access duration".to_owned(),
            ));
        }
        let id = new_uuid();
        let txn = self.db.begin().await?;
        let row = review::ActiveModel {
            id: Set(id.clone()),
            kind: Set(new.kind.as_str().to_owned()),
            status: Set(ReviewStatus::Pending.as_str().to_owned()),
            connection: Set(new.connection.clone()),
            requester: Set(new.requester.clone()),
            verb: Set(new.verb.clone()),
            input: Set(new.input.clone()),
            input_sha256: Set(new.input.as_deref().map(|i| hex(&Sha256::digest(i)))),
            args: Set(to_json(&new.args)?),
            groups: Set(to_json(&new.groups)?),
            min_approvals: Set(new.min_approvals.map(count_to_db)),
            access_duration_ms: Set(new.access_duration.map(millis)),
            reason: Set(None),
            created_at: Set(new.created_at),
            updated_at: Set(new.created_at),
            expires_at: Set(new.expires_at),
            decided_at: Set(None),
            grant_ends_at: Set(None),
            session_id: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "review", &id))?;
        let review = review_from(row, Vec::new())?;
        let mut event = self.review_event(&review, "review.created");
        event.user = Some(review.requester.clone());
        self.commit_with_events(txn, vec![event]).await?;
        Ok(review)
    }

    /// The review with this id, with its decisions.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    pub async fn get_review(&self, id: &str) -> Result<Review> {
        load_review(&self.db, id).await
    }

    /// Reviews matching `filter`, newest first, after the (creation time, id) of the last one
    /// of the previous page, at most `limit`, with their decisions.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_reviews(
        &self,
        filter: &ReviewFilter,
        after: Option<(DateTime<Utc>, String)>,
        limit: u64,
    ) -> Result<Vec<Review>> {
        let mut query = review::Entity::find()
            .order_by_desc(review::Column::CreatedAt)
            .order_by_desc(review::Column::Id);
        if let Some(s) = filter.status {
            query = query.filter(review::Column::Status.eq(s.as_str()));
        }
        if let Some(c) = &filter.connection {
            query = query.filter(review::Column::Connection.eq(c.as_str()));
        }
        if let Some(r) = &filter.requester {
            query = query.filter(review::Column::Requester.eq(r.as_str()));
        }
        if let Some(groups) = &filter.awaiting_groups {
            if groups.is_empty() {
                return Ok(Vec::new());
            }
            query = query
                .filter(review::Column::Status.eq(ReviewStatus::Pending.as_str()))
                .filter(groups_overlap(self.backend, groups));
        }
        if let Some(user) = &filter.exclude_decided_by {
            query = query.filter(
                review::Column::Id.not_in_subquery(
                    Query::select()
                        .column(review_decision::Column::ReviewId)
                        .from(review_decision::Entity)
                        .and_where(review_decision::Column::Reviewer.eq(user.as_str()))
                        .to_owned(),
                ),
            );
        }
        if let Some((t, id)) = after {
            query = query.filter(
                Condition::any().add(review::Column::CreatedAt.lt(t)).add(
                    Condition::all()
                        .add(review::Column::CreatedAt.eq(t))
                        .add(review::Column::Id.lt(id)),
                ),
            );
        }
        let rows = query.limit(limit).all(&self.db).await?;
        with_decisions(&self.db, rows).await
    }

    /// Records a reviewer's decision on a `PENDING` review and settles the review, in one
    /// transaction: a rejection rejects it (its reason becomes the review's); an approval
    /// that satisfies `rule` approves it (and starts a JIT review's grant: it ends at
    /// `decision.at` + the access duration). Returns the review as it now is.
    ///
    /// Concurrent decisions on one review are serialized; each sees the ones before it, so
    /// the approval that completes the rule approves the review exactly once and a decision
    /// arriving after that fails.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such review; [`StoreError::Conflict`] if it is
    /// not `PENDING`, is past its `expires_at` at `decision.at`, or the reviewer already
    /// decided it.
    pub async fn decide_review(
        &self,
        id: &str,
        decision: &NewDecision,
        rule: ApprovalRule,
    ) -> Result<Review> {
        let pending = ReviewStatus::Pending.as_str();
        let txn = self.db.begin().await?;
        // Claim the review (see the section comment): still pending and not expired.
        let claimed = review::Entity::update_many()
            .col_expr(review::Column::UpdatedAt, Expr::value(decision.at))
            .filter(review::Column::Id.eq(id))
            .filter(review::Column::Status.eq(pending))
            .filter(review::Column::ExpiresAt.gt(decision.at))
            .exec(&txn)
            .await?;
        if claimed.rows_affected == 0 {
            let row = review::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(|| StoreError::not_found("review", id))?;
            return Err(if row.status == pending {
                StoreError::Conflict(format!(
                    "review `{id}` expired at {}",
                    row.expires_at.to_rfc3339()
                ))
            } else {
                not_in(id, &row.status, &[ReviewStatus::Pending])
            });
        }
        let already = review_decision::Entity::find()
            .filter(review_decision::Column::ReviewId.eq(id))
            .filter(review_decision::Column::Reviewer.eq(decision.reviewer.as_str()))
            .one(&txn)
            .await?;
        if already.is_some() {
            return Err(already_decided(id, &decision.reviewer));
        }
        review_decision::ActiveModel {
            review_id: Set(id.to_owned()),
            reviewer: Set(decision.reviewer.clone()),
            group_name: Set(decision.group.clone()),
            approved: Set(decision.approved),
            reason: Set(decision.reason.clone()),
            decided_at: Set(decision.at),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                already_decided(id, &decision.reviewer)
            }
            _ => StoreError::Db(e),
        })?;
        let review = load_review(&txn, id).await?;
        let settle = if !decision.approved {
            Some(
                review::Entity::update_many()
                    .col_expr(
                        review::Column::Status,
                        Expr::value(ReviewStatus::Rejected.as_str()),
                    )
                    .col_expr(review::Column::Reason, Expr::value(decision.reason.clone())),
            )
        } else if rule.is_satisfied_by(&review.decisions) {
            let grant_ends_at = match review.kind {
                ReviewKind::Jit => review.access_duration.map(|d| add(decision.at, d)),
                ReviewKind::OneTime => None,
            };
            Some(
                review::Entity::update_many()
                    .col_expr(
                        review::Column::Status,
                        Expr::value(ReviewStatus::Approved.as_str()),
                    )
                    .col_expr(review::Column::GrantEndsAt, Expr::value(grant_ends_at)),
            )
        } else {
            None
        };
        let settled_kind = if !decision.approved {
            Some("review.rejected")
        } else if settle.is_some() {
            Some("review.approved")
        } else {
            None
        };
        let review = match settle {
            None => review,
            Some(update) => {
                let settled = update
                    .col_expr(review::Column::DecidedAt, Expr::value(decision.at))
                    .col_expr(review::Column::UpdatedAt, Expr::value(decision.at))
                    .filter(review::Column::Id.eq(id))
                    .filter(review::Column::Status.eq(pending))
                    .exec(&txn)
                    .await?;
                if settled.rows_affected == 0 {
                    // Not expected while the claim holds the row; refuse rather than guess.
                    return Err(StoreError::Conflict(format!(
                        "review `{id}` changed while it was being decided"
                    )));
                }
                load_review(&txn, id).await?
            }
        };
        let events = settled_kind
            .map(|kind| {
                let mut event = self.review_event(&review, kind);
                event.user = Some(decision.reviewer.clone());
                event
            })
            .into_iter()
            .collect();
        self.commit_with_events(txn, events).await?;
        Ok(review)
    }

    /// Moves a review from one of the `from` statuses to `to`, as a compare-and-set: of
    /// concurrent calls exactly one succeeds (e.g. a one-time review goes from `APPROVED` to
    /// `EXECUTED` once). `reason`, when given, replaces the review's reason; `session_id`,
    /// when given, is recorded unless a session is already (so it keeps the first). Returns
    /// the review as it now is.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such review; [`StoreError::Conflict`] if its
    /// status is not one of `from` (the message says which it is).
    pub async fn transition_review(
        &self,
        id: &str,
        from: &[ReviewStatus],
        to: ReviewStatus,
        reason: Option<&str>,
        session_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Review> {
        let txn = self.db.begin().await?;
        let mut update = review::Entity::update_many()
            .col_expr(review::Column::Status, Expr::value(to.as_str()))
            .col_expr(review::Column::UpdatedAt, Expr::value(at));
        if let Some(reason) = reason {
            update = update.col_expr(review::Column::Reason, Expr::value(reason));
        }
        if let Some(session_id) = session_id {
            update = update.col_expr(
                review::Column::SessionId,
                Func::coalesce([
                    Expr::col(review::Column::SessionId).into(),
                    Expr::value(session_id),
                ])
                .into(),
            );
        }
        let updated = update
            .filter(review::Column::Id.eq(id))
            .filter(review::Column::Status.is_in(from.iter().map(|s| s.as_str())))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            let row = review::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(|| StoreError::not_found("review", id))?;
            return Err(not_in(id, &row.status, from));
        }
        let review = load_review(&txn, id).await?;
        let kind = match to {
            ReviewStatus::Pending => None,
            ReviewStatus::Approved => Some("review.approved"),
            ReviewStatus::Rejected => Some("review.rejected"),
            ReviewStatus::Revoked => Some("review.revoked"),
            ReviewStatus::Expired => Some("review.expired"),
            ReviewStatus::Executed => Some("review.executed"),
        };
        let events = kind
            .map(|kind| self.review_event(&review, kind))
            .into_iter()
            .collect();
        self.commit_with_events(txn, events).await?;
        Ok(review)
    }

    /// Expires, as of `now`, every `PENDING` review past its `expires_at` (reason "pending
    /// longer than the review TTL") and every `APPROVED` JIT review whose grant ended (reason
    /// "access expired"). Returns the reviews it changed, oldest first, so the caller can
    /// announce them and end the sessions of ended grants. Safe to run concurrently with
    /// decisions and with other gateways: each review is expired at most once.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn expire_reviews(&self, now: DateTime<Utc>) -> Result<Vec<Review>> {
        let pending_too_long = Condition::all()
            .add(review::Column::Status.eq(ReviewStatus::Pending.as_str()))
            .add(review::Column::ExpiresAt.lte(now));
        let grant_ended = Condition::all()
            .add(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .add(review::Column::Kind.eq(ReviewKind::Jit.as_str()))
            .add(review::Column::GrantEndsAt.lte(now));
        let backend = self.db.get_database_backend();
        let txn = self.db.begin().await?;
        let mut ids = Vec::new();
        for (condition, reason) in [
            (pending_too_long, "pending longer than the review TTL"),
            (grant_ended, "access expired"),
        ] {
            // One statement per kind of expiry; RETURNING names exactly the rows it changed.
            let mut update = review::Entity::update_many()
                .col_expr(
                    review::Column::Status,
                    Expr::value(ReviewStatus::Expired.as_str()),
                )
                .col_expr(review::Column::Reason, Expr::value(reason))
                .col_expr(review::Column::UpdatedAt, Expr::value(now))
                .filter(condition)
                .into_query();
            update.returning_col(review::Column::Id);
            for row in txn.query_all(backend.build(&update)).await? {
                ids.push(row.try_get::<String>("", "id")?);
            }
        }
        if ids.is_empty() {
            txn.commit().await?;
            return Ok(Vec::new());
        }
        let rows = review::Entity::find()
            .filter(review::Column::Id.is_in(ids))
            .order_by_asc(review::Column::CreatedAt)
            .order_by_asc(review::Column::Id)
            .all(&txn)
            .await?;
        let reviews = with_decisions(&txn, rows).await?;
        let events = reviews
            .iter()
            .map(|review| {
                let mut event = self.review_event(review, "review.expired");
                event.user = Some(review.requester.clone());
                event
            })
            .collect();
        self.commit_with_events(txn, events).await?;
        Ok(reviews)
    }

    /// The access `requester` holds on `connection` at `now`: an `APPROVED` JIT review whose
    /// grant has not ended (the one ending last, if several).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn active_grant(
        &self,
        requester: &str,
        connection: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Review>> {
        let row = review::Entity::find()
            .filter(review::Column::Requester.eq(requester))
            .filter(review::Column::Connection.eq(connection))
            .filter(review::Column::Kind.eq(ReviewKind::Jit.as_str()))
            .filter(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .filter(review::Column::GrantEndsAt.gt(now))
            .order_by_desc(review::Column::GrantEndsAt)
            .order_by_desc(review::Column::Id)
            .one(&self.db)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(with_decisions(&self.db, vec![row]).await?.pop()),
        }
    }

    /// When [`expire_reviews`](Self::expire_reviews) next has something to do: the earliest
    /// `expires_at` of the `PENDING` reviews and `grant_ends_at` of the `APPROVED` JIT
    /// reviews; `None` if there are none.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn next_review_deadline(&self) -> Result<Option<DateTime<Utc>>> {
        let pending = review::Entity::find()
            .filter(review::Column::Status.eq(ReviewStatus::Pending.as_str()))
            .order_by_asc(review::Column::ExpiresAt)
            .one(&self.db)
            .await?
            .map(|r| r.expires_at);
        let grant = review::Entity::find()
            .filter(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .filter(review::Column::Kind.eq(ReviewKind::Jit.as_str()))
            .filter(review::Column::GrantEndsAt.is_not_null())
            .order_by_asc(review::Column::GrantEndsAt)
            .one(&self.db)
            .await?
            .and_then(|r| r.grant_ends_at);
        Ok(pending.into_iter().chain(grant).min())
    }

    // === row conversions ===

    fn connection_row(&self, conn: &Connection, with_env: bool) -> Result<connection::ActiveModel> {
        let mut row = connection::ActiveModel {
            name: Set(conn.name.clone()),
            kind: Set(conn.kind.clone()),
            command: Set(to_json(&conn.command)?),
            reviewers: Set(to_json(&conn.reviewers)?),
            redact_types: Set(to_json(&conn.redact_types)?),
            access_exec: Set(conn.access.exec),
            access_connect: Set(conn.access.connect),
            access_runbooks: Set(conn.access.runbooks),
            tags: Set(to_json(&conn.tags)?),
            session_timeout_ms: Set(conn.session_timeout.map(millis)),
            min_approvals: Set(conn.min_approvals.map(count_to_db)),
            review_ttl_ms: Set(conn.review_ttl.map(millis)),
            access_max_duration_ms: Set(conn.access_max_duration.map(millis)),
            ..Default::default()
        };
        if with_env {
            let keys: Vec<&String> = conn.env.keys().collect();
            let plaintext = serde_json::to_vec(&conn.env)
                .map_err(|e| StoreError::Corrupt(format!("env: {e}")))?;
            row.env_keys = Set(to_json(&keys)?);
            row.env_encrypted = Set(self.secrets.seal(&env_context(&conn.name), &plaintext)?);
        }
        Ok(row)
    }

    fn connection_from(&self, row: connection::Model, with_secrets: bool) -> Result<Connection> {
        let env = if with_secrets {
            let plaintext = self
                .secrets
                .open(&env_context(&row.name), &row.env_encrypted)?;
            serde_json::from_slice(&plaintext)
                .map_err(|e| StoreError::Corrupt(format!("env: {e}")))?
        } else {
            let keys: Vec<String> = from_json(row.env_keys, "env_keys")?;
            keys.into_iter().map(|k| (k, String::new())).collect()
        };
        Ok(Connection {
            name: row.name,
            kind: row.kind,
            command: from_json(row.command, "command")?,
            env,
            reviewers: from_json(row.reviewers, "reviewers")?,
            redact_types: from_json(row.redact_types, "redact_types")?,
            access: AccessModes {
                exec: row.access_exec,
                connect: row.access_connect,
                runbooks: row.access_runbooks,
            },
            tags: from_json(row.tags, "tags")?,
            session_timeout: row.session_timeout_ms.and_then(duration_from_db),
            min_approvals: row.min_approvals.and_then(count_from_db),
            review_ttl: row.review_ttl_ms.and_then(duration_from_db),
            access_max_duration: row.access_max_duration_ms.and_then(duration_from_db),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn env_context(conn: &str) -> String {
    format!("connection:{conn}:env")
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

async fn replace_groups(
    db: &impl ConnectionTrait,
    user_name: &str,
    groups: &[String],
) -> Result<()> {
    user_group::Entity::delete_many()
        .filter(user_group::Column::UserName.eq(user_name))
        .exec(db)
        .await?;
    let mut groups: Vec<&String> = groups.iter().collect();
    groups.sort();
    groups.dedup();
    if groups.is_empty() {
        return Ok(());
    }
    user_group::Entity::insert_many(groups.into_iter().map(|g| user_group::ActiveModel {
        user_name: Set(user_name.to_owned()),
        group_name: Set(g.clone()),
    }))
    .exec(db)
    .await?;
    Ok(())
}

async fn groups_of(
    db: &impl ConnectionTrait,
    names: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let rows = user_group::Entity::find()
        .filter(user_group::Column::UserName.is_in(names.iter().cloned()))
        .order_by_asc(user_group::Column::UserName)
        .order_by_asc(user_group::Column::GroupName)
        .all(db)
        .await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        out.entry(row.user_name).or_default().push(row.group_name);
    }
    Ok(out)
}

fn user_from(row: user::Model, groups: &mut BTreeMap<String, Vec<String>>) -> User {
    User {
        groups: groups.remove(&row.name).unwrap_or_default(),
        name: row.name,
        email: row.email,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn session_from(row: session::Model) -> Result<SessionRecord> {
    Ok(SessionRecord {
        metrics: from_json(row.metrics, "metrics")?,
        attributes: from_json(row.attributes, "attributes")?,
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
    })
}

/// A random (version 4) UUID, as text.
fn new_uuid() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `at` + `d`, saturating at the latest representable time.
fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The condition "the review's `groups` include one of `groups`" (a JSON array, read with
/// each backend's JSON functions).
fn groups_overlap(backend: Backend, groups: &[String]) -> SimpleExpr {
    // sea-query's placeholders in custom SQL: `?` on SQLite, `$1`, `$2`… on PostgreSQL.
    let sql = match backend {
        Backend::Sqlite => format!(
            r#"EXISTS (SELECT 1 FROM json_each("reviews"."groups") WHERE json_each.value IN ({}))"#,
            vec!["?"; groups.len()].join(", ")
        ),
        Backend::Postgres => format!(
            r#"EXISTS (SELECT 1 FROM json_array_elements_text("reviews"."groups") AS g(name) WHERE g.name IN ({}))"#,
            (1..=groups.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Expr::cust_with_values(sql, groups.iter().cloned())
}

/// The conflict of a review whose status is `status` rather than one of `expected`.
fn not_in(id: &str, status: &str, expected: &[ReviewStatus]) -> StoreError {
    let expected = match expected {
        [] => "in a status allowing this".to_owned(),
        [one] => one.as_str().to_owned(),
        [init @ .., last] => format!(
            "{} or {}",
            init.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_str()
        ),
    };
    StoreError::Conflict(format!("review `{id}` is {status}, not {expected}"))
}

fn already_decided(id: &str, reviewer: &str) -> StoreError {
    StoreError::Conflict(format!("{reviewer} already decided review `{id}`"))
}

/// The review with this id and its decisions.
async fn load_review(db: &impl ConnectionTrait, id: &str) -> Result<Review> {
    let row = review::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::not_found("review", id))?;
    let mut reviews = with_decisions(db, vec![row]).await?;
    reviews
        .pop()
        .ok_or_else(|| StoreError::not_found("review", id))
}

/// `rows` as reviews, in the same order, each with its decisions (oldest first).
async fn with_decisions(
    db: &impl ConnectionTrait,
    rows: Vec<review::Model>,
) -> Result<Vec<Review>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let decisions = review_decision::Entity::find()
        .filter(review_decision::Column::ReviewId.is_in(ids))
        .order_by_asc(review_decision::Column::DecidedAt)
        .order_by_asc(review_decision::Column::Id)
        .all(db)
        .await?;
    let mut by_review: BTreeMap<String, Vec<ReviewDecision>> = BTreeMap::new();
    for d in decisions {
        by_review
            .entry(d.review_id)
            .or_default()
            .push(ReviewDecision {
                reviewer: d.reviewer,
                group: d.group_name,
                approved: d.approved,
                reason: d.reason,
                decided_at: d.decided_at,
            });
    }
    rows.into_iter()
        .map(|row| {
            let decisions = by_review.remove(&row.id).unwrap_or_default();
            review_from(row, decisions)
        })
        .collect()
}

fn review_from(row: review::Model, decisions: Vec<ReviewDecision>) -> Result<Review> {
    Ok(Review {
        kind: row
            .kind
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("review `{}`: {e}", row.id)))?,
        status: row
            .status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("review `{}`: {e}", row.id)))?,
        args: from_json(row.args, "args")?,
        groups: from_json(row.groups, "groups")?,
        min_approvals: row.min_approvals.and_then(count_from_db),
        access_duration: row.access_duration_ms.and_then(duration_from_db),
        id: row.id,
        connection: row.connection,
        requester: row.requester,
        verb: row.verb,
        input: row.input,
        input_sha256: row.input_sha256,
        reason: row.reason,
        created_at: row.created_at,
        updated_at: row.updated_at,
        expires_at: row.expires_at,
        decided_at: row.decided_at,
        grant_ends_at: row.grant_ends_at,
        session_id: row.session_id,
        decisions,
    })
}

fn api_key_from(row: api_key::Model) -> ApiKey {
    ApiKey {
        id: row.id,
        user: row.user_name,
        description: row.description,
        prefix: row.prefix,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

async fn insert_attachment(
    db: &impl ConnectionTrait,
    conn: &str,
    attachment: &Attachment,
) -> Result<()> {
    let now = Utc::now();
    plugin_attachment::ActiveModel {
        connection_name: Set(conn.to_owned()),
        plugin: Set(attachment.plugin.clone()),
        config: Set(attachment.config.clone()),
        enabled: Set(attachment.enabled),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|e| {
        StoreError::from_insert(
            e,
            "plugin attachment",
            &format!("{conn}/{}", attachment.plugin),
        )
    })?;
    Ok(())
}

async fn upsert_attachment(
    db: &impl ConnectionTrait,
    conn: &str,
    attachment: &Attachment,
) -> Result<()> {
    let now = Utc::now();
    plugin_attachment::Entity::insert(plugin_attachment::ActiveModel {
        connection_name: Set(conn.to_owned()),
        plugin: Set(attachment.plugin.clone()),
        config: Set(attachment.config.clone()),
        enabled: Set(attachment.enabled),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            plugin_attachment::Column::ConnectionName,
            plugin_attachment::Column::Plugin,
        ])
        .update_columns([
            plugin_attachment::Column::Config,
            plugin_attachment::Column::Enabled,
            plugin_attachment::Column::UpdatedAt,
        ])
        .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

/// Bumps a connection's update time; fails with NotFound if it does not exist.
/// Bumps a connection's `updated_at` as the first statement of a transaction: a write, so it
/// takes SQLite's write lock at once (a read first would make concurrent writers fail with
/// "database is locked" instead of waiting) and PostgreSQL's row lock.
async fn touch_connection(db: &impl ConnectionTrait, conn: &str) -> Result<()> {
    let touched = connection::Entity::update_many()
        .col_expr(connection::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(connection::Column::Name.eq(conn))
        .exec(db)
        .await?;
    if touched.rows_affected == 0 {
        return Err(StoreError::not_found("connection", conn));
    }
    Ok(())
}
