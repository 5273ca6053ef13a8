//! `hoop reviews …`: the access requests of sessions on connections with reviewers.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use hoop_proto::v1::{
    ApproveReviewRequest, GetReviewRequest, ListReviewsRequest, RejectReviewRequest, Review,
    ReviewDecision, ReviewKind, ReviewStatus, RevokeReviewRequest,
};

use crate::cli::{OutputFormat, ReviewStatusFilter, ReviewsCommand};
use crate::client::Api;
use crate::output::{
    self, bytes, details, list, or_dash, printable, quote_args, short_duration, table, timestamp,
};

/// Most characters of the input shown in the REQUEST column of the list.
const SUMMARY_CHARS: usize = 40;

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: ReviewsCommand,
) -> Result<String> {
    match command {
        ReviewsCommand::List {
            status,
            connection,
            mine,
            awaiting_me,
            limit,
            page_size,
        } => {
            let filter = ListReviewsRequest {
                status: status.map_or(ReviewStatus::Unspecified, status_filter) as i32,
                connection: connection.unwrap_or_default(),
                mine,
                awaiting_me,
                page_size,
                page_token: String::new(),
            };
            let limit = limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            let reviews = list_all(api, filter, limit).await?;
            match format {
                OutputFormat::Json => output::json_list("reviews", &reviews),
                OutputFormat::Table => Ok(reviews_table(&reviews)),
            }
        }
        ReviewsCommand::Show { id } => {
            let review = api
                .reviews
                .get_review(GetReviewRequest { id })
                .await?
                .into_inner();
            show(format, None, &review)
        }
        ReviewsCommand::Approve { id, group, reason } => {
            let review = api
                .reviews
                .approve_review(ApproveReviewRequest {
                    id,
                    group: group.unwrap_or_default(),
                    reason: reason.unwrap_or_default(),
                })
                .await?
                .into_inner();
            show(format, Some("approved"), &review)
        }
        ReviewsCommand::Reject { id, reason, group } => {
            let review = api
                .reviews
                .reject_review(RejectReviewRequest {
                    id,
                    reason,
                    group: group.unwrap_or_default(),
                })
                .await?
                .into_inner();
            show(format, Some("rejected"), &review)
        }
        ReviewsCommand::Revoke { id, reason } => {
            let review = api
                .reviews
                .revoke_review(RevokeReviewRequest {
                    id,
                    reason: reason.unwrap_or_default(),
                })
                .await?
                .into_inner();
            show(format, Some("revoked"), &review)
        }
    }
}

fn status_filter(status: ReviewStatusFilter) -> ReviewStatus {
    match status {
        ReviewStatusFilter::Pending => ReviewStatus::Pending,
        ReviewStatusFilter::Approved => ReviewStatus::Approved,
        ReviewStatusFilter::Rejected => ReviewStatus::Rejected,
        ReviewStatusFilter::Revoked => ReviewStatus::Revoked,
        ReviewStatusFilter::Expired => ReviewStatus::Expired,
        ReviewStatusFilter::Executed => ReviewStatus::Executed,
    }
}

/// The reviews `filter` matches, following `next_page_token`, at most `limit` of them.
async fn list_all(
    api: &mut Api,
    filter: ListReviewsRequest,
    limit: Option<usize>,
) -> Result<Vec<Review>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        // No more than is left to show.
        let page_size = match limit {
            Some(limit) => {
                let left = i32::try_from(limit.saturating_sub(all.len())).unwrap_or(i32::MAX);
                filter.page_size.min(left)
            }
            None => filter.page_size,
        };
        let page = api
            .reviews
            .list_reviews(ListReviewsRequest {
                page_size,
                page_token: page_token.clone(),
                ..filter.clone()
            })
            .await?
            .into_inner();
        all.extend(page.reviews);
        if let Some(limit) = limit
            && all.len() >= limit
        {
            all.truncate(limit);
            return Ok(all);
        }
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        if page.next_page_token == page_token {
            bail!("the gateway returned the same page token twice");
        }
        page_token = page.next_page_token;
    }
}

fn show(format: OutputFormat, verb: Option<&str>, review: &Review) -> Result<String> {
    match format {
        OutputFormat::Json => output::json(review),
        OutputFormat::Table => {
            let view = review_details(review);
            Ok(match verb {
                Some(verb) => format!("{}\n\n{view}", headline(verb, review)),
                None => view,
            })
        }
    }
}

/// `approved review ID`, and where that leaves the review when it is not what was done
/// (e.g. still pending, waiting for more approvals).
fn headline(verb: &str, r: &Review) -> String {
    let status = status_name(r.status);
    if status == verb {
        format!("{verb} review {}", r.id)
    } else if status == "pending" {
        format!(
            "{verb} review {}; it is still pending (approvals: {})",
            r.id,
            approvals(r)
        )
    } else {
        format!("{verb} review {}; it is now {status}", r.id)
    }
}

fn reviews_table(reviews: &[Review]) -> String {
    let rows = reviews
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                status_name(r.status),
                kind_name(r.kind),
                or_dash(&r.connection),
                or_dash(&r.requester),
                list(&r.groups),
                timestamp(r.create_time.as_ref()),
                input_size(r),
                request_summary(r),
            ]
        })
        .collect();
    table(
        &[
            "id",
            "status",
            "kind",
            "connection",
            "requester",
            "groups",
            "created",
            "size",
            "request",
        ],
        rows,
    )
}

/// `key: value` lines of every field of a review.
fn review_details(r: &Review) -> String {
    let min_approvals = match r.min_approvals {
        0 => "0 (one from every group)".to_owned(),
        n => n.to_string(),
    };
    details(&[
        ("id", r.id.clone()),
        ("kind", kind_name(r.kind)),
        ("status", status_name(r.status)),
        ("connection", or_dash(&r.connection)),
        ("requester", or_dash(&r.requester)),
        ("verb", or_dash(&r.verb)),
        ("args", or_dash(&printable(&quote_args(&r.args), false))),
        ("input", input_text(r)),
        ("input_size", input_size(r)),
        ("input_sha256", or_dash(&r.input_sha256)),
        (
            "access_duration",
            short_duration(r.access_duration.as_ref()),
        ),
        ("groups", list(&r.groups)),
        ("min_approvals", min_approvals),
        ("approvals", approvals(r)),
        ("reason", or_dash(&printable(r.reason.trim(), true))),
        ("created", timestamp(r.create_time.as_ref())),
        ("updated", timestamp(r.update_time.as_ref())),
        ("expires", timestamp(r.expire_time.as_ref())),
        ("decided", timestamp(r.decide_time.as_ref())),
        ("grant_ends", timestamp(r.grant_end_time.as_ref())),
        ("session_id", or_dash(&r.session_id)),
        ("decisions", decisions(&r.decisions)),
    ])
}

/// `pending`, `approved`, …; `-` when unset, the number when unknown to this build.
fn status_name(status: i32) -> String {
    match ReviewStatus::try_from(status) {
        Ok(ReviewStatus::Unspecified) => "-",
        Ok(ReviewStatus::Pending) => "pending",
        Ok(ReviewStatus::Approved) => "approved",
        Ok(ReviewStatus::Rejected) => "rejected",
        Ok(ReviewStatus::Revoked) => "revoked",
        Ok(ReviewStatus::Expired) => "expired",
        Ok(ReviewStatus::Executed) => "executed",
        Err(_) => return status.to_string(),
    }
    .to_owned()
}

/// `one-time` or `jit` (time-based); `-` when unset, the number when unknown to this build.
fn kind_name(kind: i32) -> String {
    match ReviewKind::try_from(kind) {
        Ok(ReviewKind::Unspecified) => "-",
        Ok(ReviewKind::OneTime) => "one-time",
        Ok(ReviewKind::Jit) => "jit",
        Err(_) => return kind.to_string(),
    }
    .to_owned()
}

/// What is asked, short: the access duration of a time-based review; else the first line
/// of the input (`…` when shortened or followed by more), or the arguments without input.
fn request_summary(r: &Review) -> String {
    if r.kind == ReviewKind::Jit as i32 {
        return short_duration(r.access_duration.as_ref());
    }
    // Listings carry the input's first KiB only; a review read alone carries it whole.
    let (head, cut) = if r.input.is_empty() {
        (&r.input_preview, r.input_truncated)
    } else {
        (&r.input, false)
    };
    if head.is_empty() {
        return or_dash(&shorten(&printable(&quote_args(&r.args), false), false));
    }
    let Ok(text) = std::str::from_utf8(head) else {
        return "<not UTF-8>".to_owned();
    };
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines.next().unwrap_or_default();
    let more = cut || lines.next().is_some();
    or_dash(&shorten(&printable(first, false), more))
}

/// The input's size (`12 B`, `2.5 MiB`); `-` for a review without input.
fn input_size(r: &Review) -> String {
    let size = if r.input_size > 0 {
        r.input_size
    } else {
        // A gateway that does not say: the input it sent.
        u64::try_from(r.input.len()).unwrap_or(u64::MAX)
    };
    if size == 0 {
        return "-".to_owned();
    }
    bytes(i64::try_from(size).unwrap_or(i64::MAX))
}

/// At most [`SUMMARY_CHARS`] characters of `text`, ending with `…` when shortened or when
/// `more` follows.
fn shorten(text: &str, more: bool) -> String {
    if text.chars().count() > SUMMARY_CHARS {
        let kept: String = text.chars().take(SUMMARY_CHARS - 1).collect();
        return format!("{}…", kept.trim_end());
    }
    if more {
        format!("{text} …")
    } else {
        text.to_owned()
    }
}

/// The input as text when it is UTF-8 (control characters escaped), else its size; `-` when
/// empty.
fn input_text(r: &Review) -> String {
    if r.input.is_empty() {
        return "-".to_owned();
    }
    match std::str::from_utf8(&r.input) {
        Ok(text) => printable(text.strip_suffix('\n').unwrap_or(text), true),
        Err(_) => format!(
            "{} bytes, not UTF-8 (sha256 {})",
            r.input.len(),
            or_dash(&r.input_sha256)
        ),
    }
}

/// How many approvals the review has, against what it needs: distinct approving reviewers
/// of `min_approvals`, or (0) approved groups of all its groups.
fn approvals(r: &Review) -> String {
    let approving = r.decisions.iter().filter(|d| d.approved);
    if r.min_approvals > 0 {
        let reviewers: BTreeSet<&str> = approving.map(|d| d.reviewer.as_str()).collect();
        format!("{} of {}", reviewers.len(), r.min_approvals)
    } else {
        let groups: BTreeSet<&str> = approving.map(|d| d.group.as_str()).collect();
        let approved = r
            .groups
            .iter()
            .filter(|g| groups.contains(g.as_str()))
            .count();
        format!("{approved} of {} groups", r.groups.len())
    }
}

/// One line per decision: `approved by bob (dba) at TIME: reason`; `-` when none.
fn decisions(decisions: &[ReviewDecision]) -> String {
    if decisions.is_empty() {
        return "-".to_owned();
    }
    decisions
        .iter()
        .map(|d| {
            let verdict = if d.approved { "approved" } else { "rejected" };
            let group = if d.group.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.group)
            };
            let reason = printable(d.reason.trim(), false);
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            format!(
                "{verdict} by {}{group} at {}{reason}",
                or_dash(&d.reviewer),
                timestamp(d.decide_time.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn one_time() -> Review {
        Review {
            id: "r-1".to_owned(),
            kind: ReviewKind::OneTime.into(),
            status: ReviewStatus::Pending.into(),
            connection: "pg".to_owned(),
            requester: "alice".to_owned(),
            verb: "exec".to_owned(),
            input: b"delete from users\n  where id = 7;\n".to_vec(),
            input_sha256: "5e1f".to_owned(),
            args: vec!["-c".to_owned(), "it's".to_owned()],
            groups: vec!["dba".to_owned(), "sre".to_owned()],
            min_approvals: 0,
            create_time: at(86_400),
            update_time: at(86_401),
            expire_time: at(86_400 * 2),
            session_id: "s-1".to_owned(),
            ..Review::default()
        }
    }

    fn jit() -> Review {
        Review {
            id: "r-2".to_owned(),
            kind: ReviewKind::Jit.into(),
            status: ReviewStatus::Approved.into(),
            connection: "sh".to_owned(),
            requester: "bob".to_owned(),
            verb: "connect".to_owned(),
            groups: vec!["ops".to_owned()],
            min_approvals: 1,
            access_duration: Some(prost_types::Duration {
                seconds: 1800,
                nanos: 0,
            }),
            decisions: vec![ReviewDecision {
                reviewer: "carol".to_owned(),
                group: "ops".to_owned(),
                approved: true,
                reason: String::new(),
                decide_time: at(86_460),
            }],
            create_time: at(86_400),
            decide_time: at(86_460),
            grant_end_time: at(86_460 + 1800),
            ..Review::default()
        }
    }

    #[test]
    fn list_table() {
        let text = reviews_table(&[one_time(), jit()]);
        assert_eq!(
            text,
            "ID    STATUS     KIND       CONNECTION   REQUESTER   GROUPS    CREATED                SIZE   REQUEST\n\
             r-1   pending    one-time   pg           alice       dba,sre   1970-01-02T00:00:00Z   34 B   delete from users …\n\
             r-2   approved   jit        sh           bob         ops       1970-01-02T00:00:00Z   -      30m"
        );
    }

    #[test]
    fn summaries() {
        let with_input = |input: &[u8]| Review {
            input: input.to_vec(),
            ..one_time()
        };
        assert_eq!(request_summary(&with_input(b"select 1;")), "select 1;");
        assert_eq!(
            request_summary(&with_input(b"\n\n  select 1;\n\n")),
            "select 1;"
        );
        assert_eq!(
            request_summary(&with_input(b"select 1;\nselect 2;")),
            "select 1; …"
        );
        let long = "x".repeat(60);
        let summary = request_summary(&with_input(long.as_bytes()));
        assert_eq!(summary.chars().count(), SUMMARY_CHARS);
        assert!(summary.ends_with('…'), "{summary}");
        assert_eq!(
            request_summary(&with_input(b"\x1b[2Jrm\t-rf /")),
            r"\u{1b}[2Jrm -rf /"
        );
        assert_eq!(request_summary(&with_input(b"\xff\xfe\0")), "<not UTF-8>");
        // As listed: the preview of a longer input, which goes on.
        let listed = Review {
            input: Vec::new(),
            input_preview: b"select 1;".to_vec(),
            input_size: 2_600_000,
            input_truncated: true,
            ..one_time()
        };
        assert_eq!(request_summary(&listed), "select 1; …");
        assert_eq!(input_size(&listed), "2.5 MiB");
        assert_eq!(input_size(&jit()), "-");
        // No input: the arguments.
        assert_eq!(request_summary(&with_input(b"")), "-c 'it'\\''s'");
        let bare = Review {
            args: vec![],
            ..with_input(b"")
        };
        assert_eq!(request_summary(&bare), "-");
        let no_duration = Review {
            access_duration: None,
            ..jit()
        };
        assert_eq!(request_summary(&no_duration), "-");
    }

    #[test]
    fn details_view() {
        let text = review_details(&one_time());
        assert_eq!(
            text,
            "id:              r-1\n\
             kind:            one-time\n\
             status:          pending\n\
             connection:      pg\n\
             requester:       alice\n\
             verb:            exec\n\
             args:            -c 'it'\\''s'\n\
             input:           delete from users\n\
             \x20                  where id = 7;\n\
             input_size:      34 B\n\
             input_sha256:    5e1f\n\
             access_duration: -\n\
             groups:          dba,sre\n\
             min_approvals:   0 (one from every group)\n\
             approvals:       0 of 2 groups\n\
             reason:          -\n\
             created:         1970-01-02T00:00:00Z\n\
             updated:         1970-01-02T00:00:01Z\n\
             expires:         1970-01-03T00:00:00Z\n\
             decided:         -\n\
             grant_ends:      -\n\
             session_id:      s-1\n\
             decisions:       -"
        );
        let text = review_details(&jit());
        assert!(text.contains("\ninput:           -\n"), "{text}");
        assert!(text.contains("\naccess_duration: 30m\n"), "{text}");
        assert!(text.contains("\napprovals:       1 of 1\n"), "{text}");
        assert!(
            text.ends_with("\ndecisions:       approved by carol (ops) at 1970-01-02T00:01:00Z"),
            "{text}"
        );
        assert!(
            text.contains("\ngrant_ends:      1970-01-02T00:31:00Z\n"),
            "{text}"
        );
    }

    #[test]
    fn binary_input_shows_its_size_and_hash() {
        let review = Review {
            input: vec![0xff, 0, 1, 2],
            input_sha256: "ab12".to_owned(),
            ..one_time()
        };
        assert!(
            review_details(&review)
                .contains("\ninput:           4 bytes, not UTF-8 (sha256 ab12)\n"),
            "{}",
            review_details(&review)
        );
    }

    #[test]
    fn decisions_list_who_group_when_and_why() {
        let review = Review {
            status: ReviewStatus::Rejected.into(),
            reason: "not during\nbusiness hours".to_owned(),
            decisions: vec![
                ReviewDecision {
                    reviewer: "bob".to_owned(),
                    group: "dba".to_owned(),
                    approved: true,
                    reason: "fine by me".to_owned(),
                    decide_time: at(86_500),
                },
                ReviewDecision {
                    reviewer: "carol".to_owned(),
                    group: "sre".to_owned(),
                    approved: false,
                    reason: "not during\nbusiness hours".to_owned(),
                    decide_time: at(86_600),
                },
            ],
            ..one_time()
        };
        let text = review_details(&review);
        assert!(
            text.contains(
                "\nreason:          not during\n\
                 \x20                business hours\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "\ndecisions:       approved by bob (dba) at 1970-01-02T00:01:40Z: fine by me\n\
                 \x20                rejected by carol (sre) at 1970-01-02T00:03:20Z: not during\\nbusiness hours"
            ),
            "{text}"
        );
        assert!(
            text.contains("\napprovals:       1 of 2 groups\n"),
            "{text}"
        );
    }

    #[test]
    fn approvals_count_distinct_reviewers_or_groups() {
        let decision = |reviewer: &str, group: &str, approved| ReviewDecision {
            reviewer: reviewer.to_owned(),
            group: group.to_owned(),
            approved,
            ..ReviewDecision::default()
        };
        let review = Review {
            min_approvals: 2,
            decisions: vec![
                decision("bob", "dba", true),
                decision("bob", "sre", true),
                decision("carol", "dba", false),
            ],
            ..one_time()
        };
        assert_eq!(approvals(&review), "1 of 2");
        let review = Review {
            min_approvals: 0,
            ..review
        };
        assert_eq!(approvals(&review), "2 of 2 groups");
    }

    #[test]
    fn headlines_say_where_the_review_stands() {
        let approved = Review {
            status: ReviewStatus::Approved.into(),
            ..one_time()
        };
        assert_eq!(headline("approved", &approved), "approved review r-1");
        assert_eq!(
            headline("approved", &one_time()),
            "approved review r-1; it is still pending (approvals: 0 of 2 groups)"
        );
        let executed = Review {
            status: ReviewStatus::Executed.into(),
            ..one_time()
        };
        assert_eq!(
            headline("revoked", &executed),
            "revoked review r-1; it is now executed"
        );
    }

    #[test]
    fn names_of_statuses_and_kinds() {
        assert_eq!(status_name(ReviewStatus::Expired.into()), "expired");
        assert_eq!(status_name(0), "-");
        assert_eq!(status_name(42), "42");
        assert_eq!(kind_name(ReviewKind::Jit.into()), "jit");
        assert_eq!(kind_name(0), "-");
        assert_eq!(kind_name(-3), "-3");
        for (filter, status) in [
            (ReviewStatusFilter::Pending, "pending"),
            (ReviewStatusFilter::Approved, "approved"),
            (ReviewStatusFilter::Rejected, "rejected"),
            (ReviewStatusFilter::Revoked, "revoked"),
            (ReviewStatusFilter::Expired, "expired"),
            (ReviewStatusFilter::Executed, "executed"),
        ] {
            assert_eq!(status_name(status_filter(filter) as i32), status);
        }
    }

    #[test]
    fn printable_escapes_what_a_terminal_would_act_on() {
        assert_eq!(printable("a\tb\nc", true), "a\tb\nc");
        assert_eq!(printable("a\tb\nc\r", false), r"a b\nc\r");
        assert_eq!(printable("\x1b]0;x\x07", true), r"\u{1b}]0;x\u{7}");
        assert_eq!(
            printable("admin\u{202e}txt.exe", true),
            r"admin\u{202e}txt.exe"
        );
        assert_eq!(printable("héllo ✓", false), "héllo ✓");
    }

    #[test]
    fn arguments_are_quoted_for_a_shell() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            quote_args(&args(&["-h", "db.internal", "--port=5432"])),
            "-h db.internal --port=5432"
        );
        assert_eq!(quote_args(&args(&["echo hi", ""])), "'echo hi' ''");
        assert_eq!(quote_args(&args(&["it's"])), r"'it'\''s'");
        assert_eq!(quote_args(&[]), "");
    }

    #[test]
    fn review_as_canonical_json() {
        let json = output::to_json(&jit()).unwrap();
        assert_eq!(json["kind"], "REVIEW_KIND_JIT");
        assert_eq!(json["status"], "REVIEW_STATUS_APPROVED");
        assert_eq!(json["accessDuration"], "1800s");
        assert_eq!(json["decisions"][0]["reviewer"], "carol");
        assert_eq!(json["grantEndTime"], "1970-01-02T00:31:00Z");
        let json = output::to_json(&one_time()).unwrap();
        assert_eq!(
            json["input"],
            "ZGVsZXRlIGZyb20gdXNlcnMKICB3aGVyZSBpZCA9IDc7Cg=="
        );
        let text = output::json_list("reviews", &[one_time()]).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["reviews"][0]["id"], "r-1");
    }
}
