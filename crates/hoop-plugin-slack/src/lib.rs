//! The `slack` plugin: access reviews in Slack, with Approve / Reject buttons kept up to
//! date, and session notices.
//!
//! Attached to every new connection (and detachable). Per connection its config is
//! `{"channels": ["C…"], "notify": ["reviews", "sessions"]}` (`notify` defaults to both).
//! The deployment settings (`[plugins.slack]`, see [`settings`]) hold the tokens.
//!
//! Everything happens outside sessions, from the durable event log (the `worker` module): a
//! `review.created` posts one Block Kit message per channel, every later review event
//! rewrites them (and tells the requester in a direct message once decided), and sessions
//! that open and close get a thread. Clicks arrive over Socket Mode (the `socket` module) or the
//! signed HTTP endpoint ([`http`]) and are decided through the host's reviews port with the
//! API's very rules (the `interact` module). What was posted is kept in the plugin's own table
//! ([`table`]).

use std::sync::{Arc, RwLock};

use hoop_core::{
    Activation, AttachPolicy, ConfigError, Deployment, Plugin, PluginConfig, PluginDescriptor,
    PluginFactory, PluginMigration, Resources, StartError,
};

pub mod api;
pub mod http;
mod interact;
pub mod messages;
mod runtime;
pub mod settings;
mod socket;
pub mod table;
mod worker;

pub use settings::SlackSettings;

/// Registry name of the plugin.
pub const NAME: &str = "slack";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Posts access reviews to Slack with Approve / Reject buttons kept up to date, and session notices.",
)
.with_configuration(
    "`channels`: Slack channel IDs to post to (plus the gateway's `default_channel`); \
     `notify`: what to post, `reviews` and/or `sessions` (default both). Tokens go in the \
     gateway's [plugins.slack] settings",
    r#"{"channels":["C0123456789"],"notify":["reviews","sessions"]}"#,
)
.with_attach(AttachPolicy::Default)
.with_order(0);

/// What a connection's messages are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Notify {
    /// Review requests, kept up to date.
    Reviews,
    /// Sessions opening and closing.
    Sessions,
}

/// The slack plugin's config on a connection.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Slack channel IDs (`C…` or `G…`) to post to.
    #[serde(default)]
    pub channels: Vec<String>,
    /// What to post; `None` means both reviews and sessions.
    #[serde(default)]
    pub notify: Option<Vec<Notify>>,
}

/// Whether `id` looks like a Slack channel ID: `C` or `G` then 8 to 20 upper-case letters or
/// digits.
fn is_channel_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('C' | 'G'))
        && (9..=21).contains(&id.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl SlackConfig {
    /// A config from its JSON, checked.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ConfigError> {
        Self::checked(&PluginConfig::from_value(value)?)
    }

    /// Whether events of this kind are posted.
    pub fn notifies(&self, what: Notify) -> bool {
        self.notify.as_ref().is_none_or(|n| n.contains(&what))
    }

    fn checked(config: &PluginConfig) -> Result<Self, ConfigError> {
        let parsed: Self = config.parse()?;
        for (i, channel) in parsed.channels.iter().enumerate() {
            if !is_channel_id(channel) {
                return Err(ConfigError::field(
                    format!("channels[{i}]"),
                    format!(
                        "`{channel}` is not a Slack channel ID (like C0123456789: \
                         channel details → About → Channel ID)"
                    ),
                ));
            }
        }
        Ok(parsed)
    }
}

/// What the running deployment shares with the factory: its settings (for the status of
/// attachments) and its health (for `ListPlugins`).
#[derive(Debug)]
struct Deployed {
    settings: SlackSettings,
    health: Arc<runtime::Health>,
}

static DEPLOYED: RwLock<Option<Deployed>> = RwLock::new(None);

fn deployed<T>(f: impl FnOnce(Option<&Deployed>) -> T) -> T {
    let guard = DEPLOYED.read().unwrap_or_else(|e| e.into_inner());
    f(guard.as_ref())
}

static MIGRATIONS: &[PluginMigration] = &[PluginMigration::new(table::MIGRATION_NAME, || {
    Box::new(Box::new(table::Migration) as Box<dyn sea_orm_migration::MigrationTrait>)
})];

/// Factory of the slack plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlackFactory;

/// The slack plugin on one connection. It does nothing within sessions: it works from the
/// event log.
#[derive(Debug)]
pub struct SlackPlugin {
    channels: Vec<String>,
}

impl SlackPlugin {
    /// The channels notified.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }
}

impl Plugin for SlackPlugin {
    fn name(&self) -> &str {
        NAME
    }
}

impl PluginFactory for SlackFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        SlackConfig::checked(config).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        let Ok(c) = SlackConfig::checked(config) else {
            return Activation::Inactive("invalid config".to_owned());
        };
        let (has_token, default_channel) = deployed(|d| match d {
            Some(d) => (
                d.settings.bot_token.is_some(),
                d.settings.default_channel.clone(),
            ),
            None => (false, None),
        });
        let mut channels = c.channels.clone();
        if let Some(default) = default_channel
            && !channels.contains(&default)
        {
            channels.push(default);
        }
        if channels.is_empty() {
            return Activation::Inactive(
                "no channel: set config.channels (or the gateway's [plugins.slack] default_channel) to send notifications"
                    .to_owned(),
            );
        }
        if !has_token {
            return Activation::Inactive(
                "no bot token: set bot_token in the gateway's [plugins.slack] (or HOOP_PLUGINS_SLACK_BOT_TOKEN) to send notifications"
                    .to_owned(),
            );
        }
        let what: Vec<&str> = [(Notify::Reviews, "reviews"), (Notify::Sessions, "sessions")]
            .into_iter()
            .filter(|(n, _)| c.notifies(*n))
            .map(|(_, w)| w)
            .collect();
        if what.is_empty() {
            return Activation::Inactive("config.notify is empty: nothing is posted".to_owned());
        }
        Activation::Active(format!(
            "posts {} to {}",
            what.join(" and "),
            channels.join(", ")
        ))
    }

    fn build(
        &self,
        config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let SlackConfig { channels, .. } = SlackConfig::checked(config)?;
        Ok(Arc::new(SlackPlugin { channels }))
    }

    fn validate_settings(&self, settings: &PluginConfig) -> Result<(), ConfigError> {
        SlackSettings::parse(settings).map(drop)
    }

    fn start(&self, deployment: &Deployment) -> Result<(), StartError> {
        let settings = SlackSettings::parse(deployment.settings())
            .map_err(|e| StartError::new(e.to_string()))?;
        let health = Arc::new(runtime::Health::default());
        {
            let mut guard = DEPLOYED.write().unwrap_or_else(|e| e.into_inner());
            *guard = Some(Deployed {
                settings: settings.clone(),
                health: Arc::clone(&health),
            });
        }
        if settings.bot_token.is_none() {
            tracing::info!("slack: no bot_token in [plugins.slack]: nothing is sent");
            return Ok(());
        }
        let api = api::SlackApi::new(
            &settings.api_url,
            settings.bot_token.as_deref(),
            settings.app_token.as_deref(),
        )
        .map_err(StartError::new)?;
        let ctx = Arc::new(runtime::Ctx {
            api,
            db: deployment.database::<sea_orm::DatabaseConnection>()?,
            directory: deployment.directory()?,
            reviews: deployment.reviews()?,
            redactor: deployment.redactor()?,
            health: Arc::clone(&health),
            settings: settings.clone(),
            rewriting: tokio::sync::Mutex::new(()),
        });
        deployment.spawn(worker::run(Arc::clone(&ctx), deployment.clone()));
        if settings.app_token.is_some() {
            health.socket(runtime::SocketState::Connecting, None);
            deployment.spawn(socket::run(Arc::clone(&ctx), deployment.cancellation()));
        }
        if let (Some(addr), Some(secret)) = (settings.http_listen, settings.signing_secret.clone())
        {
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(tokio::net::TcpListener::from_std)
                .map_err(|e| StartError::new(format!("http_listen {addr}: {e}")))?;
            let bound = listener
                .local_addr()
                .map_err(|e| StartError::new(format!("http_listen {addr}: {e}")))?;
            tracing::info!(addr = %bound, path = http::PATH, "slack interactivity endpoint listening");
            health.http(format!("http://{bound}{}", http::PATH));
            deployment.spawn(http::serve(
                listener,
                Arc::clone(&ctx),
                secret,
                deployment.cancellation(),
            ));
        }
        Ok(())
    }

    fn deployment_status(&self) -> Option<String> {
        deployed(|d| {
            d.map(|d| {
                if d.settings.bot_token.is_none() {
                    "no bot_token in [plugins.slack]: sends nothing".to_owned()
                } else {
                    d.health.describe()
                }
            })
        })
    }

    fn migrations(&self) -> &'static [PluginMigration] {
        MIGRATIONS
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = SlackFactory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_until_a_channel_and_a_token_are_set() {
        let none = SlackFactory.activation(&PluginConfig::empty());
        assert!(!none.is_active());
        assert!(none.status().contains("no channel"), "{}", none.status());
        let config =
            PluginConfig::from_value(serde_json::json!({"channels": ["C0123456789"]})).unwrap();
        // No deployment started in this process: no bot token.
        let activation = SlackFactory.activation(&config);
        assert!(!activation.is_active());
        assert!(
            activation.status().contains("no bot token"),
            "{}",
            activation.status()
        );
    }

    #[test]
    fn notify_defaults_to_both_and_is_checked() {
        let both = SlackConfig::from_value(serde_json::json!({"channels": []})).unwrap();
        assert!(both.notifies(Notify::Reviews) && both.notifies(Notify::Sessions));
        let reviews = SlackConfig::from_value(serde_json::json!({"notify": ["reviews"]})).unwrap();
        assert!(reviews.notifies(Notify::Reviews) && !reviews.notifies(Notify::Sessions));
        let err =
            SlackConfig::from_value(serde_json::json!({"notify": ["everything"]})).unwrap_err();
        assert_eq!(err.field_path(), Some("notify[0]"));
    }

    #[test]
    fn channel_ids_are_checked() {
        let config = PluginConfig::from_value(serde_json::json!({"channels": ["#ops"]})).unwrap();
        let err = SlackFactory.validate(&config).unwrap_err();
        assert_eq!(err.field_path(), Some("channels[0]"));
    }
}
