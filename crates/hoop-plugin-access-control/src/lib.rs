//! The `access_control` plugin: restricts who may see and use a connection.
//!
//! Attached explicitly with `{"groups": [...]}`: on that connection only members of those
//! groups (and of [`ADMIN_GROUP`]) may see the connection and open sessions or reviews on
//! it. To everyone else the connection does not exist: the host answers NOT_FOUND, exactly
//! as for a connection that was never created. An empty list leaves the connection to
//! admins alone.
//!
//! # Where it is enforced
//!
//! Visibility is the host's job: it asks every attachment of a connection
//! [`PluginFactory::admits`], which this plugin's factory answers with its rule
//! ([`AccessControlConfig::allows`]), and hides the connection from listings and answers
//! NOT_FOUND to any call on it, before a session is even recorded. The plugin itself is defense in depth: it runs first in the chain
//! (order -300) and its `on_open` denies a session whose user may not use the connection,
//! with a reason that says no more than NOT_FOUND would (`connection `pg` not found`).
//!
//! # Failing closed
//!
//! An attachment whose config does not parse or check restricts the connection to admins:
//! [`PluginFactory::admits`] answers the [`AccessControlConfig::from_config`] error, which
//! hosts treat so, and building the plugin fails, so the chain never runs with it.

use std::sync::Arc;

use async_trait::async_trait;
use hoop_core::names::check_group_name;
use hoop_core::{
    Activation, Admission, AttachPolicy, ConfigError, Implementation, Plugin, PluginConfig,
    PluginDescriptor, PluginError, PluginFactory, Resources, SessionCtx, UserInfo, Verdict,
};

/// Registry name of the plugin.
pub const NAME: &str = "access_control";

/// The group whose members may see and use every connection, whatever its groups.
pub const ADMIN_GROUP: &str = "admin";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Restricts which user groups can see and use the connection.",
)
.with_configuration(
    "`groups`: groups whose members (and admins) may see and use the connection; to \
     everyone else it does not exist (NOT_FOUND)",
    r#"{"groups":["dba","sre"]}"#,
)
.with_attach(AttachPolicy::Explicit)
.with_order(-300)
.with_implementation(Implementation::Complete);

/// The access_control plugin's config.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessControlConfig {
    /// Groups allowed on the connection (besides [`ADMIN_GROUP`]).
    pub groups: Vec<String>,
}

impl AccessControlConfig {
    /// Parses and checks a config.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field at fault. A host holding an attachment whose
    /// config fails here must let only admins see and use the connection.
    pub fn from_config(config: &PluginConfig) -> Result<Self, ConfigError> {
        let parsed: Self = config.parse()?;
        for (i, group) in parsed.groups.iter().enumerate() {
            check_group_name(group)
                .map_err(|e| ConfigError::field(format!("groups[{i}]"), e.to_string()))?;
        }
        Ok(parsed)
    }

    /// Whether a member of `user_groups` may see and use the connection: an admin, or a
    /// member of one of the allowed groups.
    pub fn allows<S: AsRef<str>>(&self, user_groups: &[S]) -> bool {
        user_groups.iter().any(|g| {
            let g = g.as_ref();
            g == ADMIN_GROUP || self.groups.iter().any(|allowed| allowed == g)
        })
    }
}

/// Factory of the access_control plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessControlFactory;

/// The access_control plugin on one connection.
#[derive(Debug)]
pub struct AccessControlPlugin {
    config: AccessControlConfig,
}

impl AccessControlPlugin {
    /// The allowed groups.
    pub fn groups(&self) -> &[String] {
        &self.config.groups
    }
}

#[async_trait]
impl Plugin for AccessControlPlugin {
    fn name(&self) -> &str {
        NAME
    }

    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        let info = cx.info();
        if self.config.allows(&info.user.groups) {
            Ok(Verdict::Allow)
        } else {
            // No more than NOT_FOUND says: the connection's groups stay unnamed.
            Ok(Verdict::deny(format!(
                "connection `{}` not found",
                info.connection.name
            )))
        }
    }
}

impl PluginFactory for AccessControlFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        AccessControlConfig::from_config(config).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match AccessControlConfig::from_config(config) {
            Ok(c) if c.groups.is_empty() => Activation::Active(
                "only admins may see and use this connection; to everyone else it does not \
                 exist"
                    .to_owned(),
            ),
            Ok(c) => Activation::Active(format!(
                "only members of {} (and admins) may see and use this connection; to everyone \
                 else it does not exist",
                c.groups.join(", ")
            )),
            Err(e) => Activation::Inactive(format!(
                "invalid config: {e}; until it is fixed only admins may see and use this \
                 connection"
            )),
        }
    }

    /// Members of the config's groups and admins are [`Admission::Admitted`], everyone
    /// else [`Admission::Refused`].
    fn admits(&self, config: &PluginConfig, user: &UserInfo) -> Result<Admission, ConfigError> {
        let config = AccessControlConfig::from_config(config)?;
        Ok(if config.allows(&user.groups) {
            Admission::Admitted
        } else {
            Admission::Refused
        })
    }

    fn build(
        &self,
        config: &PluginConfig,
        _resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let config = AccessControlConfig::from_config(config)?;
        Ok(Arc::new(AccessControlPlugin { config }))
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = AccessControlFactory);

#[cfg(test)]
mod tests {
    use hoop_core::{ConnectionInfo, SessionInfo, UserInfo, Verb};

    use super::*;

    fn config(value: serde_json::Value) -> PluginConfig {
        PluginConfig::from_value(value).unwrap()
    }

    fn plugin(groups: &[&str]) -> Arc<dyn Plugin> {
        AccessControlFactory
            .build(
                &config(serde_json::json!({ "groups": groups })),
                &Resources::default(),
            )
            .unwrap()
    }

    async fn open(plugin: &dyn Plugin, user_groups: &[&str]) -> Verdict {
        let info = SessionInfo::new(
            "s1",
            UserInfo::new("alice").with_groups(user_groups.iter().copied()),
            ConnectionInfo::new("pg-prod", "command"),
            Verb::Exec,
        );
        plugin.on_open(&mut SessionCtx::new(info)).await.unwrap()
    }

    #[test]
    fn groups_are_required_and_checked() {
        let err = AccessControlFactory
            .validate(&PluginConfig::empty())
            .unwrap_err();
        assert!(err.message().contains("missing field `groups`"), "{err}");
        let bad = config(serde_json::json!({"groups": ["a b"]}));
        assert_eq!(
            AccessControlFactory
                .validate(&bad)
                .unwrap_err()
                .field_path(),
            Some("groups[0]")
        );
        let unknown = config(serde_json::json!({"groups": [], "users": ["bob"]}));
        assert!(AccessControlFactory.validate(&unknown).is_err());
        assert!(
            AccessControlFactory
                .build(&bad, &Resources::default())
                .is_err()
        );
    }

    #[test]
    fn members_and_admins_are_allowed_and_nobody_else() {
        let c = AccessControlConfig {
            groups: vec!["dba".into(), "sre".into()],
        };
        assert!(c.allows(&["dev", "sre"]));
        assert!(c.allows(&["dba"]));
        assert!(c.allows(&[ADMIN_GROUP]));
        assert!(!c.allows(&["dev"]));
        assert!(!c.allows::<&str>(&[]));
        // Group names are matched exactly.
        assert!(!c.allows(&["DBA", "dba-ro", "admins"]));
        let admins_only = AccessControlConfig::default();
        assert!(admins_only.allows(&["admin", "dev"]));
        assert!(!admins_only.allows(&["dba"]));
    }

    #[test]
    fn the_factory_admits_members_and_admins_and_refuses_the_rest() {
        let user = |groups: &[&str]| UserInfo::new("u").with_groups(groups.iter().copied());
        let c = config(serde_json::json!({"groups": ["dba", "sre"]}));
        let admits = |groups: &[&str]| AccessControlFactory.admits(&c, &user(groups)).unwrap();
        assert_eq!(admits(&["dev", "sre"]), Admission::Admitted);
        assert_eq!(admits(&["dba"]), Admission::Admitted);
        assert_eq!(admits(&[ADMIN_GROUP]), Admission::Admitted);
        assert_eq!(admits(&["dev"]), Admission::Refused);
        assert_eq!(admits(&["auditor"]), Admission::Refused);
        assert_eq!(admits(&[]), Admission::Refused);
        let admins_only = config(serde_json::json!({"groups": []}));
        assert_eq!(
            AccessControlFactory.admits(&admins_only, &user(&["dba"])),
            Ok(Admission::Refused)
        );
        // A config that does not check is an error: hosts then leave the connection to
        // admins.
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"groups": "dba"}),
            serde_json::json!({"groups": ["Not A Group"]}),
            serde_json::json!({"groups": ["dba"], "extra": 1}),
        ] {
            assert!(
                AccessControlFactory
                    .admits(&config(bad.clone()), &user(&["dba"]))
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_status_names_the_groups_and_bad_configs_are_inactive() {
        let active = AccessControlFactory.activation(&config(serde_json::json!({
            "groups": ["dba", "sre"]
        })));
        assert!(active.is_active());
        assert_eq!(
            active.status(),
            "only members of dba, sre (and admins) may see and use this connection; to \
             everyone else it does not exist"
        );
        let admins = AccessControlFactory.activation(&config(serde_json::json!({"groups": []})));
        assert!(admins.is_active());
        assert!(admins.status().starts_with("only admins"), "{admins:?}");
        let bad = AccessControlFactory.activation(&PluginConfig::empty());
        assert!(!bad.is_active());
        assert!(bad.status().contains("only admins"), "{bad:?}");
    }

    #[test]
    fn the_descriptor_is_complete_runs_first_and_its_example_is_valid() {
        let d = AccessControlFactory.descriptor();
        assert_eq!(d.implementation, Implementation::Complete);
        assert_eq!(d.attach, AttachPolicy::Explicit);
        assert_eq!(d.order, -300);
        let example: serde_json::Value = serde_json::from_str(d.example_config).unwrap();
        AccessControlFactory.validate(&config(example)).unwrap();
    }

    #[tokio::test]
    async fn on_open_denies_outsiders_saying_no_more_than_not_found() {
        let p = plugin(&["dba"]);
        assert_eq!(p.name(), NAME);
        assert_eq!(open(p.as_ref(), &["dba"]).await, Verdict::Allow);
        assert_eq!(open(p.as_ref(), &["dev", "admin"]).await, Verdict::Allow);
        let denied = open(p.as_ref(), &["dev"]).await;
        assert_eq!(denied, Verdict::deny("connection `pg-prod` not found"));
        let Verdict::Deny(reason) = denied else {
            unreachable!()
        };
        assert!(!reason.as_str().contains("dba"), "{reason}");
        assert_eq!(
            open(p.as_ref(), &[]).await,
            Verdict::deny("connection `pg-prod` not found")
        );
        let admins_only = plugin(&[]);
        assert_eq!(open(admins_only.as_ref(), &["admin"]).await, Verdict::Allow);
        assert!(matches!(
            open(admins_only.as_ref(), &["dba"]).await,
            Verdict::Deny(_)
        ));
    }
}
