//! The Slack Web API calls the plugin makes, over slack-morphism's hyper client (rustls with
//! ring), with requests and answers as Slack's JSON. Failures are sorted into what is worth
//! retrying (network, 5xx, 429 with its `Retry-After`) and what is not (Slack said no).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use slack_morphism::errors::SlackClientError;
use slack_morphism::hyper_tokio::SlackClientHyperConnector;
use slack_morphism::{SlackApiToken, SlackApiTokenValue, SlackClient};

/// The connector: HTTPS (native roots) or plain HTTP (a local Slack-compatible server).
type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// A failed Web API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// Slack asked to slow down (HTTP 429), for this long if it said.
    #[error("rate limited by Slack (retry after {0:?})")]
    RateLimited(Option<Duration>),
    /// The call may work later (network, HTTP 5xx).
    #[error("Slack unreachable: {0}")]
    Transient(String),
    /// Slack refused the call (`ok: false`, e.g. `channel_not_found`): trying again will
    /// not help.
    #[error("Slack refused: {0}")]
    Refused(String),
}

impl SlackError {
    fn from_client(err: SlackClientError) -> Self {
        match err {
            SlackClientError::RateLimitError(e) => Self::RateLimited(e.retry_after),
            SlackClientError::ApiError(e) => Self::Refused(e.code),
            SlackClientError::HttpError(e) if e.status_code.is_client_error() => {
                Self::Refused(format!("HTTP {}", e.status_code))
            }
            SlackClientError::HttpError(e) => Self::Transient(format!("HTTP {}", e.status_code)),
            // Bodies and causes may quote what was sent: only the kind is kept.
            SlackClientError::HttpProtocolError(_) => Self::Transient("connection failed".into()),
            SlackClientError::ProtocolError(_) => Self::Transient("unexpected answer".into()),
            other => Self::Transient(kind(&other).to_owned()),
        }
    }
}

fn kind(err: &SlackClientError) -> &'static str {
    match err {
        SlackClientError::EndOfStream(_) => "end of stream",
        SlackClientError::SystemError(_) => "system error",
        SlackClientError::SocketModeProtocolError(_) => "socket mode protocol error",
        _ => "error",
    }
}

/// A posted message: where and its `ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// Channel ID.
    pub channel: String,
    /// Message timestamp (its id in the channel).
    pub ts: String,
}

/// The Web API with the plugin's tokens. Cheap to clone.
#[derive(Clone)]
pub struct SlackApi {
    client: Arc<SlackClient<SlackClientHyperConnector<Connector>>>,
    bot: Option<SlackApiToken>,
    app: Option<SlackApiToken>,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi").finish_non_exhaustive()
    }
}

impl SlackApi {
    /// A client of the Web API at `api_url` with these tokens.
    ///
    /// # Errors
    /// When the system's root certificates cannot be loaded.
    pub fn new(
        api_url: &str,
        bot_token: Option<&str>,
        app_token: Option<&str>,
    ) -> Result<Self, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let connector =
            SlackClientHyperConnector::with_connector(https).with_slack_api_url(api_url);
        let token = |t: &str| SlackApiToken::new(SlackApiTokenValue(t.to_owned()));
        Ok(Self {
            client: Arc::new(SlackClient::new(connector)),
            bot: bot_token.map(token),
            app: app_token.map(token),
        })
    }

    /// Whether a bot token is set (else nothing can be sent).
    pub fn has_bot(&self) -> bool {
        self.bot.is_some()
    }

    async fn post(
        &self,
        token: Option<&SlackApiToken>,
        method: &str,
        body: &Value,
    ) -> Result<Value, SlackError> {
        let token = token.ok_or_else(|| SlackError::Refused("no token configured".into()))?;
        let session = self.client.open_session(token);
        session
            .http_session_api
            .http_post::<Value, Value>(method, body, None)
            .await
            .map_err(SlackError::from_client)
    }

    /// `chat.postMessage`.
    ///
    /// # Errors
    /// What the call failed with.
    pub async fn post_message(&self, message: &Value) -> Result<Posted, SlackError> {
        let answer = self
            .post(self.bot.as_ref(), "chat.postMessage", message)
            .await?;
        let field = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_owned);
        match (field("channel"), field("ts")) {
            (Some(channel), Some(ts)) => Ok(Posted { channel, ts }),
            _ => Err(SlackError::Refused(
                "chat.postMessage answered without channel and ts".into(),
            )),
        }
    }

    /// `chat.update` of the message `ts` in `channel`.
    ///
    /// # Errors
    /// What the call failed with.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        message: &Value,
    ) -> Result<(), SlackError> {
        let mut body = message.clone();
        if let Value::Object(map) = &mut body {
            map.insert("channel".into(), json!(channel));
            map.insert("ts".into(), json!(ts));
        }
        self.post(self.bot.as_ref(), "chat.update", &body)
            .await
            .map(drop)
    }

    /// `chat.postEphemeral`: a message only `user` sees, in `channel`.
    ///
    /// # Errors
    /// What the call failed with.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
    ) -> Result<(), SlackError> {
        let body = json!({"channel": channel, "user": user, "text": text});
        self.post(self.bot.as_ref(), "chat.postEphemeral", &body)
            .await
            .map(drop)
    }

    /// `users.info`: the e-mail of Slack user `user`, if Slack shows it.
    ///
    /// # Errors
    /// What the call failed with.
    pub async fn user_email(&self, user: &str) -> Result<Option<String>, SlackError> {
        let token = self
            .bot
            .as_ref()
            .ok_or_else(|| SlackError::Refused("no token configured".into()))?;
        let session = self.client.open_session(token);
        let answer: Value = session
            .http_session_api
            .http_get("users.info", &vec![("user", Some(user))], None)
            .await
            .map_err(SlackError::from_client)?;
        Ok(answer
            .pointer("/user/profile/email")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .map(str::to_owned))
    }

    /// `users.lookupByEmail`: the Slack user whose e-mail is `email`, if there is one
    /// (`users_not_found` is `None`).
    ///
    /// # Errors
    /// What the call failed with.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<String>, SlackError> {
        let token = self
            .bot
            .as_ref()
            .ok_or_else(|| SlackError::Refused("no token configured".into()))?;
        let session = self.client.open_session(token);
        let answer: Result<Value, _> = session
            .http_session_api
            .http_get("users.lookupByEmail", &vec![("email", Some(email))], None)
            .await;
        match answer.map_err(SlackError::from_client) {
            Ok(answer) => Ok(answer
                .pointer("/user/id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)),
            Err(SlackError::Refused(code)) if code == "users_not_found" => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// `conversations.open` then `chat.postMessage`: a direct message to `user`.
    ///
    /// # Errors
    /// What a call failed with.
    pub async fn direct_message(&self, user: &str, text: &str) -> Result<Posted, SlackError> {
        let answer = self
            .post(
                self.bot.as_ref(),
                "conversations.open",
                &json!({"users": user}),
            )
            .await?;
        let channel = answer
            .pointer("/channel/id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                SlackError::Refused("conversations.open answered without a channel".into())
            })?;
        self.post_message(&json!({"channel": channel, "text": text}))
            .await
    }

    /// `views.open`: a modal, for the click whose `trigger_id` this is.
    ///
    /// # Errors
    /// What the call failed with.
    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<(), SlackError> {
        let body = json!({"trigger_id": trigger_id, "view": view});
        self.post(self.bot.as_ref(), "views.open", &body)
            .await
            .map(drop)
    }

    /// `apps.connections.open` (app token): the WebSocket URL of a new Socket Mode
    /// connection.
    ///
    /// # Errors
    /// What the call failed with.
    pub async fn open_socket(&self) -> Result<String, SlackError> {
        let answer = self
            .post(self.app.as_ref(), "apps.connections.open", &json!({}))
            .await?;
        answer
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                SlackError::Refused("apps.connections.open answered without a url".into())
            })
    }
}
