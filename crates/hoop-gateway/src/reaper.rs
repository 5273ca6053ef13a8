//! The reaper: makes sure session processes never outlive the gateway, even when the
//! gateway is killed with SIGKILL and has no chance to clean up.
//!
//! At start-up the gateway runs a copy of itself as `hoop-gateway reaper`, in a process group
//! of its own, with a pipe to its stdin. Every session's process group is announced on the
//! pipe when it starts (`+<pgid>`) and when it is gone (`-<pgid>`). When the pipe reaches end
//! of file (the gateway exited, however it exited: the kernel closes its end) the reaper
//! kills every group still announced and exits. Session processes never inherit the pipe
//! (Rust opens it close-on-exec), so only the gateway holds it open.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// The gateway's handle on its reaper.
#[derive(Debug)]
pub(crate) struct Reaper {
    inner: Mutex<Option<Inner>>,
}

#[derive(Debug)]
struct Inner {
    child: Child,
    pipe: ChildStdin,
    /// Groups announced, to announce again to a new reaper if this one dies.
    groups: HashSet<i32>,
}

impl Reaper {
    /// Starts the reaper process.
    ///
    /// # Errors
    /// If the gateway's own executable cannot be run.
    pub(crate) fn start() -> std::io::Result<Self> {
        Ok(Self {
            inner: Mutex::new(Some(Inner::spawn(HashSet::new())?)),
        })
    }

    /// A reaper that runs no process (for tests of the gateway's own crate, whose binary
    /// is the test harness): session groups are still killed when sessions end, only a
    /// crash of the test would leave them.
    #[cfg(test)]
    pub(crate) fn disabled() -> Self {
        Self {
            inner: Mutex::new(None),
        }
    }

    /// Announces a session's process group.
    pub(crate) fn watch(&self, group: i32) {
        self.send(group, true);
    }

    /// Announces that a session's process group is gone.
    pub(crate) fn forget(&self, group: i32) {
        self.send(group, false);
    }

    fn send(&self, group: i32, add: bool) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let Some(inner) = guard.as_mut() else {
            return;
        };
        if add {
            inner.groups.insert(group);
        } else {
            inner.groups.remove(&group);
        }
        let line = format!("{}{group}\n", if add { '+' } else { '-' });
        if inner.pipe.write_all(line.as_bytes()).is_ok() {
            return;
        }
        // The reaper died: start another and tell it everything it must know.
        tracing::warn!("the session reaper exited; starting a new one");
        let groups = std::mem::take(&mut inner.groups);
        let _ = inner.child.kill();
        let _ = inner.child.wait();
        *guard = match Inner::spawn(groups) {
            Ok(new) => Some(new),
            Err(err) => {
                tracing::error!(error = %err, "cannot restart the session reaper: session processes may outlive a crash of the gateway");
                None
            }
        };
    }
}

impl Inner {
    fn spawn(groups: HashSet<i32>) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("reaper")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own group: a Ctrl-C meant for the gateway's terminal does not reach it.
            .process_group(0)
            .spawn()?;
        let Some(mut pipe) = child.stdin.take() else {
            let _ = child.kill();
            return Err(std::io::Error::other("the reaper has no stdin"));
        };
        for group in &groups {
            pipe.write_all(format!("+{group}\n").as_bytes())?;
        }
        Ok(Self {
            child,
            pipe,
            groups,
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.inner.lock()
            && let Some(mut inner) = guard.take()
        {
            // Closing the pipe tells the reaper to finish; wait so it is not left a zombie.
            drop(inner.pipe);
            let _ = inner.child.wait();
        }
    }
}

/// `hoop-gateway reaper`: the reaper process itself. Returns when its stdin ends, after
/// killing every group still announced.
pub(crate) fn run() {
    let mut groups: HashSet<i32> = HashSet::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let (add, number) = match line.split_at_checked(1) {
            Some(("+", n)) => (true, n),
            Some(("-", n)) => (false, n),
            _ => continue,
        };
        // Only process groups (> 1): never 0 (our own group), 1 or negative values.
        let Ok(group) = number.parse::<i32>() else {
            continue;
        };
        if group <= 1 {
            continue;
        }
        if add {
            groups.insert(group);
        } else {
            groups.remove(&group);
        }
    }
    for group in groups {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
