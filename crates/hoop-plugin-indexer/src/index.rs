//! The index: its schema, opening it, and turning a session and its recording into a
//! document.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hoop_core::Stream;
use hoop_core::ports::{PortError, RecordedChunks, RecordingReader, SessionSummary};
use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    FAST, Field, INDEXED, NumericOptions, STORED, STRING, Schema, TEXT, TantivyDocument, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};

use crate::error::IndexerError;

/// Memory the writer may use before it writes a segment out.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

/// The fields of a session's document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) id: Field,
    pub(crate) user: Field,
    pub(crate) connection: Field,
    pub(crate) verb: Field,
    pub(crate) status: Field,
    pub(crate) exit_code: Field,
    /// Start time, milliseconds since the Unix epoch.
    pub(crate) started: Field,
    /// Milliseconds.
    pub(crate) duration: Field,
    pub(crate) bytes_in: Field,
    pub(crate) bytes_out: Field,
    pub(crate) truncated: Field,
    pub(crate) input: Field,
    pub(crate) output: Field,
}

/// Name of the start-time fast field (newest-first order sorts on it).
pub(crate) const STARTED: &str = "started";

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let keyword = STRING | STORED | FAST;
    let number = NumericOptions::default()
        .set_indexed()
        .set_fast()
        .set_stored();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        user: b.add_text_field("user", keyword.clone()),
        connection: b.add_text_field("connection", keyword.clone()),
        verb: b.add_text_field("verb", keyword.clone()),
        status: b.add_text_field("status", keyword),
        exit_code: b.add_i64_field("exit_code", number.clone()),
        started: b.add_i64_field(STARTED, number.clone()),
        duration: b.add_i64_field("duration_ms", number.clone()),
        bytes_in: b.add_i64_field("bytes_in", number.clone()),
        bytes_out: b.add_i64_field("bytes_out", number),
        truncated: b.add_bool_field("truncated", INDEXED | STORED),
        input: b.add_text_field("input", TEXT | STORED),
        output: b.add_text_field("output", TEXT | STORED),
    };
    (b.build(), fields)
}

/// The exit code stored for a session that ended without one.
pub(crate) const NO_EXIT: i64 = i64::MIN;

/// The session search index, on disk: one document per session.
pub struct SearchIndex {
    pub(crate) index: Index,
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    dir: String,
    writer: Mutex<Option<IndexWriter>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A session's document, ready to be added (see [`SearchIndex::add`]).
#[derive(Debug)]
pub struct IndexedSession {
    id: String,
    doc: TantivyDocument,
}

impl IndexedSession {
    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Leaves out terminal control sequences (colours, cursor moves, titles), which are not
/// words anyone searches for and would split the words around them.
fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameters and intermediates, then one final byte @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    chars.next();
                    // OSC: up to BEL or ESC \.
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {
                    chars.next();
                }
            },
            '\r' => out.push('\n'),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// At most `max` bytes of `bytes` as text (cut at a character boundary), and whether it was
/// cut.
fn bounded_text(bytes: &[u8], max: usize) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    let text = strip_controls(&text);
    if text.len() <= max {
        return (text, false);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    (text[..cut].to_owned(), true)
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory and an empty index if need be.
    ///
    /// # Errors
    /// [`IndexerError`] when the directory cannot be made or holds something else.
    pub fn open(dir: &Path) -> Result<Self, IndexerError> {
        std::fs::create_dir_all(dir).map_err(|source| IndexerError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).map_err(|e| IndexerError::Io {
            path: dir.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let index = Index::open_or_create(directory, schema)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            fields,
            dir: dir.display().to_string(),
            writer: Mutex::new(None),
        })
    }

    /// Runs `f` with the index's writer, taking it (and the index's lock) on first use.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut IndexWriter) -> Result<T, IndexerError>,
    ) -> Result<T, IndexerError> {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let writer = self
                .index
                .writer_with_num_threads(1, WRITER_MEMORY)
                .map_err(|e| match e {
                    tantivy::TantivyError::LockFailure(..) => IndexerError::Busy(self.dir.clone()),
                    other => IndexerError::Index(other),
                })?;
            *guard = Some(writer);
        }
        match guard.as_mut() {
            Some(writer) => f(writer),
            None => Err(IndexerError::Busy(self.dir.clone())),
        }
    }

    /// Takes the index's writer lock now (it is otherwise taken on the first write).
    ///
    /// # Errors
    /// [`IndexerError::Busy`] when another process writes the index.
    pub fn lock_for_writing(&self) -> Result<(), IndexerError> {
        self.with_writer(|_| Ok(()))
    }

    /// The document of `session` with what `chunks` recorded: input (stdin) and output
    /// (stdout and stderr) as text, each cut at `max_text` bytes.
    pub fn document(
        &self,
        session: &SessionSummary,
        chunks: &RecordedChunks,
        max_text: usize,
    ) -> IndexedSession {
        let (mut input, mut output) = (Vec::new(), Vec::new());
        for chunk in &chunks.chunks {
            match chunk.stream {
                Stream::Stdin => input.extend_from_slice(&chunk.data),
                Stream::Stdout | Stream::Stderr => output.extend_from_slice(&chunk.data),
            }
        }
        let (input, cut_in) = bounded_text(&input, max_text);
        let (output, cut_out) = bounded_text(&output, max_text);
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &session.id);
        doc.add_text(f.user, &session.user);
        doc.add_text(f.connection, &session.connection);
        doc.add_text(f.verb, &session.verb);
        doc.add_text(f.status, &session.status);
        doc.add_i64(f.exit_code, session.exit_code.map_or(NO_EXIT, i64::from));
        doc.add_i64(f.started, millis(session.started_at));
        doc.add_i64(
            f.duration,
            i64::try_from(session.duration().as_millis()).unwrap_or(i64::MAX),
        );
        doc.add_i64(f.bytes_in, session.bytes_in);
        doc.add_i64(f.bytes_out, session.bytes_out);
        doc.add_bool(f.truncated, cut_in || cut_out || !chunks.complete);
        doc.add_text(f.input, &input);
        doc.add_text(f.output, &output);
        IndexedSession {
            id: session.id.clone(),
            doc,
        }
    }

    /// Adds (or replaces) a session's document; searchable after the next
    /// [`commit`](Self::commit).
    ///
    /// # Errors
    /// [`IndexerError`] when the index cannot be written.
    pub fn add(&self, session: IndexedSession) -> Result<(), IndexerError> {
        let id_field = self.fields.id;
        self.with_writer(|writer| {
            // Whatever the index held for the session goes: a session is never there twice.
            writer.delete_term(Term::from_field_text(id_field, &session.id));
            writer.add_document(session.doc)?;
            Ok(())
        })
    }

    /// Removes every document (the next [`commit`](Self::commit) makes it so).
    ///
    /// # Errors
    /// [`IndexerError`] when the index cannot be written.
    pub fn clear(&self) -> Result<(), IndexerError> {
        self.with_writer(|writer| {
            writer.delete_all_documents()?;
            Ok(())
        })
    }

    /// Makes what was added since the last commit durable and searchable. Blocks: call it
    /// off the async threads.
    ///
    /// # Errors
    /// [`IndexerError`] when the index cannot be written.
    pub fn commit(&self) -> Result<(), IndexerError> {
        self.with_writer(|writer| {
            writer.commit()?;
            Ok(())
        })?;
        self.reader.reload()?;
        Ok(())
    }

    /// Sessions in the index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `session`'s recording through `recordings` and makes its document.
    ///
    /// `Ok(None)` when there is nothing to index (no recording).
    ///
    /// # Errors
    /// [`PortError`] when the recording cannot be read now, or does not verify.
    pub async fn read_session(
        &self,
        session: &SessionSummary,
        recordings: &dyn RecordingReader,
        max_text: usize,
    ) -> Result<Option<IndexedSession>, PortError> {
        // Input and output each up to `max_text`: read twice that, so that either can fill
        // its share when the other is short.
        match recordings
            .read(&session.id, max_text.saturating_mul(2))
            .await
        {
            Ok(chunks) => Ok(Some(self.document(session, &chunks, max_text))),
            Err(PortError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The id stored in a document.
    pub(crate) fn doc_text(&self, doc: &TantivyDocument, field: Field) -> String {
        doc.get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }
}

/// Rebuilds the index from scratch: every session of `sessions` whose recording reads is
/// indexed, then one commit replaces the old contents at once (a rebuild that fails leaves
/// the index as it was). `progress` is called after each session with how many are done.
/// Returns how many sessions were indexed and how many were skipped (no recording, or one
/// that does not verify: logged).
///
/// # Errors
/// [`IndexerError`] when the index cannot be written (e.g. [`IndexerError::Busy`] while a
/// gateway serves it), or a recording cannot be read now.
pub async fn rebuild(
    index: &SearchIndex,
    sessions: &[SessionSummary],
    recordings: &dyn RecordingReader,
    max_text: usize,
    mut progress: impl FnMut(u64),
) -> Result<(u64, u64), IndexerError> {
    index.lock_for_writing()?;
    index.clear()?;
    let (mut indexed, mut skipped) = (0u64, 0u64);
    for (done, session) in sessions.iter().enumerate() {
        match index.read_session(session, recordings, max_text).await {
            Ok(Some(doc)) => {
                index.add(doc)?;
                indexed += 1;
            }
            Ok(None) => skipped += 1,
            Err(PortError::Corrupt(message)) => {
                tracing::warn!(session = %session.id, %message, "reindex: the recording does not verify; not indexed");
                skipped += 1;
            }
            Err(other) => return Err(other.into()),
        }
        progress(u64::try_from(done + 1).unwrap_or(u64::MAX));
    }
    index.commit()?;
    Ok((indexed, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_are_left_out() {
        assert_eq!(
            strip_controls("\u{1b}[1;31mred\u{1b}[0m text\r\n\u{1b}]0;title\u{7}ok"),
            "red text\n\nok"
        );
        let (text, cut) = bounded_text("héllo".as_bytes(), 2);
        assert_eq!((text.as_str(), cut), ("h", true));
    }
}
