//! Per-session state shared by the plugins of a chain.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::session::SessionInfo;

/// The per-session context every hook receives.
///
/// It carries the read-only [`SessionInfo`], a typed [`Extensions`] map where each plugin
/// keeps its private per-session state (under a newtype of its own), and the session's
/// [`Metrics`] and [`Attributes`], which are stored with the session when it ends.
#[derive(Debug)]
pub struct SessionCtx {
    info: Arc<SessionInfo>,
    /// Plugin-private per-session state, keyed by type.
    pub extensions: Extensions,
    /// Counters plugins add to; stored with the session.
    pub metrics: Metrics,
    /// Named text values plugins attach to the session (e.g. `audit.digest`, the final
    /// digest of its recording); stored with the session.
    pub attributes: Attributes,
}

impl SessionCtx {
    /// A fresh context for a session. A runbook run's attributes start with the runbook's
    /// ([`RunbookRef::attributes`](crate::RunbookRef::attributes)).
    pub fn new(info: SessionInfo) -> Self {
        let mut attributes = Attributes::default();
        if let Some(runbook) = &info.request.runbook {
            for (name, value) in runbook.attributes() {
                attributes.set(name, value);
            }
        }
        Self {
            info: Arc::new(info),
            extensions: Extensions::default(),
            metrics: Metrics::default(),
            attributes,
        }
    }

    /// The session this context belongs to.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// Replaces the session info (the host re-read the user and the connection while the
    /// session was held); the session's id stays.
    pub(crate) fn set_info(&mut self, info: SessionInfo) {
        self.info = Arc::new(info);
    }

    /// A shared handle to the session info, for work that outlives the hook.
    pub fn info_arc(&self) -> Arc<SessionInfo> {
        Arc::clone(&self.info)
    }
}

/// A map from type to value: each plugin stores its per-session state under its own type.
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Stores `value`, returning the previous value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> Option<T> {
        self.map
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// The value of type `T`, if stored.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }

    /// The value of type `T`, mutably, if stored.
    pub fn get_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        self.map
            .get_mut(&TypeId::of::<T>())
            .and_then(|v| v.downcast_mut::<T>())
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<T> {
        self.map
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.map.len())
            .finish()
    }
}

/// Named counters of a session (e.g. `dlp.EMAIL_ADDRESS` → masked values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics(BTreeMap<String, u64>);

impl Metrics {
    /// Adds `n` to the counter `name`, creating it at zero.
    pub fn add(&mut self, name: impl Into<String>, n: u64) {
        let counter = self.0.entry(name.into()).or_insert(0);
        *counter = counter.saturating_add(n);
    }

    /// The value of counter `name` (zero if absent).
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Every counter, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Whether no counter was set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Named text values of a session (e.g. `audit.digest`). Names are conventionally prefixed
/// with the plugin's name and a dot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    /// Sets `name` to `value`, returning the previous value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(name.into(), value.into())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every attribute, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no attribute was set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the host (the gateway, or an embedding service) shares with every plugin it builds:
/// storage handles, a data directory and the like, each stored under its own type.
///
/// A plugin that needs a resource looks it up in [`PluginFactory::build`] and fails with a
/// [`ConfigError`] naming it when the host did not provide it.
///
/// [`PluginFactory::build`]: crate::PluginFactory::build
/// [`ConfigError`]: crate::ConfigError
#[derive(Debug, Default)]
pub struct Resources {
    values: Extensions,
}

impl Resources {
    /// No resources.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` (replacing one of the same type) and returns the set.
    #[must_use]
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.values.insert(value);
        self
    }

    /// Adds `value`, returning the previous value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> Option<T> {
        self.values.insert(value)
    }

    /// The resource of type `T`, if provided.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values.get::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Count(u32);

    #[test]
    fn extensions_keep_one_value_per_type() {
        let mut ext = Extensions::default();
        assert_eq!(ext.insert(Count(1)), None);
        assert_eq!(ext.insert(Count(2)), Some(Count(1)));
        ext.get_mut::<Count>().unwrap().0 += 1;
        assert_eq!(ext.get::<Count>(), Some(&Count(3)));
        assert_eq!(ext.remove::<Count>(), Some(Count(3)));
        assert!(ext.is_empty());
    }

    #[test]
    fn a_runbook_run_starts_with_the_runbooks_attributes() {
        use crate::session::{ConnectionInfo, RunbookRef, SessionRequest, UserInfo, Verb};
        let plain = SessionInfo::new(
            "s",
            UserInfo::new("u"),
            ConnectionInfo::new("c", "command"),
            Verb::Exec,
        );
        assert!(SessionCtx::new(plain.clone()).attributes.is_empty());
        let run = plain.with_request(SessionRequest::new().with_runbook(RunbookRef::new(
            "ops",
            "refund.runbook.sql",
            "abc",
        )));
        let cx = SessionCtx::new(run);
        assert_eq!(cx.attributes.get("runbooks.repository"), Some("ops"));
        assert_eq!(
            cx.attributes.get("runbooks.path"),
            Some("refund.runbook.sql")
        );
        assert_eq!(cx.attributes.get("runbooks.commit"), Some("abc"));
    }

    #[test]
    fn attributes_and_resources_keep_values() {
        let mut a = Attributes::default();
        assert_eq!(a.set("audit.digest", "ab"), None);
        assert_eq!(a.set("audit.digest", "cd").as_deref(), Some("ab"));
        assert_eq!(a.get("audit.digest"), Some("cd"));
        assert_eq!(a.iter().count(), 1);
        let r = Resources::new().with(Count(7));
        assert_eq!(r.get::<Count>(), Some(&Count(7)));
        assert_eq!(r.get::<String>(), None);
    }

    #[test]
    fn metrics_add_up() {
        let mut m = Metrics::default();
        m.add("dlp.EMAIL_ADDRESS", 2);
        m.add("dlp.EMAIL_ADDRESS", 3);
        assert_eq!(m.get("dlp.EMAIL_ADDRESS"), 5);
        assert_eq!(m.get("missing"), 0);
        assert_eq!(m.iter().count(), 1);
    }
}
