//! Authentication and authorisation: tokens, API keys, groups, secrets.

use std::os::unix::fs::PermissionsExt;

use hoop_rs::{
    ADMIN_TOKEN, Backend, Gateway, Setup, admin, assert_status, authed, command_connection, e2e,
    exec, pb,
};
use tonic::Code;

e2e!(
    every_call_needs_a_valid_token,
    api_keys_act_as_their_user_until_revoked,
    secrets_are_never_returned_or_logged,
    the_admin_token_is_generated_into_the_data_dir,
);

async fn every_call_needs_a_valid_token(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let no_token = tonic::Request::new(pb::ListConnectionsRequest::default());
    assert_status(
        gw.connections().await.list_connections(no_token).await,
        Code::Unauthenticated,
        "authorization: Bearer <token>",
    );
    assert_status(
        gw.plugins()
            .await
            .list_plugins(tonic::Request::new(pb::ListPluginsRequest {}))
            .await,
        Code::Unauthenticated,
        "missing credentials",
    );
    assert_status(
        gw.users()
            .await
            .who_am_i(tonic::Request::new(pb::WhoAmIRequest {}))
            .await,
        Code::Unauthenticated,
        "missing credentials",
    );
    for bad in ["wrong-token", "hpk_doesnotexist", ""] {
        assert_status(
            gw.users()
                .await
                .who_am_i(authed(bad, pb::WhoAmIRequest {}))
                .await,
            Code::Unauthenticated,
            "",
        );
    }
    let mut raw = tonic::Request::new(pb::WhoAmIRequest {});
    raw.metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    assert_status(
        gw.users().await.who_am_i(raw).await,
        Code::Unauthenticated,
        "expected `Bearer <token>`",
    );

    // The admin token is the built-in admin.
    let me = gw
        .users()
        .await
        .who_am_i(admin(pb::WhoAmIRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.name, "admin");
    assert_eq!(me.groups, ["admin"]);

    // Health needs no token.
    let mut health = tonic_health_client(&gw).await;
    let status = health
        .check(tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
}

/// A minimal client of grpc.health.v1 (the generated one lives in the gateway's deps).
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

struct HealthClient(tonic::client::Grpc<tonic::transport::Channel>);

impl HealthClient {
    async fn check(
        &mut self,
        req: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        self.0.ready().await.unwrap();
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        self.0
            .unary(req, path, tonic_prost::ProstCodec::default())
            .await
    }
}

async fn tonic_health_client(gw: &Gateway) -> HealthClient {
    HealthClient(tonic::client::Grpc::new(gw.channel().await))
}

async fn api_keys_act_as_their_user_until_revoked(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let mut users = gw.users().await;
    users
        .create_user(admin(pb::CreateUserRequest {
            user: Some(pb::User {
                name: "bob".into(),
                email: "bob@example.com".into(),
                groups: vec!["dev".into()],
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
    let created = users
        .create_api_key(admin(pb::CreateApiKeyRequest {
            user: "bob".into(),
            description: "laptop".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let token = created.token.clone();
    let key = created.api_key.unwrap();
    assert!(token.starts_with("hpk_"));
    assert!(token.starts_with(&key.prefix));
    assert_eq!(key.user, "bob");

    let me = users
        .who_am_i(authed(&token, pb::WhoAmIRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (me.name.as_str(), me.groups.as_slice()),
        ("bob", ["dev".to_owned()].as_slice())
    );

    // Bob can read connections but not write them, nor manage users.
    let mut conns = gw.connections().await;
    conns
        .list_connections(authed(&token, pb::ListConnectionsRequest::default()))
        .await
        .unwrap();
    assert_status(
        conns
            .create_connection(authed(
                &token,
                pb::CreateConnectionRequest {
                    connection: Some(command_connection("bobs", &["bash"])),
                },
            ))
            .await,
        Code::PermissionDenied,
        "creating a connection needs group `admin`; user `bob` is not a member",
    );
    assert_status(
        gw.plugins()
            .await
            .attach_plugin(authed(
                &token,
                pb::AttachPluginRequest {
                    connection: "x".into(),
                    plugin: "slack".into(),
                    config: None,
                },
            ))
            .await,
        Code::PermissionDenied,
        "needs group `admin`",
    );
    assert_status(
        users
            .list_users(authed(&token, pb::ListUsersRequest::default()))
            .await,
        Code::PermissionDenied,
        "listing users",
    );
    assert_status(
        users
            .create_api_key(authed(
                &token,
                pb::CreateApiKeyRequest {
                    user: "admin".into(),
                    description: String::new(),
                },
            ))
            .await,
        Code::PermissionDenied,
        "another user",
    );
    // Bob's own keys: listed without tokens.
    let keys = users
        .list_api_keys(authed(&token, pb::ListApiKeysRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].revoke_time.is_none());

    // Revoked: UNAUTHENTICATED from then on.
    let revoked = users
        .revoke_api_key(admin(pb::RevokeApiKeyRequest { id: key.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    assert_status(
        users.who_am_i(authed(&token, pb::WhoAmIRequest {})).await,
        Code::Unauthenticated,
        "invalid or revoked token",
    );

    // Deleting a user revokes their keys too.
    let second = users
        .create_api_key(admin(pb::CreateApiKeyRequest {
            user: "bob".into(),
            description: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .token;
    users
        .delete_user(admin(pb::DeleteUserRequest { name: "bob".into() }))
        .await
        .unwrap();
    assert_status(
        users.who_am_i(authed(&second, pb::WhoAmIRequest {})).await,
        Code::Unauthenticated,
        "",
    );
    assert_status(
        users
            .delete_user(admin(pb::DeleteUserRequest {
                name: "admin".into(),
            }))
            .await,
        Code::FailedPrecondition,
        "cannot be deleted",
    );
}

async fn secrets_are_never_returned_or_logged(backend: Backend) {
    // The gateway that handles the secrets logs at debug level, and its own log is read.
    let secret_key = "e2e-secret-key-0123456789abcdef-0123456789";
    let setup = Setup::new(backend)
        .with_toml(&format!("secret_key = \"{secret_key}\""))
        .with_env("HOOP_LOG", "debug");
    let gw = setup.start().await;
    let secret = "pa55-very-secret-VALUE-42";
    let rotated = "rotated-pa55-VALUE-43";
    // The session shows the secret's length, never the secret.
    let mut conn = command_connection("pg", &["sh", "-c", "echo ${#PGPASSWORD}"]);
    conn.env.insert("PGPASSWORD".into(), secret.into());
    let mut client = gw.connections().await;
    let created = client
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap()
        .into_inner();
    let got = client
        .get_connection(admin(pb::GetConnectionRequest { name: "pg".into() }))
        .await
        .unwrap()
        .into_inner();
    let listed = client
        .list_connections(admin(pb::ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    for conn in [&created, &got, &listed.connections[0]] {
        assert_eq!(conn.env.get("PGPASSWORD").map(String::as_str), Some(""));
        assert!(!format!("{conn:?}").contains(secret));
    }
    // A bad value is refused without being echoed.
    let mut bad = command_connection("pg2", &["psql"]);
    bad.env.insert("PGPASSWORD".into(), format!("{secret}\0"));
    let err = client
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(bad),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(!err.message().contains(secret));

    // The secret reaches the session, run as an API key's user.
    let api_key = gw.user_with_token("dev", &["admin"]).await;
    let ran = exec(
        &gw,
        &api_key,
        pb::ExecRequest {
            connection: "pg".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ran.stdout,
        format!("{}\n", secret.len()).as_bytes(),
        "{ran:?}"
    );
    // Rotate it, through the CLI this time.
    gw.cli(
        Some(&api_key),
        &[
            "connections",
            "update",
            "pg",
            "--env",
            &format!("PGPASSWORD={rotated}"),
        ],
    )
    .await
    .ok();
    let ran = exec(
        &gw,
        ADMIN_TOKEN,
        pb::ExecRequest {
            connection: "pg".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ran.stdout,
        format!("{}\n", rotated.len()).as_bytes(),
        "{ran:?}"
    );
    // A wrong token is refused (and logged at debug) without being echoed.
    let wrong = "hpk_wrong-token-value-0123456789";
    assert_status(
        gw.users()
            .await
            .who_am_i(authed(wrong, pb::WhoAmIRequest {}))
            .await,
        Code::Unauthenticated,
        "invalid or revoked token",
    );

    let (_, logs) = gw.stop_with_logs().await;
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "the log should be at debug level"
    );
    assert!(logs.contains("authenticated"), "calls should be in the log");
    for (what, value) in [
        ("a connection's env value", secret),
        ("a rotated env value", rotated),
        ("the admin token", ADMIN_TOKEN),
        ("an API key", api_key.as_str()),
        ("a rejected token", wrong),
        ("the secret key", secret_key),
    ] {
        assert!(!logs.contains(value), "{what} leaked into the log");
    }
}

async fn the_admin_token_is_generated_into_the_data_dir(backend: Backend) {
    let mut setup = Setup::new(backend);
    setup.configure_admin_token = false;
    let gw = setup.start().await;
    let path = setup.data_dir().join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(gw.logs().contains("admin-token"), "the log names the file");
    assert!(
        !gw.logs().contains(&token),
        "the log must not hold the token"
    );
    let me = gw
        .users()
        .await
        .who_am_i(authed(&token, pb::WhoAmIRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.name, "admin");
    // The same token after a restart.
    let setup = gw.stop().await;
    let gw = setup.start().await;
    gw.users()
        .await
        .who_am_i(authed(&token, pb::WhoAmIRequest {}))
        .await
        .unwrap();
    // The CLI finds it in ./hoop-data next to the gateway.
    let out = gw.cli(None, &["whoami"]).await;
    assert!(out.ok().contains("admin"), "{out:?}");
}
