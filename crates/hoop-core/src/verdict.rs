//! The decision a plugin hook returns.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

/// What a plugin hook decides about a session or a chunk.
///
/// Hooks run in chain order and the first verdict that is not [`Verdict::Allow`] stops the
/// chain for that event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Go on to the next plugin.
    Allow,
    /// End the session, telling the user why.
    Deny(DenyReason),
    /// Keep the session waiting until someone approves it (see [`HoldRequest`]).
    Hold(HoldRequest),
}

impl Verdict {
    /// A denial with this reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Verdict::Deny(DenyReason::new(reason))
    }
}

/// Why a plugin denied a session; shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyReason(String);

impl DenyReason {
    /// A reason in words.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// The reason as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request to hold a session until it is approved.
///
/// The plugin never waits itself: hoop-core parks the session
/// ([`ChainSession::open_waiting`](crate::ChainSession::open_waiting)) until the request's
/// [`watch`](Self::watch) says the decision may have changed (or a while has passed), checks
/// the session again with its host, and asks the chain once more.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HoldRequest {
    /// Why the session is held, in words.
    pub reason: String,
    /// Groups that may approve it.
    pub groups: Vec<String>,
    /// Identifier of the approval request, if the plugin made one (e.g. a review id).
    pub request_id: Option<String>,
    /// What to wait for before asking again; `None`: ask again after the host's re-check
    /// interval only.
    pub watch: Option<Arc<dyn HoldWatch>>,
}

impl PartialEq for HoldRequest {
    /// Two requests are equal when they say the same; their watches are not compared.
    fn eq(&self, other: &Self) -> bool {
        self.reason == other.reason
            && self.groups == other.groups
            && self.request_id == other.request_id
    }
}

impl Eq for HoldRequest {}

/// What a held session waits for: resolves when the decision may have changed (an approval,
/// a rejection, a revocation). It may resolve spuriously; the chain is then simply asked
/// again. See [`events::EventWatch`](crate::events::EventWatch) for one over the event log.
#[async_trait]
pub trait HoldWatch: Send + Sync + fmt::Debug {
    /// Resolves when the hold may have lifted.
    async fn changed(&self);
}

impl HoldRequest {
    /// A hold with a reason and no approver groups.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            groups: Vec::new(),
            request_id: None,
            watch: None,
        }
    }

    /// Sets what to wait for before asking again.
    pub fn with_watch(mut self, watch: Arc<dyn HoldWatch>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Sets the groups that may approve.
    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the approval request's identifier.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }
}
