//! SearchService, `hoop search` and `hoop-gateway reindex`: the `indexer` plugin indexes
//! what sessions recorded (after masking) on the connections it is attached to; results
//! follow ListSessions' visibility, counts included; a restart catches up; a rebuild from
//! the recordings equals the live index; bad queries name what is wrong.

use std::time::Duration;

use hoop_rs::{
    Backend, Gateway, Setup, admin, assert_status, authed, command_connection, e2e, eventually,
    exec, pb,
};
use tonic::Code;

e2e!(
    planted_words_are_found_by_field_and_qualifier,
    a_masked_value_is_not_findable_but_its_tag_is,
    alice_does_not_find_bobs_sessions_nor_count_them,
    a_restart_during_indexing_catches_up,
    reindex_equals_the_live_index,
    bad_queries_are_refused_naming_the_field,
    the_indexer_attached_nowhere_rests_and_misses_nothing_once_attached,
);

/// How long any single wait may take.
const STEP: Duration = Duration::from_secs(60);

/// Commits at once (tests wait for what they search).
const FAST: &str = "[plugins.indexer]\ncommit_interval = \"20ms\"\n";

async fn gateway(backend: Backend) -> Gateway {
    Setup::new(backend).with_toml(FAST).start().await
}

/// Connection `name` running `sh` on its stdin, masking e-mail addresses in its output,
/// with the indexer attached when `indexed`.
async fn shell(gw: &Gateway, name: &str, indexed: bool) {
    let mut conn = command_connection(name, &["sh"]);
    conn.redact_types = vec!["EMAIL_ADDRESS".into()];
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
    if indexed {
        gw.attach_plugin(name, "indexer", serde_json::json!({}))
            .await;
    }
}

/// Runs `script` as `token` on `conn`; returns the session id.
async fn run(gw: &Gateway, token: &str, conn: &str, script: &str) -> String {
    let result = exec(
        gw,
        token,
        pb::ExecRequest {
            connection: conn.into(),
            input: script.as_bytes().to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!result.session_id.is_empty());
    result.session_id
}

async fn search(
    gw: &Gateway,
    token: &str,
    query: &str,
) -> Result<pb::SearchSessionsResponse, tonic::Status> {
    search_with(gw, token, query, 0, "", pb::SearchOrder::Newest).await
}

async fn search_with(
    gw: &Gateway,
    token: &str,
    query: &str,
    page_size: i32,
    page_token: &str,
    order: pb::SearchOrder,
) -> Result<pb::SearchSessionsResponse, tonic::Status> {
    pb::search_service_client::SearchServiceClient::new(gw.channel().await)
        .search_sessions(authed(
            token,
            pb::SearchSessionsRequest {
                query: query.into(),
                page_size,
                page_token: page_token.into(),
                order_by: order as i32,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The ids found for `query` (one page) and the total.
async fn ids(gw: &Gateway, token: &str, query: &str) -> (Vec<String>, i64) {
    let found = search(gw, token, query).await.unwrap();
    (
        found
            .results
            .iter()
            .map(|r| r.session.as_ref().unwrap().id.clone())
            .collect(),
        found.total_hits,
    )
}

/// Waits until `query` finds exactly `n` sessions for `token`.
async fn wait_for(gw: &Gateway, token: &str, query: &str, n: i64) {
    eventually(STEP, &format!("{n} hits for {query}"), || async {
        (search(gw, token, query).await.ok()?.total_hits == n).then_some(())
    })
    .await;
}

const ADMIN: &str = hoop_rs::ADMIN_TOKEN;

async fn planted_words_are_found_by_field_and_qualifier(backend: Backend) {
    let gw = gateway(backend).await;
    shell(&gw, "pg", true).await;
    shell(&gw, "plain", false).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    // On a connection without the indexer: never indexed.
    run(&gw, &alice, "plain", "echo wombatplain\n").await;
    // The input holds `wom%s` and `batoutput`; only the output holds `wombatoutput`.
    let first = run(&gw, &alice, "pg", "printf 'wom%s\\n' batoutput\n").await;
    let second = run(
        &gw,
        &alice,
        "pg",
        "echo 'drop table orders'; sleep 1; exit 3\n",
    )
    .await;
    wait_for(&gw, ADMIN, "orders", 1).await;
    assert_eq!(
        ids(&gw, ADMIN, "wombatplain").await.1,
        0,
        "not attached: not indexed"
    );
    assert_eq!(
        ids(&gw, ADMIN, "wombatoutput").await.0,
        std::slice::from_ref(&first)
    );
    assert_eq!(ids(&gw, ADMIN, "wombatoutput in:output").await.1, 1);
    assert_eq!(ids(&gw, ADMIN, "wombatoutput in:input").await.1, 0);
    assert_eq!(ids(&gw, ADMIN, "batoutput in:input").await.1, 1);
    // Newest first by default.
    assert_eq!(
        ids(&gw, ADMIN, "user:alice connection:pg").await.0,
        [second.clone(), first.clone()]
    );
    for (query, expected) in [
        ("\"drop table orders\"", vec![second.clone()]),
        ("\"orders table drop\"", vec![]),
        ("is:error", vec![second.clone()]),
        ("-is:error connection:pg", vec![first.clone()]),
        ("exit:3 verb:exec status:done", vec![second.clone()]),
        ("exit:0", vec![first.clone()]),
        ("drop -user:alice", vec![]),
        ("user:bob", vec![]),
        (
            "started:-1h connection:pg",
            vec![second.clone(), first.clone()],
        ),
        ("started:<2000-01-01", vec![]),
        (
            "started:2000-01-01..* connection:pg",
            vec![second.clone(), first.clone()],
        ),
        ("duration:>900ms", vec![second.clone()]),
        ("duration:<900ms connection:pg", vec![first.clone()]),
        ("connection:plain", vec![]),
    ] {
        assert_eq!(ids(&gw, ADMIN, query).await.0, expected, "{query}");
    }
    // Snippets highlight the words; relevance order on request.
    let found = search_with(&gw, ADMIN, "drop orders", 0, "", pb::SearchOrder::Relevance)
        .await
        .unwrap();
    let result = &found.results[0];
    assert!(result.score > 0.0);
    assert!(!result.snippets.is_empty() && result.snippets.len() <= 3);
    for s in &result.snippets {
        for h in &s.highlights {
            let word = &s.fragment[h.start as usize..h.end as usize];
            assert!(["drop", "orders"].contains(&word), "{word}");
        }
    }
    assert!(result.snippets.iter().any(|s| s.field == "input"));
    assert!(result.snippets.iter().any(|s| s.field == "output"));
    // The CLI.
    let out = gw.cli(Some(&alice), &["search", "wombatoutput"]).await;
    let text = out.ok();
    assert!(text.contains(&first), "{text}");
    assert!(text.contains("1 of 1 matching sessions"), "{text}");
    assert!(text.contains("[wombatoutput]"), "{text}");
    let out = gw
        .cli(
            Some(&alice),
            &["-o", "json", "search", "drop", "--relevance"],
        )
        .await;
    assert_eq!(out.json()["totalHits"], "1");
}

async fn a_masked_value_is_not_findable_but_its_tag_is(backend: Backend) {
    let gw = gateway(backend).await;
    shell(&gw, "pg", true).await;
    // The output shows carol@example.com, which dlp masks; the input does not hold it.
    let id = run(
        &gw,
        ADMIN,
        "pg",
        "printf 'ca%sl@exa%sle.com owns it\\n' ro mp\n",
    )
    .await;
    wait_for(&gw, ADMIN, "owns", 1).await;
    for query in [
        "carol@example.com",
        "\"carol@example.com\"",
        "carol",
        "example.com",
    ] {
        assert_eq!(ids(&gw, ADMIN, query).await.1, 0, "{query}");
    }
    assert_eq!(
        ids(&gw, ADMIN, "EMAIL_ADDRESS").await.0,
        std::slice::from_ref(&id)
    );
    assert_eq!(
        ids(&gw, ADMIN, "\"[EMAIL_ADDRESS] owns\" in:output")
            .await
            .0,
        [id]
    );
    let found = search(&gw, ADMIN, "EMAIL_ADDRESS").await.unwrap();
    let fragment = &found.results[0].snippets[0].fragment;
    assert!(fragment.contains("[EMAIL_ADDRESS]"), "{fragment}");
    assert!(!fragment.contains("carol"), "{fragment}");
}

async fn alice_does_not_find_bobs_sessions_nor_count_them(backend: Backend) {
    let gw = gateway(backend).await;
    shell(&gw, "pg", true).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    let bob = gw.user_with_token("bob", &["dev"]).await;
    let auditor = gw.user_with_token("audrey", &["auditor"]).await;
    let mine = run(&gw, &alice, "pg", "echo secretplan alpha\n").await;
    let mut bobs = Vec::new();
    for _ in 0..3 {
        bobs.push(run(&gw, &bob, "pg", "echo secretplan beta\n").await);
    }
    wait_for(&gw, ADMIN, "secretplan", 4).await;
    assert_eq!(ids(&gw, &auditor, "secretplan").await.1, 4);
    assert_eq!(
        ids(&gw, &alice, "secretplan").await,
        (vec![mine.clone()], 1)
    );
    assert_eq!(ids(&gw, &bob, "secretplan").await.1, 3);
    // Asking for bob's sessions in every way finds nothing, and counts nothing.
    for query in [
        "user:bob",
        "beta",
        "secretplan -user:alice",
        "-user:alice",
        "\"secretplan beta\"",
        "",
        "connection:pg -alpha",
    ] {
        let found = search(&gw, &alice, query).await.unwrap();
        assert!(
            found
                .results
                .iter()
                .all(|r| r.session.as_ref().unwrap().user == "alice"),
            "{query}"
        );
        assert!(found.total_hits <= 1, "{query}: {}", found.total_hits);
    }
    // Pages do not reveal them either: one page of one, and no next page.
    let page = search_with(&gw, &alice, "secretplan", 1, "", pb::SearchOrder::Relevance)
        .await
        .unwrap();
    assert_eq!((page.results.len(), page.next_page_token.as_str()), (1, ""));
    // Bob pages through his three.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = search_with(&gw, &bob, "secretplan", 2, &token, pb::SearchOrder::Newest)
            .await
            .unwrap();
        assert_eq!(page.total_hits, 3);
        seen.extend(
            page.results
                .iter()
                .map(|r| r.session.as_ref().unwrap().id.clone()),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    bobs.reverse();
    assert_eq!(seen, bobs, "newest first, each once");
    // The CLI says the same.
    let out = gw.cli(Some(&alice), &["search", "user:bob"]).await;
    assert!(
        out.ok().contains("0 of 0 matching sessions"),
        "{}",
        out.ok()
    );
}

async fn a_restart_during_indexing_catches_up(backend: Backend) {
    // Nothing is committed while it runs: every indexed session waits for the stop.
    let setup = Setup::new(backend)
        .with_toml("[plugins.indexer]\ncommit_interval = \"10m\"\ncommit_docs = 1000\n");
    let gw = setup.start().await;
    shell(&gw, "pg", true).await;
    let mut sessions = Vec::new();
    for i in 0..5 {
        sessions.push(run(&gw, ADMIN, "pg", &format!("echo restartword item{i}\n")).await);
    }
    assert_eq!(
        ids(&gw, ADMIN, "restartword").await.1,
        0,
        "not committed yet"
    );
    // A crash: what the indexer held uncommitted is lost, and its cursor was not saved.
    let mut setup = gw.crash().await;
    setup.extra_toml = FAST.to_owned();
    let gw = setup.start().await;
    wait_for(&gw, ADMIN, "restartword", 5).await;
    for (i, id) in sessions.iter().enumerate() {
        assert_eq!(
            ids(&gw, ADMIN, &format!("item{i}")).await.0,
            std::slice::from_ref(id)
        );
    }
    // One more, then a graceful restart: nothing is indexed twice.
    run(&gw, ADMIN, "pg", "echo restartword item5\n").await;
    wait_for(&gw, ADMIN, "restartword", 6).await;
    let gw = gw.stop().await.start().await;
    run(&gw, ADMIN, "pg", "echo restartword item6\n").await;
    wait_for(&gw, ADMIN, "restartword", 7).await;
    assert_eq!(ids(&gw, ADMIN, "item5").await.1, 1);
}

/// What a query answers, for comparing two indexes.
async fn answers(
    gw: &Gateway,
    queries: &[&str],
) -> Vec<(String, Vec<(String, Vec<pb::Snippet>)>, i64)> {
    let mut out = Vec::new();
    for q in queries {
        let found = search(gw, ADMIN, q).await.unwrap();
        out.push((
            (*q).to_owned(),
            found
                .results
                .into_iter()
                .map(|r| (r.session.unwrap().id, r.snippets))
                .collect(),
            found.total_hits,
        ));
    }
    out
}

async fn reindex_equals_the_live_index(backend: Backend) {
    let gw = gateway(backend).await;
    shell(&gw, "pg", true).await;
    shell(&gw, "plain", false).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    run(&gw, &alice, "pg", "echo select from users; exit 2\n").await;
    run(&gw, ADMIN, "pg", "printf 'ca%sl@exa%sle.com\\n' ro mp\n").await;
    run(&gw, ADMIN, "pg", "echo drop table users\n").await;
    run(&gw, ADMIN, "plain", "echo drop table plain\n").await;
    wait_for(&gw, ADMIN, "connection:pg", 3).await;
    let queries = [
        "users",
        "drop table",
        "EMAIL_ADDRESS",
        "is:error",
        "user:alice",
        "-user:alice",
        "plain",
        "",
    ];
    let live = answers(&gw, &queries).await;
    // While the gateway serves, the index is its own.
    let out = gw
        .setup
        .gateway_command()
        .arg("reindex")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stop the gateway"), "{stderr}");
    let setup = gw.stop().await;
    // Rebuilt from nothing but the recordings.
    std::fs::remove_dir_all(setup.data_dir().join("index")).unwrap();
    let out = setup
        .gateway_command()
        .arg("reindex")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reindexed 3 sessions"), "{stdout}");
    let gw = setup.start().await;
    assert_eq!(answers(&gw, &queries).await, live);
    // And live indexing goes on after it, from where the rebuild began.
    run(&gw, ADMIN, "pg", "echo after reindex\n").await;
    wait_for(&gw, ADMIN, "connection:pg", 4).await;
    assert_eq!(ids(&gw, ADMIN, "users").await.1, 2);
}

async fn bad_queries_are_refused_naming_the_field(backend: Backend) {
    let gw = gateway(backend).await;
    let alice = gw.user_with_token("alice", &["dev"]).await;
    for (query, needle) in [
        ("started:>yesterday", "`started:>yesterday`"),
        ("started:2026-02-30", "2026-02-30"),
        ("started:-forever", "`started:-forever`"),
        ("duration:>10 parsecs", "`duration:>10`"),
        ("exit:ok", "`exit:ok`"),
        ("verb:sudo", "unknown verb `sudo`"),
        ("status:fine", "unknown status `fine`"),
        ("in:args", "`in:args`"),
        ("is:sad", "`is:sad`"),
        ("colour:red drop", "unknown qualifier `colour:`"),
        ("user:", "`user:`"),
        ("\"drop table", "quote is not closed"),
    ] {
        let err = search(&gw, &alice, query).await.unwrap_err();
        assert_status(Err::<(), _>(err.clone()), Code::InvalidArgument, needle);
        assert!(err.message().starts_with("query: "), "{}", err.message());
    }
    let err = search_with(&gw, &alice, "x", 0, "bogus", pb::SearchOrder::Newest)
        .await
        .unwrap_err();
    assert_status(Err::<(), _>(err), Code::InvalidArgument, "page_token");
    let err = search_with(&gw, &alice, "x", -1, "", pb::SearchOrder::Newest)
        .await
        .unwrap_err();
    assert_status(Err::<(), _>(err), Code::InvalidArgument, "page_size");
    let out = gw
        .cli(Some(&alice), &["search", "started:>yesterday"])
        .await;
    assert_ne!(out.code, Some(0));
    assert!(out.err().contains("started:>yesterday"), "{}", out.err());
    // No token: UNAUTHENTICATED, not a search.
    let err = pb::search_service_client::SearchServiceClient::new(gw.channel().await)
        .search_sessions(pb::SearchSessionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

/// Attached to no connection, the indexer rests instead of reading every event; a session
/// that ends after it is attached (even at once) is indexed all the same, one that ends while
/// it is attached nowhere is not, and a detach then a new attach go through the same. (Which
/// sessions count is decided when the indexer reads their end, as before resting existed:
/// a session of a connection attached after it ended may or may not be indexed, so none is
/// run here.)
async fn the_indexer_attached_nowhere_rests_and_misses_nothing_once_attached(backend: Backend) {
    let gw = gateway(backend).await;
    shell(&gw, "plain", false).await;
    shell(&gw, "pg", false).await;
    run(&gw, ADMIN, "plain", "echo restword before\n").await;
    gw.attach_plugin("pg", "indexer", serde_json::json!({}))
        .await;
    let first = run(&gw, ADMIN, "pg", "echo restword first\n").await;
    wait_for(&gw, ADMIN, "restword", 1).await;
    assert_eq!(
        ids(&gw, ADMIN, "first").await.0,
        std::slice::from_ref(&first)
    );
    assert_eq!(ids(&gw, ADMIN, "before").await.1, 0);

    // Detached: the next sessions are passed over (the indexer goes back to rest)...
    gw.detach_plugin("pg", "indexer").await;
    run(&gw, ADMIN, "pg", "echo restword detached\n").await;
    // ... and after a new attach, on another connection, a session is indexed at once again.
    gw.attach_plugin("plain", "indexer", serde_json::json!({}))
        .await;
    let second = run(&gw, ADMIN, "plain", "echo restword second\n").await;
    wait_for(&gw, ADMIN, "restword", 2).await;
    assert_eq!(
        ids(&gw, ADMIN, "second").await.0,
        std::slice::from_ref(&second)
    );
    assert_eq!(ids(&gw, ADMIN, "detached").await.1, 0);
}
