//! One module per command group; most return the text to print. `exec` and `connect` stream
//! their output as it comes and return the status to exit with; `sessions` returns an
//! [`Outcome`], as its `replay` streams and its `verify` sets the exit status. `dlp redact`
//! masks stdin locally, streaming to stdout.

pub(crate) mod agents;
pub(crate) mod connect;
pub(crate) mod connections;
pub(crate) mod dlp;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod gateways;
pub(crate) mod pgconnect;
pub(crate) mod plugins;
pub(crate) mod replay;
pub(crate) mod reviews;
pub(crate) mod runbooks;
pub(crate) mod search;
pub(crate) mod sessions;
pub(crate) mod stream;
pub(crate) mod users;
pub(crate) mod webhooks;

/// What is left to do once a command succeeded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Print the text, then exit with the status.
    Print(String, u8),
    /// The command wrote its output itself: exit with the status.
    Exit(u8),
}
