//! The deployment settings: the gateway config's `[plugins.webhooks]` table.

use std::time::Duration;

use hoop_core::{ConfigError, PluginConfig};
use serde::Deserialize;

/// The retry schedule of Standard Webhooks: the delay before each attempt (the first at
/// once). After the last one fails, the delivery is `failed`.
pub const DEFAULT_SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Default `timeout` of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The plugin's deployment settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Whether endpoints may resolve to loopback, private, link-local and other
    /// non-public addresses (default false).
    pub allow_private_networks: bool,
    /// How long one attempt may take, connecting and reading the answer included.
    pub timeout: Duration,
    /// The delay before each attempt; its length is the number of attempts.
    pub retry_schedule: Vec<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            timeout: DEFAULT_TIMEOUT,
            retry_schedule: DEFAULT_SCHEDULE.to_vec(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    allow_private_networks: bool,
    timeout: Option<String>,
    retry_schedule: Option<Vec<String>>,
}

fn duration(field: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text).map_err(|e| {
        ConfigError::field(
            field,
            format!("`{text}` is not a duration ({e}); write e.g. \"15s\" or \"2m\""),
        )
    })
}

impl Settings {
    /// Parses and checks the `[plugins.webhooks]` table; errors name the key.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key at fault.
    pub fn parse(settings: &PluginConfig) -> Result<Self, ConfigError> {
        let raw: Raw = settings.parse()?;
        let mut out = Self {
            allow_private_networks: raw.allow_private_networks,
            ..Self::default()
        };
        if let Some(text) = raw.timeout {
            let timeout = duration("timeout", &text)?;
            if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(300) {
                return Err(ConfigError::field(
                    "timeout",
                    format!("`{text}`: must be between 100ms and 5m"),
                ));
            }
            out.timeout = timeout;
        }
        if let Some(schedule) = raw.retry_schedule {
            if schedule.is_empty() || schedule.len() > 32 {
                return Err(ConfigError::field(
                    "retry_schedule",
                    "must list 1 to 32 delays (the first is usually \"0s\")",
                ));
            }
            out.retry_schedule = schedule
                .iter()
                .enumerate()
                .map(|(i, text)| duration(&format!("retry_schedule[{i}]"), text))
                .collect::<Result<_, _>>()?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Settings, ConfigError> {
        Settings::parse(&PluginConfig::from_value(json).unwrap())
    }

    #[test]
    fn defaults_and_errors_naming_the_key() {
        assert_eq!(parse(serde_json::json!({})).unwrap(), Settings::default());
        let s = parse(
            serde_json::json!({"allow_private_networks": true, "timeout": "2s",
            "retry_schedule": ["0s", "100ms"]}),
        )
        .unwrap();
        assert!(s.allow_private_networks);
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(
            s.retry_schedule,
            [Duration::ZERO, Duration::from_millis(100)]
        );
        let err = parse(serde_json::json!({"timeout": "soon"})).unwrap_err();
        assert_eq!(err.field_path(), Some("timeout"));
        let err = parse(serde_json::json!({"retry_schedule": ["0s", "x"]})).unwrap_err();
        assert_eq!(err.field_path(), Some("retry_schedule[1]"));
        let err = parse(serde_json::json!({"alow_private_networks": true})).unwrap_err();
        assert!(err.message().contains("unknown field"), "{err}");
    }
}
