//! The ingest: reads the event log by cursor and turns each event into one delivery per
//! endpoint it goes to, in the outbox, before the cursor moves past it. A gateway killed at
//! any point reads the events after its saved cursor again; deliveries already there are
//! left alone (one per endpoint and event), so nothing is lost and nothing doubled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hoop_core::events::{Event, EventFilter, Subscription, types};
use hoop_core::ports::Directory;
use hoop_core::{Cancellation, Deployment, PluginConfig};

use sea_orm::Set;

use crate::schema::{delivery, endpoint, input};
use crate::store::{DeliveryStatus, WebhookStore, now_ms};
use crate::{ConnectionConfig, NAME};

/// The consumer name of the ingest's cursor.
pub(crate) const CONSUMER: &str = "plugin.webhooks";
/// Most events ingested in one transaction.
const BATCH: usize = 256;
/// How often the cursor is saved at most.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long it waits after a failure before trying the same events again.
const RETRY: Duration = Duration::from_secs(1);
/// The event types whose payload carries the session's input.
pub(crate) const WITH_INPUT: &[&str] = &[
    types::SESSION_STARTED,
    types::SESSION_CLOSED,
    types::RECORDING_FINISHED,
];
/// How long captured inputs are kept (events are ingested long before).
const INPUT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often an ingest without an enabled endpoint looks for one (an endpoint created or
/// enabled through this gateway wakes it at once; through another, within this).
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// Wakes the ingest of this process: an endpoint was created or enabled.
pub(crate) fn endpoints_changed() {
    endpoints_notifier().notify_waiters();
    endpoints_notifier().notify_one();
}

fn endpoints_notifier() -> &'static tokio::sync::Notify {
    static CHANGED: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    CHANGED.get_or_init(tokio::sync::Notify::new)
}

/// Runs until `cancel` fires.
pub(crate) async fn run(
    deployment: Deployment,
    store: WebhookStore,
    directory: Arc<dyn Directory>,
    cancel: Cancellation,
) {
    let mut sub = loop {
        match deployment.subscribe(CONSUMER, EventFilter::all()).await {
            Ok(sub) => break sub,
            Err(err) => {
                tracing::warn!(error = %err, "webhooks: cannot read the event log; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    };
    let mut last_prune = std::time::Instant::now()
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or_else(std::time::Instant::now);
    // The cursor is saved at most once per `SAVE_EVERY` (reading a few events again after a
    // restart adds nothing), so a busy log does not cost a write per event.
    let mut saved = sub.cursor();
    let mut last_save = std::time::Instant::now();
    let mut tick = tokio::time::interval(SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let source = deployment.events().ok();
    // Whether the last look found no enabled endpoint (at start: not looked yet).
    let mut idle = true;
    loop {
        if idle && let Some(source) = &source {
            match skip_while_idle(source, &store, &cancel).await {
                Idle::Cancelled(end) => {
                    let cursor = end.unwrap_or_else(|| sub.cursor()).max(sub.cursor());
                    if cursor != saved {
                        save(&deployment, cursor).await;
                    }
                    return;
                }
                Idle::Over(end) => {
                    idle = false;
                    if let Some(end) = end.filter(|end| *end > sub.cursor()) {
                        sub = Subscription::new(Arc::clone(source), end, EventFilter::all());
                        save(&deployment, end).await;
                        saved = end;
                        last_save = std::time::Instant::now();
                    }
                }
            }
        }
        let first = tokio::select! {
            next = sub.next() => next,
            _ = tick.tick() => {
                if sub.cursor() != saved {
                    save(&deployment, sub.cursor()).await;
                    saved = sub.cursor();
                    last_save = std::time::Instant::now();
                }
                continue;
            }
            () = cancel.cancelled() => {
                if sub.cursor() != saved {
                    save(&deployment, sub.cursor()).await;
                }
                return;
            }
        };
        let first = match first {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(error = %err, "webhooks: cannot read the event log; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = cancel.cancelled() => return,
                }
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match sub.try_next().await {
                Ok(Some(event)) => batch.push(event),
                _ => break,
            }
        }
        // The same events until they are in the outbox: the cursor moves only then.
        loop {
            match ingest(&store, directory.as_ref(), &batch).await {
                Ok(Ingested::Queued(added)) => {
                    if added > 0 {
                        crate::dispatch::wake();
                    }
                    break;
                }
                Ok(Ingested::NoEndpoint) => {
                    idle = true;
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "webhooks: cannot queue deliveries; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        () = cancel.cancelled() => return,
                    }
                }
            }
        }
        if last_save.elapsed() >= SAVE_EVERY {
            save(&deployment, sub.cursor()).await;
            saved = sub.cursor();
            last_save = std::time::Instant::now();
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            let cutoff = now_ms() - i64::try_from(INPUT_RETENTION.as_millis()).unwrap_or(0);
            if let Err(err) = store.prune_inputs(cutoff).await {
                tracing::warn!(error = %err, "webhooks: cannot prune stored inputs");
            }
        }
    }
}

/// How an idle spell of the ingest ended: with the position it skipped the log to, if any.
enum Idle {
    /// An endpoint is enabled (or the log or the endpoints cannot be read: the events are
    /// then read one by one as usual).
    Over(Option<u64>),
    Cancelled(Option<u64>),
}

/// While no endpoint is enabled, every event would be dropped: rather than read each one,
/// look for an endpoint now and then, and skip the log to where it ended before each look
/// that found none. An event appended after an endpoint is enabled is never skipped: the
/// log's end is read before the endpoints, so a look that finds none comes after every event
/// it skips.
async fn skip_while_idle(
    source: &Arc<dyn hoop_core::events::EventSource>,
    store: &WebhookStore,
    cancel: &Cancellation,
) -> Idle {
    let mut skipped = None;
    loop {
        // Registered before looking: a change made during the look still wakes the wait.
        let changed = endpoints_notifier().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let Ok(end) = source.last_id().await else {
            return Idle::Over(skipped);
        };
        match store.endpoint_rows().await {
            Ok(rows) if routes(&rows).is_empty() => skipped = Some(end),
            _ => return Idle::Over(skipped),
        }
        tokio::select! {
            () = tokio::time::sleep(IDLE_LOOK) => {}
            () = &mut changed => {}
            () = cancel.cancelled() => return Idle::Cancelled(skipped),
        }
    }
}

/// What [`ingest`] did with a batch.
enum Ingested {
    /// Queued this many deliveries.
    Queued(usize),
    /// Nothing: no endpoint is enabled.
    NoEndpoint,
}

/// Saves the ingest's cursor.
async fn save(deployment: &Deployment, cursor: u64) {
    if let Err(err) = deployment.save_cursor(CONSUMER, cursor).await {
        // The events are queued; reading them again after a restart adds nothing.
        tracing::warn!(error = %err, "webhooks: cannot save the event cursor");
    }
}

/// An endpoint's filters, parsed once per batch.
struct Route {
    name: String,
    events: EventFilter,
    connections: Vec<String>,
}

fn routes(rows: &[endpoint::Model]) -> Vec<Route> {
    rows.iter()
        .filter(|r| r.enabled)
        .filter_map(|r| {
            let events: Vec<String> = serde_json::from_str(&r.events).ok()?;
            Some(Route {
                name: r.name.clone(),
                // Checked when stored; a filter this build cannot read gets nothing rather
                // than everything.
                events: EventFilter::parse(&events).ok()?,
                connections: serde_json::from_str(&r.connections).ok()?,
            })
        })
        .collect()
}

/// Queues the deliveries of `events`.
async fn ingest(
    store: &WebhookStore,
    directory: &dyn Directory,
    events: &[Event],
) -> Result<Ingested, crate::WebhookError> {
    let routes = routes(&store.endpoint_rows().await?);
    if routes.is_empty() {
        return Ok(Ingested::NoEndpoint);
    }
    // Per connection: the endpoints its attachment names (empty: all), or not attached.
    let mut attached: HashMap<String, Option<Vec<String>>> = HashMap::new();
    let mut rows = Vec::new();
    let now = now_ms();
    for event in events {
        let only: Option<Vec<String>> = match &event.connection {
            Some(conn) => {
                if !attached.contains_key(conn) {
                    let config = directory
                        .plugin_config(conn, NAME)
                        .await
                        .map_err(|e| crate::WebhookError::Unavailable(e.to_string()))?;
                    attached.insert(conn.clone(), config.map(|c| endpoints_of(&c)));
                }
                match attached.get(conn).cloned().flatten() {
                    // Not attached: the connection's events stay in.
                    None => continue,
                    Some(names) => Some(names).filter(|n| !n.is_empty()),
                }
            }
            None => None,
        };
        let targets: Vec<&Route> = routes
            .iter()
            .filter(|r| r.events.matches(&event.kind))
            .filter(|r| match &event.connection {
                Some(conn) => r.connections.is_empty() || r.connections.contains(conn),
                None => r.connections.is_empty(),
            })
            .filter(|r| only.as_ref().is_none_or(|names| names.contains(&r.name)))
            .collect();
        if targets.is_empty() {
            continue;
        }
        let input = match event.data.get("session_id").and_then(|v| v.as_str()) {
            Some(session) if WITH_INPUT.contains(&event.kind.as_str()) => {
                store.input(session).await?
            }
            _ => None,
        };
        let body = payload(event, input.as_ref());
        let event_id = i64::try_from(event.id).unwrap_or(i64::MAX);
        for target in targets {
            rows.push(delivery::ActiveModel {
                id: Set(format!("msg_{}", uuid::Uuid::new_v4().simple())),
                endpoint: Set(target.name.clone()),
                event_id: Set(event_id),
                event_type: Set(event.kind.clone()),
                connection: Set(event.connection.clone()),
                payload: Set(body.clone()),
                status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                attempts: Set(0),
                next_attempt_ms: Set(now),
                lease_owner: Set(None),
                lease_until_ms: Set(None),
                last_status_code: Set(None),
                last_error: Set(None),
                created_ms: Set(now),
                updated_ms: Set(now),
            });
        }
    }
    let added = rows.len();
    store.insert_deliveries(rows).await?;
    Ok(Ingested::Queued(added))
}

/// The endpoints a connection's attachment names (empty: every endpoint).
fn endpoints_of(config: &PluginConfig) -> Vec<String> {
    config
        .parse::<ConnectionConfig>()
        .map(|c| c.endpoints)
        .unwrap_or_default()
}

/// The body of a delivery: `{"type", "timestamp", "data"}`. `data` holds the event's id,
/// connection and user, its own fields, and for [`WITH_INPUT`] types the session's masked
/// input.
pub(crate) fn payload(event: &Event, input: Option<&input::Model>) -> String {
    let mut data = serde_json::Map::new();
    data.insert("event_id".into(), event.id.into());
    if let Some(connection) = &event.connection {
        data.insert("connection".into(), connection.clone().into());
    }
    if let Some(user) = &event.user {
        data.insert("user".into(), user.clone().into());
    }
    if let serde_json::Value::Object(fields) = &event.data {
        for (key, value) in fields {
            data.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    if let Some(input) = input {
        data.insert("input".into(), input.input.clone().into());
        data.insert("input_size".into(), input.input_size.into());
        data.insert("input_truncated".into(), input.input_truncated.into());
    }
    let timestamp = chrono::DateTime::<chrono::Utc>::from(event.time)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::json!({
        "type": event.kind,
        "timestamp": timestamp,
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_type_timestamp_and_data() {
        let event = Event {
            id: 42,
            kind: "session.closed".into(),
            time: std::time::UNIX_EPOCH + Duration::from_millis(1_796_306_709_120),
            connection: Some("pg".into()),
            user: Some("alice".into()),
            data: serde_json::json!({"session_id": "s1", "exit_code": 0}),
        };
        let input = input::Model {
            session_id: "s1".into(),
            input: "select 1;".into(),
            input_size: 9,
            input_truncated: false,
            created_ms: 0,
        };
        let body: serde_json::Value = serde_json::from_str(&payload(&event, Some(&input))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "session.closed",
                "timestamp": "2026-12-03T14:05:09.120Z",
                "data": {"event_id": 42, "connection": "pg", "user": "alice", "session_id": "s1",
                         "exit_code": 0, "input": "select 1;", "input_size": 9,
                         "input_truncated": false}
            })
        );
    }
}
