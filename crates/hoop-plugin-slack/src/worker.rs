//! The sender: reads the event log from the plugin's cursor and posts or updates Slack
//! messages. It never delays a session (it works after the fact, from the log); it retries
//! what may work later with backoff, waits as long as a 429's `Retry-After` says, and
//! saves its cursor only once an event is dealt with, so after a restart it goes on where
//! it left off. What it posted is in its table: a retried or replayed event never posts a
//! message twice in a channel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hoop_core::Deployment;
use hoop_core::events::{Event, EventFilter, types};
use serde_json::{Value, json};

use crate::Notify;
use crate::messages::{self, SessionClosed};
use crate::runtime::{Ctx, Failure, review_subject};
use crate::table;

/// The consumer name of the cursor.
pub(crate) const CONSUMER: &str = "slack";
/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest a `Retry-After` is honoured for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Key of the PostgreSQL advisory lock the sending gateway holds ("hoop_slk").
const SENDER_LOCK_KEY: i64 = 0x686f_6f70_5f73_6c6b;
/// How often a gateway that does not send tries to become the sender, and how often the
/// sender checks it still holds the lock.
const SENDER_CHECK: Duration = Duration::from_secs(2);

/// Runs until the host stops. On PostgreSQL, of the gateways sharing the database exactly
/// one sends at a time (it holds an advisory lock for as long as its connection lives);
/// the others wait to take over, reading nothing. Each event is then posted once, not once
/// per gateway.
pub(crate) async fn run(ctx: Arc<Ctx>, deployment: Deployment) {
    let cancel = deployment.cancellation();
    loop {
        let Some(lock) = SenderLock::acquire(&ctx.db, &cancel).await else {
            return;
        };
        tokio::select! {
            () = send(Arc::clone(&ctx), deployment.clone()) => return,
            () = lock.lost() => {
                tracing::warn!("slack: lost the sender lock (database connection); another gateway may send now");
            }
        }
    }
}

/// The right to send, held as a transaction-scoped advisory lock in a transaction left
/// open (it takes no snapshot between statements, so it holds nothing else back). SQLite
/// has one gateway: nothing to hold.
struct SenderLock(Option<sea_orm::DatabaseTransaction>);

impl SenderLock {
    /// Waits until this gateway may send; `None` if the host stopped first.
    async fn acquire(
        db: &sea_orm::DatabaseConnection,
        cancel: &hoop_core::Cancellation,
    ) -> Option<Self> {
        use sea_orm::{ConnectionTrait as _, TransactionTrait as _};
        if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Some(Self(None));
        }
        let mut waiting_logged = false;
        loop {
            let attempt = async {
                let txn = db.begin().await?;
                let row = txn
                    .query_one(sea_orm::Statement::from_string(
                        sea_orm::DatabaseBackend::Postgres,
                        format!("SELECT pg_try_advisory_xact_lock({SENDER_LOCK_KEY}) AS held"),
                    ))
                    .await?;
                let held = row
                    .map(|r| r.try_get::<bool>("", "held"))
                    .transpose()?
                    .unwrap_or(false);
                Ok::<_, sea_orm::DbErr>(held.then_some(txn))
            };
            match attempt.await {
                Ok(Some(txn)) => {
                    tracing::info!("slack: this gateway sends to Slack");
                    return Some(Self(Some(txn)));
                }
                Ok(None) => {
                    if !waiting_logged {
                        tracing::info!(
                            "slack: another gateway sends to Slack; this one takes over if it stops"
                        );
                        waiting_logged = true;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "slack: cannot take the sender lock; retrying")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(SENDER_CHECK) => {}
                () = cancel.cancelled() => return None,
            }
        }
    }

    /// Resolves when the lock is lost (its connection failed); never without one.
    async fn lost(&self) {
        use sea_orm::ConnectionTrait as _;
        let Some(txn) = &self.0 else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(SENDER_CHECK).await;
            if txn.execute_unprepared("SELECT 1").await.is_err() {
                return;
            }
        }
    }
}

/// Sends until the host stops.
async fn send(ctx: Arc<Ctx>, deployment: Deployment) {
    let cancel = deployment.cancellation();
    let filter = EventFilter::parse(["review.*", types::SESSION_OPENED, types::SESSION_CLOSED])
        .unwrap_or_default();
    let mut sub = loop {
        match deployment.subscribe(CONSUMER, filter.clone()).await {
            Ok(sub) => break sub,
            Err(err) => {
                tracing::warn!(error = %err, "slack: cannot read the event log; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    };
    loop {
        let next = tokio::select! {
            next = sub.next() => next,
            () = cancel.cancelled() => return,
        };
        let event = match next {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(error = %err, "slack: cannot read the event log; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = cancel.cancelled() => return,
                }
                continue;
            }
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            match handle(&ctx, &event).await {
                Ok(()) => break,
                Err(Failure::GiveUp(why)) => {
                    tracing::warn!(event = event.id, kind = %event.kind, %why, "slack: gave up on an event");
                    ctx.health.error(why);
                    break;
                }
                Err(Failure::Retry(after, why)) => {
                    let pause = match after {
                        Some(after) => after.min(MAX_RETRY_AFTER),
                        None => {
                            let pause = backoff;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            pause
                        }
                    };
                    tracing::info!(event = event.id, kind = %event.kind, %why, pause_ms = pause.as_millis() as u64, "slack: will retry");
                    ctx.health.error(why);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        // Stopped before it was dealt with: the cursor stays before it.
                        () = cancel.cancelled() => return,
                    }
                }
            }
        }
        if let Err(err) = deployment.save_cursor(CONSUMER, sub.cursor()).await {
            tracing::warn!(error = %err, "slack: cannot save its cursor");
        }
    }
}

fn text<'a>(data: &'a Value, key: &str) -> Option<&'a str> {
    data.get(key).and_then(Value::as_str)
}

async fn handle(ctx: &Ctx, event: &Event) -> Result<(), Failure> {
    let Some(connection) = event.connection.as_deref() else {
        return Ok(());
    };
    match event.kind.as_str() {
        types::SESSION_OPENED => session_opened(ctx, connection, event).await,
        types::SESSION_CLOSED => session_closed(ctx, connection, event).await,
        kind if kind.starts_with("review.") => {
            let Some(id) = text(&event.data, "review_id") else {
                return Ok(());
            };
            let Some(review) = ctx.reviews.review(id).await? else {
                return Ok(());
            };
            let channels = ctx.targets(&review.connection, Notify::Reviews).await?;
            if kind == types::REVIEW_CREATED {
                post_review(ctx, &review, &channels, event.time).await?;
            } else {
                ctx.refresh(&review.id).await?;
            }
            if !channels.is_empty()
                && (kind == types::REVIEW_APPROVED || kind == types::REVIEW_REJECTED)
            {
                tell_requester(ctx, &review).await?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Posts the review's message to every channel that does not have it yet.
async fn post_review(
    ctx: &Ctx,
    review: &hoop_core::ports::ReviewView,
    channels: &[String],
    time: SystemTime,
) -> Result<(), Failure> {
    if channels.is_empty() {
        return Ok(());
    }
    let subject = review_subject(&review.id);
    let posted = table::messages_of(&ctx.db, &subject).await?;
    let message = ctx.review_message(review).await?;
    for channel in channels {
        if posted.iter().any(|row| &row.channel == channel) {
            continue;
        }
        let mut body = message.clone();
        body["channel"] = json!(channel);
        let at = ctx.api.post_message(&body).await?;
        table::record(&ctx.db, &subject, channel, &at.ts, time.into()).await?;
        tracing::info!(review = %review.id, %channel, ts = %at.ts, "slack: review message posted");
    }
    Ok(())
}

/// A direct message to the requester once their review is approved or rejected: to the
/// Slack ID they set, else to the Slack user with their e-mail (`users.lookupByEmail`), if
/// Slack has one.
async fn tell_requester(ctx: &Ctx, review: &hoop_core::ports::ReviewView) -> Result<(), Failure> {
    let Some(requester) = ctx.directory.user(&review.requester).await? else {
        return Ok(());
    };
    let slack_id = match requester.slack_id.clone() {
        Some(id) => id,
        None if requester.email.is_empty() => return Ok(()),
        None => match ctx.api.user_by_email(&requester.email).await? {
            Some(id) => id,
            None => return Ok(()),
        },
    };
    let status = messages::status_line(review);
    let next = if review.status == "APPROVED" {
        if review.kind == "JIT" {
            format!("You can connect to `{}` now.", review.connection)
        } else {
            "A session waiting for it goes on; otherwise run the same command again.".to_owned()
        }
    } else {
        String::new()
    };
    let text = format!(
        "Your access review `{}` on `{}`: {status}. {next}",
        review.id, review.connection
    );
    ctx.api.direct_message(&slack_id, text.trim_end()).await?;
    Ok(())
}

fn session_subject(id: &str) -> String {
    format!("session:{id}")
}

fn session_closed_subject(id: &str) -> String {
    format!("session-closed:{id}")
}

async fn session_opened(ctx: &Ctx, connection: &str, event: &Event) -> Result<(), Failure> {
    let Some(id) = text(&event.data, "session_id") else {
        return Ok(());
    };
    let channels = ctx.targets(connection, Notify::Sessions).await?;
    if channels.is_empty() {
        return Ok(());
    }
    let subject = session_subject(id);
    let posted = table::messages_of(&ctx.db, &subject).await?;
    let user = event.user.as_deref().unwrap_or("-");
    let verb = text(&event.data, "verb").unwrap_or("-");
    let message = messages::session_opened(id, user, connection, verb);
    for channel in channels {
        if posted.iter().any(|row| row.channel == channel) {
            continue;
        }
        let mut body = message.clone();
        body["channel"] = json!(channel);
        let at = ctx.api.post_message(&body).await?;
        table::record(&ctx.db, &subject, &channel, &at.ts, event.time.into()).await?;
    }
    Ok(())
}

async fn session_closed(ctx: &Ctx, connection: &str, event: &Event) -> Result<(), Failure> {
    let Some(id) = text(&event.data, "session_id") else {
        return Ok(());
    };
    let channels = ctx.targets(connection, Notify::Sessions).await?;
    if channels.is_empty() {
        return Ok(());
    }
    let parents = table::messages_of(&ctx.db, &session_subject(id)).await?;
    let subject = session_closed_subject(id);
    let replied = table::messages_of(&ctx.db, &subject).await?;
    for channel in channels {
        if replied.iter().any(|row| row.channel == channel) {
            continue;
        }
        let parent = parents.iter().find(|row| row.channel == channel);
        let duration = parent.and_then(|p| {
            event
                .time
                .duration_since(SystemTime::from(p.subject_time))
                .ok()
        });
        let closed = SessionClosed {
            session_id: id,
            user: event.user.as_deref().unwrap_or("-"),
            connection,
            verb: text(&event.data, "verb").unwrap_or("-"),
            status: text(&event.data, "status").unwrap_or("-"),
            exit_code: event.data.get("exit_code").and_then(Value::as_i64),
            reason: text(&event.data, "reason").unwrap_or_default(),
            duration,
        };
        let mut body = messages::session_closed(&closed);
        body["channel"] = json!(channel);
        if let Some(parent) = parent {
            body["thread_ts"] = json!(parent.ts);
        }
        let at = ctx.api.post_message(&body).await?;
        table::record(&ctx.db, &subject, &channel, &at.ts, event.time.into()).await?;
    }
    Ok(())
}
