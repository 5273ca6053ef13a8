//! sea-orm entities: one file per table.

pub mod agent;
pub mod api_key;
pub mod connection;
pub mod event;
pub mod event_cursor;
pub mod instance;
pub mod meta;
pub mod plugin_attachment;
pub mod recording;
pub mod recording_chunk;
pub mod review;
pub mod review_decision;
pub mod session;
pub mod user;
pub mod user_group;
