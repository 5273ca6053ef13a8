//! The access_control plugin: a connection it is attached to exists only for members of its
//! groups and admins. Everyone else gets NOT_FOUND, byte for byte the answer for a
//! connection that does not exist, from every call naming it (and from the reviews of
//! sessions on it); other connections are unaffected.

use std::time::Duration;

use hoop_rs::{
    Backend, Gateway, admin, assert_status, authed, command_connection, config, e2e, pb,
};
use serde_json::json;
use tonic::Code;

e2e!(
    members_and_admins_see_and_use_the_connection_and_nobody_else,
    reviews_on_a_hidden_connection_are_hidden_too,
);

/// How long any single step may take.
const STEP: Duration = Duration::from_secs(30);

async fn step<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}

async fn create(gw: &Gateway, conn: pb::Connection) {
    step(
        "CreateConnection",
        gw.connections()
            .await
            .create_connection(admin(pb::CreateConnectionRequest {
                connection: Some(conn),
            })),
    )
    .await
    .unwrap();
}

async fn restrict(gw: &Gateway, conn: &str, groups: &[&str]) -> pb::PluginAttachment {
    step(
        "AttachPlugin",
        gw.plugins()
            .await
            .attach_plugin(admin(pb::AttachPluginRequest {
                connection: conn.into(),
                plugin: "access_control".into(),
                config: config(json!({ "groups": groups })),
            })),
    )
    .await
    .unwrap()
    .into_inner()
}

/// The names of every connection `token` lists, page by page (`page_size` per page), and
/// how many pages that took.
async fn listed(gw: &Gateway, token: &str, page_size: i32) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut page_token = String::new();
    for pages in 1..=50 {
        let page = step(
            "ListConnections",
            gw.connections().await.list_connections(authed(
                token,
                pb::ListConnectionsRequest {
                    page_size,
                    page_token: page_token.clone(),
                },
            )),
        )
        .await
        .unwrap()
        .into_inner();
        if page_size > 0 {
            assert!(
                page.connections.len() <= usize::try_from(page_size).unwrap(),
                "page too long"
            );
        }
        names.extend(page.connections.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            return (names, pages);
        }
        page_token = page.next_page_token;
    }
    panic!("ListConnections never ended");
}

async fn get(gw: &Gateway, token: &str, name: &str) -> Result<pb::Connection, tonic::Status> {
    step(
        "GetConnection",
        gw.connections().await.get_connection(authed(
            token,
            pb::GetConnectionRequest { name: name.into() },
        )),
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn plugins_of(
    gw: &Gateway,
    token: &str,
    name: &str,
) -> Result<Vec<pb::PluginAttachment>, tonic::Status> {
    step(
        "ListConnectionPlugins",
        gw.plugins().await.list_connection_plugins(authed(
            token,
            pb::ListConnectionPluginsRequest {
                connection: name.into(),
            },
        )),
    )
    .await
    .map(|r| r.into_inner().plugins)
}

fn run(conn: &str, input: &[u8]) -> pb::ExecRequest {
    pb::ExecRequest {
        connection: conn.into(),
        input: input.to_vec(),
        ..Default::default()
    }
}

/// Runs an Exec to its end: its stdout, or the status the call failed with.
async fn exec(gw: &Gateway, token: &str, req: pb::ExecRequest) -> Result<Vec<u8>, tonic::Status> {
    let result = step("Exec", hoop_rs::exec(gw, token, req)).await?;
    assert_eq!(result.exit_code, Some(0), "{result:?}");
    Ok(result.stdout)
}

/// Opens a Connect on `conn`: the status it failed with, if it did.
async fn connect(gw: &Gateway, token: &str, conn: &str) -> Result<(), tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
            connection: conn.into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    drop(tx);
    let mut events = step(
        "Connect",
        gw.sessions().await.connect(authed(
            token,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )),
    )
    .await?
    .into_inner();
    // Stdin is closed: the session runs to its end.
    while step("the Connect session", events.message())
        .await?
        .is_some()
    {}
    Ok(())
}

/// The `(user, connection)` of every session record `token` can list on `conn`.
async fn sessions_on(gw: &Gateway, token: &str, conn: &str) -> Vec<(String, String)> {
    let page = step(
        "ListSessions",
        gw.sessions().await.list_sessions(authed(
            token,
            pb::ListSessionsRequest {
                connection: conn.into(),
                page_size: 1000,
                ..Default::default()
            },
        )),
    )
    .await
    .unwrap()
    .into_inner();
    assert!(page.next_page_token.is_empty());
    page.sessions
        .into_iter()
        .map(|s| (s.user, s.connection))
        .collect()
}

/// Asserts that `hidden` (a call naming the hidden connection `secret`) failed exactly as
/// `missing` (the same call naming `nope`, which does not exist).
#[track_caller]
fn same_as_missing<T: std::fmt::Debug, U: std::fmt::Debug>(
    hidden: Result<T, tonic::Status>,
    missing: Result<U, tonic::Status>,
) {
    let hidden = hidden.expect_err("the hidden connection answered");
    let missing = missing.expect_err("the missing connection answered");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(hidden.code(), missing.code(), "{hidden:?}");
    assert_eq!(
        hidden.message().replace("secret", "nope"),
        missing.message(),
        "{hidden:?}"
    );
    assert_eq!(hidden.message(), "connection `secret` not found");
    assert_eq!(hidden.details(), missing.details());
}

async fn members_and_admins_see_and_use_the_connection_and_nobody_else(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let ann = gw.user_with_token("ann", &["auditor"]).await;
    let root = hoop_rs::ADMIN_TOKEN;
    create(&gw, command_connection("secret", &["cat"])).await;
    create(&gw, command_connection("open", &["cat"])).await;
    let attached = restrict(&gw, "secret", &["dba"]).await;
    assert!(attached.active);
    assert!(
        attached
            .status
            .starts_with("only members of dba (and admins) may see and use this connection"),
        "{}",
        attached.status
    );
    assert!(!attached.status.contains("not implemented"), "{attached:?}");

    // Listing: members and admins see both, the others only `open`.
    let both = vec!["open".to_owned(), "secret".to_owned()];
    assert_eq!(listed(&gw, root, 0).await.0, both);
    assert_eq!(listed(&gw, &bob, 0).await.0, both);
    assert_eq!(listed(&gw, &alice, 0).await.0, ["open"]);
    assert_eq!(listed(&gw, &ann, 0).await.0, ["open"]);

    // Get and its plugins: NOT_FOUND, exactly as for a connection that does not exist.
    same_as_missing(
        get(&gw, &alice, "secret").await,
        get(&gw, &alice, "nope").await,
    );
    same_as_missing(get(&gw, &ann, "secret").await, get(&gw, &ann, "nope").await);
    same_as_missing(
        plugins_of(&gw, &alice, "secret").await,
        plugins_of(&gw, &alice, "nope").await,
    );
    let seen = get(&gw, &bob, "secret").await.unwrap();
    assert_eq!(seen.plugins[0].name, "access_control");
    assert_eq!(
        plugins_of(&gw, &bob, "secret").await.unwrap()[0].name,
        "access_control"
    );
    get(&gw, root, "secret").await.unwrap();
    get(&gw, &alice, "open").await.unwrap();
    assert_eq!(plugins_of(&gw, &alice, "open").await.unwrap().len(), 4);

    // Exec and Connect: NOT_FOUND like a missing connection, and no session is recorded.
    same_as_missing(
        exec(&gw, &alice, run("secret", b"hi\n")).await,
        exec(&gw, &alice, run("nope", b"hi\n")).await,
    );
    same_as_missing(
        connect(&gw, &alice, "secret").await,
        connect(&gw, &alice, "nope").await,
    );
    same_as_missing(
        exec(&gw, &ann, run("secret", b"hi\n")).await,
        exec(&gw, &ann, run("nope", b"hi\n")).await,
    );
    assert_eq!(sessions_on(&gw, root, "secret").await, Vec::new());
    assert_eq!(sessions_on(&gw, &alice, "secret").await, Vec::new());

    // Members and admins use it; everyone uses the other connection.
    assert_eq!(
        exec(&gw, &bob, run("secret", b"bob\n")).await.unwrap(),
        b"bob\n"
    );
    assert_eq!(
        exec(&gw, root, run("secret", b"root\n")).await.unwrap(),
        b"root\n"
    );
    connect(&gw, &bob, "secret").await.unwrap();
    assert_eq!(
        exec(&gw, &alice, run("open", b"alice\n")).await.unwrap(),
        b"alice\n"
    );
    connect(&gw, &alice, "open").await.unwrap();
    let mut users: Vec<String> = sessions_on(&gw, root, "secret")
        .await
        .into_iter()
        .map(|(user, _)| user)
        .collect();
    users.sort();
    assert_eq!(
        users,
        ["admin", "bob", "bob"],
        "no session of alice nor ann"
    );
    // Auditors keep reading every session record (auditing them is their job), those of
    // the connection they cannot see included.
    assert_eq!(sessions_on(&gw, &ann, "secret").await.len(), 3);

    // Paging stays right around hidden connections.
    create(&gw, command_connection("alpha", &["cat"])).await;
    create(&gw, command_connection("zulu", &["cat"])).await;
    assert_eq!(
        listed(&gw, &alice, 1).await,
        (vec!["alpha".into(), "open".into(), "zulu".into()], 3)
    );
    assert_eq!(
        listed(&gw, &alice, 2).await,
        (vec!["alpha".into(), "open".into(), "zulu".into()], 2)
    );
    assert_eq!(
        listed(&gw, &bob, 1).await,
        (
            vec![
                "alpha".into(),
                "open".into(),
                "secret".into(),
                "zulu".into()
            ],
            4
        )
    );

    // Widening the groups lets alice in; detaching the plugin opens it to everyone.
    step(
        "UpdatePluginConfig",
        gw.plugins()
            .await
            .update_plugin_config(admin(pb::UpdatePluginConfigRequest {
                connection: "secret".into(),
                plugin: "access_control".into(),
                config: config(json!({"groups": ["dba", "dev"]})),
            })),
    )
    .await
    .unwrap();
    get(&gw, &alice, "secret").await.unwrap();
    assert_eq!(
        exec(&gw, &alice, run("secret", b"in\n")).await.unwrap(),
        b"in\n"
    );
    assert!(get(&gw, &ann, "secret").await.is_err());
    step(
        "DetachPlugin",
        gw.plugins()
            .await
            .detach_plugin(admin(pb::DetachPluginRequest {
                connection: "secret".into(),
                plugin: "access_control".into(),
            })),
    )
    .await
    .unwrap();
    get(&gw, &ann, "secret").await.unwrap();
    assert_eq!(listed(&gw, &ann, 0).await.0.len(), 4);
    assert_eq!(
        exec(&gw, &ann, run("secret", b"ok\n")).await.unwrap(),
        b"ok\n"
    );

    // Admins only: an empty group list.
    restrict(&gw, "secret", &[]).await;
    assert_status(
        get(&gw, &bob, "secret").await,
        Code::NotFound,
        "connection `secret` not found",
    );
    get(&gw, root, "secret").await.unwrap();
}

/// An Exec held for review.
struct Held {
    review_id: String,
    events: tonic::Streaming<pb::SessionEvent>,
}

/// Starts an Exec and reads its events until it is held.
async fn exec_until_held(gw: &Gateway, token: &str, req: pb::ExecRequest) -> Held {
    use pb::session_event::Event;
    let mut events = step("Exec", gw.sessions().await.exec(authed(token, req)))
        .await
        .unwrap()
        .into_inner();
    loop {
        let event = step("the `held` event", events.message())
            .await
            .unwrap()
            .expect("the session ended without being held")
            .event
            .unwrap();
        match event {
            Event::Started(_) => {}
            Event::Held(held) => {
                return Held {
                    review_id: held.review_id,
                    events,
                };
            }
            other => panic!("unexpected {other:?} before `held`"),
        }
    }
}

impl Held {
    /// The stdout of the rest of the session, once it was let in.
    async fn stdout(mut self) -> Vec<u8> {
        use pb::session_event::Event;
        let mut stdout = Vec::new();
        while let Some(event) = step("the held session", self.events.message())
            .await
            .unwrap()
        {
            match event.event.unwrap() {
                Event::Output(o) => stdout.extend(o.data),
                Event::Exit(e) => assert_eq!(e.exit_code, 0, "{e:?}"),
                Event::Started(_) | Event::Held(_) => {}
            }
        }
        stdout
    }
}

async fn get_review(gw: &Gateway, token: &str, id: &str) -> Result<pb::Review, tonic::Status> {
    step(
        "GetReview",
        gw.reviews()
            .await
            .get_review(authed(token, pb::GetReviewRequest { id: id.into() })),
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn approve(gw: &Gateway, token: &str, id: &str) -> Result<pb::Review, tonic::Status> {
    let req = pb::ApproveReviewRequest {
        id: id.into(),
        ..Default::default()
    };
    step(
        "ApproveReview",
        gw.reviews().await.approve_review(authed(token, req)),
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn reject(gw: &Gateway, token: &str, id: &str) -> Result<pb::Review, tonic::Status> {
    let req = pb::RejectReviewRequest {
        id: id.into(),
        reason: "no".into(),
        ..Default::default()
    };
    step(
        "RejectReview",
        gw.reviews().await.reject_review(authed(token, req)),
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn revoke(gw: &Gateway, token: &str, id: &str) -> Result<pb::Review, tonic::Status> {
    let req = pb::RevokeReviewRequest {
        id: id.into(),
        reason: String::new(),
    };
    step(
        "RevokeReview",
        gw.reviews().await.revoke_review(authed(token, req)),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// The ids of the reviews `token` lists with `req` (one page is enough here).
async fn review_ids(gw: &Gateway, token: &str, req: pb::ListReviewsRequest) -> Vec<String> {
    let page = step(
        "ListReviews",
        gw.reviews().await.list_reviews(authed(token, req)),
    )
    .await
    .unwrap()
    .into_inner();
    page.reviews.into_iter().map(|r| r.id).collect()
}

/// Asserts that `hidden` (a call naming review `id`) failed exactly as for a review that does
/// not exist (`missing`, the same call naming `nope`).
#[track_caller]
fn review_not_found<T: std::fmt::Debug>(
    id: &str,
    hidden: Result<T, tonic::Status>,
    missing: Result<T, tonic::Status>,
) {
    let hidden = hidden.expect_err("the hidden review answered");
    let missing = missing.expect_err("the missing review answered");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert_eq!(hidden.message().replace(id, "nope"), missing.message());
}

async fn reviews_on_a_hidden_connection_are_hidden_too(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let bob = gw.user_with_token("bob", &["dba"]).await;
    let erin = gw.user_with_token("erin", &["sre"]).await;
    let frank = gw.user_with_token("frank", &["dba", "sre"]).await;
    let ann = gw.user_with_token("ann", &["auditor"]).await;
    let root = hoop_rs::ADMIN_TOKEN;
    let mut vault = command_connection("vault", &["cat"]);
    vault.reviewers = vec!["sre".into()];
    create(&gw, vault).await;
    restrict(&gw, "vault", &["dba"]).await;

    // erin reviews for sre but is no dba: she cannot open a session (nor a review) there.
    assert_status(
        exec(&gw, &erin, run("vault", b"x\n")).await,
        Code::NotFound,
        "connection `vault` not found",
    );
    let all = pb::ListReviewsRequest::default();
    assert_eq!(
        review_ids(&gw, root, all.clone()).await,
        Vec::<String>::new()
    );

    // bob (dba) asks; erin does not see the review and cannot decide or revoke it.
    let held = exec_until_held(&gw, &bob, run("vault", b"SELECT 1;\n")).await;
    let id = held.review_id.clone();
    review_not_found(
        &id,
        get_review(&gw, &erin, &id).await,
        get_review(&gw, &erin, "nope").await,
    );
    review_not_found(
        &id,
        approve(&gw, &erin, &id).await,
        approve(&gw, &erin, "nope").await,
    );
    review_not_found(
        &id,
        reject(&gw, &erin, &id).await,
        reject(&gw, &erin, "nope").await,
    );
    review_not_found(
        &id,
        revoke(&gw, &erin, &id).await,
        revoke(&gw, &erin, "nope").await,
    );
    for req in [
        all.clone(),
        pb::ListReviewsRequest {
            awaiting_me: true,
            ..Default::default()
        },
        pb::ListReviewsRequest {
            connection: "vault".into(),
            ..Default::default()
        },
    ] {
        assert_eq!(review_ids(&gw, &erin, req).await, Vec::<String>::new());
    }
    // Nor does an auditor: the connection does not exist for them.
    review_not_found(
        &id,
        get_review(&gw, &ann, &id).await,
        get_review(&gw, &ann, "nope").await,
    );
    assert_eq!(
        review_ids(&gw, &ann, all.clone()).await,
        Vec::<String>::new()
    );
    // The requester, a reviewer who may use the connection, and admins do.
    get_review(&gw, &bob, &id).await.unwrap();
    assert_eq!(
        review_ids(&gw, &frank, all.clone()).await,
        std::slice::from_ref(&id)
    );
    assert_eq!(
        review_ids(
            &gw,
            &frank,
            pb::ListReviewsRequest {
                awaiting_me: true,
                ..Default::default()
            }
        )
        .await,
        std::slice::from_ref(&id)
    );
    assert_eq!(
        review_ids(&gw, root, all.clone()).await,
        std::slice::from_ref(&id)
    );

    // frank (dba and sre) approves: bob's session runs.
    approve(&gw, &frank, &id).await.unwrap();
    assert_eq!(held.stdout().await, b"SELECT 1;\n");

    // A second review, approved, then the connection is narrowed to ops: bob no longer
    // sees it, nor can he run it by its id.
    let held = exec_until_held(&gw, &bob, run("vault", b"SELECT 2;\n")).await;
    let second = held.review_id.clone();
    drop(held);
    approve(&gw, &frank, &second).await.unwrap();
    step(
        "UpdatePluginConfig",
        gw.plugins()
            .await
            .update_plugin_config(admin(pb::UpdatePluginConfigRequest {
                connection: "vault".into(),
                plugin: "access_control".into(),
                config: config(json!({"groups": ["ops"]})),
            })),
    )
    .await
    .unwrap();
    let by_id = |review_id: &str| pb::ExecRequest {
        review_id: review_id.into(),
        ..Default::default()
    };
    review_not_found(
        &second,
        exec(&gw, &bob, by_id(&second)).await,
        exec(&gw, &bob, by_id("nope")).await,
    );
    review_not_found(
        &second,
        get_review(&gw, &bob, &second).await,
        get_review(&gw, &bob, "nope").await,
    );
    let mine = pb::ListReviewsRequest {
        mine: true,
        ..Default::default()
    };
    assert_eq!(review_ids(&gw, &bob, mine).await, Vec::<String>::new());
    assert_eq!(review_ids(&gw, root, all).await.len(), 2);
    // Still approved and unused: nothing ran.
    let review = get_review(&gw, root, &second).await.unwrap();
    assert_eq!(review.status, pb::ReviewStatus::Approved as i32);
}
