//! Where recordings live: the storage trait, a directory of files, and an in-memory store.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};

use super::error::RecordingError;
use super::format::{SessionId, file_header};
use super::reader::RecordingReader;
use super::writer::{RecordingSink, RecordingWriter, WriterOptions};

/// File name extension of recordings in a [`FsRecordingStore`].
pub const FILE_EXTENSION: &str = "hrec";

/// Storage of recordings, one per session. Object-safe: hold it as
/// `Arc<dyn RecordingStore>`. An object store implements it with a [`RecordingSink`] that
/// uploads (for example in parts) and a reader over the object's bytes.
#[async_trait]
pub trait RecordingStore: Send + Sync + std::fmt::Debug {
    /// Starts the recording of `session_id`.
    ///
    /// # Errors
    /// [`RecordingError::AlreadyExists`] if there is one already (it is left untouched);
    /// [`RecordingError::Io`] if the storage fails.
    async fn create(&self, session_id: &SessionId) -> Result<RecordingWriter, RecordingError>;

    /// Opens the recording of `session_id` for reading (or [`super::verify`]).
    ///
    /// # Errors
    /// [`RecordingError::NotFound`] if there is none; [`RecordingError::Io`] if the storage
    /// fails.
    async fn open(&self, session_id: &SessionId) -> Result<RecordingReader, RecordingError>;
}

/// Recordings as append-only files `<dir>/<session_id>.hrec`; the directory is created when
/// missing. Session ids cannot contain `/` or `.` (see [`SessionId`]), so every path stays in
/// the directory.
#[derive(Debug, Clone)]
pub struct FsRecordingStore {
    dir: PathBuf,
    options: WriterOptions,
}

impl FsRecordingStore {
    /// A store in `dir`, with default writer options.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_options(dir, WriterOptions::default())
    }

    /// A store in `dir` whose writers use `options`.
    pub fn with_options(dir: impl Into<PathBuf>, options: WriterOptions) -> Self {
        Self {
            dir: dir.into(),
            options,
        }
    }

    /// The directory of the recordings.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `session_id`'s recording.
    pub fn path_for(&self, session_id: &SessionId) -> PathBuf {
        self.dir
            .join(format!("{}.{FILE_EXTENSION}", session_id.as_str()))
    }
}

#[async_trait]
impl RecordingStore for FsRecordingStore {
    async fn create(&self, session_id: &SessionId) -> Result<RecordingWriter, RecordingError> {
        // Recordings hold what users typed and saw: readable by the gateway's user only.
        // The directory, the file and its header in one trip to the blocking pool: a
        // session's start waits for it.
        let dir = self.dir.clone();
        let path = self.path_for(session_id);
        let header = file_header(session_id);
        let opened = tokio::task::spawn_blocking(move || {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            let written = (&file).write_all(&header);
            Ok::<_, std::io::Error>((file, written))
        })
        .await
        .map_err(blocking_gone)?;
        let (file, header_written) = opened.map_err(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => {
                RecordingError::AlreadyExists(session_id.to_string())
            }
            _ => RecordingError::Io(err),
        })?;
        // The file exists from here on: a failed header is an I/O error, never "already
        // exists".
        header_written?;
        RecordingWriter::with_header_written(
            session_id.clone(),
            Box::new(FileSink::new(file)),
            self.options.clone(),
        )
    }

    async fn open(&self, session_id: &SessionId) -> Result<RecordingReader, RecordingError> {
        let file = tokio::fs::File::open(self.path_for(session_id))
            .await
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => RecordingError::NotFound(session_id.to_string()),
                _ => RecordingError::Io(err),
            })?;
        Ok(RecordingReader::new(session_id.clone(), file))
    }
}

/// A file opened for appending. Each write (or sync) is one trip to tokio's blocking pool.
///
/// A record written through ([`RecordingSink::write_parts`]: a chunk of output too large for
/// the writer's buffer) is *in flight*: the call returns once the blocking pool has it, so
/// that the session hashes and sends its next chunk while the file takes this one. At most
/// one write is in flight, and every later call waits for it first (a failure of it is the
/// failure of that later call): bytes reach the file in order, and `write_all` and `sync`
/// return only once everything before them has returned from `write(2)`.
struct FileSink {
    file: Arc<std::fs::File>,
    in_flight: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl FileSink {
    fn new(file: std::fs::File) -> Self {
        Self {
            file: Arc::new(file),
            in_flight: None,
        }
    }

    /// Waits for the write in flight, if any.
    async fn settle(&mut self) -> std::io::Result<()> {
        match self.in_flight.take() {
            Some(write) => write.await.map_err(join_error)?,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl RecordingSink for FileSink {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.settle().await?;
        let file = Arc::clone(&self.file);
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || (&*file).write_all(&bytes))
            .await
            .map_err(join_error)?
    }

    async fn write_parts(&mut self, parts: &[Bytes]) -> std::io::Result<()> {
        self.settle().await?;
        let file = Arc::clone(&self.file);
        let parts = parts.to_vec();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            write_all_vectored(&file, &parts)
        }));
        Ok(())
    }

    async fn settle(&mut self) -> std::io::Result<()> {
        FileSink::settle(self).await
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        self.settle().await?;
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(join_error)?
    }
}

/// Writes all of `parts`, in order, with as few `writev(2)` calls as it takes.
fn write_all_vectored(file: &std::fs::File, parts: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut slices = slices.as_mut_slice();
    while !slices.is_empty() {
        match (&*file).write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// A blocking task that did not finish (the runtime is shutting down) as an I/O error.
fn join_error(err: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(format!("the blocking file task did not finish: {err}"))
}

fn blocking_gone(err: tokio::task::JoinError) -> RecordingError {
    RecordingError::Io(join_error(err))
}

type Recordings = Arc<Mutex<HashMap<SessionId, Arc<Mutex<Vec<u8>>>>>>;

/// Recordings in memory, for tests and embedding; a reader gets a copy of the recording as it
/// is when opened.
#[derive(Debug, Clone, Default)]
pub struct MemoryRecordingStore {
    recordings: Recordings,
    options: WriterOptions,
}

impl MemoryRecordingStore {
    /// An empty store with default writer options.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose writers use `options`.
    pub fn with_options(options: WriterOptions) -> Self {
        Self {
            recordings: Recordings::default(),
            options,
        }
    }

    /// A copy of the bytes of `session_id`'s recording, as handed to the store so far.
    pub fn bytes(&self, session_id: &SessionId) -> Option<Vec<u8>> {
        let recordings = self
            .recordings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recordings
            .get(session_id)
            .map(|bytes| bytes.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

#[async_trait]
impl RecordingStore for MemoryRecordingStore {
    async fn create(&self, session_id: &SessionId) -> Result<RecordingWriter, RecordingError> {
        let bytes = {
            let mut recordings = self
                .recordings
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if recordings.contains_key(session_id) {
                return Err(RecordingError::AlreadyExists(session_id.to_string()));
            }
            let bytes = Arc::new(Mutex::new(Vec::new()));
            recordings.insert(session_id.clone(), Arc::clone(&bytes));
            bytes
        };
        RecordingWriter::new(
            session_id.clone(),
            Box::new(MemorySink { bytes }),
            self.options.clone(),
        )
        .await
    }

    async fn open(&self, session_id: &SessionId) -> Result<RecordingReader, RecordingError> {
        let bytes = self
            .bytes(session_id)
            .ok_or_else(|| RecordingError::NotFound(session_id.to_string()))?;
        Ok(RecordingReader::new(session_id.clone(), Cursor::new(bytes)))
    }
}

/// Appends to a shared vector.
struct MemorySink {
    bytes: Arc<Mutex<Vec<u8>>>,
}

#[async_trait]
impl RecordingSink for MemorySink {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(())
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
