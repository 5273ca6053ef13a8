//! The dlp plugin through hoop-core's public API: a chain masking session output, values
//! split across chunks, release on quiet output, metrics, deployment settings, and failing
//! closed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use hoop_core::{
    Chain, Chunk, CloseReason, ConnectionInfo, Outcome, PluginConfig, PluginFactory, Resources,
    SessionCtx, SessionInfo, Stream, UserInfo, Verb,
};
use hoop_plugin_dlp::engine::Style;
use hoop_plugin_dlp::{CustomTypeConfig, Dlp, DlpFactory, DlpSettings, HOLDBACK};

fn info() -> SessionInfo {
    SessionInfo::new(
        "s-1",
        UserInfo::new("alice"),
        ConnectionInfo::new("pg", "command"),
        Verb::Exec,
    )
}

fn config(types: &[&str]) -> PluginConfig {
    PluginConfig::from_value(serde_json::json!({ "redact_types": types })).unwrap()
}

fn chain(types: &[&str], resources: &Resources) -> Chain {
    let plugin = DlpFactory.build(&config(types), resources).unwrap();
    Chain::new(vec![plugin])
}

async fn output(session: &mut hoop_core::ChainSession, stream: Stream, data: &str) -> String {
    let mut chunk = Chunk::new(stream, data.to_owned());
    let outcome = session.output(&mut chunk).await.unwrap();
    assert!(matches!(outcome, Outcome::Continue), "{outcome:?}");
    String::from_utf8(chunk.data.to_vec()).unwrap()
}

async fn flush(session: &mut hoop_core::ChainSession, stream: Stream) -> String {
    let mut chunk = Chunk::new(stream, "");
    session.flush_output(&mut chunk).await.unwrap();
    String::from_utf8(chunk.data.to_vec()).unwrap()
}

#[tokio::test]
async fn a_value_split_across_chunks_is_masked_and_counted() {
    let chain = chain(&["EMAIL_ADDRESS", "CREDIT_CARD_NUMBER"], &Resources::new());
    let mut session = chain.start(info());
    assert_eq!(session.output_holdback(), Some(HOLDBACK));
    assert_eq!(HOLDBACK, Duration::from_millis(50));
    assert!(matches!(session.open().await.unwrap(), Outcome::Continue));

    let mut seen = String::new();
    for part in [
        "user: alice.sm",
        "ith@exam",
        "ple.com card 4111 11",
        "11 1111 1111\n",
    ] {
        seen += &output(&mut session, Stream::Stdout, part).await;
    }
    seen += &flush(&mut session, Stream::Stdout).await;
    assert_eq!(seen, "user: [EMAIL_ADDRESS] card [CREDIT_CARD_NUMBER]\n");

    // stderr has a redactor of its own: a half value on stdout does not join it.
    let err = output(&mut session, Stream::Stderr, "bob@example.org failed\n").await
        + &flush(&mut session, Stream::Stderr).await;
    assert_eq!(err, "[EMAIL_ADDRESS] failed\n");

    let cx = session.close(CloseReason::Exit { code: 0 }).await.unwrap();
    assert_eq!(cx.metrics.get("dlp.EMAIL_ADDRESS"), 2);
    assert_eq!(cx.metrics.get("dlp.CREDIT_CARD_NUMBER"), 1);
    let raw = "alice.smith@example.com4111 1111 1111 1111bob@example.org";
    assert_eq!(cx.metrics.get("dlp.masked_bytes"), raw.len() as u64);
}

#[tokio::test]
async fn quiet_output_is_released_by_a_flush() {
    let chain = chain(&["EMAIL_ADDRESS"], &Resources::new());
    let mut session = chain.start(info());
    session.open().await.unwrap();
    // A prompt with no newline may be the start of a value: it waits for the flush.
    let shown = output(
        &mut session,
        Stream::Stdout,
        "password for alice@example.com> ",
    )
    .await;
    let released = flush(&mut session, Stream::Stdout).await;
    assert_eq!(shown + &released, "password for [EMAIL_ADDRESS]> ");
    assert_eq!(
        flush(&mut session, Stream::Stdout).await,
        "",
        "nothing left"
    );
    session.close(CloseReason::Exit { code: 0 }).await;
}

#[tokio::test]
async fn input_is_not_masked() {
    let chain = chain(&["EMAIL_ADDRESS"], &Resources::new());
    let mut session = chain.start(info());
    session.open().await.unwrap();
    let mut chunk = Chunk::new(
        Stream::Stdin,
        "select * from users where email = 'a@b.io';\n",
    );
    session.input(&mut chunk).await.unwrap();
    assert_eq!(
        &chunk.data[..],
        b"select * from users where email = 'a@b.io';\n"
    );
    session.close(CloseReason::Exit { code: 0 }).await;
}

#[tokio::test]
async fn output_without_an_open_session_fails_closed() {
    let plugin = DlpFactory
        .build(&config(&["EMAIL_ADDRESS"]), &Resources::new())
        .unwrap();
    let mut cx = SessionCtx::new(info());
    let mut chunk = Chunk::new(Stream::Stdout, "alice@example.com\n");
    let err = plugin.on_output(&mut cx, &mut chunk).await.unwrap_err();
    assert!(err.message().starts_with("dlp:"), "{err}");
    // Nothing of the value is left in the chunk for anyone to pass on.
    assert!(!chunk.data.windows(5).any(|w| w == b"alice"));
}

fn settings() -> DlpSettings {
    DlpSettings {
        default_style: Style::Mask,
        styles: [("EMAIL_ADDRESS".to_owned(), Style::Hash)].into(),
        custom_types: vec![CustomTypeConfig {
            name: "EMPLOYEE_ID".into(),
            regex: Some("EMP-[0-9]{6}".into()),
            ..CustomTypeConfig::default()
        }],
        hash_key: hoop_plugin_dlp::hash_key_from_secret(b"deployment secret"),
    }
}

#[tokio::test]
async fn deployment_settings_give_styles_and_custom_types() {
    let resources = Resources::new().with(Dlp::new(settings()).unwrap());
    let chain = chain(
        &["EMAIL_ADDRESS", "EMPLOYEE_ID", "PHONE_NUMBER"],
        &resources,
    );
    let mut session = chain.start(info());
    session.open().await.unwrap();
    let out = output(
        &mut session,
        Stream::Stdout,
        "EMP-004211 a@example.com (415) 555-0132 a@example.com\n",
    )
    .await;
    let words: Vec<&str> = out.split(' ').collect();
    assert_eq!(words[0], "***-******");
    assert!(
        words[1].starts_with("[EMAIL_ADDRESS:") && words[1].len() == 32,
        "{out}"
    );
    assert_eq!(words[2..4], ["(***)", "***-****"]);
    assert_eq!(words[4].trim_end(), words[1], "same value, same tag");
    session.close(CloseReason::Exit { code: 0 }).await;

    // Another deployment (another secret) tags the same value differently.
    let mut other = settings();
    other.hash_key = hoop_plugin_dlp::hash_key_from_secret(b"another secret");
    let engine = other.engine(&["EMAIL_ADDRESS".to_owned()]).unwrap();
    let tagged = engine.redact(b"a@example.com").output;
    assert_ne!(String::from_utf8(tagged).unwrap(), words[1]);
}

#[test]
fn custom_types_are_valid_names_only_where_the_deployment_defines_them() {
    let resources = Resources::new().with(Dlp::new(settings()).unwrap());
    let with_custom = config(&["EMPLOYEE_ID"]);
    DlpFactory.validate_with(&with_custom, &resources).unwrap();
    let err = DlpFactory
        .validate_with(&with_custom, &Resources::new())
        .unwrap_err();
    assert_eq!(err.field_path(), Some("redact_types[0]"));
    assert!(
        err.message()
            .starts_with("unknown info type `EMPLOYEE_ID`; valid types: ")
    );
    let err = DlpFactory
        .validate_with(&config(&["EMPLOYEE_ID", "BADGE"]), &resources)
        .unwrap_err();
    assert_eq!(err.field_path(), Some("redact_types[1]"));
    assert!(
        err.message().ends_with(", EMPLOYEE_ID"),
        "{}",
        err.message()
    );
}

#[test]
fn bad_settings_name_the_key() {
    let mut bad = settings();
    bad.custom_types.push(CustomTypeConfig {
        name: "BROKEN".into(),
        regex: Some("EMP-[0-9".into()),
        ..CustomTypeConfig::default()
    });
    let err = Dlp::new(bad).unwrap_err();
    assert_eq!(err.field_path(), Some("custom_types[1].regex"));

    let mut bad = settings();
    bad.styles.insert("SHOE_SIZE".into(), Style::Mask);
    assert_eq!(
        Dlp::new(bad).unwrap_err().field_path(),
        Some("styles.SHOE_SIZE")
    );

    let mut bad = settings();
    bad.hash_key.clear();
    assert_eq!(
        Dlp::new(bad).unwrap_err().field_path(),
        Some("default_style")
    );

    let mut bad = settings();
    bad.custom_types.push(bad.custom_types[0].clone());
    assert_eq!(
        Dlp::new(bad).unwrap_err().field_path(),
        Some("custom_types[1].name")
    );
}

#[test]
fn the_listing_shows_examples_masked_with_their_style() {
    let types = settings().info_types();
    assert_eq!(
        types.len(),
        hoop_plugin_dlp::engine::builtin_types().len() + 1
    );
    let employee = types.iter().find(|t| t.name == "EMPLOYEE_ID").unwrap();
    assert!(employee.custom);
    let email = types.iter().find(|t| t.name == "EMAIL_ADDRESS").unwrap();
    assert_eq!(email.style, Style::Hash);
    assert!(email.masked_example.starts_with("[EMAIL_ADDRESS:"));
    let card = types
        .iter()
        .find(|t| t.name == "CREDIT_CARD_NUMBER")
        .unwrap();
    assert_eq!(card.style, Style::Mask);
    assert!(!card.masked_example.is_empty());
    assert!(!card.masked_example.contains(card.example.as_str()));
}
