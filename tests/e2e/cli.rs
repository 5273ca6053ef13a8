//! The `hoop` CLI against a real gateway.

use hoop_rs::{ADMIN_TOKEN, Backend, Gateway, admin, e2e, exec, pb};

e2e!(
    cli_manages_connections_plugins_and_users,
    cli_takes_env_secrets_from_its_own_environment,
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
    assert!(err.err().contains("or pass NOEQUALS=VALUE"), "{err:?}");

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

    // Arguments need the connection's allow_args: the error says how to set it.
    let refused = gw
        .cli(t, &["exec", "sh", "--", "echo out; echo err >&2; exit 7"])
        .await;
    let err = refused.err();
    assert!(
        err.starts_with("error: allow_args: connection `sh` does not take arguments")
            && err.contains("`hoop connections update sh --allow-args`")
            && err.ends_with("(FAILED_PRECONDITION)"),
        "{err}"
    );
    let shown = gw.cli(t, &["connections", "get", "sh"]).await;
    assert_eq!(detail(shown.ok(), "allow_args"), "no");
    assert_eq!(detail(shown.ok(), "agent"), "local");
    let updated = gw
        .cli(t, &["connections", "update", "sh", "--allow-args"])
        .await;
    assert_eq!(detail(updated.ok(), "allow_args"), "yes");

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
    gw.cli(
        t,
        &[
            "connections",
            "create",
            "sh",
            "--allow-args",
            "--",
            "sh",
            "-c",
        ],
    )
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
            ..Default::default()
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

// `hoop dlp`: `types` asks the gateway; `redact` runs the engine locally, without one.

e2e!(
    cli_lists_dlp_info_types,
    cli_dlp_redact_hash_tags_match_the_gateway,
);

/// Every built-in info type.
const BUILTIN_INFO_TYPES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "BRAZIL_CPF_NUMBER",
    "CREDIT_CARD_NUMBER",
    "CREDIT_CARD_TRACK_NUMBER",
    "EMAIL_ADDRESS",
    "GITHUB_TOKEN",
    "HTTP_COOKIE",
    "IBAN_CODE",
    "IMEI_HARDWARE_ID",
    "IP_ADDRESS",
    "JSON_WEB_TOKEN",
    "PASSWORD_IN_URL",
    "PHONE_NUMBER",
    "PRIVATE_KEY",
    "SLACK_TOKEN",
    "STORAGE_SIGNED_URL",
    "URL",
    "US_PASSPORT",
    "US_SOCIAL_SECURITY_NUMBER",
    "VEHICLE_IDENTIFICATION_NUMBER",
];

/// A `[dlp]` table with a per-type style and a custom info type.
const DLP_TOML: &str = r#"
[dlp]
styles = { CREDIT_CARD_NUMBER = "partial" }

[[dlp.custom_types]]
name = "EMPLOYEE_ID"
regex = "EMP-[0-9]{6}"
description = "employee number"
example = "EMP-123456"
"#;

async fn cli_lists_dlp_info_types(backend: Backend) {
    let gw = hoop_rs::Setup::new(backend)
        .with_toml(DLP_TOML)
        .start()
        .await;
    let t = Some(ADMIN_TOKEN);

    let out = gw.cli(t, &["dlp", "types"]).await;
    let text = out.ok();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STYLE", "EXAMPLE", "MASKED", "DESCRIPTION"],
        "{text}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), BUILTIN_INFO_TYPES.len() + 1, "{text}");
    let row = |name: &str| {
        *rows
            .iter()
            .find(|r| r.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}: {text}"))
    };
    for name in BUILTIN_INFO_TYPES {
        assert!(!row(name).contains("(custom)"), "{}", row(name));
    }
    let email: Vec<&str> = row("EMAIL_ADDRESS").split_whitespace().collect();
    assert_eq!(
        email[..4],
        [
            "EMAIL_ADDRESS",
            "redact",
            "jane.doe@example.com",
            "[EMAIL_ADDRESS]"
        ]
    );
    let card = row("CREDIT_CARD_NUMBER");
    assert!(
        card.contains(" partial ") && card.contains("4111 1111 1111 1111"),
        "{card}"
    );
    assert!(card.contains("**** **** **** 1111"), "{card}");
    let custom = row("EMPLOYEE_ID");
    assert!(
        custom.starts_with("EMPLOYEE_ID (custom)")
            && custom.contains("EMP-123456")
            && custom.contains("[EMPLOYEE_ID]")
            && custom.ends_with("employee number"),
        "{custom}"
    );
    // Long or multi-line examples stay on their row.
    assert!(row("PRIVATE_KEY").contains("-----BEGIN RSA PRIVATE KEY-----\\n"));

    let json = gw.cli(t, &["-o", "json", "dlp", "types"]).await.json();
    assert_eq!(json["defaultStyle"], "redact");
    let types = json["infoTypes"].as_array().unwrap();
    let names: Vec<&str> = types.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut expected: Vec<&str> = BUILTIN_INFO_TYPES.to_vec();
    expected.push("EMPLOYEE_ID");
    expected.sort_unstable();
    assert_eq!(names, expected, "sorted by name");
    let by_name = |name: &str| types.iter().find(|t| t["name"] == name).unwrap();
    assert_eq!(
        *by_name("EMAIL_ADDRESS"),
        serde_json::json!({
            "name": "EMAIL_ADDRESS",
            "description": "e-mail address",
            "example": "jane.doe@example.com",
            "custom": false,
            "style": "redact",
            "maskedExample": "[EMAIL_ADDRESS]",
        })
    );
    assert_eq!(by_name("EMPLOYEE_ID")["custom"], true);
    assert_eq!(by_name("EMPLOYEE_ID")["maskedExample"], "[EMPLOYEE_ID]");
    assert_eq!(by_name("CREDIT_CARD_NUMBER")["style"], "partial");
    assert!(
        by_name("PRIVATE_KEY")["example"]
            .as_str()
            .unwrap()
            .ends_with("-----END RSA PRIVATE KEY-----"),
        "full examples in JSON"
    );

    let err = gw.cli(Some("wrong-token"), &["dlp", "types"]).await;
    assert_eq!(
        err.err(),
        "error: invalid or revoked token (UNAUTHENTICATED)"
    );
}

async fn cli_dlp_redact_hash_tags_match_the_gateway(backend: Backend) {
    let gw = hoop_rs::Setup::new(backend)
        .with_toml("[dlp]\ndefault_style = \"hash\"\n")
        .start()
        .await;
    let t = Some(ADMIN_TOKEN);
    gw.cli(
        t,
        &[
            "connections",
            "create",
            "mail",
            "--redact-types",
            "EMAIL_ADDRESS",
            "--",
            "sh",
            "-c",
            "echo 'to jane.doe@example.com'",
        ],
    )
    .await
    .ok();
    let seen = gw.cli(t, &["exec", "mail"]).await;
    let seen = seen.ok();
    assert!(seen.starts_with("to [EMAIL_ADDRESS:"), "{seen:?}");

    // The secret key of the gateway's data dir: the same tag.
    let data_dir = gw.setup.data_dir();
    let data_dir = data_dir.to_str().unwrap();
    let input = b"to jane.doe@example.com\n";
    let local = hoop_local(
        &[
            "--data-dir",
            data_dir,
            "dlp",
            "redact",
            "--types",
            "EMAIL_ADDRESS",
            "--style",
            "hash",
        ],
        input,
        &[],
    );
    assert_eq!(local.code, Some(0), "{local:?}");
    assert_eq!(String::from_utf8(local.stdout.clone()).unwrap(), seen);
    assert_eq!(
        local.stderr_text(),
        "hoop: masked 1 value: EMAIL_ADDRESS 1 (20 bytes)\n"
    );
    // The gateway's default style applies through --config too.
    let config = gw.setup.config_path();
    let local = hoop_local(
        &[
            "--data-dir",
            data_dir,
            "dlp",
            "redact",
            "--types",
            "EMAIL_ADDRESS",
            "--config",
            config.to_str().unwrap(),
            "-q",
        ],
        input,
        &[],
    );
    assert_eq!(String::from_utf8(local.stdout.clone()).unwrap(), seen);
    assert_eq!(local.stderr_text(), "");

    // HOOP_SECRET_KEY wins over the data dir: another key, another tag.
    let other = hoop_local(
        &[
            "--data-dir",
            data_dir,
            "dlp",
            "redact",
            "--types",
            "EMAIL_ADDRESS",
            "--style",
            "hash",
            "-q",
        ],
        input,
        &[("HOOP_SECRET_KEY", "another-secret-key-0123456789abcdef")],
    );
    assert_eq!(other.code, Some(0), "{other:?}");
    let other = String::from_utf8(other.stdout).unwrap();
    assert!(other.starts_with("to [EMAIL_ADDRESS:"), "{other:?}");
    assert_ne!(other, seen);

    // No secret at all: a random key, and a note saying so.
    let random = hoop_local(
        &[
            "dlp",
            "redact",
            "--types",
            "EMAIL_ADDRESS",
            "--style",
            "hash",
        ],
        input,
        &[],
    );
    assert_eq!(random.code, Some(0), "{random:?}");
    assert_ne!(String::from_utf8(random.stdout.clone()).unwrap(), seen);
    let stderr = random.stderr_text();
    assert!(
        stderr.starts_with(
            "hoop: HOOP_SECRET_KEY is unset and ./hoop-data/secret-key cannot be read"
        ) && stderr.contains("will not match the gateway's"),
        "{stderr}"
    );
}

/// What a local `hoop` run printed, as raw bytes.
#[derive(Debug)]
struct LocalOutput {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LocalOutput {
    fn stderr_text(&self) -> String {
        String::from_utf8(self.stderr.clone()).unwrap()
    }

    /// Asserts a failure with `code` and a single `error: …` line, and returns it.
    fn error(&self, code: i32) -> String {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        let stderr = self.stderr_text();
        let line = stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "one error line: {stderr:?}");
        assert!(line.starts_with("error: "), "{stderr:?}");
        line.to_owned()
    }
}

/// Runs `hoop` with `args`, `input` on stdin and `env`, without a gateway: no `HOOP_*`
/// variables but `env`, in an empty working dir (no `./hoop-data`).
fn hoop_local(args: &[&str], input: &[u8], env: &[(&str, &str)]) -> LocalOutput {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(hoop_rs::cli_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOOP_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        // Nothing listens there: the local commands must not need it.
        .env("HOOP_GATEWAY", "http://127.0.0.1:9")
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run hoop");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: hoop streams, so it writes while it reads.
    let writer = std::thread::spawn(move || {
        // hoop may exit before reading it all (usage errors).
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("run hoop");
    writer.join().unwrap();
    LocalOutput {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: output.stderr,
    }
}

const EMAIL_AND_CARD: &[&str] = &[
    "dlp",
    "redact",
    "--types",
    "EMAIL_ADDRESS,CREDIT_CARD_NUMBER",
];

#[test]
fn cli_dlp_redact_masks_stdin_locally() {
    let input = b"mail jane.doe@example.com, card 4111 1111 1111 1111, raw \xff\xfe\n";
    let out = hoop_local(EMAIL_AND_CARD, input, &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        b"mail [EMAIL_ADDRESS], card [CREDIT_CARD_NUMBER], raw \xff\xfe\n"
    );
    assert_eq!(
        out.stderr_text(),
        "hoop: masked 2 values: CREDIT_CARD_NUMBER 1, EMAIL_ADDRESS 1 (39 bytes)\n"
    );

    let styled = |style: &str| {
        let mut args = EMAIL_AND_CARD.to_vec();
        args.extend(["--style", style, "--quiet"]);
        let out = hoop_local(&args, input, &[]);
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stderr_text(), "");
        out.stdout
    };
    assert_eq!(
        styled("mask"),
        b"mail ****.***@*******.***, card **** **** **** ****, raw \xff\xfe\n"
    );
    assert_eq!(
        styled("partial"),
        b"mail ****.***@******e.com, card **** **** **** 1111, raw \xff\xfe\n"
    );
    assert_eq!(
        styled("redact"),
        b"mail [EMAIL_ADDRESS], card [CREDIT_CARD_NUMBER], raw \xff\xfe\n"
    );

    // Only the listed types; `all` is every one.
    let out = hoop_local(
        &["dlp", "redact", "--types", "URL", "-q"],
        b"jane.doe@example.com at https://example.com/x",
        &[],
    );
    assert_eq!(out.stdout, b"jane.doe@example.com at [URL]");
    let out = hoop_local(
        &["dlp", "redact", "--types", "all"],
        b"jane.doe@example.com at https://example.com/x from 10.42.7.19\n",
        &[],
    );
    assert_eq!(out.stdout, b"[EMAIL_ADDRESS] at [URL] from [IP_ADDRESS]\n");
    assert_eq!(
        out.stderr_text(),
        "hoop: masked 3 values: EMAIL_ADDRESS 1, IP_ADDRESS 1, URL 1 (51 bytes)\n"
    );

    // Nothing to mask; empty input.
    let out = hoop_local(EMAIL_AND_CARD, b"nothing here", &[]);
    assert_eq!(out.stdout, b"nothing here");
    assert_eq!(out.stderr_text(), "hoop: masked 0 values\n");
    let out = hoop_local(EMAIL_AND_CARD, b"", &[]);
    assert_eq!((out.code, out.stdout.len()), (Some(0), 0));
}

#[test]
fn cli_dlp_redact_streams_large_input() {
    // 4 MiB and more, values straddling every read boundary.
    let line = "id 42, mail ann.lee@example.org, card 4111-1111-1111-1111, bytes \u{e9}\u{fe0f}\n";
    let count = 4 * 1024 * 1024 / line.len() + 1;
    let mut input = line.repeat(count).into_bytes();
    input.extend_from_slice(b"\xc3 truncated at the end: bob@example.com");
    let out = hoop_local(EMAIL_AND_CARD, &input, &[]);
    assert_eq!(out.code, Some(0), "{:?}", out.stderr_text());
    let mut expected =
        "id 42, mail [EMAIL_ADDRESS], card [CREDIT_CARD_NUMBER], bytes \u{e9}\u{fe0f}\n"
            .repeat(count)
            .into_bytes();
    expected.extend_from_slice(b"\xc3 truncated at the end: [EMAIL_ADDRESS]");
    assert!(out.stdout == expected, "output differs");
    let emails = count + 1;
    let bytes = count * (19 + 19) + 15;
    assert_eq!(
        out.stderr_text(),
        format!(
            "hoop: masked {} values: EMAIL_ADDRESS {emails}, CREDIT_CARD_NUMBER {count} ({bytes} bytes)\n",
            emails + count
        )
    );
}

#[test]
fn cli_dlp_redact_usage_errors_exit_2() {
    let out = hoop_local(
        &["dlp", "redact", "--types", "EMAIL_ADDRESS,SHOE_SIZE"],
        b"x",
        &[],
    );
    let line = out.error(2);
    assert!(
        line.starts_with(
            "error: unknown info type `SHOE_SIZE` in --types; valid types: AWS_ACCESS_KEY_ID, "
        ),
        "{line}"
    );
    for name in BUILTIN_INFO_TYPES {
        assert!(line.contains(name), "{name} missing: {line}");
    }
    assert!(line.ends_with(", or all"), "{line}");

    let out = hoop_local(&["dlp", "redact", "--types", ","], b"x", &[]);
    assert!(
        out.error(2)
            .starts_with("error: --types: no info types given; valid types: "),
        "{out:?}"
    );

    // Parse errors of the command line: clap's usage message, status 2.
    let out = hoop_local(
        &["dlp", "redact", "--types", "URL", "--style", "loud"],
        b"x",
        &[],
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    let stderr = out.stderr_text();
    assert!(
        stderr.starts_with("error: invalid value 'loud' for '--style <STYLE>'")
            && stderr.contains("redact, mask, partial, hash"),
        "{stderr}"
    );
    let out = hoop_local(&["dlp", "redact"], b"x", &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr_text().contains("--types <T1,T2>"), "{out:?}");
}

#[test]
fn cli_dlp_redact_with_a_gateway_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hoop.toml");
    // A whole gateway config: only its [dlp] table matters.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN_TOKEN}\"\n\n\
             [[connections]]\nname = \"pg\"\ncommand = [\"psql\"]\n{DLP_TOML}"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let input = b"EMP-123456 paid with 4111 1111 1111 1111; EMP-12345 is too short\n";
    let out = hoop_local(
        &[
            "dlp",
            "redact",
            "--types",
            "EMPLOYEE_ID,CREDIT_CARD_NUMBER",
            "--config",
            config,
        ],
        input,
        &[],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    // The config's per-type style applies to the card.
    assert_eq!(
        out.stdout,
        b"[EMPLOYEE_ID] paid with **** **** **** 1111; EMP-12345 is too short\n"
    );
    assert_eq!(
        out.stderr_text(),
        "hoop: masked 2 values: CREDIT_CARD_NUMBER 1, EMPLOYEE_ID 1 (29 bytes)\n"
    );
    // --style sets the default style; the config's per-type styles stay.
    let out = hoop_local(
        &[
            "dlp", "redact", "--types", "all", "--config", config, "--style", "mask", "-q",
        ],
        input,
        &[],
    );
    assert_eq!(
        out.stdout,
        b"***-****** paid with **** **** **** 1111; EMP-12345 is too short\n"
    );

    // Without the config, the custom type is unknown.
    let out = hoop_local(&["dlp", "redact", "--types", "EMPLOYEE_ID"], input, &[]);
    assert!(
        out.error(2)
            .starts_with("error: unknown info type `EMPLOYEE_ID` in --types"),
        "{out:?}"
    );

    let bad = |name: &str, toml: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, toml).unwrap();
        let path = path.to_str().unwrap().to_owned();
        let out = hoop_local(
            &["dlp", "redact", "--types", "URL", "--config", &path],
            b"x",
            &[],
        );
        (path, out.error(1))
    };
    let (path, line) = bad(
        "regex.toml",
        "listen = \"127.0.0.1:0\"\n[[dlp.custom_types]]\nname = \"EMPLOYEE_ID\"\nregex = \"EMP-[0-9\"\n",
    );
    assert!(
        line.starts_with(&format!(
            "error: {path}: dlp.custom_types[0].regex: custom info type `EMPLOYEE_ID`: invalid regex"
        )),
        "{line}"
    );
    let (path, line) = bad("style.toml", "[dlp]\nstyles = { URL = \"loud\" }\n");
    assert!(
        line.starts_with(&format!(
            "error: {path}: dlp.styles.URL: unknown variant `loud`"
        )),
        "{line}"
    );
    let (path, line) = bad("type.toml", "[dlp]\nstyles = { SHOE_SIZE = \"mask\" }\n");
    assert!(
        line.starts_with(&format!(
            "error: {path}: dlp.styles.SHOE_SIZE: unknown info type `SHOE_SIZE`"
        )),
        "{line}"
    );
    let (path, line) = bad("syntax.toml", "[dlp\n");
    assert!(
        line.starts_with(&format!("error: {path}: line 1, column ")),
        "{line}"
    );
    let missing = dir.path().join("missing.toml");
    let out = hoop_local(
        &[
            "dlp",
            "redact",
            "--types",
            "URL",
            "--config",
            missing.to_str().unwrap(),
        ],
        b"x",
        &[],
    );
    assert!(
        out.error(1).starts_with(&format!(
            "error: cannot read the config file {}: ",
            missing.display()
        )),
        "{out:?}"
    );
}

// `hoop reviews`, and `hoop exec`/`hoop connect` on connections with reviewers: the session
// waits for approval, then runs (or ends with the rejection).

e2e!(
    cli_sets_the_review_settings_of_a_connection,
    cli_exec_waits_for_approval_then_runs,
    cli_exec_ends_with_the_rejection,
    cli_exec_runs_an_approved_review_once,
    cli_connect_asks_for_access_for_a_duration,
);

/// A `hoop` run in the background against a gateway; its stderr is read line by line as it
/// comes.
struct Background {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stderr_done: tokio::task::JoinHandle<()>,
    stdout: tokio::task::JoinHandle<Vec<u8>>,
}

/// How long a background `hoop` may take to print what is waited for, or to exit.
const BACKGROUND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Starts `hoop args` as `token`, with the environment of `gw.cli` (no other `HOOP_*`
/// variables, the test's dir as working dir) and stdin at its end.
fn hoop_background(gw: &Gateway, token: &str, args: &[&str]) -> Background {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};

    let mut cmd = tokio::process::Command::new(hoop_rs::cli_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOOP_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("HOOP_GATEWAY", gw.url())
        .env("HOOP_TOKEN", token)
        .current_dir(gw.setup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("run hoop");
    let mut out = child.stdout.take().unwrap();
    let stdout = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf).await;
        buf
    });
    let err = child.stderr.take().unwrap();
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let all = std::sync::Arc::clone(&stderr);
    let stderr_done = tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(err).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            {
                let mut all = all.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
            let _ = tx.send(line);
        }
    });
    Background {
        child,
        lines,
        stderr,
        stderr_done,
        stdout,
    }
}

impl Background {
    /// The next stderr line containing `needle`, waiting at most [`BACKGROUND_TIMEOUT`].
    async fn line_with(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + BACKGROUND_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => {}
                Ok(None) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "hoop ended ({status:?}) without printing {needle:?}; stderr: {:?}",
                        self.stderr.lock().unwrap()
                    )
                }
                Err(_) => panic!(
                    "hoop printed no {needle:?} within {BACKGROUND_TIMEOUT:?}; stderr: {:?}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Whether hoop still runs.
    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits at most [`BACKGROUND_TIMEOUT`] for hoop to exit; what it printed.
    async fn finish(mut self) -> hoop_rs::CliOutput {
        let status = match tokio::time::timeout(BACKGROUND_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "hoop did not exit within {BACKGROUND_TIMEOUT:?}; stderr: {:?}",
                self.stderr.lock().unwrap()
            ),
        };
        let stdout = tokio::time::timeout(BACKGROUND_TIMEOUT, self.stdout)
            .await
            .expect("hoop's stdout stays open")
            .unwrap();
        tokio::time::timeout(BACKGROUND_TIMEOUT, self.stderr_done)
            .await
            .expect("hoop's stderr stays open")
            .unwrap();
        let stderr = self.stderr.lock().unwrap().clone();
        hoop_rs::CliOutput {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
        }
    }

    /// Kills hoop (the user leaves) and waits for it to exit.
    async fn leave(mut self) {
        self.child.start_kill().unwrap();
        tokio::time::timeout(BACKGROUND_TIMEOUT, self.child.wait())
            .await
            .expect("hoop did not die")
            .unwrap();
    }
}

/// The review id of a waiting line, checking the line: `waiting for approval by
/// <groups> (review <id>)`.
#[track_caller]
fn waiting_review_id(line: &str, groups: &str) -> String {
    let prefix = format!("waiting for approval by {groups} (review ");
    let id = line
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a waiting line for {groups}: {line:?}"));
    assert!(!id.is_empty() && !id.contains(' '), "{line:?}");
    id.to_owned()
}

/// The value of `key` in `key: value` lines.
#[track_caller]
fn detail<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}:");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// A gateway with connection `sh` (`sh -c`) reviewed by group dba, requester alice (group
/// dev) and reviewer bob (group dba): (gateway, alice's token, bob's token).
async fn reviewed_sh(backend: Backend) -> (Gateway, String, String) {
    let gw = Gateway::start(backend).await;
    gw.cli(
        Some(ADMIN_TOKEN),
        &[
            "connections",
            "create",
            "sh",
            "--reviewers",
            "dba",
            "--allow-args",
            "--",
            "sh",
            "-c",
        ],
    )
    .await
    .ok();
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    (gw, alice, bob)
}

async fn cli_sets_the_review_settings_of_a_connection(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);
    let out = gw
        .cli(
            t,
            &[
                "connections",
                "create",
                "pg",
                "--reviewers",
                "dba",
                "--min-approvals",
                "1",
                "--review-ttl",
                "2h",
                "--access-max-duration",
                "1h",
                "--",
                "psql",
            ],
        )
        .await;
    let text = out.ok();
    assert_eq!(detail(text, "reviewers"), "dba", "{text}");
    assert_eq!(detail(text, "min_approvals"), "1", "{text}");
    assert_eq!(detail(text, "review_ttl"), "2h", "{text}");
    assert_eq!(detail(text, "access_max_duration"), "1h", "{text}");

    let shown = gw.cli(t, &["connections", "get", "pg"]).await;
    assert_eq!(detail(shown.ok(), "review_ttl"), "2h", "{shown:?}");
    let json = gw
        .cli(t, &["-o", "json", "connections", "get", "pg"])
        .await
        .json();
    assert_eq!(json["minApprovals"], 1, "{json}");
    assert_eq!(json["reviewTtl"], "7200s", "{json}");
    assert_eq!(json["accessMaxDuration"], "3600s", "{json}");

    // `none` goes back to the defaults; other fields are left alone.
    gw.cli(
        t,
        &[
            "connections",
            "update",
            "pg",
            "--min-approvals",
            "none",
            "--review-ttl",
            "none",
        ],
    )
    .await
    .ok();
    let json = gw
        .cli(t, &["-o", "json", "connections", "get", "pg"])
        .await
        .json();
    assert!(json.get("minApprovals").is_none(), "{json}");
    assert!(json.get("reviewTtl").is_none(), "{json}");
    assert_eq!(json["accessMaxDuration"], "3600s", "{json}");
    assert_eq!(json["reviewers"], serde_json::json!(["dba"]), "{json}");
    let shown = gw.cli(t, &["connections", "get", "pg"]).await;
    assert_eq!(detail(shown.ok(), "min_approvals"), "-", "{shown:?}");
    assert_eq!(detail(shown.ok(), "review_ttl"), "-", "{shown:?}");

    let err = gw
        .cli(t, &["connections", "update", "pg", "--review-ttl", "soon"])
        .await;
    assert!(err.err().contains("--review-ttl: `soon`"), "{err:?}");
    let err = gw
        .cli(
            t,
            &["connections", "update", "pg", "--min-approvals", "two"],
        )
        .await;
    assert!(err.err().contains("--min-approvals: `two`"), "{err:?}");

    // An invalid --duration is a usage error, before any call.
    let err = gw.cli(t, &["connect", "pg", "--duration", "soon"]).await;
    assert_eq!(err.code, Some(2), "{err:?}");
    assert!(err.stderr.contains("`soon` is not a duration"), "{err:?}");
    // So is an exec naming neither a connection nor a review.
    let err = gw.cli(t, &["exec", "-i", "x"]).await;
    assert_eq!(err.code, Some(2), "{err:?}");
    assert!(err.stderr.contains("<CONNECTION|--review <ID>>"), "{err:?}");
}

async fn cli_exec_waits_for_approval_then_runs(backend: Backend) {
    let (gw, alice, bob) = reviewed_sh(backend).await;

    let mut run = hoop_background(
        &gw,
        &alice,
        &["exec", "sh", "--", "echo approved-run; exit 3"],
    );
    let line = run.line_with("waiting for approval").await;
    let id = waiting_review_id(&line, "dba");
    // It waits.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        run.running(),
        "hoop exec returned while the review is pending"
    );

    // bob is asked.
    let list = gw
        .cli(Some(&bob), &["reviews", "list", "--awaiting-me"])
        .await;
    let text = list.ok();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "STATUS",
            "KIND",
            "CONNECTION",
            "REQUESTER",
            "GROUPS",
            "CREATED",
            "SIZE",
            "REQUEST"
        ],
        "{text}"
    );
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("review {id} is not awaiting bob: {text}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..6],
        [id.as_str(), "pending", "one-time", "sh", "alice", "dba"],
        "{text}"
    );
    // No input (size `-`): the request is the args.
    assert_eq!(row[7], "-", "{text}");
    assert_eq!(row[8..].join(" "), "'echo approved-run; exit 3'", "{text}");
    let json = gw
        .cli(
            Some(&bob),
            &["-o", "json", "reviews", "list", "--awaiting-me"],
        )
        .await
        .json();
    let reviews = json["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 1, "{json}");
    assert_eq!(reviews[0]["id"], id.as_str());
    assert_eq!(reviews[0]["status"], "REVIEW_STATUS_PENDING");
    assert_eq!(reviews[0]["kind"], "REVIEW_KIND_ONE_TIME");
    assert_eq!(
        reviews[0]["args"],
        serde_json::json!(["echo approved-run; exit 3"])
    );
    // alice asked: it is hers, not hers to decide.
    let mine = gw
        .cli(Some(&alice), &["-o", "json", "reviews", "list", "--mine"])
        .await
        .json();
    assert_eq!(mine["reviews"][0]["id"], id.as_str(), "{mine}");
    let awaiting = gw
        .cli(
            Some(&alice),
            &["-o", "json", "reviews", "list", "--awaiting-me"],
        )
        .await
        .json();
    assert!(
        awaiting["reviews"].as_array().is_none_or(|a| a.is_empty()),
        "{awaiting}"
    );
    let shown = gw.cli(Some(&bob), &["reviews", "show", &id]).await;
    let text = shown.ok();
    assert_eq!(detail(text, "requester"), "alice", "{text}");
    assert_eq!(detail(text, "status"), "pending", "{text}");
    assert_eq!(
        detail(text, "args"),
        "'echo approved-run; exit 3'",
        "{text}"
    );
    assert_eq!(detail(text, "decisions"), "-", "{text}");

    let approved = gw
        .cli(
            Some(&bob),
            &["reviews", "approve", &id, "--reason", "looks fine"],
        )
        .await;
    assert!(
        approved
            .ok()
            .starts_with(&format!("approved review {id}\n")),
        "{approved:?}"
    );

    // alice's exec goes on, prints the command's output and exits with its code.
    let out = run.finish().await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout, "approved-run\n", "{out:?}");
    assert_eq!(
        out.stderr,
        format!("{line}\nhoop: exited with code 3\n"),
        "{out:?}"
    );

    let json = gw
        .cli(Some(&alice), &["-o", "json", "reviews", "show", &id])
        .await
        .json();
    assert_eq!(json["status"], "REVIEW_STATUS_EXECUTED", "{json}");
    assert_eq!(json["decisions"][0]["reviewer"], "bob", "{json}");
    assert_eq!(json["decisions"][0]["approved"], true, "{json}");
    assert_eq!(json["decisions"][0]["reason"], "looks fine", "{json}");
    let shown = gw.cli(Some(&alice), &["reviews", "show", &id]).await;
    assert!(
        detail(shown.ok(), "decisions").starts_with("approved by bob (dba) at "),
        "{shown:?}"
    );
    assert!(
        detail(shown.ok(), "decisions").ends_with(": looks fine"),
        "{shown:?}"
    );
}

async fn cli_exec_ends_with_the_rejection(backend: Backend) {
    let (gw, alice, bob) = reviewed_sh(backend).await;

    let mut run = hoop_background(&gw, &alice, &["exec", "sh", "--", "echo never"]);
    let line = run.line_with("waiting for approval").await;
    let id = waiting_review_id(&line, "dba");

    // A rejection needs a reason.
    let err = gw.cli(Some(&bob), &["reviews", "reject", &id]).await;
    assert_eq!(err.code, Some(2), "{err:?}");
    assert!(run.running());

    let rejected = gw
        .cli(
            Some(&bob),
            &[
                "reviews",
                "reject",
                &id,
                "--reason",
                "not during business hours",
            ],
        )
        .await;
    assert!(
        rejected
            .ok()
            .starts_with(&format!("rejected review {id}\n")),
        "{rejected:?}"
    );

    let out = run.finish().await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0], line);
    assert!(
        lines[1].starts_with("hoop: ") && lines[1].contains("not during business hours"),
        "{out:?}"
    );

    let json = gw
        .cli(
            Some(&alice),
            &[
                "-o", "json", "reviews", "list", "--mine", "--status", "rejected",
            ],
        )
        .await
        .json();
    assert_eq!(json["reviews"][0]["id"], id.as_str(), "{json}");
    assert_eq!(
        json["reviews"][0]["reason"], "not during business hours",
        "{json}"
    );
    let pending = gw
        .cli(
            Some(&alice),
            &["-o", "json", "reviews", "list", "--status", "pending"],
        )
        .await
        .json();
    assert!(
        pending["reviews"].as_array().is_none_or(|a| a.is_empty()),
        "{pending}"
    );
}

async fn cli_exec_runs_an_approved_review_once(backend: Backend) {
    let (gw, alice, bob) = reviewed_sh(backend).await;

    // alice asks, and leaves rather than wait.
    let mut run = hoop_background(&gw, &alice, &["exec", "sh", "--", "echo once; exit 4"]);
    let line = run.line_with("waiting for approval").await;
    let id = waiting_review_id(&line, "dba");
    run.leave().await;
    // The held session ends when its client leaves; the review stays pending.
    hoop_rs::eventually(
        std::time::Duration::from_secs(20),
        "the held session to end",
        || async {
            let list = gw
                .cli(
                    Some(ADMIN_TOKEN),
                    &["-o", "json", "sessions", "list", "--connection", "sh"],
                )
                .await
                .json();
            let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
            (!sessions.is_empty() && sessions.iter().all(|s| s["status"] != "open")).then_some(())
        },
    )
    .await;
    let shown = gw.cli(Some(&alice), &["reviews", "show", &id]).await;
    assert_eq!(detail(shown.ok(), "status"), "pending", "{shown:?}");

    // Not approved yet: refused.
    let early = gw.cli(Some(&alice), &["exec", "--review", &id]).await;
    assert_ne!(early.code, Some(0), "{early:?}");
    assert_eq!(early.stdout, "", "{early:?}");

    gw.cli(Some(&bob), &["reviews", "approve", &id]).await.ok();
    // Only alice may run it: to others, it does not exist.
    let other = gw.cli(Some(&bob), &["exec", "--review", &id]).await;
    assert_eq!(
        other.err(),
        format!("error: review `{id}` not found (NOT_FOUND)"),
        "{other:?}"
    );

    // Run once, without naming the connection or the command again.
    let out = gw.cli(Some(&alice), &["exec", "--review", &id]).await;
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(out.stdout, "once\n", "{out:?}");
    assert_eq!(out.stderr, "hoop: exited with code 4\n", "{out:?}");

    // Not twice.
    let again = gw.cli(Some(&alice), &["exec", "sh", "--review", &id]).await;
    assert_ne!(again.code, Some(0), "{again:?}");
    assert_eq!(again.stdout, "", "{again:?}");
    assert!(again.stderr.contains("already ran"), "{again:?}");
    let json = gw
        .cli(Some(&alice), &["-o", "json", "reviews", "show", &id])
        .await
        .json();
    assert_eq!(json["status"], "REVIEW_STATUS_EXECUTED", "{json}");
    let shown = gw
        .cli(Some(&alice), &["reviews", "list", "--status", "executed"])
        .await;
    assert!(shown.ok().lines().any(|l| l.starts_with(&id)), "{shown:?}");
}

async fn cli_connect_asks_for_access_for_a_duration(backend: Backend) {
    let gw = Gateway::start(backend).await;
    gw.cli(
        Some(ADMIN_TOKEN),
        &[
            "connections",
            "create",
            "hello",
            "--reviewers",
            "dba",
            "--access-max-duration",
            "2h",
            "--",
            "sh",
            "-c",
            "echo hello; exit 5",
        ],
    )
    .await
    .ok();
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;

    let mut run = hoop_background(&gw, &alice, &["connect", "hello", "--duration", "30m"]);
    let line = run.line_with("waiting for approval").await;
    let id = waiting_review_id(&line, "dba");

    let list = gw
        .cli(
            Some(&bob),
            &["reviews", "list", "--awaiting-me", "--limit", "1"],
        )
        .await;
    let row: Vec<&str> = list
        .ok()
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{list:?}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1..3], ["pending", "jit"], "{list:?}");
    assert_eq!(row.last(), Some(&"30m"), "{list:?}");
    let json = gw
        .cli(Some(&bob), &["-o", "json", "reviews", "show", &id])
        .await
        .json();
    assert_eq!(json["accessDuration"], "1800s", "{json}");

    gw.cli(Some(&bob), &["reviews", "approve", &id, "--group", "dba"])
        .await
        .ok();
    let out = run.finish().await;
    assert_eq!(out.code, Some(5), "{out:?}");
    assert_eq!(out.stdout, "hello\n", "{out:?}");
    assert_eq!(
        out.stderr,
        format!("{line}\nhoop: exited with code 5\n"),
        "{out:?}"
    );
    let shown = gw.cli(Some(&alice), &["reviews", "show", &id]).await;
    assert_eq!(detail(shown.ok(), "status"), "approved", "{shown:?}");
    assert_ne!(detail(shown.ok(), "grant_ends"), "-", "{shown:?}");

    // Within the grant, a new session starts at once.
    let again = gw.cli(Some(&alice), &["connect", "hello"]).await;
    assert_eq!(again.code, Some(5), "{again:?}");
    assert_eq!(again.stdout, "hello\n", "{again:?}");
    assert!(!again.stderr.contains("waiting"), "{again:?}");
}

/// `--env NAME` takes the value from hoop's own environment: the secret never sits in a
/// command line, which every user of the host can read.
async fn cli_takes_env_secrets_from_its_own_environment(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let t = Some(ADMIN_TOKEN);
    let out = gw
        .cli_env(
            t,
            &[
                "connections",
                "create",
                "envy",
                "--env",
                "DB_SECRET",
                "--",
                "env",
            ],
            None,
            &[("DB_SECRET", "from-hoops-environment")],
        )
        .await;
    assert!(out.ok().contains("DB_SECRET=<hidden>"), "{out:?}");
    let out = gw.cli(t, &["exec", "envy"]).await;
    assert!(
        out.ok().contains("DB_SECRET=from-hoops-environment"),
        "{out:?}"
    );
    // Neither given nor in the environment: a message saying what to do, nothing created.
    let out = gw
        .cli(
            t,
            &[
                "connections",
                "create",
                "none",
                "--env",
                "NOT_SET_ANYWHERE",
                "--",
                "env",
            ],
        )
        .await;
    assert!(out.err().contains("export NOT_SET_ANYWHERE="), "{out:?}");
    let out = gw.cli(t, &["connections", "get", "none"]).await;
    assert!(out.err().contains("not found"), "{out:?}");
}
