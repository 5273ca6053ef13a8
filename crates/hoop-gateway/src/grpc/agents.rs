//! `hoop.v1.AgentService`: agents as resources (admins), and `Serve`, the stream an agent
//! runs sessions on (agents only, with their own token).

use std::pin::Pin;

use hoop_core::names::check_connection_name;
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_service_server::AgentService;
use hoop_store::{Agent, hash_token, random_token};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::SharedApp;
use super::convert::timestamp;
use crate::agents::LOCAL_AGENT;
use crate::auth::{AGENT_TOKEN_PREFIX, AgentCaller, caller};
use crate::error::Error;

/// How long a connecting agent has to say hello.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest version or host name an agent may announce.
const MAX_ANNOUNCED: usize = 256;

#[derive(Debug)]
pub(crate) struct AgentApi {
    app: SharedApp,
}

impl AgentApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }

    fn to_proto(&self, name: &str, created: Option<&Agent>) -> pb::Agent {
        let presence = self.app.agents.presence(name);
        pb::Agent {
            name: name.to_owned(),
            create_time: created.map(|a| timestamp(a.created_at)),
            online: presence.is_some(),
            version: presence
                .as_ref()
                .map(|p| p.version.clone())
                .unwrap_or_default(),
            hostname: presence
                .as_ref()
                .map(|p| p.hostname.clone())
                .unwrap_or_default(),
            running_sessions: presence
                .map(|p| u32::try_from(p.running).unwrap_or(u32::MAX))
                .unwrap_or_default(),
        }
    }
}

fn check_agent_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid("name", "required"));
    }
    check_connection_name(name).map_err(|e| Error::invalid("name", e.to_string()))?;
    if name == LOCAL_AGENT {
        return Err(Error::invalid(
            "name",
            "`local` is the gateway's own agent and cannot be created or deleted",
        ));
    }
    Ok(())
}

type ServeStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::GatewayMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn create_agent(
        &self,
        request: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::CreateAgentResponse>, Status> {
        let caller = caller(&request)?;
        caller.require_admin("creating agents")?;
        let name = request.into_inner().name;
        check_agent_name(&name)?;
        let token = random_token(AGENT_TOKEN_PREFIX);
        let agent = self
            .app
            .store
            .acting_as(&caller.user.name)
            .create_agent(&name, &hash_token(&token))
            .await
            .map_err(Error::from)?;
        tracing::info!(agent = %name, by = %caller.user.name, "agent created");
        Ok(Response::new(pb::CreateAgentResponse {
            agent: Some(self.to_proto(&name, Some(&agent))),
            token,
        }))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        caller(&request)?.require_admin("listing agents")?;
        let stored = self.app.store.list_agents().await.map_err(Error::from)?;
        let mut agents = vec![self.to_proto(LOCAL_AGENT, None)];
        agents.extend(stored.iter().map(|a| self.to_proto(&a.name, Some(a))));
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::ListAgentsResponse { agents }))
    }

    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::DeleteAgentResponse>, Status> {
        let caller = caller(&request)?;
        caller.require_admin("deleting agents")?;
        let name = request.into_inner().name;
        check_agent_name(&name)?;
        self.app
            .store
            .acting_as(&caller.user.name)
            .delete_agent(&name)
            .await
            .map_err(Error::from)?;
        self.app
            .agents
            .cut_off(&name, &format!("agent `{name}` was deleted"));
        tracing::info!(agent = %name, by = %caller.user.name, "agent deleted");
        Ok(Response::new(pb::DeleteAgentResponse {}))
    }

    type ServeStream = ServeStream;

    async fn serve(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ServeStream>, Status> {
        let agent = request
            .extensions()
            .get::<AgentCaller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("AgentService.Serve needs an agent token"))?;
        let mut incoming = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, incoming.next()).await {
            Ok(Some(Ok(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Hello(hello)),
            }))) => hello,
            Ok(Some(Err(status))) => return Err(status),
            Ok(_) => {
                return Err(Error::invalid("hello", "the first message must be `hello`").into());
            }
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "no hello within {}s",
                    HELLO_TIMEOUT.as_secs()
                )));
            }
        };
        if hello.version.len() > MAX_ANNOUNCED || hello.hostname.len() > MAX_ANNOUNCED {
            return Err(Error::invalid(
                "hello",
                format!("version and hostname: at most {MAX_ANNOUNCED} bytes"),
            )
            .into());
        }
        let (to_agent, mut queue) = crate::agents::queue();
        let (responses, stream) = mpsc::channel(16);
        let app = std::sync::Arc::clone(&self.app);
        tokio::spawn(async move {
            let name = agent.name;
            app.agents
                .announce_connected(&app.store, &name, &hello)
                .await;
            let serving = app.agents.serve(&name, hello, incoming, to_agent);
            tokio::pin!(serving);
            let mut forwarding = true;
            let mut shutdown = app.shutdown.clone();
            let mut stopping = false;
            let reason = loop {
                tokio::select! {
                    reason = &mut serving => break reason,
                    // The stream must end for the server to stop; the agent reconnects to
                    // the next gateway.
                    () = shutting_down(&mut shutdown), if !stopping => {
                        stopping = true;
                        app.agents.cut_off(&name, "the gateway is shutting down");
                    }
                    Some(message) = queue.recv() => {
                        // Once the agent stopped reading, what is queued for it is dropped
                        // (its sessions end when its stream does).
                        if forwarding && responses.send(Ok(message)).await.is_err() {
                            forwarding = false;
                        }
                    }
                }
            };
            // Sessions still sending to this link fail at once instead of waiting.
            drop(queue);
            let _ = responses.try_send(Err(Status::unavailable(reason.clone())));
            app.agents
                .announce_disconnected(&app.store, &name, &reason)
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }
}

/// Resolves once the gateway starts shutting down.
async fn shutting_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}
