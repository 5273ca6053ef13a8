//! The dlp plugin passes hoop-testkit's conformance check, with deployment settings that
//! define a custom info type.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hoop_core::Resources;
use hoop_plugin_dlp::{CustomTypeConfig, Dlp, DlpSettings};
use hoop_testkit::conformance::{self, Status};

#[tokio::test]
async fn the_dlp_plugin_conforms() {
    let settings = DlpSettings {
        custom_types: vec![CustomTypeConfig {
            name: "EMPLOYEE_ID".into(),
            regex: Some("EMP-[0-9]{6}".into()),
            ..CustomTypeConfig::default()
        }],
        ..DlpSettings::default()
    };
    let resources = Resources::new().with(Dlp::new(settings).unwrap());
    let report = conformance::check(hoop_plugin_dlp::REGISTRATION, &resources).await;
    println!("{report}");
    assert!(
        report.results.iter().all(|r| r.status == Status::Passed),
        "{report}"
    );
}

#[tokio::test]
async fn the_dlp_plugin_conforms_without_deployment_settings() {
    conformance::check(hoop_plugin_dlp::REGISTRATION, &Resources::new()).await;
}
