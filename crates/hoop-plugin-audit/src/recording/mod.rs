//! Session recordings: durable, tamper-evident, streaming.
//!
//! A recording holds every event of one session — a header with the session's metadata, the
//! user's input, the target's stdout and stderr, and the close — so that nothing can be lost
//! or altered unnoticed.
//!
//! ```
//! # use hoop_plugin_audit::recording::*;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), RecordingError> {
//! let store = MemoryRecordingStore::new(); // or FsRecordingStore::new("/var/lib/hoop/recordings")
//! let id = SessionId::new("3f1c-session")?;
//! let mut writer = store.create(&id).await?;
//! writer.append(Event::header(&serde_json::json!({"session_id": "3f1c-session", "user": "alice"}))?).await?;
//! writer.append(Event::stdin(1_000, &b"ls\n"[..])).await?;
//! writer.append(Event::stdout(2_000, &b"\xffbinary is fine"[..])).await?;
//! writer.append(Event::close(3_000, &serde_json::json!({"exit_code": 0, "reason": "done"}))?).await?;
//! let digest = writer.finish().await?; // store it with the session
//!
//! let verification = verify(store.open(&id).await?, Some(&digest)).await?;
//! assert_eq!(verification.events, 4);
//! # Ok(()) }
//! ```
//!
//! # Events
//!
//! An [`Event`] is a kind ([`EventKind`]), a time offset in nanoseconds since the session
//! started, and a payload of any bytes. The first event must be the [`EventKind::Header`]
//! (a JSON object: session id, user, connection, verb, start time in RFC 3339...), and only
//! the first; after a [`EventKind::Close`] (JSON such as `{"exit_code":0,"reason":"..."}`)
//! nothing may follow; offsets never go backwards. The writer refuses events that break these
//! rules, and the reader reports recordings that break them.
//!
//! # File format (version 2)
//!
//! All integers little-endian.
//!
//! ```text
//! file    = magic "HOOPREC\x02" | id_len: u8 | session id (id_len bytes) | record*
//! record  = len: u32 | !len: u32 | kind: u8 | offset_ns: u64 | payload (len bytes) | link (32 bytes)
//! link_0  = BLAKE3("hoop-rs session recording v2\0" | id_len: u8 | session id)
//! link_n  = BLAKE3(link_{n-1} | kind: u8 | offset_ns: u64 | len: u32 | payload)
//! ```
//!
//! BLAKE3 is the unkeyed hash with its default 32-byte output. Version 1 (magic
//! `"HOOPREC\x01"`, written before 2026-12-06) is the same layout with SHA-256 in place of
//! BLAKE3 and `"hoop-rs session recording v1\0"` as the genesis prefix; readers take the
//! version from the magic ([`FormatVersion`]) and verify both. Relabelling a recording as
//! the other version breaks its chain at the first record.
//!
//! Kinds: 1 header, 2 stdin, 3 stdout, 4 stderr, 5 close. A payload is at most
//! [`MAX_RECORD_PAYLOAD`] (1 MiB); the writer splits larger stdin/stdout/stderr payloads into
//! consecutive records of the same kind and offset, and the reader returns each record as an
//! event (index = record number). The final digest is the last record's link (link_0 if
//! there is none).
//!
//! The length is stored twice (the second time bitwise inverted), so that a damaged length
//! is always reported as damage rather than taken for a record torn at the end of the file.
//!
//! # Tamper evidence
//!
//! Each record stores its link, so a reader recomputes the chain as it goes and names the
//! first record whose link does not match ([`VerifyError`]: index and byte offset): a changed
//! byte anywhere (length, kind, offset, payload or link), a removed, inserted or moved record.
//! What the chain alone cannot show — records cut off at the end, or a whole recording
//! replaced — [`verify`] detects given the final digest stored elsewhere by comparing the
//! last link with it ([`VerifyFailure::FinalDigestMismatch`], [`VerifyFailure::Truncated`],
//! [`VerifyFailure::TrailingData`]).
//!
//! # Durability: the flush policy
//!
//! A process killed with SIGKILL loses only what it had not yet handed to the kernel. The
//! writer keeps at most [`DEFAULT_BUFFER_CAPACITY`] (64 KiB) in memory and hands buffered
//! bytes to the storage ([`RecordingSink::write_all`]; for a file, `write(2)`):
//!
//! * when a record would not fit in the buffer (records larger than the buffer are written
//!   straight through, after the buffer);
//! * by a background tokio task, spawned with the writer, that sleeps until the oldest
//!   buffered byte is [`DEFAULT_FLUSH_AFTER`] (50 ms) old and then flushes;
//! * on any `append` that finds the oldest buffered byte that old already (in case the
//!   background task is starved);
//! * on [`RecordingWriter::flush`], [`RecordingWriter::sync`] and
//!   [`RecordingWriter::finish`] (which also `fsync`s), on [`RecordingWriter::seal`] (which
//!   leaves the `fsync` to a background task: the audit plugin seals, so a session's end
//!   does not wait for the disk), and when the writer is dropped.
//!
//! So appended events reach the kernel within 50 ms plus the time of the write itself and
//! any scheduling delay: within the promised [`DURABILITY_BOUND`] of 100 ms, with no help
//! from the caller, who only has to keep the tokio runtime running and call `finish` at the
//! end. (Power loss is another matter: only `sync`/`finish` make data durable on disk.)
//!
//! # Torn records
//!
//! A writer killed mid-write leaves a partial last record. The reader returns every complete
//! record before it (all verified) and then reports the tear ([`TornTail`],
//! [`Verification::truncated`]) instead of an error. Only with an expected final digest is a
//! torn recording an error, since it then provably lacks events.
//!
//! # Bounded memory
//!
//! Writing holds at most the buffer (64 KiB; see [`RecordingWriter::buffered_len`]) besides
//! the event the caller passes in and the storage's own copy of one write in flight (at most
//! one record, 1 MiB); reading and verifying hold one record (at most 1 MiB of payload) and a
//! 64 KiB read-ahead buffer. Offsets and counts are 64-bit: a recording of many gigabytes is written, read and
//! verified as a stream.
//!
//! # Storage
//!
//! [`RecordingStore`] creates a writer over a [`RecordingSink`] and opens a reader over an
//! [`tokio::io::AsyncRead`]; [`FsRecordingStore`] keeps one append-only file per session
//! (`<dir>/<session_id>.hrec`, refusing to overwrite), [`MemoryRecordingStore`] keeps them in
//! memory. Session ids are restricted to `[A-Za-z0-9_-]{1,64}` ([`SessionId`]) so that they
//! are safe names in any store.

mod clock;
mod error;
mod format;
mod reader;
mod store;
mod writer;

pub use clock::{Clock, ManualClock, TokioClock};
pub use error::{RecordingError, VerifyError, VerifyFailure};
pub use format::{
    Digest, Event, EventKind, FILE_MAGIC, FormatVersion, GENESIS_DOMAIN, MAX_RECORD_PAYLOAD,
    MAX_SESSION_ID_LEN, RECORD_OVERHEAD, RecordedEvent, SessionId,
};
pub use reader::{RecordingReader, TornTail, Verification, verify};
pub use store::{FILE_EXTENSION, FsRecordingStore, MemoryRecordingStore, RecordingStore};
pub use writer::{
    DEFAULT_BUFFER_CAPACITY, DEFAULT_FLUSH_AFTER, DURABILITY_BOUND, RecordingSink, RecordingWriter,
    WriterOptions,
};
