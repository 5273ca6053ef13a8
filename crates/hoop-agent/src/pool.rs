//! Slots: supervisors started before their session, each with its exec helper when
//! sessions run as another user (none otherwise: the supervisor starts the program
//! itself), waiting (as the agent's user) for a spec.
//!
//! A session's start would otherwise wait for executions of the agent's binary (the
//! supervisor, then its exec helper, if any) before its program's own: for the gateway's
//! local agent, a binary of tens of megabytes. A [`Pool`] (one per connection being served) keeps
//! [`READY_SLOTS`](crate::READY_SLOTS) of them ready; a pipe session takes one and only
//! writes its spec to it. Once that session's program runs (or its start failed), the pool
//! starts the slots it misses in the background, on tokio's blocking threads: a start never
//! waits for it, and the next slot's start does not compete with the program's. When no slot
//! is ready (and for terminal sessions, whose terminal is made for them) the session starts
//! a slot of its own, which is exactly what a session's start did before slots.
//!
//! Slots start at the lowest CPU priority (nice [`SLOT_NICE`], inherited from the thread
//! that spawns them) when the agent may raise it back (root with `CAP_SYS_NICE`, or a high
//! enough `RLIMIT_NICE`; tried once, when the agent is made): preparing the next slot then
//! hardly slows running sessions on a busy host. The agent raises a slot (its supervisor's
//! process group: supervisor and helper) back to its own priority before it hands the slot
//! a session, and drops a slot it cannot raise. An agent that may not raise priorities starts
//! its slots at its own.
//!
//! A slot never outlives its pool: dropping it closes its spec pipe, on which its supervisor
//! then reads an end of file and exits, its helper with it (the helper reads the end of its
//! own spec pipe, which only the supervisor held). An agent that dies closes those pipes
//! too. A slot whose supervisor died (killed, say) is found out before it is used and
//! dropped; one that dies between that check and taking its spec makes the session start
//! again from a new supervisor (see `session.rs`).

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

use crate::READY_SLOTS;
use crate::fds;
use crate::session::{OutputSource, Spawned, Stdin};

/// How long the supervisors of dropped slots may take to exit when a pool closes.
const SLOT_END: Duration = Duration::from_secs(2);

/// The nice value of slots while they wait (when the agent can raise them back).
pub(crate) const SLOT_NICE: i32 = 19;

/// The agent's own nice value, if it may lower a nice value from [`SLOT_NICE`] back to it
/// (tried on a thread of its own, since nice values are per thread on Linux); `None` when
/// slots must start at the agent's priority.
pub(crate) fn restorable_nice() -> Option<i32> {
    let own = rustix::process::getpriority_process(None).ok()?;
    if own >= SLOT_NICE {
        return None;
    }
    std::thread::spawn(move || {
        rustix::process::setpriority_process(None, SLOT_NICE).ok()?;
        rustix::process::setpriority_process(None, own).ok()?;
        Some(own)
    })
    .join()
    .ok()
    .flatten()
}

/// Sets the nice value of a slot's processes (its supervisor's process group).
fn renice(pid: Pid, nice: i32) -> std::io::Result<()> {
    let group = rustix::process::Pid::from_raw(pid.as_raw())
        .ok_or_else(|| std::io::Error::other("the supervisor has no pid"))?;
    rustix::process::setpriority_pgrp(Some(group), nice).map_err(std::io::Error::from)
}

/// What starting a supervisor takes, shared by an agent and its pools. Not the agent
/// itself: a slot being started when the agent ends must not keep the agent's base
/// directory (removed when the agent is dropped) alive.
#[derive(Debug)]
pub(crate) struct Launcher {
    /// The binary of the helper modes.
    pub(crate) exe: std::path::PathBuf,
    /// The name the helpers show in `ps` (argv\[0\]).
    pub(crate) exe_name: String,
    /// The session helper binary, held open when `exe` names it through `/proc/self/fd`.
    pub(crate) _held: Option<std::fs::File>,
    /// The agent's nice value, when slots wait at [`SLOT_NICE`] and are raised back to it
    /// before they get a session.
    pub(crate) nice: Option<i32>,
    /// Sessions run as another user (`run_as`, the agent being root): each supervisor needs
    /// an exec helper. Otherwise only terminal sessions do.
    pub(crate) changes_user: bool,
    /// Slots ready now, over every pool of the agent.
    pub(crate) ready_slots: std::sync::atomic::AtomicUsize,
}

/// A supervisor (and, under it, its exec helper, if any) that waits for its session's
/// spec, with the session's ends of the program's pipes (or terminal).
pub(crate) struct Slot {
    child: tokio::process::Child,
    pid: Pid,
    /// The write end of the supervisor's spec pipe (non-blocking).
    spec: File,
    reports: pipe::Receiver,
    stdout: Box<dyn OutputSource>,
    /// `None` on a terminal (everything is stdout there).
    stderr: Option<Box<dyn OutputSource>>,
    stdin: Stdin,
}

impl Slot {
    /// Starts a supervisor: on pipes (`size` `None`) or on a new terminal of that size.
    pub(crate) fn start(
        launcher: &Launcher,
        size: Option<pty_process::Size>,
    ) -> std::io::Result<Self> {
        let (spec_read, spec_write) = fds::pipe()?;
        let (report_read, report_write) = fds::pipe()?;
        let mut command = tokio::process::Command::new(&launcher.exe);
        command
            .arg0(&launcher.exe_name)
            .arg(crate::SUPERVISOR_MODE)
            .arg(spec_read.as_raw_fd().to_string())
            .arg(report_write.as_raw_fd().to_string())
            // An exec helper takes the terminal, or becomes the session's user, in a process
            // of its own; otherwise the supervisor starts the program itself.
            .args(
                (size.is_none() && !launcher.changes_user)
                    .then_some(crate::supervisor::WITHOUT_EXEC_HELPER),
            )
            .env_clear()
            // Its own process group: a Ctrl-C meant for the agent's terminal does not reach it.
            .process_group(0);
        let terminal = match size {
            None => {
                command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                None
            }
            Some(size) => {
                let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
                pty.resize(size).map_err(std::io::Error::other)?;
                let slave = |pts: &pty_process::Pts| {
                    std::os::fd::AsFd::as_fd(pts)
                        .try_clone_to_owned()
                        .map(Stdio::from)
                };
                command
                    .stdin(slave(&pts)?)
                    .stdout(slave(&pts)?)
                    .stderr(slave(&pts)?);
                Some(pty)
            }
        };
        // Inheritable only for this spawn; another thread's spawn in between may inherit them
        // too, and that supervisor closes them first thing.
        fds::set_inheritable(&spec_read, true)?;
        fds::set_inheritable(&report_write, true)?;
        let child = command.spawn();
        drop(spec_read);
        drop(report_write);
        // The command holds the terminal's slave side: let go of it, so that the terminal
        // reports its end when the session's processes are gone.
        drop(command);
        let mut child = child?;
        let pid = Pid::from_raw(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .ok_or_else(|| std::io::Error::other("the supervisor has no pid"))?,
        );
        // From here on, a failure drops the child's pipes: the supervisor reads the end of its
        // spec pipe and exits.
        fcntl(&spec_write, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let reports = pipe::Receiver::from_owned_fd(report_read)?;
        let (stdout, stderr, stdin): (Box<dyn OutputSource>, _, _) = match terminal {
            None => match (child.stdout.take(), child.stderr.take(), child.stdin.take()) {
                (Some(out), Some(err), Some(stdin)) => (
                    Box::new(out),
                    Some(Box::new(err) as Box<dyn OutputSource>),
                    Stdin::Pipe(stdin),
                ),
                _ => {
                    let _ = kill(pid, Signal::SIGTERM);
                    return Err(std::io::Error::other("the supervisor's pipes are missing"));
                }
            },
            Some(pty) => {
                let (read, write) = pty.into_split();
                (Box::new(read), None, Stdin::Terminal(write))
            }
        };
        Ok(Self {
            child,
            pid,
            spec: File::from(spec_write),
            reports,
            stdout,
            stderr,
            stdin,
        })
    }

    /// Whether its supervisor still runs (a dead one is reaped).
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Hands the session's spec to the supervisor (and closes the pipe after it). An error
    /// means the supervisor is gone (or the spec could not be written), and the slot with
    /// it: nothing of the session ran.
    pub(crate) fn hand(self, spec: &[u8]) -> std::io::Result<Spawned> {
        let Self {
            child,
            pid,
            spec: mut pipe,
            reports,
            stdout,
            stderr,
            stdin,
        } = self;
        // The pipe is empty and a spec is small: it nearly always takes it at once.
        let written = loop {
            match pipe.write(spec) {
                Ok(n) => break n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break 0,
                Err(err) => return Err(err),
            }
        };
        let spec_writer = if written < spec.len() {
            let rest = spec[written..].to_vec();
            let mut sender = pipe::Sender::from_file(pipe)?;
            Some(tokio::spawn(async move {
                let _ = sender.write_all(&rest).await;
            }))
        } else {
            drop(pipe);
            None
        };
        Ok(Spawned {
            child,
            supervisor: pid,
            stdout,
            stderr,
            stdin,
            reports: tokio::io::AsyncBufReadExt::lines(BufReader::new(reports)),
            spec_writer,
            from_slot: false,
            replenish: None,
        })
    }
}

/// The ready slots of one connection, and the slots being started to replace the taken ones.
pub(crate) struct Pool {
    launcher: Arc<Launcher>,
    state: Mutex<State>,
}

struct State {
    ready: VecDeque<Slot>,
    /// Slots being started.
    starting: usize,
    /// The connection ended: slots that arrive now are dropped.
    closed: bool,
}

impl Pool {
    /// A pool that starts filling at once (in the background).
    pub(crate) fn start(launcher: Arc<Launcher>) -> Arc<Self> {
        let pool = Arc::new(Self {
            launcher,
            state: Mutex::new(State {
                ready: VecDeque::new(),
                starting: 0,
                closed: false,
            }),
        });
        pool.replenish();
        pool
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ready slot whose supervisor runs, if there is one (dead ones are dropped). The
    /// caller then calls [`Pool::replenish`] once the session's program runs.
    pub(crate) fn take(&self) -> Option<Slot> {
        let mut state = self.state();
        while let Some(mut slot) = state.ready.pop_front() {
            self.launcher.ready_slots.fetch_sub(1, Ordering::Relaxed);
            if !slot.alive() {
                tracing::warn!(
                    supervisor = slot.pid.as_raw(),
                    "a ready session supervisor died: dropping it"
                );
                continue;
            }
            if let Some(nice) = self.launcher.nice
                && let Err(err) = renice(slot.pid, nice)
            {
                tracing::warn!(
                    supervisor = slot.pid.as_raw(), error = %err,
                    "cannot give a ready session supervisor the agent's priority: dropping it"
                );
                continue;
            }
            return Some(slot);
        }
        None
    }

    /// Drops the ready slots that died, and starts as many slots as are missing, on
    /// blocking threads.
    pub(crate) fn replenish(self: &Arc<Self>) {
        let missing = {
            let mut state = self.state();
            if state.closed {
                return;
            }
            let before = state.ready.len();
            state.ready.retain_mut(Slot::alive);
            self.launcher
                .ready_slots
                .fetch_sub(before - state.ready.len(), Ordering::Relaxed);
            let missing = READY_SLOTS.saturating_sub(state.ready.len() + state.starting);
            state.starting += missing;
            missing
        };
        for _ in 0..missing {
            let pool = Arc::clone(self);
            tokio::task::spawn_blocking(move || {
                // The supervisor inherits this thread's nice value from its first
                // instruction, and its helper and program the supervisor's.
                let niced = pool.launcher.nice.is_some()
                    && rustix::process::setpriority_process(None, SLOT_NICE).is_ok();
                let slot = Slot::start(&pool.launcher, None);
                if let (true, Some(nice)) = (niced, pool.launcher.nice) {
                    let _ = rustix::process::setpriority_process(None, nice);
                }
                pool.arrived(slot);
            });
        }
    }

    fn arrived(&self, slot: std::io::Result<Slot>) {
        let mut state = self.state();
        state.starting -= 1;
        match slot {
            Ok(slot) if !state.closed => {
                state.ready.push_back(slot);
                self.launcher.ready_slots.fetch_add(1, Ordering::Relaxed);
            }
            // Dropped: it exits.
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot start a session supervisor ahead of its session");
            }
        }
    }

    /// Drops every ready slot and waits (a little) for their supervisors to exit; slots
    /// still starting are dropped as they arrive.
    pub(crate) async fn close(&self) {
        let slots: Vec<Slot> = {
            let mut state = self.state();
            state.closed = true;
            state.ready.drain(..).collect()
        };
        self.launcher
            .ready_slots
            .fetch_sub(slots.len(), Ordering::Relaxed);
        // Closing the spec pipes ends them all at once; then each is waited for.
        let children: Vec<tokio::process::Child> =
            slots.into_iter().map(|slot| slot.child).collect();
        for mut child in children {
            if tokio::time::timeout(SLOT_END, child.wait()).await.is_err() {
                tracing::warn!("a ready session supervisor did not end: killing it");
                let _ = child.start_kill();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        self.launcher
            .ready_slots
            .fetch_sub(state.ready.len(), Ordering::Relaxed);
    }
}
