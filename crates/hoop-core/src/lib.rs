//! The core of hoop-rs: the session lifecycle and the plugin contract.
//!
//! A **session** is one use of a **connection** by a user: it opens, data flows through it in
//! chunks (input from the user, output from the target on stdout or stderr), and it closes.
//! Every session passes through the **plugins** attached to its connection, in order:
//!
//! * [`Plugin::on_open`] decides whether the session may start: [`Verdict::Allow`],
//!   [`Verdict::Deny`] with a reason, or [`Verdict::Hold`] until someone approves it;
//! * [`Plugin::on_input`] and [`Plugin::on_output`] see every chunk and may rewrite it in
//!   place (masking) or end the session;
//! * [`Plugin::on_close`] runs exactly once per plugin of the chain, whatever happened before,
//!   even when an earlier plugin denied the session or a hook failed.
//!
//! A [`PluginFactory`] describes a plugin, validates its configuration and builds it (with the
//! [`Resources`] the host shares with plugins, such as where recordings go); the
//! [`Registry`] holds the factories (plugin crates add theirs at compile time with
//! [`register_plugin!`]); a [`Chain`] is the ordered list of plugins active on one connection,
//! and a [`ChainSession`] drives one session through it.
//!
//! Beside the session hooks, a plugin has a **deployment lifecycle**: the host checks its
//! settings with [`PluginFactory::validate_settings`] and starts it once with
//! [`PluginFactory::start`], handing it a [`Deployment`]: its settings, a [`Cancellation`]
//! signal, a place to run background tasks, and the host's [`Ports`], among them the durable
//! [`events`] log, which plugins read by cursor with an [`events::Subscription`], and
//! sessions' recordings, read verified with a [`ports::RecordingReader`].
//!
//! This crate has no gRPC and no database code, so it can be embedded in any Rust service:
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use hoop_core::{Chain, Chunk, ConnectionInfo, Outcome, Plugin, PluginError, SessionCtx,
//!     SessionInfo, Stream, UserInfo, Verb, Verdict, CloseReason};
//!
//! /// Upper-cases everything the target prints.
//! #[derive(Debug)]
//! struct Shout;
//!
//! #[async_trait]
//! impl Plugin for Shout {
//!     fn name(&self) -> &str { "shout" }
//!     async fn on_output(&self, _cx: &mut SessionCtx, chunk: &mut Chunk) -> Result<Verdict, PluginError> {
//!         chunk.data = chunk.data.to_ascii_uppercase().into();
//!         Ok(Verdict::Allow)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let chain = Chain::new(vec![Arc::new(Shout) as Arc<dyn Plugin>]);
//! let info = SessionInfo::new("s-1", UserInfo::new("alice"), ConnectionInfo::new("db", "command"), Verb::Exec);
//! let mut session = chain.start(info);
//! assert!(matches!(session.open().await, Ok(Outcome::Continue)));
//! let mut chunk = Chunk::new(Stream::Stdout, "hello\n");
//! session.output(&mut chunk).await.unwrap();
//! assert_eq!(&chunk.data[..], b"HELLO\n");
//! session.close(CloseReason::Exit { code: 0 }).await;
//! # }
//! ```

#![warn(missing_docs, missing_debug_implementations)]
#![deny(rustdoc::broken_intra_doc_links)]

mod chain;
mod config;
mod context;
mod deployment;
mod error;
pub mod events;
pub mod names;
mod plugin;
pub mod ports;
pub mod registry;
mod rows;
mod session;
mod verdict;

pub use chain::{Chain, ChainSession, HoldHost, Outcome, Refreshed};
pub use config::{ConfigError, PluginConfig};
pub use context::{Attributes, Extensions, Metrics, Resources, SessionCtx};
pub use deployment::{Cancellation, Deployment, PluginHost, StartError};
pub use error::{BoxError, Error, PluginError, Result};
pub use plugin::{
    Activation, Admission, AttachPolicy, Implementation, ManagedField, Plugin, PluginDescriptor,
    PluginFactory, PluginMigration,
};
pub use ports::{Database, PortError, Ports};
pub use registry::Registry;
pub use rows::{ResultColumn, ResultRows};
pub use session::{
    Chunk, CloseReason, ConnectionInfo, RunbookRef, SessionId, SessionInfo, SessionRequest, Stream,
    UserInfo, Verb,
};
pub use verdict::{DenyReason, HoldRequest, HoldWatch, Verdict};

#[doc(hidden)]
pub mod __private {
    pub use linkme;
}
