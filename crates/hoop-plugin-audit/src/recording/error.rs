//! The errors of the recording module.

use std::fmt;

/// Everything that can go wrong while writing, reading or verifying a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The session id is not `[A-Za-z0-9_-]{1,64}`; refused so that it can never name a path
    /// outside the store.
    #[error("invalid session id {0:?}: it must be 1 to 64 characters of [A-Za-z0-9_-]")]
    InvalidSessionId(String),
    /// A recording of this session already exists; recordings are never overwritten.
    #[error("a recording of session {0} already exists")]
    AlreadyExists(String),
    /// There is no recording of this session.
    #[error("no recording of session {0}")]
    NotFound(String),
    /// The event cannot be appended: it breaks the structure of a recording (the header must
    /// come first and only first, nothing follows the close event, time offsets never go
    /// backwards, header and close fit in one record).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// The header or close metadata could not be encoded as JSON.
    #[error("invalid event metadata: {0}")]
    Json(#[from] serde_json::Error),
    /// A digest string is not 64 hexadecimal digits.
    #[error("invalid digest {0:?}: expected 64 hexadecimal digits")]
    InvalidDigest(String),
    /// Reading or writing the storage failed.
    #[error("recording I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// An earlier operation failed: a writer whose write failed refuses to go on (what is
    /// stored may end in a partial record); a reader that returned an error cannot be
    /// verified further.
    #[error("the recording can no longer be used: an earlier operation failed: {0}")]
    Failed(String),
    /// A writer needs a tokio runtime (for its background flush) and none is running.
    #[error("recording writers must be created inside a tokio runtime")]
    NoRuntime,
    /// The recording does not verify: it was altered, damaged or does not match the expected
    /// final digest.
    #[error(transparent)]
    Corrupt(#[from] VerifyError),
}

/// Where and why a recording failed to verify: the first record that does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// Index of the first event that does not verify (0 is the header event), or `None` when
    /// the file header itself is wrong.
    pub index: Option<u64>,
    /// Byte offset in the file where that record (or the file header, at 0) starts; for a
    /// problem found after the last record (a wrong final digest, say) the end of the last
    /// complete record.
    pub byte_offset: u64,
    /// What is wrong.
    pub reason: VerifyFailure,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(
                f,
                "recording does not verify at event {index} (byte {}): {}",
                self.byte_offset, self.reason
            ),
            None => write!(
                f,
                "recording does not verify at its file header (byte {}): {}",
                self.byte_offset, self.reason
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Why a recording failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// The file does not start with the magic and the session id it was opened for.
    #[error("the file header is not that of a recording of this session")]
    FileHeader,
    /// The record's length field is damaged (its check copy does not match) or larger than a
    /// record may be.
    #[error("the record length is damaged")]
    BadLength,
    /// The record's event kind is not one this format knows.
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
    /// The stored link is not the hash (of the recording's format version) of the previous
    /// link and the event: the record was altered, or an earlier record was removed,
    /// inserted or moved.
    #[error("the hash chain is broken: the record was altered, removed, inserted or moved")]
    LinkMismatch,
    /// The records chain correctly but do not form a valid recording.
    #[error("invalid structure: {0}")]
    Structure(&'static str),
    /// The recording ends in a torn record before reaching the expected final digest.
    #[error("the recording is truncated: it ends in a partial record")]
    Truncated,
    /// The last link differs from the expected final digest: records were cut off the end, or
    /// the expected digest was changed.
    #[error(
        "the final digest does not match: events are missing at the end or the digest is wrong"
    )]
    FinalDigestMismatch,
    /// Data follows the record whose link is the expected final digest.
    #[error("data follows the event the expected final digest ends at")]
    TrailingData,
}
