//! The `hoop-agent` binary against a stand-in gateway (a tonic `AgentService` of the test):
//! it authenticates, says hello, runs sessions, reconnects, keeps its token to itself, and
//! its sessions die with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::{WAIT, eventually, helper, marker, processes_with};
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_message::Message as Out;
use hoop_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use hoop_proto::v1::gateway_message::Message as In;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

const TOKEN: &str = "hag_test_0123456789abcdef";

/// One `Serve` call the stand-in gateway took.
struct Call {
    to_agent: mpsc::Sender<Result<pb::GatewayMessage, Status>>,
    from_agent: Streaming<pb::AgentMessage>,
}

impl Call {
    async fn send(&self, message: In) {
        self.to_agent
            .send(Ok(pb::GatewayMessage {
                message: Some(message),
            }))
            .await
            .unwrap();
    }

    async fn recv(&mut self) -> Out {
        tokio::time::timeout(WAIT, self.from_agent.next())
            .await
            .expect("a message in time")
            .expect("a message")
            .expect("not an error")
            .message
            .unwrap()
    }

    async fn start(&self, id: &str, argv: &[&str]) {
        self.send(In::Start(pb::AgentStart {
            session_id: id.to_owned(),
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            ..Default::default()
        }))
        .await;
    }

    /// Reads until session `id` printed `text`.
    async fn wait_for_output(&mut self, id: &str, text: &str) -> String {
        let mut output = Vec::new();
        while !String::from_utf8_lossy(&output).contains(text) {
            match self.recv().await {
                Out::Output(o) if o.session_id == id => {
                    self.send(In::OutputAck(pb::AgentOutputAck {
                        session_id: id.to_owned(),
                        bytes: o.data.len() as u64,
                    }))
                    .await;
                    output.extend_from_slice(&o.data);
                }
                Out::Exit(exit) => panic!("session {id} exited: {exit:?}"),
                _ => {}
            }
        }
        String::from_utf8(output).unwrap()
    }
}

struct StandIn {
    calls: mpsc::Sender<Call>,
    refused: mpsc::Sender<()>,
}

#[tonic::async_trait]
impl AgentService for StandIn {
    async fn create_agent(
        &self,
        _: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::CreateAgentResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn list_agents(
        &self,
        _: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn delete_agent(
        &self,
        _: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::DeleteAgentResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    type ServeStream = ReceiverStream<Result<pb::GatewayMessage, Status>>;

    async fn serve(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ServeStream>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if authorization != format!("Bearer {TOKEN}") {
            let _ = self.refused.send(()).await;
            return Err(Status::unauthenticated("unknown agent token"));
        }
        let (to_agent, rx) = mpsc::channel(16);
        let _ = self
            .calls
            .send(Call {
                to_agent,
                from_agent: request.into_inner(),
            })
            .await;
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A stand-in gateway listening on a free port: its URL, its calls, its refusals.
async fn stand_in() -> (String, mpsc::Receiver<Call>, mpsc::Receiver<()>) {
    stand_in_with(None).await
}

/// The same, over TLS with `identity` (PEM certificate and key) when given.
async fn stand_in_with(
    identity: Option<(String, String)>,
) -> (String, mpsc::Receiver<Call>, mpsc::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (calls, calls_rx) = mpsc::channel(4);
    let (refused, refused_rx) = mpsc::channel(16);
    let mut server = tonic::transport::Server::builder();
    let url = match identity {
        Some((cert, key)) => {
            server = server
                .tls_config(
                    tonic::transport::ServerTlsConfig::new()
                        .identity(tonic::transport::Identity::from_pem(cert, key)),
                )
                .unwrap();
            format!("https://localhost:{port}")
        }
        None => format!("http://127.0.0.1:{port}"),
    };
    tokio::spawn(
        server
            .add_service(AgentServiceServer::new(StandIn { calls, refused }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (url, calls_rx, refused_rx)
}

/// A throwaway CA (PEM) and a certificate and key it signed for localhost.
fn pki() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hoop-agent test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.as_ref().pem(), cert.pem(), key.serialize_pem())
}

/// The agent process, with its stderr and stdout collected.
struct AgentProcess {
    child: Child,
    /// The agent's temp dir (`TMPDIR`), where its base of fresh working directories goes.
    tmp: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl AgentProcess {
    fn start(url: &str, token: &str) -> Self {
        Self::start_with(url, token, &[])
    }

    fn start_with(url: &str, token: &str, args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        // As root, the agent wants to be told whom sessions run as: here, its own user.
        let me = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
            .unwrap()
            .unwrap()
            .name;
        let mut child = Command::new(helper())
            .args(["--gateway", url])
            .args(["--user", &me])
            .args(args)
            .env("TMPDIR", tmp.path())
            .env("HOOP_AGENT_TOKEN", token)
            .env("HOOP_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let collect = |stream: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = Arc::clone(&text);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut text = sink.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            });
            text
        };
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        Self {
            child,
            tmp,
            stderr,
            stdout,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id().unwrap()).unwrap())
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then its exit status.
    async fn stop(&mut self) -> std::process::ExitStatus {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the agent exits")
            .unwrap()
    }
}

async fn next_call(calls: &mut mpsc::Receiver<Call>) -> Call {
    tokio::time::timeout(WAIT, calls.recv())
        .await
        .expect("the agent calls Serve")
        .unwrap()
}

#[tokio::test]
async fn serves_a_gateway_reconnects_and_keeps_its_token_secret() {
    let (url, mut calls, _) = stand_in().await;
    let mut agent = AgentProcess::start(&url, TOKEN);
    let mut call = next_call(&mut calls).await;
    let Out::Hello(hello) = call.recv().await else {
        panic!("hello first");
    };
    assert_eq!(hello.version, env!("CARGO_PKG_VERSION"));
    let stdout = Arc::clone(&agent.stdout);
    eventually("the agent says it is connected", || {
        stdout
            .lock()
            .unwrap()
            .contains(&format!("connected to {url}"))
    })
    .await;

    call.start("s1", &["echo", "hi"]).await;
    assert!(matches!(call.recv().await, Out::Spawned(_)));
    assert!(call.wait_for_output("s1", "hi\n").await == "hi\n");
    match call.recv().await {
        Out::Exit(exit) => assert_eq!((exit.session_id.as_str(), exit.exit_code), ("s1", 0)),
        other => panic!("expected the exit, got {other:?}"),
    }

    // The gateway ends the stream: the agent comes back.
    drop(call);
    let mut call = next_call(&mut calls).await;
    assert!(matches!(call.recv().await, Out::Hello(_)));

    let status = agent.stop().await;
    assert!(status.success(), "{status}");
    let logs = agent.stderr();
    assert!(!logs.contains(TOKEN), "the token is in the logs: {logs}");
    assert!(!logs.contains("0123456789abcdef"), "{logs}");
}

#[tokio::test]
async fn a_refused_token_is_said_clearly() {
    let (url, _calls, mut refused) = stand_in().await;
    let mut agent = AgentProcess::start(&url, "hag_deleted_agent_token");
    tokio::time::timeout(WAIT, refused.recv())
        .await
        .expect("the agent tries")
        .unwrap();
    let stderr = Arc::clone(&agent.stderr);
    eventually("the agent logs the refusal", || {
        stderr.lock().unwrap().contains("refused the agent's token")
    })
    .await;
    let status = agent.stop().await;
    assert!(status.success(), "{status}");
    assert!(!agent.stderr().contains("hag_deleted_agent_token"));
}

#[tokio::test]
async fn sessions_die_with_a_killed_agent() {
    let (url, mut calls, _) = stand_in().await;
    let mut agent = AgentProcess::start(&url, TOKEN);
    let mut call = next_call(&mut calls).await;
    assert!(matches!(call.recv().await, Out::Hello(_)));
    let marker = marker();
    let script = format!("setsid -f sleep {marker}; echo ready; exec sleep 600");
    call.start("doomed", &["sh", "-c", &script]).await;
    call.wait_for_output("doomed", "ready").await;
    eventually("the escaped sleep runs", || {
        !processes_with(&marker).is_empty()
    })
    .await;
    // The session's fresh working directory, under the agent's base directory.
    let base = std::fs::read_dir(agent.tmp.path())
        .unwrap()
        .next()
        .expect("the agent's base directory")
        .unwrap()
        .path();
    assert!(base.join("doomed").is_dir());
    kill(agent.pid(), Signal::SIGKILL).unwrap();
    let _ = agent.child.wait().await;
    eventually("the escaped sleep is gone", || {
        processes_with(&marker).is_empty()
    })
    .await;
    // The supervisor cleaned up even without its agent.
    eventually("the session's directory is gone", || {
        !base.join("doomed").exists()
    })
    .await;
}

#[tokio::test]
async fn missing_arguments_are_named() {
    let out = Command::new(helper())
        .env_remove("HOOP_GATEWAY")
        .env_remove("HOOP_AGENT_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--gateway"), "{stderr}");

    let out = Command::new(helper())
        .args(["--gateway", "ftp://gw:1", "--token", "hag_x"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid gateway URL"), "{stderr}");
    assert!(!stderr.contains("hag_x"), "{stderr}");

    // As root, sessions would run as root: the agent wants that said (or another user).
    if nix::unistd::Uid::effective().is_root() {
        let out = Command::new(helper())
            .args(["--gateway", "http://127.0.0.1:1", "--token", "hag_x"])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("pass --user USER"), "{stderr}");
    }
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let (ca, cert, key) = pki();
    let (url, mut calls, _) = stand_in_with(Some((cert, key))).await;
    assert!(url.starts_with("https://"));

    // Without --ca, the webpki roots do not know the private CA.
    let mut untrusting = AgentProcess::start(&url, TOKEN);
    let stderr = Arc::clone(&untrusting.stderr);
    eventually("the agent cannot connect", || {
        stderr.lock().unwrap().contains("cannot connect to")
    })
    .await;
    assert!(untrusting.stop().await.success());

    let ca_file = untrusting.tmp.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let mut agent = AgentProcess::start_with(&url, TOKEN, &["--ca", ca_file.to_str().unwrap()]);
    let mut call = next_call(&mut calls).await;
    assert!(matches!(call.recv().await, Out::Hello(_)));
    call.start("tls", &["echo", "over tls"]).await;
    call.wait_for_output("tls", "over tls").await;
    assert!(agent.stop().await.success());
}
