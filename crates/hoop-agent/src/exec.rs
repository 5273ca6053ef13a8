//! The exec helper ([`EXEC_MODE`](crate::EXEC_MODE)), for sessions on a terminal or as
//! another user: a fresh, single-threaded child of the supervisor that turns into the
//! session's program (a session on pipes that keeps the agent's user has none: the
//! supervisor spawns its program itself, see `spawn.rs`). On a terminal it leads a new
//! session with the terminal as controlling tty (on pipes, a session without one); then it
//! becomes the session's user (that user's groups with `initgroups`, `setgid`, `setuid`:
//! std's `Command::uid` would drop the supplementary groups), enters the working directory
//! and executes the program (argv never through a shell, the environment exactly as
//! given). The pid stays the same, so the supervisor's child *is* the program.
//!
//! The supervisor starts it before the session is known (a *slot* of the agent): it waits
//! for the spec as the agent's user (root), so no process of the session's user sits idle,
//! and drops its privileges only once the spec arrived. An end of file instead of a spec
//! (its supervisor dropped it, or died) ends it without a word.
//!
//! Arguments: `<spec fd> <status fd>`. The spec ([`ExecSpec`]) is read from the first pipe;
//! if the program cannot start, an [`ExecFailure`] is written to the second and the helper
//! exits with its code (127: not found, 126: could not start). On success the status pipe,
//! close-on-exec, simply closes.

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::unistd::{Gid, Uid};

use crate::fds::{self, End};
use crate::spec::{ExecFailure, ExecSpec, Identity, write_json_line};

/// Exit code of a program that was not found.
pub(crate) const NOT_FOUND: i32 = 127;
/// Exit code of a program that could not be started.
pub(crate) const CANNOT_START: i32 = 126;
/// Exit code of a helper that got no spec (nobody waits for it).
const DISMISSED: i32 = 0;

pub(crate) fn run(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .filter_map(|a| a.into_string().ok())
        .collect();
    let [spec, status] = args.as_slice() else {
        eprintln!("hoop-agent: the exec helper is internal to the agent");
        return CANNOT_START;
    };
    let (spec, status) = match (fds::adopt(spec, End::Read), fds::adopt(status, End::Write)) {
        (Ok(spec), Ok(status)) => (spec, status),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("hoop-agent: the exec helper cannot take its pipes: {err}");
            return CANNOT_START;
        }
    };
    fds::close_all_but(&[&spec, &status]);
    // While it waits for a spec that holds secrets, nothing of the same user may open its
    // pipes (`/proc/<pid>/fd`) nor read its memory; the program's execution makes it
    // dumpable again, as any program.
    let _ = nix::sys::prctl::set_dumpable(false);
    if Uid::effective().is_root() {
        // While it waits: the first group look-up loads the name service's modules (with
        // systemd's, a shared library or two), which `initgroups` then need not. The
        // look-up of the session's user comes after the spec, from the files as they are.
        let _ = nix::unistd::getgrouplist(c"root", Gid::from_raw(0));
    }
    let mut bytes = Vec::with_capacity(4096);
    let failure = match (&spec).read_to_end(&mut bytes) {
        // No program for this helper: its supervisor dropped it, or died.
        Ok(0) => return DISMISSED,
        Ok(_) => match serde_json::from_slice::<ExecSpec>(&bytes) {
            Ok(spec) => start(spec),
            Err(e) => failed(CANNOT_START, format!("invalid spec: {e}")),
        },
        Err(e) => failed(CANNOT_START, format!("cannot read the spec: {e}")),
    };
    let _ = write_json_line(&status, &failure);
    failure.code
}

pub(crate) fn failed(code: i32, message: String) -> ExecFailure {
    ExecFailure { code, message }
}

/// Sets the process up and executes the program; returns only if that failed.
fn start(spec: ExecSpec) -> ExecFailure {
    let Some((program, args)) = spec.argv.split_first() else {
        return failed(CANNOT_START, "the session has no command".to_owned());
    };
    if spec.terminal {
        if let Err(err) = lead_terminal(spec.become_user.as_ref()) {
            return failed(
                CANNOT_START,
                format!("cannot set up the session's terminal: {err}"),
            );
        }
    } else if let Err(err) = nix::unistd::setsid() {
        // A session of its own, without a controlling terminal: the agent may have been
        // started from a terminal (the gateway's, an admin's), which the program must
        // neither read nor write (`/dev/tty`, TIOCSTI) nor take over. It also leads its own
        // process group: a `kill 0` of the program does not reach the supervisor.
        return failed(
            CANNOT_START,
            format!("cannot give the program a session of its own: {err}"),
        );
    }
    if let Some(identity) = &spec.become_user
        && let Err(err) = become_user(identity)
    {
        return failed(
            CANNOT_START,
            format!("cannot run the session as user `{}`: {err}", identity.name),
        );
    }
    // Nothing the program runs gains privileges (setuid binaries, file capabilities): a
    // session stays the user it was started as.
    if let Err(err) = nix::sys::prctl::set_no_new_privs() {
        return failed(
            CANNOT_START,
            format!("cannot forbid the session new privileges: {err}"),
        );
    }
    if let Err(err) = std::env::set_current_dir(&spec.cwd) {
        return failed(
            CANNOT_START,
            format!(
                "cannot enter the working directory {}: {err}",
                spec.cwd.display()
            ),
        );
    }
    // With a new environment, std looks the program up in that environment's PATH.
    let err = Command::new(program)
        .args(args)
        .env_clear()
        .envs(spec.env)
        .exec();
    classify(program, &err)
}

/// The exit code and message of a program that could not be executed (as the gateway's own
/// runtime words them).
pub(crate) fn classify(program: &str, err: &std::io::Error) -> ExecFailure {
    match err.kind() {
        std::io::ErrorKind::NotFound => failed(NOT_FOUND, format!("command not found: {program}")),
        std::io::ErrorKind::PermissionDenied => {
            failed(CANNOT_START, format!("permission denied: {program}"))
        }
        // The OS reason says what to fix; it holds no secret.
        _ => failed(
            CANNOT_START,
            format!("cannot start the command: {program}: {err}"),
        ),
    }
}

/// Leads a new session whose controlling terminal is stdin (the terminal's slave side),
/// owned by the session's user.
fn lead_terminal(user: Option<&Identity>) -> std::io::Result<()> {
    nix::unistd::setsid()?;
    rustix::process::ioctl_tiocsctty(std::io::stdin())?;
    if let Some(user) = user {
        std::os::unix::fs::fchown(std::io::stdin(), Some(user.uid), None)?;
    }
    Ok(())
}

/// Becomes `identity` for good: its groups, its gid, its uid (real, effective and saved).
fn become_user(identity: &Identity) -> std::io::Result<()> {
    let name = CString::new(identity.name.as_str()).map_err(std::io::Error::other)?;
    let (uid, gid) = (Uid::from_raw(identity.uid), Gid::from_raw(identity.gid));
    nix::unistd::initgroups(&name, gid)?;
    nix::unistd::setgid(gid)?;
    nix::unistd::setuid(uid)?;
    let dropped = Uid::current() == uid
        && Uid::effective() == uid
        && Gid::current() == gid
        && Gid::effective() == gid;
    if !dropped || (!uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok()) {
        return Err(std::io::Error::other("the privileges were not dropped"));
    }
    Ok(())
}
