//! How much a session's start costs through the agent (supervisor, exec helper) compared
//! with spawning the program directly, with the agent's ready slots and without them.
//! Ignored by default; run with
//! `cargo test --release -p hoop-agent --test overhead -- --ignored --nocapture`.
//!
//! The configurations take turns, one run each, so that a change of the machine's load
//! weighs on all of them alike. `HOOP_OVERHEAD_RUNS` sets the runs of each (100 by
//! default), `HOOP_OVERHEAD_PAUSE_MS` a pause before each run (0 by default: back to back,
//! as a benchmark does; slots are started again during a pause).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use hoop_agent::AgentOptions;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

/// One way of running `true`, and how long each run took.
struct Configuration {
    name: String,
    gateway: Option<Gateway>,
    times: Vec<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn spawn_overhead() {
    let runs = usize::try_from(env_number("HOOP_OVERHEAD_RUNS", 100)).unwrap();
    let pause = Duration::from_millis(env_number("HOOP_OVERHEAD_PAUSE_MS", 0));
    let mut users = vec![("the agent's user", None)];
    if common::is_root() {
        users.push(("nobody", Some("nobody".to_owned())));
    }
    let mut configurations = vec![Configuration {
        name: "direct".to_owned(),
        gateway: None,
        times: Vec::new(),
    }];
    for (user, run_as) in users {
        for without_slots in [false, true] {
            let options = AgentOptions {
                run_as: run_as.clone(),
                without_slots,
                ..common::options()
            };
            configurations.push(Configuration {
                name: format!(
                    "as {user}, {}",
                    if without_slots {
                        "without slots"
                    } else {
                        "with slots"
                    }
                ),
                gateway: Some(Gateway::with(options).await),
                times: Vec::new(),
            });
        }
    }
    // Every agent's slots are ready.
    common::eventually("the slots are ready", || {
        configurations.iter().all(|c| {
            c.gateway.as_ref().is_none_or(|g| {
                g.agent.stats().ready_slots
                    == if c.name.contains("without") {
                        0
                    } else {
                        hoop_agent::READY_SLOTS
                    }
            })
        })
    })
    .await;
    for i in 0..runs {
        for configuration in &mut configurations {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let started = Instant::now();
            match &mut configuration.gateway {
                None => {
                    let status = tokio::process::Command::new("true").status().await.unwrap();
                    assert!(status.success());
                }
                Some(gateway) => {
                    let id = format!("t{i}");
                    gateway.start_session(&id, &["true"], &[], None).await;
                    assert_eq!(gateway.finish(&id).await.exit_code, 0);
                }
            }
            configuration.times.push(started.elapsed());
        }
    }
    let direct = percentile(&mut configurations[0].times, 50);
    let mut report = format!("start-to-exit of `true`, {runs} runs of each, pause {pause:?}:");
    for configuration in &mut configurations {
        let (p50, p90) = (
            percentile(&mut configuration.times, 50),
            percentile(&mut configuration.times, 90),
        );
        report.push_str(&format!(
            "\n  {:<32} p50 {p50:>12.3?} p90 {p90:>12.3?}",
            configuration.name
        ));
        if let Some(gateway) = &configuration.gateway {
            let stats = gateway.agent.stats();
            report.push_str(&format!(
                "  added p50 {:>12.3?}  ({} from slots, {} fresh)",
                p50.saturating_sub(direct),
                stats.slot_starts,
                stats.fresh_starts
            ));
        }
    }
    println!("{report}");
}
