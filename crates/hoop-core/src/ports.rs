//! Ports: what a host (the gateway, or an embedding service) offers plugins beyond a single
//! session. A plugin asks for the ports it needs in
//! [`PluginFactory::start`](crate::PluginFactory::start) and fails to start, naming the
//! port, when its host does not offer one.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::events::{CursorStore, EventSource};
use crate::session::{ConnectionInfo, UserInfo};

/// A port could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The thing asked for does not exist (or the caller may not know it does).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request was refused.
    #[error("refused: {0}")]
    Refused(String),
    /// The host could not answer now (e.g. its database is unreachable); trying later may
    /// work.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Looks up users and connections.
#[async_trait]
pub trait Directory: Send + Sync + fmt::Debug + 'static {
    /// The user named `name`, with their e-mail and groups, if it exists.
    async fn user(&self, name: &str) -> Result<Option<UserInfo>, PortError>;
    /// The connection named `name`, if it exists.
    async fn connection(&self, name: &str) -> Result<Option<ConnectionInfo>, PortError>;
}

/// Ends running sessions from outside their hooks (a revoked grant, an expiry, a kill from
/// another system).
#[async_trait]
pub trait SessionControl: Send + Sync + fmt::Debug + 'static {
    /// Ends session `session_id` if it runs on this host, as denied by plugin `plugin` for
    /// `reason` (shown to the user and recorded: the session ends `killed` with
    /// [`CloseReason::Denied`](crate::CloseReason::Denied)). Returns once the session is
    /// settled, with whether a running session was found.
    async fn end_session(
        &self,
        session_id: &str,
        plugin: &str,
        reason: &str,
    ) -> Result<bool, PortError>;
}

/// The ports a host offers. Each is optional: an embedder offers what it has, and a plugin
/// that needs a missing one fails to start with an error naming it.
#[derive(Clone, Default)]
pub struct Ports {
    /// The durable event log.
    pub events: Option<Arc<dyn EventSource>>,
    /// Where consumers keep their cursors in the log.
    pub cursors: Option<Arc<dyn CursorStore>>,
    /// Users and connections.
    pub directory: Option<Arc<dyn Directory>>,
    /// Ending running sessions.
    pub sessions: Option<Arc<dyn SessionControl>>,
}

impl fmt::Debug for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ports")
            .field("events", &self.events.is_some())
            .field("cursors", &self.cursors.is_some())
            .field("directory", &self.directory.is_some())
            .field("sessions", &self.sessions.is_some())
            .finish()
    }
}
