//! The runbooks of every configured repository, kept fresh in the background, and runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use hoop_core::ports::{SessionStarter, SessionUpdate, StartSession};
use hoop_core::{Cancellation, RunbookRef, SessionRequest};

use crate::error::Error;
use crate::git::Git;
use crate::runbook::{Runbook, is_runbook_path};
use crate::settings::{ConnectionConfig, Repository, Settings};

/// A runbook file at a commit: parsed, or why it does not parse.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The repository's name.
    pub repository: String,
    /// The file's path under the repository's runbook directory.
    pub path: String,
    /// The commit it was read at.
    pub commit: String,
    /// The runbook, or its error (a file that does not parse is listed and cannot run).
    pub runbook: Result<Arc<Runbook>, String>,
}

/// What a repository's last successful fetch found.
#[derive(Debug)]
struct Snapshot {
    commit: String,
    fetched_at: SystemTime,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
struct State {
    /// The last good fetch: runs use it.
    snapshot: Option<Arc<Snapshot>>,
    /// The last fetch's error, if it failed (cleared by a successful one).
    error: Option<String>,
}

#[derive(Debug)]
struct Repo {
    settings: Repository,
    git: Git,
    state: RwLock<State>,
    /// One fetch at a time per repository.
    fetching: tokio::sync::Mutex<()>,
}

/// A repository's state, for status lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryStatus {
    /// Its name.
    pub name: String,
    /// The commit runs use, if a fetch ever succeeded.
    pub commit: Option<String>,
    /// When that commit was fetched.
    pub fetched_at: Option<SystemTime>,
    /// The last fetch's error, if it failed.
    pub error: Option<String>,
}

/// A runbook run that started.
#[derive(Debug)]
pub struct Run {
    /// The commit the runbook was read at.
    pub commit: String,
    /// The session's updates: `Started`, maybe `Held`, `Output`s, then `Exit`. Dropping it
    /// ends the session.
    pub updates: tokio::sync::mpsc::Receiver<SessionUpdate>,
}

/// What a run asks for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The user it runs for.
    pub user: String,
    /// The connection it runs on.
    pub connection: String,
    /// The repository's name.
    pub repository: String,
    /// The runbook's path.
    pub path: String,
    /// Parameter values as text.
    pub params: BTreeMap<String, String>,
    /// A commit id (7 to 40 hex digits) of the repository's branch to run the runbook at,
    /// instead of the last fetched one.
    pub git_ref: Option<String>,
}

/// Every configured repository's runbooks.
#[derive(Debug)]
pub struct Runbooks {
    repos: Vec<Arc<Repo>>,
    starter: Option<Arc<dyn SessionStarter>>,
}

/// The plugin name sessions are started under.
const PLUGIN: &str = crate::NAME;

impl Runbooks {
    /// The repositories of `settings`, cloned under `dir` (one bare clone each), nothing
    /// fetched yet; runs start sessions through `starter`.
    pub fn new(settings: &Settings, dir: &Path, starter: Option<Arc<dyn SessionStarter>>) -> Self {
        let repos = settings
            .repositories
            .iter()
            .map(|r| {
                Arc::new(Repo {
                    settings: r.clone(),
                    git: Git::new(dir.join(format!("{}.git", r.name)), r.clone()),
                    state: RwLock::default(),
                    fetching: tokio::sync::Mutex::new(()),
                })
            })
            .collect();
        Self { repos, starter }
    }

    /// The configured repositories' names.
    pub fn repository_names(&self) -> Vec<String> {
        self.repos.iter().map(|r| r.settings.name.clone()).collect()
    }

    fn repo(&self, name: &str) -> Result<&Arc<Repo>, Error> {
        self.repos
            .iter()
            .find(|r| r.settings.name == name)
            .ok_or_else(|| Error::NotFound(format!("runbook repository `{name}` not found")))
    }

    /// Fetches repository `name` now and reads its runbooks. On failure the last good
    /// commit stays in use and the error is kept for [`status`](Self::status).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown repository; [`Error::Unavailable`] with git's error.
    pub async fn refresh(&self, name: &str) -> Result<String, Error> {
        let repo = Arc::clone(self.repo(name)?);
        refresh_repo(&repo).await.map_err(Error::Unavailable)
    }

    /// Fetches every repository now, then again at each one's `refresh` interval, until
    /// `cancel` fires. Spawn it.
    pub async fn keep_fresh(self: Arc<Self>, cancel: Cancellation) {
        let mut tasks = tokio::task::JoinSet::new();
        for repo in &self.repos {
            let repo = Arc::clone(repo);
            let cancel = cancel.clone();
            tasks.spawn(async move {
                loop {
                    let _ = refresh_repo(&repo).await;
                    tokio::select! {
                        () = tokio::time::sleep(repo.settings.refresh) => {}
                        () = cancel.cancelled() => return,
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Every repository's state.
    pub fn status(&self) -> Vec<RepositoryStatus> {
        self.repos
            .iter()
            .map(|r| {
                let state = r.state.read().unwrap_or_else(|e| e.into_inner());
                RepositoryStatus {
                    name: r.settings.name.clone(),
                    commit: state.snapshot.as_ref().map(|s| s.commit.clone()),
                    fetched_at: state.snapshot.as_ref().map(|s| s.fetched_at),
                    error: state.error.clone(),
                }
            })
            .collect()
    }

    /// A status line for the plugin listing: each repository's commit, and the error of a
    /// failed refresh.
    pub fn status_line(&self) -> String {
        if self.repos.is_empty() {
            return "no repositories configured ([[plugins.runbooks.repositories]])".to_owned();
        }
        self.status()
            .iter()
            .map(|s| {
                let serving = match &s.commit {
                    Some(c) => format!("at commit {}", short(c)),
                    None => "never fetched".to_owned(),
                };
                match &s.error {
                    Some(e) => format!("{}: {serving}; last refresh failed: {e}", s.name),
                    None => format!("{}: {serving}", s.name),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn snapshot(&self, repo: &Repo) -> Result<Arc<Snapshot>, Error> {
        let state = repo.state.read().unwrap_or_else(|e| e.into_inner());
        state.snapshot.clone().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "runbook repository `{}` has not been fetched yet{}: try again once it is \
                 (see ListPlugins for its status)",
                repo.settings.name,
                state
                    .error
                    .as_ref()
                    .map(|e| format!(" (last attempt: {e})"))
                    .unwrap_or_default()
            ))
        })
    }

    /// The runbooks of the last fetch that `allowed` lets through, of one repository or of
    /// all, in repository then path order. Repositories never fetched are left out.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown `repository`.
    pub fn list(
        &self,
        repository: Option<&str>,
        allowed: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Vec<Entry>, Error> {
        let repos: Vec<&Arc<Repo>> = match repository {
            Some(name) => vec![self.repo(name)?],
            None => self.repos.iter().collect(),
        };
        let mut out = Vec::new();
        for repo in repos {
            let state = repo.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(snapshot) = &state.snapshot {
                out.extend(
                    snapshot
                        .entries
                        .values()
                        .filter(|e| allowed(&e.repository, &e.path))
                        .cloned(),
                );
            }
        }
        Ok(out)
    }

    /// Runbook `path` of `repository`, at the last fetched commit or at `git_ref` (which must
    /// be that commit or one of its ancestors).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown repository or file; [`Error::Invalid`] naming `ref`
    /// for a bad commit id; [`Error::FailedPrecondition`] when the repository was never
    /// fetched.
    pub async fn get(
        &self,
        repository: &str,
        path: &str,
        git_ref: Option<&str>,
    ) -> Result<Entry, Error> {
        let repo = self.repo(repository)?;
        let snapshot = self.snapshot(repo)?;
        let not_found = || {
            Error::NotFound(format!(
                "runbook `{path}` not found in repository `{repository}`"
            ))
        };
        let Some(git_ref) = git_ref.filter(|r| !r.is_empty()) else {
            return snapshot.entries.get(path).cloned().ok_or_else(not_found);
        };
        if !(7..=40).contains(&git_ref.len()) || !git_ref.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "ref",
                "must be a commit id: 7 to 40 hexadecimal digits",
            ));
        }
        let commit = repo
            .git
            .resolve(git_ref)
            .await
            .map_err(Error::Unavailable)?
            .ok_or_else(|| {
                Error::invalid(
                    "ref",
                    format!("no commit `{git_ref}` in repository `{repository}`"),
                )
            })?;
        if commit == snapshot.commit {
            return snapshot.entries.get(path).cloned().ok_or_else(not_found);
        }
        if !repo
            .git
            .is_ancestor(&commit, &snapshot.commit)
            .await
            .map_err(Error::Unavailable)?
        {
            return Err(Error::invalid(
                "ref",
                format!(
                    "commit `{git_ref}` is not on branch `{}` of repository `{repository}` \
                     (as last fetched, at {})",
                    repo.settings.branch,
                    short(&snapshot.commit)
                ),
            ));
        }
        if !is_runbook_path(path)
            || path
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(not_found());
        }
        let data = repo
            .git
            .runbook_file(&commit, path)
            .await
            .map_err(Error::Unavailable)?
            .ok_or_else(not_found)?;
        Ok(entry(repository, path, &commit, Ok(data)))
    }

    /// Checks and renders runbook `path` of `repository` for `connection` (whose runbooks
    /// config is `config`), then starts it as the session's input through the host's
    /// session starter: the connection's whole plugin chain applies, with access mode
    /// `runbooks`, and the session carries the runbook's repository, path and commit.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a runbook the connection does not offer (or the user may not
    /// see); [`Error::InvalidParams`] naming each bad parameter; [`Error::FailedPrecondition`]
    /// for a runbook that does not parse or render; what the session starter refused.
    pub async fn run(&self, config: &ConnectionConfig, request: RunRequest) -> Result<Run, Error> {
        let (entry, script) = self.render(config, &request).await?;
        let starter = self.starter.as_ref().ok_or_else(|| {
            Error::Unavailable("the host offers no way to start sessions".to_owned())
        })?;
        let session = StartSession::exec(
            request.user,
            request.connection,
            SessionRequest::new()
                .with_input(script)
                .with_runbook(RunbookRef::new(
                    &entry.repository,
                    &entry.path,
                    &entry.commit,
                )),
        );
        let updates = starter.start_session(PLUGIN, session).await?;
        Ok(Run {
            commit: entry.commit,
            updates,
        })
    }

    /// Finds, checks and renders a run's runbook: the entry and the script.
    ///
    /// # Errors
    /// As [`run`](Self::run), before anything starts.
    pub async fn render(
        &self,
        config: &ConnectionConfig,
        request: &RunRequest,
    ) -> Result<(Entry, String), Error> {
        if request.repository.is_empty() {
            return Err(Error::invalid("repository", "required"));
        }
        if request.path.is_empty() {
            return Err(Error::invalid("path", "required"));
        }
        if !config.allows(&request.repository, &request.path) {
            return Err(Error::NotFound(format!(
                "runbook `{}` of repository `{}` is not offered on connection `{}`",
                request.path, request.repository, request.connection
            )));
        }
        let entry = self
            .get(
                &request.repository,
                &request.path,
                request.git_ref.as_deref(),
            )
            .await?;
        let runbook = entry.runbook.as_ref().map_err(|e| {
            Error::FailedPrecondition(format!(
                "runbook `{}` does not parse, so it cannot run: {e}",
                entry.path
            ))
        })?;
        let script = runbook.render(&entry.path, &request.params)?;
        Ok((entry, script))
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn entry(repository: &str, path: &str, commit: &str, data: Result<Vec<u8>, String>) -> Entry {
    let runbook = data
        .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned()))
        .and_then(|text| Runbook::parse(path, &text))
        .map(Arc::new);
    Entry {
        repository: repository.to_owned(),
        path: path.to_owned(),
        commit: commit.to_owned(),
        runbook,
    }
}

/// Fetches `repo` and reads its runbooks; on failure keeps the last good snapshot and
/// records the error.
async fn refresh_repo(repo: &Repo) -> Result<String, String> {
    let _one = repo.fetching.lock().await;
    let name = &repo.settings.name;
    let result = async {
        let commit = repo.git.fetch().await?;
        let unchanged = {
            let state = repo.state.read().unwrap_or_else(|e| e.into_inner());
            state.snapshot.as_ref().is_some_and(|s| s.commit == commit)
        };
        if unchanged {
            return Ok((commit, None));
        }
        let files = repo.git.runbook_files(&commit).await?;
        let entries = files
            .into_iter()
            .map(|(path, data)| {
                let e = entry(name, &path, &commit, data);
                (path, e)
            })
            .collect();
        Ok::<_, String>((commit, Some(entries)))
    }
    .await;
    let mut state = repo.state.write().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok((commit, entries)) => {
            match entries {
                Some(entries) => {
                    tracing::info!(repository = %name, commit = %commit, "runbook repository fetched");
                    state.snapshot = Some(Arc::new(Snapshot {
                        commit: commit.clone(),
                        fetched_at: SystemTime::now(),
                        entries,
                    }));
                }
                None => {
                    if let Some(old) = &state.snapshot {
                        state.snapshot = Some(Arc::new(Snapshot {
                            commit: old.commit.clone(),
                            fetched_at: SystemTime::now(),
                            entries: old.entries.clone(),
                        }));
                    }
                }
            }
            state.error = None;
            Ok(commit)
        }
        Err(error) => {
            tracing::warn!(repository = %name, error = %error, "runbook repository refresh failed; the last good commit stays in use");
            state.error = Some(error.clone());
            Err(error)
        }
    }
}
