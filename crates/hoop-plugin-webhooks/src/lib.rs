//! The `webhooks` plugin: signed, durable delivery of the gateway's events to HTTP endpoints,
//! following [Standard Webhooks](https://www.standardwebhooks.com/) (verifiable with the
//! stock `standardwebhooks` and `svix` libraries).
//!
//! # Endpoints
//!
//! Endpoints live in the plugin's own tables ([`WebhookStore`]); the gateway's
//! `WebhookService` (and `hoop webhooks`) manage them through this crate. Each has a name,
//! an `http(s)` URL, a description, `enabled`, an `events` filter (exact types or `family.*`;
//! empty: all), a `connections` filter (empty: every connection, plus the events that
//! concern no connection) and a `whsec_…` secret, generated, shown once, and encrypted at
//! rest through the host's [`Sealer`](hoop_core::ports::Sealer) port ([`EndpointSecrets`]:
//! the gateway encrypts with AES-256-GCM under a key it derives from its `secret_key` for
//! this purpose alone, so the plugin holds no key material). Rotating the secret keeps the old one signing
//! too (a second `v1,` signature) for 24 hours.
//!
//! # Which events go where
//!
//! An event of a connection is sent only while `webhooks` is attached to that connection:
//! with config `{}` to every endpoint whose filters take it, with `{"endpoints": [...]}` to
//! those endpoints only. Review events carry their connection and follow it. Whether the
//! plugin is attached is asked of the host's [`Directory`](hoop_core::ports::Directory) when
//! the event is queued. Events of no connection (`agent.*`) go to endpoints without a
//! connection filter.
//!
//! The body is `{"type", "timestamp", "data"}`: `data` holds `event_id`, `connection`,
//! `user` and the event's own fields; `session.started`, `session.closed` and
//! `recording.finished` of an `exec` also carry the session's `input`, masked with the
//! connection's `redact_types` (the host's [`Redactor`]) and cut
//! to 10 KiB, with `input_size` and `input_truncated`. The plugin's session hook captures it
//! when the session opens; environment values are never part of any payload.
//!
//! # Delivery
//!
//! The ingest reads the event log by cursor and queues one delivery per endpoint and event
//! in the outbox table before its cursor moves on; the dispatcher claims due deliveries
//! with a lease (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so several gateways share the work
//! and each delivery is sent by one), posts them with `webhook-id` (the same on every
//! attempt and redelivery), `webhook-timestamp` and `webhook-signature`, and records every
//! attempt (status, latency, first KiB of the answer). 2xx succeeds; `410 Gone` fails the
//! delivery and disables the endpoint; anything else (3xx included: redirects are never
//! followed), a timeout or a refused destination is retried on the schedule 0, 5 s, 5 min,
//! 30 min, 2 h, 5 h, 10 h, 10 h (±10 % jitter; `429`/`503` wait at least their
//! `Retry-After`), after which the delivery is `failed` and the gateway logs
//! `webhook.exhausted`. Destinations that resolve to loopback, private, link-local and other
//! non-public addresses are refused unless `allow_private_networks = true`.

mod crypto;
mod dispatch;
mod error;
mod http;
mod ingest;
mod schema;
mod settings;
mod store;

use std::sync::Arc;

use async_trait::async_trait;
use hoop_core::ports::Redactor;
use hoop_core::{
    Activation, ConfigError, Deployment, Plugin, PluginConfig, PluginDescriptor, PluginError,
    PluginFactory, PluginMigration, Ports, Resources, SessionCtx, StartError, Verdict,
};
use sea_orm::{DatabaseConnection, Set};
use serde::Deserialize;

pub use crate::crypto::{EndpointSecrets, SEAL_PURPOSE, SECRET_PREFIX, sign};
pub use crate::error::WebhookError;
pub use crate::settings::{DEFAULT_SCHEDULE, DEFAULT_TIMEOUT, Settings};
pub use crate::store::{
    Attempt, Delivery, DeliveryStatus, Endpoint, EndpointSpec, EndpointUpdate, ROTATION_OVERLAP,
    WebhookStore, WithSecret,
};

/// Registry name of the plugin.
pub const NAME: &str = "webhooks";

/// How much of a session's input a payload carries.
pub const MAX_INPUT: usize = 10 * 1024;

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Sends the connection's events to HTTP endpoints, signed (Standard Webhooks), from a durable outbox with retries.",
)
.with_configuration(
    "`{}` sends the connection's events to every endpoint whose filters take them; \
     `endpoints`: only to these endpoints (see WebhookService / hoop webhooks)",
    r#"{"endpoints":["siem"]}"#,
);

/// The plugin's config on a connection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The endpoints this connection's events go to; empty: every endpoint.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

impl ConnectionConfig {
    fn checked(config: &PluginConfig) -> Result<Self, ConfigError> {
        let parsed: Self = config.parse()?;
        for (i, name) in parsed.endpoints.iter().enumerate() {
            hoop_core::names::check_connection_name(name).map_err(|e| {
                ConfigError::field(format!("endpoints[{i}]"), format!("endpoint name: {e}"))
            })?;
            if parsed.endpoints[..i].contains(name) {
                return Err(ConfigError::field(
                    format!("endpoints[{i}]"),
                    format!("`{name}` is listed twice"),
                ));
            }
        }
        Ok(parsed)
    }
}

/// Factory of the webhooks plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhooksFactory;

/// The webhooks plugin on one connection: captures each `exec` session's input (masked,
/// cut) for the payloads of its events. It never holds or denies a session.
#[derive(Debug)]
pub struct WebhooksPlugin {
    capture: Option<Capture>,
}

/// Where captured inputs go.
#[derive(Clone)]
struct Capture {
    db: DatabaseConnection,
    redactor: Arc<dyn Redactor>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database handle may print its connection options (a password among them).
        f.debug_struct("Capture")
            .field("redactor", &self.redactor)
            .finish_non_exhaustive()
    }
}

/// Marks a session whose input was captured (its `on_open` may be called again).
struct Captured;

impl WebhooksPlugin {
    async fn capture(&self, cx: &SessionCtx) {
        let (Some(capture), Some(input)) = (&self.capture, &cx.info().request.input) else {
            return;
        };
        let info = cx.info();
        let text = String::from_utf8_lossy(input);
        // Masked whole, then cut: a value across the cut is still masked.
        let masked = match capture.redactor.redact(&info.connection.name, &text).await {
            Ok(masked) => masked,
            Err(err) => {
                // Nothing unmasked leaves: the payloads go without the input.
                tracing::warn!(session = %info.id, error = %err, "webhooks: cannot mask the input; it is left out");
                return;
            }
        };
        let mut cut = MAX_INPUT.min(masked.len());
        while !masked.is_char_boundary(cut) {
            cut -= 1;
        }
        let row = schema::input::ActiveModel {
            session_id: Set(info.id.to_string()),
            input: Set(masked[..cut].to_owned()),
            input_size: Set(i64::try_from(input.len()).unwrap_or(i64::MAX)),
            input_truncated: Set(cut < masked.len()),
            created_ms: Set(store::now_ms()),
        };
        if let Err(err) = store::save_input(&capture.db, row).await {
            tracing::warn!(session = %info.id, error = %err, "webhooks: cannot store the input");
        }
    }
}

#[async_trait]
impl Plugin for WebhooksPlugin {
    fn name(&self) -> &str {
        NAME
    }

    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        if cx.extensions.get::<Captured>().is_none() {
            cx.extensions.insert(Captured);
            self.capture(cx).await;
        }
        Ok(Verdict::Allow)
    }
}

impl PluginFactory for WebhooksFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        ConnectionConfig::checked(config).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match ConnectionConfig::checked(config) {
            Ok(c) if c.endpoints.is_empty() => Activation::Active(
                "sends this connection's events to every endpoint whose filters take them"
                    .to_owned(),
            ),
            Ok(c) => Activation::Active(format!(
                "sends this connection's events to {}",
                c.endpoints.join(", ")
            )),
            Err(e) => Activation::Inactive(format!("invalid config: {e}")),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        ConnectionConfig::checked(config)?;
        let capture = resources.get::<Ports>().and_then(|ports| {
            let db = ports
                .database
                .as_ref()?
                .get::<DatabaseConnection>()?
                .clone();
            let redactor = ports.redactor.clone()?;
            Some(Capture { db, redactor })
        });
        Ok(Arc::new(WebhooksPlugin { capture }))
    }

    fn validate_settings(&self, settings: &PluginConfig) -> Result<(), ConfigError> {
        Settings::parse(settings).map(drop)
    }

    fn start(&self, deployment: &Deployment) -> Result<(), StartError> {
        let settings =
            Settings::parse(deployment.settings()).map_err(|e| StartError::new(e.to_string()))?;
        let db = deployment.database::<DatabaseConnection>()?;
        let key = EndpointSecrets::new(deployment.sealer()?);
        let directory = deployment.directory()?;
        deployment.events()?;
        deployment.cursors()?;
        let sender = http::Sender::new(&settings).map_err(StartError::new)?;
        let store = WebhookStore::new(db, key);
        deployment.spawn(ingest::run(
            deployment.clone(),
            store.clone(),
            directory,
            deployment.cancellation(),
        ));
        deployment.spawn(dispatch::run(
            store,
            sender,
            settings,
            deployment.cancellation(),
        ));
        Ok(())
    }

    fn migrations(&self) -> &'static [PluginMigration] {
        schema::MIGRATIONS
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = WebhooksFactory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_configs_are_checked() {
        let ok = PluginConfig::from_value(serde_json::json!({"endpoints": ["siem"]})).unwrap();
        assert!(WebhooksFactory.validate(&ok).is_ok());
        assert!(WebhooksFactory.activation(&ok).is_active());
        assert!(WebhooksFactory.validate(&PluginConfig::empty()).is_ok());
        let bad = PluginConfig::from_value(serde_json::json!({"endpoints": ["Bad Name"]})).unwrap();
        let err = WebhooksFactory.validate(&bad).unwrap_err();
        assert_eq!(err.field_path(), Some("endpoints[0]"));
        let twice = PluginConfig::from_value(serde_json::json!({"endpoints": ["a", "a"]})).unwrap();
        assert_eq!(
            WebhooksFactory.validate(&twice).unwrap_err().field_path(),
            Some("endpoints[1]")
        );
        let unknown = PluginConfig::from_value(serde_json::json!({"channels": []})).unwrap();
        assert!(WebhooksFactory.validate(&unknown).is_err());
    }

    #[test]
    fn settings_errors_name_the_key() {
        let bad = PluginConfig::from_value(serde_json::json!({"timeout": "forever"})).unwrap();
        let err = WebhooksFactory.validate_settings(&bad).unwrap_err();
        assert_eq!(err.field_path(), Some("timeout"));
        assert!(
            WebhooksFactory
                .validate_settings(&PluginConfig::empty())
                .is_ok()
        );
    }
}
