//! `hoop.v1.ConnectionService`.

use hoop_proto::v1 as pb;
use hoop_proto::v1::connection_service_server::ConnectionService;
use tonic::{Request, Response, Status};

use super::convert::{access_modes, connection_from_proto, connection_to_proto};
use super::{Page, SharedApp};
use crate::auth::caller;
use crate::connections;
use crate::error::Error;
use crate::plugins;

/// Fields UpdateConnection may change.
const UPDATABLE: &[&str] = &[
    "type",
    "command",
    "env",
    "reviewers",
    "redact_types",
    "access_modes",
    "access_modes.exec",
    "access_modes.connect",
    "access_modes.runbooks",
    "tags",
    "session_timeout",
];
const OUTPUT_ONLY: &[&str] = &["plugins", "create_time", "update_time"];

#[derive(Debug)]
pub(crate) struct ConnectionApi {
    app: SharedApp,
}

impl ConnectionApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }

    async fn render(&self, conn: hoop_store::Connection) -> Result<pb::Connection, Error> {
        let attachments = self.app.store.list_attachments(&conn.name).await?;
        Ok(connection_to_proto(
            conn,
            plugins::views(&self.app.registry, &attachments),
        ))
    }
}

fn required_name(name: &str, field: &str) -> Result<(), Error> {
    if name.is_empty() {
        Err(Error::invalid(field, "required"))
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl ConnectionService for ConnectionApi {
    #[tracing::instrument(skip_all, fields(connection))]
    async fn create_connection(
        &self,
        req: Request<pb::CreateConnectionRequest>,
    ) -> Result<Response<pb::Connection>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("creating a connection")?;
        let proto = req
            .into_inner()
            .connection
            .ok_or_else(|| Error::invalid("connection", "required"))?;
        let conn = connection_from_proto(proto);
        tracing::Span::current().record("connection", conn.name.as_str());
        let created = connections::create(&self.app.store, &self.app.registry, &conn).await?;
        tracing::info!(user = %caller.user.name, connection = %created.name, "connection created");
        Ok(Response::new(self.render(created).await?))
    }

    async fn get_connection(
        &self,
        req: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::Connection>, Status> {
        caller(&req)?;
        let name = req.into_inner().name;
        required_name(&name, "name")?;
        let conn = self
            .app
            .store
            .get_connection(&name, false)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(self.render(conn).await?))
    }

    async fn list_connections(
        &self,
        req: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        caller(&req)?;
        let req = req.into_inner();
        let page = Page::parse(req.page_size, &req.page_token)?;
        let rows = self
            .app
            .store
            .list_connections(page.after.as_deref(), page.size + 1)
            .await
            .map_err(Error::from)?;
        let (rows, next_page_token) = page.finish(rows, |c| c.name.clone());
        let names: Vec<String> = rows.iter().map(|c| c.name.clone()).collect();
        let mut attachments = self
            .app
            .store
            .attachments_of(&names)
            .await
            .map_err(Error::from)?;
        let connections = rows
            .into_iter()
            .map(|conn| {
                let mine = attachments.remove(&conn.name).unwrap_or_default();
                connection_to_proto(conn, plugins::views(&self.app.registry, &mine))
            })
            .collect();
        Ok(Response::new(pb::ListConnectionsResponse {
            connections,
            next_page_token,
        }))
    }

    async fn update_connection(
        &self,
        req: Request<pb::UpdateConnectionRequest>,
    ) -> Result<Response<pb::Connection>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("updating a connection")?;
        let req = req.into_inner();
        let proto = req
            .connection
            .ok_or_else(|| Error::invalid("connection", "required"))?;
        required_name(&proto.name, "connection.name")?;
        let mut paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
        for (i, path) in paths.iter().enumerate() {
            if path == "name" {
                return Err(
                    Error::invalid(format!("update_mask.paths[{i}]"), "name is immutable").into(),
                );
            }
            if OUTPUT_ONLY.contains(&path.as_str()) {
                return Err(Error::invalid(
                    format!("update_mask.paths[{i}]"),
                    format!("`{path}` is output only"),
                )
                .into());
            }
            if !UPDATABLE.contains(&path.as_str()) {
                return Err(Error::invalid(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "unknown field `{path}`; updatable: {}",
                        UPDATABLE.join(", ")
                    ),
                )
                .into());
            }
        }
        if paths.is_empty() {
            paths = [
                "type",
                "command",
                "env",
                "reviewers",
                "redact_types",
                "access_modes",
                "tags",
                "session_timeout",
            ]
            .map(String::from)
            .to_vec();
        }
        let has = |p: &str| paths.iter().any(|x| x == p);
        let replace_env = has("env");
        let mut conn = self
            .app
            .store
            .get_connection(&proto.name, replace_env)
            .await
            .map_err(Error::from)?;
        if has("type") {
            conn.kind = proto.r#type;
        }
        if has("command") {
            conn.command = proto.command;
        }
        if replace_env {
            // An empty value keeps the stored one, so a read-modify-write (reads return
            // empty values) never wipes secrets. Keys left out are removed.
            let mut env = std::collections::BTreeMap::new();
            for (key, value) in proto.env {
                let value = if value.is_empty() {
                    conn.env.get(&key).cloned().unwrap_or_default()
                } else {
                    value
                };
                env.insert(key, value);
            }
            conn.env = env;
        }
        if has("reviewers") {
            conn.reviewers = proto.reviewers;
        }
        if has("redact_types") {
            conn.redact_types = proto.redact_types;
        }
        if has("access_modes") {
            conn.access = access_modes(proto.access_modes.as_ref());
        }
        let modes = proto.access_modes.unwrap_or_default();
        if has("access_modes.exec") {
            conn.access.exec = modes.exec.unwrap_or(true);
        }
        if has("access_modes.connect") {
            conn.access.connect = modes.connect.unwrap_or(true);
        }
        if has("access_modes.runbooks") {
            conn.access.runbooks = modes.runbooks.unwrap_or(true);
        }
        if has("tags") {
            conn.tags = proto.tags.into_iter().collect();
        }
        if has("session_timeout") {
            conn.session_timeout = super::convert::session_timeout(proto.session_timeout);
        }
        let updated = connections::update(
            &self.app.store,
            &self.app.registry,
            &conn,
            replace_env,
            "connection",
        )
        .await?;
        tracing::info!(user = %caller.user.name, connection = %updated.name, fields = ?paths, "connection updated");
        Ok(Response::new(self.render(updated).await?))
    }

    async fn delete_connection(
        &self,
        req: Request<pb::DeleteConnectionRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("deleting a connection")?;
        let name = req.into_inner().name;
        required_name(&name, "name")?;
        self.app
            .store
            .delete_connection(&name)
            .await
            .map_err(Error::from)?;
        tracing::info!(user = %caller.user.name, connection = %name, "connection deleted");
        Ok(Response::new(()))
    }
}
