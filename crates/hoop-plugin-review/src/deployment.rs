//! What the review plugin does outside sessions, once per gateway: the expiry task (reviews
//! past their deadline become EXPIRED) and the grant watch (sessions running under a
//! time-based grant end when the grant is revoked, expires or runs out).
//!
//! Sessions under a grant are registered by the plugin when it lets them in and removed
//! when they close ([`LiveGrants`]). The watch reads `review.revoked` and `review.expired`
//! from the durable event log, so a revocation is never missed however busy the log is, and
//! keeps a local deadline per session as well, so a grant that runs out ends its sessions on
//! time even if its expiry could not be written.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hoop_core::events::{EventFilter, EventSource, Subscription, types};
use hoop_core::ports::SessionControl;
use hoop_core::{Cancellation, Deployment, StartError};

use crate::NAME;
use crate::desk::ReviewDesk;

/// The longest the expiry task sleeps: reviews created by other gateways on a shared
/// database may not wake it.
const EXPIRY_MAX_SLEEP: Duration = Duration::from_secs(60);
/// The shortest it sleeps between rounds, so a deadline it cannot clear never makes it spin.
const EXPIRY_MIN_SLEEP: Duration = Duration::from_millis(100);
/// How long it waits after the desk failed.
const EXPIRY_RETRY: Duration = Duration::from_secs(5);
/// How often the grant watch checks the local deadlines of the sessions it watches.
const DEADLINE_TICK: Duration = Duration::from_millis(250);

/// A session running under a time-based grant.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveGrant {
    review_id: String,
    ends: SystemTime,
}

/// The sessions running under time-based grants in this process, by session id.
#[derive(Debug, Default)]
pub(crate) struct LiveGrants(Mutex<BTreeMap<String, LiveGrant>>);

/// Every review plugin of the process registers here: sessions belong to the process, and
/// so does the one grant watch that ends them.
pub(crate) static LIVE_GRANTS: LiveGrants = LiveGrants(Mutex::new(BTreeMap::new()));

impl LiveGrants {
    pub(crate) fn add(&self, session_id: &str, review_id: &str, ends: SystemTime) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(
            session_id.to_owned(),
            LiveGrant {
                review_id: review_id.to_owned(),
                ends,
            },
        );
    }

    pub(crate) fn remove(&self, session_id: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(session_id);
    }

    /// The sessions under review `review_id`.
    fn under(&self, review_id: &str) -> Vec<String> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(_, g)| g.review_id == review_id)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// The sessions whose grant ended by `now`, with their review ids.
    fn ended_by(&self, now: SystemTime) -> Vec<(String, String)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(_, g)| g.ends <= now)
            .map(|(s, g)| (s.clone(), g.review_id.clone()))
            .collect()
    }
}

/// Starts the expiry task and the grant watch.
pub(crate) fn start(deployment: &Deployment, desk: Arc<dyn ReviewDesk>) -> Result<(), StartError> {
    let events = deployment.events()?;
    let sessions = deployment.sessions()?;
    deployment.spawn(run_expiry(
        desk,
        Arc::clone(&events),
        deployment.cancellation(),
    ));
    deployment.spawn(watch_grants(events, sessions, deployment.cancellation()));
    Ok(())
}

/// Expires reviews as their deadlines pass; woken early when a review is created or
/// approved (its deadline may be the next one).
async fn run_expiry(desk: Arc<dyn ReviewDesk>, events: Arc<dyn EventSource>, cancel: Cancellation) {
    let after = events.last_id().await.unwrap_or_default();
    let filter =
        EventFilter::parse([types::REVIEW_CREATED, types::REVIEW_APPROVED]).unwrap_or_default();
    let mut news = Subscription::new(events, after, filter);
    loop {
        let pause = match desk.expire_due().await {
            Ok(expired) => {
                for review in &expired {
                    tracing::info!(review = %review.id, reason = ?review.reason, "review expired");
                }
                match desk.next_deadline().await {
                    Ok(Some(at)) => at
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .clamp(EXPIRY_MIN_SLEEP, EXPIRY_MAX_SLEEP),
                    Ok(None) => EXPIRY_MAX_SLEEP,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot read the next review deadline");
                        EXPIRY_RETRY
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot expire reviews");
                EXPIRY_RETRY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            // A new deadline may be nearer: look again (the event itself is not needed).
            _ = news.next() => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// Ends the sessions of grants that are revoked, expire or run out.
async fn watch_grants(
    events: Arc<dyn EventSource>,
    sessions: Arc<dyn SessionControl>,
    cancel: Cancellation,
) {
    let after = events.last_id().await.unwrap_or_default();
    let filter =
        EventFilter::parse([types::REVIEW_REVOKED, types::REVIEW_EXPIRED]).unwrap_or_default();
    let mut ended = Subscription::new(events, after, filter);
    let mut tick = tokio::time::interval(DEADLINE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            next = ended.next() => match next {
                Ok(event) => {
                    let Some(id) = event.data.get("review_id").and_then(|v| v.as_str()) else {
                        continue;
                    };
                    let why = event
                        .data
                        .get("reason")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default();
                    let reason = if why.is_empty() {
                        format!("access review {id} ended")
                    } else {
                        format!("access review {id} ended: {why}")
                    };
                    for session in LIVE_GRANTS.under(id) {
                        end(&sessions, session, reason.clone());
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read review events; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = cancel.cancelled() => return,
                    }
                }
            },
            _ = tick.tick() => {
                for (session, id) in LIVE_GRANTS.ended_by(SystemTime::now()) {
                    end(&sessions, session, format!("access review {id} ended: access expired"));
                }
            }
            () = cancel.cancelled() => return,
        }
    }
}

/// Ends `session` on a task of its own (ending waits until the session is settled; the
/// watch goes on meanwhile).
fn end(sessions: &Arc<dyn SessionControl>, session: String, reason: String) {
    // Whatever happens, the watch is done with this session.
    LIVE_GRANTS.remove(&session);
    let sessions = Arc::clone(sessions);
    tokio::spawn(async move {
        match sessions.end_session(&session, NAME, &reason).await {
            Ok(true) => tracing::info!(%session, %reason, "session ended with its grant"),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%session, error = %err, "cannot end a session whose grant ended");
            }
        }
    });
}
