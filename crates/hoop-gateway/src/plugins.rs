//! The plugin registry of this build and the rules for attaching plugins to connections.

use hoop_core::{
    Activation, AttachPolicy, Implementation, ManagedField, PluginConfig, PluginFactory, Registry,
    Resources,
};
use hoop_store::{Attachment, Connection};

use crate::connections::fields_view;
use crate::error::Error;

/// The registry of every plugin compiled into this gateway.
///
/// Each plugin crate is referenced here (audit, dlp and review always, the others behind
/// their cargo feature) so that the linker keeps its compile-time registration.
pub(crate) fn registry() -> Result<Registry, hoop_core::Error> {
    std::hint::black_box(&hoop_plugin_audit::REGISTRATION);
    std::hint::black_box(&hoop_plugin_dlp::REGISTRATION);
    std::hint::black_box(&hoop_plugin_review::REGISTRATION);
    #[cfg(feature = "plugin-slack")]
    std::hint::black_box(&hoop_plugin_slack::REGISTRATION);
    #[cfg(feature = "plugin-access-control")]
    std::hint::black_box(&hoop_plugin_access_control::REGISTRATION);
    #[cfg(feature = "plugin-runbooks")]
    std::hint::black_box(&hoop_plugin_runbooks::REGISTRATION);
    #[cfg(feature = "plugin-webhooks")]
    std::hint::black_box(&hoop_plugin_webhooks::REGISTRATION);
    #[cfg(feature = "plugin-indexer")]
    std::hint::black_box(&hoop_plugin_indexer::REGISTRATION);
    Registry::builtin()
}

/// What a started plugin says of its deployment-wide work, for `ListPlugins` (runbooks: each
/// repository's commit, and the error of a failed refresh).
pub(crate) fn deployment_status(resources: &Resources, plugin: &str) -> Option<String> {
    #[cfg(feature = "plugin-runbooks")]
    if plugin == hoop_plugin_runbooks::NAME {
        return resources
            .get::<hoop_plugin_runbooks::RunbooksHost>()
            .and_then(hoop_plugin_runbooks::RunbooksHost::runbooks)
            .map(|r| format!("repositories: {}", r.status_line()));
    }
    let _ = (resources, plugin);
    None
}

/// A plugin attached to a connection, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttachmentView {
    pub(crate) name: String,
    pub(crate) config: serde_json::Value,
    pub(crate) active: bool,
    pub(crate) status: String,
}

/// The config of a managed plugin, made of the connection's fields as its descriptor says
/// ([`ManagedField`]): each field's value (from [`fields_view`]) under its config key,
/// unset fields left out. `None` if the connection has no field `field` (the one that turns
/// the plugin on).
pub(crate) fn managed_config(
    field: &str,
    fields: &[ManagedField],
    view: &serde_json::Map<String, serde_json::Value>,
) -> Option<serde_json::Value> {
    view.get(field)?;
    let config: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .filter_map(|f| match view.get(f.connection_field) {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some((f.config_key.to_owned(), value.clone())),
        })
        .collect();
    Some(serde_json::Value::Object(config))
}

/// The connection path (e.g. `redact_types[1]`) of a path into a managed plugin's config;
/// a path under no managed field's key is kept as it is.
fn connection_path(fields: &[ManagedField], config_path: &str) -> String {
    fields
        .iter()
        .find_map(|f| f.connection_path(config_path))
        .unwrap_or_else(|| config_path.to_owned())
}

/// The plugin built into this gateway that the connection field `field` turns on, if any.
pub(crate) fn managing(registry: &Registry, field: &str) -> Option<&'static dyn PluginFactory> {
    registry.factories().into_iter().find(
        |f| matches!(f.descriptor().attach, AttachPolicy::Managed { field: fld, .. } if fld == field),
    )
}

/// The implementation note of a factory, if its session behaviour is not complete.
pub(crate) fn pending_note(factory: &dyn PluginFactory) -> Option<&'static str> {
    match factory.descriptor().implementation {
        Implementation::Pending(note) => Some(note),
        _ => None,
    }
}

/// Whether an attachment with this config runs, and why.
pub(crate) fn activation(
    registry: &Registry,
    plugin: &str,
    config: &serde_json::Value,
) -> Activation {
    let Some(factory) = registry.get(plugin) else {
        return Activation::Inactive("plugin not built into this gateway".to_owned());
    };
    match PluginConfig::from_value(config.clone()) {
        Ok(config) => match factory.validate(&config) {
            Ok(()) => factory.activation(&config),
            Err(e) => Activation::Inactive(format!("invalid stored config: {e}")),
        },
        Err(e) => Activation::Inactive(format!("invalid stored config: {e}")),
    }
}

/// The attachment as the API shows it; plugins whose behaviour is not implemented yet say
/// so in their status.
pub(crate) fn view(registry: &Registry, attachment: &Attachment) -> AttachmentView {
    let activation = activation(registry, &attachment.plugin, &attachment.config);
    let mut status = activation.status().to_owned();
    if registry
        .get(&attachment.plugin)
        .and_then(pending_note)
        .is_some()
    {
        status.push_str(" (not implemented yet: see ListPlugins)");
    }
    AttachmentView {
        name: attachment.plugin.clone(),
        config: attachment.config.clone(),
        active: activation.is_active(),
        status,
    }
}

/// Attachments as the API shows them, in chain order. Required plugins (audit) are in every
/// chain whatever the stored rows say (see [`Registry::build_chain`]), so one whose row is
/// missing is shown with its default config.
pub(crate) fn views(registry: &Registry, attachments: &[Attachment]) -> Vec<AttachmentView> {
    let required: Vec<Attachment> = registry
        .factories()
        .into_iter()
        .map(|f| f.descriptor())
        .filter(|d| d.attach == AttachPolicy::Required)
        .filter(|d| !attachments.iter().any(|a| a.plugin == d.name))
        .map(|d| attachment(registry, d.name, serde_json::json!({})))
        .collect();
    let mut sorted: Vec<&Attachment> = attachments.iter().chain(&required).collect();
    sorted.sort_by_key(|a| {
        let order = registry
            .get(&a.plugin)
            .map_or(i16::MAX, |f| f.descriptor().order);
        (order, a.plugin.clone())
    });
    sorted.into_iter().map(|a| view(registry, a)).collect()
}

fn attachment(registry: &Registry, plugin: &str, config: serde_json::Value) -> Attachment {
    let enabled = activation(registry, plugin, &config).is_active();
    Attachment {
        plugin: plugin.to_owned(),
        config,
        enabled,
    }
}

/// The attachments of the managed plugins (those configured by connection fields), derived
/// from the connection's fields.
pub(crate) fn managed_attachments(registry: &Registry, conn: &Connection) -> Vec<Attachment> {
    let view = fields_view(conn);
    registry
        .factories()
        .into_iter()
        .filter_map(|f| match f.descriptor().attach {
            AttachPolicy::Managed { field, fields } => managed_config(field, fields, &view)
                .map(|config| attachment(registry, f.descriptor().name, config)),
            _ => None,
        })
        .collect()
}

/// The attachments every new connection gets: required, managed and default plugins.
pub(crate) fn default_attachments(registry: &Registry, conn: &Connection) -> Vec<Attachment> {
    let mut out = managed_attachments(registry, conn);
    for factory in registry.factories() {
        let descriptor = factory.descriptor();
        if matches!(
            descriptor.attach,
            AttachPolicy::Required | AttachPolicy::Default
        ) {
            out.push(attachment(registry, descriptor.name, serde_json::json!({})));
        }
    }
    out
}

/// Checks that `action` is allowed on `plugin`: it exists, is not managed by a connection
/// field, and (for audit) is not attached or detached by hand.
pub(crate) fn check_action(
    registry: &Registry,
    plugin: &str,
    action: AttachAction,
) -> Result<&'static dyn PluginFactory, Error> {
    if plugin.is_empty() {
        return Err(Error::invalid(
            "plugin",
            "required: the name of a plugin (see ListPlugins)",
        ));
    }
    let factory = registry.get(plugin).ok_or_else(|| {
        Error::invalid(
            "plugin",
            format!(
                "unknown plugin `{plugin}`; available: {}",
                registry.names().join(", ")
            ),
        )
    })?;
    match (factory.descriptor().attach, action) {
        (AttachPolicy::Managed { field, .. }, _) => Err(Error::FailedPrecondition(format!(
            "plugin `{plugin}` is managed by the connection's `{field}` field: set `{field}` \
             with UpdateConnection (update_mask: {field}) instead"
        ))),
        (AttachPolicy::Required, AttachAction::Attach) => Err(Error::FailedPrecondition(format!(
            "plugin `{plugin}` is attached to every connection already and cannot be attached \
             again"
        ))),
        (AttachPolicy::Required, AttachAction::Detach) => Err(Error::FailedPrecondition(format!(
            "plugin `{plugin}` records every session and cannot be detached"
        ))),
        _ => Ok(factory),
    }
}

/// A plugin attachment request checked against the rules ([`check_action`]) with its
/// config validated by the plugin.
pub(crate) fn checked_attachment(
    registry: &Registry,
    plugin: &str,
    config: serde_json::Value,
    action: AttachAction,
) -> Result<Attachment, Error> {
    checked_attachment_with(registry, &Resources::default(), plugin, config, action)
}

/// [`checked_attachment`] with what the gateway shares with plugins, which some plugins
/// check configs against (e.g. runbooks: the configured repositories' names).
pub(crate) fn checked_attachment_with(
    registry: &Registry,
    resources: &Resources,
    plugin: &str,
    config: serde_json::Value,
    action: AttachAction,
) -> Result<Attachment, Error> {
    let factory = check_action(registry, plugin, action)?;
    let parsed = PluginConfig::from_value(config.clone()).map_err(|e| config_error(&e))?;
    factory
        .validate_with(&parsed, resources)
        .map_err(|e| config_error(&e))?;
    Ok(attachment(registry, plugin, config))
}

fn config_error(err: &hoop_core::ConfigError) -> Error {
    match err.field_path() {
        Some(path) => Error::invalid(format!("config.{path}"), err.message()),
        None => Error::invalid("config", err.message()),
    }
}

/// What a PluginService call wants to do with an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachAction {
    Attach,
    Configure,
    Detach,
}

/// Checks the connection fields of every managed plugin with the plugin's validation,
/// naming the connection field under `at` (e.g. `connection.redact_types[1]`).
pub(crate) fn check_managed_fields(
    registry: &Registry,
    resources: &Resources,
    conn: &Connection,
    at: &str,
) -> Result<(), Error> {
    let view = fields_view(conn);
    for factory in registry.factories() {
        let AttachPolicy::Managed { field, fields } = factory.descriptor().attach else {
            continue;
        };
        let Some(config) = managed_config(field, fields, &view) else {
            continue;
        };
        let config = PluginConfig::from_value(config)
            .map_err(|e| Error::invalid(format!("{at}.{field}"), e.message()))?;
        factory.validate_with(&config, resources).map_err(|e| {
            let path = e
                .field_path()
                .map_or_else(|| field.to_owned(), |p| connection_path(fields, p));
            Error::invalid(format!("{at}.{path}"), e.message())
        })?;
    }
    Ok(())
}

// These tests expect every plugin of the default build.
#[cfg(test)]
#[cfg(all(
    feature = "plugin-slack",
    feature = "plugin-access-control",
    feature = "plugin-runbooks",
    feature = "plugin-webhooks",
    feature = "plugin-indexer"
))]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_every_plugin_of_this_build() {
        let registry = registry().unwrap();
        let names = registry.names();
        for expected in [
            "audit",
            "dlp",
            "review",
            "slack",
            "access_control",
            "runbooks",
            "webhooks",
            "indexer",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        // Chain order: access_control, review, dlp, then the rest, audit last.
        assert_eq!(
            names,
            [
                "access_control",
                "review",
                "dlp",
                "indexer",
                "runbooks",
                "slack",
                "webhooks",
                "audit"
            ]
        );
    }

    #[test]
    fn new_connections_get_the_default_plugins_with_the_right_flags() {
        let registry = registry().unwrap();
        let conn = Connection::new("pg", "command");
        let views = views(&registry, &default_attachments(&registry, &conn));
        let flags: Vec<(&str, bool)> = views.iter().map(|v| (v.name.as_str(), v.active)).collect();
        assert_eq!(
            flags,
            [
                ("review", false),
                ("dlp", false),
                ("slack", false),
                ("audit", true)
            ]
        );
    }

    #[test]
    fn a_required_plugin_is_shown_even_without_its_row() {
        let registry = registry().unwrap();
        let conn = Connection::new("pg", "command");
        let mut rows = default_attachments(&registry, &conn);
        rows.retain(|a| a.plugin != "audit");
        let views = views(&registry, &rows);
        let audit = views.last().unwrap();
        assert_eq!((audit.name.as_str(), audit.active), ("audit", true));
        assert_eq!(views.iter().filter(|v| v.name == "audit").count(), 1);
        assert_eq!(views.len(), 4);
    }

    #[test]
    fn managed_plugins_follow_their_fields() {
        let registry = registry().unwrap();
        let mut conn = Connection::new("pg", "command");
        conn.redact_types = vec!["EMAIL_ADDRESS".into()];
        conn.reviewers = vec!["dba".into()];
        let managed = managed_attachments(&registry, &conn);
        assert!(managed.iter().all(|a| a.enabled), "{managed:?}");
        conn.redact_types = vec!["NOPE".into()];
        let err =
            check_managed_fields(&registry, &Resources::new(), &conn, "connection").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("connection.redact_types[0]: unknown info type `NOPE`"),
            "{err}"
        );
    }

    #[test]
    fn managed_configs_are_made_of_the_fields_the_descriptors_name() {
        let registry = registry().unwrap();
        let mut conn = Connection::new("pg", "command");
        let configs = |conn: &Connection| -> Vec<(String, serde_json::Value)> {
            managed_attachments(&registry, conn)
                .into_iter()
                .map(|a| (a.plugin, a.config))
                .collect()
        };
        // Unset fields are left out; empty lists are handed as such.
        assert_eq!(
            configs(&conn),
            [
                ("review".to_owned(), serde_json::json!({"reviewers": []})),
                ("dlp".to_owned(), serde_json::json!({"redact_types": []})),
            ]
        );
        conn.reviewers = vec!["dba".into()];
        conn.redact_types = vec!["EMAIL_ADDRESS".into()];
        conn.min_approvals = Some(2);
        conn.access_max_duration = Some(std::time::Duration::from_secs(3600));
        conn.review_ttl = Some(std::time::Duration::from_secs(60));
        assert_eq!(
            configs(&conn),
            [
                (
                    "review".to_owned(),
                    serde_json::json!({
                        "reviewers": ["dba"],
                        "min_approvals": 2,
                        "access_max_duration_ms": 3_600_000,
                    })
                ),
                (
                    "dlp".to_owned(),
                    serde_json::json!({"redact_types": ["EMAIL_ADDRESS"]})
                ),
            ]
        );
    }

    #[test]
    fn errors_in_managed_configs_name_the_connection_field() {
        let registry = registry().unwrap();
        let check = |conn: &Connection| {
            check_managed_fields(&registry, &Resources::new(), conn, "connection")
                .unwrap_err()
                .to_string()
        };
        let mut conn = Connection::new("pg", "command");
        conn.reviewers = vec!["dba".into(), "dba".into()];
        assert_eq!(
            check(&conn),
            "connection.reviewers[1]: group `dba` is listed twice"
        );
        conn.reviewers = vec!["dba".into()];
        conn.access_max_duration = Some(std::time::Duration::from_secs(1));
        assert!(
            check(&conn).starts_with("connection.access_max_duration: must be between"),
            "{}",
            check(&conn)
        );
        conn.access_max_duration = None;
        conn.min_approvals = Some(65);
        assert!(
            check(&conn).starts_with("connection.min_approvals: must be between 1 and 64"),
            "{}",
            check(&conn)
        );
        conn.min_approvals = None;
        conn.redact_types = vec!["EMAIL_ADDRESS".into(), "URL".into(), "URL".into()];
        assert_eq!(
            check(&conn),
            "connection.redact_types[2]: info type `URL` is listed twice"
        );
        conn.redact_types.clear();
        assert!(check_managed_fields(&registry, &Resources::new(), &conn, "connection").is_ok());
    }

    #[test]
    fn managed_config_reads_the_view_generically() {
        const FIELDS: &[ManagedField] = &[
            ManagedField::new("colours", "colours"),
            ManagedField::new("pause", "pause_ms"),
            ManagedField::new("limit", "limit"),
        ];
        let view = serde_json::json!({"colours": ["red"], "pause": 1500, "limit": null});
        let view = view.as_object().unwrap();
        assert_eq!(
            managed_config("colours", FIELDS, view),
            Some(serde_json::json!({"colours": ["red"], "pause_ms": 1500}))
        );
        // A connection without the field that turns the plugin on gets no attachment.
        assert_eq!(managed_config("shapes", FIELDS, view), None);
        assert_eq!(connection_path(FIELDS, "pause_ms"), "pause");
        assert_eq!(connection_path(FIELDS, "colours[0]"), "colours[0]");
        assert_eq!(connection_path(FIELDS, "other"), "other");
    }

    #[test]
    fn managed_and_required_plugins_are_refused() {
        let registry = registry().unwrap();
        let cfg = serde_json::json!({});
        for (plugin, action) in [
            ("dlp", AttachAction::Attach),
            ("review", AttachAction::Configure),
            ("review", AttachAction::Detach),
            ("audit", AttachAction::Detach),
            ("audit", AttachAction::Attach),
        ] {
            let err = checked_attachment(&registry, plugin, cfg.clone(), action).unwrap_err();
            assert!(
                matches!(err, Error::FailedPrecondition(_)),
                "{plugin} {action:?}: {err}"
            );
        }
        assert!(checked_attachment(&registry, "slack", cfg.clone(), AttachAction::Attach).is_ok());
        assert!(matches!(
            checked_attachment(&registry, "nope", cfg, AttachAction::Attach),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
