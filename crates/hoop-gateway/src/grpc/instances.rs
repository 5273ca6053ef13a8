//! `hoop.v1.InstanceService`: the gateways sharing the database, for admins and auditors.

use hoop_proto::v1 as pb;
use hoop_proto::v1::instance_service_server::InstanceService;
use tonic::{Request, Response, Status};

use super::SharedApp;
use super::convert::timestamp;
use crate::auth::caller;
use crate::error::Error;

#[derive(Debug)]
pub(crate) struct InstanceApi {
    app: SharedApp,
}

impl InstanceApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl InstanceService for InstanceApi {
    async fn list_instances(
        &self,
        request: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<pb::ListInstancesResponse>, Status> {
        let caller = caller(&request)?;
        if !caller
            .user
            .groups
            .iter()
            .any(|g| g == "admin" || g == "auditor")
        {
            return Err(Error::PermissionDenied(format!(
                "listing gateway instances needs group `admin` or `auditor`; user `{}` is in neither",
                caller.user.name
            ))
            .into());
        }
        let store = &self.app.store;
        let now = store.db_now().await.map_err(Error::from)?;
        let me = store.instance();
        let instances = store
            .list_instances()
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|i| {
                let age = (now - i.renewed_at).max(chrono::TimeDelta::zero());
                let state = if i.stopped_at.is_some() {
                    "stopped"
                } else if i.expires_at <= now {
                    "expired"
                } else {
                    "live"
                };
                pb::Instance {
                    current: me == Some(i.id.as_str()),
                    id: i.id,
                    hostname: i.hostname,
                    version: i.version,
                    listen: i.listen,
                    start_time: Some(timestamp(i.started_at)),
                    renew_time: Some(timestamp(i.renewed_at)),
                    expire_time: Some(timestamp(i.expires_at)),
                    lease_age: Some(prost_types::Duration {
                        seconds: age.num_seconds(),
                        nanos: age.subsec_nanos(),
                    }),
                    state: state.to_owned(),
                    open_sessions: u32::try_from(i.open_sessions).unwrap_or(u32::MAX),
                }
            })
            .collect();
        Ok(Response::new(pb::ListInstancesResponse { instances }))
    }
}
