//! Masking styles and how a detected value is written to the output.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::DlpError;

/// How a detected value is replaced in the output.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Replace the value with its type tag: `[EMAIL_ADDRESS]`.
    #[default]
    Redact,
    /// Replace every alphanumeric (or non-ASCII) byte with `*`, keeping separators:
    /// `4111-1111-1111-1111` → `****-****-****-****`.
    Mask,
    /// Like `mask`, but keep the last 4 alphanumeric characters visible:
    /// `4111-1111-1111-1111` → `****-****-****-1111`. Values of 4 or fewer alphanumeric
    /// characters are masked entirely.
    Partial,
    /// Replace the value with a keyed tag, `[EMAIL_ADDRESS:3f9a1c2b7d4e5f60]`: the first
    /// 16 hex digits of HMAC-SHA256(hash key, value). The same value gives the same tag
    /// under the same key.
    Hash,
}

impl Style {
    /// The style's configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Redact => "redact",
            Style::Mask => "mask",
            Style::Partial => "partial",
            Style::Hash => "hash",
        }
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Style {
    type Err = DlpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "redact" => Ok(Style::Redact),
            "mask" => Ok(Style::Mask),
            "partial" => Ok(Style::Partial),
            "hash" => Ok(Style::Hash),
            other => Err(DlpError::UnknownStyle(other.to_owned())),
        }
    }
}

/// Writes masked values: one style and tag per kind.
pub(crate) struct Masker {
    styles: Vec<Style>,
    names: Vec<String>,
    tags: Vec<Vec<u8>>,
    mac: Option<Hmac<Sha256>>,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("styles", &self.styles)
            .field("names", &self.names)
            .field("keyed", &self.mac.is_some())
            .finish()
    }
}

#[inline]
fn maskable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

impl Masker {
    /// A masker for kinds named `names` with `styles` (same length).
    pub(crate) fn new(
        names: Vec<String>,
        styles: Vec<Style>,
        hash_key: &[u8],
    ) -> Result<Self, DlpError> {
        let mac = if hash_key.is_empty() {
            None
        } else {
            Some(
                <Hmac<Sha256> as Mac>::new_from_slice(hash_key)
                    .map_err(|_| DlpError::MissingHashKey)?,
            )
        };
        if mac.is_none() && styles.contains(&Style::Hash) {
            return Err(DlpError::MissingHashKey);
        }
        let tags = names
            .iter()
            .map(|n| format!("[{n}]").into_bytes())
            .collect();
        Ok(Masker {
            styles,
            names,
            tags,
            mac,
        })
    }

    /// Longest output a single masked value can be given beyond its own length.
    pub(crate) fn max_tag_len(&self) -> usize {
        self.names.iter().map(|n| n.len() + 19).max().unwrap_or(0)
    }

    /// Write the masked form of a whole value (or of a value's first part).
    pub(crate) fn value(&self, kind: u16, value: &[u8], out: &mut Vec<u8>) {
        let k = usize::from(kind);
        match self.styles[k] {
            Style::Redact => out.extend_from_slice(&self.tags[k]),
            Style::Mask => out.extend(value.iter().map(|&b| if maskable(b) { b'*' } else { b })),
            Style::Partial => {
                let total = value.iter().filter(|&&b| maskable(b)).count();
                let keep_from = if total > 4 { total - 4 } else { total };
                let mut seen = 0;
                out.extend(value.iter().map(|&b| {
                    if maskable(b) {
                        seen += 1;
                        if seen > keep_from && b.is_ascii_alphanumeric() {
                            b
                        } else {
                            b'*'
                        }
                    } else {
                        b
                    }
                }));
            }
            Style::Hash => {
                let mut tag = [0u8; 8];
                if let Some(mac) = &self.mac {
                    let mut m = mac.clone();
                    m.update(value);
                    let digest = m.finalize().into_bytes();
                    tag.copy_from_slice(&digest[..8]);
                }
                out.push(b'[');
                out.extend_from_slice(self.names[k].as_bytes());
                out.push(b':');
                for b in tag {
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 15)]);
                }
                out.push(b']');
            }
        }
    }

    /// Write the masked form of the continuation of a value that started in an earlier
    /// segment (a PEM body, or a token cut at the 1 KiB holdback limit): nothing for
    /// `redact` and `hash` (their tag was written already), `*` for `mask` and `partial`.
    pub(crate) fn continuation(&self, kind: u16, value: &[u8], out: &mut Vec<u8>) {
        match self.styles[usize::from(kind)] {
            Style::Redact | Style::Hash => {}
            Style::Mask | Style::Partial => {
                out.extend(value.iter().map(|&b| if maskable(b) { b'*' } else { b }));
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";
