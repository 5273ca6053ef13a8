//! The `webhooks` scenario: deliveries per second to a local receiver with a full outbox,
//! and event-to-delivery latency one event at a time.
//!
//! A receiver on 127.0.0.1 (HTTP/1.1, keep-alive) answers `204`. Events are
//! `connection.updated` of a connection with `webhooks` attached (an `UpdateConnection` of its
//! tags each), sent to one endpoint.
//!
//! - **Throughput:** the receiver first holds every request it gets; `--webhook-events`
//!   events are appended (16 clients), and once all their deliveries are queued in the outbox
//!   the receiver answers the held ones and every later one at once. Deliveries per second =
//!   events / (last delivery received − release): the dispatcher's rate with work waiting
//!   (claims, signed POSTs, attempts recorded).
//! - **Latency:** `--webhook-latency-runs` events one after the other, each measured from the
//!   start of the `UpdateConnection` call that appends it to the receiver reading its
//!   delivery (an upper bound of event-to-delivery).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hoop_proto::v1 as pb;
use pb::webhook_service_client::WebhookServiceClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::Options;
use crate::gateway::{Gateway, authed};
use crate::report::{Report, Row, Stats, ms};

const CONNECTION: &str = "bench-webhooks";
const ENDPOINT: &str = "bench";
/// Deliveries/s goal.
const THROUGHPUT_GOAL: f64 = 1000.0;
/// Event-to-delivery p50 goal.
const LATENCY_GOAL: Duration = Duration::from_millis(50);
/// Clients appending events at once.
const WRITERS: usize = 16;
/// Longest the scenario waits for anything.
const WAIT: Duration = Duration::from_secs(300);

/// A local receiver: records when each event's delivery was read; answers 204, or holds the
/// answer while `hold` is true.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<HashMap<u64, Instant>>>,
    arrived: Arc<Notify>,
    hold: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let seen: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (hold, held) = watch::channel(false);
        let (s, a) = (Arc::clone(&seen), Arc::clone(&arrived));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&s), Arc::clone(&a), held.clone()));
            }
        });
        Ok(Self {
            port,
            seen,
            arrived,
            hold,
            task,
        })
    }

    fn count(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Waits until `done` holds of the receiver.
    async fn wait(&self, what: &str, done: impl Fn(&Self) -> bool) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let notified = self.arrived.notified();
            if done(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
}

async fn serve(
    stream: TcpStream,
    seen: Arc<Mutex<HashMap<u64, Instant>>>,
    arrived: Arc<Notify>,
    mut hold: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let read_at = Instant::now();
        let event = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["data"]["event_id"].as_u64());
        let _ = hold.wait_for(|held| !*held).await;
        if let Some(event) = event
            && let Ok(mut seen) = seen.lock()
        {
            seen.entry(event).or_insert(read_at);
        }
        arrived.notify_waiters();
        if stream
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Appends one `connection.updated` event (a new tag value); returns when it is committed.
async fn append(
    client: &mut pb::connection_service_client::ConnectionServiceClient<tonic::transport::Channel>,
    n: usize,
) -> Result<()> {
    let connection = pb::Connection {
        name: CONNECTION.to_owned(),
        tags: [("n".to_owned(), n.to_string())].into(),
        ..Default::default()
    };
    client
        .update_connection(authed(pb::UpdateConnectionRequest {
            connection: Some(connection),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["tags".into()],
            }),
        }))
        .await
        .context("UpdateConnection")?;
    Ok(())
}

/// Deliveries of the endpoint in `status`.
async fn count(
    client: &mut WebhookServiceClient<tonic::transport::Channel>,
    status: &str,
) -> Result<usize> {
    let mut total = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_deliveries(authed(pb::ListDeliveriesRequest {
                endpoint: ENDPOINT.to_owned(),
                status: status.to_owned(),
                page_size: 1000,
                page_token,
            }))
            .await
            .context("ListDeliveries")?
            .into_inner();
        total += page.deliveries.len();
        if page.next_page_token.is_empty() {
            return Ok(total);
        }
        page_token = page.next_page_token;
    }
}

pub(crate) async fn webhooks(gw: &Gateway, options: &Options, report: &mut Report) -> Result<()> {
    let receiver = Receiver::start().await?;
    gw.create_command_connection(CONNECTION, &["true"]).await?;
    let mut plugins = pb::plugin_service_client::PluginServiceClient::new(gw.channel().await?);
    plugins
        .attach_plugin(authed(pb::AttachPluginRequest {
            connection: CONNECTION.to_owned(),
            plugin: "webhooks".to_owned(),
            config: None,
        }))
        .await
        .context("AttachPlugin webhooks")?;
    let mut hooks = WebhookServiceClient::new(gw.channel().await?);
    hooks
        .create_endpoint(authed(pb::CreateEndpointRequest {
            endpoint: Some(pb::Endpoint {
                name: ENDPOINT.to_owned(),
                url: format!("http://127.0.0.1:{}/hook", receiver.port),
                enabled: true,
                events: vec!["connection.updated".to_owned()],
                ..Default::default()
            }),
        }))
        .await
        .context("CreateEndpoint")?;

    // Throughput: a full outbox, then the receiver lets go.
    let n = options.webhook_events;
    receiver.hold.send_replace(true);
    eprintln!("  appending {n} events ({WRITERS} clients), the receiver holding its answers");
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let mut client =
            pb::connection_service_client::ConnectionServiceClient::new(gw.channel().await?);
        writers.spawn(async move {
            let mut i = w;
            while i < n {
                append(&mut client, i).await?;
                i += WRITERS;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done.context("writer task")??;
    }
    let appended_in = started.elapsed();
    let deadline = Instant::now() + WAIT;
    loop {
        let queued = count(&mut hooks, "").await?;
        if queued >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {queued} of {n} deliveries were queued");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued_in = started.elapsed();
    let released = Instant::now();
    receiver.hold.send_replace(false);
    receiver.wait("every delivery", |r| r.count() >= n).await?;
    let last = receiver
        .seen
        .lock()
        .map(|s| s.values().max().copied())
        .ok()
        .flatten()
        .context("no delivery")?;
    let drained = last.saturating_duration_since(released);
    let rate = n as f64 / drained.as_secs_f64().max(1e-9);
    report.row(Row {
        scenario: "webhooks".to_owned(),
        metric: format!("deliveries/s to a local receiver ({n} queued)"),
        gateway: format!("{rate:.0}/s ({n} in {:.2} s)", drained.as_secs_f64()),
        baseline: "-".to_owned(),
        ratio: "-".to_owned(),
        goal: format!("≥ {THROUGHPUT_GOAL:.0}/s"),
        met: Some(rate >= THROUGHPUT_GOAL),
    });
    report.note(format!(
        "webhooks: {n} events appended in {:.1} s ({:.0}/s, {WRITERS} clients), all queued \
         {:.1} s after the start; receiver held meanwhile, then drained in {:.2} s",
        appended_in.as_secs_f64(),
        n as f64 / appended_in.as_secs_f64().max(1e-9),
        queued_in.as_secs_f64(),
        drained.as_secs_f64()
    ));
    // Every delivery is on record as succeeded.
    let deadline = Instant::now() + WAIT;
    while count(&mut hooks, "succeeded").await? < n {
        if Instant::now() > deadline {
            bail!("not every delivery was recorded as succeeded");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Latency: one event at a time.
    let runs = options.webhook_latency_runs;
    eprintln!("  {runs} events one at a time");
    let mut client =
        pb::connection_service_client::ConnectionServiceClient::new(gw.channel().await?);
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let before = receiver.count();
        let t = Instant::now();
        append(&mut client, n + i).await?;
        receiver
            .wait("the event's delivery", |r| r.count() > before)
            .await?;
        let arrived = receiver
            .seen
            .lock()
            .ok()
            .and_then(|s| s.values().max().copied())
            .context("no delivery")?;
        samples.push(arrived.saturating_duration_since(t));
    }
    let stats = Stats::of(&samples).context("no latency samples")?;
    for (metric, value, goal, met) in [
        (
            format!("event-to-delivery p50 (n={runs})"),
            stats.p50,
            format!("≤ {} ms", LATENCY_GOAL.as_millis()),
            Some(stats.p50 <= LATENCY_GOAL),
        ),
        (
            format!("event-to-delivery p99 (n={runs})"),
            stats.p99,
            "-".to_owned(),
            None,
        ),
    ] {
        report.row(Row {
            scenario: "webhooks".to_owned(),
            metric,
            gateway: ms(value),
            baseline: "-".to_owned(),
            ratio: "-".to_owned(),
            goal,
            met,
        });
    }
    report.note(format!(
        "webhooks latency: mean {}, max {} (from the UpdateConnection call that appends the \
         event to the receiver reading its delivery)",
        ms(stats.mean),
        ms(stats.max)
    ));
    let distinct: BTreeSet<u64> = receiver
        .seen
        .lock()
        .map(|s| s.keys().copied().collect())
        .unwrap_or_default();
    if distinct.len() < n + runs {
        bail!(
            "the receiver got {} distinct events, {} expected",
            distinct.len(),
            n + runs
        );
    }
    Ok(())
}
