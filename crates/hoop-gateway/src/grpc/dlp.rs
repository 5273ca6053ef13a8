//! `hoop.v1.DlpService`.

use hoop_plugin_dlp::Dlp;
use hoop_proto::v1 as pb;
use hoop_proto::v1::dlp_service_server::DlpService;
use tonic::{Request, Response, Status};

use super::SharedApp;
use crate::auth::caller;
use crate::error::Error;

#[derive(Debug)]
pub(crate) struct DlpApi {
    app: SharedApp,
}

impl DlpApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl DlpService for DlpApi {
    async fn list_info_types(
        &self,
        req: Request<pb::ListInfoTypesRequest>,
    ) -> Result<Response<pb::ListInfoTypesResponse>, Status> {
        caller(&req)?;
        let dlp = self
            .app
            .resources
            .get::<Dlp>()
            .ok_or_else(|| Error::Internal("dlp settings missing".to_owned()))?;
        let settings = dlp.settings();
        let info_types = settings
            .info_types()
            .into_iter()
            .map(|t| pb::InfoType {
                name: t.name,
                description: t.description,
                example: t.example,
                custom: t.custom,
                style: t.style.to_string(),
                masked_example: t.masked_example,
            })
            .collect();
        Ok(Response::new(pb::ListInfoTypesResponse {
            info_types,
            default_style: settings.default_style.to_string(),
        }))
    }
}
