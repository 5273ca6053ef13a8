//! The live indexer: reads `recording.finished` from the event log by cursor and indexes
//! each session of a connection with `indexer` attached, committing in batches and saving
//! the cursor only after the commit that covers it.
//!
//! While the indexer is attached to no connection, every event would be passed over: rather
//! than read each one (and look up its connection's attachments), the loop *rests*. It looks
//! whether the indexer is attached anywhere once per [`IDLE_LOOK`], and after each look that
//! finds it attached nowhere moves its cursor to where the log ended before that look. An
//! event appended after the indexer is attached is never passed over: the log's end is read
//! before the attachments, so a look that finds none comes after every event it skips, and
//! those events are of sessions that ended while the indexer was attached nowhere (which it
//! would not have indexed either).

use std::sync::Arc;
use std::time::Duration;

use hoop_core::events::{EventFilter, EventSource, Subscription, types};
use hoop_core::ports::{Directory, PortError, RecordingReader};
use hoop_core::{Cancellation, Deployment};
use tokio::time::Instant;

use crate::index::SearchIndex;
use crate::settings::Settings;
use crate::{CONSUMER, NAME};

/// How long to wait before trying again after a port or the index failed.
const RETRY: Duration = Duration::from_secs(1);

/// While the indexer is attached nowhere, how often it looks again.
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// Where the loop stands between commits.
struct Batch {
    /// Sessions added since the last commit.
    docs: usize,
    /// The cursor to save with the next commit (events dealt with since the last one).
    cursor: Option<u64>,
    /// When the batch must be committed.
    deadline: Option<Instant>,
}

pub(crate) async fn run(
    deployment: Deployment,
    index: Arc<SearchIndex>,
    settings: Settings,
    directory: Arc<dyn Directory>,
    recordings: Arc<dyn RecordingReader>,
) {
    let cancel = deployment.cancellation();
    let Ok(filter) = EventFilter::parse([types::RECORDING_FINISHED]) else {
        return;
    };
    // The writer's lock: another process (a reindex) may hold it for a while.
    loop {
        let locked = {
            let index = Arc::clone(&index);
            tokio::task::spawn_blocking(move || index.lock_for_writing()).await
        };
        match locked {
            Ok(Ok(())) => break,
            Ok(Err(err)) => tracing::warn!(error = %err, "indexer: cannot write the index yet"),
            Err(err) => tracing::error!(error = %err, "indexer: cannot take the index lock"),
        }
        if wait(&cancel, Duration::from_secs(5)).await {
            return;
        }
    }
    let mut sub = loop {
        // A first start reads the log from its beginning (what retention kept): sessions
        // that ended before, on connections with the indexer attached, are indexed too.
        let first = match deployment.cursors() {
            Ok(cursors) => match cursors.load(CONSUMER).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => cursors.save(CONSUMER, 0).await,
                Err(err) => Err(err),
            },
            Err(err) => Err(PortError::Unavailable(err.to_string())),
        };
        let subscribed = match first {
            Ok(()) => deployment.subscribe(CONSUMER, filter.clone()).await,
            Err(err) => Err(err),
        };
        match subscribed {
            Ok(sub) => break sub,
            Err(err) => tracing::warn!(error = %err, "indexer: cannot read the event log yet"),
        }
        if wait(&cancel, RETRY).await {
            return;
        }
    };
    tracing::info!(
        cursor = sub.cursor(),
        "indexer: indexing finished recordings"
    );
    let mut batch = Batch {
        docs: 0,
        cursor: None,
        deadline: None,
    };
    let source = deployment.events().ok();
    // Whether to look for an attachment before reading on (at start: not looked yet), and
    // when the last look was.
    let mut rest = true;
    let mut last_look = Instant::now();
    loop {
        if rest && let Some(source) = &source {
            rest = false;
            // What is indexed becomes searchable now, not after a rest of unknown length.
            if batch.docs > 0 {
                flush(&deployment, &index, &mut batch, &cancel).await;
            }
            last_look = Instant::now();
            match skip_while_attached_nowhere(source, &*directory, &cancel).await {
                Rested::Cancelled(end) => {
                    note_skip(&mut batch, end, sub.cursor(), &settings);
                    break;
                }
                Rested::Over(end) => {
                    if let Some(end) = end.filter(|end| *end > sub.cursor()) {
                        sub = Subscription::new(Arc::clone(source), end, filter.clone());
                        note_skip(&mut batch, Some(end), 0, &settings);
                    }
                }
            }
        }
        let due = batch.deadline;
        tokio::select! {
            () = cancel.cancelled() => break,
            () = sleep_until(due), if due.is_some() => {
                flush(&deployment, &index, &mut batch, &cancel).await;
            }
            next = sub.next() => match next {
                Ok(event) => {
                    let Some(session_id) = event.data.get("session_id").and_then(|v| v.as_str()) else {
                        continue;
                    };
                    let session_id = session_id.to_owned();
                    let connection = event.connection.clone().unwrap_or_default();
                    let docs = batch.docs;
                    if !index_one(&index, &settings, &*directory, &*recordings, &connection, &session_id, &cancel, &mut batch).await {
                        // Cancelled while retrying: the event is not dealt with.
                        break;
                    }
                    // Passed over: perhaps the indexer is attached nowhere now (looked at
                    // most once per `IDLE_LOOK`).
                    rest = batch.docs == docs && last_look.elapsed() >= IDLE_LOOK;
                    batch.cursor = Some(sub.cursor());
                    if batch.deadline.is_none() {
                        batch.deadline = Some(Instant::now() + settings.commit_interval);
                    }
                    if batch.docs >= settings.commit_docs {
                        flush(&deployment, &index, &mut batch, &cancel).await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "indexer: cannot read the event log");
                    if wait(&cancel, RETRY).await {
                        break;
                    }
                }
            }
        }
    }
    // Stopping: what was indexed is committed, and the cursor saved with it.
    if batch.cursor.is_some() {
        flush(&deployment, &index, &mut batch, &Cancellation::never()).await;
    }
}

/// How a rest ended: with the log position it skipped to, if any.
enum Rested {
    /// The indexer is attached somewhere (or the log or the attachments cannot be read:
    /// events are then read one by one as usual).
    Over(Option<u64>),
    Cancelled(Option<u64>),
}

/// Rests while the indexer is attached nowhere (see the module docs).
async fn skip_while_attached_nowhere(
    source: &Arc<dyn EventSource>,
    directory: &dyn Directory,
    cancel: &Cancellation,
) -> Rested {
    let mut skipped = None;
    loop {
        let Ok(end) = source.last_id().await else {
            return Rested::Over(skipped);
        };
        match directory.plugin_attached_anywhere(NAME).await {
            Ok(false) => skipped = Some(end),
            Ok(true) | Err(_) => return Rested::Over(skipped),
        }
        if wait(cancel, IDLE_LOOK).await {
            return Rested::Cancelled(skipped);
        }
    }
}

/// Makes the batch save `end` as the cursor (nothing to commit for it), if it is past
/// `cursor`.
fn note_skip(batch: &mut Batch, end: Option<u64>, cursor: u64, settings: &Settings) {
    if let Some(end) = end.filter(|end| *end > cursor) {
        batch.cursor = Some(end);
        if batch.deadline.is_none() {
            batch.deadline = Some(Instant::now() + settings.commit_interval);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits `d`, or until cancelled: returns whether it was cancelled.
async fn wait(cancel: &Cancellation, d: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

/// Commits the batch, then saves its cursor; retried until it works (or the stop, for the
/// commit, which then leaves the cursor where the last commit left it).
async fn flush(
    deployment: &Deployment,
    index: &Arc<SearchIndex>,
    batch: &mut Batch,
    cancel: &Cancellation,
) {
    if batch.docs > 0 {
        loop {
            let committed = {
                let index = Arc::clone(index);
                tokio::task::spawn_blocking(move || index.commit()).await
            };
            match committed {
                Ok(Ok(())) => break,
                Ok(Err(err)) => tracing::error!(error = %err, "indexer: cannot commit the index"),
                Err(err) => tracing::error!(error = %err, "indexer: the commit failed"),
            }
            if wait(cancel, RETRY).await {
                return;
            }
        }
        tracing::debug!(sessions = batch.docs, "indexer: committed");
    }
    if let Some(cursor) = batch.cursor {
        loop {
            match deployment.save_cursor(CONSUMER, cursor).await {
                Ok(()) => break,
                Err(err) => tracing::warn!(error = %err, "indexer: cannot save the cursor"),
            }
            if wait(cancel, RETRY).await {
                return;
            }
        }
    }
    *batch = Batch {
        docs: 0,
        cursor: None,
        deadline: None,
    };
}

/// Indexes one finished session if its connection has the indexer attached. Returns
/// `false` if cancelled before it was dealt with.
#[allow(clippy::too_many_arguments)]
async fn index_one(
    index: &SearchIndex,
    settings: &Settings,
    directory: &dyn Directory,
    recordings: &dyn RecordingReader,
    connection: &str,
    session_id: &str,
    cancel: &Cancellation,
    batch: &mut Batch,
) -> bool {
    loop {
        match try_index(
            index, settings, directory, recordings, connection, session_id,
        )
        .await
        {
            Ok(added) => {
                if added {
                    batch.docs += 1;
                }
                return true;
            }
            Err(err) => {
                tracing::warn!(session = %session_id, error = %err, "indexer: cannot index the session yet; trying again");
                if wait(cancel, RETRY).await {
                    return false;
                }
            }
        }
    }
}

/// `Ok(true)` when the session was added, `Ok(false)` when there is nothing to index;
/// `Err` for a failure worth retrying.
async fn try_index(
    index: &SearchIndex,
    settings: &Settings,
    directory: &dyn Directory,
    recordings: &dyn RecordingReader,
    connection: &str,
    session_id: &str,
) -> Result<bool, String> {
    match directory.plugin_config(connection, NAME).await {
        Ok(Some(_)) => {}
        Ok(None) => return Ok(false),
        Err(err) => return Err(err.to_string()),
    }
    let session = match directory.session(session_id).await {
        Ok(Some(session)) => session,
        Ok(None) => return Ok(false),
        Err(err) => return Err(err.to_string()),
    };
    let doc = match index
        .read_session(&session, recordings, settings.max_text_per_session)
        .await
    {
        Ok(Some(doc)) => doc,
        Ok(None) => return Ok(false),
        Err(PortError::Corrupt(message)) => {
            tracing::warn!(session = %session_id, %message, "indexer: the recording does not verify; not indexed");
            return Ok(false);
        }
        Err(err) => return Err(err.to_string()),
    };
    index.add(doc).map_err(|e| e.to_string())?;
    Ok(true)
}
