//! The runbooks plugin passes hoop-testkit's conformance check: a plain session (not a
//! runbook run) goes through untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hoop_core::Resources;
use hoop_testkit::conformance::{self, Status};

#[tokio::test]
async fn the_runbooks_plugin_conforms() {
    let report = conformance::check(hoop_plugin_runbooks::REGISTRATION, &Resources::new()).await;
    println!("{report}");
    assert!(
        report.results.iter().all(|r| r.status == Status::Passed),
        "{report}"
    );
}
