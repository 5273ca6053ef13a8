//! The PostgreSQL wire protocol as the hoop-rs gateway speaks it.
//!
//! The gateway sits between a client (psql, pgbench, an ORM) and the database: it reads
//! every message in both directions, records statements, masks result values and relays
//! the rest unchanged. This crate holds what that needs and nothing of the gateway:
//!
//! - [`frame`]: message framing on [`bytes`] (startup packets, tagged messages), with a
//!   size limit;
//! - [`message`]: the messages the gateway inspects or writes, parsed and encoded;
//! - [`auth`]: the gateway's authentication to the database (SCRAM-SHA-256, MD5,
//!   cleartext, with `postgres-protocol`) and the check of a client's one-time password;
//! - [`target`]: a `postgres` connection's settings (`HOST`, `PORT`, …) and column rules;
//! - [`tls`]: the TLS client configuration of a connection's `SSLMODE` and `SSLROOTCERT`;
//! - [`copy`]: `COPY` statements and the rows of `COPY … TO STDOUT`;
//! - [`render`]: results as `psql` prints them.

pub mod auth;
pub mod copy;
pub mod frame;
pub mod message;
pub mod render;
pub mod target;
pub mod tls;

/// What can go wrong speaking the protocol.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The peer sent something that is not the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A message is larger than [`frame::MAX_MESSAGE`].
    #[error("a message of {0} bytes is larger than the {max} bytes allowed", max = frame::MAX_MESSAGE)]
    TooLarge(usize),
    /// Authentication with the database failed or asked for something unsupported.
    #[error("authentication with the database failed: {0}")]
    Auth(String),
}

impl PgError {
    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol(message.into())
    }
}
