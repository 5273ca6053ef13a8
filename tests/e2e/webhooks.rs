//! WebhookService and the `webhooks` plugin: endpoints managed through the API and the CLI,
//! events delivered to receivers on 127.0.0.1 and verified with the `standardwebhooks`
//! crate, retries, 410, redirects, refused private destinations, a SIGKILL with undelivered
//! events, filters, masking and secret rotation.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoop_rs::{
    Backend, Gateway, Setup, admin, assert_status, authed, command_connection, e2e, eventually,
    exec, pb,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;

e2e!(
    endpoints_are_managed_and_bad_input_names_the_field,
    the_cli_manages_endpoints,
    every_event_of_a_session_and_a_review_arrives_signed,
    a_failing_receiver_gets_the_event_on_the_fourth_try,
    gone_disables_the_endpoint,
    redirects_are_not_followed,
    private_destinations_are_refused_without_the_setting,
    undelivered_events_survive_a_sigkill,
    filters_by_event_type_and_connection_hold,
    a_rotated_secret_signs_twice,
    redeliver_sends_again_with_the_same_id,
    two_gateways_on_one_database_send_each_delivery_once,
    an_endpoint_that_does_not_answer_times_out,
    bad_settings_stop_start_up_naming_the_key,
);

/// How long any single wait may take.
const STEP: Duration = Duration::from_secs(60);

/// Delivery settings for tests: receivers on 127.0.0.1, a short retry schedule.
const SETTINGS: &str = r#"
[plugins.webhooks]
allow_private_networks = true
timeout = "5s"
retry_schedule = ["0s", "100ms", "100ms", "100ms"]
"#;

// ---------------------------------------------------------------- a receiver on 127.0.0.1

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }

    /// Verifies the signature with the `standardwebhooks` crate and `secret`.
    fn verify(&self, secret: &str) -> Result<(), standardwebhooks::WebhookError> {
        standardwebhooks::Webhook::new(secret)
            .expect("a whsec_ secret")
            .verify(&self.body, &self.headers)
    }
}

/// What a receiver answers: status, extra headers, body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
        }
    }
}

type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

/// An HTTP/1.1 server on 127.0.0.1 (keep-alive, Content-Length bodies, as reqwest sends
/// them) that records every request and answers as its script says for the n-th request.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener, Arc::new(script))
    }

    /// Answers 204 to everything.
    async fn ok() -> Self {
        Self::start(|_| Reply::status(204)).await
    }

    fn on(listener: TcpListener, script: Script) -> Self {
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = Arc::clone(&got);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&sink), Arc::clone(&script)));
            }
        });
        Self { port, got, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until the receiver got requests for which `done` holds.
    async fn wait(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        eventually(STEP, what, || async {
            let got = self.got();
            done(&got).then_some(got)
        })
        .await
    }
}

async fn serve(stream: TcpStream, got: Arc<Mutex<Vec<Received>>>, script: Script) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut headers = http::HeaderMap::new();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = value.parse().unwrap();
            }
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let n = {
            let mut got = got.lock().unwrap();
            got.push(Received { headers, body });
            got.len() - 1
        };
        let reply = script(n);
        let reason = http::StatusCode::from_u16(reply.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Status");
        let text = format!("status {}", reply.status);
        let mut answer = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-length: {}\r\n",
            reply.status,
            text.len()
        );
        for (name, value) in &reply.headers {
            answer.push_str(&format!("{name}: {value}\r\n"));
        }
        answer.push_str("\r\n");
        answer.push_str(&text);
        if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- helpers

async fn gateway(backend: Backend) -> Gateway {
    Setup::new(backend).with_toml(SETTINGS).start().await
}

fn endpoint(name: &str, url: &str) -> pb::Endpoint {
    pb::Endpoint {
        name: name.to_owned(),
        url: url.to_owned(),
        enabled: true,
        ..Default::default()
    }
}

/// Creates an endpoint; returns its secret.
async fn create_endpoint(gw: &Gateway, endpoint: pb::Endpoint) -> String {
    let response = gw
        .webhooks()
        .await
        .create_endpoint(admin(pb::CreateEndpointRequest {
            endpoint: Some(endpoint),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(response.secret.starts_with("whsec_"), "{}", response.secret);
    response.secret
}

async fn create_connection(gw: &Gateway, conn: pb::Connection) {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
}

async fn attach(gw: &Gateway, connection: &str, cfg: serde_json::Value) {
    gw.attach_plugin(connection, "webhooks", cfg).await;
}

/// A `cat` connection with `webhooks` attached (config `{}`).
async fn watched(gw: &Gateway, name: &str) {
    create_connection(gw, command_connection(name, &["cat"])).await;
    attach(gw, name, serde_json::json!({})).await;
}

async fn run(gw: &Gateway, connection: &str, input: &str) -> hoop_rs::ExecResult {
    exec(
        gw,
        hoop_rs::ADMIN_TOKEN,
        pb::ExecRequest {
            connection: connection.to_owned(),
            input: input.as_bytes().to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn deliveries(gw: &Gateway, endpoint: &str) -> Vec<pb::Delivery> {
    gw.webhooks()
        .await
        .list_deliveries(admin(pb::ListDeliveriesRequest {
            endpoint: endpoint.to_owned(),
            page_size: 1000,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .deliveries
}

async fn get_endpoint(gw: &Gateway, name: &str) -> pb::Endpoint {
    gw.webhooks()
        .await
        .get_endpoint(admin(pb::GetEndpointRequest {
            name: name.to_owned(),
        }))
        .await
        .unwrap()
        .into_inner()
}

// ---------------------------------------------------------------- tests

async fn endpoints_are_managed_and_bad_input_names_the_field(backend: Backend) {
    let gw = gateway(backend).await;
    let mut api = gw.webhooks().await;
    let secret = create_endpoint(&gw, {
        let mut e = endpoint("siem", "https://siem.example.com/hoop");
        e.description = "the SIEM".into();
        e.events = vec!["session.*".into(), "review.approved".into()];
        e.connections = vec!["pg".into()];
        e
    })
    .await;
    let got = get_endpoint(&gw, "siem").await;
    assert_eq!(
        (
            got.url.as_str(),
            got.enabled,
            got.events.len(),
            got.connections.as_slice()
        ),
        (
            "https://siem.example.com/hoop",
            true,
            2,
            &["pg".to_owned()][..]
        )
    );
    assert!(got.create_time.is_some() && got.previous_secret_expire_time.is_none());

    // Bad input: INVALID_ARGUMENT naming the field, and nothing written.
    let bad = |e: pb::Endpoint| pb::CreateEndpointRequest { endpoint: Some(e) };
    for (e, code, needle) in [
        (
            endpoint("siem", "https://x.example.com"),
            Code::AlreadyExists,
            "endpoint.name",
        ),
        (
            endpoint("Bad Name", "https://x.example.com"),
            Code::InvalidArgument,
            "endpoint.name",
        ),
        (
            endpoint("b", ""),
            Code::InvalidArgument,
            "endpoint.url: required",
        ),
        (
            endpoint("b", "not a url"),
            Code::InvalidArgument,
            "endpoint.url",
        ),
        (
            endpoint("b", "ftp://x.example.com/"),
            Code::InvalidArgument,
            "endpoint.url: scheme `ftp`",
        ),
        (
            endpoint("b", "https://u:p@x.example.com/"),
            Code::InvalidArgument,
            "endpoint.url: must not carry credentials",
        ),
        (
            pb::Endpoint {
                events: vec!["session.closed".into(), "session.exploded".into()],
                ..endpoint("b", "https://x.example.com")
            },
            Code::InvalidArgument,
            "endpoint.events[1]: unknown event type `session.exploded`",
        ),
        (
            pb::Endpoint {
                events: vec!["nope.*".into()],
                ..endpoint("b", "https://x.example.com")
            },
            Code::InvalidArgument,
            "endpoint.events[0]",
        ),
        (
            pb::Endpoint {
                connections: vec!["ok".into(), "NOT OK".into()],
                ..endpoint("b", "https://x.example.com")
            },
            Code::InvalidArgument,
            "endpoint.connections[1]",
        ),
    ] {
        assert_status(api.create_endpoint(admin(bad(e))).await, code, needle);
    }
    assert_status(
        api.create_endpoint(admin(pb::CreateEndpointRequest { endpoint: None }))
            .await,
        Code::InvalidArgument,
        "endpoint: required",
    );
    let listed = api
        .list_endpoints(admin(pb::ListEndpointsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .endpoints;
    assert_eq!(
        listed.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["siem"]
    );

    // Update by mask: only the fields named change; name and output-only fields refused.
    let updated = api
        .update_endpoint(admin(pb::UpdateEndpointRequest {
            endpoint: Some(pb::Endpoint {
                enabled: false,
                url: "https://ignored.example.com".into(),
                ..endpoint("siem", "")
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["enabled".into()],
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!updated.enabled);
    assert_eq!(updated.url, "https://siem.example.com/hoop");
    assert_eq!(updated.description, "the SIEM");
    for (path, needle) in [
        ("name", "update_mask.paths[0]: name is immutable"),
        (
            "create_time",
            "update_mask.paths[0]: `create_time` is output only",
        ),
        ("colour", "update_mask.paths[0]: unknown field `colour`"),
    ] {
        assert_status(
            api.update_endpoint(admin(pb::UpdateEndpointRequest {
                endpoint: Some(endpoint("siem", "https://x.example.com")),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![path.into()],
                }),
            }))
            .await,
            Code::InvalidArgument,
            needle,
        );
    }
    assert_status(
        api.update_endpoint(admin(pb::UpdateEndpointRequest {
            endpoint: Some(pb::Endpoint {
                events: vec!["bogus".into()],
                ..endpoint("siem", "")
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["events".into()],
            }),
        }))
        .await,
        Code::InvalidArgument,
        "endpoint.events[0]",
    );
    assert_status(
        api.update_endpoint(admin(pb::UpdateEndpointRequest {
            endpoint: Some(endpoint("ghost", "https://x.example.com")),
            update_mask: None,
        }))
        .await,
        Code::NotFound,
        "ghost",
    );

    // Only admins manage webhooks.
    let alice = gw.user_with_token("alice", &["dev", "auditor"]).await;
    assert_status(
        api.list_endpoints(authed(&alice, pb::ListEndpointsRequest {}))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    assert_status(
        api.create_endpoint(authed(
            &alice,
            bad(endpoint("mine", "https://evil.example.com")),
        ))
        .await,
        Code::PermissionDenied,
        "admin",
    );
    assert_status(
        api.rotate_endpoint_secret(authed(
            &alice,
            pb::RotateEndpointSecretRequest {
                name: "siem".into(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "admin",
    );

    // Delete, then it is gone.
    api.delete_endpoint(admin(pb::DeleteEndpointRequest {
        name: "siem".into(),
    }))
    .await
    .unwrap();
    assert_status(
        api.get_endpoint(admin(pb::GetEndpointRequest {
            name: "siem".into(),
        }))
        .await,
        Code::NotFound,
        "siem",
    );
    assert_status(
        api.delete_endpoint(admin(pb::DeleteEndpointRequest {
            name: "siem".into(),
        }))
        .await,
        Code::NotFound,
        "siem",
    );
    // The secret is in no log line.
    let (_, logs) = gw.stop_with_logs().await;
    assert!(!logs.contains(&secret[6..]), "the secret is in the log");
}

async fn the_cli_manages_endpoints(backend: Backend) {
    let gw = gateway(backend).await;
    let token = Some(hoop_rs::ADMIN_TOKEN);
    let out = gw
        .cli(
            token,
            &[
                "webhooks",
                "create",
                "siem",
                "--url",
                "https://siem.example.com/hoop",
                "--events",
                "session.*,review.*",
            ],
        )
        .await;
    let text = out.ok();
    assert!(text.contains("secret: whsec_"), "{text}");
    assert!(text.contains("shown only once"), "{text}");
    let listed = gw.cli(token, &["webhooks", "list"]).await;
    assert!(
        listed.ok().contains("https://siem.example.com/hoop"),
        "{listed:?}"
    );
    let shown = gw
        .cli(token, &["-o", "json", "webhooks", "show", "siem"])
        .await
        .json();
    assert_eq!(
        shown["events"],
        serde_json::json!(["session.*", "review.*"])
    );
    assert!(shown.get("secret").is_none());
    let updated = gw
        .cli(
            token,
            &[
                "-o",
                "json",
                "webhooks",
                "update",
                "siem",
                "--enabled=false",
            ],
        )
        .await
        .json();
    assert_eq!(updated["enabled"], false, "{updated}");
    let err = gw
        .cli(
            token,
            &[
                "webhooks",
                "create",
                "x",
                "--url",
                "https://a.example.com",
                "--events",
                "session.nope",
            ],
        )
        .await;
    assert!(err.err().contains("endpoint.events[0]"), "{err:?}");
    let err = gw.cli(token, &["webhooks", "create", "x"]).await;
    assert!(err.err().contains("--url is required"), "{err:?}");
    let err = gw.cli(token, &["webhooks", "update", "siem"]).await;
    assert!(err.err().contains("nothing to update"), "{err:?}");
    let rotated = gw.cli(token, &["webhooks", "rotate-secret", "siem"]).await;
    assert!(rotated.ok().contains("two signatures"), "{rotated:?}");
    let none = gw.cli(token, &["webhooks", "deliveries", "siem"]).await;
    none.ok();
    let err = gw
        .cli(
            token,
            &["webhooks", "deliveries", "siem", "--status", "lost"],
        )
        .await;
    assert!(
        err.err().contains("status: unknown status `lost`"),
        "{err:?}"
    );
    let err = gw
        .cli(token, &["webhooks", "redeliver", "siem", "99"])
        .await;
    assert!(err.err().contains("disabled"), "{err:?}");
    gw.cli(token, &["webhooks", "delete", "siem"]).await.ok();
    let err = gw.cli(token, &["webhooks", "show", "siem"]).await;
    assert!(
        err.err().contains("no webhook endpoint named `siem`"),
        "{err:?}"
    );
}

async fn every_event_of_a_session_and_a_review_arrives_signed(backend: Backend) {
    let gw = gateway(backend).await;
    let receiver = Receiver::ok().await;
    let secret = create_endpoint(&gw, endpoint("siem", &receiver.url())).await;
    let mut conn = command_connection("pg", &["cat"]);
    conn.reviewers = vec!["dba".into()];
    conn.redact_types = vec!["EMAIL_ADDRESS".into()];
    conn.env
        .insert("PGPASSWORD".into(), "hunter2-sup3r-s3cret".into());
    create_connection(&gw, conn).await;
    attach(&gw, "pg", serde_json::json!({})).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;

    let input = "select * from users where email = 'carol@example.com';\n";
    let gw = Arc::new(gw);
    let session = {
        let gw = Arc::clone(&gw);
        let alice = alice.clone();
        tokio::spawn(async move {
            exec(
                &gw,
                &alice,
                pb::ExecRequest {
                    connection: "pg".into(),
                    input: input.as_bytes().to_vec(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        })
    };
    let review = eventually(STEP, "a pending review", || async {
        gw.reviews()
            .await
            .list_reviews(authed(&bob, pb::ListReviewsRequest::default()))
            .await
            .ok()?
            .into_inner()
            .reviews
            .into_iter()
            .next()
    })
    .await;
    gw.reviews()
        .await
        .approve_review(authed(
            &bob,
            pb::ApproveReviewRequest {
                id: review.id.clone(),
                group: "dba".into(),
                reason: "ok".into(),
            },
        ))
        .await
        .unwrap();
    let result = tokio::time::timeout(STEP, session).await.unwrap().unwrap();
    assert_eq!(result.exit_code, Some(0));

    let wanted = [
        "session.opened",
        "session.held",
        "review.created",
        "review.approved",
        "session.started",
        "review.executed",
        "session.closed",
        "recording.finished",
    ];
    let got = receiver
        .wait("every event of the session and its review", |got| {
            let kinds: BTreeSet<String> = got.iter().map(Received::kind).collect();
            wanted.iter().all(|k| kinds.contains(*k))
        })
        .await;
    for request in &got {
        request
            .verify(&secret)
            .unwrap_or_else(|e| panic!("{} does not verify: {e}", request.kind()));
        assert!(request.header("webhook-id").starts_with("msg_"));
        assert_eq!(request.header("content-type"), "application/json");
        let body = request.json();
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
        let text = String::from_utf8_lossy(&request.body);
        assert!(
            !text.contains("hunter2-sup3r-s3cret"),
            "an env value went out: {text}"
        );
        assert!(
            !text.contains("carol@example.com"),
            "unmasked input went out: {text}"
        );
    }
    // Each event once, with its connection and user; ids are distinct.
    let ids: BTreeSet<String> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), got.len(), "an event arrived twice");
    let closed = got
        .iter()
        .find(|r| r.kind() == "session.closed")
        .unwrap()
        .json();
    let data = &closed["data"];
    assert_eq!(data["connection"], "pg");
    assert_eq!(data["user"], "alice");
    assert_eq!(data["session_id"], result.session_id.as_str());
    assert_eq!(data["status"], "done");
    assert!(
        data["input"].as_str().unwrap().contains("[EMAIL_ADDRESS]"),
        "{data}"
    );
    assert_eq!(data["input_size"], input.len());
    assert_eq!(data["input_truncated"], false);
    let approved = got
        .iter()
        .find(|r| r.kind() == "review.approved")
        .unwrap()
        .json();
    assert_eq!(approved["data"]["review_id"], review.id.as_str());
    // Every delivery is on record as succeeded (attempts are recorded right after the
    // answer), with its one attempt.
    let recorded = eventually(STEP, "every delivery recorded as succeeded", || async {
        let all: Vec<pb::Delivery> = deliveries(&gw, "siem")
            .await
            .into_iter()
            .filter(|d| wanted.contains(&d.event_type.as_str()))
            .collect();
        (all.len() >= wanted.len() && all.iter().all(|d| d.status == "succeeded")).then_some(all)
    })
    .await;
    for d in &recorded {
        assert_eq!(d.attempt_log.len(), 1, "{d:?}");
        assert_eq!(d.attempt_log[0].status_code, 204);
    }
}

async fn a_failing_receiver_gets_the_event_on_the_fourth_try(backend: Backend) {
    let gw = gateway(backend).await;
    let receiver = Receiver::start(|n| Reply::status(if n < 3 { 500 } else { 200 })).await;
    let secret = create_endpoint(
        &gw,
        pb::Endpoint {
            events: vec!["session.closed".into()],
            ..endpoint("flaky", &receiver.url())
        },
    )
    .await;
    watched(&gw, "sh").await;
    run(&gw, "sh", "x").await;
    let got = receiver.wait("four tries", |got| got.len() >= 4).await;
    let ids: BTreeSet<String> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "the webhook-id changed between tries");
    for request in &got {
        request.verify(&secret).unwrap();
    }
    let delivery = eventually(STEP, "the delivery settled", || async {
        deliveries(&gw, "flaky")
            .await
            .into_iter()
            .find(|d| d.status == "succeeded")
    })
    .await;
    assert_eq!(delivery.attempts, 4);
    let codes: Vec<u32> = delivery.attempt_log.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [500, 500, 500, 200]);
    assert_eq!(delivery.attempt_log[0].response, "status 500");
    assert_eq!(delivery.attempt_log[0].error, "HTTP 500");
    // Exactly four: nothing more after success.
    assert_eq!(receiver.got().len(), 4);
}

async fn gone_disables_the_endpoint(backend: Backend) {
    let gw = gateway(backend).await;
    let gone = Receiver::start(|_| Reply::status(410)).await;
    let witness = Receiver::ok().await;
    let filter = |e: pb::Endpoint| pb::Endpoint {
        events: vec!["session.closed".into()],
        ..e
    };
    create_endpoint(&gw, filter(endpoint("gone", &gone.url()))).await;
    create_endpoint(&gw, filter(endpoint("witness", &witness.url()))).await;
    watched(&gw, "sh").await;
    run(&gw, "sh", "1").await;
    let ep = eventually(STEP, "the endpoint disabled", || async {
        let ep = get_endpoint(&gw, "gone").await;
        (!ep.enabled).then_some(ep)
    })
    .await;
    assert!(ep.disabled_reason.contains("410"), "{ep:?}");
    let failed = deliveries(&gw, "gone").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].status.as_str(), failed[0].attempts),
        ("failed", 1)
    );
    // A later event goes to the witness and not to the disabled endpoint.
    run(&gw, "sh", "2").await;
    witness
        .wait("two events at the witness", |got| got.len() >= 2)
        .await;
    assert_eq!(deliveries(&gw, "gone").await.len(), 1);
    assert_eq!(gone.got().len(), 1);
}

async fn redirects_are_not_followed(backend: Backend) {
    let gw = gateway(backend).await;
    let target = Receiver::ok().await;
    let location = target.url();
    let redirecting = Receiver::start(move |_| Reply {
        status: 302,
        headers: vec![("location".into(), location.clone())],
    })
    .await;
    create_endpoint(
        &gw,
        pb::Endpoint {
            events: vec!["session.closed".into()],
            ..endpoint("moved", &redirecting.url())
        },
    )
    .await;
    watched(&gw, "sh").await;
    run(&gw, "sh", "x").await;
    let delivery = eventually(STEP, "an attempt answered 302", || async {
        deliveries(&gw, "moved")
            .await
            .into_iter()
            .find(|d| d.attempt_log.iter().any(|a| a.status_code == 302))
    })
    .await;
    // The attempt ended with the 302 itself: the redirect's target was never asked.
    assert_eq!(delivery.attempt_log[0].error, "HTTP 302");
    assert!(target.got().is_empty(), "the redirect was followed");
}

async fn private_destinations_are_refused_without_the_setting(backend: Backend) {
    // Default settings: allow_private_networks = false.
    let gw = Setup::new(backend)
        .with_toml("[plugins.webhooks]\nretry_schedule = [\"0s\", \"100ms\"]\n")
        .start()
        .await;
    let receiver = Receiver::ok().await;
    let closed = |e: pb::Endpoint| pb::Endpoint {
        events: vec!["session.closed".into()],
        ..e
    };
    // An address in the URL, and a name that resolves to one (checked after resolution).
    create_endpoint(&gw, closed(endpoint("literal", &receiver.url()))).await;
    let by_name = format!("http://localhost:{}/hook", receiver.port);
    create_endpoint(&gw, closed(endpoint("by-name", &by_name))).await;
    watched(&gw, "sh").await;
    run(&gw, "sh", "x").await;
    for name in ["literal", "by-name"] {
        let delivery = eventually(STEP, "the delivery failed", || async {
            deliveries(&gw, name)
                .await
                .into_iter()
                .find(|d| d.status == "failed")
        })
        .await;
        assert_eq!(delivery.attempts, 2);
        for attempt in &delivery.attempt_log {
            assert_eq!(attempt.status_code, 0);
            assert!(
                attempt.error.starts_with("refused:") && attempt.error.contains("loopback"),
                "{name}: {}",
                attempt.error
            );
            assert!(
                attempt.error.contains("allow_private_networks"),
                "{}",
                attempt.error
            );
        }
    }
    assert!(
        receiver.got().is_empty(),
        "a private destination was reached"
    );
    let (_, logs) = gw.stop_with_logs().await;
    assert!(
        logs.contains("webhook.exhausted"),
        "no webhook.exhausted in the log"
    );
}

async fn undelivered_events_survive_a_sigkill(backend: Backend) {
    const EVENTS: usize = 100;
    // The receiver is down: its port is closed until after the crash.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    // Attempts fail (connection refused) every 700 ms for 21 s: none is exhausted before
    // the crash; a short timeout keeps the leases of attempts cut by the crash short.
    let schedule = std::iter::once("\"0s\"".to_owned())
        .chain(std::iter::repeat_n("\"700ms\"".to_owned(), 30))
        .collect::<Vec<_>>()
        .join(", ");
    let setup = Setup::new(backend).with_toml(&format!(
        "[plugins.webhooks]\nallow_private_networks = true\ntimeout = \"2s\"\n\
         retry_schedule = [{schedule}]\n"
    ));
    let gw = setup.start().await;
    create_endpoint(
        &gw,
        pb::Endpoint {
            events: vec!["connection.updated".into()],
            ..endpoint("down", &format!("http://127.0.0.1:{port}/hook"))
        },
    )
    .await;
    create_connection(&gw, command_connection("sh", &["cat"])).await;
    attach(&gw, "sh", serde_json::json!({})).await;
    let mut connections = gw.connections().await;
    // Each update appends a connection.updated event.
    for i in 1..EVENTS {
        let mut conn = command_connection("sh", &["cat"]);
        conn.tags.insert("n".into(), i.to_string());
        connections
            .update_connection(admin(pb::UpdateConnectionRequest {
                connection: Some(conn),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["tags".into()],
                }),
            }))
            .await
            .unwrap();
    }
    // Killed while the outbox is being filled and every attempt fails.
    eventually(STEP, "deliveries queued and failing", || async {
        let queued = deliveries(&gw, "down").await;
        queued
            .iter()
            .any(|d| !d.attempt_log.is_empty())
            .then_some(())
    })
    .await;
    let setup = gw.crash().await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let receiver = Receiver::on(listener, Arc::new(|_| Reply::status(200)));
    let gw = setup.start().await;
    let got = receiver
        .wait("all 100 events", |got| {
            got.iter()
                .map(|r| r.json()["data"]["event_id"].as_u64())
                .collect::<BTreeSet<_>>()
                .len()
                >= EVENTS
        })
        .await;
    let ids: BTreeSet<u64> = got
        .iter()
        .map(|r| r.json()["data"]["event_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), EVENTS);
    let settled = eventually(STEP, "every delivery succeeded", || async {
        let all = deliveries(&gw, "down").await;
        (all.len() == EVENTS && all.iter().all(|d| d.status == "succeeded")).then_some(all)
    })
    .await;
    assert_eq!(settled.len(), EVENTS);
}

async fn filters_by_event_type_and_connection_hold(backend: Backend) {
    let gw = gateway(backend).await;
    let all = Receiver::ok().await;
    let closed = Receiver::ok().await;
    let only_a = Receiver::ok().await;
    create_endpoint(&gw, endpoint("all", &all.url())).await;
    create_endpoint(
        &gw,
        pb::Endpoint {
            events: vec!["session.closed".into()],
            ..endpoint("closed", &closed.url())
        },
    )
    .await;
    create_endpoint(
        &gw,
        pb::Endpoint {
            connections: vec!["a".into()],
            ..endpoint("only-a", &only_a.url())
        },
    )
    .await;
    watched(&gw, "a").await;
    // b sends to `all` only; c does not have the plugin.
    create_connection(&gw, command_connection("b", &["cat"])).await;
    attach(&gw, "b", serde_json::json!({"endpoints": ["all"]})).await;
    create_connection(&gw, command_connection("c", &["cat"])).await;
    run(&gw, "a", "1").await;
    run(&gw, "b", "2").await;
    run(&gw, "c", "3").await;
    // A last session on a: once its close reached `all`, everything before was queued.
    let last = run(&gw, "a", "4").await;
    all.wait("the last session's close", |got| {
        got.iter().any(|r| {
            r.kind() == "session.closed"
                && r.json()["data"]["session_id"] == last.session_id.as_str()
        })
    })
    .await;
    let connections = |ds: &[pb::Delivery]| -> BTreeSet<String> {
        ds.iter().map(|d| d.connection.clone()).collect()
    };
    let to_all = deliveries(&gw, "all").await;
    assert_eq!(
        connections(&to_all),
        BTreeSet::from(["a".into(), "b".into()])
    );
    let to_closed = deliveries(&gw, "closed").await;
    assert!(
        to_closed.iter().all(|d| d.event_type == "session.closed"),
        "{to_closed:?}"
    );
    assert_eq!(connections(&to_closed), BTreeSet::from(["a".into()]));
    assert_eq!(to_closed.len(), 2);
    let to_a = deliveries(&gw, "only-a").await;
    assert_eq!(connections(&to_a), BTreeSet::from(["a".into()]));
    assert!(to_a.iter().any(|d| d.event_type == "session.opened"));
    // Detached: a's events stop.
    gw.detach_plugin("a", "webhooks").await;
    run(&gw, "a", "5").await;
    let sentinel = run(&gw, "b", "6").await;
    all.wait("b's last close", |got| {
        got.iter().any(|r| {
            r.kind() == "session.closed"
                && r.json()["data"]["session_id"] == sentinel.session_id.as_str()
        })
    })
    .await;
    let a_closes = deliveries(&gw, "all")
        .await
        .into_iter()
        .filter(|d| d.connection == "a" && d.event_type == "session.closed")
        .count();
    assert_eq!(
        a_closes, 2,
        "a's events went out after webhooks was detached"
    );
}

async fn a_rotated_secret_signs_twice(backend: Backend) {
    let gw = gateway(backend).await;
    let receiver = Receiver::ok().await;
    let old = create_endpoint(
        &gw,
        pb::Endpoint {
            events: vec!["session.closed".into()],
            ..endpoint("siem", &receiver.url())
        },
    )
    .await;
    let rotated = gw
        .webhooks()
        .await
        .rotate_endpoint_secret(admin(pb::RotateEndpointSecretRequest {
            name: "siem".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let new = rotated.secret;
    assert!(new.starts_with("whsec_") && new != old);
    let until = rotated
        .endpoint
        .unwrap()
        .previous_secret_expire_time
        .expect("the old secret's end");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((until.seconds - now - 24 * 3600).abs() < 120, "{until:?}");
    watched(&gw, "sh").await;
    run(&gw, "sh", "x").await;
    let got = receiver.wait("the event", |got| !got.is_empty()).await;
    let signatures = got[0].header("webhook-signature");
    let parts: Vec<&str> = signatures.split(' ').collect();
    assert_eq!(parts.len(), 2, "{signatures}");
    assert!(parts.iter().all(|p| p.starts_with("v1,")), "{signatures}");
    // Receivers on either secret verify it.
    got[0].verify(&new).unwrap();
    got[0].verify(&old).unwrap();
    // A third secret does not.
    let stranger = Receiver::ok().await;
    let other = create_endpoint(&gw, endpoint("other", &stranger.url())).await;
    assert!(got[0].verify(&other).is_err());
}

async fn redeliver_sends_again_with_the_same_id(backend: Backend) {
    let gw = gateway(backend).await;
    let receiver = Receiver::ok().await;
    let secret = create_endpoint(
        &gw,
        pb::Endpoint {
            events: vec!["session.closed".into()],
            ..endpoint("siem", &receiver.url())
        },
    )
    .await;
    watched(&gw, "sh").await;
    run(&gw, "sh", "x").await;
    let first = receiver.wait("the event", |got| !got.is_empty()).await;
    let event_id = first[0].json()["data"]["event_id"].as_u64().unwrap();
    eventually(STEP, "the first delivery settled", || async {
        deliveries(&gw, "siem")
            .await
            .into_iter()
            .find(|d| d.status == "succeeded")
    })
    .await;
    let out = gw
        .cli(
            Some(hoop_rs::ADMIN_TOKEN),
            &["webhooks", "redeliver", "siem", &event_id.to_string()],
        )
        .await;
    assert!(out.ok().contains("queued"), "{out:?}");
    let got = receiver.wait("the event again", |got| got.len() >= 2).await;
    assert_eq!(got[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(got[1].body, first[0].body);
    got[1].verify(&secret).unwrap();
    let d = eventually(STEP, "two attempts on record", || async {
        deliveries(&gw, "siem")
            .await
            .into_iter()
            .find(|d| d.attempt_log.len() == 2 && d.status == "succeeded")
    })
    .await;
    assert_eq!(d.event_id, event_id);
    let listed = gw
        .cli(
            Some(hoop_rs::ADMIN_TOKEN),
            &["webhooks", "deliveries", "siem"],
        )
        .await;
    assert!(listed.ok().contains("succeeded"), "{listed:?}");
    assert_status(
        gw.webhooks()
            .await
            .redeliver_event(admin(pb::RedeliverEventRequest {
                endpoint: "siem".into(),
                event_id: 999_999,
            }))
            .await,
        Code::NotFound,
        "never delivered",
    );
}

async fn two_gateways_on_one_database_send_each_delivery_once(backend: Backend) {
    const EVENTS: usize = 100;
    // Both gateways on the same database (with the same secret key): on PostgreSQL each
    // claims with SKIP LOCKED; on SQLite a claim is one write.
    let key = "secret_key = \"webhooks-e2e-shared-secret-key-0123456789\"\n";
    let a = Setup::new(backend.clone()).with_toml(&format!("{key}{SETTINGS}"));
    let shared_db = match &backend {
        Backend::Sqlite => format!(
            "database_url = \"sqlite://{}\"\n",
            a.data_dir().join("hoop.db").display()
        ),
        Backend::Postgres(_) => String::new(),
    };
    let first = a.start().await;
    let second = Setup::new(backend)
        .with_toml(&format!("{key}{shared_db}{SETTINGS}"))
        .start()
        .await;
    let receiver = Receiver::ok().await;
    create_endpoint(
        &first,
        pb::Endpoint {
            events: vec!["connection.updated".into()],
            ..endpoint("siem", &receiver.url())
        },
    )
    .await;
    create_connection(&first, command_connection("sh", &["cat"])).await;
    attach(&first, "sh", serde_json::json!({})).await;
    // Events appended through both gateways.
    for i in 1..EVENTS {
        let gw = if i % 2 == 0 { &first } else { &second };
        let mut conn = command_connection("sh", &["cat"]);
        conn.tags.insert("n".into(), i.to_string());
        gw.connections()
            .await
            .update_connection(admin(pb::UpdateConnectionRequest {
                connection: Some(conn),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["tags".into()],
                }),
            }))
            .await
            .unwrap();
    }
    eventually(STEP, "every delivery succeeded", || async {
        let all = deliveries(&second, "siem").await;
        (all.len() == EVENTS && all.iter().all(|d| d.status == "succeeded")).then_some(())
    })
    .await;
    let got = receiver.got();
    let ids: BTreeSet<u64> = got
        .iter()
        .map(|r| r.json()["data"]["event_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), EVENTS);
    assert_eq!(got.len(), EVENTS, "a delivery was sent twice");
    for d in deliveries(&first, "siem").await {
        assert_eq!(d.attempt_log.len(), 1, "{d:?}");
    }
}

async fn an_endpoint_that_does_not_answer_times_out(backend: Backend) {
    // Accepts connections, reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let gw = Setup::new(backend)
        .with_toml(
            "[plugins.webhooks]\nallow_private_networks = true\ntimeout = \"500ms\"\n\
             retry_schedule = [\"0s\"]\n",
        )
        .start()
        .await;
    create_endpoint(
        &gw,
        pb::Endpoint {
            events: vec!["session.closed".into()],
            ..endpoint("silent", &format!("http://127.0.0.1:{port}/hook"))
        },
    )
    .await;
    watched(&gw, "sh").await;
    run(&gw, "sh", "x").await;
    let delivery = eventually(STEP, "the delivery failed", || async {
        deliveries(&gw, "silent")
            .await
            .into_iter()
            .find(|d| d.status == "failed")
    })
    .await;
    let attempt = &delivery.attempt_log[0];
    assert_eq!(attempt.status_code, 0);
    assert_eq!(attempt.error, "timed out after 500ms");
    assert!((500..5000).contains(&attempt.latency_ms), "{attempt:?}");
    silent.abort();
}

async fn bad_settings_stop_start_up_naming_the_key(backend: Backend) {
    for (toml, needle) in [
        (
            "[plugins.webhooks]\ntimeout = \"soon\"",
            "plugins.webhooks.timeout: `soon` is not a duration",
        ),
        (
            "[plugins.webhooks]\ntimeout = \"1h\"",
            "plugins.webhooks.timeout: `1h`: must be between 100ms and 5m",
        ),
        (
            "[plugins.webhooks]\nretry_schedule = [\"0s\", \"later\"]",
            "plugins.webhooks.retry_schedule[1]",
        ),
        (
            "[plugins.webhooks]\nallow_private_network = true",
            "unknown field `allow_private_network`",
        ),
    ] {
        let (code, stderr) = Setup::new(backend.clone())
            .with_toml(toml)
            .failed_start(&[])
            .await;
        assert_eq!(code, Some(78), "{toml}: {stderr}");
        assert!(stderr.contains(needle), "{toml}: {stderr}");
    }
}
