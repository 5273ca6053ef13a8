//! Limits (issue 11, part 6): running sessions and pending reviews per user answer
//! RESOURCE_EXHAUSTED saying which limit; ListReviews carries a preview of each input, never
//! the input, and GetReview the whole of it.

use std::time::Duration;

use hoop_rs::{
    ADMIN_TOKEN, Backend, Gateway, Setup, admin, assert_status, authed, command_connection, e2e,
    eventually, exec, pb,
};
use prost::Message as _;
use tonic::Code;

e2e!(
    running_sessions_and_pending_reviews_are_limited_per_user,
    list_reviews_previews_big_inputs_and_get_review_returns_them_whole,
);

const STEP: Duration = Duration::from_secs(30);

async fn create(gw: &Gateway, conn: pb::Connection) {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
}

fn run(conn: &str, input: &[u8]) -> pb::ExecRequest {
    pb::ExecRequest {
        connection: conn.into(),
        input: input.to_vec(),
        ..Default::default()
    }
}

/// Opens an interactive session and reads its `started`: the session is open until `tx`
/// closes.
async fn open(
    gw: &Gateway,
    token: &str,
    conn: &str,
) -> Result<
    (
        tokio::sync::mpsc::Sender<pb::ConnectRequest>,
        tonic::Streaming<pb::SessionEvent>,
        String,
    ),
    tonic::Status,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
            connection: conn.into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut events = tokio::time::timeout(
        STEP,
        gw.sessions().await.connect(authed(
            token,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )),
    )
    .await
    .expect("Connect timed out")?
    .into_inner();
    let first = tokio::time::timeout(STEP, events.message())
        .await
        .expect("no event in time")
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    let pb::session_event::Event::Started(started) = first else {
        panic!("unexpected {first:?}");
    };
    Ok((tx, events, started.session_id))
}

/// Starts an Exec, reads it until it is held, and leaves: the review stays pending.
async fn leave_pending_review(gw: &Gateway, token: &str, req: pb::ExecRequest) -> String {
    use pb::session_event::Event;
    let mut events = gw
        .sessions()
        .await
        .exec(authed(token, req))
        .await
        .unwrap()
        .into_inner();
    loop {
        let event = tokio::time::timeout(STEP, events.message())
            .await
            .expect("no `held` in time")
            .unwrap()
            .expect("the session ended without being held")
            .event
            .unwrap();
        match event {
            Event::Started(_) => {}
            Event::Held(held) => return held.review_id,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn session_status(gw: &Gateway, id: &str) -> String {
    gw.sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn running_sessions_and_pending_reviews_are_limited_per_user(backend: Backend) {
    let setup = Setup::new(backend)
        .with_toml("[limits]\nrunning_sessions_per_user = 2\npending_reviews_per_user = 1\n");
    let gw = setup.start().await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let carol = gw.user_with_token("carol", &["dev"]).await;
    create(&gw, command_connection("cat", &["cat"])).await;

    // Two sessions running: a third, interactive or not, is refused, saying which limit.
    let (first_tx, _first_events, first) = open(&gw, &alice, "cat").await.unwrap();
    let (_second_tx, _second_events, _) = open(&gw, &alice, "cat").await.unwrap();
    assert_status(
        open(&gw, &alice, "cat").await,
        Code::ResourceExhausted,
        "limit running_sessions_per_user reached: user `alice` already has 2 running sessions \
         (at most 2)",
    );
    assert_status(
        exec(&gw, &alice, run("cat", b"x")).await,
        Code::ResourceExhausted,
        "running_sessions_per_user",
    );
    // The CLI says so too.
    let out = gw.cli(Some(&alice), &["exec", "cat", "-i", "x"]).await;
    assert!(
        out.err().contains("running_sessions_per_user")
            && out.err().ends_with("(RESOURCE_EXHAUSTED)"),
        "{out:?}"
    );
    // Others are not limited by alice's sessions.
    let bobs = exec(&gw, &bob, run("cat", b"bob\n")).await.unwrap();
    assert_eq!(bobs.stdout, b"bob\n");
    // A session that ended frees its place.
    drop(first_tx);
    eventually(STEP, "the first session to end", || async {
        (session_status(&gw, &first).await != "open").then_some(())
    })
    .await;
    let again = exec(&gw, &alice, run("cat", b"again\n")).await.unwrap();
    assert_eq!(again.stdout, b"again\n");

    // Pending reviews: one per user here. A second request is refused before it is
    // recorded, for exec and connect alike.
    let mut reviewed = command_connection("pg", &["cat"]);
    reviewed.reviewers = vec!["dba".into()];
    create(&gw, reviewed).await;
    let pending = leave_pending_review(&gw, &carol, run("pg", b"select 1;\n")).await;
    assert_status(
        exec(&gw, &carol, run("pg", b"select 2;\n")).await,
        Code::ResourceExhausted,
        "limit pending_reviews_per_user reached: user `carol` already has 1 pending reviews \
         (at most 1)",
    );
    assert_status(
        open(&gw, &carol, "pg").await,
        Code::ResourceExhausted,
        "pending_reviews_per_user",
    );
    let listed = gw
        .reviews()
        .await
        .list_reviews(admin(pb::ListReviewsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .reviews;
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [pending.as_str()]
    );
    // Once it is decided, carol may ask again.
    gw.reviews()
        .await
        .reject_review(authed(
            &bob,
            pb::RejectReviewRequest {
                id: pending,
                reason: "no".into(),
                group: String::new(),
            },
        ))
        .await
        .unwrap();
    leave_pending_review(&gw, &carol, run("pg", b"select 2;\n")).await;
}

async fn list_reviews_previews_big_inputs_and_get_review_returns_them_whole(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let mut reviewed = command_connection("pg", &["cat"]);
    reviewed.reviewers = vec!["dba".into()];
    create(&gw, reviewed).await;

    // Three 2.6 MB inputs: each list page would be 7.8 MB if inputs were listed whole.
    let big = |n: u8| {
        let mut input = format!("-- dump {n}\n").into_bytes();
        while input.len() < 2_600_000 {
            input.extend_from_slice(b"INSERT INTO t VALUES ('\xc3\xa9t\xc3\xa9', 42);\n");
        }
        input.extend_from_slice(b"-- end\n");
        input
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(leave_pending_review(&gw, &alice, run("pg", &big(n))).await);
    }
    let response = gw
        .reviews()
        .await
        .list_reviews(authed(&bob, pb::ListReviewsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.reviews.len(), 3);
    assert!(
        response.encoded_len() < 16 * 1024,
        "ListReviews answered {} bytes",
        response.encoded_len()
    );
    for review in &response.reviews {
        let n = ids.iter().position(|id| *id == review.id).unwrap();
        let input = big(u8::try_from(n).unwrap());
        assert!(review.input.is_empty());
        assert_eq!(review.input_size, u64::try_from(input.len()).unwrap());
        assert!(review.input_truncated);
        assert!(review.input_preview.len() <= 1024);
        assert!(input.starts_with(&review.input_preview));
        // Cut at a character: the preview is text.
        let preview = std::str::from_utf8(&review.input_preview).unwrap();
        assert!(preview.starts_with(&format!("-- dump {n}\n")), "{preview}");
        let sha = hoop_plugin_review_sha(&input);
        assert_eq!(review.input_sha256, sha);
    }
    // GetReview returns the whole input.
    let whole = gw
        .reviews()
        .await
        .get_review(authed(&bob, pb::GetReviewRequest { id: ids[0].clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(whole.input, big(0));
    assert_eq!(whole.input_size, u64::try_from(big(0).len()).unwrap());

    // The CLI lists them with their size, and shows one whole.
    let out = gw.cli(Some(&bob), &["reviews", "list"]).await;
    let text = out.ok();
    assert!(text.lines().next().unwrap().contains("SIZE"), "{text}");
    for id in &ids {
        let line = text.lines().find(|l| l.starts_with(id.as_str())).unwrap();
        assert!(line.contains("2.5 MiB"), "{line}");
        assert!(line.contains("-- dump"), "{line}");
    }
    let shown = gw.cli(Some(&bob), &["reviews", "get", &ids[0]]).await;
    assert!(shown.ok().contains("-- end"), "the whole input is shown");
    assert!(shown.ok().contains("input_size:"), "{}", &shown.ok()[..500]);
    let json = gw
        .cli(Some(ADMIN_TOKEN), &["-o", "json", "reviews", "list"])
        .await
        .json();
    assert_eq!(json["reviews"].as_array().unwrap().len(), 3);
}

/// Lower-case hex SHA-256, as reviews carry it.
fn hoop_plugin_review_sha(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
