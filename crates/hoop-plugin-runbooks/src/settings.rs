//! The deployment settings (`[[plugins.runbooks.repositories]]`) and the per-connection
//! config (`{"repositories": [...], "paths": ["glob"]}`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hoop_core::{ConfigError, PluginConfig};
use serde::Deserialize;

use crate::glob::Glob;

/// How often a repository is fetched again when its settings do not say.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5 * 60);
/// The shortest refresh interval accepted.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// The user name sent with a `token` when the settings name none (GitHub's convention; any
/// name works with GitHub and Gitea tokens, GitLab wants `oauth2`).
pub const DEFAULT_TOKEN_USERNAME: &str = "x-access-token";

/// The `[plugins.runbooks]` table.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The repositories runbooks come from, in the order given.
    pub repositories: Vec<Repository>,
}

/// A secret value (a token): never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the gateway authenticates to a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None (`file://`, public `https://`).
    None,
    /// An access token sent over HTTPS as the password of `username`.
    Token {
        /// The user name sent with it.
        username: String,
        /// The token (from `token`, or read from `token_file` at each fetch).
        token: TokenSource,
    },
    /// An SSH private key file, and optionally a known_hosts file.
    SshKey {
        /// The private key file.
        key: PathBuf,
        /// A known_hosts file; without it ssh's own (`~/.ssh/known_hosts`) applies.
        known_hosts: Option<PathBuf>,
    },
}

/// Where a token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Given in the settings.
    Value(Secret),
    /// Read from this file at each fetch (so it can be rotated without a restart).
    File(PathBuf),
}

/// One `[[plugins.runbooks.repositories]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Name runbooks are addressed by (`^[a-z0-9][a-z0-9_-]{0,62}$`).
    pub name: String,
    /// Git URL: `file://`, `https://` or `ssh://`.
    pub url: String,
    /// Branch fetched (default `main`).
    pub branch: String,
    /// Sub-directory holding the runbooks (default: the whole repository); runbook paths
    /// are relative to it.
    pub path: String,
    /// How often it is fetched again.
    pub refresh: Duration,
    /// How the gateway authenticates.
    pub credentials: Credentials,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    repositories: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    name: String,
    url: String,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    refresh: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    ssh_key: Option<PathBuf>,
    #[serde(default)]
    known_hosts: Option<PathBuf>,
}

/// Whether `name` is a valid repository name.
pub(crate) fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// Whether `branch` is a branch name git accepts and no command line can mistake for an
/// option.
fn valid_branch(branch: &str) -> bool {
    !branch.is_empty()
        && branch.len() <= 200
        && !branch.starts_with(['-', '/', '.'])
        && !branch.ends_with(['/', '.'])
        && !branch.ends_with(".lock")
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.contains("@{")
        && branch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

/// A repository sub-directory: relative, `/`-separated, no `.` or `..` part.
fn valid_subdir(path: &str) -> bool {
    path.split('/')
        .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'))
        && !path.starts_with('-')
}

impl Settings {
    /// Parses and checks the `[plugins.runbooks]` table; errors name the key, e.g.
    /// `repositories[1].url`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn parse(settings: &PluginConfig) -> Result<Self, ConfigError> {
        let raw: RawSettings = settings.parse()?;
        let mut repositories = Vec::with_capacity(raw.repositories.len());
        for (i, value) in raw.repositories.into_iter().enumerate() {
            let at = |key: &str| format!("repositories[{i}].{key}");
            let repo: RawRepository = serde_json::from_value(value)
                .map_err(|e| ConfigError::field(format!("repositories[{i}]"), e.to_string()))?;
            let repo = check_repository(repo, &at)?;
            if repositories
                .iter()
                .any(|r: &Repository| r.name == repo.name)
            {
                return Err(ConfigError::field(
                    at("name"),
                    format!(
                        "`{}` names two repositories: give each its own name",
                        repo.name
                    ),
                ));
            }
            repositories.push(repo);
        }
        Ok(Self { repositories })
    }

    /// The repository named `name`.
    pub fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories.iter().find(|r| r.name == name)
    }
}

fn check_repository(
    repo: RawRepository,
    at: &dyn Fn(&str) -> String,
) -> Result<Repository, ConfigError> {
    if !valid_name(&repo.name) {
        return Err(ConfigError::field(
            at("name"),
            "must match ^[a-z0-9][a-z0-9_-]{0,62}$",
        ));
    }
    let scheme = repo.url.split_once("://").map(|(s, _)| s).unwrap_or("");
    if !matches!(scheme, "file" | "https" | "ssh") {
        return Err(ConfigError::field(
            at("url"),
            "must be a git URL starting with file://, https:// or ssh://",
        ));
    }
    if repo
        .url
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ConfigError::field(
            at("url"),
            "must not contain spaces or control characters",
        ));
    }
    // A password in the URL would end up in git's messages and in process listings.
    let authority = repo.url[scheme.len() + 3..].split('/').next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Err(ConfigError::field(
            at("url"),
            "must not hold a password: set `token` (or `token_file`) instead",
        ));
    }
    let branch = repo.branch.unwrap_or_else(|| "main".to_owned());
    if !valid_branch(&branch) {
        return Err(ConfigError::field(
            at("branch"),
            "must be a branch name (letters, digits, `-`, `_`, `.`, `/`; not starting with `-`)",
        ));
    }
    let path = repo.path.unwrap_or_default().trim_matches('/').to_owned();
    if !path.is_empty() && !valid_subdir(&path) {
        return Err(ConfigError::field(
            at("path"),
            "must be a sub-directory of the repository (relative, without `.` or `..`)",
        ));
    }
    let refresh = match repo.refresh {
        None => DEFAULT_REFRESH,
        Some(text) => {
            let refresh = humantime::parse_duration(&text).map_err(|e| {
                ConfigError::field(at("refresh"), format!("`{text}` is not a duration: {e}"))
            })?;
            if refresh < MIN_REFRESH {
                return Err(ConfigError::field(at("refresh"), "must be at least 1s"));
            }
            refresh
        }
    };
    let credentials = match (repo.token, repo.token_file, repo.ssh_key) {
        (None, None, None) => {
            if repo.username.is_some() {
                return Err(ConfigError::field(
                    at("username"),
                    "is sent with a token only: set `token` or `token_file` too",
                ));
            }
            if repo.known_hosts.is_some() {
                return Err(ConfigError::field(
                    at("known_hosts"),
                    "is used with `ssh_key` only",
                ));
            }
            Credentials::None
        }
        (Some(_), Some(_), None) => {
            return Err(ConfigError::field(
                at("token_file"),
                "set either `token` or `token_file`, not both",
            ));
        }
        (Some(token), None, None) if scheme == "https" => {
            if token.is_empty() || token.chars().any(char::is_control) {
                return Err(ConfigError::field(
                    at("token"),
                    "must be a non-empty token without control characters",
                ));
            }
            token_credentials(
                repo.username,
                repo.known_hosts.as_ref(),
                TokenSource::Value(Secret::new(token)),
                at,
            )?
        }
        (None, Some(file), None) if scheme == "https" => {
            let file = absolute(file, &at("token_file"))?;
            token_credentials(
                repo.username,
                repo.known_hosts.as_ref(),
                TokenSource::File(file),
                at,
            )?
        }
        (Some(_), _, None) | (None, Some(_), None) => {
            return Err(ConfigError::field(
                at("token"),
                "a token is sent over https:// only: the url must start with https://",
            ));
        }
        (None, None, Some(key)) if scheme == "ssh" => {
            if repo.username.is_some() {
                return Err(ConfigError::field(
                    at("username"),
                    "is sent with a token only; for ssh put the user in the url (ssh://git@host/…)",
                ));
            }
            Credentials::SshKey {
                key: absolute(key, &at("ssh_key"))?,
                known_hosts: repo
                    .known_hosts
                    .map(|k| absolute(k, &at("known_hosts")))
                    .transpose()?,
            }
        }
        (None, None, Some(_)) => {
            return Err(ConfigError::field(
                at("ssh_key"),
                "an SSH key is used with ssh:// URLs only: the url must start with ssh://",
            ));
        }
        (_, _, Some(_)) => {
            return Err(ConfigError::field(
                at("ssh_key"),
                "set either a token or an SSH key, not both",
            ));
        }
    };
    Ok(Repository {
        name: repo.name,
        url: repo.url,
        branch,
        path,
        refresh,
        credentials,
    })
}

fn token_credentials(
    username: Option<String>,
    known_hosts: Option<&PathBuf>,
    token: TokenSource,
    at: &dyn Fn(&str) -> String,
) -> Result<Credentials, ConfigError> {
    if known_hosts.is_some() {
        return Err(ConfigError::field(
            at("known_hosts"),
            "is used with `ssh_key` only",
        ));
    }
    Ok(Credentials::Token {
        username: username.unwrap_or_else(|| DEFAULT_TOKEN_USERNAME.to_owned()),
        token,
    })
}

fn absolute(path: PathBuf, field: &str) -> Result<PathBuf, ConfigError> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(ConfigError::field(field, "must be an absolute path"))
    }
}

/// The per-connection config: which repositories and which runbook paths may run on the
/// connection. A key left out allows everything; an empty list allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Repository names; `None`: every repository.
    pub repositories: Option<Vec<String>>,
    /// Globs over runbook paths (`*` within a directory, `**` across, `?` one character);
    /// `None`: every path.
    pub paths: Option<Vec<Glob>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnectionConfig {
    #[serde(default)]
    repositories: Option<Vec<String>>,
    #[serde(default)]
    paths: Option<Vec<String>>,
}

impl ConnectionConfig {
    /// Parses and checks a per-connection config; `known` (the configured repositories'
    /// names, when known) refuses names of repositories that do not exist.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field, e.g. `repositories[0]` or `paths[1]`.
    pub fn parse(config: &PluginConfig, known: Option<&[String]>) -> Result<Self, ConfigError> {
        let raw: RawConnectionConfig = config.parse()?;
        if let Some(names) = &raw.repositories {
            for (i, name) in names.iter().enumerate() {
                if !valid_name(name) {
                    return Err(ConfigError::field(
                        format!("repositories[{i}]"),
                        "must match ^[a-z0-9][a-z0-9_-]{0,62}$",
                    ));
                }
                if let Some(known) = known
                    && !known.contains(name)
                {
                    return Err(ConfigError::field(
                        format!("repositories[{i}]"),
                        format!(
                            "no repository `{name}` in [plugins.runbooks] (configured: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        let paths = raw
            .paths
            .map(|globs| {
                globs
                    .iter()
                    .enumerate()
                    .map(|(i, g)| {
                        Glob::new(g).map_err(|e| ConfigError::field(format!("paths[{i}]"), e))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Self {
            repositories: raw.repositories,
            paths,
        })
    }

    /// Whether runbook `path` of repository `repository` may run on the connection.
    pub fn allows(&self, repository: &str, path: &str) -> bool {
        self.repositories
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == repository))
            && self
                .paths
                .as_ref()
                .is_none_or(|globs| globs.iter().any(|g| g.matches(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(value: serde_json::Value) -> Result<Settings, ConfigError> {
        Settings::parse(&PluginConfig::from_value(value).unwrap())
    }

    fn err(value: serde_json::Value) -> String {
        let e = settings(value).unwrap_err();
        format!("{}: {}", e.field_path().unwrap_or(""), e.message())
    }

    #[test]
    fn defaults_apply() {
        let s = settings(json!({"repositories": [{"name": "ops", "url": "file:///srv/ops.git"}]}))
            .unwrap();
        let r = &s.repositories[0];
        assert_eq!((r.branch.as_str(), r.path.as_str()), ("main", ""));
        assert_eq!(r.refresh, DEFAULT_REFRESH);
        assert_eq!(r.credentials, Credentials::None);
        assert!(settings(json!({})).unwrap().repositories.is_empty());
    }

    #[test]
    fn bad_settings_name_the_key() {
        let repo = |extra: serde_json::Value| {
            let mut base = json!({"name": "ops", "url": "https://git.example/ops.git"});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            json!({"repositories": [base]})
        };
        assert!(err(repo(json!({"name": "Ops"}))).starts_with("repositories[0].name:"));
        assert!(err(repo(json!({"url": "http://x/y"}))).starts_with("repositories[0].url:"));
        assert!(err(repo(json!({"url": "https://u:pw@x/y"}))).contains("must not hold a password"));
        assert!(err(repo(json!({"branch": "-x"}))).starts_with("repositories[0].branch:"));
        assert!(err(repo(json!({"path": "../etc"}))).starts_with("repositories[0].path:"));
        assert!(err(repo(json!({"refresh": "10ms"}))).starts_with("repositories[0].refresh:"));
        assert!(err(repo(json!({"refresh": "soon"}))).starts_with("repositories[0].refresh:"));
        assert!(err(repo(json!({"ssh_key": "/k"}))).starts_with("repositories[0].ssh_key:"));
        assert!(err(repo(json!({"token": "t", "token_file": "/t"}))).contains("not both"));
        assert!(err(repo(json!({"token_file": "rel"}))).contains("absolute"));
        assert!(err(repo(json!({"colour": "red"}))).contains("colour"));
        let two = json!({"repositories": [
            {"name": "ops", "url": "file:///a"}, {"name": "ops", "url": "file:///b"}]});
        assert!(err(two).starts_with("repositories[1].name:"));
        let ssh_token = json!({"repositories": [
            {"name": "ops", "url": "ssh://git@h/r.git", "token": "t"}]});
        assert!(err(ssh_token).starts_with("repositories[0].token:"));
    }

    #[test]
    fn tokens_never_print() {
        let s = settings(json!({"repositories": [
            {"name": "ops", "url": "https://git.example/ops.git", "token": "hunter2-secret"}]}))
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn connection_config_filters_repositories_and_paths() {
        let parse = |v: serde_json::Value| {
            ConnectionConfig::parse(
                &PluginConfig::from_value(v).unwrap(),
                Some(&["ops".to_owned(), "db".to_owned()]),
            )
        };
        let all = parse(json!({})).unwrap();
        assert!(all.allows("ops", "a/b.runbook.sh"));
        let some = parse(json!({"repositories": ["ops"], "paths": ["billing/**"]})).unwrap();
        assert!(some.allows("ops", "billing/refund.runbook.sql"));
        assert!(!some.allows("ops", "users/unlock.runbook.sql"));
        assert!(!some.allows("db", "billing/refund.runbook.sql"));
        let none = parse(json!({"repositories": []})).unwrap();
        assert!(!none.allows("ops", "x.runbook.sh"));
        let e = parse(json!({"repositories": ["nope"]})).unwrap_err();
        assert_eq!(e.field_path(), Some("repositories[0]"));
        let e = parse(json!({"paths": ["a/***"]})).unwrap_err();
        assert_eq!(e.field_path(), Some("paths[0]"));
        let e = parse(json!({"groups": []})).unwrap_err();
        assert!(e.to_string().contains("groups"), "{e}");
    }
}
