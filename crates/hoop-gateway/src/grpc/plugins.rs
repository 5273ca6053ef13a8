//! `hoop.v1.PluginService`.

use hoop_core::{AttachPolicy, Implementation};
use hoop_proto::v1 as pb;
use hoop_proto::v1::plugin_service_server::PluginService;
use hoop_store::StoreError;
use tonic::{Request, Response, Status};

use super::SharedApp;
use super::convert::{attachment_to_proto, struct_to_json};
use crate::access;
use crate::auth::caller;
use crate::error::Error;
use crate::plugins::{self, AttachAction};

#[derive(Debug)]
pub(crate) struct PluginApi {
    app: SharedApp,
}

impl PluginApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }

    async fn view(&self, connection: &str, plugin: &str) -> Result<pb::PluginAttachment, Error> {
        let attachments = self.app.store.list_attachments(connection).await?;
        plugins::views(&self.app.registry, &attachments)
            .into_iter()
            .find(|v| v.name == plugin)
            .map(attachment_to_proto)
            .ok_or_else(|| Error::Internal(format!("attachment {connection}/{plugin} vanished")))
    }
}

fn required(value: &str, field: &str) -> Result<(), Error> {
    if value.is_empty() {
        Err(Error::invalid(field, "required"))
    } else {
        Ok(())
    }
}

fn not_attached(connection: &str, plugin: &str) -> Error {
    Error::NotFound(format!(
        "plugin `{plugin}` is not attached to connection `{connection}`; attach it with AttachPlugin"
    ))
}

#[tonic::async_trait]
impl PluginService for PluginApi {
    async fn list_plugins(
        &self,
        req: Request<pb::ListPluginsRequest>,
    ) -> Result<Response<pb::ListPluginsResponse>, Status> {
        caller(&req)?;
        let plugins = self
            .app
            .registry
            .factories()
            .into_iter()
            .map(|f| {
                let d = f.descriptor();
                let (implemented, mut status) = match d.implementation {
                    Implementation::Pending(note) => {
                        (false, format!("not implemented yet: {note}"))
                    }
                    _ => (true, "implemented".to_owned()),
                };
                // What its deployment says now (e.g. slack: Socket Mode connected).
                if let Some(now) = f.deployment_status() {
                    status.push_str("; ");
                    status.push_str(&now);
                }
                if let Some(deployment) = plugins::deployment_status(&self.app.resources, d.name) {
                    status.push_str("; ");
                    status.push_str(&deployment);
                }
                pb::Plugin {
                    name: d.name.to_owned(),
                    description: d.description.to_owned(),
                    configuration: d.configuration.to_owned(),
                    default_attached: d.attach.attached_by_default(),
                    managed_by_field: match d.attach {
                        AttachPolicy::Managed { field, .. } => field.to_owned(),
                        _ => String::new(),
                    },
                    implemented,
                    status,
                    example_config: d.example_config.to_owned(),
                }
            })
            .collect();
        Ok(Response::new(pb::ListPluginsResponse { plugins }))
    }

    async fn list_connection_plugins(
        &self,
        req: Request<pb::ListConnectionPluginsRequest>,
    ) -> Result<Response<pb::ListConnectionPluginsResponse>, Status> {
        let caller = caller(&req)?;
        let connection = req.into_inner().connection;
        required(&connection, "connection")?;
        // A connection hidden by access_control is NOT_FOUND, as if it did not exist.
        let attachments =
            access::visible_attachments(&self.app.store, &self.app.registry, &caller, &connection)
                .await?;
        let plugins = plugins::views(&self.app.registry, &attachments)
            .into_iter()
            .map(attachment_to_proto)
            .collect();
        Ok(Response::new(pb::ListConnectionPluginsResponse { plugins }))
    }

    async fn attach_plugin(
        &self,
        req: Request<pb::AttachPluginRequest>,
    ) -> Result<Response<pb::PluginAttachment>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("attaching a plugin")?;
        let req = req.into_inner();
        required(&req.connection, "connection")?;
        let attachment = plugins::checked_attachment_with(
            &self.app.registry,
            &self.app.resources,
            &req.plugin,
            struct_to_json(req.config),
            AttachAction::Attach,
        )?;
        self.app
            .store
            .acting_as(&caller.user.name)
            .attach(&req.connection, &attachment)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } => Error::AlreadyExists(format!(
                    "plugin `{}` is already attached to connection `{}`; change its config with \
                     UpdatePluginConfig",
                    req.plugin, req.connection
                )),
                other => other.into(),
            })?;
        tracing::info!(user = %caller.user.name, connection = %req.connection, plugin = %req.plugin, "plugin attached");
        Ok(Response::new(
            self.view(&req.connection, &req.plugin).await?,
        ))
    }

    async fn update_plugin_config(
        &self,
        req: Request<pb::UpdatePluginConfigRequest>,
    ) -> Result<Response<pb::PluginAttachment>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("configuring a plugin")?;
        let req = req.into_inner();
        required(&req.connection, "connection")?;
        let attachment = plugins::checked_attachment_with(
            &self.app.registry,
            &self.app.resources,
            &req.plugin,
            struct_to_json(req.config),
            AttachAction::Configure,
        )?;
        self.app
            .store
            .acting_as(&caller.user.name)
            .update_attachment(&req.connection, &attachment)
            .await
            .map_err(|e| match e {
                StoreError::NotFound {
                    kind: "plugin attachment",
                    ..
                } => not_attached(&req.connection, &req.plugin),
                other => other.into(),
            })?;
        tracing::info!(user = %caller.user.name, connection = %req.connection, plugin = %req.plugin, "plugin configured");
        Ok(Response::new(
            self.view(&req.connection, &req.plugin).await?,
        ))
    }

    async fn detach_plugin(
        &self,
        req: Request<pb::DetachPluginRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("detaching a plugin")?;
        let req = req.into_inner();
        required(&req.connection, "connection")?;
        plugins::check_action(&self.app.registry, &req.plugin, AttachAction::Detach)?;
        self.app
            .store
            .acting_as(&caller.user.name)
            .detach(&req.connection, &req.plugin)
            .await
            .map_err(|e| match e {
                StoreError::NotFound {
                    kind: "plugin attachment",
                    ..
                } => not_attached(&req.connection, &req.plugin),
                other => other.into(),
            })?;
        tracing::info!(user = %caller.user.name, connection = %req.connection, plugin = %req.plugin, "plugin detached");
        Ok(Response::new(()))
    }
}
