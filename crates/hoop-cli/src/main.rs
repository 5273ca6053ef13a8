//! `hoop`: the command-line client of the hoop-rs gateway.
//!
//! Every command is one or a few gRPC calls to the gateway's `hoop.v1` API; results print as
//! a table (default) or as canonical protobuf JSON (`--output json`). Failures print one
//! `error: …` line to stderr and exit with status 1 (2 for command-line usage errors).
//! `hoop exec` and `hoop connect` stream the session's output instead and exit with its exit
//! status; `hoop sessions replay` streams a recording; `hoop sessions verify` exits with 1
//! when the recording does not verify. `hoop dlp redact` runs the masking engine locally and
//! needs neither a gateway nor a token.

/// mimalloc instead of glibc's malloc: a session's output passes through buffers of a
/// quarter megabyte and more, which glibc hands back to the kernel as soon as they are freed
/// (heap trimming) and faults in again, zeroed, for the next chunk (see BENCHMARKS.md,
/// "Allocator and fewer copies").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod client;
mod commands;
mod convert;
mod output;
mod spinner;
mod terminal;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use tonic::Code;

use crate::cli::{Cli, Command, DlpCommand, RedactArgs, UsageError};
use crate::client::{Api, Auth};
use crate::commands::Outcome;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    hoop_proto::client::install_crypto_provider();
    let cli = Cli::parse();
    let gateway = cli.gateway.clone();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", describe_error(&err, &gateway));
            exit_code(&err)
        }
    }
}

/// Runs the command; returns the status to exit with once it succeeded.
async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Dlp(DlpCommand::Redact(args)) = &cli.command {
        // Local: no gateway, no token.
        return redact(args, &cli.data_dir);
    }
    let token = client::resolve_token(cli.token.as_deref(), &cli.data_dir)?;
    let auth = Auth::new(&token)?;
    let mut api = Api::new(&cli.gateway, cli.ca.as_deref(), auth)?;
    let format = cli.output;
    let text = match cli.command {
        Command::Whoami => commands::users::whoami(&mut api, format).await?,
        Command::Connections(command) => {
            commands::connections::run(&mut api, format, command).await?
        }
        Command::Plugins(command) => commands::plugins::run(&mut api, format, command).await?,
        Command::Dlp(DlpCommand::Types) => commands::dlp::types(&mut api, format).await?,
        // Run before the token is resolved (above); here for completeness only.
        Command::Dlp(DlpCommand::Redact(args)) => return redact(&args, &cli.data_dir),
        Command::Users(command) => commands::users::run(&mut api, format, command).await?,
        Command::Agents(command) => commands::agents::run(&mut api, format, command).await?,
        Command::Gateways(command) => commands::gateways::run(&mut api, format, command).await?,
        Command::Webhooks(command) => commands::webhooks::run(&mut api, format, command).await?,
        Command::Search {
            query,
            relevance,
            limit,
            page_token,
        } => commands::search::run(&mut api, format, query, relevance, limit, page_token).await?,
        Command::Sessions(command) => {
            match commands::sessions::run(&mut api, format, command).await? {
                Outcome::Print(text, status) => {
                    print(&text)?;
                    return Ok(ExitCode::from(status));
                }
                Outcome::Exit(status) => return Ok(ExitCode::from(status)),
            }
        }
        Command::Reviews(command) => commands::reviews::run(&mut api, format, command).await?,
        Command::Events(command) => {
            // Prints as it goes (`watch` streams).
            commands::events::run(&mut api, format, command).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Exec {
            connection,
            input,
            args,
            review,
        } => {
            // Writes its own output as it streams.
            let exec = commands::exec::ExecArgs {
                connection,
                input,
                args,
                review,
            };
            let status = commands::exec::run(&mut api, format, exec).await?;
            return Ok(ExitCode::from(status));
        }
        Command::Runbooks(command) => {
            match commands::runbooks::run(&mut api, format, command).await? {
                Outcome::Print(text, status) => {
                    print(&text)?;
                    return Ok(ExitCode::from(status));
                }
                Outcome::Exit(status) => return Ok(ExitCode::from(status)),
            }
        }
        Command::Connect {
            connection,
            args,
            duration,
            port,
        } => {
            let kind = api
                .connections
                .get_connection(hoop_proto::v1::GetConnectionRequest {
                    name: connection.clone(),
                })
                .await?
                .into_inner()
                .r#type;
            if kind == "postgres" {
                if !args.is_empty() {
                    return Err(cli::UsageError(
                        "a postgres connection takes no arguments".to_owned(),
                    )
                    .into());
                }
                let access_duration = duration.and_then(convert::to_proto_duration);
                let status = commands::pgconnect::run(
                    api.sessions.clone(),
                    connection,
                    port,
                    access_duration,
                )
                .await?;
                return Ok(ExitCode::from(status));
            }
            // Writes its own output as it streams.
            let status =
                commands::connect::run(&mut api, format, connection, args, duration).await?;
            return Ok(ExitCode::from(status));
        }
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `hoop dlp redact`: writes its own output.
fn redact(args: &RedactArgs, data_dir: &std::path::Path) -> Result<ExitCode> {
    commands::dlp::redact(args, data_dir)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a result to stdout; a closed pipe (`hoop … | head`) is not an error.
fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

/// The status to exit with after a failure: 2 for a command-line usage error, else 1.
fn exit_code(err: &anyhow::Error) -> ExitCode {
    if err.downcast_ref::<UsageError>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// The one-line message for a failure.
fn describe_error(err: &anyhow::Error, gateway: &str) -> String {
    let message = if let Some(status) = err.downcast_ref::<tonic::Status>() {
        describe_status(status, gateway)
    } else if let Some(transport) = err.downcast_ref::<tonic::transport::Error>() {
        client::unreachable(gateway, &client::error_chain(transport))
    } else {
        format!("{err:#}")
    };
    // Exactly one line, whatever the server or an OS error put in the text.
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn describe_status(status: &tonic::Status, gateway: &str) -> String {
    let message = if status.message().is_empty() {
        status.code().description()
    } else {
        status.message()
    };
    // A connection that fails after it was made (e.g. plaintext sent to a TLS gateway)
    // surfaces as UNKNOWN "transport error" or INTERNAL "h2 protocol error"; it is as
    // unreachable as a refused one.
    let transport_failure = matches!(status.code(), Code::Unknown | Code::Internal)
        && (status.message() == "transport error"
            || status.message().starts_with("h2 protocol error"));
    if status.code() == Code::Unavailable || transport_failure {
        let mut cause = message.to_owned();
        if let Some(source) = std::error::Error::source(status) {
            let detail = client::error_chain(source);
            // The detail often repeats the end of the message: "a: b" + "b: c" is "a: b: c".
            let last = cause.rsplit(": ").next().unwrap_or_default().to_owned();
            if detail.starts_with(&cause) {
                cause = detail;
            } else if !last.is_empty() && detail.starts_with(&last) {
                cause = format!("{}{detail}", &cause[..cause.len() - last.len()]);
            } else if !detail.is_empty() && !cause.contains(&detail) {
                cause = format!("{cause}: {detail}");
            }
        }
        return client::unreachable(gateway, &cause);
    }
    format!("{message} ({})", code_name(status.code()))
}

/// The canonical gRPC name of a status code, e.g. `NOT_FOUND`.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    const GW: &str = "http://127.0.0.1:1";

    #[test]
    fn status_errors() {
        let err = anyhow::Error::from(tonic::Status::not_found("connection `pg` not found"));
        assert_eq!(
            describe_error(&err, GW),
            "connection `pg` not found (NOT_FOUND)"
        );
        let err = anyhow::Error::from(tonic::Status::permission_denied("needs group admin\nsorry"))
            .context("ignored");
        assert_eq!(
            describe_error(&err, GW),
            "needs group admin sorry (PERMISSION_DENIED)"
        );
        let err = anyhow::Error::from(tonic::Status::new(Code::Unauthenticated, ""));
        assert!(describe_error(&err, GW).ends_with("(UNAUTHENTICATED)"));
    }

    #[test]
    fn unavailable_means_unreachable() {
        let err = anyhow::Error::from(tonic::Status::unavailable(
            "tcp connect error: Connection refused (os error 111)",
        ));
        assert_eq!(
            describe_error(&err, GW),
            "cannot reach the gateway at http://127.0.0.1:1: tcp connect error: Connection refused (os error 111) (is hoop-gateway running? set --gateway or HOOP_GATEWAY)"
        );
        // Dropped after connecting: perhaps plaintext sent to a TLS gateway.
        let err = anyhow::Error::from(tonic::Status::unavailable("connection reset"));
        assert_eq!(
            describe_error(&err, GW),
            "cannot reach the gateway at http://127.0.0.1:1: connection reset (is hoop-gateway running? if it serves TLS, use https://)"
        );
        let err = anyhow::Error::from(tonic::Status::new(Code::Unknown, "transport error"));
        assert!(describe_error(&err, GW).starts_with("cannot reach the gateway at "));
    }

    #[test]
    fn tls_failures_say_what_to_do() {
        let https = "https://127.0.0.1:1";
        let err = anyhow::Error::from(tonic::Status::unavailable(
            "invalid peer certificate: UnknownIssuer",
        ));
        assert!(
            describe_error(&err, https).ends_with(
                "(the gateway's TLS certificate is not trusted: pass --ca FILE or set HOOP_CA to the PEM file of the CA that signed it)"
            ),
        );
        let err = anyhow::Error::from(tonic::Status::unavailable(
            "received corrupt message of type InvalidContentType",
        ));
        assert!(describe_error(&err, https).ends_with("use http:// if it serves plaintext)"));
    }

    #[test]
    fn other_errors_show_their_chain() {
        let err = Err::<(), _>(anyhow::anyhow!("inner"))
            .context("outer")
            .unwrap_err();
        assert_eq!(describe_error(&err, GW), "outer: inner");
    }

    #[test]
    fn usage_errors_exit_with_2() {
        let usage = anyhow::Error::from(UsageError("unknown info type `X`".to_owned()));
        assert_eq!(exit_code(&usage), ExitCode::from(2));
        assert_eq!(describe_error(&usage, GW), "unknown info type `X`");
        assert_eq!(exit_code(&anyhow::anyhow!("other")), ExitCode::FAILURE);
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }
}
