//! The audit plugin in a chain: what a session leaves in its recording, and the digest it
//! attaches to the session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use hoop_core::{
    Chain, Chunk, CloseReason, ConnectionInfo, DenyReason, Outcome, Plugin, PluginConfig,
    PluginError, PluginFactory, Registry, Resources, SessionCtx, SessionInfo, Stream, UserInfo,
    Verb, Verdict,
};
use hoop_plugin_audit::recording::{
    Digest, EventKind, MemoryRecordingStore, RecordingStore, SessionId, VerifyFailure, verify,
};
use hoop_plugin_audit::{AuditFactory, DIGEST_ATTRIBUTE, EVENTS_ATTRIBUTE, Recordings};

fn info(id: &str) -> SessionInfo {
    SessionInfo::new(
        id,
        UserInfo::new("alice"),
        ConnectionInfo::new("bash", "command"),
        Verb::Exec,
    )
}

/// Masks digits, to show the recording holds what the user saw.
#[derive(Debug)]
struct MaskDigits;

#[async_trait]
impl Plugin for MaskDigits {
    fn name(&self) -> &str {
        "mask"
    }
    async fn on_output(
        &self,
        _: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let masked: Vec<u8> = chunk
            .data
            .iter()
            .map(|b| if b.is_ascii_digit() { b'*' } else { *b })
            .collect();
        chunk.data = masked.into();
        Ok(Verdict::Allow)
    }
}

#[derive(Debug)]
struct DenyAll;

#[async_trait]
impl Plugin for DenyAll {
    fn name(&self) -> &str {
        "deny"
    }
    async fn on_open(&self, _: &mut SessionCtx) -> Result<Verdict, PluginError> {
        Ok(Verdict::Deny(DenyReason::new("not today")))
    }
}

fn audit(store: &MemoryRecordingStore) -> Arc<dyn Plugin> {
    let resources = Resources::new().with(Recordings(Arc::new(store.clone())));
    AuditFactory
        .build(&PluginConfig::empty(), &resources)
        .unwrap()
}

async fn events(store: &MemoryRecordingStore, id: &str) -> Vec<(EventKind, Vec<u8>)> {
    let mut reader = store.open(&SessionId::new(id).unwrap()).await.unwrap();
    let mut out = Vec::new();
    while let Some(event) = reader.next_event().await {
        let event = event.unwrap();
        out.push((event.kind, event.payload.to_vec()));
    }
    out
}

#[tokio::test]
async fn records_what_the_user_saw_and_attaches_the_final_digest() {
    let store = MemoryRecordingStore::new();
    let chain = Chain::new(vec![Arc::new(MaskDigits), audit(&store)]);
    let mut session = chain.start(
        info("s1").with_request(hoop_core::SessionRequest::new().with_args(["-c", "echo 'a b'"])),
    );
    assert!(matches!(session.open().await.unwrap(), Outcome::Continue));
    let mut input = Chunk::new(Stream::Stdin, "echo 42\n");
    session.input(&mut input).await.unwrap();
    let mut empty = Chunk::new(Stream::Stdout, "");
    session.output(&mut empty).await.unwrap();
    let mut out = Chunk::new(Stream::Stdout, "card 4111\n");
    session.output(&mut out).await.unwrap();
    let mut err = Chunk::new(Stream::Stderr, vec![0xff, 0x00, b'7']);
    session.output(&mut err).await.unwrap();
    let cx = session.close(CloseReason::Exit { code: 3 }).await.unwrap();

    let recorded = events(&store, "s1").await;
    let kinds: Vec<EventKind> = recorded.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Header,
            EventKind::Stdin,
            EventKind::Stdout,
            EventKind::Stderr,
            EventKind::Close
        ]
    );
    assert_eq!(recorded[1].1, b"echo 42\n");
    assert_eq!(recorded[2].1, b"card ****\n");
    assert_eq!(recorded[3].1, [0xff, 0x00, b'*']);
    let header: serde_json::Value = serde_json::from_slice(&recorded[0].1).unwrap();
    assert_eq!(header["user"], "alice");
    assert_eq!(header["connection"], "bash");
    assert_eq!(header["args"], serde_json::json!(["-c", "echo 'a b'"]));
    let close: serde_json::Value = serde_json::from_slice(&recorded[4].1).unwrap();
    assert_eq!(close["exit_code"], 3);
    assert_eq!(close["reason"], "exited with code 3");

    assert_eq!(cx.attributes.get(EVENTS_ATTRIBUTE), Some("5"));
    let digest_hex = cx.attributes.get(DIGEST_ATTRIBUTE).unwrap();
    let digest = digest_hex.parse::<Digest>().unwrap();
    let reader = store.open(&SessionId::new("s1").unwrap()).await.unwrap();
    let verified = verify(reader, Some(&digest)).await.unwrap();
    assert_eq!(verified.events, 5);
    assert!(verified.closed);

    // Another digest does not verify.
    let other = "0".repeat(64).parse::<Digest>().unwrap();
    let reader = store.open(&SessionId::new("s1").unwrap()).await.unwrap();
    match verify(reader, Some(&other)).await {
        Err(hoop_plugin_audit::recording::RecordingError::Corrupt(e)) => {
            assert_eq!(e.reason, VerifyFailure::FinalDigestMismatch)
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_denied_before_audit_opened_is_still_on_record() {
    let store = MemoryRecordingStore::new();
    let chain = Chain::new(vec![Arc::new(DenyAll), audit(&store)]);
    let mut session = chain.start(info("s2"));
    assert!(matches!(
        session.open().await.unwrap(),
        Outcome::Denied { .. }
    ));
    let reason = session.end_reason().cloned().unwrap();
    let cx = session.close(reason).await.unwrap();
    let recorded = events(&store, "s2").await;
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].0, EventKind::Header);
    assert_eq!(recorded[1].0, EventKind::Close);
    let close: serde_json::Value = serde_json::from_slice(&recorded[1].1).unwrap();
    assert_eq!(close["reason"], "denied by deny: not today");
    assert!(cx.attributes.get(DIGEST_ATTRIBUTE).is_some());
}

#[tokio::test]
async fn a_second_session_with_the_same_id_fails_closed() {
    let store = MemoryRecordingStore::new();
    let chain = Chain::new(vec![audit(&store)]);
    let mut first = chain.start(info("dup"));
    first.open().await.unwrap();
    let mut second = chain.start(info("dup"));
    assert!(matches!(
        second.open().await.unwrap(),
        Outcome::Failed { .. }
    ));
    first.close(CloseReason::Exit { code: 0 }).await;
}

#[test]
fn building_without_a_recording_store_is_a_clear_error() {
    let err = AuditFactory
        .build(&PluginConfig::empty(), &Resources::new())
        .unwrap_err();
    assert!(err.to_string().contains("recording storage"), "{err}");
    // Validation needs no resources.
    assert!(AuditFactory.validate(&PluginConfig::empty()).is_ok());
    let config = PluginConfig::from_value(serde_json::json!({"path": "/tmp"})).unwrap();
    let err = AuditFactory.validate(&config).unwrap_err();
    assert!(err.to_string().contains("unknown field `path`"), "{err}");
}

#[test]
fn the_builtin_registry_holds_audit_as_always_active() {
    let _ = &hoop_plugin_audit::REGISTRATION;
    let registry = Registry::builtin().unwrap();
    let factory = registry.get("audit").unwrap();
    assert!(factory.activation(&PluginConfig::empty()).is_active());
}
