//! The deployment settings of the plugin: the gateway's `[plugins.slack]` table (each key
//! can also come from `HOOP_PLUGINS_SLACK_<KEY>`).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hoop_core::{ConfigError, PluginConfig};

/// Slack's Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";
/// How long the Socket Mode connection may stay silent (no message, no ping) before it is
/// dropped and opened again.
pub const DEFAULT_SOCKET_WATCHDOG: Duration = Duration::from_secs(60);

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    bot_token: Option<String>,
    app_token: Option<String>,
    signing_secret: Option<String>,
    api_url: Option<String>,
    default_channel: Option<String>,
    http_listen: Option<String>,
    socket_watchdog: Option<String>,
}

/// `[plugins.slack]`, checked. Its `Debug` shows which secrets are set, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct SlackSettings {
    /// Bot token (`xoxb-…`): posts and updates messages. Without it nothing is sent.
    pub bot_token: Option<String>,
    /// App-level token (`xapp-…`) with `connections:write`: Socket Mode interactivity.
    pub app_token: Option<String>,
    /// Signing secret: interactivity over HTTP on `http_listen`.
    pub signing_secret: Option<String>,
    /// The Web API's base URL (no trailing slash).
    pub api_url: String,
    /// A channel every review and session notice also goes to.
    pub default_channel: Option<String>,
    /// Where the signed HTTP interactivity endpoint listens (with `signing_secret`).
    pub http_listen: Option<SocketAddr>,
    /// How long Socket Mode may stay silent before reconnecting.
    pub socket_watchdog: Duration,
}

impl Default for SlackSettings {
    fn default() -> Self {
        Self {
            bot_token: None,
            app_token: None,
            signing_secret: None,
            api_url: DEFAULT_API_URL.to_owned(),
            default_channel: None,
            http_listen: None,
            socket_watchdog: DEFAULT_SOCKET_WATCHDOG,
        }
    }
}

impl fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("SlackSettings")
            .field("bot_token", &set(&self.bot_token))
            .field("app_token", &set(&self.app_token))
            .field("signing_secret", &set(&self.signing_secret))
            .field("api_url", &self.api_url)
            .field("default_channel", &self.default_channel)
            .field("http_listen", &self.http_listen)
            .field("socket_watchdog", &self.socket_watchdog)
            .finish()
    }
}

/// An empty string counts as unset (e.g. an environment variable set to nothing).
fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl SlackSettings {
    /// Parses and checks the settings; errors name the key.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault (never echoing a secret).
    pub fn parse(settings: &PluginConfig) -> Result<Self, ConfigError> {
        let raw: Raw = settings.parse()?;
        let bot_token = non_empty(raw.bot_token);
        if let Some(token) = &bot_token
            && !token.starts_with("xoxb-")
        {
            return Err(ConfigError::field(
                "bot_token",
                "must be a bot token (xoxb-…): Slack app → OAuth & Permissions → Bot User OAuth Token",
            ));
        }
        let app_token = non_empty(raw.app_token);
        if let Some(token) = &app_token
            && !token.starts_with("xapp-")
        {
            return Err(ConfigError::field(
                "app_token",
                "must be an app-level token (xapp-…) with connections:write: Slack app → Basic Information → App-Level Tokens",
            ));
        }
        let signing_secret = non_empty(raw.signing_secret);
        let api_url = match non_empty(raw.api_url) {
            None => DEFAULT_API_URL.to_owned(),
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                url.trim_end_matches('/').to_owned()
            }
            Some(_) => {
                return Err(ConfigError::field(
                    "api_url",
                    format!("must be an http(s) URL, e.g. {DEFAULT_API_URL}"),
                ));
            }
        };
        let default_channel = non_empty(raw.default_channel);
        if let Some(channel) = &default_channel
            && !crate::is_channel_id(channel)
        {
            return Err(ConfigError::field(
                "default_channel",
                format!("`{channel}` is not a Slack channel ID (like C0123456789)"),
            ));
        }
        let http_listen = match non_empty(raw.http_listen) {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                ConfigError::field(
                    "http_listen",
                    format!("`{text}` is not a socket address (host:port, e.g. 127.0.0.1:8011)"),
                )
            })?),
        };
        match (&signing_secret, &http_listen) {
            (Some(_), None) => {
                return Err(ConfigError::field(
                    "http_listen",
                    "required with signing_secret: where Slack's interactivity requests arrive (e.g. 127.0.0.1:8011)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::field(
                    "signing_secret",
                    "required with http_listen: requests are accepted only when signed (Slack app → Basic Information → Signing Secret)",
                ));
            }
            _ => {}
        }
        let socket_watchdog = match non_empty(raw.socket_watchdog) {
            None => DEFAULT_SOCKET_WATCHDOG,
            Some(text) => {
                let d = humantime::parse_duration(&text).map_err(|e| {
                    ConfigError::field(
                        "socket_watchdog",
                        format!("`{text}` is not a duration ({e}), e.g. 60s"),
                    )
                })?;
                if d < Duration::from_secs(1) {
                    return Err(ConfigError::field("socket_watchdog", "must be at least 1s"));
                }
                d
            }
        };
        Ok(Self {
            bot_token,
            app_token,
            signing_secret,
            api_url,
            default_channel,
            http_listen,
            socket_watchdog,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<SlackSettings, ConfigError> {
        SlackSettings::parse(&PluginConfig::from_value(json).unwrap())
    }

    #[test]
    fn defaults_and_checks_name_the_key() {
        let s = parse(serde_json::json!({})).unwrap();
        assert_eq!(s, SlackSettings::default());
        for (json, key) in [
            (serde_json::json!({"bot_token": "xoxp-1"}), "bot_token"),
            (serde_json::json!({"app_token": "xoxb-1"}), "app_token"),
            (serde_json::json!({"api_url": "ftp://x"}), "api_url"),
            (
                serde_json::json!({"default_channel": "#ops"}),
                "default_channel",
            ),
            (serde_json::json!({"signing_secret": "s"}), "http_listen"),
            (
                serde_json::json!({"http_listen": "127.0.0.1:1"}),
                "signing_secret",
            ),
            (
                serde_json::json!({"http_listen": "nope", "signing_secret": "s"}),
                "http_listen",
            ),
            (
                serde_json::json!({"socket_watchdog": "0s"}),
                "socket_watchdog",
            ),
        ] {
            let err = parse(json.clone()).unwrap_err();
            assert_eq!(err.field_path(), Some(key), "{json}: {err}");
        }
    }

    #[test]
    fn secrets_never_show() {
        let s = parse(serde_json::json!({
            "bot_token": "xoxb-very-secret",
            "app_token": "xapp-also-secret",
            "signing_secret": "shh-secret",
            "http_listen": "127.0.0.1:0",
            "api_url": "http://127.0.0.1:9/api/",
        }))
        .unwrap();
        assert_eq!(s.api_url, "http://127.0.0.1:9/api");
        let debug = format!("{s:?}");
        for value in ["very-secret", "also-secret", "shh-secret"] {
            assert!(!debug.contains(value), "{debug}");
        }
        assert!(debug.contains("<set>"), "{debug}");
        let err = parse(serde_json::json!({"bot_token": "xoxp-secret-value"})).unwrap_err();
        assert!(!err.to_string().contains("secret-value"), "{err}");
    }
}
