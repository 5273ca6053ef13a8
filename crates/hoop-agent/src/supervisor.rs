//! A session's supervisor ([`SUPERVISOR_MODE`](crate::SUPERVISOR_MODE)): the agent's own
//! binary, re-executed once per session, in a process group of its own, with the program's
//! pipes (or terminal) as stdin, stdout and stderr.
//!
//! It makes itself a child subreaper, so that every process the program leaves behind
//! (`setsid -f`, double forks, shell job control) reparents to it rather than to init. It
//! starts before it knows its session and waits for the session's spec: the agent keeps a
//! few supervisors ready that way (its *slots*), so that no execution of the agent's binary
//! is on the path of a session's start. It stays root while it waits; an end of file
//! instead of a spec (the agent dropped the slot, or died) ends it without a word. Once the
//! spec is there it starts the program and reports its pid to the agent:
//! - on pipes, as its own user, itself, with `posix_spawn` (see [`spawn`]);
//! - on a terminal, or as another user (the agent is root and has `run_as`), through the
//!   exec helper ([`EXEC_MODE`](crate::EXEC_MODE)), which it started at once, before the
//!   spec (or through a new one, if that helper died in the meantime): the program must
//!   take the terminal, and become its user, in a process of its own (the supervisor stays
//!   root, out of the user's reach). Only the helper, once it got the program's spec,
//!   becomes the session's user.
//!
//! When the program exits, when the agent asks it to end (SIGTERM, SIGINT, SIGHUP or
//! SIGQUIT) or when the agent dies (its parent-death signal, SIGUSR1, with the parent
//! checked again: a thread of the agent ending sends it too), it SIGKILLs every descendant,
//! again until none is left, reaps them, removes the session's fresh working directory, and
//! exits with the program's status (its code, or 128+N for signal N).
//!
//! The supervisor handles signals without handlers: it blocks them and waits for them with
//! `sigwait` in its one thread, SIGCHLD included, so reaping and killing never race. It
//! runs as the agent's user (root, when the agent is root): the session's user cannot
//! signal it, so the session cannot escape the cleanup.
//!
//! Arguments: `<spec fd> <status fd> [--without-exec-helper]`, two inherited pipes: the
//! agent writes the [`SupervisorSpec`] to the first (and closes it), the supervisor writes
//! [`Report`] lines to the second. The flag ([`WITHOUT_EXEC_HELPER`]) says the session will
//! run on pipes as the agent's user: then there is nothing for an exec helper to do, and
//! the supervisor starts none (one process fewer per session).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid, getppid};

use crate::exec::CANNOT_START;
use crate::fds::{self, End};
use crate::login::{self, Account};
use crate::procs;
use crate::spawn;
use crate::spec::{
    ExecFailure, ExecSpec, Identity, Report, SupervisorSpec, WorkDir, write_json_line,
};

/// The supervisor's third argument when its session will run on pipes as the agent's user:
/// it starts no exec helper, and starts the program itself. Without it (a terminal, or
/// another user), the supervisor starts an exec helper at once.
pub(crate) const WITHOUT_EXEC_HELPER: &str = "--without-exec-helper";

/// Exit code when the agent is gone before the session started.
const AGENT_GONE: i32 = 125;

/// The signal the kernel sends when the agent dies (`PR_SET_PDEATHSIG`).
const PARENT_DEATH: Signal = Signal::SIGUSR1;
/// The signals that ask the supervisor to end the session.
const END: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

pub(crate) fn run(args: Vec<OsString>) -> i32 {
    // First of all: no core dumps, no ptrace and no /proc/<pid>/{environ,mem} for processes
    // of the same user (the spec holds secrets).
    let _ = prctl::set_dumpable(false);
    let args: Vec<String> = args
        .into_iter()
        .filter_map(|a| a.into_string().ok())
        .collect();
    let (spec, status, exec_helper) = match args.as_slice() {
        [spec, status] => (spec, status, true),
        [spec, status, without] if without == WITHOUT_EXEC_HELPER => (spec, status, false),
        _ => {
            eprintln!("hoop-agent: the session supervisor is internal to the agent");
            return CANNOT_START;
        }
    };
    let (spec, status) = match (fds::adopt(spec, End::Read), fds::adopt(status, End::Write)) {
        (Ok(spec), Ok(status)) => (spec, status),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("hoop-agent: the session supervisor cannot take its pipes: {err}");
            return CANNOT_START;
        }
    };
    fds::close_all_but(&[&spec, &status]);
    let report = Reporter(status);

    let mut signals = SigSet::empty();
    signals.add(Signal::SIGCHLD);
    signals.add(PARENT_DEATH);
    for signal in END {
        signals.add(signal);
    }
    let setup = signals
        .thread_block()
        .and_then(|()| prctl::set_child_subreaper(true))
        .and_then(|()| prctl::set_pdeathsig(PARENT_DEATH));
    if let Err(err) = setup {
        return report.failed(
            CANNOT_START,
            format!("cannot set up the session's supervisor: {err}"),
        );
    }
    // The exec helper starts now, and waits (as root) for the program's spec. If it cannot
    // start, a new one is tried once the session is known, and that error reported. A
    // session on pipes as the agent's user needs none: the supervisor starts its program.
    let helper = if exec_helper {
        Helper::start().ok()
    } else {
        None
    };
    // While it waits: the first look-up of a user loads the name service's configuration,
    // which the session's look-up then need not.
    let _ = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0));
    let spec: SupervisorSpec = match read_spec(spec) {
        Ok(Some(spec)) => spec,
        // The agent dropped this slot, or died: the helper goes too.
        Ok(None) => {
            dismiss(helper);
            return AGENT_GONE;
        }
        Err(message) => {
            dismiss(helper);
            return report.failed(CANNOT_START, message);
        }
    };
    // The agent may have died before the parent-death signal was set: nothing runs yet.
    if getppid().as_raw() != spec.agent_pid {
        dismiss(helper);
        return AGENT_GONE;
    }
    Supervisor {
        report,
        signals,
        agent: spec.agent_pid,
        me: getpid(),
    }
    .supervise(spec, helper)
}

/// Waits for the session's spec: `None` when the pipe ends without one (the slot was
/// dropped, or the agent died).
fn read_spec(mut pipe: File) -> Result<Option<SupervisorSpec>, String> {
    let mut bytes = Vec::with_capacity(4096);
    pipe.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the spec: {e}"))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("invalid spec: {e}"))
}

/// Ends a helper that will get no program: its spec pipe closes, it exits, it is reaped.
fn dismiss(helper: Option<Helper>) {
    if let Some(helper) = helper {
        let pid = helper.pid;
        drop(helper);
        while let Err(Errno::EINTR) = waitpid(pid, None) {}
    }
}

/// Writes [`Report`]s to the agent (best effort: the agent may be gone).
struct Reporter(File);

impl Reporter {
    fn send(&self, report: &Report) {
        let _ = write_json_line(&self.0, report);
    }

    fn failed(&self, code: i32, message: String) -> i32 {
        self.send(&Report::Failed { code, message });
        code
    }

    fn warn(&self, message: String) {
        self.send(&Report::Warning(message));
    }
}

struct Supervisor {
    report: Reporter,
    signals: SigSet,
    agent: i32,
    me: Pid,
}

impl Supervisor {
    fn supervise(self, spec: SupervisorSpec, helper: Option<Helper>) -> i32 {
        let account = match &spec.run_as {
            Some(name) => match Account::by_name(name) {
                Ok(Some(account)) => account,
                Ok(None) => {
                    dismiss(helper);
                    return self.report.failed(
                        CANNOT_START,
                        format!("cannot run the session as user `{name}`: no such user"),
                    );
                }
                Err(message) => {
                    dismiss(helper);
                    return self.report.failed(CANNOT_START, message);
                }
            },
            None => Account::current(),
        };
        let become_user = spec.run_as.as_ref().map(|_| Identity {
            name: account.name.clone(),
            uid: account.uid,
            gid: account.gid,
        });
        let (cwd, fresh) = match &spec.workdir {
            WorkDir::Fixed(dir) => (dir.clone(), None),
            WorkDir::Fresh { base, name } => {
                let dir = base.join(name);
                if let Err(err) = make_session_dir(&dir, become_user.as_ref()) {
                    dismiss(helper);
                    return self.report.failed(
                        CANNOT_START,
                        format!(
                            "cannot create the session's working directory {}: {err}",
                            dir.display()
                        ),
                    );
                }
                (dir.clone(), Some(dir))
            }
        };
        let mut env = login::environment(&account, &spec.lang, spec.terminal, &spec.env);
        // Temporary files go to the session's own directory, removed with it, rather than
        // to a /tmp every session (and every user) shares.
        if let Some(dir) = &fresh
            && !spec.env.contains_key("TMPDIR")
        {
            env.push(("TMPDIR".to_owned(), dir.to_string_lossy().into_owned()));
        }
        let exec = ExecSpec {
            env,
            argv: spec.argv,
            cwd,
            become_user,
            terminal: spec.terminal,
        };
        let started = if helper.is_none() && !exec.terminal && exec.become_user.is_none() {
            fds::close_all_but(&[&self.report.0]);
            spawn::spawn(&exec)
        } else {
            start_program(&exec, helper)
        };
        let code = match started {
            Ok(program) => {
                self.report
                    .send(&Report::Spawned(program.as_raw().unsigned_abs()));
                // The program (and what it starts) holds the pipes or the terminal; the
                // supervisor lets go of them, so they close when the session's processes
                // are gone.
                release_stdio();
                let status = self.wait_for(program);
                self.end_everything();
                status
            }
            Err(failure) => {
                self.report.send(&Report::Failed {
                    code: failure.code,
                    message: failure.message.clone(),
                });
                release_stdio();
                self.end_everything();
                failure.code
            }
        };
        // Most sessions leave their directory empty: one call removes it.
        if let Some(dir) = fresh
            && std::fs::remove_dir(&dir).is_err()
            && let Err(err) = std::fs::remove_dir_all(&dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            self.report.warn(format!(
                "cannot remove the session's working directory {}: {err}",
                dir.display()
            ));
        }
        self.report.send(&Report::Exited(code));
        code
    }

    /// Waits until the program exits, ending it when asked to or when the agent dies, and
    /// returns its status (the code, or 128+N for signal N).
    fn wait_for(&self, program: Pid) -> i32 {
        loop {
            if let Some(status) = self.reap(program, true) {
                return status;
            }
            match self.signals.wait() {
                Ok(signal) if END.contains(&signal) => self.kill_all(),
                Ok(PARENT_DEATH) if getppid().as_raw() != self.agent => self.kill_all(),
                // SIGCHLD (reaped above), or a parent-death signal from one of the agent's
                // threads ending while the agent lives on.
                Ok(_) | Err(_) => {}
            }
        }
    }

    /// Reaps exited children (without waiting if `nohang`); returns the program's status if
    /// it was among them.
    fn reap(&self, program: Pid, nohang: bool) -> Option<i32> {
        let flags = nohang.then_some(WaitPidFlag::WNOHANG);
        let mut found = None;
        loop {
            let status = match waitpid(None, flags) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return found,
                Err(Errno::EINTR) => continue,
                Err(_) => return found,
                Ok(status) => status,
            };
            let code = match status {
                WaitStatus::Exited(_, code) => Some(code),
                WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
                _ => None,
            };
            if status.pid() == Some(program)
                && let Some(code) = code
            {
                found = Some(code);
            }
            if !nohang {
                return found;
            }
        }
    }

    fn kill_all(&self) {
        procs::kill_descendants(self.me.as_raw());
    }

    /// SIGKILLs every descendant and reaps them, again until none is left (killing one may
    /// hand its children over to the supervisor, the subreaper).
    fn end_everything(&self) {
        loop {
            // Without a child there is no descendant left (every orphan of the session
            // becomes a child of the subreaper): the common case costs no scan of /proc.
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Err(Errno::ECHILD) => return,
                Ok(WaitStatus::StillAlive) => {}
                Err(Errno::EINTR) | Ok(_) => continue,
                Err(_) => return,
            }
            self.kill_all();
            match waitpid(None, None) {
                Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) | Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

/// Creates the session's fresh working directory: mode 0700, owned by the session's user.
fn make_session_dir(dir: &Path, owner: Option<&Identity>) -> std::io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid))?;
    }
    Ok(())
}

/// An exec helper that runs and waits for the program's spec (as the agent's user).
struct Helper {
    pid: Pid,
    /// The write end of its spec pipe: closed without a spec, it ends the helper.
    spec: File,
    /// The read end of its status pipe: an [`ExecFailure`], or nothing once the program runs.
    status: File,
}

impl Helper {
    /// Starts an exec helper (the agent's binary again, from `/proc/self/exe`: exactly this
    /// binary, even if the file was replaced since).
    fn start() -> std::io::Result<Self> {
        let (spec_read, spec_write) = fds::pipe()?;
        let (status_read, status_write) = fds::pipe()?;
        fds::set_inheritable(&spec_read, true)?;
        fds::set_inheritable(&status_write, true)?;
        let name: PathBuf = std::env::args_os()
            .next()
            .map_or_else(|| PathBuf::from("hoop-agent"), PathBuf::from);
        let child = Command::new("/proc/self/exe")
            .arg0(name)
            .arg(crate::EXEC_MODE)
            .arg(spec_read.as_raw_fd().to_string())
            .arg(status_write.as_raw_fd().to_string())
            .env_clear()
            .spawn()?;
        Ok(Self {
            pid: Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)),
            spec: File::from(spec_write),
            status: File::from(status_read),
        })
    }

    /// Hands the program's spec over; the program's pid or why it did not start, or `None`
    /// when this helper is gone (it died before it got the spec: a new one may take it).
    fn hand(self, spec: &[u8]) -> Option<Result<Pid, ExecFailure>> {
        // A helper that died while it waited is reaped here.
        if !matches!(
            waitpid(self.pid, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        ) {
            return None;
        }
        let Self {
            pid,
            spec: mut spec_pipe,
            status,
        } = self;
        // The helper reads the whole spec before anything else: a write that fails means it
        // died before it started anything.
        spec_pipe.write_all(spec).ok()?;
        drop(spec_pipe);
        let mut answer = Vec::new();
        let _ = (&status).read_to_end(&mut answer);
        if answer.is_empty() {
            // The pipe closed on exec: the helper is the program now.
            return Some(Ok(pid));
        }
        Some(Err(serde_json::from_slice::<ExecFailure>(
            answer.trim_ascii_end(),
        )
        .unwrap_or_else(|e| ExecFailure {
            code: CANNOT_START,
            message: format!("the session's program did not start: {e}"),
        })))
    }
}

/// Starts the program through `helper` (started before the session was known), or through
/// a new exec helper if that one is missing or died; its pid, or why it did not start.
fn start_program(spec: &ExecSpec, helper: Option<Helper>) -> Result<Pid, ExecFailure> {
    let cannot = |err: std::io::Error| ExecFailure {
        code: CANNOT_START,
        message: format!("cannot start the session's program: {err}"),
    };
    let bytes = serde_json::to_vec(spec).map_err(|e| cannot(std::io::Error::other(e)))?;
    if let Some(outcome) = helper.and_then(|helper| helper.hand(&bytes)) {
        return outcome;
    }
    Helper::start()
        .map_err(cannot)?
        .hand(&bytes)
        .unwrap_or_else(|| {
            Err(cannot(std::io::Error::other(
                "the exec helper died before it took the program",
            )))
        })
}

/// Points stdin, stdout and stderr at /dev/null.
fn release_stdio() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}
