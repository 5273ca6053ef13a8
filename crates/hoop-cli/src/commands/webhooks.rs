//! `hoop webhooks …`

use anyhow::{Result, bail};
use hoop_proto::v1::{
    CreateEndpointRequest, DeleteEndpointRequest, Delivery, Endpoint, GetEndpointRequest,
    ListDeliveriesRequest, ListEndpointsRequest, RedeliverEventRequest,
    RotateEndpointSecretRequest, UpdateEndpointRequest,
};

use crate::cli::{OutputFormat, WebhookFields, WebhooksCommand};
use crate::client::Api;
use crate::convert::split_list;
use crate::output::{self, details, list, or_dash, table, timestamp, yes_no};

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: WebhooksCommand,
) -> Result<String> {
    match command {
        WebhooksCommand::Create { name, fields } => {
            let Some(url) = fields.url.clone() else {
                bail!("--url is required: the http(s) URL to POST events to");
            };
            let endpoint = Endpoint {
                name,
                url,
                description: fields.description.clone().unwrap_or_default(),
                enabled: fields.enabled.unwrap_or(true),
                events: fields.events.as_deref().map(split_list).unwrap_or_default(),
                connections: fields
                    .connections
                    .as_deref()
                    .map(split_list)
                    .unwrap_or_default(),
                ..Default::default()
            };
            let response = api
                .webhooks
                .create_endpoint(CreateEndpointRequest {
                    endpoint: Some(endpoint),
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => {
                    let endpoint = response.endpoint.unwrap_or_default();
                    Ok(format!(
                        "created webhook endpoint {name}\n\
                         secret: {secret}\n\
                         This secret is shown only once: give it to the receiver now, which \
                         verifies each delivery's webhook-signature with it.\n\
                         Events of a connection are sent once `webhooks` is attached to it:\n  \
                         hoop plugins attach CONNECTION webhooks",
                        name = endpoint.name,
                        secret = response.secret,
                    ))
                }
            }
        }
        WebhooksCommand::List => {
            let response = api
                .webhooks
                .list_endpoints(ListEndpointsRequest {})
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => Ok(endpoints_table(&response.endpoints)),
            }
        }
        WebhooksCommand::Show { name } => {
            let endpoint = api
                .webhooks
                .get_endpoint(GetEndpointRequest { name })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&endpoint),
                OutputFormat::Table => Ok(endpoint_details(&endpoint)),
            }
        }
        WebhooksCommand::Update { name, fields } => {
            let (endpoint, paths) = update(name, &fields)?;
            let endpoint = api
                .webhooks
                .update_endpoint(UpdateEndpointRequest {
                    endpoint: Some(endpoint),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&endpoint),
                OutputFormat::Table => Ok(endpoint_details(&endpoint)),
            }
        }
        WebhooksCommand::Delete { name } => {
            api.webhooks
                .delete_endpoint(DeleteEndpointRequest { name: name.clone() })
                .await?;
            match format {
                OutputFormat::Json => output::json(&()),
                OutputFormat::Table => Ok(format!(
                    "deleted webhook endpoint {name} and its deliveries"
                )),
            }
        }
        WebhooksCommand::RotateSecret { name } => {
            let response = api
                .webhooks
                .rotate_endpoint_secret(RotateEndpointSecretRequest { name: name.clone() })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => {
                    let until = timestamp(
                        response
                            .endpoint
                            .as_ref()
                            .and_then(|e| e.previous_secret_expire_time.as_ref()),
                    );
                    Ok(format!(
                        "new secret of webhook endpoint {name}: {secret}\n\
                         This secret is shown only once. Until {until} deliveries carry two \
                         signatures, one per secret: switch the receiver to the new secret \
                         before then.",
                        secret = response.secret,
                    ))
                }
            }
        }
        WebhooksCommand::Deliveries {
            name,
            status,
            limit,
        } => {
            let response = api
                .webhooks
                .list_deliveries(ListDeliveriesRequest {
                    endpoint: name,
                    status: status.unwrap_or_default(),
                    page_size: i32::try_from(limit).unwrap_or(i32::MAX),
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => Ok(deliveries_table(&response.deliveries)),
            }
        }
        WebhooksCommand::Redeliver { name, event_id } => {
            let delivery = api
                .webhooks
                .redeliver_event(RedeliverEventRequest {
                    endpoint: name.clone(),
                    event_id,
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&delivery),
                OutputFormat::Table => Ok(format!(
                    "event {event_id} queued for webhook endpoint {name} again (webhook-id {id})",
                    id = delivery.id
                )),
            }
        }
    }
}

/// The endpoint and update mask of `hoop webhooks update`: only the flags given.
fn update(name: String, fields: &WebhookFields) -> Result<(Endpoint, Vec<String>)> {
    let mut paths = Vec::new();
    let mut endpoint = Endpoint {
        name,
        ..Default::default()
    };
    if let Some(url) = &fields.url {
        endpoint.url = url.clone();
        paths.push("url".to_owned());
    }
    if let Some(description) = &fields.description {
        endpoint.description = description.clone();
        paths.push("description".to_owned());
    }
    if let Some(events) = &fields.events {
        endpoint.events = split_list(events);
        paths.push("events".to_owned());
    }
    if let Some(connections) = &fields.connections {
        endpoint.connections = split_list(connections);
        paths.push("connections".to_owned());
    }
    if let Some(enabled) = fields.enabled {
        endpoint.enabled = enabled;
        paths.push("enabled".to_owned());
    }
    if paths.is_empty() {
        bail!(
            "nothing to update: pass at least one of --url, --description, --events, \
             --connections, --enabled"
        );
    }
    Ok((endpoint, paths))
}

fn all_or(values: &[String]) -> String {
    if values.is_empty() {
        "all".to_owned()
    } else {
        list(values)
    }
}

fn endpoints_table(endpoints: &[Endpoint]) -> String {
    table(
        &["name", "url", "enabled", "events", "connections", "created"],
        endpoints
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.url.clone(),
                    yes_no(e.enabled),
                    all_or(&e.events),
                    all_or(&e.connections),
                    timestamp(e.create_time.as_ref()),
                ]
            })
            .collect(),
    )
}

fn endpoint_details(e: &Endpoint) -> String {
    details(&[
        ("name", e.name.clone()),
        ("url", e.url.clone()),
        ("description", or_dash(&e.description)),
        ("enabled", yes_no(e.enabled)),
        ("disabled reason", or_dash(&e.disabled_reason)),
        ("events", all_or(&e.events)),
        ("connections", all_or(&e.connections)),
        (
            "old secret valid until",
            timestamp(e.previous_secret_expire_time.as_ref()),
        ),
        ("created", timestamp(e.create_time.as_ref())),
        ("updated", timestamp(e.update_time.as_ref())),
    ])
}

fn deliveries_table(deliveries: &[Delivery]) -> String {
    table(
        &[
            "event",
            "type",
            "status",
            "attempts",
            "last",
            "next",
            "webhook-id",
        ],
        deliveries
            .iter()
            .map(|d| {
                let last = match (d.last_status_code, d.last_error.as_str()) {
                    (0, "") => "-".to_owned(),
                    (0, error) => error.to_owned(),
                    (code, _) => code.to_string(),
                };
                vec![
                    d.event_id.to_string(),
                    d.event_type.clone(),
                    d.status.clone(),
                    d.attempts.to_string(),
                    output::printable(&last, false),
                    timestamp(d.next_attempt_time.as_ref()),
                    d.id.clone(),
                ]
            })
            .collect(),
    )
}
