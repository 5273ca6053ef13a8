//! Harness of the end-to-end tests: starts the real `hoop-gateway` binary on an ephemeral
//! port with a temporary data dir (SQLite, or a scratch PostgreSQL database when
//! `HOOP_TEST_POSTGRES_URL` is set), and runs the real `hoop` CLI against it.
//!
//! Not part of the product: a library only so the test binaries can share it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub use hoop_proto::v1 as pb;

pub mod slack;

/// Admin token the tests configure.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// How long a gateway may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a gateway may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Which database the gateway runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// A scratch PostgreSQL database, if `HOOP_TEST_POSTGRES_URL` is set.
    pub async fn postgres() -> Option<Backend> {
        let server = std::env::var(hoop_store::testing::POSTGRES_URL_VAR).ok()?;
        let url = hoop_store::testing::scratch_postgres_database(&server, "hoop_e2e")
            .await
            .expect("create a scratch PostgreSQL database");
        Some(Backend::Postgres(url))
    }
}

/// Defines, for each named async test function taking a [`Backend`], a module with a
/// `sqlite` test and a `postgres` test (which says it was skipped when
/// `HOOP_TEST_POSTGRES_URL` is unset).
#[macro_export]
macro_rules! e2e {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    match $crate::Backend::postgres().await {
                        Some(backend) => super::$name(backend).await,
                        None => eprintln!("skipped: HOOP_TEST_POSTGRES_URL is unset"),
                    }
                }
            }
        )*
    };
}

/// Directory of the built binaries (`target/<profile>`). On first use it runs `cargo build`
/// for the gateway and the CLI, so the tests never run stale binaries (a no-op when they are
/// fresh; `cargo test` does not build a package's plain binaries for another package's tests).
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The test binary is target/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = std::process::Command::new(cargo);
        build.args([
            "build",
            "-q",
            "-p",
            "hoop-gateway",
            "-p",
            "hoop-cli",
            "-p",
            "hoop-agent",
        ]);
        // Without the variables cargo sets for a test process: build scripts that watch
        // them (ring's watches CARGO_MANIFEST_DIR and CARGO_PKG_*) would otherwise rerun
        // on every switch between this build and `cargo test`'s, and rebuild half the tree.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key == "OUT_DIR"
                || key.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&key.as_ref())
            {
                build.env_remove(key.as_ref());
            }
        }
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building hoop-gateway and hoop failed");
        dir
    })
}

pub fn gateway_bin() -> PathBuf {
    bin_dir().join("hoop-gateway")
}

pub fn cli_bin() -> PathBuf {
    bin_dir().join("hoop")
}

pub fn agent_bin() -> PathBuf {
    bin_dir().join("hoop-agent")
}

/// Everything that survives a gateway restart: data dir, database, config.
#[derive(Debug, Clone)]
pub struct Setup {
    pub dir: Arc<tempfile::TempDir>,
    pub backend: Backend,
    /// Extra TOML appended to the generated config.
    pub extra_toml: String,
    /// Whether to set `admin_token` in config (else the gateway generates one).
    pub configure_admin_token: bool,
    /// Environment of the gateway beyond the defaults (`HOOP_LOG=info`, JSON logs); e.g.
    /// `HOOP_LOG=debug`, or `HOOP_LISTEN` to override the config's `127.0.0.1:0`.
    pub env: Vec<(String, String)>,
}

impl Setup {
    pub fn new(backend: Backend) -> Self {
        Self {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            backend,
            extra_toml: String::new(),
            configure_admin_token: true,
            env: Vec::new(),
        }
    }

    /// A setup of another gateway on the same database as this one, with a data dir of its
    /// own and the same config (give both the same `secret_key` in it: they share the
    /// database's secrets). On SQLite it names this setup's database file.
    pub fn peer(&self) -> Self {
        let mut peer = Self {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            ..self.clone()
        };
        if let Backend::Sqlite = self.backend {
            peer.extra_toml = format!(
                "database_url = \"sqlite://{}\"\n{}",
                self.data_dir().join("hoop.db").display(),
                self.extra_toml
            );
        }
        peer
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn with_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push('\n');
        self.extra_toml.push_str(toml);
        self
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("hoop-data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hoop.toml")
    }

    /// Writes the config file.
    pub fn write_config(&self) -> PathBuf {
        let mut toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            self.data_dir().display()
        );
        if self.configure_admin_token {
            toml.push_str(&format!("admin_token = \"{ADMIN_TOKEN}\"\n"));
        }
        if let Backend::Postgres(url) = &self.backend {
            toml.push_str(&format!("database_url = \"{url}\"\n"));
        }
        // Top-level keys must come before tables: the extra TOML is appended last.
        toml.push_str(&self.extra_toml);
        let path = self.config_path();
        std::fs::write(&path, toml).unwrap();
        path
    }

    /// The URL of the gateway's database (the SQLite file in the data dir, or the scratch
    /// PostgreSQL database).
    pub fn database_url(&self) -> String {
        match &self.backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rw",
                self.data_dir().join("hoop.db").display()
            ),
            Backend::Postgres(url) => url.clone(),
        }
    }

    /// Opens the gateway's database directly, behind the gateway's back: for tests that
    /// change what no API call may change, as a bug or someone with access to the database
    /// could.
    pub async fn database(&self) -> sea_orm::DatabaseConnection {
        sea_orm::Database::connect(self.database_url())
            .await
            .expect("open the gateway's database")
    }

    /// A `hoop-gateway` command with this setup's config and a clean environment.
    pub fn gateway_command(&self) -> Command {
        self.gateway_command_of(&gateway_bin())
    }

    /// Like [`Setup::gateway_command`], with another `hoop-gateway` binary (a copy of it
    /// elsewhere, say).
    pub fn gateway_command_of(&self, binary: &Path) -> Command {
        let config = self.write_config();
        let mut cmd = Command::new(binary);
        cmd.arg("--config").arg(config);
        clean_env(&mut cmd);
        cmd.env("HOOP_LOG_FORMAT", "json").env("HOOP_LOG", "info");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs the gateway expecting it to exit at once (bad config); returns its exit code
    /// and stderr (text logs).
    pub async fn failed_start(&self, env: &[(&str, &str)]) -> (Option<i32>, String) {
        let mut cmd = self.gateway_command();
        cmd.envs(env.iter().copied());
        cmd.env("HOOP_LOG_FORMAT", "text");
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        let out = tokio::time::timeout(START_TIMEOUT, cmd.output())
            .await
            .expect("the gateway should exit on bad config")
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts a gateway and waits until it listens.
    pub async fn start(&self) -> Gateway {
        self.start_binary(&gateway_bin()).await
    }

    /// Starts the gateway from `binary` (a copy of `hoop-gateway`) and waits until it listens.
    pub async fn start_binary(&self, binary: &Path) -> Gateway {
        let mut cmd = self.gateway_command_of(binary);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn hoop-gateway");
        let logs = Arc::new(Mutex::new(Vec::<String>::new()));
        let (ready_tx, ready_rx) = oneshot::channel::<(SocketAddr, bool)>();
        let stderr = child.stderr.take().unwrap();
        let log_sink = Arc::clone(&logs);
        // Reads the log until the gateway (and the reaper, which shares its stderr) exits.
        let log_reader = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(addr);
                }
                log_sink.lock().unwrap().push(line);
            }
        });
        let (addr, tls) = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(ready)) => ready,
            _ => {
                let status = child.try_wait().ok().flatten();
                panic!(
                    "gateway did not start (exit: {status:?}); its log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Gateway {
            setup: self.clone(),
            child,
            addr,
            tls,
            logs,
            log_reader,
        }
    }
}

fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOOP_") {
            cmd.env_remove(key);
        }
    }
}

/// The address of the "listening" log line, and whether it serves TLS.
fn listening_addr(line: &str) -> Option<(SocketAddr, bool)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "hoop-gateway listening" {
        return None;
    }
    let addr = fields.get("addr")?.as_str()?.parse().ok()?;
    let tls = fields
        .get("tls")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    Some((addr, tls))
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    pub setup: Setup,
    child: Child,
    /// The address it listens on, as it logged it (`0.0.0.0:…` for a wildcard listen).
    pub addr: SocketAddr,
    /// Whether it serves TLS.
    pub tls: bool,
    logs: Arc<Mutex<Vec<String>>>,
    log_reader: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Starts a gateway on a fresh setup.
    pub async fn start(backend: Backend) -> Gateway {
        Setup::new(backend).start().await
    }

    /// `http://` or `https://` and the address to connect to (loopback for a wildcard
    /// listen).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{addr}")
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap()
    }

    pub async fn connections(
        &self,
    ) -> pb::connection_service_client::ConnectionServiceClient<Channel> {
        pb::connection_service_client::ConnectionServiceClient::new(self.channel().await)
    }

    pub async fn plugins(&self) -> pb::plugin_service_client::PluginServiceClient<Channel> {
        pb::plugin_service_client::PluginServiceClient::new(self.channel().await)
    }

    /// Attaches `plugin` to `connection` with config `cfg`, as the admin; panics if refused.
    pub async fn attach_plugin(&self, connection: &str, plugin: &str, cfg: serde_json::Value) {
        self.plugins()
            .await
            .attach_plugin(admin(pb::AttachPluginRequest {
                connection: connection.into(),
                plugin: plugin.into(),
                config: config(cfg),
            }))
            .await
            .unwrap();
    }

    /// Detaches `plugin` from `connection`, as the admin; panics if refused.
    pub async fn detach_plugin(&self, connection: &str, plugin: &str) {
        self.plugins()
            .await
            .detach_plugin(admin(pb::DetachPluginRequest {
                connection: connection.into(),
                plugin: plugin.into(),
            }))
            .await
            .unwrap();
    }

    pub async fn sessions(&self) -> pb::session_service_client::SessionServiceClient<Channel> {
        pb::session_service_client::SessionServiceClient::new(self.channel().await)
    }

    pub async fn dlp(&self) -> pb::dlp_service_client::DlpServiceClient<Channel> {
        pb::dlp_service_client::DlpServiceClient::new(self.channel().await)
    }

    pub async fn events(&self) -> pb::event_service_client::EventServiceClient<Channel> {
        pb::event_service_client::EventServiceClient::new(self.channel().await)
    }

    pub async fn reviews(&self) -> pb::review_service_client::ReviewServiceClient<Channel> {
        pb::review_service_client::ReviewServiceClient::new(self.channel().await)
    }

    pub async fn agents(&self) -> pb::agent_service_client::AgentServiceClient<Channel> {
        pb::agent_service_client::AgentServiceClient::new(self.channel().await)
    }

    pub async fn webhooks(&self) -> pb::webhook_service_client::WebhookServiceClient<Channel> {
        pb::webhook_service_client::WebhookServiceClient::new(self.channel().await)
    }

    pub async fn users(&self) -> pb::user_service_client::UserServiceClient<Channel> {
        pb::user_service_client::UserServiceClient::new(self.channel().await)
    }

    /// Creates a user in `groups` and an API key for them; returns the key's token.
    pub async fn user_with_token(&self, name: &str, groups: &[&str]) -> String {
        let mut users = self.users().await;
        let user = pb::User {
            name: name.to_owned(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        users
            .create_user(admin(pb::CreateUserRequest { user: Some(user) }))
            .await
            .unwrap();
        let key = pb::CreateApiKeyRequest {
            user: name.to_owned(),
            description: String::new(),
        };
        users
            .create_api_key(admin(key))
            .await
            .unwrap()
            .into_inner()
            .token
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("gateway still running")
    }

    /// Where the gateway keeps the recording of session `id`.
    pub fn recording_path(&self, id: &str) -> PathBuf {
        self.setup
            .data_dir()
            .join("recordings")
            .join(format!("{id}.hrec"))
    }

    /// The gateway's log so far (JSON lines).
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Runs the `hoop` CLI against this gateway with `token` (None: no token at all).
    pub async fn cli(&self, token: Option<&str>, args: &[&str]) -> CliOutput {
        self.cli_with_stdin(token, args, None).await
    }

    /// Runs the `hoop` CLI with `input` on its stdin (a pipe, not a terminal).
    pub async fn cli_input(&self, token: Option<&str>, args: &[&str], input: &[u8]) -> CliOutput {
        use tokio::io::AsyncWriteExt;
        let mut cmd = Command::new(cli_bin());
        clean_env(&mut cmd);
        cmd.args(args)
            .env("HOOP_GATEWAY", self.url())
            .current_dir(self.setup.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = token {
            cmd.env("HOOP_TOKEN", token);
        }
        let mut child = cmd.spawn().expect("run hoop CLI");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).await.unwrap();
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("hoop CLI timed out")
            .expect("run hoop CLI");
        CliOutput::from(output)
    }

    pub async fn cli_with_stdin(
        &self,
        token: Option<&str>,
        args: &[&str],
        cwd: Option<&Path>,
    ) -> CliOutput {
        self.cli_env(token, args, cwd, &[]).await
    }

    /// Runs the `hoop` CLI with `env` (e.g. `HOOP_CA`) on top of `HOOP_GATEWAY` and
    /// `HOOP_TOKEN`.
    pub async fn cli_env(
        &self,
        token: Option<&str>,
        args: &[&str],
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> CliOutput {
        let mut cmd = Command::new(cli_bin());
        clean_env(&mut cmd);
        cmd.args(args)
            .env("HOOP_GATEWAY", self.url())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = token {
            cmd.env("HOOP_TOKEN", token);
        }
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        } else {
            // Keep the CLI away from any ./hoop-data of the developer.
            cmd.current_dir(self.setup.dir.path());
        }
        let output = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("hoop CLI timed out")
            .expect("run hoop CLI");
        CliOutput::from(output)
    }

    /// Stops the gateway with SIGTERM and waits for it to exit; returns its setup so it can
    /// be started again on the same data.
    pub async fn stop(self) -> Setup {
        self.stop_with_logs().await.0
    }

    /// Stops the gateway like [`stop`](Self::stop) and returns its whole log, read to the
    /// end (JSON lines).
    pub async fn stop_with_logs(mut self) -> (Setup, String) {
        let status = self.terminate().await;
        assert!(
            status.success(),
            "gateway exited with {status} on SIGTERM; log:\n{}",
            self.logs()
        );
        tokio::time::timeout(STOP_TIMEOUT, &mut self.log_reader)
            .await
            .expect("the gateway's stderr stayed open after it exited")
            .unwrap();
        (self.setup.clone(), self.logs())
    }

    /// Kills the gateway with SIGKILL (a crash) and returns its setup for a restart.
    pub async fn crash(mut self) -> Setup {
        self.child.start_kill().unwrap();
        let status = tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .expect("gateway did not die")
            .unwrap();
        assert!(!status.success());
        self.setup.clone()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("gateway still running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .expect("gateway did not stop within 20 s of SIGTERM")
            .unwrap()
    }
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for CliOutput {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl CliOutput {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "hoop failed: {self:?}");
        &self.stdout
    }

    /// Asserts failure with a single-line error and returns it.
    pub fn err(&self) -> &str {
        assert_ne!(self.code, Some(0), "hoop unexpectedly succeeded: {self:?}");
        let stderr = self.stderr.trim_end();
        assert_eq!(
            stderr.lines().count(),
            1,
            "expected one error line: {stderr:?}"
        );
        stderr
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A request carrying `Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// A request as the bootstrap admin.
pub fn admin<T>(message: T) -> tonic::Request<T> {
    authed(ADMIN_TOKEN, message)
}

/// A `command` connection named `name` running `argv`.
pub fn command_connection(name: &str, argv: &[&str]) -> pb::Connection {
    pb::Connection {
        name: name.to_owned(),
        r#type: "command".to_owned(),
        command: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A `command` connection like [`command_connection`] that lets clients append arguments
/// to `argv` (`allow_args`).
pub fn args_connection(name: &str, argv: &[&str]) -> pb::Connection {
    pb::Connection {
        allow_args: true,
        ..command_connection(name, argv)
    }
}

/// The `active` flag of each attached plugin, in chain order.
pub fn plugin_flags(conn: &pb::Connection) -> Vec<(String, bool)> {
    conn.plugins
        .iter()
        .map(|p| (p.name.clone(), p.active))
        .collect()
}

/// A `google.protobuf.Struct` from JSON (an object).
pub fn config(json: serde_json::Value) -> Option<prost_types::Struct> {
    let serde_json::Value::Object(map) = json else {
        panic!("config must be an object")
    };
    Some(prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    })
}

fn to_value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Asserts a gRPC error's code and that its message contains `needle`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    needle: &str,
) {
    match result {
        Ok(v) => panic!("expected {code:?} containing {needle:?}, got Ok({v:?})"),
        Err(status) => {
            assert_eq!(
                status.code(),
                code,
                "wrong code; message: {}",
                status.message()
            );
            assert!(
                status.message().contains(needle),
                "message {:?} lacks {needle:?}",
                status.message()
            );
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        ticks.tick().await;
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
    }
}

/// What an exec session produced.
#[derive(Debug, Default)]
pub struct ExecResult {
    pub session_id: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: Option<i32>,
    pub reason: String,
    /// `held` events: the session waited for reviewers.
    pub held: Vec<pb::SessionHeld>,
}

/// Reads a session's recording through `GetSessionEvents`: every event, and the status the
/// stream ended with if it ended in an error.
pub async fn recording(
    gw: &Gateway,
    token: &str,
    id: &str,
) -> Result<(Vec<pb::RecordingEvent>, Option<tonic::Status>), tonic::Status> {
    let mut stream = gw
        .sessions()
        .await
        .get_session_events(authed(
            token,
            pb::GetSessionEventsRequest { id: id.to_owned() },
        ))
        .await?
        .into_inner();
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("GetSessionEvents stalled")
        {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return Ok((events, None)),
            Err(status) => return Ok((events, Some(status))),
        }
    }
}

/// Runs `Exec` to its end and collects everything.
pub async fn exec(
    gw: &Gateway,
    token: &str,
    req: pb::ExecRequest,
) -> Result<ExecResult, tonic::Status> {
    use pb::session_event::Event;
    let mut stream = gw
        .sessions()
        .await
        .exec(authed(token, req))
        .await?
        .into_inner();
    let mut result = ExecResult::default();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("exec stalled")?
    {
        match ev.event.expect("an event") {
            Event::Started(s) => result.session_id = s.session_id,
            Event::Output(o) => {
                if o.stream == pb::OutputStream::Stderr as i32 {
                    result.stderr.extend_from_slice(&o.data);
                } else {
                    result.stdout.extend_from_slice(&o.data);
                }
            }
            Event::Exit(e) => {
                result.exit_code = Some(e.exit_code);
                result.reason = e.reason;
            }
            Event::Held(h) => result.held.push(h),
        }
    }
    Ok(result)
}
