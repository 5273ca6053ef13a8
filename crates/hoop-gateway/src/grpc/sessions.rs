//! `hoop.v1.SessionService`.

use chrono::{DateTime, Utc};
use hoop_core::{Chain, ConnectionInfo, PluginConfig, SessionInfo, SessionRequest, Verb};
use hoop_plugin_audit::recording::{EventKind, RecordingError};
use hoop_plugin_audit::verify::{Replay, ReplayError, replay_session, verify_session};
use hoop_proto::v1 as pb;
use hoop_proto::v1::session_service_server::SessionService;
use hoop_store::{Connection, SessionFilter, SessionRecord, StoreError};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::timestamp;
use super::{App, Page, SharedApp};
use crate::access;
use crate::auth::{Caller, caller};
use crate::error::Error;
use crate::runtime::{self, KillError, SessionJob};

/// Groups that may read every session. Auditors keep reading every session record (and
/// recording), those of connections hidden from them by access_control included: auditing
/// is their job. They still cannot see such a connection nor open sessions on it.
const READ_ALL_GROUPS: &[&str] = &["admin", "auditor"];
const MAX_ARGS: usize = 256;
/// The plugin runbook runs need on their connection.
pub(crate) const RUNBOOKS_PLUGIN: &str = "runbooks";
const MAX_ARG_BYTES: usize = 4096;
/// Events buffered towards a client before the child is slowed down.
const EVENT_BUFFER: usize = 16;

#[derive(Debug)]
pub(crate) struct SessionApi {
    app: SharedApp,
}

impl SessionApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }

    /// The session `id` if the caller may see it: their own, or any for `admin` and
    /// `auditor`. Anyone else's is "not found", as if it did not exist.
    async fn visible_session(&self, caller: &Caller, id: &str) -> Result<SessionRecord, Error> {
        if id.is_empty() {
            return Err(Error::invalid("id", "required"));
        }
        let not_found = || Error::NotFound(format!("session `{id}` not found"));
        let session = match self.app.store.get_session(id).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if session.user != caller.user.name && !reads_all(caller) {
            return Err(not_found());
        }
        Ok(session)
    }
}

/// Longest access a time-based review may ask for, whatever the connection allows.
const MAX_ACCESS_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

impl SessionApi {
    /// `Exec{review_id}`: the connection, input and args may be left out; they are taken
    /// from the review. The review plugin then checks that everything matches. A review
    /// the caller did not request is "not found" to them.
    async fn fill_from_review(
        &self,
        caller: &Caller,
        req: &mut pb::ExecRequest,
    ) -> Result<(), Status> {
        let not_found = || Error::NotFound(format!("review `{}` not found", req.review_id));
        let review = match self.app.store.get_review(&req.review_id).await {
            Ok(review) => review,
            Err(StoreError::NotFound { .. }) => return Err(not_found().into()),
            Err(e) => return Err(Error::from(e).into()),
        };
        if review.requester != caller.user.name {
            return Err(not_found().into());
        }
        // A review on a connection hidden by access_control does not exist for the caller.
        if !access::allows_name(
            &self.app.store,
            &self.app.registry,
            caller,
            &review.connection,
        )
        .await?
        {
            return Err(not_found().into());
        }
        if req.connection.is_empty() {
            req.connection = review.connection.clone();
        }
        if req.input.is_empty() {
            req.input = review.input.clone().unwrap_or_default();
        }
        if req.args.is_empty() {
            req.args = review.args.clone();
        }
        Ok(())
    }
}

impl SessionApi {
    /// `Connect{open.postgres_cancel}`: relays a cancel request to the database of the
    /// caller's session that handed out the key; the stream ends with an exit at once.
    async fn postgres_cancel(
        &self,
        caller: &Caller,
        connection: &str,
        cancel: pb::PostgresCancel,
    ) -> Result<Response<EventStream>, Status> {
        if connection.is_empty() {
            return Err(Error::invalid("open.connection", "required").into());
        }
        // A connection the caller may not see does not exist for them.
        if !access::allows_name(&self.app.store, &self.app.registry, caller, connection).await? {
            return Err(Error::NotFound(format!("connection `{connection}` not found")).into());
        }
        let sent = crate::pg::cancel(
            &self.app,
            &caller.user.name,
            connection,
            cancel.process_id,
            cancel.secret_key,
        )
        .await
        .map_err(Error::FailedPrecondition)?;
        let (tx, _taken, stream) = runtime::event_channel(1);
        let _ = tx
            .send(Ok(pb::SessionEvent {
                event: Some(pb::session_event::Event::Exit(pb::SessionExit {
                    exit_code: 0,
                    reason: if sent {
                        "cancel request sent".to_owned()
                    } else {
                        "no such query to cancel".to_owned()
                    },
                })),
            }))
            .await;
        Ok(Response::new(stream))
    }
}

/// A session checked and recorded as open, ready to run.
struct Prepared {
    chain: Chain,
    info: SessionInfo,
    connection: Connection,
}

/// The connection `name` (with its secrets) and the chain a session by `caller` with `verb`
/// and `args` runs through, built from the connection's current plugin attachments. Used
/// when a session is asked for, and again when a hold on it lifts.
///
/// A connection hidden by access_control is NOT_FOUND, exactly as if it did not exist,
/// before anything else about it is read or said. The same attachments build the chain,
/// whose access_control plugin checks again. A disabled access mode, arguments on a
/// connection without `allow_args`, or an invalid stored config is FAILED_PRECONDITION.
///
/// A runbook run ([`SessionRequest::runbook`]) uses access mode `runbooks` instead of
/// `exec`, and needs the `runbooks` plugin attached (it checks the connection still offers
/// the runbook).
pub(crate) async fn session_chain(
    app: &App,
    caller: &Caller,
    name: &str,
    verb: Verb,
    request: &SessionRequest,
) -> Result<(Connection, Chain), Error> {
    let args = &request.args;
    // Either read failing fails the session, a hidden connection as not found.
    let (connection, attachments) =
        access::visible_connection(&app.store, &app.registry, caller, name).await?;
    let (enabled, mode) = match verb {
        Verb::Connect => (connection.access.connect, "connect"),
        _ if request.runbook.is_some() => (connection.access.runbooks, "runbooks"),
        _ => (connection.access.exec, "exec"),
    };
    if !enabled {
        return Err(Error::FailedPrecondition(format!(
            "{mode} is disabled on connection `{}`: an admin can enable access_modes.{mode}",
            connection.name
        )));
    }
    if !args.is_empty() && !connection.allow_args {
        return Err(Error::FailedPrecondition(format!(
            "allow_args: connection `{0}` does not take arguments (allow_args is false), and \
             this session asks for {1}; run it without arguments, or have an admin allow them: \
             `hoop connections update {0} --allow-args` (UpdateConnection, update_mask: \
             allow_args)",
            connection.name,
            plural(args.len(), "argument"),
        )));
    }
    if request.runbook.is_some() && !attachments.iter().any(|a| a.plugin == RUNBOOKS_PLUGIN) {
        return Err(Error::FailedPrecondition(format!(
            "plugin `{RUNBOOKS_PLUGIN}` is not attached to connection `{}`: an admin can \
             attach it (hoop plugins attach {} {RUNBOOKS_PLUGIN})",
            connection.name, connection.name
        )));
    }
    let configs: Vec<(String, PluginConfig)> = attachments
        .into_iter()
        .map(|a| PluginConfig::from_value(a.config).map(|c| (a.plugin, c)))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Error::FailedPrecondition(format!("a stored plugin config is invalid: {e}"))
        })?;
    // Required plugins (audit) are built whether or not their attachment row is there.
    let chain = app
        .registry
        .build_chain(
            configs.iter().map(|(name, config)| (name.as_str(), config)),
            &app.resources,
        )
        .map_err(|e| Error::FailedPrecondition(format!("cannot build the plugin chain: {e}")))?;
    Ok((connection, chain))
}

impl SessionApi {
    /// Checks a session request, builds the connection's chain and records the session as
    /// `open`. `at` prefixes field names in errors (`open.` for Connect).
    async fn prepare(
        &self,
        caller: &Caller,
        connection: &str,
        request: SessionRequest,
        verb: Verb,
        at: &str,
    ) -> Result<Prepared, Status> {
        let args = &request.args;
        if connection.is_empty() {
            return Err(Error::invalid(format!("{at}connection"), "required").into());
        }
        if args.len() > MAX_ARGS {
            return Err(Error::invalid(
                format!("{at}args"),
                format!("at most {MAX_ARGS} arguments"),
            )
            .into());
        }
        for (i, arg) in args.iter().enumerate() {
            if arg.len() > MAX_ARG_BYTES || arg.contains('\0') {
                return Err(Error::invalid(
                    format!("{at}args[{i}]"),
                    format!("at most {MAX_ARG_BYTES} bytes, no NUL"),
                )
                .into());
            }
        }
        let (connection, chain) =
            session_chain(&self.app, caller, connection, verb, &request).await?;
        // A session whose agent is not there fails at once, before anything is recorded or
        // anyone is asked to review it.
        self.app
            .agents
            .require(crate::agents::agent_of(&connection))
            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
        if asks_for_review(&self.app, caller, &connection, &request, verb).await? {
            // Checked again, atomically, when the review is recorded.
            self.app
                .store
                .check_pending_review_limit(&caller.user.name, Utc::now())
                .await
                .map_err(Error::from)?;
        }
        let args = request.args.clone();
        // A runbook run's attributes are there from the start (`session.opened` says which
        // runbook it is); the chain's context starts with the same ones.
        let attributes = request
            .runbook
            .iter()
            .flat_map(|r| r.attributes())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let id = uuid::Uuid::new_v4().to_string();
        let user = caller.user_info();
        let info = SessionInfo::new(
            id.clone(),
            user,
            ConnectionInfo::new(connection.name.clone(), connection.kind.clone())
                .with_tags(connection.tags.clone()),
            verb,
        )
        .with_request(request);
        self.app
            .store
            .create_session(&SessionRecord {
                id: id.clone(),
                connection: connection.name.clone(),
                connection_type: connection.kind.clone(),
                user: caller.user.name.clone(),
                verb: verb.as_str().to_owned(),
                args,
                status: "open".to_owned(),
                exit_code: None,
                reason: String::new(),
                started_at: Utc::now(),
                ended_at: None,
                bytes_in: 0,
                bytes_out: 0,
                metrics: Default::default(),
                attributes,
                instance: None,
            })
            .await
            .map_err(Error::from)?;
        tracing::info!(session = %id, user = %caller.user.name, connection = %connection.name, verb = verb.as_str(), "session started");
        Ok(Prepared {
            chain,
            info,
            connection,
        })
    }

    /// Checks, records and starts an `exec` session of `caller` on `connection`: what
    /// `Exec` does, and what plugins ask for through the session starter port.
    pub(crate) async fn start_exec(
        &self,
        caller: &Caller,
        connection: &str,
        request: SessionRequest,
    ) -> Result<EventStream, Status> {
        let input = request.input.clone().unwrap_or_default().to_vec();
        let args = request.args.clone();
        let prepared = self
            .prepare(caller, connection, request, Verb::Exec, "")
            .await?;
        Ok(self.start(caller, prepared, runtime::Input::Fixed(input), args))
    }

    /// Runs a prepared session on a task of its own; its events come out of the stream.
    fn start(
        &self,
        caller: &Caller,
        prepared: Prepared,
        input: runtime::Input,
        args: Vec<String>,
    ) -> EventStream {
        let (tx, taken, stream) = runtime::event_channel(EVENT_BUFFER);
        let id = prepared.info.id.to_string();
        tokio::spawn(runtime::run_session(SessionJob {
            app: Arc::clone(&self.app),
            caller: caller.clone(),
            chain: prepared.chain,
            info: prepared.info,
            connection: prepared.connection,
            input,
            args,
            events: tx,
            taken,
            registration: self.app.running.register(&id),
        }));
        stream
    }
}

pub(crate) type EventStream = runtime::EventStream;

/// One request of an interactive session after `open`, as the session's input; the end of
/// the stream, or a broken one, closes stdin (if the client is gone, the response stream
/// closing ends the session).
pub(crate) fn input_message(
    request: Result<Option<pb::ConnectRequest>, Status>,
) -> runtime::InputMessage {
    use pb::connect_request::Request as R;
    use runtime::InputMessage as M;
    match request {
        Ok(Some(pb::ConnectRequest {
            request: Some(R::Input(data)),
        })) => M::Data(data.into()),
        Ok(Some(pb::ConnectRequest {
            request: Some(R::CloseStdin(_)),
        })) => M::Close,
        Ok(Some(pb::ConnectRequest {
            request: Some(R::Open(_)),
        })) => M::Invalid("the client sent `open` twice".to_owned()),
        Ok(Some(pb::ConnectRequest {
            request: Some(R::Resize(size)),
        })) => match terminal_size(&size, "resize") {
            Ok(size) => M::Resize(size),
            Err(status) => M::Invalid(status.message().to_owned()),
        },
        Ok(Some(pb::ConnectRequest { request: None })) => {
            M::Invalid("the client sent an empty request".to_owned())
        }
        Ok(None) | Err(_) => M::Close,
    }
}

/// Largest terminal accepted, in rows and in columns.
const MAX_TERMINAL_CELLS: u32 = 1000;

fn terminal_size(size: &pb::TerminalSize, field: &str) -> Result<runtime::TerminalSize, Status> {
    let cells = |n: u32, name: &str| {
        u16::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_TERMINAL_CELLS).contains(&u32::from(*n)))
            .ok_or_else(|| {
                Status::from(Error::invalid(
                    format!("{field}.{name}"),
                    format!("must be between 1 and {MAX_TERMINAL_CELLS}"),
                ))
            })
    };
    Ok(runtime::TerminalSize {
        rows: cells(size.rows, "rows")?,
        cols: cells(size.cols, "cols")?,
    })
}

pub(crate) fn reads_all(caller: &Caller) -> bool {
    caller
        .user
        .groups
        .iter()
        .any(|g| READ_ALL_GROUPS.contains(&g.as_str()))
}

/// Whether the review plugin will ask reviewers for a new review to let this session in:
/// the connection has reviewers, the client presents no review, and it is an `exec` or a
/// `connect` without an active grant. (The plugin decides; this only lets the gateway
/// refuse a request over the pending reviews limit before the session is recorded.)
async fn asks_for_review(
    app: &App,
    caller: &Caller,
    connection: &Connection,
    request: &SessionRequest,
    verb: Verb,
) -> Result<bool, Error> {
    if connection.reviewers.is_empty() || request.ticket.is_some() {
        return Ok(false);
    }
    Ok(match verb {
        Verb::Exec => true,
        Verb::Connect => app
            .store
            .active_grant(&caller.user.name, &connection.name, Utc::now())
            .await?
            .is_none(),
        _ => false,
    })
}

/// `1 argument`, `3 arguments`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub(crate) fn session_to_proto(s: SessionRecord) -> pb::Session {
    pb::Session {
        args: s.args,
        id: s.id,
        connection: s.connection,
        connection_type: s.connection_type,
        user: s.user,
        verb: s.verb,
        status: s.status,
        exit_code: s.exit_code,
        reason: s.reason,
        start_time: Some(timestamp(s.started_at)),
        end_time: s.ended_at.map(timestamp),
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        metrics: s.metrics.into_iter().collect(),
        attributes: s.attributes.into_iter().collect(),
    }
}

fn time(t: Option<prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, Error> {
    t.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .and_then(|n| DateTime::from_timestamp(t.seconds, n))
            .ok_or_else(|| Error::invalid(field, "not a valid timestamp"))
    })
    .transpose()
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    type ExecStream = EventStream;
    type ConnectStream = EventStream;
    type GetSessionEventsStream = ReceiverStream<Result<pb::RecordingEvent, Status>>;

    async fn exec(
        &self,
        req: Request<pb::ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let caller = caller(&req)?;
        let mut req = req.into_inner();
        if !req.review_id.is_empty() {
            self.fill_from_review(&caller, &mut req).await?;
        }
        let mut request = SessionRequest::new()
            .with_args(req.args.clone())
            .with_input(req.input.clone());
        if !req.review_id.is_empty() {
            request = request.with_ticket(req.review_id.clone());
        }
        Ok(Response::new(
            self.start_exec(&caller, &req.connection, request).await?,
        ))
    }

    async fn connect(
        &self,
        req: Request<Streaming<pb::ConnectRequest>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let caller = caller(&req)?;
        let mut requests = req.into_inner();
        let open = match requests.message().await? {
            Some(pb::ConnectRequest {
                request: Some(pb::connect_request::Request::Open(open)),
            }) => open,
            Some(_) => {
                return Err(Error::invalid(
                    "open",
                    "the first request must be `open` (connection and args)",
                )
                .into());
            }
            None => {
                return Err(
                    Error::invalid("open", "the request stream ended before `open`").into(),
                );
            }
        };
        if let Some(cancel) = open.postgres_cancel {
            return self
                .postgres_cancel(&caller, &open.connection, cancel)
                .await;
        }
        let terminal = open
            .terminal
            .map(|t| terminal_size(&t, "open.terminal"))
            .transpose()?;
        let mut request = SessionRequest::new().with_args(open.args.clone());
        if let Some(duration) = open.access_duration {
            let duration = super::convert::session_timeout(Some(duration))
                .filter(|d| *d <= MAX_ACCESS_DURATION)
                .ok_or_else(|| {
                    Error::invalid(
                        "open.access_duration",
                        "must be positive and at most 30 days (the connection's access_max_duration applies)",
                    )
                })?;
            request = request.with_access_duration(duration);
        }
        let prepared = self
            .prepare(&caller, &open.connection, request, Verb::Connect, "open.")
            .await?;
        Ok(Response::new(self.start(
            &caller,
            prepared,
            runtime::Input::Stream {
                messages: runtime::InputStream::new(requests),
                terminal,
            },
            open.args,
        )))
    }

    async fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let page = Page::parse(req.page_size, &req.page_token)?;
        // The cursor is the last session's start time and id (newest first).
        let after = match &page.after {
            None => None,
            Some(key) => {
                let (t, id) = key.split_once('|').ok_or_else(Page::bad_token)?;
                let t = DateTime::parse_from_rfc3339(t).map_err(|_| Page::bad_token())?;
                Some((t.with_timezone(&Utc), id.to_owned()))
            }
        };
        let mut filter = SessionFilter {
            connection: (!req.connection.is_empty()).then_some(req.connection),
            user: (!req.user.is_empty()).then_some(req.user),
            status: (!req.status.is_empty()).then_some(req.status),
            start_after: time(req.start_after, "start_after")?,
            start_before: time(req.start_before, "start_before")?,
        };
        if !reads_all(&caller) {
            match &filter.user {
                Some(u) if u != &caller.user.name => {
                    return Ok(Response::new(pb::ListSessionsResponse::default()));
                }
                _ => filter.user = Some(caller.user.name.clone()),
            }
        }
        let rows = self
            .app
            .store
            .list_sessions(&filter, after, page.size + 1)
            .await
            .map_err(Error::from)?;
        let (rows, next_page_token) =
            page.finish(rows, |s| format!("{}|{}", s.started_at.to_rfc3339(), s.id));
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: rows.into_iter().map(session_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_session(
        &self,
        req: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let session = self.visible_session(&caller, &id).await?;
        Ok(Response::new(session_to_proto(session)))
    }

    async fn kill_session(
        &self,
        req: Request<pb::KillSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let session = self.visible_session(&caller, &id).await?;
        if session.user != caller.user.name {
            caller.require_admin("killing another user's session")?;
        }
        if session.status != "open" {
            return Err(Error::FailedPrecondition(format!(
                "session `{id}` has already ended (status {})",
                session.status
            ))
            .into());
        }
        match self.app.running.kill(&id, &caller.user.name).await {
            Ok(()) => {}
            Err(KillError::NotRunning) => {
                let store = &self.app.store;
                match session.instance.as_deref() {
                    // Another gateway runs it: ask it through the event log.
                    Some(owner) if Some(owner) != store.instance() => {
                        let settled = crate::control::kill_elsewhere(
                            store,
                            &session,
                            owner,
                            &caller.user.name,
                        )
                        .await?;
                        tracing::info!(session = %id, by = %caller.user.name, instance = %owner, "session killed through its gateway");
                        return Ok(Response::new(session_to_proto(settled)));
                    }
                    _ => {
                        return Err(Error::FailedPrecondition(format!(
                            "session `{id}` is not running on this gateway"
                        ))
                        .into());
                    }
                }
            }
        }
        tracing::info!(session = %id, by = %caller.user.name, "session killed");
        let settled = self.app.store.get_session(&id).await.map_err(Error::from)?;
        Ok(Response::new(session_to_proto(settled)))
    }
    async fn get_session_events(
        &self,
        req: Request<pb::GetSessionEventsRequest>,
    ) -> Result<Response<Self::GetSessionEventsStream>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let session = self.visible_session(&caller, &id).await?;
        let replay = replay_session(
            self.app.recordings.as_ref(),
            &id,
            &session.status,
            &session.attributes,
        )
        .await
        .map_err(|err| replay_status(&id, err))?;
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(stream_recording(replay, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn verify_session(
        &self,
        req: Request<pb::VerifySessionRequest>,
    ) -> Result<Response<pb::VerifySessionResponse>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let session = self.visible_session(&caller, &id).await?;
        let v = match verify_session(
            self.app.recordings.as_ref(),
            &id,
            &session.status,
            &session.attributes,
        )
        .await
        {
            Ok(v) => v,
            Err(RecordingError::InvalidSessionId(_)) => {
                return Err(Error::NotFound(format!("session `{id}` has no recording")).into());
            }
            Err(err) => return Err(recording_failure(&id, err)),
        };
        let response = pb::VerifySessionResponse {
            ok: v.ok(),
            events: v.events,
            digest: v.digest.map(|d| d.to_hex()).unwrap_or_default(),
            expected_digest: v.stored_digest.clone().unwrap_or_default(),
            closed: v.closed,
            truncated: v.truncated,
            failed_event: v.failed_event(),
            failed_byte_offset: v.failed_byte_offset(),
            detail: v.detail,
        };
        if !response.ok {
            tracing::warn!(session = %id, detail = %response.detail, "session recording does not verify");
        }
        Ok(Response::new(response))
    }
}

/// A replay that failed, as a gRPC status: a recording that does not verify is DATA_LOSS
/// naming the first bad event; a missing one NOT_FOUND; a storage failure INTERNAL.
fn replay_status(id: &str, err: ReplayError) -> Status {
    match err {
        ReplayError::NoRecording(_) => {
            Error::NotFound(format!("session `{id}` has no recording")).into()
        }
        ReplayError::Storage(err) => recording_failure(id, err),
        err => {
            tracing::warn!(session = %id, error = %err, "session recording does not verify");
            Status::data_loss(err.to_string())
        }
    }
}

/// A storage failure reading a recording: logged in full, reported without details.
fn recording_failure(id: &str, err: RecordingError) -> Status {
    tracing::error!(session = %id, error = %err, "cannot read the session recording");
    Error::Internal(format!("cannot read the recording of session `{id}`")).into()
}

fn event_kind(kind: EventKind) -> pb::RecordingEventKind {
    match kind {
        EventKind::Header => pb::RecordingEventKind::Header,
        EventKind::Stdin => pb::RecordingEventKind::Stdin,
        EventKind::Stdout => pb::RecordingEventKind::Stdout,
        EventKind::Stderr => pb::RecordingEventKind::Stderr,
        EventKind::Close => pb::RecordingEventKind::Close,
    }
}

/// Streams a recording's events, each verified by the replay; a recording that does not
/// verify ends the stream with DATA_LOSS naming the first bad event.
async fn stream_recording(
    mut replay: Replay,
    tx: mpsc::Sender<Result<pb::RecordingEvent, Status>>,
) {
    let session = replay.session_id().as_str().to_owned();
    while let Some(event) = replay.next_event().await {
        let message = event
            .map(|e| pb::RecordingEvent {
                index: e.index,
                kind: event_kind(e.kind) as i32,
                offset: Some(super::convert::duration_to_proto(e.offset())),
                data: e.payload.to_vec(),
            })
            .map_err(|err| replay_status(&session, err));
        let last = message.is_err();
        if tx.send(message).await.is_err() || last {
            return;
        }
    }
}
