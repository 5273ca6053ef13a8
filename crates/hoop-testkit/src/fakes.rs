//! Fake ports, for testing a plugin's deployment lifecycle without a gateway:
//! [`FakeDirectory`] (users and connections you register), [`FakeSessionControl`] (records
//! every [`end_session`](SessionControl::end_session) call and lets a test await the next
//! one), [`FakeRecordings`] (recordings you register, read back like a host's verified
//! [`RecordingReader`]), and [`FakePorts`], which puts them together with hoop-core's
//! [`MemoryEventLog`] and [`MemoryCursors`] into a [`Ports`] and a [`PluginHost`].
//!
//! ```
//! use std::time::Duration;
//! use hoop_core::{PluginConfig, Resources};
//! use hoop_core::events::{EventFilter, Subscription, types};
//! use hoop_testkit::FakePorts;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let fakes = FakePorts::new();
//! fakes.sessions.add_running("s-1");
//! let host = fakes.host(Resources::new());
//! let deployment = host.deployment("killer", PluginConfig::empty());
//! // A plugin's background task: ends the session a revoked review names.
//! let events = deployment.events().unwrap();
//! let sessions = deployment.sessions().unwrap();
//! deployment.spawn(async move {
//!     let filter = EventFilter::parse([types::REVIEW_REVOKED]).unwrap();
//!     let mut revoked = Subscription::new(events, 0, filter);
//!     if let Ok(event) = revoked.next().await {
//!         let session = event.data["session_id"].as_str().unwrap_or_default();
//!         let _ = sessions.end_session(session, "killer", "revoked").await;
//!     }
//! });
//! let data = serde_json::json!({"review_id": "r-1", "session_id": "s-1"});
//! fakes.events.append(types::REVIEW_REVOKED, Some("db"), Some("bob"), data);
//! // Waits for the call: no sleeping, no polling.
//! let call = fakes.sessions.next_call().await;
//! assert_eq!((call.session_id.as_str(), call.plugin.as_str(), call.found), ("s-1", "killer", true));
//! assert!(host.shutdown(Duration::from_secs(1)).await);
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hoop_core::events::{MemoryCursors, MemoryEventLog};
use hoop_core::ports::{Directory, RecordedChunk, RecordedChunks, RecordingReader, SessionControl};
use hoop_core::{ConnectionInfo, PluginHost, PortError, Ports, Resources, Stream, UserInfo};
use tokio::sync::mpsc;

/// A [`Directory`] of the users and connections a test registers.
///
/// Lookups of names never registered (or removed) answer `Ok(None)`;
/// [`set_unavailable`](Self::set_unavailable) makes every lookup fail with
/// [`PortError::Unavailable`], as when the host's database is down.
#[derive(Debug, Default)]
pub struct FakeDirectory {
    state: Mutex<DirectoryState>,
}

#[derive(Debug, Default)]
struct DirectoryState {
    users: BTreeMap<String, UserInfo>,
    connections: BTreeMap<String, ConnectionInfo>,
    /// Plugin configs by (connection, plugin).
    attachments: BTreeMap<(String, String), hoop_core::PluginConfig>,
    unavailable: Option<String>,
}

impl FakeDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `user` (builder style).
    #[must_use]
    pub fn with_user(self, user: UserInfo) -> Self {
        self.add_user(user);
        self
    }

    /// Registers `connection` (builder style).
    #[must_use]
    pub fn with_connection(self, connection: ConnectionInfo) -> Self {
        self.add_connection(connection);
        self
    }

    /// Registers `user`, replacing one of the same name.
    pub fn add_user(&self, user: UserInfo) {
        self.lock().users.insert(user.name.clone(), user);
    }

    /// Removes the user named `name`; returns whether there was one.
    pub fn remove_user(&self, name: &str) -> bool {
        self.lock().users.remove(name).is_some()
    }

    /// Registers `connection`, replacing one of the same name.
    pub fn add_connection(&self, connection: ConnectionInfo) {
        self.lock()
            .connections
            .insert(connection.name.clone(), connection);
    }

    /// Removes the connection named `name`; returns whether there was one.
    pub fn remove_connection(&self, name: &str) -> bool {
        self.lock().connections.remove(name).is_some()
    }

    /// Attaches `plugin` to the connection named `connection` with `config`, replacing an
    /// earlier attachment ([`Directory::plugin_config`] answers it while the connection is
    /// registered).
    pub fn attach(&self, connection: &str, plugin: &str, config: hoop_core::PluginConfig) {
        self.lock()
            .attachments
            .insert((connection.to_owned(), plugin.to_owned()), config);
    }

    /// Detaches `plugin` from `connection`; returns whether it was attached.
    pub fn detach(&self, connection: &str, plugin: &str) -> bool {
        self.lock()
            .attachments
            .remove(&(connection.to_owned(), plugin.to_owned()))
            .is_some()
    }

    /// Makes every lookup fail with [`PortError::Unavailable`] and `reason` (`Some`), or
    /// answer again (`None`).
    pub fn set_unavailable(&self, reason: Option<&str>) {
        self.lock().unavailable = reason.map(str::to_owned);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DirectoryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_up(state: &DirectoryState) -> Result<(), PortError> {
        match &state.unavailable {
            Some(reason) => Err(PortError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Directory for FakeDirectory {
    async fn user(&self, name: &str) -> Result<Option<UserInfo>, PortError> {
        let state = self.lock();
        Self::check_up(&state)?;
        Ok(state.users.get(name).cloned())
    }

    async fn connection(&self, name: &str) -> Result<Option<ConnectionInfo>, PortError> {
        let state = self.lock();
        Self::check_up(&state)?;
        Ok(state.connections.get(name).cloned())
    }

    async fn plugin_config(
        &self,
        connection: &str,
        plugin: &str,
    ) -> Result<Option<hoop_core::PluginConfig>, PortError> {
        let state = self.lock();
        Self::check_up(&state)?;
        if !state.connections.contains_key(connection) {
            return Ok(None);
        }
        Ok(state
            .attachments
            .get(&(connection.to_owned(), plugin.to_owned()))
            .cloned())
    }
}

/// One call of [`SessionControl::end_session`] on a [`FakeSessionControl`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndSessionCall {
    /// The session asked to end.
    pub session_id: String,
    /// The plugin that ended it.
    pub plugin: String,
    /// Why, as the plugin said.
    pub reason: String,
    /// What the fake answered: whether the session was running.
    pub found: bool,
}

/// A [`SessionControl`] that records every call.
///
/// Sessions a test marks running with [`add_running`](Self::add_running) are found (and
/// then no longer running); any other id answers `Ok(false)`, as a host does for a session
/// that is not running on it. [`next_call`](Self::next_call) waits for the next call
/// without sleeping.
#[derive(Debug)]
pub struct FakeSessionControl {
    state: Mutex<ControlState>,
    tx: mpsc::UnboundedSender<EndSessionCall>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<EndSessionCall>>,
}

#[derive(Debug, Default)]
struct ControlState {
    running: BTreeSet<String>,
    calls: Vec<EndSessionCall>,
    unavailable: Option<String>,
}

impl Default for FakeSessionControl {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeSessionControl {
    /// No running session, no call yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            state: Mutex::new(ControlState::default()),
            tx,
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    /// Marks `session_id` as running on this host.
    pub fn add_running(&self, session_id: &str) {
        self.lock().running.insert(session_id.to_owned());
    }

    /// Whether `session_id` is running (marked and not ended).
    pub fn is_running(&self, session_id: &str) -> bool {
        self.lock().running.contains(session_id)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<EndSessionCall> {
        self.lock().calls.clone()
    }

    /// Makes every call fail with [`PortError::Unavailable`] and `reason` (`Some`), or
    /// answer again (`None`). Failed calls are recorded too, with `found: false`.
    pub fn set_unavailable(&self, reason: Option<&str>) {
        self.lock().unavailable = reason.map(str::to_owned);
    }

    /// The next call not yet taken by `next_call` or `try_next_call`, waiting for it.
    /// Calls are handed out once each, in order (also the calls made before this one).
    pub async fn next_call(&self) -> EndSessionCall {
        let mut rx = self.rx.lock().await;
        match rx.recv().await {
            Some(call) => call,
            // The sender lives in `self`, so the channel cannot close while we wait.
            None => std::future::pending().await,
        }
    }

    /// The next call not yet taken, if one was made.
    pub fn try_next_call(&self) -> Option<EndSessionCall> {
        let mut rx = self.rx.try_lock().ok()?;
        rx.try_recv().ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionControl for FakeSessionControl {
    async fn end_session(
        &self,
        session_id: &str,
        plugin: &str,
        reason: &str,
    ) -> Result<bool, PortError> {
        let (call, result) = {
            let mut state = self.lock();
            let result = match &state.unavailable {
                Some(reason) => Err(PortError::Unavailable(reason.clone())),
                None => Ok(state.running.remove(session_id)),
            };
            let call = EndSessionCall {
                session_id: session_id.to_owned(),
                plugin: plugin.to_owned(),
                reason: reason.to_owned(),
                found: result == Ok(true),
            };
            state.calls.push(call.clone());
            (call, result)
        };
        // The receiver lives in `self`: sending cannot fail while `self` exists.
        let _ = self.tx.send(call);
        result
    }
}

/// A [`RecordingReader`] over recordings a test registers, in memory.
///
/// Reads answer like a host's: the chunks in order, bounded by `max_bytes`
/// ([`RecordedChunks::push_bounded`]); [`PortError::NotFound`] for a session with no
/// recording. There is no hash chain to check here: [`tamper`](Self::tamper) marks a
/// recording as one that does not verify, and reading it then fails with
/// [`PortError::Corrupt`], handing out nothing, as a host must.
/// [`set_unavailable`](Self::set_unavailable) makes every read fail with
/// [`PortError::Unavailable`].
#[derive(Debug, Default)]
pub struct FakeRecordings {
    state: Mutex<RecordingsState>,
}

#[derive(Debug, Default)]
struct RecordingsState {
    recordings: BTreeMap<String, Vec<RecordedChunk>>,
    tampered: BTreeSet<String>,
    reads: Vec<String>,
    unavailable: Option<String>,
}

impl FakeRecordings {
    /// No recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `chunks` as the recording of `session_id` (builder style).
    #[must_use]
    pub fn with_recording(
        self,
        session_id: &str,
        chunks: impl IntoIterator<Item = RecordedChunk>,
    ) -> Self {
        self.add_recording(session_id, chunks);
        self
    }

    /// Registers `chunks` as the recording of `session_id`, replacing any (and its
    /// tampering).
    pub fn add_recording(&self, session_id: &str, chunks: impl IntoIterator<Item = RecordedChunk>) {
        let mut state = self.lock();
        state
            .recordings
            .insert(session_id.to_owned(), chunks.into_iter().collect());
        state.tampered.remove(session_id);
    }

    /// Appends a chunk to the recording of `session_id` (creating it), as a running
    /// session's recorder does.
    pub fn append(
        &self,
        session_id: &str,
        stream: Stream,
        offset: Duration,
        data: impl Into<Bytes>,
    ) {
        self.lock()
            .recordings
            .entry(session_id.to_owned())
            .or_default()
            .push(RecordedChunk {
                stream,
                offset,
                data: data.into(),
            });
    }

    /// Marks the recording of `session_id` as altered: reads fail with
    /// [`PortError::Corrupt`].
    pub fn tamper(&self, session_id: &str) {
        self.lock().tampered.insert(session_id.to_owned());
    }

    /// Removes the recording of `session_id`; returns whether there was one.
    pub fn remove(&self, session_id: &str) -> bool {
        let mut state = self.lock();
        state.tampered.remove(session_id);
        state.recordings.remove(session_id).is_some()
    }

    /// The session ids read so far, in order (failed reads included).
    pub fn reads(&self) -> Vec<String> {
        self.lock().reads.clone()
    }

    /// Makes every read fail with [`PortError::Unavailable`] and `reason` (`Some`), or
    /// answer again (`None`).
    pub fn set_unavailable(&self, reason: Option<&str>) {
        self.lock().unavailable = reason.map(str::to_owned);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordingsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl RecordingReader for FakeRecordings {
    async fn read(&self, session_id: &str, max_bytes: usize) -> Result<RecordedChunks, PortError> {
        let mut state = self.lock();
        state.reads.push(session_id.to_owned());
        if let Some(reason) = &state.unavailable {
            return Err(PortError::Unavailable(reason.clone()));
        }
        let Some(recorded) = state.recordings.get(session_id) else {
            return Err(PortError::NotFound(format!(
                "session `{session_id}` has no recording"
            )));
        };
        if state.tampered.contains(session_id) {
            return Err(PortError::Corrupt(format!(
                "the recording of session `{session_id}` does not verify"
            )));
        }
        let mut chunks = RecordedChunks::new();
        for chunk in recorded {
            chunks.push_bounded(chunk.clone(), max_bytes);
        }
        Ok(chunks)
    }
}

/// Every port a plugin can ask for, faked in memory: hoop-core's [`MemoryEventLog`] and
/// [`MemoryCursors`], a [`FakeDirectory`], a [`FakeSessionControl`] and
/// [`FakeRecordings`]. The fields are shared handles: keep the `FakePorts` to append events,
/// register users and recordings and read the calls while the plugin runs.
#[derive(Debug, Clone)]
pub struct FakePorts {
    /// The event log: append events with [`MemoryEventLog::append`].
    pub events: Arc<MemoryEventLog>,
    /// The consumers' cursors.
    pub cursors: Arc<MemoryCursors>,
    /// Users and connections.
    pub directory: Arc<FakeDirectory>,
    /// Ending sessions.
    pub sessions: Arc<FakeSessionControl>,
    /// Sessions' recordings.
    pub recordings: Arc<FakeRecordings>,
}

impl Default for FakePorts {
    fn default() -> Self {
        Self::new()
    }
}

impl FakePorts {
    /// Empty fakes.
    pub fn new() -> Self {
        Self {
            events: Arc::new(MemoryEventLog::new()),
            cursors: Arc::new(MemoryCursors::default()),
            directory: Arc::new(FakeDirectory::new()),
            sessions: Arc::new(FakeSessionControl::new()),
            recordings: Arc::new(FakeRecordings::new()),
        }
    }

    /// Every port but the session starter (a plugin that starts sessions is tested against
    /// a host that runs them), as a host offers them.
    pub fn ports(&self) -> Ports {
        Ports {
            events: Some(self.events.clone()),
            cursors: Some(self.cursors.clone()),
            directory: Some(self.directory.clone()),
            sessions: Some(self.sessions.clone()),
            recordings: Some(self.recordings.clone()),
            starter: None,
            redactor: None,
            // A plugin with tables is tested against a database of its own (e.g. SQLite in
            // memory), offered with `Ports { database: Some(Database::new(db)), .. }`.
            database: None,
            // Reviews are decided by the host's rules: tested against the gateway.
            reviews: None,
            // Sealing is the host's cryptography: tested against the gateway.
            sealer: None,
        }
    }

    /// A [`PluginHost`] offering every port and sharing `resources`: start plugins with
    /// [`PluginHost::start`], stop them with [`PluginHost::shutdown`].
    pub fn host(&self, resources: Resources) -> PluginHost {
        PluginHost::new(Arc::new(resources), self.ports())
    }
}

#[cfg(test)]
mod tests {
    use hoop_core::events::CursorStore;

    use super::*;

    #[tokio::test]
    async fn the_directory_answers_what_was_registered() {
        let directory = FakeDirectory::new()
            .with_user(UserInfo::new("alice").with_groups(["dba"]))
            .with_connection(ConnectionInfo::new("pg", "postgres"));
        assert_eq!(
            directory.user("alice").await.unwrap().unwrap().groups,
            ["dba"]
        );
        assert_eq!(directory.user("bob").await.unwrap(), None);
        assert_eq!(
            directory.connection("pg").await.unwrap().unwrap().kind,
            "postgres"
        );
        assert!(directory.remove_user("alice"));
        assert!(!directory.remove_user("alice"));
        assert_eq!(directory.user("alice").await.unwrap(), None);
        directory.set_unavailable(Some("db down"));
        assert_eq!(
            directory.connection("pg").await.unwrap_err(),
            PortError::Unavailable("db down".into())
        );
        directory.set_unavailable(None);
        assert!(directory.remove_connection("pg"));
        assert_eq!(directory.connection("pg").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_directory_says_which_plugins_are_attached() {
        let directory = FakeDirectory::new().with_connection(ConnectionInfo::new("pg", "command"));
        let config =
            hoop_core::PluginConfig::from_value(serde_json::json!({"endpoints": ["siem"]}))
                .unwrap();
        assert_eq!(
            directory.plugin_config("pg", "webhooks").await.unwrap(),
            None
        );
        directory.attach("pg", "webhooks", config.clone());
        assert_eq!(
            directory.plugin_config("pg", "webhooks").await.unwrap(),
            Some(config.clone())
        );
        assert_eq!(directory.plugin_config("pg", "slack").await.unwrap(), None);
        // Not for a connection that is gone.
        directory.attach("gone", "webhooks", config);
        assert_eq!(
            directory.plugin_config("gone", "webhooks").await.unwrap(),
            None
        );
        assert!(directory.detach("pg", "webhooks"));
        assert_eq!(
            directory.plugin_config("pg", "webhooks").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn session_control_records_calls_and_hands_them_out_in_order() {
        let control = Arc::new(FakeSessionControl::new());
        control.add_running("s-1");
        assert!(control.try_next_call().is_none());
        assert!(
            control
                .end_session("s-1", "review", "revoked")
                .await
                .unwrap()
        );
        assert!(!control.is_running("s-1"));
        assert!(
            !control
                .end_session("s-1", "review", "revoked")
                .await
                .unwrap()
        );
        control.set_unavailable(Some("busy"));
        assert!(
            control
                .end_session("s-2", "review", "revoked")
                .await
                .is_err()
        );

        let first = control.next_call().await;
        assert_eq!((first.session_id.as_str(), first.found), ("s-1", true));
        assert!(!control.try_next_call().unwrap().found);
        assert_eq!(control.next_call().await.session_id, "s-2");
        assert_eq!(control.calls().len(), 3);

        // A call made later wakes a waiting test.
        let waiter = {
            let control = Arc::clone(&control);
            tokio::spawn(async move { control.next_call().await })
        };
        control.set_unavailable(None);
        control.add_running("s-3");
        assert!(control.end_session("s-3", "kill", "why").await.unwrap());
        let call = waiter.await.unwrap();
        assert_eq!(
            (
                call.session_id.as_str(),
                call.plugin.as_str(),
                call.reason.as_str()
            ),
            ("s-3", "kill", "why")
        );
    }

    fn chunk(stream: Stream, ms: u64, data: &'static str) -> RecordedChunk {
        RecordedChunk {
            stream,
            offset: Duration::from_millis(ms),
            data: Bytes::from_static(data.as_bytes()),
        }
    }

    #[tokio::test]
    async fn recordings_read_back_bounded_and_fail_when_tampered() {
        let recordings = FakeRecordings::new().with_recording(
            "s-1",
            [
                chunk(Stream::Stdin, 1, "select 1;\n"),
                chunk(Stream::Stdout, 2, "1\n"),
            ],
        );
        let all = recordings.read("s-1", usize::MAX).await.unwrap();
        assert!(all.complete);
        assert_eq!(all.chunks.len(), 2);
        assert_eq!(all.total_bytes, 12);
        let some = recordings.read("s-1", 6).await.unwrap();
        assert!(!some.complete);
        assert_eq!(some.chunks, [chunk(Stream::Stdin, 1, "select")]);

        recordings.append("s-2", Stream::Stderr, Duration::from_secs(1), "oops");
        assert_eq!(
            recordings.read("s-2", 100).await.unwrap().chunks,
            [chunk(Stream::Stderr, 1000, "oops")]
        );
        assert!(matches!(
            recordings.read("s-3", 100).await,
            Err(PortError::NotFound(_))
        ));

        recordings.tamper("s-1");
        assert!(matches!(
            recordings.read("s-1", 100).await,
            Err(PortError::Corrupt(_))
        ));
        // Registering it again replaces the altered one.
        recordings.add_recording("s-1", [chunk(Stream::Stdout, 0, "ok")]);
        assert!(recordings.read("s-1", 100).await.is_ok());

        recordings.set_unavailable(Some("disk gone"));
        assert_eq!(
            recordings.read("s-1", 100).await.unwrap_err(),
            PortError::Unavailable("disk gone".into())
        );
        recordings.set_unavailable(None);
        assert!(recordings.remove("s-2"));
        assert!(!recordings.remove("s-2"));
        assert_eq!(
            recordings.reads(),
            ["s-1", "s-1", "s-2", "s-3", "s-1", "s-1", "s-1"]
        );
    }

    #[tokio::test]
    async fn fake_ports_offer_every_port_to_a_host() {
        let fakes = FakePorts::new();
        let ports = fakes.ports();
        assert!(ports.events.is_some() && ports.cursors.is_some());
        assert!(ports.directory.is_some() && ports.sessions.is_some());
        assert!(ports.recordings.is_some());
        let host = fakes.host(Resources::new());
        let deployment = host.deployment("probe", hoop_core::PluginConfig::empty());
        deployment.save_cursor("probe", 7).await.unwrap();
        assert_eq!(fakes.cursors.load("probe").await.unwrap(), Some(7));
        assert!(deployment.directory().is_ok());
        fakes
            .recordings
            .append("s-1", Stream::Stdout, Duration::ZERO, "hi");
        let read = deployment.recordings().unwrap().read("s-1", 10).await;
        assert_eq!(read.unwrap().chunks.len(), 1);
        assert!(host.shutdown(std::time::Duration::from_secs(1)).await);
    }
}
