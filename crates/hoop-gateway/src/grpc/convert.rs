//! Conversions between proto messages and domain values.

use chrono::{DateTime, Utc};
use hoop_proto::v1 as pb;
use hoop_store::{AccessModes, ApiKey, Connection, Review, ReviewKind, ReviewStatus, User};
use prost_types::value::Kind;

use crate::plugins::AttachmentView;

pub(crate) fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn connection_to_proto(
    conn: Connection,
    plugins: Vec<AttachmentView>,
) -> pb::Connection {
    pb::Connection {
        name: conn.name,
        r#type: conn.kind,
        command: conn.command,
        // Write-only: names only, never values.
        env: conn.env.into_keys().map(|k| (k, String::new())).collect(),
        reviewers: conn.reviewers,
        redact_types: conn.redact_types,
        access_modes: Some(pb::AccessModes {
            exec: Some(conn.access.exec),
            connect: Some(conn.access.connect),
            runbooks: Some(conn.access.runbooks),
        }),
        tags: conn.tags.into_iter().collect(),
        plugins: plugins.into_iter().map(attachment_to_proto).collect(),
        create_time: Some(timestamp(conn.created_at)),
        update_time: Some(timestamp(conn.updated_at)),
        session_timeout: conn.session_timeout.map(duration_to_proto),
        min_approvals: conn.min_approvals,
        review_ttl: conn.review_ttl.map(duration_to_proto),
        access_max_duration: conn.access_max_duration.map(duration_to_proto),
        allow_args: conn.allow_args,
        agent: conn.agent,
        mask_columns: conn.mask_columns,
    }
}

pub(crate) fn duration_to_proto(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A connection's session timeout from its proto form: unset or zero means no limit; a
/// negative or malformed duration becomes one that validation rejects as out of range.
pub(crate) fn session_timeout(d: Option<prost_types::Duration>) -> Option<std::time::Duration> {
    let d = d?;
    if d.seconds == 0 && d.nanos == 0 {
        return None;
    }
    match (u64::try_from(d.seconds), u32::try_from(d.nanos)) {
        (Ok(s), Ok(n)) if n < 1_000_000_000 => Some(std::time::Duration::new(s, n)),
        _ => Some(std::time::Duration::MAX),
    }
}

pub(crate) fn access_modes(modes: Option<&pb::AccessModes>) -> AccessModes {
    let modes = modes.copied().unwrap_or_default();
    AccessModes {
        exec: modes.exec.unwrap_or(true),
        connect: modes.connect.unwrap_or(true),
        runbooks: modes.runbooks.unwrap_or(true),
    }
}

/// A connection from its proto form; output-only fields are ignored.
pub(crate) fn connection_from_proto(pb: pb::Connection) -> Connection {
    let mut conn = Connection::new(pb.name, pb.r#type);
    conn.access = access_modes(pb.access_modes.as_ref());
    conn.command = pb.command;
    conn.env = pb.env.into_iter().collect();
    conn.reviewers = pb.reviewers;
    conn.redact_types = pb.redact_types;
    conn.tags = pb.tags.into_iter().collect();
    conn.session_timeout = session_timeout(pb.session_timeout);
    conn.min_approvals = pb.min_approvals.filter(|n| *n > 0);
    conn.review_ttl = session_timeout(pb.review_ttl);
    conn.access_max_duration = session_timeout(pb.access_max_duration);
    conn.allow_args = pb.allow_args;
    // Empty means `local`: validation says so, and the store keeps `local`.
    conn.agent = pb.agent;
    conn.mask_columns = pb.mask_columns;
    conn
}

pub(crate) fn attachment_to_proto(view: AttachmentView) -> pb::PluginAttachment {
    pb::PluginAttachment {
        name: view.name,
        config: match json_to_value(view.config).kind {
            Some(Kind::StructValue(s)) => Some(s),
            _ => Some(prost_types::Struct::default()),
        },
        active: view.active,
        status: view.status,
    }
}

pub(crate) fn user_to_proto(user: User) -> pb::User {
    pb::User {
        name: user.name,
        email: user.email,
        groups: user.groups,
        create_time: Some(timestamp(user.created_at)),
        update_time: Some(timestamp(user.updated_at)),
        slack_id: user.slack_id.unwrap_or_default(),
    }
}

pub(crate) fn api_key_to_proto(key: ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        id: key.id,
        user: key.user,
        description: key.description,
        prefix: key.prefix,
        create_time: Some(timestamp(key.created_at)),
        revoke_time: key.revoked_at.map(timestamp),
    }
}

pub(crate) fn review_kind_to_proto(kind: ReviewKind) -> pb::ReviewKind {
    match kind {
        ReviewKind::OneTime => pb::ReviewKind::OneTime,
        ReviewKind::Jit => pb::ReviewKind::Jit,
    }
}

pub(crate) fn review_status_to_proto(status: ReviewStatus) -> pb::ReviewStatus {
    match status {
        ReviewStatus::Pending => pb::ReviewStatus::Pending,
        ReviewStatus::Approved => pb::ReviewStatus::Approved,
        ReviewStatus::Rejected => pb::ReviewStatus::Rejected,
        ReviewStatus::Revoked => pb::ReviewStatus::Revoked,
        ReviewStatus::Expired => pb::ReviewStatus::Expired,
        ReviewStatus::Executed => pb::ReviewStatus::Executed,
    }
}

pub(crate) fn review_to_proto(review: Review) -> pb::Review {
    let input_size = review.input_size.unwrap_or(0);
    let input_preview = review.input_preview.unwrap_or_default();
    pb::Review {
        input_truncated: u64::try_from(input_preview.len()).unwrap_or(u64::MAX) < input_size,
        input_size,
        input_preview,
        id: review.id,
        kind: review_kind_to_proto(review.kind) as i32,
        status: review_status_to_proto(review.status) as i32,
        connection: review.connection,
        requester: review.requester,
        verb: review.verb,
        input: review.input.unwrap_or_default(),
        input_sha256: review.input_sha256.unwrap_or_default(),
        args: review.args,
        groups: review.groups,
        min_approvals: review.min_approvals.unwrap_or(0),
        access_duration: review.access_duration.map(duration_to_proto),
        reason: review.reason.unwrap_or_default(),
        decisions: review
            .decisions
            .into_iter()
            .map(|d| pb::ReviewDecision {
                reviewer: d.reviewer,
                group: d.group,
                approved: d.approved,
                reason: d.reason.unwrap_or_default(),
                decide_time: Some(timestamp(d.decided_at)),
            })
            .collect(),
        create_time: Some(timestamp(review.created_at)),
        update_time: Some(timestamp(review.updated_at)),
        expire_time: Some(timestamp(review.expires_at)),
        decide_time: review.decided_at.map(timestamp),
        grant_end_time: review.grant_ends_at.map(timestamp),
        session_id: review.session_id.unwrap_or_default(),
    }
}

/// `google.protobuf.Struct` → JSON object.
pub(crate) fn struct_to_json(s: Option<prost_types::Struct>) -> serde_json::Value {
    let fields = s.map(|s| s.fields).unwrap_or_default();
    serde_json::Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: prost_types::Value) -> serde_json::Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => {
            // Whole numbers stay integers, so configs round-trip as users wrote them.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                #[allow(clippy::cast_possible_truncation)]
                serde_json::Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.into_iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(Some(s)),
    }
}

/// JSON → `google.protobuf.Value`.
pub(crate) fn json_to_value(v: serde_json::Value) -> prost_types::Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.into_iter().map(|(k, v)| (k, json_to_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_struct() {
        let json =
            serde_json::json!({"channels": ["C1"], "n": 3, "x": 1.5, "b": true, "o": {"k": null}});
        let Some(Kind::StructValue(s)) = json_to_value(json.clone()).kind else {
            panic!("not a struct")
        };
        assert_eq!(struct_to_json(Some(s)), json);
    }
}
