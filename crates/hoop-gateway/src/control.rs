//! Control of sessions across the gateways sharing a database. A session runs on one
//! gateway (its owner instance); `KillSession` through another appends
//! `session.kill_requested` naming the owner, which reads it from the event log (woken at
//! once by PostgreSQL's `NOTIFY`, else within a second) and kills the session. Approvals,
//! revocations and expiries need nothing of the kind: they are events already, which every
//! gateway's review plugin reads.

use std::sync::Arc;
use std::time::Duration;

use hoop_core::events::{EventFilter, EventSource, Subscription, types};
use hoop_store::{NewEvent, SessionRecord, Store};
use tokio::sync::watch;

use crate::error::Error;
use crate::events::StoreEvents;
use crate::runtime::Running;

/// How long `KillSession` waits for the owner of a session to settle it.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Kills, on this gateway, the sessions other gateways were asked to kill, until `shutdown`.
pub(crate) fn spawn_kill_requests(
    store: Store,
    running: Arc<Running>,
    instance: String,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let events: Arc<dyn EventSource> = Arc::new(StoreEvents::new(store.clone()));
        let after = loop {
            match events.last_id().await {
                Ok(id) => break id,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the event log; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.wait_for(|down| *down) => return,
                    }
                }
            }
        };
        let filter = EventFilter::parse([types::SESSION_KILL_REQUESTED]).unwrap_or_default();
        let mut requests = Subscription::new(events, after, filter);
        loop {
            let event = tokio::select! {
                next = requests.next() => next,
                _ = shutdown.wait_for(|down| *down) => return,
            };
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read kill requests; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.wait_for(|down| *down) => return,
                    }
                    continue;
                }
            };
            let field = |name: &str| {
                event
                    .data
                    .get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            if field("instance") != instance {
                continue;
            }
            let session = field("session_id");
            let by = event.user.clone().unwrap_or_default();
            let running = Arc::clone(&running);
            // Killing waits until the session is settled; requests go on meanwhile.
            tokio::spawn(async move {
                if running.kill(&session, &by).await.is_ok() {
                    tracing::info!(%session, %by, "session killed at the request of another gateway");
                }
            });
        }
    })
}

/// Asks the gateway that runs `session` to kill it, and waits until it is settled.
pub(crate) async fn kill_elsewhere(
    store: &Store,
    session: &SessionRecord,
    owner: &str,
    by: &str,
) -> Result<SessionRecord, Error> {
    // A gateway that is gone kills nothing: settle its sessions (if its lease has expired)
    // rather than wait for it.
    let now = store.db_now().await.map_err(Error::from)?;
    let gone = store
        .list_instances()
        .await
        .map_err(Error::from)?
        .into_iter()
        .find(|i| i.id == owner)
        .is_none_or(|i| i.stopped_at.is_some() || i.expires_at <= now);
    if gone {
        let me = store.instance().unwrap_or_default().to_owned();
        store
            .interrupt_sessions_of_lost_instances(&me, false)
            .await
            .map_err(Error::from)?;
        return store.get_session(&session.id).await.map_err(Error::from);
    }
    let events: Arc<dyn EventSource> = Arc::new(StoreEvents::new(store.clone()));
    let after = store.last_event_id().await.map_err(Error::from)?;
    let filter = EventFilter::parse([types::SESSION_CLOSED]).unwrap_or_default();
    let mut closed = Subscription::new(events, after, filter);
    store
        .append_events(vec![
            NewEvent::new(
                types::SESSION_KILL_REQUESTED,
                serde_json::json!({ "session_id": session.id, "instance": owner }),
            )
            .connection(&session.connection)
            .user(by),
        ])
        .await
        .map_err(Error::from)?;
    let settled = tokio::time::timeout(KILL_WAIT, async {
        loop {
            match closed.next().await {
                Ok(event)
                    if event.data.get("session_id").and_then(|v| v.as_str())
                        == Some(session.id.as_str()) =>
                {
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    let now = store.get_session(&session.id).await.map_err(Error::from)?;
    if settled || now.status != "open" {
        return Ok(now);
    }
    Err(Error::Unavailable(format!(
        "session `{}` runs on gateway instance `{owner}`, which was asked to kill it but has \
         not within {}s: see `hoop gateways list`; if that gateway is gone, its sessions are \
         settled as interrupted once its lease expires",
        session.id,
        KILL_WAIT.as_secs()
    )))
}
