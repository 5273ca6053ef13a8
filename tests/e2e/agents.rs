//! Agents: sessions run by the local agent (isolated from the gateway) and by remote
//! `hoop-agent` processes that dial out to the gateway; agents as resources.

use std::process::Stdio;
use std::time::Duration;

use hoop_rs::{
    Backend, Gateway, Setup, admin, agent_bin, assert_status, authed, command_connection, e2e,
    eventually, exec, pb,
};
use tonic::Code;

e2e!(
    the_local_agent_runs_sessions_away_from_the_gateway,
    a_remote_agent_serves_is_interrupted_and_serves_again,
    agent_tokens_and_agent_management_are_guarded,
    an_oversized_start_fails_alone,
    input_larger_than_the_window_crosses_the_agent_whole,
    sessions_run_under_the_session_helper_beside_the_gateway_or_the_gateway_itself,
);

/// Runs an `exec` of the admin on `connection`, with no input.
async fn run(gw: &Gateway, connection: &str) -> Result<hoop_rs::ExecResult, tonic::Status> {
    exec(
        gw,
        hoop_rs::ADMIN_TOKEN,
        pb::ExecRequest {
            connection: connection.to_owned(),
            ..Default::default()
        },
    )
    .await
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

/// Whether a process whose command line contains `needle` runs on this host.
fn process_with(needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .map(|cmdline| {
                let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                text.contains(needle)
            })
            .unwrap_or(false)
    })
}

/// A `sleep` argument no other process has: marks the process a session leaves behind.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("600.{}{nanos:09}", std::process::id())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

async fn the_local_agent_runs_sessions_away_from_the_gateway(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: the privilege drop needs the tests to run as root (CI does)");
        return;
    }
    let setup = Setup::new(backend).with_env("HOOP_E2E_GATEWAY_SECRET", "gw-s3cret-value");
    let gw = setup.start().await;
    let data = gw.setup.data_dir();
    let gateway_pid = gw.pid();
    let sleeper = marker();
    let script = format!(
        r#"echo "uid=$(id -u)"
echo "groups=$(id -G)"
echo "home=$HOME user=$USER logname=$LOGNAME shell=$SHELL"
echo "pwd=$(pwd)"
cat /proc/{gateway_pid}/environ >/dev/null 2>&1 && echo "environ=readable" || echo "environ=denied"
ls {data} >/dev/null 2>&1 && echo "datadir=readable" || echo "datadir=denied"
cat {data}/hoop.db >/dev/null 2>&1 && echo "db=readable" || echo "db=denied"
cat {data}/admin-token >/dev/null 2>&1 && echo "token=readable" || echo "token=denied"
ls {data}/recordings >/dev/null 2>&1 && echo "recordings=readable" || echo "recordings=denied"
env | grep -c '^HOOP_' || true
setsid -f sleep {sleeper} </dev/null >/dev/null 2>&1
echo done"#,
        data = data.display()
    );
    let mut conn = command_connection("isolated", &["sh", "-c", &script]);
    conn.env
        .insert("CONN_VAR".into(), "from-the-connection".into());
    create(&gw, conn).await;
    let result = run(&gw, "isolated").await.unwrap();
    let out = String::from_utf8_lossy(&result.stdout).to_string();
    assert_eq!(
        result.exit_code,
        Some(0),
        "{out} / {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let nobody_uid = "65534";
    assert!(out.contains(&format!("uid={nobody_uid}\n")), "{out}");
    assert!(out.contains(&format!("groups={nobody_uid}\n")), "{out}");
    assert!(
        out.contains("home=/nonexistent user=nobody logname=nobody shell=/usr/sbin/nologin"),
        "{out}"
    );
    assert!(!out.contains(&format!("pwd={}", data.display())), "{out}");
    for what in ["environ", "datadir", "db", "token", "recordings"] {
        assert!(out.contains(&format!("{what}=denied")), "{what}: {out}");
    }
    // No HOOP_* variable of the gateway's environment reached the session.
    assert!(out.contains("\n0\n"), "{out}");
    assert!(out.ends_with("done\n"), "{out}");
    // What the session left behind with setsid is gone once it ended.
    eventually(
        Duration::from_secs(10),
        "the setsid'd sleep to be killed",
        || async { (!process_with(&format!("sleep {sleeper}"))).then_some(()) },
    )
    .await;
    // The data dir, database and recordings are private to the gateway's user.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.clone()), 0o700);
    assert_eq!(mode(data.join("recordings")), 0o700);
    assert_eq!(mode(gw.recording_path(&result.session_id)), 0o600);
    if backend_is_sqlite(&gw) {
        assert_eq!(mode(data.join("hoop.db")), 0o600);
    }
    let mut gw = gw;
    gw.terminate().await;
}

fn backend_is_sqlite(gw: &Gateway) -> bool {
    matches!(gw.setup.backend, Backend::Sqlite)
}

/// A `hoop-agent` process.
struct AgentProcess {
    child: tokio::process::Child,
}

impl AgentProcess {
    fn start(gw: &Gateway, token: &str) -> Self {
        let child = tokio::process::Command::new(agent_bin())
            .args(["--gateway", &gw.url(), "--user", "nobody"])
            .env("HOOP_AGENT_TOKEN", token)
            .env("HOOP_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { child }
    }

    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

async fn online(gw: &Gateway, name: &str) -> bool {
    gw.agents()
        .await
        .list_agents(admin(pb::ListAgentsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .agents
        .iter()
        .any(|a| a.name == name && a.online)
}

async fn a_remote_agent_serves_is_interrupted_and_serves_again(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let created = gw
        .cli(
            Some(hoop_rs::ADMIN_TOKEN),
            &["agents", "create", "edge", "-o", "json"],
        )
        .await;
    let token = created.json()["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hag_"), "{token}");
    let mut conn = command_connection("far", &["sh", "-c", "echo ready; exec sleep 600"]);
    conn.agent = "edge".into();
    create(&gw, conn).await;
    let mut quick = command_connection("far-quick", &["echo", "hello from the edge"]);
    quick.agent = "edge".into();
    create(&gw, quick).await;

    // Not connected yet: the session fails at once, naming the agent.
    let offline = run(&gw, "far-quick").await;
    assert_status(offline, Code::FailedPrecondition, "agent `edge`");

    let agent = AgentProcess::start(&gw, &token);
    eventually(Duration::from_secs(30), "agent edge online", || async {
        online(&gw, "edge").await.then_some(())
    })
    .await;
    let listed = gw
        .cli(Some(hoop_rs::ADMIN_TOKEN), &["agents", "list"])
        .await;
    assert!(listed.ok().contains("edge"), "{}", listed.ok());
    assert!(listed.ok().contains("local"), "{}", listed.ok());
    let result = run(&gw, "far-quick").await.unwrap();
    assert_eq!(result.stdout, b"hello from the edge\n");
    assert_eq!(result.exit_code, Some(0));

    // Killed mid-session: the session ends as interrupted, with the reason.
    let mut events = gw
        .sessions()
        .await
        .exec(admin(pb::ExecRequest {
            connection: "far".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut session_id = String::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), events.message())
            .await
            .expect("session stalled")
            .unwrap()
            .expect("ended before `ready`");
        match event.event.unwrap() {
            pb::session_event::Event::Started(s) => session_id = s.session_id,
            pb::session_event::Event::Output(o) if o.data == b"ready\n"[..] => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    agent.kill().await;
    let exit = loop {
        let event = tokio::time::timeout(Duration::from_secs(60), events.message())
            .await
            .expect("the session did not end after its agent died")
            .unwrap()
            .expect("no exit event");
        if let pb::session_event::Event::Exit(exit) = event.event.unwrap() {
            break exit;
        }
    };
    assert!(exit.reason.contains("agent `edge`"), "{exit:?}");
    let session = gw
        .sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: session_id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.status, "interrupted", "{session:?}");
    assert!(session.reason.contains("agent `edge`"), "{session:?}");
    // The program it ran died with it.
    eventually(
        Duration::from_secs(10),
        "the agent's session to be gone",
        || async { (!process_with("sleep 600")).then_some(()) },
    )
    .await;

    // Restarted, it serves the next session.
    let agent = AgentProcess::start(&gw, &token);
    eventually(
        Duration::from_secs(30),
        "agent edge online again",
        || async { online(&gw, "edge").await.then_some(()) },
    )
    .await;
    let again = run(&gw, "far-quick").await.unwrap();
    assert_eq!(again.stdout, b"hello from the edge\n");

    // Deleted, it is cut off and its token no longer serves.
    let deleted = gw
        .cli(Some(hoop_rs::ADMIN_TOKEN), &["agents", "delete", "edge"])
        .await;
    assert!(
        deleted.ok().contains("deleted agent edge"),
        "{}",
        deleted.ok()
    );
    eventually(Duration::from_secs(10), "agent edge offline", || async {
        (!online(&gw, "edge").await).then_some(())
    })
    .await;
    let mut serve = gw.agents().await;
    let refused = serve
        .serve(authed(
            &token,
            tokio_stream::iter(Vec::<pb::AgentMessage>::new()),
        ))
        .await;
    assert_status(refused, Code::Unauthenticated, "agent token");
    agent.kill().await;
}

async fn agent_tokens_and_agent_management_are_guarded(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let user = gw.user_with_token("mallory", &[]).await;
    let mut agents = gw.agents().await;
    // Only admins manage agents.
    assert_status(
        agents
            .create_agent(authed(&user, pb::CreateAgentRequest { name: "x".into() }))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    assert_status(
        agents
            .list_agents(authed(&user, pb::ListAgentsRequest {}))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    // Bad names and the reserved one.
    assert_status(
        agents
            .create_agent(admin(pb::CreateAgentRequest {
                name: "Bad Name".into(),
            }))
            .await,
        Code::InvalidArgument,
        "name",
    );
    assert_status(
        agents
            .create_agent(admin(pb::CreateAgentRequest {
                name: "local".into(),
            }))
            .await,
        Code::InvalidArgument,
        "local",
    );
    let token = agents
        .create_agent(admin(pb::CreateAgentRequest { name: "ok".into() }))
        .await
        .unwrap()
        .into_inner()
        .token;
    assert_status(
        agents
            .create_agent(admin(pb::CreateAgentRequest { name: "ok".into() }))
            .await,
        Code::AlreadyExists,
        "ok",
    );
    // A user's credentials never receive sessions: not an API key, not the admin token.
    for credential in [user.as_str(), hoop_rs::ADMIN_TOKEN] {
        let refused = agents
            .serve(authed(
                credential,
                tokio_stream::iter(vec![pb::AgentMessage {
                    message: Some(pb::agent_message::Message::Hello(pb::AgentHello::default())),
                }]),
            ))
            .await;
        assert_status(refused, Code::PermissionDenied, "agent token");
    }
    // A stream that does not start with a hello, or announces too much, is refused.
    let no_hello = agents
        .serve(authed(
            &token,
            tokio_stream::iter(vec![pb::AgentMessage {
                message: Some(pb::agent_message::Message::Spawned(pb::AgentSpawned {
                    session_id: "x".into(),
                    pid: 1,
                })),
            }]),
        ))
        .await;
    assert_status(no_hello, Code::InvalidArgument, "hello");
    let bloated = agents
        .serve(authed(
            &token,
            tokio_stream::iter(vec![pb::AgentMessage {
                message: Some(pb::agent_message::Message::Hello(pb::AgentHello {
                    version: "v".repeat(10_000),
                    hostname: String::new(),
                })),
            }]),
        ))
        .await;
    assert_status(bloated, Code::InvalidArgument, "at most 256 bytes");
    // An agent's token is good for Serve only.
    assert_status(
        gw.connections()
            .await
            .list_connections(authed(&token, pb::ListConnectionsRequest::default()))
            .await,
        Code::Unauthenticated,
        "invalid",
    );
    // The list never shows tokens; the local agent is there and online.
    let listed = agents
        .list_agents(admin(pb::ListAgentsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed
        .agents
        .iter()
        .map(|a| (a.name.as_str(), a.online))
        .collect();
    assert_eq!(names, [("local", true), ("ok", false)]);
    assert!(!format!("{listed:?}").contains(&token));
    assert_status(
        agents
            .delete_agent(admin(pb::DeleteAgentRequest {
                name: "nope".into(),
            }))
            .await,
        Code::NotFound,
        "nope",
    );
}

async fn an_oversized_start_fails_alone(backend: Backend) {
    let gw = Gateway::start(backend).await;
    // 20 values of 60 KiB: each within the limits, together more than a program may get.
    let mut big = command_connection("big", &["true"]);
    for i in 0..20 {
        big.env.insert(format!("V{i}"), "x".repeat(60 * 1024));
    }
    create(&gw, big).await;
    create(&gw, command_connection("small", &["echo", "still served"])).await;
    let failed = run(&gw, "big").await.unwrap();
    assert_eq!(failed.exit_code, Some(126), "{failed:?}");
    assert!(
        failed.reason.contains("more than the 1048576"),
        "{failed:?}"
    );
    // The agent link is not harmed: the next session runs.
    let ok = run(&gw, "small").await.unwrap();
    assert_eq!(ok.stdout, b"still served\n");
}

/// Input and output far larger than the agent's 256 KiB flow-control windows go through
/// whole, in order, both ways.
async fn input_larger_than_the_window_crosses_the_agent_whole(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, command_connection("count", &["wc", "-c"])).await;
    create(&gw, command_connection("echo-back", &["cat"])).await;
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let counted = exec(
        &gw,
        hoop_rs::ADMIN_TOKEN,
        pb::ExecRequest {
            connection: "count".into(),
            input: input.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&counted.stdout).trim(), "3000000");
    let echoed = exec(
        &gw,
        hoop_rs::ADMIN_TOKEN,
        pb::ExecRequest {
            connection: "echo-back".into(),
            input: input.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(echoed.exit_code, Some(0));
    assert!(echoed.stdout == input, "3 MB through cat came back altered");
}

/// The command line of the session's supervisor (the parent of the session's `sh`), as the
/// session's program sees it.
async fn supervisor_cmdline(gw: &Gateway, name: &str) -> String {
    let result = run(gw, name).await.unwrap();
    assert_eq!(
        result.exit_code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8_lossy(&result.stdout).into_owned()
}

async fn sessions_run_under_the_session_helper_beside_the_gateway_or_the_gateway_itself(
    backend: Backend,
) {
    // One name per gateway: on PostgreSQL the three gateways share one database.
    let connection = |name: &str| {
        command_connection(name, &["sh", "-c", r#"tr '\0' ' ' < /proc/$PPID/cmdline"#])
    };
    // Built with the gateway, beside it: sessions' supervisors are the small helper.
    let gw = Setup::new(backend).start().await;
    create(&gw, connection("whose-child")).await;
    let cmdline = supervisor_cmdline(&gw, "whose-child").await;
    assert!(
        cmdline.starts_with("hoop-session-helper __hoop-session-supervisor "),
        "{cmdline}"
    );
    // The same data dir each time: on PostgreSQL the gateways share one database.
    let setup = gw.stop().await;

    // A gateway copied alone: the same sessions, from its own binary.
    let alone = tempfile::tempdir().unwrap();
    let binary = alone.path().join("hoop-gateway");
    if std::fs::hard_link(hoop_rs::gateway_bin(), &binary).is_err() {
        std::fs::copy(hoop_rs::gateway_bin(), &binary).unwrap();
    }
    let gw = setup.start_binary(&binary).await;
    create(&gw, connection("whose-child-alone")).await;
    let cmdline = supervisor_cmdline(&gw, "whose-child-alone").await;
    assert!(
        cmdline.starts_with("hoop-gateway __hoop-session-supervisor "),
        "{cmdline}"
    );
    let setup = gw.stop().await;

    // A helper of another build beside it (its fingerprint differs): not used, and said so.
    let helper = alone.path().join("hoop-session-helper");
    std::fs::write(
        &helper,
        "#!/bin/sh\necho hoop-agent 0.0.0 0000000000000000\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gw = setup.start_binary(&binary).await;
    create(&gw, connection("whose-child-other-helper")).await;
    let cmdline = supervisor_cmdline(&gw, "whose-child-other-helper").await;
    assert!(
        cmdline.starts_with("hoop-gateway __hoop-session-supervisor "),
        "{cmdline}"
    );
    assert!(
        gw.logs()
            .contains("the session helper beside the agent was built from other sources"),
        "{}",
        gw.logs()
    );
    let setup = gw.stop().await;

    // The real helper, but other users may write it: never run, not even to ask its
    // fingerprint (whoever could write it would run code as the agent's user).
    std::fs::remove_file(&helper).unwrap();
    let real = hoop_rs::gateway_bin().with_file_name("hoop-session-helper");
    std::fs::copy(&real, &helper).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o757)).unwrap();
    let gw = setup.start_binary(&binary).await;
    create(&gw, connection("whose-child-writable-helper")).await;
    let cmdline = supervisor_cmdline(&gw, "whose-child-writable-helper").await;
    assert!(
        cmdline.starts_with("hoop-gateway __hoop-session-supervisor "),
        "{cmdline}"
    );
    assert!(
        gw.logs()
            .contains("is not used: its group or other users may write it (mode 757)"),
        "{}",
        gw.logs()
    );
    let mut gw = gw;
    gw.terminate().await;
}
