//! `hoop exec …`: runs a connection's command once and streams its output.

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result};
use hoop_proto::v1::ExecRequest;

use crate::cli::OutputFormat;
use crate::client::Api;
use crate::commands::stream::{Printer, no_exit_status};

/// Runs the session and copies its events out as they arrive; returns the status to exit
/// with: the session's exit code.
pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    connection: String,
    input: Option<String>,
    args: Vec<String>,
) -> Result<u8> {
    let stdin = std::io::stdin();
    let input = request_input(input, stdin.is_terminal(), stdin.lock())?;
    let mut events = api
        .sessions
        .exec(ExecRequest {
            connection,
            input,
            args,
        })
        .await?
        .into_inner();
    let mut printer = Printer::new(format, std::io::stdout(), std::io::stderr());
    while let Some(event) = events.message().await? {
        if let Some(status) = printer.event(&event)? {
            // `exit` is the last event; an abandoned stream is cancelled when dropped.
            return Ok(status);
        }
    }
    Err(no_exit_status())
}

/// The bytes to send as the target's stdin: `--input`, else all of `stdin` when it is not a
/// terminal, else nothing.
fn request_input(
    flag: Option<String>,
    stdin_is_terminal: bool,
    stdin: impl Read,
) -> Result<Vec<u8>> {
    if let Some(text) = flag {
        return Ok(text.into_bytes());
    }
    if stdin_is_terminal {
        return Ok(Vec::new());
    }
    let mut input = Vec::new();
    let mut stdin = stdin;
    stdin.read_to_end(&mut input).context("reading stdin")?;
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_flag_then_piped_stdin_then_nothing() {
        let piped: &[u8] = b"from\0stdin\xff";
        assert_eq!(
            request_input(Some("flag".to_owned()), false, piped).unwrap(),
            b"flag"
        );
        assert_eq!(
            request_input(Some(String::new()), false, piped).unwrap(),
            b""
        );
        assert_eq!(request_input(None, false, piped).unwrap(), piped);
        assert_eq!(request_input(None, true, piped).unwrap(), b"");
    }
}
