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
/// Events queued per session; an agent that overruns it broke the output window.
const ROUTE_QUEUE: usize = 512;

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
    routes: Mutex<HashMap<String, mpsc::Sender<AgentEvent>>>,
    /// Turns `Some(reason)` when the gateway cuts the link off.
    cut: watch::Sender<Option<String>>,
}

type GatewayMessage = pb::GatewayMessage;

impl Link {
    fn route(&self, session: &str) -> Option<mpsc::Sender<AgentEvent>> {
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
            let _ = route.try_send(AgentEvent::Lost(reason.clone()));
        }
        tracing::warn!(agent = %name, reason = %reason, "agent link ended");
        reason
    }

    /// Gives a session to agent `name`: sends the start and returns the session's end of
    /// the link.
    pub(crate) async fn start(
        &self,
        name: &str,
        start: pb::AgentStart,
    ) -> Result<AgentSession, AgentError> {
        let link = self
            .links
            .lock()
            .ok()
            .and_then(|l| l.get(name).cloned())
            .ok_or_else(|| AgentError::Offline(name.to_owned()))?;
        let id = start.session_id.clone();
        let (tx, events) = mpsc::channel(ROUTE_QUEUE);
        if let Ok(mut routes) = link.routes.lock() {
            routes.insert(id.clone(), tx);
        }
        let session = AgentSession {
            link,
            id,
            events,
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
    if let Some(tx) = link.route(&session) {
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(event) {
            // The agent sent more than the window allows: that session cannot be trusted
            // to be complete. It ends; the others go on.
            link.unroute(&session);
            let _ = tx.try_send(AgentEvent::Lost(format!(
                "agent `{}` sent more output than the flow-control window allows",
                link.name
            )));
        }
        if exit {
            link.unroute(&session);
        }
    }
    Ok(())
}

/// A session's end of its agent's link. Dropped before the agent said the program ended,
/// it tells the agent to kill it.
#[derive(Debug)]
pub(crate) struct AgentSession {
    link: Arc<Link>,
    id: String,
    events: mpsc::Receiver<AgentEvent>,
    unacked_input: u64,
    ended: bool,
}

impl AgentSession {
    /// The agent's name.
    pub(crate) fn agent(&self) -> &str {
        &self.link.name
    }

    /// The next event; `Lost` when the link ended.
    pub(crate) async fn next(&mut self) -> AgentEvent {
        let event =
            self.events.recv().await.unwrap_or_else(|| {
                AgentEvent::Lost(format!("agent `{}` went away", self.link.name))
            });
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
