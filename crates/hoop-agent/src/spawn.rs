//! A session's program on pipes, started by its supervisor itself with `posix_spawn`: no
//! exec helper, so one execution of the helper binary (and its start-up) fewer per session.
//!
//! The program starts in a new session and process group without a controlling terminal
//! (`POSIX_SPAWN_SETSID`), with no signal blocked and SIGPIPE back to its default, unable to
//! gain privileges (`no_new_privs`), in its working directory, with exactly its environment,
//! and looked up in that environment's `PATH` as `execvp` would (a file without a `#!` line
//! runs with `/bin/sh`). Every descriptor of the supervisor above stderr is closed or
//! close-on-exec by then.
//!
//! Only for a session that keeps the supervisor's user: a program that runs as another
//! user goes through the exec helper, a process of its own that becomes the user before it
//! executes the program. (Spawning it from a thread of the supervisor that became the user,
//! Linux credentials being per thread, would leave that thread open to the user's signals:
//! a SIGKILL sent to it, by its thread id, ends the whole supervisor, and with it the
//! session's cleanup.)

use std::ffi::CString;

use nix::errno::Errno;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use crate::exec::{CANNOT_START, classify, failed};
use crate::spec::{ExecFailure, ExecSpec};

/// Starts the program of `spec` (which must neither be on a terminal nor change user); its
/// pid, or why it could not start (worded as the exec helper words it).
pub(crate) fn spawn(spec: &ExecSpec) -> Result<Pid, ExecFailure> {
    if spec.terminal || spec.become_user.is_some() {
        return Err(failed(
            CANNOT_START,
            "the supervisor starts only programs on pipes that keep its user".to_owned(),
        ));
    }
    let before = std::env::current_dir().ok();
    let spawned = Launch::new(spec).and_then(|launch| launch.run(spec));
    // The working directory is the whole process's: the supervisor goes back to its own.
    if let Some(before) = before {
        let _ = std::env::set_current_dir(before);
    }
    spawned
}

/// What `posix_spawn` takes, prepared before anything changes.
struct Launch {
    argv: Vec<CString>,
    envp: Vec<CString>,
    attr: PosixSpawnAttr,
    actions: PosixSpawnFileActions,
}

impl Launch {
    fn new(spec: &ExecSpec) -> Result<Self, ExecFailure> {
        if spec.argv.is_empty() {
            return Err(failed(
                CANNOT_START,
                "the session has no command".to_owned(),
            ));
        }
        let nul = |_| {
            failed(
                CANNOT_START,
                "the command or its environment holds a NUL byte".to_owned(),
            )
        };
        let argv = spec
            .argv
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(nul))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = spec
            .env
            .iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")).map_err(nul))
            .collect::<Result<Vec<_>, _>>()?;
        let cannot = |e: Errno| {
            failed(
                CANNOT_START,
                format!("cannot start the command: {}", std::io::Error::from(e)),
            )
        };
        let mut attr = PosixSpawnAttr::init().map_err(cannot)?;
        let setsid = PosixSpawnFlags::from_bits_retain(nix::libc::c_int::from(
            nix::libc::POSIX_SPAWN_SETSID,
        ));
        let mut sigpipe = SigSet::empty();
        sigpipe.add(Signal::SIGPIPE);
        attr.set_flags(
            setsid
                | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
                | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
        )
        .and_then(|()| attr.set_sigmask(&SigSet::empty()))
        .and_then(|()| attr.set_sigdefault(&sigpipe))
        .map_err(cannot)?;
        let actions = PosixSpawnFileActions::init().map_err(cannot)?;
        Ok(Self {
            argv,
            envp,
            attr,
            actions,
        })
    }

    /// Forbids the supervisor (and so the program) new privileges, enters the working
    /// directory and spawns the program.
    fn run(&self, spec: &ExecSpec) -> Result<Pid, ExecFailure> {
        let program = spec.argv.first().map_or("", String::as_str);
        // Nothing the program runs gains privileges (setuid binaries, file capabilities).
        nix::sys::prctl::set_no_new_privs().map_err(|e| {
            failed(
                CANNOT_START,
                format!(
                    "cannot forbid the session new privileges: {}",
                    std::io::Error::from(e)
                ),
            )
        })?;
        if let Err(err) = std::env::set_current_dir(&spec.cwd) {
            return Err(failed(
                CANNOT_START,
                format!(
                    "cannot enter the working directory {}: {err}",
                    spec.cwd.display()
                ),
            ));
        }
        look_up(program, &spec.env)
            .and_then(|path| {
                let spawn = |path: &CString, argv: &[CString]| {
                    posix_spawn(path.as_c_str(), &self.actions, &self.attr, argv, &self.envp)
                };
                match spawn(&path, &self.argv) {
                    // Not a binary and no `#!` line: `execvp` runs such a file with the shell.
                    Err(Errno::ENOEXEC) => {
                        let mut with_shell = vec![c"/bin/sh".to_owned(), path];
                        with_shell.extend(self.argv.iter().skip(1).cloned());
                        spawn(&with_shell[0], &with_shell)
                    }
                    spawned => spawned,
                }
                .map_err(std::io::Error::from)
            })
            .map_err(|err| classify(program, &err))
    }
}

/// Where `program` is, as `execvp` finds it: a name with a `/` as it is, else the first
/// executable file of that name in the `PATH` of `env` (`/bin:/usr/bin` without one).
fn look_up(program: &str, env: &[(String, String)]) -> std::io::Result<CString> {
    let to_c = |p: String| CString::new(p).map_err(std::io::Error::other);
    if program.contains('/') {
        return to_c(program.to_owned());
    }
    if program.is_empty() {
        return Err(std::io::ErrorKind::NotFound.into());
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or("/bin:/usr/bin", |(_, v)| v.as_str());
    let mut denied = false;
    for dir in path.split(':') {
        let candidate = if dir.is_empty() {
            program.to_owned()
        } else {
            format!("{}/{program}", dir.trim_end_matches('/'))
        };
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if meta.is_file()
            && nix::unistd::access(candidate.as_str(), nix::unistd::AccessFlags::X_OK).is_ok()
        {
            return to_c(candidate);
        }
        denied = true;
    }
    Err(if denied {
        std::io::ErrorKind::PermissionDenied.into()
    } else {
        std::io::ErrorKind::NotFound.into()
    })
}
