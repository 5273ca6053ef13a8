//! The deployment settings: the gateway config's `[plugins.indexer]` table.

use std::time::Duration;

use hoop_core::{ConfigError, PluginConfig};
use serde::Deserialize;

/// Default `max_text_per_session`: 1 MiB of input and 1 MiB of output per session.
pub const DEFAULT_MAX_TEXT: usize = 1024 * 1024;
/// Default `commit_interval`.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Default `commit_docs`.
pub const DEFAULT_COMMIT_DOCS: usize = 1000;

/// The plugin's deployment settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How much of a session's input, and of its output, is indexed (each); the rest is
    /// left out and the session flagged `truncated`.
    pub max_text_per_session: usize,
    /// How long an indexed session may wait for the commit that makes it searchable.
    pub commit_interval: Duration,
    /// How many indexed sessions make a commit at once, without waiting for the interval.
    pub commit_docs: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_text_per_session: DEFAULT_MAX_TEXT,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            commit_docs: DEFAULT_COMMIT_DOCS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    max_text_per_session: Option<serde_json::Value>,
    commit_interval: Option<String>,
    commit_docs: Option<i64>,
}

/// Parses a size: a whole number of bytes, or a number with a unit (`B`, `KiB`, `MiB`,
/// `GiB`, `KB`, `MB`, `GB`; case-insensitive), e.g. `1MiB`, `512 KiB`, `65536`.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. \"1MiB\" or \"65536\""))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use B, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(factor)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("`{text}` is too large"))
}

impl Settings {
    /// Parses and checks the `[plugins.indexer]` table; errors name the key.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key at fault.
    pub fn parse(settings: &PluginConfig) -> Result<Self, ConfigError> {
        let raw: Raw = settings.parse()?;
        let mut out = Self::default();
        if let Some(value) = raw.max_text_per_session {
            let size = match &value {
                serde_json::Value::String(s) => parse_size(s),
                serde_json::Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("`{n}` is not a whole number of bytes")),
                other => Err(format!("`{other}` is not a size; write e.g. \"1MiB\"")),
            }
            .map_err(|e| ConfigError::field("max_text_per_session", e))?;
            if !(1024..=(256 << 20)).contains(&size) {
                return Err(ConfigError::field(
                    "max_text_per_session",
                    format!("{size} bytes: must be between 1KiB and 256MiB"),
                ));
            }
            out.max_text_per_session = size;
        }
        if let Some(text) = raw.commit_interval {
            let interval = humantime::parse_duration(&text).map_err(|e| {
                ConfigError::field(
                    "commit_interval",
                    format!("`{text}` is not a duration ({e}); write e.g. \"1s\" or \"500ms\""),
                )
            })?;
            if interval < Duration::from_millis(10) || interval > Duration::from_secs(600) {
                return Err(ConfigError::field(
                    "commit_interval",
                    format!("`{text}`: must be between 10ms and 10m"),
                ));
            }
            out.commit_interval = interval;
        }
        if let Some(n) = raw.commit_docs {
            out.commit_docs = usize::try_from(n)
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    ConfigError::field("commit_docs", format!("{n}: must be between 1 and 1000000"))
                })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<Settings, ConfigError> {
        Settings::parse(&PluginConfig::from_value(v).unwrap())
    }

    #[test]
    fn sizes_and_errors_name_the_key() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1 XB").is_err());
        assert_eq!(parse(serde_json::json!({})).unwrap(), Settings::default());
        let s = parse(serde_json::json!({"max_text_per_session": "64KiB", "commit_interval": "50ms", "commit_docs": 10})).unwrap();
        assert_eq!(s.max_text_per_session, 64 << 10);
        assert_eq!(s.commit_interval, Duration::from_millis(50));
        assert_eq!(s.commit_docs, 10);
        for (bad, key) in [
            (
                serde_json::json!({"max_text_per_session": "huge"}),
                "max_text_per_session",
            ),
            (
                serde_json::json!({"max_text_per_session": 10}),
                "max_text_per_session",
            ),
            (
                serde_json::json!({"commit_interval": "never"}),
                "commit_interval",
            ),
            (serde_json::json!({"commit_docs": 0}), "commit_docs"),
        ] {
            assert_eq!(parse(bad).unwrap_err().field_path(), Some(key));
        }
        assert!(parse(serde_json::json!({"nope": 1})).is_err());
    }
}
