//! The byte stream between the gateway and a `postgres` connection's database: the agent
//! relays TCP bytes; TLS, when `SSLMODE` asks for it, runs between the gateway and the
//! database over those bytes (SSLRequest, `S`, then the handshake through the tunnel), so
//! the agent and the link to it never see the database's traffic in the clear.
//!
//! TLS is driven in place (rustls' `ClientConnection`, no task of its own): what the
//! session sends is encrypted into agent input; agent output is decrypted as the session
//! takes it. A TLS session costs no extra task hop per message.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use hoop_pg::target::{PgTarget, SslMode};
use hoop_pg::tls::TlsSettings;
use hoop_proto::v1 as pb;
use rustls::ClientConnection;

use crate::agents::{AgentEvent, AgentSession, Agents, INPUT_PIECE};

/// Room kept in the agent's window for TLS framing when plain bytes are checked against it
/// (a record adds at most a few dozen bytes to 16 KiB of data).
const TLS_OVERHEAD: usize = 1024;

/// The database's side of a session: plain bytes, or TLS over them.
pub(crate) enum DbLink {
    /// The agent's bytes are the protocol.
    Plain(AgentSession),
    /// TLS between the gateway and the database.
    Tls(Box<TlsLink>),
}

/// A TLS session over an agent's bytes.
pub(crate) struct TlsLink {
    remote: AgentSession,
    conn: ClientConnection,
    /// Decrypted bytes not handed out yet.
    plain: BytesMut,
    /// Encrypted bytes received from the agent and not acknowledged yet.
    unacked: usize,
    /// Why the TLS session failed, to report as its end.
    failed: Option<String>,
}

impl TlsLink {
    /// Takes encrypted bytes from the database; the plain bytes go to `self.plain`.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            let n = self
                .conn
                .read_tls(&mut data)
                .map_err(|e| format!("TLS with the database: {e}"))?;
            if n == 0 {
                return Err("TLS with the database: rustls took no more bytes".to_owned());
            }
            self.conn
                .process_new_packets()
                .map_err(|e| format!("TLS with the database: {e}"))?;
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.conn.reader().read(&mut buf) {
                // The database's close_notify: the agent's end follows.
                Ok(0) => return Ok(()),
                Ok(n) => self.plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(format!("TLS with the database: {e}")),
            }
        }
    }

    /// Sends what rustls has to send (records, alerts), in pieces the agent takes.
    async fn flush(&mut self) -> Result<(), String> {
        while self.conn.wants_write() {
            let mut out = BytesMut::new().writer();
            self.conn
                .write_tls(&mut out)
                .map_err(|e| format!("TLS with the database: {e}"))?;
            let mut out = out.into_inner();
            while !out.is_empty() {
                let n = out.len().min(INPUT_PIECE);
                self.remote
                    .input(out.split_to(n).freeze())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

impl DbLink {
    /// The agent's name.
    pub(crate) fn agent(&self) -> &str {
        match self {
            DbLink::Plain(remote) => remote.agent(),
            DbLink::Tls(tls) => tls.remote.agent(),
        }
    }

    /// The next event (cancel-safe). Over TLS, `Output` carries plain bytes.
    pub(crate) async fn next(&mut self) -> AgentEvent {
        match self {
            DbLink::Plain(remote) => remote.next().await,
            DbLink::Tls(tls) => loop {
                if !tls.plain.is_empty() {
                    return AgentEvent::Output {
                        stdout: true,
                        data: tls.plain.split().freeze(),
                    };
                }
                if let Some(error) = tls.failed.take() {
                    return AgentEvent::Exit {
                        code: 1,
                        error: Some(error),
                    };
                }
                match tls.remote.next().await {
                    AgentEvent::Output { data, .. } => {
                        tls.unacked += data.len();
                        if let Err(e) = tls.feed(&data) {
                            tls.failed = Some(e);
                        }
                    }
                    other => return other,
                }
            },
        }
    }

    /// Whether `len` more bytes of input (at most [`INPUT_PIECE`]) can be sent now.
    pub(crate) fn input_fits(&self, len: usize) -> bool {
        match self {
            DbLink::Plain(remote) => remote.input_fits(len),
            DbLink::Tls(tls) => tls.remote.input_fits(len + TLS_OVERHEAD),
        }
    }

    /// Sends input (at most [`INPUT_PIECE`] bytes; call only when [`Self::input_fits`]).
    pub(crate) async fn input(&mut self, data: Bytes) -> Result<(), String> {
        match self {
            DbLink::Plain(remote) => remote.input(data).await.map_err(|e| e.to_string()),
            DbLink::Tls(tls) => {
                tls.conn
                    .writer()
                    .write_all(&data)
                    .map_err(|e| format!("TLS with the database: {e}"))?;
                tls.flush().await
            }
        }
    }

    /// Acknowledges output as delivered: `n` bytes (over TLS, all the encrypted bytes
    /// taken so far: their plain size differs).
    pub(crate) async fn ack_output(&mut self, n: usize) -> Result<(), String> {
        match self {
            DbLink::Plain(remote) => remote.ack_output(n).await.map_err(|e| e.to_string()),
            DbLink::Tls(tls) => {
                let n = std::mem::take(&mut tls.unacked);
                if n == 0 {
                    return Ok(());
                }
                tls.remote.ack_output(n).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Closes the input. Over TLS without a close_notify: the session's input ends with
    /// Terminate (or a cancel request), after which the database closes the connection, and
    /// an alert arriving after that would only make its socket reset the connection.
    pub(crate) async fn close_input(&mut self) -> Result<(), String> {
        match self {
            DbLink::Plain(remote) => remote.close_input().await.map_err(|e| e.to_string()),
            DbLink::Tls(tls) => {
                let flushed = tls.flush().await;
                let closed = tls.remote.close_input().await.map_err(|e| e.to_string());
                flushed.and(closed)
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
    let conn = ClientConnection::new(Arc::clone(&tls.config), tls.server_name.clone())
        .map_err(|e| OpenError::Tls(format!("TLS with the database: {e}")))?;
    let mut link = TlsLink {
        remote,
        conn,
        plain: BytesMut::new(),
        unacked: 0,
        failed: None,
    };
    let failed = |err: String| {
        OpenError::Tls(format!(
            "TLS with the database failed (SSLMODE={}): {}",
            target.sslmode,
            err.trim_start_matches("TLS with the database: ")
        ))
    };
    // The handshake, through the tunnel.
    loop {
        link.flush().await.map_err(failed)?;
        if !link.conn.is_handshaking() {
            break;
        }
        match link.remote.next().await {
            AgentEvent::Output { data, .. } => {
                link.remote
                    .ack_output(data.len())
                    .await
                    .map_err(|e| OpenError::Gone(e.to_string()))?;
                link.feed(&data).map_err(failed)?;
            }
            AgentEvent::Spawned | AgentEvent::InputAck(_) => {}
            AgentEvent::Exit { error, .. } => {
                return Err(failed(error.unwrap_or_else(|| {
                    "the database closed the connection during the handshake".to_owned()
                })));
            }
            AgentEvent::Lost(reason) => return Err(OpenError::Gone(reason)),
        }
    }
    Ok(DbLink::Tls(Box::new(link)))
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
        // Set by `Agents::start`.
        output_window: 0,
    }
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
