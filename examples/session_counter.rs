//! A plugin that lives on the event log: `session_counter` counts closed sessions per
//! connection.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example session_counter
//! ```
//!
//! The plugin has no session hooks. Its [`PluginFactory::start`] keeps a background task on
//! the durable event log: it subscribes to `session.closed` from its saved cursor (a new
//! consumer starts at the end of the log), counts each event under its connection, saves
//! its cursor once the event is counted, prints the counts, and ends when the host stops.
//!
//! The program hosts the plugin itself, as the gateway does, with a [`PluginHost`] over an
//! in-memory event log and cursor store (the gateway's are its database). It appends some
//! events, waits until the plugin reports the right counts (the plugin publishes them on a
//! `tokio::sync::watch` channel: no sleeping), stops the host, appends one more event while
//! the plugin is stopped, and starts it again: it resumes at its saved cursor, so it counts
//! that event and none twice. It exits non-zero if anything is wrong (CI runs it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hoop_core::events::{CursorStore, EventFilter, MemoryCursors, MemoryEventLog, types};
use hoop_core::{
    ConfigError, Deployment, Plugin, PluginConfig, PluginDescriptor, PluginFactory, PluginHost,
    Ports, Resources, StartError,
};
use tokio::sync::watch;

/// The plugin's registry name, and its consumer name in the event log.
const NAME: &str = "session_counter";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Counts closed sessions per connection, from the event log.",
)
.with_configuration(
    "takes no configuration: it works on the event log, not on sessions",
    "",
);

/// What the counter has done so far, published after every event it dealt with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tally {
    /// Whether its subscription is in place (events appended after that are counted).
    subscribed: bool,
    /// Closed sessions per connection, since this deployment started.
    closed: BTreeMap<String, u64>,
    /// The cursor it saved last.
    cursor: u64,
}

/// The plugin's factory. It shares its [`Tally`] through a watch channel; a real plugin
/// would expose it otherwise (metrics, an API of its own).
#[derive(Debug)]
struct SessionCounterFactory {
    tally: watch::Sender<Tally>,
}

impl SessionCounterFactory {
    fn new() -> (Self, watch::Receiver<Tally>) {
        let (tally, rx) = watch::channel(Tally::default());
        (Self { tally }, rx)
    }
}

/// The plugin on a connection: no hooks, so every session passes untouched.
#[derive(Debug)]
struct SessionCounter;

impl Plugin for SessionCounter {
    fn name(&self) -> &str {
        NAME
    }
}

impl PluginFactory for SessionCounterFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn build(
        &self,
        _config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        Ok(Arc::new(SessionCounter))
    }

    fn start(&self, deployment: &Deployment) -> Result<(), StartError> {
        // Ask for the ports now: a host without them fails to start, naming the port.
        deployment.events()?;
        deployment.cursors()?;
        // `start` cannot wait: the task subscribes, on a clone of the deployment.
        deployment.spawn(count_closed_sessions(
            deployment.clone(),
            self.tally.clone(),
        ));
        Ok(())
    }
}

/// The background task: counts `session.closed` events until the host stops.
async fn count_closed_sessions(deployment: Deployment, tally: watch::Sender<Tally>) {
    let cancel = deployment.cancellation();
    let filter = match EventFilter::parse([types::SESSION_CLOSED]) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!("[{NAME}] {err}");
            return;
        }
    };
    let mut closed = loop {
        match deployment.subscribe(NAME, filter.clone()).await {
            Ok(subscription) => break subscription,
            Err(err) => {
                eprintln!("[{NAME}] cannot subscribe to the event log: {err}; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    };
    println!(
        "[{NAME}] counting closed sessions after event {}",
        closed.cursor()
    );
    tally.send_modify(|t| {
        t.subscribed = true;
        t.cursor = closed.cursor();
    });
    loop {
        let next = tokio::select! {
            next = closed.next() => next,
            () = cancel.cancelled() => break,
        };
        let event = match next {
            Ok(event) => event,
            Err(err) => {
                // The log could not be read: the subscription keeps its place; try again.
                eprintln!("[{NAME}] cannot read the event log: {err}; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = cancel.cancelled() => break,
                }
            }
        };
        let connection = event.connection.as_deref().unwrap_or("(none)").to_owned();
        let cursor = closed.cursor();
        // The event is dealt with: save the cursor, so a restart resumes after it.
        if let Err(err) = deployment.save_cursor(NAME, cursor).await {
            eprintln!("[{NAME}] cannot save the cursor {cursor}: {err}");
        }
        tally.send_modify(|t| {
            *t.closed.entry(connection.clone()).or_default() += 1;
            t.cursor = cursor;
            println!(
                "[{NAME}] event {}: closed sessions on {connection}: {}",
                event.id, t.closed[&connection]
            );
        });
    }
    println!("[{NAME}] stopped at event {}", closed.cursor());
}

/// How long the program waits for the plugin before it calls it a failure (a safety net:
/// it never waits that long when the plugin works).
const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until the plugin's tally passes `test`.
async fn wait_for(
    tally: &mut watch::Receiver<Tally>,
    what: &str,
    test: impl FnMut(&Tally) -> bool,
) -> Result<Tally, String> {
    let waited = tokio::time::timeout(PATIENCE, tally.wait_for(test))
        .await
        .map(|seen| seen.map(|t| t.clone()));
    match waited {
        Ok(Ok(seen)) => Ok(seen),
        Ok(Err(_)) => Err(format!("the plugin went away before {what}")),
        Err(_) => Err(format!(
            "no {what} within {PATIENCE:?}; the plugin reports {:?}",
            *tally.borrow()
        )),
    }
}

/// Starts the plugin on a new host over `log` and `cursors`.
fn start(
    log: &Arc<MemoryEventLog>,
    cursors: &Arc<MemoryCursors>,
    factory: &SessionCounterFactory,
) -> Result<PluginHost, String> {
    let ports = Ports {
        events: Some(log.clone()),
        cursors: Some(cursors.clone()),
        ..Ports::default()
    };
    let host = PluginHost::new(Arc::new(Resources::new()), ports);
    let settings = PluginConfig::empty();
    factory
        .validate_settings(&settings)
        .map_err(|e| format!("settings refused: {e}"))?;
    host.start(factory, settings)
        .map_err(|e| format!("the plugin did not start: {e}"))?;
    Ok(host)
}

/// Appends a session on `connection`: opened, then closed. Returns the id of the
/// `session.closed` event.
fn session(log: &MemoryEventLog, id: &str, connection: &str, user: &str) -> u64 {
    let data = serde_json::json!({ "session_id": id, "verb": "exec" });
    log.append(types::SESSION_OPENED, Some(connection), Some(user), data);
    let data = serde_json::json!({
        "session_id": id, "verb": "exec", "status": "done", "exit_code": 0,
        "reason": "exited with code 0", "bytes_in": 9, "bytes_out": 120,
    });
    log.append(types::SESSION_CLOSED, Some(connection), Some(user), data)
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let log = Arc::new(MemoryEventLog::new());
    let cursors = Arc::new(MemoryCursors::default());

    // A session closed before the plugin ever ran: a new consumer starts at the end of the
    // log, so it is not counted.
    session(&log, "s-0", "legacy-db", "alice");

    println!("first start");
    let (factory, mut tally) = SessionCounterFactory::new();
    let host = start(&log, &cursors, &factory)?;
    wait_for(&mut tally, "subscription", |t| t.subscribed).await?;
    for (id, connection, user) in [
        ("s-1", "pg-prod", "alice"),
        ("s-2", "bash", "bob"),
        ("s-3", "pg-prod", "carol"),
        ("s-4", "pg-prod", "alice"),
    ] {
        session(&log, id, connection, user);
    }
    // Other events pass the plugin by.
    log.append(
        types::REVIEW_CREATED,
        Some("pg-prod"),
        Some("alice"),
        serde_json::json!({ "review_id": "r-1" }),
    );
    let last = session(&log, "s-5", "bash", "carol");
    let expected = counts(&[("bash", 2), ("pg-prod", 3)]);
    let seen = wait_for(&mut tally, "counts of the first run", |t| {
        t.closed == expected
    })
    .await?;
    let saved = cursors
        .load(NAME)
        .await
        .map_err(|e| format!("cannot read the saved cursor: {e}"))?;
    if saved != Some(last) || seen.cursor != last {
        return Err(format!(
            "the saved cursor is {saved:?} (reported {}), expected {last}",
            seen.cursor
        ));
    }
    println!("closed sessions per connection: {:?}", seen.closed);
    if !host.shutdown(Duration::from_secs(5)).await {
        return Err("the plugin's task did not stop within 5 s".into());
    }

    // While the plugin is stopped, another session closes.
    let last = session(&log, "s-6", "bash", "bob");

    println!("second start, from the saved cursor");
    let (factory, mut tally) = SessionCounterFactory::new();
    let host = start(&log, &cursors, &factory)?;
    let expected = counts(&[("bash", 1)]);
    let seen = wait_for(&mut tally, "counts after the restart", |t| {
        t.closed == expected
    })
    .await?;
    if seen.cursor != last {
        return Err(format!(
            "the plugin resumed at event {}, expected {last}",
            seen.cursor
        ));
    }
    println!(
        "closed sessions per connection since the restart: {:?}",
        seen.closed
    );
    if !host.shutdown(Duration::from_secs(5)).await {
        return Err("the plugin's task did not stop within 5 s".into());
    }
    // Nothing was counted twice: the restarted plugin saw only the one new session.
    if tally.borrow().closed != expected {
        return Err(format!(
            "after shutdown the plugin reports {:?}",
            tally.borrow().closed
        ));
    }
    Ok(())
}
