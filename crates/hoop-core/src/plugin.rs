//! The plugin contract: [`Plugin`] (the hooks) and [`PluginFactory`] (description, config
//! validation, construction).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{ConfigError, PluginConfig};
use crate::context::{Resources, SessionCtx};
use crate::deployment::{Deployment, StartError};
use crate::error::PluginError;
use crate::rows::ResultRows;
use crate::session::{Chunk, CloseReason, UserInfo};
use crate::verdict::Verdict;

/// A plugin built for one connection: hooks called for every session on it.
///
/// Every hook has a default that does nothing and allows; a plugin overrides the phases it
/// cares about. Hooks get `&self` (shared by all sessions of the connection) and the
/// session's [`SessionCtx`], where per-session state goes.
///
/// Returning `Err` from a hook fails the session closed: the chain stops and the session
/// ends with [`CloseReason::PluginFailed`].
#[async_trait]
pub trait Plugin: Send + Sync + Debug + 'static {
    /// The plugin's registry name.
    fn name(&self) -> &str;

    /// The session opens. Decide whether it may start.
    ///
    /// May be called again for the same session: after this plugin returned
    /// [`Verdict::Hold`], to know whether the hold is lifted, and for every plugin of the
    /// chain when a held session is asked again
    /// ([`ChainSession::open_waiting`](crate::ChainSession::open_waiting)). Keep per-session
    /// state in [`SessionCtx::extensions`] so a second call sees what the first did.
    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        let _ = cx;
        Ok(Verdict::Allow)
    }

    /// A chunk of input from the user, before it reaches the target. May be rewritten.
    async fn on_input(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let _ = (cx, chunk);
        Ok(Verdict::Allow)
    }

    /// A chunk of output from the target (stdout or stderr), before the user sees it. May be
    /// rewritten.
    async fn on_output(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let _ = (cx, chunk);
        Ok(Verdict::Allow)
    }

    /// Result rows of a database session (values of a query's result, an error's detail,
    /// rows of `COPY … TO STDOUT`), before the user sees them. Values may be rewritten;
    /// [`ResultColumn::masked`](crate::ResultColumn::masked) columns were masked by the
    /// connection's column rules already.
    ///
    /// Hosts that speak a database protocol call this for the values, then pass what the
    /// user sees (the rows rendered as text) through
    /// [`on_output`](Self::on_output) for recording; such output chunks are already masked.
    async fn on_rows(
        &self,
        cx: &mut SessionCtx,
        rows: &mut ResultRows,
    ) -> Result<Verdict, PluginError> {
        let _ = (cx, rows);
        Ok(Verdict::Allow)
    }

    /// How long this plugin may keep output it has been given without passing it on; `None`
    /// (the default) if it passes every chunk on at once.
    ///
    /// A plugin that holds bytes back (a masker waiting for the rest of a value that may
    /// continue in the next chunk) returns the longest quiet time it tolerates. When a
    /// stream's output has been quiet that long, and when the stream ends, the runtime
    /// calls [`on_output_flush`](Self::on_output_flush) so that nothing stays held.
    fn output_holdback(&self) -> Option<Duration> {
        None
    }

    /// Release what this plugin holds back of `chunk.stream`: append it to `chunk.data`
    /// (which arrives holding what the plugins before this one released). The chunk then
    /// goes through the `on_output` of the plugins after this one. Called only for plugins
    /// whose [`output_holdback`](Self::output_holdback) is `Some`.
    async fn on_output_flush(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let _ = (cx, chunk);
        Ok(Verdict::Allow)
    }

    /// The session closed. Runs exactly once per plugin of the chain, whatever happened:
    /// also when an earlier plugin denied the session (so this plugin's `on_open` may never
    /// have run) or when a hook failed. It cannot fail.
    async fn on_close(&self, cx: &mut SessionCtx, reason: &CloseReason) {
        let _ = (cx, reason);
    }
}

/// How a plugin gets onto connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachPolicy {
    /// On every connection, always; cannot be detached (e.g. `audit`).
    Required,
    /// On every connection, configured only through connection fields (e.g. `dlp` through
    /// `redact_types`); the plugin API may not attach, configure or detach it.
    ///
    /// The host builds the plugin's config from the connection: each of `fields` puts the
    /// value of its connection field under its config key (see [`ManagedField`]).
    Managed {
        /// The connection field that turns the plugin on (e.g. `reviewers`), which refusals
        /// to attach, configure or detach the plugin name as the one to set instead.
        field: &'static str,
        /// Every connection field the config is made of, `field` included.
        fields: &'static [ManagedField],
    },
    /// Attached to new connections; may be configured and detached (e.g. `slack`).
    Default,
    /// Attached only on request (e.g. `access_control`).
    Explicit,
}

impl AttachPolicy {
    /// Whether new connections get the plugin.
    pub fn attached_by_default(self) -> bool {
        !matches!(self, AttachPolicy::Explicit)
    }
}

/// One connection field of a [managed](AttachPolicy::Managed) plugin's config: the host
/// puts the field's value under `config_key`.
///
/// Hosts hand the value as JSON, as their API shows it: text as a string, lists as arrays,
/// counts as numbers, durations as whole milliseconds (so a duration's key ends in `_ms`).
/// A field the connection leaves unset is left out of the config, so the plugin's default
/// applies; an empty list is handed as `[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedField {
    /// The connection field, e.g. `access_max_duration`.
    pub connection_field: &'static str,
    /// The key of the plugin's config it becomes, e.g. `access_max_duration_ms`.
    pub config_key: &'static str,
}

impl ManagedField {
    /// The connection field `connection_field`, handed to the plugin as `config_key`.
    pub const fn new(connection_field: &'static str, config_key: &'static str) -> Self {
        Self {
            connection_field,
            config_key,
        }
    }

    /// A path into the plugin's config (as [`ConfigError::field_path`] says it, e.g.
    /// `reviewers[1]`) as a path into the connection (`reviewers[1]`), if it lies under this
    /// field's config key.
    pub fn connection_path(&self, config_path: &str) -> Option<String> {
        let rest = config_path.strip_prefix(self.config_key)?;
        (rest.is_empty() || rest.starts_with(['[', '.']))
            .then(|| format!("{}{rest}", self.connection_field))
    }
}

/// How far a plugin's session behaviour is implemented in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Implementation {
    /// Does everything its description says.
    Complete,
    /// Registered and configurable, but does not act on sessions yet; the text says what is
    /// missing.
    Pending(&'static str),
}

/// What a plugin is, for listings and for the rules of attaching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginDescriptor {
    /// Registry name: lower case, unique.
    pub name: &'static str,
    /// One line saying what the plugin does.
    pub description: &'static str,
    /// How the plugin is configured on a connection, in words.
    pub configuration: &'static str,
    /// An example config as JSON (`""` if the plugin takes none).
    pub example_config: &'static str,
    /// How the plugin gets onto connections.
    pub attach: AttachPolicy,
    /// Position in the chain: lower runs first. Access control runs at -300, review at
    /// -200, dlp at -100, most plugins at 0, audit last at 1000 so it records what the user
    /// saw.
    pub order: i16,
    /// How far its session behaviour is implemented.
    pub implementation: Implementation,
}

impl PluginDescriptor {
    /// A descriptor with the given name and description, attached explicitly, order 0,
    /// complete, taking no config. Adjust with the `with_*` methods.
    pub const fn new(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            configuration: "takes no configuration",
            example_config: "",
            attach: AttachPolicy::Explicit,
            order: 0,
            implementation: Implementation::Complete,
        }
    }

    /// Sets how the plugin is configured, in words, and an example config (JSON).
    pub const fn with_configuration(
        mut self,
        configuration: &'static str,
        example: &'static str,
    ) -> Self {
        self.configuration = configuration;
        self.example_config = example;
        self
    }

    /// Sets the attach policy.
    pub const fn with_attach(mut self, attach: AttachPolicy) -> Self {
        self.attach = attach;
        self
    }

    /// Sets the position in the chain.
    pub const fn with_order(mut self, order: i16) -> Self {
        self.order = order;
        self
    }

    /// Sets the implementation status.
    pub const fn with_implementation(mut self, implementation: Implementation) -> Self {
        self.implementation = implementation;
        self
    }
}

/// Whether a plugin attached to a connection runs on its sessions, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// Runs on every session; the text says what it does there.
    Active(String),
    /// Attached but does not run; the text says why and how to activate it.
    Inactive(String),
}

impl Activation {
    /// Whether the plugin runs.
    pub fn is_active(&self) -> bool {
        matches!(self, Activation::Active(_))
    }

    /// The explanation.
    pub fn status(&self) -> &str {
        match self {
            Activation::Active(s) | Activation::Inactive(s) => s,
        }
    }
}

/// Whether a user may see and use a connection, as far as one plugin attached to it says
/// ([`PluginFactory::admits`]).
///
/// A host lets a user see and use a connection when none of its attachments refuses them;
/// its administrators pass whatever the plugins say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The plugin does not restrict who sees the connection (most plugins).
    Unrestricted,
    /// The plugin restricts who sees the connection and lets this user in.
    Admitted,
    /// The plugin restricts who sees the connection and keeps this user out: to them the
    /// connection does not exist.
    Refused,
}

impl Admission {
    /// Whether the user may see and use the connection as far as this plugin says
    /// ([`Unrestricted`](Self::Unrestricted) or [`Admitted`](Self::Admitted)).
    pub fn lets_in(self) -> bool {
        !matches!(self, Admission::Refused)
    }
}

/// Describes a plugin, validates its per-connection config and builds it.
///
/// One factory per plugin crate, registered at compile time with
/// [`register_plugin!`](crate::register_plugin).
pub trait PluginFactory: Send + Sync + Debug + 'static {
    /// What the plugin is.
    fn descriptor(&self) -> &PluginDescriptor;

    /// Checks a config without building the plugin (and without any [`Resources`]). The
    /// default builds it with no resources and discards it: a plugin that needs resources
    /// must override this.
    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        self.build(config, &Resources::default()).map(drop)
    }

    /// Checks a config against what the host shares with plugins: settings of the
    /// deployment can widen or narrow what a config may say (e.g. info types defined in
    /// the gateway's config). Hosts call this rather than [`validate`](Self::validate)
    /// when they have the resources; the default is `validate`.
    fn validate_with(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<(), ConfigError> {
        let _ = resources;
        self.validate(config)
    }

    /// Whether a plugin with this (valid) config runs on sessions. Defaults to active.
    fn activation(&self, config: &PluginConfig) -> Activation {
        let _ = config;
        Activation::Active("runs on every session".to_owned())
    }

    /// Whether `user` may see and use a connection this plugin is attached to with `config`.
    ///
    /// Hosts ask every attachment of a connection before anything reaches the plugin chain
    /// (listings, lookups, opening sessions, reviews on it) and hide the connection from a
    /// user any attachment refuses; their administrators always pass. Attaching the plugin
    /// restricts the connection whether or not the attachment is active.
    ///
    /// The default is [`Admission::Unrestricted`]: most plugins do not decide who sees a
    /// connection. A plugin that does (e.g. `access_control`) overrides this.
    ///
    /// # Errors
    /// A [`ConfigError`] if the config does not parse or check. Hosts then fail closed: only
    /// their administrators may see and use the connection.
    fn admits(&self, config: &PluginConfig, user: &UserInfo) -> Result<Admission, ConfigError> {
        let _ = (config, user);
        Ok(Admission::Unrestricted)
    }

    /// Builds the plugin for one connection, with what the host shares with plugins.
    fn build(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError>;

    /// Checks the plugin's deployment settings (the host's `[plugins.<name>]` table) before
    /// anything starts. Errors name the key at fault.
    ///
    /// The default accepts only empty settings: a plugin that takes settings overrides this
    /// (parse them with [`PluginConfig::parse`] into a type with
    /// `#[serde(deny_unknown_fields)]`).
    fn validate_settings(&self, settings: &PluginConfig) -> Result<(), ConfigError> {
        match settings.as_map().keys().next() {
            None => Ok(()),
            Some(key) => Err(ConfigError::field(
                key.clone(),
                format!(
                    "unknown key: plugin `{}` takes no settings",
                    self.descriptor().name
                ),
            )),
        }
    }

    /// Starts the plugin's deployment-wide work, once, when the host starts: background
    /// tasks on the event log, listeners, timers. Spawn them with [`Deployment::spawn`] and
    /// end them when [`Deployment::cancellation`] fires. The settings were checked by
    /// [`validate_settings`](Self::validate_settings).
    ///
    /// The default does nothing: most plugins only act within sessions.
    fn start(&self, deployment: &Deployment) -> Result<(), StartError> {
        let _ = deployment;
        Ok(())
    }

    /// How the plugin's deployment-wide work is doing now (e.g. a connection to an outside
    /// service: connected, last error), in words, for the host's plugin listing; `None`
    /// (the default) when it has nothing to say. Never includes secrets.
    fn deployment_status(&self) -> Option<String> {
        None
    }

    /// The schema migrations of the plugin's own tables, in order; the host's migrator
    /// runs them after its own. The default: none.
    fn migrations(&self) -> &'static [PluginMigration] {
        &[]
    }
}

/// A schema migration a plugin ships for its own tables.
///
/// hoop-core knows no database, so the migration is type-erased: [`build`](Self::build)
/// returns it boxed as [`Any`](std::any::Any), and a host that runs sea-orm migrations (the
/// gateway) downcasts it to `Box<dyn sea_orm_migration::MigrationTrait>`. A plugin crate
/// that ships tables depends on `sea-orm-migration` (the same version as the host) and
/// writes:
///
/// ```text
/// static MIGRATIONS: &[PluginMigration] = &[PluginMigration::new(
///     "m20261203_000001_webhooks_outbox",
///     || Box::new(Box::new(outbox::Migration) as Box<dyn MigrationTrait>),
/// )];
/// ```
#[derive(Clone, Copy)]
pub struct PluginMigration {
    /// The migration's name, as the host records it once applied: unique across the host
    /// and every plugin (by convention `m<date>_<n>_<plugin>_<what>`), and never changed
    /// once shipped. It must equal the name the migration itself reports.
    pub name: &'static str,
    /// Builds the migration, boxed twice: `Box<Box<dyn MigrationTrait>>` as `Box<dyn Any>`.
    pub build: fn() -> Box<dyn std::any::Any + Send>,
}

impl PluginMigration {
    /// A migration named `name`, built by `build`.
    pub const fn new(name: &'static str, build: fn() -> Box<dyn std::any::Any + Send>) -> Self {
        Self { name, build }
    }
}

impl std::fmt::Debug for PluginMigration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMigration")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
