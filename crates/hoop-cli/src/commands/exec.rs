//! `hoop exec …`: runs a connection's command once and streams its output.

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result};
use hoop_proto::v1::ExecRequest;

use crate::cli::{OutputFormat, UsageError};
use crate::client::Api;
use crate::commands::stream::{Printer, no_exit_status, session_stdout};

/// What `hoop exec` runs.
pub(crate) struct ExecArgs {
    /// Connection name; may be left out with `review`.
    pub(crate) connection: Option<String>,
    /// `--input`.
    pub(crate) input: Option<String>,
    pub(crate) args: Vec<String>,
    /// `--review`: the approved one-time review to run.
    pub(crate) review: Option<String>,
}

/// Runs the session and copies its events out as they arrive; returns the status to exit
/// with: the session's exit code.
pub(crate) async fn run(api: &mut Api, format: OutputFormat, exec: ExecArgs) -> Result<u8> {
    let request = request(exec, || {
        let stdin = std::io::stdin();
        request_input(None, stdin.is_terminal(), stdin.lock())
    })?;
    let mut events = api.sessions.exec(request).await?.into_inner();
    let mut printer = Printer::new(format, session_stdout(), std::io::stderr())
        .with_spinner(std::io::stderr().is_terminal());
    while let Some(event) = events.message().await? {
        if let Some(status) = printer.event(&event)? {
            // `exit` is the last event; an abandoned stream is cancelled when dropped.
            return Ok(status);
        }
    }
    Err(no_exit_status())
}

/// The request for `exec`. Without `--input`, the input is what `read_stdin` returns, except
/// for a review: its reviewed input is run (the gateway fills it in), so stdin is not read.
fn request(exec: ExecArgs, read_stdin: impl FnOnce() -> Result<Vec<u8>>) -> Result<ExecRequest> {
    let ExecArgs {
        connection,
        input,
        args,
        review,
    } = exec;
    if connection.is_none() && review.is_none() {
        // The parser requires one of them; checked here too.
        return Err(UsageError("a connection name or --review is needed".to_owned()).into());
    }
    let input = match (input, &review) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(_)) => Vec::new(),
        (None, None) => read_stdin()?,
    };
    Ok(ExecRequest {
        connection: connection.unwrap_or_default(),
        input,
        args,
        review_id: review.unwrap_or_default(),
    })
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

    fn exec_args(connection: Option<&str>, input: Option<&str>, review: Option<&str>) -> ExecArgs {
        ExecArgs {
            connection: connection.map(str::to_owned),
            input: input.map(str::to_owned),
            args: vec!["-q".to_owned()],
            review: review.map(str::to_owned),
        }
    }

    #[test]
    fn requests() {
        let stdin = || Ok(b"piped".to_vec());
        let req = request(exec_args(Some("pg"), None, None), stdin).unwrap();
        assert_eq!(req.connection, "pg");
        assert_eq!(req.input, b"piped");
        assert_eq!(req.args, ["-q"]);
        assert_eq!(req.review_id, "");

        let req = request(exec_args(Some("pg"), Some("select 1;"), None), stdin).unwrap();
        assert_eq!(req.input, b"select 1;");

        // A review runs its reviewed input: stdin is not read.
        let unread = || -> Result<Vec<u8>> { panic!("stdin read") };
        let req = request(exec_args(None, None, Some("r-1")), unread).unwrap();
        assert_eq!(req.connection, "");
        assert_eq!(req.input, b"");
        assert_eq!(req.review_id, "r-1");
        let req = request(exec_args(Some("pg"), Some("x"), Some("r-1")), unread).unwrap();
        assert_eq!(
            (req.connection.as_str(), req.input.as_slice()),
            ("pg", &b"x"[..])
        );

        let err = request(exec_args(None, None, None), stdin).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
    }
}
