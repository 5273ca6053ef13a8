//! One module per command group; each returns the text to print, except `exec`, which
//! streams its output as it comes and returns the status to exit with.

pub(crate) mod connections;
pub(crate) mod exec;
pub(crate) mod plugins;
pub(crate) mod sessions;
pub(crate) mod users;
