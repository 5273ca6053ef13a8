//! Fetching repositories and reading files at a commit with the git CLI.
//!
//! Why the CLI and not `gix`: git is on every machine that hosts repositories, it speaks
//! every transport and credential setup users already have (https with tokens, ssh with
//! keys and known_hosts), and `gix` with its network transports is a large build (minutes on
//! a small machine) for a few commands run every few minutes.
//!
//! Every git process runs with an empty environment except what it needs: `PATH`, `HOME`,
//! a locale, no system or global git config, no terminal prompts, only the `file`, `https`
//! and `ssh` protocols. Credentials never appear on a command line (which every user of
//! the host can read): a token travels in the environment of the git process (readable by
//! its own user only) and reaches git through a credential helper defined in the
//! environment too; an SSH key's path goes into `GIT_SSH_COMMAND`. Git's error messages are
//! passed on with the token (if any) cut out.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::render::shell_quote;
use crate::runbook::{MAX_FILE_BYTES, is_runbook_path};
use crate::settings::{Credentials, Repository, TokenSource};

/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a local git command may take.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most runbook files read from one commit.
pub(crate) const MAX_RUNBOOKS: usize = 10_000;

/// The environment variable carrying the token to the credential helper.
const TOKEN_VAR: &str = "HOOP_RUNBOOKS_GIT_TOKEN";
const USERNAME_VAR: &str = "HOOP_RUNBOOKS_GIT_USERNAME";
/// A credential helper that answers `get` with the user name and token from the
/// environment; its text holds no secret.
const CREDENTIAL_HELPER: &str = "!f() { test \"$1\" = get || exit 0; printf 'username=%s\\npassword=%s\\n' \"$HOOP_RUNBOOKS_GIT_USERNAME\" \"$HOOP_RUNBOOKS_GIT_TOKEN\"; }; f";

/// One repository's local bare clone.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    dir: PathBuf,
    repo: Repository,
}

/// A file found at a commit: its path under the repository's runbook directory and its
/// bytes (or why they were not read).
pub(crate) type Found = (String, Result<Vec<u8>, String>);

impl Git {
    pub(crate) fn new(dir: PathBuf, repo: Repository) -> Self {
        Self { dir, repo }
    }

    /// A git command on the clone, with the safe environment.
    fn command(&self, secret: Option<&str>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("git");
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ALLOW_PROTOCOL", "file:https:ssh")
            .env("GIT_DIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(home) = std::env::var_os("HOME") {
            cmd.env("HOME", home);
        }
        match &self.repo.credentials {
            Credentials::None => {}
            Credentials::Token { username, .. } => {
                cmd.env("GIT_CONFIG_COUNT", "1")
                    .env("GIT_CONFIG_KEY_0", "credential.helper")
                    .env("GIT_CONFIG_VALUE_0", CREDENTIAL_HELPER)
                    .env(USERNAME_VAR, username);
                if let Some(token) = secret {
                    cmd.env(TOKEN_VAR, token);
                }
            }
            Credentials::SshKey { key, known_hosts } => {
                let mut ssh = format!(
                    "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i {}",
                    quote_path(key)
                );
                if let Some(known_hosts) = known_hosts {
                    ssh.push_str(" -o StrictHostKeyChecking=yes -o UserKnownHostsFile=");
                    ssh.push_str(&quote_path(known_hosts));
                }
                cmd.env("GIT_SSH_COMMAND", ssh);
            }
        }
        cmd
    }

    /// The token, read now (a `token_file` may have been rotated).
    async fn token(&self) -> Result<Option<String>, String> {
        match &self.repo.credentials {
            Credentials::Token {
                token: TokenSource::Value(secret),
                ..
            } => Ok(Some(secret.expose().to_owned())),
            Credentials::Token {
                token: TokenSource::File(path),
                ..
            } => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    format!("cannot read token_file {}: {}", path.display(), e.kind())
                })?;
                Ok(Some(text.trim().to_owned()))
            }
            _ => Ok(None),
        }
    }

    /// Runs git with `args` (and `input` on stdin); its stdout, or its error in one line.
    async fn run(
        &self,
        args: &[&str],
        input: Option<Vec<u8>>,
        secret: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let mut cmd = self.command(secret);
        cmd.args(args);
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run git: {e} (is git installed and on PATH?)"))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
            });
        }
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| format!("git {} took longer than {}s", args[0], timeout.as_secs()))?
            .map_err(|e| format!("git {} failed: {e}", args[0]))?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(clean_error(&stderr, secret, args[0]))
        }
    }

    /// Fetches the branch from the repository's URL into the clone (creating the clone the
    /// first time); the commit the branch is at.
    pub(crate) async fn fetch(&self) -> Result<String, String> {
        if !self.dir.join("HEAD").exists() {
            if let Some(parent) = self.dir.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            // GIT_DIR names the directory to create.
            self.run(&["init", "--bare", "--quiet"], None, None, LOCAL_TIMEOUT)
                .await?;
        }
        let token = self.token().await?;
        let branch_ref = format!("refs/heads/{}", self.repo.branch);
        let refspec = format!("+{branch_ref}:{branch_ref}");
        self.run(
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-recurse-submodules",
                "--no-write-fetch-head",
                &self.repo.url,
                &refspec,
            ],
            None,
            token.as_deref(),
            FETCH_TIMEOUT,
        )
        .await?;
        self.resolve(&branch_ref)
            .await?
            .ok_or_else(|| format!("branch `{}` has no commit", self.repo.branch))
    }

    /// The full commit id `rev` names, if it names a commit in the clone.
    pub(crate) async fn resolve(&self, rev: &str) -> Result<Option<String>, String> {
        let spec = format!("{rev}^{{commit}}");
        match self
            .run(
                &["rev-parse", "--verify", "--quiet", &spec],
                None,
                None,
                LOCAL_TIMEOUT,
            )
            .await
        {
            Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_owned())),
            Err(_) => Ok(None),
        }
    }

    /// Whether commit `older` is `newer` or one of its ancestors.
    pub(crate) async fn is_ancestor(&self, older: &str, newer: &str) -> Result<bool, String> {
        let mut cmd = self.command(None);
        cmd.args(["merge-base", "--is-ancestor", older, newer]);
        let status = tokio::time::timeout(LOCAL_TIMEOUT, cmd.status())
            .await
            .map_err(|_| "git merge-base took too long".to_owned())?
            .map_err(|e| format!("cannot run git: {e}"))?;
        Ok(status.success())
    }

    /// The repository path of runbook `path` (under the configured sub-directory).
    fn full_path(&self, path: &str) -> String {
        if self.repo.path.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.repo.path)
        }
    }

    /// Every runbook file at `commit` under the configured sub-directory, with its bytes.
    pub(crate) async fn runbook_files(&self, commit: &str) -> Result<Vec<Found>, String> {
        let mut args = vec!["ls-tree", "-r", "-z", "--full-tree", commit];
        if !self.repo.path.is_empty() {
            args.push("--");
            args.push(&self.repo.path);
        }
        let listing = self.run(&args, None, None, LOCAL_TIMEOUT).await?;
        let prefix = if self.repo.path.is_empty() {
            String::new()
        } else {
            format!("{}/", self.repo.path)
        };
        let mut wanted: Vec<(String, String)> = Vec::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let mut meta = meta.split(' ');
            let (Some(mode), Some(kind), Some(oid)) = (meta.next(), meta.next(), meta.next())
            else {
                continue;
            };
            // Regular files only: no symlinks, no submodules.
            if kind != "blob" || !matches!(mode, "100644" | "100755") {
                continue;
            }
            let Some(rel) = path.strip_prefix(&prefix) else {
                continue;
            };
            if is_runbook_path(rel) {
                wanted.push((rel.to_owned(), oid.to_owned()));
            }
        }
        if wanted.len() > MAX_RUNBOOKS {
            return Err(format!(
                "more than {MAX_RUNBOOKS} runbook files under `{}`",
                self.repo.path
            ));
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        self.read_blobs(wanted).await
    }

    /// Reads blobs with one `git cat-file --batch`.
    async fn read_blobs(&self, wanted: Vec<(String, String)>) -> Result<Vec<Found>, String> {
        let mut cmd = self.command(None);
        cmd.args(["cat-file", "--batch"]).stdin(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run git: {e}"))?;
        let input: String = wanted.iter().map(|(_, oid)| format!("{oid}\n")).collect();
        if let Some(mut stdin) = child.stdin.take() {
            tokio::spawn(async move {
                let _ = stdin.write_all(input.as_bytes()).await;
            });
        }
        let stdout = child.stdout.take().ok_or("git cat-file has no stdout")?;
        let mut reader = BufReader::new(stdout);
        let read = async {
            let mut found = Vec::with_capacity(wanted.len());
            for (path, _) in wanted {
                let mut header = String::new();
                reader
                    .read_line(&mut header)
                    .await
                    .map_err(|e| format!("git cat-file: {e}"))?;
                let size: usize = header
                    .split(' ')
                    .nth(2)
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| {
                        format!("git cat-file: unexpected answer `{}`", header.trim())
                    })?;
                let mut data = vec![0; size + 1];
                reader
                    .read_exact(&mut data)
                    .await
                    .map_err(|e| format!("git cat-file: {e}"))?;
                data.truncate(size);
                let content = if size > MAX_FILE_BYTES {
                    Err(format!("larger than {} KiB", MAX_FILE_BYTES / 1024))
                } else {
                    Ok(data)
                };
                found.push((path, content));
            }
            Ok::<_, String>(found)
        };
        let found = tokio::time::timeout(LOCAL_TIMEOUT, read)
            .await
            .map_err(|_| "git cat-file took too long".to_owned())??;
        let _ = child.wait().await;
        Ok(found)
    }

    /// Runbook `path`'s bytes at `commit`, if the file is there.
    pub(crate) async fn runbook_file(
        &self,
        commit: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        let spec = format!("{commit}:{}", self.full_path(path));
        let mut cmd = self.command(None);
        cmd.args(["cat-file", "-e", &spec]);
        let exists = tokio::time::timeout(LOCAL_TIMEOUT, cmd.status())
            .await
            .map_err(|_| "git cat-file took too long".to_owned())?
            .map_err(|e| format!("cannot run git: {e}"))?
            .success();
        if !exists {
            return Ok(None);
        }
        let data = self
            .run(&["cat-file", "blob", &spec], None, None, LOCAL_TIMEOUT)
            .await?;
        Ok(Some(data))
    }
}

fn quote_path(path: &Path) -> String {
    // Settings refuse NUL-free paths only where the OS does; a path with a NUL cannot exist.
    shell_quote(&path.to_string_lossy()).unwrap_or_else(|_| "''".to_owned())
}

/// Git's error text in one line, without the token and without git's `fatal:` noise.
fn clean_error(stderr: &str, secret: Option<&str>, command: &str) -> String {
    let mut text: String = stderr
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches("fatal: ")
                .trim_start_matches("error: ")
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(secret) = secret
        && !secret.is_empty()
    {
        text = text.replace(secret, "<redacted>");
    }
    if text.len() > 500 {
        let mut cut = 500;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    if text.is_empty() {
        format!("git {command} failed")
    } else {
        format!("git {command}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;

    fn repo(credentials: Credentials) -> Repository {
        Repository {
            name: "ops".into(),
            url: "https://git.example.com/ops.git".into(),
            branch: "main".into(),
            path: String::new(),
            refresh: std::time::Duration::from_secs(60),
            credentials,
        }
    }

    /// git itself asks the credential helper defined in its environment and gets the
    /// token, which is on no command line.
    #[tokio::test]
    async fn git_gets_the_token_from_the_helper_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(
            dir.path().join("ops.git"),
            repo(Credentials::Token {
                username: "x-access-token".into(),
                token: TokenSource::Value(Secret::new("s3cr3t-token")),
            }),
        );
        let token = git.token().await.unwrap().unwrap();
        let mut cmd = git.command(Some(&token));
        cmd.args(["credential", "fill"]);
        let argv: Vec<String> = std::iter::once(cmd.as_std().get_program())
            .chain(cmd.as_std().get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!argv.join(" ").contains("s3cr3t"), "{argv:?}");
        let out = git
            .run(
                &["credential", "fill"],
                Some(b"protocol=https\nhost=git.example.com\n\n".to_vec()),
                Some(&token),
                LOCAL_TIMEOUT,
            )
            .await
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("username=x-access-token\n"), "{out}");
        assert!(out.contains("password=s3cr3t-token\n"), "{out}");
    }

    #[test]
    fn an_ssh_key_goes_into_git_ssh_command_quoted() {
        let git = Git::new(
            "/nonexistent".into(),
            repo(Credentials::SshKey {
                key: "/etc/hoop/deploy key".into(),
                known_hosts: Some("/etc/hoop/known_hosts".into()),
            }),
        );
        let cmd = git.command(None);
        let ssh = cmd
            .as_std()
            .get_envs()
            .find(|(k, _)| *k == "GIT_SSH_COMMAND")
            .and_then(|(_, v)| v)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            ssh,
            "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i '/etc/hoop/deploy key' \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile='/etc/hoop/known_hosts'"
        );
    }

    #[test]
    fn errors_never_carry_the_token() {
        let text = clean_error(
            "fatal: could not read from https://x-access-token:s3cr3t@host/r.git\n",
            Some("s3cr3t"),
            "fetch",
        );
        assert_eq!(
            text,
            "git fetch: could not read from https://x-access-token:<redacted>@host/r.git"
        );
    }
}
