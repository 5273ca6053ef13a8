//! The `hoop` CLI against a real gateway.

use hoop_rs::{ADMIN_TOKEN, Backend, Gateway, admin, e2e, exec, pb};

e2e!(
    cli_manages_connections_plugins_and_users,
    cli_errors_are_one_clear_line,
    cli_exec_streams_output_and_exit_code,
    cli_replays_and_verifies_recordings,
    cli_connect_runs_an_interactive_session,
    cli_sets_and_clears_a_session_timeout,
);

async fn cli_manages_connections_plugins_and_users(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);

    let out = gw.cli(t, &["whoami"]).await;
    assert!(out.ok().contains("admin"), "{out:?}");

    let out = gw
        .cli(
            t,
            &[
                "connections",
                "create",
                "pg-prod",
                "--env",
                "PGPASSWORD=hunter2-secret",
                "--tag",
                "env=prod",
                "--",
                "psql",
                "-h",
                "db.internal",
            ],
        )
        .await;
    let text = out.ok();
    assert!(
        text.contains("pg-prod") && text.contains("psql -h db.internal"),
        "{text}"
    );
    assert!(!text.contains("hunter2-secret"), "{text}");

    let list = gw.cli(t, &["connections", "list"]).await;
    let table = list.ok();
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("NAME") && header.contains("PLUGINS"),
        "{table}"
    );
    let row = table.lines().find(|l| l.contains("pg-prod")).unwrap();
    assert!(row.contains("audit"), "active plugins shown: {row}");

    let json = gw
        .cli(t, &["--output", "json", "connections", "get", "pg-prod"])
        .await
        .json();
    assert_eq!(json["name"], "pg-prod");
    assert_eq!(
        json["command"],
        serde_json::json!(["psql", "-h", "db.internal"])
    );
    assert_eq!(json["env"]["PGPASSWORD"], "");
    let plugins: Vec<(&str, bool)> = json["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["active"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        plugins,
        [
            ("review", false),
            ("dlp", false),
            ("slack", false),
            ("audit", true)
        ]
    );
    assert!(
        json["createTime"].as_str().unwrap().ends_with('Z'),
        "RFC 3339: {json}"
    );

    let out = gw
        .cli(
            t,
            &[
                "connections",
                "update",
                "pg-prod",
                "--reviewers",
                "dba",
                "--redact-types",
                "EMAIL_ADDRESS",
            ],
        )
        .await;
    out.ok();
    let json = gw
        .cli(t, &["-o", "json", "connections", "get", "pg-prod"])
        .await
        .json();
    assert_eq!(json["reviewers"], serde_json::json!(["dba"]));
    assert_eq!(
        json["command"],
        serde_json::json!(["psql", "-h", "db.internal"]),
        "untouched by the update"
    );

    let registry = gw.cli(t, &["plugins", "list"]).await;
    for name in ["audit", "dlp", "review", "slack", "access_control"] {
        assert!(registry.ok().contains(name), "{registry:?}");
    }
    gw.cli(
        t,
        &[
            "plugins",
            "attach",
            "pg-prod",
            "access_control",
            "--config",
            r#"{"groups":["dba"]}"#,
        ],
    )
    .await
    .ok();
    gw.cli(
        t,
        &[
            "plugins",
            "config",
            "pg-prod",
            "slack",
            "--config",
            r#"{"channels":["C0123456789"]}"#,
        ],
    )
    .await
    .ok();
    let attached = gw
        .cli(t, &["-o", "json", "plugins", "list", "pg-prod"])
        .await
        .json();
    let names: Vec<&str> = attached["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["access_control", "review", "dlp", "slack", "audit"]);
    gw.cli(t, &["plugins", "detach", "pg-prod", "access_control"])
        .await
        .ok();

    gw.cli(
        t,
        &[
            "users",
            "create",
            "carol",
            "--email",
            "carol@example.com",
            "--groups",
            "dev,sre",
        ],
    )
    .await
    .ok();
    let users = gw.cli(t, &["users", "list"]).await;
    assert!(users.ok().contains("carol@example.com"), "{users:?}");
    let key = gw
        .cli(
            t,
            &[
                "-o",
                "json",
                "users",
                "keys",
                "create",
                "carol",
                "--description",
                "ci",
            ],
        )
        .await
        .json();
    let token = key["token"].as_str().unwrap().to_owned();
    let me = gw.cli(Some(&token), &["-o", "json", "whoami"]).await.json();
    assert_eq!(me["name"], "carol");
    assert_eq!(me["groups"], serde_json::json!(["dev", "sre"]));

    gw.cli(t, &["connections", "delete", "pg-prod"]).await.ok();
    let list = gw
        .cli(t, &["-o", "json", "connections", "list"])
        .await
        .json();
    assert!(
        list["connections"].as_array().is_none_or(|a| a.is_empty()),
        "{list}"
    );
}

async fn cli_errors_are_one_clear_line(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);

    let err = gw.cli(t, &["connections", "get", "nope"]).await;
    assert_eq!(err.err(), "error: connection `nope` not found (NOT_FOUND)");

    let err = gw
        .cli(t, &["connections", "create", "Bad", "--", "psql"])
        .await;
    assert!(
        err.err()
            .starts_with("error: connection.name: connection name must match"),
        "{err:?}"
    );
    assert!(err.err().ends_with("(INVALID_ARGUMENT)"), "{err:?}");

    let err = gw
        .cli(
            t,
            &[
                "connections",
                "create",
                "pg",
                "--env",
                "NOEQUALS",
                "--",
                "psql",
            ],
        )
        .await;
    assert!(err.err().contains("KEY=VALUE"), "{err:?}");

    let err = gw.cli(t, &["plugins", "detach", "x", "audit"]).await;
    assert!(err.err().contains("FAILED_PRECONDITION"), "{err:?}");

    let err = gw.cli(Some("wrong-token"), &["whoami"]).await;
    assert_eq!(
        err.err(),
        "error: invalid or revoked token (UNAUTHENTICATED)"
    );

    // No token anywhere (the test's working dir has no admin-token: it was configured).
    let err = gw.cli(None, &["whoami"]).await;
    assert!(err.err().starts_with("error: no token"), "{err:?}");

    // Nothing listens there.
    let mut stopped = gw;
    let url = stopped.url();
    let status = stopped.terminate().await;
    assert!(status.success());
    let err = stopped.cli(t, &["whoami"]).await;
    let line = err.err();
    assert!(
        line.starts_with(&format!("error: cannot reach the gateway at {url}")),
        "{line}"
    );
    assert!(!line.contains(ADMIN_TOKEN));
}

async fn cli_exec_streams_output_and_exit_code(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);
    gw.cli(t, &["connections", "create", "sh", "--", "sh", "-c"])
        .await
        .ok();
    gw.cli(t, &["connections", "create", "cat", "--", "cat"])
        .await
        .ok();

    let out = gw
        .cli(t, &["exec", "sh", "--", "echo out; echo err >&2; exit 7"])
        .await;
    assert_eq!(out.code, Some(7), "{out:?}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\nhoop: exited with code 7\n");

    let out = gw.cli(t, &["exec", "cat", "-i", "select 1;"]).await;
    assert_eq!(out.ok(), "select 1;");

    let list = gw
        .cli(t, &["-o", "json", "sessions", "list", "--connection", "sh"])
        .await
        .json();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["status"], "done");
    assert_eq!(sessions[0]["exitCode"], 7);
    let id = sessions[0]["id"].as_str().unwrap();
    let shown = gw.cli(t, &["sessions", "show", id]).await;
    assert!(
        shown.ok().contains("status:") && shown.ok().contains("done"),
        "{shown:?}"
    );

    let err = gw.cli(t, &["exec", "nope"]).await;
    assert_eq!(err.err(), "error: connection `nope` not found (NOT_FOUND)");
}

async fn cli_replays_and_verifies_recordings(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);
    gw.cli(t, &["connections", "create", "sh", "--", "sh", "-c"])
        .await
        .ok();
    let script = "cat; echo 'to stderr' >&2; echo 'total: 1000'";
    let ran = exec(
        &gw,
        ADMIN_TOKEN,
        pb::ExecRequest {
            connection: "sh".into(),
            input: b"typed\n".to_vec(),
            args: vec![script.into()],
        },
    )
    .await
    .unwrap();
    let id = ran.session_id.as_str();

    // Replay shows exactly what the user saw, on the same streams.
    let replay = gw.cli(t, &["sessions", "replay", id]).await;
    assert_eq!(replay.ok().as_bytes(), ran.stdout.as_slice());
    assert_eq!(replay.stderr.as_bytes(), ran.stderr.as_slice());

    let json = gw
        .cli(t, &["sessions", "replay", id, "--format", "json"])
        .await;
    let events: Vec<serde_json::Value> = json
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"header"));
    assert_eq!(kinds.last(), Some(&"close"));
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "stdin" && e["text"] == "typed\n")
    );

    let cast = gw
        .cli(t, &["sessions", "replay", id, "--format", "asciicast"])
        .await;
    let mut lines = cast.ok().lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let frames: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let output: String = frames
        .iter()
        .filter(|f| f[1] == "o")
        .map(|f| f[2].as_str().unwrap())
        .collect();
    assert!(
        output.contains("total: 1000") && output.contains("to stderr"),
        "{output}"
    );
    assert!(frames.iter().any(|f| f[1] == "i" && f[2] == "typed\n"));

    let ok = gw.cli(t, &["sessions", "verify", id]).await;
    assert!(ok.ok().starts_with("ok: "), "{ok:?}");

    // One changed byte: verify fails (exit 1) naming the event, replay stops there.
    let path = gw.recording_path(id);
    let mut raw = std::fs::read(&path).unwrap();
    let at = raw.windows(11).position(|w| w == b"total: 1000").unwrap();
    raw[at + 7] = b'9';
    std::fs::write(&path, &raw).unwrap();
    let failed = gw.cli(t, &["sessions", "verify", id]).await;
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(failed.stdout.starts_with("FAILED: event "), "{failed:?}");
    assert!(failed.stdout.contains("hash chain is broken"), "{failed:?}");
    let replay = gw.cli(t, &["sessions", "replay", id]).await;
    assert_eq!(replay.code, Some(1));
    assert!(!replay.stdout.contains("9000"), "{replay:?}");
    assert!(replay.stderr.contains("(DATA_LOSS)"), "{replay:?}");

    let shown = gw.cli(t, &["sessions", "show", id]).await;
    assert!(shown.ok().contains("audit.digest="), "{shown:?}");
}

async fn cli_connect_runs_an_interactive_session(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);
    gw.cli(
        t,
        &[
            "connections",
            "create",
            "upper",
            "--",
            "sh",
            "-c",
            "tr a-z A-Z; exit 3",
        ],
    )
    .await
    .ok();
    let out = gw
        .cli_input(t, &["connect", "upper"], b"select 1;\nbye\n")
        .await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout, "SELECT 1;\nBYE\n");
    assert_eq!(out.stderr, "hoop: exited with code 3\n");
    let list = gw
        .cli(
            t,
            &["-o", "json", "sessions", "list", "--connection", "upper"],
        )
        .await
        .json();
    assert_eq!(list["sessions"][0]["verb"], "connect");

    let err = gw.cli_input(t, &["connect", "nope"], b"").await;
    assert_eq!(err.err(), "error: connection `nope` not found (NOT_FOUND)");
}

async fn cli_sets_and_clears_a_session_timeout(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);
    gw.cli(
        t,
        &[
            "connections",
            "create",
            "psql",
            "--session-timeout",
            "90s",
            "--",
            "psql",
        ],
    )
    .await
    .ok();
    let got = gw
        .connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest {
            name: "psql".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.session_timeout.unwrap().seconds, 90);
    let shown = gw.cli(t, &["connections", "get", "psql"]).await;
    assert!(shown.ok().contains("1m30s"), "{shown:?}");

    let err = gw
        .cli(
            t,
            &["connections", "update", "psql", "--session-timeout", "30d"],
        )
        .await;
    assert!(
        err.err()
            .contains("connection.session_timeout: must be between 1s and 7 days"),
        "{err:?}"
    );
    let err = gw
        .cli(
            t,
            &["connections", "update", "psql", "--session-timeout", "soon"],
        )
        .await;
    assert_ne!(err.code, Some(0));
    assert!(err.stderr.contains("soon"), "{err:?}");

    gw.cli(
        t,
        &["connections", "update", "psql", "--session-timeout", "none"],
    )
    .await
    .ok();
    let json = gw
        .cli(t, &["-o", "json", "connections", "get", "psql"])
        .await
        .json();
    assert!(json.get("sessionTimeout").is_none(), "{json}");
    // Other fields were left alone.
    assert_eq!(json["command"][0], "psql");
}
