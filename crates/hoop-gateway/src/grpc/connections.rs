//! `hoop.v1.ConnectionService`.
//!
//! A connection hidden from the caller by its `access_control` plugin (see
//! [`crate::access`]) is NOT_FOUND to GetConnection and left out of ListConnections. The
//! calls that change connections are for admins, who see every connection.

use hoop_proto::v1 as pb;
use hoop_proto::v1::connection_service_server::ConnectionService;
use tonic::{Request, Response, Status};

use super::convert::{access_modes, connection_from_proto, connection_to_proto};
use super::{Page, SharedApp};
use crate::access;
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
    "min_approvals",
    "review_ttl",
    "access_max_duration",
    "allow_args",
    "agent",
    "mask_columns",
];
const OUTPUT_ONLY: &[&str] = &["plugins", "create_time", "update_time"];
/// Rows read per query when a listing leaves out connections hidden from the caller.
const SCAN_BATCH: u64 = 200;

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
        let created = connections::create(
            &self.app.store.acting_as(&caller.user.name),
            &self.app.registry,
            &self.app.resources,
            &conn,
        )
        .await?;
        tracing::info!(user = %caller.user.name, connection = %created.name, "connection created");
        Ok(Response::new(self.render(created).await?))
    }

    async fn get_connection(
        &self,
        req: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::Connection>, Status> {
        let caller = caller(&req)?;
        let name = req.into_inner().name;
        required_name(&name, "name")?;
        // Hidden by access_control: NOT_FOUND, as if it did not exist.
        let attachments =
            access::visible_attachments(&self.app.store, &self.app.registry, &caller, &name)
                .await?;
        let conn = self
            .app
            .store
            .get_connection(&name, false)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(connection_to_proto(
            conn,
            plugins::views(&self.app.registry, &attachments),
        )))
    }

    async fn list_connections(
        &self,
        req: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let page = Page::parse(req.page_size, &req.page_token)?;
        // Connections hidden from the caller by access_control are left out after the
        // query: batches are read until the page is full (admins see all, one query). No
        // cap on the rows read: a token stopping after a hidden connection would name it.
        let want = page.size + 1;
        let want_len = usize::try_from(want).unwrap_or(usize::MAX);
        let batch = if caller.is_admin() {
            want
        } else {
            want.max(SCAN_BATCH)
        };
        let mut after = page.after.clone();
        let mut found = Vec::new();
        loop {
            let rows = self
                .app
                .store
                .list_connections(after.as_deref(), batch)
                .await
                .map_err(Error::from)?;
            let exhausted = u64::try_from(rows.len()).unwrap_or(u64::MAX) < batch;
            let names: Vec<String> = rows.iter().map(|c| c.name.clone()).collect();
            let mut attachments = self
                .app
                .store
                .attachments_of(&names)
                .await
                .map_err(Error::from)?;
            for conn in rows {
                after = Some(conn.name.clone());
                let mine = attachments.remove(&conn.name).unwrap_or_default();
                if access::allows(&self.app.registry, &caller, &mine) {
                    found.push((conn, mine));
                    if found.len() >= want_len {
                        break;
                    }
                }
            }
            if exhausted || found.len() >= want_len {
                break;
            }
        }
        let (rows, next_page_token) = page.finish(found, |(c, _)| c.name.clone());
        let connections = rows
            .into_iter()
            .map(|(conn, mine)| {
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
                "min_approvals",
                "review_ttl",
                "access_max_duration",
                "allow_args",
                "agent",
                "mask_columns",
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
        if has("min_approvals") {
            conn.min_approvals = proto.min_approvals.filter(|n| *n > 0);
        }
        if has("review_ttl") {
            conn.review_ttl = super::convert::session_timeout(proto.review_ttl);
        }
        if has("access_max_duration") {
            conn.access_max_duration = super::convert::session_timeout(proto.access_max_duration);
        }
        if has("allow_args") {
            conn.allow_args = proto.allow_args;
        }
        if has("mask_columns") {
            conn.mask_columns = proto.mask_columns;
        }
        if has("agent") {
            // Empty means `local`.
            conn.agent = proto.agent;
        }
        let updated = connections::update(
            &self.app.store.acting_as(&caller.user.name),
            &self.app.registry,
            &self.app.resources,
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
            .acting_as(&caller.user.name)
            .delete_connection(&name)
            .await
            .map_err(Error::from)?;
        tracing::info!(user = %caller.user.name, connection = %name, "connection deleted");
        Ok(Response::new(()))
    }
}
