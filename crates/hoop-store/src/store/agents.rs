//! Agents: the processes that run sessions' programs, known by name and token hash.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{Result, Store};
use crate::entity::agent;
use crate::error::StoreError;
use crate::events::NewEvent;
use crate::model::Agent;

/// Event appended when an agent is created (`hoop_core::events::types::AGENT_CREATED`).
const AGENT_CREATED: &str = "agent.created";
/// Event appended when an agent is deleted (`hoop_core::events::types::AGENT_DELETED`).
const AGENT_DELETED: &str = "agent.deleted";

impl Store {
    /// Records a new agent, given the SHA-256 hash (hex) of its token.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the name is taken.
    pub async fn create_agent(&self, name: &str, token_hash: &str) -> Result<Agent> {
        let txn = self.begin_write().await?;
        if agent::Entity::find_by_id(name).one(&txn).await?.is_some() {
            return Err(StoreError::exists("agent", name));
        }
        let row = agent::ActiveModel {
            name: Set(name.to_owned()),
            token_hash: Set(token_hash.to_owned()),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "agent", name))?;
        let event = self.agent_event(AGENT_CREATED, name);
        self.commit_with_events(txn, vec![event]).await?;
        Ok(agent_from(row))
    }

    /// The agent whose token has this hash, if any.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn find_agent(&self, token_hash: &str) -> Result<Option<Agent>> {
        Ok(agent::Entity::find()
            .filter(agent::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await?
            .map(agent_from))
    }

    /// Every agent, by name.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        Ok(agent::Entity::find()
            .order_by_asc(agent::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(agent_from)
            .collect())
    }

    /// Deletes an agent: its token stops working.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such agent.
    pub async fn delete_agent(&self, name: &str) -> Result<()> {
        let txn = self.begin_write().await?;
        let deleted = agent::Entity::delete_by_id(name).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::not_found("agent", name));
        }
        let event = self.agent_event(AGENT_DELETED, name);
        self.commit_with_events(txn, vec![event]).await
    }

    fn agent_event(&self, kind: &str, name: &str) -> NewEvent {
        let mut event = NewEvent::new(kind, serde_json::json!({ "name": name }));
        event.user = self.actor().map(str::to_owned);
        event
    }
}

fn agent_from(row: agent::Model) -> Agent {
    Agent {
        name: row.name,
        created_at: row.created_at,
    }
}
