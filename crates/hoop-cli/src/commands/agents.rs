//! `hoop agents …`

use anyhow::Result;
use hoop_proto::v1::{Agent, CreateAgentRequest, DeleteAgentRequest, ListAgentsRequest};

use crate::cli::{AgentsCommand, OutputFormat};
use crate::client::Api;
use crate::output::{self, or_dash, table, timestamp, yes_no};

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: AgentsCommand,
) -> Result<String> {
    match command {
        AgentsCommand::Create { name } => {
            let response = api
                .agents
                .create_agent(CreateAgentRequest { name })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => {
                    let agent = response.agent.unwrap_or_default();
                    Ok(format!(
                        "created agent {name}\n\
                         token: {token}\n\
                         This token is shown only once: store it now, the gateway keeps only its hash.\n\
                         Run the agent where the targets are:\n  \
                         HOOP_AGENT_TOKEN={token} hoop-agent --gateway <this gateway's URL>\n\
                         and set `--agent {name}` on the connections it serves.",
                        name = agent.name,
                        token = response.token,
                    ))
                }
            }
        }
        AgentsCommand::List => {
            let response = api
                .agents
                .list_agents(ListAgentsRequest {})
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => Ok(agents_table(&response.agents)),
            }
        }
        AgentsCommand::Delete { name } => {
            api.agents
                .delete_agent(DeleteAgentRequest { name: name.clone() })
                .await?;
            match format {
                OutputFormat::Json => output::json(&()),
                OutputFormat::Table => Ok(format!(
                    "deleted agent {name}: its token no longer works and a running agent was cut off"
                )),
            }
        }
    }
}

fn agents_table(agents: &[Agent]) -> String {
    table(
        &[
            "name", "online", "sessions", "version", "hostname", "created",
        ],
        agents
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    yes_no(a.online),
                    a.running_sessions.to_string(),
                    or_dash(&a.version),
                    or_dash(&a.hostname),
                    timestamp(a.create_time.as_ref()),
                ]
            })
            .collect(),
    )
}
