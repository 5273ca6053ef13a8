//! The `slack` plugin: notifies Slack channels of access requests and session activity.
//!
//! Attached to every new connection (and detachable); active once its config names at least
//! one channel: `{"channels": ["C0123456789"]}`. Sending arrives with the Slack issue; until
//! then the plugin validates channels but sends nothing, and the registry says so.

use std::sync::Arc;

use hoop_core::{
    Activation, AttachPolicy, ConfigError, Implementation, Plugin, PluginConfig, PluginDescriptor,
    PluginFactory, Resources,
};

/// Registry name of the plugin.
pub const NAME: &str = "slack";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Sends Slack notifications for access requests and session activity.",
)
.with_configuration(
    "`channels`: Slack channel IDs to notify; active once at least one is set",
    r#"{"channels":["C0123456789"]}"#,
)
.with_attach(AttachPolicy::Default)
.with_order(0)
.with_implementation(Implementation::Pending(
    "validates channels but sends nothing yet: notifications arrive with the Slack issue",
));

/// The slack plugin's config.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Slack channel IDs (`C…` or `G…`) to notify.
    #[serde(default)]
    pub channels: Vec<String>,
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

/// Factory of the slack plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlackFactory;

/// The slack plugin on one connection.
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
        match SlackConfig::checked(config) {
            Ok(c) if !c.channels.is_empty() => {
                Activation::Active(format!("notifies {}", c.channels.join(", ")))
            }
            _ => Activation::Inactive(
                "no channel configured: set config.channels to send notifications".to_owned(),
            ),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let SlackConfig { channels } = SlackConfig::checked(config)?;
        Ok(Arc::new(SlackPlugin { channels }))
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = SlackFactory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_until_a_channel_is_set() {
        assert!(!SlackFactory.activation(&PluginConfig::empty()).is_active());
        let config =
            PluginConfig::from_value(serde_json::json!({"channels": ["C0123456789"]})).unwrap();
        assert!(SlackFactory.activation(&config).is_active());
    }

    #[test]
    fn channel_ids_are_checked() {
        let config = PluginConfig::from_value(serde_json::json!({"channels": ["#ops"]})).unwrap();
        let err = SlackFactory.validate(&config).unwrap_err();
        assert_eq!(err.field_path(), Some("channels[0]"));
    }
}
