//! The audit plugin passes hoop-testkit's conformance check, and a session denied before it
//! opened is still on record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use hoop_core::Resources;
use hoop_plugin_audit::recording::{EventKind, MemoryRecordingStore, RecordingStore, SessionId};
use hoop_plugin_audit::{DIGEST_ATTRIBUTE, Recordings};
use hoop_testkit::conformance::{self, Check, Status};

#[tokio::test]
async fn the_audit_plugin_conforms() {
    let store = MemoryRecordingStore::new();
    let resources = Resources::new().with(Recordings(Arc::new(store.clone())));
    let report = conformance::check(hoop_plugin_audit::REGISTRATION, &resources).await;
    println!("{report}");
    assert!(
        report.results.iter().all(|r| r.status == Status::Passed),
        "{report}"
    );
    let plain = &report.result(Check::PlainSession).unwrap().detail;
    assert!(plain.contains(DIGEST_ATTRIBUTE), "{plain}");

    // The session the probe denied before audit's on_open ran has a recording: header and
    // close.
    let mut reader = store
        .open(&SessionId::new("conformance-deny-open").unwrap())
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while let Some(event) = reader.next_event().await {
        kinds.push(event.unwrap().kind);
    }
    assert_eq!(kinds, [EventKind::Header, EventKind::Close]);
}
