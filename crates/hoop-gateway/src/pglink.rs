//! The byte stream between the gateway and a `postgres` connection's database: the agent
//! relays TCP bytes; TLS, when `SSLMODE` asks for it, runs between the gateway and the
//! database over those bytes (SSLRequest, `S`, then the handshake through the tunnel), so
//! the agent and the link to it never see the database's traffic in the clear.
//!
//! A TLS link runs two tasks: a bridge between the agent's session and an in-memory pipe
//! (windows and acknowledgements as for every agent session), and a pump between the TLS
//! stream over that pipe and the session (plain bytes, in channels). Each direction moves
//! on its own, so a client that sends a lot while the database answers a lot cannot wedge
//! either.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use hoop_pg::target::{PgTarget, SslMode};
use hoop_pg::tls::TlsSettings;
use hoop_proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::agents::{AgentEvent, AgentSession, Agents, INPUT_PIECE};

/// Bytes the in-memory pipe under a TLS stream holds each way.
const PIPE: usize = 64 * 1024;
/// Plain input given to the TLS stream and not yet written to it (the TLS link's window,
/// as the agent's is for plain bytes).
const TLS_WINDOW: usize = 256 * 1024;
/// Pieces of plain output queued towards the session.
const FROM_TLS_QUEUE: usize = 8;

/// The database's side of a session: plain bytes, or TLS over them.
pub(crate) enum DbLink {
    /// The agent's bytes are the protocol.
    Plain(AgentSession),
    /// TLS between the gateway and the database.
    Tls(TlsLink),
}

/// A TLS session over an agent's bytes (see the module's documentation).
pub(crate) struct TlsLink {
    agent: String,
    /// Input sent and not yet acknowledged by the pump (`InputAck`).
    unacked: usize,
    to_tls: Option<mpsc::UnboundedSender<Bytes>>,
    from_tls: mpsc::Receiver<AgentEvent>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for TlsLink {
    fn drop(&mut self) {
        // The bridge's agent session ends with it (the agent is told to kill it).
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl DbLink {
    /// The agent's name.
    pub(crate) fn agent(&self) -> &str {
        match self {
            DbLink::Plain(remote) => remote.agent(),
            DbLink::Tls(tls) => &tls.agent,
        }
    }

    /// The next event (cancel-safe). Over TLS: `Output` with plain bytes, then `Exit`.
    pub(crate) async fn next(&mut self) -> AgentEvent {
        match self {
            DbLink::Plain(remote) => remote.next().await,
            DbLink::Tls(tls) => {
                let event = tls.from_tls.recv().await.unwrap_or_else(|| {
                    AgentEvent::Lost("the TLS session with the database ended".to_owned())
                });
                if let AgentEvent::InputAck(n) = &event {
                    tls.unacked = tls.unacked.saturating_sub(usize::try_from(*n).unwrap_or(0));
                }
                event
            }
        }
    }

    /// Whether `len` more bytes of input (at most [`INPUT_PIECE`]) can be sent now.
    pub(crate) fn input_fits(&self, len: usize) -> bool {
        match self {
            DbLink::Plain(remote) => remote.input_fits(len),
            DbLink::Tls(tls) => {
                tls.to_tls.is_some()
                    && (tls.unacked == 0 || tls.unacked.saturating_add(len) <= TLS_WINDOW)
            }
        }
    }

    /// Sends input (at most [`INPUT_PIECE`] bytes; call only when [`Self::input_fits`]).
    pub(crate) async fn input(&mut self, data: Bytes) -> Result<(), String> {
        match self {
            DbLink::Plain(remote) => remote.input(data).await.map_err(|e| e.to_string()),
            DbLink::Tls(tls) => match &tls.to_tls {
                Some(to) => {
                    tls.unacked = tls.unacked.saturating_add(data.len());
                    to.send(data)
                        .map_err(|_| "the TLS session with the database ended".to_owned())
                }
                None => Err("input to the database was closed".to_owned()),
            },
        }
    }

    /// Acknowledges `n` bytes of output as delivered (over TLS, the channels carry the
    /// back-pressure: nothing to do).
    pub(crate) async fn ack_output(&self, n: usize) -> Result<(), String> {
        match self {
            DbLink::Plain(remote) => remote.ack_output(n).await.map_err(|e| e.to_string()),
            DbLink::Tls(_) => Ok(()),
        }
    }

    /// Closes the input (over TLS: close_notify, then the agent closes its side).
    pub(crate) async fn close_input(&mut self) -> Result<(), String> {
        match self {
            DbLink::Plain(remote) => remote.close_input().await.map_err(|e| e.to_string()),
            DbLink::Tls(tls) => {
                tls.to_tls = None;
                Ok(())
            }
        }
    }
}

/// How a link to the database starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// No SSLRequest.
    Plain,
    /// SSLRequest; plain on the same connection if the database answers `N`.
    TlsIfOffered,
    /// SSLRequest; the database must answer `S` and the handshake must succeed.
    Tls,
}

/// Why a link could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The agent did not take the session (offline, gone).
    Agent(String),
    /// The agent could not reach the database, or the connection ended.
    Gone(String),
    /// TLS was asked for and did not happen: refused by the database, a failed handshake,
    /// a certificate that does not pass.
    Tls(String),
}

/// Opens the agent's TCP session `id` to the database and negotiates TLS as `want` says.
/// Nothing but an SSLRequest is sent before TLS is up: never a password.
pub(crate) async fn open(
    agents: &Agents,
    agent: &str,
    id: &str,
    target: &PgTarget,
    tls: Option<&TlsSettings>,
    want: Want,
) -> Result<DbLink, OpenError> {
    let mut remote = agents
        .start(agent, tcp_start(id, &target.host, target.port))
        .await
        .map_err(|e| OpenError::Agent(e.to_string()))?;
    let tls = match (want, tls) {
        (Want::Plain, _) => return Ok(DbLink::Plain(remote)),
        (_, Some(tls)) => tls,
        (_, None) => {
            return Err(OpenError::Tls(
                "TLS is not configured for this connection".to_owned(),
            ));
        }
    };
    remote
        .input(hoop_pg::frame::encode_ssl_request())
        .await
        .map_err(|e| OpenError::Gone(e.to_string()))?;
    let answer = loop {
        match remote.next().await {
            AgentEvent::Output { data, .. } if data.is_empty() => {}
            AgentEvent::Output { data, .. } => {
                remote
                    .ack_output(data.len())
                    .await
                    .map_err(|e| OpenError::Gone(e.to_string()))?;
                if data.len() > 1 {
                    // What follows the answer came before any encryption: whoever sent it
                    // is not to be trusted (CVE-2021-23222).
                    return Err(OpenError::Tls(
                        "the database sent unencrypted data after its answer to the \
                         SSLRequest: refusing to go on"
                            .to_owned(),
                    ));
                }
                break data[0];
            }
            AgentEvent::Spawned | AgentEvent::InputAck(_) => {}
            AgentEvent::Exit { error, .. } => {
                return Err(OpenError::Gone(error.unwrap_or_else(|| {
                    "the database closed the connection".to_owned()
                })));
            }
            AgentEvent::Lost(reason) => return Err(OpenError::Gone(reason)),
        }
    };
    match (answer, want) {
        (b'S', _) => {}
        (b'N', Want::TlsIfOffered) => return Ok(DbLink::Plain(remote)),
        (b'N', _) => {
            return Err(OpenError::Tls(format!(
                "the database does not accept TLS (it answered `N` to the SSLRequest) and \
                 SSLMODE={} requires it: nothing else was sent",
                target.sslmode
            )));
        }
        (other, _) => {
            return Err(OpenError::Tls(format!(
                "the server answered the SSLRequest with {:?}: not a PostgreSQL server",
                char::from(other)
            )));
        }
    }
    let agent_name = remote.agent().to_owned();
    let (ours, theirs) = tokio::io::duplex(PIPE);
    let status = Arc::new(Mutex::new(None));
    let bridge = tokio::spawn(bridge(remote, theirs, Arc::clone(&status)));
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
    let stream = match connector.connect(tls.server_name.clone(), ours).await {
        Ok(s) => s,
        Err(err) => {
            bridge.abort();
            let mut message = format!(
                "TLS with the database failed (SSLMODE={}): {err}",
                target.sslmode
            );
            if let Some(reason) = status.lock().ok().and_then(|mut s| s.take()) {
                message = format!("{message} ({reason})");
            }
            return Err(OpenError::Tls(message));
        }
    };
    let (to_tls, to_tls_rx) = mpsc::unbounded_channel();
    let (from_tls_tx, from_tls) = mpsc::channel(FROM_TLS_QUEUE);
    let pump = tokio::spawn(pump(stream, to_tls_rx, from_tls_tx, status));
    Ok(DbLink::Tls(TlsLink {
        agent: agent_name,
        unacked: 0,
        to_tls: Some(to_tls),
        from_tls,
        tasks: [bridge, pump],
    }))
}

/// The agent's start of a TCP session to `host:port`.
pub(crate) fn tcp_start(id: &str, host: &str, port: u16) -> pb::AgentStart {
    pb::AgentStart {
        session_id: id.to_owned(),
        argv: Vec::new(),
        env: Default::default(),
        terminal: None,
        tcp: Some(pb::TcpTarget {
            host: host.to_owned(),
            port: u32::from(port),
        }),
    }
}

/// Moves bytes between the agent's session and the pipe under the TLS stream: input in
/// pieces that fit the agent's window, output acknowledged once the pipe took it. Records
/// why the agent's side ended, if it failed, in `status`.
async fn bridge(mut remote: AgentSession, io: DuplexStream, status: Arc<Mutex<Option<String>>>) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut pending: VecDeque<Bytes> = VecDeque::new();
    let mut input = BytesMut::new();
    let mut reading = true;
    let mut input_closed = false;
    let mut ended = false;
    let fail = |reason: String| {
        if let Ok(mut s) = status.lock() {
            *s = Some(reason);
        }
    };
    loop {
        while !input.is_empty() {
            let n = input.len().min(INPUT_PIECE);
            if !remote.input_fits(n) {
                break;
            }
            if let Err(e) = remote.input(input.split_to(n).freeze()).await {
                fail(e.to_string());
                return;
            }
        }
        if !reading && input.is_empty() && !input_closed {
            input_closed = true;
            let _ = remote.close_input().await;
        }
        if ended && pending.is_empty() {
            // The database's end: the TLS stream reads it as the end of the connection.
            let _ = wr.shutdown().await;
            return;
        }
        let front: &[u8] = pending.front().map(|b| &b[..]).unwrap_or_default();
        tokio::select! {
            event = remote.next(), if !ended => match event {
                AgentEvent::Output { data, .. } => pending.push_back(data),
                AgentEvent::Spawned | AgentEvent::InputAck(_) => {}
                AgentEvent::Exit { error, .. } => {
                    if let Some(e) = error {
                        fail(e);
                    }
                    ended = true;
                }
                AgentEvent::Lost(reason) => {
                    fail(reason);
                    ended = true;
                }
            },
            written = wr.write(front), if !pending.is_empty() => match written {
                Ok(n) if n > 0 => {
                    if let Some(first) = pending.front_mut() {
                        first.advance(n);
                        if first.is_empty() {
                            pending.pop_front();
                        }
                    }
                    if !ended && remote.ack_output(n).await.is_err() {
                        ended = true;
                    }
                }
                // The TLS side is gone: so is the session.
                _ => return,
            },
            read = rd.read_buf(&mut input), if reading && input.is_empty() => {
                if !matches!(read, Ok(n) if n > 0) {
                    reading = false;
                }
            }
        }
    }
}

/// Moves plain bytes between the session and the TLS stream, each direction on its own.
/// Input written to the stream is acknowledged (`InputAck`), as an agent does, so that the
/// session's sender sees room as it opens.
async fn pump(
    stream: tokio_rustls::client::TlsStream<DuplexStream>,
    mut input: mpsc::UnboundedReceiver<Bytes>,
    output: mpsc::Sender<AgentEvent>,
    status: Arc<Mutex<Option<String>>>,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let acks = output.clone();
    let writer = async move {
        while let Some(data) = input.recv().await {
            if wr.write_all(&data).await.is_err() {
                return;
            }
            if input.is_empty() && wr.flush().await.is_err() {
                return;
            }
            if acks
                .send(AgentEvent::InputAck(data.len() as u64))
                .await
                .is_err()
            {
                return;
            }
        }
        // The session closed its input: close_notify, then the end of the pipe.
        let _ = wr.shutdown().await;
    };
    let reader = async move {
        let mut buf = BytesMut::new();
        let failure = loop {
            buf.reserve(16 * 1024);
            match rd.read_buf(&mut buf).await {
                Ok(0) => break None,
                Ok(_) => {
                    let data = buf.split().freeze();
                    if output
                        .send(AgentEvent::Output { stdout: true, data })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // A database that closes without close_notify (as PostgreSQL may): the
                // end of the connection all the same.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break None,
                Err(e) => break Some(format!("TLS with the database: {e}")),
            }
        };
        let agent = status.lock().ok().and_then(|mut s| s.take());
        let error = agent.or(failure);
        let code = i32::from(error.is_some());
        let _ = output.send(AgentEvent::Exit { code, error }).await;
    };
    tokio::join!(writer, reader);
}

/// How to try the connection's `SSLMODE`: the first attempt, and the fallback when it
/// fails in the way libpq falls back.
pub(crate) fn attempts(mode: SslMode) -> (Want, Option<Want>) {
    match mode {
        SslMode::Disable => (Want::Plain, None),
        // Plain first; TLS if the database refuses the plain login.
        SslMode::Allow => (Want::Plain, Some(Want::Tls)),
        // TLS if offered; plain (a new connection) if the handshake fails.
        SslMode::Prefer => (Want::TlsIfOffered, Some(Want::Plain)),
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => (Want::Tls, None),
    }
}
