//! The `gateways` scenario: two gateways on one PostgreSQL database (a scratch database
//! made on the server `HOOP_TEST_POSTGRES_URL` names). Approval-to-release latency across
//! gateways (held on A, approved through B, until A's client gets the output), and
//! sessions/s with the clients on one gateway vs spread over two, in one run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use hoop_proto::v1::session_service_client::SessionServiceClient;
use pb::session_event::Event;

use crate::Options;
use crate::gateway::{Gateway, authed};
use crate::report::{Report, Row, Stats, ms};
use crate::scenarios::{TRUE_CONNECTION, ensure_connection, exec_true, run_concurrently};

/// The connection whose sessions need approval by group `dba`.
const REVIEWED: &str = "bench-reviewed";
const STEP: Duration = Duration::from_secs(30);

fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", value);
    }
    req
}

async fn user(gw: &Gateway, name: &str, groups: &[&str]) -> Result<String> {
    let mut users = pb::user_service_client::UserServiceClient::new(gw.channel().await?);
    users
        .create_user(authed(pb::CreateUserRequest {
            user: Some(pb::User {
                name: name.to_owned(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                ..Default::default()
            }),
        }))
        .await
        .context("CreateUser")?;
    Ok(users
        .create_api_key(authed(pb::CreateApiKeyRequest {
            user: name.to_owned(),
            description: String::new(),
        }))
        .await
        .context("CreateApiKey")?
        .into_inner()
        .token)
}

pub(crate) async fn gateways(binary: &Path, options: &Options, report: &mut Report) -> Result<()> {
    let Some(hoop_rs::Backend::Postgres(url)) = hoop_rs::Backend::postgres().await else {
        bail!(
            "set HOOP_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test): the scenario makes a scratch database there"
        );
    };
    let top = |id: &str| {
        format!(
            "database_url = \"{url}\"\nsecret_key = \"hoop-bench-shared-secret-key-0123456789\"\n\
             instance_id = \"{id}\"\n"
        )
    };
    let a = Gateway::start_full(binary, &top("bench-a"), "").await?;
    let b = Gateway::start_full(binary, &top("bench-b"), "").await?;
    eprintln!("  gateways A {} and B {} on one database", a.addr, b.addr);

    // Approval to release across gateways.
    pb::connection_service_client::ConnectionServiceClient::new(a.channel().await?)
        .create_connection(authed(pb::CreateConnectionRequest {
            connection: Some(pb::Connection {
                name: REVIEWED.to_owned(),
                r#type: "command".to_owned(),
                command: vec!["cat".to_owned()],
                reviewers: vec!["dba".to_owned()],
                ..Default::default()
            }),
        }))
        .await
        .context("CreateConnection")?;
    let alice = user(&a, "alice", &["dev"]).await?;
    let bob = user(&a, "bob", &["dba"]).await?;
    let mut sessions = SessionServiceClient::new(a.channel().await?);
    let mut reviews = pb::review_service_client::ReviewServiceClient::new(b.channel().await?);
    let mut samples = Vec::with_capacity(options.gateway_reviews);
    for i in 0..options.gateway_reviews {
        let input = format!("select {i};\n").into_bytes();
        let mut stream = sessions
            .exec(with_token(
                &alice,
                pb::ExecRequest {
                    connection: REVIEWED.to_owned(),
                    input: input.clone(),
                    ..Default::default()
                },
            ))
            .await
            .context("Exec")?
            .into_inner();
        let review = loop {
            let event = tokio::time::timeout(STEP, stream.message())
                .await
                .context("no held event in time")??
                .context("the session ended before it was held")?;
            if let Some(Event::Held(held)) = event.event {
                break held.review_id;
            }
        };
        let asked = Instant::now();
        reviews
            .approve_review(with_token(
                &bob,
                pb::ApproveReviewRequest {
                    id: review,
                    ..Default::default()
                },
            ))
            .await
            .context("ApproveReview")?;
        loop {
            let event = tokio::time::timeout(STEP, stream.message())
                .await
                .context("not released in time")??
                .context("the session ended without output")?;
            if let Some(Event::Output(_)) = event.event {
                break;
            }
        }
        samples.push(asked.elapsed());
        // The rest of the session (its exit).
        while stream.message().await.context("Exec stream")?.is_some() {}
    }
    if let Some(stats) = Stats::of(&samples) {
        report.row(Row {
            scenario: "gateways".to_owned(),
            metric: format!(
                "approval → release, held on A, approved through B ({} reviews), p50 / p99",
                samples.len()
            ),
            gateway: format!("{} / {}", ms(stats.p50), ms(stats.p99)),
            baseline: "-".to_owned(),
            ratio: "-".to_owned(),
            goal: "< 1 s".to_owned(),
            met: Some(stats.p99 < Duration::from_secs(1)),
        });
    }

    // Sessions/s: every client on A, then the same clients spread over A and B.
    ensure_connection(&a, TRUE_CONNECTION, &["true"]).await?;
    let duration = options.throughput_duration()?;
    let clients = options.clients.max(2);
    let mut rates = Vec::new();
    for spread in [false, true] {
        let mut pool = Vec::with_capacity(clients);
        for i in 0..clients {
            let gw = if spread && i % 2 == 1 { &b } else { &a };
            let mut client = SessionServiceClient::new(gw.channel().await?);
            exec_true(&mut client).await?;
            pool.push(client);
        }
        let (count, _, elapsed) = run_concurrently(pool, duration, |mut client| async move {
            exec_true(&mut client).await?;
            Ok(client)
        })
        .await?;
        let rate = count as f64 / elapsed.as_secs_f64();
        eprintln!(
            "  {}: {count} sessions, {rate:.0}/s",
            if spread {
                "two gateways"
            } else {
                "one gateway"
            }
        );
        rates.push((rate, count, elapsed));
    }
    let ((one, one_n, one_t), (two, two_n, two_t)) = (rates[0], rates[1]);
    report.row(Row {
        scenario: "gateways".to_owned(),
        metric: format!("sessions/s, {clients} clients: spread over two gateways vs all on one"),
        gateway: format!("{two:.0}/s ({two_n} in {:.1} s)", two_t.as_secs_f64()),
        baseline: format!("{one:.0}/s ({one_n} in {:.1} s)", one_t.as_secs_f64()),
        ratio: format!("{:.2}×", two / one),
        goal: "-".to_owned(),
        met: None,
    });
    report.note(
        "gateways: both gateways and PostgreSQL share this machine's cores; on 2 cores the \
         second gateway shows its overhead, not scaling"
            .to_owned(),
    );
    a.stop().await?;
    b.stop().await?;
    Ok(())
}
