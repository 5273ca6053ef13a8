//! `hoop gateways …`

use anyhow::Result;
use hoop_proto::v1::{Instance, ListInstancesRequest};

use crate::cli::{GatewaysCommand, OutputFormat};
use crate::client::Api;
use crate::output::{self, or_dash, table, timestamp};

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: GatewaysCommand,
) -> Result<String> {
    match command {
        GatewaysCommand::List => {
            let response = api
                .instances
                .list_instances(ListInstancesRequest {})
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => Ok(instances_table(&response.instances)),
            }
        }
    }
}

fn instances_table(instances: &[Instance]) -> String {
    table(
        &[
            "instance",
            "state",
            "lease age",
            "sessions",
            "listen",
            "hostname",
            "version",
            "started",
        ],
        instances
            .iter()
            .map(|i| {
                let age = i.lease_age.map_or(0.0, |d| {
                    d.seconds as f64 + f64::from(d.nanos) / 1_000_000_000.0
                });
                let id = if i.current {
                    format!("{} (this one)", i.id)
                } else {
                    i.id.clone()
                };
                vec![
                    id,
                    i.state.clone(),
                    format!("{age:.1}s"),
                    i.open_sessions.to_string(),
                    or_dash(&i.listen),
                    or_dash(&i.hostname),
                    or_dash(&i.version),
                    timestamp(i.start_time.as_ref()),
                ]
            })
            .collect(),
    )
}
