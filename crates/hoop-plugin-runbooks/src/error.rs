//! The crate's one error type.

/// What can go wrong with runbooks: each variant says whose fault it is, so hosts can answer
/// with the right status (see the variants).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such repository or runbook, or the caller may not run it there (hosts answer
    /// NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong: a field or parameter named in `field` breaks a rule (hosts answer
    /// INVALID_ARGUMENT).
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault, e.g. `params.order_id`.
        field: String,
        /// The rule it breaks.
        message: String,
    },
    /// Several parameters are wrong; each is named (hosts answer INVALID_ARGUMENT).
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    InvalidParams(Vec<(String, String)>),
    /// The runbook cannot run as it is (it does not parse, or it fails to render), or the
    /// repository was never fetched: the message says what to do (hosts answer
    /// FAILED_PRECONDITION).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The host refused the session (an access mode turned off, …; FAILED_PRECONDITION).
    #[error("{0}")]
    Refused(String),
    /// Something outside the request failed (git, the host): trying later may work (hosts
    /// answer UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    /// An [`Error::Invalid`] naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<hoop_core::PortError> for Error {
    fn from(err: hoop_core::PortError) -> Self {
        use hoop_core::PortError as P;
        match err {
            P::NotFound(m) => Error::NotFound(m),
            P::Refused(m) => Error::Refused(m),
            P::Unavailable(m) | P::Corrupt(m) => Error::Unavailable(m),
            other => Error::Unavailable(other.to_string()),
        }
    }
}
