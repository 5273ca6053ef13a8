//! The ports the gateway offers plugins: hoop-core's [`EventSource`] and [`CursorStore`] over
//! the store, and the task that prunes events older than `events_retention`; the directory
//! of users and connections; ending running sessions; reading recordings, verified.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hoop_core::PortError;
use hoop_core::events::{CursorStore, Event, EventFilter, EventPage, EventSource};
use hoop_core::ports::RecordedChunks;
use hoop_plugin_audit::recording::RecordingStore;
use hoop_plugin_audit::verify::{ReplayError, replay_session};
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

    fn appended_matching(&self, filter: &EventFilter) -> Option<u64> {
        Some(self.store.appended_count(|kind| filter.matches(kind)))
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
            Ok(user) => Ok(Some(user_info(user))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(other) => Err(port_error(other)),
        }
    }

    async fn user_by_slack_id(
        &self,
        slack_id: &str,
    ) -> Result<Option<hoop_core::UserInfo>, PortError> {
        self.store
            .find_user_by_slack_id(slack_id)
            .await
            .map(|u| u.map(user_info))
            .map_err(port_error)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<hoop_core::UserInfo>, PortError> {
        self.store
            .find_user_by_email(email)
            .await
            .map(|u| u.map(user_info))
            .map_err(port_error)
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

    async fn session(
        &self,
        id: &str,
    ) -> Result<Option<hoop_core::ports::SessionSummary>, PortError> {
        match self.store.get_session(id).await {
            Ok(record) => Ok(Some(session_summary(&record))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(other) => Err(port_error(other)),
        }
    }

    async fn plugin_config(
        &self,
        connection: &str,
        plugin: &str,
    ) -> Result<Option<hoop_core::PluginConfig>, PortError> {
        let attachments = match self.store.list_attachments(connection).await {
            Ok(attachments) => attachments,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(other) => return Err(port_error(other)),
        };
        Ok(attachments
            .into_iter()
            .find(|a| a.plugin == plugin)
            .and_then(|a| hoop_core::PluginConfig::from_value(a.config).ok()))
    }

    async fn plugin_attached_anywhere(&self, plugin: &str) -> Result<bool, PortError> {
        self.store
            .plugin_attached_anywhere(plugin)
            .await
            .map_err(port_error)
    }
}

/// A session record as plugins see it.
pub(crate) fn session_summary(
    record: &hoop_store::SessionRecord,
) -> hoop_core::ports::SessionSummary {
    let mut summary = hoop_core::ports::SessionSummary::new(
        record.id.clone(),
        record.connection.clone(),
        record.user.clone(),
        record.started_at.into(),
    );
    summary.verb = record.verb.clone();
    summary.status = record.status.clone();
    summary.exit_code = record.exit_code;
    summary.ended_at = record.ended_at.map(Into::into);
    summary.bytes_in = record.bytes_in;
    summary.bytes_out = record.bytes_out;
    summary
}

/// A stored user as plugins see them.
fn user_info(user: hoop_store::User) -> hoop_core::UserInfo {
    hoop_core::UserInfo::new(user.name)
        .with_email(user.email)
        .with_groups(user.groups)
        .with_slack_id(user.slack_id)
}

/// Masks text with a connection's `redact_types`, for plugins that send text out (the same
/// engines as the dlp plugin, from the same settings and key).
#[derive(Debug)]
pub(crate) struct StoreRedactor {
    store: Store,
    dlp: hoop_plugin_dlp::Dlp,
}

impl StoreRedactor {
    pub(crate) fn new(store: Store, dlp: hoop_plugin_dlp::Dlp) -> Self {
        Self { store, dlp }
    }
}

#[async_trait]
impl hoop_core::ports::Redactor for StoreRedactor {
    async fn redact(&self, connection: &str, text: &str) -> Result<String, PortError> {
        let conn = self
            .store
            .get_connection(connection, false)
            .await
            .map_err(port_error)?;
        if conn.redact_types.is_empty() {
            return Ok(text.to_owned());
        }
        let engine = self.dlp.engine(&conn.redact_types).map_err(|err| {
            // The types were checked when the connection was saved; a type dropped from the
            // settings since then must not let the text out unmasked.
            tracing::warn!(connection, error = %err, "cannot build the connection's masking");
            PortError::Unavailable(format!(
                "connection `{connection}` masks a type the gateway no longer knows"
            ))
        })?;
        Ok(String::from_utf8_lossy(&engine.redact(text.as_bytes()).output).into_owned())
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

/// Sessions' recordings for plugins, read with the audit plugin's replay: each one verified
/// to its end against its hash chain and the final digest stored with the session.
#[derive(Debug, Clone)]
pub(crate) struct StoreRecordings {
    store: Store,
    recordings: std::sync::Arc<dyn RecordingStore>,
}

impl StoreRecordings {
    pub(crate) fn new(store: Store, recordings: std::sync::Arc<dyn RecordingStore>) -> Self {
        Self { store, recordings }
    }
}

#[async_trait]
impl hoop_core::ports::RecordingReader for StoreRecordings {
    async fn read(&self, session_id: &str, max_bytes: usize) -> Result<RecordedChunks, PortError> {
        let session = match self.store.get_session(session_id).await {
            Ok(session) => session,
            Err(StoreError::NotFound { .. }) => {
                return Err(PortError::NotFound(format!(
                    "session `{session_id}` not found"
                )));
            }
            Err(other) => return Err(port_error(other)),
        };
        let replay = replay_session(
            self.recordings.as_ref(),
            session_id,
            &session.status,
            &session.attributes,
        )
        .await
        .map_err(|e| replay_port_error(session_id, e))?;
        replay
            .read_chunks(max_bytes)
            .await
            .map_err(|e| replay_port_error(session_id, e))
    }
}

/// A replay that failed, as a [`PortError`]: a recording that does not verify is
/// [`PortError::Corrupt`] naming the first bad event; a storage failure is logged in full and
/// reported without details.
fn replay_port_error(session_id: &str, err: ReplayError) -> PortError {
    match err {
        ReplayError::NoRecording(_) => PortError::NotFound(err.to_string()),
        ReplayError::Storage(err) => {
            tracing::error!(session = %session_id, error = %err, "cannot read the session recording");
            PortError::Unavailable(format!(
                "cannot read the recording of session `{session_id}` (see the gateway log)"
            ))
        }
        err => {
            tracing::warn!(session = %session_id, error = %err, "session recording does not verify");
            PortError::Corrupt(format!("session `{session_id}`: {err}"))
        }
    }
}

/// Starts sessions for plugins (runbooks), through exactly what `Exec` does: the user's
/// access, the connection's full chain, the record. Bound to the gateway once it serves
/// ([`bind`](Self::bind)); before that (while plugins start) it answers `Unavailable`.
#[derive(Debug, Clone, Default)]
pub(crate) struct GatewaySessions {
    app: std::sync::Arc<std::sync::OnceLock<std::sync::Weak<crate::grpc::App>>>,
}

impl GatewaySessions {
    /// Lets sessions start on `app`.
    pub(crate) fn bind(&self, app: &std::sync::Arc<crate::grpc::App>) {
        let _ = self.app.set(std::sync::Arc::downgrade(app));
    }
}

/// A refusal of the session API as a port error.
fn status_error(status: &tonic::Status) -> PortError {
    let message = status.message().to_owned();
    match status.code() {
        tonic::Code::NotFound => PortError::NotFound(message),
        tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::PermissionDenied
        | tonic::Code::ResourceExhausted => PortError::Refused(message),
        _ => PortError::Unavailable(message),
    }
}

/// A session event as the port reports it; `None` for what it does not report.
fn update(event: hoop_proto::v1::SessionEvent) -> Option<hoop_core::ports::SessionUpdate> {
    use hoop_core::ports::SessionUpdate as U;
    use hoop_proto::v1::session_event::Event;
    Some(match event.event? {
        Event::Started(s) => U::Started {
            session_id: s.session_id,
        },
        Event::Held(h) => U::Held {
            request_id: (!h.review_id.is_empty()).then_some(h.review_id),
            groups: h.groups,
            reason: h.reason,
        },
        Event::Output(o) => U::Output {
            stream: if o.stream == hoop_proto::v1::OutputStream::Stderr as i32 {
                hoop_core::Stream::Stderr
            } else {
                hoop_core::Stream::Stdout
            },
            data: o.data,
        },
        Event::Exit(e) => U::Exit {
            exit_code: e.exit_code,
            reason: e.reason,
        },
    })
}

#[async_trait]
impl hoop_core::ports::SessionStarter for GatewaySessions {
    async fn start_session(
        &self,
        plugin: &str,
        session: hoop_core::ports::StartSession,
    ) -> Result<tokio::sync::mpsc::Receiver<hoop_core::ports::SessionUpdate>, PortError> {
        use tokio_stream::StreamExt as _;
        let app = self
            .app
            .get()
            .and_then(std::sync::Weak::upgrade)
            .ok_or_else(|| PortError::Unavailable("the gateway is not serving".to_owned()))?;
        if session.verb != hoop_core::Verb::Exec {
            return Err(PortError::Refused(format!(
                "plugins can start `exec` sessions only, not `{}`",
                session.verb
            )));
        }
        let user = match app.store.get_user(&session.user).await {
            Ok(user) => user,
            Err(StoreError::NotFound { .. }) => {
                return Err(PortError::NotFound(format!("user `{}`", session.user)));
            }
            Err(other) => return Err(port_error(other)),
        };
        let caller = crate::auth::Caller {
            user,
            credential: crate::auth::Credential::Plugin {
                name: plugin.to_owned(),
            },
        };
        tracing::info!(plugin, user = %caller.user.name, connection = %session.connection, "plugin starts a session");
        let api = crate::grpc::sessions::SessionApi::new(std::sync::Arc::clone(&app));
        let mut events = api
            .start_exec(&caller, &session.connection, session.request)
            .await
            .map_err(|status| status_error(&status))?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                // The plugin dropping its receiver ends the session at once, also while the
                // session sends nothing (held for review).
                let event = tokio::select! {
                    event = events.next() => event,
                    () = tx.closed() => break,
                };
                let Some(Ok(event)) = event else { break };
                if let Some(update) = update(event)
                    && tx.send(update).await.is_err()
                {
                    // The plugin went away: dropping the stream ends the session.
                    break;
                }
            }
        });
        Ok(rx)
    }
}

/// The [`Sealer`](hoop_core::ports::Sealer) port: one [`SecretBox`](hoop_store::SecretBox)
/// per purpose, each keyed by the gateway's `secret_key` under a label of its own; the
/// purpose of connection secrets is reserved for the gateway.
pub(crate) struct HostSealer {
    secret_key: String,
    boxes: std::sync::Mutex<std::collections::HashMap<String, hoop_store::SecretBox>>,
}

impl std::fmt::Debug for HostSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSealer(..)")
    }
}

impl HostSealer {
    pub(crate) fn new(secret_key: &str) -> Self {
        Self {
            secret_key: secret_key.to_owned(),
            boxes: std::sync::Mutex::default(),
        }
    }

    fn sealing_box(&self, purpose: &str) -> Result<hoop_store::SecretBox, PortError> {
        if !hoop_core::ports::valid_seal_purpose(purpose)
            || purpose == hoop_store::CONNECTION_SECRETS
        {
            return Err(PortError::Refused(format!(
                "`{}` is not a purpose plugins may seal for",
                purpose.escape_debug()
            )));
        }
        let mut boxes = self.boxes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = boxes.get(purpose) {
            return Ok(found.clone());
        }
        let made = hoop_store::SecretBox::for_purpose(&self.secret_key, purpose)
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        boxes.insert(purpose.to_owned(), made.clone());
        Ok(made)
    }
}

impl hoop_core::ports::Sealer for HostSealer {
    fn seal(&self, purpose: &str, context: &str, plaintext: &[u8]) -> Result<String, PortError> {
        self.sealing_box(purpose)?
            .seal(context, plaintext)
            .map_err(|e| PortError::Unavailable(e.to_string()))
    }

    fn open(&self, purpose: &str, context: &str, sealed: &str) -> Result<Vec<u8>, PortError> {
        self.sealing_box(purpose)?
            .open(context, sealed)
            .map_err(|e| PortError::Corrupt(e.to_string()))
    }
}

/// The ports this gateway offers plugins.
pub(crate) fn ports(
    store: &Store,
    running: &std::sync::Arc<crate::runtime::Running>,
    recordings: &std::sync::Arc<dyn RecordingStore>,
    starter: &GatewaySessions,
    dlp: hoop_plugin_dlp::Dlp,
    sealer: std::sync::Arc<HostSealer>,
) -> hoop_core::Ports {
    let events = std::sync::Arc::new(StoreEvents::new(store.clone()));
    hoop_core::Ports {
        events: Some(events.clone()),
        cursors: Some(events),
        directory: Some(std::sync::Arc::new(StoreDirectory::new(store.clone()))),
        sessions: Some(std::sync::Arc::new(RunningControl::new(
            std::sync::Arc::clone(running),
        ))),
        recordings: Some(std::sync::Arc::new(StoreRecordings::new(
            store.clone(),
            std::sync::Arc::clone(recordings),
        ))),
        starter: Some(std::sync::Arc::new(starter.clone())),
        redactor: Some(std::sync::Arc::new(StoreRedactor::new(store.clone(), dlp))),
        database: Some(hoop_core::Database::new(store.db().clone())),
        reviews: crate::plugins::registry().ok().map(|registry| {
            std::sync::Arc::new(crate::reviews::GatewayReviews::new(store.clone(), registry))
                as std::sync::Arc<dyn hoop_core::ports::ReviewDecisions>
        }),
        sealer: Some(sealer),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use hoop_core::{
        Chain, ChainSession, Chunk, CloseReason, ConnectionInfo, Outcome, PluginConfig, PluginHost,
        Resources, SessionInfo, Stream, UserInfo, Verb,
    };
    use hoop_plugin_audit::AuditPlugin;
    use hoop_plugin_audit::recording::{FsRecordingStore, SessionId};
    use hoop_store::{SecretBox, SessionEnd, SessionRecord};

    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef-test";

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        files: FsRecordingStore,
        ports: hoop_core::Ports,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/hoop.db", dir.path().display());
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let files = FsRecordingStore::new(dir.path().join("recordings"));
        let recordings: Arc<dyn RecordingStore> = Arc::new(files.clone());
        let ports = ports(
            &store,
            &Arc::default(),
            &recordings,
            &GatewaySessions::default(),
            test_dlp(),
            Arc::new(HostSealer::new(KEY)),
        );
        Fixture {
            _dir: dir,
            store,
            files,
            ports,
        }
    }

    fn session_record(id: &str) -> SessionRecord {
        SessionRecord {
            id: id.to_owned(),
            connection: "bash".to_owned(),
            connection_type: "command".to_owned(),
            user: "alice".to_owned(),
            verb: "exec".to_owned(),
            args: Vec::new(),
            status: "open".to_owned(),
            exit_code: None,
            reason: String::new(),
            started_at: Utc::now(),
            ended_at: None,
            bytes_in: 0,
            bytes_out: 0,
            metrics: Default::default(),
            attributes: Default::default(),
            instance: None,
        }
    }

    /// Opens session `id` through the audit plugin, which starts its recording in the
    /// fixture's directory, and passes `chunks` through it.
    async fn start(fx: &Fixture, id: &str, chunks: &[(Stream, &str)]) -> ChainSession {
        fx.store.create_session(&session_record(id)).await.unwrap();
        let audit = AuditPlugin::new(Arc::new(fx.files.clone()));
        let chain = Chain::new(vec![Arc::new(audit) as Arc<dyn hoop_core::Plugin>]);
        let info = SessionInfo::new(
            id,
            UserInfo::new("alice"),
            ConnectionInfo::new("bash", "command"),
            Verb::Exec,
        );
        let mut session = chain.start(info);
        assert!(matches!(session.open().await.unwrap(), Outcome::Continue));
        for (stream, data) in chunks {
            let mut chunk = Chunk::new(*stream, data.to_string());
            match stream {
                Stream::Stdin => session.input(&mut chunk).await.unwrap(),
                _ => session.output(&mut chunk).await.unwrap(),
            };
        }
        session
    }

    /// Closes `session` and settles it in the store with the attributes audit attached (the
    /// final digest), as the gateway's runtime does.
    async fn finish(fx: &Fixture, id: &str, session: ChainSession) {
        let cx = session.close(CloseReason::Exit { code: 0 }).await.unwrap();
        let attributes = cx
            .attributes
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let end = SessionEnd {
            status: "done".to_owned(),
            exit_code: 0,
            reason: "exited with code 0".to_owned(),
            bytes_in: 0,
            bytes_out: 0,
            metrics: Default::default(),
            attributes,
        };
        fx.store.finish_session(id, &end).await.unwrap();
    }

    fn texts(chunks: &RecordedChunks) -> Vec<(Stream, String)> {
        chunks
            .chunks
            .iter()
            .map(|c| (c.stream, String::from_utf8_lossy(&c.data).into_owned()))
            .collect()
    }

    #[tokio::test]
    async fn plugins_read_recordings_verified_through_the_port() {
        let fx = fixture().await;
        let id = "0b6c9a52-3c8e-4c49-9a53-6f3bb0e1c2d1";
        let chunks = [
            (Stream::Stdin, "cat balance\n"),
            (Stream::Stdout, "balance: 1000\n"),
            (Stream::Stderr, "done\n"),
        ];
        let session = start(&fx, id, &chunks).await;
        finish(&fx, id, session).await;

        // As a plugin gets it: from its deployment.
        let host = PluginHost::new(Arc::new(Resources::new()), fx.ports.clone());
        let reader = host
            .deployment("indexer", PluginConfig::empty())
            .recordings()
            .unwrap();
        let all = reader.read(id, usize::MAX).await.unwrap();
        assert!(all.complete);
        assert_eq!(
            texts(&all),
            [
                (Stream::Stdin, "cat balance\n".to_owned()),
                (Stream::Stdout, "balance: 1000\n".to_owned()),
                (Stream::Stderr, "done\n".to_owned()),
            ]
        );
        assert!(all.chunks.windows(2).all(|w| w[0].offset <= w[1].offset));
        let some = reader.read(id, 15).await.unwrap();
        assert!(!some.complete);
        assert_eq!(some.total_bytes, 31);
        assert_eq!(texts(&some)[1], (Stream::Stdout, "bal".to_owned()));

        // Unknown sessions, and sessions without a recording, are not found.
        assert!(matches!(
            reader.read("no-such-session", 100).await,
            Err(PortError::NotFound(_))
        ));
        fx.store
            .create_session(&session_record("unrecorded"))
            .await
            .unwrap();
        assert!(matches!(
            reader.read("unrecorded", 100).await,
            Err(PortError::NotFound(_))
        ));

        // Someone with access to the disk turns 1000 into 9000: nothing is handed out, even
        // with a bound that stops before the altered byte.
        let path = fx.files.path_for(&SessionId::new(id).unwrap());
        let original = std::fs::read(&path).unwrap();
        let mut raw = original.clone();
        let marker = b"balance: 1000";
        let at = raw.windows(marker.len()).position(|w| w == marker).unwrap();
        raw[at + b"balance: ".len()] = b'9';
        std::fs::write(&path, &raw).unwrap();
        for bound in [usize::MAX, 4] {
            match reader.read(id, bound).await {
                Err(PortError::Corrupt(message)) => {
                    assert!(message.contains("event 2"), "{message}")
                }
                other => panic!("expected a corrupt recording, got {other:?}"),
            }
        }

        // Cutting the close event off leaves a chain that verifies, but not to the digest
        // stored with the session.
        std::fs::write(&path, &original).unwrap();
        assert!(reader.read(id, usize::MAX).await.is_ok());
        let close_at = {
            let mut replay = replay_session(&fx.files, id, "open", &Default::default())
                .await
                .unwrap();
            let mut last = 0;
            while let Some(event) = replay.next_event().await {
                last = event.unwrap().byte_offset;
            }
            usize::try_from(last).unwrap()
        };
        std::fs::write(&path, &original[..close_at]).unwrap();
        match reader.read(id, usize::MAX).await {
            Err(PortError::Corrupt(message)) => {
                assert!(message.contains("final digest"), "{message}")
            }
            other => panic!("expected a corrupt recording, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_running_session_reads_as_far_as_it_is_recorded() {
        let fx = fixture().await;
        let id = "running-1";
        let session = start(&fx, id, &[(Stream::Stdout, "so far\n")]).await;
        let reader = fx.ports.recordings.clone().unwrap();
        // The writer hands what it buffered to the file within its durability bound.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let read = loop {
            let read = reader.read(id, usize::MAX).await.unwrap();
            if !read.chunks.is_empty() || tokio::time::Instant::now() > deadline {
                break read;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(texts(&read), [(Stream::Stdout, "so far\n".to_owned())]);
        finish(&fx, id, session).await;
        assert!(reader.read(id, usize::MAX).await.unwrap().complete);
    }

    fn test_dlp() -> hoop_plugin_dlp::Dlp {
        hoop_plugin_dlp::Dlp::new(hoop_plugin_dlp::DlpSettings {
            hash_key: hoop_plugin_dlp::hash_key_from_secret(KEY.as_bytes()),
            ..Default::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn the_redactor_masks_as_the_connection_does() {
        let fx = fixture().await;
        let mut conn = hoop_store::Connection::new("masked", "command");
        conn.redact_types = vec!["EMAIL_ADDRESS".into()];
        fx.store.create_connection(&conn, &[]).await.unwrap();
        let plain = hoop_store::Connection::new("plain", "command");
        fx.store.create_connection(&plain, &[]).await.unwrap();
        let redactor = fx.ports.redactor.clone().unwrap();
        let text = "mail ana@example.com now";
        let masked = redactor.redact("masked", text).await.unwrap();
        assert!(!masked.contains("ana@example.com"), "{masked}");
        assert!(
            masked.starts_with("mail ") && masked.ends_with(" now"),
            "{masked}"
        );
        assert_eq!(redactor.redact("plain", text).await.unwrap(), text);
        assert!(matches!(
            redactor.redact("missing", text).await,
            Err(PortError::NotFound(_))
        ));
    }

    /// A gateway's shared state on a temporary SQLite store, with every plugin of this
    /// build, as `serve` wires it (no gRPC server, no agent).
    async fn app(dir: &tempfile::TempDir) -> (Arc<crate::grpc::App>, GatewaySessions) {
        let url = format!("sqlite://{}/hoop.db", dir.path().display());
        let store = Store::connect(&url, SecretBox::new(KEY).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let registry = crate::plugins::registry().unwrap();
        let recordings: Arc<dyn RecordingStore> =
            Arc::new(FsRecordingStore::new(dir.path().join("recordings")));
        let running: Arc<crate::runtime::Running> = Arc::default();
        let starter = GatewaySessions::default();
        let ports = ports(
            &store,
            &running,
            &recordings,
            &starter,
            test_dlp(),
            Arc::new(HostSealer::new(KEY)),
        );
        let resources = Resources::new()
            .with(hoop_plugin_audit::Recordings(Arc::clone(&recordings)))
            .with(test_dlp())
            .with(hoop_plugin_review::Reviews(Arc::new(
                crate::reviews::StoreDesk::new(store.clone()),
            )))
            .with(ports);
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        // Nobody stops this test gateway: the sender lives as long as the test.
        std::mem::forget(shutdown_tx);
        let app = Arc::new(crate::grpc::App {
            store,
            registry,
            resources: Arc::new(resources),
            recordings,
            shutdown,
            running,
            agents: Arc::default(),
            pg: Default::default(),
        });
        starter.bind(&app);
        stand_in_agent(&app.agents).await;
        (app, starter)
    }

    /// A stand-in for the local agent, in this process: runs each session's program
    /// directly (this crate's test binary cannot be the agent's helper), with its input
    /// written whole and its output sent once it exited. Enough for the session paths these
    /// tests follow; hoop-agent's own tests and the end-to-end tests run the real agent.
    async fn stand_in_agent(agents: &Arc<crate::agents::Agents>) {
        use hoop_proto::v1 as pb;
        use pb::agent_message::Message as Out;
        use pb::gateway_message::Message as In;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (to_agent, mut queue) = crate::agents::queue();
        let (out, incoming) = tokio::sync::mpsc::channel::<Result<pb::AgentMessage, String>>(64);
        let serving = Arc::clone(agents);
        tokio::spawn(async move {
            serving
                .serve(
                    crate::agents::LOCAL_AGENT,
                    pb::AgentHello::default(),
                    tokio_stream::wrappers::ReceiverStream::new(incoming),
                    to_agent,
                )
                .await
        });
        tokio::spawn(async move {
            let mut inputs = std::collections::HashMap::new();
            while let Some(message) = queue.recv().await {
                let send = |m: Out| pb::AgentMessage { message: Some(m) };
                match message.message {
                    Some(In::Start(start)) => {
                        inputs.insert(start.session_id.clone(), Vec::<u8>::new());
                        let _ = out
                            .send(Ok(send(Out::Spawned(pb::AgentSpawned {
                                session_id: start.session_id.clone(),
                                pid: 0,
                            }))))
                            .await;
                        // Runs when its input closes (below).
                        inputs.insert(format!("argv:{}", start.session_id), {
                            serde_json::to_vec(&start.argv).unwrap()
                        });
                    }
                    Some(In::Input(input)) => {
                        let n = input.data.len() as u64;
                        inputs
                            .entry(input.session_id.clone())
                            .or_default()
                            .extend(input.data);
                        let _ = out
                            .send(Ok(send(Out::InputAck(pb::AgentInputAck {
                                session_id: input.session_id,
                                bytes: n,
                            }))))
                            .await;
                    }
                    Some(In::CloseInput(close)) => {
                        let id = close.session_id;
                        let stdin = inputs.remove(&id).unwrap_or_default();
                        let argv: Vec<String> = inputs
                            .remove(&format!("argv:{id}"))
                            .map(|a| serde_json::from_slice(&a).unwrap())
                            .unwrap_or_default();
                        let out = out.clone();
                        tokio::spawn(async move {
                            let mut child = tokio::process::Command::new(&argv[0])
                                .args(&argv[1..])
                                .stdin(std::process::Stdio::piped())
                                .stdout(std::process::Stdio::piped())
                                .stderr(std::process::Stdio::piped())
                                .spawn()
                                .unwrap();
                            let mut stdin_pipe = child.stdin.take().unwrap();
                            stdin_pipe.write_all(&stdin).await.unwrap();
                            drop(stdin_pipe);
                            let (mut o, mut e) = (Vec::new(), Vec::new());
                            child
                                .stdout
                                .take()
                                .unwrap()
                                .read_to_end(&mut o)
                                .await
                                .unwrap();
                            child
                                .stderr
                                .take()
                                .unwrap()
                                .read_to_end(&mut e)
                                .await
                                .unwrap();
                            let code = child.wait().await.unwrap().code().unwrap_or(-1);
                            for (stream, data) in
                                [(pb::OutputStream::Stdout, o), (pb::OutputStream::Stderr, e)]
                            {
                                let _ = out
                                    .send(Ok(send(Out::Output(pb::AgentOutput {
                                        session_id: id.clone(),
                                        stream: stream as i32,
                                        data: data.into(),
                                    }))))
                                    .await;
                            }
                            let _ = out
                                .send(Ok(send(Out::Exit(pb::AgentExit {
                                    session_id: id,
                                    exit_code: code,
                                    error: String::new(),
                                }))))
                                .await;
                        });
                    }
                    _ => {}
                }
            }
        });
        while agents.presence(crate::agents::LOCAL_AGENT).is_none() {
            tokio::task::yield_now().await;
        }
    }

    fn user(name: &str, groups: &[&str]) -> hoop_store::User {
        hoop_store::User {
            name: name.to_owned(),
            email: format!("{name}@example.com"),
            slack_id: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    async fn collect(
        mut rx: tokio::sync::mpsc::Receiver<hoop_core::ports::SessionUpdate>,
    ) -> Vec<hoop_core::ports::SessionUpdate> {
        let mut all = Vec::new();
        while let Some(update) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
        {
            all.push(update);
        }
        all
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_session_starter_runs_an_exec_as_the_user_through_the_full_chain() {
        use hoop_core::SessionRequest;
        use hoop_core::ports::{SessionStarter, SessionUpdate, StartSession};
        let dir = tempfile::tempdir().unwrap();
        let (app, starter) = app(&dir).await;
        app.store
            .create_user(&user("alice", &["dev"]))
            .await
            .unwrap();
        let mut conn = hoop_store::Connection::new("mail", "command");
        conn.command = vec![
            "sh".into(),
            "-c".into(),
            "cat; echo bob@example.com; echo oops >&2; exit 3".into(),
        ];
        conn.redact_types = vec!["EMAIL_ADDRESS".into()];
        crate::connections::create(&app.store, &app.registry, &app.resources, &conn)
            .await
            .unwrap();

        let request = SessionRequest::new().with_input(b"select 1;\n".to_vec());
        let rx = starter
            .start_session("runbooks", StartSession::exec("alice", "mail", request))
            .await
            .unwrap();
        let updates = collect(rx).await;
        let Some(SessionUpdate::Started { session_id }) = updates.first() else {
            panic!("no start: {updates:?}");
        };
        let stdout: Vec<u8> = updates
            .iter()
            .filter_map(|u| match u {
                SessionUpdate::Output {
                    stream: Stream::Stdout,
                    data,
                } => Some(data.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        let stdout = String::from_utf8(stdout).unwrap();
        assert!(stdout.starts_with("select 1;\n"), "{stdout}");
        assert!(
            !stdout.contains("bob@example.com"),
            "masked by dlp: {stdout}"
        );
        assert!(updates.iter().any(|u| matches!(
            u,
            SessionUpdate::Output { stream: Stream::Stderr, data } if &data[..] == b"oops\n"
        )));
        assert!(matches!(
            updates.last(),
            Some(SessionUpdate::Exit { exit_code: 3, .. })
        ));
        // On record as alice's, recorded by audit.
        let record = app.store.get_session(session_id).await.unwrap();
        assert_eq!(
            (record.user.as_str(), record.status.as_str()),
            ("alice", "done")
        );
        assert!(record.attributes.contains_key("audit.digest"));

        // Refusals: unknown user, unknown connection, a verb it cannot start.
        let err = starter
            .start_session(
                "runbooks",
                StartSession::exec("nobody", "mail", SessionRequest::new()),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::NotFound(_)), "{err}");
        let err = starter
            .start_session(
                "runbooks",
                StartSession::exec("alice", "nope", SessionRequest::new()),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::NotFound(_)), "{err}");
        let mut connect = StartSession::exec("alice", "mail", SessionRequest::new());
        connect.verb = Verb::Connect;
        let err = starter
            .start_session("runbooks", connect)
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Refused(_)), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_a_plugin_starts_takes_args_only_where_the_connection_allows_them() {
        use hoop_core::SessionRequest;
        use hoop_core::ports::{SessionStarter, SessionUpdate, StartSession};
        let dir = tempfile::tempdir().unwrap();
        let (app, starter) = app(&dir).await;
        app.store
            .create_user(&user("alice", &["dev"]))
            .await
            .unwrap();
        let mut conn = hoop_store::Connection::new("sh", "command");
        conn.command = vec!["sh".into(), "-c".into()];
        crate::connections::create(&app.store, &app.registry, &app.resources, &conn)
            .await
            .unwrap();
        let with_args = || SessionRequest::new().with_args(["echo via-runbook"]);
        let err = starter
            .start_session("runbooks", StartSession::exec("alice", "sh", with_args()))
            .await
            .unwrap_err();
        let PortError::Refused(message) = err else {
            panic!("expected a refusal, got {err}");
        };
        assert!(
            message.starts_with("allow_args: connection `sh` does not take arguments"),
            "{message}"
        );
        // Nothing was recorded.
        let sessions = app
            .store
            .list_sessions(&hoop_store::SessionFilter::default(), None, 10)
            .await
            .unwrap();
        assert!(sessions.is_empty(), "{sessions:?}");

        conn.allow_args = true;
        crate::connections::update(
            &app.store,
            &app.registry,
            &app.resources,
            &conn,
            false,
            "connection",
        )
        .await
        .unwrap();
        let rx = starter
            .start_session("runbooks", StartSession::exec("alice", "sh", with_args()))
            .await
            .unwrap();
        let updates = collect(rx).await;
        let Some(SessionUpdate::Started { session_id }) = updates.first() else {
            panic!("no start: {updates:?}");
        };
        assert!(updates.iter().any(|u| matches!(
            u,
            SessionUpdate::Output { stream: Stream::Stdout, data } if &data[..] == b"via-runbook\n"
        )));
        let record = app.store.get_session(session_id).await.unwrap();
        assert_eq!(record.args, ["echo via-runbook"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_a_plugin_starts_obeys_access_control_and_reviews() {
        use hoop_core::SessionRequest;
        use hoop_core::ports::{SessionStarter, SessionUpdate, StartSession};
        let dir = tempfile::tempdir().unwrap();
        let (app, starter) = app(&dir).await;
        app.store
            .create_user(&user("alice", &["dev"]))
            .await
            .unwrap();
        // Hidden from alice by access_control: as if it did not exist.
        let mut secret = hoop_store::Connection::new("secret", "command");
        secret.command = vec!["true".into()];
        crate::connections::create(&app.store, &app.registry, &app.resources, &secret)
            .await
            .unwrap();
        app.store
            .attach(
                "secret",
                &hoop_store::Attachment {
                    plugin: "access_control".into(),
                    config: serde_json::json!({ "groups": ["dba"] }),
                    enabled: true,
                },
            )
            .await
            .unwrap();
        let err = starter
            .start_session(
                "runbooks",
                StartSession::exec("alice", "secret", SessionRequest::new()),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            PortError::NotFound("connection `secret` not found".into())
        );
        // With reviewers, the session is held for a review like any other.
        let mut guarded = hoop_store::Connection::new("guarded", "command");
        guarded.command = vec!["true".into()];
        guarded.reviewers = vec!["dba".into()];
        crate::connections::create(&app.store, &app.registry, &app.resources, &guarded)
            .await
            .unwrap();
        let mut rx = starter
            .start_session(
                "runbooks",
                StartSession::exec("alice", "guarded", SessionRequest::new()),
            )
            .await
            .unwrap();
        let mut held = None;
        while let Some(update) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
        {
            if let SessionUpdate::Held {
                request_id, groups, ..
            } = update
            {
                held = Some((request_id, groups));
                break;
            }
        }
        let (request_id, groups) = held.expect("held for a review");
        assert_eq!(groups, ["dba"]);
        let review = app.store.get_review(&request_id.unwrap()).await.unwrap();
        assert_eq!(review.requester, "alice");
        // The plugin leaves: the session ends, the review stays.
        drop(rx);
    }

    #[test]
    fn the_sealer_keeps_purposes_apart_and_refuses_the_gateways_own() {
        use hoop_core::ports::Sealer as _;
        let sealer = HostSealer::new(KEY);
        let sealed = sealer
            .seal("webhooks endpoint secrets", "ops", b"v")
            .unwrap();
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert_eq!(
            sealer
                .open("webhooks endpoint secrets", "ops", &sealed)
                .unwrap(),
            b"v"
        );
        // Another purpose, context or key does not open it.
        assert!(matches!(
            sealer.open("slack tokens", "ops", &sealed),
            Err(PortError::Corrupt(_))
        ));
        assert!(
            sealer
                .open("webhooks endpoint secrets", "dev", &sealed)
                .is_err()
        );
        let other = HostSealer::new("another-secret-key-of-at-least-32-characters");
        assert!(
            other
                .open("webhooks endpoint secrets", "ops", &sealed)
                .is_err()
        );
        // Connection secrets' purpose is the gateway's: a plugin can neither seal for it nor
        // open a connection secret with it.
        let conn = SecretBox::new(KEY).unwrap().seal("pg", b"pw").unwrap();
        for purpose in [
            "secret key",
            "",
            "Secret Key",
            "a\0b",
            " x",
            &"p".repeat(65),
        ] {
            assert!(
                matches!(
                    sealer.open(purpose, "pg", &conn),
                    Err(PortError::Refused(_))
                ),
                "{purpose:?}"
            );
            assert!(matches!(
                sealer.seal(purpose, "pg", b"x"),
                Err(PortError::Refused(_))
            ));
        }
        assert_eq!(format!("{sealer:?}"), "HostSealer(..)");
    }

    #[test]
    fn an_endpoint_secret_sealed_before_the_port_existed_still_opens() {
        use hoop_core::ports::Sealer as _;
        // Made with Python's `cryptography` (AES-256-GCM, key = SHA-256 of the label the
        // webhooks plugin used to derive itself, then the secret key), not by this code.
        let sealer = HostSealer::new("test-secret-key-0123456789abcdefghijklmnop");
        let sealed = "v1:AAECAwQFBgcICQoLhhJwQHxe0hlj5uVfb38kG9ebJHyYbOCcS7HNAlklMq/eeMBhbohBqqX9\
                      JVobyndh+KrV07Yk/FT3YoRoyaVltPEb";
        assert_eq!(
            sealer
                .open("webhooks endpoint secrets", "ops", sealed)
                .unwrap(),
            b"whsec_c2VjcmV0LWVuZHBvaW50LWtleS1mb3ItdGVzdHMhIQ=="
        );
    }
}
