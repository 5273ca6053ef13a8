//! The conformance check every plugin crate runs on its factory.
//!
//! ```
//! use hoop_core::Resources;
//! # use std::sync::Arc;
//! # use hoop_core::{ConfigError, Plugin, PluginConfig, PluginDescriptor, PluginFactory};
//! # #[derive(Debug)] struct Noop;
//! # impl Plugin for Noop { fn name(&self) -> &str { "noop" } }
//! # #[derive(Debug)] struct NoopFactory;
//! # static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new("noop", "does nothing");
//! # impl PluginFactory for NoopFactory {
//! #     fn descriptor(&self) -> &PluginDescriptor { &DESCRIPTOR }
//! #     fn build(&self, _: &PluginConfig, _: &Resources) -> Result<Arc<dyn Plugin>, ConfigError> { Ok(Arc::new(Noop)) }
//! # }
//!
//! // In tests/conformance.rs of a plugin crate, under `#[tokio::test]`:
//! # #[tokio::main(flavor = "current_thread")]
//! async fn the_plugin_conforms() {
//!     let report = hoop_testkit::conformance::check(&NoopFactory, &Resources::new()).await;
//!     println!("{report}");
//! }
//! # fn main() { the_plugin_conforms() }
//! ```
//!
//! [`check`] panics with a message naming the plugin, the check and what was wrong;
//! [`Conformance::run`] returns the same as a [`ConformanceError`]. Both give a [`Report`]
//! of what was checked and seen when the plugin passes.
//!
//! # What is checked, in order
//!
//! 1. **`example_config`** ([`Check::ExampleConfig`]): if the descriptor's
//!    [`example_config`](hoop_core::PluginDescriptor::example_config) is not empty, it parses
//!    as JSON, is an object, and [`validate_with`](PluginFactory::validate_with) accepts it
//!    with the resources given to the check. An empty example means the config `{}`, which
//!    is not checked here (step 3 builds with it).
//! 2. **`empty_settings`** ([`Check::EmptySettings`]):
//!    [`validate_settings`](PluginFactory::validate_settings) accepts empty settings: the
//!    gateway must start with no `[plugins.<name>]` table.
//! 3. **`build`** ([`Check::Build`]): the factory builds the plugin with the config (the
//!    example, `{}`, or the one given with [`Conformance::with_config`], which must pass
//!    `validate_with` too) and the resources, and the built plugin's
//!    [`name`](hoop_core::Plugin::name) is the descriptor's name (the chain reports denials
//!    and failures under it). The plugin is built whatever its
//!    [`activation`](PluginFactory::activation) says; the report shows the activation.
//! 4. **`close_after_deny_on_open`** ([`Check::CloseAfterDenyOnOpen`]): in a chain of a
//!    [`Probe`] that denies on open followed by the plugin (wrapped in a [`CountingPlugin`]),
//!    a session is denied by the probe; the plugin's `on_open` never runs, its `on_close`
//!    runs exactly once, with [`CloseReason::Denied`] naming the probe, and returns (it must
//!    not panic or hang without the per-session state its `on_open` would have set).
//! 5. **`plain_session`** ([`Check::PlainSession`]): in a chain holding only the plugin, a
//!    session (see [`Conformance::with_session`]: by default user `alice` with no groups,
//!    connection `conformance` of type `command`, verb `exec`, up-front input
//!    [`PLAIN_TEXT`]) opens with an outcome that is **not a failure**: allowed, held or
//!    denied are all accepted, since a plugin may hold or deny by policy. If it opened, one
//!    chunk of [`PLAIN_TEXT`] goes through `on_input`, one through `on_output` on stdout and
//!    one on stderr, then both output streams are flushed if the plugin holds output back;
//!    none of these may **fail** (a denial is again accepted, and stops the session). Then
//!    the session is closed and `on_close` must have run exactly once. What the plugin did
//!    to the text is reported, not judged.
//! 6. **`close_after_deny_on_input`** ([`Check::CloseAfterDenyOnInput`]): in a chain of the
//!    plugin followed by a probe that denies the first chunk of input, a session opens (if
//!    the plugin lets it: otherwise this check is [`Status::Skipped`] as to the denial), is
//!    denied on input by the probe, and the plugin's `on_close` runs exactly once, with
//!    [`CloseReason::Denied`] naming the probe, after its own `on_open` did run.
//!
//! Each session runs on a task of its own, so a hook that panics is reported as a failure of
//! its check (with the hooks entered so far) rather than as a panic of the test, and within
//! a time limit ([`Conformance::with_timeout`], 30 s by default), so a hook that hangs
//! awaiting something is reported too (a hook that blocks its thread blocks the test's
//! runtime, and no time limit can interrupt it). Sessions get distinct ids: the session's id followed by `-deny-open`,
//! `-plain` and `-deny-input`.
//!
//! [`CloseReason::Denied`]: hoop_core::CloseReason::Denied

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hoop_core::{
    Activation, Chain, CloseReason, Outcome, Plugin, PluginConfig, PluginFactory, Resources,
};

use crate::driver::{DriveError, SessionDriver, SessionRun, Step};
use crate::probes::{CountingPlugin, HookCounts, Probe};
use crate::session::SessionBuilder;

/// The text every chunk of the conformance sessions carries (and the default session's
/// up-front input).
pub const PLAIN_TEXT: &str = "hello, world\n";

/// The name of the probe plugin the check puts next to the plugin.
pub const PROBE: &str = "conformance_probe";

/// The reason the probe denies with.
pub const PROBE_REASON: &str = "denied by the conformance probe";

/// How long one conformance session may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks `factory` with `resources` and the defaults of [`Conformance`]; panics with a
/// precise message if the plugin does not conform.
///
/// # Panics
/// When a check fails: the message names the plugin, the check and what was wrong.
pub async fn check(factory: &dyn PluginFactory, resources: &Resources) -> Report {
    Conformance::new(factory, resources).check().await
}

/// One of the checks (see the [module docs](self) for exactly what each checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// The descriptor's example config parses and passes `validate_with`.
    ExampleConfig,
    /// `validate_settings` accepts empty settings.
    EmptySettings,
    /// The factory builds the plugin, named as its descriptor says.
    Build,
    /// `on_close` runs exactly once when an earlier plugin denies on open.
    CloseAfterDenyOnOpen,
    /// A plain session through a chain of the plugin alone does not fail.
    PlainSession,
    /// `on_close` runs exactly once when a later plugin denies on input.
    CloseAfterDenyOnInput,
}

impl Check {
    /// The check's name, as in the report (`example_config`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ExampleConfig => "example_config",
            Check::EmptySettings => "empty_settings",
            Check::Build => "build",
            Check::CloseAfterDenyOnOpen => "close_after_deny_on_open",
            Check::PlainSession => "plain_session",
            Check::CloseAfterDenyOnInput => "close_after_deny_on_input",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a check was carried out in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Checked, and the plugin passed.
    Passed,
    /// Not carried out in full because the plugin, by policy, did not let the session get
    /// that far (the detail says why); what could be checked passed.
    Skipped,
}

/// The result of one check that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// Whether it was carried out in full.
    pub status: Status,
    /// What was seen.
    pub detail: String,
}

/// What the conformance check checked and saw, for a plugin that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The plugin's registry name.
    pub plugin: String,
    /// Every check, in the order it ran.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// The result of `check`.
    pub fn result(&self, check: Check) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.check == check)
    }

    /// Whether `check` was carried out in full and passed.
    pub fn passed(&self, check: Check) -> bool {
        self.result(check)
            .is_some_and(|r| r.status == Status::Passed)
    }

    fn push(&mut self, check: Check, status: Status, detail: impl Into<String>) {
        self.results.push(CheckResult {
            check,
            status,
            detail: detail.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skipped = self
            .results
            .iter()
            .filter(|r| r.status == Status::Skipped)
            .count();
        writeln!(
            f,
            "plugin `{}` conforms: {} checks, {} skipped in part",
            self.plugin,
            self.results.len(),
            skipped
        )?;
        for r in &self.results {
            let mark = match r.status {
                Status::Passed => "ok  ",
                Status::Skipped => "skip",
            };
            writeln!(f, "  {mark} {}: {}", r.check, r.detail)?;
        }
        Ok(())
    }
}

/// A plugin failed a conformance check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}` fails the conformance check `{check}`: {message}")]
#[non_exhaustive]
pub struct ConformanceError {
    /// The plugin's registry name.
    pub plugin: String,
    /// The check it failed.
    pub check: Check,
    /// What was wrong.
    pub message: String,
}

/// The conformance check of one factory, with its options.
#[derive(Debug, Clone)]
pub struct Conformance<'a> {
    factory: &'a dyn PluginFactory,
    resources: &'a Resources,
    config: Option<PluginConfig>,
    session: SessionBuilder,
    timeout: Duration,
}

impl<'a> Conformance<'a> {
    /// The check of `factory`, building its plugin with `resources` (give it every resource
    /// the plugin needs: building without one is a failure of [`Check::Build`]).
    pub fn new(factory: &'a dyn PluginFactory, resources: &'a Resources) -> Self {
        Self {
            factory,
            resources,
            config: None,
            session: SessionBuilder::new()
                .id("conformance")
                .connection("conformance", "command")
                .input(PLAIN_TEXT),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Builds the plugin with `config` rather than the descriptor's example (which is
    /// still checked, in [`Check::ExampleConfig`]).
    #[must_use]
    pub fn with_config(mut self, config: PluginConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Runs the sessions as `session` says (e.g. a user in the groups the plugin's example
    /// config lets in, so the chunks are exercised too). Its id is the prefix of the
    /// sessions' ids.
    #[must_use]
    pub fn with_session(mut self, session: SessionBuilder) -> Self {
        self.session = session;
        self
    }

    /// Sets how long one session may take before the check fails (default
    /// [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs every check; panics with the error's message if one fails.
    ///
    /// # Panics
    /// When a check fails: the message names the plugin, the check and what was wrong.
    #[allow(clippy::panic)] // Panicking with a precise message is what a test helper is for.
    pub async fn check(self) -> Report {
        match self.run().await {
            Ok(report) => report,
            Err(error) => panic!("{error}"),
        }
    }

    /// Runs every check, stopping at the first that fails.
    ///
    /// # Errors
    /// The first check that failed, and why.
    pub async fn run(self) -> Result<Report, ConformanceError> {
        let descriptor = self.factory.descriptor();
        let name = descriptor.name;
        let fail = |check: Check, message: String| ConformanceError {
            plugin: name.to_owned(),
            check,
            message,
        };
        let mut report = Report {
            plugin: name.to_owned(),
            results: Vec::new(),
        };

        // 1. The example config.
        let example = descriptor.example_config;
        let example_config = if example.trim().is_empty() {
            report.push(
                Check::ExampleConfig,
                Status::Passed,
                "no example config: the plugin is built with `{}`",
            );
            PluginConfig::empty()
        } else {
            let config = parse_example(example).map_err(|m| fail(Check::ExampleConfig, m))?;
            self.factory
                .validate_with(&config, self.resources)
                .map_err(|e| {
                    fail(
                        Check::ExampleConfig,
                        format!("validate_with refused the example config {example}: {e}"),
                    )
                })?;
            report.push(
                Check::ExampleConfig,
                Status::Passed,
                format!("{example} parses and passes validate_with"),
            );
            config
        };

        // 2. Empty settings.
        self.factory
            .validate_settings(&PluginConfig::empty())
            .map_err(|e| {
                fail(
                    Check::EmptySettings,
                    format!(
                        "validate_settings refused empty settings: {e}; the host must start \
                         without a `[plugins.{name}]` table (give every setting a default)"
                    ),
                )
            })?;
        report.push(
            Check::EmptySettings,
            Status::Passed,
            "validate_settings accepts empty settings",
        );

        // 3. Build.
        let config = match &self.config {
            Some(config) => {
                self.factory
                    .validate_with(config, self.resources)
                    .map_err(|e| {
                        fail(
                            Check::Build,
                            format!(
                                "validate_with refused the config given to the check {}: {e}",
                                config.to_value()
                            ),
                        )
                    })?;
                config.clone()
            }
            None => example_config,
        };
        let plugin = self.factory.build(&config, self.resources).map_err(|e| {
            fail(
                Check::Build,
                format!(
                    "build failed with the config {}: {e} (give the check the resources \
                         the plugin needs)",
                    config.to_value()
                ),
            )
        })?;
        if plugin.name() != name {
            return Err(fail(
                Check::Build,
                format!(
                    "the built plugin is named `{}` but its descriptor says `{name}`: the \
                     chain reports denials and failures under Plugin::name",
                    plugin.name()
                ),
            ));
        }
        let activation = match self.factory.activation(&config) {
            Activation::Active(status) => format!("active: {status}"),
            Activation::Inactive(status) => format!("inactive: {status}"),
        };
        report.push(
            Check::Build,
            Status::Passed,
            format!("built with {} ({activation})", config.to_value()),
        );

        // 4. on_close once after a deny on open by an earlier plugin.
        let check = Check::CloseAfterDenyOnOpen;
        let counted = Arc::new(CountingPlugin::new(Arc::clone(&plugin)));
        let chain = Chain::new(vec![
            Arc::new(Probe::allowing(PROBE).deny_open(PROBE_REASON)) as Arc<dyn Plugin>,
            counted.clone(),
        ]);
        let run = self
            .drive(chain, "deny-open", &counted)
            .await
            .map_err(|m| fail(check, m))?;
        if run.denied() != Some((PROBE, PROBE_REASON)) {
            return Err(fail(
                check,
                format!(
                    "the probe before the plugin denied on open, yet the session's outcome \
                     is {:?}",
                    run.outcome()
                ),
            ));
        }
        let counts = counted.counts();
        if counts.open != 0 {
            return Err(fail(
                check,
                format!(
                    "the plugin's on_open ran {} times although an earlier plugin denied",
                    counts.open
                ),
            ));
        }
        expect_one_close(&counts, &probe_denial()).map_err(|m| fail(check, m))?;
        report.push(
            check,
            Status::Passed,
            format!(
                "denied by `{PROBE}` before the plugin: on_close ran once, with \
                 `{}`{}",
                probe_denial(),
                attributes_note(&run)
            ),
        );

        // 5. A plain session through the plugin alone.
        let check = Check::PlainSession;
        let counted = Arc::new(CountingPlugin::new(Arc::clone(&plugin)));
        let chain = Chain::new(vec![counted.clone() as Arc<dyn Plugin>]);
        let run = self
            .drive(chain, "plain", &counted)
            .await
            .map_err(|m| fail(check, m))?;
        if let Outcome::Failed { error, .. } = &run.open {
            return Err(fail(
                check,
                format!(
                    "on_open failed on a plain session: {error} (a plugin may allow, hold or \
                     deny, but not fail; give the check the resources the plugin needs)"
                ),
            ));
        }
        for step in &run.steps {
            if let Outcome::Failed { error, .. } = &step.outcome {
                return Err(fail(
                    check,
                    format!(
                        "{} failed on a chunk of plain text {PLAIN_TEXT:?}: {error}",
                        hook_of(&step.step)
                    ),
                ));
            }
        }
        let counts = counted.counts();
        expect_one_close(&counts, &run.close_reason).map_err(|m| fail(check, m))?;
        report.push(
            check,
            if run.opened() {
                Status::Passed
            } else {
                Status::Skipped
            },
            describe_plain(&run, &counts),
        );

        // 6. on_close once after a deny on input by a later plugin.
        let check = Check::CloseAfterDenyOnInput;
        let counted = Arc::new(CountingPlugin::new(Arc::clone(&plugin)));
        let chain = Chain::new(vec![
            counted.clone() as Arc<dyn Plugin>,
            Arc::new(Probe::allowing(PROBE).deny_input(PROBE_REASON)),
        ]);
        let run = self
            .drive(chain, "deny-input", &counted)
            .await
            .map_err(|m| fail(check, m))?;
        let counts = counted.counts();
        if !run.opened() {
            if let Outcome::Failed { error, .. } = &run.open {
                return Err(fail(
                    check,
                    format!("on_open failed on a plain session: {error}"),
                ));
            }
            expect_one_close(&counts, &run.close_reason).map_err(|m| fail(check, m))?;
            report.push(
                check,
                Status::Skipped,
                format!(
                    "the plugin did not let the session open ({}): no input to deny; on_close \
                     ran once",
                    describe_outcome(&run.open)
                ),
            );
        } else {
            match run.outcome() {
                Outcome::Denied { plugin, .. } if plugin == PROBE => {
                    expect_one_close(&counts, &probe_denial()).map_err(|m| fail(check, m))?;
                    report.push(
                        check,
                        Status::Passed,
                        format!(
                            "opened, then denied on input by `{PROBE}` after the plugin: \
                             on_close ran once, with `{}`",
                            probe_denial()
                        ),
                    );
                }
                Outcome::Failed { error, .. } => {
                    return Err(fail(
                        check,
                        format!("on_input failed on a chunk of plain text: {error}"),
                    ));
                }
                other => {
                    // The plugin itself denied the input by policy: the probe never saw it.
                    expect_one_close(&counts, &run.close_reason).map_err(|m| fail(check, m))?;
                    report.push(
                        check,
                        Status::Skipped,
                        format!(
                            "the plugin stopped the input itself ({}): on_close ran once",
                            describe_outcome(other)
                        ),
                    );
                }
            }
        }
        Ok(report)
    }

    /// Runs one conformance session on a task of its own, within the time limit.
    async fn drive(
        &self,
        chain: Chain,
        suffix: &str,
        counted: &CountingPlugin,
    ) -> Result<SessionRun, String> {
        let id = format!("{}-{suffix}", self.session.session_id());
        let driver = SessionDriver::with_chain(chain)
            .session(self.session.clone().id(id))
            .input(PLAIN_TEXT)
            .output(PLAIN_TEXT)
            .stderr(PLAIN_TEXT);
        let mut task = tokio::spawn(driver.run());
        match tokio::time::timeout(self.timeout, &mut task).await {
            Ok(Ok(Ok(run))) => Ok(run),
            Ok(Ok(Err(DriveError::Chain(e)))) => Err(format!("the chain refused a call: {e}")),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(join)) if join.is_panic() => Err(format!(
                "a hook panicked ({}): {}",
                entered(&counted.counts()),
                panic_message(join.into_panic())
            )),
            Ok(Err(join)) => Err(format!("the session's task ended: {join}")),
            Err(_) => {
                task.abort();
                Err(format!(
                    "the session did not end within {:?}: a hook hangs ({})",
                    self.timeout,
                    entered(&counted.counts())
                ))
            }
        }
    }
}

fn parse_example(example: &str) -> Result<PluginConfig, String> {
    let value: serde_json::Value = serde_json::from_str(example)
        .map_err(|e| format!("the example config {example} is not JSON: {e}"))?;
    PluginConfig::from_value(value)
        .map_err(|e| format!("the example config {example} is not a JSON object: {e}"))
}

fn probe_denial() -> CloseReason {
    CloseReason::Denied {
        plugin: PROBE.to_owned(),
        reason: PROBE_REASON.to_owned(),
    }
}

fn expect_one_close(counts: &HookCounts, reason: &CloseReason) -> Result<(), String> {
    match counts.close_reasons.as_slice() {
        [only] if only == reason => Ok(()),
        [only] => Err(format!(
            "on_close ran once but with `{only}` rather than `{reason}`"
        )),
        reasons => Err(format!(
            "on_close ran {} times (reasons: {:?}), not exactly once",
            reasons.len(),
            reasons.iter().map(ToString::to_string).collect::<Vec<_>>()
        )),
    }
}

fn entered(counts: &HookCounts) -> String {
    format!(
        "hooks entered: on_open {}, on_input {}, on_output {}, on_output_flush {}, on_close {}",
        counts.open, counts.input, counts.output, counts.flush, counts.close
    )
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "(a panic without a message)".to_owned(),
        },
    }
}

fn hook_of(step: &Step) -> &'static str {
    match step {
        Step::Input(_) => "on_input",
        Step::Output(..) => "on_output",
        Step::Flush(_) => "the output flush",
    }
}

fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Continue => "allowed".to_owned(),
        Outcome::Held { plugin, request } => format!("held by {plugin}: {}", request.reason),
        Outcome::Denied { plugin, reason } => format!("denied by {plugin}: {reason}"),
        Outcome::Failed { plugin, error } => format!("{plugin} failed: {error}"),
        other => format!("{other:?}"),
    }
}

fn attributes_note(run: &SessionRun) -> String {
    let names: Vec<&str> = run.attributes().iter().map(|(k, _)| k).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("; attributes set: {}", names.join(", "))
    }
}

fn describe_plain(run: &SessionRun, counts: &HookCounts) -> String {
    if !run.opened() {
        return format!(
            "open: {} (accepted by policy; no chunk exercised); on_close ran once",
            describe_outcome(&run.open)
        );
    }
    let mut parts = vec!["open: allowed".to_owned()];
    for step in &run.steps {
        let what = match &step.step {
            Step::Input(_) => "input".to_owned(),
            Step::Output(stream, _) => stream.as_str().to_owned(),
            Step::Flush(stream) => format!("flush {}", stream.as_str()),
        };
        let text = match &step.step {
            Step::Flush(_) if step.chunk.data.is_empty() => String::new(),
            Step::Flush(_) => format!(
                " (released {:?})",
                String::from_utf8_lossy(&step.chunk.data)
            ),
            Step::Input(data) | Step::Output(_, data) if *data == step.chunk.data => {
                " (unchanged)".to_owned()
            }
            _ => format!(
                " (rewritten to {:?})",
                String::from_utf8_lossy(&step.chunk.data)
            ),
        };
        parts.push(format!("{what}: {}{text}", describe_outcome(&step.outcome)));
    }
    let metrics: Vec<String> = run
        .metrics()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !metrics.is_empty() {
        parts.push(format!("metrics: {}", metrics.join(", ")));
    }
    let attributes: Vec<&str> = run.attributes().iter().map(|(k, _)| k).collect();
    if !attributes.is_empty() {
        parts.push(format!("attributes: {}", attributes.join(", ")));
    }
    parts.push(format!("on_close ran once ({})", entered(counts)));
    parts.join("; ")
}
