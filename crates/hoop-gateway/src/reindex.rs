//! `hoop-gateway reindex`: rebuilds the search index from the recordings.

use std::io::IsTerminal as _;
use std::sync::Arc;

use anyhow::Context;
use hoop_core::ports::SessionSummary;
use hoop_plugin_audit::recording::{FsRecordingStore, RecordingStore};
use hoop_plugin_indexer::{CONSUMER, IndexerHost, NAME, Settings};
use hoop_store::{SessionFilter, Store};

use crate::config::Config;
use crate::events::{StoreEvents, StoreRecordings, session_summary};
use crate::grpc::search::INDEX_DIR;
use crate::server::{RECORDINGS_DIR, open_store};

/// Sessions read from the store per page.
const PAGE: u64 = 1000;

/// Every ended session on a connection that has `indexer` attached now.
async fn sessions_to_index(store: &Store) -> anyhow::Result<Vec<SessionSummary>> {
    let mut connections = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_connections(after.as_deref(), PAGE).await?;
        let done = (page.len() as u64) < PAGE;
        after = page.last().map(|c| c.name.clone());
        for conn in page {
            let attachments = store.list_attachments(&conn.name).await?;
            if attachments.iter().any(|a| a.plugin == NAME) {
                connections.push(conn.name);
            }
        }
        if done {
            break;
        }
    }
    let mut sessions = Vec::new();
    for connection in connections {
        let filter = SessionFilter {
            connection: Some(connection),
            ..SessionFilter::default()
        };
        let mut after = None;
        loop {
            let page = store.list_sessions(&filter, after, PAGE).await?;
            let done = (page.len() as u64) < PAGE;
            after = page.last().map(|s| (s.started_at, s.id.clone()));
            sessions.extend(
                page.iter()
                    .filter(|s| s.status != "open")
                    .map(session_summary),
            );
            if done {
                break;
            }
        }
    }
    Ok(sessions)
}

/// Rebuilds `<data_dir>/index` from the recordings of every ended session on the
/// connections with `indexer` attached, then sets the live indexer's cursor to where the
/// log stood when the rebuild began (later events are indexed by the gateway; indexing a
/// session again replaces it).
pub(crate) async fn reindex(config: Config) -> anyhow::Result<()> {
    let settings = Settings::parse(&config.plugins.get(NAME).cloned().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("plugins.indexer.{e}"))?;
    let store = open_store(&config).await?;
    let dir = config.data_dir.clone();
    let host = IndexerHost::new(dir.join(INDEX_DIR));
    let index = host.open().context("cannot open the search index")?;
    // Fails at once while a gateway serves (it holds the index's writer lock).
    index.lock_for_writing()?;
    let events = StoreEvents::new(store.clone());
    let start = hoop_core::events::EventSource::last_id(&events)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the event log: {e}"))?;
    let sessions = sessions_to_index(&store).await?;
    let recordings: Arc<dyn RecordingStore> =
        Arc::new(FsRecordingStore::new(dir.join(RECORDINGS_DIR)));
    let reader = StoreRecordings::new(store.clone(), recordings);
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(sessions.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} indexing sessions [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let (indexed, skipped) = hoop_plugin_indexer::rebuild(
        &index,
        &sessions,
        &reader,
        settings.max_text_per_session,
        |done| bar.set_position(done),
    )
    .await?;
    bar.finish_and_clear();
    hoop_core::events::CursorStore::save(&events, CONSUMER, start)
        .await
        .map_err(|e| anyhow::anyhow!("cannot save the indexer's cursor: {e}"))?;
    println!(
        "reindexed {indexed} sessions ({skipped} without a readable recording) into {}",
        host.dir().display()
    );
    store.db().clone().close().await.ok();
    Ok(())
}
