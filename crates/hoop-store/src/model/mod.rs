//! The store's records, as plain Rust values.
//!
//! One module per aggregate, like [`Store`](crate::Store)'s: users and API keys, connections
//! and plugin attachments, sessions, reviews and their decisions.

mod agents;
mod connections;
mod reviews;
mod sessions;
mod users;

pub use agents::Agent;
pub use connections::{AccessModes, Attachment, Connection};
pub use reviews::{
    ApprovalRule, NewDecision, NewReview, Review, ReviewDecision, ReviewFilter, ReviewKind,
    ReviewStatus,
};
pub use sessions::{SessionEnd, SessionFilter, SessionRecord};
pub use users::{ApiKey, User};
