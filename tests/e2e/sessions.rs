//! SessionService.Exec: running a command connection through its plugin chain.

use std::time::Duration;

use hoop_rs::{
    ADMIN_TOKEN, Backend, Gateway, admin, assert_status, authed, command_connection, e2e,
    eventually, exec, pb,
};
use tonic::Code;

e2e!(
    exec_reports_exit_codes_and_separates_streams,
    exec_passes_bytes_args_and_env_exactly,
    exec_respects_access_modes_and_visibility,
    a_client_that_goes_away_kills_the_child,
    shutting_down_ends_running_sessions,
    kill_session_is_for_the_owner_and_admins,
    sessions_left_open_by_a_crash_become_interrupted,
);

async fn create(gw: &Gateway, conn: pb::Connection) {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
}

/// The stored record of a session, read as the admin.
async fn record(gw: &Gateway, id: &str) -> pb::Session {
    gw.sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: id.to_owned() }))
        .await
        .unwrap()
        .into_inner()
}

fn run(conn: &str, input: &[u8], args: &[&str]) -> pb::ExecRequest {
    pb::ExecRequest {
        connection: conn.into(),
        input: input.to_vec(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

async fn exec_reports_exit_codes_and_separates_streams(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, command_connection("sh", &["sh", "-c"])).await;
    create(
        &gw,
        command_connection("missing", &["/nonexistent/hoop-test-program"]),
    )
    .await;

    let ok = exec(
        &gw,
        ADMIN_TOKEN,
        run(
            "sh",
            b"",
            &["printf out1; printf err1 >&2; printf out2; printf err2 >&2"],
        ),
    )
    .await
    .unwrap();
    assert_eq!(ok.exit_code, Some(0));
    assert_eq!(ok.stdout, b"out1out2");
    assert_eq!(ok.stderr, b"err1err2");
    assert!(!ok.session_id.is_empty());

    let fail = exec(&gw, ADMIN_TOKEN, run("sh", b"", &["echo nope >&2; exit 3"]))
        .await
        .unwrap();
    assert_eq!(fail.exit_code, Some(3));
    assert_eq!(fail.stderr, b"nope\n");

    let one = exec(&gw, ADMIN_TOKEN, run("sh", b"", &["false"]))
        .await
        .unwrap();
    assert_eq!(one.exit_code, Some(1));

    let missing = exec(&gw, ADMIN_TOKEN, run("missing", b"", &[]))
        .await
        .unwrap();
    assert_eq!(missing.exit_code, Some(127));
    assert_eq!(
        missing.reason,
        "error: command not found: /nonexistent/hoop-test-program"
    );

    // The records say the same.
    let mut sessions = gw.sessions().await;
    let rec = record(&gw, &fail.session_id).await;
    assert_eq!(
        (rec.status.as_str(), rec.exit_code, rec.verb.as_str()),
        ("done", Some(3), "exec")
    );
    assert_eq!(rec.connection, "sh");
    assert_eq!(rec.user, "admin");
    assert_eq!(rec.bytes_out, 5);
    assert!(rec.end_time.is_some());
    let listed = sessions
        .list_sessions(admin(pb::ListSessionsRequest {
            connection: "sh".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(listed.len(), 3, "newest first: {listed:?}");
    assert_eq!(listed[0].id, one.session_id);
}

async fn exec_passes_bytes_args_and_env_exactly(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, command_connection("cat", &["cat"])).await;
    create(&gw, command_connection("echo", &["echo"])).await;
    let mut envy = command_connection("env", &["env"]);
    envy.env
        .insert("DB_PASSWORD".into(), "from-the-connection".into());
    create(&gw, envy).await;

    // Every byte value, through stdin and back.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let echoed = exec(&gw, ADMIN_TOKEN, run("cat", &bytes, &[]))
        .await
        .unwrap();
    assert_eq!(echoed.exit_code, Some(0));
    assert!(echoed.stdout == bytes, "binary output altered");

    // Arguments are argv, never shell: nothing is interpolated.
    let args = exec(
        &gw,
        ADMIN_TOKEN,
        run("echo", b"", &["a", "$HOME; rm -rf /tmp/x", "`id`"]),
    )
    .await
    .unwrap();
    assert_eq!(args.stdout, b"a $HOME; rm -rf /tmp/x `id`\n");

    // The child sees PATH and the connection's env, nothing of the gateway's.
    let env = exec(&gw, ADMIN_TOKEN, run("env", b"", &[])).await.unwrap();
    let text = String::from_utf8(env.stdout).unwrap();
    let mut names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort_unstable();
    assert_eq!(names, ["DB_PASSWORD", "PATH"], "{text}");
    assert!(text.contains("DB_PASSWORD=from-the-connection"));
}

async fn exec_respects_access_modes_and_visibility(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut conn = command_connection("locked", &["true"]);
    conn.access_modes = Some(pb::AccessModes {
        exec: Some(false),
        ..Default::default()
    });
    create(&gw, conn).await;
    create(&gw, command_connection("open", &["true"])).await;
    assert_status(
        exec(&gw, ADMIN_TOKEN, run("locked", b"", &[])).await,
        Code::FailedPrecondition,
        "exec is disabled on connection `locked`",
    );
    assert_status(
        exec(&gw, ADMIN_TOKEN, run("ghost", b"", &[])).await,
        Code::NotFound,
        "ghost",
    );
    assert_status(
        exec(&gw, "bad-token", run("open", b"", &[])).await,
        Code::Unauthenticated,
        "",
    );

    // Dana runs a session; she sees hers, not the admin's; an auditor sees all.
    let dana = gw.user_with_token("dana", &["dev"]).await;
    let otto = gw.user_with_token("otto", &["auditor"]).await;
    let hers = exec(&gw, &dana, run("open", b"", &[])).await.unwrap();
    let admins = exec(&gw, ADMIN_TOKEN, run("open", b"", &[])).await.unwrap();
    let mut sessions = gw.sessions().await;
    let visible = |token: &str| {
        let mut sessions = sessions.clone();
        let token = token.to_owned();
        async move {
            let mut ids: Vec<String> = sessions
                .list_sessions(authed(&token, pb::ListSessionsRequest::default()))
                .await
                .unwrap()
                .into_inner()
                .sessions
                .into_iter()
                .map(|s| s.id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(visible(&dana).await, std::slice::from_ref(&hers.session_id));
    let mut both = vec![hers.session_id.clone(), admins.session_id.clone()];
    both.sort();
    assert_eq!(visible(&otto).await, both);
    assert_eq!(visible(ADMIN_TOKEN).await, both);
    assert_status(
        sessions
            .get_session(authed(
                &dana,
                pb::GetSessionRequest {
                    id: admins.session_id.clone(),
                },
            ))
            .await,
        Code::NotFound,
        "not found",
    );
    sessions
        .get_session(authed(
            &otto,
            pb::GetSessionRequest {
                id: hers.session_id.clone(),
            },
        ))
        .await
        .unwrap();
}

/// Starts a session whose child prints its pid then sleeps; returns the open stream, the
/// session id and the pid.
async fn start_sleepy(gw: &Gateway) -> (tonic::Streaming<pb::SessionEvent>, String, i32) {
    let argv = ["sh", "-c", "echo $$; exec sleep 600"];
    create(gw, command_connection("sleepy", &argv)).await;
    let mut stream = gw
        .sessions()
        .await
        .exec(admin(run("sleepy", b"", &[])))
        .await
        .unwrap()
        .into_inner();
    let mut session_id = String::new();
    let pid: i32 = loop {
        let ev = stream.message().await.unwrap().unwrap();
        match ev.event.unwrap() {
            pb::session_event::Event::Started(s) => session_id = s.session_id,
            pb::session_event::Event::Output(o) => {
                break String::from_utf8(o.data).unwrap().trim().parse().unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    (stream, session_id, pid)
}

async fn wait_for_death(pid: i32) {
    eventually(Duration::from_secs(20), "the child to die", || async {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        // Gone, or a zombie waiting for its reaper.
        stat.is_none_or(|s| s.split_whitespace().nth(2) == Some("Z"))
            .then_some(())
    })
    .await;
}

async fn a_client_that_goes_away_kills_the_child(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let (stream, session_id, pid) = start_sleepy(&gw).await;
    drop(stream);
    wait_for_death(pid).await;
    let sessions = gw.sessions().await;
    let rec = eventually(Duration::from_secs(20), "the session to be settled", || {
        let mut sessions = sessions.clone();
        let id = session_id.clone();
        async move {
            let s = sessions
                .get_session(admin(pb::GetSessionRequest { id }))
                .await
                .unwrap()
                .into_inner();
            (s.status != "open").then_some(s)
        }
    })
    .await;
    assert_eq!(rec.status, "killed");
    assert_eq!(rec.reason, "client went away");
}

async fn shutting_down_ends_running_sessions(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let (mut stream, session_id, pid) = start_sleepy(&gw).await;
    // SIGTERM: the gateway ends the session and stops (stop() asserts a clean, prompt exit).
    let setup = gw.stop().await;
    wait_for_death(pid).await;
    let mut last = None;
    while let Ok(Some(ev)) = stream.message().await {
        last = ev.event;
    }
    match last {
        Some(pb::session_event::Event::Exit(exit)) => assert_eq!(exit.reason, "gateway shut down"),
        other => panic!("expected an exit event, got {other:?}"),
    }
    let gw = setup.start().await;
    let rec = record(&gw, &session_id).await;
    assert_eq!(
        (rec.status.as_str(), rec.reason.as_str()),
        ("killed", "gateway shut down")
    );
}

async fn kill_session_is_for_the_owner_and_admins(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let (stream, session_id, pid) = start_sleepy(&gw).await;
    let tokens = [
        gw.user_with_token("dana", &["dev"]).await,
        gw.user_with_token("otto", &["auditor"]).await,
    ];
    let mut sessions = gw.sessions().await;
    let kill = |id: &str| pb::KillSessionRequest { id: id.to_owned() };
    assert_status(
        sessions
            .kill_session(authed(&tokens[0], kill(&session_id)))
            .await,
        Code::NotFound,
        "not found",
    );
    assert_status(
        sessions
            .kill_session(authed(&tokens[1], kill(&session_id)))
            .await,
        Code::PermissionDenied,
        "killing another user's session needs group `admin`",
    );
    assert_status(
        sessions.kill_session(admin(kill("no-such-session"))).await,
        Code::NotFound,
        "not found",
    );

    // The admin kills it with the CLI; the record is settled when the call returns.
    let out = gw
        .cli(Some(ADMIN_TOKEN), &["sessions", "kill", &session_id])
        .await;
    assert!(
        out.ok()
            .starts_with(&format!("killed session {session_id}")),
        "{out:?}"
    );
    wait_for_death(pid).await;
    let rec = record(&gw, &session_id).await;
    assert_eq!(
        (rec.status.as_str(), rec.reason.as_str()),
        ("killed", "killed by admin")
    );
    drop(stream);
    assert_status(
        sessions.kill_session(admin(kill(&session_id))).await,
        Code::FailedPrecondition,
        "has already ended (status killed)",
    );
}

async fn sessions_left_open_by_a_crash_become_interrupted(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let (_stream, session_id, pid) = start_sleepy(&gw).await;
    let setup = gw.crash().await;
    // Killing the child when the gateway itself dies (parent-death signal) is still to be
    // done (issue 3); until then the test cleans up after itself.
    assert!(pid > 1);
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let gw = setup.start().await;
    let rec = record(&gw, &session_id).await;
    assert_eq!(rec.status, "interrupted");
    assert_eq!(rec.reason, "the gateway stopped while the session ran");
    assert!(rec.end_time.is_some());
    assert!(gw.logs().contains("marked interrupted"), "{}", gw.logs());
}
