//! Plugins for tests: [`CountingPlugin`], a transparent proxy that counts every hook of the
//! plugin it wraps, and [`Probe`], a plugin that allows, denies or fails where told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hoop_core::{Chunk, CloseReason, Plugin, PluginError, SessionCtx, Verdict};
use tokio::sync::watch;

/// How many times each hook of a [`CountingPlugin`] ran, and the close reasons it got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HookCounts {
    /// `on_open` calls.
    pub open: usize,
    /// `on_input` calls.
    pub input: usize,
    /// `on_output` calls.
    pub output: usize,
    /// `on_output_flush` calls.
    pub flush: usize,
    /// `on_close` calls.
    pub close: usize,
    /// The reason of each `on_close` call, in order.
    pub close_reasons: Vec<CloseReason>,
}

/// Wraps a plugin and counts its hooks; every hook (and [`name`](Plugin::name) and
/// [`output_holdback`](Plugin::output_holdback)) is delegated unchanged, so the chain sees
/// the wrapped plugin.
///
/// ```
/// use std::sync::Arc;
/// use hoop_core::{Chain, CloseReason, Plugin};
/// use hoop_testkit::{CountingPlugin, Probe, SessionBuilder};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let counted = Arc::new(CountingPlugin::new(Arc::new(Probe::allowing("inner"))));
/// let chain = Chain::new(vec![
///     Arc::new(Probe::allowing("gate").deny_open("closed today")) as Arc<dyn Plugin>,
///     counted.clone(),
/// ]);
/// let mut session = chain.start(SessionBuilder::new().build());
/// session.open().await.unwrap();
/// session.close(CloseReason::Exit { code: 0 }).await;
/// let counts = counted.counts();
/// assert_eq!((counts.open, counts.close), (0, 1));
/// # }
/// ```
#[derive(Debug)]
pub struct CountingPlugin {
    inner: Arc<dyn Plugin>,
    counts: Mutex<HookCounts>,
    closes: watch::Sender<usize>,
}

impl CountingPlugin {
    /// Counts the hooks of `inner`.
    pub fn new(inner: Arc<dyn Plugin>) -> Self {
        Self {
            inner,
            counts: Mutex::new(HookCounts::default()),
            closes: watch::Sender::new(0),
        }
    }

    /// The wrapped plugin.
    pub fn inner(&self) -> &Arc<dyn Plugin> {
        &self.inner
    }

    /// The counts so far.
    pub fn counts(&self) -> HookCounts {
        self.lock().clone()
    }

    /// Waits until `on_close` has run at least `n` times (e.g. the close a dropped session
    /// runs on a task of its own), or `timeout` has passed. Returns the number of closes.
    pub async fn wait_for_closes(&self, n: usize, timeout: Duration) -> usize {
        let mut rx = self.closes.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|closes| *closes >= n)).await;
        *rx.borrow()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HookCounts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Plugin for CountingPlugin {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        self.lock().open += 1;
        self.inner.on_open(cx).await
    }

    async fn on_input(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        self.lock().input += 1;
        self.inner.on_input(cx, chunk).await
    }

    async fn on_output(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        self.lock().output += 1;
        self.inner.on_output(cx, chunk).await
    }

    fn output_holdback(&self) -> Option<Duration> {
        self.inner.output_holdback()
    }

    async fn on_output_flush(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        self.lock().flush += 1;
        self.inner.on_output_flush(cx, chunk).await
    }

    async fn on_close(&self, cx: &mut SessionCtx, reason: &CloseReason) {
        {
            let mut counts = self.lock();
            counts.close += 1;
            counts.close_reasons.push(reason.clone());
        }
        self.inner.on_close(cx, reason).await;
        self.closes.send_modify(|n| *n += 1);
    }
}

/// What a [`Probe`] hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Act {
    Allow,
    Deny(String),
    Fail(String),
}

impl Act {
    fn verdict(&self) -> Result<Verdict, PluginError> {
        match self {
            Act::Allow => Ok(Verdict::Allow),
            Act::Deny(reason) => Ok(Verdict::deny(reason.clone())),
            Act::Fail(message) => Err(PluginError::new(message.clone())),
        }
    }
}

/// A plugin that allows everything, or denies or fails on open or on input where told: put
/// it before the plugin under test to see what that plugin does when an earlier one ends
/// the session.
#[derive(Debug, Clone)]
pub struct Probe {
    name: String,
    open: Act,
    input: Act,
}

impl Probe {
    /// A probe named `name` that allows everything.
    pub fn allowing(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            open: Act::Allow,
            input: Act::Allow,
        }
    }

    /// Denies every session on open, with `reason`.
    #[must_use]
    pub fn deny_open(mut self, reason: impl Into<String>) -> Self {
        self.open = Act::Deny(reason.into());
        self
    }

    /// Fails on open (the hook returns an error with `message`).
    #[must_use]
    pub fn fail_open(mut self, message: impl Into<String>) -> Self {
        self.open = Act::Fail(message.into());
        self
    }

    /// Denies the first chunk of input, with `reason`.
    #[must_use]
    pub fn deny_input(mut self, reason: impl Into<String>) -> Self {
        self.input = Act::Deny(reason.into());
        self
    }

    /// Fails on the first chunk of input (the hook returns an error with `message`).
    #[must_use]
    pub fn fail_input(mut self, message: impl Into<String>) -> Self {
        self.input = Act::Fail(message.into());
        self
    }
}

#[async_trait]
impl Plugin for Probe {
    fn name(&self) -> &str {
        &self.name
    }

    async fn on_open(&self, _cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        self.open.verdict()
    }

    async fn on_input(
        &self,
        _cx: &mut SessionCtx,
        _chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        self.input.verdict()
    }
}

#[cfg(test)]
mod tests {
    use hoop_core::{Chain, Outcome};

    use super::*;
    use crate::{SessionBuilder, SessionDriver};

    #[tokio::test]
    async fn counts_every_hook_and_delegates() {
        let counted = Arc::new(CountingPlugin::new(Arc::new(
            Probe::allowing("inner").deny_input("no input today"),
        )));
        assert_eq!(counted.name(), "inner");
        let run = SessionDriver::new(counted.clone())
            .output("a")
            .input("b")
            .output("never")
            .run()
            .await
            .unwrap();
        assert_eq!(run.denied(), Some(("inner", "no input today")));
        let counts = counted.counts();
        assert_eq!(
            (
                counts.open,
                counts.input,
                counts.output,
                counts.flush,
                counts.close
            ),
            (1, 1, 1, 0, 1)
        );
        assert_eq!(
            counts.close_reasons,
            [CloseReason::Denied {
                plugin: "inner".into(),
                reason: "no input today".into()
            }]
        );
    }

    #[tokio::test]
    async fn a_dropped_session_is_closed_and_the_close_can_be_awaited() {
        let counted = Arc::new(CountingPlugin::new(Arc::new(Probe::allowing("inner"))));
        let chain = Chain::new(vec![counted.clone() as Arc<dyn Plugin>]);
        let mut session = chain.start(SessionBuilder::new().build());
        assert!(matches!(session.open().await.unwrap(), Outcome::Continue));
        drop(session);
        assert_eq!(counted.wait_for_closes(1, Duration::from_secs(10)).await, 1);
        assert_eq!(counted.counts().close_reasons, [CloseReason::Abandoned]);
    }

    #[tokio::test]
    async fn probes_fail_where_told() {
        let run = SessionDriver::new(Arc::new(Probe::allowing("p").fail_open("boom")))
            .run()
            .await
            .unwrap();
        let (plugin, error) = run.failed().unwrap();
        assert_eq!((plugin, error.message()), ("p", "boom"));
        let run = SessionDriver::new(Arc::new(Probe::allowing("p").fail_input("bang")))
            .input("x")
            .run()
            .await
            .unwrap();
        assert!(run.opened());
        assert_eq!(run.failed().unwrap().1.message(), "bang");
        assert_eq!(run.stdin(), "");
    }
}
