//! Appending events to a recording, with the bounded buffer and the flush deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;

use super::clock::{Clock, TokioClock};
use super::error::RecordingError;
use super::format::{
    Digest, Event, EventKind, MAX_RECORD_PAYLOAD, RECORD_OVERHEAD, SessionId, file_header,
    record_prefix,
};

/// Default capacity of a writer's buffer (64 KiB): it never holds more.
pub const DEFAULT_BUFFER_CAPACITY: usize = 64 * 1024;

/// A writer's buffer starts (and, once output slows down, goes back to) at most this size.
const KEPT_BUFFER: usize = 4 * 1024;

/// Default flush deadline (50 ms): buffered bytes are handed to the storage at most this long
/// after they were appended, leaving half of [`DURABILITY_BOUND`] for the write itself and
/// for scheduling delays.
pub const DEFAULT_FLUSH_AFTER: Duration = Duration::from_millis(50);

/// The promise made to callers: events appended are handed to the storage (for a file:
/// `write(2)` has returned, so they survive the process being killed) within 100 ms.
pub const DURABILITY_BOUND: Duration = Duration::from_millis(100);

/// Where a writer's bytes go: an append-only byte sink (a file, an object-store upload).
#[async_trait]
pub trait RecordingSink: Send {
    /// Appends `bytes`; returns once they are out of this process's hands, such that killing
    /// the process cannot lose them (for a file: `write(2)` has returned for all of them).
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()>;

    /// Makes everything written so far durable against a crash of the machine (`fsync`).
    async fn sync(&mut self) -> std::io::Result<()>;

    /// Appends `parts` one after the other, as [`write_all`](Self::write_all) of each in
    /// turn does (the default); a sink may take them in one go (a file: one trip to the
    /// blocking pool, one `writev(2)`, no copy).
    ///
    /// Unlike `write_all`, it may return while the write is still *in flight* (a file: the
    /// blocking pool has it): every later call of the sink then waits for it first and fails
    /// if it failed, and [`settle`](Self::settle) waits for it alone. The writer calls it for
    /// records larger than its buffer, so that a session streams on while its last chunk is
    /// written; a write in flight takes no longer than a buffered record may wait (see
    /// [`DURABILITY_BOUND`]).
    async fn write_parts(&mut self, parts: &[Bytes]) -> std::io::Result<()> {
        for part in parts {
            self.write_all(part).await?;
        }
        Ok(())
    }

    /// Waits until a write [`write_parts`](Self::write_parts) left in flight returned, and
    /// returns its error if it failed. Nothing to wait for by default.
    async fn settle(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Tuning of a [`RecordingWriter`].
#[derive(Debug, Clone)]
pub struct WriterOptions {
    buffer_capacity: usize,
    flush_after: Duration,
    clock: Arc<dyn Clock>,
}

impl WriterOptions {
    /// The defaults: a 64 KiB buffer, a 50 ms flush deadline, tokio's clock.
    pub fn new() -> Self {
        Self {
            buffer_capacity: DEFAULT_BUFFER_CAPACITY,
            flush_after: DEFAULT_FLUSH_AFTER,
            clock: Arc::new(TokioClock::new()),
        }
    }

    /// Sets the buffer capacity (at least 1 byte); records larger than it bypass the buffer.
    pub fn buffer_capacity(mut self, bytes: usize) -> Self {
        self.buffer_capacity = bytes.max(1);
        self
    }

    /// Sets the flush deadline. Keep it well under [`DURABILITY_BOUND`] to keep that promise.
    pub fn flush_after(mut self, deadline: Duration) -> Self {
        self.flush_after = deadline;
        self
    }

    /// Sets the clock the deadline is measured with (a [`super::ManualClock`] in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Buffer sizes, readable without the lock.
#[derive(Debug, Default)]
struct Counters {
    buffered: AtomicUsize,
    high_water: AtomicUsize,
}

/// What the writer and its background flusher share.
struct Shared {
    sink: Box<dyn RecordingSink>,
    /// Allocated as output comes (an idle session holds next to nothing), at most
    /// `capacity`; given back when a flush finds the session slow (see `release`).
    buf: Vec<u8>,
    /// The most `buf` holds.
    capacity: usize,
    /// When (on the writer's clock) the oldest byte in `buf` was appended.
    oldest: Option<Duration>,
    /// Set once a write failed; every later operation fails with it.
    failed: Option<String>,
    /// Total bytes handed to the sink.
    written: watch::Sender<u64>,
    counters: Arc<Counters>,
}

impl Shared {
    fn check(&self) -> Result<(), RecordingError> {
        match &self.failed {
            Some(message) => Err(RecordingError::Failed(message.clone())),
            None => Ok(()),
        }
    }

    /// Marks the writer failed; what is buffered will never be written.
    fn fail(&mut self, err: std::io::Error) -> RecordingError {
        self.failed = Some(err.to_string());
        self.buf.clear();
        self.oldest = None;
        self.counters.buffered.store(0, Ordering::Relaxed);
        RecordingError::Io(err)
    }

    /// Hands what is buffered, then a record too large for the buffer, to the sink in one
    /// go (the payload is not copied).
    async fn write_record_through(
        &mut self,
        prefix: &[u8],
        payload: Bytes,
        link: &[u8],
    ) -> Result<(), RecordingError> {
        self.check()?;
        let mut head = std::mem::take(&mut self.buf);
        head.extend_from_slice(prefix);
        let len = (head.len() + payload.len() + link.len()) as u64;
        let parts = [Bytes::from(head), payload, Bytes::copy_from_slice(link)];
        if let Err(err) = self.sink.write_parts(&parts).await {
            return Err(self.fail(err));
        }
        self.oldest = None;
        self.counters.buffered.store(0, Ordering::Relaxed);
        self.written.send_modify(|n| *n += len);
        Ok(())
    }

    /// Gives the buffer's memory back, unless it is small: after a flush on the deadline,
    /// i.e. a session whose output comes slowly (a streaming one fills the buffer and keeps
    /// it).
    fn release(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > KEPT_BUFFER {
            self.buf = Vec::new();
        }
    }

    /// Hands the buffer to the sink.
    async fn flush(&mut self) -> Result<(), RecordingError> {
        self.check()?;
        if self.buf.is_empty() {
            self.oldest = None;
            // Nothing buffered, but a record written through may be in flight.
            if let Err(err) = self.sink.settle().await {
                return Err(self.fail(err));
            }
            return Ok(());
        }
        if let Err(err) = self.sink.write_all(&self.buf).await {
            return Err(self.fail(err));
        }
        let len = self.buf.len() as u64;
        self.buf.clear();
        self.oldest = None;
        self.counters.buffered.store(0, Ordering::Relaxed);
        self.written.send_modify(|n| *n += len);
        Ok(())
    }

    fn buffer(&mut self, bytes: &[u8]) {
        let need = self.buf.len() + bytes.len();
        if need > self.buf.capacity() {
            // Doubling, but never past the capacity (unless one record needs it).
            let target = need
                .max(self.buf.capacity() * 2)
                .max(KEPT_BUFFER)
                .min(self.capacity.max(need));
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
        let len = self.buf.len();
        self.counters.buffered.store(len, Ordering::Relaxed);
        self.counters.high_water.fetch_max(len, Ordering::Relaxed);
    }
}

/// Appends the events of one session to its recording.
///
/// Create it with [`RecordingWriter::new`] (or a [`super::RecordingStore`]), append the header
/// event, then the session's events, then (usually) a close event, and call
/// [`RecordingWriter::finish`] for the final digest. Bytes reach the storage within
/// [`DEFAULT_FLUSH_AFTER`] of being appended without any help from the caller (see the module
/// docs); dropping the writer without `finish` still hands what is buffered to the storage,
/// but does not `fsync`.
pub struct RecordingWriter {
    session_id: SessionId,
    shared: Arc<Mutex<Shared>>,
    counters: Arc<Counters>,
    clock: Arc<dyn Clock>,
    capacity: usize,
    flush_after: Duration,
    /// Closing it (by dropping the writer) tells the flusher to flush and stop.
    wake: mpsc::Sender<()>,
    flusher: JoinHandle<()>,
    written: watch::Receiver<u64>,
    link: Digest,
    events: u64,
    last_offset: u64,
    closed: bool,
}

impl std::fmt::Debug for RecordingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingWriter")
            .field("session_id", &self.session_id)
            .field("events", &self.events)
            .field("digest", &self.link)
            .field("buffered", &self.buffered_len())
            .finish_non_exhaustive()
    }
}

impl RecordingWriter {
    /// Starts the recording of `session_id` in `sink`: writes the file header straight to it
    /// and starts the background flusher.
    ///
    /// # Errors
    /// [`RecordingError::NoRuntime`] outside a tokio runtime; [`RecordingError::Io`] if the
    /// file header cannot be written.
    pub async fn new(
        session_id: SessionId,
        mut sink: Box<dyn RecordingSink>,
        options: WriterOptions,
    ) -> Result<Self, RecordingError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RecordingError::NoRuntime)?;
        let header = file_header(&session_id);
        sink.write_all(&header).await?;
        Self::started(runtime, session_id, sink, options, header.len() as u64)
    }

    /// A writer on `sink` that already holds the file header of `session_id` (written by
    /// the store with the file's creation: one trip to the blocking pool instead of two).
    ///
    /// # Errors
    /// [`RecordingError::NoRuntime`] outside a tokio runtime.
    pub(crate) fn with_header_written(
        session_id: SessionId,
        sink: Box<dyn RecordingSink>,
        options: WriterOptions,
    ) -> Result<Self, RecordingError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RecordingError::NoRuntime)?;
        let header_len = file_header(&session_id).len() as u64;
        Self::started(runtime, session_id, sink, options, header_len)
    }

    fn started(
        runtime: tokio::runtime::Handle,
        session_id: SessionId,
        sink: Box<dyn RecordingSink>,
        options: WriterOptions,
        header_len: u64,
    ) -> Result<Self, RecordingError> {
        let (written_tx, written) = watch::channel(header_len);
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Mutex::new(Shared {
            sink,
            buf: Vec::new(),
            capacity: options.buffer_capacity,
            oldest: None,
            failed: None,
            written: written_tx,
            counters: Arc::clone(&counters),
        }));
        let (wake, wake_rx) = mpsc::channel(1);
        let flusher = runtime.spawn(run_flusher(
            Arc::clone(&shared),
            wake_rx,
            Arc::clone(&options.clock),
            options.flush_after,
        ));
        Ok(Self {
            link: Digest::genesis(&session_id),
            session_id,
            shared,
            counters,
            clock: options.clock,
            capacity: options.buffer_capacity,
            flush_after: options.flush_after,
            wake,
            flusher,
            written,
            events: 0,
            last_offset: 0,
            closed: false,
        })
    }

    /// The session being recorded.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// Appends `event`: as one record, or as several of at most [`MAX_RECORD_PAYLOAD`] bytes
    /// each when its payload is larger. Small records are buffered (and handed to the storage
    /// within the flush deadline); records larger than the buffer go straight to the storage.
    ///
    /// # Errors
    /// [`RecordingError::InvalidEvent`] if the event breaks the structure of a recording (the
    /// writer is unchanged); [`RecordingError::Io`] / [`RecordingError::Failed`] if writing
    /// failed now or before (the writer is then unusable).
    pub async fn append(&mut self, event: Event) -> Result<(), RecordingError> {
        self.check_structure(&event)?;
        let mut shared = self.shared.lock().await;
        shared.check()?;
        let now = self.clock.now();
        let payload = event.payload.as_ref();
        let mut chunks = payload.chunks(MAX_RECORD_PAYLOAD);
        let mut next = if payload.is_empty() {
            Some(payload)
        } else {
            chunks.next()
        };
        while let Some(chunk) = next {
            let link = self.link.chain(event.kind, event.offset_ns, chunk);
            let prefix = record_prefix(event.kind, event.offset_ns, chunk.len());
            let record_len = RECORD_OVERHEAD + chunk.len();
            if record_len > self.capacity {
                shared
                    .write_record_through(&prefix, event.payload.slice_ref(chunk), link.as_bytes())
                    .await?;
            } else {
                if shared.buf.len() + record_len > self.capacity {
                    shared.flush().await?;
                }
                shared.buffer(&prefix);
                shared.buffer(chunk);
                shared.buffer(link.as_bytes());
                if shared.oldest.is_none() {
                    shared.oldest = Some(now);
                    // Full means a wake-up is already pending.
                    let _ = self.wake.try_send(());
                }
            }
            self.link = link;
            self.events += 1;
            next = chunks.next();
        }
        self.last_offset = event.offset_ns;
        self.closed = event.kind == EventKind::Close;
        // The flusher should have done it by now; do not rely on it being scheduled.
        if let Some(oldest) = shared.oldest
            && now.saturating_sub(oldest) >= self.flush_after
        {
            shared.flush().await?;
        }
        Ok(())
    }

    fn check_structure(&self, event: &Event) -> Result<(), RecordingError> {
        let invalid = |why: &str| Err(RecordingError::InvalidEvent(why.to_owned()));
        if self.closed {
            return invalid("the recording is closed: nothing may follow the close event");
        }
        match (self.events, event.kind) {
            (0, EventKind::Header) => {}
            (0, _) => return invalid("the first event must be the header"),
            (_, EventKind::Header) => return invalid("only the first event may be a header"),
            _ => {}
        }
        if event.offset_ns < self.last_offset {
            return invalid("the time offset goes backwards");
        }
        if matches!(event.kind, EventKind::Header | EventKind::Close)
            && event.payload.len() > MAX_RECORD_PAYLOAD
        {
            return invalid("header and close payloads must fit in one record (1 MiB)");
        }
        Ok(())
    }

    /// Hands everything buffered to the storage now.
    ///
    /// # Errors
    /// [`RecordingError::Io`] / [`RecordingError::Failed`] if writing fails or failed before.
    pub async fn flush(&mut self) -> Result<(), RecordingError> {
        self.shared.lock().await.flush().await
    }

    /// Hands everything buffered to the storage and makes it durable (`fsync`).
    ///
    /// # Errors
    /// [`RecordingError::Io`] / [`RecordingError::Failed`] if writing fails or failed before.
    pub async fn sync(&mut self) -> Result<(), RecordingError> {
        let mut shared = self.shared.lock().await;
        shared.flush().await?;
        if let Err(err) = shared.sink.sync().await {
            return Err(shared.fail(err));
        }
        Ok(())
    }

    /// Ends the recording: flushes, `fsync`s, stops the flusher and returns the final digest
    /// (the last link of the chain), to be stored with the session.
    ///
    /// # Errors
    /// [`RecordingError::Io`] / [`RecordingError::Failed`] if writing fails or failed before.
    pub async fn finish(mut self) -> Result<Digest, RecordingError> {
        self.sync().await?;
        let Self {
            wake,
            flusher,
            link,
            ..
        } = self;
        drop(wake);
        // The flusher only has an empty buffer left to flush; a join error (it panicked or
        // was cancelled) cannot lose data that `sync` already wrote.
        let _ = flusher.await;
        Ok(link)
    }

    /// Ends the recording like [`finish`](Self::finish), but returns once everything has
    /// reached the storage (for a file: `write(2)` returned, so it survives a crash of this
    /// process) and leaves the `fsync` that makes it survive a power cut to a background
    /// task: a session's end is not held up by the disk. Returns the final digest.
    ///
    /// Must be called within a tokio runtime (it always is: the writer needs one).
    ///
    /// # Errors
    /// [`RecordingError::Io`] / [`RecordingError::Failed`] if writing fails or failed before.
    pub async fn seal(mut self) -> Result<Digest, RecordingError> {
        self.flush().await?;
        let Self {
            session_id,
            shared,
            wake,
            flusher,
            link,
            ..
        } = self;
        drop(wake);
        tokio::spawn(async move {
            // The flusher has only an empty buffer left to flush.
            let _ = flusher.await;
            let mut shared = shared.lock().await;
            if let Err(err) = shared.sink.sync().await {
                tracing::warn!(session = %session_id, error = %err, "cannot fsync a finished recording");
            }
        });
        Ok(link)
    }

    /// The chain's current last link: the final digest if no more events are appended.
    pub fn digest(&self) -> Digest {
        self.link
    }

    /// Records appended so far (an event split into several records counts for each).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Bytes currently buffered (never more than [`RecordingWriter::buffer_capacity`]).
    pub fn buffered_len(&self) -> usize {
        self.counters.buffered.load(Ordering::Relaxed)
    }

    /// The most bytes the buffer ever held.
    pub fn buffer_high_water(&self) -> usize {
        self.counters.high_water.load(Ordering::Relaxed)
    }

    /// The buffer's capacity.
    pub fn buffer_capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes handed to the storage so far, file header included.
    pub fn written_len(&self) -> u64 {
        *self.written.borrow()
    }

    /// A watch of [`RecordingWriter::written_len`]: changes whenever bytes reach the storage,
    /// including from the background flusher.
    pub fn subscribe_written(&self) -> watch::Receiver<u64> {
        self.written.clone()
    }
}

/// The background flusher: hands the buffer to the sink once its oldest byte is
/// `flush_after` old; when the writer goes away, flushes what is left and stops.
async fn run_flusher(
    shared: Arc<Mutex<Shared>>,
    mut wake: mpsc::Receiver<()>,
    clock: Arc<dyn Clock>,
    flush_after: Duration,
) {
    loop {
        let deadline = shared.lock().await.oldest.map(|t| t + flush_after);
        let writer_alive = match deadline {
            None => wake.recv().await.is_some(),
            Some(deadline) => {
                tokio::select! {
                    () = clock.sleep_until(deadline) => {
                        let mut shared = shared.lock().await;
                        if let Some(oldest) = shared.oldest
                            && clock.now().saturating_sub(oldest) >= flush_after
                        {
                            // A failure is kept in `shared` and reported by the next call.
                            let _ = shared.flush().await;
                            shared.release();
                        }
                        true
                    }
                    woken = wake.recv() => woken.is_some(),
                }
            }
        };
        if !writer_alive {
            break;
        }
    }
    let _ = shared.lock().await.flush().await;
}
