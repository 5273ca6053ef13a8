//! Bearer-token authentication of every gRPC call (but health and reflection).
//!
//! Two kinds of token are accepted: the bootstrap admin token (from config or the data dir),
//! which acts as the built-in `admin` user, and API keys (`hpk_…`), looked up by their
//! SHA-256 hash. The authenticated [`Caller`] is put into the request's extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hoop_store::{Store, StoreError, User, hash_token};
use subtle::ConstantTimeEq;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::Error;

/// Name of the built-in administrator, whom the admin token acts as.
pub(crate) const ADMIN_USER: &str = "admin";
/// Group that manages everything.
pub(crate) const ADMIN_GROUP: &str = "admin";
/// Prefix of API key tokens.
pub(crate) const API_KEY_PREFIX: &str = "hpk_";
/// Prefix of agent tokens.
pub(crate) const AGENT_TOKEN_PREFIX: &str = "hag_";
/// The one call agent tokens are good for, and the only one they may make.
pub(crate) const AGENT_SERVE_PATH: &str = "/hoop.v1.AgentService/Serve";

/// The agent behind an `AgentService.Serve` call (set by [`AuthLayer`]).
#[derive(Debug, Clone)]
pub(crate) struct AgentCaller {
    pub(crate) name: String,
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    AdminToken,
    ApiKey {
        id: String,
    },
    /// A plugin acting on the user's behalf (e.g. a runbook run), through the session
    /// starter port.
    Plugin {
        name: String,
    },
}

/// The authenticated user of a call.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: User,
    pub(crate) credential: Credential,
}

impl Caller {
    pub(crate) fn is_admin(&self) -> bool {
        self.user.groups.iter().any(|g| g == ADMIN_GROUP)
    }

    /// The caller as plugins and their rules see a user: name, email and groups.
    pub(crate) fn user_info(&self) -> hoop_core::UserInfo {
        hoop_core::UserInfo::new(self.user.name.clone())
            .with_email(self.user.email.clone())
            .with_groups(self.user.groups.clone())
            .with_slack_id(self.user.slack_id.clone())
    }

    /// Fails with PERMISSION_DENIED unless the caller is an admin.
    pub(crate) fn require_admin(&self, action: &str) -> Result<(), Error> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "{action} needs group `{ADMIN_GROUP}`; user `{}` is not a member",
                self.user.name
            )))
        }
    }
}

/// Checks tokens. Its `Debug` never shows the admin token.
pub(crate) struct Authenticator {
    store: Store,
    admin_token: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("store", &self.store)
            .field("admin_token", &format_args!("<redacted>"))
            .finish()
    }
}

impl Authenticator {
    pub(crate) fn new(store: Store, admin_token: String) -> Self {
        Self { store, admin_token }
    }

    /// The agent behind an `authorization` header value: only agent tokens (`hag_…`) of
    /// agents that exist. User credentials, the admin token among them, are refused: they
    /// must never receive sessions' programs and secrets.
    pub(crate) async fn authenticate_agent(
        &self,
        header: Option<&http::HeaderValue>,
    ) -> Result<AgentCaller, Error> {
        let token = bearer(header)?;
        if !token.starts_with(AGENT_TOKEN_PREFIX) {
            return Err(Error::PermissionDenied(
                "AgentService.Serve takes an agent token (hag_…, from `hoop agents create`), \
                 not a user's credentials"
                    .to_owned(),
            ));
        }
        match self.store.find_agent(&hash_token(token)).await? {
            Some(agent) => Ok(AgentCaller { name: agent.name }),
            None => Err(Error::Unauthenticated(
                "invalid agent token (the agent may have been deleted)".to_owned(),
            )),
        }
    }

    /// The caller behind an `authorization` header value.
    pub(crate) async fn authenticate(
        &self,
        header: Option<&http::HeaderValue>,
    ) -> Result<Caller, Error> {
        let token = bearer(header)?;
        if bool::from(token.as_bytes().ct_eq(self.admin_token.as_bytes())) {
            let user = self.store.get_user(ADMIN_USER).await?;
            return Ok(Caller {
                user,
                credential: Credential::AdminToken,
            });
        }
        let invalid = || Error::Unauthenticated("invalid or revoked token".to_owned());
        if !token.starts_with(API_KEY_PREFIX) {
            return Err(invalid());
        }
        match self.store.find_api_key(&hash_token(token)).await {
            Ok(Some((key, user))) if key.revoked_at.is_none() => Ok(Caller {
                user,
                credential: Credential::ApiKey { id: key.id },
            }),
            Ok(_) => Err(invalid()),
            Err(StoreError::NotFound { .. }) => Err(invalid()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The token of an `authorization: Bearer <token>` header value.
fn bearer(header: Option<&http::HeaderValue>) -> Result<&str, Error> {
    let header = header.ok_or_else(|| {
        Error::Unauthenticated(
            "missing credentials: send metadata `authorization: Bearer <token>`".to_owned(),
        )
    })?;
    header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::Unauthenticated("malformed authorization: expected `Bearer <token>`".to_owned())
        })
}

/// Whether a gRPC path is served without authentication.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// Tower layer that authenticates every call before it reaches a service.
#[derive(Debug, Clone)]
pub(crate) struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub(crate) fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Debug, Clone)]
pub(crate) struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // Take the service that was polled ready, leaving a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_public(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let auth = Arc::clone(&self.auth);
        if req.uri().path() == AGENT_SERVE_PATH {
            return Box::pin(async move {
                match auth
                    .authenticate_agent(req.headers().get(http::header::AUTHORIZATION))
                    .await
                {
                    Ok(agent) => {
                        tracing::debug!(agent = %agent.name, "agent authenticated");
                        req.extensions_mut().insert(agent);
                        inner.call(req).await
                    }
                    Err(err) => {
                        tracing::info!(error = %err, "agent refused");
                        Ok(Status::from(err).into_http())
                    }
                }
            });
        }
        Box::pin(async move {
            match auth
                .authenticate(req.headers().get(http::header::AUTHORIZATION))
                .await
            {
                Ok(caller) => {
                    tracing::debug!(user = %caller.user.name, via = ?caller.credential, path = %req.uri().path(), "authenticated");
                    req.extensions_mut().insert(caller);
                    inner.call(req).await
                }
                Err(err) => {
                    tracing::debug!(path = %req.uri().path(), error = %err, "rejected");
                    Ok(Status::from(err).into_http())
                }
            }
        })
    }
}

/// The caller of a request (set by [`AuthLayer`]).
pub(crate) fn caller<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("missing credentials"))
}

#[cfg(test)]
mod tests {
    use hoop_store::SecretBox;

    use super::*;

    async fn store(url: &str) -> Store {
        let secrets = SecretBox::new("0123456789abcdef0123456789abcdef-test").unwrap();
        Store::connect(url, secrets).await.unwrap()
    }

    #[tokio::test]
    async fn debug_never_shows_the_admin_token() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/hoop.db", dir.path().display());
        let auth = Authenticator::new(store(&url).await, "the-admin-token-s3cr3t".to_owned());
        for debug in [format!("{auth:?}"), format!("{auth:#?}")] {
            assert!(!debug.contains("the-admin-token-s3cr3t"), "{debug}");
            assert!(debug.contains("admin_token: <redacted>"), "{debug}");
        }
    }

    /// With a password in the database URL (PostgreSQL, when the tests have one).
    #[tokio::test]
    async fn debug_never_shows_the_database_password() {
        let Ok(server) = std::env::var(hoop_store::testing::POSTGRES_URL_VAR) else {
            eprintln!("skipped: HOOP_TEST_POSTGRES_URL is unset");
            return;
        };
        // The development and CI servers trust local connections: any password works.
        let url = server.replacen("://postgres@", "://postgres:db-pa55word-xyz@", 1);
        if !url.contains("db-pa55word-xyz") {
            eprintln!("skipped: HOOP_TEST_POSTGRES_URL is not postgres://postgres@…");
            return;
        }
        let auth = Authenticator::new(store(&url).await, "the-admin-token-s3cr3t".to_owned());
        let debug = format!("{auth:?}");
        assert!(!debug.contains("db-pa55word-xyz"), "{debug}");
        assert!(!debug.contains("the-admin-token-s3cr3t"), "{debug}");
    }
}
