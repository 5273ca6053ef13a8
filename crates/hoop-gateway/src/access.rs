//! Who may see and use a connection: the visibility rules of the plugins attached to it,
//! enforced by the gateway before anything reaches the plugin chain.
//!
//! Every attachment of a connection is asked through the registry
//! ([`PluginFactory::admits`](hoop_core::PluginFactory::admits)); most plugins restrict no
//! one, `access_control` lets in the members of the groups in its config. A connection
//! exists only for the users no attachment refuses, and for admins. To everyone else every
//! call naming it answers NOT_FOUND with the very message of a connection that does not
//! exist ([`connection_not_found`]), listings leave it out, and so do the reviews of
//! sessions on it. An attachment whose stored config its plugin cannot parse, or whose
//! plugin is not built into this gateway, leaves the connection to admins: access control
//! fails closed.
//!
//! Session records are not filtered: a user keeps seeing their own, and `auditor`s keep
//! reading every session record, recordings included, because auditing them is their job.
//! Auditors still neither see the connection nor open sessions or reviews on it.

use std::collections::{BTreeMap, BTreeSet};

use hoop_core::{Admission, PluginConfig, Registry, UserInfo};
use hoop_store::{Attachment, Store, StoreError};

use crate::auth::Caller;
use crate::error::Error;

/// The NOT_FOUND answer for connection `name`: byte for byte what a connection that does
/// not exist gets.
pub(crate) fn connection_not_found(name: &str) -> Error {
    Error::from(StoreError::NotFound {
        kind: "connection",
        name: name.to_owned(),
    })
}

/// Whether `caller` may see and use a connection with these attachments: always for
/// admins; otherwise no attachment's plugin may refuse the caller (none attached: everyone
/// may).
pub(crate) fn allows(registry: &Registry, caller: &Caller, attachments: &[Attachment]) -> bool {
    if caller.is_admin() {
        return true;
    }
    let user = caller.user_info();
    attachments
        .iter()
        .all(|a| admission(registry, a, &user).lets_in())
}

/// What the plugin of `attachment` says of `user`: [`Admission::Refused`] (failing closed)
/// if the plugin is not built in or cannot read the stored config.
fn admission(registry: &Registry, attachment: &Attachment, user: &UserInfo) -> Admission {
    let plugin = attachment.plugin.as_str();
    let Some(factory) = registry.get(plugin) else {
        tracing::warn!(
            plugin,
            "a plugin is attached that is not built into this gateway: the connection is \
             left to admins"
        );
        return Admission::Refused;
    };
    let admission = PluginConfig::from_value(attachment.config.clone())
        .and_then(|config| factory.admits(&config, user));
    match admission {
        Ok(admission) => admission,
        Err(err) => {
            tracing::warn!(
                plugin,
                error = %err,
                "invalid stored plugin config: the connection is left to admins"
            );
            Admission::Refused
        }
    }
}

/// The attachments of connection `name` if the caller may see it; NOT_FOUND, as if it did
/// not exist, if there is none or the caller may not.
pub(crate) async fn visible_attachments(
    store: &Store,
    registry: &Registry,
    caller: &Caller,
    name: &str,
) -> Result<Vec<Attachment>, Error> {
    let attachments = store.list_attachments(name).await?;
    if allows(registry, caller, &attachments) {
        Ok(attachments)
    } else {
        Err(connection_not_found(name))
    }
}

/// Connection `name` with its secrets, and its attachments, if the caller may see it;
/// NOT_FOUND, as if it did not exist, if there is none or the caller may not. The two reads
/// run at once, and the connection's row is read once (a session's start waits for them).
pub(crate) async fn visible_connection(
    store: &Store,
    registry: &Registry,
    caller: &Caller,
    name: &str,
) -> Result<(hoop_store::Connection, Vec<Attachment>), Error> {
    let names = [name.to_owned()];
    let (connection, mut attachments) = tokio::try_join!(
        store.get_connection(name, true),
        store.attachments_of(&names),
    )?;
    let attachments = attachments.remove(name).unwrap_or_default();
    if allows(registry, caller, &attachments) {
        Ok((connection, attachments))
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
        registry: &Registry,
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
            let allowed = allows(registry, caller, &mine);
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
pub(crate) async fn allows_name(
    store: &Store,
    registry: &Registry,
    caller: &Caller,
    name: &str,
) -> Result<bool, Error> {
    let mut cache = AccessCache::default();
    cache.learn(store, registry, caller, [name]).await?;
    Ok(cache.allows(caller, name))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use hoop_store::User;
    use serde_json::json;

    use super::*;
    use crate::auth::Credential;

    /// The registry name of the access_control plugin.
    const PLUGIN: &str = "access_control";

    fn registry() -> Registry {
        crate::plugins::registry().unwrap()
    }

    fn caller(groups: &[&str]) -> Caller {
        Caller {
            user: User {
                name: "u".into(),
                email: String::new(),
                slack_id: None,
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
        let registry = registry();
        assert!(allows(&registry, &caller(&[]), &attachments));
        assert!(allows(&registry, &caller(&["dev"]), &[]));
    }

    #[test]
    fn plugins_not_built_in_fail_closed() {
        let registry = registry();
        let attachments = [
            attachment("audit", json!({})),
            attachment("not_built_in", json!({})),
        ];
        assert!(!allows(&registry, &caller(&["dba"]), &attachments));
        assert!(allows(&registry, &caller(&["admin"]), &attachments));
    }

    #[cfg(feature = "plugin-access-control")]
    #[test]
    fn access_control_lets_in_its_groups_and_admins() {
        let registry = registry();
        let attachments = [
            attachment("audit", json!({})),
            attachment(PLUGIN, json!({"groups": ["dba", "sre"]})),
        ];
        assert!(allows(&registry, &caller(&["dev", "sre"]), &attachments));
        assert!(allows(&registry, &caller(&["dba"]), &attachments));
        assert!(allows(&registry, &caller(&["admin"]), &attachments));
        assert!(!allows(&registry, &caller(&["dev"]), &attachments));
        assert!(!allows(&registry, &caller(&["auditor"]), &attachments));
        assert!(!allows(&registry, &caller(&[]), &attachments));
        let admins_only = [attachment(PLUGIN, json!({"groups": []}))];
        assert!(!allows(&registry, &caller(&["dba"]), &admins_only));
        assert!(allows(&registry, &caller(&["admin"]), &admins_only));
        // Disabled or not, an attachment restricts.
        let mut disabled = attachment(PLUGIN, json!({"groups": ["dba"]}));
        disabled.enabled = false;
        assert!(!allows(&registry, &caller(&["dev"]), &[disabled]));
    }

    #[test]
    fn invalid_stored_configs_fail_closed() {
        let registry = registry();
        for config in [
            json!({}),
            json!({"groups": "dba"}),
            json!({"groups": ["Not A Group"]}),
            json!({"groups": ["dba"], "extra": 1}),
            json!(["dba"]),
            serde_json::Value::Null,
        ] {
            let attachments = [attachment(PLUGIN, config.clone())];
            assert!(
                !allows(&registry, &caller(&["dba"]), &attachments),
                "{config}"
            );
            assert!(
                allows(&registry, &caller(&["admin"]), &attachments),
                "{config}"
            );
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
        let registry = registry();

        let hidden = visible_attachments(&store, &registry, &alice, "secret")
            .await
            .unwrap_err();
        let missing = visible_attachments(&store, &registry, &alice, "nope")
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
            visible_attachments(&store, &registry, &bob, "secret")
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            visible_attachments(&store, &registry, &admin, "secret")
                .await
                .is_ok()
        );
        assert!(
            visible_attachments(&store, &registry, &alice, "open")
                .await
                .is_ok()
        );

        let mut cache = AccessCache::default();
        cache
            .learn(
                &store,
                &registry,
                &alice,
                ["secret", "open", "gone", "secret"],
            )
            .await
            .unwrap();
        assert!(!cache.allows(&alice, "secret"));
        assert!(cache.allows(&alice, "open"));
        // A deleted connection restricts nothing any more.
        assert!(cache.allows(&alice, "gone"));
        assert!(
            allows_name(&store, &registry, &bob, "secret")
                .await
                .unwrap()
        );
        assert!(
            !allows_name(&store, &registry, &alice, "secret")
                .await
                .unwrap()
        );
        assert!(
            allows_name(&store, &registry, &admin, "secret")
                .await
                .unwrap()
        );
    }
}
