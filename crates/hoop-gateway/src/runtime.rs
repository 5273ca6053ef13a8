//! The session runtime: runs a `command` connection's program for one session, on the
//! connection's [agent](crate::agents), with every byte passing through the connection's
//! plugin chain.
//!
//! The agent gets the connection's argv plus the client's arguments (never through a shell)
//! and the connection's decrypted `env`, which it adds to the login environment of the user
//! it runs sessions as. The program ends when the session ends, whatever ends it (the
//! program's exit, the client going away, KillSession, the connection's session timeout, a
//! plugin verdict, gateway shutdown): dropping the session's end of the link tells the agent
//! to kill it and everything it started. A session whose agent goes away ends as
//! `interrupted`.
//!
//! Everything is bounded: the agent sends at most a window of output the gateway has not
//! acknowledged (acknowledged once the client took it) and the gateway sends at most a
//! window of input the agent has not written; a slow client slows the program down, a
//! program that does not read slows the client down, and memory does not grow.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hoop_core::{
    Chain, ChainSession, Chunk, CloseReason, HoldHost, HoldRequest, Outcome, Refreshed,
    SessionInfo, Stream,
};
use hoop_proto::v1 as pb;
use hoop_store::{Connection, SessionEnd, Store, StoreError, User};

use crate::agents::{AgentEvent, AgentSession};
use crate::auth::Caller;
use crate::grpc::App;
use tokio::sync::mpsc;
use tonic::Status;

/// The sessions running on this gateway, so they can be killed.
#[derive(Debug, Default)]
pub(crate) struct Running {
    sessions: std::sync::Mutex<std::collections::HashMap<String, RunningSession>>,
}

#[derive(Debug)]
struct RunningSession {
    kill: Option<tokio::sync::oneshot::Sender<CloseReason>>,
    done: tokio::sync::watch::Receiver<bool>,
}

/// The runtime's side of a registered session.
#[derive(Debug)]
pub(crate) struct Registration {
    kill: tokio::sync::oneshot::Receiver<CloseReason>,
    done: tokio::sync::watch::Sender<bool>,
}

/// Why a session could not be killed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KillError {
    /// Not running here (ended, or running on another gateway).
    NotRunning,
}

impl Running {
    /// Registers a session that is about to run.
    pub(crate) fn register(&self, id: &str) -> Registration {
        let (kill_tx, kill) = tokio::sync::oneshot::channel();
        let (done, done_rx) = tokio::sync::watch::channel(false);
        if let Ok(mut map) = self.sessions.lock() {
            map.insert(
                id.to_owned(),
                RunningSession {
                    kill: Some(kill_tx),
                    done: done_rx,
                },
            );
        }
        Registration { kill, done }
    }

    /// Asks a running session to end, killed by `by`, and waits until it is settled.
    pub(crate) async fn kill(&self, id: &str, by: &str) -> Result<(), KillError> {
        self.end(id, CloseReason::Killed { by: by.to_owned() })
            .await
    }

    /// Ends a running session for `reason` (recorded as `killed`) and waits until it is
    /// settled.
    pub(crate) async fn end(&self, id: &str, reason: CloseReason) -> Result<(), KillError> {
        let (sender, mut done) = {
            let mut map = self.sessions.lock().map_err(|_| KillError::NotRunning)?;
            let entry = map.get_mut(id).ok_or(KillError::NotRunning)?;
            (entry.kill.take(), entry.done.clone())
        };
        if let Some(sender) = sender {
            let _ = sender.send(reason);
        }
        let _ = done.wait_for(|settled| *settled).await;
        Ok(())
    }

    /// The ids of the sessions running here.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.sessions
            .lock()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn remove(&self, id: &str) {
        if let Ok(mut map) = self.sessions.lock() {
            map.remove(id);
        }
    }
}

/// The most bytes of argv and environment a session's program may be started with (well
/// under the kernel's `ARG_MAX`, and under the agents' frame and message limits).
pub(crate) const MAX_START_BYTES: usize = 1024 * 1024;
/// Exit code reported when the session never ran its program.
pub(crate) const NOT_RUN: i32 = -1;

pub(crate) type EventSender = mpsc::Sender<Result<pb::SessionEvent, Status>>;

/// How many `output` events the client's stream has taken from a session's queue.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    outputs: std::sync::atomic::AtomicU64,
    notify: tokio::sync::Notify,
}

/// A session's events as the client's gRPC stream takes them: it counts the `output`
/// events taken, so that the session acknowledges their bytes to the agent only then (the
/// agent's window bounds what waits in the queue as well as what the agent holds).
#[derive(Debug)]
pub(crate) struct EventStream {
    rx: mpsc::Receiver<Result<pb::SessionEvent, Status>>,
    taken: std::sync::Arc<Taken>,
}

impl tokio_stream::Stream for EventStream {
    type Item = Result<pb::SessionEvent, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = self.rx.poll_recv(cx);
        if let std::task::Poll::Ready(Some(Ok(pb::SessionEvent {
            event: Some(pb::session_event::Event::Output(_)),
        }))) = &next
        {
            self.taken
                .outputs
                .fetch_add(1, std::sync::atomic::Ordering::Release);
            self.taken.notify.notify_one();
        }
        next
    }
}

/// A session's event queue of `capacity` events: its sender, the count of outputs taken,
/// and the stream for the client.
pub(crate) fn event_channel(capacity: usize) -> (EventSender, std::sync::Arc<Taken>, EventStream) {
    let (tx, rx) = mpsc::channel(capacity);
    let taken = std::sync::Arc::new(Taken::default());
    let stream = EventStream {
        rx,
        taken: std::sync::Arc::clone(&taken),
    };
    (tx, taken, stream)
}

/// The agent's output bytes behind each `output` event sent to the client and not taken
/// yet: acknowledged to the agent as the client's stream takes the events.
#[derive(Debug, Default)]
struct Unacked {
    /// Per event sent, in order: the agent's bytes it carries (0 for what plugins held
    /// back and released later, whose bytes were acknowledged with an earlier event).
    sent: std::collections::VecDeque<usize>,
    /// `output` events the stream had taken when last looked at.
    taken: u64,
}

impl Unacked {
    /// The bytes of the events taken since the last call.
    fn newly_taken(&mut self, taken: &Taken) -> usize {
        let now = taken.outputs.load(std::sync::atomic::Ordering::Acquire);
        let mut bytes = 0;
        while self.taken < now {
            self.taken += 1;
            bytes += self.sent.pop_front().unwrap_or(0);
        }
        bytes
    }
}

pub(crate) fn event(e: pb::session_event::Event) -> Result<pb::SessionEvent, Status> {
    Ok(pb::SessionEvent { event: Some(e) })
}

/// How the session ended.
pub(crate) struct Ending {
    pub(crate) status: &'static str,
    pub(crate) exit_code: i32,
    pub(crate) reason: CloseReason,
}

/// Where a session's input comes from.
pub(crate) enum Input {
    /// Exec: one chunk, then stdin closes.
    Fixed(Vec<u8>),
    /// Connect: chunks as the client sends them, on pipes or on a terminal of this size.
    Stream {
        messages: InputStream,
        terminal: Option<TerminalSize>,
    },
}

/// An interactive session's input: the client's request stream, read by the session's own
/// task (no task and channel in between: one wake-up less per message, and HTTP/2 flow
/// control is what holds a client that sends faster than the session takes).
pub(crate) struct InputStream {
    /// `None` once the stream ended, broke, or sent what ends the input.
    requests: Option<Box<tonic::Streaming<pb::ConnectRequest>>>,
}

impl InputStream {
    pub(crate) fn new(requests: tonic::Streaming<pb::ConnectRequest>) -> Self {
        Self {
            requests: Some(Box::new(requests)),
        }
    }

    /// The next message; `None` after the one that ends the input (`Close` or `Invalid`).
    /// Cancel-safe: a message is taken from the stream only when it is returned.
    pub(crate) async fn recv(&mut self) -> Option<InputMessage> {
        let requests = self.requests.as_mut()?;
        let message = crate::grpc::sessions::input_message(requests.message().await);
        if !matches!(message, InputMessage::Data(_) | InputMessage::Resize(_)) {
            // Dropped as the forwarding task it replaces did: the input has ended.
            self.requests = None;
        }
        Some(message)
    }
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TerminalSize {
    pub(crate) rows: u16,
    pub(crate) cols: u16,
}

/// One message of an interactive session's input.
#[derive(Debug)]
pub(crate) enum InputMessage {
    /// Bytes for the target's stdin.
    Data(Bytes),
    /// Close the target's stdin.
    Close,
    /// The client's terminal changed size.
    Resize(TerminalSize),
    /// The client broke the protocol; the session ends with this error.
    Invalid(String),
}

/// Everything a session needs.
pub(crate) struct SessionJob {
    /// The gateway: store, registry, resources, the running sessions, the agents and the
    /// shutdown signal.
    pub(crate) app: std::sync::Arc<App>,
    /// Who asked for the session (checked again when a hold on it lifts).
    pub(crate) caller: Caller,
    pub(crate) chain: Chain,
    pub(crate) info: SessionInfo,
    pub(crate) connection: Connection,
    pub(crate) input: Input,
    pub(crate) args: Vec<String>,
    pub(crate) events: EventSender,
    /// What the client's stream took of `events`.
    pub(crate) taken: std::sync::Arc<Taken>,
    /// This session's entry in the registry of running sessions.
    pub(crate) registration: Registration,
}

/// Runs a session to its end and settles its record.
pub(crate) async fn run_session(job: SessionJob) {
    let SessionJob {
        app,
        caller,
        chain,
        info,
        mut connection,
        input,
        args,
        events,
        taken,
        registration,
    } = job;
    let store = app.store.clone();
    let mut shutdown = app.shutdown.clone();
    let Registration { mut kill, done } = registration;
    let id = info.id.to_string();
    // The session's time limit counts from when it may run: time spent waiting for
    // reviewers is bounded by the review's own TTL instead.
    let deadline = None;
    let _ = events
        .send(event(pb::session_event::Event::Started(
            pb::SessionStarted {
                session_id: id.clone(),
            },
        )))
        .await;
    let user = info.user.name.clone();
    let mut session = chain.start(info);
    let mut counters = Counters::default();
    let mut stops = Stops {
        shutdown: &mut shutdown,
        kill: &mut kill,
        deadline,
        agents: &app.agents,
        session_id: id.clone(),
        store: &store,
        started_event: None,
    };
    let mut waiting = Waiting {
        app: &app,
        session_id: id.clone(),
        caller,
        connection: &mut connection,
        events: &events,
    };
    let ending = if waiting.connection.kind == crate::pg::KIND {
        crate::pg::drive(
            &app,
            &mut session,
            &mut waiting,
            input,
            &events,
            &mut stops,
            &mut counters,
        )
        .await
    } else {
        drive(
            &mut session,
            &mut waiting,
            input,
            &args,
            (&events, &taken),
            &mut stops,
            &mut counters,
        )
        .await
    };
    // `session.started` is in the log before `session.closed`.
    if let Some(appending) = stops.started_event.take() {
        let _ = appending.await;
    }
    let reason_text = ending.reason.to_string();
    let (metrics, attributes) = match session.close(ending.reason).await {
        Some(cx) => (
            cx.metrics
                .iter()
                .map(|(k, v)| (k.to_owned(), i64::try_from(v).unwrap_or(i64::MAX)))
                .collect(),
            cx.attributes
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
        None => Default::default(),
    };
    let end = SessionEnd {
        status: ending.status.to_owned(),
        exit_code: ending.exit_code,
        reason: reason_text.clone(),
        bytes_in: counters.bytes_in,
        bytes_out: counters.bytes_out,
        metrics,
        attributes,
    };
    // The recording is sealed once audit's close ran: say so with the session's end.
    let recording = end
        .attributes
        .get(hoop_plugin_audit::DIGEST_ATTRIBUTE)
        .map(|digest| {
            hoop_store::NewEvent::new(
                hoop_core::events::types::RECORDING_FINISHED,
                serde_json::json!({
                    "session_id": id,
                    "digest": digest,
                    "events": end.attributes.get(hoop_plugin_audit::EVENTS_ATTRIBUTE),
                }),
            )
            .connection(&connection.name)
            .user(&user)
        });
    if let Err(err) = store
        .finish_session_with(&id, &end, recording.into_iter().collect())
        .await
    {
        tracing::error!(session = %id, error = %err, "cannot settle the session record");
    }
    app.running.remove(&id);
    let _ = done.send(true);
    tracing::info!(session = %id, status = ending.status, exit_code = ending.exit_code, reason = %reason_text, "session ended");
    let _ = events
        .send(event(pb::session_event::Event::Exit(pb::SessionExit {
            exit_code: ending.exit_code,
            reason: reason_text,
        })))
        .await;
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) bytes_in: i64,
    pub(crate) bytes_out: i64,
}

pub(crate) fn add(counter: &mut i64, n: usize) {
    *counter = counter.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
}

/// An ending decided by a plugin's outcome, if it was not `Continue`.
pub(crate) fn plugin_ending(outcome: Outcome, opening: bool) -> Option<Ending> {
    let status = if opening { "denied" } else { "killed" };
    match outcome {
        Outcome::Continue => None,
        Outcome::Denied { plugin, reason } => Some(Ending {
            status,
            exit_code: NOT_RUN,
            reason: CloseReason::Denied {
                plugin,
                reason: reason.to_string(),
            },
        }),
        Outcome::Failed { plugin, error } => Some(Ending {
            status,
            exit_code: NOT_RUN,
            reason: CloseReason::PluginFailed {
                plugin,
                error: error.to_string(),
            },
        }),
        Outcome::Held { plugin, request } => Some(Ending {
            status: "denied",
            exit_code: NOT_RUN,
            reason: CloseReason::Denied {
                plugin,
                reason: format!(
                    "held for approval ({}), which this gateway cannot wait for yet",
                    request.reason
                ),
            },
        }),
        _ => Some(Ending {
            status,
            exit_code: NOT_RUN,
            reason: CloseReason::Error {
                message: "unknown plugin outcome".to_owned(),
            },
        }),
    }
}

pub(crate) fn error_ending(message: String) -> Ending {
    Ending {
        status: "killed",
        exit_code: NOT_RUN,
        reason: CloseReason::Error { message },
    }
}

pub(crate) fn killed(reason: CloseReason) -> Ending {
    Ending {
        status: "killed",
        exit_code: NOT_RUN,
        reason,
    }
}

/// How often a held session is checked again even without news from what it waits for (a
/// safety net; decisions normally arrive as events at once).
const HOLD_RECHECK: Duration = Duration::from_secs(30);

/// What the runtime does while a plugin holds a session (hoop-core does the waiting): tell
/// the client and the event log once per request, and when the hold may have lifted, check
/// the session again: the user still exists and may still use the connection, which still
/// exists (and still takes the session's arguments, if it has any); its chain is rebuilt
/// from its current settings.
pub(crate) struct Waiting<'a> {
    app: &'a App,
    session_id: String,
    caller: Caller,
    /// The connection as the session will run it: replaced by its current settings at
    /// every re-check.
    pub(crate) connection: &'a mut Connection,
    events: &'a EventSender,
}

#[async_trait]
impl HoldHost for Waiting<'_> {
    async fn held(&mut self, plugin: &str, request: &HoldRequest) {
        let id = &self.session_id;
        if let Err(err) = self
            .app
            .store
            .append_events(vec![
                hoop_store::NewEvent::new(
                    hoop_core::events::types::SESSION_HELD,
                    serde_json::json!({
                        "session_id": id,
                        "plugin": plugin,
                        "request_id": request.request_id,
                        "groups": request.groups,
                        "reason": request.reason,
                    }),
                )
                .connection(&self.connection.name)
                .user(&self.caller.user.name),
            ])
            .await
        {
            tracing::warn!(session = %id, error = %err, "cannot append session.held");
        }
        let held = pb::SessionHeld {
            review_id: request.request_id.clone().unwrap_or_default(),
            groups: request.groups.clone(),
            reason: request.reason.clone(),
        };
        // A client that is gone is noticed by the caller's select (`events.closed()`).
        let _ = self
            .events
            .send(event(pb::session_event::Event::Held(held)))
            .await;
    }

    async fn recheck(&mut self, info: &SessionInfo) -> Result<Refreshed, String> {
        let (user, connection, chain) = self.check(info).await?;
        self.caller.user = user;
        let connection_info =
            hoop_core::ConnectionInfo::new(connection.name.clone(), connection.kind.clone())
                .with_tags(connection.tags.clone());
        *self.connection = connection;
        Ok(Refreshed {
            chain,
            user: self.caller.user_info(),
            connection: connection_info,
        })
    }

    async fn confirm(&mut self, info: &SessionInfo) -> Result<(), String> {
        // The same checks; the session keeps the chain and settings of its last recheck.
        self.check(info).await.map(|_| ())
    }
}

impl Waiting<'_> {
    /// The session's user and connection as they are now, and the chain built from them,
    /// or why the session may not go on: the user is gone, may no longer use the
    /// connection, or the connection is gone.
    async fn check(&self, info: &SessionInfo) -> Result<(User, Connection, Chain), String> {
        let name = &info.user.name;
        let user = match self.app.store.get_user(name).await {
            Ok(user) => user,
            Err(StoreError::NotFound { .. }) => {
                return Err(format!("user `{name}` no longer exists"));
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot check a held session again");
                return Err(
                    "the session could not be checked again (the gateway's store \
                            failed): ask again"
                        .to_owned(),
                );
            }
        };
        let caller = Caller {
            user,
            ..self.caller.clone()
        };
        let (connection, chain) = crate::grpc::sessions::session_chain(
            self.app,
            &caller,
            &info.connection.name,
            info.verb,
            &info.request,
        )
        .await
        .map_err(|err| err.to_string())?;
        Ok((caller.user, connection, chain))
    }
}

/// Opens the session through the chain, waiting while a plugin holds it (see [`Waiting`]).
/// Ends early if the client leaves, the session is killed or the gateway shuts down (the
/// session's time limit starts only once it may run); the review itself stays as it is (a
/// one-time review approved later can still be run with `Exec{review_id}`).
pub(crate) async fn open(
    session: &mut ChainSession,
    waiting: &mut Waiting<'_>,
    events: &EventSender,
    stops: &mut Stops<'_>,
) -> Result<(), Ending> {
    let outcome = tokio::select! {
        outcome = session.open_waiting(waiting, HOLD_RECHECK) => outcome,
        () = events.closed() => return Err(killed(CloseReason::ClientGone)),
        () = shut_down(stops.shutdown) => return Err(killed(CloseReason::Shutdown)),
        Ok(reason) = &mut *stops.kill => return Err(killed(reason)),
    };
    let outcome = outcome.map_err(|err| error_ending(err.to_string()))?;
    match plugin_ending(outcome, true) {
        Some(ending) => Err(ending),
        None => Ok(()),
    }
}

/// Resolves when the gateway starts shutting down.
pub(crate) async fn shut_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

async fn drive(
    session: &mut ChainSession,
    waiting: &mut Waiting<'_>,
    input: Input,
    args: &[String],
    (events, taken): (&EventSender, &Taken),
    stops: &mut Stops<'_>,
    counters: &mut Counters,
) -> Ending {
    if let Err(ending) = open(session, waiting, events, stops).await {
        return ending;
    }
    // The connection as it is now (a hold may have lasted while its settings changed).
    let connection: &Connection = waiting.connection;
    // Appended while the program starts, not before: the session's end waits for it, so
    // the log still has `session.started` before `session.closed`.
    stops.started_event = session_event(
        stops.store,
        session,
        hoop_core::events::types::SESSION_STARTED,
        serde_json::json!({ "session_id": session.info().map(|i| i.id.to_string()) }),
    );
    stops.deadline = connection
        .session_timeout
        .and_then(|t| tokio::time::Instant::now().checked_add(t));
    // Exec input goes through the chain before anything runs: a plugin can refuse it.
    let (mut first_input, mut input_stream, terminal) = match input {
        Input::Fixed(data) => {
            add(&mut counters.bytes_in, data.len());
            let mut chunk = Chunk::new(Stream::Stdin, data);
            match session.input(&mut chunk).await {
                Ok(outcome) => {
                    if let Some(ending) = plugin_ending(outcome, true) {
                        return ending;
                    }
                }
                Err(err) => return error_ending(err.to_string()),
            }
            (Some(chunk.data), None, None)
        }
        Input::Stream { messages, terminal } => (None, Some(messages), terminal),
    };

    if connection.command.is_empty() {
        return error_ending("the connection has no command".to_owned());
    }
    let agent_name = crate::agents::agent_of(connection);
    let start = pb::AgentStart {
        session_id: stops.session_id.clone(),
        argv: connection.command.iter().chain(args).cloned().collect(),
        env: connection
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        terminal: terminal.map(|size| pb::TerminalSize {
            rows: size.rows.into(),
            cols: size.cols.into(),
        }),
        tcp: None,
        // Set by `Agents::start`.
        output_window: 0,
    };
    let size: usize = start.argv.iter().map(String::len).sum::<usize>()
        + start
            .env
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if size > MAX_START_BYTES {
        return Ending {
            status: "done",
            exit_code: 126,
            reason: CloseReason::Error {
                message: format!(
                    "cannot start the command: its arguments and the connection's env take \
                     {size} bytes, more than the {MAX_START_BYTES} a session may start with"
                ),
            },
        };
    }
    // Dropped on any early return below, the agent's end of the session kills the program.
    let mut remote = match stops.agents.start(agent_name, start).await {
        Ok(remote) => remote,
        Err(err) => return interrupted(err.to_string()),
    };
    // Input that passed the chain and waits for room in the agent's window, and whether
    // stdin closes once it is written.
    let mut input = PendingInput {
        data: None,
        close: false,
        open: true,
    };
    if let Some(data) = first_input.take() {
        // Exec: stdin closes after the input.
        input.data = (!data.is_empty()).then_some(data);
        input.close = true;
        if input.push(&mut remote).await.is_err() {
            return interrupted(format!("agent `{}` went away", remote.agent()));
        }
    }

    // Plugins that hold output back (a masker waiting for the rest of a value) release it
    // when a stream has been quiet this long, and when it ends.
    let holdback = session.output_holdback();
    let mut flush_at: [Option<tokio::time::Instant>; 2] = [None, None];
    let mut unacked = Unacked::default();
    let exit = loop {
        let deadline = stops.deadline;
        let next_flush = flush_at.iter().flatten().min().copied();
        let step = tokio::select! {
            event = remote.next() => Step::Agent(event),
            message = recv_input(&mut input_stream), if input.data.is_none() && input_stream.is_some() => Step::Input(message),
            () = events.closed() => return killed(CloseReason::ClientGone),
            () = shut_down(stops.shutdown) => return killed(CloseReason::Shutdown),
            Ok(reason) = &mut *stops.kill => return killed(reason),
            () = sleep_until(deadline), if deadline.is_some() => return killed(CloseReason::Timeout),
            () = sleep_until(next_flush), if next_flush.is_some() => Step::Quiet,
            () = taken.notify.notified() => Step::Taken,
        };
        match step {
            Step::Agent(AgentEvent::Spawned) => {}
            Step::Agent(AgentEvent::Exit { code, error }) => break (code, error),
            Step::Agent(AgentEvent::Lost(reason)) => return interrupted(reason),
            Step::Agent(AgentEvent::InputAck(_)) => {
                if input.push(&mut remote).await.is_err() {
                    return interrupted(format!("agent `{}` went away", remote.agent()));
                }
            }
            Step::Agent(AgentEvent::Output { stdout, data }) => {
                let stream = if stdout {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                let n = data.len();
                if let Some(quiet) = holdback {
                    flush_at[output_slot(stream)] = Some(tokio::time::Instant::now() + quiet);
                }
                let mut chunk = Chunk::new(stream, data);
                match session.output(&mut chunk).await {
                    Ok(outcome) => {
                        if let Some(ending) = plugin_ending(outcome, false) {
                            return ending;
                        }
                    }
                    Err(err) => return error_ending(err.to_string()),
                }
                match send_output(events, chunk, counters, stops).await {
                    // Acknowledged once the client's stream takes it: a slow client slows
                    // the program.
                    Ok(true) => unacked.sent.push_back(n),
                    // Nothing left to send (plugins hold it back or dropped it).
                    Ok(false) => {
                        if remote.ack_output(n).await.is_err() {
                            return interrupted(format!("agent `{}` went away", remote.agent()));
                        }
                    }
                    Err(ending) => return ending,
                }
            }
            Step::Taken => {
                let bytes = unacked.newly_taken(taken);
                if bytes > 0 && remote.ack_output(bytes).await.is_err() {
                    return interrupted(format!("agent `{}` went away", remote.agent()));
                }
            }
            Step::Input(Some(InputMessage::Data(data))) => {
                add(&mut counters.bytes_in, data.len());
                let mut chunk = Chunk::new(Stream::Stdin, data);
                match session.input(&mut chunk).await {
                    Ok(outcome) => {
                        if let Some(ending) = plugin_ending(outcome, false) {
                            return ending;
                        }
                    }
                    Err(err) => return error_ending(err.to_string()),
                }
                if !chunk.data.is_empty() && input.open {
                    input.data = Some(chunk.data);
                    if input.push(&mut remote).await.is_err() {
                        return interrupted(format!("agent `{}` went away", remote.agent()));
                    }
                }
            }
            Step::Input(Some(InputMessage::Resize(size))) => {
                if input.open && remote.resize(size.rows, size.cols).await.is_err() {
                    return interrupted(format!("agent `{}` went away", remote.agent()));
                }
            }
            Step::Input(Some(InputMessage::Invalid(message))) => {
                return error_ending(message);
            }
            Step::Input(Some(InputMessage::Close) | None) => {
                input_stream = None;
                input.close = true;
                if input.push(&mut remote).await.is_err() {
                    return interrupted(format!("agent `{}` went away", remote.agent()));
                }
            }
            Step::Quiet => {
                let now = tokio::time::Instant::now();
                for stream in [Stream::Stdout, Stream::Stderr] {
                    let slot = &mut flush_at[output_slot(stream)];
                    if slot.is_some_and(|at| at <= now) {
                        *slot = None;
                        match flush_output(session, stream, events, counters, stops).await {
                            Ok(true) => unacked.sent.push_back(0),
                            Ok(false) => {}
                            Err(ending) => return ending,
                        }
                    }
                }
            }
        }
    };
    // The program ended and the agent sent all of its output before saying so: release
    // what plugins hold back.
    if holdback.is_some() {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Err(ending) = flush_output(session, stream, events, counters, stops).await {
                return ending;
            }
        }
    }
    let (code, error) = exit;
    Ending {
        status: "done",
        exit_code: code,
        reason: match error {
            Some(message) => CloseReason::Error { message },
            None => CloseReason::Exit { code },
        },
    }
}

/// A session's input on its way to the agent.
struct PendingInput {
    /// What passed the chain and is not sent yet (the window was full).
    data: Option<Bytes>,
    /// Close stdin once `data` is sent.
    close: bool,
    /// Stdin is still open.
    open: bool,
}

impl PendingInput {
    /// Sends what fits in the agent's window (in pieces of at most
    /// [`INPUT_PIECE`](crate::agents::INPUT_PIECE)), then closes stdin if asked and all was
    /// sent. Never waits for the window: acknowledgements come through the session's loop,
    /// which calls this again.
    async fn push(&mut self, remote: &mut AgentSession) -> Result<(), crate::agents::AgentError> {
        while let Some(data) = self.data.as_mut() {
            let len = data.len().min(crate::agents::INPUT_PIECE);
            if !remote.input_fits(len) {
                return Ok(());
            }
            let piece = data.split_to(len);
            if data.is_empty() {
                self.data = None;
            }
            remote.input(piece).await?;
        }
        if self.close && self.open {
            self.open = false;
            remote.close_input().await?;
        }
        Ok(())
    }
}

/// The session ended because its agent is gone (or never was there).
pub(crate) fn interrupted(reason: String) -> Ending {
    Ending {
        status: "interrupted",
        exit_code: NOT_RUN,
        reason: CloseReason::Error { message: reason },
    }
}

/// One thing that happened in a session's loop.
enum Step {
    /// The agent said something about the session.
    Agent(AgentEvent),
    /// An output stream has been quiet long enough to release what plugins hold back.
    Quiet,
    /// The client's stream took `output` events.
    Taken,
    Input(Option<InputMessage>),
}

fn output_slot(stream: Stream) -> usize {
    usize::from(stream != Stream::Stdout)
}

/// Releases what plugins hold back of `stream` and sends it to the client; whether there was
/// something to send.
async fn flush_output(
    session: &mut ChainSession,
    stream: Stream,
    events: &EventSender,
    counters: &mut Counters,
    stops: &mut Stops<'_>,
) -> Result<bool, Ending> {
    let mut chunk = Chunk::new(stream, Bytes::new());
    match session.flush_output(&mut chunk).await {
        Ok(outcome) => {
            if let Some(ending) = plugin_ending(outcome, false) {
                return Err(ending);
            }
        }
        Err(err) => return Err(error_ending(err.to_string())),
    }
    send_output(events, chunk, counters, stops).await
}

/// Sends a chunk of output (after the chain) to the client; nothing if it is empty (then
/// `false`). A client that does not read makes this wait, but never past a kill, the
/// session's time limit or the gateway's shutdown.
async fn send_output(
    events: &EventSender,
    chunk: Chunk,
    counters: &mut Counters,
    stops: &mut Stops<'_>,
) -> Result<bool, Ending> {
    if chunk.data.is_empty() {
        return Ok(false);
    }
    add(&mut counters.bytes_out, chunk.data.len());
    let output = pb::SessionOutput {
        stream: if chunk.stream == Stream::Stdout {
            pb::OutputStream::Stdout
        } else {
            pb::OutputStream::Stderr
        } as i32,
        data: chunk.data,
    };
    let deadline = stops.deadline;
    tokio::select! {
        sent = events.send(event(pb::session_event::Event::Output(output))) => {
            sent.map(|()| true).map_err(|_| killed(CloseReason::ClientGone))
        }
        Ok(reason) = &mut *stops.kill => Err(killed(reason)),
        () = shut_down(stops.shutdown) => Err(killed(CloseReason::Shutdown)),
        () = sleep_until(deadline), if deadline.is_some() => Err(killed(CloseReason::Timeout)),
    }
}

async fn recv_input(stream: &mut Option<InputStream>) -> Option<InputMessage> {
    match stream {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What, besides the child and the client, can end a session.
pub(crate) struct Stops<'a> {
    pub(crate) shutdown: &'a mut tokio::sync::watch::Receiver<bool>,
    pub(crate) kill: &'a mut tokio::sync::oneshot::Receiver<CloseReason>,
    /// When the connection's session timeout runs out.
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// The agents, one of which runs the session's program.
    pub(crate) agents: &'a crate::agents::Agents,
    /// The session's id.
    pub(crate) session_id: String,
    /// Where the session's events (`session.held`, `session.started`) go.
    pub(crate) store: &'a Store,
    /// The append of `session.started`, under way.
    pub(crate) started_event: Option<tokio::task::JoinHandle<()>>,
}

/// Appends an event about the session that has no stored state of its own (it is held, it
/// started). Best effort: the session's record and its `session.opened` / `session.closed`
/// events are durable either way, so a failure here is logged and the session goes on.
///
/// Runs on a task of its own; the caller awaits it before the session's record is settled.
pub(crate) fn session_event(
    store: &Store,
    session: &ChainSession,
    kind: &'static str,
    data: serde_json::Value,
) -> Option<tokio::task::JoinHandle<()>> {
    let info = session.info()?;
    let event = hoop_store::NewEvent::new(kind, data)
        .connection(&info.connection.name)
        .user(&info.user.name);
    let store = store.clone();
    let id = info.id.to_string();
    Some(tokio::spawn(async move {
        // Through the store's writer: retried while the database is busy.
        if let Err(err) = store.append_session_events(vec![event]).await {
            tracing::warn!(session = %id, event = kind, error = %err, "cannot append a session event");
        }
    }))
}
