//! Embedding hoop-core in your own service: define a plugin, build a chain, run sessions.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example embed_hoop_core
//! ```
//!
//! Two plugins guard a made-up SQL console: `guardrail` refuses destructive statements and
//! `mask_digits` hides digits in the output, counting what it masked in the session's
//! metrics. The program drives one allowed and one denied session through the chain and
//! exits non-zero if the chain did not behave as described (CI runs it).

use std::sync::Arc;

use async_trait::async_trait;
use hoop_core::{
    Chain, Chunk, CloseReason, ConnectionInfo, Outcome, Plugin, PluginError, SessionCtx,
    SessionInfo, Stream, UserInfo, Verb, Verdict,
};

/// Denies input that contains a destructive statement.
#[derive(Debug)]
struct Guardrail {
    forbidden: Vec<String>,
}

#[async_trait]
impl Plugin for Guardrail {
    fn name(&self) -> &str {
        "guardrail"
    }

    async fn on_input(
        &self,
        _cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let text = String::from_utf8_lossy(&chunk.data).to_ascii_uppercase();
        match self
            .forbidden
            .iter()
            .find(|word| text.contains(word.as_str()))
        {
            Some(word) => Ok(Verdict::deny(format!(
                "`{word}` is not allowed on this connection"
            ))),
            None => Ok(Verdict::Allow),
        }
    }
}

/// Replaces every ASCII digit of the output with `#`.
#[derive(Debug)]
struct MaskDigits;

#[async_trait]
impl Plugin for MaskDigits {
    fn name(&self) -> &str {
        "mask_digits"
    }

    async fn on_output(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let mut masked = 0u64;
        let data: Vec<u8> = chunk
            .data
            .iter()
            .map(|&b| {
                if b.is_ascii_digit() {
                    masked += 1;
                    b'#'
                } else {
                    b
                }
            })
            .collect();
        chunk.data = data.into();
        cx.metrics.add("mask_digits.masked", masked);
        Ok(Verdict::Allow)
    }

    async fn on_close(&self, cx: &mut SessionCtx, reason: &CloseReason) {
        println!(
            "  [mask_digits] session {} closed ({reason}); masked {} digits",
            cx.info().id,
            cx.metrics.get("mask_digits.masked")
        );
    }
}

/// Runs one session: `input` goes in, `output` is what the target answers.
async fn run(chain: &Chain, id: &str, input: &str, output: &str) -> Result<String, String> {
    let user = UserInfo::new("alice").with_groups(["analysts"]);
    let info = SessionInfo::new(
        id,
        user,
        ConnectionInfo::new("sales-db", "command"),
        Verb::Exec,
    );
    let mut session = chain.start(info);
    if !matches!(session.open().await, Ok(Outcome::Continue)) {
        return Err("the session was not allowed to open".into());
    }
    let mut chunk = Chunk::new(Stream::Stdin, input.to_owned());
    match session.input(&mut chunk).await {
        Ok(Outcome::Continue) => {}
        Ok(Outcome::Denied { plugin, reason }) => {
            session.close(CloseReason::Exit { code: 1 }).await;
            return Err(format!("denied by {plugin}: {reason}"));
        }
        other => return Err(format!("unexpected outcome {other:?}")),
    }
    // ... here the target would run the input; we answer with `output` ...
    let mut chunk = Chunk::new(Stream::Stdout, output.to_owned());
    session
        .output(&mut chunk)
        .await
        .map_err(|e| e.to_string())?;
    session.close(CloseReason::Exit { code: 0 }).await;
    Ok(String::from_utf8_lossy(&chunk.data).into_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let chain = Chain::new(vec![
        Arc::new(Guardrail {
            forbidden: vec!["DROP TABLE".into(), "TRUNCATE".into()],
        }) as Arc<dyn Plugin>,
        Arc::new(MaskDigits),
    ]);
    println!("chain: {:?}", chain);

    println!("session 1: select");
    let shown = run(
        &chain,
        "s-1",
        "select name, card from customers;",
        "ada | 4111 1111 1111 1111\n",
    )
    .await?;
    print!("  user sees: {shown}");
    if shown != "ada | #### #### #### ####\n" {
        return Err(format!("digits were not masked: {shown:?}"));
    }

    println!("session 2: drop table");
    match run(&chain, "s-2", "drop table customers;", "").await {
        Err(reason) if reason.contains("DROP TABLE") => println!("  refused: {reason}"),
        other => return Err(format!("the drop was not refused: {other:?}")),
    }
    Ok(())
}
