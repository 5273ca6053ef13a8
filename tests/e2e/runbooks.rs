//! RunbookService and `hoop runbooks`: runbooks fetched from git repositories the tests make
//! with the git CLI (`file://` URLs), listed, shown and run as the caller's own sessions
//! through the connection's whole plugin chain (access mode `runbooks`, reviews, masking,
//! recording), with a second commit picked up by refresh and a repository that goes away.

use std::path::Path;
use std::time::Duration;

use hoop_rs::{
    Backend, Gateway, Setup, admin, assert_status, authed, command_connection, config, e2e,
    eventually, pb,
};
use serde_json::json;
use tonic::Code;

e2e!(
    list_show_and_run_as_a_recorded_session,
    params_are_typed_and_values_are_inert,
    a_run_is_held_by_review_with_its_rendered_script,
    paths_and_access_control_limit_what_is_offered,
    broken_files_and_an_unreachable_repository,
);

/// How long any single step may take.
const STEP: Duration = Duration::from_secs(30);

/// A runbook that greets: one required string, one number used as the exit code.
const GREET: &str = r#"+++
description = "Greets someone"

[params.name]
type = "string"
required = true
max_length = 200
description = "Who to greet"

[params.code]
type = "number"
default = 0
+++
printf 'hello %s\n' {{ name }}
exit {{ code }}
"#;

/// A shell runbook that prints its value back (every value a shell word).
const ECHO: &str = r#"+++
[params.value]
type = "string"
required = true
+++
printf '%s|' {{ value }}
"#;

/// An SQL runbook run through `cat`: what it prints is what a database would get.
const REFUND: &str = r#"+++
description = "Refund an order"

[params.order_id]
type = "string"
required = true
pattern = "^[0-9]+$"

[params.reason]
type = "select"
options = ["damaged", "late"]
required = true

[params.note]
type = "string"
default = ""

[params.day]
type = "date"

[params.notify]
type = "boolean"
default = false
+++
update orders set refunded = {{ notify }}, note = {{ note }} where id = {{ order_id }} and reason = {{ reason }};
"#;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A git repository (in a temp dir) holding the runbooks under `runbooks/`.
struct Origin {
    dir: tempfile::TempDir,
}

impl Origin {
    fn new(files: &[(&str, &str)]) -> (Self, String) {
        let origin = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        git(origin.dir.path(), &["init", "-q"]);
        let commit = origin.commit(files, "first");
        (origin, commit)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, text) in files {
            let file = self.path().join("runbooks").join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        // Something outside `runbooks/` is never offered.
        std::fs::write(self.path().join("outside.runbook.sh"), ECHO).unwrap();
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", message]);
        git(self.path(), &["rev-parse", "HEAD"])
    }

    fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// The gateway config naming this repository `ops`, refreshed every second.
    fn toml(&self) -> String {
        format!(
            "[[plugins.runbooks.repositories]]\nname = \"ops\"\nurl = \"{}\"\nbranch = \"main\"\npath = \"runbooks\"\nrefresh = \"1s\"\n",
            self.url()
        )
    }
}

async fn start(backend: Backend, origin: &Origin) -> Gateway {
    Setup::new(backend).with_toml(&origin.toml()).start().await
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

async fn list(
    gw: &Gateway,
    token: &str,
    connection: &str,
) -> Result<pb::ListRunbooksResponse, tonic::Status> {
    gw_runbooks(gw)
        .await
        .list_runbooks(authed(
            token,
            pb::ListRunbooksRequest {
                connection: connection.into(),
                repository: String::new(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn gw_runbooks(
    gw: &Gateway,
) -> pb::runbook_service_client::RunbookServiceClient<tonic::transport::Channel> {
    pb::runbook_service_client::RunbookServiceClient::new(gw.channel().await)
}

/// Waits until repository `ops` is at `commit`.
async fn fetched(gw: &Gateway, commit: &str) {
    eventually(STEP, &format!("repository ops at {commit}"), || async {
        let listed = list(gw, hoop_rs::ADMIN_TOKEN, "").await.ok()?;
        listed
            .repositories
            .iter()
            .any(|r| r.name == "ops" && r.commit == commit)
            .then_some(())
    })
    .await;
}

/// A `google.protobuf.Struct` as JSON.
fn struct_json(s: prost_types::Struct) -> serde_json::Value {
    use prost_types::value::Kind;
    fn value(v: prost_types::Value) -> serde_json::Value {
        match v.kind {
            None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
            Some(Kind::BoolValue(b)) => b.into(),
            Some(Kind::NumberValue(n)) => n.into(),
            Some(Kind::StringValue(s)) => s.into(),
            Some(Kind::ListValue(l)) => l.values.into_iter().map(value).collect(),
            Some(Kind::StructValue(s)) => struct_json(s),
        }
    }
    serde_json::Value::Object(s.fields.into_iter().map(|(k, v)| (k, value(v))).collect())
}

fn paths(listed: &pb::ListRunbooksResponse) -> Vec<&str> {
    listed.runbooks.iter().map(|r| r.path.as_str()).collect()
}

fn run_request(conn: &str, path: &str, params: &[(&str, &str)]) -> pb::RunRunbookRequest {
    pb::RunRunbookRequest {
        connection: conn.into(),
        repository: "ops".into(),
        path: path.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        r#ref: String::new(),
    }
}

/// What a run's stream brought.
#[derive(Debug, Default)]
struct Ran {
    session_id: String,
    stdout: Vec<u8>,
    exit_code: Option<i32>,
    reason: String,
    held: Vec<pb::SessionHeld>,
}

async fn events_of(
    mut stream: tonic::Streaming<pb::SessionEvent>,
    ran: &mut Ran,
    until_held: bool,
) {
    use pb::session_event::Event;
    while let Some(event) = tokio::time::timeout(STEP, stream.message())
        .await
        .expect("the run stalled")
        .unwrap()
    {
        match event.event.unwrap() {
            Event::Started(s) => ran.session_id = s.session_id,
            Event::Output(o) => ran.stdout.extend(o.data),
            Event::Exit(e) => {
                ran.exit_code = Some(e.exit_code);
                ran.reason = e.reason;
            }
            Event::Held(h) => {
                ran.held.push(h);
                if until_held {
                    return;
                }
            }
        }
    }
}

async fn run(gw: &Gateway, token: &str, req: pb::RunRunbookRequest) -> Result<Ran, tonic::Status> {
    let stream = gw_runbooks(gw)
        .await
        .run_runbook(authed(token, req))
        .await?
        .into_inner();
    let mut ran = Ran::default();
    events_of(stream, &mut ran, false).await;
    Ok(ran)
}

async fn list_plugins_status(gw: &Gateway) -> String {
    gw.plugins()
        .await
        .list_plugins(admin(pb::ListPluginsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .plugins
        .into_iter()
        .find(|p| p.name == "runbooks")
        .unwrap()
        .status
}

async fn list_show_and_run_as_a_recorded_session(backend: Backend) {
    let (origin, first) = Origin::new(&[
        ("greet.runbook.sh", GREET),
        ("billing/refund.runbook.sql", REFUND),
    ]);
    let gw = start(backend, &origin).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let mut sh = command_connection("sh", &["sh"]);
    sh.redact_types = vec!["EMAIL_ADDRESS".into()];
    create(&gw, sh).await;
    create(&gw, command_connection("sql", &["cat"])).await;
    gw.attach_plugin("sh", "runbooks", json!({})).await;
    gw.attach_plugin("sql", "runbooks", json!({"paths": ["billing/**"]}))
        .await;
    fetched(&gw, &first).await;
    assert!(
        list_plugins_status(&gw)
            .await
            .contains(&format!("ops: at commit {}", &first[..12]))
    );

    // list, show: as alice, through the CLI.
    let out = gw.cli(Some(&alice), &["runbooks", "list", "sh"]).await;
    let text = out.ok();
    assert!(
        text.contains("greet.runbook.sh") && text.contains("Greets someone"),
        "{text}"
    );
    assert!(text.contains("billing/refund.runbook.sql"), "{text}");
    assert!(
        !text.contains("outside.runbook.sh"),
        "only runbooks/ is offered: {text}"
    );
    let out = gw.cli(Some(&alice), &["runbooks", "list", "sql"]).await;
    assert!(!out.ok().contains("greet.runbook.sh"), "{}", out.stdout);
    let out = gw
        .cli(
            Some(&alice),
            &["runbooks", "show", "ops", "greet.runbook.sh"],
        )
        .await;
    let text = out.ok();
    for expected in [
        "Greets someone",
        "name",
        "string, required, at most 200 characters",
        "exit {{ code }}",
        "escaping:    shell",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    let shown = gw_runbooks(&gw)
        .await
        .get_runbook(authed(
            &alice,
            pb::GetRunbookRequest {
                repository: "ops".into(),
                path: "greet.runbook.sh".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.commit, first);
    assert_eq!(
        shown
            .params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["code", "name"]
    );
    assert_eq!(
        (
            shown.params[0].r#type.as_str(),
            shown.params[0].default.as_str()
        ),
        ("number", "0")
    );

    // run: output streamed, exit code propagated; dlp masks the output.
    let out = gw
        .cli(
            Some(&alice),
            &[
                "runbooks",
                "run",
                "sh",
                "ops",
                "greet.runbook.sh",
                "--param",
                "name=bob@example.com",
                "--param",
                "code=3",
            ],
        )
        .await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout, "hello [EMAIL_ADDRESS]\n");
    let ran = run(
        &gw,
        &alice,
        run_request("sh", "greet.runbook.sh", &[("name", "world")]),
    )
    .await
    .unwrap();
    assert_eq!(
        (ran.stdout.as_slice(), ran.exit_code),
        (&b"hello world\n"[..], Some(0))
    );

    // The session is alice's, with the runbook's attributes, in its record and recording.
    let session = gw
        .sessions()
        .await
        .get_session(authed(
            &alice,
            pb::GetSessionRequest {
                id: ran.session_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.user, "alice");
    assert_eq!(
        session
            .attributes
            .get("runbooks.repository")
            .map(String::as_str),
        Some("ops")
    );
    assert_eq!(
        session.attributes.get("runbooks.path").map(String::as_str),
        Some("greet.runbook.sh")
    );
    assert_eq!(session.attributes.get("runbooks.commit"), Some(&first));
    let (events, end) = hoop_rs::recording(&gw, &alice, &ran.session_id)
        .await
        .unwrap();
    assert!(end.is_none(), "{end:?}");
    let header: serde_json::Value = serde_json::from_slice(&events[0].data).unwrap();
    assert_eq!(header["attributes"]["runbooks.path"], "greet.runbook.sh");
    assert_eq!(header["attributes"]["runbooks.commit"], first.as_str());
    // The rendered script is the recorded input.
    let input: Vec<u8> = events
        .iter()
        .filter(|e| e.kind == pb::RecordingEventKind::Stdin as i32)
        .flat_map(|e| e.data.clone())
        .collect();
    assert_eq!(
        String::from_utf8(input).unwrap(),
        "printf 'hello %s\\n' 'world'\nexit '0'\n"
    );

    // session.opened says which runbook, at which commit.
    let opened = gw
        .events()
        .await
        .list_events(admin(pb::ListEventsRequest {
            after_id: 0,
            types: vec!["session.opened".into()],
            page_size: 1000,
        }))
        .await
        .unwrap()
        .into_inner()
        .events;
    let opened = opened
        .iter()
        .map(|e| struct_json(e.data.clone().unwrap_or_default()))
        .find(|d| d["session_id"] == ran.session_id.as_str())
        .expect("the run's session.opened");
    assert_eq!(
        opened["runbook"],
        json!({"repository": "ops", "path": "greet.runbook.sh", "commit": first})
    );

    // The SQL runbook renders every value as a literal.
    let ran = run(
        &gw,
        &alice,
        run_request(
            "sql",
            "billing/refund.runbook.sql",
            &[
                ("order_id", "42"),
                ("reason", "late"),
                ("note", "it's late"),
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8(ran.stdout).unwrap(),
        "update orders set refunded = FALSE, note = 'it''s late' where id = '42' and reason = 'late';\n"
    );

    // Access mode `runbooks`, not `exec`: each is switched off on its own.
    let mask = |paths: &[&str]| {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    };
    let mut conns = gw.connections().await;
    let mut off = command_connection("sh", &["sh"]);
    off.access_modes = Some(pb::AccessModes {
        exec: Some(false),
        connect: None,
        runbooks: Some(true),
    });
    conns
        .update_connection(admin(pb::UpdateConnectionRequest {
            connection: Some(off.clone()),
            update_mask: mask(&["access_modes.exec"]),
        }))
        .await
        .unwrap();
    let ran = run(
        &gw,
        &alice,
        run_request("sh", "greet.runbook.sh", &[("name", "x")]),
    )
    .await
    .unwrap();
    assert_eq!(
        ran.exit_code,
        Some(0),
        "exec off leaves runbooks on: {ran:?}"
    );
    off.access_modes = Some(pb::AccessModes {
        exec: Some(true),
        connect: None,
        runbooks: Some(false),
    });
    conns
        .update_connection(admin(pb::UpdateConnectionRequest {
            connection: Some(off),
            update_mask: mask(&["access_modes.exec", "access_modes.runbooks"]),
        }))
        .await
        .unwrap();
    assert_status(
        run(
            &gw,
            &alice,
            run_request("sh", "greet.runbook.sh", &[("name", "x")]),
        )
        .await,
        Code::FailedPrecondition,
        "runbooks is disabled on connection `sh`",
    );

    // A second commit is picked up by the background refresh.
    let second = origin.commit(&[("later.runbook.sh", ECHO)], "second");
    fetched(&gw, &second).await;
    let listed = list(&gw, &alice, "sql").await.unwrap();
    assert_eq!(paths(&listed), ["billing/refund.runbook.sql"]);
    let listed = list(&gw, &alice, "").await.unwrap();
    assert!(paths(&listed).contains(&"later.runbook.sh"), "{listed:?}");
    // An older commit can be run by id.
    let old = gw_runbooks(&gw)
        .await
        .run_runbook(authed(
            &alice,
            pb::RunRunbookRequest {
                r#ref: first[..12].to_owned(),
                ..run_request(
                    "sql",
                    "billing/refund.runbook.sql",
                    &[("order_id", "1"), ("reason", "late")],
                )
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut ran = Ran::default();
    events_of(old, &mut ran, false).await;
    let session = gw
        .sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: ran.session_id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.attributes.get("runbooks.commit"), Some(&first));
}

async fn params_are_typed_and_values_are_inert(backend: Backend) {
    let (origin, first) = Origin::new(&[
        ("echo.runbook.sh", ECHO),
        ("billing/refund.runbook.sql", REFUND),
    ]);
    let gw = start(backend, &origin).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    create(&gw, command_connection("sh", &["sh"])).await;
    gw.attach_plugin("sh", "runbooks", json!({"repositories": ["ops"]}))
        .await;
    fetched(&gw, &first).await;

    // Every bad parameter is named; nothing runs.
    let bad = run_request(
        "sh",
        "billing/refund.runbook.sql",
        &[
            ("order_id", "1 or 1=1"),
            ("reason", "whim"),
            ("day", "2026-13-01"),
            ("notify", "yes"),
            ("colour", "red"),
        ],
    );
    let err = run(&gw, &alice, bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    for expected in [
        "params.order_id: must match ^[0-9]+$",
        "params.reason: must be one of damaged, late",
        "params.day: must be a date, YYYY-MM-DD",
        "params.notify: must be true or false",
        "params.colour: unknown parameter",
    ] {
        assert!(
            err.message().contains(expected),
            "{expected} not in {}",
            err.message()
        );
    }
    assert_status(
        run(
            &gw,
            &alice,
            run_request("sh", "billing/refund.runbook.sql", &[("reason", "late")]),
        )
        .await,
        Code::InvalidArgument,
        "params.order_id: required",
    );
    let out = gw
        .cli(
            Some(&alice),
            &[
                "runbooks",
                "run",
                "sh",
                "ops",
                "billing/refund.runbook.sql",
                "--param",
                "order_id=x",
                "--param",
                "reason=late",
            ],
        )
        .await;
    assert_eq!(
        out.err(),
        "error: params.order_id: must match ^[0-9]+$ (INVALID_ARGUMENT)"
    );
    let out = gw
        .cli(
            Some(&alice),
            &[
                "runbooks",
                "run",
                "sh",
                "ops",
                "echo.runbook.sh",
                "--param",
                "value",
            ],
        )
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    // No session was recorded for any of them.
    let sessions = gw
        .sessions()
        .await
        .list_sessions(admin(pb::ListSessionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(sessions.sessions.is_empty(), "{sessions:?}");

    // Injection attempts come out as the very text given: the shell ran none of it.
    for value in [
        "x' or '1'='1",
        "'; echo INJECTED; '",
        "$(echo INJECTED)",
        "`echo INJECTED`",
        "a\necho INJECTED",
        "\\' \" ${HOME} $0 ; | & > /tmp/x",
    ] {
        let ran = run(
            &gw,
            &alice,
            run_request("sh", "echo.runbook.sh", &[("value", value)]),
        )
        .await
        .unwrap();
        assert_eq!(ran.exit_code, Some(0), "{value:?}: {ran:?}");
        assert_eq!(
            String::from_utf8(ran.stdout).unwrap(),
            format!("{value}|"),
            "{value:?}"
        );
    }
}

async fn a_run_is_held_by_review_with_its_rendered_script(backend: Backend) {
    let (origin, first) = Origin::new(&[("greet.runbook.sh", GREET)]);
    let gw = start(backend, &origin).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let mut sh = command_connection("sh", &["sh"]);
    sh.reviewers = vec!["dba".into()];
    create(&gw, sh).await;
    gw.attach_plugin("sh", "runbooks", json!({})).await;
    fetched(&gw, &first).await;

    let stream = gw_runbooks(&gw)
        .await
        .run_runbook(authed(
            &alice,
            run_request("sh", "greet.runbook.sh", &[("name", "it's me")]),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut ran = Ran::default();
    let (stream, review_id) = {
        let mut stream = stream;
        events_of_until_held(&mut stream, &mut ran).await;
        (stream, ran.held[0].review_id.clone())
    };
    assert_eq!(ran.held[0].groups, ["dba"]);
    // The reviewer reads the rendered script: exactly what will run.
    let review = gw
        .reviews()
        .await
        .get_review(authed(
            &bob,
            pb::GetReviewRequest {
                id: review_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(review.requester, "alice");
    assert_eq!(
        String::from_utf8(review.input).unwrap(),
        "printf 'hello %s\\n' 'it'\\''s me'\nexit '0'\n"
    );
    gw.reviews()
        .await
        .approve_review(authed(
            &bob,
            pb::ApproveReviewRequest {
                id: review_id,
                group: String::new(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    events_of(stream, &mut ran, false).await;
    assert_eq!(
        (
            String::from_utf8(ran.stdout).unwrap().as_str(),
            ran.exit_code
        ),
        ("hello it's me\n", Some(0))
    );

    // A client that leaves a held run ends its session, as leaving a held Exec does.
    let mut stream = gw_runbooks(&gw)
        .await
        .run_runbook(authed(
            &alice,
            run_request("sh", "greet.runbook.sh", &[("name", "later")]),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut left = Ran::default();
    events_of_until_held(&mut stream, &mut left).await;
    drop(stream);
    let session = eventually(STEP, "the left session to end", || async {
        let s = gw
            .sessions()
            .await
            .get_session(admin(pb::GetSessionRequest {
                id: left.session_id.clone(),
            }))
            .await
            .ok()?
            .into_inner();
        (s.status != "open").then_some(s)
    })
    .await;
    assert_eq!(
        (session.status.as_str(), session.reason.as_str()),
        ("killed", "client went away")
    );
}

async fn events_of_until_held(stream: &mut tonic::Streaming<pb::SessionEvent>, ran: &mut Ran) {
    use pb::session_event::Event;
    loop {
        let event = tokio::time::timeout(STEP, stream.message())
            .await
            .expect("not held in time")
            .unwrap()
            .expect("ended unheld");
        match event.event.unwrap() {
            Event::Started(s) => ran.session_id = s.session_id,
            Event::Held(h) => {
                ran.held.push(h);
                return;
            }
            other => panic!("unexpected {other:?} before `held`"),
        }
    }
}

async fn paths_and_access_control_limit_what_is_offered(backend: Backend) {
    let (origin, first) = Origin::new(&[
        ("billing/refund.runbook.sql", REFUND),
        ("users/unlock.runbook.sh", ECHO),
    ]);
    let gw = start(backend, &origin).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    create(&gw, command_connection("billing", &["cat"])).await;
    create(&gw, command_connection("dba-only", &["sh"])).await;
    create(&gw, command_connection("plain", &["sh"])).await;
    gw.attach_plugin(
        "billing",
        "runbooks",
        json!({"repositories": ["ops"], "paths": ["billing/*.runbook.sql"]}),
    )
    .await;
    gw.attach_plugin("dba-only", "runbooks", json!({})).await;
    gw.attach_plugin("dba-only", "access_control", json!({"groups": ["dba"]}))
        .await;
    fetched(&gw, &first).await;

    // `paths`: only billing's runbooks are offered on `billing`, and only those run there.
    let listed = list(&gw, &alice, "billing").await.unwrap();
    assert_eq!(paths(&listed), ["billing/refund.runbook.sql"]);
    assert_status(
        run(
            &gw,
            &alice,
            run_request("billing", "users/unlock.runbook.sh", &[("value", "x")]),
        )
        .await,
        Code::NotFound,
        "not offered on connection `billing`",
    );
    // A connection without the plugin offers nothing, and says why.
    assert_status(
        list(&gw, &alice, "plain").await,
        Code::FailedPrecondition,
        "plugin `runbooks` is not attached",
    );
    assert_status(
        run(
            &gw,
            &alice,
            run_request("plain", "users/unlock.runbook.sh", &[("value", "x")]),
        )
        .await,
        Code::FailedPrecondition,
        "plugin `runbooks` is not attached",
    );

    // access_control: to alice `dba-only` does not exist, exactly like a missing connection.
    let missing = list(&gw, &alice, "no-such").await.unwrap_err();
    let hidden = list(&gw, &alice, "dba-only").await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(
        hidden.message(),
        missing.message().replace("no-such", "dba-only")
    );
    assert_status(
        run(
            &gw,
            &alice,
            run_request("dba-only", "users/unlock.runbook.sh", &[("value", "x")]),
        )
        .await,
        Code::NotFound,
        "connection `dba-only` not found",
    );
    // Nor is what only it offers: users/unlock is offered nowhere alice can see.
    let listed = list(&gw, &alice, "").await.unwrap();
    assert_eq!(paths(&listed), ["billing/refund.runbook.sql"]);
    assert_status(
        gw_runbooks(&gw)
            .await
            .get_runbook(authed(
                &alice,
                pb::GetRunbookRequest {
                    repository: "ops".into(),
                    path: "users/unlock.runbook.sh".into(),
                },
            ))
            .await,
        Code::NotFound,
        "runbook `users/unlock.runbook.sh` not found",
    );
    // bob, a dba, sees and runs it.
    assert_eq!(
        paths(&list(&gw, &bob, "dba-only").await.unwrap()),
        ["billing/refund.runbook.sql", "users/unlock.runbook.sh"]
    );
    let ran = run(
        &gw,
        &bob,
        run_request("dba-only", "users/unlock.runbook.sh", &[("value", "x")]),
    )
    .await
    .unwrap();
    assert_eq!(ran.stdout, b"x|");
    // An unknown repository in a connection's config is refused, naming the field.
    assert_status(
        gw.plugins()
            .await
            .update_plugin_config(admin(pb::UpdatePluginConfigRequest {
                connection: "billing".into(),
                plugin: "runbooks".into(),
                config: config(json!({"repositories": ["nope"]})),
            }))
            .await,
        Code::InvalidArgument,
        "config.repositories[0]: no repository `nope`",
    );
    // Once billing offers nothing, alice can run runbooks nowhere: she is told of no
    // runbook and no repository (not even its name), while bob still sees both.
    gw.detach_plugin("billing", "runbooks").await;
    let listed = list(&gw, &alice, "").await.unwrap();
    assert!(
        listed.runbooks.is_empty() && listed.repositories.is_empty(),
        "{listed:?}"
    );
    let listed = list(&gw, &bob, "").await.unwrap();
    assert_eq!(
        listed
            .repositories
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["ops"]
    );
}

async fn broken_files_and_an_unreachable_repository(backend: Backend) {
    let (origin, first) = Origin::new(&[
        ("echo.runbook.sh", ECHO),
        (
            "broken.runbook.sql",
            "+++\n[params.id]\ntype = \"string\"\n+++\nselect {{ id }} from {{ table }};\n",
        ),
        ("bad-syntax.runbook.sh", "+++\n+++\necho {% if %}\n"),
    ]);
    let gw = start(backend, &origin).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    create(&gw, command_connection("sh", &["sh"])).await;
    gw.attach_plugin("sh", "runbooks", json!({})).await;
    fetched(&gw, &first).await;

    // Broken files are listed with their error, and cannot run.
    let listed = list(&gw, &alice, "sh").await.unwrap();
    let error_of = |path: &str| {
        listed
            .runbooks
            .iter()
            .find(|r| r.path == path)
            .unwrap()
            .error
            .clone()
    };
    assert!(
        error_of("broken.runbook.sql").contains("`table` that no [params.<name>] table declares"),
        "{listed:?}"
    );
    assert!(
        error_of("bad-syntax.runbook.sh").contains("template: syntax error"),
        "{listed:?}"
    );
    assert_eq!(error_of("echo.runbook.sh"), "");
    let out = gw.cli(Some(&alice), &["runbooks", "list", "sh"]).await;
    assert!(
        out.ok().contains("ERROR: template: syntax error"),
        "{}",
        out.stdout
    );
    assert_status(
        run(
            &gw,
            &alice,
            run_request("sh", "broken.runbook.sql", &[("id", "1")]),
        )
        .await,
        Code::FailedPrecondition,
        "does not parse, so it cannot run",
    );

    // The repository goes away: refreshes fail, the error shows, the last commit serves.
    let moved = origin.path().with_extension("moved");
    std::fs::rename(origin.path(), &moved).unwrap();
    let status = eventually(STEP, "a failed refresh in the plugin's status", || async {
        let status = list_plugins_status(&gw).await;
        status.contains("last refresh failed").then_some(status)
    })
    .await;
    assert!(
        status.contains(&format!(
            "ops: at commit {}; last refresh failed: git fetch",
            &first[..12]
        )),
        "{status}"
    );
    // git's own words (which may name hosts, paths, accounts) are for admins; a user learns
    // only that the refresh failed.
    let listed = list(&gw, &alice, "sh").await.unwrap();
    let error = &listed.repositories[0].error;
    assert!(
        error.contains("last refresh failed (an admin can see why)"),
        "{listed:?}"
    );
    assert!(!error.contains("git"), "{listed:?}");
    assert!(
        !error.contains(&*origin.path().to_string_lossy()),
        "{listed:?}"
    );
    assert_eq!(listed.repositories[0].commit, first);
    let as_admin = list(&gw, hoop_rs::ADMIN_TOKEN, "sh").await.unwrap();
    assert!(
        as_admin.repositories[0].error.contains("git fetch"),
        "{as_admin:?}"
    );
    let ran = run(
        &gw,
        &alice,
        run_request("sh", "echo.runbook.sh", &[("value", "still here")]),
    )
    .await
    .unwrap();
    assert_eq!(ran.stdout, b"still here|");
    let out = gw.cli(Some(&alice), &["runbooks", "list", "sh"]).await;
    assert!(out.ok().contains("last refresh failed"), "{}", out.stdout);
    // Back again: the error clears.
    std::fs::rename(&moved, origin.path()).unwrap();
    eventually(STEP, "the error to clear", || async {
        (!list_plugins_status(&gw).await.contains("failed")).then_some(())
    })
    .await;
}
