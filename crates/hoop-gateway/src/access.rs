//! Who may see and use a connection: the rule of the `access_control` plugin, enforced by
//! the gateway before anything reaches the plugin chain.
//!
//! A connection with an `access_control` attachment exists only for members of the groups
//! in its config and for admins. To everyone else every call naming it answers NOT_FOUND
//! with the very message of a connection that does not exist ([`connection_not_found`]),
//! listings leave it out, and so do the reviews of sessions on it. An attachment whose
//! stored config is invalid, or that this gateway cannot interpret (plugin not built in),
//! leaves the connection to admins: access control fails closed.
//!
//! Session records are not filtered: a user keeps seeing their own, and `auditor`s keep
//! reading every session record, recordings included, because auditing them is their job.
//! Auditors still neither see the connection nor open sessions or reviews on it.

use std::collections::{BTreeMap, BTreeSet};

use hoop_store::{Attachment, Store, StoreError};

use crate::auth::Caller;
use crate::error::Error;

/// Registry name of the plugin whose attachment restricts a connection.
pub(crate) const PLUGIN: &str = "access_control";

/// The NOT_FOUND answer for connection `name`: byte for byte what a connection that does
/// not exist gets.
pub(crate) fn connection_not_found(name: &str) -> Error {
    Error::from(StoreError::NotFound {
        kind: "connection",
        name: name.to_owned(),
    })
}

/// Whether `caller` may see and use a connection with these attachments: always for
/// admins; otherwise every `access_control` attachment must let one of the caller's groups
/// in (none attached: everyone may).
pub(crate) fn allows(caller: &Caller, attachments: &[Attachment]) -> bool {
    caller.is_admin()
        || attachments
            .iter()
            .filter(|a| a.plugin == PLUGIN)
            .all(|a| config_allows(&a.config, &caller.user.groups))
}

/// Whether an `access_control` config lets a member of `groups` in; `false` if the config
/// is invalid.
#[cfg(feature = "plugin-access-control")]
fn config_allows(config: &serde_json::Value, groups: &[String]) -> bool {
    use hoop_plugin_access_control::AccessControlConfig;
    let parsed = hoop_core::PluginConfig::from_value(config.clone())
        .and_then(|c| AccessControlConfig::from_config(&c));
    match parsed {
        Ok(config) => config.allows(groups),
        Err(err) => {
            tracing::warn!(error = %err, "invalid stored access_control config: the connection is left to admins");
            false
        }
    }
}

/// Without the plugin built in, its attachments cannot be read: only admins pass.
#[cfg(not(feature = "plugin-access-control"))]
fn config_allows(_config: &serde_json::Value, _groups: &[String]) -> bool {
    tracing::warn!(
        "an access_control attachment is stored but the plugin is not built into this \
         gateway: the connection is left to admins"
    );
    false
}

/// The attachments of connection `name` if the caller may see it; NOT_FOUND, as if it did
/// not exist, if there is none or the caller may not.
pub(crate) async fn visible_attachments(
    store: &Store,
    caller: &Caller,
    name: &str,
) -> Result<Vec<Attachment>, Error> {
    let attachments = store.list_attachments(name).await?;
    if allows(caller, &attachments) {
        Ok(attachments)
    } else {
        Err(connection_not_found(name))
    }
}

/// Which connections the caller may see and use, by name, remembered across calls (for
/// listings of records of many connections, e.g. reviews).
///
/// A connection that no longer exists has no attachments, so it is not hidden: what is
/// left of it (its reviews) follows the rules of those records alone.
#[derive(Debug, Default)]
pub(crate) struct AccessCache {
    known: BTreeMap<String, bool>,
}

impl AccessCache {
    /// Looks up the connections of `names` not known yet.
    pub(crate) async fn learn<'a>(
        &mut self,
        store: &Store,
        caller: &Caller,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Error> {
        if caller.is_admin() {
            return Ok(());
        }
        let unknown: BTreeSet<&str> = names
            .into_iter()
            .filter(|n| !self.known.contains_key(*n))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let unknown: Vec<String> = unknown.into_iter().map(str::to_owned).collect();
        let mut attachments = store.attachments_of(&unknown).await?;
        for name in unknown {
            let mine = attachments.remove(&name).unwrap_or_default();
            let allowed = allows(caller, &mine);
            self.known.insert(name, allowed);
        }
        Ok(())
    }

    /// Whether the caller may see connection `name` (looked up with [`learn`](Self::learn)
    /// first; one not looked up is hidden, failing closed).
    pub(crate) fn allows(&self, caller: &Caller, name: &str) -> bool {
        caller.is_admin() || self.known.get(name).copied().unwrap_or(false)
    }
}

/// Whether the caller may see and use connection `name`, which may no longer exist (then
/// nothing restricts it).
pub(crate) async fn allows_name(store: &Store, caller: &Caller, name: &str) -> Result<bool, Error> {
    let mut cache = AccessCache::default();
    cache.learn(store, caller, [name]).await?;
    Ok(cache.allows(caller, name))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use hoop_store::User;
    use serde_json::json;

    use super::*;
    use crate::auth::Credential;

    fn caller(groups: &[&str]) -> Caller {
        Caller {
            user: User {
                name: "u".into(),
                email: String::new(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            },
            credential: Credential::AdminToken,
        }
    }

    fn attachment(plugin: &str, config: serde_json::Value) -> Attachment {
        Attachment {
            plugin: plugin.into(),
            config,
            enabled: true,
        }
    }

    #[test]
    fn connections_without_access_control_are_open_to_everyone() {
        let attachments = [
            attachment("audit", json!({})),
            attachment("review", json!({"reviewers": ["dba"]})),
        ];
        assert!(allows(&caller(&[]), &attachments));
        assert!(allows(&caller(&["dev"]), &[]));
    }

    #[cfg(feature = "plugin-access-control")]
    #[test]
    fn access_control_lets_in_its_groups_and_admins() {
        let attachments = [
            attachment("audit", json!({})),
            attachment(PLUGIN, json!({"groups": ["dba", "sre"]})),
        ];
        assert!(allows(&caller(&["dev", "sre"]), &attachments));
        assert!(allows(&caller(&["dba"]), &attachments));
        assert!(allows(&caller(&["admin"]), &attachments));
        assert!(!allows(&caller(&["dev"]), &attachments));
        assert!(!allows(&caller(&["auditor"]), &attachments));
        assert!(!allows(&caller(&[]), &attachments));
        let admins_only = [attachment(PLUGIN, json!({"groups": []}))];
        assert!(!allows(&caller(&["dba"]), &admins_only));
        assert!(allows(&caller(&["admin"]), &admins_only));
        // Disabled or not, an attachment restricts.
        let mut disabled = attachment(PLUGIN, json!({"groups": ["dba"]}));
        disabled.enabled = false;
        assert!(!allows(&caller(&["dev"]), &[disabled]));
    }

    #[test]
    fn invalid_stored_configs_fail_closed() {
        for config in [
            json!({}),
            json!({"groups": "dba"}),
            json!({"groups": ["Not A Group"]}),
            json!({"groups": ["dba"], "extra": 1}),
            json!(["dba"]),
            serde_json::Value::Null,
        ] {
            let attachments = [attachment(PLUGIN, config.clone())];
            assert!(!allows(&caller(&["dba"]), &attachments), "{config}");
            assert!(allows(&caller(&["admin"]), &attachments), "{config}");
        }
    }

    #[test]
    fn the_not_found_answer_is_the_one_of_a_missing_connection() {
        let missing = Error::from(StoreError::NotFound {
            kind: "connection",
            name: "pg".into(),
        });
        let hidden = connection_not_found("pg");
        assert!(matches!(hidden, Error::NotFound(_)));
        assert_eq!(hidden.to_string(), missing.to_string());
        assert_eq!(hidden.to_string(), "connection `pg` not found");
    }

    #[test]
    fn unlearned_connections_are_hidden_from_all_but_admins() {
        let cache = AccessCache::default();
        assert!(!cache.allows(&caller(&["dba"]), "pg"));
        assert!(cache.allows(&caller(&["admin"]), "pg"));
    }

    #[cfg(feature = "plugin-access-control")]
    #[tokio::test]
    async fn the_store_backed_checks_hide_what_the_rule_hides() {
        use hoop_store::{Connection, SecretBox};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/hoop.db", dir.path().display());
        let store = Store::connect(
            &url,
            SecretBox::new("0123456789abcdef0123456789abcdef-test").unwrap(),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let secret = [attachment(PLUGIN, json!({"groups": ["dba"]}))];
        store
            .create_connection(&Connection::new("secret", "command"), &secret)
            .await
            .unwrap();
        store
            .create_connection(&Connection::new("open", "command"), &[])
            .await
            .unwrap();
        let (alice, bob, admin) = (caller(&["dev"]), caller(&["dba"]), caller(&["admin"]));

        let hidden = visible_attachments(&store, &alice, "secret")
            .await
            .unwrap_err();
        let missing = visible_attachments(&store, &alice, "nope")
            .await
            .unwrap_err();
        assert_eq!(
            hidden.to_string().replace("secret", "nope"),
            missing.to_string()
        );
        assert!(matches!(
            (hidden, missing),
            (Error::NotFound(_), Error::NotFound(_))
        ));
        assert_eq!(
            visible_attachments(&store, &bob, "secret")
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(visible_attachments(&store, &admin, "secret").await.is_ok());
        assert!(visible_attachments(&store, &alice, "open").await.is_ok());

        let mut cache = AccessCache::default();
        cache
            .learn(&store, &alice, ["secret", "open", "gone", "secret"])
            .await
            .unwrap();
        assert!(!cache.allows(&alice, "secret"));
        assert!(cache.allows(&alice, "open"));
        // A deleted connection restricts nothing any more.
        assert!(cache.allows(&alice, "gone"));
        assert!(allows_name(&store, &bob, "secret").await.unwrap());
        assert!(!allows_name(&store, &alice, "secret").await.unwrap());
        assert!(allows_name(&store, &admin, "secret").await.unwrap());
    }
}
