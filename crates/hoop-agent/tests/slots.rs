//! Ready slots: sessions started from a supervisor (and exec helper) started before them
//! behave exactly as sessions that start their own, slots come back after use, a dead slot
//! never fails a start, and no slot outlives its connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    Gateway, Outcome, eventually, helpers_named, marker, named_helper, processes_with, still_runs,
    with_args,
};
use hoop_agent::{AgentOptions, EXEC_MODE, READY_SLOTS, SUPERVISOR_MODE};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// An agent whose helpers carry a name of their own (to find its slots), as `nobody` when
/// the tests run as root.
struct Named {
    gateway: Gateway,
    name: String,
    _dir: tempfile::TempDir,
}

async fn agent(without_slots: bool) -> Named {
    let dir = tempfile::tempdir().unwrap();
    let (exe, name) = named_helper(dir.path());
    let gateway = Gateway::with(AgentOptions {
        run_as: common::is_root().then(|| "nobody".to_owned()),
        helper_exe: Some(exe),
        without_slots,
        ..AgentOptions::default()
    })
    .await;
    Named {
        gateway,
        name,
        _dir: dir,
    }
}

impl Named {
    /// Waits until every slot is ready.
    async fn slots_ready(&self) {
        eventually("the slots are ready", || {
            self.gateway.agent.stats().ready_slots == READY_SLOTS
        })
        .await;
    }

    fn supervisors(&self) -> Vec<i32> {
        helpers_named(&self.name, SUPERVISOR_MODE)
    }

    fn exec_helpers(&self) -> Vec<i32> {
        helpers_named(&self.name, EXEC_MODE)
    }
}

/// What a session shows of itself: its user, groups, directory and environment (with the
/// directory's path reduced to its name, and checked to be gone afterwards), and its exit.
async fn run_identity(gateway: &mut Gateway, id: &str) -> (String, i32, String) {
    let script = "id -u; id -G; pwd; stat -c '%a %U' .; ls -A | wc -l; env | sort; exit 3";
    gateway
        .start_session(id, &["sh", "-c", script], &[("CONN", "secret")], None)
        .await;
    let outcome = gateway.finish(id).await;
    let text = outcome.stdout();
    let dir = std::path::PathBuf::from(text.lines().nth(2).unwrap());
    assert!(dir.ends_with(id), "{text}");
    assert!(!dir.exists(), "the fresh directory is removed: {text}");
    let text = text.replace(dir.to_str().unwrap(), &format!("<fresh>/{id}"));
    (text, outcome.exit_code, outcome.error)
}

/// The sessions a test compares between an agent with slots and one without.
const STEPS: usize = 4;

/// Session `step` of [`STEPS`], as the gateway saw it: identity and exit; a missing
/// program; input; a kill that leaves nothing behind.
async fn behaviour(agent: &mut Named, id: &str, step: usize) -> String {
    let gateway = &mut agent.gateway;
    match step {
        0 => {
            let (text, code, error) = run_identity(gateway, id).await;
            format!("{text}\nexit {code} {error:?}")
        }
        1 => {
            gateway
                .start_session(id, &["no-such-program-xyz"], &[], None)
                .await;
            let outcome = gateway.finish(id).await;
            format!(
                "spawned {} exit {} {:?}",
                outcome.pid.is_some(),
                outcome.exit_code,
                outcome.error
            )
        }
        2 => {
            gateway.start_session(id, &["cat"], &[], None).await;
            gateway.input(id, b"typed ").await;
            gateway.input(id, b"input").await;
            gateway.close_input(id).await;
            let outcome = gateway.finish(id).await;
            format!(
                "{:?} acked {} exit {}",
                outcome.stdout(),
                outcome.input_acked,
                outcome.exit_code
            )
        }
        _ => {
            let marker = marker();
            let script = format!("setsid -f sleep {marker}; echo ready; exec sleep 600");
            gateway
                .start_session(id, &["sh", "-c", &script], &[], None)
                .await;
            let mut outcome = Outcome::default();
            gateway.wait_for_output(id, "ready", &mut outcome).await;
            eventually("the escaped sleep runs", || {
                !processes_with(&marker).is_empty()
            })
            .await;
            gateway.kill(id).await;
            gateway.finish_into(id, &mut outcome).await;
            eventually("the escaped sleep is gone", || {
                processes_with(&marker).is_empty()
            })
            .await;
            format!(
                "{:?} exit {} {:?}",
                outcome.stdout(),
                outcome.exit_code,
                outcome.error
            )
        }
    }
}

#[tokio::test]
async fn a_session_from_a_slot_behaves_as_one_without() {
    let mut with = agent(false).await;
    let mut without = agent(true).await;
    // Each session of the first agent waits for its slots; the second agent has none.
    let (mut from_slots, mut fresh) = (Vec::new(), Vec::new());
    for step in 0..STEPS {
        with.slots_ready().await;
        let starts = with.gateway.agent.stats().slot_starts;
        let id = format!("s{step}");
        from_slots.push(behaviour(&mut with, &id, step).await);
        assert_eq!(with.gateway.agent.stats().slot_starts, starts + 1);
        fresh.push(behaviour(&mut without, &id, step).await);
    }
    assert_eq!(from_slots, fresh);
    let stats = with.gateway.agent.stats();
    assert_eq!((stats.slot_starts, stats.fresh_starts), (4, 0), "{stats:?}");
    let stats = without.gateway.agent.stats();
    assert_eq!((stats.slot_starts, stats.fresh_starts), (0, 4), "{stats:?}");
    assert_eq!(stats.ready_slots, 0);
    // (The last session's supervisor may still be on its way out.)
    eventually("no supervisor waits without slots", || {
        without.supervisors().is_empty()
    })
    .await;

    let first = &from_slots[0];
    if common::is_root() {
        assert!(first.starts_with("65534\n"), "{first}");
    }
    assert!(first.contains("\n700 "), "{first}");
    assert!(first.contains("\n0\n"), "an empty directory: {first}");
    assert!(first.contains("CONN=secret\n"), "{first}");
    assert!(first.ends_with("exit 3 \"\""), "{first}");
    assert_eq!(
        from_slots[1],
        "spawned false exit 127 \"command not found: no-such-program-xyz\""
    );
    assert_eq!(from_slots[2], "\"typed input\" acked 11 exit 0");
    assert_eq!(from_slots[3], "\"ready\\n\" exit 137 \"\"");

    // The same again, back to back: slots are taken as soon as the previous session ends.
    for step in 0..STEPS {
        let id = format!("b{step}");
        assert_eq!(
            behaviour(&mut with, &id, step).await,
            behaviour(&mut without, &id, step).await
        );
    }
}

#[tokio::test]
async fn slots_come_back_after_use() {
    let mut agent = agent(false).await;
    agent.slots_complete().await;
    // Two starts in a row, without waiting: both from slots.
    for id in ["a", "b"] {
        agent
            .gateway
            .start_session(id, &["echo", id], &[], None)
            .await;
    }
    for id in ["a", "b"] {
        assert_eq!(agent.gateway.finish(id).await.stdout(), format!("{id}\n"));
    }
    assert_eq!(agent.gateway.agent.stats().slot_starts, 2);
    // Used slots are replaced: more sessions than slots, each from a slot.
    for i in 0..2 * READY_SLOTS + 1 {
        agent.slots_ready().await;
        let id = format!("n{i}");
        agent
            .gateway
            .start_session(&id, &["echo", &id], &[], None)
            .await;
        assert_eq!(agent.gateway.finish(&id).await.stdout(), format!("{id}\n"));
    }
    let stats = agent.gateway.agent.stats();
    assert_eq!(
        (stats.slot_starts, stats.fresh_starts),
        (2 * READY_SLOTS as u64 + 3, 0),
        "{stats:?}"
    );
    agent.slots_complete().await;
    // A terminal session starts its own supervisor.
    agent
        .gateway
        .start_session("tty", &["echo", "tty"], &[], Some((24, 80)))
        .await;
    assert_eq!(agent.gateway.finish("tty").await.stdout(), "tty\r\n");
    assert_eq!(agent.gateway.agent.stats().fresh_starts, 1);
}

impl Named {
    /// Waits until every slot is ready, each with its exec helper when its sessions change
    /// user (as root: an agent that keeps its own user has none, its supervisors start
    /// programs themselves), and nothing else runs.
    async fn slots_complete(&self) {
        eventually("every slot is ready with its exec helper", || {
            self.gateway.agent.stats().ready_slots == READY_SLOTS
                && self.supervisors().len() == READY_SLOTS
                && self.exec_helpers().len() == READY_SLOTS * exec_helpers_per_slot()
        })
        .await;
    }
}

/// Exec helpers a slot of [`agent`] holds: one when it runs sessions as `nobody` (as root).
fn exec_helpers_per_slot() -> usize {
    usize::from(common::is_root())
}

#[tokio::test]
async fn a_dead_slot_never_fails_a_start() {
    let mut agent = agent(false).await;
    agent.slots_complete().await;
    // Every ready supervisor is killed, and the start comes at once: the agent may see
    // them dead, or hand one the session as it dies (then the session starts again).
    let supervisors = with_args(&agent.supervisors());
    let helpers = with_args(&agent.exec_helpers());
    for (pid, _) in &supervisors {
        kill(Pid::from_raw(*pid), Signal::SIGKILL).unwrap();
    }
    agent
        .gateway
        .start_session("after", &["sh", "-c", "echo still; exit 4"], &[], None)
        .await;
    let outcome = agent.gateway.finish("after").await;
    assert_eq!(
        (
            outcome.stdout().as_str(),
            outcome.exit_code,
            outcome.error.as_str()
        ),
        ("still\n", 4, "")
    );
    // Their exec helpers went with them.
    eventually("the killed slots and their exec helpers are gone", || {
        supervisors
            .iter()
            .chain(&helpers)
            .all(|(pid, args)| !still_runs(*pid, args))
    })
    .await;

    // Dead slots are dropped when found (at the latest by the next session), and replaced.
    agent
        .gateway
        .start_session("next", &["echo", "next"], &[], None)
        .await;
    assert_eq!(agent.gateway.finish("next").await.stdout(), "next\n");
    agent.slots_complete().await;

    // A slot whose exec helper died: its supervisor starts another.
    let helpers = with_args(&agent.exec_helpers());
    for (pid, _) in &helpers {
        kill(Pid::from_raw(*pid), Signal::SIGKILL).unwrap();
    }
    eventually("the exec helpers are dead", || {
        helpers.iter().all(|(pid, args)| !still_runs(*pid, args))
    })
    .await;
    let starts = agent.gateway.agent.stats().slot_starts;
    agent
        .gateway
        .start_session("helperless", &["sh", "-c", "id -u"], &[], None)
        .await;
    let outcome = agent.gateway.finish("helperless").await;
    let expected = if common::is_root() {
        "65534\n".to_owned()
    } else {
        format!("{}\n", nix::unistd::Uid::effective())
    };
    assert_eq!((outcome.stdout(), outcome.exit_code), (expected, 0));
    assert_eq!(agent.gateway.agent.stats().slot_starts, starts + 1);
}

#[tokio::test]
async fn slots_end_with_their_connection() {
    let mut agent = agent(false).await;
    agent.slots_complete().await;
    let mut slots = agent.supervisors();
    slots.extend(agent.exec_helpers());
    let slots = with_args(&slots);
    assert_eq!(slots.len(), READY_SLOTS * (1 + exec_helpers_per_slot()));
    agent.gateway.hang_up();
    agent.gateway.served().await.unwrap();
    assert_eq!(agent.gateway.agent.stats().ready_slots, 0);
    eventually("no slot process is left", || {
        slots.iter().all(|(pid, args)| !still_runs(*pid, args))
    })
    .await;
}

#[tokio::test]
async fn a_spec_larger_than_a_pipe_reaches_a_slot() {
    let mut agent = agent(false).await;
    agent.slots_ready().await;
    // More than a pipe holds (64 KiB): the agent writes the rest as the supervisor reads.
    // (Four variables: the kernel takes at most 128 KiB in one.)
    let big = "v".repeat(50 * 1024);
    let env: Vec<(String, String)> = (1..=4).map(|i| (format!("BIG{i}"), big.clone())).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    agent
        .gateway
        .start_session(
            "big",
            &["sh", "-c", "printf %s \"$BIG1$BIG2$BIG3$BIG4\" | wc -c"],
            &env,
            None,
        )
        .await;
    let outcome = agent.gateway.finish("big").await;
    assert_eq!(
        (
            outcome.stdout().trim(),
            outcome.exit_code,
            outcome.error.as_str()
        ),
        ((4 * big.len()).to_string().as_str(), 0, "")
    );
    assert_eq!(agent.gateway.agent.stats().slot_starts, 1);
}
