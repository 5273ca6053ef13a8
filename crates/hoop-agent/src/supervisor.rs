//! A session's supervisor ([`SUPERVISOR_MODE`](crate::SUPERVISOR_MODE)): the agent's own
//! binary, re-executed once per session, in a process group of its own, with the program's
//! pipes (or terminal) as stdin, stdout and stderr.
//!
//! It makes itself a child subreaper, so that every process the program leaves behind
//! (`setsid -f`, double forks, shell job control) reparents to it rather than to init. It
//! starts the program through the exec helper ([`EXEC_MODE`](crate::EXEC_MODE)) and reports
//! its pid to the agent. When the program exits, when the agent asks it to end (SIGTERM,
//! SIGINT, SIGHUP or SIGQUIT) or when the agent dies (its parent-death signal, SIGUSR1, with
//! the parent checked again: a thread of the agent ending sends it too), it SIGKILLs every
//! descendant, again until none is left, reaps them, removes the session's fresh working
//! directory, and exits with the program's status (its code, or 128+N for signal N).
//!
//! The supervisor handles signals without handlers: it blocks them and waits for them with
//! `sigwait` in its one thread, SIGCHLD included, so reaping and killing never race. It
//! runs as the agent's user (root, when the agent is root): the session's user cannot
//! signal it, so the session cannot escape the cleanup.
//!
//! Arguments: `<spec fd> <status fd>`, two inherited pipes: the agent writes the
//! [`SupervisorSpec`] to the first, the supervisor writes [`Report`] lines to the second.

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
use crate::spec::{
    ExecFailure, ExecSpec, Identity, Report, SupervisorSpec, WorkDir, read_json, write_json_line,
};

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
    let [spec, status] = args.as_slice() else {
        eprintln!("hoop-agent: the session supervisor is internal to the agent");
        return CANNOT_START;
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
    let spec: SupervisorSpec = match read_json(spec) {
        Ok(spec) => spec,
        Err(message) => return report.failed(CANNOT_START, message),
    };
    // The agent may have died before the parent-death signal was set: nothing runs yet.
    if getppid().as_raw() != spec.agent_pid {
        return AGENT_GONE;
    }
    Supervisor {
        report,
        signals,
        agent: spec.agent_pid,
        me: getpid(),
    }
    .supervise(spec)
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
    fn supervise(self, spec: SupervisorSpec) -> i32 {
        let account = match &spec.run_as {
            Some(name) => match Account::by_name(name) {
                Ok(Some(account)) => account,
                Ok(None) => {
                    return self.report.failed(
                        CANNOT_START,
                        format!("cannot run the session as user `{name}`: no such user"),
                    );
                }
                Err(message) => return self.report.failed(CANNOT_START, message),
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
        let code = match start_program(&exec) {
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
        if let Some(dir) = fresh
            && let Err(err) = std::fs::remove_dir_all(&dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            self.report.warn(format!(
                "cannot remove the session's working directory {}: {err}",
                dir.display()
            ));
        }
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

/// Starts the program through the exec helper; its pid, or why it did not start.
fn start_program(spec: &ExecSpec) -> Result<Pid, ExecFailure> {
    let cannot = |err: std::io::Error| ExecFailure {
        code: CANNOT_START,
        message: format!("cannot start the session's program: {err}"),
    };
    let (spec_read, spec_write) = fds::pipe().map_err(cannot)?;
    let (status_read, status_write) = fds::pipe().map_err(cannot)?;
    fds::set_inheritable(&spec_read, true).map_err(cannot)?;
    fds::set_inheritable(&status_write, true).map_err(cannot)?;
    let name: PathBuf = std::env::args_os()
        .next()
        .map_or_else(|| PathBuf::from("hoop-agent"), PathBuf::from);
    // /proc/self/exe: exactly this binary, even if the file was replaced since.
    let child = Command::new("/proc/self/exe")
        .arg0(name)
        .arg(crate::EXEC_MODE)
        .arg(spec_read.as_raw_fd().to_string())
        .arg(status_write.as_raw_fd().to_string())
        .env_clear()
        .spawn();
    drop(spec_read);
    drop(status_write);
    let child = child.map_err(cannot)?;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    // The helper reads the whole spec before anything else; if it died, the write fails and
    // the status below (or its exit) says why.
    let bytes = serde_json::to_vec(spec).map_err(|e| cannot(std::io::Error::other(e)))?;
    let _ = File::from(spec_write).write_all(&bytes);
    let mut answer = Vec::new();
    let _ = File::from(status_read).read_to_end(&mut answer);
    if answer.is_empty() {
        // The pipe closed on exec: the helper is the program now.
        return Ok(pid);
    }
    Err(
        serde_json::from_slice::<ExecFailure>(answer.trim_ascii_end()).unwrap_or_else(|e| {
            ExecFailure {
                code: CANNOT_START,
                message: format!("the session's program did not start: {e}"),
            }
        }),
    )
}

/// Points stdin, stdout and stderr at /dev/null.
fn release_stdio() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}
