//! Bad input gets INVALID_ARGUMENT (or ALREADY_EXISTS) naming the field, and writes nothing.

use hoop_rs::{Backend, Gateway, admin, assert_status, command_connection, e2e, pb};
use tonic::Code;

e2e!(
    bad_connections_are_refused_with_the_field_named,
    bad_updates_users_and_pages_are_refused
);

async fn bad_connections_are_refused_with_the_field_named(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut client = gw.connections().await;
    let create = |conn: pb::Connection| {
        admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        })
    };

    let mut cases: Vec<(pb::Connection, &str)> = Vec::new();
    cases.push((
        command_connection("Bad Name", &["psql"]),
        "connection.name: connection name must match ^[a-z0-9][a-z0-9_-]{0,62}$",
    ));
    cases.push((
        command_connection(&"a".repeat(64), &["psql"]),
        "connection.name: connection name must match",
    ));
    cases.push((
        command_connection("", &["psql"]),
        "connection.name: required",
    ));
    let mut c = command_connection("pg", &["psql"]);
    c.r#type = "oracle".into();
    cases.push((
        c,
        "connection.type: unknown type `oracle`; supported: command",
    ));
    let mut c = command_connection("pg", &["psql"]);
    c.r#type = String::new();
    cases.push((c, "connection.type: required"));
    cases.push((
        command_connection("pg", &[]),
        "connection.command: required for type command",
    ));
    let mut c = command_connection("pg", &["psql"]);
    c.redact_types = vec!["EMAIL_ADDRESS".into(), "SHOE_SIZE".into()];
    cases.push((
        c,
        "connection.redact_types[1]: unknown info type `SHOE_SIZE`; valid types: ",
    ));
    let mut c = command_connection("pg", &["psql"]);
    c.reviewers = vec!["Ops Team".into()];
    cases.push((c, "connection.reviewers[0]: group name must match"));
    let big = "x".repeat(5000);
    cases.push((
        command_connection("pg", &["psql", &big]),
        "connection.command[1]: at most 4096 bytes",
    ));
    let mut c = command_connection("pg", &["psql"]);
    c.env.insert("BIG".into(), "v".repeat(100_000));
    cases.push((c, "connection.env[BIG]: value is longer than 65536 bytes"));
    let mut c = command_connection("pg", &["psql"]);
    c.env.insert("NOT-A-NAME".into(), "v".into());
    cases.push((c, "connection.env: variable name `NOT-A-NAME`"));
    let mut c = command_connection("pg", &["psql"]);
    c.tags.insert("k".into(), "v".repeat(300));
    cases.push((c, "connection.tags[k]: value is longer than 256 bytes"));
    let mut c = command_connection("pg", &["psql"]);
    c.reviewers = (0..65).map(|i| format!("g{i}")).collect();
    cases.push((c, "connection.reviewers: at most 64 entries"));

    for (conn, needle) in cases {
        assert_status(
            client.create_connection(create(conn)).await,
            Code::InvalidArgument,
            needle,
        );
    }
    assert_status(
        client
            .create_connection(admin(pb::CreateConnectionRequest { connection: None }))
            .await,
        Code::InvalidArgument,
        "connection: required",
    );

    // Nothing was written by any of them.
    let listed = client
        .list_connections(admin(pb::ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.connections.is_empty(), "{listed:?}");

    client
        .create_connection(create(command_connection("pg", &["psql"])))
        .await
        .unwrap();
    assert_status(
        client
            .create_connection(create(command_connection("pg", &["bash"])))
            .await,
        Code::AlreadyExists,
        "connection `pg` already exists",
    );
    let pg = client
        .get_connection(admin(pb::GetConnectionRequest { name: "pg".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pg.command, ["psql"], "the duplicate did not overwrite");
}

async fn bad_updates_users_and_pages_are_refused(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut client = gw.connections().await;
    client
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(command_connection("pg", &["psql"])),
        }))
        .await
        .unwrap();
    let update = |paths: &[&str], conn: pb::Connection| {
        admin(pb::UpdateConnectionRequest {
            connection: Some(conn),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|s| s.to_string()).collect(),
            }),
        })
    };
    let named = || pb::Connection {
        name: "pg".into(),
        ..Default::default()
    };
    assert_status(
        client.update_connection(update(&["name"], named())).await,
        Code::InvalidArgument,
        "update_mask.paths[0]: name is immutable",
    );
    assert_status(
        client
            .update_connection(update(&["command", "colour"], named()))
            .await,
        Code::InvalidArgument,
        "update_mask.paths[1]: unknown field `colour`",
    );
    assert_status(
        client
            .update_connection(update(&["plugins"], named()))
            .await,
        Code::InvalidArgument,
        "`plugins` is output only",
    );
    assert_status(
        client
            .update_connection(update(&["command"], named()))
            .await,
        Code::InvalidArgument,
        "connection.command: required for type command",
    );
    let mut bad_types = named();
    bad_types.redact_types = vec!["NOPE".into()];
    assert_status(
        client
            .update_connection(update(&["redact_types"], bad_types))
            .await,
        Code::InvalidArgument,
        "connection.redact_types[0]: unknown info type `NOPE`",
    );
    assert_status(
        client
            .update_connection(update(
                &["command"],
                pb::Connection {
                    name: "ghost".into(),
                    ..Default::default()
                },
            ))
            .await,
        Code::NotFound,
        "ghost",
    );
    // The failed updates changed nothing.
    let pg = client
        .get_connection(admin(pb::GetConnectionRequest { name: "pg".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pg.command, ["psql"]);
    assert!(pg.redact_types.is_empty());

    assert_status(
        client
            .list_connections(admin(pb::ListConnectionsRequest {
                page_size: 1,
                page_token: "garbage!".into(),
            }))
            .await,
        Code::InvalidArgument,
        "page_token",
    );
    assert_status(
        client
            .list_connections(admin(pb::ListConnectionsRequest {
                page_size: -1,
                page_token: String::new(),
            }))
            .await,
        Code::InvalidArgument,
        "page_size: must not be negative",
    );

    let mut users = gw.users().await;
    let user = |name: &str, email: &str, groups: &[&str]| {
        admin(pb::CreateUserRequest {
            user: Some(pb::User {
                name: name.into(),
                email: email.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                ..Default::default()
            }),
        })
    };
    assert_status(
        users.create_user(user("Jane Doe", "", &[])).await,
        Code::InvalidArgument,
        "user.name: user name must match",
    );
    assert_status(
        users.create_user(user("jane", "not-an-email", &[])).await,
        Code::InvalidArgument,
        "user.email",
    );
    assert_status(
        users.create_user(user("jane", "", &["ok", "NOT OK"])).await,
        Code::InvalidArgument,
        "user.groups[1]",
    );
    users
        .create_user(user("jane", "jane@example.com", &["dev"]))
        .await
        .unwrap();
    assert_status(
        users.create_user(user("jane", "", &[])).await,
        Code::AlreadyExists,
        "user `jane` already exists",
    );
    assert_status(
        users
            .update_user(admin(pb::UpdateUserRequest {
                user: Some(pb::User {
                    name: "admin".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["groups".into()],
                }),
            }))
            .await,
        Code::FailedPrecondition,
        "must stay in group `admin`",
    );
}
