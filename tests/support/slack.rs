//! A fake Slack for the slack plugin's tests, on 127.0.0.1: the Web API methods the plugin
//! calls (`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `users.info`,
//! `users.lookupByEmail`,
//! `conversations.open`, `views.open`, `apps.connections.open`) answering Slack's JSON,
//! checking the bearer token, with scripted failures (429 with `Retry-After`, 503); and a
//! Socket Mode WebSocket that greets with `hello`, sends `interactive` envelopes and checks
//! that each is acknowledged by its `envelope_id`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

/// The bot token the fake accepts.
pub const BOT_TOKEN: &str = "xoxb-test-bot-token";
/// The app-level token the fake accepts (Socket Mode).
pub const APP_TOKEN: &str = "xapp-test-app-token";

/// One Web API call the fake answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The JSON body (POST) or the query (GET) as a JSON object.
    pub body: Value,
    /// Whether it was answered `ok: true`.
    pub ok: bool,
    /// The HTTP status answered.
    pub status: u16,
    pub at: Instant,
    /// For a posted message: its ts.
    pub ts: Option<String>,
}

/// A scripted answer to the next call of a method.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// HTTP 503.
    Unavailable,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    faults: BTreeMap<String, VecDeque<Fault>>,
    /// Methods failing with 503 until cleared.
    down: Vec<String>,
    /// Slack users: id → e-mail.
    users: BTreeMap<String, String>,
    next_ts: u64,
    sockets: u64,
    acks: Vec<String>,
    /// The current Socket Mode connection.
    socket: Option<mpsc::UnboundedSender<String>>,
}

/// The fake. Cheap to clone.
#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
    changed: watch::Sender<u64>,
    api: SocketAddr,
    ws: SocketAddr,
}

impl FakeSlack {
    /// Starts the Web API and the Socket Mode server.
    pub async fn start() -> FakeSlack {
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeSlack {
            inner: Arc::default(),
            changed: watch::Sender::new(0),
            api: api_listener.local_addr().unwrap(),
            ws: ws_listener.local_addr().unwrap(),
        };
        let app = axum::Router::new()
            .route("/api/{method}", axum::routing::post(post).get(get))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(api_listener, app).await;
        });
        let ws = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = ws_listener.accept().await {
                tokio::spawn(ws.clone().socket(stream));
            }
        });
        fake
    }

    /// The `api_url` to configure.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.api)
    }

    /// The `[plugins.slack]` table for this fake, with both tokens.
    pub fn settings_toml(&self) -> String {
        format!(
            "[plugins.slack]\nbot_token = \"{BOT_TOKEN}\"\napp_token = \"{APP_TOKEN}\"\napi_url = \"{}\"\n",
            self.api_url()
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let out = f(&mut self.inner.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
        out
    }

    /// A Slack user with this e-mail (what `users.info` and `users.lookupByEmail` answer).
    pub fn add_user(&self, id: &str, email: &str) {
        self.with(|i| i.users.insert(id.to_owned(), email.to_owned()));
    }

    /// The next calls of `method` fail as scripted, in order.
    pub fn fail_next(&self, method: &str, faults: &[Fault]) {
        self.with(|i| {
            i.faults
                .entry(method.to_owned())
                .or_default()
                .extend(faults.iter().copied())
        });
    }

    /// Every call of `method` fails with 503 while `down`.
    pub fn set_down(&self, method: &str, down: bool) {
        self.with(|i| {
            i.down.retain(|m| m != method);
            if down {
                i.down.push(method.to_owned());
            }
        });
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// The successful calls of `method`.
    pub fn ok_calls(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.ok)
            .collect()
    }

    /// How many Socket Mode connections were opened.
    pub fn socket_connections(&self) -> u64 {
        self.inner.lock().unwrap().sockets
    }

    /// Waits (up to `deadline`) until `check` finds something in the fake's state; panics
    /// naming `what` otherwise.
    pub async fn wait<T>(
        &self,
        deadline: Duration,
        what: &str,
        check: impl Fn(&FakeSlack) -> Option<T>,
    ) -> T {
        let mut changed = self.changed.subscribe();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            changed.borrow_and_update();
            if let Some(found) = check(self) {
                return found;
            }
            if tokio::time::timeout_at(until, changed.changed())
                .await
                .is_err()
            {
                panic!(
                    "fake slack: no {what} within {deadline:?}; calls: {:#?}",
                    self.calls()
                );
            }
        }
    }

    /// Waits for a Socket Mode connection that got its `hello`.
    pub async fn wait_socket(&self, deadline: Duration) {
        self.wait(deadline, "Socket Mode connection", |f| {
            f.inner.lock().unwrap().socket.as_ref().map(|_| ())
        })
        .await;
    }

    /// Sends an `interactive` envelope over Socket Mode and waits for its acknowledgement;
    /// panics if it is not acknowledged in time.
    pub async fn send_interactive(&self, payload: Value) {
        self.wait_socket(Duration::from_secs(30)).await;
        let envelope_id = format!(
            "env-{}",
            self.with(|i| {
                i.next_ts += 1;
                i.next_ts
            })
        );
        let envelope = json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": false,
            "payload": payload,
        });
        let sent = self.with(|i| {
            i.socket
                .as_ref()
                .map(|tx| tx.send(envelope.to_string()).is_ok())
        });
        assert_eq!(sent, Some(true), "no Socket Mode connection to send on");
        let id = envelope_id.clone();
        self.wait(
            Duration::from_secs(3),
            "acknowledgement of the envelope (Slack waits 3 s)",
            move |f| f.inner.lock().unwrap().acks.contains(&id).then_some(()),
        )
        .await;
    }

    async fn socket(self, stream: tokio::net::TcpStream) {
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let (mut sink, mut source) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let hello = json!({
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "applink-fake", "started": "2026-12-03 00:00:00", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0TESTAPP"},
        });
        if sink
            .send(Message::Text(hello.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        self.with(|i| {
            i.sockets += 1;
            i.socket = Some(tx);
        });
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(text) => if sink.send(Message::Text(text.into())).await.is_err() { break },
                    None => break,
                },
                incoming = source.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if let Ok(ack) = serde_json::from_str::<Value>(&text)
                            && let Some(id) = ack.get("envelope_id").and_then(Value::as_str)
                        {
                            let id = id.to_owned();
                            self.with(|i| i.acks.push(id));
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
        self.with(|i| i.socket = None);
    }

    fn answer(&self, method: &str, auth: Option<&str>, body: Value) -> Response {
        let want = if method == "apps.connections.open" {
            APP_TOKEN
        } else {
            BOT_TOKEN
        };
        let authed = auth == Some(&format!("Bearer {want}"));
        let ws = self.ws;
        let (status, reply, retry_after) = self.with(|i| {
            let fault = if i.down.iter().any(|m| m == method) {
                Some(Fault::Unavailable)
            } else {
                i.faults.get_mut(method).and_then(VecDeque::pop_front)
            };
            let mut ts = None;
            let (status, reply) = match fault {
                Some(Fault::RateLimited(_)) => (429, json!({"ok": false, "error": "ratelimited"})),
                Some(Fault::Unavailable) => (503, json!({"ok": false, "error": "service_unavailable"})),
                None if !authed => (200, json!({"ok": false, "error": "invalid_auth"})),
                None => {
                    let reply = match method {
                        "chat.postMessage" => {
                            i.next_ts += 1;
                            let t = format!("1764720000.{:06}", i.next_ts);
                            ts = Some(t.clone());
                            json!({"ok": true, "channel": body["channel"], "ts": t, "message": {
                                "type": "message", "subtype": "bot_message", "text": body["text"], "ts": t,
                                "bot_id": "B0TESTBOT", "blocks": body["blocks"]}})
                        }
                        "chat.update" => json!({"ok": true, "channel": body["channel"], "ts": body["ts"], "text": body["text"]}),
                        "chat.postEphemeral" => json!({"ok": true, "message_ts": "1764720000.999999"}),
                        "users.info" => match body["user"].as_str().and_then(|u| i.users.get(u)) {
                            Some(email) => json!({"ok": true, "user": {"id": body["user"], "team_id": "T0TEST", "name": "someone",
                                "deleted": false, "is_bot": false, "profile": {"email": email, "real_name": "Someone"}}}),
                            None => json!({"ok": false, "error": "user_not_found"}),
                        },
                        "users.lookupByEmail" => match body["email"].as_str().and_then(|e| {
                            i.users.iter().find(|(_, email)| email.eq_ignore_ascii_case(e)).map(|(id, _)| id.clone())
                        }) {
                            Some(id) => json!({"ok": true, "user": {"id": id, "team_id": "T0TEST", "name": "someone",
                                "deleted": false, "is_bot": false, "profile": {"email": body["email"], "real_name": "Someone"}}}),
                            None => json!({"ok": false, "error": "users_not_found"}),
                        },
                        "conversations.open" => json!({"ok": true, "channel": {"id": format!("D{}", body["users"].as_str().unwrap_or("X"))}}),
                        "views.open" => json!({"ok": true, "view": {"id": "V0TESTVIEW", "type": "modal"}}),
                        "apps.connections.open" => json!({"ok": true, "url": format!("ws://{ws}/link/?ticket=fake-ticket")}),
                        _ => json!({"ok": false, "error": "unknown_method"}),
                    };
                    (200, reply)
                }
            };
            i.calls.push(Call {
                method: method.to_owned(),
                body: body.clone(),
                ok: status == 200 && reply["ok"] == true,
                status,
                at: Instant::now(),
                ts: ts.clone(),
            });
            let retry_after = match fault {
                Some(Fault::RateLimited(secs)) => Some(secs),
                _ => None,
            };
            (status, reply, retry_after)
        });
        let mut response =
            (StatusCode::from_u16(status).unwrap(), axum::Json(reply)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        response
    }
}

async fn post(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.answer(&method, auth, body)
}

async fn get(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    fake.answer(&method, auth, serde_json::to_value(query).unwrap())
}

/// The button of a posted message with this `action_id` for `group`.
pub fn button(message: &Value, action_id: &str, group: &str) -> Value {
    message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| {
            b["elements"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |e| (b["block_id"].clone(), e))
        })
        .find(|(_, e)| {
            e["action_id"] == action_id
                && e["value"]
                    .as_str()
                    .is_some_and(|v| v.ends_with(&format!("|{group}")))
        })
        .map(|(block_id, mut e)| {
            e["block_id"] = block_id;
            e
        })
        .unwrap_or_else(|| panic!("no {action_id} button for {group} in {message:#}"))
}

/// A `block_actions` payload: Slack user `user` clicked `button` on the message `ts` in
/// `channel`.
pub fn block_actions(user: &str, channel: &str, ts: &str, button: &Value) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": "T0TEST"},
        "api_app_id": "A0TESTAPP",
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
        "trigger_id": format!("1337.42.trigger-{user}"),
        "team": {"id": "T0TEST", "domain": "hoop-test"},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": channel, "name": "reviews"},
        "message": {"type": "message", "ts": ts, "bot_id": "B0TESTBOT"},
        "state": {"values": {}},
        "response_url": "https://hooks.slack.invalid/actions/T0TEST/1/x",
        "actions": [{
            "action_id": button["action_id"],
            "block_id": button["block_id"],
            "text": button["text"],
            "value": button["value"],
            "style": button["style"],
            "type": "button",
            "action_ts": "1764720001.000001",
        }],
    })
}

/// A `view_submission` payload: Slack user `user` submitted the modal `view` (as the plugin
/// opened it) with `reason` typed in.
pub fn view_submission(user: &str, view: &Value, reason: &str) -> Value {
    json!({
        "type": "view_submission",
        "team": {"id": "T0TEST", "domain": "hoop-test"},
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": "T0TEST"},
        "api_app_id": "A0TESTAPP",
        "token": "verification-token-unused",
        "trigger_id": "1337.43.submit",
        "view": {
            "id": "V0TESTVIEW",
            "team_id": "T0TEST",
            "type": "modal",
            "blocks": view["blocks"],
            "private_metadata": view["private_metadata"],
            "callback_id": view["callback_id"],
            "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}},
            "hash": "1764720002.abcdef",
            "title": view["title"],
            "close": view["close"],
            "submit": view["submit"],
            "app_id": "A0TESTAPP",
            "bot_id": "B0TESTBOT",
        },
        "response_urls": [],
        "is_enterprise_install": false,
    })
}
