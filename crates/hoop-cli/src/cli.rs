//! The command line: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `hoop`: the command-line client of the hoop-rs gateway.
///
/// Manages connections, the plugins attached to them, users and API keys, runs commands and
/// interactive sessions on connections, decides the reviews (access requests) of
/// connections with reviewers, and lists, replays and verifies the sessions they recorded,
/// through the gateway's gRPC API. Every call is authenticated with a bearer token.
/// `hoop dlp redact` masks sensitive data locally, without a gateway.
#[derive(Debug, Parser)]
#[command(name = "hoop", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Address of the gateway's gRPC API: `http://HOST:PORT`, or `https://HOST:PORT` when the
    /// gateway serves TLS.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HOOP_GATEWAY",
        value_name = "URL",
        default_value = "http://127.0.0.1:8010"
    )]
    pub(crate) gateway: String,

    /// With an https:// gateway: PEM file of the CA that signed the gateway's certificate
    /// (a private CA). Without it, the certificate must chain to a public root (the webpki
    /// roots built into hoop).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HOOP_CA",
        value_name = "FILE"
    )]
    pub(crate) ca: Option<PathBuf>,

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

    /// The gateway's data directory; its `admin-token` file is used when no token is given,
    /// and its `secret-key` file for the hash style of `hoop dlp redact`.
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

// Parsed once per run: the size of the largest variant (the connection fields) costs nothing.
#[allow(clippy::large_enum_variant)]
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
    /// Manage agents: the processes that run sessions' programs (`local`, the gateway's
    /// own, and `hoop-agent` processes that dial out to the gateway from other networks).
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// The gateways sharing the database (several on PostgreSQL): their leases and sessions.
    #[command(subcommand)]
    Gateways(GatewaysCommand),
    /// Run a connection's command once, through its plugins, and stream its output.
    ///
    /// The target's stdout and stderr are copied to hoop's, byte for byte, as they arrive;
    /// hoop exits with the target's exit status (1 when it has none in 0..=255). With
    /// --output json, every session event is printed as one JSON line instead.
    ///
    /// On a connection with reviewers, the command waits for approval first: hoop prints
    /// `waiting for approval by <groups> (review <id>)` to stderr and goes on once the
    /// review is approved, or exits with status 1 and the rejection's reason. You may also
    /// leave (Ctrl-C) and run the review once it is approved, with --review.
    ///
    /// Example: echo 'select 1;' | hoop exec pg -- --quiet
    #[command(group = clap::ArgGroup::new("target").required(true).multiple(true)
        .args(["connection", "review"]))]
    Exec {
        /// Connection name; may be left out with --review.
        connection: Option<String>,
        /// Text written to the target's stdin. Without it, hoop's own stdin is sent when it
        /// is not a terminal (a pipe or a file), and nothing otherwise; with --review,
        /// nothing (the reviewed input is run).
        #[arg(long, short = 'i', value_name = "TEXT")]
        input: Option<String>,
        /// Run an approved one-time review, as `hoop reviews list` shows it: its reviewed
        /// input and arguments run, once. --input and ARGS, when given, must be exactly the
        /// reviewed ones.
        #[arg(long, value_name = "ID")]
        review: Option<String>,
        /// Arguments appended to the connection's command, after `--`. They are passed as
        /// argv, never through a shell, and only to a connection created with --allow-args.
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
    /// On a connection with reviewers, access is granted for a time (--duration) once
    /// reviewers approve: hoop prints `waiting for approval by <groups> (review <id>)` to
    /// stderr, and the session starts when the review is approved (your terminal stays in
    /// its normal mode while waiting: Ctrl-C leaves). Within the granted time, further
    /// sessions start at once.
    ///
    /// Example: hoop connect pg --duration 30m -- --quiet
    Connect {
        /// Connection name.
        connection: String,
        /// On a connection with reviewers: how long the access to ask for should last, e.g.
        /// 30m, 2h, 1h30m. Default: the connection's access_max_duration.
        #[arg(long, value_name = "DURATION", value_parser = parse_access_duration)]
        duration: Option<std::time::Duration>,
        /// On a postgres connection: the local port to listen on (127.0.0.1), 0 for any free
        /// port.
        #[arg(long, value_name = "PORT", default_value_t = 5433)]
        port: u16,
        /// Arguments appended to the connection's command, after `--`. They are passed as
        /// argv, never through a shell, and only to a connection created with --allow-args.
        /// Under a time-based grant, they must be those the grant was asked for.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// List, show, kill, replay and verify sessions: the record of every exec and connect on
    /// a connection.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// List, show, approve, reject and revoke reviews: the access requests of sessions on
    /// connections with reviewers.
    #[command(subcommand)]
    Reviews(ReviewsCommand),
    /// Read the gateway's durable event log: sessions opened, held, started and closed,
    /// recordings finished, reviews created and decided, connections changed. Admins and
    /// auditors only.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Search what sessions showed (the `indexer` plugin): free words, "phrases" and
    /// qualifiers such as user:, connection:, verb:, status:, in:input|output, is:error,
    /// exit:N, started:>2026-12-01, started:-24h, duration:>10s; -qualifier:value negates.
    /// Newest first; you find your own sessions (admins and auditors: all).
    ///
    /// Example: hoop search '"drop table" connection:pg-prod started:-7d -user:bob'
    Search {
        /// The query (quote it for the shell).
        query: String,
        /// Best match first instead of newest first.
        #[arg(long)]
        relevance: bool,
        /// Results per page (at most 100).
        #[arg(long, default_value_t = 20)]
        limit: i32,
        /// The page after the one that printed this token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Manage webhook endpoints (the `webhooks` plugin): HTTP URLs the gateway sends its
    /// events to, signed to the Standard Webhooks spec, with retries. A connection's events
    /// go out only while `webhooks` is attached to it (`hoop plugins attach CONN webhooks`).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Live data masking (the `dlp` plugin): list the info types the gateway detects, or
    /// try masking on local data.
    #[command(subcommand)]
    Dlp(DlpCommand),
    /// Runbooks: vetted scripts with typed parameters, kept in git repositories, run on a
    /// connection that has the `runbooks` plugin attached.
    #[command(subcommand)]
    Runbooks(RunbooksCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunbooksCommand {
    /// List the runbooks you may run: on CONN, or on any connection you can see. Files
    /// that do not parse are listed with their error.
    ///
    /// Example: hoop runbooks list pg-prod
    List {
        /// Only runbooks offered on this connection.
        connection: Option<String>,
        /// Only this repository's runbooks.
        #[arg(long, value_name = "NAME")]
        repository: Option<String>,
    },
    /// Show a runbook: its description, parameters and template.
    ///
    /// Example: hoop runbooks show ops billing/refund.runbook.sql
    Show {
        /// The repository's name.
        repository: String,
        /// The runbook's path in the repository.
        path: String,
    },
    /// Run a runbook on a connection with parameters, as your own session (reviews, masking
    /// and recording apply), and stream its output like `hoop exec`; hoop exits with the
    /// session's exit status.
    ///
    /// Example: hoop runbooks run pg-prod ops billing/refund.runbook.sql --param order_id=42
    Run {
        /// Connection to run it on.
        connection: String,
        /// The repository's name.
        repository: String,
        /// The runbook's path in the repository.
        path: String,
        /// A parameter value, NAME=VALUE; repeat for each parameter.
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Take the runbook at this commit of the repository's branch (7 to 40 hex digits)
        /// instead of the last fetched one.
        #[arg(long = "ref", value_name = "SHA")]
        git_ref: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksCommand {
    /// Create an endpoint. Its `whsec_…` secret is printed once: give it to the receiver,
    /// which verifies every delivery's `webhook-signature` with it.
    ///
    /// Example: hoop webhooks create siem --url https://siem.example.com/hoop --events 'session.*,review.*'
    Create {
        /// Endpoint name: `^[a-z0-9][a-z0-9_-]{0,62}$`.
        name: String,
        #[command(flatten)]
        fields: WebhookFields,
    },
    /// List endpoints.
    List,
    /// Show an endpoint (never its secret).
    Show {
        /// Endpoint name.
        name: String,
    },
    /// Change an endpoint: only the flags given change.
    Update {
        /// Endpoint name.
        name: String,
        #[command(flatten)]
        fields: WebhookFields,
    },
    /// Delete an endpoint and its deliveries.
    Delete {
        /// Endpoint name.
        name: String,
    },
    /// Give an endpoint a new secret, printed once. For 24 hours deliveries are signed with
    /// both the new and the old secret, so the receiver can switch without losing any.
    RotateSecret {
        /// Endpoint name.
        name: String,
    },
    /// List an endpoint's deliveries, newest event first, with their attempts.
    Deliveries {
        /// Endpoint name.
        name: String,
        /// Only deliveries in this status: pending, succeeded or failed.
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// At most this many deliveries (default 50, at most 1000).
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u32,
    },
    /// Send an event to an endpoint again, with the same `webhook-id` (receivers that
    /// deduplicate by it see one event).
    Redeliver {
        /// Endpoint name.
        name: String,
        /// The event's id (as `hoop webhooks deliveries` or `hoop events list` shows it).
        event_id: u64,
    },
}

/// The fields of an endpoint, for `create` and `update`.
#[derive(Debug, Args)]
pub(crate) struct WebhookFields {
    /// The http(s) URL events are POSTed to (required on create).
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// Free text.
    #[arg(long, value_name = "TEXT")]
    pub(crate) description: Option<String>,
    /// Comma-separated event types (`session.closed`) or families (`review.*`); none or ''
    /// means every type.
    #[arg(long, value_name = "T1,T2")]
    pub(crate) events: Option<String>,
    /// Comma-separated connections whose events it gets; none or '' means every connection
    /// with `webhooks` attached.
    #[arg(long, value_name = "C1,C2")]
    pub(crate) connections: Option<String>,
    /// Whether events are sent to it (default on create: true). `--enabled=false` pauses
    /// it; `--enabled` turns it back on (also after the gateway disabled it on a 410).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub(crate) enabled: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// List events, oldest first, after --after.
    ///
    /// Example: hoop events list --type 'review.*' --after 1200
    List {
        /// Only events of this type (`review.approved`) or family (`review.*`); repeat for
        /// several.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Only events with a greater id (0: from the oldest event the gateway keeps).
        #[arg(long, value_name = "ID", default_value_t = 0)]
        after: u64,
        /// Show at most this many events; the table ends with the --after to list on from.
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        limit: u64,
    },
    /// Print events as they happen, one per line, until interrupted: first those after
    /// --after (default: none of the past), then each new one. Reconnect with the last id
    /// seen as --after to miss nothing.
    ///
    /// Example: hoop events watch --type 'session.*' -o json
    Watch {
        /// Only events of this type (`review.approved`) or family (`review.*`); repeat for
        /// several.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Start after this id; without it, only events from now on.
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlpCommand {
    /// List the info types a connection's --redact-types may name: the built-in ones and
    /// the custom ones of the gateway's config (marked `(custom)`), each with the style the
    /// gateway masks it with and an example before and after masking.
    ///
    /// Long examples are shortened in the table; --output json has them in full.
    Types,
    /// Mask sensitive data in stdin and write the result to stdout, locally: no gateway is
    /// needed. Use it to see what a connection's --redact-types would mask, or to try
    /// custom types and styles before deploying them.
    ///
    /// Input is read as a stream of bytes (any size, not only UTF-8; bytes that are not part
    /// of a masked value pass through untouched), with the same engine the gateway runs.
    /// A summary of what was masked goes to stderr. --output does not apply.
    ///
    /// Exit status: 0 on success, 2 for an unknown info type or style, 1 for other errors
    /// (an unreadable or invalid --config file, I/O errors).
    ///
    /// Example: hoop dlp redact --types EMAIL_ADDRESS,CREDIT_CARD_NUMBER < dump.sql
    Redact(RedactArgs),
}

/// The options of `hoop dlp redact`.
#[derive(Debug, Args)]
pub(crate) struct RedactArgs {
    /// Comma-separated info types to mask, as `hoop dlp types` lists them (with --config,
    /// its custom types too), or `all` for every one of them.
    #[arg(long, value_name = "T1,T2", required = true)]
    pub(crate) types: String,

    /// Masking style of every type without its own in --config's `styles`; default: the
    /// config's `default_style`, else redact. The hash key is derived from HOOP_SECRET_KEY,
    /// else from `<DATA_DIR>/secret-key`, as the gateway does, so that tags match the
    /// gateway's; without either, a random key is used for this run.
    #[arg(long, value_name = "STYLE", value_enum)]
    pub(crate) style: Option<MaskStyle>,

    /// A gateway config file (TOML) whose `[dlp]` table (`default_style`, `styles`,
    /// `[[dlp.custom_types]]`) to mask with; its other keys are ignored.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Do not print the summary of what was masked to stderr.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

/// How `hoop dlp redact` writes a masked value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MaskStyle {
    /// The type's tag: `[EMAIL_ADDRESS]`.
    Redact,
    /// Every letter and digit replaced with `*`, separators kept: `****-****-****-****`.
    Mask,
    /// Like mask, but the last 4 letters or digits stay visible: `****-****-****-1111`.
    Partial,
    /// A keyed tag, the same for the same value: `[EMAIL_ADDRESS:3f9a1c2b7d4e5f60]`.
    Hash,
}

/// A command-line usage error found after parsing (e.g. an unknown info type): printed as
/// one `error: …` line, exit status 2, like the errors of the parser.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

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

/// Parses `hoop connect --duration`: a duration greater than 0, such as 30m, 2h or 1h30m.
fn parse_access_duration(value: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(value.trim()) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("the access duration must be longer than 0".to_owned()),
        Err(_) => Err(format!("`{value}` is not a duration like 30m, 2h or 1h30m")),
    }
}

/// The status `hoop reviews list --status` filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReviewStatusFilter {
    /// Waiting for reviewers.
    Pending,
    /// Approved: a one-time review not run yet, or a time-based grant.
    Approved,
    /// Rejected by a reviewer.
    Rejected,
    /// Revoked by a reviewer, the requester or an admin.
    Revoked,
    /// Not decided in time, or a time-based grant that ended.
    Expired,
    /// A one-time review that ran.
    Executed,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReviewsCommand {
    /// List the reviews you may see (all pages, up to --limit), newest first: your own
    /// requests, those awaiting your groups' decision and, for admins and auditors, all.
    List {
        /// Only reviews with this status.
        #[arg(long, value_name = "STATUS", value_enum)]
        status: Option<ReviewStatusFilter>,
        /// Only reviews on this connection.
        #[arg(long, value_name = "NAME")]
        connection: Option<String>,
        /// Only your own requests.
        #[arg(long)]
        mine: bool,
        /// Only pending reviews you may still approve or reject.
        #[arg(long)]
        awaiting_me: bool,
        /// Show at most N reviews (the newest). Default: all.
        #[arg(long, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Reviews fetched per request; pages are fetched until --limit or the last one.
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(i32).range(1..=1000))]
        page_size: i32,
    },
    /// Show one review: what was asked (the exact input, its SHA-256 and the arguments, or
    /// the access duration), by whom, its groups, and every decision.
    #[command(visible_alias = "get")]
    Show {
        /// Review id, as `hoop reviews list` or the waiting line of `hoop exec` shows it.
        id: String,
    },
    /// Approve a review, as a member of one of its groups (not the requester). Enough
    /// approvals let the waiting session go on.
    Approve {
        /// Review id.
        id: String,
        /// The group to approve for; needed only when you are in several of the review's
        /// groups.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Why, recorded with the decision.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Reject a review, as a member of one of its groups (not the requester): the waiting
    /// session ends, and the requester sees the reason.
    Reject {
        /// Review id.
        id: String,
        /// Why: told to the requester.
        #[arg(long, value_name = "TEXT", required = true)]
        reason: String,
        /// The group to reject for; needed only when you are in several of the review's
        /// groups.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
    /// Revoke a pending or approved review, as a member of one of its groups, its requester
    /// or an admin. A time-based grant ends at once: its live sessions are terminated.
    Revoke {
        /// Review id.
        id: String,
        /// Why, told to the requester.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
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
    ///
    /// Example: hoop connections create sh --allow-args -- sh -c (then: hoop exec sh -- 'id')
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
    /// Kind of target. Supported: `command` (the gateway runs CMD) and `postgres` (env
    /// HOST, PORT, USER, PASS, DB, SSLMODE, SSLROOTCERT; `hoop connect` then serves a local PostgreSQL
    /// port). Default on create: command.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) kind: Option<String>,

    /// Environment variable given to the target, e.g. a password (repeatable). Values are
    /// write-only. On update, the given variables replace the whole environment. `KEY` alone
    /// takes the value of hoop's own variable KEY: prefer it for secrets, since every user of
    /// the host can read a command line (`PGPASSWORD=… hoop connections create pg --env
    /// PGPASSWORD -- psql`).
    #[arg(long = "env", value_name = "KEY=VALUE|KEY")]
    pub(crate) env: Vec<String>,

    /// Comma-separated groups whose approval a session needs (activates the `review`
    /// plugin). On update, '' clears them.
    #[arg(long, value_name = "G1,G2")]
    pub(crate) reviewers: Option<String>,

    /// Comma-separated info types masked in session output (activates the `dlp` plugin).
    /// On update, '' clears them.
    #[arg(long, value_name = "T1,T2")]
    pub(crate) redact_types: Option<String>,

    /// postgres connections: comma-separated columns always masked in results, each
    /// `schema.table.column`, `table.column` or `*.column` (an alias or a join does not
    /// bypass them). On update, '' clears them.
    #[arg(long, value_name = "RULES")]
    pub(crate) mask_columns: Option<String>,

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

    /// With --reviewers: approvals a review needs, from distinct reviewers of any of the
    /// groups. Default: one approval from every reviewer group; on update, `none` (or 0)
    /// goes back to that.
    #[arg(long, value_name = "N")]
    pub(crate) min_approvals: Option<String>,

    /// With --reviewers: how long a review may stay pending before it expires, e.g. 30m,
    /// 2h, 7d (1s to 30 days). Default: 24h; on update, `none` goes back to it.
    #[arg(long, value_name = "DURATION")]
    pub(crate) review_ttl: Option<String>,

    /// With --reviewers: the longest access a time-based review (`hoop connect`) may grant,
    /// e.g. 1h, 8h (1 minute to 30 days). Default: 4h; on update, `none` goes back to it.
    #[arg(long, value_name = "DURATION")]
    pub(crate) access_max_duration: Option<String>,

    /// Let clients append arguments to the command (`hoop exec CONN -- ARGS…`, `hoop
    /// connect CONN -- ARGS…`); they are recorded and reviewed. Default on create: off, and
    /// sessions with arguments are refused. `--allow-args=false` turns it off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub(crate) allow_args: Option<bool>,

    /// The agent that runs the connection's sessions (`^[a-z0-9][a-z0-9_-]{0,62}$`).
    /// Default on create: `local`, the agent the gateway starts itself; on update, '' goes
    /// back to it.
    #[arg(long, value_name = "NAME")]
    pub(crate) agent: Option<String>,

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

    /// Slack member ID (like U0123ABCD: Slack profile → ⋮ → Copy member ID), so your clicks
    /// on review buttons in Slack act as this user ('' clears it). Anyone may set their own.
    #[arg(long, value_name = "ID")]
    pub(crate) slack_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GatewaysCommand {
    /// List the gateway instances: state (live, expired, stopped), lease age and open
    /// sessions. Needs group `admin` or `auditor`.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentsCommand {
    /// Register an agent. Its token is printed once and never again; run
    /// `hoop-agent --gateway URL` with it (HOOP_AGENT_TOKEN) where the targets are.
    Create {
        /// Agent name: `^[a-z0-9][a-z0-9_-]{0,62}$` (`local` is the gateway's own).
        name: String,
    },
    /// List agents, with whether each is connected and how many sessions it runs.
    List,
    /// Delete an agent: its token stops working, a running agent is cut off and its
    /// sessions end as `interrupted`.
    Delete {
        /// Agent name.
        name: String,
    },
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
    fn allow_args_takes_an_optional_value() {
        let fields = |args: &[&str]| {
            let cli =
                Cli::try_parse_from(["hoop", "connections", "update", "sh"].iter().chain(args))
                    .unwrap();
            let Command::Connections(ConnectionsCommand::Update { fields, .. }) = cli.command
            else {
                panic!("wrong command");
            };
            fields
        };
        assert_eq!(fields(&["--allow-args"]).allow_args, Some(true));
        assert_eq!(fields(&["--allow-args=true"]).allow_args, Some(true));
        assert_eq!(fields(&["--allow-args=false"]).allow_args, Some(false));
        assert_eq!(fields(&["--agent", "edge-1"]).allow_args, None);
        assert_eq!(
            fields(&["--agent", "edge-1"]).agent.as_deref(),
            Some("edge-1")
        );
        let create = Cli::try_parse_from([
            "hoop",
            "connections",
            "create",
            "sh",
            "--allow-args",
            "--",
            "sh",
            "-c",
        ])
        .unwrap();
        let Command::Connections(ConnectionsCommand::Create { fields, .. }) = create.command else {
            panic!("wrong command");
        };
        assert_eq!(
            (fields.allow_args, fields.command),
            (Some(true), vec!["sh".to_owned(), "-c".to_owned()])
        );
        for bad in [&["--allow-args=maybe"][..], &["--allow-args", "false"]] {
            assert!(
                Cli::try_parse_from(["hoop", "connections", "update", "sh"].iter().chain(bad))
                    .is_err(),
                "{bad:?}"
            );
        }
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
            review,
        } = cli.command
        else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(connection.as_deref(), Some("pg"));
        assert_eq!(review, None);
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
        let Command::Connect {
            connection,
            args,
            duration,
            ..
        } = cli.command
        else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(connection, "sh");
        assert_eq!(args, ["-i", "--login"]);
        assert_eq!(duration, None);
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
    fn parses_dlp() {
        let cli = Cli::try_parse_from(["hoop", "dlp", "types", "-o", "json"]).unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert!(matches!(cli.command, Command::Dlp(DlpCommand::Types)));

        let cli = Cli::try_parse_from([
            "hoop",
            "dlp",
            "redact",
            "--types",
            "EMAIL_ADDRESS,URL",
            "--style",
            "partial",
            "--config",
            "hoop.toml",
            "-q",
        ])
        .unwrap();
        let Command::Dlp(DlpCommand::Redact(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.types, "EMAIL_ADDRESS,URL");
        assert_eq!(args.style, Some(MaskStyle::Partial));
        assert_eq!(args.config, Some(PathBuf::from("hoop.toml")));
        assert!(args.quiet);

        let cli = Cli::try_parse_from(["hoop", "dlp", "redact", "--types", "all"]).unwrap();
        let Command::Dlp(DlpCommand::Redact(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((args.style, args.config, args.quiet), (None, None, false));
    }

    #[test]
    fn dlp_redact_needs_types_and_a_known_style() {
        let err = Cli::try_parse_from(["hoop", "dlp", "redact"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["hoop", "dlp", "redact", "--types", "URL", "--style", "x"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("redact, mask, partial, hash"),
            "{err}"
        );
    }

    #[test]
    fn parses_exec_of_a_review() {
        let cli = Cli::try_parse_from(["hoop", "exec", "--review", "r-1"]).unwrap();
        let Command::Exec {
            connection,
            input,
            args,
            review,
        } = cli.command
        else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(connection, None);
        assert_eq!(review.as_deref(), Some("r-1"));
        assert_eq!(input, None);
        assert!(args.is_empty());

        let cli = Cli::try_parse_from([
            "hoop",
            "exec",
            "pg",
            "--review",
            "r-1",
            "-i",
            "select 1;",
            "--",
            "-q",
        ])
        .unwrap();
        let Command::Exec {
            connection,
            review,
            args,
            ..
        } = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(connection.as_deref(), Some("pg"));
        assert_eq!(review.as_deref(), Some("r-1"));
        assert_eq!(args, ["-q"]);

        // Without --review, the connection is needed: a usage error (status 2).
        let err = Cli::try_parse_from(["hoop", "exec", "-i", "x"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("<CONNECTION|--review <ID>>"),
            "{err}"
        );
        assert!(Cli::try_parse_from(["hoop", "exec", "--review"]).is_err());
    }

    fn connect_duration(value: &str) -> Result<Option<std::time::Duration>, clap::Error> {
        let cli = Cli::try_parse_from(["hoop", "connect", "pg", "--duration", value])?;
        let Command::Connect { duration, .. } = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        Ok(duration)
    }

    #[test]
    fn parses_connect_duration() {
        let secs = |s| Some(std::time::Duration::from_secs(s));
        assert_eq!(connect_duration("30m").unwrap(), secs(1800));
        assert_eq!(connect_duration("1h30m").unwrap(), secs(5400));
        assert_eq!(connect_duration(" 2h ").unwrap(), secs(7200));
        for bad in ["soon", "", "-5m", "0", "0s", "30"] {
            let err = connect_duration(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        let err = connect_duration("soon").unwrap_err().to_string();
        assert!(
            err.contains("`soon` is not a duration like 30m, 2h or 1h30m"),
            "{err}"
        );
        let err = connect_duration("0s").unwrap_err().to_string();
        assert!(err.contains("must be longer than 0"), "{err}");
    }

    #[test]
    fn parses_reviews_list() {
        let cli = Cli::try_parse_from([
            "hoop",
            "reviews",
            "list",
            "--status",
            "pending",
            "--connection",
            "pg",
            "--mine",
            "--awaiting-me",
            "--limit",
            "5",
        ])
        .unwrap();
        let Command::Reviews(ReviewsCommand::List {
            status,
            connection,
            mine,
            awaiting_me,
            limit,
            page_size,
        }) = cli.command
        else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(status, Some(ReviewStatusFilter::Pending));
        assert_eq!(connection.as_deref(), Some("pg"));
        assert!(mine && awaiting_me);
        assert_eq!((limit, page_size), (Some(5), 100));

        let cli = Cli::try_parse_from(["hoop", "reviews", "list"]).unwrap();
        let Command::Reviews(ReviewsCommand::List {
            status,
            mine,
            awaiting_me,
            limit,
            ..
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(
            (status, mine, awaiting_me, limit),
            (None, false, false, None)
        );

        for bad in [
            &["--status", "open"][..],
            &["--limit", "0"],
            &["--limit", "-1"],
            &["--page-size", "1001"],
        ] {
            let args = ["hoop", "reviews", "list"].iter().chain(bad);
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn parses_review_decisions() {
        for verb in ["show", "get"] {
            let cli = Cli::try_parse_from(["hoop", "reviews", verb, "r-1"]).unwrap();
            let Command::Reviews(ReviewsCommand::Show { id }) = cli.command else {
                panic!("wrong command");
            };
            assert_eq!(id, "r-1");
        }

        let cli = Cli::try_parse_from(["hoop", "reviews", "approve", "r-1"]).unwrap();
        let Command::Reviews(ReviewsCommand::Approve { id, group, reason }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((id.as_str(), group, reason), ("r-1", None, None));
        let cli = Cli::try_parse_from([
            "hoop", "reviews", "approve", "r-1", "--group", "dba", "--reason", "ok",
        ])
        .unwrap();
        let Command::Reviews(ReviewsCommand::Approve { group, reason, .. }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(group.as_deref(), Some("dba"));
        assert_eq!(reason.as_deref(), Some("ok"));

        // A rejection needs its reason.
        let err = Cli::try_parse_from(["hoop", "reviews", "reject", "r-1"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--reason"), "{err}");
        let cli = Cli::try_parse_from([
            "hoop", "reviews", "reject", "r-1", "--reason", "not now", "--group", "dba",
        ])
        .unwrap();
        let Command::Reviews(ReviewsCommand::Reject { id, reason, group }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(id, "r-1");
        assert_eq!(reason, "not now");
        assert_eq!(group.as_deref(), Some("dba"));

        let cli = Cli::try_parse_from(["hoop", "reviews", "revoke", "r-1"]).unwrap();
        let Command::Reviews(ReviewsCommand::Revoke { id, reason }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((id.as_str(), reason), ("r-1", None));
        assert!(Cli::try_parse_from(["hoop", "reviews", "approve"]).is_err());
    }

    #[test]
    fn parses_review_settings_of_connections() {
        for verb in ["create", "update"] {
            let cli = Cli::try_parse_from([
                "hoop",
                "connections",
                verb,
                "pg",
                "--reviewers",
                "dba",
                "--min-approvals",
                "2",
                "--review-ttl",
                "2h",
                "--access-max-duration",
                "none",
            ])
            .unwrap();
            let fields = match cli.command {
                Command::Connections(
                    ConnectionsCommand::Create { fields, .. }
                    | ConnectionsCommand::Update { fields, .. },
                ) => fields,
                other => panic!("wrong command: {other:?}"),
            };
            assert_eq!(fields.min_approvals.as_deref(), Some("2"));
            assert_eq!(fields.review_ttl.as_deref(), Some("2h"));
            assert_eq!(fields.access_max_duration.as_deref(), Some("none"));
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
