//! The binary layout of a recording, its hash chain, and the types that name its parts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::error::RecordingError;

/// The eight bytes every recording written now starts with (the last one is the format
/// version, [`FormatVersion::CURRENT`]).
pub const FILE_MAGIC: [u8; 8] = FormatVersion::CURRENT.magic();

/// What the magic of every version starts with; the byte after it is the version.
const MAGIC_STEM: [u8; 7] = *b"HOOPREC";

/// Where in a file its format version is: right after [`MAGIC_STEM`].
pub(crate) const VERSION_AT: usize = MAGIC_STEM.len();

/// The largest payload of one record (1 MiB); larger stdin/stdout/stderr payloads are split
/// into several records of the same kind and time offset.
pub const MAX_RECORD_PAYLOAD: usize = 1 << 20;

/// The longest session id.
pub const MAX_SESSION_ID_LEN: usize = 64;

/// Domain-separation prefix of link 0 in the current version:
/// link_0 = BLAKE3(prefix || id length (u8) || id).
pub const GENESIS_DOMAIN: &[u8] = FormatVersion::CURRENT.genesis_domain();

/// The version of a recording's format, named by the last byte of its magic. Versions differ
/// only in the hash that links the chain; every version is read and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FormatVersion {
    /// Version 1 (`HOOPREC\x01`): the chain is linked with SHA-256. Written until
    /// 2026-12-06; still read and verified.
    V1,
    /// Version 2 (`HOOPREC\x02`): the chain is linked with BLAKE3 (256-bit output), 3.6
    /// times the speed of SHA-256 with SHA-NI on a core with AVX-512 (see BENCHMARKS.md).
    V2,
}

impl FormatVersion {
    /// The version writers use.
    pub const CURRENT: Self = Self::V2;

    /// The version's number: the last byte of its magic.
    pub const fn number(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// The version numbered `number`, if there is one.
    pub const fn from_number(number: u8) -> Option<Self> {
        match number {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            _ => None,
        }
    }

    /// The eight bytes a recording of this version starts with.
    pub const fn magic(self) -> [u8; 8] {
        let mut magic = [0u8; 8];
        let mut i = 0;
        while i < MAGIC_STEM.len() {
            magic[i] = MAGIC_STEM[i];
            i += 1;
        }
        magic[VERSION_AT] = self.number();
        magic
    }

    /// The domain-separation prefix of link 0.
    pub const fn genesis_domain(self) -> &'static [u8] {
        match self {
            Self::V1 => b"hoop-rs session recording v1\0",
            Self::V2 => b"hoop-rs session recording v2\0",
        }
    }
}

/// The link over `parts` (concatenated) with the version's hash.
fn link_hash(version: FormatVersion, parts: &[&[u8]]) -> Digest {
    match version {
        FormatVersion::V1 => {
            let mut hasher = Sha256::new();
            for part in parts {
                hasher.update(part);
            }
            Digest(hasher.finalize().into())
        }
        FormatVersion::V2 => {
            let mut hasher = blake3::Hasher::new();
            for part in parts {
                hasher.update(part);
            }
            Digest(*hasher.finalize().as_bytes())
        }
    }
}

/// Length of the fixed part in front of a record's payload: length, its complement, kind,
/// time offset.
pub(crate) const RECORD_PREFIX_LEN: usize = 4 + 4 + 1 + 8;

/// Length of the link stored after a record's payload.
pub(crate) const LINK_LEN: usize = 32;

/// Bytes a record takes besides its payload.
pub const RECORD_OVERHEAD: usize = RECORD_PREFIX_LEN + LINK_LEN;

/// The id of a recorded session: 1 to 64 characters of `[A-Za-z0-9_-]`, so that it is always
/// a safe file or object name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// Validates `id`.
    ///
    /// # Errors
    /// [`RecordingError::InvalidSessionId`] unless `id` is 1 to 64 characters of
    /// `[A-Za-z0-9_-]`.
    pub fn new(id: impl Into<String>) -> Result<Self, RecordingError> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= MAX_SESSION_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(id))
        } else {
            Err(RecordingError::InvalidSessionId(id))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for SessionId {
    type Err = RecordingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for SessionId {
    type Error = RecordingError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for SessionId {
    type Error = RecordingError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

/// A SHA-256 link of the hash chain; the last one is the recording's final digest. Displays
/// (and parses) as 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Link 0 of a session's chain in the current version:
    /// BLAKE3(GENESIS_DOMAIN || id length as u8 || id).
    pub fn genesis(session_id: &SessionId) -> Self {
        Self::genesis_in(FormatVersion::CURRENT, session_id)
    }

    /// Link 0 of a session's chain in `version` (its hash over its genesis domain, the id's
    /// length as u8 and the id).
    pub fn genesis_in(version: FormatVersion, session_id: &SessionId) -> Self {
        link_hash(
            version,
            &[
                version.genesis_domain(),
                &[id_len_byte(session_id)],
                session_id.as_str().as_bytes(),
            ],
        )
    }

    /// The link that follows `self` for one record in the current version:
    /// BLAKE3(self || kind (u8) || offset_ns (u64 LE) || payload length (u32 LE) || payload).
    ///
    /// `payload` must not be longer than [`MAX_RECORD_PAYLOAD`].
    pub fn chain(&self, kind: EventKind, offset_ns: u64, payload: &[u8]) -> Self {
        self.chain_raw(FormatVersion::CURRENT, kind.as_u8(), offset_ns, payload)
    }

    /// The link that follows `self` for one record in `version` (the same fields as
    /// [`chain`](Self::chain), through the version's hash).
    pub fn chain_in(
        &self,
        version: FormatVersion,
        kind: EventKind,
        offset_ns: u64,
        payload: &[u8],
    ) -> Self {
        self.chain_raw(version, kind.as_u8(), offset_ns, payload)
    }

    pub(crate) fn chain_raw(
        &self,
        version: FormatVersion,
        kind: u8,
        offset_ns: u64,
        payload: &[u8],
    ) -> Self {
        link_hash(
            version,
            &[
                &self.0,
                &[kind],
                &offset_ns.to_le_bytes(),
                &payload_len_u32(payload.len()).to_le_bytes(),
                payload,
            ],
        )
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = RecordingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || RecordingError::InvalidDigest(s.to_owned());
        let hex = s.as_bytes();
        if hex.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16).ok_or_else(invalid);
            let (hi, lo) = match pair {
                [hi, lo] => (digit(*hi)?, digit(*lo)?),
                _ => return Err(invalid()),
            };
            *byte = u8::try_from(hi * 16 + lo).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}

/// The kind of a recorded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// The first event, and only the first: JSON metadata of the session.
    Header = 1,
    /// Input from the user.
    Stdin = 2,
    /// Output of the target on stdout.
    Stdout = 3,
    /// Output of the target on stderr.
    Stderr = 4,
    /// The end of the session: JSON such as `{"exit_code":0,"reason":"..."}`; nothing follows.
    Close = 5,
}

impl EventKind {
    /// The byte this kind is stored as.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The kind stored as `byte`, if any.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Header),
            2 => Some(Self::Stdin),
            3 => Some(Self::Stdout),
            4 => Some(Self::Stderr),
            5 => Some(Self::Close),
            _ => None,
        }
    }

    /// Lowercase name of the kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Stdin => "stdin",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Close => "close",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What the event is.
    pub kind: EventKind,
    /// Nanoseconds since the session started; never smaller than the previous event's.
    pub offset_ns: u64,
    /// The bytes of the event: any bytes for stdin/stdout/stderr (empty is fine), JSON for
    /// header and close.
    pub payload: Bytes,
}

impl Event {
    /// An event of any kind.
    pub fn new(kind: EventKind, offset_ns: u64, payload: impl Into<Bytes>) -> Self {
        Self {
            kind,
            offset_ns,
            payload: payload.into(),
        }
    }

    /// The header event (offset 0) carrying the session's metadata, a JSON object such as
    /// `{"session_id":..,"user":..,"connection":..,"verb":..,"started_at":"<RFC 3339>"}`.
    ///
    /// # Errors
    /// [`RecordingError::InvalidEvent`] if `metadata` is not an object.
    pub fn header(metadata: &serde_json::Value) -> Result<Self, RecordingError> {
        if !metadata.is_object() {
            return Err(RecordingError::InvalidEvent(
                "header metadata must be a JSON object".to_owned(),
            ));
        }
        Ok(Self::new(
            EventKind::Header,
            0,
            serde_json::to_vec(metadata)?,
        ))
    }

    /// Input from the user.
    pub fn stdin(offset_ns: u64, payload: impl Into<Bytes>) -> Self {
        Self::new(EventKind::Stdin, offset_ns, payload)
    }

    /// Output on stdout.
    pub fn stdout(offset_ns: u64, payload: impl Into<Bytes>) -> Self {
        Self::new(EventKind::Stdout, offset_ns, payload)
    }

    /// Output on stderr.
    pub fn stderr(offset_ns: u64, payload: impl Into<Bytes>) -> Self {
        Self::new(EventKind::Stderr, offset_ns, payload)
    }

    /// The close event, carrying JSON such as `{"exit_code":0,"reason":"..."}`.
    ///
    /// # Errors
    /// [`RecordingError::Json`] if `info` cannot be serialized.
    pub fn close(offset_ns: u64, info: &serde_json::Value) -> Result<Self, RecordingError> {
        Ok(Self::new(
            EventKind::Close,
            offset_ns,
            serde_json::to_vec(info)?,
        ))
    }

    /// The time offset as a duration.
    pub fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_ns)
    }
}

/// One event read back (and verified against the chain) from a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Position of the record in the recording (0 is the header).
    pub index: u64,
    /// Byte offset of the record in the file.
    pub byte_offset: u64,
    /// What the event is.
    pub kind: EventKind,
    /// Nanoseconds since the session started.
    pub offset_ns: u64,
    /// The event's bytes (one record's worth: payloads over [`MAX_RECORD_PAYLOAD`] come back
    /// as several consecutive events of the same kind and offset).
    pub payload: Bytes,
    /// The chain link stored with (and verified for) this record.
    pub link: Digest,
}

impl RecordedEvent {
    /// Bytes the record takes in the file.
    pub fn record_len(&self) -> u64 {
        (RECORD_OVERHEAD + self.payload.len()) as u64
    }

    /// The time offset as a duration.
    pub fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_ns)
    }

    /// The payload parsed as JSON (header and close events).
    ///
    /// # Errors
    /// [`RecordingError::Json`] if the payload is not JSON.
    pub fn json(&self) -> Result<serde_json::Value, RecordingError> {
        Ok(serde_json::from_slice(&self.payload)?)
    }
}

/// The file header of a session's recording in the current version: magic, id length (u8),
/// id.
pub(crate) fn file_header(session_id: &SessionId) -> Vec<u8> {
    let id = session_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(FILE_MAGIC.len() + 1 + id.len());
    out.extend_from_slice(&FILE_MAGIC);
    out.push(id_len_byte(session_id));
    out.extend_from_slice(id);
    out
}

/// The fixed part in front of a record's payload: length (u32 LE), its bitwise complement
/// (u32 LE), kind (u8), time offset (u64 LE).
pub(crate) fn record_prefix(
    kind: EventKind,
    offset_ns: u64,
    payload_len: usize,
) -> [u8; RECORD_PREFIX_LEN] {
    let len = payload_len_u32(payload_len);
    let mut out = [0u8; RECORD_PREFIX_LEN];
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&(!len).to_le_bytes());
    out[8] = kind.as_u8();
    out[9..17].copy_from_slice(&offset_ns.to_le_bytes());
    out
}

/// Session ids are at most 64 bytes, so their length always fits.
fn id_len_byte(session_id: &SessionId) -> u8 {
    u8::try_from(session_id.as_str().len()).unwrap_or(u8::MAX)
}

/// Record payloads are at most [`MAX_RECORD_PAYLOAD`], so their length always fits.
fn payload_len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
