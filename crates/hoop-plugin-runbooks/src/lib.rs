//! The `runbooks` plugin: vetted, parameterised scripts kept in git repositories, run on a
//! connection as the user's own session.
//!
//! * **Repositories** come from the gateway's `[[plugins.runbooks.repositories]]` settings
//!   ([`Settings`]); each is fetched with the git CLI into a bare clone under the host's
//!   directory ([`RunbooksHost`]) when the plugin starts and again every `refresh`
//!   ([`Runbooks::keep_fresh`]). Runs use the commit of the last successful fetch; a failed
//!   fetch keeps it and its error shows in the plugin's status.
//! * **Runbook files** are `*.runbook.<ext>`: TOML front-matter between two `+++` lines
//!   (`description`, typed `[params.<name>]`), then a minijinja template ([`Runbook`]).
//!   `.runbook.sql` files write every value as an SQL literal, `.runbook.sh` files as a
//!   shell word, unless the template says otherwise with a filter (`sql_literal`,
//!   `sql_identifier`, `shell_quote`, or `raw` to opt out); see [`render`].
//! * **Runs** ([`Runbooks::run`]) check the parameters, render, and start the rendered script
//!   as an `exec` session's input through the host's
//!   [`SessionStarter`](hoop_core::ports::SessionStarter), marked with the runbook
//!   ([`hoop_core::RunbookRef`]): the host applies access mode `runbooks` and the whole
//!   plugin chain (access control, review, dlp, audit).
//! * **Per connection** the plugin is attached explicitly with
//!   `{"repositories": ["name"], "paths": ["glob"]}` ([`ConnectionConfig`]); in sessions it
//!   denies a runbook run the connection's config no longer offers.

#![warn(missing_docs, missing_debug_implementations)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use hoop_core::{
    Activation, AttachPolicy, ConfigError, Deployment, Plugin, PluginConfig, PluginDescriptor,
    PluginError, PluginFactory, Resources, SessionCtx, StartError, Verdict,
};

mod catalog;
mod error;
mod git;
pub mod glob;
pub mod render;
mod runbook;
mod settings;

pub use catalog::{Entry, RepositoryStatus, Run, RunRequest, Runbooks};
pub use error::Error;
pub use runbook::{
    MAX_FILE_BYTES, MAX_SCRIPT_BYTES, MAX_VALUE_BYTES, Param, ParamType, Runbook, is_runbook_path,
};
pub use settings::{
    ConnectionConfig, Credentials, DEFAULT_REFRESH, DEFAULT_TOKEN_USERNAME, MIN_REFRESH,
    Repository, Secret, Settings, TokenSource,
};

/// Registry name of the plugin.
pub const NAME: &str = "runbooks";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Runs parameterised scripts kept in git repositories as the user's own sessions.",
)
.with_configuration(
    "`repositories`: names of [[plugins.runbooks.repositories]] offered on this connection \
     (left out: all); `paths`: globs of runbook paths offered (left out: all)",
    r#"{"repositories":["ops"],"paths":["billing/**"]}"#,
)
.with_attach(AttachPolicy::Explicit)
.with_order(0);

/// What the host shares with the plugin (a [`Resources`] entry): the directory the
/// repositories are cloned into, and where the started plugin leaves its [`Runbooks`] for
/// the host's API.
#[derive(Debug)]
pub struct RunbooksHost {
    dir: PathBuf,
    runbooks: OnceLock<Arc<Runbooks>>,
}

impl RunbooksHost {
    /// Repositories will be cloned under `dir` (created, mode 0700, when the plugin starts).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            runbooks: OnceLock::new(),
        }
    }

    /// The started plugin's runbooks; `None` before it started.
    pub fn runbooks(&self) -> Option<Arc<Runbooks>> {
        self.runbooks.get().cloned()
    }
}

/// Factory of the runbooks plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunbooksFactory;

/// The runbooks plugin on one connection.
#[derive(Debug)]
pub struct RunbooksPlugin {
    config: ConnectionConfig,
}

impl RunbooksPlugin {
    /// What the connection offers.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }
}

#[async_trait]
impl Plugin for RunbooksPlugin {
    fn name(&self) -> &str {
        NAME
    }

    /// A runbook run the connection does not offer (any more: its config may have changed
    /// while the run waited for a review) is denied.
    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        if let Some(runbook) = &cx.info().request.runbook
            && !self.config.allows(&runbook.repository, &runbook.path)
        {
            return Ok(Verdict::deny(format!(
                "runbook `{}` of repository `{}` is not offered on this connection",
                runbook.path, runbook.repository
            )));
        }
        Ok(Verdict::Allow)
    }
}

fn known_repositories(resources: &Resources) -> Option<Vec<String>> {
    resources
        .get::<RunbooksHost>()
        .and_then(RunbooksHost::runbooks)
        .map(|r| r.repository_names())
}

impl PluginFactory for RunbooksFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        ConnectionConfig::parse(config, None).map(drop)
    }

    fn validate_with(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<(), ConfigError> {
        let known = known_repositories(resources);
        ConnectionConfig::parse(config, known.as_deref()).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match ConnectionConfig::parse(config, None) {
            Ok(c) => Activation::Active(match (&c.repositories, &c.paths) {
                (None, None) => "offers every runbook of every repository".to_owned(),
                (Some(r), None) => format!("offers the runbooks of {}", list_or_none(r)),
                (None, Some(p)) => format!(
                    "offers the runbooks matching {}",
                    list_or_none(&p.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>())
                ),
                (Some(r), Some(p)) => format!(
                    "offers the runbooks of {} matching {}",
                    list_or_none(r),
                    list_or_none(&p.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>())
                ),
            }),
            Err(e) => Activation::Inactive(format!("invalid config: {e}")),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        Ok(Arc::new(RunbooksPlugin {
            config: ConnectionConfig::parse(config, None)?,
        }))
    }

    fn validate_settings(&self, settings: &PluginConfig) -> Result<(), ConfigError> {
        Settings::parse(settings).map(drop)
    }

    fn start(&self, deployment: &Deployment) -> Result<(), StartError> {
        let settings = Settings::parse(deployment.settings())
            .map_err(|e| StartError::new(format!("settings: {e}")))?;
        let Some(host) = deployment.resources().get::<RunbooksHost>() else {
            if settings.repositories.is_empty() {
                // A host without runbooks support and nothing configured: nothing to do.
                return Ok(());
            }
            return Err(StartError::new(
                "the host shares no RunbooksHost (a directory for the repositories' clones)",
            ));
        };
        if !settings.repositories.is_empty() {
            create_private_dir(&host.dir).map_err(|e| {
                StartError::new(format!("cannot create {}: {e}", host.dir.display()))
            })?;
        }
        let starter = deployment.ports().starter.clone();
        let runbooks = Arc::new(Runbooks::new(&settings, &host.dir, starter));
        if host.runbooks.set(Arc::clone(&runbooks)).is_err() {
            return Err(StartError::new(
                "the runbooks plugin was started twice on one host",
            ));
        }
        deployment.spawn(runbooks.keep_fresh(deployment.cancellation()));
        Ok(())
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "nothing (an empty list)".to_owned()
    } else {
        items.join(", ")
    }
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The plugin's entry in hoop-core's compile-time registry (`&'static dyn PluginFactory`);
/// hosts reference it so the linker keeps the registration.
pub use registration::REGISTRATION;

#[allow(missing_docs)]
mod registration {
    hoop_core::register_plugin!(pub static REGISTRATION = super::RunbooksFactory);
}
