//! PluginService and the plugin rules of connections.

use hoop_rs::{
    Backend, Gateway, admin, assert_status, command_connection, config, e2e, pb, plugin_flags,
};
use serde_json::json;
use tonic::Code;

e2e!(
    the_registry_lists_every_plugin_honestly,
    attaching_to_one_connection_leaves_another_untouched,
    managed_and_required_plugins_are_refused,
    plugin_config_is_validated,
);

async fn create(gw: &Gateway, name: &str) -> pb::Connection {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(command_connection(name, &["psql"])),
        }))
        .await
        .unwrap()
        .into_inner()
}

async fn attachments(gw: &Gateway, conn: &str) -> Vec<pb::PluginAttachment> {
    gw.plugins()
        .await
        .list_connection_plugins(admin(pb::ListConnectionPluginsRequest {
            connection: conn.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .plugins
}

async fn the_registry_lists_every_plugin_honestly(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let plugins = gw
        .plugins()
        .await
        .list_plugins(admin(pb::ListPluginsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .plugins;
    let names: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
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
    let by_name = |n: &str| plugins.iter().find(|p| p.name == n).unwrap();
    for default in ["audit", "dlp", "review", "slack"] {
        assert!(by_name(default).default_attached, "{default}");
    }
    assert!(!by_name("access_control").default_attached);
    assert!(!by_name("runbooks").default_attached);
    assert!(!by_name("webhooks").default_attached);
    assert!(!by_name("indexer").default_attached);
    assert_eq!(by_name("dlp").managed_by_field, "redact_types");
    assert_eq!(by_name("review").managed_by_field, "reviewers");
    assert_eq!(by_name("slack").managed_by_field, "");
    // audit records, dlp masks, review holds sessions, access_control hides connections,
    // slack posts reviews, runbooks runs scripts from git and webhooks delivers events; the
    // others say honestly that their behaviour is to come.
    for p in &plugins {
        assert!(!p.description.is_empty() && !p.configuration.is_empty());
        if [
            "audit",
            "dlp",
            "review",
            "access_control",
            "slack",
            "runbooks",
            "webhooks",
            "indexer",
        ]
        .contains(&p.name.as_str())
        {
            assert!(p.implemented, "{p:?}");
            assert!(!p.status.contains("not implemented"), "{p:?}");
            continue;
        }
        assert!(!p.implemented, "{} claims to be implemented", p.name);
        assert!(
            p.status.starts_with("not implemented yet: "),
            "{}: {}",
            p.name,
            p.status
        );
    }
}

async fn attaching_to_one_connection_leaves_another_untouched(backend: Backend) {
    // slack is active once it has a channel and the gateway a bot token (this one posts to
    // nothing that listens).
    let gw = hoop_rs::Setup::new(backend)
        .with_env("HOOP_PLUGINS_SLACK_BOT_TOKEN", "xoxb-unused")
        .with_env("HOOP_PLUGINS_SLACK_API_URL", "http://127.0.0.1:9/api")
        .start()
        .await;
    let a = create(&gw, "conn-a").await;
    let b = create(&gw, "conn-b").await;
    let defaults = vec![
        ("review".to_owned(), false),
        ("dlp".to_owned(), false),
        ("slack".to_owned(), false),
        ("audit".to_owned(), true),
    ];
    assert_eq!(plugin_flags(&a), defaults);
    assert_eq!(plugin_flags(&b), defaults);
    let b_before = attachments(&gw, "conn-b").await;

    let mut plugins = gw.plugins().await;
    let attached = plugins
        .attach_plugin(admin(pb::AttachPluginRequest {
            connection: "conn-a".into(),
            plugin: "access_control".into(),
            config: config(json!({"groups": ["dba"]})),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(attached.name, "access_control");
    assert!(attached.active);
    assert!(
        attached.status.contains("only members of dba"),
        "{}",
        attached.status
    );
    assert!(
        !attached.status.contains("not implemented"),
        "{}",
        attached.status
    );
    assert_status(
        plugins
            .attach_plugin(admin(pb::AttachPluginRequest {
                connection: "conn-a".into(),
                plugin: "access_control".into(),
                config: config(json!({"groups": []})),
            }))
            .await,
        Code::AlreadyExists,
        "already attached",
    );

    // Configure slack on A: it becomes active there only.
    let slack = plugins
        .update_plugin_config(admin(pb::UpdatePluginConfigRequest {
            connection: "conn-a".into(),
            plugin: "slack".into(),
            config: config(json!({"channels": ["C0123456789"]})),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(slack.active);
    let a_names: Vec<(String, bool)> = attachments(&gw, "conn-a")
        .await
        .into_iter()
        .map(|p| (p.name, p.active))
        .collect();
    assert_eq!(
        a_names,
        [
            ("access_control".to_owned(), true),
            ("review".to_owned(), false),
            ("dlp".to_owned(), false),
            ("slack".to_owned(), true),
            ("audit".to_owned(), true),
        ]
    );
    assert_eq!(attachments(&gw, "conn-b").await, b_before);

    // Detach both from A; B still untouched, and A keeps its default plugins.
    for plugin in ["access_control", "slack"] {
        plugins
            .detach_plugin(admin(pb::DetachPluginRequest {
                connection: "conn-a".into(),
                plugin: plugin.into(),
            }))
            .await
            .unwrap();
    }
    assert_status(
        plugins
            .detach_plugin(admin(pb::DetachPluginRequest {
                connection: "conn-a".into(),
                plugin: "slack".into(),
            }))
            .await,
        Code::NotFound,
        "not attached",
    );
    let a_after: Vec<String> = attachments(&gw, "conn-a")
        .await
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(a_after, ["review", "dlp", "audit"]);
    assert_eq!(attachments(&gw, "conn-b").await, b_before);

    // Unknown connection.
    assert_status(
        plugins
            .attach_plugin(admin(pb::AttachPluginRequest {
                connection: "nope".into(),
                plugin: "slack".into(),
                config: None,
            }))
            .await,
        Code::NotFound,
        "connection `nope` not found",
    );
}

async fn managed_and_required_plugins_are_refused(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, "pg").await;
    let mut plugins = gw.plugins().await;
    for (plugin, field) in [("dlp", "redact_types"), ("review", "reviewers")] {
        let attach = plugins
            .attach_plugin(admin(pb::AttachPluginRequest {
                connection: "pg".into(),
                plugin: plugin.into(),
                config: config(json!({ field: ["x"] })),
            }))
            .await;
        assert_status(
            attach,
            Code::FailedPrecondition,
            &format!("managed by the connection's `{field}`"),
        );
        let configure = plugins
            .update_plugin_config(admin(pb::UpdatePluginConfigRequest {
                connection: "pg".into(),
                plugin: plugin.into(),
                config: config(json!({})),
            }))
            .await;
        assert_status(configure, Code::FailedPrecondition, field);
        let detach = plugins
            .detach_plugin(admin(pb::DetachPluginRequest {
                connection: "pg".into(),
                plugin: plugin.into(),
            }))
            .await;
        assert_status(detach, Code::FailedPrecondition, field);
    }
    assert_status(
        plugins
            .detach_plugin(admin(pb::DetachPluginRequest {
                connection: "pg".into(),
                plugin: "audit".into(),
            }))
            .await,
        Code::FailedPrecondition,
        "cannot be detached",
    );
    assert_status(
        plugins
            .attach_plugin(admin(pb::AttachPluginRequest {
                connection: "pg".into(),
                plugin: "audit".into(),
                config: None,
            }))
            .await,
        Code::FailedPrecondition,
        "attached to every connection",
    );
    // Nothing changed.
    let names: Vec<String> = attachments(&gw, "pg")
        .await
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["review", "dlp", "slack", "audit"]);
}

async fn plugin_config_is_validated(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(&gw, "pg").await;
    let mut plugins = gw.plugins().await;
    let cases = [
        (
            "slack",
            json!({"channels": ["#general"]}),
            "config.channels[0]",
        ),
        (
            "slack",
            json!({"channels": "C0123456789"}),
            "config.channels",
        ),
        ("slack", json!({"chanels": []}), "unknown field `chanels`"),
        ("access_control", json!({}), "missing field `groups`"),
        (
            "access_control",
            json!({"groups": ["Bad Group"]}),
            "config.groups[0]",
        ),
        ("audit", json!({"path": "/tmp"}), "unknown field `path`"),
        ("runbooks", json!({"paths": ["a//b"]}), "config.paths[0]"),
        (
            "runbooks",
            json!({"repositories": ["Bad"]}),
            "config.repositories[0]",
        ),
        ("runbooks", json!({"path": []}), "unknown field `path`"),
    ];
    for (plugin, cfg, needle) in cases {
        let result = plugins
            .update_plugin_config(admin(pb::UpdatePluginConfigRequest {
                connection: "pg".into(),
                plugin: plugin.into(),
                config: config(cfg.clone()),
            }))
            .await;
        let result = match (plugin, result) {
            // access_control is not attached: attach is the call that validates it.
            ("access_control", _) => {
                plugins
                    .attach_plugin(admin(pb::AttachPluginRequest {
                        connection: "pg".into(),
                        plugin: plugin.into(),
                        config: config(cfg),
                    }))
                    .await
            }
            (_, r) => r,
        };
        assert_status(result, Code::InvalidArgument, needle);
    }
    assert_status(
        plugins
            .attach_plugin(admin(pb::AttachPluginRequest {
                connection: "pg".into(),
                plugin: "teleport".into(),
                config: None,
            }))
            .await,
        Code::InvalidArgument,
        "plugin: unknown plugin `teleport`; available: access_control, review, dlp, indexer, runbooks, slack, webhooks, audit",
    );
    // No partial write: slack is still unconfigured, access_control still not attached.
    let names: Vec<(String, bool)> = attachments(&gw, "pg")
        .await
        .into_iter()
        .map(|p| (p.name, p.active))
        .collect();
    assert_eq!(
        names,
        [
            ("review".to_owned(), false),
            ("dlp".to_owned(), false),
            ("slack".to_owned(), false),
            ("audit".to_owned(), true)
        ]
    );
}
