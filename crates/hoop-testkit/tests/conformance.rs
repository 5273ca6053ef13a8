//! The conformance check on plugins made to pass and to fail each of its checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hoop_core::{
    Chunk, CloseReason, ConfigError, HoldRequest, Plugin, PluginConfig, PluginDescriptor,
    PluginError, PluginFactory, Resources, SessionCtx, Verdict,
};
use hoop_testkit::SessionBuilder;
use hoop_testkit::conformance::{Check, Conformance, ConformanceError, Status, check};

/// What the test plugin does wrong (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    /// `on_close` expects the state `on_open` sets.
    CloseNeedsOpen,
    FailsOnOutput,
    HangsOnInput,
    Holds,
    DeniesOutsiders,
    WrongName,
    NeedsResource,
    RefusesEmptySettings,
}

#[derive(Debug)]
struct Factory {
    descriptor: PluginDescriptor,
    flaw: Flaw,
}

impl Factory {
    const fn new(example: &'static str, flaw: Flaw) -> Self {
        Self {
            descriptor: PluginDescriptor::new("tester", "a plugin under test")
                .with_configuration("`mode`", example),
            flaw,
        }
    }
}

#[derive(Debug)]
struct Tester {
    flaw: Flaw,
}

struct Opened;

/// A resource the `NeedsResource` tester needs.
#[derive(Debug)]
struct Needed;

#[async_trait]
impl Plugin for Tester {
    fn name(&self) -> &str {
        if self.flaw == Flaw::WrongName {
            "other"
        } else {
            "tester"
        }
    }

    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        cx.extensions.insert(Opened);
        Ok(match self.flaw {
            Flaw::Holds => Verdict::Hold(HoldRequest::new("waiting for a reviewer")),
            Flaw::DeniesOutsiders if !cx.info().user.in_group("dba") => {
                Verdict::deny("members of dba only")
            }
            _ => Verdict::Allow,
        })
    }

    async fn on_input(
        &self,
        _cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        if self.flaw == Flaw::HangsOnInput {
            std::future::pending::<()>().await;
        }
        chunk.data = chunk.data.to_ascii_uppercase().into();
        Ok(Verdict::Allow)
    }

    async fn on_output(
        &self,
        cx: &mut SessionCtx,
        _chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        cx.metrics.add("tester.outputs", 1);
        if self.flaw == Flaw::FailsOnOutput {
            return Err(PluginError::new("cannot parse the output"));
        }
        Ok(Verdict::Allow)
    }

    async fn on_close(&self, cx: &mut SessionCtx, _reason: &CloseReason) {
        if self.flaw == Flaw::CloseNeedsOpen {
            assert!(
                cx.extensions.get::<Opened>().is_some(),
                "closed a session it never opened"
            );
        }
        cx.attributes.set("tester.closed", "yes");
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Config {
    mode: String,
}

impl PluginFactory for Factory {
    fn descriptor(&self) -> &PluginDescriptor {
        &self.descriptor
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        config.parse::<Config>().map(drop)
    }

    fn build(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        self.validate(config)?;
        if self.flaw == Flaw::NeedsResource && resources.get::<Needed>().is_none() {
            return Err(ConfigError::new(None, "the host provides no `Needed`"));
        }
        Ok(Arc::new(Tester { flaw: self.flaw }))
    }

    fn validate_settings(&self, settings: &PluginConfig) -> Result<(), ConfigError> {
        if self.flaw == Flaw::RefusesEmptySettings && settings.is_empty() {
            return Err(ConfigError::field("token", "missing"));
        }
        Ok(())
    }
}

const EXAMPLE: &str = r#"{"mode":"strict"}"#;

async fn failure(factory: &Factory) -> ConformanceError {
    Conformance::new(factory, &Resources::new())
        .with_timeout(Duration::from_millis(500))
        .run()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_conforming_plugin_passes_every_check() {
    let report = check(&Factory::new(EXAMPLE, Flaw::None), &Resources::new()).await;
    assert_eq!(report.plugin, "tester");
    let checks: Vec<Check> = report.results.iter().map(|r| r.check).collect();
    assert_eq!(
        checks,
        [
            Check::ExampleConfig,
            Check::EmptySettings,
            Check::Build,
            Check::CloseAfterDenyOnOpen,
            Check::PlainSession,
            Check::CloseAfterDenyOnInput,
        ]
    );
    assert!(
        report.results.iter().all(|r| r.status == Status::Passed),
        "{report}"
    );
    let plain = &report.result(Check::PlainSession).unwrap().detail;
    assert!(
        plain.contains(r#"input: allowed (rewritten to "HELLO, WORLD\n")"#),
        "{plain}"
    );
    assert!(plain.contains("stdout: allowed (unchanged)"), "{plain}");
    assert!(plain.contains("metrics: tester.outputs=2"), "{plain}");
    assert!(plain.contains("attributes: tester.closed"), "{plain}");
    let text = report.to_string();
    assert!(
        text.starts_with("plugin `tester` conforms: 6 checks, 0 skipped"),
        "{text}"
    );
}

#[tokio::test]
async fn holding_or_denying_by_policy_is_accepted_and_reported() {
    let report = check(&Factory::new(EXAMPLE, Flaw::Holds), &Resources::new()).await;
    let plain = report.result(Check::PlainSession).unwrap();
    assert_eq!(plain.status, Status::Skipped);
    assert!(
        plain
            .detail
            .starts_with("open: held by tester: waiting for a reviewer"),
        "{report}"
    );
    assert_eq!(
        report.result(Check::CloseAfterDenyOnInput).unwrap().status,
        Status::Skipped
    );
    assert!(report.passed(Check::CloseAfterDenyOnOpen));

    // Denied by default; a session of a member exercises the chunks.
    let factory = Factory::new(EXAMPLE, Flaw::DeniesOutsiders);
    let report = check(&factory, &Resources::new()).await;
    assert!(!report.passed(Check::PlainSession), "{report}");
    let report = Conformance::new(&factory, &Resources::new())
        .with_session(SessionBuilder::new().id("member").groups(["dba"]))
        .check()
        .await;
    assert!(report.passed(Check::PlainSession), "{report}");
    assert!(report.passed(Check::CloseAfterDenyOnInput), "{report}");
}

#[tokio::test]
async fn a_close_that_needs_the_open_state_is_caught() {
    let err = failure(&Factory::new(EXAMPLE, Flaw::CloseNeedsOpen)).await;
    assert_eq!(err.check, Check::CloseAfterDenyOnOpen);
    assert_eq!(
        err.to_string(),
        "plugin `tester` fails the conformance check `close_after_deny_on_open`: a hook \
         panicked (hooks entered: on_open 0, on_input 0, on_output 0, on_output_flush 0, \
         on_close 1): closed a session it never opened"
    );
}

#[tokio::test]
async fn a_failing_hook_is_named() {
    let err = failure(&Factory::new(EXAMPLE, Flaw::FailsOnOutput)).await;
    assert_eq!(err.check, Check::PlainSession);
    assert_eq!(
        err.message,
        "on_output failed on a chunk of plain text \"hello, world\\n\": cannot parse the output"
    );
}

#[tokio::test]
async fn a_hanging_hook_is_reported_after_the_timeout() {
    let err = failure(&Factory::new(EXAMPLE, Flaw::HangsOnInput)).await;
    assert_eq!(err.check, Check::PlainSession);
    assert!(
        err.message.starts_with(
            "the session did not end within 500ms: a hook hangs (hooks entered: on_open 1, \
             on_input 1,"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn bad_example_configs_are_named() {
    let err = failure(&Factory::new(r#"{"mode": }"#, Flaw::None)).await;
    assert_eq!(err.check, Check::ExampleConfig);
    assert!(
        err.message
            .starts_with(r#"the example config {"mode": } is not JSON: "#),
        "{err}"
    );
    let err = failure(&Factory::new(r#"["strict"]"#, Flaw::None)).await;
    assert!(err.message.contains("is not a JSON object"), "{err}");
    let err = failure(&Factory::new(r#"{"mod":"strict"}"#, Flaw::None)).await;
    assert_eq!(err.check, Check::ExampleConfig);
    assert!(
        err.message.starts_with(
            r#"validate_with refused the example config {"mod":"strict"}: config.mod: unknown field `mod`"#
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_empty_example_builds_with_an_empty_config() {
    // `{}` lacks `mode`: the build says so.
    let err = failure(&Factory::new("", Flaw::None)).await;
    assert_eq!(err.check, Check::Build);
    assert!(
        err.message
            .starts_with("build failed with the config {}: config: missing field `mode`"),
        "{err}"
    );
    // A config given to the check is used instead.
    let config = PluginConfig::from_value(serde_json::json!({"mode": "lax"})).unwrap();
    let report = Conformance::new(&Factory::new("", Flaw::None), &Resources::new())
        .with_config(config)
        .check()
        .await;
    assert!(
        report
            .result(Check::ExampleConfig)
            .unwrap()
            .detail
            .starts_with("no example config"),
        "{report}"
    );
    assert!(
        report
            .result(Check::Build)
            .unwrap()
            .detail
            .starts_with(r#"built with {"mode":"lax"}"#),
        "{report}"
    );
}

#[tokio::test]
async fn settings_names_and_resources_are_checked() {
    let err = failure(&Factory::new(EXAMPLE, Flaw::RefusesEmptySettings)).await;
    assert_eq!(err.check, Check::EmptySettings);
    assert!(
        err.message
            .starts_with("validate_settings refused empty settings: config.token: missing"),
        "{err}"
    );

    let err = failure(&Factory::new(EXAMPLE, Flaw::WrongName)).await;
    assert_eq!(err.check, Check::Build);
    assert!(
        err.message
            .starts_with("the built plugin is named `other` but its descriptor says `tester`"),
        "{err}"
    );

    let factory = Factory::new(EXAMPLE, Flaw::NeedsResource);
    let err = failure(&factory).await;
    assert_eq!(err.check, Check::Build);
    assert!(
        err.message.contains("the host provides no `Needed`"),
        "{err}"
    );
    check(&factory, &Resources::new().with(Needed)).await;
}

#[tokio::test]
#[should_panic(
    expected = "plugin `tester` fails the conformance check `plain_session`: on_output failed"
)]
async fn check_panics_with_the_message() {
    check(
        &Factory::new(EXAMPLE, Flaw::FailsOnOutput),
        &Resources::new(),
    )
    .await;
}
