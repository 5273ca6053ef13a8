//! The event log on the gateway's side: hoop-core's [`EventSource`] and [`CursorStore`] over
//! the store, and the task that prunes events older than `events_retention`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hoop_core::PortError;
use hoop_core::events::{CursorStore, Event, EventFilter, EventPage, EventSource};
use hoop_store::{EventRecord, Store, StoreError};
use tokio::sync::watch;

/// How long events are kept when the config does not say.
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the log is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

fn port_error(err: StoreError) -> PortError {
    match err {
        StoreError::NotFound { .. } => PortError::NotFound(err.to_string()),
        other => {
            tracing::warn!(error = %other, "event log unavailable");
            PortError::Unavailable("the gateway's store failed (see the gateway log)".to_owned())
        }
    }
}

/// A stored event as hoop-core's [`Event`].
pub(crate) fn event(record: EventRecord) -> Event {
    Event {
        id: record.id,
        kind: record.kind,
        time: SystemTime::from(record.time),
        connection: record.connection,
        user: record.user,
        data: record.data,
    }
}

/// The store's `events` table as an [`EventSource`], and its `event_cursors` table as a
/// [`CursorStore`].
#[derive(Debug, Clone)]
pub(crate) struct StoreEvents {
    store: Store,
}

impl StoreEvents {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait]
impl EventSource for StoreEvents {
    async fn read(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EventPage, PortError> {
        let limit = u64::try_from(limit.max(1)).unwrap_or(u64::MAX);
        let records = self
            .store
            .read_events(after, limit)
            .await
            .map_err(port_error)?;
        let scanned_to = records.last().map_or(after, |r| r.id);
        Ok(EventPage {
            events: records
                .into_iter()
                .filter(|r| filter.matches(&r.kind))
                .map(event)
                .collect(),
            scanned_to,
        })
    }

    async fn last_id(&self) -> Result<u64, PortError> {
        self.store.last_event_id().await.map_err(port_error)
    }

    fn notifications(&self) -> watch::Receiver<u64> {
        self.store.event_notifications()
    }
}

#[async_trait]
impl CursorStore for StoreEvents {
    async fn load(&self, consumer: &str) -> Result<Option<u64>, PortError> {
        self.store.load_cursor(consumer).await.map_err(port_error)
    }

    async fn save(&self, consumer: &str, cursor: u64) -> Result<(), PortError> {
        self.store
            .save_cursor(consumer, cursor)
            .await
            .map_err(port_error)
    }
}

/// Prunes events older than `retention` now and every hour until `shutdown` turns true.
pub(crate) fn spawn_pruning(
    store: Store,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let cutoff = chrono::Utc::now()
                - chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
            match store.prune_events(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned events past their retention"),
                Err(err) => tracing::warn!(error = %err, "cannot prune the event log"),
            }
            tokio::select! {
                () = tokio::time::sleep(PRUNE_EVERY) => {}
                _ = shutdown.wait_for(|down| *down) => return,
            }
        }
    })
}

/// Users and connections from the store, for plugins.
#[derive(Debug, Clone)]
pub(crate) struct StoreDirectory {
    store: Store,
}

impl StoreDirectory {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait]
impl hoop_core::ports::Directory for StoreDirectory {
    async fn user(&self, name: &str) -> Result<Option<hoop_core::UserInfo>, PortError> {
        match self.store.get_user(name).await {
            Ok(user) => Ok(Some(
                hoop_core::UserInfo::new(user.name)
                    .with_email(user.email)
                    .with_groups(user.groups),
            )),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(other) => Err(port_error(other)),
        }
    }

    async fn connection(&self, name: &str) -> Result<Option<hoop_core::ConnectionInfo>, PortError> {
        match self.store.get_connection(name, false).await {
            Ok(conn) => Ok(Some(
                hoop_core::ConnectionInfo::new(conn.name, conn.kind).with_tags(conn.tags),
            )),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(other) => Err(port_error(other)),
        }
    }
}

/// Ends sessions running on this gateway, for plugins.
#[derive(Debug, Clone)]
pub(crate) struct RunningControl {
    running: std::sync::Arc<crate::runtime::Running>,
}

impl RunningControl {
    pub(crate) fn new(running: std::sync::Arc<crate::runtime::Running>) -> Self {
        Self { running }
    }
}

#[async_trait]
impl hoop_core::ports::SessionControl for RunningControl {
    async fn end_session(
        &self,
        session_id: &str,
        plugin: &str,
        reason: &str,
    ) -> Result<bool, PortError> {
        let reason = hoop_core::CloseReason::Denied {
            plugin: plugin.to_owned(),
            reason: reason.to_owned(),
        };
        Ok(self.running.end(session_id, reason).await.is_ok())
    }
}

/// The ports this gateway offers plugins.
pub(crate) fn ports(
    store: &Store,
    running: &std::sync::Arc<crate::runtime::Running>,
) -> hoop_core::Ports {
    let events = std::sync::Arc::new(StoreEvents::new(store.clone()));
    hoop_core::Ports {
        events: Some(events.clone()),
        cursors: Some(events),
        directory: Some(std::sync::Arc::new(StoreDirectory::new(store.clone()))),
        sessions: Some(std::sync::Arc::new(RunningControl::new(
            std::sync::Arc::clone(running),
        ))),
    }
}
