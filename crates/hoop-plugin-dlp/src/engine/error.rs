//! The crate's error type.

/// Errors building a DLP [`Engine`](super::Engine) from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DlpError {
    /// An info type name that is neither built in nor a configured custom type.
    #[error("unknown info type `{name}`; valid types: {}", .valid.join(", "))]
    UnknownType {
        /// The name given.
        name: String,
        /// Every valid name (built-in types, then custom types).
        valid: Vec<String>,
    },
    /// A custom type name that is not UPPER_SNAKE_CASE, clashes with a built-in type or
    /// is defined twice.
    #[error("custom info type name `{name}` is invalid: {reason}")]
    InvalidCustomName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A custom type whose regex does not compile.
    #[error("custom info type `{name}`: invalid regex: {message}")]
    InvalidRegex {
        /// The custom type.
        name: String,
        /// The regex compiler's message.
        message: String,
    },
    /// A custom type with neither or both of `regex` and `keywords`, or a bad keyword.
    #[error("custom info type `{name}`: {reason}")]
    InvalidCustomType {
        /// The custom type.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A masking style given for a type that is not active in this engine.
    #[error("masking style given for info type `{name}`, which is not active")]
    StyleForInactiveType {
        /// The type named in `styles`.
        name: String,
    },
    /// The `hash` style is used but the hash key is empty.
    #[error("the `hash` masking style needs a non-empty hash key")]
    MissingHashKey,
    /// A masking style name that does not exist.
    #[error("unknown masking style `{0}`; valid styles: redact, mask, partial, hash")]
    UnknownStyle(String),
}
