//! The gateway's error type and its mapping to gRPC status codes.

use hoop_store::StoreError;
use tonic::Status;

/// What a gateway operation can fail with; each variant maps to one gRPC code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Bad input: the message names the field and the rule.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but not in this state: the message says what to do instead.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// A limit is reached: the message says which, and its value.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Something the gateway depends on failed (e.g. a git repository): trying later may
    /// work. The message says what.
    #[error("{0}")]
    Unavailable(String),
    /// Our fault, not the caller's. The message is safe to show; details go to the log.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { .. } => Self::NotFound(err.to_string()),
            StoreError::AlreadyExists { .. } => Self::AlreadyExists(err.to_string()),
            // Meant for the user: says why the record is not in a state allowing the change.
            StoreError::Conflict(message) => Self::FailedPrecondition(message),
            StoreError::Invalid(message) => Self::invalid("request", message),
            StoreError::LimitReached { message, .. } => Self::ResourceExhausted(message),
            // Nothing was changed: the database had no connection free in time, or was busy.
            other if other.is_transient() => {
                tracing::warn!(error = %other, "the store is busy");
                Self::Unavailable(
                    "the gateway's database is busy: nothing was changed; try again shortly"
                        .to_owned(),
                )
            }
            other => {
                tracing::error!(error = %other, "store failure");
                Self::Internal(
                    "internal error: the gateway's store failed (see the gateway log)".to_owned(),
                )
            }
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidArgument { .. } => Status::invalid_argument(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::ResourceExhausted(_) => Status::resource_exhausted(message),
            Error::Unavailable(_) => Status::unavailable(message),
            Error::Internal(_) => Status::internal(message),
        }
    }
}
