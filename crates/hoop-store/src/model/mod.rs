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
pub use connections::{AccessModes, Attachment, Connection, LOCAL_AGENT};
pub(crate) use reviews::preview_of_head;
pub use reviews::{
    ApprovalRule, INPUT_PREVIEW_BYTES, NewDecision, NewReview, Review, ReviewDecision,
    ReviewFilter, ReviewKind, ReviewStatus, input_preview,
};
pub use sessions::{SessionEnd, SessionFilter, SessionRecord};
pub use users::{ApiKey, User};
