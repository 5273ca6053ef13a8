//! Several gateways on one PostgreSQL database behave as one: each has an instance id and a
//! lease; sessions belong to the instance that runs them; kills, approvals and revocations
//! reach the owner through the event log; a gateway that starts leaves live gateways'
//! sessions alone, and the sessions of a gateway that died are settled once its lease
//! expires. PostgreSQL only (several gateways need a shared server database): each test
//! prints that it was skipped when `HOOP_TEST_POSTGRES_URL` is unset.

use std::time::{Duration, Instant};

use hoop_rs::{
    Backend, Gateway, Setup, admin, assert_status, authed, command_connection, eventually, pb,
};
use pb::session_event::Event;
use tonic::Code;

/// Every gateway of a test shares the database and so its secrets: one key for all.
const SHARED: &str = "secret_key = \"gateways-e2e-shared-secret-key-0123456789\"\n";
/// How long one step may take.
const STEP: Duration = Duration::from_secs(30);
/// The bound the design sets on approvals, revocations and kills across gateways.
const ONE_SECOND: Duration = Duration::from_secs(1);

macro_rules! postgres_only {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                match hoop_rs::Backend::postgres().await {
                    Some(backend) => super::$name::run(backend).await,
                    None => eprintln!("skipped: HOOP_TEST_POSTGRES_URL is unset"),
                }
            }
        )*
    };
}

mod tests {
    postgres_only!(
        starting_a_gateway_leaves_live_gateways_sessions_alone,
        a_second_gateway_with_a_running_gateways_instance_id_is_refused,
        kill_session_through_b_ends_a_session_running_on_a,
        held_on_a_and_approved_through_b_runs_within_a_second,
        a_grant_revoked_through_b_ends_its_session_on_a_within_a_second,
        a_killed_gateways_sessions_are_interrupted_once_its_lease_expires,
        gateways_list_shows_instances_leases_and_sessions,
        a_session_recorded_on_a_replays_and_verifies_through_b,
        slack_posts_each_review_once_and_another_gateway_takes_over,
    );
}

/// A gateway on `backend`'s database named `id`, with a lease of `lease`, and `toml` (top
/// level keys first, then tables).
fn gateway(backend: &Backend, id: &str, lease: &str, toml: &str) -> Setup {
    Setup::new(backend.clone()).with_toml(&format!(
        "{SHARED}instance_id = \"{id}\"\ninstance_lease = \"{lease}\"\n{toml}"
    ))
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

async fn session(gw: &Gateway, id: &str) -> pb::Session {
    gw.sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: id.to_owned() }))
        .await
        .unwrap()
        .into_inner()
}

/// The `session.closed` events of session `id` in the log.
async fn closed_events(gw: &Gateway, id: &str) -> usize {
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = gw
            .events()
            .await
            .list_events(admin(pb::ListEventsRequest {
                after_id: after,
                types: vec!["session.closed".into()],
                page_size: 1000,
            }))
            .await
            .unwrap()
            .into_inner();
        n += page
            .events
            .iter()
            .filter(|e| {
                e.data
                    .as_ref()
                    .and_then(|d| d.fields.get("session_id"))
                    .and_then(|v| match &v.kind {
                        Some(prost_types::value::Kind::StringValue(s)) => Some(s.as_str()),
                        _ => None,
                    })
                    == Some(id)
            })
            .count();
        if page.next_after_id == after {
            return n;
        }
        after = page.next_after_id;
    }
}

/// Starts `sleep` on `gw` as admin: the stream, the session id and the program's pid.
async fn start_sleepy(gw: &Gateway) -> (tonic::Streaming<pb::SessionEvent>, String, i32) {
    let mut stream = gw
        .sessions()
        .await
        .exec(admin(pb::ExecRequest {
            connection: "sleepy".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut session_id = String::new();
    let pid = loop {
        let ev = tokio::time::timeout(STEP, stream.message())
            .await
            .expect("the session did not start")
            .unwrap()
            .unwrap();
        match ev.event.unwrap() {
            Event::Started(s) => session_id = s.session_id,
            Event::Output(o) => {
                break String::from_utf8(o.data.to_vec())
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    (stream, session_id, pid)
}

fn sleepy() -> pb::Connection {
    command_connection("sleepy", &["sh", "-c", "echo $$; exec sleep 600"])
}

/// The rest of a session's stream: its exit.
async fn exit_of(stream: &mut tonic::Streaming<pb::SessionEvent>) -> pb::SessionExit {
    loop {
        let ev = tokio::time::timeout(STEP, stream.message())
            .await
            .expect("the session did not end")
            .unwrap()
            .expect("the stream ended without an exit");
        if let Some(Event::Exit(exit)) = ev.event {
            return exit;
        }
    }
}

async fn wait_for_death(pid: i32) {
    eventually(STEP, "the session's program to die", || async {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        stat.is_none_or(|s| s.split_whitespace().nth(2) == Some("Z"))
            .then_some(())
    })
    .await;
}

mod starting_a_gateway_leaves_live_gateways_sessions_alone {
    use super::*;

    pub(crate) async fn run(backend: Backend) {
        let a = gateway(&backend, "gw-a", "15s", "").start().await;
        create(&a, sleepy()).await;
        let (mut stream, id, pid) = start_sleepy(&a).await;
        assert_eq!(session(&a, &id).await.status, "open");

        // C starts (and settles what gateways that are gone left open) while A runs it.
        let c = gateway(&backend, "gw-c", "15s", "").start().await;
        let seen = session(&c, &id).await;
        assert_eq!(seen.status, "open", "{seen:?}");
        assert_eq!(closed_events(&c, &id).await, 0);
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the program still runs"
        );
        // A gateway restarting with another data dir but on the same database, again.
        let c = c.stop().await.start().await;
        assert_eq!(session(&c, &id).await.status, "open");

        // It still runs on A: input reaches the end of it as before, and A ends it.
        a.sessions()
            .await
            .kill_session(admin(pb::KillSessionRequest { id: id.clone() }))
            .await
            .unwrap();
        let exit = exit_of(&mut stream).await;
        assert_eq!(exit.reason, "killed by admin");
        wait_for_death(pid).await;
        assert_eq!(closed_events(&c, &id).await, 1);
    }
}

mod a_second_gateway_with_a_running_gateways_instance_id_is_refused {
    use super::*;

    pub(crate) async fn run(backend: Backend) {
        let a = gateway(&backend, "gw-a", "15s", "").start().await;
        create(&a, sleepy()).await;
        let (_stream, id, pid) = start_sleepy(&a).await;

        // Another gateway (its own data dir) configured with A's instance_id: refused
        // before it touches anything, however fresh A's lease.
        let (code, stderr) = gateway(&backend, "gw-a", "15s", "").failed_start(&[]).await;
        assert_ne!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains("another gateway is running with instance_id `gw-a`"),
            "{stderr}"
        );
        assert_eq!(session(&a, &id).await.status, "open");
        assert_eq!(closed_events(&a, &id).await, 0);
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

        // A crashes: its claim ended with its connection, so it starts again at once,
        // well within its 15 s lease, and settles what its previous run left open.
        let restarted_at = Instant::now();
        let a = a.crash().await.start().await;
        assert!(restarted_at.elapsed() < Duration::from_secs(15));
        wait_for_death(pid).await;
        let settled = session(&a, &id).await;
        assert_eq!(settled.status, "interrupted", "{settled:?}");
        assert!(
            a.logs()
                .contains("restarted within its previous run's lease"),
            "{}",
            a.logs()
        );
    }
}

mod kill_session_through_b_ends_a_session_running_on_a {
    use super::*;

    pub(crate) async fn run(backend: Backend) {
        let a = gateway(&backend, "gw-a", "15s", "").start().await;
        let b = gateway(&backend, "gw-b", "15s", "").start().await;
        create(&a, sleepy()).await;
        let bob = b.user_with_token("bob", &["dev"]).await;
        let (mut stream, id, pid) = start_sleepy(&a).await;

        // Someone else's session: bob may not even see it, through any gateway.
        assert_status(
            b.sessions()
                .await
                .kill_session(authed(&bob, pb::KillSessionRequest { id: id.clone() }))
                .await,
            Code::NotFound,
            "not found",
        );
        assert_eq!(session(&a, &id).await.status, "open");

        let asked = Instant::now();
        let killed = b
            .sessions()
            .await
            .kill_session(admin(pb::KillSessionRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner();
        let took = asked.elapsed();
        eprintln!("killed through B after {took:?}");
        assert_eq!(killed.status, "killed", "{killed:?}");
        assert_eq!(killed.reason, "killed by admin");
        assert!(took < ONE_SECOND, "the kill took {took:?}");
        let exit = exit_of(&mut stream).await;
        assert_eq!(exit.reason, "killed by admin");
        wait_for_death(pid).await;
        assert_eq!(closed_events(&b, &id).await, 1);

        // Ended: a second kill through either gateway says so.
        assert_status(
            b.sessions()
                .await
                .kill_session(admin(pb::KillSessionRequest { id: id.clone() }))
                .await,
            Code::FailedPrecondition,
            "has already ended (status killed)",
        );
    }
}

/// A connection running `cat` whose sessions need approval by group `dba`.
fn reviewed(name: &str) -> pb::Connection {
    let mut conn = command_connection(name, &["cat"]);
    conn.reviewers = vec!["dba".into()];
    conn
}

mod held_on_a_and_approved_through_b_runs_within_a_second {
    use super::*;

    pub(crate) async fn run(backend: Backend) {
        let a = gateway(&backend, "gw-a", "15s", "").start().await;
        let b = gateway(&backend, "gw-b", "15s", "").start().await;
        create(&a, reviewed("pg")).await;
        let alice = a.user_with_token("alice", &["dev"]).await;
        let bob = a.user_with_token("bob", &["dba"]).await;

        // Several in a row: one fast release could be luck of the poll's timing.
        for round in 0..3 {
            let mut stream = a
                .sessions()
                .await
                .exec(authed(
                    &alice,
                    pb::ExecRequest {
                        connection: "pg".into(),
                        input: format!("hello {round}\n").into_bytes(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            let review = loop {
                let ev = tokio::time::timeout(STEP, stream.message())
                    .await
                    .expect("no held event")
                    .unwrap()
                    .unwrap();
                match ev.event.unwrap() {
                    Event::Started(_) => {}
                    Event::Held(h) => break h.review_id,
                    other => panic!("unexpected {other:?}"),
                }
            };
            let asked = Instant::now();
            b.reviews()
                .await
                .approve_review(authed(
                    &bob,
                    pb::ApproveReviewRequest {
                        id: review.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap();
            let ev = tokio::time::timeout(STEP, stream.message())
                .await
                .expect("the approved session did not go on")
                .unwrap()
                .expect("the stream ended");
            let output = match ev.event.unwrap() {
                Event::Output(o) => o.data,
                other => panic!("unexpected {other:?}"),
            };
            let took = asked.elapsed();
            eprintln!("round {round}: approved through B, released on A after {took:?}");
            assert_eq!(output, format!("hello {round}\n").into_bytes());
            assert!(took < ONE_SECOND, "round {round}: released after {took:?}");
            assert_eq!(exit_of(&mut stream).await.exit_code, 0);
        }
    }
}

mod a_grant_revoked_through_b_ends_its_session_on_a_within_a_second {
    use super::*;

    pub(crate) async fn run(backend: Backend) {
        let a = gateway(&backend, "gw-a", "15s", "").start().await;
        let b = gateway(&backend, "gw-b", "15s", "").start().await;
        create(&a, reviewed("pg")).await;
        let alice = a.user_with_token("alice", &["dev"]).await;
        let bob = a.user_with_token("bob", &["dba"]).await;

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(pb::ConnectRequest {
            request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
                connection: "pg".into(),
                access_duration: Some(prost_types::Duration {
                    seconds: 300,
                    nanos: 0,
                }),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut events = a
            .sessions()
            .await
            .connect(authed(
                &alice,
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .await
            .unwrap()
            .into_inner();
        let mut next = async || {
            tokio::time::timeout(STEP, events.message())
                .await
                .expect("no session event in time")
                .unwrap()
                .map(|e| e.event.unwrap())
        };
        let review = loop {
            match next().await.expect("ended before held") {
                Event::Started(_) => {}
                Event::Held(h) => break h.review_id,
                other => panic!("unexpected {other:?}"),
            }
        };
        b.reviews()
            .await
            .approve_review(authed(
                &bob,
                pb::ApproveReviewRequest {
                    id: review.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        tx.send(pb::ConnectRequest {
            request: Some(pb::connect_request::Request::Input(b"hello\n".to_vec())),
        })
        .await
        .unwrap();
        let mut out = Vec::new();
        while out != b"hello\n" {
            match next().await.expect("the session ended") {
                Event::Output(o) => out.extend(o.data),
                other => panic!("unexpected {other:?}"),
            }
        }

        let asked = Instant::now();
        b.reviews()
            .await
            .revoke_review(authed(
                &bob,
                pb::RevokeReviewRequest {
                    id: review.clone(),
                    reason: "done".into(),
                },
            ))
            .await
            .unwrap();
        let exit = loop {
            match next().await.expect("the stream ended without an exit") {
                Event::Exit(exit) => break exit,
                Event::Output(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        };
        let took = asked.elapsed();
        eprintln!("revoked through B, ended on A after {took:?}");
        assert!(took < ONE_SECOND, "ended {took:?} after the revocation");
        assert!(
            exit.reason.contains(&format!(
                "access review {review} ended: revoked by bob: done"
            )),
            "{exit:?}"
        );
    }
}

mod a_killed_gateways_sessions_are_interrupted_once_its_lease_expires {
    use super::*;

    pub(crate) async fn run(backend: Backend) {
        let a = gateway(&backend, "gw-a", "2s", "").start().await;
        let b = gateway(&backend, "gw-b", "2s", "").start().await;
        create(&a, sleepy()).await;
        let (_stream, id, pid) = start_sleepy(&a).await;

        let killed_at = Instant::now();
        drop(a.crash().await);
        // The reaper kills the session's program when its gateway dies.
        wait_for_death(pid).await;
        // A's lease has not run out yet: its session is still open.
        let seen = session(&b, &id).await;
        if killed_at.elapsed() < Duration::from_millis(1300) {
            assert_eq!(seen.status, "open", "{seen:?}");
        }

        // B settles it once the lease has expired (B looks at every renewal of its own).
        let settled = eventually(STEP, "B to settle A's session", || async {
            let s = session(&b, &id).await;
            (s.status != "open").then_some(s)
        })
        .await;
        assert_eq!(settled.status, "interrupted", "{settled:?}");
        assert!(
            settled
                .reason
                .starts_with("the gateway stopped while the session ran (gateway instance `gw-a`: its lease expired at "),
            "{settled:?}"
        );
        assert!(killed_at.elapsed() >= Duration::from_millis(1300));
        assert_eq!(closed_events(&b, &id).await, 1);
        assert!(b.logs().contains("marked interrupted"), "{}", b.logs());
        let listed = instances(&b, hoop_rs::ADMIN_TOKEN).await;
        assert_eq!(listed[0]["id"], "gw-a");
        assert_eq!(listed[0]["state"], "expired", "{listed:?}");
        assert_eq!(listed[0]["openSessions"], 0, "{listed:?}");
    }
}

/// `hoop gateways list -o json` through `gw` as `token`: the instances by id.
async fn instances(gw: &Gateway, token: &str) -> Vec<serde_json::Value> {
    let out = gw
        .cli(Some(token), &["-o", "json", "gateways", "list"])
        .await;
    out.json()["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

mod gateways_list_shows_instances_leases_and_sessions {
    use super::*;

    pub(crate) async fn run(backend: Backend) {
        let a = gateway(&backend, "gw-a", "15s", "").start().await;
        let b = gateway(&backend, "gw-b", "15s", "").start().await;
        create(&a, sleepy()).await;
        let ann = a.user_with_token("ann", &["auditor"]).await;
        let dev = a.user_with_token("dev", &["dev"]).await;
        let (_stream, id, _pid) = start_sleepy(&a).await;

        let listed = instances(&b, &ann).await;
        let ids: Vec<&str> = listed.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["gw-a", "gw-b"], "{listed:?}");
        for i in &listed {
            assert_eq!(i["state"], "live", "{i}");
            let age = i["leaseAge"].as_str().unwrap().trim_end_matches('s');
            assert!(age.parse::<f64>().unwrap() < 15.0, "{i}");
            assert!(
                i["listen"].as_str().unwrap().starts_with("127.0.0.1:"),
                "{i}"
            );
        }
        assert_eq!(listed[0]["openSessions"], 1, "{listed:?}");
        assert_eq!(listed[1]["openSessions"], 0, "no sessions: {listed:?}");
        assert_eq!(listed[1]["current"], true);
        // The table says which gateway answered.
        let table = b.cli(Some(&ann), &["gateways", "list"]).await;
        assert!(table.ok().contains("gw-b (this one)"), "{table:?}");

        // Not for everyone.
        let denied = b.cli(Some(&dev), &["gateways", "list"]).await;
        assert!(
            denied.err().contains("PERMISSION_DENIED")
                || denied.err().contains("needs group `admin` or `auditor`"),
            "{denied:?}"
        );

        // Stopped gracefully: `stopped`, and its lease is over.
        a.sessions()
            .await
            .kill_session(admin(pb::KillSessionRequest { id }))
            .await
            .unwrap();
        let _ = a.stop().await;
        let listed = instances(&b, &ann).await;
        assert_eq!(listed[0]["state"], "stopped", "{listed:?}");
    }
}

mod a_session_recorded_on_a_replays_and_verifies_through_b {
    use super::*;
    use sea_orm::ConnectionTrait as _;

    pub(crate) async fn run(backend: Backend) {
        let db = "recordings = \"database\"\n";
        let a = gateway(&backend, "gw-a", "15s", db).start().await;
        let b = gateway(&backend, "gw-b", "15s", db).start().await;
        create(
            &a,
            command_connection("sh", &["sh", "-c", "echo hello; echo oops >&2; exit 3"]),
        )
        .await;
        let ran = hoop_rs::exec(
            &a,
            hoop_rs::ADMIN_TOKEN,
            pb::ExecRequest {
                connection: "sh".into(),
                input: b"typed\n".to_vec(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(ran.exit_code, Some(3));
        let id = ran.session_id;
        // No file on either gateway: the recording is in the database.
        assert!(!a.recording_path(&id).exists());

        // Through B: replayed exactly as the user saw it, and verified.
        let (events, error) = hoop_rs::recording(&b, hoop_rs::ADMIN_TOKEN, &id)
            .await
            .unwrap();
        assert!(error.is_none(), "{error:?}");
        let data = |kind: pb::RecordingEventKind| -> Vec<u8> {
            events
                .iter()
                .filter(|e| e.kind == kind as i32)
                .flat_map(|e| e.data.clone())
                .collect()
        };
        assert_eq!(data(pb::RecordingEventKind::Stdin), b"typed\n");
        assert_eq!(data(pb::RecordingEventKind::Stdout), b"hello\n");
        assert_eq!(data(pb::RecordingEventKind::Stderr), b"oops\n");
        let verified = b
            .sessions()
            .await
            .verify_session(admin(pb::VerifySessionRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner();
        assert!(verified.ok && verified.closed, "{verified:?}");
        assert_eq!(verified.digest, verified.expected_digest);
        // The CLI through B as well.
        let out = b
            .cli(Some(hoop_rs::ADMIN_TOKEN), &["sessions", "replay", &id])
            .await;
        assert_eq!(out.ok(), "hello\n");

        // Someone with access to the database alters a byte of it: B says so.
        let conn = a.setup.database().await;
        conn.execute_unprepared(&format!(
            "UPDATE recording_chunks SET data = overlay(data placing '\\x58'::bytea from \
             length(data) - 2 for 1) WHERE session_id = '{id}' AND seq = 1"
        ))
        .await
        .unwrap();
        let verified = b
            .sessions()
            .await
            .verify_session(admin(pb::VerifySessionRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner();
        assert!(!verified.ok, "{verified:?}");
        assert!(verified.failed_event.is_some(), "{verified:?}");
    }
}

mod slack_posts_each_review_once_and_another_gateway_takes_over {
    use super::*;
    use hoop_rs::slack::FakeSlack;

    const CHANNEL: &str = "C0REVIEWS1";

    /// Asks for a review through `gw` (alice's exec on `pg`, which she then leaves) and
    /// waits until Slack has `posts` review messages in all.
    async fn review(gw: &Gateway, alice: &str, fake: &FakeSlack, posts: usize) {
        let mut stream = gw
            .sessions()
            .await
            .exec(authed(
                alice,
                pb::ExecRequest {
                    connection: "pg".into(),
                    input: format!("select {posts};\n").into_bytes(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        loop {
            let ev = tokio::time::timeout(STEP, stream.message())
                .await
                .expect("no held event")
                .unwrap()
                .unwrap();
            if let Some(Event::Held(_)) = ev.event {
                break;
            }
        }
        fake.wait(STEP, "the review's message", |f| {
            (f.ok_calls("chat.postMessage").len() >= posts).then_some(())
        })
        .await;
    }

    pub(crate) async fn run(backend: Backend) {
        let fake = FakeSlack::start().await;
        let toml = fake.settings_toml();
        let a = gateway(&backend, "gw-a", "15s", &toml).start().await;
        let b = gateway(&backend, "gw-b", "15s", &toml).start().await;
        create(&a, reviewed("pg")).await;
        a.plugins()
            .await
            .update_plugin_config(admin(pb::UpdatePluginConfigRequest {
                connection: "pg".into(),
                plugin: "slack".into(),
                config: hoop_rs::config(
                    serde_json::json!({"channels": [CHANNEL], "notify": ["reviews"]}),
                ),
            }))
            .await
            .unwrap();
        let alice = a.user_with_token("alice", &["dev"]).await;

        // Reviews asked for through either gateway: each posted once, in order (one
        // gateway sends; had both sent, the first review would have two messages by the
        // time the second has one).
        review(&a, &alice, &fake, 1).await;
        review(&b, &alice, &fake, 2).await;
        let posted = fake.ok_calls("chat.postMessage");
        assert_eq!(posted.len(), 2, "{posted:#?}");
        assert!(posted.iter().all(|c| c.body["channel"] == CHANNEL));
        let a_sends = a.logs().contains("this gateway sends to Slack");
        let b_sends = b.logs().contains("this gateway sends to Slack");
        assert!(a_sends != b_sends, "exactly one sender");

        // The sender stops: the other takes over and posts what comes next, once.
        let (sender, other) = if a_sends { (a, b) } else { (b, a) };
        let _ = sender.stop().await;
        review(&other, &alice, &fake, 3).await;
        assert_eq!(fake.ok_calls("chat.postMessage").len(), 3);
        assert!(other.logs().contains("this gateway sends to Slack"));
    }
}
