//! The dispatcher: claims due deliveries (a lease per gateway; `SKIP LOCKED` on PostgreSQL),
//! sends them concurrently, and records every attempt and what follows from it (success,
//! the next attempt of the schedule, failure, a disabled endpoint), in batches.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hoop_core::Cancellation;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::crypto::{secret_bytes, sign};
use crate::http::{Answer, Sender, Signed};
use crate::settings::Settings;
use crate::store::{Claimed, DeliveryStatus, Recorded, WebhookStore, from_ms, now_ms};

/// Most attempts in flight at once per gateway.
const MAX_IN_FLIGHT: usize = 256;
/// Most deliveries claimed at once.
const CLAIM_BATCH: usize = 256;
/// How long the dispatcher sleeps at most without a wake-up (other gateways' deliveries,
/// retries coming due).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The shortest pause between looks at the outbox.
const MIN_PAUSE: Duration = Duration::from_millis(5);
/// How long it waits after its database failed.
const RETRY_DB: Duration = Duration::from_secs(1);
/// How much longer than an attempt's timeout a claim lasts: an attempt cut short by a crash
/// is sent again once its lease has run out.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10 * 3600);

/// Wakes the dispatchers of this process: new deliveries, a redelivery, an endpoint enabled.
pub(crate) fn wake() {
    notifier().notify_waiters();
    notifier().notify_one();
}

fn notifier() -> &'static Notify {
    static WAKE: OnceLock<Notify> = OnceLock::new();
    WAKE.get_or_init(Notify::new)
}

/// An endpoint as the dispatcher needs it: its URL and signing keys (the current secret's,
/// then the previous one's while a rotation lasts).
#[derive(Clone)]
struct Target {
    url: String,
    keys: Vec<Vec<u8>>,
}

/// Loads the enabled endpoints with their keys.
async fn targets(
    store: &WebhookStore,
) -> Result<HashMap<String, Arc<Target>>, crate::WebhookError> {
    let now = now_ms();
    let mut out = HashMap::new();
    for row in store.endpoint_rows().await? {
        if !row.enabled {
            continue;
        }
        let mut keys = Vec::with_capacity(2);
        let current = store.key().open(&row.name, &row.secret)?;
        keys.push(secret_bytes(&String::from_utf8_lossy(&current))?);
        if let (Some(previous), Some(until)) = (&row.previous_secret, row.previous_secret_until)
            && until > now
        {
            let old = store.key().open(&row.name, previous)?;
            keys.push(secret_bytes(&String::from_utf8_lossy(&old))?);
        }
        out.insert(
            row.name.clone(),
            Arc::new(Target {
                url: row.url.clone(),
                keys,
            }),
        );
    }
    Ok(out)
}

/// Runs until `cancel` fires.
pub(crate) async fn run(
    store: WebhookStore,
    sender: Sender,
    settings: Settings,
    cancel: Cancellation,
) {
    let owner = format!("gw_{}", uuid::Uuid::new_v4().simple());
    let settings = Arc::new(settings);
    let sender = Arc::new(sender);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Recorded>();
    let recorder = tokio::spawn(record(
        store.clone(),
        owner.clone(),
        done_rx,
        cancel.clone(),
    ));
    let lease = settings.timeout + LEASE_MARGIN;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        // Register for a wake-up before looking, so one that lands meanwhile is not lost.
        let woken = notifier().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let free = permits.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => drop(permit),
                () = cancel.cancelled() => break,
            }
            continue;
        }
        // Look (a read) before claiming (a write): an idle dispatcher never takes the
        // database's write lock.
        let due = match store.next_due().await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "webhooks: cannot read the next due delivery");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_DB) => {}
                    () = cancel.cancelled() => break,
                }
                continue;
            }
        };
        let now = now_ms();
        let mut pause = match due {
            Some(at) if at > now => Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
                .clamp(MIN_PAUSE, IDLE_POLL),
            Some(_) => Duration::ZERO,
            None => IDLE_POLL,
        };
        if pause.is_zero() {
            let claimed = match claim(&store, &owner, lease, free).await {
                Ok(claimed) => claimed,
                Err(err) => {
                    tracing::warn!(error = %err, "webhooks: cannot claim deliveries; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_DB) => {}
                        () = cancel.cancelled() => break,
                    }
                    continue;
                }
            };
            // Nothing claimable after all (another gateway was faster): do not spin.
            pause = if claimed.is_empty() {
                MIN_PAUSE
            } else {
                Duration::ZERO
            };
            for (delivery, target) in claimed {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    break;
                };
                let sender = Arc::clone(&sender);
                let settings = Arc::clone(&settings);
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let recorded = attempt(&sender, &settings, &delivery, &target).await;
                    let _ = done.send(recorded);
                    drop(permit);
                });
            }
            if pause.is_zero() {
                continue;
            }
        }
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => break,
        }
    }
    drop(done_tx);
    // Attempts in flight finish and are recorded if the host waits long enough; otherwise
    // their leases run out and they are sent again (at least once).
    let _ = recorder.await;
}

/// Claims due deliveries and pairs each with its endpoint.
async fn claim(
    store: &WebhookStore,
    owner: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<(Claimed, Arc<Target>)>, crate::WebhookError> {
    let now = now_ms();
    let lease_until = now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let claimed = store
        .claim_due(owner, now, lease_until, u64::try_from(limit).unwrap_or(0))
        .await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let targets = targets(store).await?;
    Ok(claimed
        .into_iter()
        .filter_map(|c| {
            let target = targets.get(&c.endpoint).cloned()?;
            Some((c, target))
        })
        .collect())
}

/// Makes one attempt and decides what follows.
async fn attempt(
    sender: &Sender,
    settings: &Settings,
    delivery: &Claimed,
    target: &Target,
) -> Recorded {
    let timestamp = chrono::Utc::now().timestamp();
    let body = delivery.payload.as_bytes();
    let signature = target
        .keys
        .iter()
        .map(|key| sign(key, &delivery.id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ");
    let time_ms = now_ms();
    let answer = sender
        .send(
            &target.url,
            Signed {
                id: &delivery.id,
                timestamp,
                signature,
            },
            delivery.payload.clone(),
        )
        .await;
    outcome(settings, delivery, time_ms, answer)
}

/// What follows from an answer (see the crate docs for the rules).
fn outcome(settings: &Settings, delivery: &Claimed, time_ms: i64, answer: Answer) -> Recorded {
    let attempt = delivery.attempts.saturating_add(1);
    let mut recorded = Recorded {
        id: delivery.id.clone(),
        endpoint: delivery.endpoint.clone(),
        attempt,
        time_ms,
        status_code: answer.status.map(i32::from),
        latency_ms: i64::try_from(answer.latency.as_millis()).unwrap_or(i64::MAX),
        response: answer.body,
        error: answer.error,
        status: DeliveryStatus::Pending,
        next_attempt_ms: None,
        disable: None,
    };
    match answer.status {
        Some(code) if (200..300).contains(&code) => {
            recorded.status = DeliveryStatus::Succeeded;
            return recorded;
        }
        Some(410) => {
            recorded.status = DeliveryStatus::Failed;
            recorded.error = Some("the endpoint answered 410 Gone: it was disabled".to_owned());
            recorded.disable = Some(format!(
                "answered 410 Gone to event {} at {}",
                delivery.event_id,
                humantime::format_rfc3339_seconds(from_ms(time_ms))
            ));
            tracing::warn!(
                endpoint = %delivery.endpoint,
                event_id = delivery.event_id,
                "webhook endpoint answered 410 Gone: disabled"
            );
            return recorded;
        }
        Some(code) if recorded.error.is_none() => {
            recorded.error = Some(format!("HTTP {code}"));
        }
        _ => {}
    }
    let index = usize::try_from(attempt).unwrap_or(usize::MAX);
    match settings.retry_schedule.get(index) {
        Some(delay) => {
            let mut delay = jitter(*delay);
            if matches!(answer.status, Some(429 | 503))
                && let Some(after) = answer.retry_after
            {
                delay = delay.max(after.min(MAX_RETRY_AFTER));
            }
            recorded.next_attempt_ms =
                Some(time_ms + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        }
        None => {
            recorded.status = DeliveryStatus::Failed;
            // The one place this is told: the gateway's log.
            tracing::warn!(
                endpoint = %delivery.endpoint,
                event_id = delivery.event_id,
                webhook_id = %delivery.id,
                attempts = attempt,
                last_error = recorded.error.as_deref().unwrap_or_default(),
                "webhook.exhausted: every attempt failed; the delivery is failed (hoop webhooks redeliver sends it again)"
            );
        }
    }
    recorded
}

/// `delay` give or take 10 %.
fn jitter(delay: Duration) -> Duration {
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let spread = ms / 10;
    if spread == 0 {
        return delay;
    }
    let offset = crate::crypto::random_below(2 * spread + 1);
    Duration::from_millis(ms - spread + offset)
}

/// Writes outcomes as they come, in batches; retries a batch the database refused until it
/// is written (or the host stops: the leases then run out and the attempts are made again).
async fn record(
    store: WebhookStore,
    owner: String,
    mut done: mpsc::UnboundedReceiver<Recorded>,
    cancel: Cancellation,
) {
    while let Some(first) = done.recv().await {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match done.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        loop {
            match store.record(&owner, &batch).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "webhooks: cannot record attempts; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_DB) => {}
                        () = cancel.cancelled() => return,
                    }
                }
            }
        }
        if batch.iter().any(|r| r.status == DeliveryStatus::Pending) {
            wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(attempts: i32) -> Claimed {
        Claimed {
            id: "msg_1".into(),
            endpoint: "ops".into(),
            event_id: 7,
            payload: "{}".into(),
            attempts,
        }
    }

    fn answer(status: Option<u16>) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: String::new(),
            error: status.is_none().then(|| "connection refused".to_owned()),
            latency: Duration::from_millis(3),
        }
    }

    #[test]
    fn answers_decide_what_follows() {
        let settings = Settings::default();
        let ok = outcome(&settings, &claimed(0), 1000, answer(Some(204)));
        assert_eq!((ok.status, ok.attempt), (DeliveryStatus::Succeeded, 1));
        let retry = outcome(&settings, &claimed(0), 1000, answer(Some(500)));
        assert_eq!(retry.status, DeliveryStatus::Pending);
        // The second attempt comes 5 s later, give or take 10 %.
        let next = retry.next_attempt_ms.unwrap() - 1000;
        assert!((4500..=5500).contains(&next), "{next}");
        assert_eq!(retry.error.as_deref(), Some("HTTP 500"));
        let gone = outcome(&settings, &claimed(2), 1000, answer(Some(410)));
        assert_eq!(gone.status, DeliveryStatus::Failed);
        assert!(gone.disable.is_some());
        let redirect = outcome(&settings, &claimed(0), 1000, answer(Some(302)));
        assert_eq!(redirect.status, DeliveryStatus::Pending);
        let last = outcome(&settings, &claimed(7), 1000, answer(None));
        assert_eq!((last.status, last.attempt), (DeliveryStatus::Failed, 8));
        let mut busy = answer(Some(429));
        busy.retry_after = Some(Duration::from_secs(60));
        let later = outcome(&settings, &claimed(0), 0, busy);
        assert_eq!(later.next_attempt_ms, Some(60_000));
    }
}
