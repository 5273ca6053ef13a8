//! The clock that drives a writer's flush deadline: tokio's in production, a manual one in
//! tests.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

/// A monotonic clock, as time elapsed since an arbitrary origin.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time since the clock's origin.
    fn now(&self) -> Duration;

    /// Returns once [`Clock::now`] has reached `deadline`.
    async fn sleep_until(&self, deadline: Duration);
}

/// The real clock, backed by tokio's timer (so `tokio::time::pause` applies to it too).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn sleep_until(&self, deadline: Duration) {
        tokio::time::sleep_until(self.origin + deadline).await;
    }
}

/// A clock that only moves when told to: deterministic tests of time-driven behaviour.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<Duration>,
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        Self {
            now: watch::Sender::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward by `by`, waking whoever sleeps until a deadline now reached.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now = now.saturating_add(by));
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.borrow()
    }

    async fn sleep_until(&self, deadline: Duration) {
        let mut rx = self.now.subscribe();
        // The sender lives in `self`, so waiting cannot fail while we borrow it.
        let _ = rx.wait_for(|now| *now >= deadline).await;
    }
}
