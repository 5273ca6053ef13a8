//! `hoop connect NAME` on a `postgres` connection: a local PostgreSQL endpoint.
//!
//! hoop listens on 127.0.0.1 and prints a DSN (and the psql command) with a one-time
//! password. Other local users can reach the port too, so a client is admitted only with
//! that password (an MD5 challenge; nothing reaches the gateway before it is answered).
//! Each admitted client gets a session of its own: its protocol bytes travel over a
//! `Connect` stream and the gateway logs in to the database with the connection's
//! credentials, which never come here. A cancel request (psql's Ctrl-C) is passed to the
//! gateway, which maps the key to the database's. Serves until interrupted.

use std::io::Write;

use anyhow::{Context, Result, anyhow};
use bytes::{Bytes, BytesMut};
use hoop_pg::frame::{Frame, Startup, next_frame, next_startup};
use hoop_pg::message as msg;
use hoop_proto::v1::session_event::Event;
use hoop_proto::v1::session_service_client::SessionServiceClient;
use hoop_proto::v1::{ConnectOpen, ConnectRequest, PostgresCancel, connect_request::Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Service;

/// The user name the DSN carries (the database user is the connection's).
const DSN_USER: &str = "hoop";
/// The longest password message a client may send (an MD5 answer is 36 bytes): anyone
/// local can connect, and nothing larger is read from them before they are admitted.
const MAX_PASSWORD_MESSAGE: usize = 1024;
/// How long a client may take to log in to the local endpoint.
const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the local endpoint until interrupted; returns the exit status.
pub(crate) async fn run(
    sessions: SessionServiceClient<Service>,
    connection: String,
    port: u16,
    access_duration: Option<prost_types::Duration>,
) -> Result<u8> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("cannot listen on 127.0.0.1:{port}: choose another port with --port (0: any free port)")
        })?;
    let local = listener.local_addr()?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    let dsn = format!(
        "postgres://{DSN_USER}:{password}@127.0.0.1:{}/{connection}?sslmode=disable",
        local.port()
    );
    let mut out = std::io::stdout();
    writeln!(
        out,
        "Serving postgres connection `{connection}` on 127.0.0.1:{} (Ctrl-C to stop).",
        local.port()
    )?;
    writeln!(out, "One-time password for this run; connect with:")?;
    writeln!(out, "{dsn}")?;
    // psql gets the password in its environment, which only this user can read, not in its
    // arguments, which every local user can (`ps`).
    writeln!(
        out,
        "PGPASSWORD={password} psql 'postgres://{DSN_USER}@127.0.0.1:{}/{connection}?sslmode=disable'",
        local.port()
    )?;
    out.flush()?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = tokio::signal::ctrl_c() => return Ok(0),
            _ = sigterm.recv() => return Ok(0),
        };
        let (socket, _) = match accepted {
            Ok(a) => a,
            Err(err) => {
                eprintln!("hoop: accepting a client: {err}");
                continue;
            }
        };
        let client = Client {
            sessions: sessions.clone(),
            connection: connection.clone(),
            password: password.clone(),
            access_duration,
        };
        tokio::spawn(async move {
            if let Err(err) = client.serve(socket).await {
                eprintln!("hoop: {err:#}");
            }
        });
    }
}

struct Client {
    sessions: SessionServiceClient<Service>,
    connection: String,
    password: String,
    access_duration: Option<prost_types::Duration>,
}

async fn write_frame(socket: &mut TcpStream, frame: Frame) -> Result<()> {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    socket.write_all(&out).await?;
    Ok(())
}

async fn read_more(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<()> {
    buf.reserve(8192);
    if socket.read_buf(buf).await? == 0 {
        return Err(anyhow!("the client left before logging in"));
    }
    Ok(())
}

impl Client {
    async fn serve(mut self, mut socket: TcpStream) -> Result<()> {
        let _ = socket.set_nodelay(true);
        let mut buf = BytesMut::new();
        let startup = tokio::time::timeout(LOGIN_TIMEOUT, async {
            loop {
                match next_startup(&mut buf)? {
                    Some(Startup::SslRequest | Startup::GssEncRequest) => {
                        socket.write_all(b"N").await?;
                    }
                    Some(s) => return Ok::<_, anyhow::Error>(s),
                    None => read_more(&mut socket, &mut buf).await?,
                }
            }
        })
        .await
        .map_err(|_| anyhow!("a client did not log in in time"))??;
        let params = match startup {
            Startup::Cancel {
                process_id,
                secret_key,
            } => return self.cancel(process_id, secret_key).await,
            Startup::Startup { params, .. } => params,
            _ => return Ok(()),
        };
        let user = params
            .iter()
            .find(|(k, _)| k == "user")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        // The one-time password, as an MD5 challenge.
        let salt: [u8; 4] = uuid::Uuid::new_v4().as_bytes()[..4]
            .try_into()
            .unwrap_or([7, 7, 7, 7]);
        write_frame(&mut socket, msg::authentication_md5(salt)).await?;
        let answer = tokio::time::timeout(LOGIN_TIMEOUT, async {
            loop {
                if buf.len() >= 5 {
                    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                    if usize::try_from(len).map_or(true, |l| l > MAX_PASSWORD_MESSAGE) {
                        // Answered as a wrong password, below.
                        return Ok(Frame::new(0, Bytes::new()));
                    }
                }
                if let Some(f) = next_frame(&mut buf)? {
                    return Ok::<_, anyhow::Error>(f);
                }
                read_more(&mut socket, &mut buf).await?;
            }
        })
        .await
        .map_err(|_| anyhow!("a client did not answer the password challenge in time"))??;
        if answer.tag != msg::tag::PASSWORD
            || !hoop_pg::auth::check_password(&answer.body, &user, &self.password, salt)
        {
            write_frame(
                &mut socket,
                msg::error(
                    "FATAL",
                    "28P01",
                    "password authentication failed: use the one-time password `hoop connect` printed",
                ),
            )
            .await?;
            eprintln!("hoop: refused a client with a wrong password");
            return Ok(());
        }
        self.relay(socket, &params, buf).await
    }

    /// Relays an admitted client over a Connect stream.
    async fn relay(
        &mut self,
        socket: TcpStream,
        params: &[(String, String)],
        rest: BytesMut,
    ) -> Result<()> {
        let (requests, queue) = mpsc::channel(16);
        requests
            .send(request(Request::Open(ConnectOpen {
                connection: self.connection.clone(),
                access_duration: self.access_duration,
                ..Default::default()
            })))
            .await?;
        let mut first = BytesMut::from(&hoop_pg::frame::encode_startup(params)[..]);
        first.extend_from_slice(&rest);
        requests
            .send(request(Request::Input(first.to_vec())))
            .await?;
        let mut events = self
            .sessions
            .connect(ReceiverStream::new(queue))
            .await
            .map_err(|s| anyhow!("{}", s.message()))?
            .into_inner();
        let (mut reader, mut writer) = socket.into_split();
        let reading = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if requests
                            .send(request(Request::Input(buf[..n].to_vec())))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            let _ = requests
                .send(request(Request::CloseStdin(Default::default())))
                .await;
        });
        let result = loop {
            match events.message().await {
                Ok(Some(event)) => match event.event {
                    Some(Event::Output(o)) if writer.write_all(&o.data).await.is_err() => {
                        break Ok(());
                    }
                    Some(Event::Output(_)) => {}
                    Some(Event::Held(h)) => {
                        eprintln!(
                            "hoop: session held for review {} ({}); waiting for approval",
                            h.review_id, h.reason
                        );
                    }
                    Some(Event::Started(s)) => eprintln!("hoop: session {}", s.session_id),
                    Some(Event::Exit(e)) => {
                        if e.exit_code != 0 {
                            eprintln!("hoop: session ended: {}", e.reason);
                        }
                        break Ok(());
                    }
                    None => {}
                },
                Ok(None) => break Ok(()),
                Err(status) => {
                    let _ = writer.write_all(&fatal_bytes(status.message())).await;
                    break Err(anyhow!("{}", status.message()));
                }
            }
        };
        reading.abort();
        let _ = writer.shutdown().await;
        result
    }

    async fn cancel(&mut self, process_id: u32, secret_key: u32) -> Result<()> {
        let (requests, queue) = mpsc::channel(1);
        requests
            .send(request(Request::Open(ConnectOpen {
                connection: self.connection.clone(),
                postgres_cancel: Some(PostgresCancel {
                    process_id,
                    secret_key,
                }),
                ..Default::default()
            })))
            .await?;
        drop(requests);
        let mut events = self
            .sessions
            .connect(ReceiverStream::new(queue))
            .await
            .map_err(|s| anyhow!("cancel: {}", s.message()))?
            .into_inner();
        while let Ok(Some(_)) = events.message().await {}
        Ok(())
    }
}

fn fatal_bytes(message: &str) -> Bytes {
    let mut out = BytesMut::new();
    msg::error("FATAL", "08006", message).encode(&mut out);
    out.freeze()
}

fn request(r: Request) -> ConnectRequest {
    ConnectRequest { request: Some(r) }
}
