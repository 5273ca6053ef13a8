//! Persistence of hoop-rs: users, groups, API keys, connections, plugin attachments, sessions
//! and access reviews, with sea-orm on SQLite (the embedded default) or PostgreSQL (for
//! several gateways on one database).
//!
//! The schema comes from [`migration::Migrator`]; [`Store::connect`] opens a database and
//! [`Store::migrate`] brings it up to date. Connection secrets are encrypted with
//! [`SecretBox`] before they reach the database.

#![warn(missing_docs)]

mod crypto;
#[allow(missing_docs)]
pub mod entity;
mod error;
mod events;
pub mod migration;
mod model;
mod store;
#[doc(hidden)]
pub mod testing;

pub use crypto::{CONNECTION_SECRETS, MIN_SECRET_KEY_LEN, SecretBox, hash_token, random_token};
pub use error::StoreError;
pub use events::{EventRecord, NewEvent};
pub use model::{
    AccessModes, Agent, ApiKey, ApprovalRule, Attachment, Connection, INPUT_PREVIEW_BYTES,
    LOCAL_AGENT, NewDecision, NewReview, Review, ReviewDecision, ReviewFilter, ReviewKind,
    ReviewStatus, SessionEnd, SessionFilter, SessionRecord, User, input_preview,
};
pub use store::{
    Backend, DEFAULT_ACQUIRE_TIMEOUT, InstanceClaim, InstanceRecord, Limits, NewInstance,
    PoolSettings, RESTART_REASON, Renewal, Store,
};
