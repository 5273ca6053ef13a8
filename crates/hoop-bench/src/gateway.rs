//! Starting a fresh `hoop-gateway` (SQLite, temporary data dir) the way the end-to-end
//! harness does, and the gRPC helpers the scenarios share.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// Admin token the bench configures (at least 16 characters, as the gateway requires).
pub(crate) const ADMIN_TOKEN: &str = "hoop-bench-admin-token-0123456789";

/// How long the gateway may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the gateway may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines of the gateway kept for error messages.
const KEPT_LOG_LINES: usize = 50;

/// Log filter: warnings only, except the `info` line that says where the gateway listens.
const LOG_FILTER: &str = "warn,hoop_gateway::server=info";

/// A running gateway on a temporary data dir; stopped by [`Gateway::stop`] (or killed on
/// drop).
pub(crate) struct Gateway {
    dir: tempfile::TempDir,
    child: Child,
    pid: u32,
    pub(crate) addr: SocketAddr,
    logs: Arc<Mutex<VecDeque<String>>>,
    emfile: Arc<AtomicBool>,
}

impl Gateway {
    /// Starts `binary` on a fresh temporary data dir, with `extra_toml` (tables) at the end
    /// of its config, and waits until it listens.
    pub(crate) async fn start_with(binary: &Path, extra_toml: &str) -> Result<Gateway> {
        Self::start_full(binary, "", extra_toml).await
    }

    /// Starts `binary` like [`start_with`](Self::start_with), with `top_toml` (top-level
    /// keys: `database_url`, `instance_id`, …) before the tables of its config.
    pub(crate) async fn start_full(
        binary: &Path,
        top_toml: &str,
        extra_toml: &str,
    ) -> Result<Gateway> {
        let dir = tempfile::Builder::new()
            .prefix("hoop-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let data_dir = dir.path().join("hoop-data");
        let config = dir.path().join("hoop.toml");
        // Every session of the bench is the admin's: the idle scenario holds a thousand open
        // at once, far past the default per-user limit. The webhooks scenario's receiver is
        // on 127.0.0.1 and holds its answers for a while.
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n{top_toml}\
             [limits]\nrunning_sessions_per_user = 1000000\n\
             [plugins.webhooks]\nallow_private_networks = true\ntimeout = \"5m\"\n{extra_toml}",
            data_dir.display()
        );
        std::fs::write(&config, toml)
            .with_context(|| format!("cannot write {}", config.display()))?;

        let mut cmd = Command::new(binary);
        cmd.arg("--config").arg(&config);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HOOP_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("HOOP_LOG_FORMAT", "json")
            .env("HOOP_LOG", LOG_FILTER)
            .env("RUST_LOG", "warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the gateway exited at once")?;
        let stderr = child
            .stderr
            .take()
            .context("the gateway's stderr is not piped")?;

        let logs = Arc::new(Mutex::new(VecDeque::<String>::new()));
        let (ready_tx, ready_rx) = oneshot::channel::<SocketAddr>();
        let sink = Arc::clone(&logs);
        let emfile = Arc::new(AtomicBool::new(false));
        let emfile_seen = Arc::clone(&emfile);
        tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = listening_addr(&line) {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(addr);
                    }
                } else if is_warning(&line) {
                    if line.contains("Too many open files") || line.contains("os error 24") {
                        emfile_seen.store(true, Ordering::Relaxed);
                    }
                    eprintln!("  gateway log: {}", summarize_log_line(&line));
                }
                if let Ok(mut kept) = sink.lock() {
                    if kept.len() == KEPT_LOG_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            }
        });

        let addr = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let status = child.try_wait().ok().flatten();
                let log = logs
                    .lock()
                    .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default();
                bail!("the gateway did not start (exit: {status:?}); its log:\n{log}");
            }
        };
        Ok(Gateway {
            dir,
            child,
            pid,
            addr,
            logs,
            emfile,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The bench's temporary dir (holds the data dir; removed when the gateway stops), for
    /// scratch files such as generated inputs.
    pub(crate) fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("hoop-data")
    }

    /// Where the gateway keeps the recording of session `id`.
    pub(crate) fn recording_path(&self, id: &str) -> PathBuf {
        self.data_dir()
            .join("recordings")
            .join(format!("{id}.hrec"))
    }

    /// The last lines the gateway logged (JSON), for error messages.
    pub(crate) fn recent_logs(&self) -> String {
        self.logs
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Whether the gateway has logged EMFILE (`Too many open files`).
    pub(crate) fn saw_emfile(&self) -> bool {
        self.emfile.load(Ordering::Relaxed)
    }

    /// Whether the gateway process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A new HTTP/2 connection to the gateway.
    pub(crate) async fn channel(&self) -> Result<Channel> {
        Channel::from_shared(format!("http://{}", self.addr))
            .context("gateway URL")?
            .connect_timeout(Duration::from_secs(10))
            // As the `hoop` CLI's channel.
            .max_frame_size(hoop_proto::HTTP2_MAX_FRAME)
            .initial_stream_window_size(hoop_proto::HTTP2_STREAM_WINDOW)
            .initial_connection_window_size(hoop_proto::HTTP2_CONNECTION_WINDOW)
            .connect()
            .await
            .with_context(|| format!("cannot connect to the gateway at {}", self.addr))
    }

    /// Creates a `command` connection running `argv`, with the default plugins, and checks
    /// that `audit` is active on it.
    pub(crate) async fn create_command_connection(&self, name: &str, argv: &[&str]) -> Result<()> {
        self.create_command_connection_with(name, argv, &[])
            .await
            .map(drop)
    }

    /// Like [`Gateway::create_command_connection`], with `redact_types` (which activate the
    /// `dlp` plugin when non-empty); returns the connection as created.
    pub(crate) async fn create_command_connection_with(
        &self,
        name: &str,
        argv: &[&str],
        redact_types: &[String],
    ) -> Result<pb::Connection> {
        let mut client =
            pb::connection_service_client::ConnectionServiceClient::new(self.channel().await?);
        let connection = pb::Connection {
            name: name.to_owned(),
            r#type: "command".to_owned(),
            command: argv.iter().map(|s| (*s).to_owned()).collect(),
            redact_types: redact_types.to_vec(),
            ..Default::default()
        };
        let created = client
            .create_connection(authed(pb::CreateConnectionRequest {
                connection: Some(connection),
            }))
            .await
            .with_context(|| format!("CreateConnection {name}"))?
            .into_inner();
        let audit_active = created
            .plugins
            .iter()
            .any(|p| p.name == "audit" && p.active);
        if !audit_active {
            bail!(
                "connection {name}: the audit plugin is not active (plugins: {:?})",
                created
                    .plugins
                    .iter()
                    .map(|p| (&p.name, p.active))
                    .collect::<Vec<_>>()
            );
        }
        Ok(created)
    }

    /// The connection named `name`.
    pub(crate) async fn get_connection(&self, name: &str) -> Result<pb::Connection> {
        let mut client =
            pb::connection_service_client::ConnectionServiceClient::new(self.channel().await?);
        Ok(client
            .get_connection(authed(pb::GetConnectionRequest {
                name: name.to_owned(),
            }))
            .await
            .with_context(|| format!("GetConnection {name}"))?
            .into_inner())
    }

    /// Counts the sessions on `connection` whose status is `open` (still running).
    pub(crate) async fn open_sessions(&self, channel: Channel, connection: &str) -> Result<usize> {
        let mut client = pb::session_service_client::SessionServiceClient::new(channel);
        let mut count = 0;
        let mut page_token = String::new();
        loop {
            let page = client
                .list_sessions(authed(pb::ListSessionsRequest {
                    connection: connection.to_owned(),
                    status: "open".to_owned(),
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                }))
                .await
                .context("ListSessions")?
                .into_inner();
            count += page.sessions.len();
            if page.next_page_token.is_empty() {
                return Ok(count);
            }
            page_token = page.next_page_token;
        }
    }

    /// Stops the gateway with SIGTERM (SIGKILL if it does not stop in time); the temporary
    /// data dir is removed afterwards.
    pub(crate) async fn stop(mut self) -> Result<()> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .context("cannot run kill")?;
        if sent.success() {
            match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
                Ok(status) => {
                    let status = status.context("waiting for the gateway")?;
                    if !status.success() {
                        eprintln!("warning: the gateway exited with {status} on SIGTERM");
                    }
                }
                Err(_) => {
                    eprintln!("warning: the gateway did not stop within 30 s; killing it");
                    self.child.kill().await.context("cannot kill the gateway")?;
                }
            }
        } else {
            self.child.kill().await.context("cannot kill the gateway")?;
        }
        self.dir
            .close()
            .context("cannot remove the temporary data dir")?;
        Ok(())
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "hoop-gateway listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

/// Whether a log line is a warning or an error (or not JSON at all, e.g. a panic).
fn is_warning(line: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(value) => matches!(
            value.get("level").and_then(|l| l.as_str()),
            Some("WARN" | "ERROR")
        ),
        Err(_) => true,
    }
}

/// `LEVEL message {fields}` of a JSON log line (the line itself if it is not JSON).
fn summarize_log_line(line: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    let level = value.get("level").and_then(|l| l.as_str()).unwrap_or("?");
    let fields = value.get("fields").cloned().unwrap_or_default();
    let message = fields
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    let rest = match fields {
        serde_json::Value::Object(mut map) => {
            map.remove("message");
            if map.is_empty() {
                String::new()
            } else {
                serde_json::Value::Object(map).to_string()
            }
        }
        _ => String::new(),
    };
    format!("{level} {message} {rest}")
}

/// A request carrying the admin token.
pub(crate) fn authed<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {ADMIN_TOKEN}").parse() {
        req.metadata_mut().insert("authorization", value);
    }
    req
}

/// Resident set size of process `pid`, in bytes (`VmRSS`), and its peak (`VmHWM`).
pub(crate) fn rss(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{path} has no {name}"))?;
        let kb: u64 = line
            .trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("{path}: bad {line:?}"))?;
        Ok(kb * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Open file descriptors of process `pid`.
pub(crate) fn open_fds(pid: u32) -> Result<usize> {
    let path = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&path)
        .with_context(|| format!("cannot list {path}"))?
        .count())
}

/// CPU time of a process from `/proc/<pid>/stat`, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuTimes {
    /// User + system time of the process itself.
    pub(crate) own: f64,
    /// User + system time of its children that it has waited for.
    pub(crate) children: f64,
}

impl CpuTimes {
    pub(crate) fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            own: self.own - earlier.own,
            children: self.children - earlier.children,
        }
    }
}

/// Reads the CPU times of `pid` (`"self"` for this process).
pub(crate) fn cpu_times(pid: &str, ticks_per_sec: f64) -> Result<CpuTimes> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name (which is in parentheses and may hold spaces): the
    // first is field 3 (state); utime, stime, cutime, cstime are fields 14 to 17.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64> {
        let v: u64 = fields
            .get(i)
            .with_context(|| format!("{path}: too few fields"))?
            .parse()
            .with_context(|| format!("{path}: bad field {}", i + 3))?;
        Ok(v as f64 / ticks_per_sec)
    };
    Ok(CpuTimes {
        own: tick(11)? + tick(12)?,
        children: tick(13)? + tick(14)?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot be asked).
pub(crate) fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}
