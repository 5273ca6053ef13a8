//! The deployment lifecycle of plugins: started once when the host starts, with the
//! plugin's settings, the host's [`Resources`] and [`Ports`], a [`Cancellation`] signal, and
//! a place to run background tasks; stopped when the host stops.
//!
//! A host builds a [`PluginHost`], checks every plugin's settings with
//! [`PluginFactory::validate_settings`] before anything starts, starts each plugin with
//! [`PluginHost::start`], and calls [`PluginHost::shutdown`] when it stops: the cancellation
//! fires and the host waits (for a bounded time) for the plugins' tasks to end.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use hoop_core::{Deployment, PluginConfig, PluginHost, Ports, Resources};
//! use hoop_core::events::{EventFilter, MemoryEventLog, MemoryCursors, types};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let log = Arc::new(MemoryEventLog::new());
//! let ports = Ports { events: Some(log.clone()), cursors: Some(Arc::new(MemoryCursors::default())), ..Ports::default() };
//! let host = PluginHost::new(Arc::new(Resources::new()), ports);
//! let deployment = host.deployment("counter", PluginConfig::empty());
//! let mut sub = deployment.subscribe("counter", EventFilter::parse(["session.closed"]).unwrap()).await.unwrap();
//! let (tx, mut rx) = tokio::sync::mpsc::channel(1);
//! let cancel = deployment.cancellation();
//! deployment.spawn(async move {
//!     tokio::select! {
//!         Ok(event) = sub.next() => { let _ = tx.send(event.id).await; }
//!         () = cancel.cancelled() => {}
//!     }
//! });
//! log.append(types::SESSION_CLOSED, Some("db"), Some("alice"), serde_json::json!({}));
//! assert_eq!(rx.recv().await, Some(1));
//! assert!(host.shutdown(Duration::from_secs(1)).await);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::PluginConfig;
use crate::context::Resources;
use crate::events::{CursorStore, EventFilter, EventSource, Subscription};
use crate::ports::{
    Directory, PortError, Ports, RecordingReader, Redactor, ReviewDecisions, SessionControl,
    SessionStarter,
};

/// A plugin could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    message: String,
}

impl StartError {
    /// A failure described in words.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The host does not offer the port the plugin needs.
    pub fn missing_port(port: &str) -> Self {
        Self::new(format!(
            "the host offers no `{port}` port, which this plugin needs"
        ))
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Fires once, when the host stops. Cheap to clone; every clone sees the same signal.
#[derive(Debug, Clone)]
pub struct Cancellation {
    rx: watch::Receiver<bool>,
}

impl Cancellation {
    /// A signal that never fires (for tests and one-off uses).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive for the life of the program: the signal must stay pending
        // rather than read as fired when the sender goes away.
        std::mem::forget(tx);
        Self { rx }
    }

    /// Whether the host has asked plugins to stop.
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when the host asks plugins to stop (at once if it already has).
    pub async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        // An error means the host is gone: that is a stop too.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// The host's side of the deployment lifecycle: it hands each plugin a [`Deployment`],
/// signals them all to stop, and waits for their tasks.
pub struct PluginHost {
    resources: Arc<Resources>,
    ports: Ports,
    stop: watch::Sender<bool>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost")
            .field("ports", &self.ports)
            .field("stopping", &*self.stop.borrow())
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// A host that shares `resources` and `ports` with every plugin it starts.
    pub fn new(resources: Arc<Resources>, ports: Ports) -> Self {
        Self {
            resources,
            ports,
            stop: watch::Sender::new(false),
            tasks: Arc::default(),
        }
    }

    /// The deployment handed to plugin `plugin`, with its (validated) settings.
    pub fn deployment(&self, plugin: &str, settings: PluginConfig) -> Deployment {
        Deployment {
            plugin: plugin.to_owned(),
            settings,
            resources: Arc::clone(&self.resources),
            ports: self.ports.clone(),
            cancel: Cancellation {
                rx: self.stop.subscribe(),
            },
            tasks: Arc::clone(&self.tasks),
        }
    }

    /// Starts `factory` with its settings: builds its [`Deployment`] and calls
    /// [`PluginFactory::start`](crate::PluginFactory::start).
    ///
    /// # Errors
    /// What the plugin's `start` returned.
    pub fn start(
        &self,
        factory: &dyn crate::PluginFactory,
        settings: PluginConfig,
    ) -> Result<(), StartError> {
        let deployment = self.deployment(factory.descriptor().name, settings);
        factory.start(&deployment)
    }

    /// Tells every plugin to stop and waits up to `grace` for their tasks to end; tasks
    /// still running then are aborted. Returns whether all ended within `grace`.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.send_replace(true);
        let mut tasks = {
            let mut guard = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *guard)
        };
        let drained = tokio::time::timeout(grace, async {
            while let Some(joined) = tasks.join_next().await {
                if let Err(err) = joined
                    && err.is_panic()
                {
                    tracing::error!("a plugin task panicked");
                }
            }
        })
        .await
        .is_ok();
        if !drained {
            tasks.abort_all();
        }
        drained
    }
}

/// What a plugin gets when the host starts it: its settings, the host's resources and ports,
/// the stop signal, and a place to run background tasks.
///
/// Cheap to clone (every clone shares the same host): move a clone into a background task
/// to [`subscribe`](Self::subscribe) and [`save_cursor`](Self::save_cursor) from there, since
/// [`PluginFactory::start`](crate::PluginFactory::start) itself cannot wait.
#[derive(Clone)]
pub struct Deployment {
    plugin: String,
    settings: PluginConfig,
    resources: Arc<Resources>,
    ports: Ports,
    cancel: Cancellation,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Settings may hold secrets: only their keys are shown.
        f.debug_struct("Deployment")
            .field("plugin", &self.plugin)
            .field(
                "settings",
                &self.settings.as_map().keys().collect::<Vec<_>>(),
            )
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl Deployment {
    /// The plugin's registry name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The plugin's settings (the host's `[plugins.<name>]` table), already checked by
    /// [`PluginFactory::validate_settings`](crate::PluginFactory::validate_settings).
    pub fn settings(&self) -> &PluginConfig {
        &self.settings
    }

    /// What the host shares with plugins.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// Every port the host offers.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The event log.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn events(&self) -> Result<Arc<dyn EventSource>, StartError> {
        self.ports
            .events
            .clone()
            .ok_or_else(|| StartError::missing_port("events"))
    }

    /// Where cursors are kept.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn cursors(&self) -> Result<Arc<dyn CursorStore>, StartError> {
        self.ports
            .cursors
            .clone()
            .ok_or_else(|| StartError::missing_port("cursors"))
    }

    /// Users and connections.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn directory(&self) -> Result<Arc<dyn Directory>, StartError> {
        self.ports
            .directory
            .clone()
            .ok_or_else(|| StartError::missing_port("directory"))
    }

    /// Ending running sessions.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn sessions(&self) -> Result<Arc<dyn SessionControl>, StartError> {
        self.ports
            .sessions
            .clone()
            .ok_or_else(|| StartError::missing_port("sessions"))
    }

    /// Reading sessions' recordings, verified.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn recordings(&self) -> Result<Arc<dyn RecordingReader>, StartError> {
        self.ports
            .recordings
            .clone()
            .ok_or_else(|| StartError::missing_port("recordings"))
    }

    /// Starting sessions on a user's behalf.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn starter(&self) -> Result<Arc<dyn SessionStarter>, StartError> {
        self.ports
            .starter
            .clone()
            .ok_or_else(|| StartError::missing_port("starter"))
    }

    /// Masking text with a connection's `redact_types`.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn redactor(&self) -> Result<Arc<dyn Redactor>, StartError> {
        self.ports
            .redactor
            .clone()
            .ok_or_else(|| StartError::missing_port("redactor"))
    }

    /// Reading and deciding reviews on a user's behalf.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn reviews(&self) -> Result<Arc<dyn ReviewDecisions>, StartError> {
        self.ports
            .reviews
            .clone()
            .ok_or_else(|| StartError::missing_port("reviews"))
    }

    /// Encrypting secrets the plugin keeps at rest with the host's key.
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none.
    pub fn sealer(&self) -> Result<Arc<dyn crate::ports::Sealer>, StartError> {
        self.ports
            .sealer
            .clone()
            .ok_or_else(|| StartError::missing_port("sealer"))
    }

    /// The host's database as a `T` (for the gateway, `sea_orm::DatabaseConnection`).
    ///
    /// # Errors
    /// [`StartError`] naming the port when the host offers none, or one of another kind.
    pub fn database<T: std::any::Any + Send + Sync + Clone>(&self) -> Result<T, StartError> {
        let database = self
            .ports
            .database
            .as_ref()
            .ok_or_else(|| StartError::missing_port("database"))?;
        database.get::<T>().cloned().ok_or_else(|| {
            StartError::new(format!(
                "the host's database is not a {}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The stop signal.
    pub fn cancellation(&self) -> Cancellation {
        self.cancel.clone()
    }

    /// Runs `task` in the background until it ends; the host waits for it (for a bounded
    /// time) when it stops, so tasks should end soon after [`Cancellation::cancelled`].
    ///
    /// Must be called within a tokio runtime.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Reap the tasks that already ended, so a long-lived host does not keep them.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// A subscription to the event log for the consumer `consumer`, starting after its
    /// saved cursor, or at the current end of the log if it has none (a new consumer is not
    /// handed the past). Save its [`cursor`](Subscription::cursor) with
    /// [`save_cursor`](Self::save_cursor) once an event is dealt with.
    ///
    /// # Errors
    /// A missing `events` or `cursors` port, or what they returned.
    pub async fn subscribe(
        &self,
        consumer: &str,
        filter: EventFilter,
    ) -> Result<Subscription, PortError> {
        let events = self
            .events()
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        let cursors = self
            .cursors()
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        let after = match cursors.load(consumer).await? {
            Some(cursor) => cursor,
            None => {
                let end = events.last_id().await?;
                cursors.save(consumer, end).await?;
                end
            }
        };
        Ok(Subscription::new(events, after, filter))
    }

    /// Saves `consumer`'s cursor.
    ///
    /// # Errors
    /// A missing `cursors` port, or what it returned.
    pub async fn save_cursor(&self, consumer: &str, cursor: u64) -> Result<(), PortError> {
        let cursors = self
            .cursors()
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        cursors.save(consumer, cursor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Database;

    #[tokio::test]
    async fn shutdown_cancels_and_waits_for_tasks() {
        let host = PluginHost::new(Arc::new(Resources::new()), Ports::default());
        let deployment = host.deployment("probe", PluginConfig::empty());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cancel = deployment.cancellation();
        assert!(!cancel.is_cancelled());
        deployment.spawn(async move {
            cancel.cancelled().await;
            let _ = tx.send("stopped");
        });
        assert!(host.shutdown(Duration::from_secs(5)).await);
        assert_eq!(rx.await.unwrap(), "stopped");
        assert!(deployment.cancellation().is_cancelled());
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_stop_is_aborted_after_the_grace() {
        let host = PluginHost::new(Arc::new(Resources::new()), Ports::default());
        let deployment = host.deployment("stubborn", PluginConfig::empty());
        deployment.spawn(std::future::pending());
        assert!(!host.shutdown(Duration::from_millis(50)).await);
    }

    #[tokio::test]
    async fn missing_ports_are_named() {
        let host = PluginHost::new(Arc::new(Resources::new()), Ports::default());
        let deployment = host.deployment("needy", PluginConfig::empty());
        let err = deployment.events().unwrap_err();
        assert!(err.message().contains("`events`"), "{err}");
        let err = deployment.recordings().unwrap_err();
        assert_eq!(err, StartError::missing_port("recordings"));
        assert_eq!(
            deployment.reviews().unwrap_err(),
            StartError::missing_port("reviews")
        );
        assert!(err.message().contains("`recordings`"), "{err}");
        let err = deployment
            .subscribe("needy", EventFilter::all())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("`events`"), "{err}");
    }

    #[test]
    fn the_database_is_handed_out_as_the_kind_the_host_offers() {
        #[derive(Clone, Debug, PartialEq)]
        struct Handle(&'static str);
        let none = PluginHost::new(Arc::new(Resources::new()), Ports::default());
        let err = none
            .deployment("tables", PluginConfig::empty())
            .database::<Handle>()
            .unwrap_err();
        assert_eq!(err, StartError::missing_port("database"));
        let ports = Ports {
            database: Some(Database::new(Handle("db"))),
            ..Ports::default()
        };
        let host = PluginHost::new(Arc::new(Resources::new()), ports);
        let deployment = host.deployment("tables", PluginConfig::empty());
        assert_eq!(deployment.database::<Handle>().unwrap(), Handle("db"));
        let err = deployment.database::<String>().unwrap_err();
        assert!(err.message().contains("not a"), "{err}");
        assert_eq!(
            format!("{:?}", deployment.ports().database),
            "Some(Database(..))"
        );
    }

    #[test]
    fn never_stays_pending() {
        assert!(!Cancellation::never().is_cancelled());
    }
}
