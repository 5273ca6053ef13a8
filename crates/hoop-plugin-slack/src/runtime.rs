//! What the plugin's deployment shares between its tasks: the settings, the Web API, the
//! host's ports, its table, and its health (what `ListPlugins` shows).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hoop_core::UserInfo;
use hoop_core::ports::{Directory, PortError, Redactor, ReviewDecisions, ReviewView};
use sea_orm::DatabaseConnection;
use serde_json::Value;

use crate::api::{SlackApi, SlackError};
use crate::messages::{self, MaskedText};
use crate::settings::SlackSettings;
use crate::{NAME, Notify, SlackConfig};

/// The Socket Mode connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketState {
    /// Not configured (no `app_token`).
    Off,
    /// Opening a connection.
    Connecting,
    /// Slack said `hello`.
    Connected,
    /// Lost; reconnecting after a pause.
    Disconnected,
}

#[derive(Debug)]
struct HealthInner {
    socket: SocketState,
    socket_error: Option<String>,
    http: Option<String>,
    last_error: Option<(SystemTime, String)>,
}

/// How the deployment is doing, in words for `ListPlugins`. Holds no secret.
#[derive(Debug)]
pub(crate) struct Health(Mutex<HealthInner>);

impl Default for Health {
    fn default() -> Self {
        Self(Mutex::new(HealthInner {
            socket: SocketState::Off,
            socket_error: None,
            http: None,
            last_error: None,
        }))
    }
}

impl Health {
    fn with<T>(&self, f: impl FnOnce(&mut HealthInner) -> T) -> T {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }

    pub(crate) fn socket(&self, state: SocketState, error: Option<String>) {
        self.with(|h| {
            h.socket = state;
            if error.is_some() {
                h.socket_error = error;
            }
        });
    }

    pub(crate) fn http(&self, addr: String) {
        self.with(|h| h.http = Some(addr));
    }

    pub(crate) fn error(&self, message: String) {
        self.with(|h| h.last_error = Some((SystemTime::now(), message)));
    }

    /// The health in words.
    pub(crate) fn describe(&self) -> String {
        self.with(|h| {
            let mut parts = vec![match h.socket {
                SocketState::Off => "Socket Mode off (no app_token)".to_owned(),
                SocketState::Connecting => "Socket Mode connecting".to_owned(),
                SocketState::Connected => "Socket Mode connected".to_owned(),
                SocketState::Disconnected => "Socket Mode disconnected, reconnecting".to_owned(),
            }];
            if let Some(e) = &h.socket_error {
                parts.push(format!("Socket Mode last error: {e}"));
            }
            if let Some(addr) = &h.http {
                parts.push(format!("HTTP interactivity on {addr}"));
            }
            if let Some((at, e)) = &h.last_error {
                let ago = SystemTime::now()
                    .duration_since(*at)
                    .unwrap_or_default()
                    .as_secs();
                parts.push(format!("last Web API error {ago}s ago: {e}"));
            }
            parts.join("; ")
        })
    }
}

/// Everything the deployment's tasks share.
pub(crate) struct Ctx {
    pub(crate) settings: SlackSettings,
    pub(crate) api: SlackApi,
    pub(crate) db: DatabaseConnection,
    pub(crate) directory: Arc<dyn Directory>,
    pub(crate) reviews: Arc<dyn ReviewDecisions>,
    pub(crate) redactor: Arc<dyn Redactor>,
    pub(crate) health: Arc<Health>,
    /// Held while a review's messages are rewritten, so that the last rewrite always shows
    /// the newest state (each reads the review once it holds this).
    pub(crate) rewriting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database handle may print its connection string (with a password): left out.
        f.debug_struct("Ctx")
            .field("settings", &self.settings)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// Why handling something failed: worth retrying (after how long, if the failure says), or
/// not.
#[derive(Debug)]
pub(crate) enum Failure {
    Retry(Option<std::time::Duration>, String),
    GiveUp(String),
}

impl From<SlackError> for Failure {
    fn from(e: SlackError) -> Self {
        match e {
            SlackError::RateLimited(after) => Failure::Retry(after, e.to_string()),
            SlackError::Transient(_) => Failure::Retry(None, e.to_string()),
            SlackError::Refused(_) => Failure::GiveUp(e.to_string()),
        }
    }
}

impl From<PortError> for Failure {
    fn from(e: PortError) -> Self {
        match e {
            PortError::Unavailable(_) => Failure::Retry(None, e.to_string()),
            other => Failure::GiveUp(other.to_string()),
        }
    }
}

impl From<sea_orm::DbErr> for Failure {
    fn from(e: sea_orm::DbErr) -> Self {
        tracing::warn!(error = %e, "slack: its table is unavailable");
        Failure::Retry(None, "the plugin's table is unavailable".to_owned())
    }
}

impl Ctx {
    /// The channels a connection's events of this kind go to: its config's channels, then
    /// `default_channel`; none when the plugin is not attached there, or its `notify` leaves
    /// this kind out.
    pub(crate) async fn targets(
        &self,
        connection: &str,
        what: Notify,
    ) -> Result<Vec<String>, Failure> {
        let Some(config) = self.directory.plugin_config(connection, NAME).await? else {
            return Ok(Vec::new());
        };
        let Ok(config) = SlackConfig::from_value(config.to_value()) else {
            return Ok(Vec::new());
        };
        if !config.notifies(what) {
            return Ok(Vec::new());
        }
        let mut channels = config.channels;
        if let Some(default) = &self.settings.default_channel
            && !channels.contains(default)
        {
            channels.push(default.clone());
        }
        Ok(channels)
    }

    /// The review message as it now stands, input and arguments masked with the
    /// connection's `redact_types`.
    pub(crate) async fn review_message(&self, review: &ReviewView) -> Result<Value, Failure> {
        let requester = self
            .directory
            .user(&review.requester)
            .await?
            .unwrap_or_else(|| UserInfo::new(review.requester.clone()));
        let mut masked = MaskedText::default();
        let conn = &review.connection;
        let redact = |text: String| async move {
            match self.redactor.redact(conn, &text).await {
                Ok(masked) => Ok(masked),
                // The connection is gone: nothing unmasked may leave.
                Err(PortError::NotFound(_)) => {
                    Ok("(not shown: the connection no longer exists)".to_owned())
                }
                Err(e) => Err(Failure::from(e)),
            }
        };
        if let Some(input) = &review.input {
            masked.input = redact(String::from_utf8_lossy(input).into_owned()).await?;
        }
        for arg in &review.args {
            masked.args.push(redact(arg.clone()).await?);
        }
        Ok(messages::review_message(review, &requester, &masked))
    }

    /// Rewrites every message posted about review `id` to show it as it now is.
    ///
    /// Rewrites are serialized and each reads the review only once it is its turn: a click
    /// and the event log may both rewrite a review's messages, and whichever goes last shows
    /// the newest state.
    pub(crate) async fn refresh(&self, id: &str) -> Result<(), Failure> {
        let _turn = self.rewriting.lock().await;
        let rows = crate::table::messages_of(&self.db, &review_subject(id)).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let Some(review) = self.reviews.review(id).await? else {
            return Ok(());
        };
        let review = &review;
        let message = self.review_message(review).await?;
        for row in rows {
            match self
                .api
                .update_message(&row.channel, &row.ts, &message)
                .await
            {
                Ok(()) => {}
                // A message deleted in Slack stays deleted.
                Err(SlackError::Refused(code)) => {
                    tracing::warn!(review = %review.id, channel = %row.channel, %code, "slack: cannot update a review message");
                    self.health.error(format!("chat.update: {code}"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The table's subject of a review's messages.
pub(crate) fn review_subject(id: &str) -> String {
    format!("review:{id}")
}
