//! `hoop.v1.SessionService`.

use chrono::{DateTime, Utc};
use hoop_core::{ConnectionInfo, PluginConfig, SessionInfo, UserInfo, Verb};
use hoop_proto::v1 as pb;
use hoop_proto::v1::session_service_server::SessionService;
use hoop_store::{SessionFilter, SessionRecord, StoreError};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::{Page, SharedApp};
use crate::auth::{Caller, caller};
use crate::error::Error;
use crate::runtime::{self, ExecJob, KillError};

/// Groups that may read every session.
const READ_ALL_GROUPS: &[&str] = &["admin", "auditor"];
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;
/// Events buffered towards a client before the child is slowed down.
const EVENT_BUFFER: usize = 16;

#[derive(Debug)]
pub(crate) struct SessionApi {
    app: SharedApp,
}

impl SessionApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }

    /// The session `id` if the caller may see it: their own, or any for `admin` and
    /// `auditor`. Anyone else's is "not found", as if it did not exist.
    async fn visible_session(&self, caller: &Caller, id: &str) -> Result<SessionRecord, Error> {
        if id.is_empty() {
            return Err(Error::invalid("id", "required"));
        }
        let not_found = || Error::NotFound(format!("session `{id}` not found"));
        let session = match self.app.store.get_session(id).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if session.user != caller.user.name && !reads_all(caller) {
            return Err(not_found());
        }
        Ok(session)
    }
}

fn reads_all(caller: &Caller) -> bool {
    caller
        .user
        .groups
        .iter()
        .any(|g| READ_ALL_GROUPS.contains(&g.as_str()))
}

fn session_to_proto(s: SessionRecord) -> pb::Session {
    pb::Session {
        id: s.id,
        connection: s.connection,
        connection_type: s.connection_type,
        user: s.user,
        verb: s.verb,
        status: s.status,
        exit_code: s.exit_code,
        reason: s.reason,
        start_time: Some(timestamp(s.started_at)),
        end_time: s.ended_at.map(timestamp),
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        metrics: s.metrics.into_iter().collect(),
    }
}

fn time(t: Option<prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, Error> {
    t.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .and_then(|n| DateTime::from_timestamp(t.seconds, n))
            .ok_or_else(|| Error::invalid(field, "not a valid timestamp"))
    })
    .transpose()
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    type ExecStream = ReceiverStream<Result<pb::SessionEvent, Status>>;

    async fn exec(
        &self,
        req: Request<pb::ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        if req.connection.is_empty() {
            return Err(Error::invalid("connection", "required").into());
        }
        if req.args.len() > MAX_ARGS {
            return Err(Error::invalid("args", format!("at most {MAX_ARGS} arguments")).into());
        }
        for (i, arg) in req.args.iter().enumerate() {
            if arg.len() > MAX_ARG_BYTES || arg.contains('\0') {
                return Err(Error::invalid(
                    format!("args[{i}]"),
                    format!("at most {MAX_ARG_BYTES} bytes, no NUL"),
                )
                .into());
            }
        }
        let connection = self
            .app
            .store
            .get_connection(&req.connection, true)
            .await
            .map_err(Error::from)?;
        if !connection.access.exec {
            return Err(Error::FailedPrecondition(format!(
                "exec is disabled on connection `{}`: an admin can enable access_modes.exec",
                connection.name
            ))
            .into());
        }
        let attachments = self
            .app
            .store
            .list_attachments(&connection.name)
            .await
            .map_err(Error::from)?;
        let configs: Vec<(String, PluginConfig)> = attachments
            .into_iter()
            .map(|a| PluginConfig::from_value(a.config).map(|c| (a.plugin, c)))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                Error::FailedPrecondition(format!("a stored plugin config is invalid: {e}"))
            })?;
        let chain = self
            .app
            .registry
            .build_chain(configs.iter().map(|(name, config)| (name.as_str(), config)))
            .map_err(|e| {
                Error::FailedPrecondition(format!("cannot build the plugin chain: {e}"))
            })?;

        let id = uuid::Uuid::new_v4().to_string();
        let user = UserInfo::new(caller.user.name.clone())
            .with_email(caller.user.email.clone())
            .with_groups(caller.user.groups.clone());
        let info = SessionInfo::new(
            id.clone(),
            user,
            ConnectionInfo::new(connection.name.clone(), connection.kind.clone())
                .with_tags(connection.tags.clone()),
            Verb::Exec,
        );
        self.app
            .store
            .create_session(&SessionRecord {
                id: id.clone(),
                connection: connection.name.clone(),
                connection_type: connection.kind.clone(),
                user: caller.user.name.clone(),
                verb: "exec".to_owned(),
                status: "open".to_owned(),
                exit_code: None,
                reason: String::new(),
                started_at: Utc::now(),
                ended_at: None,
                bytes_in: 0,
                bytes_out: 0,
                metrics: Default::default(),
            })
            .await
            .map_err(Error::from)?;
        tracing::info!(session = %id, user = %caller.user.name, connection = %connection.name, "exec session started");

        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(runtime::run_exec(ExecJob {
            store: self.app.store.clone(),
            chain,
            info,
            connection,
            input: req.input,
            args: req.args,
            events: tx,
            shutdown: self.app.shutdown.clone(),
            registration: self.app.running.register(&id),
            running: Arc::clone(&self.app.running),
        }));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let page = Page::parse(req.page_size, &req.page_token)?;
        // The cursor is the last session's start time and id (newest first).
        let after = match &page.after {
            None => None,
            Some(key) => {
                let (t, id) = key.split_once('|').ok_or_else(Page::bad_token)?;
                let t = DateTime::parse_from_rfc3339(t).map_err(|_| Page::bad_token())?;
                Some((t.with_timezone(&Utc), id.to_owned()))
            }
        };
        let mut filter = SessionFilter {
            connection: (!req.connection.is_empty()).then_some(req.connection),
            user: (!req.user.is_empty()).then_some(req.user),
            status: (!req.status.is_empty()).then_some(req.status),
            start_after: time(req.start_after, "start_after")?,
            start_before: time(req.start_before, "start_before")?,
        };
        if !reads_all(&caller) {
            match &filter.user {
                Some(u) if u != &caller.user.name => {
                    return Ok(Response::new(pb::ListSessionsResponse::default()));
                }
                _ => filter.user = Some(caller.user.name.clone()),
            }
        }
        let rows = self
            .app
            .store
            .list_sessions(&filter, after, page.size + 1)
            .await
            .map_err(Error::from)?;
        let (rows, next_page_token) =
            page.finish(rows, |s| format!("{}|{}", s.started_at.to_rfc3339(), s.id));
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: rows.into_iter().map(session_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_session(
        &self,
        req: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        if id.is_empty() {
            return Err(Error::invalid("id", "required").into());
        }
        let not_found = || Error::NotFound(format!("session `{id}` not found"));
        let session = match self.app.store.get_session(&id).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => return Err(not_found().into()),
            Err(e) => return Err(Error::from(e).into()),
        };
        // Someone else's session is "not found", as if it did not exist.
        if session.user != caller.user.name && !reads_all(&caller) {
            return Err(not_found().into());
        }
        Ok(Response::new(session_to_proto(session)))
    }

    async fn kill_session(
        &self,
        req: Request<pb::KillSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let session = self.visible_session(&caller, &id).await?;
        if session.user != caller.user.name {
            caller.require_admin("killing another user's session")?;
        }
        if session.status != "open" {
            return Err(Error::FailedPrecondition(format!(
                "session `{id}` has already ended (status {})",
                session.status
            ))
            .into());
        }
        match self.app.running.kill(&id, &caller.user.name).await {
            Ok(()) => {}
            Err(KillError::NotRunning) => {
                return Err(Error::FailedPrecondition(format!(
                    "session `{id}` is not running on this gateway"
                ))
                .into());
            }
        }
        tracing::info!(session = %id, by = %caller.user.name, "session killed");
        let settled = self.app.store.get_session(&id).await.map_err(Error::from)?;
        Ok(Response::new(session_to_proto(settled)))
    }
}
