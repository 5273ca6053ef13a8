//! The Block Kit messages the plugin posts: a review request (kept up to date until it is
//! decided, with one Approve / Reject pair per reviewer group while it is pending), the
//! reject modal, and session notices.

use std::time::Duration;

use hoop_core::UserInfo;
use hoop_core::ports::ReviewView;
use serde_json::{Value, json};

/// Most characters of input (and of arguments) a message shows.
pub const MAX_INPUT_CHARS: usize = 2000;
/// `action_id` of the Approve buttons.
pub const APPROVE_ACTION: &str = "hoop_review_approve";
/// `action_id` of the Reject buttons.
pub const REJECT_ACTION: &str = "hoop_review_reject";
/// `callback_id` of the reject modal.
pub const REJECT_CALLBACK: &str = "hoop_review_reject_reason";
/// `block_id` / `action_id` of the reason input of the reject modal.
pub const REASON_INPUT: &str = "reason";

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` cut to `max` characters, with a note saying how much was left out.
pub fn cut(text: &str, max: usize) -> (String, Option<String>) {
    let total = text.chars().count();
    if total <= max {
        return (text.to_owned(), None);
    }
    let kept: String = text.chars().take(max).collect();
    (kept, Some(format!("cut to {max} of {total} characters")))
}

/// What a review message shows of the review's input and arguments, masked by the host
/// beforehand.
#[derive(Debug, Clone, Default)]
pub struct MaskedText {
    /// The input, masked (empty for none).
    pub input: String,
    /// The arguments, each masked.
    pub args: Vec<String>,
}

fn kind_line(review: &ReviewView) -> String {
    if review.kind == "JIT" {
        match review.access_duration {
            Some(d) => format!("Time-based access ({}) for {}", review.verb, human(d)),
            None => format!("Time-based access ({})", review.verb),
        }
    } else {
        format!("One-time {}", review.verb)
    }
}

/// A duration in words (`1h 30m`, `45s`).
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

/// Where the review stands, in words: `approved by 1 of 2 (dba: bob)`, `rejected by bob
/// (dba): too risky`, …
pub fn status_line(review: &ReviewView) -> String {
    let approvals: Vec<String> = review
        .approvals()
        .map(|v| format!("{}: {}", v.group, v.reviewer))
        .collect();
    let given = approvals.len();
    let needed = review.approvals_needed;
    let by = if approvals.is_empty() {
        String::new()
    } else {
        format!(" ({})", approvals.join(", "))
    };
    let reason = |r: &Option<String>| match r {
        Some(r) if !r.is_empty() => format!(": {}", escape(r)),
        _ => String::new(),
    };
    match review.status.as_str() {
        "PENDING" => {
            format!(":hourglass_flowing_sand: *Pending*: approved by {given} of {needed}{by}")
        }
        "APPROVED" => format!(":white_check_mark: *Approved* by {given} of {needed}{by}"),
        "REJECTED" => {
            let rejection = review.votes.iter().find(|v| !v.approved);
            match rejection {
                Some(v) => format!(
                    ":x: *Rejected* by {} ({}){}",
                    v.reviewer,
                    v.group,
                    reason(&v.reason)
                ),
                None => format!(":x: *Rejected*{}", reason(&review.reason)),
            }
        }
        "REVOKED" => format!(":no_entry: *Revoked*{}", reason(&review.reason)),
        "EXPIRED" => format!(":alarm_clock: *Expired*{}", reason(&review.reason)),
        "EXECUTED" => match &review.session_id {
            Some(s) => format!(":checkered_flag: *Executed* (approved{by}) in session `{s}`"),
            None => format!(":checkered_flag: *Executed* (approved{by})"),
        },
        other => format!("*{other}*"),
    }
}

/// The review message: who asks for what, the masked input, the id and CLI commands,
/// where it stands, and (while pending) one Approve / Reject pair per reviewer group.
pub fn review_message(review: &ReviewView, requester: &UserInfo, masked: &MaskedText) -> Value {
    let who = if requester.email.is_empty() {
        escape(&requester.name)
    } else {
        format!("{} ({})", escape(&requester.name), escape(&requester.email))
    };
    let groups = if requester.groups.is_empty() {
        "-".to_owned()
    } else {
        escape(&requester.groups.join(", "))
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("Access review: {}", review.connection)}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Requester*\n{who}")},
            {"type": "mrkdwn", "text": format!("*Requester's groups*\n{groups}")},
            {"type": "mrkdwn", "text": format!("*Connection*\n{}", escape(&review.connection))},
            {"type": "mrkdwn", "text": format!("*Access*\n{}", kind_line(review))},
        ]}),
    ];
    if review.input.is_some() {
        let (input, note) = cut(&masked.input, MAX_INPUT_CHARS);
        blocks.push(
            json!({"type": "section", "block_id": "input", "text": {"type": "mrkdwn",
            "text": format!("*Input*\n```{}```", escape(&input))}}),
        );
        if let Some(note) = note {
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
                "text": format!("Input {note}: see it all with `hoop reviews get {}`", review.id)}]}));
        }
    }
    if !masked.args.is_empty() {
        let (args, note) = cut(&masked.args.join(" "), MAX_INPUT_CHARS);
        let mut text = format!("*Arguments*\n```{}```", escape(&args));
        if let Some(note) = note {
            text.push_str(&format!("\n_{note}_"));
        }
        blocks.push(json!({"type": "section", "block_id": "args", "text": {"type": "mrkdwn", "text": text}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
        "Review `{id}` · `hoop reviews approve {id}` · `hoop reviews reject {id} --reason TEXT`",
        id = review.id
    )}]}));
    blocks.push(json!({"type": "section", "block_id": "status", "text": {"type": "mrkdwn", "text": status_line(review)}}));
    if review.is_pending() {
        for group in &review.groups {
            let value = format!("{}|{}", review.id, group);
            blocks.push(json!({"type": "actions", "block_id": format!("review:{}:{}", review.id, group), "elements": [
                {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": value,
                 "text": {"type": "plain_text", "text": format!("Approve ({group})")}},
                {"type": "button", "action_id": REJECT_ACTION, "style": "danger", "value": value,
                 "text": {"type": "plain_text", "text": format!("Reject ({group})")}},
            ]}));
        }
    }
    json!({
        "text": format!("Access review {} on {} by {}: {}", review.id, review.connection, requester.name, review.status),
        "blocks": blocks,
    })
}

/// The modal asking a reviewer why they reject; `metadata` comes back on submission.
pub fn reject_modal(review_id: &str, group: &str, metadata: &Value) -> Value {
    json!({
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": metadata.to_string(),
        "title": {"type": "plain_text", "text": "Reject review"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("Rejecting review `{review_id}` for group *{}*. The requester sees your reason.", escape(group))}},
            {"type": "input", "block_id": REASON_INPUT, "label": {"type": "plain_text", "text": "Reason"},
             "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": true, "max_length": 4000}},
        ],
    })
}

/// The notice of a session that opened: the parent of its thread.
pub fn session_opened(session_id: &str, user: &str, connection: &str, verb: &str) -> Value {
    json!({
        "text": format!("{user} opened a {verb} session on {connection}"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                ":arrow_forward: *{}* opened a `{}` session on *{}*", escape(user), escape(verb), escape(connection))}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("Session `{session_id}`")}]},
        ],
    })
}

/// What a closed session's notice says (never its output).
#[derive(Debug, Clone)]
pub struct SessionClosed<'a> {
    /// Session id.
    pub session_id: &'a str,
    /// Its user.
    pub user: &'a str,
    /// Its connection.
    pub connection: &'a str,
    /// `exec`, `connect`, …
    pub verb: &'a str,
    /// Final status (`done`, `failed`, `killed`, …).
    pub status: &'a str,
    /// Exit code, if the program ran.
    pub exit_code: Option<i64>,
    /// How it ended, in words.
    pub reason: &'a str,
    /// How long it lasted, if known.
    pub duration: Option<Duration>,
}

/// The notice of a session that closed: a reply in its thread.
pub fn session_closed(closed: &SessionClosed<'_>) -> Value {
    let exit = closed
        .exit_code
        .map_or_else(|| "-".to_owned(), |c| c.to_string());
    let duration = closed.duration.map_or_else(|| "-".to_owned(), human);
    let reason = if closed.reason.is_empty() {
        "-".to_owned()
    } else {
        escape(closed.reason)
    };
    json!({
        "text": format!("{}'s {} session on {} closed ({}, exit {exit})", closed.user, closed.verb, closed.connection, closed.status),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                ":stop_button: *{}*'s `{}` session on *{}* closed: *{}*",
                escape(closed.user), escape(closed.verb), escape(closed.connection), escape(closed.status))},
             "fields": [
                {"type": "mrkdwn", "text": format!("*Exit code*\n{exit}")},
                {"type": "mrkdwn", "text": format!("*Duration*\n{duration}")},
                {"type": "mrkdwn", "text": format!("*Reason*\n{reason}")},
             ]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                "Replay: `hoop sessions replay {}`", closed.session_id)}]},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoop_core::ports::ReviewVote;

    fn review() -> ReviewView {
        let mut r = ReviewView::new("r1", "pg", "alice");
        r.groups = vec!["dba".into(), "sre".into()];
        r.approvals_needed = 2;
        r.input = Some(bytes::Bytes::from_static(b"select 1"));
        r
    }

    fn actions(message: &Value) -> Vec<&Value> {
        message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .collect()
    }

    #[test]
    fn pending_reviews_have_a_button_pair_per_group_and_decided_ones_none() {
        let mut r = review();
        let user = UserInfo::new("alice")
            .with_email("a@x.io")
            .with_groups(["dev"]);
        let masked = MaskedText {
            input: "select 1".into(),
            args: vec![],
        };
        let m = review_message(&r, &user, &masked);
        let a = actions(&m);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0]["elements"][0]["value"], "r1|dba");
        assert_eq!(a[1]["elements"][1]["action_id"], REJECT_ACTION);
        r.votes.push(ReviewVote {
            reviewer: "bob".into(),
            group: "dba".into(),
            approved: true,
            reason: None,
        });
        assert_eq!(
            status_line(&r),
            ":hourglass_flowing_sand: *Pending*: approved by 1 of 2 (dba: bob)"
        );
        r.status = "REJECTED".into();
        r.votes.push(ReviewVote {
            reviewer: "erin".into(),
            group: "sre".into(),
            approved: false,
            reason: Some("no <way>".into()),
        });
        assert_eq!(
            status_line(&r),
            ":x: *Rejected* by erin (sre): no &lt;way&gt;"
        );
        assert!(actions(&review_message(&r, &user, &masked)).is_empty());
    }

    #[test]
    fn time_based_reviews_say_how_long_and_every_end_is_named() {
        let mut r = review();
        r.kind = "JIT".into();
        r.verb = "connect".into();
        r.input = None;
        r.access_duration = Some(Duration::from_secs(1800));
        let m = review_message(&r, &UserInfo::new("alice"), &MaskedText::default());
        let text = m.to_string();
        assert!(
            text.contains("Time-based access (connect) for 30m"),
            "{text}"
        );
        assert!(!text.contains("*Input*"), "no input block for connect");
        for (status, reason, expected) in [
            (
                "EXPIRED",
                Some("pending longer than the review TTL"),
                ":alarm_clock: *Expired*: pending longer than the review TTL",
            ),
            (
                "REVOKED",
                Some("revoked by alice"),
                ":no_entry: *Revoked*: revoked by alice",
            ),
            ("APPROVED", None, ":white_check_mark: *Approved* by 0 of 2"),
        ] {
            r.status = status.into();
            r.reason = reason.map(str::to_owned);
            assert_eq!(status_line(&r), expected);
        }
        r.status = "EXECUTED".into();
        r.session_id = Some("s-1".into());
        assert_eq!(
            status_line(&r),
            ":checkered_flag: *Executed* (approved) in session `s-1`"
        );
    }

    #[test]
    fn long_input_is_cut_with_a_note() {
        let r = review();
        let masked = MaskedText {
            input: "x".repeat(2500),
            args: vec![],
        };
        let m = review_message(&r, &UserInfo::new("alice"), &masked);
        let text = m.to_string();
        assert!(text.contains(&format!("```{}```", "x".repeat(2000))));
        assert!(!text.contains(&"x".repeat(2001)));
        assert!(text.contains("cut to 2000 of 2500 characters"));
        assert_eq!(human(Duration::from_secs(5400)), "1h 30m");
    }
}
