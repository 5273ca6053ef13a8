//! The gRPC services: thin handlers that convert proto messages to domain values, call the
//! gateway's rules and convert back.

pub(crate) mod agents;
pub(crate) mod connections;
pub(crate) mod convert;
pub(crate) mod dlp;
pub(crate) mod events;
pub(crate) mod instances;
pub(crate) mod plugins;
pub(crate) mod reviews;
#[cfg(feature = "plugin-runbooks")]
pub(crate) mod runbooks;
#[cfg(feature = "plugin-indexer")]
pub(crate) mod search;
pub(crate) mod sessions;
pub(crate) mod users;
#[cfg(feature = "plugin-webhooks")]
pub(crate) mod webhooks;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hoop_core::Registry;
use hoop_store::Store;

use crate::error::Error;

/// State shared by every service.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) store: Store,
    pub(crate) registry: Registry,
    /// What plugins get when they are built (the recording store, …).
    pub(crate) resources: Arc<hoop_core::Resources>,
    /// Where session recordings are kept.
    pub(crate) recordings: Arc<dyn hoop_plugin_audit::recording::RecordingStore>,
    /// Turns `true` when the gateway starts shutting down: running sessions end.
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
    /// Sessions running on this gateway.
    pub(crate) running: Arc<crate::runtime::Running>,
    /// The connected agents, which run sessions' programs.
    pub(crate) agents: Arc<crate::agents::Agents>,
    /// Cancel keys and the catalog cache of `postgres` sessions.
    pub(crate) pg: crate::pg::PgState,
}

pub(crate) type SharedApp = Arc<App>;

pub(crate) const DEFAULT_PAGE_SIZE: u64 = 50;
pub(crate) const MAX_PAGE_SIZE: u64 = 1000;

/// A page request: how many items, and after which name.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) size: u64,
    pub(crate) after: Option<String>,
}

impl Page {
    /// Checks `page_size` (0 means the default; above the maximum is lowered to it) and
    /// decodes `page_token`.
    pub(crate) fn parse(page_size: i32, page_token: &str) -> Result<Self, Error> {
        let size = match page_size {
            n if n < 0 => {
                return Err(Error::invalid("page_size", "must not be negative"));
            }
            0 => DEFAULT_PAGE_SIZE,
            n => u64::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad = Self::bad_token;
            let bytes = URL_SAFE_NO_PAD.decode(page_token).map_err(|_| bad())?;
            let text = String::from_utf8(bytes).map_err(|_| bad())?;
            Some(text.strip_prefix("after:").ok_or_else(bad)?.to_owned())
        };
        Ok(Self { size, after })
    }

    /// The error for a page token this API did not make.
    pub(crate) fn bad_token() -> Error {
        Error::invalid(
            "page_token",
            "not a token from this API: pass the next_page_token of the previous page",
        )
    }

    /// A token for the page after the item whose key is `key`.
    pub(crate) fn token_after(key: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("after:{key}"))
    }

    /// Splits `items` (fetched with `size + 1`) into the page and the next page token, which
    /// carries `key` of the page's last item.
    pub(crate) fn finish<T>(
        &self,
        mut items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, String) {
        let limit = usize::try_from(self.size).unwrap_or(usize::MAX);
        if items.len() > limit {
            items.truncate(limit);
            let token = items
                .last()
                .map(|last| URL_SAFE_NO_PAD.encode(format!("after:{}", key(last))))
                .unwrap_or_default();
            (items, token)
        } else {
            (items, String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_bad_ones_are_refused() {
        let page = Page::parse(2, "").unwrap();
        let (items, token) = page.finish(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!(items, ["a", "b"]);
        let next = Page::parse(2, &token).unwrap();
        assert_eq!(next.after.as_deref(), Some("b"));
        assert!(matches!(
            Page::parse(1, "!!"),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            Page::parse(-1, ""),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(Page::parse(5000, "").unwrap().size, MAX_PAGE_SIZE);
    }
}
