//! The `review` plugin: holds sessions until members of the reviewer groups approve.
//!
//! Present on every connection and configured only through the connection's `reviewers`:
//! active iff that list is non-empty. The config the gateway hands the factory is
//! `{"reviewers": [...]}`. The approval workflow arrives with the review issue (#5); until
//! then the plugin validates reviewer groups but holds nothing, and the registry says so.

use std::sync::Arc;

use hoop_core::names::check_group_name;
use hoop_core::{
    Activation, AttachPolicy, ConfigError, Implementation, Plugin, PluginConfig, PluginDescriptor,
    PluginFactory, Resources,
};

/// Registry name of the plugin.
pub const NAME: &str = "review";

/// The connection field that configures the plugin.
pub const FIELD: &str = "reviewers";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Holds sessions until a member of each reviewer group approves (access requests).",
)
.with_configuration(
    "managed by the connection's `reviewers` (group names); active iff non-empty",
    r#"{"reviewers":["dba"]}"#,
)
.with_attach(AttachPolicy::Managed { field: FIELD })
.with_order(-200)
.with_implementation(Implementation::Pending(
    "validates reviewers but holds nothing yet: the approval workflow arrives with the \
     review issue",
));

/// The review plugin's config, derived from the connection's `reviewers`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// Groups whose approval a session needs.
    #[serde(default)]
    pub reviewers: Vec<String>,
}

impl ReviewConfig {
    fn checked(config: &PluginConfig) -> Result<Self, ConfigError> {
        let parsed: Self = config.parse()?;
        for (i, group) in parsed.reviewers.iter().enumerate() {
            check_group_name(group)
                .map_err(|e| ConfigError::field(format!("{FIELD}[{i}]"), e.to_string()))?;
            if parsed.reviewers[..i].contains(group) {
                return Err(ConfigError::field(
                    format!("{FIELD}[{i}]"),
                    format!("group `{group}` is listed twice"),
                ));
            }
        }
        Ok(parsed)
    }
}

/// Factory of the review plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReviewFactory;

/// The review plugin on one connection.
#[derive(Debug)]
pub struct ReviewPlugin {
    reviewers: Vec<String>,
}

impl ReviewPlugin {
    /// The reviewer groups.
    pub fn reviewers(&self) -> &[String] {
        &self.reviewers
    }
}

impl Plugin for ReviewPlugin {
    fn name(&self) -> &str {
        NAME
    }
}

impl PluginFactory for ReviewFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        ReviewConfig::checked(config).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match ReviewConfig::checked(config) {
            Ok(c) if !c.reviewers.is_empty() => Activation::Active(format!(
                "sessions need approval by {}",
                c.reviewers.join(", ")
            )),
            _ => Activation::Inactive(
                "no reviewers on the connection: set them to require approvals".to_owned(),
            ),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let ReviewConfig { reviewers } = ReviewConfig::checked(config)?;
        Ok(Arc::new(ReviewPlugin { reviewers }))
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = ReviewFactory);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(groups: &[&str]) -> PluginConfig {
        PluginConfig::from_value(serde_json::json!({ "reviewers": groups })).unwrap()
    }

    #[test]
    fn active_iff_reviewers_are_set() {
        assert!(!ReviewFactory.activation(&config(&[])).is_active());
        assert!(
            ReviewFactory
                .activation(&config(&["dba", "sre"]))
                .is_active()
        );
    }

    #[test]
    fn bad_group_names_are_named() {
        let err = ReviewFactory
            .validate(&config(&["dba", "Ops Team"]))
            .unwrap_err();
        assert_eq!(err.field_path(), Some("reviewers[1]"));
        assert!(err.message().starts_with("group name must match"), "{err}");
    }
}
