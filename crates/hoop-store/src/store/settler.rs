//! The writes of sessions' lives that nobody waits on the wire for — a session's end
//! ([`Store::finish_session_with`]) and the events it appends while it runs
//! ([`Store::append_session_events`]) — are tried at once, like any other write, and go to
//! one writer task per store when that fails because the database is busy.
//!
//! Tried at once, an end takes its turn with the starts being written at the same time: a
//! session that ended stops counting against its user's `running_sessions_per_user` as
//! soon as it can (queued behind a single writer while starts went straight in, ends fell
//! behind the starts of a user running many short sessions).
//!
//! The writer commits every write waiting for it in one transaction (group commit): a
//! thousand sessions ending at the same moment, past the pool's acquire timeout, take one
//! connection and a few transactions instead of being lost (an end used to be dropped and
//! its session left `open`). A batch that fails for a transient reason (no connection free
//! in time, the database busy or locked: [`StoreError::is_transient`]) is tried again with
//! backoff, for up to [`PATIENCE`]; one that fails for another reason is retried job by
//! job, so that one bad write does not sink the others. Retrying is safe: a transient
//! failure happens before the commit took effect, and settling a session is idempotent
//! (only an `open` session is settled).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use sea_orm::ColumnTrait;
use sea_orm::EntityTrait;
use sea_orm::QueryFilter;
use sea_orm::sea_query::Expr;
use tokio::sync::{mpsc, oneshot};

use super::sessions::{OPEN, closed_event, session_from};
use super::{Result, Store, to_json};
use crate::entity::session;
use crate::error::StoreError;
use crate::events::NewEvent;
use crate::model::{SessionEnd, SessionRecord};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer before submitters wait their turn.
const QUEUE: usize = 4096;
/// How long a batch failing for transient reasons is tried again.
pub(crate) const PATIENCE: Duration = Duration::from_secs(300);
/// First and longest pause between tries.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The store's writer: its queue, opened on first use.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    queue: OnceLock<mpsc::Sender<Job>>,
}

/// One write for the writer.
#[derive(Debug)]
enum Job {
    Finish {
        id: String,
        end: SessionEnd,
        extra: Vec<NewEvent>,
        /// The settled record, or `None` when the session was no longer `open`.
        reply: oneshot::Sender<Result<Option<SessionRecord>>>,
    },
    Append {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// What one job's write came to, inside a batch.
enum Done {
    Finished(Option<Box<SessionRecord>>),
    Appended,
}

impl Job {
    fn reply(self, result: Result<Done>) {
        match self {
            Self::Finish { reply, .. } => {
                let _ = reply.send(result.map(|done| match done {
                    Done::Finished(record) => record.map(|r| *r),
                    Done::Appended => None,
                }));
            }
            Self::Append { reply, .. } => {
                let _ = reply.send(result.map(|_| ()));
            }
        }
    }
}

impl Store {
    /// Settles a session's end: at once, and through the writer when the database is busy
    /// (see the module comment).
    pub(crate) async fn settle_end(
        &self,
        id: &str,
        end: &SessionEnd,
        extra: Vec<NewEvent>,
    ) -> Result<Option<SessionRecord>> {
        match self.write_end(id, end, &extra).await {
            Err(err) if err.is_transient() => {}
            other => return other,
        }
        let (reply, answer) = oneshot::channel();
        let job = Job::Finish {
            id: id.to_owned(),
            end: end.clone(),
            extra: extra.clone(),
            reply,
        };
        if self.submit(job).await
            && let Ok(result) = answer.await
        {
            return result;
        }
        // No writer (its runtime is gone): the write is done here.
        self.with_retries(|| self.write_end(id, end, &extra)).await
    }

    /// Appends a session's events: at once, and through the writer when the database is
    /// busy (see the module comment).
    pub(crate) async fn settle_events(&self, events: Vec<NewEvent>) -> Result<()> {
        match self.write_events(&events).await {
            Err(err) if err.is_transient() => {}
            other => return other,
        }
        let (reply, answer) = oneshot::channel();
        if self
            .submit(Job::Append {
                events: events.clone(),
                reply,
            })
            .await
            && let Ok(result) = answer.await
        {
            return result;
        }
        self.with_retries(|| self.write_events(&events)).await
    }

    /// One session end in a transaction of its own.
    async fn write_end(
        &self,
        id: &str,
        end: &SessionEnd,
        extra: &[NewEvent],
    ) -> Result<Option<SessionRecord>> {
        let txn = self.begin_with_write().await?;
        let mut events = Vec::new();
        let record = update_end(&txn, id, end, extra, &mut events).await?;
        self.commit_with_events(txn, events).await?;
        Ok(record)
    }

    /// Events on their own (one statement on SQLite, a transaction on PostgreSQL).
    async fn write_events(&self, events: &[NewEvent]) -> Result<()> {
        self.append_alone(events.to_vec()).await
    }

    /// Hands `job` to the writer, starting it on first use; `false` if there is none.
    async fn submit(&self, job: Job) -> bool {
        let queue = self.writer.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            // The writer's own handle has a writer of its own (never started): the task
            // ends once every other handle on the store is dropped.
            let mut worker = self.clone();
            worker.writer = Arc::new(Writer::default());
            worker.actor = None;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(worker.write_batches(rx));
            }
            tx
        });
        queue.send(job).await.is_ok()
    }

    /// The writer's loop: everything waiting, one transaction at a time.
    async fn write_batches(self, mut queue: mpsc::Receiver<Job>) {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.write_batch(batch).await;
        }
    }

    async fn write_batch(&self, batch: Vec<Job>) {
        match self.with_retries(|| self.try_batch(&batch)).await {
            Ok(done) => {
                for (job, done) in batch.into_iter().zip(done) {
                    job.reply(Ok(done));
                }
            }
            Err(err) if batch.len() > 1 && !err.is_transient() => {
                tracing::warn!(error = %err, jobs = batch.len(), "a batch of session writes failed: writing them one by one");
                for job in batch {
                    let result = self
                        .with_retries(|| self.try_batch(std::slice::from_ref(&job)))
                        .await
                        .and_then(|mut done| {
                            done.pop()
                                .ok_or_else(|| StoreError::Corrupt("empty batch".to_owned()))
                        });
                    job.reply(result);
                }
            }
            Err(err) => {
                let message = err.to_string();
                let mut first = Some(err);
                for job in batch {
                    let err = first
                        .take()
                        .unwrap_or_else(|| StoreError::Db(sea_orm::DbErr::Custom(message.clone())));
                    job.reply(Err(err));
                }
            }
        }
    }

    /// Writes `batch` in one transaction.
    async fn try_batch(&self, batch: &[Job]) -> Result<Vec<Done>> {
        let txn = self.begin_with_write().await?;
        let mut events = Vec::new();
        let mut done = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::Finish { id, end, extra, .. } => {
                    let record = update_end(&txn, id, end, extra, &mut events).await?;
                    done.push(Done::Finished(record.map(Box::new)));
                }
                Job::Append { events: more, .. } => {
                    events.extend(more.iter().cloned());
                    done.push(Done::Appended);
                }
            }
        }
        self.commit_with_events(txn, events).await?;
        Ok(done)
    }

    /// Runs `write` until it succeeds, fails for a reason that is not transient, or
    /// [`PATIENCE`] ran out, pausing between tries (doubling from 10 ms to 1 s).
    pub(crate) async fn with_retries<T, F, Fut>(&self, mut write: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let give_up = tokio::time::Instant::now() + PATIENCE;
        let mut pause = FIRST_BACKOFF;
        let mut tries = 0u32;
        loop {
            match write().await {
                Err(err) if err.is_transient() && tokio::time::Instant::now() < give_up => {
                    tries += 1;
                    if tries == 1 || tries.is_power_of_two() {
                        tracing::warn!(error = %err, tries, "the store is busy: trying the write again");
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
                other => return other,
            }
        }
    }
}

/// Settles session `id` inside `txn` if it is still `open`, adding its `session.closed` and
/// `extra` events to `events`; `None` if it was settled already.
async fn update_end(
    txn: &sea_orm::DatabaseTransaction,
    id: &str,
    end: &SessionEnd,
    extra: &[NewEvent],
    events: &mut Vec<NewEvent>,
) -> Result<Option<SessionRecord>> {
    let updated = session::Entity::update_many()
        .col_expr(session::Column::Status, Expr::value(end.status.clone()))
        .col_expr(session::Column::ExitCode, Expr::value(Some(end.exit_code)))
        .col_expr(session::Column::Reason, Expr::value(end.reason.clone()))
        .col_expr(session::Column::EndedAt, Expr::value(Some(Utc::now())))
        .col_expr(session::Column::BytesIn, Expr::value(end.bytes_in))
        .col_expr(session::Column::BytesOut, Expr::value(end.bytes_out))
        .col_expr(
            session::Column::Metrics,
            Expr::value(to_json(&end.metrics)?),
        )
        .col_expr(
            session::Column::Attributes,
            Expr::value(to_json(&end.attributes)?),
        )
        .filter(session::Column::Id.eq(id))
        // Settled once: a session another gateway already settled (its owner's lease ran
        // out meanwhile) keeps that ending, and gets no second `session.closed`.
        .filter(session::Column::Status.eq(OPEN))
        .exec_with_returning(txn)
        .await?;
    let Some(row) = updated.into_iter().next() else {
        return Ok(None);
    };
    let record = session_from(row)?;
    events.push(closed_event(&record));
    events.extend(extra.iter().cloned());
    Ok(Some(record))
}
