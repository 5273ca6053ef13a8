//! Session recordings kept in the database (`recordings = "database"`): the bytes a
//! recording writer hands over, one chunk per write, in order. Any gateway on the database
//! reads any session's recording.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{Result, Store};
use crate::entity::{recording, recording_chunk};
use crate::error::StoreError;

impl Store {
    /// Starts the recording of `session_id`.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if it has one; [`StoreError::Db`] if the database fails.
    pub async fn create_recording(&self, session_id: &str) -> Result<()> {
        recording::ActiveModel {
            session_id: Set(session_id.to_owned()),
            created_at: Set(Utc::now()),
        }
        .insert(self.db())
        .await
        .map_err(|e| StoreError::from_insert(e, "recording", session_id))?;
        Ok(())
    }

    /// Appends chunk number `seq` (from 0, one after the other) to the recording of
    /// `session_id`; it is durable once this returns.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if chunk `seq` was written already;
    /// [`StoreError::Db`] if the database fails.
    pub async fn append_recording_chunk(
        &self,
        session_id: &str,
        seq: u64,
        data: &[u8],
    ) -> Result<()> {
        let seq = i64::try_from(seq)
            .map_err(|_| StoreError::Invalid("recording chunk number out of range".to_owned()))?;
        recording_chunk::ActiveModel {
            session_id: Set(session_id.to_owned()),
            seq: Set(seq),
            data: Set(data.to_vec()),
        }
        .insert(self.db())
        .await
        .map_err(|e| StoreError::from_insert(e, "recording chunk", session_id))?;
        Ok(())
    }

    /// The bytes of the recording of `session_id`, its chunks in order; `None` if it has
    /// none.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn read_recording(&self, session_id: &str) -> Result<Option<Vec<u8>>> {
        if recording::Entity::find_by_id(session_id)
            .one(self.db())
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let chunks = recording_chunk::Entity::find()
            .filter(recording_chunk::Column::SessionId.eq(session_id))
            .order_by_asc(recording_chunk::Column::Seq)
            .all(self.db())
            .await?;
        let mut bytes = Vec::with_capacity(chunks.iter().map(|c| c.data.len()).sum());
        for chunk in chunks {
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(Some(bytes))
    }
}
