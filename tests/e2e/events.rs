//! EventService and `hoop events`: the durable event log, read by cursor.

use std::time::Duration;

use hoop_rs::{
    Backend, Gateway, Setup, admin, args_connection, assert_status, authed, command_connection,
    e2e, exec, pb,
};
use tokio::io::AsyncBufReadExt as _;
use tonic::Code;

e2e!(
    a_session_and_a_connection_tell_their_story,
    reviews_and_held_sessions_are_told,
    a_stalled_watcher_resumes_with_none_missing,
    watch_resumes_after_a_restart_from_the_last_id,
    only_admins_and_auditors_read_the_log,
    bad_requests_name_the_field,
    the_cli_lists_and_watches,
    bad_event_settings_stop_start_up
);

/// How long one step may take before the test fails.
const STEP: Duration = Duration::from_secs(60);

fn data(event: &pb::Event) -> serde_json::Value {
    let fields = event.data.clone().unwrap_or_default().fields;
    let object = fields
        .into_iter()
        .map(|(k, v)| (k, value(v)))
        .collect::<serde_json::Map<_, _>>();
    serde_json::Value::Object(object)
}

fn value(v: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => b.into(),
        Some(Kind::NumberValue(n)) => n.into(),
        Some(Kind::StringValue(s)) => s.into(),
        Some(Kind::ListValue(l)) => l.values.into_iter().map(value).collect(),
        Some(Kind::StructValue(s)) => {
            serde_json::Value::Object(s.fields.into_iter().map(|(k, v)| (k, value(v))).collect())
        }
    }
}

/// Every event the log holds after `after`, through ListEvents pages.
async fn all_events(gw: &Gateway, token: &str, after: u64, types: &[&str]) -> Vec<pb::Event> {
    let mut client = gw.events().await;
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let page = client
            .list_events(authed(
                token,
                pb::ListEventsRequest {
                    after_id: after,
                    types: types.iter().map(|t| t.to_string()).collect(),
                    page_size: 1000,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.events);
        if page.next_after_id == after {
            return out;
        }
        after = page.next_after_id;
    }
}

async fn watch(
    gw: &Gateway,
    token: &str,
    after: u64,
    types: &[&str],
) -> tonic::Streaming<pb::Event> {
    gw.events()
        .await
        .watch_events(authed(
            token,
            pb::WatchEventsRequest {
                after_id: after,
                types: types.iter().map(|t| t.to_string()).collect(),
                from_now: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut tonic::Streaming<pb::Event>) -> pb::Event {
    tokio::time::timeout(STEP, stream.message())
        .await
        .expect("no event in time")
        .expect("the watch failed")
        .expect("the watch ended")
}

/// Reads the watch until an event of type `kind` arrives; returns it.
async fn next_of(stream: &mut tonic::Streaming<pb::Event>, kind: &str) -> pb::Event {
    loop {
        let event = next(stream).await;
        if event.r#type == kind {
            return event;
        }
    }
}

async fn create(gw: &Gateway, conn: pb::Connection) {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
}

async fn a_session_and_a_connection_tell_their_story(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, args_connection("sh", &["sh", "-c"])).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let run = exec(
        &gw,
        &alice,
        pb::ExecRequest {
            connection: "sh".into(),
            args: vec!["echo hi; exit 3".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(run.exit_code, Some(3));
    gw.connections()
        .await
        .delete_connection(admin(pb::DeleteConnectionRequest { name: "sh".into() }))
        .await
        .unwrap();

    let events = all_events(&gw, hoop_rs::ADMIN_TOKEN, 0, &[]).await;
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let story: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        story,
        [
            "connection.created",
            "session.opened",
            "session.started",
            "session.closed",
            "recording.finished",
            "connection.deleted"
        ],
        "{events:#?}"
    );
    let by_type = |t: &str| events.iter().find(|e| e.r#type == t).unwrap();
    let created = by_type("connection.created");
    assert_eq!(created.connection, "sh");
    assert_eq!(created.user, "admin");
    assert_eq!(data(created)["type"], "command");
    for t in ["session.opened", "session.started", "session.closed"] {
        let e = by_type(t);
        assert_eq!(
            (e.connection.as_str(), e.user.as_str()),
            ("sh", "alice"),
            "{t}"
        );
        assert_eq!(data(e)["session_id"], run.session_id.as_str(), "{t}");
    }
    let closed = data(by_type("session.closed"));
    assert_eq!(closed["status"], "done");
    assert_eq!(closed["exit_code"], 3.0);
    assert_eq!(closed["bytes_out"], 3.0);
    // The digest told is the one the session record keeps, and it verifies.
    let session = gw
        .sessions()
        .await
        .get_session(admin(pb::GetSessionRequest {
            id: run.session_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let finished = data(by_type("recording.finished"));
    assert_eq!(
        finished["digest"].as_str(),
        session.attributes.get("audit.digest").map(String::as_str)
    );
    assert!(by_type("session.closed").time.is_some());
}

async fn reviews_and_held_sessions_are_told(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut conn = command_connection("guarded", &["sh", "-c", "echo ran"]);
    conn.reviewers = vec!["dba".into()];
    create(&gw, conn).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let mut watcher = watch(&gw, hoop_rs::ADMIN_TOKEN, 0, &["review.*", "session.*"]).await;

    let held = {
        let gw_url = gw.url();
        let alice = alice.clone();
        tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(gw_url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut sessions = pb::session_service_client::SessionServiceClient::new(channel);
            let mut stream = sessions
                .exec(authed(
                    &alice,
                    pb::ExecRequest {
                        connection: "guarded".into(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            let mut out = Vec::new();
            while let Some(event) = stream.message().await.unwrap() {
                out.push(event);
            }
            out
        })
    };
    let created = next_of(&mut watcher, "review.created").await;
    assert_eq!(created.user, "alice");
    assert_eq!(created.connection, "guarded");
    let review_id = data(&created)["review_id"].as_str().unwrap().to_owned();
    assert_eq!(data(&created)["groups"], serde_json::json!(["dba"]));
    let held_event = next_of(&mut watcher, "session.held").await;
    assert_eq!(data(&held_event)["request_id"], review_id.as_str());
    assert_eq!(data(&held_event)["plugin"], "review");

    gw.reviews()
        .await
        .approve_review(authed(
            &bob,
            pb::ApproveReviewRequest {
                id: review_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let approved = next_of(&mut watcher, "review.approved").await;
    assert_eq!(approved.user, "bob");
    assert_eq!(
        data(&approved)["approved_by"],
        serde_json::json!(["bob (dba)"])
    );
    let executed = next_of(&mut watcher, "review.executed").await;
    assert_eq!(data(&executed)["review_id"], review_id.as_str());
    next_of(&mut watcher, "session.started").await;
    let closed = next_of(&mut watcher, "session.closed").await;
    assert_eq!(data(&closed)["status"], "done");
    let out = tokio::time::timeout(STEP, held).await.unwrap().unwrap();
    assert!(!out.is_empty());
}

/// A watcher that stops reading while more than 10,000 events are appended, then reads on,
/// gets every one of them, in order, with contiguous ids.
async fn a_stalled_watcher_resumes_with_none_missing(backend: Backend) {
    const EVENTS: usize = 10_200;
    const WRITERS: usize = 12;
    let gw = Gateway::start(backend).await;
    create(&gw, command_connection("busy", &["true"])).await;
    let mut watcher = watch(&gw, hoop_rs::ADMIN_TOKEN, 0, &[]).await;
    let first = next(&mut watcher).await;
    assert_eq!(first.r#type, "connection.created");

    // The watcher now reads nothing while the writers append.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let channel = gw.channel().await;
        writers.push(tokio::spawn(async move {
            let mut plugins = pb::plugin_service_client::PluginServiceClient::new(channel);
            for i in 0..EVENTS / WRITERS {
                let req = pb::UpdatePluginConfigRequest {
                    connection: "busy".into(),
                    plugin: "slack".into(),
                    config: hoop_rs::config(serde_json::json!({
                        "channels": [format!("C{w:03}{i:06}")]
                    })),
                };
                plugins.update_plugin_config(admin(req)).await.unwrap();
            }
        }));
    }
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(600), writer)
            .await
            .expect("writers took too long")
            .unwrap();
    }

    let mut last = first.id;
    for n in 0..EVENTS {
        let event = next(&mut watcher).await;
        assert_eq!(event.id, last + 1, "event {n} after {last}");
        assert_eq!(event.r#type, "connection.updated");
        assert_eq!(data(&event)["change"], "plugin_configured");
        last = event.id;
    }
    // Nothing more, and the list agrees with what the watcher saw.
    let listed = all_events(&gw, hoop_rs::ADMIN_TOKEN, first.id, &[]).await;
    assert_eq!(listed.len(), EVENTS);
    assert_eq!(listed.last().map(|e| e.id), Some(last));
}

async fn watch_resumes_after_a_restart_from_the_last_id(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, command_connection("one", &["true"])).await;
    create(&gw, command_connection("two", &["true"])).await;
    let mut watcher = watch(&gw, hoop_rs::ADMIN_TOKEN, 0, &["connection.*"]).await;
    next(&mut watcher).await;
    let seen = next(&mut watcher).await;
    assert_eq!(seen.connection, "two");
    drop(watcher);
    let setup = gw.stop().await;

    let gw = setup.start().await;
    create(&gw, command_connection("three", &["true"])).await;
    gw.connections()
        .await
        .delete_connection(admin(pb::DeleteConnectionRequest { name: "one".into() }))
        .await
        .unwrap();
    let mut watcher = watch(&gw, hoop_rs::ADMIN_TOKEN, seen.id, &["connection.*"]).await;
    let a = next(&mut watcher).await;
    let b = next(&mut watcher).await;
    assert_eq!(
        (a.r#type.as_str(), a.connection.as_str()),
        ("connection.created", "three")
    );
    assert_eq!(
        (b.r#type.as_str(), b.connection.as_str()),
        ("connection.deleted", "one")
    );
    assert!(a.id > seen.id && b.id > a.id);
    // The events before the cursor are not sent again.
    let listed = all_events(&gw, hoop_rs::ADMIN_TOKEN, 0, &["connection.*"]).await;
    assert_eq!(listed.len(), 4);
}

async fn only_admins_and_auditors_read_the_log(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, command_connection("c", &["true"])).await;
    let dev = gw.user_with_token("dev", &["dev"]).await;
    let auditor = gw.user_with_token("audie", &["auditor"]).await;
    let mut client = gw.events().await;
    let denied = client
        .list_events(authed(&dev, pb::ListEventsRequest::default()))
        .await;
    assert_status(denied, Code::PermissionDenied, "group `admin` or `auditor`");
    let denied = client
        .watch_events(authed(&dev, pb::WatchEventsRequest::default()))
        .await;
    assert_status(
        denied.map(|_| ()),
        Code::PermissionDenied,
        "group `admin` or `auditor`",
    );
    let listed = all_events(&gw, &auditor, 0, &[]).await;
    assert_eq!(listed.len(), 1);
    let mut watcher = watch(&gw, &auditor, 0, &[]).await;
    assert_eq!(next(&mut watcher).await.r#type, "connection.created");

    // A connection access_control hides from auditors: its events are hidden from them
    // too (not from admins), in listings and in watches.
    create(&gw, command_connection("secret", &["true"])).await;
    gw.plugins()
        .await
        .attach_plugin(admin(pb::AttachPluginRequest {
            connection: "secret".into(),
            plugin: "access_control".into(),
            config: hoop_rs::config(serde_json::json!({ "groups": ["dba"] })),
        }))
        .await
        .unwrap();
    gw.connections()
        .await
        .delete_connection(admin(pb::DeleteConnectionRequest { name: "c".into() }))
        .await
        .unwrap();
    let everything = all_events(&gw, hoop_rs::ADMIN_TOKEN, 0, &[]).await;
    assert_eq!(everything.len(), 4, "{everything:#?}");
    let listed = all_events(&gw, &auditor, 0, &[]).await;
    let seen: Vec<(&str, &str)> = listed
        .iter()
        .map(|e| (e.r#type.as_str(), e.connection.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("connection.created", "c"), ("connection.deleted", "c")]
    );
    // A watch skips the hidden connection's two events and goes on with the next.
    drop(watcher);
    let mut watcher = watch(&gw, &auditor, 0, &[]).await;
    assert_eq!(next(&mut watcher).await.connection, "c");
    let after_secret = next(&mut watcher).await;
    assert_eq!(
        (
            after_secret.r#type.as_str(),
            after_secret.connection.as_str()
        ),
        ("connection.deleted", "c")
    );
}

async fn bad_requests_name_the_field(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut client = gw.events().await;
    let bad = client
        .list_events(admin(pb::ListEventsRequest {
            types: vec!["session.closed".into(), "sesion.*".into()],
            ..Default::default()
        }))
        .await;
    assert_status(bad, Code::InvalidArgument, "types[1]");
    let bad = client
        .list_events(admin(pb::ListEventsRequest {
            page_size: -1,
            ..Default::default()
        }))
        .await;
    assert_status(bad, Code::InvalidArgument, "page_size");
    let bad = client
        .watch_events(admin(pb::WatchEventsRequest {
            types: vec!["nope".into()],
            ..Default::default()
        }))
        .await;
    assert_status(bad.map(|_| ()), Code::InvalidArgument, "types[0]");
    let bad = client
        .watch_events(admin(pb::WatchEventsRequest {
            after_id: 3,
            from_now: true,
            ..Default::default()
        }))
        .await;
    assert_status(bad.map(|_| ()), Code::InvalidArgument, "after_id");
}

async fn the_cli_lists_and_watches(backend: Backend) {
    let gw = Gateway::start(backend).await;
    for name in ["a", "b", "c"] {
        create(&gw, command_connection(name, &["true"])).await;
    }
    let token = Some(hoop_rs::ADMIN_TOKEN);
    let out = gw
        .cli(
            token,
            &["events", "list", "--type", "connection.*", "--limit", "2"],
        )
        .await;
    let text = out.ok();
    assert!(text.contains("connection.created"), "{text}");
    assert!(
        text.contains("(more events: hoop events list --after 2)"),
        "{text}"
    );
    let out = gw
        .cli(token, &["-o", "json", "events", "list", "--after", "2"])
        .await;
    let json = out.json();
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["connection"], "c");
    assert_eq!(events[0]["data"]["name"], "c");
    let out = gw.cli(token, &["events", "list", "--type", "nope"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("types[0]"), "{}", out.stderr);

    // `watch` streams: from the start with --after 0, then what happens next.
    let mut child = tokio::process::Command::new(hoop_rs::cli_bin())
        .args(["--gateway", &gw.url(), "--token", hoop_rs::ADMIN_TOKEN])
        .args(["events", "watch", "--after", "0", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut read = async || -> serde_json::Value {
        let line = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("hoop events watch printed nothing")
            .unwrap()
            .expect("hoop events watch ended");
        serde_json::from_str(&line).unwrap()
    };
    for name in ["a", "b", "c"] {
        assert_eq!(read().await["connection"], name);
    }
    create(&gw, command_connection("d", &["true"])).await;
    let line = read().await;
    assert_eq!(line["type"], "connection.created");
    assert_eq!(line["connection"], "d");
    child.kill().await.unwrap();
}

async fn bad_event_settings_stop_start_up(backend: Backend) {
    for (toml, expected) in [
        (
            "events_retention = \"soon\"",
            "events_retention: `soon` is not a duration",
        ),
        (
            "events_retention = \"10s\"",
            "events_retention: must be at least 1m",
        ),
        (
            "[plugins.nope]\nx = 1",
            "plugins.nope: no plugin `nope` in this build",
        ),
        (
            "[plugins.audit]\nbucket = \"b\"",
            "plugins.audit.bucket: unknown key: plugin `audit` takes no settings",
        ),
    ] {
        let setup = Setup::new(backend.clone()).with_toml(toml);
        let out = tokio::time::timeout(STEP, setup.gateway_command().output())
            .await
            .expect("the gateway should exit on bad config")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{toml}: {stderr}");
        assert!(stderr.contains(expected), "{toml}: {stderr}");
    }
}
