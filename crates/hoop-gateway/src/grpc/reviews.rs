//! `hoop.v1.ReviewService`: listing and deciding the reviews (access requests) that the
//! `review` plugin creates when it holds a session.
//!
//! The rules (who sees a review, who decides it for which group, who revokes it, what a
//! reason may be) are the review plugin's ([`hoop_plugin_review::rules`]); this adapter
//! maps their answers to status codes. To someone who may not see a review it does not
//! exist: Get, Approve, Reject and Revoke answer exactly what they answer for an id there
//! is no review of (NOT_FOUND, same message), so neither its existence nor its groups leak.
//! Someone who sees a review but may not do what they ask gets PERMISSION_DENIED saying
//! why; a bad `reason` or `group` is INVALID_ARGUMENT naming it. Every change appends its
//! event to the durable event log (the store does, in the change's transaction).
//!
//! Above all that, a review on a connection hidden from the caller by its `access_control`
//! plugin (see [`crate::access`]) does not exist for them, whoever they are but admins
//! (requesters, reviewers and auditors included): NOT_FOUND to Get, Approve, Reject and
//! Revoke, and left out of listings.

use chrono::{DateTime, Utc};
use hoop_plugin_review::rules::{self, DecisionKind, ReviewSubject, RuleError};
use hoop_proto::v1 as pb;
use hoop_proto::v1::review_service_server::ReviewService;
use hoop_store::{ApprovalRule, NewDecision, Review, ReviewFilter, ReviewStatus, StoreError};
use tonic::{Request, Response, Status};

use super::convert::review_to_proto;
use super::{Page, SharedApp};
use crate::access::{self, AccessCache};
use crate::auth::{Caller, caller};
use crate::error::Error;
use crate::reviews::revoked_reason;

/// Rows read per query when a listing is filtered after the query (visibility,
/// `awaiting_me`).
const SCAN_BATCH: u64 = 200;
/// Most rows one listing call reads when filtering after the query; past that it returns
/// the (possibly short, even empty) page found so far with a token to go on from there.
const MAX_SCAN: u64 = 5000;

#[derive(Debug)]
pub(crate) struct ReviewApi {
    app: SharedApp,
}

impl ReviewApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }

    /// The review `id`, whoever may see it (NOT_FOUND if there is none).
    async fn review(&self, id: &str) -> Result<Review, Error> {
        if id.is_empty() {
            return Err(Error::invalid("id", "required"));
        }
        match self.app.store.get_review(id).await {
            Ok(review) => Ok(review),
            Err(StoreError::NotFound { .. }) => Err(not_found(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// The review `id` unless it is on a connection hidden from the caller by
    /// access_control (NOT_FOUND, as if it did not exist, like a review there is none of).
    async fn accessible_review(&self, caller: &Caller, id: &str) -> Result<Review, Error> {
        let review = self.review(id).await?;
        if !access::allows_name(
            &self.app.store,
            &self.app.registry,
            caller,
            &review.connection,
        )
        .await?
        {
            return Err(not_found(id));
        }
        Ok(review)
    }

    /// The review `id` if the caller may see it; anyone else's is "not found", as if it did
    /// not exist.
    async fn visible_review(&self, caller: &Caller, id: &str) -> Result<Review, Error> {
        let review = self.accessible_review(caller, id).await?;
        rules::visible(&caller.user_info(), subject(&review)).map_err(rule_error)?;
        Ok(review)
    }

    /// Records the caller's decision on review `id` for `group` (empty: the one reviewer
    /// group of the review the caller is in).
    async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        group: &str,
        kind: DecisionKind,
        reason: &str,
    ) -> Result<pb::Review, Error> {
        let decided = decide_as(
            &self.app.store,
            &self.app.registry,
            caller,
            id,
            group,
            kind,
            reason,
            false,
        )
        .await?;
        Ok(review_to_proto(decided.review()))
    }
}

/// What [`decide_as`] returns: the decided review, or (for a dry run) the review as it was.
pub(crate) struct Decided(Review);

impl Decided {
    /// The review.
    pub(crate) fn review(self) -> Review {
        self.0
    }
}

/// Records `caller`'s decision on review `id` for `group` (empty: the one reviewer group of
/// the review the caller is in): the one code path behind ApproveReview, RejectReview and
/// the reviews port plugins decide through (e.g. Slack buttons), so their rules cannot
/// diverge. `reason` must have passed [`rules::check_reason`]. With `dry_run`, checks
/// everything a decision checks before it is stored, and stores nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn decide_as(
    store: &hoop_store::Store,
    registry: &hoop_core::Registry,
    caller: &Caller,
    id: &str,
    group: &str,
    kind: DecisionKind,
    reason: &str,
    dry_run: bool,
) -> Result<Decided, Error> {
    if id.is_empty() {
        return Err(Error::invalid("id", "required"));
    }
    // Hidden by access_control first: then the review does not exist for the caller.
    let review = match store.get_review(id).await {
        Ok(review) => review,
        Err(StoreError::NotFound { .. }) => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    };
    if !access::allows_name(store, registry, caller, &review.connection).await? {
        return Err(not_found(id));
    }
    let me = &caller.user.name;
    let group = rules::decision_group(&caller.user_info(), subject(&review), group, kind)
        .map_err(rule_error)?;
    if dry_run {
        if review.status != ReviewStatus::Pending {
            return Err(Error::FailedPrecondition(format!(
                "review `{id}` is {}, not PENDING",
                review.status
            )));
        }
        if review.decisions.iter().any(|d| &d.reviewer == me) {
            return Err(Error::FailedPrecondition(format!(
                "you already decided review `{id}`"
            )));
        }
        return Ok(Decided(review));
    }
    let approved = kind == DecisionKind::Approve;
    let decision = NewDecision {
        reviewer: me.clone(),
        group: group.clone(),
        approved,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        at: Utc::now(),
    };
    let rule = ApprovalRule {
        groups: review.groups.clone(),
        min_approvals: review.min_approvals,
    };
    let decided = store
        .acting_as(me)
        .decide_review(id, &decision, rule)
        .await?;
    tracing::info!(
        review = %id,
        reviewer = %me,
        group = %group,
        approved,
        status = %decided.status,
        "review decided"
    );
    Ok(Decided(decided))
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::NotFound(format!("review `{id}` not found"))
}

/// What the review rules look at of a stored review.
fn subject(review: &Review) -> ReviewSubject<'_> {
    ReviewSubject::new(&review.id, &review.requester, &review.groups)
}

/// A refusal of the review rules as the API answers it: a review the caller may not see is
/// NOT_FOUND with the very message of a missing one.
pub(crate) fn rule_error(err: RuleError) -> Error {
    match err {
        RuleError::NotVisible { id } => not_found(&id),
        RuleError::PermissionDenied(message) => Error::PermissionDenied(message),
        RuleError::Invalid { field, message } => Error::invalid(field, message),
        other => Error::PermissionDenied(other.to_string()),
    }
}

/// A status filter from its proto form: `None` for UNSPECIFIED (any status).
fn status_filter(status: i32) -> Result<Option<ReviewStatus>, Error> {
    let status = pb::ReviewStatus::try_from(status)
        .map_err(|_| Error::invalid("status", format!("unknown review status {status}")))?;
    Ok(match status {
        pb::ReviewStatus::Unspecified => None,
        pb::ReviewStatus::Pending => Some(ReviewStatus::Pending),
        pb::ReviewStatus::Approved => Some(ReviewStatus::Approved),
        pb::ReviewStatus::Rejected => Some(ReviewStatus::Rejected),
        pb::ReviewStatus::Revoked => Some(ReviewStatus::Revoked),
        pb::ReviewStatus::Expired => Some(ReviewStatus::Expired),
        pb::ReviewStatus::Executed => Some(ReviewStatus::Executed),
    })
}

/// The paging key of a review: its creation time and id (newest first).
fn page_key(review: &Review) -> String {
    format!("{}|{}", review.created_at.to_rfc3339(), review.id)
}

fn cursor(page: &Page) -> Result<Option<(DateTime<Utc>, String)>, Error> {
    match &page.after {
        None => Ok(None),
        Some(key) => {
            let (t, id) = key.split_once('|').ok_or_else(Page::bad_token)?;
            let t = DateTime::parse_from_rfc3339(t).map_err(|_| Page::bad_token())?;
            Ok(Some((t.with_timezone(&Utc), id.to_owned())))
        }
    }
}

#[tonic::async_trait]
impl ReviewService for ReviewApi {
    async fn list_reviews(
        &self,
        req: Request<pb::ListReviewsRequest>,
    ) -> Result<Response<pb::ListReviewsResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let page = Page::parse(req.page_size, &req.page_token)?;
        let mut after = cursor(&page)?;
        let status = status_filter(req.status)?;
        let me = caller.user.name.clone();
        let mut filter = ReviewFilter {
            status,
            connection: (!req.connection.is_empty()).then_some(req.connection),
            requester: req.mine.then(|| me.clone()),
            ..Default::default()
        };
        if req.awaiting_me {
            // Nobody awaits their own decision, and only pending reviews await any.
            if req.mine || status.is_some_and(|s| s != ReviewStatus::Pending) {
                return Ok(Response::new(pb::ListReviewsResponse::default()));
            }
            filter.awaiting_groups = Some(caller.user.groups.clone());
            filter.exclude_decided_by = Some(me.clone());
        }
        // What the query cannot say is filtered here: the requester is not the caller
        // (`awaiting_me`), visibility for those who do not read everything (their own
        // requests or their groups'), and for all but admins, connections hidden from the
        // caller by access_control. Such listings read batches until the page is full, at
        // most MAX_SCAN rows per call.
        let user = caller.user_info();
        let everything_visible = req.mine || req.awaiting_me || rules::reads_all(&user);
        let mut access = AccessCache::default();
        if let Some(conn) = &filter.connection {
            // Reviews of one connection hidden from the caller: none to scan for.
            access
                .learn(
                    &self.app.store,
                    &self.app.registry,
                    &caller,
                    [conn.as_str()],
                )
                .await?;
            if !access.allows(&caller, conn) {
                return Ok(Response::new(pb::ListReviewsResponse::default()));
            }
        }
        let keep = |r: &Review, access: &AccessCache| {
            (!req.awaiting_me || r.requester != me)
                && (everything_visible || rules::visible(&user, subject(r)).is_ok())
                && access.allows(&caller, &r.connection)
        };
        let filtered = req.awaiting_me || !everything_visible || !caller.is_admin();
        let want = page.size + 1;
        let want_len = usize::try_from(want).unwrap_or(usize::MAX);
        let batch = if filtered { want.max(SCAN_BATCH) } else { want };
        let mut found = Vec::new();
        let mut scanned: u64 = 0;
        loop {
            let rows = self
                .app
                .store
                .list_reviews(&filter, after.clone(), batch)
                .await
                .map_err(Error::from)?;
            let exhausted = u64::try_from(rows.len()).unwrap_or(u64::MAX) < batch;
            access
                .learn(
                    &self.app.store,
                    &self.app.registry,
                    &caller,
                    rows.iter().map(|r| r.connection.as_str()),
                )
                .await?;
            for review in rows {
                scanned += 1;
                after = Some((review.created_at, review.id.clone()));
                if keep(&review, &access) {
                    found.push(review);
                    if found.len() >= want_len {
                        break;
                    }
                }
            }
            if exhausted || found.len() >= want_len {
                break;
            }
            if scanned >= MAX_SCAN {
                // A short page; the caller goes on after the last row read.
                let next_page_token = after
                    .as_ref()
                    .map(|(t, id)| Page::token_after(&format!("{}|{id}", t.to_rfc3339())))
                    .unwrap_or_default();
                return Ok(Response::new(pb::ListReviewsResponse {
                    reviews: found.into_iter().map(review_to_proto).collect(),
                    next_page_token,
                }));
            }
        }
        let (reviews, next_page_token) = page.finish(found, page_key);
        Ok(Response::new(pb::ListReviewsResponse {
            reviews: reviews.into_iter().map(review_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_review(
        &self,
        req: Request<pb::GetReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let review = self.visible_review(&caller, &id).await?;
        Ok(Response::new(review_to_proto(review)))
    }

    async fn approve_review(
        &self,
        req: Request<pb::ApproveReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let reason = rules::check_reason(&req.reason, false).map_err(rule_error)?;
        let review = self
            .decide(&caller, &req.id, &req.group, DecisionKind::Approve, reason)
            .await?;
        Ok(Response::new(review))
    }

    async fn reject_review(
        &self,
        req: Request<pb::RejectReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let reason = rules::check_reason(&req.reason, true).map_err(rule_error)?;
        let review = self
            .decide(&caller, &req.id, &req.group, DecisionKind::Reject, reason)
            .await?;
        Ok(Response::new(review))
    }

    async fn revoke_review(
        &self,
        req: Request<pb::RevokeReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let why = rules::check_reason(&req.reason, false).map_err(rule_error)?;
        // Hidden by access_control first: then the review does not exist for the caller.
        let review = self.accessible_review(&caller, &req.id).await?;
        let me = &caller.user.name;
        rules::may_revoke(&caller.user_info(), subject(&review)).map_err(rule_error)?;
        let revoked = self
            .app
            .store
            .acting_as(me)
            .transition_review(
                &review.id,
                &[ReviewStatus::Pending, ReviewStatus::Approved],
                ReviewStatus::Revoked,
                Some(&revoked_reason(me, why)),
                None,
                Utc::now(),
            )
            .await
            .map_err(Error::from)?;
        tracing::info!(
            review = %revoked.id,
            by = %me,
            was = %review.status,
            kind = %revoked.kind,
            "review revoked"
        );
        Ok(Response::new(review_to_proto(revoked)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_refusals_keep_their_answers() {
        let hidden = rule_error(RuleError::NotVisible { id: "r1".into() });
        assert!(matches!(&hidden, Error::NotFound(_)));
        assert_eq!(hidden.to_string(), not_found("r1").to_string());
        assert_eq!(hidden.to_string(), "review `r1` not found");
        let denied = rule_error(RuleError::PermissionDenied("no".into()));
        assert!(matches!(denied, Error::PermissionDenied(m) if m == "no"));
        let invalid = rule_error(RuleError::Invalid {
            field: "reason",
            message: "at most 4096 bytes".into(),
        });
        assert!(matches!(
            &invalid,
            Error::InvalidArgument { field, .. } if field == "reason"
        ));
        assert_eq!(invalid.to_string(), "reason: at most 4096 bytes");
    }

    #[test]
    fn statuses_are_checked() {
        assert_eq!(status_filter(0).unwrap(), None);
        assert_eq!(status_filter(2).unwrap(), Some(ReviewStatus::Approved));
        assert!(matches!(
            status_filter(42),
            Err(Error::InvalidArgument { field, .. }) if field == "status"
        ));
    }
}
