//! Turning flags into request messages: KEY=VALUE pairs, comma lists, access modes, JSON
//! configs and update masks; and plugin configs back into JSON for display.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use hoop_proto::v1::{AccessModes, Connection, User};
use prost_types::{FieldMask, ListValue, Struct, Value, value::Kind};

use crate::cli::{ConnectionFields, UserFields};

/// Parses repeated `KEY=VALUE` flag values into a map (a later key wins). `flag` names the
/// flag in the error, e.g. `--env`.
pub(crate) fn parse_key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                map.insert(key.to_owned(), value.to_owned());
            }
            _ => bail!("{flag} expects KEY=VALUE, got `{item}`"),
        }
    }
    Ok(map)
}

/// Parses repeated `--env` values: `KEY=VALUE`, or `KEY` alone to take the value from the
/// variable `KEY` of `lookup` (hoop's own environment), so that a secret need not be written
/// on the command line, which every user of the host can read in `/proc/<pid>/cmdline`.
pub(crate) fn parse_env(
    items: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                map.insert(key.to_owned(), value.to_owned());
            }
            None if !item.is_empty() => match lookup(item) {
                Some(value) => {
                    map.insert(item.clone(), value);
                }
                None => bail!(
                    "--env {item}: no `=VALUE` given and no variable {item} in hoop's \
                     environment: export {item}=… first, or pass {item}=VALUE"
                ),
            },
            _ => bail!("--env expects KEY=VALUE or KEY, got `{item}`"),
        }
    }
    Ok(map)
}

/// Splits a comma-separated flag value; blanks are dropped, so `''` is the empty list.
pub(crate) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `--access-modes`: the listed modes are enabled, the others disabled.
pub(crate) fn parse_access_modes(value: &str) -> Result<AccessModes> {
    let mut modes = AccessModes {
        exec: Some(false),
        connect: Some(false),
        runbooks: Some(false),
    };
    for mode in split_list(value) {
        match mode.as_str() {
            "exec" => modes.exec = Some(true),
            "connect" => modes.connect = Some(true),
            "runbooks" => modes.runbooks = Some(true),
            other => bail!(
                "--access-modes: unknown mode `{other}` (expected a comma-separated list of exec, connect, runbooks)"
            ),
        }
    }
    Ok(modes)
}

/// Parses `--session-timeout`: a duration such as `90s`, `30m`, `2h` or `1h30m`; `none`, `0`
/// or any zero duration mean no limit (unset). The 1s..7 days range is the gateway's to check.
pub(crate) fn parse_session_timeout(value: &str) -> Result<Option<prost_types::Duration>> {
    parse_optional_duration("--session-timeout", value)
}

/// Parses a duration flag that `none` unsets (`--session-timeout`, `--review-ttl`,
/// `--access-max-duration`): a duration such as `90s`, `30m`, `2h` or `1h30m`; `none`, `0`
/// or any zero duration mean unset. Ranges are the gateway's to check.
pub(crate) fn parse_optional_duration(
    flag: &str,
    value: &str,
) -> Result<Option<prost_types::Duration>> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let Ok(duration) = humantime::parse_duration(value) else {
        bail!("{flag}: `{value}` is not a duration like 90s, 30m, 2h or 1h30m (or none)");
    };
    if duration.is_zero() {
        return Ok(None);
    }
    match to_proto_duration(duration) {
        Some(duration) => Ok(Some(duration)),
        None => bail!("{flag}: `{value}` is too long"),
    }
}

/// A `std` duration as a `google.protobuf.Duration`; `None` when it does not fit.
pub(crate) fn to_proto_duration(duration: std::time::Duration) -> Option<prost_types::Duration> {
    let seconds = i64::try_from(duration.as_secs()).ok()?;
    // Below 1e9: always fits.
    let nanos = i32::try_from(duration.subsec_nanos()).unwrap_or(0);
    Some(prost_types::Duration { seconds, nanos })
}

/// Parses `--min-approvals`: a whole number; `none` or 0 mean unset (one approval from every
/// reviewer group).
pub(crate) fn parse_min_approvals(value: &str) -> Result<Option<u32>> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match value.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => bail!("--min-approvals: `{value}` is not a whole number (or none)"),
    }
}

/// The connection the flags describe, and the update mask naming exactly the fields whose
/// flags were given (in a fixed order).
pub(crate) fn connection_from_flags(
    name: &str,
    fields: &ConnectionFields,
) -> Result<(Connection, FieldMask)> {
    let mut connection = Connection {
        name: name.to_owned(),
        ..Connection::default()
    };
    let mut paths = Vec::new();
    if let Some(kind) = &fields.kind {
        connection.r#type = kind.clone();
        paths.push("type");
    }
    if !fields.command.is_empty() {
        connection.command = fields.command.clone();
        paths.push("command");
    }
    if !fields.env.is_empty() {
        connection.env = parse_env(&fields.env, |key| std::env::var(key).ok())?;
        paths.push("env");
    }
    if let Some(reviewers) = &fields.reviewers {
        connection.reviewers = split_list(reviewers);
        paths.push("reviewers");
    }
    if let Some(redact_types) = &fields.redact_types {
        connection.redact_types = split_list(redact_types);
        paths.push("redact_types");
    }
    if let Some(rules) = &fields.mask_columns {
        connection.mask_columns = split_list(rules);
        paths.push("mask_columns");
    }
    if let Some(modes) = &fields.access_modes {
        connection.access_modes = Some(parse_access_modes(modes)?);
        paths.push("access_modes");
    }
    if !fields.tags.is_empty() {
        connection.tags = parse_key_values("--tag", &fields.tags)?;
        paths.push("tags");
    }
    if let Some(timeout) = &fields.session_timeout {
        // Unset (`none`) with the path in the mask removes the limit.
        connection.session_timeout = parse_session_timeout(timeout)?;
        paths.push("session_timeout");
    }
    if let Some(min) = &fields.min_approvals {
        connection.min_approvals = parse_min_approvals(min)?;
        paths.push("min_approvals");
    }
    if let Some(ttl) = &fields.review_ttl {
        connection.review_ttl = parse_optional_duration("--review-ttl", ttl)?;
        paths.push("review_ttl");
    }
    if let Some(max) = &fields.access_max_duration {
        connection.access_max_duration = parse_optional_duration("--access-max-duration", max)?;
        paths.push("access_max_duration");
    }
    if let Some(allow) = fields.allow_args {
        connection.allow_args = allow;
        paths.push("allow_args");
    }
    if let Some(agent) = &fields.agent {
        connection.agent = agent.trim().to_owned();
        paths.push("agent");
    }
    let mask = FieldMask {
        paths: paths.into_iter().map(str::to_owned).collect(),
    };
    Ok((connection, mask))
}

/// The connection to create: the flags, with type `command` when `--type` is not given.
pub(crate) fn connection_to_create(name: &str, fields: &ConnectionFields) -> Result<Connection> {
    let (mut connection, _) = connection_from_flags(name, fields)?;
    if fields.kind.is_none() {
        connection.r#type = "command".to_owned();
    }
    Ok(connection)
}

/// The connection update: fails when no field flag is given.
pub(crate) fn connection_update(
    name: &str,
    fields: &ConnectionFields,
) -> Result<(Connection, FieldMask)> {
    let (connection, mask) = connection_from_flags(name, fields)?;
    if mask.paths.is_empty() {
        bail!(
            "nothing to update: pass at least one of --type, --env, --reviewers, --redact-types, --tag, --access-modes, --session-timeout, --min-approvals, --review-ttl, --access-max-duration, --allow-args, --agent or -- CMD..."
        );
    }
    Ok((connection, mask))
}

/// The user the flags describe, and the update mask of the flags given.
pub(crate) fn user_from_flags(name: &str, fields: &UserFields) -> (User, FieldMask) {
    let mut user = User {
        name: name.to_owned(),
        ..User::default()
    };
    let mut paths = Vec::new();
    if let Some(email) = &fields.email {
        user.email = email.clone();
        paths.push("email".to_owned());
    }
    if let Some(groups) = &fields.groups {
        user.groups = split_list(groups);
        paths.push("groups".to_owned());
    }
    if let Some(slack_id) = &fields.slack_id {
        user.slack_id = slack_id.trim().to_owned();
        paths.push("slack_id".to_owned());
    }
    (user, FieldMask { paths })
}

/// The user update: fails when no field flag is given.
pub(crate) fn user_update(name: &str, fields: &UserFields) -> Result<(User, FieldMask)> {
    let (user, mask) = user_from_flags(name, fields);
    if mask.paths.is_empty() {
        bail!("nothing to update: pass at least one of --email, --groups, --slack-id");
    }
    Ok((user, mask))
}

/// Parses a `--config` flag: a JSON object, as a `google.protobuf.Struct`.
pub(crate) fn parse_config(json: &str) -> Result<Struct> {
    let value: serde_json::Value = match serde_json::from_str(json) {
        Ok(value) => value,
        Err(err) => bail!("--config is not valid JSON: {err}"),
    };
    match value {
        serde_json::Value::Object(object) => Ok(json_object_to_struct(object)),
        _ => bail!("--config must be a JSON object"),
    }
}

/// A JSON object as a `google.protobuf.Struct`.
pub(crate) fn json_object_to_struct(object: serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: object
            .into_iter()
            .map(|(key, value)| (key, json_to_value(value)))
            .collect(),
    }
}

/// A JSON value as a `google.protobuf.Value`.
pub(crate) fn json_to_value(value: serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        // Without serde_json's `arbitrary_precision`, every number converts to f64.
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(object) => Kind::StructValue(json_object_to_struct(object)),
    };
    Value { kind: Some(kind) }
}

/// A `google.protobuf.Struct` as a JSON object.
pub(crate) fn struct_to_json(s: &Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(key, value)| (key.clone(), value_to_json(value)))
            .collect(),
    )
}

/// A `google.protobuf.Value` as JSON. Whole numbers print without a fraction; NaN and
/// infinities (which JSON cannot hold) become null.
pub(crate) fn value_to_json(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number_to_json(*n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    // 2^53: beyond it, f64 no longer holds every integer exactly.
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
    if n.is_finite() && n.fract() == 0.0 && n.abs() <= MAX_EXACT {
        #[allow(clippy::cast_possible_truncation)]
        let int = n as i64;
        return serde_json::Value::from(int);
    }
    serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn key_values_parse() {
        let map = parse_key_values("--env", &strings(&["A=1", "B=x=y", "C=", "A=2"])).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map["A"], "2");
        assert_eq!(map["B"], "x=y");
        assert_eq!(map["C"], "");
    }

    #[test]
    fn key_values_errors() {
        let err = parse_key_values("--env", &strings(&["A=1", "oops"])).unwrap_err();
        assert_eq!(err.to_string(), "--env expects KEY=VALUE, got `oops`");
    }

    #[test]
    fn env_values_may_come_from_hoops_environment() {
        let lookup = |key: &str| (key == "PGPASSWORD").then(|| "from-env".to_owned());
        let map = parse_env(&strings(&["PGPASSWORD", "A=1"]), lookup).unwrap();
        assert_eq!(map["PGPASSWORD"], "from-env");
        assert_eq!(map["A"], "1");
        let err = parse_env(&strings(&["MISSING"]), lookup).unwrap_err();
        assert!(err.to_string().contains("no variable MISSING"), "{err}");
        let err = parse_env(&strings(&["=x"]), lookup).unwrap_err();
        assert!(err.to_string().contains("KEY=VALUE or KEY"), "{err}");
        let err = parse_key_values("--tag", &strings(&["=v"])).unwrap_err();
        assert_eq!(err.to_string(), "--tag expects KEY=VALUE, got `=v`");
    }

    #[test]
    fn lists_split_and_empty_clears() {
        assert_eq!(split_list("a, b,,c "), ["a", "b", "c"]);
        assert!(split_list("").is_empty());
    }

    #[test]
    fn access_modes_listed_true_others_false() {
        let modes = parse_access_modes("exec,runbooks").unwrap();
        assert_eq!(modes.exec, Some(true));
        assert_eq!(modes.connect, Some(false));
        assert_eq!(modes.runbooks, Some(true));
        let err = parse_access_modes("exec,ssh").unwrap_err();
        assert!(err.to_string().contains("`ssh`"), "{err}");
    }

    #[test]
    fn update_mask_has_exactly_the_flags_given() {
        let fields = ConnectionFields {
            env: strings(&["PGPASSWORD=x"]),
            reviewers: Some(String::new()),
            access_modes: Some("connect".to_owned()),
            command: strings(&["psql", "-h", "db"]),
            ..ConnectionFields::default()
        };
        let (connection, mask) = connection_update("pg", &fields).unwrap();
        assert_eq!(mask.paths, ["command", "env", "reviewers", "access_modes"]);
        assert_eq!(connection.name, "pg");
        assert!(connection.reviewers.is_empty());
        assert_eq!(connection.env["PGPASSWORD"], "x");
        assert_eq!(connection.r#type, "");
        let modes = connection.access_modes.unwrap();
        assert_eq!(
            (modes.exec, modes.connect, modes.runbooks),
            (Some(false), Some(true), Some(false))
        );

        let fields = ConnectionFields {
            kind: Some("command".to_owned()),
            redact_types: Some("EMAIL_ADDRESS, PHONE_NUMBER".to_owned()),
            tags: strings(&["team=data"]),
            ..ConnectionFields::default()
        };
        let (connection, mask) = connection_update("pg", &fields).unwrap();
        assert_eq!(mask.paths, ["type", "redact_types", "tags"]);
        assert_eq!(connection.redact_types, ["EMAIL_ADDRESS", "PHONE_NUMBER"]);
        assert_eq!(connection.tags["team"], "data");
    }

    #[test]
    fn session_timeouts_parse() {
        let secs = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
        assert_eq!(parse_session_timeout("90s").unwrap(), secs(90));
        assert_eq!(parse_session_timeout("30m").unwrap(), secs(1800));
        assert_eq!(parse_session_timeout("2h").unwrap(), secs(7200));
        assert_eq!(parse_session_timeout(" 1h30m ").unwrap(), secs(5400));
        assert_eq!(parse_session_timeout("1h 30m").unwrap(), secs(5400));
        assert_eq!(parse_session_timeout("7d").unwrap(), secs(604_800));
        assert_eq!(
            parse_session_timeout("1s500ms").unwrap(),
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        for none in ["none", "NONE", "0", "0s", "0h0m"] {
            assert_eq!(parse_session_timeout(none).unwrap(), None, "{none}");
        }
        for bad in ["", "soon", "-1s", "10x", "1.5.2h"] {
            let err = parse_session_timeout(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("--session-timeout: `"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            parse_session_timeout("soon").unwrap_err().to_string(),
            "--session-timeout: `soon` is not a duration like 90s, 30m, 2h or 1h30m (or none)"
        );
    }

    #[test]
    fn session_timeout_is_masked_and_none_clears() {
        let fields = ConnectionFields {
            session_timeout: Some("30m".to_owned()),
            ..ConnectionFields::default()
        };
        let (connection, mask) = connection_update("pg", &fields).unwrap();
        assert_eq!(mask.paths, ["session_timeout"]);
        assert_eq!(connection.session_timeout.unwrap().seconds, 1800);

        let fields = ConnectionFields {
            session_timeout: Some("none".to_owned()),
            reviewers: Some("dba".to_owned()),
            ..ConnectionFields::default()
        };
        let (connection, mask) = connection_update("pg", &fields).unwrap();
        assert_eq!(mask.paths, ["reviewers", "session_timeout"]);
        assert_eq!(connection.session_timeout, None);

        let fields = ConnectionFields {
            session_timeout: Some("2h".to_owned()),
            ..ConnectionFields::default()
        };
        let connection = connection_to_create("pg", &fields).unwrap();
        assert_eq!(connection.session_timeout.unwrap().seconds, 7200);
        let connection = connection_to_create("pg", &ConnectionFields::default()).unwrap();
        assert_eq!(connection.session_timeout, None);
    }

    #[test]
    fn review_settings_parse() {
        assert_eq!(parse_min_approvals("2").unwrap(), Some(2));
        assert_eq!(parse_min_approvals(" 1 ").unwrap(), Some(1));
        for none in ["none", "None", "0"] {
            assert_eq!(parse_min_approvals(none).unwrap(), None, "{none}");
        }
        for bad in ["", "-1", "two", "1.5", "4294967296"] {
            let err = parse_min_approvals(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("--min-approvals: `"),
                "{bad}: {err}"
            );
        }
        let secs = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
        assert_eq!(
            parse_optional_duration("--review-ttl", "2h").unwrap(),
            secs(7200)
        );
        assert_eq!(
            parse_optional_duration("--review-ttl", "none").unwrap(),
            None
        );
        assert_eq!(
            parse_optional_duration("--access-max-duration", "soon")
                .unwrap_err()
                .to_string(),
            "--access-max-duration: `soon` is not a duration like 90s, 30m, 2h or 1h30m (or none)"
        );
        assert_eq!(
            to_proto_duration(std::time::Duration::new(3, 7)),
            Some(prost_types::Duration {
                seconds: 3,
                nanos: 7
            })
        );
        assert_eq!(to_proto_duration(std::time::Duration::MAX), None);
    }

    #[test]
    fn review_settings_are_masked_and_none_clears() {
        let fields = ConnectionFields {
            reviewers: Some("dba".to_owned()),
            min_approvals: Some("1".to_owned()),
            review_ttl: Some("2h".to_owned()),
            access_max_duration: Some("1h".to_owned()),
            ..ConnectionFields::default()
        };
        let connection = connection_to_create("pg", &fields).unwrap();
        assert_eq!(connection.reviewers, ["dba"]);
        assert_eq!(connection.min_approvals, Some(1));
        assert_eq!(connection.review_ttl.unwrap().seconds, 7200);
        assert_eq!(connection.access_max_duration.unwrap().seconds, 3600);

        let fields = ConnectionFields {
            min_approvals: Some("none".to_owned()),
            review_ttl: Some("none".to_owned()),
            access_max_duration: Some("0".to_owned()),
            ..ConnectionFields::default()
        };
        let (connection, mask) = connection_update("pg", &fields).unwrap();
        assert_eq!(
            mask.paths,
            ["min_approvals", "review_ttl", "access_max_duration"]
        );
        assert_eq!(connection.min_approvals, None);
        assert_eq!(connection.review_ttl, None);
        assert_eq!(connection.access_max_duration, None);

        let fields = ConnectionFields {
            min_approvals: Some("x".to_owned()),
            ..ConnectionFields::default()
        };
        assert!(connection_update("pg", &fields).is_err());
    }

    #[test]
    fn allow_args_and_agent_are_masked() {
        let fields = ConnectionFields {
            allow_args: Some(true),
            agent: Some(" edge-1 ".to_owned()),
            ..ConnectionFields::default()
        };
        let connection = connection_to_create("sh", &fields).unwrap();
        assert!(connection.allow_args);
        assert_eq!(connection.agent, "edge-1");
        let fields = ConnectionFields {
            allow_args: Some(false),
            agent: Some(String::new()),
            ..ConnectionFields::default()
        };
        let (connection, mask) = connection_update("sh", &fields).unwrap();
        assert_eq!(mask.paths, ["allow_args", "agent"]);
        assert!(!connection.allow_args);
        assert_eq!(connection.agent, "");
        // Not given: neither is in the mask, nor set on create.
        let connection = connection_to_create("sh", &ConnectionFields::default()).unwrap();
        assert!(!connection.allow_args && connection.agent.is_empty());
    }

    #[test]
    fn update_without_flags_fails() {
        let err = connection_update("pg", &ConnectionFields::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("nothing to update: pass at least one of --type")
        );
        let err = user_update("ann", &UserFields::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nothing to update: pass at least one of --email, --groups, --slack-id"
        );
    }

    #[test]
    fn bad_key_value_fails_update() {
        let fields = ConnectionFields {
            tags: strings(&["novalue"]),
            ..ConnectionFields::default()
        };
        let err = connection_update("pg", &fields).unwrap_err();
        assert_eq!(err.to_string(), "--tag expects KEY=VALUE, got `novalue`");
    }

    #[test]
    fn create_defaults_type_and_leaves_access_modes_unset() {
        let connection = connection_to_create("pg", &ConnectionFields::default()).unwrap();
        assert_eq!(connection.r#type, "command");
        assert_eq!(connection.access_modes, None);
    }

    #[test]
    fn user_mask() {
        let fields = UserFields {
            email: None,
            groups: Some("admin, auditor".to_owned()),
            slack_id: None,
        };
        let (user, mask) = user_update("ann", &fields).unwrap();
        assert_eq!(mask.paths, ["groups"]);
        assert_eq!(user.groups, ["admin", "auditor"]);
        let fields = UserFields {
            email: Some("a@b.c".to_owned()),
            groups: Some(String::new()),
            slack_id: None,
        };
        let (user, mask) = user_update("ann", &fields).unwrap();
        assert_eq!(mask.paths, ["email", "groups"]);
        assert!(user.groups.is_empty());
        let fields = UserFields {
            slack_id: Some(" U0123ABCD ".to_owned()),
            ..UserFields::default()
        };
        let (user, mask) = user_update("ann", &fields).unwrap();
        assert_eq!(mask.paths, ["slack_id"]);
        assert_eq!(user.slack_id, "U0123ABCD");
    }

    #[test]
    fn json_struct_round_trip() {
        let original = json!({
            "channel": "#ops",
            "port": 5432,
            "ratio": 0.25,
            "negative": -3,
            "enabled": true,
            "nothing": null,
            "list": [1, "two", false, null, {"nested": [[]]}],
            "object": {"a": {"b": "c"}, "empty": {}},
        });
        let serde_json::Value::Object(object) = original.clone() else {
            unreachable!()
        };
        let s = json_object_to_struct(object);
        assert_eq!(struct_to_json(&s), original);
        assert_eq!(parse_config(&original.to_string()).unwrap(), s);
    }

    #[test]
    fn config_errors() {
        let err = parse_config("[1, 2]").unwrap_err();
        assert_eq!(err.to_string(), "--config must be a JSON object");
        let err = parse_config("{\"a\": ").unwrap_err();
        assert!(
            err.to_string().starts_with("--config is not valid JSON: "),
            "{err}"
        );
    }

    #[test]
    fn odd_numbers_render() {
        assert_eq!(number_to_json(f64::NAN), serde_json::Value::Null);
        assert_eq!(number_to_json(1e300), json!(1e300));
        assert_eq!(number_to_json(-0.0), json!(0));
    }
}
