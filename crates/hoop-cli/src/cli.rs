//! The command line: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `hoop`: the command-line client of the hoop-rs gateway.
///
/// Manages connections, the plugins attached to them, users and API keys, runs commands and
/// interactive sessions on connections, and lists, replays and verifies the sessions they
/// recorded, through the gateway's gRPC API. Every call is authenticated with a bearer token.
#[derive(Debug, Parser)]
#[command(name = "hoop", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Address of the gateway's gRPC API.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HOOP_GATEWAY",
        value_name = "URL",
        default_value = "http://127.0.0.1:8010"
    )]
    pub(crate) gateway: String,

    /// Bearer token to call the gateway with: an API key (`hpk_…`) or the admin token.
    /// When neither --token nor HOOP_TOKEN is given, the token is read from
    /// `<DATA_DIR>/admin-token`.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HOOP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,

    /// The gateway's data directory; its `admin-token` file is used when no token is given.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HOOP_DATA_DIR",
        value_name = "DIR",
        default_value = "./hoop-data"
    )]
    pub(crate) data_dir: PathBuf,

    /// Output format: `table` for people, `json` (canonical protobuf JSON, as grpcurl
    /// prints it) for scripts.
    #[arg(
        long,
        short = 'o',
        global = true,
        help_heading = "Global options",
        env = "HOOP_OUTPUT",
        value_name = "FORMAT",
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub(crate) output: OutputFormat,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns and `key: value` lines.
    Table,
    /// Canonical protobuf JSON.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show the user the token authenticates as.
    Whoami,
    /// Manage connections: the databases and servers users open sessions on.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// List the plugin registry, and attach, configure or detach plugins on connections.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Manage users, their groups and their API keys.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Run a connection's command once, through its plugins, and stream its output.
    ///
    /// The target's stdout and stderr are copied to hoop's, byte for byte, as they arrive;
    /// hoop exits with the target's exit status (1 when it has none in 0..=255). With
    /// --output json, every session event is printed as one JSON line instead.
    ///
    /// Example: echo 'select 1;' | hoop exec pg -- --quiet
    Exec {
        /// Connection name.
        connection: String,
        /// Text written to the target's stdin. Without it, hoop's own stdin is sent when it
        /// is not a terminal (a pipe or a file), and nothing otherwise.
        #[arg(long, short = 'i', value_name = "TEXT")]
        input: Option<String>,
        /// Arguments appended to the connection's command, after `--`. They are passed as
        /// argv, never through a shell.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Open an interactive session on a connection: hoop's stdin goes to the program as it
    /// is read, and the program's output comes back as it is produced.
    ///
    /// When hoop's stdin is a terminal, the program runs on a terminal of the same size on
    /// the gateway (prompts, line editing, Ctrl-C and Ctrl-D work as on a local terminal;
    /// its stdout and stderr both arrive on hoop's stdout), resized along with yours, and
    /// your terminal is in raw mode for the session: restored when hoop exits, also on
    /// errors. Otherwise the program runs on pipes: stdin is sent in chunks as it is read,
    /// and its end closes the program's stdin.
    ///
    /// The program's output is copied to hoop's stdout and stderr, byte for byte; hoop exits
    /// with the program's exit status (1 when it has none in 0..=255), printing why the
    /// session ended when the status is not 0. SIGINT, SIGTERM or SIGHUP end the session
    /// (the program is killed) and hoop with status 128 + the signal's number. With --output
    /// json, every session event is printed as one JSON line instead.
    ///
    /// Example: hoop connect pg -- --quiet
    Connect {
        /// Connection name.
        connection: String,
        /// Arguments appended to the connection's command, after `--`. They are passed as
        /// argv, never through a shell.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// List, show, kill, replay and verify sessions: the record of every exec and connect on
    /// a connection.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

/// How `hoop sessions replay` prints a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReplayFormat {
    /// What the user saw: the recorded stdout bytes on stdout and stderr bytes on stderr,
    /// untouched; nothing else.
    Text,
    /// One JSON object per line and event, every kind: {"index", "offset" (seconds),
    /// "kind" (header, stdin, stdout, stderr or close), and "text" when the data is UTF-8,
    /// else "base64"}.
    Json,
    /// An asciinema v2 recording (80x24): stdout and stderr as output frames, stdin as
    /// input frames. Play it with `asciinema play FILE`.
    Asciicast,
}

/// Parses `--speed`: a finite number greater than 0.
fn parse_speed(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed > 0.0 => Ok(speed),
        _ => Err(format!(
            "`{value}` is not a number greater than 0 (e.g. 2 for twice as fast, 0.5 for half)"
        )),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// List sessions (all pages), newest first. Users see their own sessions; groups
    /// `admin` and `auditor` see everyone's.
    List {
        /// Only sessions on this connection.
        #[arg(long, value_name = "NAME")]
        connection: Option<String>,
        /// Only sessions of this user.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only sessions with this status.
        #[arg(long, value_name = "STATUS",
              value_parser = ["open", "done", "denied", "killed", "interrupted"])]
        status: Option<String>,
        /// Sessions fetched per request; every page is fetched.
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(i32).range(1..=1000))]
        page_size: i32,
    },
    /// Show one session: who ran what, how it ended, its byte counts, and the metrics and
    /// attributes (e.g. `audit.digest`) plugins recorded.
    #[command(visible_alias = "get")]
    Show {
        /// Session id, as `hoop sessions list` shows it.
        id: String,
    },
    /// End a running session: its processes are killed and it is recorded as `killed`.
    /// Allowed to the session's owner and to admins.
    Kill {
        /// Session id, as `hoop sessions list` shows it.
        id: String,
    },
    /// Replay a session's recording: what the user sent and saw.
    ///
    /// The recording is checked as it is read: if it was altered, the events before the
    /// first bad one are printed, then an error (DATA_LOSS), and hoop exits with status 1.
    /// --output does not apply: --format picks the output.
    ///
    /// Example: hoop sessions replay ID --timing --speed 2
    Replay {
        /// Session id, as `hoop sessions list` shows it.
        id: String,
        /// Output format.
        #[arg(long, value_name = "FORMAT", value_enum, default_value_t = ReplayFormat::Text)]
        format: ReplayFormat,
        /// Replay in real time: wait between events as long as the session did (divided by
        /// --speed). A single wait is at most 2 seconds, so idle periods do not stall the
        /// replay.
        #[arg(long)]
        timing: bool,
        /// With --timing, how many times faster than real time to replay: a number greater
        /// than 0.
        #[arg(long, value_name = "FACTOR", default_value_t = 1.0,
              value_parser = parse_speed, requires = "timing", allow_negative_numbers = true)]
        speed: f64,
    },
    /// Verify a session's recording: recompute its hash chain and compare the final digest
    /// with the one stored with the session.
    ///
    /// Prints a short report (the canonical VerifySessionResponse with --output json).
    /// Exits with status 0 when the recording verifies, 1 when it does not (or on error).
    Verify {
        /// Session id, as `hoop sessions list` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConnectionsCommand {
    /// List every connection (all pages), ordered by name.
    List {
        /// Connections fetched per request; every page is fetched.
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(i32).range(1..=1000))]
        page_size: i32,
    },
    /// Show one connection and the plugins attached to it. Secret env values are never
    /// returned: only their keys.
    Get {
        /// Connection name.
        name: String,
    },
    /// Create a connection; the default plugins are attached to it.
    ///
    /// Example: hoop connections create pg --env PGPASSWORD=s3cret --reviewers dba -- psql -h db
    Create {
        /// Connection name: `^[a-z0-9][a-z0-9_-]{0,62}$`, immutable.
        name: String,
        #[command(flatten)]
        fields: ConnectionFields,
    },
    /// Update a connection: only the fields whose flags are given change.
    ///
    /// Example: hoop connections update pg --reviewers '' (clears the reviewers)
    Update {
        /// Connection name.
        name: String,
        #[command(flatten)]
        fields: ConnectionFields,
    },
    /// Delete a connection and its plugin attachments.
    Delete {
        /// Connection name.
        name: String,
    },
}

/// The writable fields of a connection, shared by `create` and `update`.
#[derive(Debug, Default, Args)]
pub(crate) struct ConnectionFields {
    /// Kind of target. Supported: `command` (the gateway runs CMD). Default on create:
    /// command.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) kind: Option<String>,

    /// Environment variable given to the target, e.g. a password (repeatable). Values are
    /// write-only. On update, the given variables replace the whole environment.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,

    /// Comma-separated groups whose approval a session needs (activates the `review`
    /// plugin). On update, '' clears them.
    #[arg(long, value_name = "G1,G2")]
    pub(crate) reviewers: Option<String>,

    /// Comma-separated info types masked in session output (activates the `dlp` plugin).
    /// On update, '' clears them.
    #[arg(long, value_name = "T1,T2")]
    pub(crate) redact_types: Option<String>,

    /// Free-form label (repeatable). On update, the given tags replace all the tags.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub(crate) tags: Vec<String>,

    /// Comma-separated ways the connection may be used, among exec, connect and runbooks;
    /// those not listed are disabled. When not given on create, all are enabled.
    #[arg(long, value_name = "MODES")]
    pub(crate) access_modes: Option<String>,

    /// Longest a session may run before it is killed, e.g. 90s, 30m, 2h, 1h30m (1s to 7
    /// days). Default on create: no limit. On update, `none` (or 0) removes the limit.
    #[arg(long, value_name = "DURATION")]
    pub(crate) session_timeout: Option<String>,

    /// The program a `command` connection runs, and its arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PluginsCommand {
    /// List the plugin registry or, given a connection, the plugins attached to it in chain
    /// order.
    List {
        /// Connection whose attached plugins to list; without it, the registry is listed.
        connection: Option<String>,
    },
    /// Attach a plugin to a connection. `dlp` and `review` are managed through the
    /// connection's --redact-types and --reviewers instead.
    Attach {
        /// Connection name.
        connection: String,
        /// Plugin name, as `hoop plugins list` shows it.
        plugin: String,
        /// Plugin config, a JSON object, e.g. '{"channels": ["C0123456789"]}' for slack.
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
    },
    /// Replace the config of a plugin attached to a connection.
    Config {
        /// Connection name.
        connection: String,
        /// Plugin name.
        plugin: String,
        /// The new plugin config, a JSON object; it replaces the old one entirely.
        #[arg(long, value_name = "JSON")]
        config: String,
    },
    /// Detach a plugin from a connection (`audit` cannot be detached).
    Detach {
        /// Connection name.
        connection: String,
        /// Plugin name.
        plugin: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// List every user (all pages), ordered by name.
    List {
        /// Users fetched per request; every page is fetched.
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(i32).range(1..=1000))]
        page_size: i32,
    },
    /// Show one user.
    Get {
        /// User name.
        name: String,
    },
    /// Create a user.
    Create {
        /// User name: `^[a-z0-9][a-z0-9._-]{0,62}$`, immutable.
        name: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Update a user: only the fields whose flags are given change.
    Update {
        /// User name.
        name: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Delete a user and revoke their API keys.
    Delete {
        /// User name.
        name: String,
    },
    /// Manage API keys: bearer tokens that act as a user.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// The writable fields of a user, shared by `create` and `update`.
#[derive(Debug, Default, Args)]
pub(crate) struct UserFields {
    /// Email address.
    #[arg(long, value_name = "EMAIL")]
    pub(crate) email: Option<String>,

    /// Comma-separated groups: `admin` manages everything, `auditor` reads every session.
    /// On update, the list replaces the old one ('' removes every group).
    #[arg(long, value_name = "G1,G2")]
    pub(crate) groups: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create an API key. Its token is printed once and never again.
    Create {
        /// The user the key acts as; default: the caller.
        user: Option<String>,
        /// A label to tell keys apart.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List a user's API keys (never their tokens).
    List {
        /// Whose keys; default: the caller.
        user: Option<String>,
    },
    /// Revoke an API key: calls made with it fail from then on.
    Revoke {
        /// Key id, as `hoop users keys list` shows it.
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_connection_create_with_trailing_command() {
        let cli = Cli::try_parse_from([
            "hoop",
            "--gateway",
            "http://gw:1",
            "connections",
            "create",
            "pg",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--reviewers",
            "dba,ops",
            "-o",
            "json",
            "--",
            "psql",
            "-h",
            "db",
        ])
        .unwrap();
        assert_eq!(cli.gateway, "http://gw:1");
        assert_eq!(cli.output, OutputFormat::Json);
        let Command::Connections(ConnectionsCommand::Create { name, fields }) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(name, "pg");
        assert_eq!(fields.env, ["A=1", "B=2"]);
        assert_eq!(fields.reviewers.as_deref(), Some("dba,ops"));
        assert_eq!(fields.command, ["psql", "-h", "db"]);
        assert_eq!(fields.kind, None);
    }

    #[test]
    fn empty_reviewers_is_given() {
        let cli = Cli::try_parse_from(["hoop", "connections", "update", "pg", "--reviewers", ""])
            .unwrap();
        let Command::Connections(ConnectionsCommand::Update { fields, .. }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(fields.reviewers.as_deref(), Some(""));
    }

    #[test]
    fn rejects_unknown_output_format_and_bad_page_size() {
        assert!(Cli::try_parse_from(["hoop", "-o", "yaml", "whoami"]).is_err());
        assert!(Cli::try_parse_from(["hoop", "users", "list", "--page-size", "0"]).is_err());
    }

    #[test]
    fn parses_exec() {
        let cli = Cli::try_parse_from([
            "hoop",
            "exec",
            "pg",
            "-i",
            "select 1;",
            "-o",
            "json",
            "--",
            "-c",
            "--quiet",
            "a b",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        let Command::Exec {
            connection,
            input,
            args,
        } = cli.command
        else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(connection, "pg");
        assert_eq!(input.as_deref(), Some("select 1;"));
        assert_eq!(args, ["-c", "--quiet", "a b"]);

        let cli = Cli::try_parse_from(["hoop", "exec", "sh", "--input", ""]).unwrap();
        let Command::Exec { input, args, .. } = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(input.as_deref(), Some(""));
        assert!(args.is_empty());

        let cli = Cli::try_parse_from(["hoop", "exec", "sh"]).unwrap();
        let Command::Exec { input, .. } = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(input, None);
    }

    #[test]
    fn exec_needs_a_connection_and_dashes_before_args() {
        assert!(Cli::try_parse_from(["hoop", "exec"]).is_err());
        assert!(Cli::try_parse_from(["hoop", "exec", "pg", "extra"]).is_err());
        assert!(Cli::try_parse_from(["hoop", "exec", "pg", "-i"]).is_err());
    }

    #[test]
    fn parses_sessions() {
        let cli = Cli::try_parse_from([
            "hoop",
            "sessions",
            "list",
            "--connection",
            "pg",
            "--user",
            "ann",
            "--status",
            "done",
            "--page-size",
            "10",
        ])
        .unwrap();
        let Command::Sessions(SessionsCommand::List {
            connection,
            user,
            status,
            page_size,
        }) = cli.command
        else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(connection.as_deref(), Some("pg"));
        assert_eq!(user.as_deref(), Some("ann"));
        assert_eq!(status.as_deref(), Some("done"));
        assert_eq!(page_size, 10);

        let cli = Cli::try_parse_from(["hoop", "sessions", "list"]).unwrap();
        let Command::Sessions(SessionsCommand::List {
            connection,
            status,
            page_size,
            ..
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!((connection, status, page_size), (None, None, 100));

        for verb in ["show", "get"] {
            let cli = Cli::try_parse_from(["hoop", "sessions", verb, "s-1"]).unwrap();
            let Command::Sessions(SessionsCommand::Show { id }) = cli.command else {
                panic!("wrong command");
            };
            assert_eq!(id, "s-1");
        }
    }

    #[test]
    fn rejects_bad_session_filters() {
        assert!(Cli::try_parse_from(["hoop", "sessions", "list", "--status", "running"]).is_err());
        assert!(Cli::try_parse_from(["hoop", "sessions", "list", "--page-size", "1001"]).is_err());
        assert!(Cli::try_parse_from(["hoop", "sessions", "show"]).is_err());
    }

    #[test]
    fn parses_connect() {
        let cli = Cli::try_parse_from(["hoop", "connect", "sh", "--", "-i", "--login"]).unwrap();
        let Command::Connect { connection, args } = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(connection, "sh");
        assert_eq!(args, ["-i", "--login"]);
        let cli = Cli::try_parse_from(["hoop", "connect", "sh"]).unwrap();
        let Command::Connect { args, .. } = cli.command else {
            panic!("wrong command");
        };
        assert!(args.is_empty());
        assert!(Cli::try_parse_from(["hoop", "connect"]).is_err());
        assert!(Cli::try_parse_from(["hoop", "connect", "sh", "-i"]).is_err());
    }

    fn replay(args: &[&str]) -> Result<(String, ReplayFormat, bool, f64), clap::Error> {
        let cli = Cli::try_parse_from(["hoop", "sessions", "replay"].iter().chain(args))?;
        let Command::Sessions(SessionsCommand::Replay {
            id,
            format,
            timing,
            speed,
        }) = cli.command
        else {
            panic!("wrong command: {:?}", cli.command);
        };
        Ok((id, format, timing, speed))
    }

    #[test]
    fn parses_replay() {
        assert_eq!(
            replay(&["s-1"]).unwrap(),
            ("s-1".to_owned(), ReplayFormat::Text, false, 1.0)
        );
        assert_eq!(
            replay(&["s-1", "--format", "asciicast", "--timing", "--speed", "2.5"]).unwrap(),
            ("s-1".to_owned(), ReplayFormat::Asciicast, true, 2.5)
        );
        assert_eq!(
            replay(&["s-1", "--format", "json"]).unwrap().1,
            ReplayFormat::Json
        );
        assert_eq!(replay(&["s-1", "--timing"]).unwrap().3, 1.0);
        assert!(replay(&[]).is_err());
        assert!(replay(&["s-1", "--format", "html"]).is_err());
        // --speed needs --timing, and a number greater than 0.
        assert!(replay(&["s-1", "--speed", "2"]).is_err());
        for bad in ["0", "-1", "fast", "inf", "NaN", ""] {
            let err = replay(&["s-1", "--timing", "--speed", bad]).unwrap_err();
            assert!(
                err.to_string().contains("is not a number greater than 0"),
                "{bad}: {err}"
            );
        }
        assert_eq!(parse_speed("0.25"), Ok(0.25));
    }

    #[test]
    fn parses_verify() {
        let cli = Cli::try_parse_from(["hoop", "sessions", "verify", "s-1", "-o", "json"]).unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        let Command::Sessions(SessionsCommand::Verify { id }) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(id, "s-1");
        assert!(Cli::try_parse_from(["hoop", "sessions", "verify"]).is_err());
    }

    #[test]
    fn parses_session_timeout() {
        for verb in ["create", "update"] {
            let cli = Cli::try_parse_from([
                "hoop",
                "connections",
                verb,
                "pg",
                "--session-timeout",
                "1h30m",
            ])
            .unwrap();
            let fields = match cli.command {
                Command::Connections(
                    ConnectionsCommand::Create { fields, .. }
                    | ConnectionsCommand::Update { fields, .. },
                ) => fields,
                other => panic!("wrong command: {other:?}"),
            };
            assert_eq!(fields.session_timeout.as_deref(), Some("1h30m"));
        }
    }

    #[test]
    fn plugins_config_requires_config() {
        assert!(Cli::try_parse_from(["hoop", "plugins", "config", "pg", "slack"]).is_err());
        assert!(
            Cli::try_parse_from(["hoop", "plugins", "config", "pg", "slack", "--config", "{}"])
                .is_ok()
        );
    }
}
