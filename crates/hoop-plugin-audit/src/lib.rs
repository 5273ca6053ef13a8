//! The `audit` plugin: records every session's input and output.
//!
//! Attached to every connection and always active; it cannot be detached. It takes no
//! configuration. It runs last in the chain, so it records what the user actually sent and
//! saw (after masking and other rewrites).
//!
//! Each session gets one append-only, hash-chained recording (see [`recording`]): a header
//! event with the session's metadata (who, where, with which arguments, when: never the
//! connection's secrets), then
//! every non-empty input and output chunk with its time offset, then a close event with the
//! reason. When the session closes the recording is synced and its final digest is attached
//! to the session as the attribute [`DIGEST_ATTRIBUTE`] (hex), with the number of events as
//! [`EVENTS_ATTRIBUTE`]; verifying a recording against that digest proves nothing was
//! altered, removed or appended since.
//!
//! The host provides where recordings go as a [`Recordings`] resource; building the plugin
//! without one is a configuration error. A session denied before the audit plugin's own
//! `on_open` ran still gets a recording (header and close event), so denials are on record.
//!
//! If a recording cannot be written, the hook fails and the session ends: no session runs
//! unrecorded.
//!
//! Reading a session's recording back goes through [`verify`]: [`verify::verify_session`]
//! judges it with what is stored with the session (its status and final digest), and
//! [`verify::replay_session`] streams its events, each verified before it is handed out.

pub mod recording;
pub mod verify;

use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use async_trait::async_trait;
use hoop_core::{
    Activation, AttachPolicy, Chunk, CloseReason, ConfigError, Plugin, PluginConfig,
    PluginDescriptor, PluginError, PluginFactory, Resources, SessionCtx, Stream, Verdict,
};

use recording::{Event, RecordingStore, RecordingWriter, SessionId};

/// Registry name of the plugin.
pub const NAME: &str = "audit";

/// Session attribute holding the recording's final digest (64 hex digits).
pub const DIGEST_ATTRIBUTE: &str = "audit.digest";
/// Session attribute holding the number of events (records) in the recording.
pub const EVENTS_ATTRIBUTE: &str = "audit.events";
/// Session attribute set when the recording could not be completed, with the error.
pub const ERROR_ATTRIBUTE: &str = "audit.error";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Records all session input and output (session recording).",
)
.with_configuration(
    "takes no configuration; always active and cannot be detached",
    "",
)
.with_attach(AttachPolicy::Required)
.with_order(1000);

/// The resource the host provides: where recordings are stored.
#[derive(Clone)]
pub struct Recordings(pub Arc<dyn RecordingStore>);

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recordings(..)")
    }
}

/// The audit plugin's config: none.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {}

/// Factory of the audit plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFactory;

/// The audit plugin on one connection.
#[derive(Debug)]
pub struct AuditPlugin {
    recordings: Recordings,
}

impl AuditPlugin {
    /// The plugin, writing recordings to `store`.
    pub fn new(store: Arc<dyn RecordingStore>) -> Self {
        Self {
            recordings: Recordings(store),
        }
    }
}

/// The per-session state: the open recording and when the session started.
struct Active {
    writer: RecordingWriter,
    started: Instant,
}

fn hook_error(what: &str, err: recording::RecordingError) -> PluginError {
    PluginError::with_source(format!("cannot record the session: {what}"), err)
}

fn offset_ns(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl AuditPlugin {
    /// Creates the session's recording and writes its header event.
    async fn start(&self, cx: &SessionCtx) -> Result<Active, recording::RecordingError> {
        let info = cx.info();
        let id = SessionId::new(info.id.as_str())?;
        let mut writer = self.recordings.0.create(&id).await?;
        let started_ms = info
            .started_at
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut metadata = serde_json::json!({
            "session": info.id.as_str(),
            "user": info.user.name,
            "connection": info.connection.name,
            "connection_type": info.connection.kind,
            "verb": info.verb.as_str(),
            "args": info.request.args,
            "started_at_unix_ms": started_ms,
        });
        // What the plugins before audit established when they let the session in (e.g.
        // `review.id` and `review.approved_by`): text plugins set, never secrets.
        if !cx.attributes.is_empty() {
            let attributes: serde_json::Map<String, serde_json::Value> = cx
                .attributes
                .iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
                .collect();
            metadata["attributes"] = serde_json::Value::Object(attributes);
        }
        writer.append(Event::header(&metadata)?).await?;
        Ok(Active {
            writer,
            started: Instant::now(),
        })
    }

    async fn record(&self, cx: &mut SessionCtx, chunk: &Chunk) -> Result<Verdict, PluginError> {
        if chunk.data.is_empty() {
            return Ok(Verdict::Allow);
        }
        let Some(active) = cx.extensions.get_mut::<Active>() else {
            return Err(PluginError::new(
                "cannot record the session: its recording was not started",
            ));
        };
        let offset = offset_ns(active.started);
        let data = chunk.data.clone();
        let event = match chunk.stream {
            Stream::Stdin => Event::stdin(offset, data),
            Stream::Stdout => Event::stdout(offset, data),
            Stream::Stderr => Event::stderr(offset, data),
        };
        active
            .writer
            .append(event)
            .await
            .map_err(|e| hook_error("appending an event", e))?;
        Ok(Verdict::Allow)
    }

    async fn close(&self, cx: &mut SessionCtx, reason: &CloseReason) -> Result<(), String> {
        let active = match cx.extensions.remove::<Active>() {
            Some(active) => active,
            None => self.start(cx).await.map_err(|e| e.to_string())?,
        };
        let Active {
            mut writer,
            started,
        } = active;
        let mut info = serde_json::json!({ "reason": reason.to_string() });
        if let CloseReason::Exit { code } = reason {
            info["exit_code"] = (*code).into();
        }
        let event = Event::close(offset_ns(started), &info).map_err(|e| e.to_string())?;
        writer.append(event).await.map_err(|e| e.to_string())?;
        let events = writer.events();
        // Sealed, not synced: the fsync runs in the background (see `RecordingWriter::seal`).
        let digest = writer.seal().await.map_err(|e| e.to_string())?;
        cx.attributes.set(DIGEST_ATTRIBUTE, digest.to_hex());
        cx.attributes.set(EVENTS_ATTRIBUTE, events.to_string());
        Ok(())
    }
}

#[async_trait]
impl Plugin for AuditPlugin {
    fn name(&self) -> &str {
        NAME
    }

    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        if cx.extensions.get::<Active>().is_none() {
            let active = self
                .start(cx)
                .await
                .map_err(|e| hook_error("creating the recording", e))?;
            cx.extensions.insert(active);
        }
        Ok(Verdict::Allow)
    }

    async fn on_input(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        self.record(cx, chunk).await
    }

    async fn on_output(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        self.record(cx, chunk).await
    }

    async fn on_close(&self, cx: &mut SessionCtx, reason: &CloseReason) {
        if let Err(error) = self.close(cx, reason).await {
            tracing::error!(session = %cx.info().id.as_str(), %error, "cannot complete the session recording");
            cx.attributes.set(ERROR_ATTRIBUTE, error);
        }
    }
}

impl PluginFactory for AuditFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        let AuditConfig {} = config.parse()?;
        Ok(())
    }

    fn activation(&self, _config: &PluginConfig) -> Activation {
        Activation::Active("always active: records every session".to_owned())
    }

    fn build(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        self.validate(config)?;
        let recordings = resources.get::<Recordings>().cloned().ok_or_else(|| {
            ConfigError::new(
                None,
                "the host provides no recording storage (a `Recordings` resource)",
            )
        })?;
        Ok(Arc::new(AuditPlugin { recordings }))
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = AuditFactory);
