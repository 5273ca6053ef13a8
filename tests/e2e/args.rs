//! Arguments (issue 11, part 4) and the connection's `agent` name: `allow_args` decides
//! whether sessions may append arguments, which are then recorded on the session and in its
//! recording and bound by the reviews that let the session in; neither `Exec{review_id}`,
//! a held session nor a plugin-started session gets round it.

use std::time::Duration;

use hoop_rs::{
    ADMIN_TOKEN, Backend, Gateway, admin, args_connection, assert_status, authed,
    command_connection, e2e, exec, pb, recording,
};
use tonic::Code;

e2e!(
    allow_args_decides_whether_sessions_take_args,
    review_ids_and_held_sessions_do_not_get_round_allow_args,
    a_time_based_grant_binds_the_args_it_was_approved_with,
    the_agent_is_a_name,
);

/// Longest a step of these tests may take.
const STEP: Duration = Duration::from_secs(30);

/// Prints each argument in brackets: `[a b][$HOME]`, and `[]` without any.
const SHOW_ARGS: &[&str] = &["sh", "-c", "printf '[%s]' \"$@\"; echo", "show"];

async fn create(gw: &Gateway, conn: pb::Connection) -> pb::Connection {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap()
        .into_inner()
}

async fn update(
    gw: &Gateway,
    conn: pb::Connection,
    paths: &[&str],
) -> Result<pb::Connection, tonic::Status> {
    gw.connections()
        .await
        .update_connection(admin(pb::UpdateConnectionRequest {
            connection: Some(conn),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        }))
        .await
        .map(tonic::Response::into_inner)
}

async fn set_allow_args(gw: &Gateway, name: &str, allow: bool) {
    let conn = pb::Connection {
        name: name.into(),
        allow_args: allow,
        ..Default::default()
    };
    let updated = update(gw, conn, &["allow_args"]).await.unwrap();
    assert_eq!(updated.allow_args, allow);
}

async fn get_connection(gw: &Gateway, name: &str) -> pb::Connection {
    gw.connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest { name: name.into() }))
        .await
        .unwrap()
        .into_inner()
}

fn run(conn: &str, input: &[u8], args: &[&str]) -> pb::ExecRequest {
    pb::ExecRequest {
        connection: conn.into(),
        input: input.to_vec(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn get_session(gw: &Gateway, token: &str, id: &str) -> pb::Session {
    gw.sessions()
        .await
        .get_session(authed(token, pb::GetSessionRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

async fn sessions_of(gw: &Gateway, user: &str) -> Vec<pb::Session> {
    gw.sessions()
        .await
        .list_sessions(admin(pb::ListSessionsRequest {
            user: user.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .sessions
}

async fn get_review(gw: &Gateway, token: &str, id: &str) -> pb::Review {
    gw.reviews()
        .await
        .get_review(authed(token, pb::GetReviewRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

async fn approve(gw: &Gateway, token: &str, id: &str) {
    gw.reviews()
        .await
        .approve_review(authed(
            token,
            pb::ApproveReviewRequest {
                id: id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

/// An interactive session: requests go in through a channel, events come out.
#[derive(Debug)]
struct Interactive {
    tx: tokio::sync::mpsc::Sender<pb::ConnectRequest>,
    events: tonic::Streaming<pb::SessionEvent>,
}

impl Interactive {
    async fn open(
        gw: &Gateway,
        token: &str,
        conn: &str,
        args: &[&str],
    ) -> Result<Self, tonic::Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(pb::ConnectRequest {
            request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
                connection: conn.into(),
                args: args.iter().map(|s| s.to_string()).collect(),
                access_duration: Some(prost_types::Duration {
                    seconds: 600,
                    nanos: 0,
                }),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let events = tokio::time::timeout(
            STEP,
            gw.sessions().await.connect(authed(
                token,
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )),
        )
        .await
        .expect("Connect timed out")?
        .into_inner();
        Ok(Self { tx, events })
    }

    async fn next(&mut self) -> pb::session_event::Event {
        tokio::time::timeout(STEP, self.events.message())
            .await
            .expect("no session event in time")
            .unwrap()
            .expect("the stream ended")
            .event
            .unwrap()
    }

    /// The session id, from `started`.
    async fn started(&mut self) -> String {
        match self.next().await {
            pb::session_event::Event::Started(s) => s.session_id,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The next event, expected to be `held`: its review id.
    async fn held(&mut self) -> String {
        match self.next().await {
            pb::session_event::Event::Held(h) => h.review_id,
            other => panic!("expected held, got {other:?}"),
        }
    }

    /// Reads stdout until `want` has arrived.
    async fn expect_stdout(&mut self, want: &[u8]) {
        let mut out = Vec::new();
        while out.len() < want.len() {
            match self.next().await {
                pb::session_event::Event::Output(o) => out.extend(o.data),
                other => panic!("unexpected {other:?} after {out:?}"),
            }
        }
        assert_eq!(out, want);
    }

    /// Reads to the exit: (exit code, reason).
    async fn exit(&mut self) -> (i32, String) {
        loop {
            match self.next().await {
                pb::session_event::Event::Exit(e) => return (e.exit_code, e.reason),
                pb::session_event::Event::Output(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn close_stdin(&self) {
        self.tx
            .send(pb::ConnectRequest {
                request: Some(pb::connect_request::Request::CloseStdin(pb::CloseStdin {})),
            })
            .await
            .unwrap();
    }
}

async fn allow_args_decides_whether_sessions_take_args(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let created = create(&gw, command_connection("show", SHOW_ARGS)).await;
    // Off by default; reads say which agent runs the sessions.
    assert!(!created.allow_args);
    assert_eq!(created.agent, "local");

    // Args are refused, naming the field, before anything is recorded.
    assert_status(
        exec(&gw, &alice, run("show", b"", &["a b"])).await,
        Code::FailedPrecondition,
        "allow_args: connection `show` does not take arguments",
    );
    assert_status(
        Interactive::open(&gw, &alice, "show", &["a b"]).await,
        Code::FailedPrecondition,
        "update_mask: allow_args",
    );
    assert!(sessions_of(&gw, "alice").await.is_empty());
    // Without args the session runs.
    let plain = exec(&gw, &alice, run("show", b"", &[])).await.unwrap();
    assert_eq!(plain.stdout, b"[]\n");

    // Allowed: the args run as argv (never through a shell) and are on record.
    set_allow_args(&gw, "show", true).await;
    assert!(get_connection(&gw, "show").await.allow_args);
    let args = ["a b", "$HOME; id", "`x`"];
    let ran = exec(&gw, &alice, run("show", b"", &args)).await.unwrap();
    assert_eq!(ran.stdout, b"[a b][$HOME; id][`x`]\n");
    let session = get_session(&gw, &alice, &ran.session_id).await;
    assert_eq!(session.args, args);
    let (events, failure) = recording(&gw, &alice, &ran.session_id).await.unwrap();
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(events[0].kind, pb::RecordingEventKind::Header as i32);
    let header: serde_json::Value = serde_json::from_slice(&events[0].data).unwrap();
    assert_eq!(header["args"], serde_json::json!(args));
    // `hoop sessions get` shows them, quoted for a shell.
    let shown = gw
        .cli(Some(&alice), &["sessions", "get", &ran.session_id])
        .await;
    let line = shown
        .ok()
        .lines()
        .find(|l| l.starts_with("args:"))
        .unwrap_or_else(|| panic!("no args line in {shown:?}"));
    assert_eq!(line, "args:            'a b' '$HOME; id' '`x`'");

    // Connect too.
    let mut s = Interactive::open(&gw, &alice, "show", &["one"])
        .await
        .unwrap();
    let id = s.started().await;
    s.expect_stdout(b"[one]\n").await;
    assert_eq!(s.exit().await.0, 0);
    assert_eq!(get_session(&gw, &alice, &id).await.args, ["one"]);

    // Turned off again: refused again.
    set_allow_args(&gw, "show", false).await;
    assert_status(
        exec(&gw, &alice, run("show", b"", &["again"])).await,
        Code::FailedPrecondition,
        "allow_args",
    );
}

async fn review_ids_and_held_sessions_do_not_get_round_allow_args(backend: Backend) {
    use pb::session_event::Event;
    let gw = Gateway::start(backend).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let mut conn = args_connection("show", SHOW_ARGS);
    conn.reviewers = vec!["dba".into()];
    create(&gw, conn).await;

    // A one-time review of an exec with args, approved, then the args are switched off.
    let mut stream = gw
        .sessions()
        .await
        .exec(authed(&alice, run("show", b"", &["reviewed"])))
        .await
        .unwrap()
        .into_inner();
    let review_id = loop {
        match stream.message().await.unwrap().unwrap().event.unwrap() {
            Event::Started(_) => {}
            Event::Held(h) => break h.review_id,
            other => panic!("unexpected {other:?}"),
        }
    };
    drop(stream);
    assert_eq!(get_review(&gw, &bob, &review_id).await.args, ["reviewed"]);
    approve(&gw, &bob, &review_id).await;
    set_allow_args(&gw, "show", false).await;
    // Running the review (its args are taken from it) is refused like any request with args.
    let by_review = pb::ExecRequest {
        review_id: review_id.clone(),
        ..Default::default()
    };
    assert_status(
        exec(&gw, &alice, by_review.clone()).await,
        Code::FailedPrecondition,
        "allow_args: connection `show` does not take arguments",
    );
    let mut with_args = by_review.clone();
    with_args.args = vec!["reviewed".into()];
    assert_status(
        exec(&gw, &alice, with_args).await,
        Code::FailedPrecondition,
        "allow_args",
    );
    // The review was not used up: allowed again, it runs, once.
    assert_eq!(
        get_review(&gw, &bob, &review_id).await.status,
        pb::ReviewStatus::Approved as i32
    );
    set_allow_args(&gw, "show", true).await;
    let ran = exec(&gw, &alice, by_review).await.unwrap();
    assert_eq!(ran.stdout, b"[reviewed]\n");
    assert_eq!(
        get_session(&gw, &alice, &ran.session_id).await.args,
        ["reviewed"]
    );

    // A session held with args is checked again when its hold lifts: args switched off in
    // the meantime deny it.
    let mut stream = gw
        .sessions()
        .await
        .exec(authed(&alice, run("show", b"", &["held"])))
        .await
        .unwrap()
        .into_inner();
    let held_review = loop {
        match stream.message().await.unwrap().unwrap().event.unwrap() {
            Event::Started(_) => {}
            Event::Held(h) => break h.review_id,
            other => panic!("unexpected {other:?}"),
        }
    };
    set_allow_args(&gw, "show", false).await;
    approve(&gw, &bob, &held_review).await;
    let exit = loop {
        let event = tokio::time::timeout(STEP, stream.message())
            .await
            .expect("the held session did not end in time")
            .unwrap()
            .expect("no exit")
            .event
            .unwrap();
        match event {
            Event::Exit(exit) => break exit,
            Event::Output(o) => panic!("the session ran: {o:?}"),
            _ => {}
        }
    };
    assert_eq!(exit.exit_code, -1, "{exit:?}");
    assert!(exit.reason.contains("allow_args"), "{exit:?}");
}

async fn a_time_based_grant_binds_the_args_it_was_approved_with(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let mut conn = args_connection("sh", &["sh", "-c"]);
    conn.reviewers = vec!["dba".into()];
    create(&gw, conn).await;
    const GRANTED: &str = "echo granted; cat";

    // Asked for with these args, approved: the session runs with them.
    let mut first = Interactive::open(&gw, &alice, "sh", &[GRANTED])
        .await
        .unwrap();
    first.started().await;
    let grant = first.held().await;
    let review = get_review(&gw, &bob, &grant).await;
    assert_eq!(review.kind, pb::ReviewKind::Jit as i32);
    assert_eq!(review.args, [GRANTED]);
    approve(&gw, &bob, &grant).await;
    first.expect_stdout(b"granted\n").await;

    // Other args under the grant are denied, naming both, and no new review is asked for.
    let mut other = Interactive::open(&gw, &alice, "sh", &["echo other; id"])
        .await
        .unwrap();
    let other_id = other.started().await;
    let (code, reason) = other.exit().await;
    assert_eq!(code, -1);
    assert_eq!(
        reason,
        format!(
            r#"denied by review: the arguments ["echo other; id"] differ from the arguments ["echo granted; cat"] that review {grant} grants access with: connect with exactly those, or revoke the grant (hoop reviews revoke {grant}) and ask again"#
        )
    );
    let denied = get_session(&gw, &alice, &other_id).await;
    assert_eq!(
        (denied.status.as_str(), denied.args.as_slice()),
        ("denied", &["echo other; id".to_owned()][..])
    );
    // No args at all differ too; presenting the grant does not help.
    let mut bare = Interactive::open(&gw, &alice, "sh", &[]).await.unwrap();
    bare.started().await;
    assert!(
        bare.exit().await.1.contains("the arguments [] differ"),
        "bare connect"
    );
    let reviews = gw
        .reviews()
        .await
        .list_reviews(authed(
            &alice,
            pb::ListReviewsRequest {
                mine: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .reviews;
    assert_eq!(reviews.len(), 1, "{reviews:?}");

    // The same args go in at once, under the grant.
    let mut same = Interactive::open(&gw, &alice, "sh", &[GRANTED])
        .await
        .unwrap();
    let same_id = same.started().await;
    same.expect_stdout(b"granted\n").await;
    same.close_stdin().await;
    assert_eq!(same.exit().await.0, 0);
    let session = get_session(&gw, &alice, &same_id).await;
    assert_eq!(session.attributes["review.id"], grant);
    assert_eq!(session.args, [GRANTED]);
    first.close_stdin().await;
    assert_eq!(first.exit().await.0, 0);
}

async fn the_agent_is_a_name(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);
    // Any well-formed name, whether or not such an agent exists yet.
    let mut edge = command_connection("edge", &["true"]);
    edge.agent = "edge-1".into();
    assert_eq!(create(&gw, edge).await.agent, "edge-1");
    for garbage in ["Edge 1", "edge/../../x", "-x", "edge\n1", &"a".repeat(64)] {
        let mut bad = command_connection("bad", &["true"]);
        bad.agent = garbage.into();
        assert_status(
            gw.connections()
                .await
                .create_connection(admin(pb::CreateConnectionRequest {
                    connection: Some(bad),
                }))
                .await,
            Code::InvalidArgument,
            "connection.agent: agent name must match ^[a-z0-9][a-z0-9_-]{0,62}$",
        );
        let changed = pb::Connection {
            name: "edge".into(),
            agent: garbage.into(),
            ..Default::default()
        };
        assert_status(
            update(&gw, changed, &["agent"]).await,
            Code::InvalidArgument,
            "connection.agent",
        );
    }
    assert_eq!(get_connection(&gw, "edge").await.agent, "edge-1");
    // Nothing of the refused ones was written.
    let listed = gw
        .connections()
        .await
        .list_connections(admin(pb::ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .connections;
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.name.as_str(), c.agent.as_str()))
            .collect::<Vec<_>>(),
        [("edge", "edge-1")]
    );

    // The CLI: --agent sets it, '' goes back to `local`, garbage is refused.
    let out = gw
        .cli(t, &["connections", "update", "edge", "--agent", ""])
        .await;
    assert!(
        out.ok().lines().any(|l| l == "agent:               local"),
        "{out:?}"
    );
    let err = gw
        .cli(
            t,
            &[
                "connections",
                "create",
                "x",
                "--agent",
                "no good",
                "--",
                "true",
            ],
        )
        .await;
    assert!(
        err.err()
            .starts_with("error: connection.agent: agent name must match")
            && err.err().ends_with("(INVALID_ARGUMENT)"),
        "{err:?}"
    );
    let out = gw
        .cli(
            t,
            &[
                "connections",
                "create",
                "y",
                "--agent",
                "dc2",
                "--allow-args",
                "--",
                "true",
            ],
        )
        .await;
    assert!(out.ok().contains("\nagent:               dc2\n"), "{out:?}");
    assert!(out.ok().contains("\nallow_args:          yes\n"), "{out:?}");
}
