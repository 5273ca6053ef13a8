//! The ordered chain of plugins a session passes through.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::context::SessionCtx;
use crate::error::{Error, PluginError};
use crate::plugin::Plugin;
use crate::session::{Chunk, CloseReason, ConnectionInfo, SessionInfo, UserInfo};
use crate::verdict::{DenyReason, HoldRequest, Verdict};

/// The plugins active on one connection, in the order they run.
///
/// Cheap to clone; build it once per connection configuration and [`start`](Chain::start) a
/// [`ChainSession`] for every session.
#[derive(Clone, Default)]
pub struct Chain {
    plugins: Arc<[Arc<dyn Plugin>]>,
}

impl Chain {
    /// A chain running `plugins` in the given order.
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Self {
            plugins: plugins.into(),
        }
    }

    /// Number of plugins.
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// Whether the chain has no plugins (every session is allowed untouched).
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Plugin names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(|p| p.name())
    }

    /// Starts driving a session through the chain. Nothing runs until
    /// [`ChainSession::open`].
    pub fn start(&self, info: SessionInfo) -> ChainSession {
        ChainSession {
            plugins: Arc::clone(&self.plugins),
            cx: Some(SessionCtx::new(info)),
            allowed: 0,
            state: State::Opening,
        }
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// What the chain decided about an event.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Every plugin allowed it; go on (with the possibly rewritten chunk).
    Continue,
    /// A plugin holds the session until it is approved.
    Held {
        /// The plugin holding it.
        plugin: String,
        /// What it waits for.
        request: HoldRequest,
    },
    /// A plugin denied it; the session has ended.
    Denied {
        /// The plugin that denied it.
        plugin: String,
        /// Its reason.
        reason: DenyReason,
    },
    /// A plugin hook failed; the session has ended (fail closed).
    Failed {
        /// The plugin that failed.
        plugin: String,
        /// The failure.
        error: PluginError,
    },
}

/// What a host does while a plugin holds a session: see [`ChainSession::open_waiting`].
#[async_trait]
pub trait HoldHost: Send {
    /// A plugin holds the session with a request not announced before (a new request id):
    /// tell the user what it waits for.
    async fn held(&mut self, plugin: &str, request: &HoldRequest);

    /// The hold may have lifted. Check the session again before its chain is asked again:
    /// the user still exists and may still use the connection, and the connection still
    /// exists. Return the chain built from the connection's current settings with the
    /// current user and connection, or why the session may not go on (it is then denied).
    async fn recheck(&mut self, info: &SessionInfo) -> Result<Refreshed, String>;

    /// The hold lifted: every plugin let the session through. Check once more that the user
    /// still exists and may still use the connection, and that the connection still exists,
    /// or return why the session may not run (it is then denied). The decision that lifted
    /// the hold (an approval) can come after the last [`recheck`](Self::recheck), and so
    /// can, say, the deletion of the user: checked here, after the plugins saw the decision,
    /// a session never runs for a user deleted before its hold lifted.
    async fn confirm(&mut self, info: &SessionInfo) -> Result<(), String>;
}

/// The session's chain and info as they are now, from [`HoldHost::recheck`].
#[derive(Debug)]
pub struct Refreshed {
    /// The chain built from the connection's current settings.
    pub chain: Chain,
    /// The user as they are now (e.g. their groups).
    pub user: UserInfo,
    /// The connection as it is now.
    pub connection: ConnectionInfo,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// `open` has not yet been allowed by every plugin.
    Opening,
    /// Every plugin allowed the session; chunks may flow.
    Open,
    /// A plugin denied the session or failed; only `close` is left.
    Ended(CloseReason),
}

/// One session on its way through a [`Chain`].
///
/// Call [`open`](Self::open) until it returns [`Outcome::Continue`], pass every chunk through
/// [`input`](Self::input) or [`output`](Self::output), then [`close`](Self::close). Close
/// runs every plugin's [`on_close`](Plugin::on_close) exactly once, in chain order, even for
/// plugins whose `on_open` never ran. If the session is dropped without being closed (a
/// cancelled task, a panic), the closes still run, with [`CloseReason::Abandoned`], on the
/// current tokio runtime or, without one, on a thread of their own.
pub struct ChainSession {
    plugins: Arc<[Arc<dyn Plugin>]>,
    /// `None` only once closed.
    cx: Option<SessionCtx>,
    /// Plugins (a prefix of the chain) whose `on_open` allowed the session.
    allowed: usize,
    state: State,
}

impl ChainSession {
    /// The session's context: info, extensions and metrics.
    pub fn ctx(&self) -> Option<&SessionCtx> {
        self.cx.as_ref()
    }

    /// The session info.
    pub fn info(&self) -> Option<&SessionInfo> {
        self.cx.as_ref().map(SessionCtx::info)
    }

    /// Whether every plugin allowed the session to open.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Why a plugin ended the session, if one did.
    pub fn end_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Ended(reason) => Some(reason),
            _ => None,
        }
    }

    /// Runs `on_open` of each plugin in order, starting after the last one that allowed.
    ///
    /// After [`Outcome::Held`], call `open` again to ask the holding plugin once more: the
    /// plugins that already allowed are not asked again. Once open, further calls return
    /// [`Outcome::Continue`] at once.
    ///
    /// # Errors
    /// [`Error::SessionEnded`] if a plugin already denied the session or failed.
    pub async fn open(&mut self) -> Result<Outcome, Error> {
        match self.state {
            State::Open => return Ok(Outcome::Continue),
            State::Ended(_) => return Err(self.ended()),
            State::Opening => {}
        }
        let plugins = Arc::clone(&self.plugins);
        while let Some(plugin) = plugins.get(self.allowed) {
            let result = plugin.on_open(self.live_ctx()?).await;
            match self.settle(plugin.name(), result) {
                Outcome::Continue => self.allowed += 1,
                other => return Ok(other),
            }
        }
        self.state = State::Open;
        Ok(Outcome::Continue)
    }

    /// Opens the session like [`open`](Self::open), waiting while a plugin holds it.
    ///
    /// On a hold, `host` is told once per request ([`HoldHost::held`]); then the session
    /// waits until the request's [`watch`](HoldRequest::watch) resolves or `recheck_every`
    /// has passed, the host checks the session again ([`HoldHost::recheck`]: a refusal
    /// denies it), the chain is replaced by the one the host rebuilt from the current
    /// settings, and every plugin is asked again, in order. Plugins that left the chain while
    /// the session waited get [`on_close`](Plugin::on_close) with [`CloseReason::Detached`]
    /// if they had been asked; the plugins of the new chain are closed when the session is.
    /// Once a hold lifts, the host confirms the session a last time
    /// ([`HoldHost::confirm`]: a refusal denies it, in the name of the plugin that held it).
    ///
    /// Returns the first outcome that is not a hold. To stop waiting (the client left, the
    /// session was killed), drop the future: the session stays held and can be closed.
    ///
    /// # Errors
    /// [`Error::SessionEnded`] if a plugin already denied the session or failed.
    pub async fn open_waiting(
        &mut self,
        host: &mut (dyn HoldHost + '_),
        recheck_every: Duration,
    ) -> Result<Outcome, Error> {
        let mut announced: Option<(String, Option<String>)> = None;
        loop {
            let outcome = self.open().await?;
            let Outcome::Held { plugin, request } = outcome else {
                return match (outcome, announced) {
                    (Outcome::Continue, Some((plugin, _))) => self.confirm(host, plugin).await,
                    (outcome, _) => Ok(outcome),
                };
            };
            let key = (plugin.clone(), request.request_id.clone());
            if announced.as_ref() != Some(&key) {
                host.held(&plugin, &request).await;
                announced = Some(key);
            }
            match &request.watch {
                Some(watch) => {
                    let _ = tokio::time::timeout(recheck_every, watch.changed()).await;
                }
                None => tokio::time::sleep(recheck_every).await,
            }
            let info = self.live_ctx()?.info().clone();
            match host.recheck(&info).await {
                Ok(refreshed) => self.refresh(refreshed).await?,
                Err(reason) => {
                    self.state = State::Ended(CloseReason::Denied {
                        plugin: plugin.clone(),
                        reason: reason.clone(),
                    });
                    return Ok(Outcome::Denied {
                        plugin,
                        reason: DenyReason::new(reason),
                    });
                }
            }
        }
    }

    /// The last check of a session whose hold (by `plugin`) lifted: see
    /// [`HoldHost::confirm`].
    async fn confirm(
        &mut self,
        host: &mut (dyn HoldHost + '_),
        plugin: String,
    ) -> Result<Outcome, Error> {
        let info = self.live_ctx()?.info().clone();
        match host.confirm(&info).await {
            Ok(()) => Ok(Outcome::Continue),
            Err(reason) => {
                self.state = State::Ended(CloseReason::Denied {
                    plugin: plugin.clone(),
                    reason: reason.clone(),
                });
                Ok(Outcome::Denied {
                    plugin,
                    reason: DenyReason::new(reason),
                })
            }
        }
    }

    /// Replaces the chain of a session that is still opening, and its user and connection:
    /// every plugin will be asked again. Plugins asked before and absent from the new chain
    /// are closed now.
    async fn refresh(&mut self, refreshed: Refreshed) -> Result<(), Error> {
        let Refreshed {
            chain,
            user,
            connection,
        } = refreshed;
        let asked = (self.allowed + 1).min(self.plugins.len());
        let old = Arc::clone(&self.plugins);
        for plugin in &old[..asked] {
            if !chain.names().any(|name| name == plugin.name()) {
                plugin
                    .on_close(self.live_ctx()?, &CloseReason::Detached)
                    .await;
            }
        }
        let cx = self.live_ctx()?;
        let mut info = cx.info().clone();
        info.user = user;
        info.connection = connection;
        cx.set_info(info);
        self.plugins = Arc::clone(&chain.plugins);
        self.allowed = 0;
        Ok(())
    }

    /// Runs `on_input` of each plugin in order on a chunk from the user.
    ///
    /// # Errors
    /// [`Error::SessionEnded`] before the session is open or after it ended.
    pub async fn input(&mut self, chunk: &mut Chunk) -> Result<Outcome, Error> {
        self.chunk(chunk, Direction::Input).await
    }

    /// Runs `on_output` of each plugin in order on a chunk from the target.
    ///
    /// # Errors
    /// [`Error::SessionEnded`] before the session is open or after it ended.
    pub async fn output(&mut self, chunk: &mut Chunk) -> Result<Outcome, Error> {
        self.chunk(chunk, Direction::Output).await
    }

    /// Runs result rows of a database session through the chain's
    /// [`on_rows`](crate::Plugin::on_rows), in order; the first verdict other than allow
    /// stops it, as for chunks.
    ///
    /// # Errors
    /// [`Error::SessionEnded`] if the session is not open.
    pub async fn rows(&mut self, rows: &mut crate::ResultRows) -> Result<Outcome, Error> {
        if self.state != State::Open {
            return Err(self.ended());
        }
        let plugins = Arc::clone(&self.plugins);
        for plugin in plugins.iter() {
            let result = plugin.on_rows(self.live_ctx()?, rows).await;
            match self.settle(plugin.name(), result) {
                Outcome::Continue => {}
                other => return Ok(other),
            }
        }
        Ok(Outcome::Continue)
    }

    /// The shortest [`output_holdback`](Plugin::output_holdback) of the chain's plugins:
    /// how long output may be quiet before the runtime should call
    /// [`flush_output`](Self::flush_output). `None` if no plugin holds output back.
    pub fn output_holdback(&self) -> Option<Duration> {
        self.plugins
            .iter()
            .filter_map(|plugin| plugin.output_holdback())
            .min()
    }

    /// Releases the output that plugins hold back on `chunk.stream`: call it with an empty
    /// chunk when that stream has been quiet for [`output_holdback`](Self::output_holdback)
    /// and when it ends. Plugins run in order: a plugin that holds output back appends what
    /// it held ([`Plugin::on_output_flush`]) and what the earlier ones released goes through
    /// the `on_output` of the later ones, so `chunk` ends up holding what the user should
    /// see (possibly nothing).
    ///
    /// # Errors
    /// [`Error::SessionEnded`] before the session is open or after it ended.
    pub async fn flush_output(&mut self, chunk: &mut Chunk) -> Result<Outcome, Error> {
        if self.state != State::Open {
            return Err(self.ended());
        }
        let plugins = Arc::clone(&self.plugins);
        for plugin in plugins.iter() {
            if !chunk.data.is_empty() {
                let result = plugin.on_output(self.live_ctx()?, chunk).await;
                match self.settle(plugin.name(), result) {
                    Outcome::Continue => {}
                    other => return Ok(other),
                }
            }
            if plugin.output_holdback().is_some() {
                let result = plugin.on_output_flush(self.live_ctx()?, chunk).await;
                match self.settle(plugin.name(), result) {
                    Outcome::Continue => {}
                    other => return Ok(other),
                }
            }
        }
        Ok(Outcome::Continue)
    }

    async fn chunk(&mut self, chunk: &mut Chunk, direction: Direction) -> Result<Outcome, Error> {
        if self.state != State::Open {
            return Err(self.ended());
        }
        let plugins = Arc::clone(&self.plugins);
        for plugin in plugins.iter() {
            let cx = self.live_ctx()?;
            let result = match direction {
                Direction::Input => plugin.on_input(cx, chunk).await,
                Direction::Output => plugin.on_output(cx, chunk).await,
            };
            match self.settle(plugin.name(), result) {
                Outcome::Continue => {}
                other => return Ok(other),
            }
        }
        Ok(Outcome::Continue)
    }

    /// Closes the session: every plugin's `on_close` runs once, in chain order. Returns the
    /// final context (with the metrics plugins recorded).
    ///
    /// If a plugin ended the session (denied it or failed), plugins receive that reason
    /// rather than `reason`: it is what happened.
    pub async fn close(mut self, reason: CloseReason) -> Option<SessionCtx> {
        let reason = self.end_reason().cloned().unwrap_or(reason);
        let cx = self.cx.take()?;
        Some(close_all(&self.plugins, cx, reason).await)
    }

    /// Turns a hook's result into an outcome, ending the session on deny or failure.
    fn settle(&mut self, plugin: &str, result: Result<Verdict, PluginError>) -> Outcome {
        match result {
            Ok(Verdict::Allow) => Outcome::Continue,
            Ok(Verdict::Hold(request)) => Outcome::Held {
                plugin: plugin.to_owned(),
                request,
            },
            Ok(Verdict::Deny(reason)) => {
                self.state = State::Ended(CloseReason::Denied {
                    plugin: plugin.to_owned(),
                    reason: reason.to_string(),
                });
                Outcome::Denied {
                    plugin: plugin.to_owned(),
                    reason,
                }
            }
            Err(error) => {
                self.state = State::Ended(CloseReason::PluginFailed {
                    plugin: plugin.to_owned(),
                    error: error.to_string(),
                });
                Outcome::Failed {
                    plugin: plugin.to_owned(),
                    error,
                }
            }
        }
    }

    fn live_ctx(&mut self) -> Result<&mut SessionCtx, Error> {
        // `cx` is only taken by `close` and `drop`, which consume the session.
        self.cx
            .as_mut()
            .ok_or_else(|| Error::SessionEnded("(closed)".to_owned()))
    }

    fn ended(&self) -> Error {
        let id = self.info().map(|i| i.id.to_string()).unwrap_or_default();
        Error::SessionEnded(id)
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Input,
    Output,
}

async fn close_all(
    plugins: &[Arc<dyn Plugin>],
    mut cx: SessionCtx,
    reason: CloseReason,
) -> SessionCtx {
    for plugin in plugins {
        plugin.on_close(&mut cx, &reason).await;
    }
    cx
}

impl Drop for ChainSession {
    fn drop(&mut self) {
        let Some(cx) = self.cx.take() else { return };
        let plugins = Arc::clone(&self.plugins);
        let reason = self.end_reason().cloned().unwrap_or(CloseReason::Abandoned);
        tracing::warn!(session = %cx.info().id, %reason, "session dropped without close; closing its plugins");
        let task = async move {
            close_all(&plugins, cx, reason).await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(task);
            }
            Err(_) => {
                let spawned = std::thread::Builder::new()
                    .name("hoop-chain-close".to_owned())
                    .spawn(
                        move || match tokio::runtime::Builder::new_current_thread().build() {
                            Ok(rt) => rt.block_on(task),
                            Err(err) => tracing::error!(%err, "no runtime to close plugins on"),
                        },
                    );
                if let Err(err) = spawned {
                    tracing::error!(%err, "could not start a thread to close plugins");
                }
            }
        }
    }
}

impl fmt::Debug for ChainSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainSession")
            .field("session", &self.info().map(|i| i.id.as_str()))
            .field(
                "plugins",
                &self.plugins.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field("allowed", &self.allowed)
            .field("state", &self.state)
            .finish()
    }
}

#[cfg(test)]
mod tests;
