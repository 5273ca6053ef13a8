//! The agents this gateway knows are connected, and the sessions each one runs.
//!
//! An agent is reached through a [`Link`]: a queue of [`GatewayMessage`]s towards it and a
//! route per running session for what comes back. The transport does not matter here: the
//! local agent speaks over its stdin and stdout, remote ones over `AgentService.Serve`;
//! both hand their incoming messages to [`Agents::serve`], which routes them until the
//! transport ends, then tells every session of the link that its agent is gone.
//!
//! Sessions never run twice: a start goes to the agent once, and a session whose agent is
//! lost ends (`interrupted`); nothing is retried.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_message::Message as FromAgent;
use hoop_proto::v1::gateway_message::Message as ToAgent;
use tokio::sync::{mpsc, watch};

/// The name of the agent the gateway runs itself.
pub(crate) const LOCAL_AGENT: &str = hoop_store::LOCAL_AGENT;

/// Unacknowledged input the gateway sends per session (the agent's window).
pub(crate) const WINDOW: u64 = hoop_agent::INPUT_WINDOW;
/// Largest piece of input sent to an agent in one message.
pub(crate) const INPUT_PIECE: usize = 32 * 1024;
/// Messages queued towards one agent before senders wait.
const LINK_QUEUE: usize = 256;
/// Entries a session's queue of agent messages keeps before it merges output into what is
/// queued already (see [`Route`]).
const ROUTE_ENTRIES: usize = 512;
/// Output chunks smaller than this are merged into the chunk of the same stream queued just
/// before them while the session has not taken it.
const MERGE_BELOW: usize = 64 * 1024;
/// Output smaller than this is *tiny*: a program writing it again and again (one line or one
/// byte per write) has it gathered for a while before the session takes it.
const TINY: usize = 4 * 1024;
/// How long tiny output waits for more at first; each further tiny chunk in a row waits
/// twice as long, up to [`MAX_LINGER`].
const MIN_LINGER: std::time::Duration = std::time::Duration::from_millis(1);
/// The longest tiny output waits for more: a steady trickle of tiny writes reaches the
/// client as at most about 30 messages a second.
const MAX_LINGER: std::time::Duration = std::time::Duration::from_millis(32);
/// Tiny output lingers only when the previous tiny chunk was taken this recently: the
/// first output after a quiet spell (an echo, a prompt) goes on at once.
const SUSTAINED: std::time::Duration = std::time::Duration::from_millis(50);

/// What a session hears from its agent.
#[derive(Debug)]
pub(crate) enum AgentEvent {
    /// The program started with this pid on the agent's host.
    Spawned,
    /// Output of the program.
    Output { stdout: bool, data: Bytes },
    /// The agent wrote this many more bytes of input to the program.
    InputAck(u64),
    /// The program ended (`error`: it could not start, and why).
    Exit { code: i32, error: Option<String> },
    /// The agent is gone (disconnected, replaced, deleted): the session cannot go on.
    Lost(String),
}

/// Why a session could not be given to an agent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentError {
    #[error(
        "agent `{0}` is not connected: start it (`hoop-agent --gateway URL --token …`) or \
         set the connection's agent"
    )]
    Offline(String),
    #[error("agent `{0}` went away")]
    Gone(String),
}

/// A connected agent.
#[derive(Debug)]
pub(crate) struct Link {
    name: String,
    /// Tells this link apart from an earlier or later connection of the same agent.
    serial: u64,
    version: String,
    hostname: String,
    to_agent: mpsc::Sender<GatewayMessage>,
    routes: Mutex<HashMap<String, Arc<Route>>>,
    /// Turns `Some(reason)` when the gateway cuts the link off.
    cut: watch::Sender<Option<String>>,
}

type GatewayMessage = pb::GatewayMessage;

impl Link {
    fn route(&self, session: &str) -> Option<Arc<Route>> {
        self.routes.lock().ok()?.get(session).cloned()
    }

    fn unroute(&self, session: &str) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(session);
        }
    }

    fn running(&self) -> usize {
        self.routes.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// What `ListAgents` shows of a connected agent.
#[derive(Debug, Clone)]
pub(crate) struct Presence {
    pub(crate) version: String,
    pub(crate) hostname: String,
    pub(crate) running: usize,
}

/// The connected agents, by name.
#[derive(Debug, Default)]
pub(crate) struct Agents {
    links: Mutex<HashMap<String, Arc<Link>>>,
    serials: AtomicU64,
}

impl Agents {
    /// Whether an agent serves under `name` now.
    pub(crate) fn presence(&self, name: &str) -> Option<Presence> {
        let link = self.links.lock().ok()?.get(name).cloned()?;
        Some(Presence {
            version: link.version.clone(),
            hostname: link.hostname.clone(),
            running: link.running(),
        })
    }

    /// Fails with [`AgentError::Offline`] unless `name` is connected.
    pub(crate) fn require(&self, name: &str) -> Result<(), AgentError> {
        match self.presence(name) {
            Some(_) => Ok(()),
            None => Err(AgentError::Offline(name.to_owned())),
        }
    }

    /// Appends `agent.connected` (best effort: the log says who served, the link works
    /// either way).
    pub(crate) async fn announce_connected(
        &self,
        store: &hoop_store::Store,
        name: &str,
        hello: &pb::AgentHello,
    ) {
        let event = hoop_store::NewEvent::new(
            hoop_core::events::types::AGENT_CONNECTED,
            serde_json::json!({
                "name": name,
                "version": hello.version,
                "hostname": hello.hostname,
            }),
        );
        if let Err(err) = store.append_events(vec![event]).await {
            tracing::warn!(agent = %name, error = %err, "cannot append agent.connected");
        }
    }

    /// Appends `agent.disconnected` (best effort).
    pub(crate) async fn announce_disconnected(
        &self,
        store: &hoop_store::Store,
        name: &str,
        reason: &str,
    ) {
        let event = hoop_store::NewEvent::new(
            hoop_core::events::types::AGENT_DISCONNECTED,
            serde_json::json!({ "name": name, "reason": reason }),
        );
        if let Err(err) = store.append_events(vec![event]).await {
            tracing::warn!(agent = %name, error = %err, "cannot append agent.disconnected");
        }
    }

    /// Cuts off the agent serving as `name`, if any: its sessions are lost with `reason`.
    pub(crate) fn cut_off(&self, name: &str, reason: &str) {
        let link = self.links.lock().ok().and_then(|mut l| l.remove(name));
        if let Some(link) = link {
            link.cut.send_replace(Some(reason.to_owned()));
        }
    }

    /// Serves one connection of agent `name` until `incoming` ends or the link is cut off.
    /// Replaces an earlier connection of the same agent (its sessions are lost). Returns
    /// why the link ended.
    pub(crate) async fn serve<S, E>(
        &self,
        name: &str,
        hello: pb::AgentHello,
        mut incoming: S,
        to_agent: mpsc::Sender<GatewayMessage>,
    ) -> String
    where
        S: tokio_stream::Stream<Item = Result<pb::AgentMessage, E>> + Unpin,
        E: std::fmt::Display,
    {
        use tokio_stream::StreamExt as _;
        let (cut, mut cut_rx) = watch::channel(None);
        let link = Arc::new(Link {
            name: name.to_owned(),
            serial: self.serials.fetch_add(1, Ordering::Relaxed),
            version: hello.version,
            hostname: hello.hostname,
            to_agent,
            routes: Mutex::new(HashMap::new()),
            cut,
        });
        let replaced = self
            .links
            .lock()
            .ok()
            .and_then(|mut links| links.insert(name.to_owned(), Arc::clone(&link)));
        if let Some(old) = replaced {
            old.cut.send_replace(Some(format!(
                "agent `{name}` connected again from another process"
            )));
        }
        tracing::info!(agent = %name, version = %link.version, hostname = %link.hostname, "agent connected");
        let reason = loop {
            let message = tokio::select! {
                message = incoming.next() => message,
                cut = cut_rx.wait_for(Option::is_some) => {
                    break cut.ok().and_then(|c| c.clone()).unwrap_or_default();
                }
            };
            match message {
                None => break format!("agent `{name}` disconnected"),
                Some(Err(err)) => break format!("agent `{name}` disconnected: {err}"),
                Some(Ok(message)) => {
                    if let Err(violation) = route(&link, message) {
                        break format!("agent `{name}` broke the protocol: {violation}");
                    }
                }
            }
        };
        // Only this link's entry goes: a newer connection of the agent stays.
        if let Ok(mut links) = self.links.lock()
            && links.get(name).is_some_and(|l| l.serial == link.serial)
        {
            links.remove(name);
        }
        let routes: Vec<_> = link
            .routes
            .lock()
            .map(|mut r| r.drain().collect())
            .unwrap_or_default();
        for (_, route) in routes {
            route.lost(reason.clone());
        }
        tracing::warn!(agent = %name, reason = %reason, "agent link ended");
        reason
    }

    /// Gives a session to agent `name`: sends the start and returns the session's end of
    /// the link.
    pub(crate) async fn start(
        &self,
        name: &str,
        mut start: pb::AgentStart,
    ) -> Result<AgentSession, AgentError> {
        // The window the gateway checks below; an agent older than the field keeps to its
        // own, smaller one.
        start.output_window = hoop_agent::OUTPUT_WINDOW;
        let link = self
            .links
            .lock()
            .ok()
            .and_then(|l| l.get(name).cloned())
            .ok_or_else(|| AgentError::Offline(name.to_owned()))?;
        let id = start.session_id.clone();
        let route = Arc::new(Route::default());
        if let Ok(mut routes) = link.routes.lock() {
            routes.insert(id.clone(), Arc::clone(&route));
        }
        let session = AgentSession {
            link,
            id,
            route,
            unacked_input: 0,
            ended: false,
        };
        session.send(ToAgent::Start(start)).await?;
        Ok(session)
    }
}

/// Hands a message from an agent to the session it is about. A message about a session the
/// gateway no longer runs is dropped (it raced with the session's end).
fn route(link: &Link, message: pb::AgentMessage) -> Result<(), String> {
    let (session, event) = match message.message {
        Some(FromAgent::Spawned(m)) => (m.session_id, AgentEvent::Spawned),
        Some(FromAgent::Output(m)) => (
            m.session_id,
            AgentEvent::Output {
                stdout: m.stream != pb::OutputStream::Stderr as i32,
                data: m.data,
            },
        ),
        Some(FromAgent::InputAck(m)) => (m.session_id, AgentEvent::InputAck(m.bytes)),
        Some(FromAgent::Exit(m)) => {
            let error = (!m.error.is_empty()).then_some(m.error);
            (
                m.session_id,
                AgentEvent::Exit {
                    code: m.exit_code,
                    error,
                },
            )
        }
        Some(FromAgent::Hello(_)) => return Err("a second hello".to_owned()),
        None => return Err("an empty message".to_owned()),
    };
    let exit = matches!(event, AgentEvent::Exit { .. });
    if let Some(route) = link.route(&session) {
        if route.push(event).is_err() {
            // The agent sent more than the window allows: that session cannot be trusted
            // to be complete. It ends; the others go on.
            link.unroute(&session);
            route.lost(format!(
                "agent `{}` sent more output than the flow-control window allows",
                link.name
            ));
        }
        if exit {
            link.unroute(&session);
        }
    }
    Ok(())
}

/// A session's queue of what its agent said, bounded by the output window's bytes rather
/// than by a count of messages.
///
/// The agent sends at most [`hoop_agent::OUTPUT_WINDOW`] bytes of output the gateway has
/// not acknowledged, and the gateway acknowledges output only once the client's stream took
/// it: whatever waits here is within that window, however small the pieces. So that a
/// program writing one byte per `write(2)` neither makes the queue long nor reaches the
/// client as a flood of tiny HTTP/2 frames (which clients refuse: h2 answers
/// `ENHANCE_YOUR_CALM`), output is merged while it waits: a small chunk joins the chunk of
/// the same stream queued just before it; past [`ROUTE_ENTRIES`] entries, any chunk joins
/// the last queued chunk of its stream (stdout and stderr each keep their order; between
/// the two, order is kept unless the queue is that long). Input acknowledgements are
/// summed. Tiny output that keeps coming lingers (from [`MIN_LINGER`] up to [`MAX_LINGER`])
/// to gather more; the first after a quiet spell does not, and neither does the first after
/// the session sent input (a reply: a database's answer to a query, a shell's echo), so
/// that request/response traffic never waits for a linger.
/// More output bytes than the window is the agent breaking the protocol.
#[derive(Debug, Default)]
struct Route {
    state: Mutex<RouteState>,
    ready: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct RouteState {
    queue: std::collections::VecDeque<Queued>,
    /// Input bytes the agent acknowledged that the session has not heard of yet.
    input_acked: u64,
    /// Output bytes in `queue`.
    output_bytes: u64,
    /// When the session last took a tiny output chunk.
    last_tiny: Option<tokio::time::Instant>,
    /// How long the next tiny chunk lingers, if it comes within [`SUSTAINED`].
    linger: std::time::Duration,
}

#[derive(Debug)]
enum Queued {
    Output {
        stdout: bool,
        data: Gathered,
        /// When the first of its bytes arrived.
        since: tokio::time::Instant,
    },
    /// `Spawned`, `Exit` or `Lost` (at most two per session).
    Other(AgentEvent),
}

/// Output as it arrived (shared, not copied), or merged from several chunks.
#[derive(Debug)]
enum Gathered {
    Shared(Bytes),
    Merged(bytes::BytesMut),
}

impl Gathered {
    fn len(&self) -> usize {
        match self {
            Self::Shared(b) => b.len(),
            Self::Merged(b) => b.len(),
        }
    }

    fn append(&mut self, more: &[u8]) {
        match self {
            Self::Merged(b) => b.extend_from_slice(more),
            Self::Shared(b) => {
                let mut merged = bytes::BytesMut::with_capacity((b.len() + more.len()).max(1024));
                merged.extend_from_slice(b);
                merged.extend_from_slice(more);
                *self = Self::Merged(merged);
            }
        }
    }

    fn freeze(self) -> Bytes {
        match self {
            Self::Shared(b) => b,
            Self::Merged(b) => b.freeze(),
        }
    }
}

/// The agent sent more output than the window allows.
#[derive(Debug)]
struct Overrun;

impl Route {
    fn state(&self) -> std::sync::MutexGuard<'_, RouteState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues what the agent said about the session.
    fn push(&self, event: AgentEvent) -> Result<(), Overrun> {
        {
            let mut state = self.state();
            match event {
                AgentEvent::InputAck(n) => state.input_acked = state.input_acked.saturating_add(n),
                AgentEvent::Output { data, .. } if data.is_empty() => return Ok(()),
                AgentEvent::Output { stdout, data } => {
                    state.output_bytes = state.output_bytes.saturating_add(data.len() as u64);
                    if state.output_bytes > hoop_agent::OUTPUT_WINDOW {
                        return Err(Overrun);
                    }
                    state.add_output(stdout, data);
                }
                other => state.queue.push_back(Queued::Other(other)),
            }
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The session sent input: what comes next is a reply, and goes on at once.
    fn sent_input(&self) {
        let mut state = self.state();
        state.last_tiny = None;
        state.linger = std::time::Duration::ZERO;
    }

    /// Queues the end of the session's link (whatever the queue holds).
    fn lost(&self, reason: String) {
        self.state()
            .queue
            .push_back(Queued::Other(AgentEvent::Lost(reason)));
        self.ready.notify_one();
    }

    /// The next event, once there is one (cancel-safe).
    async fn next(&self) -> AgentEvent {
        loop {
            let linger = {
                let mut state = self.state();
                match state.take(tokio::time::Instant::now()) {
                    Ok(event) => return event,
                    Err(linger) => linger,
                }
            };
            match linger {
                Some(until) => {
                    let _ = tokio::time::timeout_at(until, self.ready.notified()).await;
                }
                None => self.ready.notified().await,
            }
        }
    }
}

impl RouteState {
    fn add_output(&mut self, stdout: bool, data: Bytes) {
        if let Some(Queued::Output {
            stdout: tail_stdout,
            data: tail,
            ..
        }) = self.queue.back_mut()
            && *tail_stdout == stdout
            && tail.len() + data.len() <= MERGE_BELOW
        {
            tail.append(&data);
            return;
        }
        if self.queue.len() >= ROUTE_ENTRIES {
            let same = self.queue.iter_mut().rev().find_map(|q| match q {
                Queued::Output {
                    stdout: s, data, ..
                } if *s == stdout => Some(data),
                _ => None,
            });
            if let Some(tail) = same {
                tail.append(&data);
                return;
            }
            // All queued output is of the other stream: its last two chunks become one.
            let outputs: Vec<usize> = self
                .queue
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, q)| matches!(q, Queued::Output { .. }))
                .map(|(i, _)| i)
                .take(2)
                .collect();
            if let [last, before] = outputs[..]
                && let Some(Queued::Output { data: moved, .. }) = self.queue.remove(last)
                && let Some(Queued::Output { data: into, .. }) = self.queue.get_mut(before)
            {
                into.append(&moved.freeze());
            }
        }
        self.queue.push_back(Queued::Output {
            stdout,
            data: Gathered::Shared(data),
            since: tokio::time::Instant::now(),
        });
    }

    /// The next event, or how long to wait for one: until a lingering chunk is due
    /// (`Some`), or until something arrives (`None`).
    fn take(
        &mut self,
        now: tokio::time::Instant,
    ) -> Result<AgentEvent, Option<tokio::time::Instant>> {
        if self.input_acked > 0 {
            return Ok(AgentEvent::InputAck(std::mem::take(&mut self.input_acked)));
        }
        if let (1, Some(Queued::Output { data, since, .. })) =
            (self.queue.len(), self.queue.front())
            && data.len() < TINY
            && self
                .last_tiny
                .is_some_and(|at| now.saturating_duration_since(at) < SUSTAINED)
        {
            let due = *since + self.linger.max(MIN_LINGER);
            if now < due {
                return Err(Some(due));
            }
        }
        match self.queue.pop_front() {
            None => Err(None),
            Some(Queued::Other(event)) => Ok(event),
            Some(Queued::Output { stdout, data, .. }) => {
                let len = data.len();
                self.output_bytes = self.output_bytes.saturating_sub(len as u64);
                let sustained = self
                    .last_tiny
                    .is_some_and(|at| now.saturating_duration_since(at) < SUSTAINED);
                self.linger = if len < TINY && sustained {
                    (self.linger * 2).clamp(MIN_LINGER, MAX_LINGER)
                } else {
                    std::time::Duration::ZERO
                };
                self.last_tiny = (len < TINY).then_some(now);
                Ok(AgentEvent::Output {
                    stdout,
                    data: data.freeze(),
                })
            }
        }
    }
}

/// A session's end of its agent's link. Dropped before the agent said the program ended,
/// it tells the agent to kill it.
#[derive(Debug)]
pub(crate) struct AgentSession {
    link: Arc<Link>,
    id: String,
    route: Arc<Route>,
    unacked_input: u64,
    ended: bool,
}

impl AgentSession {
    /// The agent's name.
    pub(crate) fn agent(&self) -> &str {
        &self.link.name
    }

    /// The next event; `Lost` when the link ended. Cancel-safe: nothing is taken from the
    /// queue unless it is returned.
    pub(crate) async fn next(&mut self) -> AgentEvent {
        let event = self.route.next().await;
        match &event {
            AgentEvent::InputAck(n) => {
                self.unacked_input = self.unacked_input.saturating_sub(*n);
            }
            AgentEvent::Exit { .. } | AgentEvent::Lost(_) => self.ended = true,
            _ => {}
        }
        event
    }

    /// Whether `len` more bytes of input fit in the window now.
    pub(crate) fn input_fits(&self, len: usize) -> bool {
        self.unacked_input == 0 || self.unacked_input.saturating_add(len as u64) <= WINDOW
    }

    /// Sends input (at most [`INPUT_PIECE`] bytes; call only when [`input_fits`]).
    pub(crate) async fn input(&mut self, data: Bytes) -> Result<(), AgentError> {
        self.unacked_input = self.unacked_input.saturating_add(data.len() as u64);
        self.route.sent_input();
        self.send(ToAgent::Input(pb::AgentInput {
            session_id: self.id.clone(),
            data,
        }))
        .await
    }

    /// Acknowledges `n` bytes of output as delivered.
    pub(crate) async fn ack_output(&self, n: usize) -> Result<(), AgentError> {
        self.send(ToAgent::OutputAck(pb::AgentOutputAck {
            session_id: self.id.clone(),
            bytes: n as u64,
        }))
        .await
    }

    /// Closes the program's stdin.
    pub(crate) async fn close_input(&self) -> Result<(), AgentError> {
        self.send(ToAgent::CloseInput(pb::AgentCloseInput {
            session_id: self.id.clone(),
        }))
        .await
    }

    /// Resizes the program's terminal.
    pub(crate) async fn resize(&self, rows: u16, cols: u16) -> Result<(), AgentError> {
        self.send(ToAgent::Resize(pb::AgentResize {
            session_id: self.id.clone(),
            size: Some(pb::TerminalSize {
                rows: rows.into(),
                cols: cols.into(),
            }),
        }))
        .await
    }

    async fn send(&self, message: ToAgent) -> Result<(), AgentError> {
        self.link
            .to_agent
            .send(GatewayMessage {
                message: Some(message),
            })
            .await
            .map_err(|_| AgentError::Gone(self.link.name.clone()))
    }
}

impl Drop for AgentSession {
    fn drop(&mut self) {
        self.link.unroute(&self.id);
        if self.ended {
            return;
        }
        let kill = GatewayMessage {
            message: Some(ToAgent::Kill(pb::AgentKill {
                session_id: self.id.clone(),
            })),
        };
        // The kill must reach the agent even when its queue is full right now.
        if let Err(mpsc::error::TrySendError::Full(kill)) = self.link.to_agent.try_send(kill) {
            let to_agent = self.link.to_agent.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = to_agent.send(kill).await;
                });
            }
        }
    }
}

/// The agent that runs `connection`'s sessions.
pub(crate) fn agent_of(connection: &hoop_store::Connection) -> &str {
    if connection.agent.is_empty() {
        LOCAL_AGENT
    } else {
        &connection.agent
    }
}

/// A queue towards an agent, for transports to drain.
pub(crate) fn queue() -> (mpsc::Sender<GatewayMessage>, mpsc::Receiver<GatewayMessage>) {
    mpsc::channel(LINK_QUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(stdout: bool, data: &'static [u8]) -> AgentEvent {
        AgentEvent::Output {
            stdout,
            data: Bytes::from_static(data),
        }
    }

    /// Everything queued, taken as a session would (past any lingering).
    fn drain(route: &Route) -> Vec<AgentEvent> {
        let mut state = route.state();
        let later = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
        std::iter::from_fn(|| state.take(later).ok()).collect()
    }

    #[tokio::test]
    async fn tiny_writes_fill_the_window_not_the_queue() {
        let route = Route::default();
        // A byte per message, up to the whole window: never an overrun, never long.
        let window = usize::try_from(hoop_agent::OUTPUT_WINDOW).unwrap();
        for i in 0..window {
            let stdout = i % 3 != 0;
            route.push(output(stdout, b"x")).unwrap();
            assert!(route.state().queue.len() <= ROUTE_ENTRIES + 1);
        }
        let events = drain(&route);
        assert!(events.len() <= ROUTE_ENTRIES + 1, "{}", events.len());
        let bytes: usize = events
            .iter()
            .map(|e| match e {
                AgentEvent::Output { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(bytes, window);
        // One byte more than the window is the agent breaking the protocol.
        let route = Route::default();
        for _ in 0..window {
            route.push(output(true, b"x")).unwrap();
        }
        assert!(route.push(output(true, b"x")).is_err());
    }

    #[tokio::test]
    async fn each_stream_keeps_its_order_and_acks_add_up() {
        let route = Route::default();
        route.push(AgentEvent::Spawned).unwrap();
        route.push(output(true, b"ab")).unwrap();
        route.push(AgentEvent::InputAck(3)).unwrap();
        route.push(output(false, b"E")).unwrap();
        route.push(output(true, b"cd")).unwrap();
        route.push(AgentEvent::InputAck(4)).unwrap();
        route.push(output(true, b"ef")).unwrap();
        route
            .push(AgentEvent::Exit {
                code: 0,
                error: None,
            })
            .unwrap();
        let events = drain(&route);
        let shown: Vec<String> = events
            .iter()
            .map(|e| match e {
                AgentEvent::Spawned => "spawned".to_owned(),
                AgentEvent::InputAck(n) => format!("ack {n}"),
                AgentEvent::Output { stdout, data } => {
                    format!(
                        "{} {}",
                        if *stdout { "out" } else { "err" },
                        String::from_utf8_lossy(data)
                    )
                }
                AgentEvent::Exit { code, .. } => format!("exit {code}"),
                AgentEvent::Lost(r) => format!("lost {r}"),
            })
            .collect();
        assert_eq!(
            shown,
            ["ack 7", "spawned", "out ab", "err E", "out cdef", "exit 0"]
        );
    }

    #[tokio::test]
    async fn a_lone_chunk_goes_at_once_a_trickle_is_gathered() {
        let route = Route::default();
        let now = tokio::time::Instant::now();
        route.push(output(true, b"prompt$ ")).unwrap();
        // The first output after a quiet spell does not wait.
        assert!(matches!(
            route.state().take(now),
            Ok(AgentEvent::Output { .. })
        ));
        // The next tiny one, right after, waits a little for more...
        route.push(output(true, b"a")).unwrap();
        let due = match route.state().take(now) {
            Err(Some(due)) => due,
            other => panic!("{other:?}"),
        };
        assert!(due <= now + MAX_LINGER + std::time::Duration::from_millis(50));
        // ...and gathers what comes meanwhile; the program's end does not wait.
        route.push(output(true, b"b")).unwrap();
        route
            .push(AgentEvent::Exit {
                code: 0,
                error: None,
            })
            .unwrap();
        match route.state().take(now) {
            Ok(AgentEvent::Output { data, .. }) => assert_eq!(&data[..], b"ab"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reply_to_input_never_lingers() {
        let route = Route::default();
        let now = tokio::time::Instant::now();
        // A trickle of tiny output: each further chunk waits longer...
        for _ in 0..8 {
            route.push(output(true, b"x")).unwrap();
            let later = now + MAX_LINGER * 2;
            assert!(matches!(
                route.state().take(later),
                Ok(AgentEvent::Output { .. })
            ));
        }
        route.push(output(true, b"x")).unwrap();
        assert!(matches!(route.state().take(now), Err(Some(_))));
        assert!(matches!(
            route.state().take(now + MAX_LINGER * 2),
            Ok(AgentEvent::Output { .. })
        ));
        // ...but once the session sent input (a query, a keystroke), the answer is taken at
        // once, however recent the trickle.
        for _ in 0..3 {
            route.sent_input();
            route.push(output(true, b"answer")).unwrap();
            assert!(matches!(
                route.state().take(tokio::time::Instant::now()),
                Ok(AgentEvent::Output { .. })
            ));
        }
    }
}
