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
/// [`Metrics`], which are stored with the session when it ends.
#[derive(Debug)]
pub struct SessionCtx {
    info: Arc<SessionInfo>,
    /// Plugin-private per-session state, keyed by type.
    pub extensions: Extensions,
    /// Counters plugins add to; stored with the session.
    pub metrics: Metrics,
}

impl SessionCtx {
    /// A fresh context for a session.
    pub fn new(info: SessionInfo) -> Self {
        Self {
            info: Arc::new(info),
            extensions: Extensions::default(),
            metrics: Metrics::default(),
        }
    }

    /// The session this context belongs to.
    pub fn info(&self) -> &SessionInfo {
        &self.info
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
    fn metrics_add_up() {
        let mut m = Metrics::default();
        m.add("dlp.EMAIL_ADDRESS", 2);
        m.add("dlp.EMAIL_ADDRESS", 3);
        assert_eq!(m.get("dlp.EMAIL_ADDRESS"), 5);
        assert_eq!(m.get("missing"), 0);
        assert_eq!(m.iter().count(), 1);
    }
}
