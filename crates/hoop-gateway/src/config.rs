//! Gateway configuration: a TOML file, then `HOOP_<KEY>` environment overrides.
//!
//! Every key is optional. An unknown key or a bad value stops start-up with a message naming
//! the key and where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// Default gRPC listen address.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8010";
/// Default data directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "./hoop-data";
/// Minimum length of an `admin_token` set in config.
pub(crate) const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// Default of `limits.running_sessions_per_user`.
pub(crate) const DEFAULT_RUNNING_SESSIONS_PER_USER: u32 = 32;
/// Default of `limits.pending_reviews_per_user`.
pub(crate) const DEFAULT_PENDING_REVIEWS_PER_USER: u32 = 16;

/// A configuration error, naming the key and its source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A TOML syntax or type error. `message` never quotes the config's text: a line may
    /// hold a secret.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{source_name}: {key}: {message}")]
    Invalid {
        source_name: String,
        key: String,
        message: String,
    },
}

/// The file as written: every key optional, unknown keys refused. No `Debug`: it holds
/// secrets.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    admin_token: Option<String>,
    secret_key: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure_plaintext: Option<bool>,
    /// Masking styles and custom info types of the dlp plugin.
    #[serde(default)]
    dlp: Option<hoop_plugin_dlp::DlpSettings>,
    #[serde(default)]
    connections: Vec<DeclaredConnection>,
    /// How long the event log keeps events (humantime, e.g. `7d`).
    events_retention: Option<String>,
    /// This gateway's name among the gateways sharing the database.
    instance_id: Option<String>,
    /// How long this gateway's lease lasts unless renewed (humantime).
    instance_lease: Option<String>,
    /// Where session recordings are kept: `filesystem` or `database`.
    recordings: Option<String>,
    /// Per-user limits.
    #[serde(default)]
    limits: FileLimits,
    /// Deployment settings of plugins: `[plugins.<name>]` tables.
    #[serde(default)]
    plugins: BTreeMap<String, toml::Table>,
    /// How the local agent runs sessions.
    #[serde(default)]
    agent: FileAgent,
    /// The database's connection pool.
    #[serde(default)]
    database: FileDatabase,
}

/// `[database]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    max_connections: Option<i64>,
    acquire_timeout: Option<String>,
}

/// `[agent]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAgent {
    user: Option<String>,
    working_dir: Option<PathBuf>,
}

/// How the local agent (the one the gateway starts) runs sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentSettings {
    /// The user sessions run as when the gateway runs as root (`[agent] user`, default
    /// `nobody`); with that user's groups.
    pub(crate) user: String,
    /// Where sessions run (`[agent] working_dir`); `None`: a fresh directory per session,
    /// removed afterwards.
    pub(crate) working_dir: Option<PathBuf>,
}

/// The default `[agent] user`.
pub(crate) const DEFAULT_AGENT_USER: &str = "nobody";

/// The `[limits]` table as written (signed, so that a negative value gets a clear message).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    running_sessions_per_user: Option<i64>,
    pending_reviews_per_user: Option<i64>,
}

/// A connection declared in config (`[[connections]]`), created or updated at start. Its
/// `Debug` shows the names of `env`, never the values.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclaredConnection {
    pub(crate) name: String,
    #[serde(rename = "type", default = "default_type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) command: Vec<String>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) reviewers: Vec<String>,
    #[serde(default)]
    pub(crate) redact_types: Vec<String>,
    #[serde(default)]
    pub(crate) access_modes: DeclaredAccessModes,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    /// Longest a session may run, e.g. `"30m"`; unset for no limit.
    #[serde(default)]
    pub(crate) session_timeout: Option<String>,
    /// With reviewers: approvals a review needs; unset: one from every group.
    #[serde(default)]
    pub(crate) min_approvals: Option<u32>,
    /// With reviewers: how long a review may stay pending, e.g. `"24h"`.
    #[serde(default)]
    pub(crate) review_ttl: Option<String>,
    /// With reviewers: the longest access a time-based review may grant, e.g. `"4h"`.
    #[serde(default)]
    pub(crate) access_max_duration: Option<String>,
    /// Whether clients may append arguments to `command`.
    #[serde(default)]
    pub(crate) allow_args: bool,
    /// The agent that runs its sessions; unset: `local`.
    #[serde(default)]
    pub(crate) agent: Option<String>,
    /// `postgres` connections: columns always masked (`schema.table.column`, `*.column`).
    #[serde(default)]
    pub(crate) mask_columns: Vec<String>,
    /// Plugins to attach (or reconfigure) beyond the defaults.
    #[serde(default)]
    pub(crate) plugins: Vec<DeclaredPlugin>,
}

impl fmt::Debug for DeclaredConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeclaredConnection")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("command", &self.command)
            .field("env", &RedactedValues(&self.env))
            .field("reviewers", &self.reviewers)
            .field("redact_types", &self.redact_types)
            .field("access_modes", &self.access_modes)
            .field("tags", &self.tags)
            .field("session_timeout", &self.session_timeout)
            .field("min_approvals", &self.min_approvals)
            .field("review_ttl", &self.review_ttl)
            .field("access_max_duration", &self.access_max_duration)
            .field("allow_args", &self.allow_args)
            .field("agent", &self.agent)
            .field("mask_columns", &self.mask_columns)
            .field("plugins", &self.plugins)
            .finish()
    }
}

/// Prints a map's keys, each with `<redacted>` for its value.
struct RedactedValues<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Redacted)))
            .finish()
    }
}

/// Stands for a secret value in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `Some(<redacted>)` or `None`.
fn redacted_option<T>(value: &Option<T>) -> Option<Redacted> {
    value.as_ref().map(|_| Redacted)
}

fn default_type() -> String {
    "command".to_owned()
}

/// Access modes of a declared connection; unset means enabled.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclaredAccessModes {
    pub(crate) exec: Option<bool>,
    pub(crate) connect: Option<bool>,
    pub(crate) runbooks: Option<bool>,
}

/// A plugin attachment of a declared connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclaredPlugin {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) config: Option<toml::Table>,
}

/// The resolved configuration. Its `Debug` never shows a secret.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    /// Where `listen` came from (for messages).
    pub(crate) listen_source: String,
    pub(crate) data_dir: PathBuf,
    /// `None`: SQLite in the data dir.
    pub(crate) database_url: Option<String>,
    pub(crate) admin_token: Option<String>,
    pub(crate) secret_key: Option<String>,
    /// `tls_cert` and `tls_key`: both set, or neither.
    pub(crate) tls: Option<TlsFiles>,
    /// Serve plaintext on a non-loopback `listen` (TLS terminated elsewhere).
    pub(crate) insecure_plaintext: bool,
    /// The `[dlp]` table (checked; the hash key is set at start from the secret key).
    pub(crate) dlp: hoop_plugin_dlp::DlpSettings,
    pub(crate) connections: Vec<DeclaredConnection>,
    /// How long the event log keeps events.
    pub(crate) events_retention: std::time::Duration,
    /// Per-user limits (`[limits]`), both set.
    pub(crate) limits: hoop_store::Limits,
    /// Every registered plugin's deployment settings (its `[plugins.<name>]` table, checked
    /// by the plugin; empty when the file has none).
    pub(crate) plugins: BTreeMap<&'static str, hoop_core::PluginConfig>,
    /// `[agent]`: how the local agent runs sessions.
    pub(crate) agent: AgentSettings,
    /// `instance_id`, if set (else generated into the data dir).
    pub(crate) instance_id: Option<String>,
    /// `instance_lease`: how long this gateway's lease lasts unless renewed.
    pub(crate) instance_lease: std::time::Duration,
    /// `recordings`: where session recordings are kept.
    pub(crate) recordings: RecordingsAt,
    /// `[database]`: the connection pool's size and acquire timeout.
    pub(crate) database_pool: hoop_store::PoolSettings,
}

/// Where session recordings are kept (`recordings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordingsAt {
    /// `<data_dir>/recordings`, the default: for one gateway.
    Filesystem,
    /// The shared database: every gateway on it replays every session.
    Database,
}

/// How long a lease lasts when `instance_lease` is not set.
pub(crate) const DEFAULT_INSTANCE_LEASE: std::time::Duration = std::time::Duration::from_secs(15);

/// Checks an `instance_id`: like a connection name, with dots allowed.
pub(crate) fn check_instance_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = id.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "`{id}` must match ^[a-z0-9][a-z0-9._-]{{0,62}}$ (e.g. gw-eu-1)"
        ))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("admin_token", &redacted_option(&self.admin_token))
            .field("secret_key", &redacted_option(&self.secret_key))
            .field("tls", &self.tls)
            .field("insecure_plaintext", &self.insecure_plaintext)
            .field("dlp", &self.dlp)
            .field("connections", &self.connections)
            .field("events_retention", &self.events_retention)
            .field("limits", &self.limits)
            .field("plugins", &PluginSettingNames(&self.plugins))
            .field("agent", &self.agent)
            .field("instance_id", &self.instance_id)
            .field("instance_lease", &self.instance_lease)
            .field("recordings", &self.recordings)
            .field("database_pool", &self.database_pool)
            .finish_non_exhaustive()
    }
}

/// Each plugin's deployment settings as their names, each with `<redacted>` for its value
/// (they hold tokens and signing secrets).
struct PluginSettingNames<'a>(&'a BTreeMap<&'static str, hoop_core::PluginConfig>);

impl fmt::Debug for PluginSettingNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, settings)| {
                let keys = settings.as_map().keys().map(|k| (k, Redacted));
                (name, DebugMap(keys.collect()))
            }))
            .finish()
    }
}

/// A list of pairs printed as a map.
struct DebugMap<K, V>(Vec<(K, V)>);

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for DebugMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

/// The paths of the TLS certificate chain and key, and where each was set.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    cert: (String, PathBuf),
    key: (String, PathBuf),
}

/// A certificate chain and its private key, read and checked, ready to serve TLS with.
pub(crate) struct ServerIdentity {
    /// The certificate chain, PEM.
    pub(crate) cert_pem: Vec<u8>,
    /// The private key, PEM. Never printed.
    pub(crate) key_pem: Vec<u8>,
    /// Path of the certificate file, for the log.
    pub(crate) cert_path: PathBuf,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("cert_path", &self.cert_path)
            .field("key_pem", &Redacted)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads `path` (if given) and applies overrides from `env` (`HOOP_<KEY>` pairs).
    pub(crate) fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (file, file_name) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: describe_toml_error(&text, &e),
                })?;
                (file, format!("config file {}", path.display()))
            }
            None => (FileConfig::default(), "config".to_owned()),
        };

        let mut listen = file.listen.map(|v| (file_name.clone(), v));
        let mut data_dir = file.data_dir.map(|v| (file_name.clone(), v));
        let mut database_url = file.database_url.map(|v| (file_name.clone(), v));
        let mut admin_token = file.admin_token.map(|v| (file_name.clone(), v));
        let mut secret_key = file.secret_key.map(|v| (file_name.clone(), v));
        let mut events_retention = file.events_retention.map(|v| (file_name.clone(), v));
        let mut instance_id = file.instance_id.map(|v| (file_name.clone(), v));
        let mut instance_lease = file.instance_lease.map(|v| (file_name.clone(), v));
        let mut recordings = file.recordings.map(|v| (file_name.clone(), v));
        let mut tls_cert = file.tls_cert.map(|v| (file_name.clone(), v));
        let mut tls_key = file.tls_key.map(|v| (file_name.clone(), v));
        let mut insecure_plaintext = file
            .insecure_plaintext
            .map(|v| (file_name.clone(), v.to_string()));
        let mut db_max_connections = file
            .database
            .max_connections
            .map(|v| (file_name.clone(), v.to_string()));
        let mut db_acquire_timeout = file
            .database
            .acquire_timeout
            .map(|v| (file_name.clone(), v));
        let mut agent_user = file.agent.user.map(|v| (file_name.clone(), v));
        let mut agent_dir = file.agent.working_dir.map(|v| (file_name.clone(), v));
        let mut running_sessions = file
            .limits
            .running_sessions_per_user
            .map(|v| (file_name.clone(), v.to_string()));
        let mut pending_reviews = file
            .limits
            .pending_reviews_per_user
            .map(|v| (file_name.clone(), v.to_string()));
        // `HOOP_PLUGINS_<PLUGIN>_<KEY>`: a plugin setting (e.g. HOOP_PLUGINS_SLACK_BOT_TOKEN),
        // matched to the plugin once the registry is known.
        let mut plugin_env: Vec<(String, String)> = Vec::new();
        for (name, value) in env {
            let source = name.clone();
            if name.starts_with("HOOP_PLUGINS_") {
                plugin_env.push((name, value));
                continue;
            }
            match name.as_str() {
                "HOOP_LISTEN" => listen = Some((source, value)),
                "HOOP_DATA_DIR" => data_dir = Some((source, PathBuf::from(value))),
                "HOOP_DATABASE_URL" => database_url = Some((source, value)),
                "HOOP_ADMIN_TOKEN" => admin_token = Some((source, value)),
                "HOOP_SECRET_KEY" => secret_key = Some((source, value)),
                "HOOP_EVENTS_RETENTION" => events_retention = Some((source, value)),
                "HOOP_INSTANCE_ID" => instance_id = Some((source, value)),
                "HOOP_INSTANCE_LEASE" => instance_lease = Some((source, value)),
                "HOOP_RECORDINGS" => recordings = Some((source, value)),
                "HOOP_TLS_CERT" => tls_cert = Some((source, PathBuf::from(value))),
                "HOOP_TLS_KEY" => tls_key = Some((source, PathBuf::from(value))),
                "HOOP_INSECURE_PLAINTEXT" => insecure_plaintext = Some((source, value)),
                "HOOP_AGENT_USER" => agent_user = Some((source, value)),
                "HOOP_DATABASE_MAX_CONNECTIONS" => db_max_connections = Some((source, value)),
                "HOOP_DATABASE_ACQUIRE_TIMEOUT" => db_acquire_timeout = Some((source, value)),
                "HOOP_AGENT_WORKING_DIR" => agent_dir = Some((source, PathBuf::from(value))),
                "HOOP_LIMITS_RUNNING_SESSIONS_PER_USER" => {
                    running_sessions = Some((source, value));
                }
                "HOOP_LIMITS_PENDING_REVIEWS_PER_USER" => pending_reviews = Some((source, value)),
                _ => {}
            }
        }

        let invalid = |source_name: &str, key: &str, message: String| ConfigError::Invalid {
            source_name: source_name.to_owned(),
            key: key.to_owned(),
            message,
        };
        let (listen, listen_source) = match listen {
            Some((src, value)) => {
                let addr = value.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        &src,
                        "listen",
                        format!("`{value}` is not a socket address (expected host:port, e.g. {DEFAULT_LISTEN})"),
                    )
                })?;
                (addr, src)
            }
            None => {
                let addr = DEFAULT_LISTEN
                    .parse()
                    .map_err(|_| invalid("default", "listen", "bad default".to_owned()))?;
                (addr, "default".to_owned())
            }
        };
        let data_dir = match data_dir {
            Some((src, dir)) if dir.as_os_str().is_empty() => {
                return Err(invalid(&src, "data_dir", "must not be empty".to_owned()));
            }
            Some((_, dir)) => dir,
            None => PathBuf::from(DEFAULT_DATA_DIR),
        };
        if let Some((src, url)) = &database_url {
            let supported = ["sqlite:", "postgres://", "postgresql://"];
            if !supported.iter().any(|p| url.starts_with(p)) {
                return Err(invalid(
                    src,
                    "database_url",
                    "must start with sqlite:// or postgres://".to_owned(),
                ));
            }
        }
        if let Some((src, token)) = &admin_token
            && (token.chars().count() < MIN_ADMIN_TOKEN_LEN
                || token.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                src,
                "admin_token",
                format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters, without spaces"),
            ));
        }
        if let Some((src, key)) = &secret_key
            && key.chars().count() < hoop_store::MIN_SECRET_KEY_LEN
        {
            let min = hoop_store::MIN_SECRET_KEY_LEN;
            return Err(invalid(
                src,
                "secret_key",
                format!("must be at least {min} characters"),
            ));
        }
        let events_retention = match events_retention {
            None => crate::events::DEFAULT_RETENTION,
            Some((src, text)) => {
                let retention = humantime::parse_duration(text.trim()).map_err(|e| {
                    invalid(
                        &src,
                        "events_retention",
                        format!("`{text}` is not a duration ({e}); e.g. `7d` or `12h`"),
                    )
                })?;
                if retention < std::time::Duration::from_secs(60) {
                    return Err(invalid(
                        &src,
                        "events_retention",
                        "must be at least 1m".to_owned(),
                    ));
                }
                retention
            }
        };
        if let Some((src, id)) = &instance_id {
            check_instance_id(id).map_err(|message| invalid(src, "instance_id", message))?;
        }
        let instance_lease = match instance_lease {
            None => DEFAULT_INSTANCE_LEASE,
            Some((src, text)) => {
                let lease = humantime::parse_duration(text.trim()).map_err(|e| {
                    invalid(
                        &src,
                        "instance_lease",
                        format!("`{text}` is not a duration ({e}); e.g. `15s`"),
                    )
                })?;
                if lease < std::time::Duration::from_secs(1)
                    || lease > std::time::Duration::from_secs(3600)
                {
                    return Err(invalid(
                        &src,
                        "instance_lease",
                        format!("`{text}`: must be between 1s and 1h"),
                    ));
                }
                lease
            }
        };
        let max_connections = match db_max_connections {
            None => None,
            Some((src, text)) => match text.trim().parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => Some(n),
                _ => {
                    return Err(invalid(
                        &src,
                        "database.max_connections",
                        format!("`{text}`: must be a whole number between 1 and 1000"),
                    ));
                }
            },
        };
        let acquire_timeout = match db_acquire_timeout {
            None => hoop_store::DEFAULT_ACQUIRE_TIMEOUT,
            Some((src, text)) => {
                let timeout = humantime::parse_duration(text.trim()).map_err(|e| {
                    invalid(
                        &src,
                        "database.acquire_timeout",
                        format!("`{text}` is not a duration ({e}); e.g. `10s`"),
                    )
                })?;
                if timeout < std::time::Duration::from_millis(100)
                    || timeout > std::time::Duration::from_secs(600)
                {
                    return Err(invalid(
                        &src,
                        "database.acquire_timeout",
                        format!("`{text}`: must be between 100ms and 10m"),
                    ));
                }
                timeout
            }
        };
        let database_pool = hoop_store::PoolSettings {
            max_connections,
            acquire_timeout,
        };
        let recordings = match recordings {
            None => RecordingsAt::Filesystem,
            Some((src, text)) => match text.trim() {
                "filesystem" => RecordingsAt::Filesystem,
                "database" => RecordingsAt::Database,
                other => {
                    return Err(invalid(
                        &src,
                        "recordings",
                        format!("`{other}` is not one of filesystem, database"),
                    ));
                }
            },
        };
        let mut plugins = file
            .plugins
            .into_iter()
            .map(|(name, table)| {
                let value = serde_json::to_value(&table)
                    .map_err(|e| invalid(&file_name, &format!("plugins.{name}"), e.to_string()))?;
                Ok((name, value))
            })
            .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
        let registry = crate::plugins::registry()
            .map_err(|e| invalid(&file_name, "plugins", format!("plugin registry: {e}")))?;
        apply_plugin_env(&mut plugins, &registry, plugin_env)?;
        let plugins = plugin_settings(&plugins, &registry, &file_name)?;
        let tls = match (tls_cert, tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                for ((src, path), name) in [(&cert, "tls_cert"), (&key, "tls_key")] {
                    if path.as_os_str().is_empty() {
                        return Err(invalid(src, name, "must not be empty".to_owned()));
                    }
                }
                Some(TlsFiles { cert, key })
            }
            (Some((src, _)), None) => {
                return Err(invalid(
                    &src,
                    "tls_cert",
                    "is set but tls_key is not: set both (the PEM certificate chain and its private key), or neither".to_owned(),
                ));
            }
            (None, Some((src, _))) => {
                return Err(invalid(
                    &src,
                    "tls_key",
                    "is set but tls_cert is not: set both (the PEM certificate chain and its private key), or neither".to_owned(),
                ));
            }
        };
        let insecure_plaintext = match insecure_plaintext {
            None => false,
            Some((src, value)) => parse_bool(&value).ok_or_else(|| {
                invalid(
                    &src,
                    "insecure_plaintext",
                    format!("`{value}` is not a boolean (expected true or false)"),
                )
            })?,
        };
        let agent = AgentSettings {
            user: match agent_user {
                None => DEFAULT_AGENT_USER.to_owned(),
                Some((src, user)) => {
                    let valid = !user.is_empty()
                        && user.len() <= 32
                        && user
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                    if !valid {
                        return Err(invalid(
                            &src,
                            "agent.user",
                            format!(
                                "`{user}` is not a user name (letters, digits, _ - ., at most 32)"
                            ),
                        ));
                    }
                    user
                }
            },
            working_dir: match agent_dir {
                None => None,
                Some((src, dir)) if !dir.is_absolute() => {
                    return Err(invalid(
                        &src,
                        "agent.working_dir",
                        format!("`{}` must be an absolute path", dir.display()),
                    ));
                }
                Some((_, dir)) => Some(dir),
            },
        };
        let limit = |value: Option<(String, String)>, key: &str, default: u32| match value {
            None => Ok(default),
            Some((src, text)) => match text.trim().parse::<i64>() {
                Ok(n) if n >= 1 => u32::try_from(n).map_err(|_| {
                    invalid(&src, key, format!("must be at most {}, got {n}", u32::MAX))
                }),
                Ok(n) => Err(invalid(
                    &src,
                    key,
                    format!("must be at least 1, got {n} (the default is {default})"),
                )),
                Err(_) => Err(invalid(
                    &src,
                    key,
                    format!("`{text}` is not a whole number (the default is {default})"),
                )),
            },
        };
        let limits = hoop_store::Limits {
            running_sessions_per_user: Some(limit(
                running_sessions,
                "limits.running_sessions_per_user",
                DEFAULT_RUNNING_SESSIONS_PER_USER,
            )?),
            pending_reviews_per_user: Some(limit(
                pending_reviews,
                "limits.pending_reviews_per_user",
                DEFAULT_PENDING_REVIEWS_PER_USER,
            )?),
        };
        let dlp = file.dlp.unwrap_or_default();
        {
            // The real hash key comes from the secret key at start; any key checks the rest.
            let mut probe = dlp.clone();
            probe.hash_key = vec![0; 32];
            probe.check().map_err(|e| {
                let key = match e.field_path() {
                    Some(path) => format!("dlp.{path}"),
                    None => "dlp".to_owned(),
                };
                invalid(&file_name, &key, e.message().to_owned())
            })?;
        }
        Ok(Self {
            listen,
            listen_source,
            data_dir,
            tls,
            insecure_plaintext,
            dlp,
            database_url: database_url.map(|(_, v)| v),
            admin_token: admin_token.map(|(_, v)| v),
            secret_key: secret_key.map(|(_, v)| v),
            connections: file.connections,
            events_retention,
            limits,
            plugins,
            agent,
            instance_id: instance_id.map(|(_, v)| v),
            instance_lease,
            recordings,
            database_pool,
        })
    }
}

/// Applies `HOOP_PLUGINS_<PLUGIN>_<KEY>=value` overrides: `<PLUGIN>` is a registered
/// plugin's name in upper case, `<KEY>` one of its settings in upper case; the value is a
/// string (it replaces the file's). An override naming no plugin is an error naming it.
fn apply_plugin_env(
    tables: &mut BTreeMap<String, serde_json::Value>,
    registry: &hoop_core::Registry,
    overrides: Vec<(String, String)>,
) -> Result<(), ConfigError> {
    let mut names = registry.names();
    // Longest first, so `ACCESS_CONTROL_…` is not read as a plugin `access`.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for (var, value) in overrides {
        let rest = var.trim_start_matches("HOOP_PLUGINS_");
        let found = names.iter().find_map(|name| {
            let upper = name.to_uppercase().replace('-', "_");
            let key = rest.strip_prefix(&upper)?.strip_prefix('_')?;
            (!key.is_empty()).then(|| (name.to_string(), key.to_lowercase()))
        });
        let Some((plugin, key)) = found else {
            return Err(ConfigError::Invalid {
                source_name: var.clone(),
                key: "plugins".to_owned(),
                message: format!(
                    "names no plugin setting: expected HOOP_PLUGINS_<PLUGIN>_<KEY> with a plugin of this build ({})",
                    registry.names().join(", ")
                ),
            });
        };
        let table = tables
            .entry(plugin)
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let serde_json::Value::Object(map) = table {
            map.insert(key, serde_json::Value::String(value));
        }
    }
    Ok(())
}

/// Checks every `[plugins.<name>]` table against the plugin's factory: an unknown plugin, an
/// unknown key or a bad value is an error naming `plugins.<name>.<key>`. Returns each
/// registered plugin's settings (empty when the config has no table for it).
fn plugin_settings(
    tables: &BTreeMap<String, serde_json::Value>,
    registry: &hoop_core::Registry,
    source_name: &str,
) -> Result<BTreeMap<&'static str, hoop_core::PluginConfig>, ConfigError> {
    let invalid = |key: String, message: String| ConfigError::Invalid {
        source_name: source_name.to_owned(),
        key,
        message,
    };
    if let Some(unknown) = tables.keys().find(|n| registry.get(n).is_none()) {
        return Err(invalid(
            format!("plugins.{unknown}"),
            format!(
                "no plugin `{unknown}` in this build (plugins: {})",
                registry.names().join(", ")
            ),
        ));
    }
    let mut all = BTreeMap::new();
    for factory in registry.factories() {
        let name = factory.descriptor().name;
        let value = tables.get(name).cloned().unwrap_or(serde_json::Value::Null);
        let settings = hoop_core::PluginConfig::from_value(value)
            .map_err(|e| invalid(format!("plugins.{name}"), e.message().to_owned()))?;
        factory.validate_settings(&settings).map_err(|e| {
            let key = match e.field_path() {
                Some(path) => format!("plugins.{name}.{path}"),
                None => format!("plugins.{name}"),
            };
            invalid(key, e.message().to_owned())
        })?;
        all.insert(name, settings);
    }
    Ok(all)
}

impl Config {
    /// What serving needs beyond [`load`](Self::load): the TLS certificate and key, read
    /// and checked (`None`: plaintext). A non-loopback `listen` without TLS is refused
    /// unless `insecure_plaintext` is set. Errors name the key; they never show a key's
    /// contents.
    pub(crate) fn server_identity(&self) -> Result<Option<ServerIdentity>, ConfigError> {
        let Some(tls) = &self.tls else {
            if !self.insecure_plaintext && !is_loopback(self.listen) {
                return Err(ConfigError::Invalid {
                    source_name: self.listen_source.clone(),
                    key: "listen".to_owned(),
                    message: format!(
                        "{} is not a loopback address and TLS is off: tokens would cross the network in clear. Set tls_cert and tls_key (HOOP_TLS_CERT, HOOP_TLS_KEY) to serve TLS, or set insecure_plaintext = true (HOOP_INSECURE_PLAINTEXT=true) if TLS ends in front of the gateway",
                        self.listen
                    ),
                });
            }
            return Ok(None);
        };
        load_identity(tls).map(Some)
    }

    /// The database URL: the configured one, or SQLite in the data dir.
    pub(crate) fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("hoop.db").display()),
        }
    }
}

/// Whether `addr` is reachable from this machine only (127.0.0.0/8, ::1).
fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Reads and checks the certificate chain and the key of `tls`.
fn load_identity(tls: &TlsFiles) -> Result<ServerIdentity, ConfigError> {
    let (cert_src, cert_path) = &tls.cert;
    let (key_src, key_path) = &tls.key;
    let invalid = |src: &str, key: &str, message: String| ConfigError::Invalid {
        source_name: src.to_owned(),
        key: key.to_owned(),
        message,
    };
    let read = |src: &str, key: &str, path: &Path| {
        std::fs::read(path)
            .map_err(|e| invalid(src, key, format!("cannot read {}: {e}", path.display())))
    };

    let cert_pem = read(cert_src, "tls_cert", cert_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                cert_src,
                "tls_cert",
                format!(
                    "{} is not a valid PEM file ({})",
                    cert_path.display(),
                    pem_problem(&e)
                ),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            cert_src,
            "tls_cert",
            format!(
                "no certificate in {}: expected a PEM file with the certificate chain (-----BEGIN CERTIFICATE----- blocks, the server's first)",
                cert_path.display()
            ),
        ));
    }

    let key_pem = read(key_src, "tls_key", key_path)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(invalid(
                key_src,
                "tls_key",
                format!(
                    "no private key in {}: expected a PEM file with a -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY) block",
                    key_path.display()
                ),
            ));
        }
        Err(e) => {
            return Err(invalid(
                key_src,
                "tls_key",
                format!(
                    "{} is not a valid PEM file ({})",
                    key_path.display(),
                    pem_problem(&e)
                ),
            ));
        }
    };

    // Build the server config once now, so that a key that does not go with the
    // certificate, or an unsupported key type, stops start-up with a clear message.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(_) => invalid(
                cert_src,
                "tls_cert",
                format!(
                    "the first certificate in {} cannot be used: {e}",
                    cert_path.display()
                ),
            ),
            other => invalid(
                key_src,
                "tls_key",
                format!(
                    "the key in {} cannot serve the certificate in {}: {}",
                    key_path.display(),
                    cert_path.display(),
                    tls_problem(&other)
                ),
            ),
        })?;
    Ok(ServerIdentity {
        cert_pem,
        key_pem,
        cert_path: cert_path.clone(),
    })
}

/// What is wrong with a PEM file, without quoting it (its text may be a private key).
fn pem_problem(err: &pem::Error) -> &'static str {
    match err {
        pem::Error::MissingSectionEnd { .. } => "a -----BEGIN block has no -----END line",
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a block is not valid base64",
        pem::Error::NoItemsFound => "no PEM block found",
        _ => "unreadable PEM",
    }
}

/// A rustls error about a certificate and key, in words that never include key material.
fn tls_problem(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            "the private key does not match the certificate".to_owned()
        }
        rustls::Error::InconsistentKeys(_) => {
            "the private key cannot be checked against the certificate".to_owned()
        }
        rustls::Error::General(message) => message.clone(),
        other => other.to_string(),
    }
}

/// A TOML error as `line L, column C (key `K`): message`, without the source line that
/// toml quotes (it may hold a secret), and without any text of the offending value.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim();
    let Some(span) = err.span() else {
        return message.to_owned();
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or_default();
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or_default();
    // The key: the table header above the line, and the bare key before `=`.
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\''))
    });
    let key = match (table, key) {
        (Some(table), Some(key)) if !table.is_empty() => Some(format!("{table}.{key}")),
        (_, Some(key)) => Some(key.to_owned()),
        (Some(table), None) if line.trim_start().starts_with('[') => Some(table),
        _ => None,
    };
    // Values the message quotes (`unknown variant `x``, `invalid type: string "x"`) are
    // dropped when they come from the line's value.
    let value = line.split_once('=').map(|(_, v)| v).unwrap_or_default();
    let message = redact_quoted(message, value);
    match key {
        Some(key) => format!("line {line_no}, column {column} (key `{key}`): {message}"),
        None => format!("line {line_no}, column {column}: {message}"),
    }
}

/// `message` with every fragment between backticks or double quotes that occurs in
/// `value` replaced by `…`.
fn redact_quoted(message: &str, value: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        let after = &rest[open + 1..];
        let Some(close) = after.find(quote) else {
            break;
        };
        let fragment = &after[..close];
        out.push_str(&rest[..=open]);
        if !fragment.is_empty() && value.contains(fragment) {
            out.push('…');
        } else {
            out.push_str(fragment);
        }
        out.push(quote);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A database URL without its password, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hoop.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults() {
        let config = Config::load(None, []).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8010");
        assert_eq!(config.data_dir, PathBuf::from("./hoop-data"));
        assert_eq!(config.database_url(), "sqlite://./hoop-data/hoop.db");
    }

    #[test]
    fn env_overrides_file() {
        let config = load_str(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/a\"",
            &[("HOOP_LISTEN", "127.0.0.1:9001"), ("HOOP_TOKEN", "ignored")],
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.database_url(), "sqlite:///tmp/a/hoop.db");
    }

    #[test]
    fn the_database_pool_is_sized_by_database_keys() {
        let config = Config::load(None, []).unwrap();
        assert_eq!(config.database_pool, hoop_store::PoolSettings::default());
        let config = load_str(
            "[database]\nmax_connections = 8\nacquire_timeout = \"2s\"",
            &[("HOOP_DATABASE_ACQUIRE_TIMEOUT", "500ms")],
        )
        .unwrap();
        assert_eq!(config.database_pool.max_connections, Some(8));
        assert_eq!(
            config.database_pool.acquire_timeout,
            std::time::Duration::from_millis(500)
        );
        let err = load_str("[database]\nmax_connections = 0", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "database.max_connections: `0`: must be a whole number between 1 and 1000"
            ),
            "{err}"
        );
        let err = load_str("", &[("HOOP_DATABASE_ACQUIRE_TIMEOUT", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "HOOP_DATABASE_ACQUIRE_TIMEOUT: database.acquire_timeout: `soon` is not a duration"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_str("lisen = \"x\"", &[]).unwrap_err().to_string();
        assert!(err.contains("unknown field `lisen`"), "{err}");
        let err = load_str("[[connections]]\nname = \"a\"\ncomand = []", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `comand`"), "{err}");
    }

    #[test]
    fn bad_values_are_named_with_their_source() {
        let err = load_str("", &[("HOOP_LISTEN", "nope")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("HOOP_LISTEN: listen: `nope` is not a socket address"),
            "{err}"
        );
        let err = load_str("admin_token = \"short\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("admin_token: must be at least 16"), "{err}");
        let err = load_str("database_url = \"mysql://x\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database_url: must start with"), "{err}");
        let err = load_str("listen = 8010", &[]).unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
    }

    #[test]
    fn limits_default_and_are_checked() {
        let config = Config::load(None, []).unwrap();
        assert_eq!(
            config.limits,
            hoop_store::Limits {
                running_sessions_per_user: Some(32),
                pending_reviews_per_user: Some(16),
            }
        );
        let config = load_str(
            "[limits]\nrunning_sessions_per_user = 2\npending_reviews_per_user = 5\n",
            &[("HOOP_LIMITS_PENDING_REVIEWS_PER_USER", "1")],
        )
        .unwrap();
        assert_eq!(config.limits.running_sessions_per_user, Some(2));
        assert_eq!(config.limits.pending_reviews_per_user, Some(1));
        for (toml, env, expected) in [
            (
                "[limits]\nrunning_sessions_per_user = 0\n",
                None,
                "limits.running_sessions_per_user: must be at least 1, got 0 (the default is 32)",
            ),
            (
                "[limits]\npending_reviews_per_user = -3\n",
                None,
                "limits.pending_reviews_per_user: must be at least 1, got -3 (the default is 16)",
            ),
            (
                "",
                Some(("HOOP_LIMITS_RUNNING_SESSIONS_PER_USER", "many")),
                "HOOP_LIMITS_RUNNING_SESSIONS_PER_USER: limits.running_sessions_per_user: `many` is not a whole number",
            ),
            (
                "[limits]\npending_reviews_per_user = 99999999999\n",
                None,
                "limits.pending_reviews_per_user: must be at most 4294967295",
            ),
        ] {
            let err = load_str(toml, env.as_slice()).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let err = load_str("[limits]\nsessions = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `sessions`"), "{err}");
    }

    #[test]
    fn dlp_settings_are_checked_and_named() {
        let config = load_str(
            "[dlp]\ndefault_style = \"mask\"\n[[dlp.custom_types]]\nname = \"EMPLOYEE_ID\"\nregex = \"EMP-[0-9]{6}\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.dlp.custom_types[0].name, "EMPLOYEE_ID");
        let err = load_str("[dlp]\nstyles = { SHOE_SIZE = \"mask\" }", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(": dlp.styles.SHOE_SIZE: unknown info type"),
            "{err}"
        );
        let err = load_str(
            "[[dlp.custom_types]]\nname = \"BROKEN\"\nregex = \"(\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(": dlp.custom_types[0].regex: "), "{err}");
        let err = load_str("[dlp]\ndefault_style = \"scramble\"", &[])
            .unwrap_err()
            .to_string();
        // The value itself is not repeated (a line may hold a secret); its place is.
        assert!(
            err.contains("line 2, column 17 (key `dlp.default_style`): unknown variant"),
            "{err}"
        );
        assert!(err.contains("expected one of `redact`, `mask`"), "{err}");
    }

    #[test]
    fn declared_connections_parse() {
        let config = load_str(
            r#"
[[connections]]
name = "pg"
command = ["psql"]
env = { PGPASSWORD = "x" }
reviewers = ["dba"]
access_modes = { connect = false }

[[connections.plugins]]
name = "slack"
config = { channels = ["C0123456789"] }
"#,
            &[],
        )
        .unwrap();
        let pg = &config.connections[0];
        assert_eq!(pg.kind, "command");
        assert_eq!(pg.access_modes.connect, Some(false));
        assert_eq!(pg.plugins[0].name, "slack");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let config = load_str(
            r#"
admin_token = "admin-token-0123456789-SECRET"
secret_key = "secret-key-0123456789abcdef0123456789-SECRET"
database_url = "postgres://hoop:db-pa55-SECRET@db/hoop"

[[connections]]
name = "pg"
command = ["psql"]
env = { PGPASSWORD = "pgpass-SECRET" }
"#,
            &[],
        )
        .unwrap();
        for debug in [format!("{config:?}"), format!("{config:#?}")] {
            assert!(!debug.contains("SECRET"), "{debug}");
            assert!(debug.contains("<redacted>"), "{debug}");
            assert!(debug.contains("PGPASSWORD"), "{debug}");
            assert!(debug.contains("postgres://hoop:***@db/hoop"), "{debug}");
        }
        let debug = format!("{:?}", config.connections[0]);
        assert!(!debug.contains("SECRET"), "{debug}");

        // Plugin deployment settings: names only.
        let settings = hoop_core::PluginConfig::from_value(serde_json::json!({
            "bot_token": "xoxb-SECRET",
            "default_channel": "C0123456789",
        }))
        .unwrap();
        let plugins = BTreeMap::from([("slack", settings)]);
        let debug = format!("{:?}", PluginSettingNames(&plugins));
        assert_eq!(
            debug,
            r#"{"slack": {"bot_token": <redacted>, "default_channel": <redacted>}}"#
        );
    }

    #[test]
    fn toml_errors_do_not_echo_the_line() {
        // An unterminated string: toml's own message quotes the whole line.
        let err = load_str(
            "listen = \"127.0.0.1:0\"\nadmin_token = \"supersecret-token-value\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("supersecret"), "{err}");
        assert!(err.contains("line 2, column "), "{err}");
        assert!(err.contains("admin_token"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");

        // A value of the wrong type: serde's message quotes the value.
        let err = load_str("secret_key = 1234567890123456789", &[])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("1234567890123456789"), "{err}");
        assert!(
            err.contains("line 1, column 14 (key `secret_key`)"),
            "{err}"
        );
        assert!(err.contains("expected a string"), "{err}");

        let err = load_str(
            "[[connections]]\nname = \"pg\"\nenv = { PGPASSWORD = 4242424242 }\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("4242424242"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("connections.env"), "{err}");

        let err = load_str("[connections.env]\nPGPASSWORD = \"oops\nx", &[])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("oops"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn tls_and_plaintext_keys() {
        let config = load_str("listen = \"0.0.0.0:8010\"\ninsecure_plaintext = true", &[]).unwrap();
        assert!(config.insecure_plaintext);
        assert!(config.server_identity().unwrap().is_none());

        let err = load_str("listen = \"0.0.0.0:8010\"", &[])
            .unwrap()
            .server_identity()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listen: 0.0.0.0:8010 is not a loopback address and TLS is off"),
            "{err}"
        );
        assert!(err.contains("insecure_plaintext = true"), "{err}");
        assert!(err.contains("tls_cert and tls_key"), "{err}");
        for listen in [
            "127.0.0.1:1",
            "127.1.2.3:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            let config = load_str("", &[("HOOP_LISTEN", listen)]).unwrap();
            assert!(config.server_identity().unwrap().is_none(), "{listen}");
        }
        let config = load_str(
            "",
            &[
                ("HOOP_LISTEN", "[::]:1"),
                ("HOOP_INSECURE_PLAINTEXT", "true"),
            ],
        )
        .unwrap();
        assert!(config.server_identity().unwrap().is_none());
        let err = load_str("", &[("HOOP_INSECURE_PLAINTEXT", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "HOOP_INSECURE_PLAINTEXT: insecure_plaintext: `maybe` is not a boolean"
            ),
            "{err}"
        );

        let err = load_str("tls_cert = \"cert.pem\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_cert: is set but tls_key is not"), "{err}");
        let err = load_str("", &[("HOOP_TLS_KEY", "key.pem")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("HOOP_TLS_KEY: tls_key: is set but tls_cert is not"),
            "{err}"
        );
    }

    #[test]
    fn bad_tls_files_are_named_without_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        // A key that is not the certificate's; its base64 body must never be shown.
        let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let body = other_key.lines().nth(1).unwrap().to_owned();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, &other_key).unwrap();
        let load = |cert: &Path, key: &Path| {
            let env = [
                ("HOOP_TLS_CERT".to_owned(), cert.display().to_string()),
                ("HOOP_TLS_KEY".to_owned(), key.display().to_string()),
            ];
            Config::load(None, env)
                .unwrap()
                .server_identity()
                .unwrap_err()
                .to_string()
        };

        let missing = dir.path().join("missing.pem");
        let err = load(&missing, &key);
        assert!(
            err.starts_with("HOOP_TLS_CERT: tls_cert: cannot read ") && err.contains("missing.pem"),
            "{err}"
        );

        // The key file given as the certificate: no certificate in it, and nothing of it shown.
        let err = load(&key, &key);
        assert!(
            err.starts_with("HOOP_TLS_CERT: tls_cert: no certificate in "),
            "{err}"
        );
        assert!(!err.contains(&body), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let err = load(&garbage, &key);
        assert!(
            err.contains("tls_cert: ") && err.contains("is not a valid PEM file"),
            "{err}"
        );

        // A certificate given as the key.
        let err = load(&cert, &cert);
        assert!(
            err.starts_with("HOOP_TLS_KEY: tls_key: no private key in "),
            "{err}"
        );

        // A key that is not the certificate's.
        let err = load(&cert, &key);
        assert!(
            err.contains("tls_key: the key in ")
                && err.contains("the private key does not match the certificate"),
            "{err}"
        );
        assert!(!err.contains(&body), "{err}");

        // The right pair loads.
        let good_key = dir.path().join("good.pem");
        std::fs::write(&good_key, generated.signing_key.serialize_pem()).unwrap();
        let env = [
            ("HOOP_TLS_CERT".to_owned(), cert.display().to_string()),
            ("HOOP_TLS_KEY".to_owned(), good_key.display().to_string()),
        ];
        let identity = Config::load(None, env)
            .unwrap()
            .server_identity()
            .unwrap()
            .unwrap();
        let debug = format!("{identity:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("PRIVATE KEY"),
            "{debug}"
        );
    }
}
