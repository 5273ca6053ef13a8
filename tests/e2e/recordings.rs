//! The audit plugin's recordings: what a session leaves behind, replaying it, verifying it,
//! and what happens when someone changes it.

use std::time::Duration;

use hoop_rs::{
    ADMIN_TOKEN, Backend, Gateway, admin, args_connection, assert_status, authed,
    command_connection, e2e, eventually, exec, pb, recording,
};
use tonic::Code;

e2e!(
    a_session_is_recorded_as_the_user_saw_it,
    changing_a_recorded_byte_is_detected_and_named,
    cutting_off_the_end_of_a_recording_is_detected,
    recordings_are_visible_like_sessions,
    a_session_that_cannot_be_recorded_does_not_run,
    a_crash_leaves_a_verifiable_recording_and_no_process,
    a_finished_session_without_its_final_digest_does_not_verify,
    a_connection_without_its_audit_row_still_records_its_sessions,
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

fn run(conn: &str, input: &[u8], args: &[&str]) -> pb::ExecRequest {
    pb::ExecRequest {
        connection: conn.into(),
        input: input.to_vec(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn verify(gw: &Gateway, token: &str, id: &str) -> pb::VerifySessionResponse {
    gw.sessions()
        .await
        .verify_session(authed(
            token,
            pb::VerifySessionRequest { id: id.to_owned() },
        ))
        .await
        .unwrap()
        .into_inner()
}

fn kind(e: &pb::RecordingEvent) -> pb::RecordingEventKind {
    pb::RecordingEventKind::try_from(e.kind).unwrap()
}

fn data_of(events: &[pb::RecordingEvent], k: pb::RecordingEventKind) -> Vec<u8> {
    events
        .iter()
        .filter(|e| kind(e) == k)
        .flat_map(|e| e.data.clone())
        .collect()
}

async fn a_session_is_recorded_as_the_user_saw_it(backend: Backend) {
    use pb::RecordingEventKind as K;
    let gw = Gateway::start(backend).await;
    let mut conn = args_connection("sh", &["sh", "-c"]);
    conn.env.insert("DB_PASSWORD".into(), "s3cr3t-value".into());
    create(&gw, conn).await;
    let script = "cat; printf 'err\\n' >&2; printf '\\377\\000bin'; exit 4";
    let input = b"typed by the user\n";
    let result = exec(&gw, ADMIN_TOKEN, run("sh", input, &[script]))
        .await
        .unwrap();
    assert_eq!(result.exit_code, Some(4));

    let (events, error) = recording(&gw, ADMIN_TOKEN, &result.session_id)
        .await
        .unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(kind(&events[0]), K::Header);
    assert_eq!(kind(events.last().unwrap()), K::Close);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.index, i as u64);
    }
    let offsets: Vec<_> = events
        .iter()
        .map(|e| {
            let o = e.offset.unwrap();
            (o.seconds, o.nanos)
        })
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert_eq!(data_of(&events, K::Stdin), input);
    assert_eq!(data_of(&events, K::Stdout), result.stdout);
    assert_eq!(data_of(&events, K::Stderr), result.stderr);
    let header: serde_json::Value = serde_json::from_slice(&events[0].data).unwrap();
    assert_eq!(header["user"], "admin");
    assert_eq!(header["connection"], "sh");
    assert_eq!(header["session"], result.session_id.as_str());
    let close: serde_json::Value = serde_json::from_slice(&events.last().unwrap().data).unwrap();
    assert_eq!(close["exit_code"], 4);
    // The connection's secrets are nowhere in the recording's metadata.
    let path = gw.recording_path(&result.session_id);
    let raw = std::fs::read(&path).unwrap();
    // Readable by the gateway's user only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert!(!raw.windows(12).any(|w| w == b"s3cr3t-value"));

    // The session carries the final digest; verify agrees with it.
    let session = gw
        .sessions()
        .await
        .get_session(admin(pb::GetSessionRequest {
            id: result.session_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let digest = session.attributes.get("audit.digest").unwrap();
    assert_eq!(digest.len(), 64);
    assert_eq!(
        session.attributes.get("audit.events").unwrap(),
        &events.len().to_string()
    );
    let verified = verify(&gw, ADMIN_TOKEN, &result.session_id).await;
    assert!(verified.ok, "{verified:?}");
    assert_eq!(&verified.digest, digest);
    assert_eq!(&verified.expected_digest, digest);
    assert_eq!(verified.events, events.len() as u64);
    assert!(verified.closed && !verified.truncated);
}

/// Runs a session whose output is `marker`, and returns its id and the index of the stdout
/// event holding the marker.
async fn recorded_session(gw: &Gateway, marker: &str) -> (String, u64) {
    create(gw, args_connection("echo", &["echo"])).await;
    let result = exec(gw, ADMIN_TOKEN, run("echo", b"", &[marker]))
        .await
        .unwrap();
    let (events, _) = recording(gw, ADMIN_TOKEN, &result.session_id)
        .await
        .unwrap();
    let index = events
        .iter()
        .find(|e| kind(e) == pb::RecordingEventKind::Stdout)
        .unwrap()
        .index;
    (result.session_id, index)
}

async fn changing_a_recorded_byte_is_detected_and_named(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let marker = "balance: 1000 EUR";
    let (id, stdout_index) = recorded_session(&gw, marker).await;
    assert!(verify(&gw, ADMIN_TOKEN, &id).await.ok);

    // Someone with access to the disk turns 1000 into 9000.
    let path = gw.recording_path(&id);
    let mut raw = std::fs::read(&path).unwrap();
    // The last time it is there: the header before the output holds it too, as the args.
    let at = raw
        .windows(marker.len())
        .rposition(|w| w == marker.as_bytes())
        .unwrap();
    raw[at + "balance: ".len()] = b'9';
    std::fs::write(&path, &raw).unwrap();

    let verified = verify(&gw, ADMIN_TOKEN, &id).await;
    assert!(!verified.ok);
    assert_eq!(verified.failed_event, Some(stdout_index), "{verified:?}");
    assert!(
        verified.detail.starts_with("the hash chain is broken"),
        "{verified:?}"
    );
    // Replay gives the events before the altered one, then DATA_LOSS naming it.
    let (events, error) = recording(&gw, ADMIN_TOKEN, &id).await.unwrap();
    assert_eq!(events.len() as u64, stdout_index);
    let error = error.expect("the stream ends in an error");
    assert_eq!(error.code(), Code::DataLoss);
    assert!(
        error.message().contains(&format!("event {stdout_index}")),
        "{error:?}"
    );
}

async fn cutting_off_the_end_of_a_recording_is_detected(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let (id, stdout_index) = recorded_session(&gw, "last words").await;
    let (events, _) = recording(&gw, ADMIN_TOKEN, &id).await.unwrap();
    let close_index = events.last().unwrap().index;
    assert_eq!(close_index, stdout_index + 1);

    // Drop the close event cleanly, as if the recording ended after the output: every
    // remaining record still chains, but the stored final digest is not reached.
    let path = gw.recording_path(&id);
    let raw = std::fs::read(&path).unwrap();
    let close_len = 4 + 4 + 1 + 8 + events.last().unwrap().data.len() + 32;
    std::fs::write(&path, &raw[..raw.len() - close_len]).unwrap();
    let verified = verify(&gw, ADMIN_TOKEN, &id).await;
    assert!(!verified.ok, "{verified:?}");
    assert_eq!(verified.failed_event, Some(close_index), "{verified:?}");
    assert!(
        verified.detail.contains("final digest does not match"),
        "{verified:?}"
    );
    let (replayed, error) = recording(&gw, ADMIN_TOKEN, &id).await.unwrap();
    assert_eq!(replayed.len() as u64, close_index);
    assert_eq!(error.unwrap().code(), Code::DataLoss);

    // A recording that is gone entirely is reported, not silently accepted.
    std::fs::remove_file(&path).unwrap();
    let verified = verify(&gw, ADMIN_TOKEN, &id).await;
    assert!(!verified.ok);
    assert!(verified.detail.contains("missing"), "{verified:?}");
}

async fn recordings_are_visible_like_sessions(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, args_connection("echo", &["echo"])).await;
    let dana = gw.user_with_token("dana", &["dev"]).await;
    let erin = gw.user_with_token("erin", &["dev"]).await;
    let otto = gw.user_with_token("otto", &["auditor"]).await;
    let hers = exec(&gw, &dana, run("echo", b"", &["dana's"]))
        .await
        .unwrap()
        .session_id;
    for token in [dana.as_str(), otto.as_str(), ADMIN_TOKEN] {
        let (events, error) = recording(&gw, token, &hers).await.unwrap();
        assert!(error.is_none() && !events.is_empty());
        assert!(verify(&gw, token, &hers).await.ok);
    }
    // Another user gets "not found", as if it did not exist.
    assert_status(
        recording(&gw, &erin, &hers).await,
        Code::NotFound,
        "not found",
    );
    assert_status(
        gw.sessions()
            .await
            .verify_session(authed(&erin, pb::VerifySessionRequest { id: hers.clone() }))
            .await,
        Code::NotFound,
        "not found",
    );
    assert_status(
        recording(&gw, ADMIN_TOKEN, "").await,
        Code::InvalidArgument,
        "id",
    );
    assert_status(
        recording(&gw, ADMIN_TOKEN, "no-such-session").await,
        Code::NotFound,
        "not found",
    );
}

async fn a_session_that_cannot_be_recorded_does_not_run(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let marker = gw.setup.dir.path().join("ran");
    let script = format!("touch {}", marker.display());
    create(&gw, command_connection("touch", &["sh", "-c", &script])).await;
    // The recordings directory cannot be created: a file is in the way.
    let dir = gw.setup.data_dir().join("recordings");
    if dir.is_dir() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::write(&dir, b"in the way").unwrap();

    let result = exec(&gw, ADMIN_TOKEN, run("touch", b"", &[]))
        .await
        .unwrap();
    assert_eq!(result.exit_code, Some(-1));
    assert!(
        result
            .reason
            .starts_with("plugin audit failed: cannot record the session"),
        "{result:?}"
    );
    assert!(!marker.exists(), "the command ran without being recorded");
    let session = gw
        .sessions()
        .await
        .get_session(admin(pb::GetSessionRequest {
            id: result.session_id,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.status, "denied");
    assert!(gw.logs().contains("cannot complete the session recording"));
}

async fn a_crash_leaves_a_verifiable_recording_and_no_process(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let argv = ["sh", "-c", "echo $$; echo before-the-crash; exec sleep 600"];
    create(&gw, command_connection("sleepy", &argv)).await;
    let mut stream = gw
        .sessions()
        .await
        .exec(admin(run("sleepy", b"", &[])))
        .await
        .unwrap()
        .into_inner();
    let mut id = String::new();
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains("before-the-crash") {
        match stream.message().await.unwrap().unwrap().event.unwrap() {
            pb::session_event::Event::Started(s) => id = s.session_id,
            pb::session_event::Event::Output(o) => out.extend(o.data),
            other => panic!("unexpected {other:?}"),
        }
    }
    let pid: i32 = String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The output reaches the disk on its own, well before the session ends.
    let path = gw.recording_path(&id);
    eventually(
        Duration::from_secs(5),
        "the output to reach the disk",
        || {
            let path = path.clone();
            async move {
                let raw = std::fs::read(&path).ok()?;
                raw.windows(16)
                    .any(|w| w == b"before-the-crash")
                    .then_some(())
            }
        },
    )
    .await;

    let setup = gw.crash().await;
    // The reaper kills the session's processes when the gateway dies.
    eventually(
        Duration::from_secs(10),
        "the session process to die",
        || async move {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            stat.is_none_or(|s| s.split_whitespace().nth(2) == Some("Z"))
                .then_some(())
        },
    )
    .await;

    let gw = setup.start().await;
    let session = gw
        .sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.status, "interrupted");
    let (events, error) = recording(&gw, ADMIN_TOKEN, &id).await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        data_of(&events, pb::RecordingEventKind::Stdout),
        out,
        "what the user saw before the crash is on record"
    );
    let verified = verify(&gw, ADMIN_TOKEN, &id).await;
    assert!(verified.ok, "{verified:?}");
    assert!(!verified.closed);
    assert!(verified.expected_digest.is_empty());
    assert!(
        verified.detail.contains("no final digest is stored"),
        "{verified:?}"
    );
}

async fn get_session(gw: &Gateway, id: &str) -> pb::Session {
    gw.sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: id.to_owned() }))
        .await
        .unwrap()
        .into_inner()
}

/// Removes attribute `key` from the record of session `id`, directly in the database (no API
/// call can).
async fn remove_session_attribute(gw: &Gateway, id: &str, key: &str) {
    use hoop_store::entity::session;
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    let db = gw.setup.database().await;
    let row = session::Entity::find_by_id(id)
        .one(&db)
        .await
        .unwrap()
        .expect("the session's row");
    let mut attributes = row.attributes.clone();
    let removed = attributes.as_object_mut().unwrap().remove(key);
    assert!(removed.is_some(), "no `{key}` on session {id}: {row:?}");
    let mut active = row.into_active_model();
    active.attributes = Set(attributes);
    active.update(&db).await.unwrap();
    db.close().await.unwrap();
}

/// A session that ended (done, or killed) always has its final digest stored by audit; one
/// whose digest is gone from the database does not verify, as events cut off the end of its
/// recording would go unnoticed. (An interrupted one still verifies as far as it goes: see
/// `a_crash_leaves_a_verifiable_recording_and_no_process`.)
async fn a_finished_session_without_its_final_digest_does_not_verify(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, args_connection("echo", &["echo"])).await;
    let mut sleepy = command_connection("sleepy", &["sleep", "600"]);
    sleepy.session_timeout = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    create(&gw, sleepy).await;
    let done = exec(&gw, ADMIN_TOKEN, run("echo", b"", &["on record"]))
        .await
        .unwrap();
    assert_eq!(done.exit_code, Some(0), "{done:?}");
    let killed = exec(&gw, ADMIN_TOKEN, run("sleepy", b"", &[]))
        .await
        .unwrap();
    assert_eq!(killed.reason, "session timed out", "{killed:?}");

    for (id, status) in [(&done.session_id, "done"), (&killed.session_id, "killed")] {
        let session = get_session(&gw, id).await;
        assert_eq!(session.status, status, "{session:?}");
        let stored = session.attributes.get("audit.digest").unwrap().clone();
        let before = verify(&gw, ADMIN_TOKEN, id).await;
        assert!(before.ok, "{before:?}");
        assert_eq!(before.expected_digest, stored);

        remove_session_attribute(&gw, id, "audit.digest").await;
        assert!(
            !get_session(&gw, id)
                .await
                .attributes
                .contains_key("audit.digest")
        );
        let after = verify(&gw, ADMIN_TOKEN, id).await;
        assert!(!after.ok, "{after:?}");
        assert!(
            after
                .detail
                .starts_with("the recording's final digest was never stored"),
            "{after:?}"
        );
        assert!(
            after.detail.contains(&format!("(status {status})")),
            "{after:?}"
        );
        assert!(after.expected_digest.is_empty(), "{after:?}");
        // The chain itself is intact: no event is named, the count and digest are the same.
        assert_eq!(after.failed_event, None, "{after:?}");
        assert_eq!(
            (after.events, after.digest.as_str(), after.closed),
            (before.events, before.digest.as_str(), true)
        );
    }
}

/// `audit` is in every session's chain, whatever the plugin attachment rows say: a
/// connection whose audit row is gone from the database still has its sessions recorded.
async fn a_connection_without_its_audit_row_still_records_its_sessions(backend: Backend) {
    use hoop_store::entity::plugin_attachment::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let gw = Gateway::start(backend).await;
    create(&gw, args_connection("echo", &["echo"])).await;
    // DetachPlugin refuses to detach audit; the row is deleted behind the gateway's back.
    let db = gw.setup.database().await;
    let deleted = Entity::delete_many()
        .filter(Column::ConnectionName.eq("echo"))
        .filter(Column::Plugin.eq("audit"))
        .exec(&db)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected, 1);
    db.close().await.unwrap();

    // The API still shows audit on the connection, active.
    let plugins = gw
        .plugins()
        .await
        .list_connection_plugins(admin(pb::ListConnectionPluginsRequest {
            connection: "echo".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .plugins;
    let audit: Vec<_> = plugins.iter().filter(|p| p.name == "audit").collect();
    assert_eq!(audit.len(), 1, "{plugins:?}");
    assert!(audit[0].active, "{plugins:?}");

    // A session runs and is recorded: replay gives its output, verify agrees with the digest
    // stored with it.
    let result = exec(&gw, ADMIN_TOKEN, run("echo", b"", &["still on record"]))
        .await
        .unwrap();
    assert_eq!(result.exit_code, Some(0), "{result:?}");
    assert_eq!(result.stdout, b"still on record\n");
    let (events, error) = recording(&gw, ADMIN_TOKEN, &result.session_id)
        .await
        .unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(kind(&events[0]), pb::RecordingEventKind::Header);
    assert_eq!(kind(events.last().unwrap()), pb::RecordingEventKind::Close);
    assert_eq!(
        data_of(&events, pb::RecordingEventKind::Stdout),
        result.stdout
    );
    let session = get_session(&gw, &result.session_id).await;
    let digest = session.attributes.get("audit.digest").expect("a digest");
    let verified = verify(&gw, ADMIN_TOKEN, &result.session_id).await;
    assert!(verified.ok, "{verified:?}");
    assert_eq!(&verified.expected_digest, digest);
    assert_eq!(verified.events, events.len() as u64);
}
