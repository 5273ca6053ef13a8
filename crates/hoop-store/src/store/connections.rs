//! Connections and the plugins attached to them.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::{
    Result, Store, count_from_db, count_to_db, duration_from_db, from_json, millis, to_json,
};
use crate::entity::{connection, plugin_attachment};
use crate::error::StoreError;
use crate::events::NewEvent;
use crate::model::{AccessModes, Attachment, Connection, LOCAL_AGENT};

impl Store {
    /// Creates a connection with its plugin attachments, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the name is taken.
    pub async fn create_connection(
        &self,
        conn: &Connection,
        attachments: &[Attachment],
    ) -> Result<Connection> {
        let txn = self.begin_write().await?;
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
        let txn = self.begin_write().await?;
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
        let txn = self.begin_write().await?;
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

    /// Whether `plugin` is attached to any connection.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn plugin_attached_anywhere(&self, plugin: &str) -> Result<bool> {
        Ok(plugin_attachment::Entity::find()
            .filter(plugin_attachment::Column::Plugin.eq(plugin))
            .one(&self.db)
            .await?
            .is_some())
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

    /// The attachments of every connection that has plugin `plugin` attached, keyed by
    /// connection name: two indexed reads, however many connections exist without it.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn attachments_where_attached(
        &self,
        plugin: &str,
    ) -> Result<BTreeMap<String, Vec<Attachment>>> {
        let names: Vec<String> = plugin_attachment::Entity::find()
            .filter(plugin_attachment::Column::Plugin.eq(plugin))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| row.connection_name)
            .collect();
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.attachments_of(&names).await
    }

    /// Attaches a plugin to a connection.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such connection,
    /// [`StoreError::AlreadyExists`] if the plugin is already attached.
    pub async fn attach(&self, conn: &str, attachment: &Attachment) -> Result<()> {
        let txn = self.begin_write().await?;
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
        let txn = self.begin_write().await?;
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
        let txn = self.begin_write().await?;
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

    /// An event about connection `name`, by the acting user.
    fn connection_event(&self, kind: &str, name: &str, data: serde_json::Value) -> NewEvent {
        let mut event = NewEvent::new(kind, data).connection(name);
        event.user = self.actor.as_deref().map(str::to_owned);
        event
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
            allow_args: Set(conn.allow_args),
            agent: Set(if conn.agent.is_empty() {
                LOCAL_AGENT.to_owned()
            } else {
                conn.agent.clone()
            }),
            mask_columns: Set(to_json(&conn.mask_columns)?),
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
            allow_args: row.allow_args,
            agent: if row.agent.is_empty() {
                LOCAL_AGENT.to_owned()
            } else {
                row.agent
            },
            mask_columns: from_json(row.mask_columns, "mask_columns")?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn env_context(conn: &str) -> String {
    format!("connection:{conn}:env")
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
