//! One module per command group; each returns the text to print.

pub(crate) mod connections;
pub(crate) mod plugins;
pub(crate) mod users;
