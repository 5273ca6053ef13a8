//! `hoop plugins …`

use anyhow::Result;
use hoop_proto::v1::{
    AttachPluginRequest, DetachPluginRequest, ListConnectionPluginsRequest, ListPluginsRequest,
    Plugin, PluginAttachment, UpdatePluginConfigRequest,
};

use crate::cli::{OutputFormat, PluginsCommand};
use crate::client::Api;
use crate::convert;
use crate::output::{self, or_dash, table, yes_no};

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: PluginsCommand,
) -> Result<String> {
    match command {
        PluginsCommand::List { connection: None } => {
            let response = api
                .plugins
                .list_plugins(ListPluginsRequest {})
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => Ok(registry_table(&response.plugins)),
            }
        }
        PluginsCommand::List {
            connection: Some(connection),
        } => {
            let response = api
                .plugins
                .list_connection_plugins(ListConnectionPluginsRequest { connection })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => Ok(attachments_table(&response.plugins)),
            }
        }
        PluginsCommand::Attach {
            connection,
            plugin,
            config,
        } => {
            let config = config.as_deref().map(convert::parse_config).transpose()?;
            let attachment = api
                .plugins
                .attach_plugin(AttachPluginRequest {
                    connection: connection.clone(),
                    plugin,
                    config,
                })
                .await?
                .into_inner();
            show(
                format,
                &format!(
                    "attached plugin {} to connection {connection}",
                    attachment.name
                ),
                &attachment,
            )
        }
        PluginsCommand::Config {
            connection,
            plugin,
            config,
        } => {
            let config = convert::parse_config(&config)?;
            let attachment = api
                .plugins
                .update_plugin_config(UpdatePluginConfigRequest {
                    connection: connection.clone(),
                    plugin,
                    config: Some(config),
                })
                .await?
                .into_inner();
            show(
                format,
                &format!(
                    "configured plugin {} on connection {connection}",
                    attachment.name
                ),
                &attachment,
            )
        }
        PluginsCommand::Detach { connection, plugin } => {
            api.plugins
                .detach_plugin(DetachPluginRequest {
                    connection: connection.clone(),
                    plugin: plugin.clone(),
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&()),
                OutputFormat::Table => Ok(format!(
                    "detached plugin {plugin} from connection {connection}"
                )),
            }
        }
    }
}

fn show(format: OutputFormat, headline: &str, attachment: &PluginAttachment) -> Result<String> {
    match format {
        OutputFormat::Json => output::json(attachment),
        OutputFormat::Table => Ok(format!(
            "{headline}\n\n{}",
            attachments_table(std::slice::from_ref(attachment))
        )),
    }
}

fn registry_table(plugins: &[Plugin]) -> String {
    table(
        &[
            "name",
            "default",
            "managed by",
            "implemented",
            "description",
        ],
        plugins
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    yes_no(p.default_attached),
                    or_dash(&p.managed_by_field),
                    yes_no(p.implemented),
                    or_dash(&p.description),
                ]
            })
            .collect(),
    )
}

fn attachments_table(plugins: &[PluginAttachment]) -> String {
    table(
        &["name", "active", "config", "status"],
        plugins
            .iter()
            .map(|p| {
                let config = match &p.config {
                    Some(config) => convert::struct_to_json(config).to_string(),
                    None => "-".to_owned(),
                };
                vec![p.name.clone(), yes_no(p.active), config, or_dash(&p.status)]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_columns() {
        let text = registry_table(&[Plugin {
            name: "dlp".to_owned(),
            description: "masks info types".to_owned(),
            default_attached: true,
            managed_by_field: "redact_types".to_owned(),
            implemented: false,
            ..Plugin::default()
        }]);
        assert_eq!(
            text,
            "NAME   DEFAULT   MANAGED BY     IMPLEMENTED   DESCRIPTION\n\
             dlp    yes       redact_types   no            masks info types"
        );
    }

    #[test]
    fn attachment_config_is_compact_json() {
        let text = attachments_table(&[PluginAttachment {
            name: "slack".to_owned(),
            config: Some(convert::parse_config(r##"{"channel": "#ops"}"##).unwrap()),
            active: true,
            status: "ok".to_owned(),
        }]);
        assert!(
            text.ends_with(r##"slack   yes      {"channel":"#ops"}   ok"##),
            "{text}"
        );
    }
}
