//! The indexer plugin passes hoop-testkit's conformance check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hoop_core::Resources;
use hoop_testkit::conformance::{self, Status};

#[tokio::test]
async fn the_indexer_plugin_conforms() {
    let report = conformance::check(hoop_plugin_indexer::REGISTRATION, &Resources::new()).await;
    println!("{report}");
    assert!(
        report.results.iter().all(|r| r.status == Status::Passed),
        "{report}"
    );
}
