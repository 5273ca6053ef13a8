//! Test kit for hoop-rs plugin crates: drive sessions through a plugin, fake the host's
//! ports, and check that a plugin keeps the contract of [`hoop_core::Plugin`].
//!
//! Add it as a dev-dependency of a plugin crate (it depends on `hoop-core` only):
//!
//! ```toml
//! [dev-dependencies]
//! hoop-testkit = { workspace = true }
//! tokio = { workspace = true }
//! ```
//!
//! * [`SessionDriver`] runs one session through a [`Chain`](hoop_core::Chain) (open, input
//!   and output chunks, flushes, close) and returns a [`SessionRun`]: the outcome, the
//!   rewritten chunks and the final [`SessionCtx`](hoop_core::SessionCtx) with its metrics
//!   and attributes. [`SessionBuilder`] builds the [`SessionInfo`](hoop_core::SessionInfo)
//!   (user, groups, connection, verb, arguments, input).
//! * [`FakePorts`] gathers the fake ports a plugin's deployment lifecycle uses: hoop-core's
//!   [`MemoryEventLog`](hoop_core::events::MemoryEventLog) and
//!   [`MemoryCursors`](hoop_core::events::MemoryCursors), a [`FakeDirectory`] of the users
//!   and connections you register, a [`FakeSessionControl`] that records every
//!   `end_session` call and lets a test await the next one, and [`FakeRecordings`], the
//!   recordings you register (or mark tampered). [`FakePorts::host`] builds a
//!   [`PluginHost`](hoop_core::PluginHost) over them.
//! * [`conformance::check`] is the check every plugin crate runs on its factory (in
//!   `tests/conformance.rs`): the example config parses and validates, empty settings are
//!   accepted, `on_close` runs exactly once when another plugin denies the session, and a
//!   plain session does not fail. The [`conformance`] module says exactly what is checked.
//! * [`CountingPlugin`] counts the hooks of the plugin it wraps; [`Probe`] allows, denies or
//!   fails where told.
//!
//! ```
//! use std::sync::Arc;
//! use hoop_core::{PluginConfig, Resources};
//! # use hoop_core::{ConfigError, Plugin, PluginDescriptor, PluginFactory};
//! # #[derive(Debug)] struct Noop;
//! # impl Plugin for Noop { fn name(&self) -> &str { "noop" } }
//! # #[derive(Debug)] struct NoopFactory;
//! # static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new("noop", "does nothing");
//! # impl PluginFactory for NoopFactory {
//! #     fn descriptor(&self) -> &PluginDescriptor { &DESCRIPTOR }
//! #     fn build(&self, _: &PluginConfig, _: &Resources) -> Result<Arc<dyn Plugin>, ConfigError> { Ok(Arc::new(Noop)) }
//! # }
//! use hoop_testkit::{SessionBuilder, SessionDriver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let resources = Resources::new();
//! let run = SessionDriver::from_factory(&NoopFactory, &PluginConfig::empty(), &resources)
//!     .unwrap()
//!     .session(SessionBuilder::new().user("bob").groups(["dba"]))
//!     .input("select 1;\n")
//!     .output("1\n")
//!     .run()
//!     .await
//!     .unwrap();
//! assert!(run.completed());
//! assert_eq!(run.stdout(), "1\n");
//!
//! hoop_testkit::conformance::check(&NoopFactory, &resources).await;
//! # }
//! ```

#![warn(missing_docs, missing_debug_implementations)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod conformance;
mod driver;
mod fakes;
mod probes;
mod session;

pub use driver::{DriveError, SessionDriver, SessionRun, Step, StepRun};
pub use fakes::{EndSessionCall, FakeDirectory, FakePorts, FakeRecordings, FakeSessionControl};
pub use probes::{CountingPlugin, HookCounts, Probe};
pub use session::SessionBuilder;
