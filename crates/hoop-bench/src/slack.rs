//! The `slack` scenario: how long the slack plugin takes to bring a review to Slack, and a
//! click in Slack to a waiting session. A fake Slack (the end-to-end tests' own: Web API and
//! Socket Mode on 127.0.0.1) stands in for Slack; a gateway of its own is started with
//! `[plugins.slack]` pointing at it. Each of `--slack-reviews` reviews, one after the
//! other: an exec is held for review; the time from the `held` event reaching the client
//! (the review is created just before) to the fake receiving `chat.postMessage` is the
//! first measure; then a DBA's Approve click is sent over Socket Mode, and the time from
//! sending it to the held exec's first output is the second.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use hoop_rs::slack::{self, FakeSlack};

use crate::Options;
use crate::gateway::{Gateway, authed};
use crate::report::{Report, Row, Stats, ms};

const STEP: Duration = Duration::from_secs(30);
const CHANNEL: &str = "C0BENCHMARK";

fn as_user<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", value);
    }
    req
}

/// Runs the scenario on a gateway of its own.
pub(crate) async fn slack(binary: &Path, options: &Options, report: &mut Report) -> Result<()> {
    let fake = FakeSlack::start().await;
    let gw = Gateway::start_with(binary, &fake.settings_toml()).await?;
    let result = run(&gw, &fake, options.slack_reviews, report).await;
    gw.stop().await?;
    result
}

async fn run(gw: &Gateway, fake: &FakeSlack, reviews: usize, report: &mut Report) -> Result<()> {
    let channel = gw.channel().await?;
    let mut users = pb::user_service_client::UserServiceClient::new(channel.clone());
    for (name, groups, slack_id) in [("requester", "dev", ""), ("approver", "dba", "U0APPROVER")] {
        users
            .create_user(authed(pb::CreateUserRequest {
                user: Some(pb::User {
                    name: name.into(),
                    groups: vec![groups.into()],
                    slack_id: slack_id.into(),
                    ..Default::default()
                }),
            }))
            .await
            .with_context(|| format!("CreateUser {name}"))?;
    }
    let token = users
        .create_api_key(authed(pb::CreateApiKeyRequest {
            user: "requester".into(),
            description: String::new(),
        }))
        .await
        .context("CreateApiKey")?
        .into_inner()
        .token;
    let mut connections =
        pb::connection_service_client::ConnectionServiceClient::new(channel.clone());
    connections
        .create_connection(authed(pb::CreateConnectionRequest {
            connection: Some(pb::Connection {
                name: "slackbench".into(),
                r#type: "command".into(),
                command: vec!["cat".into()],
                reviewers: vec!["dba".into()],
                ..Default::default()
            }),
        }))
        .await
        .context("CreateConnection")?;
    let config = prost_types::Struct {
        fields: [
            ("channels".to_owned(), list(&[CHANNEL])),
            ("notify".to_owned(), list(&["reviews"])),
        ]
        .into_iter()
        .collect(),
    };
    pb::plugin_service_client::PluginServiceClient::new(channel.clone())
        .update_plugin_config(authed(pb::UpdatePluginConfigRequest {
            connection: "slackbench".into(),
            plugin: "slack".into(),
            config: Some(config),
        }))
        .await
        .context("UpdatePluginConfig slack")?;
    fake.wait_socket(STEP).await;

    let mut sessions = pb::session_service_client::SessionServiceClient::new(channel);
    let (mut to_post, mut to_release) = (Vec::new(), Vec::new());
    for i in 0..reviews {
        use pb::session_event::Event;
        let mut events = sessions
            .exec(as_user(
                &token,
                pb::ExecRequest {
                    connection: "slackbench".into(),
                    input: format!("SELECT {i};\n").into_bytes(),
                    ..Default::default()
                },
            ))
            .await
            .context("Exec")?
            .into_inner();
        let (review, held_at) = loop {
            match tokio::time::timeout(STEP, events.message()).await {
                Ok(Ok(Some(pb::SessionEvent {
                    event: Some(Event::Held(h)),
                }))) => break (h.review_id, Instant::now()),
                Ok(Ok(Some(_))) => {}
                other => bail!("review {i}: no `held` event ({other:?})"),
            }
        };
        let id = review.clone();
        let post = fake
            .wait(STEP, "review message", move |f| {
                f.ok_calls("chat.postMessage")
                    .into_iter()
                    .find(|c| c.body.to_string().contains(&id))
            })
            .await;
        to_post.push(post.at.saturating_duration_since(held_at));
        let button = slack::button(&post.body, "hoop_review_approve", "dba");
        let ts = post.ts.clone().unwrap_or_default();
        let clicked = Instant::now();
        fake.send_interactive(slack::block_actions("U0APPROVER", CHANNEL, &ts, &button))
            .await;
        loop {
            match tokio::time::timeout(STEP, events.message()).await {
                Ok(Ok(Some(pb::SessionEvent {
                    event: Some(Event::Output(_)),
                }))) => break,
                Ok(Ok(Some(pb::SessionEvent {
                    event: Some(Event::Exit(e)),
                }))) => {
                    bail!("review {i}: the exec ended without output: {}", e.reason)
                }
                Ok(Ok(Some(_))) => {}
                other => bail!("review {i}: not released ({other:?})"),
            }
        }
        to_release.push(clicked.elapsed());
        // Let the session end before the next one.
        while let Ok(Ok(Some(_))) = tokio::time::timeout(STEP, events.message()).await {}
    }
    for (metric, samples) in [
        ("review.created → chat.postMessage", &to_post),
        ("click → held exec released", &to_release),
    ] {
        let Some(stats) = Stats::of(samples) else {
            bail!("no samples");
        };
        for (name, value) in [("p50", stats.p50), ("p99", stats.p99)] {
            report.row(Row {
                scenario: "slack".into(),
                metric: format!("{metric} {name} (n={})", samples.len()),
                gateway: ms(value),
                baseline: "-".into(),
                ratio: "-".into(),
                goal: "-".into(),
                met: None,
            });
        }
        report.note(format!(
            "slack: {metric}: mean {}, max {}",
            ms(stats.mean),
            ms(stats.max)
        ));
    }
    Ok(())
}

fn list(items: &[&str]) -> prost_types::Value {
    use prost_types::value::Kind;
    prost_types::Value {
        kind: Some(Kind::ListValue(prost_types::ListValue {
            values: items
                .iter()
                .map(|s| prost_types::Value {
                    kind: Some(Kind::StringValue((*s).to_owned())),
                })
                .collect(),
        })),
    }
}
