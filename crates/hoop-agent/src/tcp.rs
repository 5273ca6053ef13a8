//! Sessions that relay a TCP connection instead of running a program (`AgentStart.tcp`):
//! the agent connects to the target (a database, for the gateway's protocol proxies) and
//! relays bytes both ways, each direction on a task of its own so that neither stalls the
//! other. Output follows the same window as a program's (the reader stops when the
//! session's output window, [`output_window`], is unacknowledged); input is acknowledged
//! once written to the socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_message::Message as Out;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

use crate::exec::CANNOT_START;
use crate::output_window;
use crate::session::Control;

/// How long connecting to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Size of one read from the socket.
const READ_CHUNK: usize = 32 * 1024;
/// Input written is acknowledged once this much has gathered (well under the gateway's
/// window, so the gateway never waits for an acknowledgement that is not coming), not after
/// every write: a query/response round trip then carries no acknowledgement of its own.
const ACK_EVERY: u64 = 32 * 1024;

fn message(message: Out) -> pb::AgentMessage {
    pb::AgentMessage {
        message: Some(message),
    }
}

/// What the writer task is asked to do.
enum Write {
    Data(bytes::Bytes),
    Shutdown,
}

/// Runs a TCP relay session to its end; returns its id.
pub(crate) async fn run(
    start: pb::AgentStart,
    mut controls: mpsc::UnboundedReceiver<Control>,
    outgoing: mpsc::Sender<pb::AgentMessage>,
) -> String {
    let id = start.session_id.clone();
    let exit = |code: i32, error: String| {
        message(Out::Exit(pb::AgentExit {
            session_id: id.clone(),
            exit_code: code,
            error,
        }))
    };
    let Some(target) = start.tcp else {
        return id;
    };
    if !start.argv.is_empty() {
        let _ = outgoing
            .send(exit(
                CANNOT_START,
                "a TCP session takes no program (argv must be empty)".to_owned(),
            ))
            .await;
        return id;
    }
    let port = u16::try_from(target.port).ok().filter(|p| *p > 0);
    let Some(port) = port else {
        let _ = outgoing
            .send(exit(CANNOT_START, format!("invalid port {}", target.port)))
            .await;
        return id;
    };
    let host = target.host.clone();
    // Input may arrive while connecting: it is kept for once the socket is there.
    let mut early = Vec::new();
    let connected = tokio::select! {
        c = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port))) => c,
        () = ended(&mut controls, &mut early) => return id,
    };
    let stream = match connected {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            let _ = outgoing
                .send(exit(
                    CANNOT_START,
                    format!("cannot connect to {host}:{port}: {err}"),
                ))
                .await;
            return id;
        }
        Err(_) => {
            let _ = outgoing
                .send(exit(
                    CANNOT_START,
                    format!("cannot connect to {host}:{port}: timed out"),
                ))
                .await;
            return id;
        }
    };
    let _ = stream.set_nodelay(true);
    tracing::info!(session = %id, target = %format!("{host}:{port}"), "tcp session connected");
    if outgoing
        .send(message(Out::Spawned(pb::AgentSpawned {
            session_id: id.clone(),
            pid: 0,
        })))
        .await
        .is_err()
    {
        return id;
    }
    let (mut reader, mut writer) = stream.into_split();
    let unacked = Arc::new(AtomicU64::new(0));
    let window = output_window(start.output_window);
    let acked = Arc::new(Notify::new());

    // Socket to gateway, within the output window.
    let read_task = {
        let outgoing = outgoing.clone();
        let unacked = Arc::clone(&unacked);
        let acked = Arc::clone(&acked);
        let id = id.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let room = loop {
                    let notified = acked.notified();
                    let room = window.saturating_sub(unacked.load(Ordering::Acquire));
                    if room > 0 {
                        break room;
                    }
                    notified.await;
                };
                let cap = usize::try_from(room).unwrap_or(READ_CHUNK).min(READ_CHUNK);
                match reader.read(&mut buf[..cap]).await {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        unacked.fetch_add(n as u64, Ordering::AcqRel);
                        let out = message(Out::Output(pb::AgentOutput {
                            session_id: id.clone(),
                            stream: pb::OutputStream::Stdout as i32,
                            data: bytes::Bytes::copy_from_slice(&buf[..n]),
                        }));
                        if outgoing.send(out).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(err) => return Err(err.to_string()),
                }
            }
        })
    };

    // Gateway to socket, acknowledged once written.
    let (write_tx, mut write_rx) = mpsc::unbounded_channel::<Write>();
    let write_task = {
        let outgoing = outgoing.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let mut written = 0u64;
            while let Some(w) = write_rx.recv().await {
                match w {
                    Write::Data(data) => {
                        if let Err(err) = writer.write_all(&data).await {
                            return Err(err.to_string());
                        }
                        written += data.len() as u64;
                        if written < ACK_EVERY {
                            continue;
                        }
                        let ack = message(Out::InputAck(pb::AgentInputAck {
                            session_id: id.clone(),
                            bytes: std::mem::take(&mut written),
                        }));
                        if outgoing.send(ack).await.is_err() {
                            return Ok(());
                        }
                    }
                    Write::Shutdown => {
                        let _ = writer.shutdown().await;
                    }
                }
            }
            Ok(())
        })
    };
    let mut read_task = read_task;
    let mut early = early.into_iter();
    let result = loop {
        if let Some(control) = early.next() {
            match control {
                Control::Input(data) => {
                    let _ = write_tx.send(Write::Data(data));
                }
                Control::CloseInput => {
                    let _ = write_tx.send(Write::Shutdown);
                }
                Control::OutputAck(n) => {
                    let _ = unacked.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                        Some(u.saturating_sub(n))
                    });
                    acked.notify_one();
                }
                _ => {}
            }
            continue;
        }
        tokio::select! {
            done = &mut read_task => {
                break match done {
                    Ok(Ok(())) => Some((0, String::new())),
                    Ok(Err(err)) => Some((1, format!("reading from {host}:{port}: {err}"))),
                    Err(_) => Some((1, "the relay failed".to_owned())),
                };
            }
            control = controls.recv() => match control {
                Some(Control::Input(data)) => {
                    let _ = write_tx.send(Write::Data(data));
                }
                Some(Control::CloseInput) => {
                    let _ = write_tx.send(Write::Shutdown);
                }
                Some(Control::OutputAck(n)) => {
                    let _ = unacked.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
                    acked.notify_one();
                }
                Some(Control::Resize(_)) => {}
                Some(Control::Kill) => break Some((137, String::new())),
                None | Some(Control::GatewayGone) => break None,
            }
        }
    };
    read_task.abort();
    write_task.abort();
    tracing::info!(session = %id, "tcp session ended");
    if let Some((code, error)) = result {
        let _ = outgoing.send(exit(code, error)).await;
    }
    id
}

/// Resolves when the session is killed or the gateway is gone; keeps the other controls in
/// `early`, in order.
async fn ended(controls: &mut mpsc::UnboundedReceiver<Control>, early: &mut Vec<Control>) {
    loop {
        match controls.recv().await {
            None | Some(Control::Kill | Control::GatewayGone) => return,
            Some(other) => early.push(other),
        }
    }
}
