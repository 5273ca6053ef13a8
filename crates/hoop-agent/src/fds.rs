//! Handing a pipe to a helper process beside its stdin, stdout and stderr, without `unsafe`.
//!
//! The parent makes one end of a pipe inheritable (clears its close-on-exec flag) just for
//! the spawn and names its number in the helper's arguments; the helper *adopts* it: it
//! opens `/proc/self/fd/N` again (which, for a pipe, is the same pipe, now close-on-exec)
//! and closes `N`. A helper also closes every other descriptor above stderr that it did not
//! adopt: in a multi-threaded agent another thread's pipe may have been inheritable at the
//! moment of the spawn, and nothing of another session may reach a program.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

/// A pipe, both ends close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Makes `fd` inherited by the next programs this process executes (or not).
pub(crate) fn set_inheritable(fd: &impl AsFd, inheritable: bool) -> std::io::Result<()> {
    let flags = if inheritable {
        FdFlag::empty()
    } else {
        FdFlag::FD_CLOEXEC
    };
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// Which end of a pipe a helper adopts.
#[derive(Clone, Copy)]
pub(crate) enum End {
    Read,
    Write,
}

/// Takes over the inherited pipe end `number` (named in the helper's arguments): the
/// returned file is the same pipe, close-on-exec, and `number` is closed.
pub(crate) fn adopt(number: &str, end: End) -> std::io::Result<File> {
    let fd: RawFd = number
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or_else(|| std::io::Error::other(format!("invalid descriptor `{number}`")))?;
    // Non-blocking for the open: opening a pipe for writing otherwise waits for a reader,
    // forever if the reader is gone.
    let file = File::options()
        .read(matches!(end, End::Read))
        .write(matches!(end, End::Write))
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(format!("/proc/self/fd/{fd}"))?;
    fcntl(&file, FcntlArg::F_SETFL(OFlag::empty()))?;
    nix::unistd::close(fd)?;
    Ok(file)
}

/// Closes every descriptor above stderr but `keep`.
pub(crate) fn close_all_but(keep: &[&File]) {
    let keep: Vec<RawFd> = keep.iter().map(|f| f.as_raw_fd()).collect();
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    // The listing's own descriptor is closed by now: closing it again fails harmlessly.
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            let _ = nix::unistd::close(fd);
        }
    }
}
