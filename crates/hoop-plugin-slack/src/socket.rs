//! Socket Mode: interactivity without a public URL. The plugin asks `apps.connections.open`
//! (app token) for a WebSocket URL, waits for Slack's `hello`, acknowledges every envelope
//! at once by its `envelope_id` (Slack redelivers what is not acknowledged within 3 s), and
//! handles `interactive` payloads on their own tasks. A watchdog drops the connection and
//! opens a new one when no message or ping arrived for `socket_watchdog` (60 s by
//! default), and Slack's `disconnect` (it rotates connections) is followed by a new one at
//! once. The state and the last error show in `ListPlugins`.
//!
//! slack-morphism's own Socket Mode listener is not used: it exposes neither its connection
//! state nor a silence watchdog (it only counts missing pongs), both of which this plugin
//! must show and control; its Web API client is.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hoop_core::Cancellation;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::runtime::{Ctx, SocketState};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs until the host stops.
pub(crate) async fn run(ctx: Arc<Ctx>, cancel: Cancellation) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        ctx.health.socket(SocketState::Connecting, None);
        let outcome = tokio::select! {
            outcome = connect_once(&ctx) => outcome,
            () = cancel.cancelled() => return,
        };
        let (healthy, why) = match outcome {
            Ok(why) => (true, why),
            Err(why) => (false, why),
        };
        tracing::info!(reason = %why, "slack: Socket Mode connection ended; reconnecting");
        ctx.health.socket(SocketState::Disconnected, Some(why));
        if healthy {
            backoff = FIRST_BACKOFF;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection, until it ends: `Ok(why)` after a working connection (reconnect at once),
/// `Err(why)` when it could not be opened.
async fn connect_once(ctx: &Arc<Ctx>) -> Result<String, String> {
    let url = ctx
        .api
        .open_socket()
        .await
        .map_err(|e| format!("apps.connections.open: {e}"))?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("cannot open the WebSocket: {}", ws_error(&e)))?;
    let watchdog = ctx.settings.socket_watchdog;
    loop {
        let next = match tokio::time::timeout(watchdog, ws.next()).await {
            Ok(next) => next,
            Err(_) => {
                let _ = ws.close(None).await;
                return Ok(format!(
                    "watchdog: no message or ping for {}s",
                    watchdog.as_secs()
                ));
            }
        };
        let message = match next {
            None => return Ok("closed by Slack".to_owned()),
            Some(Err(e)) => return Ok(format!("WebSocket error: {}", ws_error(&e))),
            Some(Ok(message)) => message,
        };
        let text = match message {
            Message::Text(text) => text.to_string(),
            Message::Close(_) => return Ok("closed by Slack".to_owned()),
            // Pings are answered by the library (on the next read or write); they count as
            // signs of life.
            _ => continue,
        };
        let Ok(envelope) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match envelope.get("type").and_then(Value::as_str) {
            Some("hello") => {
                tracing::info!("slack: Socket Mode connected");
                ctx.health.socket(SocketState::Connected, None);
            }
            Some("disconnect") => {
                let _ = ws.close(None).await;
                return Ok("Slack asked to reconnect".to_owned());
            }
            kind => {
                if let Some(id) = envelope.get("envelope_id").and_then(Value::as_str) {
                    let ack = json!({"envelope_id": id}).to_string();
                    if let Err(e) = ws.send(Message::Text(ack.into())).await {
                        return Ok(format!("cannot acknowledge: {}", ws_error(&e)));
                    }
                }
                if kind == Some("interactive")
                    && let Some(payload) = envelope.get("payload").cloned()
                {
                    tokio::spawn(crate::interact::handle(Arc::clone(ctx), payload));
                }
            }
        }
    }
}

/// A WebSocket error in words, without the URL (it carries a connection ticket).
fn ws_error(err: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match err {
        E::ConnectionClosed | E::AlreadyClosed => "connection closed".to_owned(),
        E::Io(e) => format!("I/O: {}", e.kind()),
        E::Tls(_) => "TLS failed".to_owned(),
        E::Http(response) => format!("HTTP {}", response.status()),
        E::Protocol(e) => format!("protocol: {e}"),
        E::Url(_) => "bad URL".to_owned(),
        _ => "error".to_owned(),
    }
}
