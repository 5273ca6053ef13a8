//! Reading a recording back as a stream of verified events, and verifying a whole recording.

use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use super::error::{RecordingError, VerifyError, VerifyFailure};
use super::format::{
    Digest, EventKind, FormatVersion, LINK_LEN, MAX_RECORD_PAYLOAD, RECORD_OVERHEAD,
    RECORD_PREFIX_LEN, RecordedEvent, SessionId, VERSION_AT, file_header,
};

/// Size of the reader's read-ahead buffer.
const READ_BUFFER: usize = 64 * 1024;

/// A partial record (or file header) at the end of a recording: what a writer killed in the
/// middle of a write leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Index the torn record would have had, or `None` if the file header itself is partial.
    pub index: Option<u64>,
    /// Byte offset where the partial record (or header, at 0) starts.
    pub byte_offset: u64,
    /// Bytes of it present in the file.
    pub len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FileHeader,
    Records,
    /// The end, or a torn final record, was reached.
    Done,
    /// An error was returned.
    Failed,
}

/// Streams the events of a recording, verifying each record's link as it goes: every event
/// returned chains correctly from the start of the recording. Memory use is bounded by one
/// record (at most [`MAX_RECORD_PAYLOAD`] plus overhead) and a 64 KiB read-ahead buffer,
/// whatever the size of the recording.
pub struct RecordingReader {
    source: BufReader<Box<dyn AsyncRead + Send + Unpin>>,
    session_id: SessionId,
    state: State,
    /// Named by the file's magic (the current version until the file header is read).
    version: FormatVersion,
    link: Digest,
    index: u64,
    pos: u64,
    last_offset: u64,
    closed: bool,
    torn: Option<TornTail>,
}

impl std::fmt::Debug for RecordingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingReader")
            .field("session_id", &self.session_id)
            .field("events_read", &self.index)
            .field("position", &self.pos)
            .field("digest", &self.link)
            .finish_non_exhaustive()
    }
}

impl RecordingReader {
    /// Reads the recording of `session_id` from `source` (the bytes of the file, from the
    /// start). The file header must name `session_id`.
    pub fn new(session_id: SessionId, source: impl AsyncRead + Send + Unpin + 'static) -> Self {
        let source: Box<dyn AsyncRead + Send + Unpin> = Box::new(source);
        Self {
            source: BufReader::with_capacity(READ_BUFFER, source),
            link: Digest::genesis(&session_id),
            session_id,
            state: State::FileHeader,
            version: FormatVersion::CURRENT,
            index: 0,
            pos: 0,
            last_offset: 0,
            closed: false,
            torn: None,
        }
    }

    /// The session the recording is of.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// The version of the recording's format, named by its magic (every version is read and
    /// verified); [`FormatVersion::CURRENT`] until the file header has been read.
    pub fn format_version(&self) -> FormatVersion {
        self.version
    }

    /// The next event, in order; `None` at the end of the recording, after a torn final
    /// record (see [`RecordingReader::torn_tail`]) and after an error.
    ///
    /// An error is [`RecordingError::Corrupt`] naming the first record that does not verify,
    /// or [`RecordingError::Io`].
    pub async fn next_event(&mut self) -> Option<Result<RecordedEvent, RecordingError>> {
        if matches!(self.state, State::Done | State::Failed) {
            return None;
        }
        match self.read_next().await {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => {
                self.state = State::Done;
                None
            }
            Err(err) => {
                self.state = State::Failed;
                Some(Err(err))
            }
        }
    }

    /// The last link verified so far (link 0 before any event): after the last event, the
    /// recording's final digest.
    pub fn digest(&self) -> Digest {
        self.link
    }

    /// Events read (and verified) so far.
    pub fn events_read(&self) -> u64 {
        self.index
    }

    /// Byte offset just after the last verified record (or the file header).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The torn final record, once the reader has reached it.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn
    }

    /// Whether the close event has been read.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn corrupt(
        &self,
        index: Option<u64>,
        byte_offset: u64,
        reason: VerifyFailure,
    ) -> RecordingError {
        RecordingError::Corrupt(VerifyError {
            index,
            byte_offset,
            reason,
        })
    }

    fn tear(&mut self, index: Option<u64>, byte_offset: u64, len: usize) {
        self.torn = Some(TornTail {
            index,
            byte_offset,
            len: len as u64,
        });
    }

    /// Reads until `buf` is full or the source ends; returns how much was read.
    async fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, RecordingError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.source.read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(filled)
    }

    async fn read_next(&mut self) -> Result<Option<RecordedEvent>, RecordingError> {
        if self.state == State::FileHeader {
            // Any version's magic (the byte at `VERSION_AT` names it), then the id's length
            // and the id expected.
            let expected = file_header(&self.session_id);
            let mut got = vec![0u8; expected.len()];
            let n = self.read_full(&mut got).await?;
            let version = if n > VERSION_AT {
                FormatVersion::from_number(got[VERSION_AT])
            } else {
                Some(FormatVersion::CURRENT)
            };
            let rest_matches = (0..n).all(|i| i == VERSION_AT || got[i] == expected[i]);
            let (Some(version), true) = (version, rest_matches) else {
                return Err(self.corrupt(None, 0, VerifyFailure::FileHeader));
            };
            if n < expected.len() {
                self.tear(None, 0, n);
                return Ok(None);
            }
            self.version = version;
            self.link = Digest::genesis_in(version, &self.session_id);
            self.pos = n as u64;
            self.state = State::Records;
        }

        let start = self.pos;
        let index = self.index;
        let mut prefix = [0u8; RECORD_PREFIX_LEN];
        let n = self.read_full(&mut prefix).await?;
        if n == 0 {
            return Ok(None);
        }
        if n < 8 {
            self.tear(Some(index), start, n);
            return Ok(None);
        }
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let check = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if check != !len || len_usize > MAX_RECORD_PAYLOAD {
            return Err(self.corrupt(Some(index), start, VerifyFailure::BadLength));
        }
        if n < RECORD_PREFIX_LEN {
            self.tear(Some(index), start, n);
            return Ok(None);
        }
        let kind_byte = prefix[8];
        let offset_ns = u64::from_le_bytes([
            prefix[9], prefix[10], prefix[11], prefix[12], prefix[13], prefix[14], prefix[15],
            prefix[16],
        ]);
        let mut payload = vec![0u8; len_usize];
        let got = self.read_full(&mut payload).await?;
        if got < len_usize {
            self.tear(Some(index), start, RECORD_PREFIX_LEN + got);
            return Ok(None);
        }
        let mut stored = [0u8; LINK_LEN];
        let got = self.read_full(&mut stored).await?;
        if got < LINK_LEN {
            self.tear(Some(index), start, RECORD_PREFIX_LEN + len_usize + got);
            return Ok(None);
        }

        let Some(kind) = EventKind::from_u8(kind_byte) else {
            return Err(self.corrupt(Some(index), start, VerifyFailure::UnknownKind(kind_byte)));
        };
        let link = self
            .link
            .chain_raw(self.version, kind_byte, offset_ns, &payload);
        if link.as_bytes() != &stored {
            return Err(self.corrupt(Some(index), start, VerifyFailure::LinkMismatch));
        }
        let structure = if self.closed {
            Some("an event follows the close event")
        } else if index == 0 && kind != EventKind::Header {
            Some("the first event is not the header")
        } else if index > 0 && kind == EventKind::Header {
            Some("a header event follows the first event")
        } else if offset_ns < self.last_offset {
            Some("the time offset goes backwards")
        } else {
            None
        };
        if let Some(why) = structure {
            return Err(self.corrupt(Some(index), start, VerifyFailure::Structure(why)));
        }

        self.link = link;
        self.index += 1;
        self.pos = start + (RECORD_OVERHEAD + len_usize) as u64;
        self.last_offset = offset_ns;
        self.closed = kind == EventKind::Close;
        Ok(Some(RecordedEvent {
            index,
            byte_offset: start,
            kind,
            offset_ns,
            payload: payload.into(),
            link,
        }))
    }
}

/// The result of verifying a whole recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Events (records) that verified.
    pub events: u64,
    /// The last verified link: the recording's final digest.
    pub final_digest: Digest,
    /// Bytes that verified (file header and complete records).
    pub bytes: u64,
    /// Whether the recording ends in a torn (partial) record; everything before it verified.
    pub truncated: bool,
    /// The torn record, when `truncated`.
    pub torn_tail: Option<TornTail>,
    /// Whether the recording ends with a close event.
    pub closed: bool,
}

/// Verifies the rest of the recording `reader` reads (all of it, for a fresh reader),
/// streaming: every record's link is recomputed, and with `expected_final_digest` the last
/// link must equal it.
///
/// Without an expected digest a torn final record is not an error (it is reported in
/// [`Verification::truncated`]); with one, the recording must end exactly at the record whose
/// link is that digest.
///
/// # Errors
/// [`RecordingError::Failed`] if `reader` already returned an error;
/// [`RecordingError::Corrupt`] naming the first record that does not verify: a damaged,
/// altered, removed, inserted or moved record; with an expected digest also
/// [`VerifyFailure::Truncated`], [`VerifyFailure::FinalDigestMismatch`] (records cut off at the
/// end, or a changed digest; index = the first missing event) or
/// [`VerifyFailure::TrailingData`]. [`RecordingError::Io`] if reading fails.
pub async fn verify(
    mut reader: RecordingReader,
    expected_final_digest: Option<&Digest>,
) -> Result<Verification, RecordingError> {
    if reader.state == State::Failed {
        return Err(RecordingError::Failed(
            "the reader already returned an error".to_owned(),
        ));
    }
    let mut at_expected = expected_final_digest == Some(&reader.digest());
    while let Some(event) = reader.next_event().await {
        let event = event?;
        if at_expected {
            return Err(VerifyError {
                index: Some(event.index),
                byte_offset: event.byte_offset,
                reason: VerifyFailure::TrailingData,
            }
            .into());
        }
        at_expected = expected_final_digest == Some(&event.link);
    }
    let verification = Verification {
        events: reader.events_read(),
        final_digest: reader.digest(),
        bytes: reader.position(),
        truncated: reader.torn_tail().is_some(),
        torn_tail: reader.torn_tail(),
        closed: reader.is_closed(),
    };
    if expected_final_digest.is_some() {
        let failure = match (verification.torn_tail, at_expected) {
            (None, true) => None,
            (Some(torn), true) if torn.index.is_some() => {
                Some((torn.index, torn.byte_offset, VerifyFailure::TrailingData))
            }
            (Some(torn), _) => Some((torn.index, torn.byte_offset, VerifyFailure::Truncated)),
            (None, false) => Some((
                Some(verification.events),
                verification.bytes,
                VerifyFailure::FinalDigestMismatch,
            )),
        };
        if let Some((index, byte_offset, reason)) = failure {
            return Err(VerifyError {
                index,
                byte_offset,
                reason,
            }
            .into());
        }
    }
    Ok(verification)
}
