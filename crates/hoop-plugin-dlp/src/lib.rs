//! The `dlp` plugin: masks sensitive data (info types) in session output.
//!
//! Present on every connection and configured only through the connection's
//! `redact_types`: active iff that list is non-empty. The config the gateway hands the
//! factory is `{"redact_types": [...]}`. Masking itself arrives with the DLP issue (#4);
//! until then the plugin validates info types but masks nothing, and the registry says so.

use std::sync::Arc;

use hoop_core::{
    Activation, AttachPolicy, ConfigError, Implementation, Plugin, PluginConfig, PluginDescriptor,
    PluginFactory, Resources,
};

/// Registry name of the plugin.
pub const NAME: &str = "dlp";

/// The connection field that configures the plugin.
pub const FIELD: &str = "redact_types";

/// Info types accepted in `redact_types`, with hoop.dev's names.
pub const INFO_TYPES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "BRAZIL_CPF_NUMBER",
    "CREDIT_CARD_NUMBER",
    "CREDIT_CARD_TRACK_NUMBER",
    "EMAIL_ADDRESS",
    "GITHUB_TOKEN",
    "HTTP_COOKIE",
    "IBAN_CODE",
    "IMEI_HARDWARE_ID",
    "IP_ADDRESS",
    "JSON_WEB_TOKEN",
    "PASSWORD_IN_URL",
    "PHONE_NUMBER",
    "PRIVATE_KEY",
    "SLACK_TOKEN",
    "STORAGE_SIGNED_URL",
    "URL",
    "US_PASSPORT",
    "US_SOCIAL_SECURITY_NUMBER",
    "VEHICLE_IDENTIFICATION_NUMBER",
];

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Masks sensitive data in session output (live data masking).",
)
.with_configuration(
    "managed by the connection's `redact_types` (info types); active iff non-empty",
    r#"{"redact_types":["EMAIL_ADDRESS","CREDIT_CARD_NUMBER"]}"#,
)
.with_attach(AttachPolicy::Managed { field: FIELD })
.with_order(-100)
.with_implementation(Implementation::Pending(
    "validates redact_types but masks nothing yet: the masking engine arrives with \
             the DLP issue",
));

/// The dlp plugin's config, derived from the connection's `redact_types`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlpConfig {
    /// Info types to mask.
    #[serde(default)]
    pub redact_types: Vec<String>,
}

impl DlpConfig {
    fn checked(config: &PluginConfig) -> Result<Self, ConfigError> {
        let parsed: Self = config.parse()?;
        for (i, info_type) in parsed.redact_types.iter().enumerate() {
            if !INFO_TYPES.contains(&info_type.as_str()) {
                return Err(ConfigError::field(
                    format!("{FIELD}[{i}]"),
                    format!(
                        "unknown info type `{info_type}`; valid types: {}",
                        INFO_TYPES.join(", ")
                    ),
                ));
            }
            if parsed.redact_types[..i].contains(info_type) {
                return Err(ConfigError::field(
                    format!("{FIELD}[{i}]"),
                    format!("info type `{info_type}` is listed twice"),
                ));
            }
        }
        Ok(parsed)
    }
}

/// Factory of the dlp plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct DlpFactory;

/// The dlp plugin on one connection.
#[derive(Debug)]
pub struct DlpPlugin {
    redact_types: Vec<String>,
}

impl DlpPlugin {
    /// The info types this plugin masks.
    pub fn redact_types(&self) -> &[String] {
        &self.redact_types
    }
}

impl Plugin for DlpPlugin {
    fn name(&self) -> &str {
        NAME
    }
}

impl PluginFactory for DlpFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        DlpConfig::checked(config).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match DlpConfig::checked(config) {
            Ok(c) if !c.redact_types.is_empty() => {
                Activation::Active(format!("masks {}", c.redact_types.join(", ")))
            }
            _ => Activation::Inactive(
                "no redact_types on the connection: set them to activate masking".to_owned(),
            ),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let DlpConfig { redact_types } = DlpConfig::checked(config)?;
        Ok(Arc::new(DlpPlugin { redact_types }))
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = DlpFactory);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(types: &[&str]) -> PluginConfig {
        PluginConfig::from_value(serde_json::json!({ "redact_types": types })).unwrap()
    }

    #[test]
    fn active_iff_types_are_set() {
        assert!(!DlpFactory.activation(&PluginConfig::empty()).is_active());
        assert!(!DlpFactory.activation(&config(&[])).is_active());
        let active = DlpFactory.activation(&config(&["EMAIL_ADDRESS"]));
        assert_eq!(active, Activation::Active("masks EMAIL_ADDRESS".into()));
    }

    #[test]
    fn unknown_info_types_are_named() {
        let err = DlpFactory
            .validate(&config(&["EMAIL_ADDRESS", "SHOE_SIZE"]))
            .unwrap_err();
        assert_eq!(err.field_path(), Some("redact_types[1]"));
        assert!(
            err.message()
                .starts_with("unknown info type `SHOE_SIZE`; valid types: AWS_ACCESS_KEY_ID")
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let err = DlpFactory.validate(&config(&["URL", "URL"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.redact_types[1]: info type `URL` is listed twice"
        );
    }
}
