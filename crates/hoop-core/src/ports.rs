//! Ports: what a host (the gateway, or an embedding service) offers plugins beyond a single
//! session. A plugin asks for the ports it needs in
//! [`PluginFactory::start`](crate::PluginFactory::start) and fails to start, naming the
//! port, when its host does not offer one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::events::{CursorStore, EventSource};
use crate::session::{ConnectionInfo, SessionRequest, Stream, UserInfo, Verb};

/// A port could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The thing asked for does not exist (or the caller may not know it does).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request was refused.
    #[error("refused: {0}")]
    Refused(String),
    /// The host could not answer now (e.g. its database is unreachable); trying later may
    /// work.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// What the host holds does not verify (e.g. a recording that was altered or damaged):
    /// nothing of it is handed out, and trying again will not help.
    #[error("corrupt: {0}")]
    Corrupt(String),
}

/// Looks up users and connections.
#[async_trait]
pub trait Directory: Send + Sync + fmt::Debug + 'static {
    /// The user named `name`, with their e-mail and groups, if it exists.
    async fn user(&self, name: &str) -> Result<Option<UserInfo>, PortError>;
    /// The connection named `name`, if it exists.
    async fn connection(&self, name: &str) -> Result<Option<ConnectionInfo>, PortError>;

    /// The user whose Slack member ID is `slack_id`, if one set it (IDs are unique among
    /// users). The default: none.
    async fn user_by_slack_id(&self, slack_id: &str) -> Result<Option<UserInfo>, PortError> {
        let _ = slack_id;
        Ok(None)
    }

    /// The one user whose e-mail is `email` (compared without regard to case), if exactly
    /// one has it: an e-mail several users share names nobody. The default: none.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserInfo>, PortError> {
        let _ = email;
        Ok(None)
    }

    /// The session `id` as the host keeps it on record, if it exists.
    ///
    /// The default answers [`PortError::Unavailable`]: a host that keeps no session records
    /// makes plugins that need them wait rather than guess.
    async fn session(&self, id: &str) -> Result<Option<SessionSummary>, PortError> {
        let _ = id;
        Err(PortError::Unavailable(
            "this host does not keep session records".to_owned(),
        ))
    }

    /// The config of plugin `plugin` on connection `connection`, if it is attached there
    /// (`None` when it is not, or when there is no such connection): for plugins whose work
    /// outside sessions follows their attachments (e.g. `webhooks` sends a connection's
    /// events only while it is attached to it).
    ///
    /// The default answers [`PortError::Unavailable`]: a host that does not say which
    /// plugins are attached where makes such plugins wait rather than guess.
    async fn plugin_config(
        &self,
        connection: &str,
        plugin: &str,
    ) -> Result<Option<crate::PluginConfig>, PortError> {
        let _ = (connection, plugin);
        Err(PortError::Unavailable(
            "this host does not say which plugins are attached to which connections".to_owned(),
        ))
    }

    /// Whether plugin `plugin` is attached to any connection: a plugin whose work outside
    /// sessions only concerns the connections it is attached to (e.g. the indexer) can rest
    /// while it is attached nowhere.
    ///
    /// The default answers `true`: a host that cannot tell keeps such plugins at work.
    async fn plugin_attached_anywhere(&self, plugin: &str) -> Result<bool, PortError> {
        let _ = plugin;
        Ok(true)
    }
}

/// A session as the host keeps it on record, for plugins that work on sessions after the
/// fact (e.g. an indexer): who ran it where, how it ended, when and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSummary {
    /// Its id.
    pub id: String,
    /// The connection's name.
    pub connection: String,
    /// The user's name.
    pub user: String,
    /// `exec` or `connect`.
    pub verb: String,
    /// `open`, `done`, `denied`, `killed` or `interrupted`.
    pub status: String,
    /// The exit code, once it ended with one.
    pub exit_code: Option<i32>,
    /// When it started.
    pub started_at: std::time::SystemTime,
    /// When it ended, if it has.
    pub ended_at: Option<std::time::SystemTime>,
    /// Bytes the user sent.
    pub bytes_in: i64,
    /// Bytes the target sent back.
    pub bytes_out: i64,
}

impl SessionSummary {
    /// An `exec` session of `user` on `connection` that started at `started_at` and is still
    /// `open` (for hosts and tests; set the rest by field).
    pub fn new(
        id: impl Into<String>,
        connection: impl Into<String>,
        user: impl Into<String>,
        started_at: std::time::SystemTime,
    ) -> Self {
        Self {
            id: id.into(),
            connection: connection.into(),
            user: user.into(),
            verb: "exec".to_owned(),
            status: "open".to_owned(),
            exit_code: None,
            started_at,
            ended_at: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// How long it ran: from `started_at` to `ended_at` (zero while it runs).
    pub fn duration(&self) -> Duration {
        self.ended_at
            .and_then(|end| end.duration_since(self.started_at).ok())
            .unwrap_or_default()
    }
}

/// One reviewer's decision on a review, as [`ReviewDecisions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewVote {
    /// The reviewer's user name.
    pub reviewer: String,
    /// The reviewer group they decided for.
    pub group: String,
    /// Approved (`true`) or rejected.
    pub approved: bool,
    /// Their reason, if they gave one.
    pub reason: Option<String>,
}

/// A review (access request) as [`ReviewDecisions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReviewView {
    /// Its id.
    pub id: String,
    /// `ONE_TIME` or `JIT`.
    pub kind: String,
    /// `PENDING`, `APPROVED`, `REJECTED`, `REVOKED`, `EXPIRED` or `EXECUTED`.
    pub status: String,
    /// The connection's name.
    pub connection: String,
    /// The requesting user's name.
    pub requester: String,
    /// `exec` or `connect`.
    pub verb: String,
    /// The exact input of a one-time review (unmasked: mask it before it leaves the host).
    pub input: Option<Bytes>,
    /// The arguments it runs with (unmasked).
    pub args: Vec<String>,
    /// Groups whose members may decide it.
    pub groups: Vec<String>,
    /// How many approvals it needs: distinct reviewers when the connection sets a
    /// minimum, else one per group.
    pub approvals_needed: u32,
    /// The decisions so far, oldest first.
    pub votes: Vec<ReviewVote>,
    /// Why it was rejected, revoked or expired, if known.
    pub reason: Option<String>,
    /// For a time-based review: how long the access lasts once approved.
    pub access_duration: Option<Duration>,
    /// The session that ran it (one-time) or the first under it (time-based).
    pub session_id: Option<String>,
}

impl ReviewView {
    /// A pending review with nothing decided (for hosts and tests; set the rest by field).
    pub fn new(
        id: impl Into<String>,
        connection: impl Into<String>,
        requester: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: "ONE_TIME".to_owned(),
            status: "PENDING".to_owned(),
            connection: connection.into(),
            requester: requester.into(),
            verb: "exec".to_owned(),
            input: None,
            args: Vec::new(),
            groups: Vec::new(),
            approvals_needed: 1,
            votes: Vec::new(),
            reason: None,
            access_duration: None,
            session_id: None,
        }
    }

    /// The approving votes.
    pub fn approvals(&self) -> impl Iterator<Item = &ReviewVote> {
        self.votes.iter().filter(|v| v.approved)
    }

    /// Whether it still waits for decisions.
    pub fn is_pending(&self) -> bool {
        self.status == "PENDING"
    }
}

/// A decision a plugin makes on a user's behalf through [`ReviewDecisions::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewVerdict {
    /// Approve for the group.
    Approve,
    /// Reject for the group, saying why.
    Reject {
        /// The reason (required by the host, as its API requires it).
        reason: String,
    },
}

/// Reads reviews and decides them on a user's behalf, for plugins that let reviewers decide
/// outside the host's API (e.g. buttons in a chat).
///
/// A host implements it with exactly the rules of its own API: who sees a review, who may
/// decide it for which group (the requester never), what a reason may be. A refusal is
/// [`PortError::Refused`] with the message the API gives; a review the user may not see,
/// or that does not exist, is [`PortError::NotFound`].
#[async_trait]
pub trait ReviewDecisions: Send + Sync + fmt::Debug + 'static {
    /// The review `id`, if it exists (read as the host, not as a user).
    async fn review(&self, id: &str) -> Result<Option<ReviewView>, PortError>;

    /// Whether `user` may decide review `id` for `group` as `verdict` says, without deciding
    /// it: `Ok(())`, or the refusal [`decide`](Self::decide) would answer.
    async fn check(
        &self,
        id: &str,
        user: &str,
        group: &str,
        verdict: &ReviewVerdict,
    ) -> Result<(), PortError>;

    /// Records `user`'s decision on review `id` for `group`, as the host's API would for
    /// them, and returns the review as it now is.
    async fn decide(
        &self,
        id: &str,
        user: &str,
        group: &str,
        verdict: ReviewVerdict,
    ) -> Result<ReviewView, PortError>;
}

/// Ends running sessions from outside their hooks (a revoked grant, an expiry, a kill from
/// another system).
#[async_trait]
pub trait SessionControl: Send + Sync + fmt::Debug + 'static {
    /// Ends session `session_id` if it runs on this host, as denied by plugin `plugin` for
    /// `reason` (shown to the user and recorded: the session ends `killed` with
    /// [`CloseReason::Denied`](crate::CloseReason::Denied)). Returns once the session is
    /// settled, with whether a running session was found.
    async fn end_session(
        &self,
        session_id: &str,
        plugin: &str,
        reason: &str,
    ) -> Result<bool, PortError>;
}

/// One chunk of a session's data as it was recorded: the stream it went through, when, and
/// its bytes (what the user sent and saw, after the plugins before the recorder rewrote it,
/// e.g. masking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedChunk {
    /// Stdin (from the user) or stdout / stderr (from the target).
    pub stream: Stream,
    /// Time since the session started.
    pub offset: Duration,
    /// The bytes, as recorded (any bytes, not necessarily UTF-8).
    pub data: Bytes,
}

/// What [`RecordingReader::read`] returns: a session's recorded chunks, in order, up to a
/// bound on their bytes.
///
/// Build one with [`RecordedChunks::new`] and [`RecordedChunks::push_bounded`], which keep
/// the fields consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedChunks {
    /// The chunks, in the order they were recorded; at most the bound of bytes in all.
    pub chunks: Vec<RecordedChunk>,
    /// Bytes of data in the whole recording, those left out by the bound included.
    pub total_bytes: u64,
    /// Whether `chunks` holds all of the recording's data: `false` when the bound cut it
    /// short (the last chunk kept may then be cut too).
    pub complete: bool,
}

impl Default for RecordedChunks {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordedChunks {
    /// No chunk yet (complete).
    pub fn new() -> Self {
        Self {
            chunks: Vec::new(),
            total_bytes: 0,
            complete: true,
        }
    }

    /// Adds the next chunk, keeping at most `max_bytes` of data in all: the chunk that
    /// crosses the bound is cut at it, and later ones only count in
    /// [`total_bytes`](Self::total_bytes). Empty chunks are left out.
    pub fn push_bounded(&mut self, chunk: RecordedChunk, max_bytes: usize) {
        let len = chunk.data.len() as u64;
        if len == 0 {
            return;
        }
        if self.complete {
            // While complete, every byte counted so far is kept.
            let room = (max_bytes as u64).saturating_sub(self.total_bytes);
            if len <= room {
                self.chunks.push(chunk);
            } else {
                if room > 0 {
                    let keep = usize::try_from(room).unwrap_or(usize::MAX);
                    self.chunks.push(RecordedChunk {
                        data: chunk.data.slice(..keep),
                        ..chunk
                    });
                }
                self.complete = false;
            }
        }
        self.total_bytes = self.total_bytes.saturating_add(len);
    }

    /// Bytes of data in [`chunks`](Self::chunks).
    pub fn len_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.data.len()).sum()
    }
}

/// Reads sessions' recordings (e.g. for an indexer), verified.
///
/// A host implements it over its recorder (the gateway: the `audit` plugin's hash-chained
/// recordings). It never hands out bytes that do not verify: the whole recording is checked
/// against its hash chain, and against the final digest stored with the session when the
/// session has one, before anything is returned.
#[async_trait]
pub trait RecordingReader: Send + Sync + fmt::Debug + 'static {
    /// The stdin, stdout and stderr chunks recorded for session `session_id`, in order, with
    /// at most `max_bytes` of data (pass `usize::MAX` for all of it; see
    /// [`RecordedChunks::complete`]). Everything else a recording holds (its header, its
    /// close event) is left out. A session still running answers what is recorded so far.
    ///
    /// The bound limits what is returned, not what is checked: the recording is verified to
    /// its end, so the answer is all or nothing, and memory stays bounded by `max_bytes` (plus
    /// one record) whatever the recording's size.
    ///
    /// # Errors
    /// [`PortError::NotFound`] when there is no such session or it has no recording;
    /// [`PortError::Corrupt`] when the recording does not verify (altered, damaged, or cut
    /// short of its stored final digest), naming the first bad event;
    /// [`PortError::Unavailable`] when the host cannot read it now.
    async fn read(&self, session_id: &str, max_bytes: usize) -> Result<RecordedChunks, PortError>;
}

/// Masks text as a connection masks its sessions' output, for plugins that send text out
/// of the gateway (a review's input to Slack, an event to a webhook).
#[async_trait]
pub trait Redactor: Send + Sync + fmt::Debug + 'static {
    /// `text` with every value of the connection's masked info types (its `redact_types`)
    /// replaced as the dlp plugin replaces them in output; unchanged when the connection
    /// masks nothing.
    ///
    /// # Errors
    /// [`PortError::NotFound`] when there is no such connection (nothing may leave then),
    /// [`PortError::Unavailable`] when the host cannot read it now.
    async fn redact(&self, connection: &str, text: &str) -> Result<String, PortError>;
}

/// Encrypts small secrets a plugin keeps at rest (e.g. in its own tables) with the host's
/// key, so a plugin never holds or derives key material of its own.
///
/// A host derives one key per `purpose` from its own secret (the gateway: from its
/// `secret_key`), so values sealed for one purpose never open under another, and binds each
/// value to its `context` (e.g. the name of the record it belongs to): a ciphertext copied
/// onto another record does not open. Each seal uses a fresh nonce.
///
/// `purpose` names what the values are, scoped by the plugin (`"webhooks endpoint
/// secrets"`): lower-case ASCII letters, digits, spaces, `.`, `_` and `-`, 1 to 64 of them.
/// A host may reserve purposes of its own and refuses them.
pub trait Sealer: Send + Sync + fmt::Debug + 'static {
    /// `plaintext` encrypted for `purpose`, bound to `context`, as printable text.
    ///
    /// # Errors
    /// [`PortError::Refused`] for a malformed or reserved `purpose`;
    /// [`PortError::Unavailable`] when encryption fails.
    fn seal(&self, purpose: &str, context: &str, plaintext: &[u8]) -> Result<String, PortError>;

    /// The plaintext of what [`seal`](Self::seal) made for the same `purpose` and `context`
    /// with the same host key.
    ///
    /// # Errors
    /// [`PortError::Refused`] for a malformed or reserved `purpose`;
    /// [`PortError::Corrupt`] when `sealed` is malformed, altered, or sealed under another
    /// key, purpose or context.
    fn open(&self, purpose: &str, context: &str, sealed: &str) -> Result<Vec<u8>, PortError>;
}

/// Whether `purpose` is one a [`Sealer`] accepts by its documented shape (lower-case ASCII
/// letters, digits, spaces, `.`, `_`, `-`; 1 to 64 bytes; not starting or ending with a
/// space). Hosts may refuse more (their reserved purposes).
pub fn valid_seal_purpose(purpose: &str) -> bool {
    (1..=64).contains(&purpose.len())
        && !purpose.starts_with(' ')
        && !purpose.ends_with(' ')
        && purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b" ._-".contains(&b))
}

/// The ports a host offers. Each is optional: an embedder offers what it has, and a plugin
/// that needs a missing one fails to start with an error naming it.
#[derive(Clone, Default)]
pub struct Ports {
    /// The durable event log.
    pub events: Option<Arc<dyn EventSource>>,
    /// Where consumers keep their cursors in the log.
    pub cursors: Option<Arc<dyn CursorStore>>,
    /// Users and connections.
    pub directory: Option<Arc<dyn Directory>>,
    /// Ending running sessions.
    pub sessions: Option<Arc<dyn SessionControl>>,
    /// Reading sessions' recordings, verified.
    pub recordings: Option<Arc<dyn RecordingReader>>,
    /// Starting sessions on a user's behalf.
    pub starter: Option<Arc<dyn SessionStarter>>,
    /// Masking text with a connection's `redact_types`.
    pub redactor: Option<Arc<dyn Redactor>>,
    /// The host's database, for plugins that ship tables (see
    /// [`PluginMigration`](crate::PluginMigration)).
    pub database: Option<Database>,
    /// Reading and deciding reviews on a user's behalf.
    pub reviews: Option<Arc<dyn ReviewDecisions>>,
    /// Encrypting secrets a plugin keeps at rest with the host's key.
    pub sealer: Option<Arc<dyn Sealer>>,
}

/// The host's database handle, type-erased: hoop-core knows no database.
///
/// The gateway offers its `sea_orm::DatabaseConnection` here, with every plugin's
/// [`PluginMigration`](crate::PluginMigration)s applied; a plugin that ships tables asks for
/// it with [`Deployment::database`](crate::Deployment::database) and uses only its own
/// tables (the host's tables and their meaning are not an API).
#[derive(Clone)]
pub struct Database(Arc<dyn std::any::Any + Send + Sync>);

impl Database {
    /// Wraps `handle` (for the gateway, a `sea_orm::DatabaseConnection`).
    pub fn new<T: std::any::Any + Send + Sync>(handle: T) -> Self {
        Self(Arc::new(handle))
    }

    /// The handle, if it is a `T`.
    pub fn get<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A handle may hold a connection string with a password: never printed.
        f.write_str("Database(..)")
    }
}

/// A session a plugin asks the host to run on a user's behalf (e.g. a runbook).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartSession {
    /// The user the session runs for: it is theirs, with their access, reviews and record.
    pub user: String,
    /// The connection it runs on.
    pub connection: String,
    /// How it uses the connection (hosts may support only [`Verb::Exec`]).
    pub verb: Verb,
    /// Its arguments, input and ticket.
    pub request: SessionRequest,
}

impl StartSession {
    /// An `exec` session of `user` on `connection` with `request`.
    pub fn exec(
        user: impl Into<String>,
        connection: impl Into<String>,
        request: SessionRequest,
    ) -> Self {
        Self {
            user: user.into(),
            connection: connection.into(),
            verb: Verb::Exec,
            request,
        }
    }
}

/// What a session started through [`SessionStarter`] reports, in order: `Started`, maybe
/// `Held` (a plugin waits for approval), `Output`s, then exactly one `Exit`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionUpdate {
    /// The session exists (it is on record from now on).
    Started {
        /// Its id.
        session_id: String,
    },
    /// A plugin holds it until someone decides.
    Held {
        /// The approval request's id (e.g. a review id), if any.
        request_id: Option<String>,
        /// Groups that may approve.
        groups: Vec<String>,
        /// Why, in words.
        reason: String,
    },
    /// Output of the target, after the chain (masked, recorded).
    Output {
        /// Stdout or stderr.
        stream: Stream,
        /// The bytes.
        data: Bytes,
    },
    /// The session ended.
    Exit {
        /// The exit code (-1 when the program never ran).
        exit_code: i32,
        /// How it ended, in words.
        reason: String,
    },
}

/// Starts sessions on a user's behalf, through the connection's full plugin chain, exactly
/// as if the user had asked: access control, reviews, masking and recording all apply.
#[async_trait]
pub trait SessionStarter: Send + Sync + fmt::Debug + 'static {
    /// Starts `session` for plugin `plugin` (named in the logs); its updates arrive on the
    /// receiver until [`SessionUpdate::Exit`]. Dropping the receiver ends the session (as a
    /// client going away does).
    ///
    /// # Errors
    /// [`PortError::NotFound`] for a user or connection that does not exist (or that the
    /// user may not see); [`PortError::Refused`] for a request the host refuses (a verb it
    /// cannot start, an access mode turned off, bad arguments);
    /// [`PortError::Unavailable`] when the host cannot start sessions now.
    async fn start_session(
        &self,
        plugin: &str,
        session: StartSession,
    ) -> Result<tokio::sync::mpsc::Receiver<SessionUpdate>, PortError>;
}

impl fmt::Debug for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ports")
            .field("events", &self.events.is_some())
            .field("cursors", &self.cursors.is_some())
            .field("directory", &self.directory.is_some())
            .field("sessions", &self.sessions.is_some())
            .field("recordings", &self.recordings.is_some())
            .field("starter", &self.starter.is_some())
            .field("redactor", &self.redactor.is_some())
            .field("database", &self.database.is_some())
            .field("reviews", &self.reviews.is_some())
            .field("sealer", &self.sealer.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Names;

    #[async_trait]
    impl Directory for Names {
        async fn user(&self, name: &str) -> Result<Option<UserInfo>, PortError> {
            Ok(Some(UserInfo::new(name)))
        }
        async fn connection(&self, _: &str) -> Result<Option<ConnectionInfo>, PortError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn directory_lookups_beyond_names_find_nobody_by_default() {
        let d = Names;
        assert_eq!(d.user_by_slack_id("U1").await.unwrap(), None);
        assert_eq!(d.user_by_email("a@b.c").await.unwrap(), None);
        // Which plugins are attached where is not guessed: a host must say.
        assert!(matches!(
            d.plugin_config("pg", "slack").await,
            Err(PortError::Unavailable(_))
        ));
        // Nor is a plugin taken to be attached nowhere: it would rest and miss work.
        assert!(d.plugin_attached_anywhere("indexer").await.unwrap());
        let alice = d.user("alice").await.unwrap().unwrap();
        assert_eq!(alice.slack_id, None);
        assert_eq!(
            alice.with_slack_id(Some("U1".into())).slack_id.as_deref(),
            Some("U1")
        );
    }

    #[test]
    fn a_review_view_counts_its_approvals() {
        let mut r = ReviewView::new("r1", "pg", "alice");
        assert!(r.is_pending());
        assert_eq!((r.kind.as_str(), r.approvals_needed), ("ONE_TIME", 1));
        r.votes = vec![
            ReviewVote {
                reviewer: "bob".into(),
                group: "dba".into(),
                approved: true,
                reason: None,
            },
            ReviewVote {
                reviewer: "erin".into(),
                group: "sre".into(),
                approved: false,
                reason: Some("no".into()),
            },
        ];
        let approvers: Vec<&str> = r.approvals().map(|v| v.reviewer.as_str()).collect();
        assert_eq!(approvers, ["bob"]);
        r.status = "REJECTED".into();
        assert!(!r.is_pending());
        let ports = Ports::default();
        assert!(format!("{ports:?}").contains("reviews: false"));
    }

    fn chunk(stream: Stream, ms: u64, data: &'static str) -> RecordedChunk {
        RecordedChunk {
            stream,
            offset: Duration::from_millis(ms),
            data: Bytes::from_static(data.as_bytes()),
        }
    }

    #[test]
    fn push_bounded_keeps_at_most_the_bound_and_counts_everything() {
        let mut all = RecordedChunks::new();
        let mut cut = RecordedChunks::new();
        let mut none = RecordedChunks::default();
        for c in [
            chunk(Stream::Stdin, 1, "ls\n"),
            chunk(Stream::Stdout, 2, ""),
            chunk(Stream::Stdout, 3, "a.txt b.txt\n"),
            chunk(Stream::Stderr, 4, "warning\n"),
        ] {
            all.push_bounded(c.clone(), usize::MAX);
            cut.push_bounded(c.clone(), 8);
            none.push_bounded(c, 0);
        }
        assert!(all.complete);
        assert_eq!(all.chunks.len(), 3, "the empty chunk is left out");
        assert_eq!((all.total_bytes, all.len_bytes()), (23, 23));

        assert!(!cut.complete);
        assert_eq!(cut.total_bytes, 23);
        assert_eq!(cut.len_bytes(), 8);
        assert_eq!(
            cut.chunks,
            [
                chunk(Stream::Stdin, 1, "ls\n"),
                chunk(Stream::Stdout, 3, "a.txt")
            ]
        );

        assert!(!none.complete && none.chunks.is_empty());
        assert_eq!(none.total_bytes, 23);

        // A bound met exactly is still complete.
        let mut exact = RecordedChunks::new();
        exact.push_bounded(chunk(Stream::Stdout, 0, "1234"), 4);
        assert!(exact.complete);
    }
}
