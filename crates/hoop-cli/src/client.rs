//! Finding the token, connecting to the gateway and authenticating every call.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use hoop_proto::v1::agent_service_client::AgentServiceClient;
use hoop_proto::v1::connection_service_client::ConnectionServiceClient;
use hoop_proto::v1::dlp_service_client::DlpServiceClient;
use hoop_proto::v1::event_service_client::EventServiceClient;
use hoop_proto::v1::instance_service_client::InstanceServiceClient;
use hoop_proto::v1::plugin_service_client::PluginServiceClient;
use hoop_proto::v1::review_service_client::ReviewServiceClient;
use hoop_proto::v1::runbook_service_client::RunbookServiceClient;
use hoop_proto::v1::search_service_client::SearchServiceClient;
use hoop_proto::v1::session_service_client::SessionServiceClient;
use hoop_proto::v1::user_service_client::UserServiceClient;
use hoop_proto::v1::webhook_service_client::WebhookServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use hoop_proto::client::gateway_endpoint;

/// Name of the file, in the gateway's data dir, holding the admin token.
const ADMIN_TOKEN_FILE: &str = "admin-token";

/// The token to use: `--token`/`HOOP_TOKEN`, else `<data_dir>/admin-token`, trimmed.
pub(crate) fn resolve_token(flag: Option<&str>, data_dir: &Path) -> Result<String> {
    if let Some(token) = flag.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let no_token = || {
        anyhow!(
            "no token: pass --token, set HOOP_TOKEN, or run next to the gateway's data dir ({})",
            path.display()
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(contents) => {
            let token = contents.trim();
            if token.is_empty() {
                return Err(no_token());
            }
            Ok(token.to_owned())
        }
        Err(err) if err.kind() == ErrorKind::NotFound => Err(no_token()),
        Err(err) => bail!("cannot read the token file {}: {err}", path.display()),
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub(crate) struct Auth {
    header: AsciiMetadataValue,
}

impl Auth {
    pub(crate) fn new(token: &str) -> Result<Self> {
        // The error would not show the token, but say so ourselves rather than rely on it.
        let header = AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            anyhow!("the token contains characters that cannot be sent in a header")
        })?;
        Ok(Self { header })
    }
}

impl Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}

pub(crate) type Service = InterceptedService<Channel, Auth>;

/// Clients of the services over one connection.
pub(crate) struct Api {
    pub(crate) agents: AgentServiceClient<Service>,
    pub(crate) connections: ConnectionServiceClient<Service>,
    pub(crate) dlp: DlpServiceClient<Service>,
    pub(crate) events: EventServiceClient<Service>,
    pub(crate) instances: InstanceServiceClient<Service>,
    pub(crate) plugins: PluginServiceClient<Service>,
    pub(crate) reviews: ReviewServiceClient<Service>,
    pub(crate) runbooks: RunbookServiceClient<Service>,
    pub(crate) search: SearchServiceClient<Service>,
    pub(crate) sessions: SessionServiceClient<Service>,
    pub(crate) users: UserServiceClient<Service>,
    pub(crate) webhooks: WebhookServiceClient<Service>,
}

impl Api {
    /// Clients of the gateway at `url` (`https://` trusts the CA in the PEM file `ca`, or the
    /// webpki roots without it). The connection is made on the first call, so that
    /// arguments are checked before the gateway is needed; a gateway that cannot be reached
    /// fails that call with `UNAVAILABLE`.
    pub(crate) fn new(url: &str, ca: Option<&Path>, auth: Auth) -> Result<Self> {
        let endpoint = gateway_endpoint(url, ca)?;
        let channel = endpoint.connect_lazy();
        Ok(Self {
            agents: AgentServiceClient::with_interceptor(channel.clone(), auth.clone()),
            connections: ConnectionServiceClient::with_interceptor(channel.clone(), auth.clone()),
            dlp: DlpServiceClient::with_interceptor(channel.clone(), auth.clone()),
            events: EventServiceClient::with_interceptor(channel.clone(), auth.clone()),
            instances: InstanceServiceClient::with_interceptor(channel.clone(), auth.clone()),
            plugins: PluginServiceClient::with_interceptor(channel.clone(), auth.clone()),
            reviews: ReviewServiceClient::with_interceptor(channel.clone(), auth.clone()),
            runbooks: RunbookServiceClient::with_interceptor(channel.clone(), auth.clone()),
            search: SearchServiceClient::with_interceptor(channel.clone(), auth.clone()),
            sessions: SessionServiceClient::with_interceptor(channel.clone(), auth.clone()),
            users: UserServiceClient::with_interceptor(channel.clone(), auth.clone()),
            webhooks: WebhookServiceClient::with_interceptor(channel, auth),
        })
    }
}

/// The message for a gateway that cannot be reached, with a hint at the likely fix.
pub(crate) fn unreachable(url: &str, cause: &str) -> String {
    let https = url.to_ascii_lowercase().starts_with("https://");
    let hint = if https && cause.contains("certificate") {
        "the gateway's TLS certificate is not trusted: pass --ca FILE or set HOOP_CA to the PEM file of the CA that signed it"
    } else if https && cause.contains("corrupt message") {
        "the gateway does not seem to speak TLS: use http:// if it serves plaintext"
    } else if !https && !cause.contains("tcp connect error") {
        // The gateway answered, then dropped the connection: a TLS gateway does that to
        // plaintext.
        "is hoop-gateway running? if it serves TLS, use https://"
    } else {
        "is hoop-gateway running? set --gateway or HOOP_GATEWAY"
    };
    format!("cannot reach the gateway at {url}: {cause} ({hint})")
}

/// An error and its causes joined by `: `, skipping tonic's bare "transport error" wrapper
/// and causes already included in the text.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let text = err.to_string();
        let useless = text == "transport error" && err.source().is_some();
        if !useless && !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_flag_wins_and_is_trimmed() {
        let dir = Path::new("/nonexistent/hoop-data");
        assert_eq!(resolve_token(Some(" t0k \n"), dir).unwrap(), "t0k");
    }

    #[test]
    fn token_from_data_dir() {
        let dir = std::env::temp_dir().join(format!("hoop-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("admin-token"), "secret-admin\n").unwrap();
        assert_eq!(resolve_token(None, &dir).unwrap(), "secret-admin");
        assert_eq!(resolve_token(Some(""), &dir).unwrap(), "secret-admin");
        std::fs::write(dir.join("admin-token"), "  \n").unwrap();
        let err = resolve_token(None, &dir).unwrap_err();
        assert!(err.to_string().starts_with("no token: "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_token_message() {
        let err = resolve_token(None, Path::new("./hoop-data")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no token: pass --token, set HOOP_TOKEN, or run next to the gateway's data dir (./hoop-data/admin-token)"
        );
    }

    #[test]
    fn bad_token_is_not_echoed() {
        let Err(err) = Auth::new("bad\ntoken") else {
            panic!("accepted a newline");
        };
        assert!(!err.to_string().contains("bad"));
    }
}
