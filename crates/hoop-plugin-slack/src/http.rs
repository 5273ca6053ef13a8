//! Interactivity over HTTP, for apps that do not use Socket Mode: Slack posts clicks and
//! modal submissions to `http://<http_listen>/slack/interactivity` (put it behind a TLS
//! proxy with a public URL). Every request must carry a valid `X-Slack-Signature` for its
//! `X-Slack-Request-Timestamp` made with the app's signing secret, and a timestamp at most
//! five minutes old (no replays); anything else is refused with 401 and not read further.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hoop_core::Cancellation;
use slack_morphism::SlackSigningSecret;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;

use crate::runtime::Ctx;

/// The path Slack's Interactivity Request URL points at.
pub const PATH: &str = "/slack/interactivity";

#[derive(Clone)]
struct Endpoint {
    ctx: Arc<Ctx>,
    verifier: Arc<SlackEventSignatureVerifier>,
}

/// Serves the endpoint on `listener` until the host stops.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<Ctx>,
    secret: String,
    cancel: Cancellation,
) {
    let endpoint = Endpoint {
        ctx,
        verifier: Arc::new(SlackEventSignatureVerifier::new(&SlackSigningSecret::new(
            secret,
        ))),
    };
    let app = axum::Router::new()
        .route(PATH, post(interactivity))
        .with_state(endpoint);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "slack: the interactivity endpoint failed");
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn interactivity(
    State(endpoint): State<Endpoint>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (Some(signature), Some(timestamp)) = (
        header(
            &headers,
            SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER,
        ),
        header(
            &headers,
            SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP,
        ),
    ) else {
        tracing::warn!("slack: refused an interactivity request without a signature");
        return StatusCode::UNAUTHORIZED;
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if endpoint
        .verifier
        .verify(signature, text, timestamp)
        .is_err()
    {
        tracing::warn!("slack: refused an interactivity request with a bad or stale signature");
        return StatusCode::UNAUTHORIZED;
    }
    let payload = form_urlencoded::parse(text.as_bytes())
        .find(|(k, _)| k == "payload")
        .and_then(|(_, v)| serde_json::from_str::<serde_json::Value>(&v).ok());
    let Some(payload) = payload else {
        return StatusCode::BAD_REQUEST;
    };
    tokio::spawn(crate::interact::handle(Arc::clone(&endpoint.ctx), payload));
    StatusCode::OK
}
