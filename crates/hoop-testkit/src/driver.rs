//! [`SessionDriver`]: runs one session through a [`Chain`] the way the gateway's runtime
//! does (open, chunks, flushes, close) and hands back everything a test looks at.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hoop_core::{
    Attributes, Chain, ChainSession, Chunk, CloseReason, ConfigError, Metrics, Outcome, Plugin,
    PluginConfig, PluginError, PluginFactory, Resources, SessionCtx, SessionInfo, Stream,
};

use crate::session::SessionBuilder;

/// A session could not be driven: the chain refused a call the driver made (a bug in the
/// driver or in hoop-core, not a plugin's decision: denials and failures are
/// [`Outcome`]s in the [`SessionRun`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriveError {
    /// The chain refused a call.
    #[error("the chain refused a call: {0}")]
    Chain(#[from] hoop_core::Error),
    /// The chain returned no context when the session closed.
    #[error("the chain returned no context when session {0} closed")]
    NoContext(String),
}

/// One thing that happens to a session after it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A chunk of input from the user ([`ChainSession::input`]).
    Input(Bytes),
    /// A chunk of output from the target on a stream ([`ChainSession::output`]).
    Output(Stream, Bytes),
    /// The stream has been quiet or ended: plugins release what they hold back
    /// ([`ChainSession::flush_output`] with an empty chunk).
    Flush(Stream),
}

impl Step {
    /// The stream the step is on.
    pub fn stream(&self) -> Stream {
        match self {
            Step::Input(_) => Stream::Stdin,
            Step::Output(stream, _) | Step::Flush(stream) => *stream,
        }
    }
}

/// What one [`Step`] gave.
#[derive(Debug)]
pub struct StepRun {
    /// The step as it was asked for.
    pub step: Step,
    /// The chunk as the chain left it: rewritten by plugins, or what a flush released;
    /// empty when the chain stopped on it (a denied or failed chunk reaches no one).
    pub chunk: Chunk,
    /// What the chain decided.
    pub outcome: Outcome,
}

/// Drives one session through a chain: builds its [`SessionInfo`] (with a
/// [`SessionBuilder`]), opens it, passes the [`Step`]s, flushes the output streams and
/// closes it.
///
/// * The session is opened once ([`ChainSession::open`]). If the outcome is not
///   [`Outcome::Continue`], no step runs: a denied or failed session is closed with the
///   reason the chain recorded, a held one with [`close_held_with`](Self::close_held_with)
///   ([`CloseReason::ClientGone`] by default: the client gave up waiting).
/// * Steps run in order; the first outcome that is not [`Outcome::Continue`] stops them.
/// * When every step allowed and a plugin of the chain holds output back
///   ([`ChainSession::output_holdback`]), stdout then stderr are flushed, as the runtime
///   does when the streams end (turn it off with [`flush_at_end`](Self::flush_at_end)).
/// * The session is closed with [`close_with`](Self::close_with) (`exit 0` by default), or
///   with the chain's own reason when a plugin denied or failed it.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use hoop_core::{Chunk, Plugin, PluginError, SessionCtx, Verdict};
/// use hoop_testkit::{SessionBuilder, SessionDriver};
///
/// #[derive(Debug)]
/// struct Shout;
///
/// #[async_trait]
/// impl Plugin for Shout {
///     fn name(&self) -> &str { "shout" }
///     async fn on_output(&self, cx: &mut SessionCtx, chunk: &mut Chunk) -> Result<Verdict, PluginError> {
///         chunk.data = chunk.data.to_ascii_uppercase().into();
///         cx.metrics.add("shout.chunks", 1);
///         Ok(Verdict::Allow)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let run = SessionDriver::new(Arc::new(Shout))
///     .session(SessionBuilder::new().user("bob"))
///     .input("echo hi\n")
///     .output("hi\n")
///     .run()
///     .await
///     .unwrap();
/// assert!(run.opened());
/// assert_eq!(run.stdout(), "HI\n");
/// assert_eq!(run.metrics().get("shout.chunks"), 1);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SessionDriver {
    chain: Chain,
    session: SessionBuilder,
    steps: Vec<Step>,
    close: CloseReason,
    close_held: CloseReason,
    flush_at_end: bool,
}

impl SessionDriver {
    /// A driver for a chain holding only `plugin`.
    pub fn new(plugin: Arc<dyn Plugin>) -> Self {
        Self::with_chain(Chain::new(vec![plugin]))
    }

    /// A driver for `chain`.
    pub fn with_chain(chain: Chain) -> Self {
        Self {
            chain,
            session: SessionBuilder::new(),
            steps: Vec::new(),
            close: CloseReason::Exit { code: 0 },
            close_held: CloseReason::ClientGone,
            flush_at_end: true,
        }
    }

    /// A driver for a chain holding only the plugin `factory` builds with `config` and
    /// `resources`, after checking the config with
    /// [`validate_with`](PluginFactory::validate_with). The plugin is built whatever its
    /// [`activation`](PluginFactory::activation) says.
    ///
    /// # Errors
    /// What `validate_with` or `build` returned.
    pub fn from_factory(
        factory: &dyn PluginFactory,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<Self, ConfigError> {
        factory.validate_with(config, resources)?;
        Ok(Self::new(factory.build(config, resources)?))
    }

    /// The chain the session runs through.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Sets the session (user, connection, verb, request); see [`SessionBuilder`].
    #[must_use]
    pub fn session(mut self, session: SessionBuilder) -> Self {
        self.session = session;
        self
    }

    /// Adds a step.
    #[must_use]
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Adds a chunk of input from the user.
    #[must_use]
    pub fn input(self, data: impl Into<Bytes>) -> Self {
        self.step(Step::Input(data.into()))
    }

    /// Adds a chunk of output on stdout.
    #[must_use]
    pub fn output(self, data: impl Into<Bytes>) -> Self {
        self.step(Step::Output(Stream::Stdout, data.into()))
    }

    /// Adds a chunk of output on stderr.
    #[must_use]
    pub fn stderr(self, data: impl Into<Bytes>) -> Self {
        self.step(Step::Output(Stream::Stderr, data.into()))
    }

    /// Adds a flush of `stream` (its output was quiet for the chain's holdback).
    #[must_use]
    pub fn flush(self, stream: Stream) -> Self {
        self.step(Step::Flush(stream))
    }

    /// Sets whether stdout and stderr are flushed after the last step when a plugin holds
    /// output back (default: yes, as when the streams end).
    #[must_use]
    pub fn flush_at_end(mut self, flush: bool) -> Self {
        self.flush_at_end = flush;
        self
    }

    /// Sets the reason a session that ran is closed with (default: exit code 0).
    #[must_use]
    pub fn close_with(mut self, reason: CloseReason) -> Self {
        self.close = reason;
        self
    }

    /// Sets the reason a held session is closed with (default:
    /// [`CloseReason::ClientGone`]).
    #[must_use]
    pub fn close_held_with(mut self, reason: CloseReason) -> Self {
        self.close_held = reason;
        self
    }

    /// Runs the session and closes it.
    ///
    /// # Errors
    /// [`DriveError`] if the chain refused a call (denials and failures are not errors:
    /// they are in the [`SessionRun`]).
    pub async fn run(self) -> Result<SessionRun, DriveError> {
        let info = self.session.build();
        let id = info.id.to_string();
        let mut session = self.chain.start(info);
        let open = session.open().await?;
        let mut steps = Vec::new();
        let mut held = matches!(open, Outcome::Held { .. });
        if matches!(open, Outcome::Continue) {
            let mut queue = self.steps;
            if self.flush_at_end && session.output_holdback().is_some() {
                queue.push(Step::Flush(Stream::Stdout));
                queue.push(Step::Flush(Stream::Stderr));
            }
            for step in queue {
                let run = run_step(&mut session, step).await?;
                let go_on = matches!(run.outcome, Outcome::Continue);
                held = matches!(run.outcome, Outcome::Held { .. });
                steps.push(run);
                if !go_on {
                    break;
                }
            }
        }
        let asked = if held { self.close_held } else { self.close };
        let close_reason = session.end_reason().cloned().unwrap_or(asked);
        let ctx = session
            .close(close_reason.clone())
            .await
            .ok_or(DriveError::NoContext(id))?;
        Ok(SessionRun {
            open,
            steps,
            close_reason,
            ctx,
        })
    }
}

async fn run_step(session: &mut ChainSession, step: Step) -> Result<StepRun, DriveError> {
    let (mut chunk, outcome) = match &step {
        Step::Input(data) => {
            let mut chunk = Chunk::new(Stream::Stdin, data.clone());
            let outcome = session.input(&mut chunk).await?;
            (chunk, outcome)
        }
        Step::Output(stream, data) => {
            let mut chunk = Chunk::new(*stream, data.clone());
            let outcome = session.output(&mut chunk).await?;
            (chunk, outcome)
        }
        Step::Flush(stream) => {
            let mut chunk = Chunk::new(*stream, Bytes::new());
            let outcome = session.flush_output(&mut chunk).await?;
            (chunk, outcome)
        }
    };
    if !matches!(outcome, Outcome::Continue) {
        // What a stopped chain left in the chunk never reaches anyone.
        chunk.data = Bytes::new();
    }
    Ok(StepRun {
        step,
        chunk,
        outcome,
    })
}

/// What a driven session gave: the open outcome, each step's rewritten chunk and outcome,
/// the reason plugins were closed with, and the final [`SessionCtx`] (metrics, attributes).
#[derive(Debug)]
pub struct SessionRun {
    /// What the chain decided on open.
    pub open: Outcome,
    /// The steps that ran, in order, with the flushes the driver added at the end.
    pub steps: Vec<StepRun>,
    /// The reason every plugin's `on_close` received.
    pub close_reason: CloseReason,
    /// The session's context after close.
    pub ctx: SessionCtx,
}

impl SessionRun {
    /// Whether every plugin allowed the session to open.
    pub fn opened(&self) -> bool {
        matches!(self.open, Outcome::Continue)
    }

    /// The outcome that stopped the session (on open or on a step), or
    /// [`Outcome::Continue`] if nothing did.
    pub fn outcome(&self) -> &Outcome {
        if !self.opened() {
            return &self.open;
        }
        self.steps
            .iter()
            .map(|s| &s.outcome)
            .find(|o| !matches!(o, Outcome::Continue))
            .unwrap_or(&self.open)
    }

    /// Whether nothing stopped the session.
    pub fn completed(&self) -> bool {
        matches!(self.outcome(), Outcome::Continue)
    }

    /// The plugin and reason, if a plugin denied the session.
    pub fn denied(&self) -> Option<(&str, &str)> {
        match self.outcome() {
            Outcome::Denied { plugin, reason } => Some((plugin, reason.as_str())),
            _ => None,
        }
    }

    /// The plugin and its error, if a hook failed.
    pub fn failed(&self) -> Option<(&str, &PluginError)> {
        match self.outcome() {
            Outcome::Failed { plugin, error } => Some((plugin, error)),
            _ => None,
        }
    }

    /// The plugin and what it waits for, if a plugin holds the session.
    pub fn held(&self) -> Option<(&str, &hoop_core::HoldRequest)> {
        match self.outcome() {
            Outcome::Held { plugin, request } => Some((plugin, request)),
            _ => None,
        }
    }

    /// Everything that reached the target or the user on `stream`, after the plugins
    /// rewrote it (chunks of steps the chain stopped on are left out).
    pub fn bytes(&self, stream: Stream) -> Bytes {
        let mut out = BytesMut::new();
        for step in self.steps.iter().filter(|s| s.chunk.stream == stream) {
            out.extend_from_slice(&step.chunk.data);
        }
        out.freeze()
    }

    /// The input that reached the target, as text (lossy UTF-8).
    pub fn stdin(&self) -> String {
        String::from_utf8_lossy(&self.bytes(Stream::Stdin)).into_owned()
    }

    /// The stdout the user saw, as text (lossy UTF-8).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.bytes(Stream::Stdout)).into_owned()
    }

    /// The stderr the user saw, as text (lossy UTF-8).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.bytes(Stream::Stderr)).into_owned()
    }

    /// The session's metrics after close.
    pub fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    /// The session's attributes after close.
    pub fn attributes(&self) -> &Attributes {
        &self.ctx.attributes
    }

    /// The session's info.
    pub fn info(&self) -> &SessionInfo {
        self.ctx.info()
    }
}
