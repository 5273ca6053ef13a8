//! End-to-end tests: each starts the real `hoop-gateway` binary on an ephemeral port with a
//! temporary data dir, on SQLite and (when `HOOP_TEST_POSTGRES_URL` is set) on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_control;
mod agents;
mod args;
mod auth;
mod bad_input;
mod bursts;
mod cli;
mod config;
mod connections;
mod dlp;
mod events;
mod gateways;
mod limits;
mod pg_abuse;
mod platform;
mod plugins;
mod postgres;
mod recordings;
mod reflection;
mod reviews;
mod runbooks;
mod search;
mod sessions;
mod slack;
mod tls;
mod webhooks;
