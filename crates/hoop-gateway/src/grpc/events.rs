//! `hoop.v1.EventService`: the durable event log, for admins and auditors.

use std::pin::Pin;
use std::sync::Arc;

use hoop_core::events::{Event, EventFilter, EventSource, Subscription};
use hoop_proto::v1 as pb;
use hoop_proto::v1::event_service_server::EventService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::SharedApp;
use super::convert::{json_to_value, timestamp};
use crate::access::AccessCache;
use crate::auth::{Caller, caller};
use crate::error::Error;
use crate::events::StoreEvents;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Events a watcher may have in flight towards a slow client before reading pauses.
const WATCH_BUFFER: usize = 256;
/// How long a watch trusts what it learned of connections' access_control.
const ACCESS_RELEARN: std::time::Duration = std::time::Duration::from_secs(5);
/// Groups that may read the event log.
const READ_GROUPS: &[&str] = &["admin", "auditor"];

#[derive(Debug)]
pub(crate) struct EventApi {
    app: SharedApp,
    source: Arc<StoreEvents>,
}

impl EventApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        let source = Arc::new(StoreEvents::new(app.store.clone()));
        Self { app, source }
    }
}

impl EventApi {
    /// The events the caller may read: all for admins; for auditors, not those of a
    /// connection access_control hides from them (they do not see it, nor its reviews).
    async fn visible(
        &self,
        caller: &Caller,
        access: &mut AccessCache,
        events: Vec<Event>,
    ) -> Result<Vec<Event>, Error> {
        if caller.is_admin() {
            return Ok(events);
        }
        access
            .learn(
                &self.app.store,
                &self.app.registry,
                caller,
                events.iter().filter_map(|e| e.connection.as_deref()),
            )
            .await?;
        Ok(events
            .into_iter()
            .filter(|e| {
                e.connection
                    .as_deref()
                    .is_none_or(|name| access.allows(caller, name))
            })
            .collect())
    }
}

fn require_reader(caller: &Caller) -> Result<(), Error> {
    if caller
        .user
        .groups
        .iter()
        .any(|g| READ_GROUPS.contains(&g.as_str()))
    {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!(
            "reading the event log needs group `admin` or `auditor`; user `{}` is in neither",
            caller.user.name
        )))
    }
}

fn filter(types: &[String]) -> Result<EventFilter, Error> {
    EventFilter::parse(types).map_err(|err| {
        Error::invalid(
            format!("types[{}]", err.index),
            format!("`{}` is not an event type: {err}", err.pattern),
        )
    })
}

pub(crate) fn to_pb(event: Event) -> pb::Event {
    let data = match json_to_value(event.data).kind {
        Some(prost_types::value::Kind::StructValue(s)) => Some(s),
        _ => Some(prost_types::Struct::default()),
    };
    pb::Event {
        id: event.id,
        r#type: event.kind,
        time: Some(timestamp(event.time.into())),
        connection: event.connection.unwrap_or_default(),
        user: event.user.unwrap_or_default(),
        data,
    }
}

fn port_status(err: hoop_core::PortError) -> Status {
    Status::unavailable(err.to_string())
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for EventApi {
    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = caller(&req)?;
        require_reader(&caller)?;
        let req = req.into_inner();
        let filter = filter(&req.types)?;
        let size = match req.page_size {
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative").into()),
            0 => DEFAULT_PAGE,
            n => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let page = self
            .source
            .read(req.after_id, &filter, size)
            .await
            .map_err(port_status)?;
        let mut access = AccessCache::default();
        let events = self.visible(&caller, &mut access, page.events).await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.into_iter().map(to_pb).collect(),
            next_after_id: page.scanned_to,
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = caller(&req)?;
        require_reader(&caller)?;
        let req = req.into_inner();
        let filter = filter(&req.types)?;
        let after = if req.from_now {
            if req.after_id != 0 {
                return Err(Error::invalid(
                    "after_id",
                    "must be 0 with from_now: pass one or the other",
                )
                .into());
            }
            self.source.last_id().await.map_err(port_status)?
        } else {
            req.after_id
        };
        let source: Arc<dyn EventSource> = self.source.clone();
        let mut subscription = Subscription::new(source, after, filter);
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        let mut shutdown = self.app.shutdown.clone();
        let api = Self {
            app: Arc::clone(&self.app),
            source: Arc::clone(&self.source),
        };
        tokio::spawn(async move {
            let mut access = AccessCache::default();
            let mut learned_at = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    next = subscription.next() => {
                        // What a connection's access_control says may change: look again
                        // after a while.
                        if learned_at.elapsed() > ACCESS_RELEARN {
                            access = AccessCache::default();
                            learned_at = tokio::time::Instant::now();
                        }
                        let item = match next {
                            Ok(event) => match api.visible(&caller, &mut access, vec![event]).await {
                                Ok(mut kept) => match kept.pop() {
                                    Some(event) => Ok(to_pb(event)),
                                    None => continue,
                                },
                                Err(err) => Err(Status::from(err)),
                            },
                            Err(err) => Err(port_status(err)),
                        };
                        let failed = item.is_err();
                        if tx.send(item).await.is_err() || failed {
                            return;
                        }
                    }
                    () = tx.closed() => return,
                    () = async { let _ = shutdown.wait_for(|down| *down).await; } => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
