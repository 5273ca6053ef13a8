//! Start-up and the gRPC server.

use std::sync::Arc;

use anyhow::Context;
use hoop_core::Resources;
use hoop_plugin_audit::Recordings;
use hoop_plugin_audit::recording::{FsRecordingStore, RecordingStore};
use hoop_plugin_dlp::Dlp;
use hoop_proto::v1::agent_service_server::AgentServiceServer;
use hoop_proto::v1::connection_service_server::ConnectionServiceServer;
use hoop_proto::v1::dlp_service_server::DlpServiceServer;
use hoop_proto::v1::event_service_server::EventServiceServer;
use hoop_proto::v1::instance_service_server::InstanceServiceServer;
use hoop_proto::v1::plugin_service_server::PluginServiceServer;
use hoop_proto::v1::review_service_server::ReviewServiceServer;
use hoop_proto::v1::session_service_server::SessionServiceServer;
use hoop_proto::v1::user_service_server::UserServiceServer;
use hoop_store::{SecretBox, Store};
use tokio::net::TcpListener;
use tonic::transport::Identity;
use tonic::transport::server::{ServerTlsConfig, TcpIncoming};

use crate::auth::{ADMIN_GROUP, ADMIN_USER, AuthLayer, Authenticator};
use crate::config::{Config, ServerIdentity, redact_url};
use crate::grpc::App;
use crate::grpc::agents::AgentApi;
use crate::grpc::connections::ConnectionApi;
use crate::grpc::dlp::DlpApi;
use crate::grpc::events::EventApi;
use crate::grpc::instances::InstanceApi;
use crate::grpc::plugins::PluginApi;
use crate::grpc::reviews::ReviewApi;
use crate::grpc::sessions::SessionApi;
use crate::grpc::users::UserApi;
use crate::reviews::StoreDesk;
use crate::{bootstrap, connections, plugins};

/// Sub-directory of the data dir holding session recordings (`<session id>.hrec`).
pub(crate) const RECORDINGS_DIR: &str = "recordings";
/// Sub-directory of the data dir holding the runbook repositories' clones (`<name>.git`).
#[cfg(feature = "plugin-runbooks")]
pub(crate) const RUNBOOKS_DIR: &str = "runbooks";

/// Opens and migrates the store named by the config.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let dir = bootstrap::data_dir(config)?;
    let secret_key = bootstrap::secret_key(config, &dir)?;
    let secrets = SecretBox::new(&secret_key).context("secret_key")?;
    let url = config.database_url();
    let store = Store::connect_with(&url, secrets, config.database_pool)
        .await
        .with_context(|| {
            format!(
                "database_url: cannot open the database ({})",
                redact_url(&url)
            )
        })?;
    // The plugins' own tables migrate with the store's.
    let registry = plugins::registry().context("plugin registry")?;
    let migrations: Vec<(&str, hoop_store::migration::PluginMigrationBuilder)> = registry
        .factories()
        .into_iter()
        .flat_map(|factory| factory.migrations())
        .map(|m| (m.name, m.build))
        .collect();
    hoop_store::migration::register_plugin_migrations(&migrations).context("plugin migrations")?;
    store.migrate().await.context("database migration failed")?;
    Ok(store)
}

/// `hoop-gateway migrate`.
pub(crate) async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    for name in store.applied_migrations().await? {
        tracing::info!(migration = %name, "applied");
    }
    tracing::info!("database is up to date");
    Ok(())
}

/// `hoop-gateway serve`: runs until SIGINT or SIGTERM.
pub(crate) async fn serve(config: Config, tls: Option<ServerIdentity>) -> anyhow::Result<()> {
    // The per-user limits hold for every handle on the store: sessions, reviews.
    let store = open_store(&config).await?.with_limits(config.limits);
    let instance_id = bootstrap::instance_id(&config, &config.data_dir)?;
    // Sessions recorded through this store belong to this instance.
    let store = store.with_instance(&instance_id);
    store.check_secret_key().await.context("secret_key")?;
    // Created and made private by `open_store`, before the database was opened. Not walked
    // again now that it is open: opening and closing one of SQLite's files here would drop
    // the locks its connections hold on it (POSIX locks belong to the process).
    let dir = config.data_dir.clone();
    let admin_token = bootstrap::admin_token(&config, &dir)?;
    store
        .ensure_user_in_group(ADMIN_USER, ADMIN_GROUP)
        .await
        .context("cannot create the built-in admin user")?;
    let registry = plugins::registry().context("plugin registry")?;
    tracing::info!(plugins = ?registry.names(), "plugin registry");
    let recordings: Arc<dyn RecordingStore> = match config.recordings {
        crate::config::RecordingsAt::Filesystem => {
            let recordings_dir = dir.join(RECORDINGS_DIR);
            tracing::info!(dir = %recordings_dir.display(), "session recordings");
            Arc::new(FsRecordingStore::new(recordings_dir))
        }
        crate::config::RecordingsAt::Database => {
            tracing::info!("session recordings in the database");
            Arc::new(crate::recordings::DbRecordingStore::new(store.clone()))
        }
    };
    let mut dlp_settings = config.dlp.clone();
    let secret_key = bootstrap::secret_key(&config, &dir)?;
    dlp_settings.hash_key = hoop_plugin_dlp::hash_key_from_secret(secret_key.as_bytes());
    let dlp = Dlp::new(dlp_settings.clone()).map_err(|e| anyhow::anyhow!("dlp: {e}"))?;
    // Reviews live in the store; every change of one appends its event to the log, which
    // the review plugin reads (held sessions, ended grants, expiry).
    let desk = StoreDesk::new(store.clone());
    let running: Arc<crate::runtime::Running> = Arc::default();
    // The ports plugins reach the gateway through: at deployment start and, for the ones
    // sessions need (the event log), as a resource when they are built.
    let starter = crate::events::GatewaySessions::default();
    // Plugins seal the secrets they keep with keys the gateway derives from `secret_key`;
    // they never see the key itself.
    let sealer = Arc::new(crate::events::HostSealer::new(&secret_key));
    let ports = crate::events::ports(
        &store,
        &running,
        &recordings,
        &starter,
        Dlp::new(dlp_settings).map_err(|e| anyhow::anyhow!("dlp: {e}"))?,
        Arc::clone(&sealer),
    );
    let resources = Resources::new();
    // Runbook repositories are cloned under the data dir; the started plugin leaves its
    // runbooks here for RunbookService.
    #[cfg(feature = "plugin-runbooks")]
    let resources = resources.with(hoop_plugin_runbooks::RunbooksHost::new(
        dir.join(RUNBOOKS_DIR),
    ));
    let resources = resources
        .with(Recordings(Arc::clone(&recordings)))
        .with(dlp)
        .with(hoop_plugin_review::Reviews(Arc::new(desk)))
        .with(ports.clone());
    // The search index lives in `<data_dir>/index`; the started indexer opens it there, and
    // SearchService searches it.
    #[cfg(feature = "plugin-indexer")]
    let resources = resources.with(hoop_plugin_indexer::IndexerHost::new(
        dir.join(crate::grpc::search::INDEX_DIR),
    ));
    connections::reconcile_declared(&store, &registry, &resources, &config.connections)
        .await
        .context("declared connections")?;

    let auth = Arc::new(Authenticator::new(store.clone(), admin_token));
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let pruning =
        crate::events::spawn_pruning(store.clone(), config.events_retention, shutdown.clone());
    // Other gateways' appends wake this one's readers of the log (PostgreSQL).
    let wakeups = store.spawn_remote_wakeups(shutdown.clone());
    // Sessions run on agents, never in this process: the local one first.
    let agents: Arc<crate::agents::Agents> = Arc::default();
    let local_agent = crate::local_agent::LocalAgent::new(config.agent.clone())?
        .run(Arc::clone(&agents), shutdown.clone())
        .await?;
    let resources = Arc::new(resources);
    // Every plugin's deployment starts once, with its checked `[plugins.<name>]` settings.
    let plugin_host = hoop_core::PluginHost::new(Arc::clone(&resources), ports);
    for factory in registry.factories() {
        let name = factory.descriptor().name;
        let settings = config.plugins.get(name).cloned().unwrap_or_default();
        plugin_host
            .start(factory, settings)
            .with_context(|| format!("plugin `{name}` cannot start"))?;
    }
    #[cfg(feature = "plugin-webhooks")]
    let webhooks = crate::grpc::webhooks::WebhookApi::new(hoop_plugin_webhooks::WebhookStore::new(
        store.db().clone(),
        hoop_plugin_webhooks::EndpointSecrets::new(sealer),
    ));
    let app = Arc::new(App {
        store,
        registry,
        resources,
        recordings,
        shutdown,
        running,
        agents,
        pg: Default::default(),
    });
    starter.bind(&app);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ConnectionServiceServer<ConnectionApi>>()
        .await;
    health.set_serving::<PluginServiceServer<PluginApi>>().await;
    health.set_serving::<UserServiceServer<UserApi>>().await;
    health
        .set_serving::<SessionServiceServer<SessionApi>>()
        .await;
    health.set_serving::<DlpServiceServer<DlpApi>>().await;
    health.set_serving::<ReviewServiceServer<ReviewApi>>().await;
    health.set_serving::<EventServiceServer<EventApi>>().await;
    health.set_serving::<AgentServiceServer<AgentApi>>().await;
    health
        .set_serving::<InstanceServiceServer<InstanceApi>>()
        .await;
    #[cfg(feature = "plugin-runbooks")]
    health
        .set_serving::<hoop_proto::v1::runbook_service_server::RunbookServiceServer<
            crate::grpc::runbooks::RunbookApi,
        >>()
        .await;
    #[cfg(feature = "plugin-webhooks")]
    health
        .set_serving::<hoop_proto::v1::webhook_service_server::WebhookServiceServer<
            crate::grpc::webhooks::WebhookApi,
        >>()
        .await;
    #[cfg(feature = "plugin-indexer")]
    health
        .set_serving::<hoop_proto::v1::search_service_server::SearchServiceServer<
            crate::grpc::search::SearchApi,
        >>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hoop_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("reflection service")?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hoop_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("reflection service")?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen: cannot bind {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Listen for the stop signals before saying we listen: a SIGTERM right after start-up
    // must stop the gateway gracefully, not kill it with the default action.
    let signals = Signals::install();
    // Frames and windows that hold a session's output messages (up to 256 KiB) whole; what
    // the server sends is framed by the client's own setting.
    let mut server = tonic::transport::Server::builder()
        .max_frame_size(hoop_proto::HTTP2_MAX_FRAME)
        .initial_stream_window_size(hoop_proto::HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(hoop_proto::HTTP2_CONNECTION_WINDOW);
    match &tls {
        Some(identity) => {
            let tls_config = ServerTlsConfig::new()
                .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
            server = server
                .tls_config(tls_config)
                .map_err(|e| anyhow::anyhow!("tls_cert, tls_key: cannot serve TLS: {e}"))?;
            tracing::info!(cert = %identity.cert_path.display(), "serving TLS");
        }
        None if addr.ip().to_canonical().is_loopback() => {}
        None => tracing::warn!(
            %addr,
            "insecure_plaintext: serving plaintext on a non-loopback address; tokens cross the network in clear unless TLS ends in front of the gateway"
        ),
    }
    // Before anything can start a session here: the lease, and the sessions of gateways
    // that are gone (this one's previous run among them) settled.
    let (me, claim) = crate::instances::register(
        &app.store,
        &instance_id,
        &addr.to_string(),
        config.instance_lease,
    )
    .await?;
    let lease = crate::instances::spawn_lease(
        app.store.clone(),
        me,
        config.instance_lease,
        Arc::clone(&app.running),
        app.shutdown.clone(),
    );
    // Kills asked for through other gateways, of sessions running here.
    let kill_requests = crate::control::spawn_kill_requests(
        app.store.clone(),
        Arc::clone(&app.running),
        instance_id.clone(),
        app.shutdown.clone(),
    );
    let tls = tls.is_some();
    tracing::info!(%addr, tls, instance = %instance_id, "hoop-gateway listening");

    // Small request/response frames must not wait for Nagle's algorithm.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let router = server
        .layer(AuthLayer::new(auth))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ConnectionServiceServer::new(ConnectionApi::new(
            Arc::clone(&app),
        )))
        .add_service(PluginServiceServer::new(PluginApi::new(Arc::clone(&app))))
        .add_service(UserServiceServer::new(UserApi::new(Arc::clone(&app))))
        .add_service(SessionServiceServer::new(SessionApi::new(Arc::clone(&app))))
        .add_service(DlpServiceServer::new(DlpApi::new(Arc::clone(&app))))
        .add_service(ReviewServiceServer::new(ReviewApi::new(Arc::clone(&app))))
        .add_service(EventServiceServer::new(EventApi::new(Arc::clone(&app))))
        .add_service(AgentServiceServer::new(AgentApi::new(Arc::clone(&app))))
        .add_service(InstanceServiceServer::new(InstanceApi::new(Arc::clone(
            &app,
        ))));
    #[cfg(feature = "plugin-runbooks")]
    let router = router.add_service(
        hoop_proto::v1::runbook_service_server::RunbookServiceServer::new(
            crate::grpc::runbooks::RunbookApi::new(Arc::clone(&app)),
        ),
    );
    #[cfg(feature = "plugin-webhooks")]
    let router = router
        .add_service(hoop_proto::v1::webhook_service_server::WebhookServiceServer::new(webhooks));
    #[cfg(feature = "plugin-indexer")]
    let router = router.add_service(
        hoop_proto::v1::search_service_server::SearchServiceServer::new(
            crate::grpc::search::SearchApi::new(Arc::clone(&app)),
        ),
    );
    router
        .serve_with_incoming_shutdown(incoming, async move {
            signals.wait().await;
            // End running sessions, so their streams finish and the server can stop.
            let _ = shutdown_tx.send(true);
        })
        .await
        .context("gRPC server failed")?;
    // Plugins stop first (they may still write through the store), then the gateway's own
    // tasks, which have seen the shutdown; all before the database closes.
    if !plugin_host
        .shutdown(std::time::Duration::from_secs(5))
        .await
    {
        tracing::warn!("plugin tasks did not stop within 5 s");
    }
    pruning.abort();
    lease.abort();
    kill_requests.abort();
    if let Some(wakeups) = wakeups {
        wakeups.abort();
    }
    // The local agent saw the shutdown: it kills what sessions left and exits.
    if tokio::time::timeout(std::time::Duration::from_secs(10), local_agent)
        .await
        .is_err()
    {
        tracing::warn!("the local agent did not stop within 10 s");
    }
    // Every session here is settled: the lease ends now, not when it would run out.
    crate::instances::stop(&app.store, &instance_id).await;
    // Its connection goes back to the pool before the pool closes.
    drop(claim);
    app.store.db().clone().close().await.ok();
    tracing::info!("hoop-gateway stopped");
    Ok(())
}

/// SIGINT and SIGTERM, listened for from the moment this is created.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(err) => {
                tracing::warn!(%err, "cannot listen for {name}; it will not stop the gateway gracefully");
                None
            }
        };
        Self {
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }

    /// Resolves on SIGINT or SIGTERM.
    async fn wait(mut self) {
        async fn next(stream: Option<&mut tokio::signal::unix::Signal>) {
            match stream {
                Some(stream) => {
                    stream.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(self.interrupt.as_mut()) => tracing::info!(signal = "SIGINT", "shutting down"),
            () = next(self.terminate.as_mut()) => tracing::info!(signal = "SIGTERM", "shutting down"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        use crate::config::redact_url;
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
