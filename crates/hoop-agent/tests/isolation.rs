//! Sessions of an agent that runs as root run as another user (CI runs as root, so these
//! run there; elsewhere they say they are skipped).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Gateway, is_root};
use hoop_agent::AgentOptions;

fn as_user(user: &str) -> AgentOptions {
    AgentOptions {
        run_as: Some(user.to_owned()),
        ..common::options()
    }
}

/// What `id -G USER` says (as root: the groups a login of USER gets).
fn groups_of(user: &str) -> String {
    let out = std::process::Command::new("id")
        .args(["-G", user])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn sessions_run_as_nobody_with_nothing_of_root() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    // A file only root may read, in a directory anyone may enter.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut gateway = Gateway::with(as_user("nobody")).await;
    let agent = std::process::id();
    let script = format!(
        "id -u; id -G; pwd; stat -c '%a %U' .; \
         echo HOME=$HOME USER=$USER LOGNAME=$LOGNAME SHELL=$SHELL PATH=$PATH; \
         cat {secret} 2>/dev/null; echo cat=$?; \
         cat /proc/{agent}/environ 2>/dev/null; echo agent-environ=$?; \
         cat /proc/$PPID/environ 2>/dev/null; echo supervisor-environ=$?; \
         kill -TERM $PPID 2>/dev/null; echo kill-supervisor=$?",
        secret = secret.display()
    );
    gateway
        .start_session("nobody", &["sh", "-c", &script], &[], None)
        .await;
    let outcome = gateway.finish("nobody").await;
    let text = outcome.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9, "{text:?} {:?}", outcome.error);
    assert_eq!(lines[0], "65534", "{text}");
    assert_eq!(lines[1], groups_of("nobody"), "{text}");
    let workdir = std::path::Path::new(lines[2]);
    assert_eq!(lines[3], "700 nobody", "{text}");
    assert_eq!(
        lines[4],
        "HOME=/nonexistent USER=nobody LOGNAME=nobody SHELL=/usr/sbin/nologin PATH=/usr/local/bin:/usr/bin:/bin",
    );
    assert_eq!(
        lines[5], "cat=1",
        "the session reads a file of root: {text}"
    );
    assert_eq!(lines[6], "agent-environ=1", "{text}");
    assert_eq!(lines[7], "supervisor-environ=1", "{text}");
    assert_eq!(lines[8], "kill-supervisor=1", "{text}");
    assert_eq!(outcome.exit_code, 0);
    assert!(!workdir.exists(), "the fresh working directory is removed");
}

/// The program as `nobody` holds nothing of root: every uid and gid (real, effective, saved,
/// filesystem) is nobody's, no capability, no way to gain privileges; and nothing of its
/// supervisor (its parent, root) is within its reach: not one of the supervisor's threads
/// takes a signal from it (a SIGKILL sent to any thread, by its id, would end the whole
/// supervisor, and the session's cleanup with it).
#[tokio::test]
async fn a_session_as_nobody_holds_no_privilege_and_cannot_signal_its_supervisor() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let mut gateway = Gateway::with(as_user("nobody")).await;
    let script = "grep -E '^(Uid|Gid|CapPrm|CapEff|NoNewPrivs):' /proc/$$/status; \
                  stat -c 'parent %u' /proc/$PPID; \
                  for t in $(ls /proc/$PPID/task); do \
                    kill -KILL $t 2>/dev/null && echo killed $t; \
                  done; echo done";
    gateway
        .start_session("privileges", &["sh", "-c", script], &[], None)
        .await;
    let outcome = gateway.finish("privileges").await;
    assert_eq!(
        outcome.stdout(),
        "Uid:\t65534\t65534\t65534\t65534\n\
         Gid:\t65534\t65534\t65534\t65534\n\
         CapPrm:\t0000000000000000\n\
         CapEff:\t0000000000000000\n\
         NoNewPrivs:\t1\n\
         parent 0\n\
         done\n",
        "{}",
        outcome.error
    );
}

#[tokio::test]
async fn a_users_supplementary_groups_come_along() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    // A user that is a member of a group beyond its own, if the machine has one.
    let groups = std::fs::read_to_string("/etc/group").unwrap();
    let member = groups
        .lines()
        .filter_map(|line| line.split(':').nth(3))
        .flat_map(|members| members.split(','))
        .find(|user| {
            !user.is_empty() && nix::unistd::User::from_name(user).ok().flatten().is_some()
        });
    let Some(user) = member else {
        eprintln!("skipped: no user here is a member of a supplementary group");
        return;
    };
    let expected = groups_of(user);
    assert!(
        expected.contains(' '),
        "{user} has supplementary groups: {expected}"
    );
    let mut gateway = Gateway::with(as_user(user)).await;
    gateway
        .start_session("groups", &["id", "-G"], &[], None)
        .await;
    let outcome = gateway.finish("groups").await;
    assert_eq!(outcome.stdout().trim(), expected);
}

#[tokio::test]
async fn a_terminal_belongs_to_the_sessions_user() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let mut gateway = Gateway::with(as_user("nobody")).await;
    gateway
        .start_session(
            "tty",
            &["sh", "-c", "stat -c %U $(tty); id -un"],
            &[],
            Some((24, 80)),
        )
        .await;
    let outcome = gateway.finish("tty").await;
    assert_eq!(outcome.stdout(), "nobody\r\nnobody\r\n");
}

#[tokio::test]
async fn without_a_user_sessions_run_as_root() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let mut gateway = Gateway::start().await;
    gateway
        .start_session("root", &["sh", "-c", "id -u; echo $PATH"], &[], None)
        .await;
    let outcome = gateway.finish("root").await;
    assert_eq!(
        outcome.stdout(),
        "0\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}
