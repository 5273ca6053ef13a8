//! `hoop.v1.RunbookService`: a thin adapter over the runbooks plugin's Rust API
//! ([`hoop_plugin_runbooks::Runbooks`]). The gateway decides who may see what (connections
//! hidden by access_control are NOT_FOUND; each connection's runbooks config filters what it
//! offers); the plugin finds, checks, renders and starts runs through the session starter
//! port, so a run is an `exec` session of the caller with access mode `runbooks`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hoop_core::PluginConfig;
use hoop_core::ports::SessionUpdate;
use hoop_plugin_runbooks::{ConnectionConfig, Entry, RunRequest, Runbooks, RunbooksHost};
use hoop_proto::v1 as pb;
use hoop_proto::v1::runbook_service_server::RunbookService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::SharedApp;
use super::convert::timestamp;
use crate::access;
use crate::auth::{Caller, caller};
use crate::error::Error;
use crate::grpc::sessions::RUNBOOKS_PLUGIN;

#[derive(Debug)]
pub(crate) struct RunbookApi {
    app: SharedApp,
}

impl RunbookApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }

    fn runbooks(&self) -> Result<Arc<Runbooks>, Error> {
        self.app
            .resources
            .get::<RunbooksHost>()
            .and_then(RunbooksHost::runbooks)
            .ok_or_else(|| {
                Error::FailedPrecondition(
                    "the runbooks plugin is not running on this gateway".to_owned(),
                )
            })
    }

    /// What connection `name` offers: NOT_FOUND if the caller may not see it,
    /// FAILED_PRECONDITION if the runbooks plugin is not attached to it.
    async fn offered_on(&self, caller: &Caller, name: &str) -> Result<ConnectionConfig, Error> {
        let attachments =
            access::visible_attachments(&self.app.store, &self.app.registry, caller, name).await?;
        let attachment = attachments
            .into_iter()
            .find(|a| a.plugin == RUNBOOKS_PLUGIN)
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "plugin `{RUNBOOKS_PLUGIN}` is not attached to connection `{name}`: no \
                     runbooks run there (an admin can attach it: hoop plugins attach {name} \
                     {RUNBOOKS_PLUGIN})"
                ))
            })?;
        connection_config(&attachment.config).map_err(|e| {
            Error::FailedPrecondition(format!(
                "the runbooks config of connection `{name}` is invalid: {e}"
            ))
        })
    }

    /// What the connections the caller can see offer, together; `None` for admins (who see
    /// every runbook).
    async fn offered_anywhere(
        &self,
        caller: &Caller,
    ) -> Result<Option<Vec<ConnectionConfig>>, Error> {
        if caller.is_admin() {
            return Ok(None);
        }
        // Only the connections runbooks is attached to can offer any: read those, not every
        // connection (a caller must not make each call cost the whole table).
        let attached = self
            .app
            .store
            .attachments_where_attached(RUNBOOKS_PLUGIN)
            .await?;
        let mut offered = Vec::new();
        for mine in attached.values() {
            if !access::allows(&self.app.registry, caller, mine) {
                continue;
            }
            if let Some(a) = mine.iter().find(|a| a.plugin == RUNBOOKS_PLUGIN)
                && let Ok(config) = connection_config(&a.config)
            {
                offered.push(config);
            }
        }
        Ok(Some(offered))
    }
}

fn connection_config(
    config: &serde_json::Value,
) -> Result<ConnectionConfig, hoop_core::ConfigError> {
    ConnectionConfig::parse(&PluginConfig::from_value(config.clone())?, None)
}

fn runbooks_error(err: hoop_plugin_runbooks::Error) -> Error {
    use hoop_plugin_runbooks::Error as E;
    match err {
        E::NotFound(m) => Error::NotFound(m),
        E::Invalid { field, message } => Error::invalid(field, message),
        E::InvalidParams(params) => {
            let mut params = params.into_iter();
            match params.next() {
                Some((field, first)) => {
                    let rest: Vec<String> = params.map(|(f, m)| format!("{f}: {m}")).collect();
                    let message = if rest.is_empty() {
                        first
                    } else {
                        format!("{first}; {}", rest.join("; "))
                    };
                    Error::invalid(field, message)
                }
                None => Error::invalid("params", "invalid"),
            }
        }
        E::FailedPrecondition(m) | E::Refused(m) => Error::FailedPrecondition(m),
        E::Unavailable(m) => Error::Unavailable(m),
        other => Error::Unavailable(other.to_string()),
    }
}

fn escaping(target: hoop_plugin_runbooks::render::Target) -> &'static str {
    use hoop_plugin_runbooks::render::Target;
    match target {
        Target::Sql => "sql",
        Target::Shell => "shell",
        Target::Other => "explicit",
    }
}

fn runbook_to_proto(entry: &Entry, with_template: bool) -> pb::Runbook {
    let mut out = pb::Runbook {
        repository: entry.repository.clone(),
        path: entry.path.clone(),
        commit: entry.commit.clone(),
        escaping: escaping(hoop_plugin_runbooks::render::Target::of(&entry.path)).to_owned(),
        ..Default::default()
    };
    match &entry.runbook {
        Ok(runbook) => {
            out.description = runbook.description.clone();
            out.params = runbook
                .params
                .iter()
                .map(|p| pb::RunbookParam {
                    name: p.name.clone(),
                    r#type: p.kind.as_str().to_owned(),
                    required: p.required,
                    default: p.default.clone().unwrap_or_default(),
                    has_default: p.default.is_some(),
                    pattern: p
                        .pattern
                        .as_ref()
                        .map(|r| {
                            let s = r.as_str();
                            s.strip_prefix("^(?:")
                                .and_then(|s| s.strip_suffix(")$"))
                                .unwrap_or(s)
                                .to_owned()
                        })
                        .unwrap_or_default(),
                    options: p.options.clone(),
                    min_length: p.min_length.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                    max_length: p.max_length.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                    description: p.description.clone(),
                })
                .collect();
            if with_template {
                out.template = runbook.template.clone();
            }
        }
        Err(error) => out.error = error.clone(),
    }
    out
}

fn event(event: pb::session_event::Event) -> Result<pb::SessionEvent, Status> {
    Ok(pb::SessionEvent { event: Some(event) })
}

/// A session update as the `Exec` stream shows it.
fn update_to_proto(update: SessionUpdate) -> Option<pb::session_event::Event> {
    use pb::session_event::Event as E;
    Some(match update {
        SessionUpdate::Started { session_id } => E::Started(pb::SessionStarted { session_id }),
        SessionUpdate::Held {
            request_id,
            groups,
            reason,
        } => E::Held(pb::SessionHeld {
            review_id: request_id.unwrap_or_default(),
            groups,
            reason,
        }),
        SessionUpdate::Output { stream, data } => E::Output(pb::SessionOutput {
            stream: if stream == hoop_core::Stream::Stderr {
                pb::OutputStream::Stderr as i32
            } else {
                pb::OutputStream::Stdout as i32
            },
            data,
        }),
        SessionUpdate::Exit { exit_code, reason } => E::Exit(pb::SessionExit { exit_code, reason }),
        _ => return None,
    })
}

#[tonic::async_trait]
impl RunbookService for RunbookApi {
    async fn list_runbooks(
        &self,
        req: Request<pb::ListRunbooksRequest>,
    ) -> Result<Response<pb::ListRunbooksResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let runbooks = self.runbooks()?;
        let repository = (!req.repository.is_empty()).then_some(req.repository.as_str());
        // What the caller may run: `None` for an admin listing everything.
        let offered: Option<Vec<ConnectionConfig>> = if req.connection.is_empty() {
            self.offered_anywhere(&caller).await?
        } else {
            Some(vec![self.offered_on(&caller, &req.connection).await?])
        };
        let entries = match &offered {
            None => runbooks.list(repository, &|_, _| true),
            Some(offered) => {
                runbooks.list(repository, &|r, p| offered.iter().any(|c| c.allows(r, p)))
            }
        }
        .map_err(|e| match e {
            hoop_plugin_runbooks::Error::NotFound(m) => Error::invalid("repository", m),
            other => runbooks_error(other),
        })?;
        // Admins see every repository and git's own words when a refresh fails (they may name
        // hosts, paths and accounts); others see the repositories offered to them, and only
        // that a refresh failed.
        let admin = caller.is_admin();
        let repositories = runbooks
            .status()
            .into_iter()
            .filter(|s| repository.is_none_or(|r| r == s.name))
            .filter(|s| {
                offered.as_ref().is_none_or(|offered| {
                    offered.iter().any(|c| {
                        c.repositories
                            .as_ref()
                            .is_none_or(|names| names.contains(&s.name))
                    })
                })
            })
            .map(|s| pb::RunbookRepository {
                name: s.name,
                commit: s.commit.unwrap_or_default(),
                fetch_time: s
                    .fetched_at
                    .map(|t| timestamp(chrono::DateTime::<chrono::Utc>::from(t))),
                error: match s.error {
                    Some(error) if admin => error,
                    Some(_) => "the last refresh failed (an admin can see why); the last good \
                                commit stays in use"
                        .to_owned(),
                    None => String::new(),
                },
            })
            .collect();
        Ok(Response::new(pb::ListRunbooksResponse {
            runbooks: entries.iter().map(|e| runbook_to_proto(e, false)).collect(),
            repositories,
        }))
    }

    async fn get_runbook(
        &self,
        req: Request<pb::GetRunbookRequest>,
    ) -> Result<Response<pb::Runbook>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        if req.repository.is_empty() {
            return Err(Error::invalid("repository", "required").into());
        }
        if req.path.is_empty() {
            return Err(Error::invalid("path", "required").into());
        }
        let runbooks = self.runbooks()?;
        let not_found = || {
            Error::NotFound(format!(
                "runbook `{}` not found in repository `{}`",
                req.path, req.repository
            ))
        };
        // One the caller may run nowhere does not exist for them.
        if let Some(offered) = self.offered_anywhere(&caller).await?
            && !offered.iter().any(|c| c.allows(&req.repository, &req.path))
        {
            return Err(not_found().into());
        }
        let entry = runbooks
            .get(&req.repository, &req.path, None)
            .await
            .map_err(runbooks_error)?;
        Ok(Response::new(runbook_to_proto(&entry, true)))
    }

    type RunRunbookStream = ReceiverStream<Result<pb::SessionEvent, Status>>;

    async fn run_runbook(
        &self,
        req: Request<pb::RunRunbookRequest>,
    ) -> Result<Response<Self::RunRunbookStream>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        if req.connection.is_empty() {
            return Err(Error::invalid("connection", "required").into());
        }
        let runbooks = self.runbooks()?;
        let offered = self.offered_on(&caller, &req.connection).await?;
        let params: BTreeMap<String, String> = req.params.into_iter().collect();
        let run = runbooks
            .run(
                &offered,
                RunRequest {
                    user: caller.user.name.clone(),
                    connection: req.connection.clone(),
                    repository: req.repository,
                    path: req.path,
                    params,
                    git_ref: (!req.r#ref.is_empty()).then_some(req.r#ref),
                },
            )
            .await
            .map_err(runbooks_error)?;
        let (tx, rx) = mpsc::channel(16);
        let mut updates = run.updates;
        tokio::spawn(async move {
            loop {
                // A client that leaves ends the session (dropping `updates`), also while
                // nothing comes (a run held by review).
                let update = tokio::select! {
                    update = updates.recv() => update,
                    () = tx.closed() => break,
                };
                let Some(update) = update else { break };
                let Some(e) = update_to_proto(update) else {
                    continue;
                };
                if tx.send(event(e)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
