//! The crate's error type.

/// What went wrong in the indexer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexerError {
    /// The query does not parse or names something unknown. `field` is what to name in the
    /// answer (e.g. `query`), the message says which qualifier or value is wrong and why.
    #[error("{field}: {message}")]
    InvalidQuery {
        /// The request field at fault.
        field: &'static str,
        /// Which part of it, and what is wrong.
        message: String,
    },
    /// Another process writes the index (a gateway serving while `hoop-gateway reindex`
    /// runs, or the other way round).
    #[error(
        "the index at {0} is in use by another process: stop the gateway (or the other reindex) first"
    )]
    Busy(String),
    /// The index could not be opened, read or written.
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// A file of the index could not be made.
    #[error("index directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A host port failed.
    #[error(transparent)]
    Port(#[from] hoop_core::PortError),
}

impl IndexerError {
    /// A bad query, naming the request field `query`.
    pub(crate) fn query(message: impl Into<String>) -> Self {
        Self::InvalidQuery {
            field: "query",
            message: message.into(),
        }
    }
}
