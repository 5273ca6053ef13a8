//! Connection rules: validation, create/update with their plugin attachments, and the
//! reconciliation of connections declared in config.

use std::collections::BTreeMap;

use hoop_core::names::check_connection_name;
use hoop_core::{Registry, Resources};
use hoop_store::{AccessModes, Attachment, Connection, LOCAL_AGENT, Store, StoreError};

use crate::config::DeclaredConnection;
use crate::error::Error;
use crate::plugins::{self, AttachAction};

/// Connection types this build can run.
pub(crate) const SUPPORTED_TYPES: &[&str] = &["command", "postgres"];

const MAX_COMMAND_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;
const MAX_ENV_VARS: usize = 256;
const MAX_ENV_NAME_BYTES: usize = 256;
const MAX_ENV_VALUE_BYTES: usize = 64 * 1024;
const MAX_LIST_ITEMS: usize = 64;
const MAX_TAGS: usize = 64;
const MIN_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Shortest `review_ttl`: short ones make sense for tests and drills.
const MIN_REVIEW_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Limits of `access_max_duration` (and the longest `review_ttl`).
const MIN_REVIEW_DURATION: std::time::Duration = std::time::Duration::from_secs(60);
const MAX_REVIEW_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
/// Most approvals a connection may require.
const MAX_MIN_APPROVALS: u32 = 64;
const MAX_TAG_KEY_BYTES: usize = 63;
const MAX_TAG_VALUE_BYTES: usize = 256;
/// Connection fields that mean something only to the plugin managing them: set while no
/// plugin built into this gateway manages them, they are refused, so that a connection
/// never silently runs without the reviews or the masking it asks for.
const PLUGIN_ONLY_FIELDS: &[&str] = &["reviewers", "redact_types"];

/// The connection's fields as plugins see them (the managed plugins' configs are made of
/// them, see [`hoop_core::ManagedField`]): named as the API names them, durations in whole
/// milliseconds, unset fields null. Never the `env` values, which are secrets.
pub(crate) fn fields_view(conn: &Connection) -> serde_json::Map<String, serde_json::Value> {
    let millis = |d: Option<std::time::Duration>| {
        d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    let access_modes = serde_json::json!({
        "exec": conn.access.exec,
        "connect": conn.access.connect,
        "runbooks": conn.access.runbooks,
    });
    [
        ("name", serde_json::json!(conn.name)),
        ("type", serde_json::json!(conn.kind)),
        ("command", serde_json::json!(conn.command)),
        ("reviewers", serde_json::json!(conn.reviewers)),
        ("redact_types", serde_json::json!(conn.redact_types)),
        ("access_modes", access_modes),
        ("tags", serde_json::json!(conn.tags)),
        (
            "session_timeout",
            serde_json::json!(millis(conn.session_timeout)),
        ),
        ("min_approvals", serde_json::json!(conn.min_approvals)),
        ("review_ttl", serde_json::json!(millis(conn.review_ttl))),
        (
            "access_max_duration",
            serde_json::json!(millis(conn.access_max_duration)),
        ),
        ("allow_args", serde_json::json!(conn.allow_args)),
        ("agent", serde_json::json!(agent_or_local(&conn.agent))),
        ("mask_columns", serde_json::json!(conn.mask_columns)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Checks every field of a connection; errors name the field under `at` (e.g.
/// `connection.command[0]` or `connections[2].env`).
pub(crate) fn validate(
    registry: &Registry,
    resources: &Resources,
    conn: &Connection,
    at: &str,
) -> Result<(), Error> {
    let field = |name: &str| format!("{at}.{name}");
    if conn.name.is_empty() {
        return Err(Error::invalid(field("name"), "required"));
    }
    check_connection_name(&conn.name).map_err(|e| Error::invalid(field("name"), e.to_string()))?;
    if conn.kind.is_empty() {
        return Err(Error::invalid(
            field("type"),
            format!("required; supported: {}", SUPPORTED_TYPES.join(", ")),
        ));
    }
    if !SUPPORTED_TYPES.contains(&conn.kind.as_str()) {
        return Err(Error::invalid(
            field("type"),
            format!(
                "unknown type `{}`; supported: {}",
                conn.kind,
                SUPPORTED_TYPES.join(", ")
            ),
        ));
    }

    if conn.kind == "postgres" {
        if !conn.command.is_empty() {
            return Err(Error::invalid(
                field("command"),
                "a postgres connection runs no command: leave it empty (the database is \
                 env HOST, PORT, USER, PASS, DB, SSLMODE, SSLROOTCERT)",
            ));
        }
        hoop_pg::target::PgTarget::from_env(&conn.env)
            .map_err(|e| Error::invalid(format!("{at}.{}", e.field), e.message))?;
        hoop_pg::target::parse_rules(&conn.mask_columns)
            .map_err(|e| Error::invalid(format!("{at}.{}", e.field), e.message))?;
    } else if !conn.mask_columns.is_empty() {
        return Err(Error::invalid(
            field("mask_columns"),
            "only postgres connections have column rules",
        ));
    }
    if conn.kind == "command" && conn.command.is_empty() {
        return Err(Error::invalid(
            field("command"),
            "required for type command: the program and its arguments, e.g. [\"psql\", \"-h\", \"db\"]",
        ));
    }
    if conn.command.len() > MAX_COMMAND_ARGS {
        return Err(Error::invalid(
            field("command"),
            format!("at most {MAX_COMMAND_ARGS} arguments"),
        ));
    }
    for (i, arg) in conn.command.iter().enumerate() {
        if arg.len() > MAX_ARG_BYTES {
            return Err(Error::invalid(
                format!("{at}.command[{i}]"),
                format!("at most {MAX_ARG_BYTES} bytes"),
            ));
        }
        if arg.contains('\0') {
            return Err(Error::invalid(
                format!("{at}.command[{i}]"),
                "must not contain NUL bytes",
            ));
        }
    }
    if conn.command.first().is_some_and(String::is_empty) {
        return Err(Error::invalid(
            format!("{at}.command[0]"),
            "the program must not be empty",
        ));
    }

    if conn.env.len() > MAX_ENV_VARS {
        return Err(Error::invalid(
            field("env"),
            format!("at most {MAX_ENV_VARS} variables"),
        ));
    }
    for (name, value) in &conn.env {
        let valid_name = name.len() <= MAX_ENV_NAME_BYTES
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(Error::invalid(
                field("env"),
                format!(
                    "variable name `{}` must match ^[A-Za-z_][A-Za-z0-9_]*$",
                    truncate(name)
                ),
            ));
        }
        // Never echo the value: it is a secret.
        if value.len() > MAX_ENV_VALUE_BYTES {
            return Err(Error::invalid(
                format!("{at}.env[{name}]"),
                format!("value is longer than {MAX_ENV_VALUE_BYTES} bytes"),
            ));
        }
        if value.contains('\0') {
            return Err(Error::invalid(
                format!("{at}.env[{name}]"),
                "value must not contain NUL bytes",
            ));
        }
    }

    for (name, list) in [
        ("reviewers", &conn.reviewers),
        ("redact_types", &conn.redact_types),
    ] {
        if list.len() > MAX_LIST_ITEMS {
            return Err(Error::invalid(
                field(name),
                format!("at most {MAX_LIST_ITEMS} entries"),
            ));
        }
    }
    let view = fields_view(conn);
    for name in PLUGIN_ONLY_FIELDS {
        let set = view
            .get(*name)
            .is_some_and(|v| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)));
        if set && plugins::managing(registry, name).is_none() {
            return Err(Error::invalid(
                field(name),
                "the plugin managing this field is not built into this gateway",
            ));
        }
    }
    plugins::check_managed_fields(registry, resources, conn, at)?;

    if let Some(timeout) = conn.session_timeout
        && !(MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(&timeout)
    {
        return Err(Error::invalid(
            field("session_timeout"),
            "must be between 1s and 7 days (unset for no limit)",
        ));
    }

    if let Some(n) = conn.min_approvals
        && !(1..=MAX_MIN_APPROVALS).contains(&n)
    {
        return Err(Error::invalid(
            field("min_approvals"),
            format!(
                "must be between 1 and {MAX_MIN_APPROVALS} (unset: one approval from every reviewer group)"
            ),
        ));
    }
    for (name, value, min, range) in [
        (
            "review_ttl",
            conn.review_ttl,
            MIN_REVIEW_TTL,
            "must be between 1s and 30 days (unset: 24h)",
        ),
        (
            "access_max_duration",
            conn.access_max_duration,
            MIN_REVIEW_DURATION,
            "must be between 1 minute and 30 days (unset: 4h)",
        ),
    ] {
        if let Some(d) = value
            && !(min..=MAX_REVIEW_DURATION).contains(&d)
        {
            return Err(Error::invalid(field(name), range));
        }
    }

    check_agent_name(&conn.agent).map_err(|message| Error::invalid(field("agent"), message))?;

    if conn.tags.len() > MAX_TAGS {
        return Err(Error::invalid(
            field("tags"),
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (key, value) in &conn.tags {
        let valid_key = !key.is_empty()
            && key.len() <= MAX_TAG_KEY_BYTES
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
        if !valid_key {
            return Err(Error::invalid(
                field("tags"),
                format!(
                    "key `{}` must be 1 to {MAX_TAG_KEY_BYTES} characters of A-Z a-z 0-9 . _ / -",
                    truncate(key)
                ),
            ));
        }
        if value.len() > MAX_TAG_VALUE_BYTES {
            return Err(Error::invalid(
                format!("{at}.tags[{key}]"),
                format!("value is longer than {MAX_TAG_VALUE_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// Checks the name of the agent a connection runs on: a name like a connection's, or empty
/// for [`LOCAL_AGENT`]. Whether such an agent exists is not checked: agents are created on
/// their own, before or after the connections that name them.
pub(crate) fn check_agent_name(agent: &str) -> Result<(), String> {
    if agent.is_empty() {
        return Ok(());
    }
    check_connection_name(agent).map_err(|_| {
        format!(
            "agent name must match {} (empty means `{LOCAL_AGENT}`)",
            hoop_core::names::CONNECTION_NAME_RULE
        )
    })
}

/// The agent a connection names: `local` when it names none.
fn agent_or_local(agent: &str) -> &str {
    if agent.is_empty() { LOCAL_AGENT } else { agent }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// Creates a connection with the default plugins attached.
pub(crate) async fn create(
    store: &Store,
    registry: &Registry,
    resources: &Resources,
    conn: &Connection,
) -> Result<Connection, Error> {
    validate(registry, resources, conn, "connection")?;
    let attachments = plugins::default_attachments(registry, conn);
    store
        .create_connection(conn, &attachments)
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists { .. } => Error::AlreadyExists(format!(
                "connection `{}` already exists; use UpdateConnection to change it",
                conn.name
            )),
            other => other.into(),
        })
}

/// Stores an updated connection and re-derives its managed plugins.
pub(crate) async fn update(
    store: &Store,
    registry: &Registry,
    resources: &Resources,
    conn: &Connection,
    replace_env: bool,
    at: &str,
) -> Result<Connection, Error> {
    validate(registry, resources, conn, at)?;
    let managed = plugins::managed_attachments(registry, conn);
    Ok(store.update_connection(conn, replace_env, &managed).await?)
}

/// Creates or updates the connections declared in config, so the database matches them.
/// Plugins attached through the API and not declared are left as they are.
pub(crate) async fn reconcile_declared(
    store: &Store,
    registry: &Registry,
    resources: &Resources,
    declared: &[DeclaredConnection],
) -> Result<(), Error> {
    // Check everything first: a bad entry changes nothing.
    let mut plan: Vec<(Connection, Vec<Attachment>)> = Vec::new();
    for (i, d) in declared.iter().enumerate() {
        let at = format!("connections[{i}]");
        if declared[..i].iter().any(|other| other.name == d.name) {
            return Err(Error::invalid(
                format!("{at}.name"),
                format!("`{}` is declared twice", d.name),
            ));
        }
        let mut conn = Connection::new(d.name.clone(), d.kind.clone());
        conn.command = d.command.clone();
        conn.env = d.env.clone();
        conn.reviewers = d.reviewers.clone();
        conn.redact_types = d.redact_types.clone();
        conn.tags = d.tags.clone();
        conn.session_timeout = declared_duration(&d.session_timeout, &at, "session_timeout")?;
        conn.review_ttl = declared_duration(&d.review_ttl, &at, "review_ttl")?;
        conn.access_max_duration =
            declared_duration(&d.access_max_duration, &at, "access_max_duration")?;
        conn.min_approvals = d.min_approvals.filter(|n| *n > 0);
        conn.allow_args = d.allow_args;
        conn.agent = d.agent.clone().unwrap_or_default();
        conn.mask_columns = d.mask_columns.clone();
        conn.access = AccessModes {
            exec: d.access_modes.exec.unwrap_or(true),
            connect: d.access_modes.connect.unwrap_or(true),
            runbooks: d.access_modes.runbooks.unwrap_or(true),
        };
        validate(registry, resources, &conn, &at)?;
        let mut attachments = Vec::new();
        for (j, p) in d.plugins.iter().enumerate() {
            let config = match &p.config {
                Some(table) => serde_json::to_value(table).map_err(|e| {
                    Error::invalid(format!("{at}.plugins[{j}].config"), e.to_string())
                })?,
                None => serde_json::json!({}),
            };
            let attachment =
                plugins::checked_attachment(registry, &p.name, config, AttachAction::Configure)
                    .map_err(|e| match e {
                        Error::InvalidArgument { field, message } => {
                            Error::invalid(format!("{at}.plugins[{j}].{field}"), message)
                        }
                        other => Error::invalid(format!("{at}.plugins[{j}]"), other.to_string()),
                    })?;
            attachments.push(attachment);
        }
        plan.push((conn, attachments));
    }

    for (conn, attachments) in plan {
        let existed = match store.get_connection(&conn.name, false).await {
            Ok(_) => true,
            Err(StoreError::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if existed {
            update(store, registry, resources, &conn, true, "connection").await?;
        } else {
            create(store, registry, resources, &conn).await?;
        }
        let current: BTreeMap<String, Attachment> = store
            .list_attachments(&conn.name)
            .await?
            .into_iter()
            .map(|a| (a.plugin.clone(), a))
            .collect();
        for attachment in attachments {
            match current.get(&attachment.plugin) {
                Some(existing) if existing == &attachment => {}
                Some(_) => store.update_attachment(&conn.name, &attachment).await?,
                None => store.attach(&conn.name, &attachment).await?,
            }
        }
        tracing::info!(
            connection = %conn.name,
            action = if existed { "updated" } else { "created" },
            "declared connection applied"
        );
    }
    Ok(())
}

/// A duration of a declared connection (`"90s"`, `"30m"`, `"1h30m"`); `"0s"` means unset.
fn declared_duration(
    text: &Option<String>,
    at: &str,
    key: &str,
) -> Result<Option<std::time::Duration>, Error> {
    let Some(text) = text else { return Ok(None) };
    match humantime::parse_duration(text) {
        Ok(t) if t.is_zero() => Ok(None),
        Ok(t) => Ok(Some(t)),
        Err(e) => Err(Error::invalid(
            format!("{at}.{key}"),
            format!("`{text}` is not a duration like `90s`, `30m` or `2h`: {e}"),
        )),
    }
}

// These tests expect every plugin of the default build.
#[cfg(test)]
#[cfg(all(feature = "plugin-slack", feature = "plugin-access-control"))]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let mut c = Connection::new("pg", "command");
        c.command = vec!["psql".into()];
        c
    }

    fn err_of(c: &Connection) -> String {
        let registry = crate::plugins::registry().unwrap();
        validate(&registry, &Resources::new(), c, "connection")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn each_bad_field_is_named() {
        let registry = crate::plugins::registry().unwrap();
        assert!(validate(&registry, &Resources::new(), &conn(), "connection").is_ok());

        let mut c = conn();
        c.name = "Bad Name".into();
        assert!(err_of(&c).starts_with("connection.name: connection name must match"));
        let mut c = conn();
        c.kind = "oracle".into();
        assert_eq!(
            err_of(&c),
            "connection.type: unknown type `oracle`; supported: command, postgres"
        );
        let mut c = conn();
        c.command.clear();
        assert!(err_of(&c).starts_with("connection.command: required for type command"));
        let mut c = conn();
        c.command.push("x".repeat(5000));
        assert_eq!(err_of(&c), "connection.command[1]: at most 4096 bytes");
        let mut c = conn();
        c.env.insert("1BAD".into(), "v".into());
        assert!(err_of(&c).starts_with("connection.env: variable name `1BAD`"));
        let mut c = conn();
        c.env.insert("BIG".into(), "s".repeat(70_000));
        let e = err_of(&c);
        assert_eq!(e, "connection.env[BIG]: value is longer than 65536 bytes");
        let mut c = conn();
        c.reviewers = vec!["ok".into(), "Not OK".into()];
        assert!(err_of(&c).starts_with("connection.reviewers[1]: group name must match"));
        let mut c = conn();
        c.tags.insert("a b".into(), "v".into());
        assert!(err_of(&c).starts_with("connection.tags: key `a b`"));
        for bad in ["Edge", "-edge", "edge 1", "edge\n", "../x", &"a".repeat(64)] {
            let mut c = conn();
            c.agent = bad.into();
            assert_eq!(
                err_of(&c),
                "connection.agent: agent name must match ^[a-z0-9][a-z0-9_-]{0,62}$ (empty \
                 means `local`)",
                "{bad:?}"
            );
        }
        for good in ["", "local", "edge-1", "dc2_agent"] {
            let mut c = conn();
            c.agent = good.into();
            assert!(validate(&registry, &Resources::new(), &c, "connection").is_ok());
        }
    }

    #[test]
    fn plugin_fields_need_their_plugin_built_in() {
        // A gateway with audit only: reviewers and redact_types have nobody to honour them.
        let audit_only = Registry::from_factories([hoop_plugin_audit::REGISTRATION]).unwrap();
        let resources = Resources::new();
        assert!(validate(&audit_only, &resources, &conn(), "connection").is_ok());
        let mut reviewed = conn();
        reviewed.reviewers = vec!["dba".into()];
        let mut masked = conn();
        masked.redact_types = vec!["EMAIL_ADDRESS".into()];
        for (name, c) in [("reviewers", reviewed), ("redact_types", masked)] {
            let err = validate(&audit_only, &resources, &c, "connection").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "connection.{name}: the plugin managing this field is not built into this \
                     gateway"
                )
            );
        }
    }

    #[test]
    fn the_fields_view_hides_secrets_and_counts_durations_in_milliseconds() {
        let mut c = conn();
        c.env.insert("PGPASSWORD".into(), "s3cret".into());
        c.access_max_duration = Some(std::time::Duration::from_secs(90));
        let view = fields_view(&c);
        assert_eq!(view["access_max_duration"], 90_000);
        assert!(view["review_ttl"].is_null());
        assert_eq!(view["command"], serde_json::json!(["psql"]));
        assert!(!view.contains_key("env"));
        assert!(
            !serde_json::Value::Object(view)
                .to_string()
                .contains("s3cret")
        );
    }
}
