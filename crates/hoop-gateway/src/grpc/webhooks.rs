//! `hoop.v1.WebhookService`: the `webhooks` plugin's endpoints and deliveries, through the
//! plugin crate's [`WebhookStore`]. Every call needs group `admin`.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hoop_plugin_webhooks::{
    Delivery, DeliveryStatus, Endpoint, EndpointSpec, EndpointUpdate, WebhookError, WebhookStore,
};
use hoop_proto::v1 as pb;
use hoop_proto::v1::webhook_service_server::WebhookService;
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use crate::auth::caller;
use crate::error::Error;

/// The fields `UpdateEndpoint` may change.
const UPDATABLE: &[&str] = &["url", "description", "enabled", "events", "connections"];
/// Fields only the gateway sets.
const OUTPUT_ONLY: &[&str] = &[
    "disabled_reason",
    "previous_secret_expire_time",
    "create_time",
    "update_time",
];

#[derive(Debug)]
pub(crate) struct WebhookApi {
    store: WebhookStore,
}

impl WebhookApi {
    pub(crate) fn new(store: WebhookStore) -> Self {
        Self { store }
    }
}

fn time(t: SystemTime) -> prost_types::Timestamp {
    timestamp(DateTime::<Utc>::from(t))
}

fn error(err: WebhookError) -> Status {
    match err {
        WebhookError::Invalid { field, message } => Error::invalid(field, message),
        WebhookError::NotFound(message) => Error::NotFound(message),
        WebhookError::AlreadyExists(message) => Error::AlreadyExists(message),
        WebhookError::FailedPrecondition(message) => Error::FailedPrecondition(message),
        other => {
            tracing::error!(error = %other, "webhooks store failure");
            Error::Internal(
                "internal error: the webhooks store failed (see the gateway log)".to_owned(),
            )
        }
    }
    .into()
}

fn endpoint_to_proto(e: Endpoint) -> pb::Endpoint {
    pb::Endpoint {
        name: e.name,
        url: e.url,
        description: e.description,
        enabled: e.enabled,
        events: e.events,
        connections: e.connections,
        disabled_reason: e.disabled_reason.unwrap_or_default(),
        previous_secret_expire_time: e.previous_secret_until.map(time),
        create_time: Some(time(e.created)),
        update_time: Some(time(e.updated)),
    }
}

fn delivery_to_proto(d: Delivery) -> pb::Delivery {
    pb::Delivery {
        id: d.id,
        endpoint: d.endpoint,
        event_id: d.event_id,
        event_type: d.event_type,
        connection: d.connection.unwrap_or_default(),
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        next_attempt_time: d.next_attempt.map(time),
        last_status_code: d.last_status_code.map(u32::from).unwrap_or_default(),
        last_error: d.last_error.unwrap_or_default(),
        create_time: Some(time(d.created)),
        update_time: Some(time(d.updated)),
        attempt_log: d
            .attempt_log
            .into_iter()
            .map(|a| pb::DeliveryAttempt {
                attempt: a.attempt,
                time: Some(time(a.time)),
                status_code: a.status_code.map(u32::from).unwrap_or_default(),
                latency_ms: u32::try_from(a.latency.as_millis()).unwrap_or(u32::MAX),
                response: a.response,
                error: a.error.unwrap_or_default(),
            })
            .collect(),
        payload: d.payload,
    }
}

fn page_token(before_event: u64) -> String {
    if before_event == 0 {
        String::new()
    } else {
        URL_SAFE_NO_PAD.encode(format!("before:{before_event}"))
    }
}

fn parse_page_token(token: &str) -> Result<u64, Error> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || {
        Error::invalid(
            "page_token",
            "not a token from this API: pass the next_page_token of the previous page",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("before:")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(bad)
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn create_endpoint(
        &self,
        request: Request<pb::CreateEndpointRequest>,
    ) -> Result<Response<pb::CreateEndpointResponse>, Status> {
        let caller = caller(&request)?;
        caller.require_admin("creating webhook endpoints")?;
        let endpoint = request
            .into_inner()
            .endpoint
            .ok_or_else(|| Error::invalid("endpoint", "required"))?;
        let created = self
            .store
            .create_endpoint(EndpointSpec {
                name: endpoint.name,
                url: endpoint.url,
                description: endpoint.description,
                enabled: endpoint.enabled,
                events: endpoint.events,
                connections: endpoint.connections,
            })
            .await
            .map_err(error)?;
        tracing::info!(endpoint = %created.endpoint.name, by = %caller.user.name, "webhook endpoint created");
        Ok(Response::new(pb::CreateEndpointResponse {
            endpoint: Some(endpoint_to_proto(created.endpoint)),
            secret: created.secret,
        }))
    }

    async fn get_endpoint(
        &self,
        request: Request<pb::GetEndpointRequest>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        caller(&request)?.require_admin("reading webhook endpoints")?;
        let name = request.into_inner().name;
        let endpoint = self.store.get_endpoint(&name).await.map_err(error)?;
        Ok(Response::new(endpoint_to_proto(endpoint)))
    }

    async fn list_endpoints(
        &self,
        request: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        caller(&request)?.require_admin("listing webhook endpoints")?;
        let endpoints = self.store.list_endpoints().await.map_err(error)?;
        Ok(Response::new(pb::ListEndpointsResponse {
            endpoints: endpoints.into_iter().map(endpoint_to_proto).collect(),
        }))
    }

    async fn update_endpoint(
        &self,
        request: Request<pb::UpdateEndpointRequest>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        let caller = caller(&request)?;
        caller.require_admin("updating webhook endpoints")?;
        let req = request.into_inner();
        let endpoint = req
            .endpoint
            .ok_or_else(|| Error::invalid("endpoint", "required"))?;
        let mut paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
        for (i, path) in paths.iter().enumerate() {
            let field = format!("update_mask.paths[{i}]");
            if path == "name" {
                return Err(Error::invalid(field, "name is immutable").into());
            }
            if OUTPUT_ONLY.contains(&path.as_str()) {
                return Err(Error::invalid(field, format!("`{path}` is output only")).into());
            }
            if !UPDATABLE.contains(&path.as_str()) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "unknown field `{path}`; updatable: {}",
                        UPDATABLE.join(", ")
                    ),
                )
                .into());
            }
        }
        if paths.is_empty() {
            paths = UPDATABLE.iter().map(|p| (*p).to_owned()).collect();
        }
        let has = |p: &str| paths.iter().any(|q| q == p);
        let update = EndpointUpdate {
            url: has("url").then(|| endpoint.url.clone()),
            description: has("description").then(|| endpoint.description.clone()),
            enabled: has("enabled").then_some(endpoint.enabled),
            events: has("events").then(|| endpoint.events.clone()),
            connections: has("connections").then(|| endpoint.connections.clone()),
        };
        let updated = self
            .store
            .update_endpoint(&endpoint.name, update)
            .await
            .map_err(error)?;
        tracing::info!(endpoint = %updated.name, by = %caller.user.name, "webhook endpoint updated");
        Ok(Response::new(endpoint_to_proto(updated)))
    }

    async fn delete_endpoint(
        &self,
        request: Request<pb::DeleteEndpointRequest>,
    ) -> Result<Response<pb::DeleteEndpointResponse>, Status> {
        let caller = caller(&request)?;
        caller.require_admin("deleting webhook endpoints")?;
        let name = request.into_inner().name;
        self.store.delete_endpoint(&name).await.map_err(error)?;
        tracing::info!(endpoint = %name, by = %caller.user.name, "webhook endpoint deleted");
        Ok(Response::new(pb::DeleteEndpointResponse {}))
    }

    async fn rotate_endpoint_secret(
        &self,
        request: Request<pb::RotateEndpointSecretRequest>,
    ) -> Result<Response<pb::RotateEndpointSecretResponse>, Status> {
        let caller = caller(&request)?;
        caller.require_admin("rotating webhook secrets")?;
        let name = request.into_inner().name;
        let rotated = self.store.rotate_secret(&name).await.map_err(error)?;
        tracing::info!(endpoint = %name, by = %caller.user.name, "webhook endpoint secret rotated");
        Ok(Response::new(pb::RotateEndpointSecretResponse {
            endpoint: Some(endpoint_to_proto(rotated.endpoint)),
            secret: rotated.secret,
        }))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        caller(&request)?.require_admin("reading webhook deliveries")?;
        let req = request.into_inner();
        let status = match req.status.as_str() {
            "" => None,
            text => Some(DeliveryStatus::parse(text, "status").map_err(error)?),
        };
        let page_size = u64::try_from(req.page_size)
            .map_err(|_| Error::invalid("page_size", "must not be negative"))?;
        let before = parse_page_token(&req.page_token)?;
        let (deliveries, next) = self
            .store
            .list_deliveries(&req.endpoint, status, page_size, before)
            .await
            .map_err(error)?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: deliveries.into_iter().map(delivery_to_proto).collect(),
            next_page_token: page_token(next),
        }))
    }

    async fn redeliver_event(
        &self,
        request: Request<pb::RedeliverEventRequest>,
    ) -> Result<Response<pb::Delivery>, Status> {
        let caller = caller(&request)?;
        caller.require_admin("redelivering webhook events")?;
        let req = request.into_inner();
        let delivery = self
            .store
            .redeliver(&req.endpoint, req.event_id)
            .await
            .map_err(error)?;
        tracing::info!(endpoint = %req.endpoint, event_id = req.event_id, by = %caller.user.name, "webhook event redelivered");
        Ok(Response::new(delivery_to_proto(delivery)))
    }
}
