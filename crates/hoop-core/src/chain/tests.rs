//! Unit tests of the chain with small test plugins.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{
    Chain, Chunk, CloseReason, ConnectionInfo, Error, HoldRequest, Outcome, Plugin, PluginError,
    SessionCtx, SessionInfo, Stream, UserInfo, Verb, Verdict,
};

type Log = Arc<Mutex<Vec<String>>>;

/// What a test plugin does on each hook.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Allow,
    Deny,
    Fail,
    Hold,
}

/// A plugin that logs every hook call and acts as configured.
#[derive(Debug)]
struct Probe {
    name: &'static str,
    log: Log,
    on_open: Mutex<Act>,
    on_chunk: Act,
    /// Upper-cases output chunks when set.
    shout: bool,
}

impl Probe {
    fn new(name: &'static str, log: &Log) -> Self {
        Self {
            name,
            log: Arc::clone(log),
            on_open: Mutex::new(Act::Allow),
            on_chunk: Act::Allow,
            shout: false,
        }
    }
    fn open(self, act: Act) -> Self {
        *self.on_open.lock().unwrap() = act;
        self
    }
    fn chunk(mut self, act: Act) -> Self {
        self.on_chunk = act;
        self
    }
    fn shout(mut self) -> Self {
        self.shout = true;
        self
    }
    fn note(&self, event: String) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{event}", self.name));
    }
    fn verdict(&self, act: Act) -> Result<Verdict, PluginError> {
        match act {
            Act::Allow => Ok(Verdict::Allow),
            Act::Deny => Ok(Verdict::deny(format!("{} says no", self.name))),
            Act::Fail => Err(PluginError::new(format!("{} broke", self.name))),
            Act::Hold => Ok(Verdict::Hold(
                HoldRequest::new("needs approval").with_groups(["dba"]),
            )),
        }
    }
}

#[async_trait]
impl Plugin for Probe {
    fn name(&self) -> &str {
        self.name
    }
    async fn on_open(&self, _cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        self.note("open".into());
        let act = *self.on_open.lock().unwrap();
        self.verdict(act)
    }
    async fn on_input(
        &self,
        _cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        self.note(format!("in:{}", String::from_utf8_lossy(&chunk.data)));
        self.verdict(self.on_chunk)
    }
    async fn on_output(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        self.note(format!(
            "{}:{}",
            chunk.stream.as_str(),
            String::from_utf8_lossy(&chunk.data)
        ));
        cx.metrics
            .add(format!("{}.bytes", self.name), chunk.data.len() as u64);
        if self.shout {
            chunk.data = chunk.data.to_ascii_uppercase().into();
        }
        self.verdict(self.on_chunk)
    }
    async fn on_close(&self, _cx: &mut SessionCtx, reason: &CloseReason) {
        self.note(format!("close:{reason}"));
    }
}

fn info() -> SessionInfo {
    SessionInfo::new(
        "s-1",
        UserInfo::new("alice").with_groups(["dev"]),
        ConnectionInfo::new("pg", "command"),
        Verb::Exec,
    )
}

fn chain(plugins: Vec<Probe>) -> Chain {
    Chain::new(
        plugins
            .into_iter()
            .map(|p| Arc::new(p) as Arc<dyn Plugin>)
            .collect(),
    )
}

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn hooks_run_in_order_and_see_earlier_rewrites() {
    let log = log();
    let chain = chain(vec![Probe::new("a", &log).shout(), Probe::new("b", &log)]);
    assert_eq!(chain.names().collect::<Vec<_>>(), ["a", "b"]);
    let mut session = chain.start(info());
    assert!(matches!(session.open().await.unwrap(), Outcome::Continue));
    assert!(session.is_open());

    let mut input = Chunk::new(Stream::Stdin, "select 1");
    assert!(matches!(
        session.input(&mut input).await.unwrap(),
        Outcome::Continue
    ));
    let mut out = Chunk::new(Stream::Stdout, "row");
    session.output(&mut out).await.unwrap();
    let mut err = Chunk::new(Stream::Stderr, "warn");
    session.output(&mut err).await.unwrap();
    assert_eq!(&out.data[..], b"ROW");
    assert_eq!(&err.data[..], b"WARN");

    let cx = session.close(CloseReason::Exit { code: 0 }).await.unwrap();
    assert_eq!(cx.metrics.get("a.bytes"), 7);
    assert_eq!(cx.metrics.get("b.bytes"), 7);
    assert_eq!(
        taken(&log),
        [
            "a:open",
            "b:open",
            "a:in:select 1",
            "b:in:select 1",
            "a:stdout:row",
            "b:stdout:ROW",
            "a:stderr:warn",
            "b:stderr:WARN",
            "a:close:exited with code 0",
            "b:close:exited with code 0",
        ]
    );
}

#[tokio::test]
async fn deny_on_open_stops_the_chain_but_every_plugin_closes_once() {
    let log = log();
    let chain = chain(vec![
        Probe::new("a", &log),
        Probe::new("b", &log).open(Act::Deny),
        Probe::new("c", &log),
    ]);
    let mut session = chain.start(info());
    match session.open().await.unwrap() {
        Outcome::Denied { plugin, reason } => {
            assert_eq!(plugin, "b");
            assert_eq!(reason.as_str(), "b says no");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert!(!session.is_open());
    let mut chunk = Chunk::new(Stream::Stdin, "x");
    assert!(matches!(session.input(&mut chunk).await, Err(Error::SessionEnded(id)) if id == "s-1"));
    assert!(matches!(session.open().await, Err(Error::SessionEnded(_))));

    // The caller's reason is replaced by what actually happened.
    session.close(CloseReason::ClientGone).await;
    assert_eq!(
        taken(&log),
        [
            "a:open",
            "b:open",
            "a:close:denied by b: b says no",
            "b:close:denied by b: b says no",
            "c:close:denied by b: b says no",
        ]
    );
}

#[tokio::test]
async fn a_failing_hook_fails_closed() {
    let log = log();
    let chain = chain(vec![
        Probe::new("a", &log).chunk(Act::Fail),
        Probe::new("b", &log),
    ]);
    let mut session = chain.start(info());
    session.open().await.unwrap();
    let mut chunk = Chunk::new(Stream::Stdout, "secret");
    match session.output(&mut chunk).await.unwrap() {
        Outcome::Failed { plugin, error } => {
            assert_eq!(plugin, "a");
            assert_eq!(error.to_string(), "a broke");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // b never saw the chunk, and nothing more flows.
    let mut next = Chunk::new(Stream::Stdout, "more");
    assert!(session.output(&mut next).await.is_err());
    assert_eq!(
        session.end_reason(),
        Some(&CloseReason::PluginFailed {
            plugin: "a".into(),
            error: "a broke".into()
        })
    );
    session.close(CloseReason::Exit { code: 0 }).await;
    assert_eq!(
        taken(&log),
        [
            "a:open",
            "b:open",
            "a:stdout:secret",
            "a:close:plugin a failed: a broke",
            "b:close:plugin a failed: a broke",
        ]
    );
}

#[tokio::test]
async fn a_failing_open_hook_fails_closed() {
    let log = log();
    let chain = chain(vec![
        Probe::new("a", &log).open(Act::Fail),
        Probe::new("b", &log),
    ]);
    let mut session = chain.start(info());
    assert!(
        matches!(session.open().await.unwrap(), Outcome::Failed { plugin, .. } if plugin == "a")
    );
    session.close(CloseReason::Exit { code: 0 }).await;
    assert_eq!(
        taken(&log),
        [
            "a:open",
            "a:close:plugin a failed: a broke",
            "b:close:plugin a failed: a broke"
        ]
    );
}

#[tokio::test]
async fn a_chunk_denial_ends_the_session() {
    let log = log();
    let chain = chain(vec![Probe::new("a", &log).chunk(Act::Deny)]);
    let mut session = chain.start(info());
    session.open().await.unwrap();
    let mut chunk = Chunk::new(Stream::Stdin, "drop table");
    assert!(matches!(
        session.input(&mut chunk).await.unwrap(),
        Outcome::Denied { .. }
    ));
    assert!(session.input(&mut chunk).await.is_err());
    session.close(CloseReason::Exit { code: 0 }).await;
    assert_eq!(
        taken(&log).last().unwrap(),
        "a:close:denied by a: a says no"
    );
}

#[tokio::test]
async fn hold_then_release_asks_only_the_holding_plugin_again() {
    let log = log();
    let holder = Arc::new(Probe::new("review", &log).open(Act::Hold));
    let plugins: Vec<Arc<dyn Plugin>> = vec![
        Arc::new(Probe::new("a", &log)),
        Arc::clone(&holder) as Arc<dyn Plugin>,
        Arc::new(Probe::new("c", &log)),
    ];
    let mut session = Chain::new(plugins).start(info());
    match session.open().await.unwrap() {
        Outcome::Held { plugin, request } => {
            assert_eq!(plugin, "review");
            assert_eq!(request.groups, ["dba"]);
        }
        other => panic!("expected a hold, got {other:?}"),
    }
    // Still held: chunks do not flow yet.
    let mut chunk = Chunk::new(Stream::Stdin, "x");
    assert!(session.input(&mut chunk).await.is_err());
    assert!(matches!(
        session.open().await.unwrap(),
        Outcome::Held { .. }
    ));

    *holder.on_open.lock().unwrap() = Act::Allow;
    assert!(matches!(session.open().await.unwrap(), Outcome::Continue));
    assert!(matches!(session.open().await.unwrap(), Outcome::Continue));
    session.close(CloseReason::Exit { code: 0 }).await;
    assert_eq!(
        taken(&log),
        [
            "a:open",
            "review:open",
            "review:open",
            "review:open",
            "c:open",
            "a:close:exited with code 0",
            "review:close:exited with code 0",
            "c:close:exited with code 0",
        ]
    );
}

/// Closes into a channel, so a test can wait for them without sleeping.
#[derive(Debug)]
struct CloseSignal(mpsc::UnboundedSender<CloseReason>);

#[async_trait]
impl Plugin for CloseSignal {
    fn name(&self) -> &str {
        "signal"
    }
    async fn on_close(&self, _cx: &mut SessionCtx, reason: &CloseReason) {
        let _ = self.0.send(reason.clone());
    }
}

#[tokio::test]
async fn a_dropped_session_is_closed_on_the_runtime() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let chain = Chain::new(vec![Arc::new(CloseSignal(tx))]);
    let mut session = chain.start(info());
    session.open().await.unwrap();
    drop(session);
    drop(chain);
    assert_eq!(rx.recv().await, Some(CloseReason::Abandoned));
    assert_eq!(rx.recv().await, None, "closed exactly once");
}

#[test]
fn a_dropped_session_is_closed_even_without_a_runtime() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let chain = Chain::new(vec![Arc::new(CloseSignal(tx))]);
    let session = chain.start(info());
    drop(session);
    drop(chain);
    assert_eq!(rx.blocking_recv(), Some(CloseReason::Abandoned));
    assert_eq!(rx.blocking_recv(), None, "closed exactly once");
}

#[tokio::test]
async fn an_empty_chain_lets_everything_through() {
    let chain = Chain::default();
    assert!(chain.is_empty());
    let mut session = chain.start(info());
    assert!(matches!(session.open().await.unwrap(), Outcome::Continue));
    let mut chunk = Chunk::new(Stream::Stdout, "data");
    assert!(matches!(
        session.output(&mut chunk).await.unwrap(),
        Outcome::Continue
    ));
    assert_eq!(&chunk.data[..], b"data");
    let cx = session.close(CloseReason::Exit { code: 3 }).await.unwrap();
    assert!(cx.metrics.is_empty());
}

/// Holds back the last byte of every output chunk until flushed; tags what it saw.
#[derive(Debug)]
struct Holder {
    held: Mutex<Vec<u8>>,
    holdback: std::time::Duration,
}

#[async_trait]
impl Plugin for Holder {
    fn name(&self) -> &str {
        "holder"
    }

    fn output_holdback(&self) -> Option<std::time::Duration> {
        Some(self.holdback)
    }

    async fn on_output(
        &self,
        _cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let mut held = self.held.lock().unwrap();
        held.extend_from_slice(&chunk.data);
        let keep = held.pop();
        chunk.data = std::mem::take(&mut *held).into();
        held.extend(keep);
        Ok(Verdict::Allow)
    }

    async fn on_output_flush(
        &self,
        _cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let mut data = chunk.data.to_vec();
        data.append(&mut self.held.lock().unwrap());
        chunk.data = data.into();
        Ok(Verdict::Allow)
    }
}

/// Upper-cases what passes through it, to show released bytes reach later plugins.
#[derive(Debug)]
struct Upper;

#[async_trait]
impl Plugin for Upper {
    fn name(&self) -> &str {
        "upper"
    }

    async fn on_output(
        &self,
        _cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        chunk.data = chunk.data.to_ascii_uppercase().into();
        Ok(Verdict::Allow)
    }
}

#[tokio::test]
async fn flushed_output_goes_through_the_later_plugins() {
    let holder = |ms| Holder {
        held: Mutex::new(Vec::new()),
        holdback: std::time::Duration::from_millis(ms),
    };
    let chain = Chain::new(vec![
        Arc::new(holder(80)),
        Arc::new(Upper),
        Arc::new(holder(50)),
    ]);
    let mut session = chain.start(info());
    assert_eq!(
        session.output_holdback(),
        Some(std::time::Duration::from_millis(50)),
        "the shortest holdback wins"
    );
    assert!(matches!(session.open().await.unwrap(), Outcome::Continue));
    let mut chunk = Chunk::new(Stream::Stdout, "abc");
    session.output(&mut chunk).await.unwrap();
    // The first holder keeps `c`, the last keeps `B`.
    assert_eq!(&chunk.data[..], b"A");
    let mut flushed = Chunk::new(Stream::Stdout, "");
    let outcome = session.flush_output(&mut flushed).await.unwrap();
    assert!(matches!(outcome, Outcome::Continue));
    assert_eq!(
        &flushed.data[..],
        b"BC",
        "released in order, through `upper`"
    );
    let mut again = Chunk::new(Stream::Stdout, "");
    session.flush_output(&mut again).await.unwrap();
    assert!(again.data.is_empty(), "nothing left to release");
    session.close(CloseReason::Exit { code: 0 }).await;
}

#[tokio::test]
async fn a_chain_without_holders_has_no_holdback() {
    let chain = Chain::new(vec![Arc::new(Upper)]);
    let mut session = chain.start(info());
    assert_eq!(session.output_holdback(), None);
    session.open().await.unwrap();
    let mut chunk = Chunk::new(Stream::Stderr, "");
    session.flush_output(&mut chunk).await.unwrap();
    assert!(chunk.data.is_empty());
    session.close(CloseReason::Exit { code: 0 }).await;
}

/// A hold watch the test releases by hand.
#[derive(Debug, Default)]
struct Gate(tokio::sync::Notify);

#[async_trait]
impl crate::HoldWatch for Gate {
    async fn changed(&self) {
        self.0.notified().await;
    }
}

/// A plugin that holds until its gate is opened and `release` is set.
#[derive(Debug)]
struct GatedHolder {
    log: Log,
    gate: Arc<Gate>,
    release: Arc<Mutex<bool>>,
}

#[async_trait]
impl Plugin for GatedHolder {
    fn name(&self) -> &str {
        "review"
    }
    async fn on_open(&self, _cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        self.log.lock().unwrap().push("review:open".into());
        if *self.release.lock().unwrap() {
            return Ok(Verdict::Allow);
        }
        Ok(Verdict::Hold(
            HoldRequest::new("needs approval")
                .with_groups(["dba"])
                .with_request_id("r-1")
                .with_watch(self.gate.clone()),
        ))
    }
    async fn on_close(&self, _cx: &mut SessionCtx, reason: &CloseReason) {
        self.log
            .lock()
            .unwrap()
            .push(format!("review:close:{reason}"));
    }
}

/// A host that hands out `next` as the refreshed chain, or refuses with `refuse`.
struct TestHost {
    held: Vec<String>,
    rechecks: usize,
    confirms: usize,
    next: Option<crate::Refreshed>,
    refuse: Option<String>,
}

impl TestHost {
    fn new(next: Option<crate::Refreshed>, refuse: Option<&str>) -> Self {
        Self {
            held: Vec::new(),
            rechecks: 0,
            confirms: 0,
            next,
            refuse: refuse.map(str::to_owned),
        }
    }
}

#[async_trait]
impl crate::HoldHost for TestHost {
    async fn held(&mut self, plugin: &str, request: &HoldRequest) {
        self.held.push(format!(
            "{plugin}:{}",
            request.request_id.clone().unwrap_or_default()
        ));
    }
    async fn recheck(&mut self, info: &SessionInfo) -> Result<crate::Refreshed, String> {
        self.rechecks += 1;
        if let Some(reason) = &self.refuse {
            return Err(reason.clone());
        }
        Ok(self.next.take().unwrap_or_else(|| crate::Refreshed {
            chain: Chain::default(),
            user: info.user.clone(),
            connection: info.connection.clone(),
        }))
    }
    async fn confirm(&mut self, _info: &SessionInfo) -> Result<(), String> {
        self.confirms += 1;
        Ok(())
    }
}

#[tokio::test]
async fn open_waiting_waits_on_the_watch_then_runs_the_refreshed_chain() {
    let log = log();
    let gate = Arc::new(Gate::default());
    let release = Arc::new(Mutex::new(false));
    let holder = Arc::new(GatedHolder {
        log: Arc::clone(&log),
        gate: Arc::clone(&gate),
        release: Arc::clone(&release),
    });
    let old: Vec<Arc<dyn Plugin>> = vec![
        Arc::new(Probe::new("gone", &log)),
        Arc::clone(&holder) as Arc<dyn Plugin>,
        Arc::new(Probe::new("audit", &log)),
    ];
    // While the session waits, `gone` is detached and `dlp` appears; the user gained a group.
    let new: Vec<Arc<dyn Plugin>> = vec![
        Arc::clone(&holder) as Arc<dyn Plugin>,
        Arc::new(Probe::new("dlp", &log)),
        Arc::new(Probe::new("audit", &log)),
    ];
    let refreshed = crate::Refreshed {
        chain: Chain::new(new),
        user: UserInfo::new("alice").with_groups(["dev", "oncall"]),
        connection: ConnectionInfo::new("pg", "command"),
    };
    let mut host = TestHost::new(Some(refreshed), None);
    let mut session = Chain::new(old).start(info());
    let waiting = async {
        let outcome = session
            .open_waiting(&mut host, std::time::Duration::from_secs(3600))
            .await
            .unwrap();
        (outcome, session)
    };
    let releaser = async {
        // The decision arrives: the watch fires once the session waits on it.
        while !log.lock().unwrap().iter().any(|l| l == "review:open") {
            tokio::task::yield_now().await;
        }
        *release.lock().unwrap() = true;
        gate.0.notify_one();
    };
    let ((outcome, session), ()) = tokio::join!(waiting, releaser);
    assert!(matches!(outcome, Outcome::Continue), "{outcome:?}");
    assert_eq!(host.held, ["review:r-1"]);
    assert_eq!(host.rechecks, 1);
    assert_eq!(host.confirms, 1, "confirmed once, when the hold lifted");
    assert_eq!(session.info().unwrap().user.groups, ["dev", "oncall"]);
    assert_eq!(session.info().unwrap().id.as_str(), "s-1");
    session.close(CloseReason::Exit { code: 0 }).await;
    assert_eq!(
        taken(&log),
        [
            "gone:open",
            "review:open",
            "gone:close:plugin detached while the session was held",
            "review:open",
            "dlp:open",
            "audit:open",
            "review:close:exited with code 0",
            "dlp:close:exited with code 0",
            "audit:close:exited with code 0",
        ]
    );
}

#[tokio::test]
async fn a_refused_recheck_denies_the_held_session() {
    let log = log();
    let mut host = TestHost::new(None, Some("user `alice` no longer exists"));
    // No watch: the host's re-check interval alone wakes the session.
    let mut session = chain(vec![Probe::new("review", &log).open(Act::Hold)]).start(info());
    let outcome = session
        .open_waiting(&mut host, std::time::Duration::from_millis(1))
        .await
        .unwrap();
    match outcome {
        Outcome::Denied { plugin, reason } => {
            assert_eq!(plugin, "review");
            assert_eq!(reason.as_str(), "user `alice` no longer exists");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(host.held, ["review:"]);
    assert!(
        session.open().await.is_err(),
        "a denied session stays ended"
    );
    let cx = session.close(CloseReason::Exit { code: 0 }).await.unwrap();
    assert_eq!(cx.info().id.as_str(), "s-1");
    assert_eq!(
        taken(&log),
        [
            "review:open",
            "review:close:denied by review: user `alice` no longer exists"
        ]
    );
}

/// A host whose re-check passes just before the decision lands (the approval and the user's
/// deletion both come after it): the hold lifts with the old check, and the confirmation
/// finds the user gone.
struct RacingHost {
    holder: Arc<GatedHolder>,
    plugins: Vec<Arc<dyn Plugin>>,
    deleted: bool,
}

#[async_trait]
impl crate::HoldHost for RacingHost {
    async fn held(&mut self, _plugin: &str, _request: &HoldRequest) {}
    async fn recheck(&mut self, info: &SessionInfo) -> Result<crate::Refreshed, String> {
        let refreshed = crate::Refreshed {
            chain: Chain::new(self.plugins.clone()),
            user: info.user.clone(),
            connection: info.connection.clone(),
        };
        // Right after this check: the user is deleted, then a reviewer approves.
        self.deleted = true;
        *self.holder.release.lock().unwrap() = true;
        Ok(refreshed)
    }
    async fn confirm(&mut self, info: &SessionInfo) -> Result<(), String> {
        if self.deleted {
            return Err(format!("user `{}` no longer exists", info.user.name));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_hold_lifted_after_the_last_recheck_is_confirmed_before_it_runs() {
    let log = log();
    let holder = Arc::new(GatedHolder {
        log: Arc::clone(&log),
        gate: Arc::new(Gate::default()),
        release: Arc::new(Mutex::new(false)),
    });
    let plugins: Vec<Arc<dyn Plugin>> = vec![
        Arc::clone(&holder) as Arc<dyn Plugin>,
        Arc::new(Probe::new("audit", &log)),
    ];
    let mut host = RacingHost {
        holder: Arc::clone(&holder),
        plugins: plugins.clone(),
        deleted: false,
    };
    let mut session = Chain::new(plugins).start(info());
    // No one opens the gate: the re-check interval wakes the session.
    let outcome = session
        .open_waiting(&mut host, std::time::Duration::from_millis(1))
        .await
        .unwrap();
    match outcome {
        Outcome::Denied { plugin, reason } => {
            assert_eq!(plugin, "review");
            assert_eq!(reason.as_str(), "user `alice` no longer exists");
        }
        other => panic!("the session must not run, got {other:?}"),
    }
    assert!(!session.is_open());
    assert!(
        session.open().await.is_err(),
        "a denied session stays ended"
    );
    session.close(CloseReason::Exit { code: 0 }).await;
    assert_eq!(
        taken(&log),
        [
            "review:open",
            "review:open",
            "audit:open",
            "review:close:denied by review: user `alice` no longer exists",
            "audit:close:denied by review: user `alice` no longer exists",
        ]
    );
}

#[tokio::test]
async fn a_session_that_was_never_held_is_not_confirmed() {
    let log = log();
    let mut host = TestHost::new(None, Some("never asked"));
    let mut session = chain(vec![Probe::new("audit", &log)]).start(info());
    let outcome = session
        .open_waiting(&mut host, std::time::Duration::from_millis(1))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Continue), "{outcome:?}");
    assert_eq!((host.rechecks, host.confirms), (0, 0));
    session.close(CloseReason::Exit { code: 0 }).await;
}
