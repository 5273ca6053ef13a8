//! The serve loop driven through channels, as a gateway would: sessions' bytes, exit codes,
//! flow control, kills, and that nothing a session starts outlives it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Gateway, Outcome, WAIT, eventually, marker, processes_with};
use hoop_agent::{AgentOptions, INPUT_WINDOW, OUTPUT_CHUNK, OUTPUT_WINDOW};
use hoop_proto::v1::agent_message::Message as Out;

#[tokio::test]
async fn hello_names_the_version_and_host() {
    let gateway = Gateway::start().await;
    assert_eq!(gateway.hello.version, env!("CARGO_PKG_VERSION"));
    assert!(!gateway.hello.hostname.is_empty());
}

#[tokio::test]
async fn output_and_exit_code() {
    let mut gateway = Gateway::start().await;
    gateway
        .start_session(
            "out",
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            &[],
            None,
        )
        .await;
    let outcome = gateway.finish("out").await;
    assert!(outcome.pid.is_some());
    assert_eq!(outcome.stdout(), "out\n");
    assert_eq!(outcome.stderr, b"err\n");
    assert_eq!((outcome.exit_code, outcome.error.as_str()), (3, ""));

    gateway
        .start_session("signal", &["sh", "-c", "kill -9 $$"], &[], None)
        .await;
    assert_eq!(gateway.finish("signal").await.exit_code, 128 + 9);
}

#[tokio::test]
async fn a_program_on_pipes_leads_its_own_process_group() {
    let mut gateway = Gateway::start().await;
    // `kill 0` signals the program's group: the session ends as the program does, not
    // because its supervisor was hit.
    gateway
        .start_session(
            "group",
            &[
                "sh",
                "-c",
                "cut -d' ' -f1,5 /proc/$$/stat; trap 'exit 7' TERM; kill 0; sleep 600",
            ],
            &[],
            None,
        )
        .await;
    let outcome = gateway.finish("group").await;
    let text = outcome.stdout();
    let (pid, group) = text.trim_end().split_once(' ').unwrap();
    assert_eq!(pid, group, "{text:?}");
    assert_eq!((outcome.exit_code, outcome.error.as_str()), (7, ""));
}

#[tokio::test]
async fn programs_that_cannot_start() {
    let mut gateway = Gateway::start().await;
    gateway
        .start_session("missing", &["no-such-program-xyz", "arg"], &[], None)
        .await;
    let outcome = gateway.finish("missing").await;
    assert_eq!(
        outcome.pid, None,
        "no spawned for a program that did not start"
    );
    assert_eq!(
        (outcome.exit_code, outcome.error.as_str()),
        (127, "command not found: no-such-program-xyz")
    );

    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("script");
    std::fs::write(&not_executable, "#!/bin/sh\necho no\n").unwrap();
    let path = not_executable.to_str().unwrap();
    gateway.start_session("denied", &[path], &[], None).await;
    let outcome = gateway.finish("denied").await;
    assert_eq!(
        (outcome.exit_code, outcome.error),
        (126, format!("permission denied: {path}"))
    );

    gateway.start_session("empty", &[], &[], None).await;
    let outcome = gateway.finish("empty").await;
    assert_eq!(
        (outcome.exit_code, outcome.error.as_str()),
        (126, "the session has no command")
    );
}

/// A program is found in the session's own `PATH` (as `execvp` does), a file without a `#!`
/// line runs with the shell, and the program starts clean: only stdin, stdout and stderr
/// open, no signal blocked nor ignored (its supervisor blocks the ones it waits for, and
/// Rust ignores SIGPIPE), its own session. This agent keeps its user, so its supervisors
/// start programs themselves, without an exec helper.
#[tokio::test]
async fn a_program_is_found_in_the_sessions_path_and_starts_clean() {
    use std::os::unix::fs::PermissionsExt;

    let mut gateway = Gateway::start().await;
    let bin = tempfile::tempdir().unwrap();
    let script = |name: &str, text: &str| {
        let path = bin.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("hoop-test-shebang", "#!/bin/sh\necho \"shebang $1\"\n");
    script("hoop-test-plain", "echo \"plain $1\"\n");
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    for (id, program, expected) in [
        ("shebang", "hoop-test-shebang", "shebang arg\n"),
        ("plain", "hoop-test-plain", "plain arg\n"),
    ] {
        gateway
            .start_session(id, &[program, "arg"], &[("PATH", &path)], None)
            .await;
        let outcome = gateway.finish(id).await;
        assert_eq!(
            (outcome.stdout().as_str(), outcome.exit_code),
            (expected, 0),
            "{}",
            outcome.error
        );
    }
    // Not in the agent's PATH, so not found without the session's.
    gateway
        .start_session("elsewhere", &["hoop-test-shebang"], &[], None)
        .await;
    assert_eq!(gateway.finish("elsewhere").await.exit_code, 127);

    // `ls` lists its own descriptors (3 is the listing's).
    gateway
        .start_session("fds", &["ls", "/proc/self/fd"], &[], None)
        .await;
    assert_eq!(gateway.finish("fds").await.stdout(), "0\n1\n2\n3\n");
    gateway
        .start_session(
            "signals",
            &["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
            &[],
            None,
        )
        .await;
    let status = gateway.finish("signals").await.stdout();
    let mask = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split('\t').nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "{status}");
    // The standard signals (1 to 31): glibc's `posix_spawn` leaves its own two internal
    // real-time signals ignored, as in any program it starts.
    assert_eq!(mask("SigIgn:") & 0x7fff_ffff, 0, "{status}");
}

#[tokio::test]
async fn stdin_data_and_close() {
    let mut gateway = Gateway::start().await;
    gateway.start_session("cat", &["cat"], &[], None).await;
    gateway.input("cat", b"hello ").await;
    gateway.input("cat", b"world").await;
    gateway.close_input("cat").await;
    let outcome = gateway.finish("cat").await;
    assert_eq!(outcome.stdout(), "hello world");
    assert_eq!(outcome.input_acked, 11);
    assert_eq!(outcome.exit_code, 0);
}

#[tokio::test]
async fn a_terminal_session() {
    let mut gateway = Gateway::start().await;
    gateway
        .start_session(
            "tty",
            &[
                "sh",
                "-c",
                "tty; stty size; echo TERM=$TERM; read x; stty size; \
                 cut -d' ' -f1,5,6,8 /proc/$$/stat",
            ],
            &[],
            Some((24, 80)),
        )
        .await;
    let mut outcome = Outcome::default();
    gateway.wait_for_output("tty", "TERM=", &mut outcome).await;
    let text = outcome.stdout();
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    assert!(text.contains("24 80\r\n"), "{text:?}");
    assert!(text.contains("TERM=xterm-256color"), "{text:?}");
    gateway.resize("tty", 30, 100).await;
    gateway.input("tty", b"\n").await;
    gateway.close_input("tty").await;
    gateway.finish_into("tty", &mut outcome).await;
    let text = outcome.stdout();
    assert!(text.contains("30 100\r\n"), "{text:?}");
    // The program leads its session and process group, the terminal's foreground group:
    // pid, process group, session and the terminal's foreground group are one number.
    let stat = text.trim_end().rsplit('\n').next().unwrap_or_default();
    let ids: Vec<&str> = stat.split(' ').collect();
    assert_eq!(ids.len(), 4, "{text:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{text:?}");
    assert_eq!(outcome.exit_code, 0);
}

#[tokio::test]
async fn end_of_file_on_a_terminal() {
    let mut gateway = Gateway::start().await;
    gateway
        .start_session("eof", &["cat"], &[], Some((24, 80)))
        .await;
    gateway.input("eof", b"typed\n").await;
    gateway.close_input("eof").await;
    let outcome = gateway.finish("eof").await;
    assert!(outcome.stdout().contains("typed"), "{:?}", outcome.stdout());
    assert_eq!(outcome.exit_code, 0);
}

#[tokio::test]
async fn a_fast_program_s_output_comes_in_large_messages_never_past_the_chunk() {
    const TOTAL: u64 = 8 << 20;
    let mut gateway = Gateway::start().await;
    gateway
        .start_session(
            "fast",
            &["head", "-c", &TOTAL.to_string(), "/dev/zero"],
            &[],
            None,
        )
        .await;
    let (mut total, mut largest, mut messages) = (0u64, 0usize, 0u64);
    loop {
        match gateway.next("fast").await {
            Out::Spawned(_) => {}
            Out::Output(output) => {
                let n = output.data.len();
                assert!(n <= OUTPUT_CHUNK, "a message of {n} bytes");
                largest = largest.max(n);
                total += n as u64;
                messages += 1;
                gateway.ack("fast", n as u64).await;
            }
            Out::Exit(exit) => {
                assert_eq!(exit.exit_code, 0, "{exit:?}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(total, TOTAL);
    // Reads go on while the pipe has data: a program that writes faster than the gateway
    // takes fills messages past a single read's 16 KiB (and the 32 KiB reads of before).
    assert!(
        largest > 32 * 1024,
        "largest message {largest} bytes, {messages} messages"
    );
}

#[tokio::test]
async fn output_waits_for_acknowledgements() {
    const TOTAL: u64 = 5_000_000;
    let mut gateway = Gateway::start().await;
    gateway
        .start_session(
            "big",
            &["head", "-c", &TOTAL.to_string(), "/dev/zero"],
            &[],
            None,
        )
        .await;
    // Without acknowledgements, exactly a window of output comes, then nothing.
    let mut unacked = 0u64;
    while unacked < OUTPUT_WINDOW {
        match gateway.next("big").await {
            Out::Spawned(_) => {}
            Out::Output(output) => unacked += output.data.len() as u64,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(unacked, OUTPUT_WINDOW);
    assert!(
        gateway
            .next_within("big", Duration::from_millis(500))
            .await
            .is_none(),
        "output beyond the window"
    );

    // A stalled session does not hold another one up.
    gateway
        .start_session("other", &["echo", "meanwhile"], &[], None)
        .await;
    assert_eq!(gateway.finish("other").await.stdout(), "meanwhile\n");

    // Acknowledgements resume it, to the end.
    gateway.ack("big", unacked).await;
    let rest = gateway.finish("big").await;
    assert_eq!(unacked + rest.stdout.len() as u64, TOTAL);
    assert_eq!(rest.exit_code, 0);
}

/// The window is the one the gateway asks for in the start: a start that does not say (a
/// gateway older than `output_window`) gets the 1 MiB those gateways took, and one that
/// asks for too much gets at most `MAX_OUTPUT_WINDOW`.
#[tokio::test]
async fn the_output_window_is_the_gateways() {
    for (id, asked, expected) in [
        ("older", 0, hoop_agent::LEGACY_OUTPUT_WINDOW),
        ("greedy", u64::MAX, hoop_agent::MAX_OUTPUT_WINDOW),
        ("small", 1, OUTPUT_CHUNK as u64),
    ] {
        let mut gateway = Gateway::start().await;
        gateway
            .send(hoop_proto::v1::gateway_message::Message::Start(
                hoop_proto::v1::AgentStart {
                    session_id: id.to_owned(),
                    argv: vec![
                        "head".to_owned(),
                        "-c".to_owned(),
                        "100000000".to_owned(),
                        "/dev/zero".to_owned(),
                    ],
                    output_window: asked,
                    ..Default::default()
                },
            ))
            .await;
        let mut unacked = 0u64;
        while unacked < expected {
            match gateway.next(id).await {
                Out::Spawned(_) => {}
                Out::Output(output) => unacked += output.data.len() as u64,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(unacked, expected, "{id}");
        assert!(
            gateway
                .next_within(id, Duration::from_millis(300))
                .await
                .is_none(),
            "{id}: output beyond the window"
        );
        // Dropping the gateway's stream ends the session.
    }
}

#[tokio::test]
async fn acknowledged_input_leaves_the_window() {
    let mut gateway = Gateway::start().await;
    gateway.start_session("wc", &["wc", "-c"], &[], None).await;
    // Four windows' worth, never more than a window unacknowledged, as a gateway sends it.
    let chunk = vec![b'x'; 32 * 1024];
    let total = 4 * INPUT_WINDOW;
    let (mut sent, mut acked) = (0u64, 0u64);
    while sent < total {
        while sent - acked + chunk.len() as u64 > INPUT_WINDOW {
            match gateway.next("wc").await {
                Out::InputAck(ack) => acked += ack.bytes,
                Out::Spawned(_) => {}
                other => panic!("expected an acknowledgement, got {other:?}"),
            }
        }
        gateway.input("wc", &chunk).await;
        sent += chunk.len() as u64;
    }
    gateway.close_input("wc").await;
    let outcome = gateway.finish("wc").await;
    assert_eq!(
        (
            outcome.stdout().trim(),
            outcome.exit_code,
            outcome.error.as_str()
        ),
        (total.to_string().as_str(), 0, "")
    );
    assert_eq!(acked + outcome.input_acked, total);
}

#[tokio::test]
async fn input_beyond_the_window_ends_the_session() {
    let mut gateway = Gateway::start().await;
    gateway
        .start_session("flood", &["sleep", "600"], &[], None)
        .await;
    // `sleep` never reads: a pipe's worth is written and acknowledged, the rest waits.
    let chunk = vec![b'x'; 32 * 1024];
    let chunks = (INPUT_WINDOW + 128 * 1024) / chunk.len() as u64;
    for _ in 0..chunks {
        gateway.input("flood", &chunk).await;
    }
    let outcome = gateway.finish("flood").await;
    assert!(outcome.error.starts_with("protocol error:"), "{outcome:?}");
}

#[tokio::test]
async fn a_kill_leaves_no_process_behind() {
    let mut gateway = Gateway::start().await;
    let marker = marker();
    let script = format!("setsid -f sleep {marker}; echo ready; exec sleep 600");
    gateway
        .start_session("kill", &["sh", "-c", &script], &[], None)
        .await;
    let mut outcome = Outcome::default();
    gateway.wait_for_output("kill", "ready", &mut outcome).await;
    eventually("the escaped sleep runs", || {
        !processes_with(&marker).is_empty()
    })
    .await;
    gateway.kill("kill").await;
    gateway.finish_into("kill", &mut outcome).await;
    assert_eq!(outcome.exit_code, 128 + 9);
    eventually("the escaped sleep is gone", || {
        processes_with(&marker).is_empty()
    })
    .await;
}

#[tokio::test]
async fn what_a_program_leaves_behind_ends_with_it() {
    let mut gateway = Gateway::start().await;
    let marker = marker();
    let script = format!("setsid -f sleep {marker}; echo ready; read x");
    gateway
        .start_session("leave", &["sh", "-c", &script], &[], None)
        .await;
    let mut outcome = Outcome::default();
    gateway
        .wait_for_output("leave", "ready", &mut outcome)
        .await;
    eventually("the escaped sleep runs", || {
        !processes_with(&marker).is_empty()
    })
    .await;
    gateway.input("leave", b"\n").await;
    gateway.finish_into("leave", &mut outcome).await;
    assert_eq!(outcome.exit_code, 0);
    eventually("the escaped sleep is gone", || {
        processes_with(&marker).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_gateway_that_goes_away_takes_every_session_with_it() {
    let mut gateway = Gateway::start().await;
    let markers = [marker(), marker()];
    for (i, marker) in markers.iter().enumerate() {
        let id = format!("s{i}");
        let script = format!("setsid -f sleep {marker}; echo ready; exec sleep 600");
        gateway
            .start_session(
                &id,
                &["sh", "-c", &script],
                &[],
                (i == 1).then_some((24, 80)),
            )
            .await;
        let mut outcome = Outcome::default();
        gateway.wait_for_output(&id, "ready", &mut outcome).await;
    }
    for marker in &markers {
        eventually("the escaped sleep runs", || {
            !processes_with(marker).is_empty()
        })
        .await;
    }
    gateway.hang_up();
    gateway
        .served()
        .await
        .expect("an end of the stream is no error");
    for marker in &markers {
        eventually("the escaped sleep is gone", || {
            processes_with(marker).is_empty()
        })
        .await;
    }
}

#[tokio::test]
async fn a_session_never_runs_twice() {
    let mut gateway = Gateway::start().await;
    gateway.start_session("dup", &["cat"], &[], None).await;
    assert!(matches!(gateway.next("dup").await, Out::Spawned(_)));
    gateway
        .start_session("dup", &["echo", "second"], &[], None)
        .await;
    match gateway.next("dup").await {
        Out::Exit(exit) => {
            assert_eq!(exit.exit_code, 126);
            assert!(exit.error.contains("already running"), "{}", exit.error);
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    // The first one runs on.
    gateway.input("dup", b"first").await;
    gateway.close_input("dup").await;
    let outcome = gateway.finish("dup").await;
    assert_eq!((outcome.stdout().as_str(), outcome.exit_code), ("first", 0));
}

#[tokio::test]
async fn a_fixed_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::with(AgentOptions {
        working_dir: Some(dir.path().to_path_buf()),
        ..common::options()
    })
    .await;
    gateway.start_session("pwd", &["pwd"], &[], None).await;
    let outcome = gateway.finish("pwd").await;
    assert_eq!(outcome.stdout().trim_end(), dir.path().to_str().unwrap());
    assert!(dir.path().is_dir(), "a fixed working directory stays");
}

#[tokio::test]
async fn a_fresh_working_directory_per_session() {
    let mut gateway = Gateway::start().await;
    gateway
        .start_session(
            "fresh",
            &[
                "sh",
                "-c",
                "pwd; ls -A | wc -l; echo left > file; stat -c %a .",
            ],
            &[],
            None,
        )
        .await;
    let outcome = gateway.finish("fresh").await;
    let text = outcome.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    assert_eq!(lines[1..], ["0", "700"], "{text:?}");
    let dir = std::path::Path::new(lines[0]);
    assert!(dir.ends_with("fresh"), "{text:?}");
    assert!(
        !dir.exists(),
        "the session's directory is removed with its files"
    );
}

#[tokio::test]
async fn options_are_checked() {
    let err = hoop_agent::Agent::new(&AgentOptions {
        working_dir: Some("/no/such/dir".into()),
        ..common::options()
    })
    .unwrap_err();
    assert!(err.to_string().contains("is not a directory"), "{err}");
    if common::is_root() {
        let err = hoop_agent::Agent::new(&AgentOptions {
            run_as: Some("no-such-user-xyz".to_owned()),
            ..common::options()
        })
        .unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
    }
}

#[tokio::test]
async fn many_sessions_at_once() {
    let mut gateway = Gateway::start().await;
    for i in 0..20 {
        gateway
            .start_session(
                &format!("m{i}"),
                &["sh", "-c", &format!("echo {i}")],
                &[],
                None,
            )
            .await;
    }
    for i in 0..20 {
        let outcome = tokio::time::timeout(WAIT, gateway.finish(&format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(outcome.stdout(), format!("{i}\n"));
    }
}

#[tokio::test]
async fn a_failed_stream_is_an_error_and_ends_every_session() {
    let agent = hoop_agent::Agent::new(&common::options()).unwrap();
    let (tx, incoming) = tokio::sync::mpsc::channel::<Result<_, String>>(4);
    let (outgoing, mut rx) = tokio::sync::mpsc::channel(64);
    let serve = tokio::spawn(async move {
        agent
            .serve(
                tokio_stream::wrappers::ReceiverStream::new(incoming),
                outgoing,
            )
            .await
    });
    let marker = marker();
    let script = format!("setsid -f sleep {marker}; exec sleep 600");
    tx.send(Ok(hoop_proto::v1::GatewayMessage {
        message: Some(hoop_proto::v1::gateway_message::Message::Start(
            hoop_proto::v1::AgentStart {
                session_id: "s".to_owned(),
                argv: vec!["sh".to_owned(), "-c".to_owned(), script],
                ..Default::default()
            },
        )),
    }))
    .await
    .unwrap();
    // hello, then spawned.
    for _ in 0..2 {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
    }
    eventually("the escaped sleep runs", || {
        !processes_with(&marker).is_empty()
    })
    .await;
    tx.send(Err("connection reset".to_owned())).await.unwrap();
    let err = tokio::time::timeout(WAIT, serve)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the gateway's stream failed: connection reset"
    );
    eventually("the escaped sleep is gone", || {
        processes_with(&marker).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_session_that_keeps_forking_is_ended_whole() {
    let mut gateway = Gateway::start().await;
    let marker = marker();
    // A loop that keeps escaping sleeps into sessions of their own, while the kill runs.
    let script = format!(
        "setsid -f sh -c 'while :; do setsid -f sleep {marker}; done'; echo ready; exec sleep 600"
    );
    gateway
        .start_session("forky", &["sh", "-c", &script], &[], None)
        .await;
    let mut outcome = Outcome::default();
    gateway
        .wait_for_output("forky", "ready", &mut outcome)
        .await;
    eventually("escaped sleeps pile up", || {
        processes_with(&marker).len() >= 20
    })
    .await;
    gateway.kill("forky").await;
    gateway.finish_into("forky", &mut outcome).await;
    assert_eq!(outcome.exit_code, 128 + 9);
    eventually("every escaped sleep is gone", || {
        processes_with(&marker).is_empty()
    })
    .await;
}
