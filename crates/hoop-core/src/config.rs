//! Plugin configuration: a JSON object each factory parses into its own typed config.

use std::fmt;

use serde::de::DeserializeOwned;

/// The configuration of one plugin on one connection: a JSON object.
///
/// Factories parse it into their own typed config with [`PluginConfig::parse`], which gives
/// errors that name the offending field (`config.channels[0]: invalid type …`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginConfig(serde_json::Map<String, serde_json::Value>);

impl PluginConfig {
    /// An empty config (`{}`).
    pub fn empty() -> Self {
        Self::default()
    }

    /// A config from a JSON value, which must be an object (or null, meaning empty).
    pub fn from_value(value: serde_json::Value) -> Result<Self, ConfigError> {
        match value {
            serde_json::Value::Object(map) => Ok(Self(map)),
            serde_json::Value::Null => Ok(Self::default()),
            other => Err(ConfigError::new(
                None,
                format!("must be an object, got {}", json_kind(&other)),
            )),
        }
    }

    /// The config as a JSON object.
    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }

    /// The config as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.clone())
    }

    /// Whether the config has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the config into `T`, naming the field at fault on error.
    ///
    /// Use `#[serde(deny_unknown_fields)]` on `T` so that misspelt keys are refused.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let value = serde_json::Value::Object(self.0.clone());
        serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            let field = (path != "." && !path.is_empty()).then_some(path);
            ConfigError::new(field, err.into_inner().to_string())
        })
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for PluginConfig {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        Self(map)
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A plugin configuration was refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: Option<String>,
    message: String,
}

impl ConfigError {
    /// An error about `field` (a path inside the config such as `channels[0]`), or about the
    /// config as a whole when `field` is `None`.
    pub fn new(field: Option<String>, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// An error about one field of the config.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Some(field.into()), message)
    }

    /// The path of the field at fault inside the config, if the error is about one field.
    pub fn field_path(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "config.{field}: {}", self.message),
            None => write!(f, "config: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Channels {
        channels: Vec<String>,
    }

    #[test]
    fn parse_names_the_field_at_fault() {
        let config = PluginConfig::from_value(serde_json::json!({"channels": ["a", 3]})).unwrap();
        let err = config.parse::<Channels>().unwrap_err();
        assert_eq!(err.field_path(), Some("channels[1]"));
        assert!(
            err.to_string()
                .starts_with("config.channels[1]: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn parse_refuses_unknown_fields() {
        let config = PluginConfig::from_value(serde_json::json!({"chanels": []})).unwrap();
        let err = config.parse::<Channels>().unwrap_err();
        assert!(err.message().contains("unknown field `chanels`"), "{err}");
    }

    #[test]
    fn only_objects_are_configs() {
        let err = PluginConfig::from_value(serde_json::json!([1])).unwrap_err();
        assert_eq!(err.to_string(), "config: must be an object, got an array");
        assert!(
            PluginConfig::from_value(serde_json::Value::Null)
                .unwrap()
                .is_empty()
        );
    }
}
