//! The decision a plugin hook returns.

use std::fmt;

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
/// The plugin never waits itself: the runtime parks the session and asks the holding plugin
/// again (by calling [`ChainSession::open`](crate::ChainSession::open) once more) when the
/// decision may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HoldRequest {
    /// Why the session is held, in words.
    pub reason: String,
    /// Groups that may approve it.
    pub groups: Vec<String>,
    /// Identifier of the approval request, if the plugin made one (e.g. a review id).
    pub request_id: Option<String>,
}

impl HoldRequest {
    /// A hold with a reason and no approver groups.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            groups: Vec::new(),
            request_id: None,
        }
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
