//! Wake-ups across gateways: on PostgreSQL every transaction that appends events also sends
//! `NOTIFY hoop_events` (delivered when it commits), and each gateway listens, so readers of
//! the log in every gateway wake within milliseconds of an append anywhere. A wake-up still
//! delivers nothing: readers read the table by cursor, and read again every second without
//! one, so a lost notification (a dropped listening connection) only delays them.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use sea_orm::sqlx::postgres::PgListener;

use super::{Backend, Result, Store};

/// The channel appends notify on.
pub(crate) const CHANNEL: &str = "hoop_events";
/// The largest payload PostgreSQL takes is 8000 bytes; past this many bytes of types the
/// payload says only that something was appended.
const MAX_KINDS_LEN: usize = 4000;
/// How long the listener waits after failing to (re)connect.
const RETRY: Duration = Duration::from_secs(1);

/// Sends the wake-up of other gateways for `kinds`, inside the appending transaction.
pub(crate) async fn notify<C: ConnectionTrait>(
    txn: &C,
    origin: &str,
    kinds: &[&str],
) -> Result<()> {
    let mut list: Vec<&str> = Vec::new();
    for kind in kinds {
        if !list.contains(kind) {
            list.push(kind);
        }
    }
    let mut joined = list.join(",");
    if joined.len() > MAX_KINDS_LEN {
        joined = "*".to_owned();
    }
    txn.execute(sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), format!("{origin}|{joined}").into()],
    ))
    .await?;
    Ok(())
}

impl Store {
    /// On PostgreSQL, listens for the appends of other gateways on the same database and
    /// wakes this process's readers of the log for them (see the module docs), until
    /// `shutdown` turns true. `None` on SQLite, where one process writes.
    pub fn spawn_remote_wakeups(
        &self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.backend() != Backend::Postgres {
            return None;
        }
        let store = self.clone();
        Some(tokio::spawn(async move {
            tokio::select! {
                () = store.listen_remote() => {}
                _ = shutdown.wait_for(|down| *down) => {}
            }
        }))
    }

    async fn listen_remote(&self) {
        loop {
            let pool = self.db().get_postgres_connection_pool();
            let mut listener = match PgListener::connect_with(pool).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for other gateways' events; retrying (readers poll every second meanwhile)");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if let Err(err) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %err, "cannot listen for other gateways' events; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            // Anything appended while nobody listened: every reader looks again.
            self.remote_appended(None);
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        let payload = notification.payload();
                        let (origin, kinds) = payload.split_once('|').unwrap_or(("", payload));
                        if origin == &*self.origin {
                            continue;
                        }
                        if kinds == "*" {
                            self.remote_appended(None);
                        } else {
                            let kinds: Vec<String> = kinds.split(',').map(str::to_owned).collect();
                            self.remote_appended(Some(&kinds));
                        }
                    }
                    // Lost and reconnected: notifications may have been missed.
                    Ok(None) => self.remote_appended(None),
                    Err(err) => {
                        tracing::warn!(error = %err, "lost the wake-ups of other gateways; reconnecting");
                        tokio::time::sleep(RETRY).await;
                        break;
                    }
                }
            }
        }
    }

    /// Wakes the readers for events another gateway appended: of these `kinds`, or of any
    /// type (`None`).
    fn remote_appended(&self, kinds: Option<&[String]>) {
        match kinds {
            Some(kinds) => self.events_appended(kinds),
            None => {
                self.any_appended
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.appended.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}
