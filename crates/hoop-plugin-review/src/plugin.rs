//! The plugin's session behaviour: the one-time (`exec`) and time-based (`connect`) flows.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hoop_core::events::{EventFilter, EventSource, EventWatch, types};
use hoop_core::{
    CloseReason, HoldRequest, HoldWatch, Plugin, PluginError, SessionCtx, SessionInfo, Verb,
    Verdict,
};

use crate::deployment::LIVE_GRANTS;
use crate::desk::{
    DeskError, NewReview, ReviewDesk, ReviewKind, ReviewRecord, ReviewStatus, input_sha256,
};
use crate::{APPROVED_BY_ATTRIBUTE, GRANT_ENDS_AT_ATTRIBUTE, ID_ATTRIBUTE, NAME, ReviewConfig};

/// The review plugin on one connection.
#[derive(Debug)]
pub struct ReviewPlugin {
    reviewers: Vec<String>,
    min_approvals: Option<u32>,
    access_max: Duration,
    desk: Arc<dyn ReviewDesk>,
    /// The event log, if the host has one: a held session waits for its review's next
    /// event instead of asking again after a while.
    events: Option<Arc<dyn EventSource>>,
}

/// Per-session state: the review this plugin created for the session (it is held on it).
#[derive(Debug)]
struct Requested(String);

impl ReviewPlugin {
    /// The plugin for a connection with this (checked) config, keeping reviews in `desk`.
    pub fn new(config: ReviewConfig, desk: Arc<dyn ReviewDesk>) -> Self {
        let access_max = config.access_max_duration();
        Self {
            reviewers: config.reviewers,
            min_approvals: config.min_approvals,
            access_max,
            desk,
            events: None,
        }
    }

    /// Lets held sessions wait on `events` for their review's next event.
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn EventSource>) -> Self {
        self.events = Some(events);
        self
    }

    /// Where the event log stands now: taken before a review is read, so that a watch from
    /// there sees any change made after the read.
    async fn log_position(&self) -> Option<u64> {
        let events = self.events.as_ref()?;
        match events.last_id().await {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::warn!(error = %err, "event log unreadable: held sessions re-check on a timer");
                None
            }
        }
    }

    /// What a session held on review `id` waits for: the review's next event after `after`.
    fn watch(&self, id: &str, after: Option<u64>) -> Option<Arc<dyn HoldWatch>> {
        let events = Arc::clone(self.events.as_ref()?);
        let filter = EventFilter::parse(["review.*"]).ok()?;
        let id = id.to_owned();
        // `after` is read before the review is created (a decision cannot slip between the
        // two), so the review's own creation is in the watched range: it changes nothing.
        Some(Arc::new(EventWatch::new(
            events,
            after?,
            filter,
            move |event| {
                event.kind != types::REVIEW_CREATED
                    && event.data.get("review_id").and_then(|v| v.as_str()) == Some(id.as_str())
            },
        )))
    }

    /// The reviewer groups.
    pub fn reviewers(&self) -> &[String] {
        &self.reviewers
    }

    /// How many approvals a review needs, if the connection says.
    pub fn min_approvals(&self) -> Option<u32> {
        self.min_approvals
    }

    /// The longest time-based grant on the connection.
    pub fn access_max_duration(&self) -> Duration {
        self.access_max
    }

    // ---- exec: one-time reviews -------------------------------------------------------

    async fn open_exec(
        &self,
        cx: &mut SessionCtx,
        info: &SessionInfo,
    ) -> Result<Verdict, PluginError> {
        let position = self.log_position().await;
        if let Some(Requested(id)) = cx.extensions.get::<Requested>() {
            let id = id.clone();
            return match self.get(&id).await? {
                Some(record) => {
                    self.decide_one_time(cx, info, record, false, position)
                        .await
                }
                None => Ok(Verdict::deny(format!("review {id} no longer exists"))),
            };
        }
        if let Some(ticket) = &info.request.ticket {
            return match self.get(ticket).await? {
                Some(record) => self.decide_one_time(cx, info, record, true, position).await,
                None => Ok(Verdict::deny(format!("review {ticket} does not exist"))),
            };
        }
        let input = info.request.input.clone().unwrap_or_default();
        let request = NewReview {
            kind: ReviewKind::OneTime,
            connection: info.connection.name.clone(),
            requester: info.user.name.clone(),
            session_id: info.id.to_string(),
            verb: info.verb,
            input_sha256: Some(input_sha256(&input)),
            input: Some(input),
            args: info.request.args.clone(),
            groups: self.reviewers.clone(),
            min_approvals: self.min_approvals,
            access_duration: None,
        };
        let record = match self.create(request).await? {
            Ok(record) => record,
            Err(refusal) => return Ok(refusal),
        };
        cx.extensions.insert(Requested(record.id.clone()));
        self.decide_one_time(cx, info, record, false, position)
            .await
    }

    /// What a one-time review means for this `exec`. `presented`: the client named it as a
    /// ticket (a pending ticket is refused rather than waited for).
    async fn decide_one_time(
        &self,
        cx: &mut SessionCtx,
        info: &SessionInfo,
        record: ReviewRecord,
        presented: bool,
        position: Option<u64>,
    ) -> Result<Verdict, PluginError> {
        if let Some(reason) = identity_mismatch(info, &record, ReviewKind::OneTime) {
            return Ok(Verdict::deny(reason));
        }
        match record.status {
            ReviewStatus::Pending if !presented => Ok(hold(
                &record,
                &self.reviewers,
                self.watch(&record.id, position),
            )),
            ReviewStatus::Approved => match content_mismatch(info, &record) {
                Some(reason) => Ok(Verdict::deny(reason)),
                None => self.claim(cx, info, &record.id).await,
            },
            // This session already claimed it (asked again after the claim): still its own.
            ReviewStatus::Executed if record.session_id.as_deref() == Some(info.id.as_str()) => {
                match content_mismatch(info, &record) {
                    Some(reason) => Ok(Verdict::deny(reason)),
                    None => Ok(admit(cx, &record)),
                }
            }
            _ => Ok(Verdict::deny(record.refusal())),
        }
    }

    async fn claim(
        &self,
        cx: &mut SessionCtx,
        info: &SessionInfo,
        id: &str,
    ) -> Result<Verdict, PluginError> {
        match self.desk.claim(id, info.id.as_str()).await {
            Ok(record) => Ok(admit(cx, &record)),
            Err(DeskError::Conflict(message)) => {
                // Someone else won (or the review changed): say what it is now.
                Ok(match self.get(id).await? {
                    Some(now) if now.status != ReviewStatus::Approved => {
                        Verdict::deny(now.refusal())
                    }
                    _ => Verdict::deny(format!("review {id} could not be claimed: {message}")),
                })
            }
            Err(DeskError::NotFound(_)) => {
                Ok(Verdict::deny(format!("review {id} no longer exists")))
            }
            Err(err) => Err(desk_failed(format!("claiming review {id}"), err)),
        }
    }

    // ---- connect: time-based grants ---------------------------------------------------

    async fn open_connect(
        &self,
        cx: &mut SessionCtx,
        info: &SessionInfo,
    ) -> Result<Verdict, PluginError> {
        if let Some(ticket) = &info.request.ticket {
            let Some(record) = self.get(ticket).await? else {
                return Ok(Verdict::deny(format!("review {ticket} does not exist")));
            };
            if let Some(reason) = identity_mismatch(info, &record, ReviewKind::Jit) {
                return Ok(Verdict::deny(reason));
            }
            if !grant_is_active(&record) {
                return Ok(Verdict::deny(record.refusal()));
            }
            return Ok(match args_mismatch(info, &record) {
                Some(reason) => Verdict::deny(reason),
                None => admit(cx, &record),
            });
        }

        let position = self.log_position().await;
        let (user, connection) = (&info.user.name, &info.connection.name);
        let grants = self
            .desk
            .active_grants(user, connection)
            .await
            .map_err(|e| desk_failed(format!("looking up {user}'s grants on {connection}"), e))?;
        let grants: Vec<ReviewRecord> = grants
            .into_iter()
            .filter(|g| identity_mismatch(info, g, ReviewKind::Jit).is_none() && grant_is_active(g))
            .collect();
        if let Some(grant) = grants.iter().find(|g| g.args == info.request.args) {
            return Ok(admit(cx, grant));
        }
        // A grant binds the arguments it was approved for: other arguments are refused,
        // not asked for anew while the grant runs.
        if let Some(grant) = grants.first()
            && cx.extensions.get::<Requested>().is_none()
            && let Some(reason) = args_mismatch(info, grant)
        {
            return Ok(Verdict::deny(reason));
        }

        if let Some(Requested(id)) = cx.extensions.get::<Requested>() {
            let id = id.clone();
            return match self.get(&id).await? {
                Some(record) => Ok(self.decide_jit(cx, info, &record, position)),
                None => Ok(Verdict::deny(format!("review {id} no longer exists"))),
            };
        }

        let duration = match info.request.access_duration {
            None => self.access_max,
            Some(d) if d.is_zero() => {
                return Ok(Verdict::deny(
                    "the access duration asked for must be positive",
                ));
            }
            Some(d) if d > self.access_max => {
                return Ok(Verdict::deny(format!(
                    "the access duration asked for ({}) exceeds the maximum of {} on \
                     connection {connection}",
                    humantime::format_duration(d),
                    humantime::format_duration(self.access_max),
                )));
            }
            Some(d) => d,
        };
        let request = NewReview {
            kind: ReviewKind::Jit,
            connection: connection.clone(),
            requester: user.clone(),
            session_id: info.id.to_string(),
            verb: info.verb,
            input: None,
            input_sha256: None,
            args: info.request.args.clone(),
            groups: self.reviewers.clone(),
            min_approvals: self.min_approvals,
            access_duration: Some(duration),
        };
        let record = match self.create(request).await? {
            Ok(record) => record,
            Err(refusal) => return Ok(refusal),
        };
        cx.extensions.insert(Requested(record.id.clone()));
        Ok(self.decide_jit(cx, info, &record, position))
    }

    /// What the time-based review this plugin requested means for the session now.
    fn decide_jit(
        &self,
        cx: &mut SessionCtx,
        info: &SessionInfo,
        record: &ReviewRecord,
        position: Option<u64>,
    ) -> Verdict {
        if let Some(reason) = identity_mismatch(info, record, ReviewKind::Jit) {
            return Verdict::deny(reason);
        }
        if let Some(reason) = args_mismatch(info, record) {
            return Verdict::deny(reason);
        }
        match record.status {
            ReviewStatus::Pending => {
                hold(record, &self.reviewers, self.watch(&record.id, position))
            }
            _ if grant_is_active(record) => admit(cx, record),
            _ => Verdict::deny(record.refusal()),
        }
    }

    // ---- desk calls -------------------------------------------------------------------

    async fn get(&self, id: &str) -> Result<Option<ReviewRecord>, PluginError> {
        self.desk
            .get(id)
            .await
            .map_err(|e| desk_failed(format!("reading review {id}"), e))
    }

    /// Creates a review; a request the desk refuses for a limit is a denial of the session
    /// (the inner `Err`), saying which limit.
    async fn create(
        &self,
        request: NewReview,
    ) -> Result<Result<ReviewRecord, Verdict>, PluginError> {
        match self.desk.create(request).await {
            Ok(record) => Ok(Ok(record)),
            Err(DeskError::LimitReached(message)) => Ok(Err(Verdict::deny(message))),
            Err(e) => Err(desk_failed("creating a review".to_owned(), e)),
        }
    }
}

#[async_trait]
impl Plugin for ReviewPlugin {
    fn name(&self) -> &str {
        NAME
    }

    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        let info = cx.info_arc();
        match info.verb {
            Verb::Exec => self.open_exec(cx, &info).await,
            Verb::Connect => self.open_connect(cx, &info).await,
            other => Ok(Verdict::deny(format!(
                "`{other}` sessions cannot be reviewed, and connection {} needs reviews",
                info.connection.name
            ))),
        }
    }

    async fn on_close(&self, cx: &mut SessionCtx, _reason: &CloseReason) {
        LIVE_GRANTS.remove(cx.info().id.as_str());
    }
}

fn desk_failed(doing: String, err: DeskError) -> PluginError {
    PluginError::with_source(format!("review: {doing}"), err)
}

/// Holds the session on `record`, waiting on `watch` if there is one.
fn hold(record: &ReviewRecord, reviewers: &[String], watch: Option<Arc<dyn HoldWatch>>) -> Verdict {
    let groups = if record.groups.is_empty() {
        reviewers
    } else {
        &record.groups
    };
    let request = HoldRequest::new(format!(
        "waiting for approval by {} (review {})",
        groups.join(", "),
        record.id
    ))
    .with_groups(groups.iter().cloned())
    .with_request_id(record.id.clone());
    Verdict::Hold(match watch {
        Some(watch) => request.with_watch(watch),
        None => request,
    })
}

/// Lets the session in under `record`, recording which review and who approved it.
fn admit(cx: &mut SessionCtx, record: &ReviewRecord) -> Verdict {
    cx.attributes.set(ID_ATTRIBUTE, record.id.clone());
    cx.attributes
        .set(APPROVED_BY_ATTRIBUTE, record.approved_by());
    if record.kind == ReviewKind::Jit
        && let Some(ends) = record.grant_ends_at
    {
        cx.attributes.set(
            GRANT_ENDS_AT_ATTRIBUTE,
            humantime::format_rfc3339_seconds(ends).to_string(),
        );
        // The session ends with its grant: revoked, expired, or run out.
        LIVE_GRANTS.add(cx.info().id.as_str(), &record.id, ends);
    }
    Verdict::Allow
}

/// Whether a time-based review grants access now.
fn grant_is_active(record: &ReviewRecord) -> bool {
    record.kind == ReviewKind::Jit
        && record.status == ReviewStatus::Approved
        && record
            .grant_ends_at
            .is_some_and(|ends| ends > SystemTime::now())
}

/// Why `record` cannot be used by this session at all (wrong kind, connection or user).
fn identity_mismatch(
    info: &SessionInfo,
    record: &ReviewRecord,
    kind: ReviewKind,
) -> Option<String> {
    let id = &record.id;
    if record.kind != kind {
        return Some(match kind {
            ReviewKind::OneTime => format!(
                "review {id} is a time-based review: an exec needs a one-time review of its input"
            ),
            ReviewKind::Jit => {
                format!("review {id} is a one-time review: a connect needs a time-based review")
            }
        });
    }
    if record.connection != info.connection.name {
        return Some(format!(
            "review {id} is for connection {}, not {}",
            record.connection, info.connection.name
        ));
    }
    if record.requester != info.user.name {
        return Some(format!("review {id} was requested by {}", record.requester));
    }
    None
}

/// Why this session's arguments are not those a time-based grant was approved for (they
/// must be exactly the same), naming both.
fn args_mismatch(info: &SessionInfo, record: &ReviewRecord) -> Option<String> {
    if record.args == info.request.args {
        return None;
    }
    Some(format!(
        "the arguments {} differ from the arguments {} that review {id} grants access with: \
         connect with exactly those, or revoke the grant (hoop reviews revoke {id}) and ask \
         again",
        show_args(&info.request.args),
        show_args(&record.args),
        id = record.id,
    ))
}

/// Most characters of a list of arguments shown in a reason.
const MAX_ARGS_SHOWN: usize = 200;

/// Arguments as a JSON list (`[]`, `["-c","id"]`), shortened with `…` past
/// [`MAX_ARGS_SHOWN`] characters.
fn show_args(args: &[String]) -> String {
    let text = serde_json::to_string(args).unwrap_or_else(|_| format!("{args:?}"));
    if text.chars().count() > MAX_ARGS_SHOWN {
        format!("{}…", text.chars().take(MAX_ARGS_SHOWN).collect::<String>())
    } else {
        text
    }
}

/// Why this `exec` is not what `record` reviewed (arguments exactly, input by SHA-256).
fn content_mismatch(info: &SessionInfo, record: &ReviewRecord) -> Option<String> {
    if record.args != info.request.args {
        return Some(format!(
            "the arguments differ from the arguments reviewed in review {}",
            record.id
        ));
    }
    let input = info.request.input.as_deref().unwrap_or_default();
    let reviewed = record
        .input_sha256
        .clone()
        .unwrap_or_else(|| input_sha256(b""));
    if !reviewed.eq_ignore_ascii_case(&input_sha256(input)) {
        return Some(format!(
            "the input differs from the reviewed input of review {}",
            record.id
        ));
    }
    None
}
