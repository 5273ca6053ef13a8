//! SessionService.Exec: running a command connection through its plugin chain.

use std::time::Duration;

use hoop_rs::{
    ADMIN_TOKEN, Backend, Gateway, admin, args_connection, assert_status, authed,
    command_connection, e2e, eventually, exec, pb,
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
    connect_streams_input_and_output_as_they_come,
    connect_checks_its_first_request_and_access_mode,
    a_session_past_its_timeout_is_killed,
    a_slow_client_slows_the_child_down,
    tiny_writes_to_a_slow_client_keep_the_session,
    connect_on_a_terminal_behaves_like_one,
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
        ..Default::default()
    }
}

async fn exec_reports_exit_codes_and_separates_streams(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, args_connection("sh", &["sh", "-c"])).await;
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
    create(&gw, args_connection("echo", &["echo"])).await;
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

    // The child sees a login environment and the connection's env, nothing of the
    // gateway's (its HOOP_* settings, the admin token among them).
    let env = exec(&gw, ADMIN_TOKEN, run("env", b"", &[])).await.unwrap();
    let text = String::from_utf8(env.stdout).unwrap();
    let mut names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "DB_PASSWORD",
            "HOME",
            "LANG",
            "LOGNAME",
            "PATH",
            "SHELL",
            "TMPDIR",
            "USER"
        ],
        "{text}"
    );
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
                break String::from_utf8(o.data.to_vec())
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
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
    // The reaper kills the session's processes when the gateway dies.
    wait_for_death(pid).await;
    let gw = setup.start().await;
    let rec = record(&gw, &session_id).await;
    assert_eq!(rec.status, "interrupted");
    assert_eq!(rec.reason, "the gateway stopped while the session ran");
    assert!(rec.end_time.is_some());
    assert!(gw.logs().contains("marked interrupted"), "{}", gw.logs());
}

/// An interactive session: requests go in through a channel, events come out.
struct Interactive {
    tx: tokio::sync::mpsc::Sender<pb::ConnectRequest>,
    events: tonic::Streaming<pb::SessionEvent>,
}

fn open(conn: &str, args: &[&str]) -> pb::ConnectRequest {
    pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
            connection: conn.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            terminal: None,
            ..Default::default()
        })),
    }
}

fn input(data: &[u8]) -> pb::ConnectRequest {
    pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Input(data.to_vec())),
    }
}

async fn connect(
    gw: &Gateway,
    token: &str,
    first: pb::ConnectRequest,
) -> Result<Interactive, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(first).await.unwrap();
    let events = gw
        .sessions()
        .await
        .connect(authed(
            token,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await?
        .into_inner();
    Ok(Interactive { tx, events })
}

impl Interactive {
    async fn next(&mut self) -> pb::session_event::Event {
        tokio::time::timeout(Duration::from_secs(30), self.events.message())
            .await
            .expect("no event within 30 s")
            .unwrap()
            .expect("the stream ended")
            .event
            .unwrap()
    }

    /// Reads output until `want` bytes of stdout arrived.
    async fn stdout(&mut self, want: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < want {
            match self.next().await {
                pb::session_event::Event::Output(o) => out.extend(o.data),
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }
}

async fn connect_streams_input_and_output_as_they_come(backend: Backend) {
    use pb::session_event::Event;
    let gw = Gateway::start(backend).await;
    // A line-by-line filter: each answer comes back before the next question is sent.
    create(
        &gw,
        command_connection(
            "upper",
            &[
                "sh",
                "-c",
                "while read -r l; do echo \"> $l\" | tr a-z A-Z; done; exit 7",
            ],
        ),
    )
    .await;
    let mut s = connect(&gw, ADMIN_TOKEN, open("upper", &[])).await.unwrap();
    let id = match s.next().await {
        Event::Started(started) => started.session_id,
        other => panic!("unexpected {other:?}"),
    };
    for (question, answer) in [("hello", "> HELLO\n"), ("second line", "> SECOND LINE\n")] {
        s.tx.send(input(format!("{question}\n").as_bytes()))
            .await
            .unwrap();
        assert_eq!(s.stdout(answer.len()).await, answer.as_bytes());
    }
    s.tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::CloseStdin(pb::CloseStdin {})),
    })
    .await
    .unwrap();
    match s.next().await {
        Event::Exit(exit) => assert_eq!(exit.exit_code, 7),
        other => panic!("unexpected {other:?}"),
    }
    let rec = record(&gw, &id).await;
    assert_eq!(
        (rec.verb.as_str(), rec.status.as_str()),
        ("connect", "done")
    );
    assert_eq!(rec.bytes_in, "hello\nsecond line\n".len() as i64);

    // The recording interleaves input and output in the order they happened.
    let (events, _) = hoop_rs::recording(&gw, ADMIN_TOKEN, &id).await.unwrap();
    use pb::RecordingEventKind as K;
    let kinds: Vec<K> = events
        .iter()
        .map(|e| K::try_from(e.kind).unwrap())
        .filter(|k| matches!(k, K::Stdin | K::Stdout))
        .collect();
    assert_eq!(kinds, [K::Stdin, K::Stdout, K::Stdin, K::Stdout]);

    // Ending the request stream closes stdin too.
    let mut s = connect(&gw, ADMIN_TOKEN, open("upper", &[])).await.unwrap();
    s.tx.send(input(b"bye\n")).await.unwrap();
    drop(s.tx);
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.events.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event
            .unwrap()
        {
            Event::Output(o) => out.extend(o.data),
            Event::Exit(exit) => {
                assert_eq!(exit.exit_code, 7);
                break;
            }
            Event::Started(_) => {}
            Event::Held(h) => panic!("unexpected hold {h:?}"),
        }
    }
    assert_eq!(out, b"> BYE\n");
}

async fn connect_checks_its_first_request_and_access_mode(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut conn = command_connection("noconnect", &["cat"]);
    conn.access_modes = Some(pb::AccessModes {
        connect: Some(false),
        ..Default::default()
    });
    create(&gw, conn).await;
    create(&gw, command_connection("cat", &["cat"])).await;
    assert_status(
        connect(&gw, ADMIN_TOKEN, open("noconnect", &[]))
            .await
            .map(drop),
        Code::FailedPrecondition,
        "connect is disabled on connection `noconnect`: an admin can enable access_modes.connect",
    );
    assert_status(
        connect(&gw, ADMIN_TOKEN, input(b"too early"))
            .await
            .map(drop),
        Code::InvalidArgument,
        "open: the first request must be `open`",
    );
    assert_status(
        connect(&gw, ADMIN_TOKEN, open("", &[])).await.map(drop),
        Code::InvalidArgument,
        "open.connection: required",
    );
    assert_status(
        connect(&gw, ADMIN_TOKEN, open("cat", &["bad\0arg"]))
            .await
            .map(drop),
        Code::InvalidArgument,
        "open.args[0]",
    );
    assert_status(
        connect(&gw, "bad-token", open("cat", &[])).await.map(drop),
        Code::Unauthenticated,
        "",
    );
    // A second `open` ends the session with a clear reason.
    let mut s = connect(&gw, ADMIN_TOKEN, open("cat", &[])).await.unwrap();
    s.tx.send(open("cat", &[])).await.unwrap();
    loop {
        if let pb::session_event::Event::Exit(exit) = s.next().await {
            assert_eq!(exit.reason, "error: the client sent `open` twice");
            break;
        }
    }
}

async fn a_session_past_its_timeout_is_killed(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut conn = command_connection("sleepy", &["sh", "-c", "echo $$; exec sleep 600"]);
    conn.session_timeout = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    create(&gw, conn).await;
    let started = std::time::Instant::now();
    let result = exec(&gw, ADMIN_TOKEN, run("sleepy", b"", &[]))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(result.reason, "session timed out");
    let pid: i32 = String::from_utf8(result.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for_death(pid).await;
    let rec = record(&gw, &result.session_id).await;
    assert_eq!(
        (rec.status.as_str(), rec.reason.as_str()),
        ("killed", "session timed out")
    );
    // The timeout is part of the connection, and out-of-range values are refused.
    let got = gw
        .connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest {
            name: "sleepy".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.session_timeout.unwrap().seconds, 1);
    let mut bad = command_connection("bad", &["true"]);
    bad.session_timeout = Some(prost_types::Duration {
        seconds: 0,
        nanos: 5_000,
    });
    assert_status(
        gw.connections()
            .await
            .create_connection(admin(pb::CreateConnectionRequest {
                connection: Some(bad),
            }))
            .await,
        Code::InvalidArgument,
        "connection.session_timeout: must be between 1s and 7 days",
    );
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

async fn a_slow_client_slows_the_child_down(backend: Backend) {
    const TOTAL: usize = 96 << 20;
    let gw = Gateway::start(backend).await;
    create(
        &gw,
        command_connection("zeros", &["head", "-c", &TOTAL.to_string(), "/dev/zero"]),
    )
    .await;
    let before = peak_rss(gw.pid());
    let mut stream = gw
        .sessions()
        .await
        .exec(admin(run("zeros", b"", &[])))
        .await
        .unwrap()
        .into_inner();
    let id = match stream.message().await.unwrap().unwrap().event.unwrap() {
        pb::session_event::Event::Started(s) => s.session_id,
        other => panic!("unexpected {other:?}"),
    };
    // While the client reads nothing, the gateway stops reading the child: the recording
    // (which holds everything the gateway read) stops growing far below the output size.
    let path = gw.recording_path(&id);
    let stalled = eventually(Duration::from_secs(20), "the output to stall", || {
        let path = path.clone();
        async move {
            let a = std::fs::metadata(&path).ok()?.len();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let b = std::fs::metadata(&path).ok()?.len();
            (a == b && a > 0).then_some(a)
        }
    })
    .await;
    assert!(stalled < 16 << 20, "{stalled} bytes read without a reader");

    // Then the client reads it all; the gateway's memory stays bounded.
    let mut received = 0usize;
    while let Some(ev) = stream.message().await.unwrap() {
        match ev.event.unwrap() {
            pb::session_event::Event::Output(o) => {
                assert!(o.data.iter().all(|b| *b == 0));
                received += o.data.len();
            }
            pb::session_event::Event::Exit(e) => assert_eq!(e.exit_code, 0),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, TOTAL);
    let grown = peak_rss(gw.pid()).saturating_sub(before);
    assert!(
        grown < 48 << 20,
        "gateway peak RSS grew by {grown} bytes for {TOTAL} bytes of output"
    );
    let verified = gw
        .sessions()
        .await
        .verify_session(admin(pb::VerifySessionRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    assert!(std::fs::metadata(&path).unwrap().len() > TOTAL as u64);
}

async fn tiny_writes_to_a_slow_client_keep_the_session(backend: Backend) {
    // Far more messages than bytes: one `write(2)` of one byte each, well under the 1 MiB
    // output window, but many more than a session's queue of agent messages holds if each
    // write stays a message of its own while the client reads nothing; and, sent as they
    // come, more tiny HTTP/2 frames than a client buffers before it calls it a flood
    // (h2's `ENHANCE_YOUR_CALM`).
    const WRITES: usize = 200_000;
    let gw = Gateway::start(backend).await;
    let script = format!(
        "i=0; while [ $i -lt {WRITES} ]; do printf x; i=$((i+1)); done; : > \"$1\"; echo done >&2"
    );
    create(&gw, args_connection("drip", &["sh", "-c", &script, "drip"])).await;
    // The session runs as another user: the marker goes in a directory anyone may write.
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let marker = dir.path().join("finished");
    // A client with a small HTTP/2 window that reads nothing for now: the gateway cannot
    // pass the output on, so everything the agent sends waits inside the gateway.
    let channel = tonic::transport::Endpoint::from_shared(gw.url())
        .unwrap()
        .initial_stream_window_size(Some(64 * 1024))
        .initial_connection_window_size(Some(64 * 1024))
        .connect()
        .await
        .unwrap();
    let mut stream = pb::session_service_client::SessionServiceClient::new(channel)
        .exec(admin(run("drip", b"", &[marker.to_str().unwrap()])))
        .await
        .unwrap()
        .into_inner();
    let id = match stream.message().await.unwrap().unwrap().event.unwrap() {
        pb::session_event::Event::Started(s) => s.session_id,
        other => panic!("unexpected {other:?}"),
    };
    // The program wrote everything (the window is far from full), or the session ended.
    let ended = eventually(Duration::from_secs(60), "the program to finish", || {
        let gw = &gw;
        let (marker, id) = (marker.clone(), id.clone());
        async move {
            if marker.exists() {
                return Some(None);
            }
            let rec = record(gw, &id).await;
            (rec.status != "open").then_some(Some(format!("{} ({})", rec.status, rec.reason)))
        }
    })
    .await;
    assert_eq!(ended, None, "the session ended while its client was slow");
    // Then the client reads: every byte, in order, and the program's own end.
    let mut out = Vec::new();
    let mut exit = None;
    while let Some(ev) = stream.message().await.unwrap() {
        match ev.event.unwrap() {
            pb::session_event::Event::Output(o) if o.stream == pb::OutputStream::Stdout as i32 => {
                out.extend_from_slice(&o.data)
            }
            pb::session_event::Event::Output(o) => assert_eq!(&o.data[..], b"done\n"),
            pb::session_event::Event::Exit(e) => exit = Some(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    let exit = exit.expect("an exit event");
    assert_eq!(exit.exit_code, 0, "{exit:?}");
    assert_eq!(out.len(), WRITES);
    assert!(out.iter().all(|b| *b == b'x'));
    let rec = record(&gw, &id).await;
    assert_eq!(
        (rec.status.as_str(), rec.exit_code),
        ("done", Some(0)),
        "{rec:?}"
    );
    assert_eq!(rec.bytes_out, (WRITES + 5) as i64);
}

impl Interactive {
    /// Reads output until it contains `marker`; returns everything read.
    async fn until(&mut self, marker: &str) -> String {
        let mut out = Vec::new();
        while !String::from_utf8_lossy(&out).contains(marker) {
            match self.next().await {
                pb::session_event::Event::Output(o) => {
                    assert_eq!(o.stream, pb::OutputStream::Stdout as i32);
                    out.extend(o.data);
                }
                pb::session_event::Event::Started(_) => {}
                other => panic!(
                    "unexpected {other:?} before {marker:?}: {:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        String::from_utf8(out).unwrap()
    }
}

async fn connect_on_a_terminal_behaves_like_one(backend: Backend) {
    let gw = Gateway::start(backend).await;
    // `exec cat` at the end: one foreground program, whose own output shows it is running
    // before Ctrl-C is sent (a shell can lose a SIGINT that arrives between two commands).
    let script = "test -t 0 && echo on-a-tty; stty size; read x; echo got:$x; stty size; echo ready; exec cat";
    create(&gw, command_connection("term", &["sh", "-c", script])).await;
    let mut first = open("term", &[]);
    if let Some(pb::connect_request::Request::Open(o)) = &mut first.request {
        o.terminal = Some(pb::TerminalSize { rows: 24, cols: 80 });
    }
    let mut s = connect(&gw, ADMIN_TOKEN, first).await.unwrap();
    let out = s.until("24 80").await;
    assert!(out.contains("on-a-tty"), "{out:?}");
    // The window grows; the next line the program reads sees the new size.
    s.tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Resize(pb::TerminalSize {
            rows: 40,
            cols: 100,
        })),
    })
    .await
    .unwrap();
    s.tx.send(input(b"hello\n")).await.unwrap();
    // The terminal echoes what is typed, as a local one would.
    let out = s.until("ready").await;
    assert!(out.contains("hello\r\n"), "{out:?}");
    assert!(out.contains("got:hello"), "{out:?}");
    assert!(out.contains("40 100"), "{out:?}");
    // `cat` runs once a line comes back twice: the terminal's echo, then cat's copy.
    s.tx.send(input(b"ping\n")).await.unwrap();
    let mut out = String::new();
    while out.matches("ping").count() < 2 {
        out += &s.until("ping").await;
    }
    // Ctrl-C interrupts the foreground program, as on a local terminal.
    s.tx.send(input(b"\x03")).await.unwrap();
    loop {
        if let pb::session_event::Event::Exit(exit) = s.next().await {
            assert_eq!(exit.exit_code, 130, "{exit:?}");
            break;
        }
    }
    assert_status(
        connect(
            &gw,
            ADMIN_TOKEN,
            pb::ConnectRequest {
                request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
                    connection: "term".into(),
                    args: vec![],
                    terminal: Some(pb::TerminalSize { rows: 0, cols: 80 }),
                    ..Default::default()
                })),
            },
        )
        .await
        .map(drop),
        Code::InvalidArgument,
        "open.terminal.rows: must be between 1 and 1000",
    );
}
