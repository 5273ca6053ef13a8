//! The durable event log as its consumers see it: [`Event`], the [`EventSource`] a host
//! implements over its storage, and [`Subscription`], which reads a source by cursor.
//!
//! Every state change worth telling (a session opening, a review approved, a connection
//! deleted) is appended to the log by the host in the same transaction as the change, with
//! an increasing id. Consumers never rely on being notified: a [`Subscription`] reads the
//! events after its cursor from the source, and a notification only tells it to read
//! again sooner. A consumer that falls behind (or was stopped for a week) reads what it
//! missed from the log and loses nothing, as long as the host keeps the events (hosts prune
//! the log after a retention period).
//!
//! ```
//! use std::sync::Arc;
//! use hoop_core::events::{Event, EventFilter, MemoryEventLog, Subscription, types};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let log = Arc::new(MemoryEventLog::new());
//! log.append(types::SESSION_OPENED, Some("db"), Some("alice"), serde_json::json!({"session_id": "s-1"}));
//! log.append(types::REVIEW_CREATED, Some("db"), Some("alice"), serde_json::json!({"review_id": "r-1"}));
//!
//! let mut sub = Subscription::new(log.clone(), 0, EventFilter::parse(["review.*"]).unwrap());
//! let event = sub.next().await.unwrap();
//! assert_eq!(event.kind, "review.created");
//! assert_eq!(sub.cursor(), 2);
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::ports::PortError;

/// The event types the gateway appends, and what their `data` holds (see the README's
/// "Events" section for JSON examples).
pub mod types {
    /// A session was asked for and its record created (`session_id`, `verb`,
    /// `connection_type`; for a runbook run also `runbook`: `repository`, `path`, `commit`).
    pub const SESSION_OPENED: &str = "session.opened";
    /// A plugin held the session until someone decides (`session_id`, `plugin`,
    /// `request_id`, `groups`, `reason`).
    pub const SESSION_HELD: &str = "session.held";
    /// Every plugin let the session in and its process runs (`session_id`).
    pub const SESSION_STARTED: &str = "session.started";
    /// The session ended (`session_id`, `verb`, `status`, `exit_code`, `reason`, `bytes_in`,
    /// `bytes_out`).
    pub const SESSION_CLOSED: &str = "session.closed";
    /// Someone asked, through a gateway that does not run the session, for it to be killed
    /// (`session_id`, `instance`: the gateway instance that runs it); that gateway kills it.
    pub const SESSION_KILL_REQUESTED: &str = "session.kill_requested";
    /// The session's recording is complete and sealed (`session_id`, `digest`, `events`).
    pub const RECORDING_FINISHED: &str = "recording.finished";
    /// A review was requested (`review_id`, `kind`, `status`, `requester`, `verb`, `groups`;
    /// every review event carries the same fields, as the review now is).
    pub const REVIEW_CREATED: &str = "review.created";
    /// A review got all the approvals it needs (`approved_by`: `user (group)` each).
    pub const REVIEW_APPROVED: &str = "review.approved";
    /// A reviewer approved a review that still needs more approvals: it stays pending
    /// (`approved_by` so far; the event's user is the reviewer).
    pub const REVIEW_VOTED: &str = "review.voted";
    /// A reviewer rejected a review (`reason`).
    pub const REVIEW_REJECTED: &str = "review.rejected";
    /// A review was revoked; the event's user revoked it (`reason`).
    pub const REVIEW_REVOKED: &str = "review.revoked";
    /// A review stayed pending past its TTL, or its grant ran out (`reason`).
    pub const REVIEW_EXPIRED: &str = "review.expired";
    /// A one-time review ran (`review_id`, `session_id`).
    pub const REVIEW_EXECUTED: &str = "review.executed";
    /// A connection was created (`name`, `type`).
    pub const CONNECTION_CREATED: &str = "connection.created";
    /// A connection or one of its plugins was changed (`name`, `change`: `fields`,
    /// `plugin_attached`, `plugin_configured` or `plugin_detached`, and `plugin`).
    pub const CONNECTION_UPDATED: &str = "connection.updated";
    /// A connection was deleted (`name`).
    pub const CONNECTION_DELETED: &str = "connection.deleted";
    /// An agent was created (`name`).
    pub const AGENT_CREATED: &str = "agent.created";
    /// An agent was deleted (`name`); a connected one is cut off.
    pub const AGENT_DELETED: &str = "agent.deleted";
    /// An agent process started serving (`name`, `version`, `hostname`).
    pub const AGENT_CONNECTED: &str = "agent.connected";
    /// An agent process stopped serving (`name`, `reason`); its sessions were interrupted.
    pub const AGENT_DISCONNECTED: &str = "agent.disconnected";

    /// Every type, in the order above.
    pub const ALL: &[&str] = &[
        SESSION_OPENED,
        SESSION_HELD,
        SESSION_STARTED,
        SESSION_CLOSED,
        SESSION_KILL_REQUESTED,
        RECORDING_FINISHED,
        REVIEW_CREATED,
        REVIEW_APPROVED,
        REVIEW_VOTED,
        REVIEW_REJECTED,
        REVIEW_REVOKED,
        REVIEW_EXPIRED,
        REVIEW_EXECUTED,
        CONNECTION_CREATED,
        CONNECTION_UPDATED,
        CONNECTION_DELETED,
        AGENT_CREATED,
        AGENT_DELETED,
        AGENT_CONNECTED,
        AGENT_DISCONNECTED,
    ];
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the log: increasing, never reused (there may be gaps).
    pub id: u64,
    /// The event type, e.g. `session.closed` (see [`types`]).
    pub kind: String,
    /// When the change happened.
    pub time: SystemTime,
    /// The connection it concerns, if any.
    pub connection: Option<String>,
    /// The user it concerns (who acted, or whose session it is), if any.
    pub user: Option<String>,
    /// What happened, as documented for the type.
    pub data: serde_json::Value,
}

/// Which event types a consumer wants: exact types (`review.approved`) or every type under a
/// prefix (`review.*`). Empty means every type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

/// A filter pattern that names no known event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{pattern}` (known: {known}; `prefix.*` matches a family)")]
pub struct UnknownEventType {
    /// The pattern as given.
    pub pattern: String,
    /// Index of the pattern in the list given to [`EventFilter::parse`].
    pub index: usize,
    known: String,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// A filter from patterns: each an exact type of [`types::ALL`] or `family.*` where some
    /// known type starts with `family.`.
    ///
    /// # Errors
    /// [`UnknownEventType`] for the first pattern that matches no known type.
    pub fn parse<I, S>(patterns: I) -> Result<Self, UnknownEventType>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut filter = Self::default();
        for (index, pattern) in patterns.into_iter().enumerate() {
            let pattern = pattern.as_ref().trim();
            let known = if let Some(family) = pattern.strip_suffix(".*") {
                let prefix = format!("{family}.");
                let any = !family.is_empty() && types::ALL.iter().any(|t| t.starts_with(&prefix));
                if any {
                    filter.prefixes.push(prefix);
                }
                any
            } else if types::ALL.contains(&pattern) {
                filter.exact.push(pattern.to_owned());
                true
            } else {
                false
            };
            if !known {
                return Err(UnknownEventType {
                    pattern: pattern.to_owned(),
                    index,
                    known: types::ALL.join(", "),
                });
            }
        }
        Ok(filter)
    }

    /// Whether the filter lets every event through.
    pub fn is_all(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Whether an event of type `kind` passes.
    pub fn matches(&self, kind: &str) -> bool {
        self.is_all()
            || self.exact.iter().any(|t| t == kind)
            || self.prefixes.iter().any(|p| kind.starts_with(p.as_str()))
    }
}

/// A read of the log: the events after a cursor that passed a filter, and how far the read
/// looked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// The matching events, oldest first.
    pub events: Vec<Event>,
    /// The id of the last event the read looked at, matching or not (the cursor it was
    /// given if it found none): the next read starts after it.
    pub scanned_to: u64,
}

/// Where a host keeps its event log: what consumers read.
///
/// Appending is the host's business (in the same transaction as the change); consumers only
/// read.
#[async_trait]
pub trait EventSource: Send + Sync + fmt::Debug + 'static {
    /// Up to `limit` events with an id greater than `after` (oldest first), looking at no more
    /// than `limit` events in all, keeping those that pass `filter`.
    ///
    /// Hosts must only return a prefix of the log: once event `n` is returned, no event with
    /// a smaller id may appear later.
    async fn read(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EventPage, PortError>;

    /// The id of the newest event, or 0.
    async fn last_id(&self) -> Result<u64, PortError>;

    /// A receiver whose value changes when events may have been appended: a wake-up, not a
    /// delivery. Events appended by other processes on a shared database may not wake it,
    /// so consumers also read again after a while ([`Subscription`] does).
    fn notifications(&self) -> watch::Receiver<u64>;

    /// How many events that pass `filter` this process has appended so far, if the source
    /// counts them: a hint that lets a woken consumer skip reading when none of the types it
    /// waits for was appended. The count must grow *before* the wake-up it goes with, and
    /// only after the events are readable. `None` (the default) makes every wake-up a read.
    fn appended_matching(&self, filter: &EventFilter) -> Option<u64> {
        let _ = filter;
        None
    }
}

/// How many events a subscription reads at a time.
const READ_BATCH: usize = 512;
/// How long a caught-up subscription waits for a wake-up before it reads again anyway.
const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// A consumer's position in the log: hands out the events after its cursor, one at a time
/// and in order, waiting for new ones when it has caught up.
///
/// It reads from the [`EventSource`] in batches; notifications only make it read again
/// sooner, so it never misses an event however far behind it is.
pub struct Subscription {
    source: Arc<dyn EventSource>,
    filter: EventFilter,
    cursor: u64,
    scanned: u64,
    buffer: VecDeque<Event>,
    wake: watch::Receiver<u64>,
    /// The source's count of appended events passing the filter when it was last read.
    seen: Option<u64>,
    /// The last read found nothing after the cursor: until the source counts a wanted
    /// append (or the poll interval runs out), reading again would find nothing either.
    caught_up: bool,
    poll: Duration,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("cursor", &self.cursor)
            .field("buffered", &self.buffer.len())
            .field("filter", &self.filter)
            .finish()
    }
}

impl Subscription {
    /// Reads the events after `after` (0: from the beginning of the log) that pass `filter`.
    pub fn new(source: Arc<dyn EventSource>, after: u64, filter: EventFilter) -> Self {
        let wake = source.notifications();
        Self {
            source,
            filter,
            cursor: after,
            scanned: after,
            buffer: VecDeque::new(),
            wake,
            seen: None,
            caught_up: false,
            poll: DEFAULT_POLL,
        }
    }

    /// Sets how long a caught-up subscription waits before it reads again without a
    /// wake-up (default one second).
    #[must_use]
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(10));
        self
    }

    /// The id of the last event handed out by [`next`](Self::next) (or of the last event
    /// skipped by the filter): persist it to resume after a restart.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The next event, waiting for one if the consumer has caught up.
    ///
    /// # Errors
    /// What the source returned; the subscription keeps its position, so calling `next`
    /// again retries the same read.
    pub async fn next(&mut self) -> Result<Event, PortError> {
        loop {
            if let Some(event) = self.try_next().await? {
                return Ok(event);
            }
            // Caught up: wait for a wake-up about an event this subscription wants, or read
            // again after a while anyway (for appends the wake-ups do not tell of).
            let deadline = tokio::time::Instant::now() + self.poll;
            loop {
                match tokio::time::timeout_at(deadline, self.wake.changed()).await {
                    Ok(Ok(())) if !self.wanted_appended() => {}
                    Ok(Ok(())) => break,
                    Err(_) => {
                        // The poll: read whatever the wake-ups said or not.
                        self.caught_up = false;
                        break;
                    }
                    Ok(Err(_)) => {
                        // Nobody will wake it again: only the polls are left.
                        tokio::time::sleep_until(deadline).await;
                        self.caught_up = false;
                        break;
                    }
                }
            }
        }
    }

    /// Whether the source appended an event passing the filter since the last read (true
    /// when it cannot tell).
    fn wanted_appended(&self) -> bool {
        match (self.seen, self.source.appended_matching(&self.filter)) {
            (Some(seen), Some(now)) => now != seen,
            _ => true,
        }
    }

    /// The next event if one is in the log now, without waiting.
    ///
    /// A subscription whose last read found nothing does not read again until the source
    /// counts an append that passes its filter ([`EventSource::appended_matching`]; always,
    /// for a source that does not count) or [`next`](Self::next)'s poll interval runs out:
    /// a consumer that drains a batch with `try_next` and then waits with `next` reads the
    /// log once at the end, not twice.
    ///
    /// # Errors
    /// What the source returned.
    pub async fn try_next(&mut self) -> Result<Option<Event>, PortError> {
        if let Some(event) = self.pop() {
            return Ok(Some(event));
        }
        if self.caught_up && !self.wanted_appended() {
            return Ok(None);
        }
        loop {
            // Mark the current notification and count seen before reading, so an append
            // that lands after the read wakes the wait that follows.
            self.wake.borrow_and_update();
            self.seen = self.source.appended_matching(&self.filter);
            let page = self
                .source
                .read(self.scanned, &self.filter, READ_BATCH)
                .await?;
            let advanced = page.scanned_to > self.scanned;
            self.caught_up = !advanced;
            self.scanned = self.scanned.max(page.scanned_to);
            self.buffer.extend(page.events);
            if let Some(event) = self.pop() {
                return Ok(Some(event));
            }
            self.cursor = self.cursor.max(self.scanned);
            if !advanced {
                return Ok(None);
            }
        }
    }
}

impl Subscription {
    /// The next buffered event, moving the cursor to it (or past what the filter skipped
    /// after it, once the buffer is empty).
    fn pop(&mut self) -> Option<Event> {
        let event = self.buffer.pop_front()?;
        self.cursor = event.id;
        if self.buffer.is_empty() {
            self.cursor = self.cursor.max(self.scanned);
        }
        Some(event)
    }
}

/// An event log in memory: for tests, examples and embedders without a database.
#[derive(Debug)]
pub struct MemoryEventLog {
    events: Mutex<Vec<Event>>,
    notify: watch::Sender<u64>,
}

impl MemoryEventLog {
    fn count_matching(events: &[Event], filter: &EventFilter) -> u64 {
        u64::try_from(events.iter().filter(|e| filter.matches(&e.kind)).count()).unwrap_or(u64::MAX)
    }
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            notify: watch::Sender::new(0),
        }
    }

    /// Appends an event and wakes the subscriptions; returns its id.
    pub fn append(
        &self,
        kind: &str,
        connection: Option<&str>,
        user: Option<&str>,
        data: serde_json::Value,
    ) -> u64 {
        let id = {
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            let id = events.last().map_or(1, |e| e.id + 1);
            events.push(Event {
                id,
                kind: kind.to_owned(),
                time: SystemTime::now(),
                connection: connection.map(str::to_owned),
                user: user.map(str::to_owned),
                data,
            });
            id
        };
        self.notify.send_replace(id);
        id
    }
}

#[async_trait]
impl EventSource for MemoryEventLog {
    async fn read(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EventPage, PortError> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let start = events.partition_point(|e| e.id <= after);
        let window = &events[start..events.len().min(start.saturating_add(limit.max(1)))];
        Ok(EventPage {
            scanned_to: window.last().map_or(after, |e| e.id),
            events: window
                .iter()
                .filter(|e| filter.matches(&e.kind))
                .cloned()
                .collect(),
        })
    }

    async fn last_id(&self) -> Result<u64, PortError> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        Ok(events.last().map_or(0, |e| e.id))
    }

    fn notifications(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    fn appended_matching(&self, filter: &EventFilter) -> Option<u64> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        Some(Self::count_matching(&events, filter))
    }
}

/// A [`HoldWatch`](crate::HoldWatch) over the event log: resolves when an event that passes
/// its test is appended after its cursor (e.g. "a `review.*` event about review `r-1`").
///
/// Take the cursor ([`EventSource::last_id`]) *before* reading the state the hold depends
/// on: a change made after that read then has a greater id and is never missed.
pub struct EventWatch {
    subscription: tokio::sync::Mutex<Subscription>,
    test: Box<dyn Fn(&Event) -> bool + Send + Sync>,
}

impl fmt::Debug for EventWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWatch").finish_non_exhaustive()
    }
}

impl EventWatch {
    /// Watches the events after `after` that pass `filter` and `test`.
    pub fn new(
        source: Arc<dyn EventSource>,
        after: u64,
        filter: EventFilter,
        test: impl Fn(&Event) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            subscription: tokio::sync::Mutex::new(Subscription::new(source, after, filter)),
            test: Box::new(test),
        }
    }
}

#[async_trait]
impl crate::HoldWatch for EventWatch {
    async fn changed(&self) {
        let mut subscription = self.subscription.lock().await;
        loop {
            match subscription.next().await {
                Ok(event) if (self.test)(&event) => return,
                Ok(_) => {}
                Err(err) => {
                    // The log cannot be read: let the session be checked again after a
                    // pause rather than wait blind.
                    tracing::warn!(error = %err, "event log unreadable while a session is held");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return;
                }
            }
        }
    }
}

/// Where consumers persist their cursors, so they resume where they stopped after a restart.
#[async_trait]
pub trait CursorStore: Send + Sync + fmt::Debug + 'static {
    /// The saved cursor of `consumer`, if any.
    async fn load(&self, consumer: &str) -> Result<Option<u64>, PortError>;
    /// Saves the cursor of `consumer`.
    async fn save(&self, consumer: &str, cursor: u64) -> Result<(), PortError>;
}

/// Cursors in memory: for tests and embedders without a database.
#[derive(Debug, Default)]
pub struct MemoryCursors(Mutex<std::collections::BTreeMap<String, u64>>);

#[async_trait]
impl CursorStore for MemoryCursors {
    async fn load(&self, consumer: &str) -> Result<Option<u64>, PortError> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map.get(consumer).copied())
    }

    async fn save(&self, consumer: &str, cursor: u64) -> Result<(), PortError> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(consumer.to_owned(), cursor);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log that counts its reads.
    #[derive(Debug, Default)]
    struct CountingLog {
        log: MemoryEventLog,
        reads: std::sync::atomic::AtomicUsize,
        read_done: tokio::sync::Notify,
        hint: bool,
        /// Counts nothing (as if every append came from another process).
        frozen: bool,
    }

    #[async_trait]
    impl EventSource for CountingLog {
        async fn read(
            &self,
            after: u64,
            filter: &EventFilter,
            limit: usize,
        ) -> Result<EventPage, PortError> {
            let page = self.log.read(after, filter, limit).await;
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.read_done.notify_one();
            page
        }
        async fn last_id(&self) -> Result<u64, PortError> {
            self.log.last_id().await
        }
        fn notifications(&self) -> watch::Receiver<u64> {
            self.log.notifications()
        }
        fn appended_matching(&self, filter: &EventFilter) -> Option<u64> {
            if self.frozen {
                Some(0)
            } else if self.hint {
                self.log.appended_matching(filter)
            } else {
                None
            }
        }
    }

    /// Appends 50 `session.opened` events, letting the waiting subscription run after each,
    /// then one `review.created`; returns how many reads the subscription made.
    async fn reads_while_waiting_for_reviews(hint: bool) -> usize {
        let log = Arc::new(CountingLog {
            hint,
            ..CountingLog::default()
        });
        let mut sub = Subscription::new(log.clone(), 0, EventFilter::parse(["review.*"]).unwrap())
            .with_poll_interval(Duration::from_secs(3600));
        let waiting = tokio::spawn(async move { sub.next().await });
        // The subscription read the empty log and waits.
        log.read_done.notified().await;
        for i in 0..50 {
            log.log.append(
                types::SESSION_OPENED,
                None,
                None,
                serde_json::json!({ "i": i }),
            );
            tokio::task::yield_now().await;
        }
        log.log
            .append(types::REVIEW_CREATED, None, None, serde_json::json!({}));
        let event = waiting.await.unwrap().unwrap();
        assert_eq!(event.kind, types::REVIEW_CREATED);
        assert_eq!(event.id, 51);
        log.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_subscription_reads_again_only_for_the_types_it_wants() {
        // Without the source's count every wake-up is a read; with it, only the append of
        // a wanted type is.
        let blind = reads_while_waiting_for_reviews(false).await;
        assert!(blind > 10, "{blind} reads without the hint");
        assert_eq!(reads_while_waiting_for_reviews(true).await, 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_drained_subscription_reads_again_only_after_a_wanted_append() {
        let log = Arc::new(CountingLog {
            hint: true,
            ..CountingLog::default()
        });
        log.log
            .append(types::SESSION_OPENED, None, None, serde_json::json!({}));
        let mut sub = Subscription::new(log.clone(), 0, EventFilter::all())
            .with_poll_interval(Duration::from_secs(3600));
        let reads = || log.reads.load(std::sync::atomic::Ordering::SeqCst);
        // A batch: the event, then the read that finds the end of the log.
        assert_eq!(sub.next().await.unwrap().id, 1);
        assert_eq!(sub.try_next().await.unwrap(), None);
        assert_eq!(reads(), 2);
        // Nothing was appended since: no read.
        assert_eq!(sub.try_next().await.unwrap(), None);
        assert_eq!(reads(), 2);
        log.log
            .append(types::SESSION_CLOSED, None, None, serde_json::json!({}));
        assert_eq!(sub.try_next().await.unwrap().map(|e| e.id), Some(2));
        assert_eq!(reads(), 3);
        // Without the source's count, every call reads.
        let blind = Arc::new(CountingLog::default());
        let mut sub = Subscription::new(blind.clone(), 0, EventFilter::all());
        assert_eq!(sub.try_next().await.unwrap(), None);
        assert_eq!(sub.try_next().await.unwrap(), None);
        assert_eq!(blind.reads.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_drained_subscription_reads_again_when_its_poll_runs_out() {
        let log = Arc::new(CountingLog {
            frozen: true,
            ..CountingLog::default()
        });
        let mut sub = Subscription::new(log.clone(), 0, EventFilter::all())
            .with_poll_interval(Duration::from_millis(10));
        assert_eq!(sub.try_next().await.unwrap(), None);
        // An append the source does not count (another process's): not read at once, found
        // by the poll.
        log.log
            .append(types::SESSION_OPENED, None, None, serde_json::json!({}));
        assert_eq!(sub.try_next().await.unwrap(), None);
        assert_eq!(sub.next().await.unwrap().id, 1);
    }

    fn log_with(n: u64) -> Arc<MemoryEventLog> {
        let log = Arc::new(MemoryEventLog::new());
        for i in 0..n {
            let kind = if i % 2 == 0 {
                types::SESSION_OPENED
            } else {
                types::REVIEW_CREATED
            };
            log.append(kind, Some("db"), None, serde_json::json!({ "i": i }));
        }
        log
    }

    #[test]
    fn filters_take_types_and_families_and_refuse_unknown_ones() {
        let f = EventFilter::parse(["review.*", "session.closed"]).unwrap();
        assert!(f.matches("review.approved"));
        assert!(f.matches("session.closed"));
        assert!(!f.matches("session.opened"));
        assert!(EventFilter::all().matches("anything"));
        let err = EventFilter::parse(["session.closed", "sesion.*"]).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err.to_string().contains("sesion.*"), "{err}");
        assert!(EventFilter::parse(["session.close"]).is_err());
        assert!(EventFilter::parse([".*"]).is_err());
    }

    #[tokio::test]
    async fn a_subscription_far_behind_reads_every_event_in_order() {
        let log = log_with(2_000);
        let mut sub = Subscription::new(log.clone(), 0, EventFilter::all());
        for expected in 1..=2_000 {
            assert_eq!(sub.next().await.unwrap().id, expected);
        }
        assert_eq!(sub.try_next().await.unwrap(), None);
        assert_eq!(sub.cursor(), 2_000);
    }

    #[tokio::test]
    async fn a_filtered_subscription_moves_its_cursor_past_what_it_skips() {
        let log = log_with(1_500);
        let mut sub = Subscription::new(log.clone(), 0, EventFilter::parse(["review.*"]).unwrap());
        let mut seen = 0;
        while let Some(event) = sub.try_next().await.unwrap() {
            assert_eq!(event.kind, types::REVIEW_CREATED);
            seen += 1;
        }
        assert_eq!(seen, 750);
        assert_eq!(sub.cursor(), 1_500);
    }

    #[tokio::test]
    async fn a_waiting_subscription_wakes_on_append() {
        let log = log_with(0);
        let mut sub = Subscription::new(log.clone(), 0, EventFilter::all())
            .with_poll_interval(Duration::from_secs(3600));
        let waiter = tokio::spawn(async move { sub.next().await.map(|e| e.id) });
        tokio::task::yield_now().await;
        log.append(
            types::CONNECTION_CREATED,
            Some("db"),
            Some("admin"),
            serde_json::json!({}),
        );
        let id = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(id, 1);
    }

    #[tokio::test]
    async fn a_subscription_resumes_from_a_saved_cursor() {
        let log = log_with(10);
        let cursors = MemoryCursors::default();
        let mut sub = Subscription::new(log.clone(), 0, EventFilter::all());
        for _ in 0..4 {
            sub.next().await.unwrap();
        }
        cursors.save("counter", sub.cursor()).await.unwrap();
        let after = cursors.load("counter").await.unwrap().unwrap();
        let mut resumed = Subscription::new(log, after, EventFilter::all());
        assert_eq!(resumed.next().await.unwrap().id, 5);
    }
}
