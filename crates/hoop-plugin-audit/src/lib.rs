//! The `audit` plugin: records every session's input and output.
//!
//! Attached to every connection and always active; it cannot be detached. It takes no
//! configuration. The [`recording`] module holds the durable, hash-chained recording format
//! and its storage; wiring it to sessions is the next step of the sessions issue (#3): until
//! then the plugin is registered, attached and reported, but records nothing, and the
//! registry says so.

pub mod recording;

use std::sync::Arc;

use hoop_core::{
    Activation, AttachPolicy, ConfigError, Implementation, Plugin, PluginConfig, PluginDescriptor,
    PluginFactory,
};

/// Registry name of the plugin.
pub const NAME: &str = "audit";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Records all session input and output (session recording).",
)
.with_configuration(
    "takes no configuration; always active and cannot be detached",
    "",
)
.with_attach(AttachPolicy::Required)
.with_order(1000)
.with_implementation(Implementation::Pending(
    "attached and always active, but records nothing yet: the hash-chained recording \
     library (`recording` module) is not yet wired to sessions",
));

/// The audit plugin's config: none.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {}

/// Factory of the audit plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFactory;

/// The audit plugin on one connection.
#[derive(Debug)]
pub struct AuditPlugin;

impl Plugin for AuditPlugin {
    fn name(&self) -> &str {
        NAME
    }
}

impl PluginFactory for AuditFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn activation(&self, _config: &PluginConfig) -> Activation {
        Activation::Active("always active: records every session".to_owned())
    }

    fn build(&self, config: &PluginConfig) -> Result<Arc<dyn Plugin>, ConfigError> {
        let AuditConfig {} = config.parse()?;
        Ok(Arc::new(AuditPlugin))
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = AuditFactory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_no_config() {
        assert!(AuditFactory.validate(&PluginConfig::empty()).is_ok());
        let config = PluginConfig::from_value(serde_json::json!({"path": "/tmp"})).unwrap();
        let err = AuditFactory.validate(&config).unwrap_err();
        assert!(err.to_string().contains("unknown field `path`"), "{err}");
    }

    #[test]
    fn always_active() {
        assert!(AuditFactory.activation(&PluginConfig::empty()).is_active());
    }
}
