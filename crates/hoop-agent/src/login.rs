//! The login environment of the user a session runs as.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nix::unistd::{Uid, User};

/// `PATH` of a login of an ordinary user (Debian's `/etc/login.defs`, without games).
pub(crate) const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// `PATH` of a login of root.
pub(crate) const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `LANG` when the agent has none.
pub(crate) const DEFAULT_LANG: &str = "C.UTF-8";
/// `TERM` of a session on a terminal.
pub(crate) const TERM: &str = "xterm-256color";

/// The passwd entry of the user a session runs as.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: PathBuf,
    pub(crate) shell: PathBuf,
}

impl Account {
    /// The user named `name`; `Ok(None)` when there is none.
    pub(crate) fn by_name(name: &str) -> Result<Option<Self>, String> {
        User::from_name(name)
            .map(|user| user.map(Self::from))
            .map_err(|e| format!("cannot look up user `{name}`: {e}"))
    }

    /// The user this process runs as (its effective uid). A uid without a passwd entry (a
    /// container's arbitrary uid) gets `HOME=/` and `SHELL=/bin/sh`, and its number as name.
    pub(crate) fn current() -> Self {
        let uid = Uid::effective();
        match User::from_uid(uid) {
            Ok(Some(user)) => Self::from(user),
            _ => Self {
                name: uid.to_string(),
                uid: uid.as_raw(),
                gid: nix::unistd::Gid::effective().as_raw(),
                home: PathBuf::from("/"),
                shell: PathBuf::from("/bin/sh"),
            },
        }
    }
}

impl From<User> for Account {
    fn from(user: User) -> Self {
        let shell = if user.shell.as_os_str().is_empty() {
            PathBuf::from("/bin/sh")
        } else {
            user.shell
        };
        Self {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            shell,
        }
    }
}

/// The program's whole environment: what a login gives `account` (`PATH`, `HOME`, `USER`,
/// `LOGNAME`, `SHELL`, `LANG`, and `TERM` on a terminal), then the connection's `env`
/// (which wins on the same name).
pub(crate) fn environment(
    account: &Account,
    lang: &str,
    terminal: bool,
    connection_env: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let path = if account.uid == 0 {
        ROOT_PATH
    } else {
        USER_PATH
    };
    env.insert("PATH".to_owned(), path.to_owned());
    env.insert(
        "HOME".to_owned(),
        account.home.to_string_lossy().into_owned(),
    );
    env.insert("USER".to_owned(), account.name.clone());
    env.insert("LOGNAME".to_owned(), account.name.clone());
    env.insert(
        "SHELL".to_owned(),
        account.shell.to_string_lossy().into_owned(),
    );
    env.insert("LANG".to_owned(), lang.to_owned());
    if terminal {
        env.insert("TERM".to_owned(), TERM.to_owned());
    }
    for (key, value) in connection_env {
        env.insert(key.clone(), value.clone());
    }
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_variables_then_the_connection_env() {
        let account = Account {
            name: "nobody".to_owned(),
            uid: 65534,
            gid: 65534,
            home: PathBuf::from("/nonexistent"),
            shell: PathBuf::from("/usr/sbin/nologin"),
        };
        let extra = BTreeMap::from([("PGPASSWORD".to_owned(), "s3cret".to_owned())]);
        let env: BTreeMap<_, _> = environment(&account, "C.UTF-8", true, &extra)
            .into_iter()
            .collect();
        let keys: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "HOME",
                "LANG",
                "LOGNAME",
                "PATH",
                "PGPASSWORD",
                "SHELL",
                "TERM",
                "USER"
            ]
        );
        assert_eq!(env["PATH"], USER_PATH);
        assert_eq!(env["HOME"], "/nonexistent");
        let root = Account { uid: 0, ..account };
        let env = environment(&root, "C.UTF-8", false, &BTreeMap::new());
        assert!(env.iter().any(|(k, v)| k == "PATH" && v == ROOT_PATH));
        assert!(!env.iter().any(|(k, _)| k == "TERM"));
    }
}
