//! Gateway configuration, declared connections, migrations and shutdown.

use hoop_rs::{Backend, Setup, admin, e2e, pb, plugin_flags};
use std::time::Duration;

e2e!(
    declared_connections_are_created_then_updated,
    bad_config_stops_start_up,
    migrate_then_serve
);

const DECLARED: &str = r#"
[[connections]]
name = "declared-pg"
command = ["psql", "-h", "db"]
env = { PGPASSWORD = "from-config" }
redact_types = ["EMAIL_ADDRESS"]
tags = { team = "data" }
session_timeout = "1h30m"
allow_args = true
agent = "edge-1"

[[connections.plugins]]
name = "slack"
config = { channels = ["C0123456789"] }
"#;

async fn declared_connections_are_created_then_updated(backend: Backend) {
    // slack is active with a channel and a bot token (posting to nothing that listens).
    let setup = Setup::new(backend)
        .with_toml(DECLARED)
        .with_env("HOOP_PLUGINS_SLACK_BOT_TOKEN", "xoxb-unused")
        .with_env("HOOP_PLUGINS_SLACK_API_URL", "http://127.0.0.1:9/api");
    let gw = setup.start().await;
    let conn = gw
        .connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest {
            name: "declared-pg".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(conn.command, ["psql", "-h", "db"]);
    assert_eq!(conn.tags["team"], "data");
    assert_eq!(conn.session_timeout.unwrap().seconds, 5400);
    assert!(conn.allow_args);
    assert_eq!(conn.agent, "edge-1");
    assert_eq!(
        plugin_flags(&conn),
        [
            ("review".into(), false),
            ("dlp".into(), true),
            ("slack".into(), true),
            ("audit".into(), true)
        ]
    );
    let mut setup = gw.stop().await;

    // Edit the declaration and restart: the connection follows it.
    setup.extra_toml =
        DECLARED.replace("[\"psql\", \"-h\", \"db\"]", "[\"psql\", \"-h\", \"db2\"]");
    let gw = setup.start().await;
    let conn = gw
        .connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest {
            name: "declared-pg".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(conn.command, ["psql", "-h", "db2"]);
    assert!(gw.logs().contains("declared connection applied"));
}

async fn failed_start(setup: &Setup, env: &[(&str, &str)]) -> (Option<i32>, String) {
    setup.failed_start(env).await
}

async fn bad_config_stops_start_up(backend: Backend) {
    let setup = Setup::new(backend.clone()).with_toml("lisen = \"127.0.0.1:1\"");
    // The typo must be a top-level key: put it before any table.
    let (code, stderr) = failed_start(&setup, &[]).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("unknown field `lisen`"), "{stderr}");

    // A syntax error on a secret's line: the message places it, without the line's text.
    let mut unterminated =
        Setup::new(backend.clone()).with_toml("admin_token = \"supersecret-admin-token-value\n");
    unterminated.configure_admin_token = false;
    let (code, stderr) = failed_start(&unterminated, &[]).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(!stderr.contains("supersecret"), "{stderr}");
    assert!(stderr.contains("(key `admin_token`): "), "{stderr}");

    let setup = Setup::new(backend.clone());
    let (code, stderr) = failed_start(&setup, &[("HOOP_LISTEN", "localhost")]).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("HOOP_LISTEN: listen: `localhost` is not a socket address"),
        "{stderr}"
    );

    // Limits are whole numbers of at least 1.
    let (code, stderr) =
        failed_start(&setup, &[("HOOP_LIMITS_RUNNING_SESSIONS_PER_USER", "0")]).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains(
            "HOOP_LIMITS_RUNNING_SESSIONS_PER_USER: limits.running_sessions_per_user: must be \
             at least 1, got 0"
        ),
        "{stderr}"
    );
    let negative =
        Setup::new(backend.clone()).with_toml("[limits]\npending_reviews_per_user = -1\n");
    let (code, stderr) = failed_start(&negative, &[]).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("limits.pending_reviews_per_user: must be at least 1, got -1"),
        "{stderr}"
    );

    // Plugin settings from the environment are checked like the file's; secrets are not
    // echoed.
    let (code, stderr) = failed_start(
        &setup,
        &[("HOOP_PLUGINS_SLACK_BOT_TOKEN", "xoxp-secret-user-token")],
    )
    .await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("plugins.slack.bot_token: must be a bot token"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-user-token"), "{stderr}");
    let (code, stderr) = failed_start(&setup, &[("HOOP_PLUGINS_NOPE_KEY", "x")]).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("HOOP_PLUGINS_NOPE_KEY") && stderr.contains("names no plugin setting"),
        "{stderr}"
    );

    let (code, stderr) = failed_start(&setup, &[("HOOP_SECRET_KEY", "short")]).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("secret_key: must be at least 32 characters"),
        "{stderr}"
    );

    let bad_decl = Setup::new(backend).with_toml(
        "[[connections]]\nname = \"ok\"\ncommand = [\"psql\"]\n[[connections]]\nname = \"bad\"\ncommand = [\"psql\"]\nredact_types = [\"NOPE\"]\n",
    );
    let (code, stderr) = failed_start(&bad_decl, &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("connections[1].redact_types[0]: unknown info type `NOPE`"),
        "{stderr}"
    );
    // Same data dir and database as above (the database knows that secret key).
    let mut bad_timeout = bad_decl.clone();
    bad_timeout.extra_toml =
        "[[connections]]\nname = \"slow\"\ncommand = [\"psql\"]\nsession_timeout = \"soon\"\n"
            .to_owned();
    let (code, stderr) = failed_start(&bad_timeout, &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("connections[0].session_timeout: `soon` is not a duration like `90s`"),
        "{stderr}"
    );
    // Nothing of the bad config was applied: start without the declarations and look.
    let mut clean = bad_decl.clone();
    clean.extra_toml.clear();
    let gw = clean.start().await;
    let listed = gw
        .connections()
        .await
        .list_connections(admin(pb::ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.connections.is_empty(), "{listed:?}");
}

async fn migrate_then_serve(backend: Backend) {
    let setup = Setup::new(backend);
    let mut cmd = setup.gateway_command();
    cmd.arg("migrate");
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("m20261124_000002_create_connections")
            && stderr.contains("m20261124_000004_session_attributes_and_timeout"),
        "{stderr}"
    );
    assert!(stderr.contains("database is up to date"), "{stderr}");
    let gw = setup.start().await;
    gw.users()
        .await
        .who_am_i(admin(pb::WhoAmIRequest {}))
        .await
        .unwrap();
    gw.stop().await;
}
