//! ConnectionService: create, get, list with paging, update with update_mask, delete;
//! persistence across restarts.

use hoop_rs::{Backend, Gateway, admin, assert_status, command_connection, e2e, pb, plugin_flags};
use tonic::Code;

e2e!(
    crud_with_paging_and_update_mask,
    connections_survive_a_restart
);

async fn crud_with_paging_and_update_mask(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut client = gw.connections().await;

    let mut conn = command_connection("pg-prod", &["psql", "-h", "db"]);
    conn.env.insert("PGPASSWORD".into(), "s3cr3t-value".into());
    conn.tags.insert("env".into(), "prod".into());
    let created = client
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "pg-prod");
    assert_eq!(created.r#type, "command");
    assert_eq!(created.command, ["psql", "-h", "db"]);
    assert_eq!(created.env.get("PGPASSWORD").map(String::as_str), Some(""));
    assert_eq!(created.tags["env"], "prod");
    let modes = created.access_modes.unwrap();
    assert_eq!(
        (modes.exec, modes.connect, modes.runbooks),
        (Some(true), Some(true), Some(true))
    );
    assert!(created.create_time.is_some() && created.update_time.is_some());

    let got = client
        .get_connection(admin(pb::GetConnectionRequest {
            name: "pg-prod".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    // Paging: 5 connections, 2 per page, in name order.
    for name in ["a-1", "b-2", "c-3", "d-4"] {
        client
            .create_connection(admin(pb::CreateConnectionRequest {
                connection: Some(command_connection(name, &["true"])),
            }))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_connections(admin(pb::ListConnectionsRequest {
                page_size: 2,
                page_token: token,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(page.connections.len() <= 2);
        pages += 1;
        names.extend(page.connections.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["a-1", "b-2", "c-3", "d-4", "pg-prod"]);

    // Update only the masked fields; the rest (and the secret) stay.
    let patch = pb::Connection {
        name: "pg-prod".into(),
        reviewers: vec!["dba".into()],
        redact_types: vec!["EMAIL_ADDRESS".into()],
        command: vec!["ignored".into()],
        ..Default::default()
    };
    let updated = client
        .update_connection(admin(pb::UpdateConnectionRequest {
            connection: Some(patch),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![
                    "reviewers".into(),
                    "redact_types".into(),
                    "access_modes.connect".into(),
                ],
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        updated.command,
        ["psql", "-h", "db"],
        "command was not in the mask"
    );
    assert_eq!(updated.reviewers, ["dba"]);
    assert_eq!(updated.redact_types, ["EMAIL_ADDRESS"]);
    assert_eq!(
        updated.access_modes.unwrap().connect,
        Some(true),
        "unset in request means enabled"
    );
    assert!(updated.env.contains_key("PGPASSWORD"));
    assert_eq!(
        plugin_flags(&updated),
        [
            ("review".into(), true),
            ("dlp".into(), true),
            ("slack".into(), false),
            ("audit".into(), true)
        ]
    );
    let t0 = created.update_time.unwrap();
    let t1 = updated.update_time.unwrap();
    assert!((t1.seconds, t1.nanos) > (t0.seconds, t0.nanos));

    // Clearing reviewers deactivates review again.
    let cleared = client
        .update_connection(admin(pb::UpdateConnectionRequest {
            connection: Some(pb::Connection {
                name: "pg-prod".into(),
                access_modes: Some(pb::AccessModes {
                    exec: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["reviewers".into(), "access_modes".into()],
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(cleared.reviewers.is_empty());
    assert_eq!(cleared.access_modes.unwrap().exec, Some(false));
    assert_eq!(plugin_flags(&cleared)[0], ("review".into(), false));

    client
        .delete_connection(admin(pb::DeleteConnectionRequest {
            name: "pg-prod".into(),
        }))
        .await
        .unwrap();
    assert_status(
        client
            .get_connection(admin(pb::GetConnectionRequest {
                name: "pg-prod".into(),
            }))
            .await,
        Code::NotFound,
        "connection `pg-prod` not found",
    );
    assert_status(
        client
            .delete_connection(admin(pb::DeleteConnectionRequest {
                name: "pg-prod".into(),
            }))
            .await,
        Code::NotFound,
        "pg-prod",
    );
}

async fn connections_survive_a_restart(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut client = gw.connections().await;
    let mut conn = command_connection("keep-me", &["bash"]);
    conn.env.insert("TOKEN".into(), "abc-secret".into());
    conn.reviewers = vec!["sre".into()];
    client
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
    let before = client
        .get_connection(admin(pb::GetConnectionRequest {
            name: "keep-me".into(),
        }))
        .await
        .unwrap()
        .into_inner();

    let setup = gw.stop().await;
    let gw = setup.start().await;
    let mut client = gw.connections().await;
    let after = client
        .get_connection(admin(pb::GetConnectionRequest {
            name: "keep-me".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, before);
    // The secret key survived too: an env update that keeps the value still works.
    let updated = client
        .update_connection(admin(pb::UpdateConnectionRequest {
            connection: Some(pb::Connection {
                name: "keep-me".into(),
                env: [
                    ("TOKEN".to_owned(), String::new()),
                    ("NEW".to_owned(), "x".to_owned()),
                ]
                .into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["env".into()],
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.env.keys().collect::<Vec<_>>(), ["NEW", "TOKEN"]);
}
