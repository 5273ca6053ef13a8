//! The slack plugin against a fake Slack (Web API and Socket Mode on 127.0.0.1): review
//! messages with buttons, clicks authorized like the API, the reject modal, updates on every
//! review event, 429s, restarts, the signed HTTP endpoint, masking, and session notices.

use std::time::{Duration, Instant};

use hoop_rs::slack::{self, Call, FakeSlack, Fault};
use hoop_rs::{
    Backend, Gateway, Setup, admin, assert_status, authed, command_connection, config, e2e, pb,
};
use serde_json::Value;
use tonic::Code;

e2e!(
    a_click_by_a_member_releases_the_held_exec_and_others_are_refused,
    a_rejection_from_the_modal_ends_the_exec_with_its_reason,
    partial_approvals_and_revocations_show_and_each_button_is_its_groups,
    api_decisions_update_messages_inputs_are_masked_and_429s_are_honoured,
    a_gateway_killed_before_posting_posts_once_per_channel_after_restart,
    the_http_endpoint_refuses_bad_signatures_and_takes_signed_clicks,
    session_notices_are_threaded_and_notify_turns_them_off,
    a_silent_socket_is_reopened_by_the_watchdog,
    users_link_their_own_slack_id_and_status_says_why_slack_is_inactive,
);

/// How long any single step may take.
const STEP: Duration = Duration::from_secs(30);
const CHANNEL: &str = "C0REVIEWS1";
const INPUT: &[u8] = b"SELECT 1;\n";

async fn create(gw: &Gateway, conn: pb::Connection) {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
}

async fn slack_config(gw: &Gateway, conn: &str, json: Value) {
    gw.plugins()
        .await
        .update_plugin_config(admin(pb::UpdatePluginConfigRequest {
            connection: conn.into(),
            plugin: "slack".into(),
            config: config(json),
        }))
        .await
        .unwrap();
}

/// A connection running `cat` whose sessions `reviewers` review, posting to `channels`.
async fn reviewed(
    gw: &Gateway,
    name: &str,
    reviewers: &[&str],
    channels: &[&str],
    notify: &[&str],
) {
    let mut conn = command_connection(name, &["cat"]);
    conn.reviewers = reviewers.iter().map(|g| g.to_string()).collect();
    create(gw, conn).await;
    slack_config(
        gw,
        name,
        serde_json::json!({"channels": channels, "notify": notify}),
    )
    .await;
}

/// Creates a user with an e-mail and, if given, a Slack ID; returns their token.
async fn person(gw: &Gateway, name: &str, groups: &[&str], slack_id: Option<&str>) -> String {
    let token = gw.user_with_token(name, groups).await;
    let user = pb::User {
        name: name.into(),
        email: format!("{name}@example.com"),
        slack_id: slack_id.unwrap_or_default().into(),
        ..Default::default()
    };
    let paths = if slack_id.is_some() {
        vec!["email".into(), "slack_id".into()]
    } else {
        vec!["email".into()]
    };
    gw.users()
        .await
        .update_user(admin(pb::UpdateUserRequest {
            user: Some(user),
            update_mask: Some(prost_types::FieldMask { paths }),
        }))
        .await
        .unwrap();
    token
}

/// An Exec held for review, and the rest of its stream.
struct Held {
    review_id: String,
    events: tonic::Streaming<pb::SessionEvent>,
}

async fn exec_until_held(gw: &Gateway, token: &str, conn: &str, input: &[u8]) -> Held {
    use pb::session_event::Event;
    let req = pb::ExecRequest {
        connection: conn.into(),
        input: input.to_vec(),
        ..Default::default()
    };
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
            .expect("ended before being held")
            .event
            .unwrap();
        if let Event::Held(held) = event {
            return Held {
                review_id: held.review_id,
                events,
            };
        }
    }
}

impl Held {
    /// The rest of the stream: stdout, exit code, reason.
    async fn rest(mut self) -> (Vec<u8>, Option<i32>, String) {
        use pb::session_event::Event;
        let (mut out, mut code, mut reason) = (Vec::new(), None, String::new());
        while let Some(event) = tokio::time::timeout(STEP, self.events.message())
            .await
            .expect("the held session did not go on in time")
            .unwrap()
        {
            match event.event.unwrap() {
                Event::Output(o) => out.extend(o.data),
                Event::Exit(e) => {
                    code = Some(e.exit_code);
                    reason = e.reason;
                }
                _ => {}
            }
        }
        (out, code, reason)
    }
}

async fn review_status(gw: &Gateway, id: &str) -> i32 {
    gw.reviews()
        .await
        .get_review(admin(pb::GetReviewRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
        .status
}

/// The review message posted to `channel` for review `id`.
async fn posted(fake: &FakeSlack, channel: &str, id: &str) -> Call {
    let (channel, id) = (channel.to_owned(), id.to_owned());
    fake.wait(STEP, "review message", move |f| {
        f.ok_calls("chat.postMessage")
            .into_iter()
            .find(|c| c.body["channel"] == channel.as_str() && c.body.to_string().contains(&id))
    })
    .await
}

/// The first update of the message `ts` whose text contains `needle`.
async fn updated(fake: &FakeSlack, ts: &str, needle: &str) -> Call {
    let (ts, needle) = (ts.to_owned(), needle.to_owned());
    fake.wait(STEP, &format!("chat.update saying {needle}"), move |f| {
        f.ok_calls("chat.update")
            .into_iter()
            .find(|c| c.body["ts"] == ts.as_str() && c.body.to_string().contains(&needle))
    })
    .await
}

/// The first update of the message `ts` that shows the review approved: saying "Approved",
/// or, when the worker read the approval and the exec's end in one go (a busy machine),
/// "Executed (approved ...)" at once.
async fn approved_update(fake: &FakeSlack, ts: &str) -> Call {
    let ts = ts.to_owned();
    fake.wait(STEP, "chat.update saying Approved", move |f| {
        f.ok_calls("chat.update").into_iter().find(|c| {
            let body = c.body.to_string();
            c.body["ts"] == ts.as_str()
                && (body.contains("Approved") || body.contains("*Executed* (approved"))
        })
    })
    .await
}

/// The ephemeral messages to `user` so far.
fn ephemerals(fake: &FakeSlack, user: &str) -> Vec<String> {
    fake.ok_calls("chat.postEphemeral")
        .into_iter()
        .filter(|c| c.body["user"] == user)
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn ephemeral(fake: &FakeSlack, user: &str, n: usize) -> String {
    let user = user.to_owned();
    fake.wait(STEP, "ephemeral reply", move |f| {
        ephemerals(f, &user).get(n).cloned()
    })
    .await
}

fn actions(message: &Value) -> usize {
    message["blocks"]
        .as_array()
        .map_or(0, |b| b.iter().filter(|b| b["type"] == "actions").count())
}

async fn start(backend: Backend, fake: &FakeSlack, extra: &str) -> Gateway {
    Setup::new(backend)
        .with_toml(&format!("{}{extra}", fake.settings_toml()))
        .start()
        .await
}

async fn a_click_by_a_member_releases_the_held_exec_and_others_are_refused(backend: Backend) {
    let fake = FakeSlack::start().await;
    let gw = start(backend, &fake, "").await;
    // alice asks (and is a DBA herself); bob is a DBA linked by Slack ID; carol a DBA found
    // by e-mail; mallory an SRE; U0NOBODY is no hoop user.
    let alice = person(&gw, "alice", &["dev", "dba"], Some("U0ALICE")).await;
    person(&gw, "bob", &["dba"], Some("U0BOB")).await;
    person(&gw, "carol", &["dba"], None).await;
    person(&gw, "mallory", &["sre"], Some("U0MALLORY")).await;
    fake.add_user("U0CAROL", "CAROL@example.com");
    fake.add_user("U0NOBODY", "nobody@elsewhere.example");
    reviewed(&gw, "pg", &["dba"], &[CHANNEL], &["reviews"]).await;

    let held = exec_until_held(&gw, &alice, "pg", INPUT).await;
    let id = held.review_id.clone();
    let message = posted(&fake, CHANNEL, &id).await;
    let text = message.body.to_string();
    for needle in [
        "alice (alice@example.com)",
        "dba, dev",
        "*Connection*\\npg",
        "One-time exec",
        "SELECT 1;",
        &format!("hoop reviews approve {id}"),
        "approved by 0 of 1",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    assert_eq!(
        actions(&message.body),
        1,
        "one button pair for the one group"
    );
    let ts = message.ts.clone().unwrap();
    let approve = slack::button(&message.body, "hoop_review_approve", "dba");
    fake.wait_socket(STEP).await;

    // Refused: another group's member, the requester, and a Slack user hoop does not know.
    for (user, n, needle) in [
        ("U0MALLORY", 0, "Nothing was decided"),
        ("U0ALICE", 0, "Nothing was decided"),
        ("U0NOBODY", 0, "not linked to a hoop user"),
    ] {
        fake.send_interactive(slack::block_actions(user, CHANNEL, &ts, &approve))
            .await;
        let said = ephemeral(&fake, user, n).await;
        assert!(said.contains(needle), "{user}: {said}");
    }
    assert!(
        ephemeral(&fake, "U0ALICE", 0).await.contains("own"),
        "the requester is told why"
    );
    assert_eq!(
        review_status(&gw, &id).await,
        pb::ReviewStatus::Pending as i32
    );
    assert!(fake.ok_calls("chat.update").is_empty(), "nothing changed");

    // carol, mapped by her e-mail, approves: the held exec runs.
    fake.send_interactive(slack::block_actions("U0CAROL", CHANNEL, &ts, &approve))
        .await;
    let (out, code, _) = held.rest().await;
    assert_eq!((out.as_slice(), code), (INPUT, Some(0)));
    let update = approved_update(&fake, &ts).await;
    assert_eq!(actions(&update.body), 0, "a decided review has no buttons");
    assert!(update.body.to_string().contains("dba: carol"));
    // The requester hears of it in a direct message: of the approval, or (when the worker
    // reads the approval and the exec's end in one go, as on a busy machine) of both at once.
    fake.wait(STEP, "DM to alice", |f| {
        f.ok_calls("chat.postMessage").into_iter().find(|c| {
            let text = c.body["text"].as_str().unwrap_or("");
            c.body["channel"] == "DU0ALICE"
                && (text.contains("Approved")
                    || text.contains("*Executed* (approved (dba: carol))"))
        })
    })
    .await;
    let plugins = gw
        .plugins()
        .await
        .list_plugins(admin(pb::ListPluginsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let status = &plugins
        .plugins
        .iter()
        .find(|p| p.name == "slack")
        .unwrap()
        .status;
    assert!(status.contains("Socket Mode connected"), "{status}");
    assert!(!status.contains(slack::BOT_TOKEN) && !gw.logs().contains(slack::BOT_TOKEN));
}

async fn a_rejection_from_the_modal_ends_the_exec_with_its_reason(backend: Backend) {
    let fake = FakeSlack::start().await;
    let gw = start(backend, &fake, "").await;
    // alice set no Slack ID: Slack knows her by her e-mail.
    let alice = person(&gw, "alice", &["dev"], None).await;
    fake.add_user("U0ALICEM", "alice@example.com");
    person(&gw, "bob", &["dba"], Some("U0BOB")).await;
    person(&gw, "mallory", &["sre"], Some("U0MALLORY")).await;
    reviewed(&gw, "pg", &["dba"], &[CHANNEL], &["reviews"]).await;

    let held = exec_until_held(&gw, &alice, "pg", INPUT).await;
    let message = posted(&fake, CHANNEL, &held.review_id).await;
    let ts = message.ts.clone().unwrap();
    let reject = slack::button(&message.body, "hoop_review_reject", "dba");
    // mallory may not reject: told at once, no modal.
    fake.send_interactive(slack::block_actions("U0MALLORY", CHANNEL, &ts, &reject))
        .await;
    assert!(
        ephemeral(&fake, "U0MALLORY", 0)
            .await
            .contains("Nothing was decided")
    );
    assert!(fake.ok_calls("views.open").is_empty());

    fake.send_interactive(slack::block_actions("U0BOB", CHANNEL, &ts, &reject))
        .await;
    let opened = fake
        .wait(STEP, "views.open", |f| {
            f.ok_calls("views.open").into_iter().next()
        })
        .await;
    assert_eq!(opened.body["trigger_id"], "1337.42.trigger-U0BOB");
    let view = opened.body["view"].clone();
    // A submission by someone else who may not reject changes nothing either.
    fake.send_interactive(slack::view_submission("U0MALLORY", &view, "sneaky"))
        .await;
    assert!(
        ephemeral(&fake, "U0MALLORY", 1)
            .await
            .contains("Nothing was decided")
    );
    assert_eq!(
        review_status(&gw, &held.review_id).await,
        pb::ReviewStatus::Pending as i32
    );

    fake.send_interactive(slack::view_submission("U0BOB", &view, "not on a Friday"))
        .await;
    let id = held.review_id.clone();
    let (out, code, reason) = held.rest().await;
    assert!(out.is_empty());
    assert_ne!(code, Some(0));
    assert!(reason.contains("not on a Friday"), "{reason}");
    let update = updated(&fake, &ts, "Rejected").await;
    assert!(
        update
            .body
            .to_string()
            .contains("bob (dba): not on a Friday")
    );
    assert_eq!(actions(&update.body), 0);
    assert_eq!(
        review_status(&gw, &id).await,
        pb::ReviewStatus::Rejected as i32
    );
    // alice hears of it in a direct message, found by her e-mail.
    fake.wait(STEP, "DM to alice by e-mail", |f| {
        f.ok_calls("chat.postMessage").into_iter().find(|c| {
            c.body["channel"] == "DU0ALICEM"
                && c.body["text"].as_str().unwrap_or("").contains("Rejected")
        })
    })
    .await;
    assert!(
        fake.ok_calls("users.lookupByEmail")
            .iter()
            .any(|c| c.body["email"] == "alice@example.com")
    );
}

async fn partial_approvals_and_revocations_show_and_each_button_is_its_groups(backend: Backend) {
    let fake = FakeSlack::start().await;
    let gw = start(backend, &fake, "").await;
    let alice = person(&gw, "alice", &["dev"], None).await;
    let bob = person(&gw, "bob", &["dba"], Some("U0BOB")).await;
    person(&gw, "erin", &["sre"], Some("U0ERIN")).await;
    reviewed(&gw, "pg", &["dba", "sre"], &[CHANNEL], &["reviews"]).await;
    let held = exec_until_held(&gw, &alice, "pg", INPUT).await;
    let id = held.review_id.clone();
    let message = posted(&fake, CHANNEL, &id).await;
    assert_eq!(actions(&message.body), 2, "one pair per group");
    let ts = message.ts.clone().unwrap();
    fake.wait_socket(STEP).await;

    // erin is a reviewer, but of sre: the dba button is not hers to press.
    let dba = slack::button(&message.body, "hoop_review_approve", "dba");
    fake.send_interactive(slack::block_actions("U0ERIN", CHANNEL, &ts, &dba))
        .await;
    let said = ephemeral(&fake, "U0ERIN", 0).await;
    assert!(said.contains("not a member of group `dba`"), "{said}");

    // bob approves for dba: 1 of 2, buttons stay for the rest.
    fake.send_interactive(slack::block_actions("U0BOB", CHANNEL, &ts, &dba))
        .await;
    let partial = updated(&fake, &ts, "approved by 1 of 2 (dba: bob)").await;
    assert_eq!(actions(&partial.body), 2);
    assert_eq!(
        review_status(&gw, &id).await,
        pb::ReviewStatus::Pending as i32
    );

    // The requester withdraws it: the message says so and its buttons go.
    drop(held);
    gw.reviews()
        .await
        .revoke_review(authed(
            &alice,
            pb::RevokeReviewRequest {
                id: id.clone(),
                reason: "wrong query".into(),
            },
        ))
        .await
        .unwrap();
    let revoked = updated(&fake, &ts, "Revoked").await;
    assert!(revoked.body.to_string().contains("wrong query"));
    assert_eq!(actions(&revoked.body), 0);
    // A click on a stale button changes nothing and says why.
    let sre = slack::button(&message.body, "hoop_review_approve", "sre");
    fake.send_interactive(slack::block_actions("U0ERIN", CHANNEL, &ts, &sre))
        .await;
    let said = ephemeral(&fake, "U0ERIN", 1).await;
    assert!(said.contains("REVOKED"), "{said}");
    assert_eq!(
        review_status(&gw, &id).await,
        pb::ReviewStatus::Revoked as i32
    );

    // A partial approval made through the API shows at once too (`review.voted`).
    let held = exec_until_held(&gw, &alice, "pg", INPUT).await;
    let message = posted(&fake, CHANNEL, &held.review_id).await;
    let ts = message.ts.clone().unwrap();
    gw.reviews()
        .await
        .approve_review(authed(
            &bob,
            pb::ApproveReviewRequest {
                id: held.review_id.clone(),
                group: "dba".into(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    let partial = updated(&fake, &ts, "approved by 1 of 2 (dba: bob)").await;
    assert_eq!(actions(&partial.body), 2, "the rest may still decide");
}

async fn api_decisions_update_messages_inputs_are_masked_and_429s_are_honoured(backend: Backend) {
    let fake = FakeSlack::start().await;
    let gw = start(backend, &fake, "").await;
    let alice = person(&gw, "alice", &["dev"], None).await;
    let bob = person(&gw, "bob", &["dba"], None).await;
    let mut conn = command_connection("pg", &["cat"]);
    conn.reviewers = vec!["dba".into()];
    conn.redact_types = vec!["EMAIL_ADDRESS".into()];
    create(&gw, conn).await;
    slack_config(
        &gw,
        "pg",
        serde_json::json!({"channels": [CHANNEL], "notify": ["reviews"]}),
    )
    .await;
    fake.fail_next("chat.postMessage", &[Fault::RateLimited(2)]);

    let input = b"SELECT * FROM users WHERE email = 'jane.doe@corp.example';\n";
    let held = exec_until_held(&gw, &alice, "pg", input).await;
    let message = posted(&fake, CHANNEL, &held.review_id).await;
    let limited = fake
        .calls()
        .into_iter()
        .find(|c| c.method == "chat.postMessage" && c.status == 429)
        .expect("the 429");
    assert!(
        message.at.duration_since(limited.at) >= Duration::from_secs(2),
        "posted again {:?} after a 429 asking for 2s",
        message.at.duration_since(limited.at)
    );
    let text = message.body.to_string();
    assert!(!text.contains("jane.doe@corp.example"), "unmasked: {text}");
    assert!(text.contains("SELECT * FROM users WHERE email"), "{text}");

    // Decided through the API: the message follows.
    gw.reviews()
        .await
        .approve_review(authed(
            &bob,
            pb::ApproveReviewRequest {
                id: held.review_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let ts = message.ts.clone().unwrap();
    let update = approved_update(&fake, &ts).await;
    assert_eq!(actions(&update.body), 0);
    assert!(!update.body.to_string().contains("jane.doe@corp.example"));
    let (_, code, _) = held.rest().await;
    assert_eq!(code, Some(0));
    updated(&fake, &ts, "Executed").await;
}

async fn a_gateway_killed_before_posting_posts_once_per_channel_after_restart(backend: Backend) {
    let fake = FakeSlack::start().await;
    let gw = start(backend, &fake, "").await;
    let alice = person(&gw, "alice", &["dev"], None).await;
    let bob = person(&gw, "bob", &["dba"], None).await;
    let channels = ["C0AAAAAAAA1", "C0BBBBBBBB2"];
    reviewed(&gw, "pg", &["dba"], &channels, &["reviews"]).await;
    fake.set_down("chat.postMessage", true);
    let held = exec_until_held(&gw, &alice, "pg", INPUT).await;
    let id = held.review_id.clone();
    drop(held);
    fake.wait(STEP, "a failed post", |f| {
        f.calls()
            .into_iter()
            .find(|c| c.method == "chat.postMessage" && c.status == 503)
    })
    .await;
    let setup = gw.crash().await;
    fake.set_down("chat.postMessage", false);
    let gw = setup.start().await;
    for channel in channels {
        posted(&fake, channel, &id).await;
    }
    // A later event is handled after any replay of this one: by its update, every post
    // that would happen has happened.
    gw.reviews()
        .await
        .reject_review(authed(
            &bob,
            pb::RejectReviewRequest {
                id: id.clone(),
                reason: "no".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    for channel in channels {
        let ts = posted(&fake, channel, &id).await.ts.unwrap();
        updated(&fake, &ts, "Rejected").await;
    }
    for channel in channels {
        let posts = fake
            .ok_calls("chat.postMessage")
            .into_iter()
            .filter(|c| c.body["channel"] == channel && c.body.to_string().contains(&id))
            .count();
        assert_eq!(posts, 1, "{channel}");
    }
}

/// Signs a Slack request body as Slack does (`v0=` HMAC-SHA256 of `v0:<ts>:<body>`).
fn sign(secret: &str, ts: &str, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v0={hex}")
}

/// POSTs a form body with these Slack headers; returns the HTTP status.
async fn post_form(addr: &str, ts: &str, signature: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /slack/interactivity HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(STEP, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn form(payload: &Value) -> String {
    let text = payload.to_string();
    let encoded: String = text
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("payload={encoded}")
}

async fn the_http_endpoint_refuses_bad_signatures_and_takes_signed_clicks(backend: Backend) {
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    let fake = FakeSlack::start().await;
    // No app token: interactivity comes over HTTP only.
    let gw = Setup::new(backend)
        .with_toml(&format!(
            "[plugins.slack]\nbot_token = \"{}\"\napi_url = \"{}\"\nsigning_secret = \"{SECRET}\"\nhttp_listen = \"127.0.0.1:0\"\n",
            slack::BOT_TOKEN,
            fake.api_url()
        ))
        .start()
        .await;
    let addr = hoop_rs::eventually(STEP, "the endpoint's address in the log", || async {
        gw.logs().lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["fields"]["message"] == "slack interactivity endpoint listening")
                .then(|| v["fields"]["addr"].as_str().map(str::to_owned))
                .flatten()
        })
    })
    .await;
    let alice = person(&gw, "alice", &["dev"], None).await;
    person(&gw, "bob", &["dba"], Some("U0BOB")).await;
    reviewed(&gw, "pg", &["dba"], &[CHANNEL], &["reviews"]).await;
    let held = exec_until_held(&gw, &alice, "pg", INPUT).await;
    let message = posted(&fake, CHANNEL, &held.review_id).await;
    let ts = message.ts.clone().unwrap();
    let approve = slack::button(&message.body, "hoop_review_approve", "dba");
    let body = form(&slack::block_actions("U0BOB", CHANNEL, &ts, &approve));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // Signed with the wrong secret, unsigned, and signed but ten minutes old: refused.
    let ts_now = now.to_string();
    assert_eq!(
        post_form(&addr, &ts_now, &sign("wrong-secret", &ts_now, &body), &body).await,
        401
    );
    assert_eq!(post_form(&addr, &ts_now, "v0=00", &body).await, 401);
    let stale = (now - 600).to_string();
    assert_eq!(
        post_form(&addr, &stale, &sign(SECRET, &stale, &body), &body).await,
        401
    );
    // A signature of another body does not carry over.
    let other = form(&serde_json::json!({"type": "block_actions"}));
    assert_eq!(
        post_form(&addr, &ts_now, &sign(SECRET, &ts_now, &other), &body).await,
        401
    );
    assert_eq!(
        review_status(&gw, &held.review_id).await,
        pb::ReviewStatus::Pending as i32
    );

    assert_eq!(
        post_form(&addr, &ts_now, &sign(SECRET, &ts_now, &body), &body).await,
        200
    );
    let (_, code, _) = held.rest().await;
    assert_eq!(code, Some(0));
    approved_update(&fake, &ts).await;
    let plugins = gw
        .plugins()
        .await
        .list_plugins(admin(pb::ListPluginsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let status = &plugins
        .plugins
        .iter()
        .find(|p| p.name == "slack")
        .unwrap()
        .status;
    assert!(
        status.contains("Socket Mode off") && status.contains("HTTP interactivity on"),
        "{status}"
    );
    assert!(!gw.logs().contains(SECRET));
}

async fn session_notices_are_threaded_and_notify_turns_them_off(backend: Backend) {
    let fake = FakeSlack::start().await;
    // The bot token comes from the environment.
    let gw = Setup::new(backend)
        .with_toml(&format!(
            "[plugins.slack]\napi_url = \"{}\"\n",
            fake.api_url()
        ))
        .with_env("HOOP_PLUGINS_SLACK_BOT_TOKEN", slack::BOT_TOKEN)
        .start()
        .await;
    let alice = person(&gw, "alice", &["dev"], None).await;
    create(&gw, command_connection("sh", &["cat"])).await;
    create(&gw, command_connection("other", &["cat"])).await;
    slack_config(&gw, "sh", serde_json::json!({"channels": ["C0SESSIONS"]})).await;
    slack_config(
        &gw,
        "other",
        serde_json::json!({"channels": ["C0OTHERS01"]}),
    )
    .await;
    let run = |conn: &str| pb::ExecRequest {
        connection: conn.into(),
        input: b"SECRET-OUTPUT-42\n".to_vec(),
        ..Default::default()
    };
    let result = hoop_rs::exec(&gw, &alice, run("sh")).await.unwrap();
    let sid = result.session_id.clone();
    let parent = fake
        .wait(STEP, "session opened notice", |f| {
            f.ok_calls("chat.postMessage")
                .into_iter()
                .find(|c| c.body.to_string().contains(&sid) && c.body["thread_ts"].is_null())
        })
        .await;
    let reply = fake
        .wait(STEP, "session closed notice", |f| {
            f.ok_calls("chat.postMessage")
                .into_iter()
                .find(|c| c.body["thread_ts"].is_string() && c.body.to_string().contains(&sid))
        })
        .await;
    assert_eq!(parent.body["channel"], "C0SESSIONS");
    assert_eq!(
        reply.body["thread_ts"].as_str(),
        parent.ts.as_deref(),
        "threaded under the opening notice"
    );
    let text = reply.body.to_string();
    for needle in [
        "alice",
        "`exec`",
        "*sh*",
        "Exit code*\\n0",
        "hoop sessions replay",
        "Duration",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    let all: String = fake.calls().iter().map(|c| c.body.to_string()).collect();
    assert!(
        !all.contains("SECRET-OUTPUT-42"),
        "output never reaches Slack"
    );

    // notify: reviews only. The next session on `other` is posted after anything about
    // the one on `sh` would have been.
    slack_config(
        &gw,
        "sh",
        serde_json::json!({"channels": ["C0SESSIONS"], "notify": ["reviews"]}),
    )
    .await;
    let quiet = hoop_rs::exec(&gw, &alice, run("sh")).await.unwrap();
    let loud = hoop_rs::exec(&gw, &alice, run("other")).await.unwrap();
    let loud_id = loud.session_id.clone();
    fake.wait(STEP, "notice on other", |f| {
        f.ok_calls("chat.postMessage")
            .into_iter()
            .find(|c| c.body["thread_ts"].is_string() && c.body.to_string().contains(&loud_id))
    })
    .await;
    let about_quiet = fake
        .calls()
        .into_iter()
        .filter(|c| c.body.to_string().contains(&quiet.session_id))
        .count();
    assert_eq!(about_quiet, 0);
}

async fn a_silent_socket_is_reopened_by_the_watchdog(backend: Backend) {
    let fake = FakeSlack::start().await;
    let started = Instant::now();
    let gw = start(backend, &fake, "socket_watchdog = \"2s\"\n").await;
    // The fake never pings: after 2 s of silence the plugin opens a new connection.
    fake.wait(STEP, "a second Socket Mode connection", |f| {
        (f.socket_connections() >= 2).then_some(())
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    let opened = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "apps.connections.open" && c.ok)
        .count();
    assert!(opened >= 2, "{opened}");
    let plugins = gw
        .plugins()
        .await
        .list_plugins(admin(pb::ListPluginsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let status = plugins
        .plugins
        .iter()
        .find(|p| p.name == "slack")
        .unwrap()
        .status
        .clone();
    assert!(status.contains("Socket Mode"), "{status}");
}

async fn users_link_their_own_slack_id_and_status_says_why_slack_is_inactive(backend: Backend) {
    // No [plugins.slack]: nothing is sent, and the status says why.
    let gw = Gateway::start(backend).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    gw.user_with_token("mallory", &["sre"]).await;
    let out = gw
        .cli(
            Some(&bob),
            &["users", "update", "bob", "--slack-id", "U0BOB"],
        )
        .await;
    assert!(out.ok().contains("U0BOB"), "{}", out.ok());
    let me = gw
        .users()
        .await
        .who_am_i(authed(&bob, pb::WhoAmIRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.slack_id, "U0BOB");
    let update = |name: &str, paths: &[&str], slack_id: &str, email: &str| pb::UpdateUserRequest {
        user: Some(pb::User {
            name: name.into(),
            slack_id: slack_id.into(),
            email: email.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let mut users = gw.users().await;
    // Not someone else's, and nothing else of one's own.
    assert_status(
        users
            .update_user(authed(&bob, update("mallory", &["slack_id"], "U0MAL", "")))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    assert_status(
        users
            .update_user(authed(
                &bob,
                update("bob", &["slack_id", "email"], "U0BOB", "b@x.io"),
            ))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    assert_status(
        users
            .update_user(authed(&bob, update("bob", &["groups"], "", "")))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    // Unique, and checked.
    assert_status(
        users
            .update_user(admin(update("mallory", &["slack_id"], "U0BOB", "")))
            .await,
        Code::AlreadyExists,
        "U0BOB",
    );
    assert_status(
        users
            .update_user(authed(&bob, update("bob", &["slack_id"], "bob", "")))
            .await,
        Code::InvalidArgument,
        "user.slack_id",
    );
    let out = gw
        .cli(Some(&bob), &["users", "update", "bob", "--slack-id", ""])
        .await;
    assert!(out.ok().contains("slack_id: -"), "{}", out.ok());
    let me = gw
        .users()
        .await
        .who_am_i(authed(&bob, pb::WhoAmIRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.slack_id, "");

    create(&gw, command_connection("pg", &["cat"])).await;
    let conn = gw
        .connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest { name: "pg".into() }))
        .await
        .unwrap()
        .into_inner();
    let slack = conn.plugins.iter().find(|p| p.name == "slack").unwrap();
    assert!(
        !slack.active && slack.status.contains("no channel"),
        "{}",
        slack.status
    );
    slack_config(&gw, "pg", serde_json::json!({"channels": [CHANNEL]})).await;
    let conn = gw
        .connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest { name: "pg".into() }))
        .await
        .unwrap()
        .into_inner();
    let slack = conn.plugins.iter().find(|p| p.name == "slack").unwrap();
    assert!(
        !slack.active && slack.status.contains("no bot token"),
        "{}",
        slack.status
    );
}
