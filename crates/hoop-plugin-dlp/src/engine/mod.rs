//! The DLP detection and masking engine.
//!
//! An [`Engine`] is built once from an [`EngineConfig`] (info types to mask, masking
//! styles, custom types, hash key) and shared cheaply (`Clone` is an `Arc` clone; it is
//! `Send + Sync`). It masks a whole buffer with [`Engine::redact`], or a byte stream with a
//! [`StreamRedactor`] from [`Engine::stream`]. Input is arbitrary bytes: detectors work on
//! ASCII structure and bytes that are not part of a detected value (including invalid
//! UTF-8) pass through untouched.
//!
//! # Detection
//!
//! Detection does not run one regex per type over every byte. Three cheap passes find
//! *triggers*, and only triggers are examined further, by small hand-written parsers
//! that also check the checksums:
//!
//! * `memchr` finds every `@` (e-mail addresses);
//! * one Aho-Corasick automaton (SIMD "Teddy" prefilter over at most 32 case-sensitive
//!   literals chosen so that their first three bytes are rare in ordinary text) finds
//!   `://`, `www.`, `-----BEGIN`, `eyJ`, `AKIA`/`ASIA`/..., `hp_` (in `ghp_`...),
//!   `ub_pat_` (in `github_pat_`), `xox`, `kie:` (in `Cookie:`) and `ss_key`/`ws_secret`
//!   (in AWS secret key names); each handler then checks the whole keyword around it;
//! * a digit scanner visits each run of digits (found 64 bytes at a time with a bit mask
//!   built from byte comparisons the compiler vectorises) and decides from its length and
//!   neighbours which number-based types could apply (cards, phones, SSN, IPv4/IPv6, IMEI,
//!   CPF, passport, IBAN, VIN, card tracks). Runs inside lower-case words and hex ids (and
//!   `-`-joined chains of them: UUIDs), ISO dates and clock times (with a UTC offset) are
//!   skipped whole; versions, counts and the like are rejected after a few byte
//!   comparisons.
//!
//! Validation: Luhn (cards, IMEI, track PANs) plus issuer prefixes per card length
//! (12 digits: Maestro only; 15: Amex and JCB only, other 15-digit Luhn numbers are
//! IMEIs); telephone numbering plans from libphonenumber's metadata (the `phonenumber`
//! crate, compiled once per process) for the phone candidates whose shape is not enough:
//! numbers after a `00`/`011` prefix, `+` numbers of 7-8 digits or of more than 11 in
//! spaced groups, national formats with the trunk prefix `0` (UK, Germany, France, India),
//! Brazilian and Indian numbers without it, and bare 10-11 digit numbers, which are also
//! only phones next to a phone-like label (a key on the same line such as `phone=` or
//! `"tel": `, or the header of the psql/MySQL/Markdown table column they are in, carried
//! from line to line; see `label.rs`). Next to such a label, national numbers without a
//! trunk prefix (7-13 digits, bare or in groups of 2+; the NANP, Brazil, India, Germany,
//! the UK, France: short and special-service numbers such as `1800 12 3456`) and `+`
//! numbers of 5-6 digits are phones too when valid in the plan. A phone number's extension (`x123`, `ext. 12`,
//! `#204`) is masked with it. Formatted NANP numbers (`(415) 555-0132`, `415-555-0132`)
//! are accepted by shape (area and exchange codes starting with 2-9). mod-97 and
//! a per-country length table for IBAN; the ISO 3779 check digit for VIN; both CPF check
//! digits; SSN area/group/serial rules; octet ranges for IPv4 and group structure for
//! IPv6. Context-dependent types look back on the same line only: `passport` within 40
//! bytes before a US passport number; `ssn`/`social security` within 40 bytes before a
//! bare 9-digit SSN; `imei` before a 15-digit number with an American Express prefix; an
//! `aws_secret_access_key`-like name followed by separators before an AWS secret key.
//! Custom types ([`CustomType`]) run their regex on each line (multi-line mode) or their
//! keywords (Aho-Corasick, whole words, optionally ASCII case-insensitive) on the batch.
//!
//! No detector reads across a `\n` (PEM blocks span lines through the stream state
//! instead), so detecting over a batch of lines finds exactly what detecting line by line
//! would.
//!
//! # Overlaps
//!
//! Candidates are resolved greedily: the **leftmost** wins, then the **longest**, then the
//! type with the higher fixed priority (the order of [`builtin_types`], where more specific
//! types come first; custom types come after all built-in ones). A candidate that overlaps
//! an accepted one is dropped. So an e-mail address, IP address or phone number inside a
//! URL is masked as part of the `URL`; a card number inside a track is masked as the
//! track.
//!
//! The URL family is decided by the URL detector itself, which reports one type per URL:
//! `SLACK_TOKEN` for a `hooks.slack.com/services/` webhook, else `STORAGE_SIGNED_URL` for a
//! signed storage URL, else — if the URL has a `user:password@` part and
//! `PASSWORD_IN_URL` is active — `PASSWORD_IN_URL` for the password alone (the rest of the
//! URL stays readable), else `URL` for http(s)/ftp URLs. Each more specific type is only
//! reported when active; otherwise the next applies. Other schemes (`postgres://`,
//! `redis://`, ...) are only examined for passwords.
//!
//! # Segmentation and holdback
//!
//! Input is cut into *segments* by content alone, never by chunk boundaries:
//!
//! * a line, up to and including its `\n`, when that is at most [`MAX_HOLDBACK`] (1024)
//!   bytes;
//! * otherwise the first 1024 bytes of the line form a *window*, which is detected as a
//!   whole and then cut: after the last delimiter (whitespace, `,;|"'<>()[]{}&`) at or
//!   before byte 768 that no accepted candidate (including its context keyword) crosses;
//!   failing that, after the first such delimiter past byte 768; failing that, at the
//!   window end. The part after the cut starts the next window. A value of up to 256 bytes
//!   crossing a cut at or before byte 768 is therefore always seen whole;
//! * at the end of the input (or on [`StreamRedactor::flush`]), the remaining bytes.
//!
//! Both [`Engine::redact`] and [`StreamRedactor`] use this same segmentation, and each
//! segment is redacted from its own bytes plus a small carried state, so **the streaming
//! output equals the one-shot output for every chunking of the same input** when the
//! stream is flushed only at its end. A stream never holds back more than 1024 bytes.
//!
//! Carried state covers values longer than a segment:
//!
//! * a PEM block (`-----BEGIN ... PRIVATE KEY-----`) whose END line is not on the same
//!   line: every following segment is masked until the `-----END ... PRIVATE KEY-----`
//!   marker (inclusive), without holding the block (in windows of a long line, the last
//!   64 bytes are kept back so that a straddling END marker is found). A block with no END
//!   within 64 KiB stops being masked there;
//! * a token cut at a window end (a URL, JWT, signed URL or Slack token over ~1 KiB, a
//!   very long Cookie header): the following bytes are masked up to the end of the token
//!   (whitespace or quote; for cookies, the end of the line).
//!
//! # Mid-stream flush
//!
//! [`StreamRedactor::flush`] releases the held bytes as a final segment, e.g. after 50 ms
//! of silence. Output then may differ from the one-shot output: a value whose first part
//! was flushed is detected (or not) from that part alone, and its remaining part arrives
//! as the start of a new segment, where it may not be recognised and **may leak**. The
//! carried state (an open PEM block, a token continuation) survives a flush.
//!
//! # Masking styles
//!
//! [`Style::Redact`] (default) writes `[EMAIL_ADDRESS]`; [`Style::Mask`] keeps the length
//! and separators (`****-****-****-****`); [`Style::Partial`] keeps the last 4
//! alphanumeric characters; [`Style::Hash`] writes `[EMAIL_ADDRESS:3f9a1c2b7d4e5f60]`, the
//! first 16 hex digits of HMAC-SHA256(hash key, value). For values spanning several
//! segments (PEM blocks, cut tokens), `redact` and `hash` write their tag once, computed
//! from the first segment's part, and `partial` masks the continuation entirely.

mod checksum;
mod custom;
mod detect;
mod error;
mod ip;
mod label;
mod literal;
mod mask;
mod numeric;
mod plan;
mod stream;
mod types;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use custom::CustomType;
pub use error::DlpError;
pub use mask::Style;
pub use stream::{MAX_HOLDBACK, StreamRedactor};
pub use types::{InfoTypeInfo, builtin_types};

use custom::CustomSet;
use detect::Detector;
use mask::Masker;
use types::{BUILTIN, BUILTIN_COUNT, builtin_kind};

/// What to mask and how. Its `Debug` never shows the hash key.
#[derive(Clone, Default)]
pub struct EngineConfig {
    /// Info types to mask: built-in names (see [`builtin_types`]) and, optionally, names
    /// of `custom` types (custom types are always active).
    pub types: Vec<String>,
    /// Style of every type without an entry in `styles`.
    pub default_style: Style,
    /// Per-type style overrides (keys must be active types).
    pub styles: HashMap<String, Style>,
    /// Custom info types.
    pub custom: Vec<CustomType>,
    /// Deployment key of the `hash` style (required, non-empty, when it is used).
    pub hash_key: Vec<u8>,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("types", &self.types)
            .field("default_style", &self.default_style)
            .field("styles", &self.styles)
            .field("custom", &self.custom)
            .field("hash_key", &RedactedKey(&self.hash_key))
            .finish()
    }
}

/// `[]` for no key, `<redacted>` for a key.
pub(crate) struct RedactedKey<'a>(pub(crate) &'a [u8]);

impl std::fmt::Debug for RedactedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("[]")
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl EngineConfig {
    /// A config masking `types` with the default style.
    pub fn new<I, S>(types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EngineConfig {
            types: types.into_iter().map(Into::into).collect(),
            ..EngineConfig::default()
        }
    }

    /// A config masking every built-in type with the default style.
    pub fn all_builtin() -> Self {
        EngineConfig::new(BUILTIN.iter().map(|t| t.name))
    }
}

/// Result of [`Engine::redact`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    /// The masked bytes.
    pub output: Vec<u8>,
    /// Values masked per info type (types with none are left out).
    pub counts: BTreeMap<String, u64>,
    /// Number of input bytes masked.
    pub masked_bytes: u64,
}

/// Counters of [`Engine::redact_into`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactStats {
    /// Values masked per info type (types with none are left out).
    pub counts: BTreeMap<String, u64>,
    /// Number of input bytes masked.
    pub masked_bytes: u64,
}

/// One masked value, located in the input (see [`Engine::findings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Info type name.
    pub info_type: String,
    /// Offset of the first masked byte.
    pub start: usize,
    /// Offset one past the last masked byte.
    pub end: usize,
}

/// Shared, immutable engine state.
#[derive(Debug)]
pub(crate) struct Inner {
    detector: Detector,
    masker: Masker,
    /// Name per kind: built-in types (all of them), then custom types.
    names: Vec<String>,
    /// Names of the active types.
    active: Vec<String>,
}

/// The DLP engine: detects info types and masks them. Cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Build an engine; fails on unknown types, bad custom types or styles, or a `hash`
    /// style without a key.
    pub fn new(config: EngineConfig) -> Result<Self, DlpError> {
        let first_custom = u16::try_from(BUILTIN_COUNT).unwrap_or(u16::MAX);
        let custom = CustomSet::build(&config.custom, first_custom)?;
        let mut names: Vec<String> = BUILTIN.iter().map(|t| t.name.to_owned()).collect();
        names.extend(config.custom.iter().map(|c| c.name.clone()));
        let kind_of = |name: &str| names.iter().position(|n| n == name);
        let unknown = |name: &str| {
            let mut valid: Vec<String> = BUILTIN.iter().map(|t| t.name.to_owned()).collect();
            valid.sort();
            valid.extend(config.custom.iter().map(|c| c.name.clone()));
            DlpError::UnknownType {
                name: name.to_owned(),
                valid,
            }
        };
        let mut enabled = 0u32;
        for t in &config.types {
            match builtin_kind(t) {
                Some(k) => enabled |= 1 << k,
                None if kind_of(t).is_some() => {}
                None => return Err(unknown(t)),
            }
        }
        let is_active = |k: usize| k >= BUILTIN_COUNT || enabled & (1 << k) != 0;
        let mut styles = vec![config.default_style; names.len()];
        for (name, style) in &config.styles {
            let k = kind_of(name).ok_or_else(|| unknown(name))?;
            if !is_active(k) {
                return Err(DlpError::StyleForInactiveType { name: name.clone() });
            }
            styles[k] = *style;
        }
        // Inactive kinds never produce output: give them a style that needs no key.
        for (k, s) in styles.iter_mut().enumerate() {
            if !is_active(k) {
                *s = Style::Redact;
            }
        }
        let masker = Masker::new(names.clone(), styles, &config.hash_key)?;
        if enabled & types::B::Phone.bit() != 0 {
            plan::warm_up();
        }
        let active = names
            .iter()
            .enumerate()
            .filter(|(k, _)| is_active(*k))
            .map(|(_, n)| n.clone())
            .collect();
        Ok(Engine {
            inner: Arc::new(Inner {
                detector: Detector::new(enabled, custom),
                masker,
                names,
                active,
            }),
        })
    }

    /// Mask a whole buffer. Same output as a [`StreamRedactor`] fed the same bytes in any
    /// chunks and flushed at the end.
    pub fn redact(&self, input: &[u8]) -> Redacted {
        let mut s = self.stream();
        let mut output = Vec::with_capacity(input.len() + input.len() / 16 + 16);
        s.push(input, &mut output);
        s.flush(&mut output);
        Redacted {
            output,
            counts: s.counts(),
            masked_bytes: s.masked_bytes(),
        }
    }

    /// Like [`Engine::redact`], but appends the output to `out` (which callers can reuse
    /// across calls to avoid allocating and page-faulting a fresh buffer each time).
    pub fn redact_into(&self, input: &[u8], out: &mut Vec<u8>) -> RedactStats {
        let mut s = self.stream();
        out.reserve(input.len());
        s.push(input, out);
        s.flush(out);
        RedactStats {
            counts: s.counts(),
            masked_bytes: s.masked_bytes(),
        }
    }

    /// The values [`Engine::redact`] masks in `input`, with their offsets. A value masked
    /// over several segments (a PEM block) is one finding.
    pub fn findings(&self, input: &[u8]) -> Vec<Finding> {
        let mut s = StreamRedactor::new(Arc::clone(&self.inner), true);
        let mut sink = Vec::with_capacity(input.len());
        s.push(input, &mut sink);
        s.flush(&mut sink);
        s.take_findings()
    }

    /// A redactor for one byte stream.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor::new(Arc::clone(&self.inner), false)
    }

    /// Names of the active info types (built-in in priority order, then custom).
    pub fn active_types(&self) -> &[String] {
        &self.inner.active
    }

    /// Upper bound of the output growth per masked value: a masked value never writes more
    /// than its own length plus this many bytes.
    pub fn max_tag_len(&self) -> usize {
        self.inner.masker.max_tag_len()
    }
}
