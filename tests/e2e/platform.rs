//! The plugin platform seen from outside: held sessions waiting in hoop-core and checked
//! again when their hold lifts, grants ended by the review plugin from the durable event log,
//! and approved one-time reviews expiring unrun.

use std::time::{Duration, Instant};

use hoop_rs::{Backend, Gateway, Setup, admin, authed, command_connection, e2e, exec, pb};
use pb::session_event::Event;

e2e!(
    a_revoked_grant_ends_a_session_whose_client_does_not_read,
    a_held_session_whose_user_is_deleted_is_denied,
    a_held_session_runs_with_the_settings_of_when_its_hold_lifts,
    an_approved_one_time_review_expires_unrun,
);

const STEP: Duration = Duration::from_secs(60);

async fn create(gw: &Gateway, conn: pb::Connection) {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
}

fn reviewed(name: &str, argv: &[&str], reviewers: &[&str]) -> pb::Connection {
    let mut conn = command_connection(name, argv);
    conn.reviewers = reviewers.iter().map(|g| g.to_string()).collect();
    conn
}

async fn next(events: &mut tonic::Streaming<pb::SessionEvent>) -> Option<Event> {
    tokio::time::timeout(STEP, events.message())
        .await
        .expect("no session event in time")
        .unwrap()
        .map(|e| e.event.unwrap())
}

/// Starts an Exec and reads until it is held; returns the review id and the stream.
async fn held_exec(
    gw: &Gateway,
    token: &str,
    req: pb::ExecRequest,
) -> (String, tonic::Streaming<pb::SessionEvent>) {
    let mut events = gw
        .sessions()
        .await
        .exec(authed(token, req))
        .await
        .unwrap()
        .into_inner();
    loop {
        match next(&mut events).await.expect("ended before it was held") {
            Event::Started(_) => {}
            Event::Held(held) => return (held.review_id, events),
            other => panic!("unexpected {other:?} before `held`"),
        }
    }
}

/// Reads a session's stream to its end: (stdout, exit).
async fn rest(mut events: tonic::Streaming<pb::SessionEvent>) -> (Vec<u8>, pb::SessionExit) {
    let mut out = Vec::new();
    loop {
        match next(&mut events).await.expect("ended without an exit") {
            Event::Output(o) => out.extend(o.data),
            Event::Exit(exit) => return (out, exit),
            _ => {}
        }
    }
}

async fn approve(gw: &Gateway, token: &str, id: &str) -> pb::Review {
    gw.reviews()
        .await
        .approve_review(authed(
            token,
            pb::ApproveReviewRequest {
                id: id.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn session(gw: &Gateway, id: &str) -> pb::Session {
    gw.sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: id.to_owned() }))
        .await
        .unwrap()
        .into_inner()
}

async fn last_event_id(gw: &Gateway) -> u64 {
    let mut after = 0;
    loop {
        let page = gw
            .events()
            .await
            .list_events(admin(pb::ListEventsRequest {
                after_id: after,
                page_size: 1000,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        if page.next_after_id == after {
            return after;
        }
        after = page.next_after_id;
    }
}

/// A session under a time-based grant floods its client, which reads nothing; while 5,000
/// other review events are appended, the grant is revoked: the session ends within 2 s.
async fn a_revoked_grant_ends_a_session_whose_client_does_not_read(backend: Backend) {
    const NOISE: usize = 5_000;
    const WRITERS: usize = 10;
    // Carol leaves every one of her reviews pending: far more than the default limit.
    let gw = Setup::new(backend)
        .with_toml("[limits]\npending_reviews_per_user = 10000\n")
        .start()
        .await;
    create(&gw, reviewed("flood", &["yes"], &["dba"])).await;
    create(&gw, reviewed("noise", &["true"], &["ops"])).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let carol = gw.user_with_token("carol", &["dev"]).await;

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
            connection: "flood".into(),
            // Long enough to outlast a slow machine's setup: the revoke ends it, not time.
            access_duration: Some(prost_types::Duration {
                seconds: 4 * 3600,
                nanos: 0,
            }),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut events = gw
        .sessions()
        .await
        .connect(authed(
            &alice,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut session_id = String::new();
    let review_id = loop {
        match next(&mut events).await.expect("ended before it was held") {
            Event::Started(s) => session_id = s.session_id,
            Event::Held(held) => break held.review_id,
            other => panic!("unexpected {other:?}"),
        }
    };
    approve(&gw, &bob, &review_id).await;
    // Running: output flows. From now on the client reads nothing.
    loop {
        if let Event::Output(_) = next(&mut events).await.expect("ended") {
            break;
        }
    }

    // Other review events pour in: carol's held execs on another connection.
    let mut noise = Vec::new();
    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<()>(WRITERS);
    for _ in 0..WRITERS {
        let url = gw.url();
        let carol = carol.clone();
        let first_tx = first_tx.clone();
        noise.push(tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut sessions = pb::session_service_client::SessionServiceClient::new(channel);
            for i in 0..NOISE / WRITERS {
                let req = pb::ExecRequest {
                    connection: "noise".into(),
                    input: format!("{i}").into_bytes(),
                    ..Default::default()
                };
                let mut stream = sessions
                    .exec(authed(&carol, req))
                    .await
                    .unwrap()
                    .into_inner();
                // Held means its review exists; leaving ends the session.
                while let Some(ev) = stream.message().await.unwrap() {
                    if let Some(Event::Held(_)) = ev.event {
                        break;
                    }
                }
                if i == 5 {
                    let _ = first_tx.send(()).await;
                }
            }
        }));
    }
    first_rx.recv().await.unwrap();

    let mut watch = gw
        .events()
        .await
        .watch_events(admin(pb::WatchEventsRequest {
            after_id: last_event_id(&gw).await,
            types: vec!["session.closed".into()],
            from_now: false,
        }))
        .await
        .unwrap()
        .into_inner();
    let revoked_at = Instant::now();
    gw.reviews()
        .await
        .revoke_review(authed(
            &bob,
            pb::RevokeReviewRequest {
                id: review_id.clone(),
                reason: "enough".into(),
            },
        ))
        .await
        .unwrap();
    loop {
        let event = tokio::time::timeout(STEP, watch.message())
            .await
            .expect("no session.closed in time")
            .unwrap()
            .unwrap();
        let data = event.data.unwrap_or_default();
        let id = data.fields.get("session_id").and_then(|v| match &v.kind {
            Some(prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        });
        if id.as_deref() == Some(session_id.as_str()) {
            break;
        }
    }
    let took = revoked_at.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the session ended {took:?} after the revoke"
    );
    let record = session(&gw, &session_id).await;
    assert_eq!(record.status, "killed");
    assert!(
        record
            .reason
            .contains(&format!("access review {review_id} ended: revoked by bob")),
        "{}",
        record.reason
    );
    for task in noise {
        tokio::time::timeout(Duration::from_secs(300), task)
            .await
            .expect("the noise took too long")
            .unwrap();
    }
    drop(tx);
}

async fn a_held_session_whose_user_is_deleted_is_denied(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, reviewed("pg", &["cat"], &["dba"])).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let (review_id, events) = held_exec(
        &gw,
        &alice,
        pb::ExecRequest {
            connection: "pg".into(),
            input: b"select 1;\n".to_vec(),
            ..Default::default()
        },
    )
    .await;
    gw.users()
        .await
        .delete_user(admin(pb::DeleteUserRequest {
            name: "alice".into(),
        }))
        .await
        .unwrap();
    approve(&gw, &bob, &review_id).await;
    let (out, exit) = rest(events).await;
    assert!(out.is_empty(), "{out:?}");
    assert!(
        exit.reason.contains("user `alice` no longer exists"),
        "{exit:?}"
    );
    let sessions = gw
        .sessions()
        .await
        .list_sessions(admin(pb::ListSessionsRequest {
            connection: "pg".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].status, "denied");
}

/// While alice's exec waits for approval, the connection gains `redact_types`: when the
/// review is approved, the session runs with them, and its output is masked.
async fn a_held_session_runs_with_the_settings_of_when_its_hold_lifts(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(
        &gw,
        reviewed(
            "mail",
            &["sh", "-c", "echo contact: alice@example.com"],
            &["dba"],
        ),
    )
    .await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let (review_id, events) = held_exec(
        &gw,
        &alice,
        pb::ExecRequest {
            connection: "mail".into(),
            ..Default::default()
        },
    )
    .await;
    let mut conn = reviewed(
        "mail",
        &["sh", "-c", "echo contact: alice@example.com"],
        &["dba"],
    );
    conn.redact_types = vec!["EMAIL_ADDRESS".into()];
    gw.connections()
        .await
        .update_connection(admin(pb::UpdateConnectionRequest {
            connection: Some(conn),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["redact_types".into()],
            }),
        }))
        .await
        .unwrap();
    approve(&gw, &bob, &review_id).await;
    let (out, exit) = rest(events).await;
    assert_eq!(exit.exit_code, 0, "{exit:?}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("contact: "), "{out}");
    assert!(!out.contains("alice@example.com"), "{out}");
    // The review ran once, masked; it cannot run again.
    let plain = exec(
        &gw,
        &alice,
        pb::ExecRequest {
            connection: "mail".into(),
            review_id: review_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(plain.reason.contains("already ran"), "{plain:?}");
}

async fn an_approved_one_time_review_expires_unrun(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut conn = reviewed("pg", &["cat"], &["dba"]);
    conn.review_ttl = Some(prost_types::Duration {
        seconds: 3,
        nanos: 0,
    });
    create(&gw, conn).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let mut watch = gw
        .events()
        .await
        .watch_events(admin(pb::WatchEventsRequest {
            types: vec!["review.*".into()],
            from_now: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let (review_id, events) = held_exec(
        &gw,
        &alice,
        pb::ExecRequest {
            connection: "pg".into(),
            input: b"select 1;\n".to_vec(),
            ..Default::default()
        },
    )
    .await;
    // Alice leaves; the review stays, and bob approves it.
    drop(events);
    let approved = approve(&gw, &bob, &review_id).await;
    assert_eq!(approved.status, pb::ReviewStatus::Approved as i32);
    let approved_at = Instant::now();
    let expired = loop {
        let event = tokio::time::timeout(STEP, watch.message())
            .await
            .expect("no review event in time")
            .unwrap()
            .unwrap();
        if event.r#type == "review.expired" {
            break event;
        }
    };
    // Not before the TTL after its approval.
    assert!(approved_at.elapsed() >= Duration::from_millis(2500));
    assert_eq!(expired.connection, "pg");
    let review = gw
        .reviews()
        .await
        .get_review(authed(
            &alice,
            pb::GetReviewRequest {
                id: review_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(review.status, pb::ReviewStatus::Expired as i32);
    assert_eq!(
        review.reason,
        "approved but not run within the review TTL of its approval"
    );
    let run = exec(
        &gw,
        &alice,
        pb::ExecRequest {
            connection: "pg".into(),
            input: b"select 1;\n".to_vec(),
            review_id: review_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(run.exit_code, Some(-1));
    assert!(run.reason.contains("expired"), "{run:?}");
    assert!(run.stdout.is_empty());
}
