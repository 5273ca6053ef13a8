//! How much a session's start costs through the agent (supervisor, exec helper) compared
//! with spawning the program directly. Ignored by default; run with
//! `cargo test -p hoop-agent --test overhead -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Gateway;

const RUNS: usize = 50;

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn spawn_overhead() {
    let mut direct = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = tokio::process::Command::new("true").status().await.unwrap();
        assert!(status.success());
        direct.push(started.elapsed());
    }
    let mut report = format!(
        "start-to-exit of `true`, {RUNS} runs: direct p50 {:?} p90 {:?}",
        percentile(&mut direct, 50),
        percentile(&mut direct, 90)
    );
    let mut configurations = vec![("as the agent's user", common::options())];
    if common::is_root() {
        configurations.push((
            "as nobody",
            hoop_agent::AgentOptions {
                run_as: Some("nobody".to_owned()),
                ..common::options()
            },
        ));
    }
    for (name, options) in configurations {
        let mut gateway = Gateway::with(options).await;
        let mut agent = Vec::with_capacity(RUNS);
        for i in 0..RUNS {
            let id = format!("t{i}");
            let started = Instant::now();
            gateway.start_session(&id, &["true"], &[], None).await;
            assert_eq!(gateway.finish(&id).await.exit_code, 0);
            agent.push(started.elapsed());
        }
        let (a50, a90) = (percentile(&mut agent, 50), percentile(&mut agent, 90));
        report.push_str(&format!(
            "; through the agent {name}: p50 {a50:?} p90 {a90:?} (added p50 {:?})",
            a50.saturating_sub(percentile(&mut direct, 50))
        ));
    }
    println!("{report}");
}
