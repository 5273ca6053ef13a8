//! The `review` plugin: holds sessions until members of the reviewer groups approve them
//! (access requests).
//!
//! Present on every connection and configured only through the connection: active iff its
//! `reviewers` list is non-empty. The config the gateway hands the factory is
//! `{"reviewers": [...], "min_approvals": n, "access_max_duration_ms": n}` (see
//! [`ReviewConfig`]; only `reviewers` is needed). Reviews live with the host, which
//! implements [`ReviewDesk`] over its database and provides it as the [`Reviews`] resource.
//!
//! # One-time reviews (`exec`)
//!
//! An `exec` runs only under an APPROVED one-time review of exactly its input and arguments,
//! and each review runs once.
//!
//! * **Without a ticket**, opening the session creates a PENDING review holding the
//!   requester, the connection, the exact input (and its SHA-256), the arguments and the
//!   reviewer groups, and the plugin returns [`Verdict::Hold`](hoop_core::Verdict::Hold) with the review's id as
//!   `request_id` and the groups. When the runtime asks again (`on_open` once more for the
//!   same session), the plugin reads the review: still PENDING → held again (the same
//!   review: no second one is created); APPROVED → it claims the review for this session
//!   ([`ReviewDesk::claim`], a compare-and-set APPROVED → EXECUTED, so exactly one session
//!   wins) and allows; REJECTED, REVOKED or EXPIRED → denied with a reason naming who
//!   decided and why (`review abc was rejected by bob (dba): not during business hours`).
//! * **With a ticket** (the id of a review the client presents, e.g. after its first
//!   session was held and then approved), the review must exist, be one-time, be of this
//!   connection, have been requested by this user, be APPROVED, and have the session's
//!   arguments (exactly) and input (compared by SHA-256). Anything else is denied with a
//!   precise reason (`review abc is PENDING, not APPROVED`, `the input differs from the
//!   reviewed input`, `review abc was requested by alice`, `review abc already ran (session
//!   xyz)`). Then it is claimed as above.
//!
//! # Time-based reviews (`connect`)
//!
//! A `connect` runs while the user holds an active grant on the connection: an APPROVED
//! [`ReviewKind::Jit`] review whose grant has not ended ([`ReviewDesk::active_grant`]).
//! Without one, the plugin creates a time-based review asking for the session's
//! `access_duration` (none → the connection's maximum, [`ReviewConfig::access_max_duration`];
//! longer than the maximum → denied, naming the maximum) and holds the session; asked again,
//! it allows once the review is approved with a grant that has not ended, holds while it is
//! pending, and denies when it was rejected, revoked or expired. A ticket on a `connect`
//! names the grant to use: it must be a time-based review of this user on this connection
//! whose grant is active, or the session is denied.
//!
//! A grant binds the arguments it was asked (and approved) with: a `connect` runs under a
//! grant only with exactly those arguments. With an active grant for other arguments, the
//! session is denied with a reason naming both lists (no second review is asked for while
//! the grant runs: the user revokes it to ask again).
//!
//! # Limits
//!
//! A desk may refuse a new review for a limit ([`DeskError::LimitReached`], e.g. too many
//! pending reviews of the requester): the session is denied with the desk's message.
//!
//! # What the session records
//!
//! When a review lets a session in, the plugin sets these session attributes (stored with
//! the session): [`ID_ATTRIBUTE`] (`review.id`), [`APPROVED_BY_ATTRIBUTE`]
//! (`review.approved_by`: the approving decisions as `user (group)`, comma-separated), and
//! for time-based grants [`GRANT_ENDS_AT_ATTRIBUTE`] (`review.grant_ends_at`: when the grant
//! ends, RFC 3339 in UTC to the second, e.g. `2025-01-31T17:00:00Z`).
//!
//! # Deciding
//!
//! Who sees a review, who approves or rejects it for which group, who revokes it and what a
//! reason may be are the [`rules`]: pure functions of a user and a review that hosts call
//! from their API (the gateway's `ReviewService`) and map to their answers.
//!
//! # Failing closed
//!
//! * Building the plugin without the [`Reviews`] resource is a configuration error, so a
//!   connection with reviewers never runs sessions unreviewed; [`ReviewFactory::validate`]
//!   (which has no resources) still checks the config.
//! * If the desk fails (e.g. the database is down), the hook returns an error and the chain
//!   ends the session.
//! * There is no bypass: an `exec` never runs without a one-time review approved for exactly
//!   its input, and a `connect` never runs without an active grant. Verbs the plugin does
//!   not know are denied.

mod deployment;
mod desk;
mod plugin;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use hoop_core::names::check_group_name;
use hoop_core::{
    Activation, AttachPolicy, ConfigError, Deployment, Implementation, ManagedField, Plugin,
    PluginConfig, PluginDescriptor, PluginFactory, Ports, Resources, StartError,
};

pub use crate::desk::{
    Decision, DeskError, NewReview, ReviewDesk, ReviewKind, ReviewRecord, ReviewStatus, Reviews,
    input_sha256,
};
pub use crate::plugin::ReviewPlugin;

/// Registry name of the plugin.
pub const NAME: &str = "review";

/// The connection field that configures the plugin: it is active iff the list is
/// non-empty.
pub const FIELD: &str = "reviewers";

/// The connection fields the plugin's config is made of: `reviewers`, `min_approvals`, and
/// `access_max_duration` (handed in milliseconds as `access_max_duration_ms`).
pub const MANAGED_FIELDS: &[ManagedField] = &[
    ManagedField::new(FIELD, "reviewers"),
    ManagedField::new("min_approvals", "min_approvals"),
    ManagedField::new("access_max_duration", "access_max_duration_ms"),
];

/// Session attribute holding the id of the review that let the session in.
pub const ID_ATTRIBUTE: &str = "review.id";
/// Session attribute holding who approved it: `user (group)` of each approving decision,
/// comma-separated (`bob (dba), carol (sre)`).
pub const APPROVED_BY_ATTRIBUTE: &str = "review.approved_by";
/// Session attribute holding when the time-based grant the session runs under ends (RFC
/// 3339, UTC, to the second: `2025-01-31T17:00:00Z`).
pub const GRANT_ENDS_AT_ATTRIBUTE: &str = "review.grant_ends_at";

/// How long time-based access may last when the connection does not say: 4 hours.
pub const DEFAULT_ACCESS_MAX_DURATION: Duration = Duration::from_secs(4 * 3600);
/// The shortest `access_max_duration_ms` a connection may set: one minute.
pub const MIN_ACCESS_MAX_DURATION: Duration = Duration::from_secs(60);
/// The longest `access_max_duration_ms` a connection may set: 30 days.
pub const MAX_ACCESS_MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The largest `min_approvals` a connection may set.
pub const MAX_MIN_APPROVALS: u32 = 64;

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Holds sessions until members of the reviewer groups approve (access requests): one-time \
     reviews of each exec's exact input, time-based grants for connect.",
)
.with_configuration(
    "managed by the connection: `reviewers` (group names; active iff non-empty), optional \
     `min_approvals` (1-64) and `access_max_duration_ms` (longest time-based grant, 1 minute \
     to 30 days, default 4 hours)",
    r#"{"reviewers":["dba"],"min_approvals":1,"access_max_duration_ms":14400000}"#,
)
.with_attach(AttachPolicy::Managed {
    field: FIELD,
    fields: MANAGED_FIELDS,
})
.with_order(-200)
.with_implementation(Implementation::Complete);

/// The review plugin's config, derived from the connection.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// Groups whose approval a session needs; the plugin is active iff non-empty.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// How many approving decisions a review needs (1 to [`MAX_MIN_APPROVALS`]); `None`
    /// leaves it to the host.
    #[serde(default)]
    pub min_approvals: Option<u32>,
    /// The longest time-based grant, in milliseconds ([`MIN_ACCESS_MAX_DURATION`] to
    /// [`MAX_ACCESS_MAX_DURATION`]); `None` means [`DEFAULT_ACCESS_MAX_DURATION`].
    #[serde(default)]
    pub access_max_duration_ms: Option<u64>,
}

impl ReviewConfig {
    /// Parses and checks a config.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field at fault.
    pub fn from_config(config: &PluginConfig) -> Result<Self, ConfigError> {
        let parsed: Self = config.parse()?;
        for (i, group) in parsed.reviewers.iter().enumerate() {
            check_group_name(group)
                .map_err(|e| ConfigError::field(format!("{FIELD}[{i}]"), e.to_string()))?;
            if parsed.reviewers[..i].contains(group) {
                return Err(ConfigError::field(
                    format!("{FIELD}[{i}]"),
                    format!("group `{group}` is listed twice"),
                ));
            }
        }
        if let Some(n) = parsed.min_approvals
            && !(1..=MAX_MIN_APPROVALS).contains(&n)
        {
            return Err(ConfigError::field(
                "min_approvals",
                format!("must be between 1 and {MAX_MIN_APPROVALS}, got {n}"),
            ));
        }
        if let Some(ms) = parsed.access_max_duration_ms {
            let (min, max) = (
                MIN_ACCESS_MAX_DURATION.as_millis(),
                MAX_ACCESS_MAX_DURATION.as_millis(),
            );
            if !(min..=max).contains(&u128::from(ms)) {
                return Err(ConfigError::field(
                    "access_max_duration_ms",
                    format!(
                        "must be between {min} (1 minute) and {max} (30 days) milliseconds, \
                         got {ms}"
                    ),
                ));
            }
        }
        Ok(parsed)
    }

    /// The longest time-based grant on the connection.
    pub fn access_max_duration(&self) -> Duration {
        self.access_max_duration_ms
            .map_or(DEFAULT_ACCESS_MAX_DURATION, Duration::from_millis)
    }
}

/// Factory of the review plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReviewFactory;

impl PluginFactory for ReviewFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        ReviewConfig::from_config(config).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match ReviewConfig::from_config(config) {
            Ok(c) if !c.reviewers.is_empty() => Activation::Active(format!(
                "sessions need approval by {}",
                c.reviewers.join(", ")
            )),
            _ => Activation::Inactive(
                "no reviewers on the connection: set them to require approvals".to_owned(),
            ),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let config = ReviewConfig::from_config(config)?;
        let Reviews(desk) = resources.get::<Reviews>().cloned().ok_or_else(|| {
            ConfigError::new(
                None,
                "the host provides no review desk (a `Reviews` resource): sessions on a \
                 connection with reviewers cannot run unreviewed",
            )
        })?;
        let plugin = ReviewPlugin::new(config, desk);
        let events = resources.get::<Ports>().and_then(|p| p.events.clone());
        Ok(Arc::new(match events {
            Some(events) => plugin.with_events(events),
            None => plugin,
        }))
    }

    /// Starts the expiry task and the grant watch (see the crate docs), when the host
    /// shares a review desk; without one no reviewed session can run, so there is nothing to
    /// watch.
    fn start(&self, deployment: &Deployment) -> Result<(), StartError> {
        match deployment.resources().get::<Reviews>() {
            Some(Reviews(desk)) => deployment::start(deployment, Arc::clone(desk)),
            None => Ok(()),
        }
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = ReviewFactory);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> PluginConfig {
        PluginConfig::from_value(value).unwrap()
    }

    fn groups(groups: &[&str]) -> PluginConfig {
        config(serde_json::json!({ "reviewers": groups }))
    }

    #[test]
    fn active_iff_reviewers_are_set() {
        assert!(!ReviewFactory.activation(&groups(&[])).is_active());
        assert!(
            ReviewFactory
                .activation(&groups(&["dba", "sre"]))
                .is_active()
        );
    }

    #[test]
    fn bad_group_names_are_named() {
        let err = ReviewFactory
            .validate(&groups(&["dba", "Ops Team"]))
            .unwrap_err();
        assert_eq!(err.field_path(), Some("reviewers[1]"));
        assert!(err.message().starts_with("group name must match"), "{err}");
        let err = ReviewFactory
            .validate(&groups(&["dba", "dba"]))
            .unwrap_err();
        assert_eq!(err.field_path(), Some("reviewers[1]"));
    }

    #[test]
    fn policy_keys_are_checked() {
        let ok = config(serde_json::json!({
            "reviewers": ["dba"], "min_approvals": 2, "access_max_duration_ms": 60_000
        }));
        assert!(ReviewFactory.validate(&ok).is_ok());
        let parsed = ReviewConfig::from_config(&ok).unwrap();
        assert_eq!(parsed.min_approvals, Some(2));
        assert_eq!(parsed.access_max_duration(), Duration::from_secs(60));
        assert_eq!(
            ReviewConfig::from_config(&groups(&["dba"]))
                .unwrap()
                .access_max_duration(),
            DEFAULT_ACCESS_MAX_DURATION
        );

        for (key, value) in [
            ("min_approvals", 0_u64),
            ("min_approvals", 65),
            ("access_max_duration_ms", 59_999),
            ("access_max_duration_ms", 30 * 24 * 3_600_000 + 1),
        ] {
            let bad = config(serde_json::json!({ "reviewers": ["dba"], key: value }));
            let err = ReviewFactory.validate(&bad).unwrap_err();
            assert_eq!(err.field_path(), Some(key), "{err}");
            assert!(err.message().starts_with("must be between"), "{err}");
        }
        let max = config(serde_json::json!({
            "reviewers": ["dba"], "min_approvals": 64, "access_max_duration_ms": 30 * 24 * 3_600_000_u64
        }));
        assert!(ReviewFactory.validate(&max).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let bad = config(serde_json::json!({ "reviewers": ["dba"], "min_approval": 1 }));
        let err = ReviewFactory.validate(&bad).unwrap_err();
        assert!(
            err.message().contains("unknown field `min_approval`"),
            "{err}"
        );
    }

    #[test]
    fn build_needs_the_desk_but_validate_does_not() {
        let config = groups(&["dba"]);
        assert!(ReviewFactory.validate(&config).is_ok());
        let err = ReviewFactory.build(&config, &Resources::new()).unwrap_err();
        assert!(err.message().contains("`Reviews` resource"), "{err}");
    }

    #[test]
    fn the_managed_fields_make_up_the_config() {
        let AttachPolicy::Managed { field, fields } = DESCRIPTOR.attach else {
            panic!("review is managed by the connection");
        };
        assert_eq!(field, FIELD);
        assert!(fields.iter().any(|f| f.connection_field == field));
        let example: serde_json::Value = serde_json::from_str(DESCRIPTOR.example_config).unwrap();
        let keys: Vec<&str> = fields.iter().map(|f| f.config_key).collect();
        let mut example_keys: Vec<&str> = example
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        example_keys.sort_unstable();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, example_keys);
    }

    #[test]
    fn descriptor_example_is_valid() {
        let example: serde_json::Value = serde_json::from_str(DESCRIPTOR.example_config).unwrap();
        assert!(ReviewFactory.validate(&config(example)).is_ok());
        assert_eq!(DESCRIPTOR.implementation, Implementation::Complete);
    }
}
