//! The runbooks plugin passes hoop-testkit's conformance check: a plain session (not a
//! runbook run) goes through untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hoop_core::Resources;
use hoop_testkit::conformance::{self, Status};

#[tokio::test]
async fn the_runbooks_plugin_conforms() {
    let report = conformance::check(hoop_plugin_runbooks::REGISTRATION, &Resources::new()).await;
    println!("{report}");
    assert!(
        report.results.iter().all(|r| r.status == Status::Passed),
        "{report}"
    );
}

/// In a session, the plugin denies a runbook run its connection's config does not offer
/// (the config may have changed while the run waited for a review), and lets everything
/// else through.
#[tokio::test]
async fn a_run_the_connection_no_longer_offers_is_denied() {
    use hoop_core::{
        ConnectionInfo, PluginConfig, RunbookRef, SessionCtx, SessionInfo, SessionRequest,
        UserInfo, Verb, Verdict,
    };
    let factory = hoop_plugin_runbooks::REGISTRATION;
    let config = PluginConfig::from_value(serde_json::json!({"paths": ["billing/**"]})).unwrap();
    let plugin = factory.build(&config, &Resources::new()).unwrap();
    let session = |request: SessionRequest| {
        SessionCtx::new(
            SessionInfo::new(
                "s",
                UserInfo::new("alice"),
                ConnectionInfo::new("db", "command"),
                Verb::Exec,
            )
            .with_request(request),
        )
    };
    let run = |path: &str| SessionRequest::new().with_runbook(RunbookRef::new("ops", path, "abc"));
    let mut offered = session(run("billing/refund.runbook.sql"));
    assert!(matches!(
        plugin.on_open(&mut offered).await.unwrap(),
        Verdict::Allow
    ));
    let mut other = session(run("users/unlock.runbook.sh"));
    match plugin.on_open(&mut other).await.unwrap() {
        Verdict::Deny(reason) => assert!(reason.as_str().contains("not offered"), "{reason:?}"),
        v => panic!("expected a denial, got {v:?}"),
    }
    let mut plain = session(SessionRequest::new());
    assert!(matches!(
        plugin.on_open(&mut plain).await.unwrap(),
        Verdict::Allow
    ));
}
