//! The crate's error type.

/// What a webhooks operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Bad input: `field` is the request's field path (e.g. `endpoint.url`,
    /// `endpoint.events[1]`), `message` the rule it breaks.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault, as the API names it.
        field: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// No such endpoint or delivery.
    #[error("{0}")]
    NotFound(String),
    /// An endpoint of that name exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the endpoint is not in a state to do it: the message says
    /// what to do instead.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database failed.
    #[error("webhooks database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// A port of the host could not answer (e.g. the directory of connections).
    #[error("the host could not answer: {0}")]
    Unavailable(String),
    /// A stored secret could not be encrypted or decrypted.
    #[error("{0}")]
    Crypto(String),
}

impl WebhookError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
