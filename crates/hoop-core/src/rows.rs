//! Result rows of database sessions: what a protocol-aware host (the gateway's PostgreSQL
//! proxy) hands plugins before the rows reach the user, so that values can be masked one by
//! one ([`Plugin::on_rows`](crate::Plugin::on_rows)).

use bytes::Bytes;

/// One column of a [`ResultRows`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResultColumn {
    /// The name the user sees (an alias, if the query gave one).
    pub name: String,
    /// Where the values come from, `schema.table.column`, when the database says so; `None`
    /// for computed values.
    pub origin: Option<String>,
    /// Whether the values are text (UTF-8): text-format values, and binary values of text
    /// types. Plugins mask only text values; others are opaque.
    pub text: bool,
    /// A column rule of the connection masked this column's values already.
    pub masked: bool,
}

impl ResultColumn {
    /// A text column named `name`, of unknown origin, not masked.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            origin: None,
            text: true,
            masked: false,
        }
    }

    /// Sets where the values come from.
    pub fn with_origin(mut self, origin: Option<String>) -> Self {
        self.origin = origin;
        self
    }

    /// Sets whether the values are text.
    pub fn with_text(mut self, text: bool) -> Self {
        self.text = text;
        self
    }

    /// Sets whether a column rule masked the values already.
    pub fn with_masked(mut self, masked: bool) -> Self {
        self.masked = masked;
        self
    }
}

/// A batch of result rows on its way to the user: plugins may rewrite values in place.
/// Also used for other values a database sends (the text of an error's detail, rows of
/// `COPY … TO STDOUT`), as one-column batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultRows {
    /// The columns.
    pub columns: Vec<ResultColumn>,
    /// The rows; each has one value per column, `None` for NULL.
    pub rows: Vec<Vec<Option<Bytes>>>,
}

impl ResultRows {
    /// Rows with these columns and no values yet.
    pub fn new(columns: Vec<ResultColumn>) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
