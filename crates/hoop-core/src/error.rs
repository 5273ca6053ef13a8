//! Errors of hoop-core.

use std::fmt;

use crate::config::ConfigError;

/// A boxed error, for plugin failures whose type the core does not know.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with hoop-core's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the core: registry and chain misuse, plugin configuration.
///
/// A plugin *denying* a session is not an error: it is a [`Verdict`](crate::Verdict).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No plugin of that name is registered.
    #[error("unknown plugin `{0}`")]
    UnknownPlugin(String),
    /// Two factories were registered under the same name.
    #[error("plugin `{0}` is registered twice")]
    DuplicatePlugin(String),
    /// A plugin's configuration was refused by its factory.
    #[error("plugin `{plugin}`: {source}")]
    Config {
        /// The plugin whose config was refused.
        plugin: String,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// The session already ended (a plugin denied it or failed); no more events are accepted.
    #[error("session {0} has ended")]
    SessionEnded(String),
}

/// A plugin hook failed. The chain fails closed: the session ends.
#[derive(Debug)]
pub struct PluginError {
    message: String,
    source: Option<BoxError>,
}

impl PluginError {
    /// A failure described by a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by another error.
    pub fn with_source(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The failure in words (without its source).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {}", self.message, source),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PluginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
