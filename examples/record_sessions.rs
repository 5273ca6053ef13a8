//! Embedding the audit plugin: record sessions of your own service in tamper-evident files,
//! play a recording back, and verify it against the digest the session ended with.
//!
//! ```text
//! cargo run --example record_sessions
//! ```

use std::sync::Arc;

use anyhow::{Context, bail};
use hoop_core::{
    Chain, Chunk, CloseReason, ConnectionInfo, Outcome, PluginConfig, PluginFactory, Resources,
    SessionInfo, Stream, UserInfo, Verb,
};
use hoop_plugin_audit::recording::{Digest, FsRecordingStore, RecordingStore, SessionId, verify};
use hoop_plugin_audit::{AuditFactory, DIGEST_ATTRIBUTE, Recordings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(FsRecordingStore::new(dir.path().join("recordings")));

    // The host hands plugins what they need when it builds them: here, where recordings go.
    let resources = Resources::new().with(Recordings(store.clone()));
    let audit = AuditFactory.build(&PluginConfig::empty(), &resources)?;
    let chain = Chain::new(vec![audit]);

    let info = SessionInfo::new(
        "demo-session",
        UserInfo::new("alice"),
        ConnectionInfo::new("reports", "command"),
        Verb::Exec,
    );
    let mut session = chain.start(info);
    if !matches!(session.open().await?, Outcome::Continue) {
        bail!("the session did not open");
    }
    session
        .input(&mut Chunk::new(
            Stream::Stdin,
            "select count(*) from orders;\n",
        ))
        .await?;
    session
        .output(&mut Chunk::new(
            Stream::Stdout,
            " count \n-------\n    42\n",
        ))
        .await?;
    let cx = session
        .close(CloseReason::Exit { code: 0 })
        .await
        .context("the session was already closed")?;

    // The final digest belongs somewhere the recording's owner cannot rewrite: a database.
    let digest: Digest = cx
        .attributes
        .get(DIGEST_ATTRIBUTE)
        .context("the audit plugin attached no digest")?
        .parse()?;
    println!("recorded; final digest {digest}");

    let id = SessionId::new("demo-session")?;
    let mut reader = store.open(&id).await?;
    while let Some(event) = reader.next_event().await {
        let event = event?;
        println!(
            "  #{} {:>6} at {:?}: {:?}",
            event.index,
            event.kind.as_str(),
            event.offset(),
            String::from_utf8_lossy(&event.payload)
        );
    }
    let verified = verify(store.open(&id).await?, Some(&digest)).await?;
    println!(
        "verified: {} events, closed: {}",
        verified.events, verified.closed
    );
    if verified.events != 4 || !verified.closed {
        bail!("unexpected recording: {verified:?}");
    }
    Ok(())
}
