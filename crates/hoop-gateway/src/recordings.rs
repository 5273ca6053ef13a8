//! Recordings in the shared database (`recordings = "database"`), behind the audit plugin's
//! [`RecordingStore`] trait: the writer's bytes go to the database one chunk per write (the
//! writer flushes within 50 ms, so at most 100 ms are lost if the gateway dies, as with
//! files), and any gateway on the database reads any session's recording, verified against
//! the same hash chain.
//!
//! Another backend (an object store) is another implementation of the trait: `create`
//! returns a [`RecordingWriter`] over a [`RecordingSink`] that uploads what it is handed (in
//! parts, each durable before `write_all` returns, to keep the loss bound), and `open` a
//! [`RecordingReader`] over the object's bytes.

use std::io::Cursor;

use async_trait::async_trait;
use hoop_plugin_audit::recording::{
    RecordingError, RecordingReader, RecordingSink, RecordingStore, RecordingWriter, SessionId,
    WriterOptions,
};
use hoop_store::{Store, StoreError};

/// Recordings as rows of the database's `recordings` and `recording_chunks` tables.
#[derive(Debug, Clone)]
pub(crate) struct DbRecordingStore {
    store: Store,
    options: WriterOptions,
}

impl DbRecordingStore {
    pub(crate) fn new(store: Store) -> Self {
        Self {
            store,
            options: WriterOptions::default(),
        }
    }
}

fn io_error(err: StoreError) -> std::io::Error {
    std::io::Error::other(err.to_string())
}

#[async_trait]
impl RecordingStore for DbRecordingStore {
    async fn create(&self, session_id: &SessionId) -> Result<RecordingWriter, RecordingError> {
        match self.store.create_recording(session_id.as_str()).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists { .. }) => {
                return Err(RecordingError::AlreadyExists(session_id.to_string()));
            }
            Err(err) => return Err(RecordingError::Io(io_error(err))),
        }
        RecordingWriter::new(
            session_id.clone(),
            Box::new(DbSink {
                store: self.store.clone(),
                session_id: session_id.to_string(),
                next: 0,
            }),
            self.options.clone(),
        )
        .await
    }

    async fn open(&self, session_id: &SessionId) -> Result<RecordingReader, RecordingError> {
        match self.store.read_recording(session_id.as_str()).await {
            Ok(Some(bytes)) => Ok(RecordingReader::new(session_id.clone(), Cursor::new(bytes))),
            Ok(None) => Err(RecordingError::NotFound(session_id.to_string())),
            Err(err) => Err(RecordingError::Io(io_error(err))),
        }
    }
}

/// Writes each piece the recording writer hands over as the next chunk row: committed, so
/// durable, when `write_all` returns.
struct DbSink {
    store: Store,
    session_id: String,
    next: u64,
}

#[async_trait]
impl RecordingSink for DbSink {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.store
            .append_recording_chunk(&self.session_id, self.next, bytes)
            .await
            .map_err(io_error)?;
        self.next += 1;
        Ok(())
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        // Every chunk was committed as it was written.
        Ok(())
    }
}
