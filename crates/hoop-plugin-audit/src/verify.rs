//! Verifying and replaying a session's recording against what is stored with the session.
//!
//! [`recording`](crate::recording) checks a recording on its own: its hash chain, and a final
//! digest if given one. A session adds two facts: its status (`open` while it runs,
//! `interrupted` when a crash left it open, else it ended) and the final digest the audit
//! plugin attached to it when it closed ([`DIGEST_ATTRIBUTE`]). This module judges a
//! recording with them, for any host that keeps sessions:
//!
//! * [`verify_session`] recomputes the whole chain and says whether the recording is intact
//!   and complete ([`SessionVerification`]): a session that ended must have its digest
//!   stored, and the recording must end exactly there. A running or interrupted session has
//!   none yet, and verifies as far as it goes.
//! * [`replay_session`] streams the recording's events ([`Replay`]), each verified against
//!   the chain before it is handed out; the first bad event ends the replay with a
//!   [`ReplayError`] naming it. [`Replay::read_chunks`] collects the data chunks, verified to
//!   the end, for hoop-core's [`RecordingReader`](hoop_core::ports::RecordingReader) port.
//!
//! ```
//! # use std::collections::BTreeMap;
//! # use hoop_plugin_audit::recording::*;
//! # use hoop_plugin_audit::verify::{verify_session, replay_session, Outcome};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryRecordingStore::new();
//! let mut writer = store.create(&SessionId::new("s-1")?).await?;
//! writer.append(Event::header(&serde_json::json!({"user": "alice"}))?).await?;
//! writer.append(Event::stdout(1_000, &b"hello\n"[..])).await?;
//! writer.append(Event::close(2_000, &serde_json::json!({"exit_code": 0}))?).await?;
//! let digest = writer.finish().await?;
//!
//! // What the host stored with the session when it closed.
//! let attributes = BTreeMap::from([(hoop_plugin_audit::DIGEST_ATTRIBUTE.to_owned(), digest.to_hex())]);
//! let verified = verify_session(&store, "s-1", "done", &attributes).await?;
//! assert!(verified.ok());
//! assert_eq!((verified.outcome, verified.events), (Outcome::Verified, 3));
//!
//! let mut replay = replay_session(&store, "s-1", "done", &attributes).await?;
//! while let Some(event) = replay.next_event().await {
//!     println!("{:?}", event?.kind);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use hoop_core::Stream;
use hoop_core::ports::{RecordedChunk, RecordedChunks};

use crate::recording::{
    Digest, EventKind, RecordedEvent, RecordingError, RecordingReader, RecordingStore, SessionId,
    VerifyError, VerifyFailure, verify,
};
use crate::{DIGEST_ATTRIBUTE, ERROR_ATTRIBUTE};

/// Status of a session still running: its recording has no final digest yet.
pub const STATUS_OPEN: &str = "open";
/// Status of a session left open by a crash: its recording never got a final digest, and
/// verifies as far as it goes.
pub const STATUS_INTERRUPTED: &str = "interrupted";

/// The verdict on a session's recording.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The hash chain is intact and ends at the final digest stored with the session.
    Verified,
    /// The session is still running (no digest stored): the events recorded so far verify.
    Running,
    /// No digest is stored with a session that never closed properly (`interrupted`): the
    /// chain is intact as far as it goes.
    Unsealed,
    /// A session that ended has no final digest stored: the chain is intact, but events cut
    /// off its end would go unnoticed, so it does not verify.
    DigestMissing,
    /// The digest stored with the session is not 64 hexadecimal digits.
    DigestMalformed,
    /// The session's recording does not exist.
    RecordingMissing,
    /// The recording does not verify: where and why.
    Corrupt(VerifyError),
}

impl Outcome {
    /// Whether the recording is to be trusted (as far as it goes, for a session that has no
    /// digest yet).
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Verified | Self::Running | Self::Unsealed)
    }
}

/// What [`verify_session`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionVerification {
    /// The verdict.
    pub outcome: Outcome,
    /// The verdict in words, for people (what `VerifySession` answers as `detail`).
    pub detail: String,
    /// Events that verify: all of them when the chain is intact, else the index of the
    /// first bad one (0 when the file header itself is bad).
    pub events: u64,
    /// The last link of the chain (the recording's final digest), when the chain was read
    /// to its end intact.
    pub digest: Option<Digest>,
    /// The final digest stored with the session, as stored (even when malformed).
    pub stored_digest: Option<String>,
    /// Whether the recording ends with a close event.
    pub closed: bool,
    /// Whether the recording ends in a partial record (a writer killed mid-write).
    pub truncated: bool,
}

impl SessionVerification {
    /// Whether the recording verifies (see [`Outcome::is_ok`]).
    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The first event that does not verify, if the chain breaks at an event.
    pub fn failed_event(&self) -> Option<u64> {
        match &self.outcome {
            Outcome::Corrupt(e) => e.index,
            _ => None,
        }
    }

    /// Byte offset in the recording where it stops verifying (0 if it does).
    pub fn failed_byte_offset(&self) -> u64 {
        match &self.outcome {
            Outcome::Corrupt(e) => e.byte_offset,
            _ => 0,
        }
    }

    /// A verdict reached without reading the chain.
    fn unread(outcome: Outcome, detail: &str, stored_digest: Option<&String>) -> Self {
        Self {
            outcome,
            detail: detail.to_owned(),
            events: 0,
            digest: None,
            stored_digest: stored_digest.cloned(),
            closed: false,
            truncated: false,
        }
    }
}

/// Whether a session of this status must have its recording's final digest stored: every
/// session that ended, but those interrupted by a crash.
fn digest_required(status: &str) -> bool {
    !matches!(status, STATUS_OPEN | STATUS_INTERRUPTED)
}

/// Verifies the recording of session `session_id` in `store`, given the session's `status`
/// and its stored `attributes` (where the audit plugin put [`DIGEST_ATTRIBUTE`] and, if the
/// recording failed, [`ERROR_ATTRIBUTE`]).
///
/// The whole chain is recomputed. With a stored digest the recording must end exactly there;
/// without one, a session that ended does not verify ([`Outcome::DigestMissing`]), while an
/// `open` or `interrupted` one verifies as far as it goes. A missing recording, a malformed
/// digest and a broken chain are verdicts, not errors.
///
/// # Errors
/// [`RecordingError::InvalidSessionId`] when `session_id` cannot name a recording (so there
/// is none); any other [`RecordingError`] when the storage fails.
pub async fn verify_session(
    store: &dyn RecordingStore,
    session_id: &str,
    status: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<SessionVerification, RecordingError> {
    let stored = attributes.get(DIGEST_ATTRIBUTE).filter(|d| !d.is_empty());
    let expected = match stored.map(|d| d.parse::<Digest>()) {
        None => None,
        Some(Ok(digest)) => Some(digest),
        Some(Err(_)) => {
            return Ok(SessionVerification::unread(
                Outcome::DigestMalformed,
                "the final digest stored with the session is malformed",
                stored,
            ));
        }
    };
    let reader = match store.open(&SessionId::new(session_id)?).await {
        Ok(reader) => reader,
        Err(RecordingError::NotFound(_)) => {
            return Ok(SessionVerification::unread(
                Outcome::RecordingMissing,
                "the session's recording is missing",
                stored,
            ));
        }
        Err(err) => return Err(err),
    };
    let v = match verify(reader, expected.as_ref()).await {
        Ok(v) => v,
        Err(RecordingError::Corrupt(e)) => {
            return Ok(SessionVerification {
                events: e.index.unwrap_or(0),
                truncated: e.reason == VerifyFailure::Truncated,
                // Where it failed is in the error's index and byte offset.
                detail: e.reason.to_string(),
                outcome: Outcome::Corrupt(e),
                digest: None,
                stored_digest: stored.cloned(),
                closed: false,
            });
        }
        Err(err) => return Err(err),
    };
    let (outcome, detail) = if expected.is_some() {
        (
            Outcome::Verified,
            format!(
                "the hash chain of {} events is intact and ends at the final digest stored with the session",
                v.events
            ),
        )
    } else if digest_required(status) {
        // The audit plugin stores the final digest when a session closes; only a session
        // still running, or one left open by a crash, has none. A finished session without
        // it cannot be verified: events may have been cut off its end.
        let mut detail = format!(
            "the recording's final digest was never stored with the session (status \
             {status}): the hash chain of {} events is intact, but events cut off its end \
             would go unnoticed",
            v.events
        );
        if let Some(error) = attributes.get(ERROR_ATTRIBUTE) {
            detail.push_str(&format!(" (the recording failed: {error})"));
        }
        (Outcome::DigestMissing, detail)
    } else if status == STATUS_OPEN {
        (
            Outcome::Running,
            format!(
                "the session is still running: the {} events recorded so far verify",
                v.events
            ),
        )
    } else {
        (
            Outcome::Unsealed,
            format!(
                "no final digest is stored with the session (status {status}): the hash chain of {} events is intact as far as it goes{}",
                v.events,
                if v.truncated {
                    ", and ends in a partial record"
                } else {
                    ""
                }
            ),
        )
    };
    Ok(SessionVerification {
        outcome,
        detail,
        events: v.events,
        digest: Some(v.final_digest),
        stored_digest: stored.cloned(),
        closed: v.closed,
        truncated: v.truncated,
    })
}

/// Why a replay stopped, or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The session has no recording (or an id that cannot name one).
    #[error("session `{0}` has no recording")]
    NoRecording(String),
    /// An event does not verify: the recording was altered or damaged there. The events
    /// before it were handed out, verified; nothing after.
    #[error(transparent)]
    Corrupt(VerifyError),
    /// Every event read verifies, but the recording does not end at the final digest stored
    /// with the session: events are missing at its end, or it was altered. `events` were
    /// read; the first bad event is the one at index `events`.
    #[error(
        "the recording does not end at the final digest stored with the session: events after event {} are missing, or the recording was altered",
        .events.saturating_sub(1)
    )]
    FinalDigestMismatch {
        /// Events read (and verified) before the end.
        events: u64,
    },
    /// The storage failed.
    #[error("cannot read the recording: {0}")]
    Storage(#[source] RecordingError),
}

impl ReplayError {
    /// The first event that does not verify, if the error is about the recording's content.
    pub fn failed_event(&self) -> Option<u64> {
        match self {
            Self::Corrupt(e) => e.index,
            Self::FinalDigestMismatch { events } => Some(*events),
            Self::NoRecording(_) | Self::Storage(_) => None,
        }
    }

    /// Whether the recording itself is at fault (altered, damaged, cut short), rather than
    /// missing or unreadable.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt(_) | Self::FinalDigestMismatch { .. })
    }
}

/// A session's recording being replayed: its events, in order, each verified against the
/// hash chain before it is handed out (see [`replay_session`]).
#[derive(Debug)]
pub struct Replay {
    reader: RecordingReader,
    expected: Option<Digest>,
    done: bool,
}

impl Replay {
    /// Replays what `reader` reads; at its end, the last link must be `expected` if given.
    pub fn new(reader: RecordingReader, expected: Option<Digest>) -> Self {
        Self {
            reader,
            expected,
            done: false,
        }
    }

    /// The session replayed.
    pub fn session_id(&self) -> &SessionId {
        self.reader.session_id()
    }

    /// The next verified event; `None` after the last one and after an error.
    ///
    /// A recording that ends in a partial record (a writer killed mid-write) ends after its
    /// last complete record. Once every event is read, the last link is compared with the
    /// final digest stored with the session, if there is one.
    pub async fn next_event(&mut self) -> Option<Result<RecordedEvent, ReplayError>> {
        if self.done {
            return None;
        }
        match self.reader.next_event().await {
            Some(Ok(event)) => Some(Ok(event)),
            Some(Err(err)) => {
                self.done = true;
                Some(Err(match err {
                    RecordingError::Corrupt(e) => ReplayError::Corrupt(e),
                    other => ReplayError::Storage(other),
                }))
            }
            None => {
                self.done = true;
                match self.expected {
                    Some(expected) if self.reader.digest() != expected => {
                        Some(Err(ReplayError::FinalDigestMismatch {
                            events: self.reader.events_read(),
                        }))
                    }
                    _ => None,
                }
            }
        }
    }

    /// Events handed out so far.
    pub fn events_read(&self) -> u64 {
        self.reader.events_read()
    }

    /// The recording's stdin, stdout and stderr chunks, in order, with at most `max_bytes`
    /// of data (see [`RecordedChunks::push_bounded`]). The rest of the recording is read and
    /// verified too, but not kept: the answer is all or nothing, in bounded memory.
    ///
    /// # Errors
    /// The first [`ReplayError`] the replay meets; no chunk is returned then.
    pub async fn read_chunks(mut self, max_bytes: usize) -> Result<RecordedChunks, ReplayError> {
        let mut chunks = RecordedChunks::new();
        while let Some(event) = self.next_event().await {
            let event = event?;
            let stream = match event.kind {
                EventKind::Stdin => Stream::Stdin,
                EventKind::Stdout => Stream::Stdout,
                EventKind::Stderr => Stream::Stderr,
                EventKind::Header | EventKind::Close => continue,
            };
            chunks.push_bounded(
                RecordedChunk {
                    stream,
                    offset: event.offset(),
                    data: event.payload,
                },
                max_bytes,
            );
        }
        Ok(chunks)
    }
}

/// Starts replaying the recording of session `session_id` in `store`, given the session's
/// `status` and stored `attributes`: once a session is no longer `open`, the final digest
/// stored with it ([`DIGEST_ATTRIBUTE`], when present and well-formed) must be where the
/// recording ends.
///
/// # Errors
/// [`ReplayError::NoRecording`] when there is none; [`ReplayError::Storage`] when the
/// storage fails.
pub async fn replay_session(
    store: &dyn RecordingStore,
    session_id: &str,
    status: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<Replay, ReplayError> {
    let no_recording = || ReplayError::NoRecording(session_id.to_owned());
    let id = SessionId::new(session_id).map_err(|_| no_recording())?;
    let reader = match store.open(&id).await {
        Ok(reader) => reader,
        Err(RecordingError::NotFound(_)) => return Err(no_recording()),
        Err(err) => return Err(ReplayError::Storage(err)),
    };
    let expected = if status == STATUS_OPEN {
        None
    } else {
        attributes
            .get(DIGEST_ATTRIBUTE)
            .and_then(|d| d.parse::<Digest>().ok())
    };
    Ok(Replay::new(reader, expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{Event, MemoryRecordingStore};
    use std::io::Cursor;

    const ID: &str = "s-1";

    /// A recording of a session: header, stdin, stdout, stderr, close. Returns the store,
    /// the final digest and the bytes.
    async fn recorded() -> (MemoryRecordingStore, Digest, Vec<u8>) {
        let store = MemoryRecordingStore::new();
        let mut writer = store.create(&SessionId::new(ID).unwrap()).await.unwrap();
        writer
            .append(Event::header(&serde_json::json!({"user": "alice"})).unwrap())
            .await
            .unwrap();
        writer
            .append(Event::stdin(1_000, &b"cat balance\n"[..]))
            .await
            .unwrap();
        writer
            .append(Event::stdout(2_000, &b"balance: 1000\n"[..]))
            .await
            .unwrap();
        writer
            .append(Event::stderr(3_000, &b"done\n"[..]))
            .await
            .unwrap();
        writer
            .append(Event::close(4_000, &serde_json::json!({"exit_code": 0})).unwrap())
            .await
            .unwrap();
        let digest = writer.finish().await.unwrap();
        let bytes = store.bytes(&SessionId::new(ID).unwrap()).unwrap();
        (store, digest, bytes)
    }

    fn sealed(digest: &Digest) -> BTreeMap<String, String> {
        BTreeMap::from([(DIGEST_ATTRIBUTE.to_owned(), digest.to_hex())])
    }

    fn position_of(bytes: &[u8], needle: &[u8]) -> usize {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    }

    /// A store whose recording of `ID` is `bytes`.
    fn fixed(bytes: Vec<u8>) -> FixedStore {
        FixedStore(bytes)
    }

    #[derive(Debug)]
    struct FixedStore(Vec<u8>);

    #[async_trait::async_trait]
    impl RecordingStore for FixedStore {
        async fn create(
            &self,
            session_id: &SessionId,
        ) -> Result<crate::recording::RecordingWriter, RecordingError> {
            Err(RecordingError::AlreadyExists(session_id.to_string()))
        }
        async fn open(&self, session_id: &SessionId) -> Result<RecordingReader, RecordingError> {
            if session_id.as_str() != ID {
                return Err(RecordingError::NotFound(session_id.to_string()));
            }
            Ok(RecordingReader::new(
                session_id.clone(),
                Cursor::new(self.0.clone()),
            ))
        }
    }

    async fn replay_all(
        store: &dyn RecordingStore,
        status: &str,
        attributes: &BTreeMap<String, String>,
    ) -> (Vec<RecordedEvent>, Option<ReplayError>) {
        let mut replay = replay_session(store, ID, status, attributes).await.unwrap();
        let mut events = Vec::new();
        while let Some(event) = replay.next_event().await {
            match event {
                Ok(e) => events.push(e),
                Err(e) => {
                    assert!(
                        replay.next_event().await.is_none(),
                        "nothing after an error"
                    );
                    return (events, Some(e));
                }
            }
        }
        (events, None)
    }

    #[tokio::test]
    async fn an_intact_sealed_recording_verifies_and_replays() {
        let (store, digest, _) = recorded().await;
        let v = verify_session(&store, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        assert_eq!(v.outcome, Outcome::Verified);
        assert!(v.ok() && v.closed && !v.truncated);
        assert_eq!((v.events, v.digest), (5, Some(digest)));
        assert_eq!(v.stored_digest, Some(digest.to_hex()));
        assert_eq!((v.failed_event(), v.failed_byte_offset()), (None, 0));
        assert_eq!(
            v.detail,
            "the hash chain of 5 events is intact and ends at the final digest stored with the session"
        );

        let (events, error) = replay_all(&store, "done", &sealed(&digest)).await;
        assert!(error.is_none(), "{error:?}");
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Header,
                EventKind::Stdin,
                EventKind::Stdout,
                EventKind::Stderr,
                EventKind::Close
            ]
        );
    }

    #[tokio::test]
    async fn a_tampered_byte_is_named_by_verify_and_ends_the_replay() {
        let (_, digest, mut bytes) = recorded().await;
        let at = position_of(&bytes, b"balance: 1000");
        bytes[at + "balance: ".len()] = b'9';
        let store = fixed(bytes);

        let v = verify_session(&store, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        assert!(!v.ok());
        assert!(
            matches!(&v.outcome, Outcome::Corrupt(e) if e.reason == VerifyFailure::LinkMismatch)
        );
        assert_eq!(v.failed_event(), Some(2), "the stdout event");
        assert!(v.failed_byte_offset() > 0);
        assert_eq!(v.events, 2);
        assert_eq!(v.digest, None);
        assert!(v.detail.starts_with("the hash chain is broken"), "{v:?}");

        // Replay hands out the events before it, then the error naming it.
        let (events, error) = replay_all(&store, "done", &sealed(&digest)).await;
        assert_eq!(events.len(), 2);
        let error = error.unwrap();
        assert!(error.is_corrupt());
        assert_eq!(error.failed_event(), Some(2));
        assert!(error.to_string().contains("event 2"), "{error}");

        // Even without a digest (a running session), a broken chain is caught.
        let (events, error) = replay_all(&store, STATUS_OPEN, &BTreeMap::new()).await;
        assert_eq!((events.len(), error.unwrap().failed_event()), (2, Some(2)));
        let v = verify_session(&store, ID, STATUS_OPEN, &BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(v.failed_event(), Some(2));
    }

    #[tokio::test]
    async fn a_recording_cut_short_of_its_digest_is_detected() {
        let (store, digest, bytes) = recorded().await;
        // Drop the close event cleanly: every remaining record chains.
        let mut replay = replay_session(&store, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        let mut last = None;
        while let Some(event) = replay.next_event().await {
            last = Some(event.unwrap());
        }
        let close = last.unwrap();
        let cut = fixed(bytes[..usize::try_from(close.byte_offset).unwrap()].to_vec());

        let v = verify_session(&cut, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        assert!(!v.ok());
        assert_eq!(v.failed_event(), Some(4));
        assert!(
            v.detail.contains("final digest does not match"),
            "{}",
            v.detail
        );
        let (events, error) = replay_all(&cut, "done", &sealed(&digest)).await;
        assert_eq!(events.len(), 4);
        let error = error.unwrap();
        assert!(matches!(
            error,
            ReplayError::FinalDigestMismatch { events: 4 }
        ));
        assert_eq!(error.failed_event(), Some(4));
        assert_eq!(
            error.to_string(),
            "the recording does not end at the final digest stored with the session: events \
             after event 3 are missing, or the recording was altered"
        );

        // Cut mid-record: truncated.
        let torn = fixed(bytes[..bytes.len() - 10].to_vec());
        let v = verify_session(&torn, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        assert!(!v.ok() && v.truncated, "{v:?}");
        assert_eq!(v.failed_event(), Some(4));
        assert!(v.detail.contains("truncated"), "{}", v.detail);
    }

    #[tokio::test]
    async fn a_finished_session_without_its_digest_does_not_verify() {
        let (store, digest, _) = recorded().await;
        for status in ["done", "killed", "denied"] {
            let v = verify_session(&store, ID, status, &BTreeMap::new())
                .await
                .unwrap();
            assert_eq!(v.outcome, Outcome::DigestMissing, "{status}");
            assert!(!v.ok());
            // The chain itself is intact: no event named, count and digest given.
            assert_eq!(
                (v.failed_event(), v.events, v.digest),
                (None, 5, Some(digest))
            );
            assert!(v.closed);
            assert_eq!(v.stored_digest, None);
            assert!(
                v.detail
                    .starts_with("the recording's final digest was never stored"),
                "{}",
                v.detail
            );
            assert!(
                v.detail.contains(&format!("(status {status})")),
                "{}",
                v.detail
            );
        }
        // An empty attribute is no digest either; the recorder's error is told.
        let attributes = BTreeMap::from([
            (DIGEST_ATTRIBUTE.to_owned(), String::new()),
            (ERROR_ATTRIBUTE.to_owned(), "disk full".to_owned()),
        ]);
        let v = verify_session(&store, ID, "done", &attributes)
            .await
            .unwrap();
        assert_eq!(v.outcome, Outcome::DigestMissing);
        assert!(
            v.detail.ends_with("(the recording failed: disk full)"),
            "{}",
            v.detail
        );
    }

    #[tokio::test]
    async fn interrupted_and_running_sessions_verify_as_far_as_they_go() {
        let (_, _, bytes) = recorded().await;
        // A crash: the close event and part of the record before it never made it.
        let store = fixed(bytes[..bytes.len() - 60].to_vec());
        let v = verify_session(&store, ID, STATUS_INTERRUPTED, &BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(v.outcome, Outcome::Unsealed);
        assert!(v.ok() && v.truncated && !v.closed, "{v:?}");
        assert!(
            v.detail
                .starts_with("no final digest is stored with the session (status interrupted)"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.ends_with(", and ends in a partial record"),
            "{}",
            v.detail
        );
        let (events, error) = replay_all(&store, STATUS_INTERRUPTED, &BTreeMap::new()).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(events.len() as u64, v.events);

        let v = verify_session(&store, ID, STATUS_OPEN, &BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(v.outcome, Outcome::Running);
        assert!(v.ok());
        assert!(
            v.detail.starts_with("the session is still running"),
            "{}",
            v.detail
        );
    }

    #[tokio::test]
    async fn a_running_session_replays_without_its_stale_digest() {
        // A digest stored while the status still says open is not used by replay.
        let (store, _, _) = recorded().await;
        let other: Digest = "0".repeat(64).parse().unwrap();
        let (events, error) = replay_all(&store, STATUS_OPEN, &sealed(&other)).await;
        assert!(error.is_none());
        assert_eq!(events.len(), 5);
        let (_, error) = replay_all(&store, "done", &sealed(&other)).await;
        assert!(matches!(
            error,
            Some(ReplayError::FinalDigestMismatch { events: 5 })
        ));
    }

    #[tokio::test]
    async fn missing_recordings_and_malformed_digests_are_verdicts() {
        let store = MemoryRecordingStore::new();
        let v = verify_session(&store, ID, "done", &BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(v.outcome, Outcome::RecordingMissing);
        assert_eq!(v.detail, "the session's recording is missing");
        assert!(matches!(
            replay_session(&store, ID, "done", &BTreeMap::new()).await,
            Err(ReplayError::NoRecording(id)) if id == ID
        ));
        assert!(matches!(
            replay_session(&store, "../etc", "done", &BTreeMap::new()).await,
            Err(ReplayError::NoRecording(_))
        ));
        assert!(matches!(
            verify_session(&store, "../etc", "done", &BTreeMap::new()).await,
            Err(RecordingError::InvalidSessionId(_))
        ));

        let attributes = BTreeMap::from([(DIGEST_ATTRIBUTE.to_owned(), "xyz".to_owned())]);
        let v = verify_session(&store, ID, "done", &attributes)
            .await
            .unwrap();
        assert_eq!(v.outcome, Outcome::DigestMalformed);
        assert_eq!(v.stored_digest.as_deref(), Some("xyz"));
        assert!(!v.ok());
    }

    #[tokio::test]
    async fn read_chunks_keeps_the_data_within_the_bound_and_verifies_all() {
        let (store, digest, bytes) = recorded().await;
        let replay = replay_session(&store, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        let all = replay.read_chunks(usize::MAX).await.unwrap();
        assert!(all.complete);
        let streams: Vec<(Stream, u128, &[u8])> = all
            .chunks
            .iter()
            .map(|c| (c.stream, c.offset.as_micros(), &c.data[..]))
            .collect();
        assert_eq!(
            streams,
            [
                (Stream::Stdin, 1, &b"cat balance\n"[..]),
                (Stream::Stdout, 2, &b"balance: 1000\n"[..]),
                (Stream::Stderr, 3, &b"done\n"[..]),
            ]
        );

        let replay = replay_session(&store, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        let some = replay.read_chunks(15).await.unwrap();
        assert!(!some.complete);
        assert_eq!(some.total_bytes, all.total_bytes);
        assert_eq!(some.chunks.len(), 2);
        assert_eq!(&some.chunks[1].data[..], b"bal");

        // A tampered event past the bound still fails the whole read.
        let mut tampered = bytes.clone();
        let at = position_of(&tampered, b"done\n");
        tampered[at] = b'D';
        let store = fixed(tampered);
        let replay = replay_session(&store, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        let err = replay.read_chunks(4).await.unwrap_err();
        assert_eq!(err.failed_event(), Some(3));
        // So does a recording cut short of its digest.
        let store = fixed(bytes[..bytes.len() - 10].to_vec());
        let replay = replay_session(&store, ID, "done", &sealed(&digest))
            .await
            .unwrap();
        assert!(replay.read_chunks(4).await.unwrap_err().is_corrupt());
    }
}
