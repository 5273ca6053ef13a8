//! `postgres` connections end to end: the real gateway, `hoop connect` and `hoop exec`, and
//! real clients (psql, pgbench, tokio-postgres) against the PostgreSQL server of
//! `HOOP_TEST_POSTGRES_URL` (each test in a scratch database of its own). Skipped, saying
//! so, when that variable is unset.

use std::process::Stdio;
use std::time::Duration;

use hoop_proto::v1 as pb;
use hoop_rs::{ADMIN_TOKEN, Backend, Gateway, admin, assert_status, authed, recording};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The upstream password the connections carry: never to be seen by a client or a log.
pub(super) const UPSTREAM_PASSWORD: &str = "upstream-Pa55-never-shown-7f3a";
pub(super) const STEP: Duration = Duration::from_secs(60);

/// A scratch database on the test server: (its URL, host, port, user, name).
pub(super) struct Target {
    url: String,
    host: String,
    port: String,
    user: String,
    db: String,
}

pub(super) async fn target(prefix: &str) -> Option<Target> {
    let server = std::env::var(hoop_store::testing::POSTGRES_URL_VAR).ok()?;
    let url = hoop_store::testing::scratch_postgres_database(&server, prefix)
        .await
        .expect("create a scratch database");
    // postgres://user@host:port/db
    let rest = url.split_once("://").unwrap().1;
    let (auth, rest) = rest.split_once('@').unwrap();
    let user = auth.split(':').next().unwrap().to_owned();
    let (hostport, db) = rest.split_once('/').unwrap();
    let db = db.split('?').next().unwrap().to_owned();
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    Some(Target {
        url: url.clone(),
        host: host.to_owned(),
        port: port.to_owned(),
        user,
        db,
    })
}

pub(super) async fn psql_direct(t: &Target, sql: &str) -> String {
    let out = Command::new("psql")
        .args([&t.url, "-X", "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .await
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn connection(
    name: &str,
    t: &Target,
    mask_columns: &[&str],
    redact: &[&str],
) -> pb::Connection {
    pb::Connection {
        name: name.to_owned(),
        r#type: "postgres".to_owned(),
        env: [
            ("HOST", t.host.as_str()),
            ("PORT", t.port.as_str()),
            ("USER", t.user.as_str()),
            ("PASS", UPSTREAM_PASSWORD),
            ("DB", t.db.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        mask_columns: mask_columns.iter().map(|s| s.to_string()).collect(),
        redact_types: redact.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub(super) async fn create(gw: &Gateway, conn: pb::Connection) {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .expect("create the postgres connection");
}

/// `hoop connect NAME --port 0`, serving; its DSN.
pub(super) struct Served {
    _child: Child,
    pub(super) dsn: String,
    pub(super) stdout: String,
}

pub(super) async fn serve(gw: &Gateway, name: &str) -> Served {
    let mut child = Command::new(hoop_rs::cli_bin())
        .args(["connect", name, "--port", "0"])
        .env("HOOP_GATEWAY", gw.url())
        .env("HOOP_TOKEN", ADMIN_TOKEN)
        .current_dir(gw.setup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run hoop connect");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let dsn = tokio::time::timeout(STEP, async {
        let mut dsn = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push_str(&line);
            stdout.push('\n');
            if line.starts_with("postgres://") {
                dsn = Some(line.clone());
            }
            if line.contains(" psql '") {
                return dsn.expect("the DSN comes before the psql command");
            }
        }
        panic!("hoop connect printed no DSN: {stdout}");
    })
    .await
    .expect("hoop connect did not print its DSN");
    // Keep its stdout open.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served {
        _child: child,
        dsn,
        stdout,
    }
}

pub(super) async fn psql(dsn: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::time::timeout(
        STEP,
        Command::new("psql")
            .arg(dsn)
            .args(["-X", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("psql timed out")
    .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sessions on `conn`, newest first.
pub(super) async fn sessions(gw: &Gateway, conn: &str) -> Vec<pb::Session> {
    gw.sessions()
        .await
        .list_sessions(admin(pb::ListSessionsRequest {
            connection: conn.to_owned(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .sessions
}

/// Everything a session's recording holds, input and output, as text.
pub(super) async fn recorded(gw: &Gateway, id: &str) -> (String, String) {
    let (events, status) = recording(gw, ADMIN_TOKEN, id).await.unwrap();
    assert!(status.is_none(), "{status:?}");
    let mut input = String::new();
    let mut output = String::new();
    for e in events {
        let text = String::from_utf8_lossy(&e.data);
        if e.kind == pb::RecordingEventKind::Stdin as i32 {
            input.push_str(&text);
        } else if e.kind != pb::RecordingEventKind::Header as i32 {
            output.push_str(&text);
        }
    }
    (input, output)
}

/// Waits until every session on `conn` ended (recordings are sealed then).
pub(super) async fn all_ended(gw: &Gateway, conn: &str) -> Vec<pb::Session> {
    hoop_rs::eventually(STEP, "the sessions end", || async {
        let list = sessions(gw, conn).await;
        (!list.is_empty() && list.iter().all(|s| s.status != "open")).then_some(list)
    })
    .await
}

macro_rules! target_or_skip {
    ($prefix:expr) => {
        match target($prefix).await {
            Some(t) => t,
            None => {
                eprintln!("skipped: HOOP_TEST_POSTGRES_URL is unset");
                return;
            }
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_checked_field_by_field() {
    let t = target_or_skip!("hoop_pg_settings");
    let gw = Gateway::start(Backend::Sqlite).await;
    let cases: Vec<(pb::Connection, &str)> = vec![
        (
            {
                let mut c = connection("pg-bad", &t, &[], &[]);
                c.env.insert("PORT".into(), "70000".into());
                c
            },
            "connection.env.PORT",
        ),
        (
            {
                let mut c = connection("pg-bad", &t, &[], &[]);
                c.env.remove("HOST");
                c
            },
            "connection.env.HOST",
        ),
        (
            {
                let mut c = connection("pg-bad", &t, &[], &[]);
                c.env.insert("SSLMODE".into(), "verify".into());
                c
            },
            "connection.env.SSLMODE",
        ),
        (
            {
                let mut c = connection("pg-bad", &t, &[], &[]);
                c.env.insert("SSLMODE".into(), "verify-ca".into());
                c.env.insert(
                    "SSLROOTCERT".into(),
                    "/etc/ssl/certs/ssl-cert-snakeoil.pem".into(),
                );
                c
            },
            "connection.env.SSLROOTCERT",
        ),
        (
            {
                let mut c = connection("pg-bad", &t, &[], &[]);
                c.env.insert("SSLMODE".into(), "prefer".into());
                let key = rcgen::KeyPair::generate().unwrap();
                let ca = rcgen::CertificateParams::new(vec!["db.example".to_owned()])
                    .unwrap()
                    .self_signed(&key)
                    .unwrap();
                c.env.insert("SSLROOTCERT".into(), ca.pem());
                c
            },
            "connection.env.SSLROOTCERT",
        ),
        (
            connection("pg-bad", &t, &["*.ssn", "email"], &[]),
            "connection.mask_columns[1]",
        ),
        (
            pb::Connection {
                mask_columns: vec!["*.ssn".into()],
                ..hoop_rs::command_connection("sh-bad", &["sh"])
            },
            "connection.mask_columns",
        ),
    ];
    for (conn, field) in cases {
        let result = gw
            .connections()
            .await
            .create_connection(admin(pb::CreateConnectionRequest {
                connection: Some(conn),
            }))
            .await;
        if let Err(err) = &result {
            assert!(!err.message().contains(UPSTREAM_PASSWORD));
        }
        assert_status(result, tonic::Code::InvalidArgument, field);
    }
    // A good one: the password is write-only.
    create(&gw, connection("pg-good", &t, &["public.users.email"], &[])).await;
    let read = gw
        .connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest {
            name: "pg-good".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.env.get("PASS").map(String::as_str), Some(""));
    assert_eq!(read.mask_columns, ["public.users.email"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_through_hoop_connect_is_masked_and_recorded() {
    let t = target_or_skip!("hoop_pg_psql");
    psql_direct(
        &t,
        "create table users (id int primary key, email text, ssn text, note text);
         create table orders (id int, user_id int, total int);
         insert into users values
           (1, 'alice@corp.example', '123-45-6789', 'write to bob@mail.example soon'),
           (2, 'carol@corp.example', '987-65-4321', 'nothing here');
         insert into orders values (10, 1, 99), (11, 2, 5);",
    )
    .await;
    let gw = Gateway::start(Backend::Sqlite).await;
    create(
        &gw,
        connection(
            "pg",
            &t,
            &["public.users.email", "*.ssn"],
            &["EMAIL_ADDRESS"],
        ),
    )
    .await;
    let served = serve(&gw, "pg").await;
    assert!(served.stdout.contains("psql '"), "{}", served.stdout);
    assert!(!served.stdout.contains(UPSTREAM_PASSWORD));

    // A wrong one-time password is refused before anything reaches the gateway.
    let wrong = served.dsn.replacen("hoop:", "hoop:x", 1);
    let (ok, _, err) = psql(&wrong, &["-c", "select 1"]).await;
    assert!(
        !ok && err.contains("password authentication failed"),
        "{err}"
    );
    assert!(sessions(&gw, "pg").await.is_empty());

    let (ok, out, err) = psql(
        &served.dsn,
        &[
            "-c",
            "select id, email as e, ssn from users order by id",
            "-c",
            "select u.email, o.total from users u join orders o on o.user_id = u.id order by o.id",
            "-c",
            "select note, lower(email) as computed from users where id = 1",
            "-c",
            "copy users to stdout",
            "-c",
            "copy (select email as x, note from users where id = 1) to stdout with (format csv)",
            "-c",
            "\\d",
        ],
    )
    .await;
    assert!(ok, "{err}");
    for secret in [
        "alice@corp.example",
        "carol@corp.example",
        "123-45-6789",
        "bob@mail.example",
        UPSTREAM_PASSWORD,
    ] {
        assert!(!out.contains(secret), "{secret} reached the client:\n{out}");
    }
    // Column rules through an alias, a join and COPY; content masking of free text and
    // of a computed column.
    assert!(out.contains(" 1 | [MASKED] | [MASKED]"), "{out}");
    assert!(out.contains(" [MASKED] |    99"), "{out}");
    assert!(out.contains("write to [EMAIL_ADDRESS] soon"), "{out}");
    assert!(
        out.contains("1\t[MASKED]\t[MASKED]\twrite to [EMAIL_ADDRESS] soon"),
        "{out}"
    );
    assert!(
        out.contains("[MASKED],write to [EMAIL_ADDRESS] soon"),
        "{out}"
    );
    assert!(
        out.contains("orders") && out.contains("users"),
        "\\d: {out}"
    );

    // \copy in and out.
    let dir = tempfile::tempdir().unwrap();
    let file_in = dir.path().join("in.txt");
    std::fs::write(&file_in, "3\tdave@corp.example\t111-22-3333\tok\n").unwrap();
    let file_out = dir.path().join("out.txt");
    let (ok, _, err) = psql(
        &served.dsn,
        &[
            "-c",
            &format!("\\copy users from '{}'", file_in.display()),
            "-c",
            &format!("\\copy users to '{}'", file_out.display()),
        ],
    )
    .await;
    assert!(ok, "{err}");
    let copied = std::fs::read_to_string(&file_out).unwrap();
    assert_eq!(copied.lines().count(), 3, "{copied}");
    assert!(
        !copied.contains("dave@corp.example") && copied.contains("[MASKED]"),
        "{copied}"
    );
    assert_eq!(
        psql_direct(&t, "select email from users where id = 3")
            .await
            .trim(),
        "dave@corp.example"
    );
    drop(served);

    // Every statement is in the recordings, and only masked rows.
    let list = all_ended(&gw, "pg").await;
    let mut inputs = String::new();
    let mut outputs = String::new();
    for s in &list {
        let (i, o) = recorded(&gw, &s.id).await;
        inputs.push_str(&i);
        outputs.push_str(&o);
    }
    for statement in [
        "select id, email as e, ssn from users order by id",
        "copy users to stdout",
        "COPY  users FROM STDIN",
    ] {
        assert!(
            inputs.to_lowercase().contains(&statement.to_lowercase())
                || inputs.contains("COPY FROM STDIN"),
            "{statement} not recorded:\n{inputs}"
        );
    }
    assert!(inputs.contains("COPY FROM STDIN"), "{inputs}");
    assert!(
        outputs.contains("(2 rows)") && outputs.contains("[MASKED]"),
        "{outputs}"
    );
    for secret in [
        "alice@corp.example",
        "123-45-6789",
        "bob@mail.example",
        UPSTREAM_PASSWORD,
    ] {
        assert!(!outputs.contains(secret), "{secret} recorded:\n{outputs}");
    }
    assert!(!gw.logs().contains(UPSTREAM_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_psql_cancels_pg_sleep() {
    let t = target_or_skip!("hoop_pg_cancel");
    let gw = Gateway::start(Backend::Sqlite).await;
    create(&gw, connection("pg", &t, &[], &[])).await;
    let served = serve(&gw, "pg").await;
    let started = std::time::Instant::now();
    let child = Command::new("psql")
        .arg(&served.dsn)
        .args(["-X", "-c", "select pg_sleep(60)"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    // Once the query runs on the server (seen from a direct connection), Ctrl-C.
    hoop_rs::eventually(STEP, "pg_sleep runs", || async {
        let n = psql_direct(
            &t,
            "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'",
        )
        .await;
        (n.trim() == "1").then_some(())
    })
    .await;
    // Abuse: keys the gateway did not hand out (the database's own backend pid, as anyone
    // reading pg_stat_activity sees it, with guessed secrets) cancel nothing.
    let upstream_pid: u32 = psql_direct(
        &t,
        "select pid from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'",
    )
    .await
    .trim()
    .parse()
    .unwrap();
    for key in [0, 1, u32::MAX] {
        let reason = cancel_through_api(&gw, "pg", upstream_pid, key).await;
        assert_eq!(reason, "no such query to cancel");
    }
    let still = psql_direct(
        &t,
        "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'",
    )
    .await;
    assert_eq!(still.trim(), "1", "a guessed key cancelled the query");
    nix_kill(pid);
    let out = tokio::time::timeout(STEP, child.wait_with_output())
        .await
        .expect("psql did not end")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(50));
}

/// Sends `Connect{open.postgres_cancel}` as the admin: the reason the stream's exit gives.
async fn cancel_through_api(gw: &Gateway, conn: &str, process_id: u32, secret_key: u32) -> String {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
            connection: conn.into(),
            postgres_cancel: Some(pb::PostgresCancel {
                process_id,
                secret_key,
            }),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    drop(tx);
    let mut events = gw
        .sessions()
        .await
        .connect(admin(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    let mut reason = None;
    while let Some(e) = tokio::time::timeout(STEP, events.message())
        .await
        .expect("the cancel's stream did not end")
        .unwrap()
    {
        if let Some(pb::session_event::Event::Exit(exit)) = e.event {
            reason = Some(exit.reason);
        }
    }
    reason.expect("the cancel's stream ended without an exit")
}

fn nix_kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_runs_in_every_query_mode_with_parameters_recorded() {
    let t = target_or_skip!("hoop_pg_bench");
    let gw = Gateway::start(Backend::Sqlite).await;
    create(&gw, connection("pg", &t, &[], &[])).await;
    let served = serve(&gw, "pg").await;
    let run = |args: Vec<String>| async move {
        let out = tokio::time::timeout(STEP, Command::new("pgbench").args(&args).output())
            .await
            .expect("pgbench timed out")
            .unwrap();
        assert!(
            out.status.success(),
            "pgbench {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(vec![
        "-i".into(),
        "-s".into(),
        "1".into(),
        served.dsn.clone(),
    ])
    .await;
    for mode in ["simple", "extended", "prepared"] {
        run(vec![
            "-M".into(),
            mode.into(),
            "-c".into(),
            "2".into(),
            "-t".into(),
            "20".into(),
            served.dsn.clone(),
        ])
        .await;
    }
    drop(served);
    let list = all_ended(&gw, "pg").await;
    let mut inputs = String::new();
    for s in &list {
        inputs.push_str(&recorded(&gw, &s.id).await.0);
    }
    // Extended and prepared statements are recorded with their bound parameters.
    assert!(
        inputs.contains("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;\n-- params: $1 = '"),
        "{}",
        &inputs[..inputs.len().min(3000)]
    );
    assert!(
        inputs.contains("copy pgbench_accounts from stdin") || inputs.contains("COPY FROM STDIN")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_prepared_statements_with_binary_results() {
    let t = target_or_skip!("hoop_pg_tokio");
    psql_direct(
        &t,
        "create table people (id int, email text, age bigint);
         insert into people values (1, 'erin@corp.example', 41), (2, 'frank@corp.example', 37);",
    )
    .await;
    let gw = Gateway::start(Backend::Sqlite).await;
    create(&gw, connection("pg", &t, &["people.email"], &[])).await;
    let served = serve(&gw, "pg").await;
    let (client, conn) = tokio_postgres::connect(&served.dsn, tokio_postgres::NoTls)
        .await
        .expect("tokio-postgres connects through hoop connect");
    let driver = tokio::spawn(conn);
    let stmt = client
        .prepare("select id, email, age from people where id >= $1 order by id")
        .await
        .unwrap();
    for _ in 0..2 {
        let rows = client.query(&stmt, &[&1i32]).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<_, i32>(0), 1);
        assert_eq!(rows[0].get::<_, &str>(1), "[MASKED]");
        assert_eq!(rows[1].get::<_, i64>(2), 37);
    }
    let n: i64 = client
        .query_one("select count(*) from people where age > $1", &[&40i64])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    drop(client);
    let _ = driver.await;
    drop(served);
    let list = all_ended(&gw, "pg").await;
    let (input, output) = recorded(&gw, &list[0].id).await;
    assert!(
        input.contains("where id >= $1 order by id\n-- params: $1 = '1'"),
        "{input}"
    );
    assert!(input.contains("-- params: $1 = '40'"), "{input}");
    assert!(!output.contains("erin@corp.example"), "{output}");
    // `hoop sessions replay` shows the statements at a psql prompt, then what came back.
    let replay = gw
        .cli(Some(ADMIN_TOKEN), &["sessions", "replay", &list[0].id])
        .await;
    let text = replay.ok();
    assert!(
        text.contains(
            "pg=> select id, email, age from people where id >= $1 order by id\npg-> -- params: $1 = '1'\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("[MASKED]") && text.contains("(2 rows)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_holds_hoop_exec_sql_until_approved() {
    let t = target_or_skip!("hoop_pg_review");
    psql_direct(&t, "create table hits (n int)").await;
    let gw = Gateway::start(Backend::Sqlite).await;
    let mut conn = connection("pg", &t, &[], &[]);
    conn.reviewers = vec!["dba".into()];
    create(&gw, conn).await;
    let requester = gw.user_with_token("rita", &[]).await;
    let reviewer = gw.user_with_token("dave", &["dba"]).await;
    let mut stream = gw
        .sessions()
        .await
        .exec(authed(
            &requester,
            pb::ExecRequest {
                connection: "pg".into(),
                input: b"insert into hits values (1); select count(*) as hits from hits".to_vec(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    use pb::session_event::Event;
    let review_id = loop {
        let ev = tokio::time::timeout(STEP, stream.message())
            .await
            .unwrap()
            .unwrap()
            .expect("an event");
        if let Some(Event::Held(h)) = ev.event {
            break h.review_id;
        }
    };
    // Held: nothing ran.
    assert_eq!(
        psql_direct(&t, "select count(*) from hits").await.trim(),
        "0"
    );
    gw.reviews()
        .await
        .approve_review(authed(
            &reviewer,
            pb::ApproveReviewRequest {
                id: review_id.clone(),
                group: "dba".into(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    let mut stdout = Vec::new();
    let mut exit = None;
    while let Some(ev) = tokio::time::timeout(STEP, stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        match ev.event {
            Some(Event::Output(o)) => stdout.extend(o.data),
            Some(Event::Exit(e)) => exit = Some(e.exit_code),
            _ => {}
        }
    }
    assert_eq!(exit, Some(0));
    let stdout = String::from_utf8_lossy(&stdout);
    assert!(stdout.contains(" hits\n------\n    1\n(1 row)"), "{stdout}");
    // Ran exactly once; running the review again is refused.
    assert_eq!(
        psql_direct(&t, "select count(*) from hits").await.trim(),
        "1"
    );
    let again = hoop_rs::exec(
        &gw,
        &requester,
        pb::ExecRequest {
            review_id,
            ..Default::default()
        },
    )
    .await;
    assert!(
        again.is_err() || again.as_ref().unwrap().exit_code != Some(0),
        "{again:?}"
    );
    assert_eq!(
        psql_direct(&t, "select count(*) from hits").await.trim(),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_holds_hoop_connect_until_access_is_granted() {
    let t = target_or_skip!("hoop_pg_jit");
    let gw = Gateway::start(Backend::Sqlite).await;
    let mut conn = connection("pg", &t, &[], &[]);
    conn.reviewers = vec!["dba".into()];
    create(&gw, conn).await;
    let requester = gw.user_with_token("rita", &[]).await;
    let reviewer = gw.user_with_token("dave", &["dba"]).await;
    // `hoop connect` as the requester.
    let mut child = Command::new(hoop_rs::cli_bin())
        .args(["connect", "pg", "--port", "0", "--duration", "30m"])
        .env("HOOP_GATEWAY", gw.url())
        .env("HOOP_TOKEN", &requester)
        .current_dir(gw.setup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dsn = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.starts_with("postgres://") {
            dsn = line.clone();
        }
        if line.contains(" psql '") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // psql waits while the session is held.
    let query = tokio::spawn(async move { psql(&dsn, &["-Atc", "select 40 + 2"]).await });
    let review = hoop_rs::eventually(STEP, "a review is asked for", || async {
        gw.reviews()
            .await
            .list_reviews(admin(pb::ListReviewsRequest {
                connection: "pg".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .reviews
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(review.verb, "connect");
    assert!(!query.is_finished());
    gw.reviews()
        .await
        .approve_review(authed(
            &reviewer,
            pb::ApproveReviewRequest {
                id: review.id,
                group: "dba".into(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    let (ok, out, err) = query.await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoop_exec_prints_like_psql_and_fails_like_it() {
    let t = target_or_skip!("hoop_pg_exec");
    let gw = Gateway::start(Backend::Sqlite).await;
    create(&gw, connection("pg", &t, &[], &["EMAIL_ADDRESS"])).await;
    let out = gw
        .cli(
            Some(ADMIN_TOKEN),
            &[
                "exec",
                "pg",
                "-i",
                "select 1 as one, 'x y@z.example' as who",
            ],
        )
        .await;
    let text = out.ok();
    assert!(
        text.contains(" one |") && text.contains("   1 | x [EMAIL_ADDRESS]\n(1 row)\n"),
        "{text}"
    );
    let bad = gw
        .cli(Some(ADMIN_TOKEN), &["exec", "pg", "-i", "select nope"])
        .await;
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(
        bad.stderr.contains("column \"nope\" does not exist"),
        "{bad:?}"
    );
}

// ---------------------------------------------------------------------------------------
// TLS between the gateway and the database (SSLMODE, SSLROOTCERT).

/// The test server's certificate (Debian's self-signed snakeoil certificate).
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn snakeoil() -> String {
    std::fs::read_to_string(SNAKEOIL).unwrap_or_default()
}

/// Whether the test server speaks TLS with the snakeoil certificate; why not, if not.
async fn server_tls(t: &Target) -> Result<(), String> {
    if snakeoil().is_empty() {
        return Err(format!("{SNAKEOIL} is not readable"));
    }
    let cert = psql_direct(
        t,
        "select current_setting('ssl') || ' ' || current_setting('ssl_cert_file')",
    )
    .await;
    if cert.trim() != format!("on {SNAKEOIL}") {
        return Err(format!("the server's TLS settings are `{}`", cert.trim()));
    }
    Ok(())
}

macro_rules! tls_target_or_skip {
    ($prefix:expr) => {{
        let t = target_or_skip!($prefix);
        if let Err(why) = server_tls(&t).await {
            eprintln!("skipped: the test server has no TLS as expected: {why}");
            return;
        }
        t
    }};
}

fn tls_connection(
    name: &str,
    t: &Target,
    host: &str,
    mode: &str,
    root: Option<&str>,
) -> pb::Connection {
    let mut c = connection(name, t, &[], &[]);
    c.env.insert("HOST".into(), host.to_owned());
    c.env.insert("SSLMODE".into(), mode.to_owned());
    if let Some(root) = root {
        c.env.insert("SSLROOTCERT".into(), root.to_owned());
    }
    c
}

/// Whether the database session of `hoop exec` on `conn` is under TLS, as the server sees it.
const SSL_OF_BACKEND: &str = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

/// The DNS name the snakeoil certificate is issued for (its subjectAltName).
async fn snakeoil_name() -> Option<String> {
    let out = Command::new("openssl")
        .args(["x509", "-in", SNAKEOIL, "-noout", "-ext", "subjectAltName"])
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let at = text.find("DNS:")? + 4;
    let name: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    (!name.is_empty()).then_some(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_encrypts_the_hop_to_the_database() {
    let t = tls_target_or_skip!("hoop_pg_tls_require");
    let gw = Gateway::start(Backend::Sqlite).await;
    create(&gw, tls_connection("pg-req", &t, &t.host, "require", None)).await;
    create(
        &gw,
        tls_connection("pg-plain", &t, &t.host, "disable", None),
    )
    .await;
    let out = gw
        .cli(Some(ADMIN_TOKEN), &["exec", "pg-req", "-i", SSL_OF_BACKEND])
        .await;
    assert!(out.ok().contains("\n t\n(1 row)"), "{out:?}");
    let out = gw
        .cli(
            Some(ADMIN_TOKEN),
            &["exec", "pg-plain", "-i", SSL_OF_BACKEND],
        )
        .await;
    assert!(out.ok().contains("\n f\n(1 row)"), "{out:?}");
    // psql through `hoop connect`: the same session, a bigger result, and a cancel key that
    // works under TLS.
    let served = serve(&gw, "pg-req").await;
    let (ok, out, err) = psql(
        &served.dsn,
        &[
            "-qAt",
            "-c",
            SSL_OF_BACKEND,
            "-c",
            "select count(*), sum(length(repeat('x', g))) from generate_series(1, 3000) g",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "t\n3000|4501500\n");
    assert!(!out.contains(UPSTREAM_PASSWORD) && !err.contains(UPSTREAM_PASSWORD));
    for s in all_ended(&gw, "pg-req").await {
        assert!(s.status == "done", "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_modes_check_the_database_certificate() {
    let t = tls_target_or_skip!("hoop_pg_tls_verify");
    let gw = Gateway::start(Backend::Sqlite).await;
    let root = snakeoil();
    // verify-ca: the chain, not the name (127.0.0.1 is not in the certificate).
    create(
        &gw,
        tls_connection("pg-ca", &t, "127.0.0.1", "verify-ca", Some(&root)),
    )
    .await;
    let out = gw
        .cli(Some(ADMIN_TOKEN), &["exec", "pg-ca", "-i", SSL_OF_BACKEND])
        .await;
    assert!(out.ok().contains("\n t\n(1 row)"), "{out:?}");

    // verify-full: the certificate does not name 127.0.0.1.
    create(
        &gw,
        tls_connection("pg-full-ip", &t, "127.0.0.1", "verify-full", Some(&root)),
    )
    .await;
    let out = gw
        .cli(Some(ADMIN_TOKEN), &["exec", "pg-full-ip", "-i", "select 1"])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("SSLMODE=verify-full")
            && out.stderr.contains("not valid for name")
            && out.stderr.contains("127.0.0.1"),
        "{out:?}"
    );
    assert!(!out.stderr.contains(UPSTREAM_PASSWORD));

    // A root that did not issue the certificate, or none (the webpki roots): refused.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = params.self_signed(&key).unwrap().pem();
    create(
        &gw,
        tls_connection("pg-other-ca", &t, "127.0.0.1", "verify-ca", Some(&other_ca)),
    )
    .await;
    create(
        &gw,
        tls_connection("pg-no-root", &t, "127.0.0.1", "verify-ca", None),
    )
    .await;
    for conn in ["pg-other-ca", "pg-no-root"] {
        let out = gw
            .cli(Some(ADMIN_TOKEN), &["exec", conn, "-i", "select 1"])
            .await;
        assert_ne!(out.code, Some(0), "{conn}: {out:?}");
        assert!(
            out.stderr.contains("SSLMODE=verify-ca") && out.stderr.contains("UnknownIssuer"),
            "{conn}: {out:?}"
        );
    }
    // `hoop connect`: psql gets the reason as a FATAL error, and no session goes on.
    let served = serve(&gw, "pg-other-ca").await;
    let (ok, _, err) = psql(&served.dsn, &["-qAtc", "select 1"]).await;
    assert!(!ok && err.contains("UnknownIssuer"), "{err}");

    // verify-full with the name the certificate carries, where it resolves here.
    let Some(name) = snakeoil_name().await else {
        eprintln!(
            "verify-full positive case skipped: cannot read the certificate's name (openssl)"
        );
        return;
    };
    if tokio::net::lookup_host((name.as_str(), 5432))
        .await
        .map(|mut a| a.next().is_some())
        .unwrap_or(false)
    {
        create(
            &gw,
            tls_connection("pg-full", &t, &name, "verify-full", Some(&root)),
        )
        .await;
        let out = gw
            .cli(
                Some(ADMIN_TOKEN),
                &["exec", "pg-full", "-i", SSL_OF_BACKEND],
            )
            .await;
        assert!(out.ok().contains("\n t\n(1 row)"), "{out:?}");
    } else {
        eprintln!(
            "verify-full positive case skipped: `{name}` (the certificate's name) does not resolve here"
        );
    }
}

/// What a fake server received on one connection, and whether that connection ended.
#[derive(Default, Clone)]
struct Received {
    bytes: Vec<u8>,
    closed: bool,
}

/// A fake PostgreSQL server on 127.0.0.1: answers an SSLRequest with `answer`, then (if the
/// client goes on in the clear) asks for a cleartext password, logs it in and answers one
/// query with a row `plain`. Records everything each connection sent.
async fn fake_server(
    answer: &'static [u8],
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Received>::new()));
    let all = log.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = all.clone();
            let i = {
                let mut l = log.lock().unwrap();
                l.push(Received::default());
                l.len() - 1
            };
            tokio::spawn(async move {
                let record = |b: &[u8]| log.lock().unwrap()[i].bytes.extend_from_slice(b);
                let msg = |tag: u8, body: &[u8]| {
                    let mut m = vec![tag];
                    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
                    m.extend_from_slice(body);
                    m
                };
                let result: std::io::Result<()> = async {
                    let mut first = [0u8; 8];
                    sock.read_exact(&mut first).await?;
                    record(&first);
                    sock.write_all(answer).await?;
                    // The startup message.
                    let mut len = [0u8; 4];
                    sock.read_exact(&mut len).await?;
                    record(&len);
                    let mut body = vec![0u8; i32::from_be_bytes(len) as usize - 4];
                    sock.read_exact(&mut body).await?;
                    record(&body);
                    sock.write_all(&msg(b'R', &3i32.to_be_bytes())).await?;
                    // Tagged messages: the password, then a query.
                    for _ in 0..2 {
                        let mut head = [0u8; 5];
                        sock.read_exact(&mut head).await?;
                        record(&head);
                        let n = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
                        let mut body = vec![0u8; n as usize - 4];
                        sock.read_exact(&mut body).await?;
                        record(&body);
                        let mut out = Vec::new();
                        if head[0] == b'p' {
                            out.extend(msg(b'R', &0i32.to_be_bytes()));
                        } else {
                            let mut desc = 1i16.to_be_bytes().to_vec();
                            desc.extend_from_slice(b"fake\0");
                            desc.extend_from_slice(&0i32.to_be_bytes());
                            desc.extend_from_slice(&0i16.to_be_bytes());
                            desc.extend_from_slice(&25i32.to_be_bytes());
                            desc.extend_from_slice(&(-1i16).to_be_bytes());
                            desc.extend_from_slice(&(-1i32).to_be_bytes());
                            desc.extend_from_slice(&0i16.to_be_bytes());
                            out.extend(msg(b'T', &desc));
                            let mut row = 1i16.to_be_bytes().to_vec();
                            row.extend_from_slice(&5i32.to_be_bytes());
                            row.extend_from_slice(b"plain");
                            out.extend(msg(b'D', &row));
                            out.extend(msg(b'C', b"SELECT 1\0"));
                        }
                        out.extend(msg(b'Z', b"I"));
                        sock.write_all(&out).await?;
                    }
                    let mut rest = Vec::new();
                    sock.read_to_end(&mut rest).await?;
                    record(&rest);
                    Ok(())
                }
                .await;
                let _ = result;
                log.lock().unwrap()[i].closed = true;
            });
        }
    });
    (port, log)
}

/// The connections a fake server saw, once all of them ended.
async fn fake_connections(log: &std::sync::Arc<std::sync::Mutex<Vec<Received>>>) -> Vec<Received> {
    hoop_rs::eventually(STEP, "the fake server's connections end", || async {
        let l = log.lock().unwrap().clone();
        (!l.is_empty() && l.iter().all(|r| r.closed)).then_some(l)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_tls_gets_nothing_unless_sslmode_allows_plain() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let ssl_request: &[u8] = &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let fake_target = |port: u16| Target {
        url: String::new(),
        host: "127.0.0.1".into(),
        port: port.to_string(),
        user: "app".into(),
        db: "app".into(),
    };
    // `N`, and (CVE-2021-23222) `S` with bytes injected before the handshake.
    for answer in [b"N".as_slice(), b"Sjunk".as_slice()] {
        for mode in ["require", "verify-ca", "verify-full"] {
            let (port, log) = fake_server(answer).await;
            let name = format!("fake-{mode}-{}", answer.len());
            create(
                &gw,
                tls_connection(&name, &fake_target(port), "127.0.0.1", mode, None),
            )
            .await;
            let out = gw
                .cli(Some(ADMIN_TOKEN), &["exec", &name, "-i", "select 1"])
                .await;
            assert_ne!(out.code, Some(0), "{mode}: {out:?}");
            let expected = if answer == b"N" {
                "does not accept TLS"
            } else {
                // Unless the junk came in a segment of its own: then it breaks the handshake.
                if out.stderr.contains("unencrypted data after its answer") {
                    "unencrypted data after its answer"
                } else {
                    "TLS with the database failed"
                }
            };
            assert!(out.stderr.contains(expected), "{mode}: {out:?}");
            assert!(!out.stdout.contains("plain"), "{mode}: {out:?}");
            let seen = fake_connections(&log).await;
            assert_eq!(seen.len(), 1, "{mode}: no second attempt");
            // The SSLRequest and nothing else in the clear: no startup message, no password.
            if answer == b"N" {
                assert_eq!(seen[0].bytes, ssl_request, "{mode}");
            } else {
                assert!(seen[0].bytes.starts_with(ssl_request), "{mode}");
                let sent = String::from_utf8_lossy(&seen[0].bytes);
                assert!(
                    !sent.contains(UPSTREAM_PASSWORD) && !sent.contains("user\0"),
                    "{mode}"
                );
            }
        }
    }
    // prefer: plain on the same connection, as libpq does.
    let (port, log) = fake_server(b"N").await;
    create(
        &gw,
        tls_connection(
            "fake-prefer",
            &fake_target(port),
            "127.0.0.1",
            "prefer",
            None,
        ),
    )
    .await;
    let out = gw
        .cli(
            Some(ADMIN_TOKEN),
            &["exec", "fake-prefer", "-i", "select 1"],
        )
        .await;
    assert!(out.ok().contains("\n plain\n(1 row)"), "{out:?}");
    assert!(!out.stdout.contains(UPSTREAM_PASSWORD) && !out.stderr.contains(UPSTREAM_PASSWORD));
    let seen = fake_connections(&log).await;
    assert_eq!(seen.len(), 1);
    assert!(seen[0].bytes.starts_with(ssl_request));
    // The fake database asked for the password in the clear: prefer gives it (libpq would).
    let sent = String::from_utf8_lossy(&seen[0].bytes);
    assert!(
        sent.contains(UPSTREAM_PASSWORD) && sent.contains("select 1"),
        "{sent}"
    );
}
