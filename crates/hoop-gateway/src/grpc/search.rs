//! `hoop.v1.SearchService`: full-text search over sessions, run in the `indexer` plugin's
//! index ([`hoop_plugin_indexer::SearchIndex`]) with the caller's visibility inside the
//! query, exactly as `ListSessions` decides it: admins and auditors find every session,
//! everyone else their own.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hoop_plugin_indexer::{IndexerError, IndexerHost, Order, SearchRequest, Visibility};
use hoop_proto::v1 as pb;
use hoop_proto::v1::search_service_server::SearchService;
use tonic::{Request, Response, Status};

use super::SharedApp;
use super::sessions::{reads_all, session_to_proto};
use crate::auth::caller;
use crate::error::Error;

/// Results per page by default, and at most.
const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;
/// How deep pages go: results past this many are not served (refine the query).
const MAX_OFFSET: usize = 10_000;

#[derive(Debug)]
pub(crate) struct SearchApi {
    app: SharedApp,
}

impl SearchApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }
}

fn bad_token() -> Error {
    Error::invalid(
        "page_token",
        "not a token from this API: pass the next_page_token of the previous page",
    )
}

fn parse_offset(token: &str) -> Result<usize, Error> {
    if token.is_empty() {
        return Ok(0);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad_token())?;
    let text = String::from_utf8(bytes).map_err(|_| bad_token())?;
    text.strip_prefix("search:")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= MAX_OFFSET)
        .ok_or_else(bad_token)
}

fn offset_token(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("search:{offset}"))
}

fn error(err: IndexerError) -> Error {
    match err {
        IndexerError::InvalidQuery { field, message } => Error::invalid(field, message),
        other => {
            tracing::error!(error = %other, "search failed");
            Error::Internal("internal error: the search index failed (see the gateway log)".into())
        }
    }
}

#[tonic::async_trait]
impl SearchService for SearchApi {
    async fn search_sessions(
        &self,
        req: Request<pb::SearchSessionsRequest>,
    ) -> Result<Response<pb::SearchSessionsResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let limit = match req.page_size {
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative").into()),
            0 => DEFAULT_PAGE_SIZE,
            n => usize::try_from(n)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE),
        };
        let offset = parse_offset(&req.page_token)?;
        let order = match pb::SearchOrder::try_from(req.order_by) {
            Ok(pb::SearchOrder::Unspecified | pb::SearchOrder::Newest) => Order::Newest,
            Ok(pb::SearchOrder::Relevance) => Order::Relevance,
            Err(_) => {
                return Err(Error::invalid(
                    "order_by",
                    format!("unknown order {}: use NEWEST or RELEVANCE", req.order_by),
                )
                .into());
            }
        };
        if req.query.len() > 4096 {
            return Err(Error::invalid("query", "at most 4096 bytes").into());
        }
        // Exactly ListSessions' rule: admins and auditors read every session, others their own.
        let all = reads_all(&caller);
        let visibility = if all {
            Visibility::All
        } else {
            Visibility::Users(vec![caller.user.name.clone()])
        };
        let Some(host) = self.app.resources.get::<IndexerHost>() else {
            return Err(Error::Unavailable("this gateway has no search index".into()).into());
        };
        let index = host.index().ok_or_else(|| {
            Error::Unavailable("the indexer has not opened its index (see the gateway log)".into())
        })?;
        let query = req.query.clone();
        let page = tokio::task::spawn_blocking(move || {
            index.search(&SearchRequest {
                query: &query,
                visibility,
                order,
                offset,
                limit,
                now: SystemTime::now(),
            })
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "search task failed");
            Error::Internal("internal error: the search failed (see the gateway log)".into())
        })?
        .map_err(error)?;
        let mut results = Vec::with_capacity(page.hits.len());
        let returned = page.hits.len();
        // The hits' records in one query (a page holds at most MAX_PAGE_SIZE).
        let ids: Vec<String> = page.hits.iter().map(|h| h.session_id.clone()).collect();
        let mut records: std::collections::HashMap<String, _> = self
            .app
            .store
            .get_sessions(&ids)
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        for hit in page.hits {
            // Indexed, but its record is gone: nothing to show.
            let Some(record) = records.remove(&hit.session_id) else {
                continue;
            };
            // The query only found what the caller may see; checked again on the record.
            if !all && record.user != caller.user.name {
                continue;
            }
            results.push(pb::SearchResult {
                session: Some(session_to_proto(record)),
                snippets: hit
                    .snippets
                    .into_iter()
                    .map(|s| pb::Snippet {
                        field: s.field.to_owned(),
                        fragment: s.fragment,
                        highlights: s
                            .highlights
                            .into_iter()
                            .map(|r| pb::Highlight {
                                start: u32::try_from(r.start).unwrap_or(u32::MAX),
                                end: u32::try_from(r.end).unwrap_or(u32::MAX),
                            })
                            .collect(),
                    })
                    .collect(),
                truncated: hit.truncated,
                score: hit.score,
            });
        }
        let next = offset + returned;
        let next_page_token =
            if u64::try_from(next).unwrap_or(u64::MAX) < page.total && next <= MAX_OFFSET {
                offset_token(next)
            } else {
                String::new()
            };
        Ok(Response::new(pb::SearchSessionsResponse {
            results,
            total_hits: i64::try_from(page.total).unwrap_or(i64::MAX),
            next_page_token,
        }))
    }
}

/// Sub-directory of the data dir holding the search index.
pub(crate) const INDEX_DIR: &str = "index";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(parse_offset("").unwrap(), 0);
        assert_eq!(parse_offset(&offset_token(40)).unwrap(), 40);
        assert!(parse_offset("nope").is_err());
        assert!(parse_offset(&offset_token(MAX_OFFSET + 1)).is_err());
    }
}
