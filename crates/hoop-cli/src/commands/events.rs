//! `hoop events …`: the gateway's durable event log (admins and auditors).

use std::io::Write as _;

use anyhow::{Context as _, Result};
use hoop_proto::v1::{Event, ListEventsRequest, WatchEventsRequest};

use crate::cli::{EventsCommand, OutputFormat};
use crate::client::Api;
use crate::output::{self, or_dash, table, timestamp};

/// Events fetched per request by `list`.
const PAGE: i32 = 500;

pub(crate) async fn run(api: &mut Api, format: OutputFormat, command: EventsCommand) -> Result<()> {
    match command {
        EventsCommand::List {
            types,
            after,
            limit,
        } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let (events, next) = list(api, types, after, limit).await?;
            let text = match format {
                OutputFormat::Json => output::json_list("events", &events)?,
                OutputFormat::Table => {
                    let mut text = events_table(&events);
                    if let Some(next) = next {
                        text.push_str(&format!(
                            "\n\n(more events: hoop events list --after {next})"
                        ));
                    }
                    text
                }
            };
            print(&text)
        }
        EventsCommand::Watch { types, after } => watch(api, format, types, after).await,
    }
}

/// Up to `limit` events after `after`, and the id to list on from if there may be more.
async fn list(
    api: &mut Api,
    types: Vec<String>,
    mut after: u64,
    limit: usize,
) -> Result<(Vec<Event>, Option<u64>)> {
    let mut events = Vec::new();
    loop {
        let page = api
            .events
            .list_events(ListEventsRequest {
                after_id: after,
                types: types.clone(),
                page_size: PAGE,
            })
            .await?
            .into_inner();
        let exhausted = page.next_after_id <= after;
        for event in page.events {
            if events.len() == limit {
                // The next listing starts after the last event shown.
                let last = events.last().map_or(after, |e: &Event| e.id);
                return Ok((events, Some(last)));
            }
            events.push(event);
        }
        if exhausted {
            return Ok((events, None));
        }
        after = page.next_after_id;
    }
}

async fn watch(
    api: &mut Api,
    format: OutputFormat,
    types: Vec<String>,
    after: Option<u64>,
) -> Result<()> {
    let mut stream = api
        .events
        .watch_events(WatchEventsRequest {
            after_id: after.unwrap_or(0),
            types,
            from_now: after.is_none(),
        })
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        let line = match format {
            OutputFormat::Json => output::json_line(&event)?,
            OutputFormat::Table => event_line(&event),
        };
        print(&line)?;
    }
    Ok(())
}

fn data(event: &Event) -> String {
    let json = event
        .data
        .as_ref()
        .map(crate::convert::struct_to_json)
        .unwrap_or_default();
    match json {
        serde_json::Value::Object(map) if map.is_empty() => "-".to_owned(),
        other => other.to_string(),
    }
}

fn events_table(events: &[Event]) -> String {
    table(
        &["id", "time", "type", "connection", "user", "data"],
        events
            .iter()
            .map(|e| {
                vec![
                    e.id.to_string(),
                    timestamp(e.time.as_ref()),
                    e.r#type.clone(),
                    or_dash(&e.connection),
                    or_dash(&e.user),
                    data(e),
                ]
            })
            .collect(),
    )
}

/// One event on one line, for `watch`: the columns of `list`, separated by two spaces.
fn event_line(e: &Event) -> String {
    format!(
        "{}  {}  {}  {}  {}  {}",
        e.id,
        timestamp(e.time.as_ref()),
        e.r#type,
        or_dash(&e.connection),
        or_dash(&e.user),
        data(e)
    )
}

/// Prints a line and flushes (a watch must show each event as it arrives); a closed pipe
/// ends quietly.
fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.context("writing to stdout"),
    }
}
