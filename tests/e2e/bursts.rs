//! Bursts: many sessions ending at the same moment are all recorded, and reads go on
//! meanwhile (answered, or refused as retryable, never as an internal error).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hoop_rs::{Backend, Gateway, Setup, admin, command_connection, e2e, pb};
use tonic::Code;

e2e!(sessions_ending_at_once_are_all_settled);

/// Sessions opened, then ended at once.
const SESSIONS: usize = 300;
/// gRPC streams per client connection (under the server's limit on concurrent streams).
const PER_CHANNEL: usize = 50;

/// Every session on `conn`, by id (as the admin, all pages).
async fn sessions_of(
    client: &mut pb::session_service_client::SessionServiceClient<tonic::transport::Channel>,
    conn: &str,
) -> Result<HashMap<String, pb::Session>, tonic::Status> {
    let mut all = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_sessions(admin(pb::ListSessionsRequest {
                connection: conn.to_owned(),
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            }))
            .await?
            .into_inner();
        all.extend(page.sessions.into_iter().map(|s| (s.id.clone(), s)));
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

async fn sessions_ending_at_once_are_all_settled(backend: Backend) {
    // A short wait for a database connection (the default is 10 s): a burst that queues
    // for connections shows within the test's time.
    let gw: Gateway = Setup::new(backend)
        .with_toml("[limits]\nrunning_sessions_per_user = 1000\n")
        .with_toml("[database]\nacquire_timeout = \"100ms\"\n")
        .start()
        .await;
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(command_connection("burst", &["cat"])),
        }))
        .await
        .unwrap();

    // SESSIONS interactive `cat`s, each waiting for the end of its input.
    let mut open = Vec::with_capacity(SESSIONS);
    let mut client = gw.sessions().await;
    for i in 0..SESSIONS {
        if i % PER_CHANNEL == 0 {
            client = gw.sessions().await;
        }
        // A start the database is too busy for is refused as retryable (UNAVAILABLE, with
        // nothing recorded): try again, as a client would.
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        let (tx, mut events) = loop {
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tx.send(pb::ConnectRequest {
                request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
                    connection: "burst".into(),
                    ..Default::default()
                })),
            })
            .await
            .unwrap();
            match client
                .connect(admin(tokio_stream::wrappers::ReceiverStream::new(rx)))
                .await
            {
                Ok(events) => break (tx, events.into_inner()),
                Err(status)
                    if status.code() == Code::Unavailable
                        && tokio::time::Instant::now() < give_up =>
                {
                    // A client's backoff before it tries again, bounded by the deadline.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(status) => panic!("session {i} did not start: {status:?}"),
            }
        };
        let first = tokio::time::timeout(Duration::from_secs(60), events.message())
            .await
            .expect("a session started within 60 s")
            .unwrap()
            .unwrap();
        let id = match first.event.unwrap() {
            pb::session_event::Event::Started(s) => s.session_id,
            other => panic!("unexpected {other:?}"),
        };
        open.push((id, tx, events));
    }

    // Reads all along the burst.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        let mut client = gw.sessions().await;
        tokio::spawn(async move {
            let mut answers: Vec<Result<usize, tonic::Status>> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(sessions_of(&mut client, "burst").await.map(|s| s.len()));
            }
            answers
        })
    };

    // Every `cat` reads end-of-file at the same moment, and exits 0.
    for (_, tx, _) in &open {
        tx.send(pb::ConnectRequest {
            request: Some(pb::connect_request::Request::CloseStdin(pb::CloseStdin {})),
        })
        .await
        .unwrap();
    }
    let started = std::time::Instant::now();
    let mut ids = Vec::with_capacity(SESSIONS);
    for (id, _tx, mut events) in open {
        let exit = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(ev) = events.message().await.unwrap() {
                if let Some(pb::session_event::Event::Exit(exit)) = ev.event {
                    return exit;
                }
            }
            panic!("session {id}: the stream ended without an exit");
        })
        .await
        .expect("every session ends within 120 s");
        assert_eq!(exit.exit_code, 0, "{id}: {exit:?}");
        ids.push(id);
    }
    let ended_in = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let answers = reader.await.unwrap();

    // Every session is recorded as it ended: none is left `open`.
    let mut client = gw.sessions().await;
    let recorded = sessions_of(&mut client, "burst").await.unwrap();
    let unsettled: Vec<_> = ids
        .iter()
        .filter(|id| {
            recorded
                .get(*id)
                .is_none_or(|s| s.status != "done" || s.exit_code != Some(0))
        })
        .collect();
    assert!(
        unsettled.is_empty(),
        "{} of {SESSIONS} sessions not settled as done/0 (ended in {ended_in:?}), e.g. {:?}",
        unsettled.len(),
        unsettled.first().and_then(|id| recorded.get(*id))
    );
    // Reads were answered, or refused as retryable: never INTERNAL.
    assert!(!answers.is_empty());
    for answer in &answers {
        if let Err(status) = answer {
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        }
    }
}
