//! The agent and its serve loop: messages of the gateway in, messages to the gateway out,
//! whatever carries them.

use std::collections::{HashMap, VecDeque};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hoop_proto::v1 as pb;
use hoop_proto::v1::gateway_message::Message as In;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::{Stream, StreamExt};

use crate::AgentError;
use crate::login::DEFAULT_LANG;
use crate::pool::{Launcher, Pool};
use crate::session::{self, Control};

/// How an [`Agent`] runs sessions.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// The user sessions run as, with that user's groups, when the agent runs as root (the
    /// gateway passes `nobody` by default). Ignored, with a warning, when the agent is not
    /// root: sessions then run as the agent's own user. `None` with a root agent: sessions
    /// run as root.
    pub run_as: Option<String>,
    /// The directory sessions run in. `None`: a fresh directory per session (mode 0700,
    /// owned by the session's user, under a base directory of this agent in the temp dir),
    /// removed with everything in it when the session ends.
    pub working_dir: Option<PathBuf>,
    /// The binary that runs the helper modes ([`dispatch_helper_mode`](crate::dispatch_helper_mode)).
    /// `None`: the session helper ([`SESSION_HELPER`](crate::SESSION_HELPER)) beside this
    /// process's executable, if it is there and prints this agent's
    /// [`helper_fingerprint`](crate::helper_fingerprint) (checked once, here; it is then
    /// executed through a descriptor held open, so a file replaced on disk since still runs
    /// the version checked); else this process's own executable (`/proc/self/exe`, the same
    /// way). Tests that drive the agent from a test harness set it to the `hoop-agent` binary.
    pub helper_exe: Option<PathBuf>,
    /// Keep no ready slots ([`READY_SLOTS`](crate::READY_SLOTS)): every session starts its
    /// supervisor (and exec helper, if any) itself, slower by an execution of the helper
    /// binary or two.
    /// For comparisons (tests, measurements).
    pub without_slots: bool,
}

/// How this agent's sessions started, since [`Agent::new`] (see [`Agent::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentStats {
    /// Sessions handed to a ready slot.
    pub slot_starts: u64,
    /// Sessions that started a supervisor of their own: no slot was ready, the session is
    /// on a terminal, slots are off, or its slot died as it took the session.
    pub fresh_starts: u64,
    /// Slots ready now, over every connection being served.
    pub ready_slots: usize,
}

/// An agent, ready to serve connections to a gateway (one at a time or several).
#[derive(Debug, Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

/// What every session of the agent shares.
#[derive(Debug)]
pub(crate) struct Inner {
    /// How supervisors start.
    pub(crate) launcher: Arc<Launcher>,
    /// The user to become (only when the agent is root).
    pub(crate) run_as: Option<String>,
    pub(crate) workdir: Workdir,
    pub(crate) lang: String,
    pub(crate) hostname: String,
    pub(crate) pid: i32,
    /// Numbers that make the names of fresh working directories unique.
    pub(crate) unique: AtomicU64,
    /// Whether connections keep ready slots.
    pub(crate) slots: bool,
    /// [`AgentStats`].
    pub(crate) slot_starts: AtomicU64,
    pub(crate) fresh_starts: AtomicU64,
}

/// Where sessions run.
#[derive(Debug)]
pub(crate) enum Workdir {
    Fixed(PathBuf),
    /// The base of fresh session directories (mode 0711), removed when the agent is dropped.
    Fresh(tempfile::TempDir),
}

/// How long the session helper may take to print its fingerprint.
const HELPER_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// The session helper installed beside `own` (the agent's executable), opened, if it is
/// there and speaks this agent's protocol; `None` (with a warning when it is there but
/// unusable) to run the helpers from the agent's own binary.
fn installed_helper(own: &std::path::Path) -> Option<(PathBuf, std::fs::File)> {
    let path = own.parent()?.join(crate::SESSION_HELPER);
    // Opened first and checked through the descriptor: what runs later is what was checked.
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::warn!(helper = %path.display(), error = %err, "cannot open the session helper: sessions start from the agent's own binary (slower)");
            return None;
        }
    };
    // Executed as the agent's user (root, for a gateway that runs sessions as another
    // user): a file someone else could have put there or changed is not run at all.
    if let Err(why) = trusted_as(&file, own) {
        tracing::warn!(helper = %path.display(), "the session helper beside the agent is not used: {why}; sessions start from the agent's own binary (slower)");
        return None;
    }
    let through = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let printed = run_with_timeout(
        std::process::Command::new(&through)
            .arg(crate::FINGERPRINT_ARG)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let wanted = crate::helper_fingerprint();
    match printed {
        Ok(printed) if printed.trim_end() == wanted => Some((path, file)),
        Ok(printed) => {
            tracing::warn!(
                helper = %path.display(), found = %printed.trim_end(), wanted = %wanted,
                "the session helper beside the agent was built from other sources: sessions start from the agent's own binary (slower); install the helper of this build"
            );
            None
        }
        Err(err) => {
            tracing::warn!(helper = %path.display(), error = %err, "the session helper beside the agent does not run: sessions start from the agent's own binary (slower)");
            None
        }
    }
}

/// Whether `helper` may be executed in place of `own`: a regular file owned by root or by
/// `own`'s owner, that neither its group nor others may write (whoever could write it
/// would run code as the agent's user).
fn trusted_as(helper: &std::fs::File, own: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = helper
        .metadata()
        .map_err(|e| format!("cannot inspect it: {e}"))?;
    let owner = std::fs::metadata(own)
        .map_err(|e| format!("cannot inspect the agent's own executable: {e}"))?
        .uid();
    if !meta.is_file() {
        return Err("it is not a regular file".to_owned());
    }
    if meta.uid() != 0 && meta.uid() != owner {
        return Err(format!(
            "it is owned by uid {}, neither root nor the agent executable's owner (uid {owner})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "its group or other users may write it (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Runs `command` to its end (killed after [`HELPER_CHECK`]) and returns its stdout.
fn run_with_timeout(command: &mut std::process::Command) -> std::io::Result<String> {
    let child = command.stdout(std::process::Stdio::piped()).spawn()?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(HELPER_CHECK) {
        Ok(output) => Ok(String::from_utf8_lossy(&output?.stdout).into_owned()),
        Err(_) => {
            // Not reaped yet (the thread still waits for it): the pid is still its own.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            Err(std::io::Error::other("it did not answer in time"))
        }
    }
}

impl Agent {
    /// Prepares an agent: checks the options, makes this process non-dumpable (so that
    /// `/proc/<pid>/environ` and its memory stay unreadable to sessions' users, even the
    /// agent's own), and creates the base directory of fresh working directories.
    ///
    /// # Errors
    /// [`AgentError::Options`] for a `run_as` user that does not exist or a `working_dir`
    /// that is not a directory; [`AgentError::Io`] when the base directory or the helper
    /// binary cannot be set up.
    pub fn new(options: &AgentOptions) -> Result<Self, AgentError> {
        let _ = nix::sys::prctl::set_dumpable(false);
        let root = nix::unistd::Uid::effective().is_root();
        let run_as = match &options.run_as {
            Some(user) if root => match crate::login::Account::by_name(user) {
                Ok(Some(_)) => Some(user.clone()),
                Ok(None) => {
                    return Err(AgentError::Options(format!(
                        "cannot run sessions as user `{user}`: no such user"
                    )));
                }
                Err(message) => return Err(AgentError::Options(message)),
            },
            Some(user) => {
                tracing::warn!(
                    "the agent does not run as root: sessions run as its own user, not as `{user}`"
                );
                None
            }
            None => {
                if root {
                    tracing::warn!(
                        "the agent runs as root with no user to run sessions as: sessions run as root"
                    );
                }
                None
            }
        };
        let workdir = match &options.working_dir {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(AgentError::Options(format!(
                        "the working directory {} of sessions is not a directory",
                        dir.display()
                    )));
                }
                Workdir::Fixed(dir.clone())
            }
            None => {
                let base = tempfile::Builder::new()
                    .prefix("hoop-agent-")
                    .tempdir()
                    .map_err(|e| {
                        AgentError::io("cannot create the base directory of sessions", e)
                    })?;
                // Others may pass through (to their own session's directory) but not list.
                std::fs::set_permissions(
                    base.path(),
                    std::os::unix::fs::PermissionsExt::from_mode(0o711),
                )
                .map_err(|e| AgentError::io("cannot set up the base directory of sessions", e))?;
                Workdir::Fresh(base)
            }
        };
        let (exe, exe_name, held) = match &options.helper_exe {
            Some(exe) => (exe.clone(), exe.clone(), None),
            None => {
                let own = std::env::current_exe()
                    .map_err(|e| AgentError::io("cannot find the agent's own executable", e))?;
                match installed_helper(&own) {
                    // Executed through the descriptor held open: the very file checked now,
                    // even if it is replaced on disk later (as `/proc/self/exe` is).
                    Some((path, file)) => (
                        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())),
                        path,
                        Some(file),
                    ),
                    None => (PathBuf::from("/proc/self/exe"), own, None),
                }
            }
        };
        let exe_name = exe_name.file_name().map_or_else(
            || "hoop-agent".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let lang = std::env::var("LANG")
            .ok()
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| DEFAULT_LANG.to_owned());
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            inner: Arc::new(Inner {
                launcher: Arc::new(Launcher {
                    exe,
                    exe_name,
                    _held: held,
                    nice: if options.without_slots {
                        None
                    } else {
                        crate::pool::restorable_nice()
                    },
                    ready_slots: AtomicUsize::new(0),
                    changes_user: run_as.is_some(),
                }),
                run_as,
                workdir,
                lang,
                hostname,
                pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
                unique: AtomicU64::new(1),
                slots: !options.without_slots,
                slot_starts: AtomicU64::new(0),
                fresh_starts: AtomicU64::new(0),
            }),
        })
    }

    /// How its sessions started so far, and how many slots are ready now.
    pub fn stats(&self) -> AgentStats {
        AgentStats {
            slot_starts: self.inner.slot_starts.load(Ordering::Relaxed),
            fresh_starts: self.inner.fresh_starts.load(Ordering::Relaxed),
            ready_slots: self.inner.launcher.ready_slots.load(Ordering::Relaxed),
        }
    }

    /// The `hello` this agent sends first.
    pub fn hello(&self) -> pb::AgentMessage {
        pb::AgentMessage {
            message: Some(pb::agent_message::Message::Hello(pb::AgentHello {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                hostname: self.inner.hostname.clone(),
            })),
        }
    }

    /// Serves one connection to the gateway: sends `hello`, then runs every `start` as a
    /// session of its own and routes `input`, `close_input`, `resize`, `kill` and
    /// `output_ack` to it by `session_id`; sessions send `spawned`, `output`, `input_ack`
    /// and `exit` on `outgoing`.
    ///
    /// A `start` whose `session_id` is already running here is refused with an `exit` that
    /// says so (exit code 126; the running session goes on): sessions never run twice.
    /// Messages for a session that is not running are ignored.
    ///
    /// The connection keeps [`READY_SLOTS`](crate::READY_SLOTS) supervisors started ahead
    /// of their sessions (unless [`AgentOptions::without_slots`]), from right after `hello`.
    ///
    /// When `incoming` ends or fails, or `outgoing` closes (the gateway is gone), every
    /// running session is killed with every process it started, and so is every ready slot;
    /// this returns once they are all gone. Dropping the future also kills them (without
    /// waiting).
    ///
    /// # Errors
    /// [`AgentError::Incoming`] when `incoming` failed, [`AgentError::OutgoingClosed`] when
    /// `outgoing` closed before `hello` could be sent. An end of `incoming` is `Ok`.
    pub async fn serve<S, E>(
        &self,
        incoming: S,
        outgoing: mpsc::Sender<pb::AgentMessage>,
    ) -> Result<(), AgentError>
    where
        S: Stream<Item = Result<pb::GatewayMessage, E>>,
        E: std::fmt::Display,
    {
        tokio::pin!(incoming);
        outgoing
            .send(self.hello())
            .await
            .map_err(|_| AgentError::OutgoingClosed)?;
        let pool = self
            .inner
            .slots
            .then(|| Pool::start(Arc::clone(&self.inner.launcher)));
        let mut router = Router {
            agent: self,
            pool: pool.clone(),
            sessions: HashMap::new(),
            tasks: JoinSet::new(),
            task_ids: HashMap::new(),
            outbox: VecDeque::new(),
            outgoing: &outgoing,
        };
        let result = loop {
            let has_outbox = !router.outbox.is_empty();
            tokio::select! {
                message = incoming.next() => match message {
                    None => break Ok(()),
                    Some(Err(err)) => break Err(AgentError::Incoming(err.to_string())),
                    Some(Ok(message)) => router.route(message),
                },
                Some(done) = router.tasks.join_next_with_id() => router.finished(done),
                permit = outgoing.reserve(), if has_outbox => match permit {
                    Ok(permit) => {
                        if let Some(message) = router.outbox.pop_front() {
                            permit.send(message);
                        }
                    }
                    Err(_) => break Ok(()),
                },
                () = outgoing.closed() => break Ok(()),
            }
        };
        if !router.sessions.is_empty() {
            tracing::info!(
                sessions = router.sessions.len(),
                "the gateway is gone: ending every session"
            );
        }
        for control in router.sessions.values() {
            let _ = control.send(Control::GatewayGone);
        }
        if let Some(pool) = &pool {
            pool.close().await;
        }
        while router.tasks.join_next().await.is_some() {}
        result
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

/// Serves one connection with a new [`Agent`] of `options` (see [`Agent::serve`]). Prefer
/// [`Agent::new`] once and [`Agent::serve`] per connection when reconnecting.
///
/// # Errors
/// Those of [`Agent::new`] and [`Agent::serve`].
pub async fn serve<S, E>(
    options: &AgentOptions,
    incoming: S,
    outgoing: mpsc::Sender<pb::AgentMessage>,
) -> Result<(), AgentError>
where
    S: Stream<Item = Result<pb::GatewayMessage, E>>,
    E: std::fmt::Display,
{
    Agent::new(options)?.serve(incoming, outgoing).await
}

struct Router<'a> {
    agent: &'a Agent,
    /// The connection's ready slots.
    pool: Option<Arc<Pool>>,
    /// The running sessions, by id.
    sessions: HashMap<String, mpsc::UnboundedSender<Control>>,
    tasks: JoinSet<String>,
    task_ids: HashMap<tokio::task::Id, String>,
    /// Answers of the router itself (refused starts).
    outbox: VecDeque<pb::AgentMessage>,
    outgoing: &'a mpsc::Sender<pb::AgentMessage>,
}

impl Router<'_> {
    fn route(&mut self, message: pb::GatewayMessage) {
        let (id, control) = match message.message {
            Some(In::Start(start)) => return self.start(start),
            Some(In::Input(input)) => (input.session_id, Control::Input(input.data)),
            Some(In::OutputAck(ack)) => (ack.session_id, Control::OutputAck(ack.bytes)),
            Some(In::Resize(resize)) => match resize.size {
                Some(size) => (resize.session_id, Control::Resize(size)),
                None => return,
            },
            Some(In::CloseInput(close)) => (close.session_id, Control::CloseInput),
            Some(In::Kill(kill)) => (kill.session_id, Control::Kill),
            None => return,
        };
        match self.sessions.get(&id) {
            Some(session) => {
                let _ = session.send(control);
            }
            None => tracing::debug!(session = %id, "a message for a session that is not running"),
        }
    }

    fn start(&mut self, start: pb::AgentStart) {
        let id = start.session_id.clone();
        let refusal = if id.is_empty() {
            Some("a session needs an id".to_owned())
        } else if self.sessions.contains_key(&id) {
            Some(format!(
                "session {id} is already running on this agent: a session never runs twice"
            ))
        } else {
            None
        };
        if let Some(error) = refusal {
            tracing::warn!(session = %id, "{error}");
            self.outbox.push_back(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Exit(pb::AgentExit {
                    session_id: id,
                    exit_code: crate::exec::CANNOT_START,
                    error,
                })),
            });
            return;
        }
        let (control, controls) = mpsc::unbounded_channel();
        if start.tcp.is_some() {
            let task = self
                .tasks
                .spawn(crate::tcp::run(start, controls, self.outgoing.clone()));
            self.task_ids.insert(task.id(), id.clone());
            self.sessions.insert(id, control);
            return;
        }
        let task = self.tasks.spawn(session::run(
            Arc::clone(self.agent.inner()),
            self.pool.clone(),
            start,
            controls,
            self.outgoing.clone(),
        ));
        self.task_ids.insert(task.id(), id.clone());
        self.sessions.insert(id, control);
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, String), tokio::task::JoinError>) {
        let task = match &done {
            Ok((task, _)) => *task,
            Err(err) => err.id(),
        };
        if let Some(id) = self.task_ids.remove(&task) {
            if let Err(err) = done {
                tracing::error!(session = %id, error = %err, "a session's task failed");
            }
            self.sessions.remove(&id);
        }
    }
}
