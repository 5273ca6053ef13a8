//! The terminal of `hoop connect`: its size, and raw mode while the session runs.

use std::io::Stdin;

use anyhow::{Context, Result};
use hoop_proto::v1::TerminalSize;
use rustix::termios::{self, OptionalActions, Termios};

/// Size sent when the terminal does not tell its own.
const DEFAULT_ROWS: u16 = 24;
const DEFAULT_COLS: u16 = 80;

/// Largest number of rows or columns the gateway accepts.
const MAX_CELLS: u16 = 1000;

/// Keeps the terminal on hoop's stdin in raw mode; puts its former mode back when dropped,
/// whichever way the session ends.
pub(crate) struct RawMode {
    stdin: Stdin,
    saved: Termios,
}

impl RawMode {
    /// Puts the terminal on stdin in raw mode: every key goes to the program as typed (the
    /// program's own terminal, on the gateway, echoes, edits lines and turns Ctrl-C into a
    /// signal), and output is shown as it comes.
    pub(crate) fn enable() -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).context("reading the terminal's mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Drain, &raw)
            .context("putting the terminal in raw mode")?;
        Ok(Self { stdin, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing more to do if this fails: the terminal is gone, or `reset` restores it.
        let _ = termios::tcsetattr(&self.stdin, OptionalActions::Drain, &self.saved);
    }
}

/// The size of the terminal on stdin, 80x24 when it does not tell.
pub(crate) fn size() -> TerminalSize {
    match termios::tcgetwinsize(std::io::stdin()) {
        Ok(size) => terminal_size(size.ws_row, size.ws_col),
        Err(_) => terminal_size(0, 0),
    }
}

/// A size as the gateway takes it: 0 (unknown) becomes the default, and at most 1000.
fn terminal_size(rows: u16, cols: u16) -> TerminalSize {
    let cells = |n: u16, default: u16| u32::from(if n == 0 { default } else { n.min(MAX_CELLS) });
    TerminalSize {
        rows: cells(rows, DEFAULT_ROWS),
        cols: cells(cols, DEFAULT_COLS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_kept_within_what_the_gateway_takes() {
        let size = |rows, cols| {
            let s = terminal_size(rows, cols);
            (s.rows, s.cols)
        };
        assert_eq!(size(50, 200), (50, 200));
        assert_eq!(size(1, 1), (1, 1));
        assert_eq!(size(0, 0), (24, 80));
        assert_eq!(size(0, 132), (24, 132));
        assert_eq!(size(1000, 1001), (1000, 1000));
        assert_eq!(size(u16::MAX, 40), (1000, 40));
    }
}
