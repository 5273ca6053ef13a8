//! The `indexer` plugin: full-text search over what sessions showed.
//!
//! When a session's recording is finished (event `recording.finished`) on a connection with
//! `indexer` attached, the plugin reads the recording through the host's verified
//! [`RecordingReader`](hoop_core::ports::RecordingReader) (so what it indexes is what was
//! recorded: masked values stay masked) and adds one document per session to a
//! [tantivy](https://docs.rs/tantivy) index: the input and the output as two text fields
//! (each up to `[plugins.indexer] max_text_per_session`, with a `truncated` flag) and the
//! session's user, connection, verb, status, exit code, start time, duration and bytes as
//! fast fields. It reads the event log by cursor and saves the cursor only after the commit
//! that covers it; a session is indexed by replacing whatever the index held for its id, so
//! after a restart it catches up with nothing missed and nothing indexed twice. Commits are
//! batched (`commit_docs` sessions or `commit_interval`, whichever comes first).
//!
//! [`SearchIndex::search`] runs a query of the [`query`] language (free words, `"phrases"`,
//! typed qualifiers) within a [`Visibility`] the host computes for the caller, newest first
//! or by relevance, with up to three highlighted snippets per session. [`rebuild`] makes the
//! index again from the recordings (`hoop-gateway reindex`).

mod error;
mod index;
mod live;
pub mod query;
mod search;
mod settings;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hoop_core::{
    Activation, AttachPolicy, ConfigError, Deployment, Plugin, PluginConfig, PluginDescriptor,
    PluginFactory, Resources, StartError,
};

pub use crate::error::IndexerError;
pub use crate::index::{IndexedSession, SearchIndex, rebuild};
pub use crate::search::{Hit, MAX_SNIPPETS, Order, SearchPage, SearchRequest, Snippet, Visibility};
pub use crate::settings::{
    DEFAULT_COMMIT_DOCS, DEFAULT_COMMIT_INTERVAL, DEFAULT_MAX_TEXT, Settings, parse_size,
};

/// Registry name of the plugin.
pub const NAME: &str = "indexer";

/// The event-log consumer (and cursor) name of the live indexer.
pub const CONSUMER: &str = "indexer";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Indexes what the connection's sessions showed (after masking) for full-text search (SearchService / hoop search).",
)
.with_configuration(
    "`{}`: index this connection's sessions once their recording is finished; the gateway's \
     [plugins.indexer] settings set `max_text_per_session`",
    "{}",
)
.with_attach(AttachPolicy::Explicit);

/// What the host shares with the plugin: the directory of the index, and the index the
/// started plugin opens there, for the host's search API.
#[derive(Debug)]
pub struct IndexerHost {
    dir: PathBuf,
    index: OnceLock<Arc<SearchIndex>>,
}

impl IndexerHost {
    /// The index lives in `dir` (created when the plugin starts; the gateway:
    /// `<data_dir>/index`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            index: OnceLock::new(),
        }
    }

    /// The directory of the index.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index, opened once (by the started plugin, or by the first caller).
    ///
    /// # Errors
    /// [`IndexerError`] when the index cannot be opened.
    pub fn open(&self) -> Result<Arc<SearchIndex>, IndexerError> {
        if let Some(index) = self.index.get() {
            return Ok(Arc::clone(index));
        }
        let opened = Arc::new(SearchIndex::open(&self.dir)?);
        Ok(Arc::clone(self.index.get_or_init(|| opened)))
    }

    /// The index, if it was opened.
    pub fn index(&self) -> Option<Arc<SearchIndex>> {
        self.index.get().cloned()
    }
}

/// Factory of the indexer plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexerFactory;

/// The indexer on one connection: nothing within sessions (it works from the event log
/// once a recording is finished).
#[derive(Debug)]
pub struct IndexerPlugin;

impl Plugin for IndexerPlugin {
    fn name(&self) -> &str {
        NAME
    }
}

fn checked(config: &PluginConfig) -> Result<(), ConfigError> {
    if let Some(key) = config.as_map().keys().next() {
        return Err(ConfigError::field(
            key.clone(),
            "unknown key: the indexer takes no per-connection settings (use `{}`)",
        ));
    }
    Ok(())
}

impl PluginFactory for IndexerFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        checked(config)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match checked(config) {
            Ok(()) => Activation::Active(
                "indexes this connection's sessions when their recording is finished".to_owned(),
            ),
            Err(e) => Activation::Inactive(format!("invalid config: {e}")),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        checked(config)?;
        Ok(Arc::new(IndexerPlugin))
    }

    fn validate_settings(&self, settings: &PluginConfig) -> Result<(), ConfigError> {
        Settings::parse(settings).map(drop)
    }

    fn start(&self, deployment: &Deployment) -> Result<(), StartError> {
        let settings =
            Settings::parse(deployment.settings()).map_err(|e| StartError::new(e.to_string()))?;
        let Some(host) = deployment.resources().get::<IndexerHost>() else {
            // A host without a place for the index (an embedder): nothing to do.
            tracing::info!("indexer: the host offers no IndexerHost resource; not indexing");
            return Ok(());
        };
        let index = host
            .open()
            .map_err(|e| StartError::new(format!("cannot open the index: {e}")))?;
        let directory = deployment.directory()?;
        let recordings = deployment.recordings()?;
        deployment.events()?;
        deployment.cursors()?;
        deployment.spawn(live::run(
            deployment.clone(),
            index,
            settings,
            directory,
            recordings,
        ));
        Ok(())
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = IndexerFactory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_configs_are_empty() {
        assert!(IndexerFactory.validate(&PluginConfig::empty()).is_ok());
        assert!(
            IndexerFactory
                .activation(&PluginConfig::empty())
                .is_active()
        );
        let bad = PluginConfig::from_value(serde_json::json!({"fields": ["x"]})).unwrap();
        assert_eq!(
            IndexerFactory.validate(&bad).unwrap_err().field_path(),
            Some("fields")
        );
    }
}
