//! The access_control plugin passes hoop-testkit's conformance check: it denies an outsider
//! by policy, and lets a member of the example config's groups through untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hoop_core::Resources;
use hoop_testkit::SessionBuilder;
use hoop_testkit::conformance::{self, Check, Conformance, Status};

#[tokio::test]
async fn the_access_control_plugin_conforms() {
    let factory = hoop_plugin_access_control::REGISTRATION;
    let resources = Resources::new();

    // The default session's user is in no group: denied on open, as NOT_FOUND would say.
    let report = conformance::check(factory, &resources).await;
    println!("{report}");
    let plain = report.result(Check::PlainSession).unwrap();
    assert_eq!(plain.status, Status::Skipped, "{report}");
    assert!(
        plain
            .detail
            .starts_with("open: denied by access_control: connection `conformance` not found"),
        "{report}"
    );

    // A member of `dba` (in the example config) runs a whole session.
    let report = Conformance::new(factory, &resources)
        .with_session(SessionBuilder::new().id("member").groups(["dba"]))
        .check()
        .await;
    println!("{report}");
    assert!(
        report.results.iter().all(|r| r.status == Status::Passed),
        "{report}"
    );
}
