//! The `access_control` plugin: restricts who may see and use a connection.
//!
//! Attached explicitly with `{"groups": [...]}`: only members of those groups (and `admin`)
//! may see the connection and open sessions on it. Enforcement arrives with the
//! access-control issue (#5); until then the plugin validates its groups and can be
//! attached and detached, but restricts nothing, and the registry and the attachment's
//! status say so.

use std::sync::Arc;

use hoop_core::names::check_group_name;
use hoop_core::{
    Activation, AttachPolicy, ConfigError, Implementation, Plugin, PluginConfig, PluginDescriptor,
    PluginFactory, Resources,
};

/// Registry name of the plugin.
pub const NAME: &str = "access_control";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Restricts which user groups can see and use the connection.",
)
.with_configuration(
    "`groups`: groups whose members (and admins) may see and use the connection",
    r#"{"groups":["dba","sre"]}"#,
)
.with_attach(AttachPolicy::Explicit)
.with_order(-300)
.with_implementation(Implementation::Pending(
    "validates groups but restricts nothing yet: enforcement arrives with the access-control \
     issue",
));

/// The access_control plugin's config.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessControlConfig {
    /// Groups allowed on the connection.
    pub groups: Vec<String>,
}

impl AccessControlConfig {
    fn checked(config: &PluginConfig) -> Result<Self, ConfigError> {
        let parsed: Self = config.parse()?;
        for (i, group) in parsed.groups.iter().enumerate() {
            check_group_name(group)
                .map_err(|e| ConfigError::field(format!("groups[{i}]"), e.to_string()))?;
        }
        Ok(parsed)
    }
}

/// Factory of the access_control plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessControlFactory;

/// The access_control plugin on one connection.
#[derive(Debug)]
pub struct AccessControlPlugin {
    groups: Vec<String>,
}

impl AccessControlPlugin {
    /// The allowed groups.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }
}

impl Plugin for AccessControlPlugin {
    fn name(&self) -> &str {
        NAME
    }
}

impl PluginFactory for AccessControlFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        AccessControlConfig::checked(config).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match AccessControlConfig::checked(config) {
            Ok(c) if c.groups.is_empty() => {
                Activation::Active("only admins may see and use the connection".to_owned())
            }
            Ok(c) => Activation::Active(format!(
                "only members of {} (and admins) may see and use the connection",
                c.groups.join(", ")
            )),
            Err(e) => Activation::Inactive(format!("invalid config: {e}")),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let AccessControlConfig { groups } = AccessControlConfig::checked(config)?;
        Ok(Arc::new(AccessControlPlugin { groups }))
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = AccessControlFactory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_required_and_checked() {
        let err = AccessControlFactory
            .validate(&PluginConfig::empty())
            .unwrap_err();
        assert!(err.message().contains("missing field `groups`"), "{err}");
        let bad = PluginConfig::from_value(serde_json::json!({"groups": ["a b"]})).unwrap();
        assert_eq!(
            AccessControlFactory
                .validate(&bad)
                .unwrap_err()
                .field_path(),
            Some("groups[0]")
        );
    }
}
