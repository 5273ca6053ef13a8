//! The `hoop` CLI against a real gateway.

use hoop_rs::{ADMIN_TOKEN, Backend, Gateway, e2e};

e2e!(
    cli_manages_connections_plugins_and_users,
    cli_errors_are_one_clear_line,
    cli_exec_streams_output_and_exit_code,
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
