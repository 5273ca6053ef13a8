//! `hoop connections …`

use anyhow::{Result, bail};
use hoop_proto::v1::{
    AccessModes, Connection, CreateConnectionRequest, DeleteConnectionRequest,
    GetConnectionRequest, ListConnectionsRequest, UpdateConnectionRequest,
};

use crate::cli::{ConnectionsCommand, OutputFormat};
use crate::client::Api;
use crate::convert;
use crate::output::{self, details, list, or_dash, short_duration, table, timestamp, yes_no};

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: ConnectionsCommand,
) -> Result<String> {
    match command {
        ConnectionsCommand::List { page_size } => {
            let connections = list_all(api, page_size).await?;
            match format {
                OutputFormat::Json => output::json_list("connections", &connections),
                OutputFormat::Table => Ok(connections_table(&connections)),
            }
        }
        ConnectionsCommand::Get { name } => {
            let connection = api
                .connections
                .get_connection(GetConnectionRequest { name })
                .await?
                .into_inner();
            show(format, None, &connection)
        }
        ConnectionsCommand::Create { name, fields } => {
            let connection = convert::connection_to_create(&name, &fields)?;
            let created = api
                .connections
                .create_connection(CreateConnectionRequest {
                    connection: Some(connection),
                })
                .await?
                .into_inner();
            show(format, Some("created"), &created)
        }
        ConnectionsCommand::Update { name, fields } => {
            let (connection, mask) = convert::connection_update(&name, &fields)?;
            let updated = api
                .connections
                .update_connection(UpdateConnectionRequest {
                    connection: Some(connection),
                    update_mask: Some(mask),
                })
                .await?
                .into_inner();
            show(format, Some("updated"), &updated)
        }
        ConnectionsCommand::Delete { name } => {
            api.connections
                .delete_connection(DeleteConnectionRequest { name: name.clone() })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&()),
                OutputFormat::Table => Ok(format!("deleted connection {name}")),
            }
        }
    }
}

/// Every connection, following `next_page_token`.
async fn list_all(api: &mut Api, page_size: i32) -> Result<Vec<Connection>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = api
            .connections
            .list_connections(ListConnectionsRequest {
                page_size,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        all.extend(page.connections);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        if page.next_page_token == page_token {
            bail!("the gateway returned the same page token twice");
        }
        page_token = page.next_page_token;
    }
}

fn show(format: OutputFormat, verb: Option<&str>, connection: &Connection) -> Result<String> {
    match format {
        OutputFormat::Json => output::json(connection),
        OutputFormat::Table => {
            let view = connection_details(connection);
            Ok(match verb {
                Some(verb) => format!("{verb} connection {}\n\n{view}", connection.name),
                None => view,
            })
        }
    }
}

fn connections_table(connections: &[Connection]) -> String {
    let rows = connections
        .iter()
        .map(|c| {
            let active: Vec<String> = c
                .plugins
                .iter()
                .filter(|p| p.active)
                .map(|p| p.name.clone())
                .collect();
            vec![
                c.name.clone(),
                or_dash(&c.r#type),
                or_dash(&c.command.join(" ")),
                list(&c.reviewers),
                list(&c.redact_types),
                list(&active),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "type",
            "command",
            "reviewers",
            "redact types",
            "plugins",
        ],
        rows,
    )
}

/// `key: value` lines of a connection, then the table of its plugins.
fn connection_details(c: &Connection) -> String {
    let mut env_keys: Vec<&String> = c.env.keys().collect();
    env_keys.sort();
    let env = env_keys
        .iter()
        .map(|key| format!("{key}=<hidden>"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut tags: Vec<(&String, &String)> = c.tags.iter().collect();
    tags.sort();
    let tags = tags
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ");
    let view = details(&[
        ("name", c.name.clone()),
        ("type", or_dash(&c.r#type)),
        ("command", or_dash(&c.command.join(" "))),
        ("env", or_dash(&env)),
        ("reviewers", list(&c.reviewers)),
        ("redact_types", list(&c.redact_types)),
        ("access_modes", access_modes(c.access_modes.as_ref())),
        (
            "session_timeout",
            short_duration(c.session_timeout.as_ref()),
        ),
        (
            "min_approvals",
            c.min_approvals
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        ),
        ("review_ttl", short_duration(c.review_ttl.as_ref())),
        (
            "access_max_duration",
            short_duration(c.access_max_duration.as_ref()),
        ),
        ("allow_args", yes_no(c.allow_args)),
        (
            "agent",
            if c.agent.is_empty() {
                "local".to_owned()
            } else {
                c.agent.clone()
            },
        ),
        ("tags", or_dash(&tags)),
        ("created", timestamp(c.create_time.as_ref())),
        ("updated", timestamp(c.update_time.as_ref())),
    ]);
    let plugins = table(
        &["name", "active", "status"],
        c.plugins
            .iter()
            .map(|p| vec![p.name.clone(), yes_no(p.active), or_dash(&p.status)])
            .collect(),
    );
    format!("{view}\n\n{plugins}")
}

/// `exec=on, connect=on, runbooks=off`: unset modes are enabled.
fn access_modes(modes: Option<&AccessModes>) -> String {
    let modes = modes.copied().unwrap_or_default();
    let on_off = |mode: Option<bool>| if mode.unwrap_or(true) { "on" } else { "off" };
    format!(
        "exec={}, connect={}, runbooks={}",
        on_off(modes.exec),
        on_off(modes.connect),
        on_off(modes.runbooks)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hoop_proto::v1::PluginAttachment;

    use super::*;

    fn connection() -> Connection {
        Connection {
            name: "pg".to_owned(),
            r#type: "command".to_owned(),
            command: vec!["psql".to_owned(), "-h".to_owned(), "db".to_owned()],
            env: BTreeMap::from([
                ("B".to_owned(), String::new()),
                ("A".to_owned(), String::new()),
            ]),
            reviewers: vec!["dba".to_owned(), "ops".to_owned()],
            access_modes: Some(AccessModes {
                exec: None,
                connect: Some(false),
                runbooks: Some(true),
            }),
            tags: BTreeMap::from([("team".to_owned(), "data".to_owned())]),
            plugins: vec![
                PluginAttachment {
                    name: "audit".to_owned(),
                    config: None,
                    active: true,
                    status: "records sessions".to_owned(),
                },
                PluginAttachment {
                    name: "dlp".to_owned(),
                    config: None,
                    active: false,
                    status: "no redact_types".to_owned(),
                },
                PluginAttachment {
                    name: "review".to_owned(),
                    config: None,
                    active: true,
                    status: String::new(),
                },
            ],
            ..Connection::default()
        }
    }

    #[test]
    fn list_table() {
        let text = connections_table(&[connection()]);
        assert_eq!(
            text,
            "NAME   TYPE      COMMAND      REVIEWERS   REDACT TYPES   PLUGINS\n\
             pg     command   psql -h db   dba,ops     -              audit,review"
        );
    }

    #[test]
    fn details_view() {
        let text = connection_details(&connection());
        assert!(
            text.contains("env:                 A=<hidden> B=<hidden>\n"),
            "{text}"
        );
        assert!(
            text.contains("access_modes:        exec=on, connect=off, runbooks=on\n"),
            "{text}"
        );
        assert!(text.contains("session_timeout:     -\n"), "{text}");
        assert!(text.contains("min_approvals:       -\n"), "{text}");
        assert!(text.contains("review_ttl:          -\n"), "{text}");
        assert!(text.contains("access_max_duration: -\n"), "{text}");
        assert!(text.contains("tags:                team=data\n"), "{text}");
        assert!(text.contains("redact_types:        -\n"), "{text}");
        assert!(text.contains("created:             -\n"), "{text}");
        assert!(
            text.contains("\n\nNAME     ACTIVE   STATUS\naudit    yes      records sessions\n"),
            "{text}"
        );
        let text = connection_details(&Connection {
            session_timeout: Some(prost_types::Duration {
                seconds: 1800,
                nanos: 0,
            }),
            min_approvals: Some(2),
            review_ttl: Some(prost_types::Duration {
                seconds: 7200,
                nanos: 0,
            }),
            access_max_duration: Some(prost_types::Duration {
                seconds: 5400,
                nanos: 0,
            }),
            ..connection()
        });
        assert!(text.contains("session_timeout:     30m\n"), "{text}");
        assert!(
            text.contains(
                "reviewers:           dba,ops\n\
                 redact_types:        -\n\
                 access_modes:        exec=on, connect=off, runbooks=on\n\
                 session_timeout:     30m\n\
                 min_approvals:       2\n\
                 review_ttl:          2h\n\
                 access_max_duration: 1h30m\n"
            ),
            "{text}"
        );
    }
}
