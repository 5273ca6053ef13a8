//! Access reviews and their decisions.

use std::collections::BTreeMap;
use std::time::Duration;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, Query, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    Iterable, PaginatorTrait, QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Set,
};
use sha2::{Digest, Sha256};

use super::{
    Backend, Result, Store, UserLock, count_from_db, count_to_db, duration_from_db, from_json, hex,
    millis, to_json,
};
use crate::entity::{review, review_decision};
use crate::error::StoreError;
use crate::events::NewEvent;
use crate::model::{
    ApprovalRule, INPUT_PREVIEW_BYTES, NewDecision, NewReview, Review, ReviewDecision,
    ReviewFilter, ReviewKind, ReviewStatus, preview_of_head,
};

impl Store {
    // === reviews ===
    //
    // Every transition is a compare-and-set on `status` (`UPDATE … WHERE status = …`), so of
    // two racing transitions exactly one applies and the other fails with
    // `StoreError::Conflict`. Transactions that read before they write start with that
    // update: it takes SQLite's write lock first (a concurrent writer then waits instead of
    // failing) and PostgreSQL's row lock (concurrent deciders of one review queue up and see
    // each other's decisions).

    /// Records a new `PENDING` review with a fresh UUID and the SHA-256 of its input.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] if a JIT review has no access duration;
    /// [`StoreError::LimitReached`] if the requester already has
    /// [`Limits::pending_reviews_per_user`](crate::Limits) pending reviews that have not
    /// expired by `new.created_at` (checked and recorded atomically).
    pub async fn create_review(&self, new: &NewReview) -> Result<Review> {
        if new.kind == ReviewKind::Jit && new.access_duration.is_none() {
            return Err(StoreError::Invalid(
                "a just-in-time review needs an access duration".to_owned(),
            ));
        }
        let id = new_uuid();
        let txn = self.begin_write().await?;
        if self.limits.pending_reviews_per_user.is_some() {
            self.lock_user(&txn, UserLock::PendingReviews, &new.requester)
                .await?;
            self.pending_review_limit(&txn, &new.requester, new.created_at)
                .await?;
        }
        let row = review::ActiveModel {
            id: Set(id.clone()),
            kind: Set(new.kind.as_str().to_owned()),
            status: Set(ReviewStatus::Pending.as_str().to_owned()),
            connection: Set(new.connection.clone()),
            requester: Set(new.requester.clone()),
            verb: Set(new.verb.clone()),
            input: Set(new.input.clone()),
            input_sha256: Set(new.input.as_deref().map(|i| hex(&Sha256::digest(i)))),
            args: Set(to_json(&new.args)?),
            groups: Set(to_json(&new.groups)?),
            min_approvals: Set(new.min_approvals.map(count_to_db)),
            access_duration_ms: Set(new.access_duration.map(millis)),
            reason: Set(None),
            created_at: Set(new.created_at),
            updated_at: Set(new.created_at),
            expires_at: Set(new.expires_at),
            decided_at: Set(None),
            grant_ends_at: Set(None),
            session_id: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "review", &id))?;
        let review = review_from(row, Vec::new())?;
        let mut event = self.review_event(&review, "review.created");
        event.user = Some(review.requester.clone());
        self.commit_with_events(txn, vec![event]).await?;
        Ok(review)
    }

    /// Whether `requester` may ask for one more review at `now` under
    /// [`Limits::pending_reviews_per_user`](crate::Limits): a check ahead of
    /// [`create_review`](Self::create_review), which checks again as it records the review.
    ///
    /// # Errors
    /// [`StoreError::LimitReached`] if they may not.
    pub async fn check_pending_review_limit(
        &self,
        requester: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.pending_review_limit(&self.db, requester, now).await
    }

    /// [`StoreError::LimitReached`] if `requester` has as many pending reviews, not expired
    /// at `now`, as the limit allows.
    async fn pending_review_limit(
        &self,
        db: &impl ConnectionTrait,
        requester: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(max) = self.limits.pending_reviews_per_user else {
            return Ok(());
        };
        let pending = review::Entity::find()
            .filter(review::Column::Requester.eq(requester))
            .filter(review::Column::Status.eq(ReviewStatus::Pending.as_str()))
            .filter(review::Column::ExpiresAt.gt(now))
            .count(db)
            .await?;
        if pending >= u64::from(max) {
            return Err(StoreError::LimitReached {
                limit: "pending_reviews_per_user",
                max,
                message: format!(
                    "limit pending_reviews_per_user reached: user `{requester}` already has \
                     {pending} pending reviews (at most {max}); wait for reviewers to decide \
                     them, or revoke one (hoop reviews revoke), before asking for another"
                ),
            });
        }
        Ok(())
    }

    /// The review with this id, with its decisions.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    pub async fn get_review(&self, id: &str) -> Result<Review> {
        load_review(&self.db, id).await
    }

    /// Reviews matching `filter`, newest first, after the (creation time, id) of the last one
    /// of the previous page, at most `limit`, with their decisions. Inputs are not read
    /// whole: each review has its [`input_size`](Review::input_size) and
    /// [`input_preview`](Review::input_preview), and `input` is `None`.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_reviews(
        &self,
        filter: &ReviewFilter,
        after: Option<(DateTime<Utc>, String)>,
        limit: u64,
    ) -> Result<Vec<Review>> {
        // Every column but the input, whose first bytes and size the database computes.
        let (head, size) = match self.backend {
            Backend::Sqlite => (
                format!(r#"substr("reviews"."input", 1, {INPUT_PREVIEW_BYTES})"#),
                r#"length("reviews"."input")"#,
            ),
            Backend::Postgres => (
                format!(r#"substring("reviews"."input" from 1 for {INPUT_PREVIEW_BYTES})"#),
                r#"CAST(octet_length("reviews"."input") AS BIGINT)"#,
            ),
        };
        let mut query = review::Entity::find()
            .select_only()
            .columns(review::Column::iter().filter(|c| !matches!(c, review::Column::Input)))
            .expr_as(Expr::cust(head), "input")
            .expr_as(Expr::cust(size), "input_size")
            .order_by_desc(review::Column::CreatedAt)
            .order_by_desc(review::Column::Id);
        if let Some(s) = filter.status {
            query = query.filter(review::Column::Status.eq(s.as_str()));
        }
        if let Some(c) = &filter.connection {
            query = query.filter(review::Column::Connection.eq(c.as_str()));
        }
        if let Some(r) = &filter.requester {
            query = query.filter(review::Column::Requester.eq(r.as_str()));
        }
        if let Some(groups) = &filter.awaiting_groups {
            if groups.is_empty() {
                return Ok(Vec::new());
            }
            query = query
                .filter(review::Column::Status.eq(ReviewStatus::Pending.as_str()))
                .filter(groups_overlap(self.backend, groups));
        }
        if let Some(user) = &filter.exclude_decided_by {
            query = query.filter(
                review::Column::Id.not_in_subquery(
                    Query::select()
                        .column(review_decision::Column::ReviewId)
                        .from(review_decision::Entity)
                        .and_where(review_decision::Column::Reviewer.eq(user.as_str()))
                        .to_owned(),
                ),
            );
        }
        if let Some((t, id)) = after {
            query = query.filter(
                Condition::any().add(review::Column::CreatedAt.lt(t)).add(
                    Condition::all()
                        .add(review::Column::CreatedAt.eq(t))
                        .add(review::Column::Id.lt(id)),
                ),
            );
        }
        let listed = query
            .limit(limit)
            .into_model::<Listed>()
            .all(&self.db)
            .await?;
        let sizes: Vec<Option<i64>> = listed.iter().map(|l| l.input_size).collect();
        let rows = listed.into_iter().map(|l| l.row).collect();
        let mut reviews = with_decisions(&self.db, rows).await?;
        for (review, size) in reviews.iter_mut().zip(sizes) {
            let size = size.and_then(|s| u64::try_from(s).ok());
            let head = review.input.take();
            review.input_preview = head.as_deref().map(|head| {
                preview_of_head(
                    head,
                    size.and_then(|s| usize::try_from(s).ok()).unwrap_or(0),
                )
            });
            review.input_size = size;
        }
        Ok(reviews)
    }

    /// Records a reviewer's decision on a `PENDING` review and settles the review, in one
    /// transaction: a rejection rejects it (its reason becomes the review's); an approval
    /// that satisfies `rule` approves it (and starts a JIT review's grant: it ends at
    /// `decision.at` + the access duration). Returns the review as it now is.
    ///
    /// Concurrent decisions on one review are serialized; each sees the ones before it, so
    /// the approval that completes the rule approves the review exactly once and a decision
    /// arriving after that fails.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such review; [`StoreError::Conflict`] if it is
    /// not `PENDING`, is past its `expires_at` at `decision.at`, or the reviewer already
    /// decided it.
    pub async fn decide_review(
        &self,
        id: &str,
        decision: &NewDecision,
        rule: ApprovalRule,
    ) -> Result<Review> {
        let pending = ReviewStatus::Pending.as_str();
        let txn = self.begin_write().await?;
        // Claim the review (see the section comment): still pending and not expired.
        let claimed = review::Entity::update_many()
            .col_expr(review::Column::UpdatedAt, Expr::value(decision.at))
            .filter(review::Column::Id.eq(id))
            .filter(review::Column::Status.eq(pending))
            .filter(review::Column::ExpiresAt.gt(decision.at))
            .exec(&txn)
            .await?;
        if claimed.rows_affected == 0 {
            let row = review::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(|| StoreError::not_found("review", id))?;
            return Err(if row.status == pending {
                StoreError::Conflict(format!(
                    "review `{id}` expired at {}",
                    row.expires_at.to_rfc3339()
                ))
            } else {
                not_in(id, &row.status, &[ReviewStatus::Pending])
            });
        }
        let already = review_decision::Entity::find()
            .filter(review_decision::Column::ReviewId.eq(id))
            .filter(review_decision::Column::Reviewer.eq(decision.reviewer.as_str()))
            .one(&txn)
            .await?;
        if already.is_some() {
            return Err(already_decided(id, &decision.reviewer));
        }
        review_decision::ActiveModel {
            review_id: Set(id.to_owned()),
            reviewer: Set(decision.reviewer.clone()),
            group_name: Set(decision.group.clone()),
            approved: Set(decision.approved),
            reason: Set(decision.reason.clone()),
            decided_at: Set(decision.at),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                already_decided(id, &decision.reviewer)
            }
            _ => StoreError::Db(e),
        })?;
        let review = load_review(&txn, id).await?;
        let settle = if !decision.approved {
            Some(
                review::Entity::update_many()
                    .col_expr(
                        review::Column::Status,
                        Expr::value(ReviewStatus::Rejected.as_str()),
                    )
                    .col_expr(review::Column::Reason, Expr::value(decision.reason.clone())),
            )
        } else if rule.is_satisfied_by(&review.decisions) {
            let grant_ends_at = match review.kind {
                ReviewKind::Jit => review.access_duration.map(|d| add(decision.at, d)),
                ReviewKind::OneTime => None,
            };
            let update = review::Entity::update_many()
                .col_expr(
                    review::Column::Status,
                    Expr::value(ReviewStatus::Approved.as_str()),
                )
                .col_expr(review::Column::GrantEndsAt, Expr::value(grant_ends_at));
            Some(match review.kind {
                // An approved one-time review must run within the review TTL of its
                // approval: its deadline moves to then.
                ReviewKind::OneTime => {
                    let ttl = review.expires_at - review.created_at;
                    let deadline = decision
                        .at
                        .checked_add_signed(ttl)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC);
                    update.col_expr(review::Column::ExpiresAt, Expr::value(deadline))
                }
                ReviewKind::Jit => update,
            })
        } else {
            None
        };
        let settled_kind = if !decision.approved {
            Some("review.rejected")
        } else if settle.is_some() {
            Some("review.approved")
        } else {
            // An approval that leaves it pending: said too, so what shows the review (a
            // Slack message, a webhook) can show where it stands.
            Some("review.voted")
        };
        let review = match settle {
            None => review,
            Some(update) => {
                let settled = update
                    .col_expr(review::Column::DecidedAt, Expr::value(decision.at))
                    .col_expr(review::Column::UpdatedAt, Expr::value(decision.at))
                    .filter(review::Column::Id.eq(id))
                    .filter(review::Column::Status.eq(pending))
                    .exec(&txn)
                    .await?;
                if settled.rows_affected == 0 {
                    // Not expected while the claim holds the row; refuse rather than guess.
                    return Err(StoreError::Conflict(format!(
                        "review `{id}` changed while it was being decided"
                    )));
                }
                load_review(&txn, id).await?
            }
        };
        let events = settled_kind
            .map(|kind| {
                let mut event = self.review_event(&review, kind);
                event.user = Some(decision.reviewer.clone());
                event
            })
            .into_iter()
            .collect();
        self.commit_with_events(txn, events).await?;
        Ok(review)
    }

    /// Moves a review from one of the `from` statuses to `to`, as a compare-and-set: of
    /// concurrent calls exactly one succeeds (e.g. a one-time review goes from `APPROVED` to
    /// `EXECUTED` once). `reason`, when given, replaces the review's reason; `session_id`,
    /// when given, is recorded unless a session is already (so it keeps the first). Returns
    /// the review as it now is.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such review; [`StoreError::Conflict`] if its
    /// status is not one of `from` (the message says which it is).
    pub async fn transition_review(
        &self,
        id: &str,
        from: &[ReviewStatus],
        to: ReviewStatus,
        reason: Option<&str>,
        session_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Review> {
        let txn = self.begin_write().await?;
        let mut update = review::Entity::update_many()
            .col_expr(review::Column::Status, Expr::value(to.as_str()))
            .col_expr(review::Column::UpdatedAt, Expr::value(at));
        if let Some(reason) = reason {
            update = update.col_expr(review::Column::Reason, Expr::value(reason));
        }
        if let Some(session_id) = session_id {
            update = update.col_expr(
                review::Column::SessionId,
                Func::coalesce([
                    Expr::col(review::Column::SessionId).into(),
                    Expr::value(session_id),
                ])
                .into(),
            );
        }
        let updated = update
            .filter(review::Column::Id.eq(id))
            .filter(review::Column::Status.is_in(from.iter().map(|s| s.as_str())))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            let row = review::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(|| StoreError::not_found("review", id))?;
            return Err(not_in(id, &row.status, from));
        }
        let review = load_review(&txn, id).await?;
        let kind = match to {
            ReviewStatus::Pending => None,
            ReviewStatus::Approved => Some("review.approved"),
            ReviewStatus::Rejected => Some("review.rejected"),
            ReviewStatus::Revoked => Some("review.revoked"),
            ReviewStatus::Expired => Some("review.expired"),
            ReviewStatus::Executed => Some("review.executed"),
        };
        let events = kind
            .map(|kind| self.review_event(&review, kind))
            .into_iter()
            .collect();
        self.commit_with_events(txn, events).await?;
        Ok(review)
    }

    /// Marks an `APPROVED` one-time review `EXECUTED` by `session_id`, if its deadline (the
    /// review TTL after its approval) has not passed at `now`: a compare-and-set, so of
    /// concurrent claims exactly one wins. Returns the review as it now is.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such review; [`StoreError::Conflict`] if it is
    /// not `APPROVED` or its deadline passed.
    pub async fn claim_review(
        &self,
        id: &str,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Review> {
        let txn = self.begin_write().await?;
        let updated = review::Entity::update_many()
            .col_expr(
                review::Column::Status,
                Expr::value(ReviewStatus::Executed.as_str()),
            )
            .col_expr(review::Column::UpdatedAt, Expr::value(now))
            .col_expr(review::Column::SessionId, Expr::value(session_id))
            .filter(review::Column::Id.eq(id))
            .filter(review::Column::Kind.eq(ReviewKind::OneTime.as_str()))
            .filter(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .filter(review::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            let row = review::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(|| StoreError::not_found("review", id))?;
            return Err(if row.status == ReviewStatus::Approved.as_str() {
                StoreError::Conflict(format!(
                    "review `{id}` was approved but not run by {}: ask again",
                    row.expires_at.to_rfc3339()
                ))
            } else {
                not_in(id, &row.status, &[ReviewStatus::Approved])
            });
        }
        let review = load_review(&txn, id).await?;
        let event = self.review_event(&review, "review.executed");
        self.commit_with_events(txn, vec![event]).await?;
        Ok(review)
    }

    /// Expires, as of `now`, every `PENDING` review past its `expires_at` (reason "pending
    /// longer than the review TTL"), every `APPROVED` JIT review whose grant ended (reason
    /// "access expired") and every `APPROVED` one-time review not run by its `expires_at`
    /// (the review TTL after its approval). Returns the reviews it changed, oldest first, so the caller can
    /// announce them and end the sessions of ended grants. Safe to run concurrently with
    /// decisions and with other gateways: each review is expired at most once.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn expire_reviews(&self, now: DateTime<Utc>) -> Result<Vec<Review>> {
        let pending_too_long = Condition::all()
            .add(review::Column::Status.eq(ReviewStatus::Pending.as_str()))
            .add(review::Column::ExpiresAt.lte(now));
        let grant_ended = Condition::all()
            .add(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .add(review::Column::Kind.eq(ReviewKind::Jit.as_str()))
            .add(review::Column::GrantEndsAt.lte(now));
        let approved_unrun = Condition::all()
            .add(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .add(review::Column::Kind.eq(ReviewKind::OneTime.as_str()))
            .add(review::Column::ExpiresAt.lte(now));
        let backend = self.db.get_database_backend();
        let txn = self.begin_write().await?;
        let mut ids = Vec::new();
        for (condition, reason) in [
            (pending_too_long, "pending longer than the review TTL"),
            (grant_ended, "access expired"),
            (
                approved_unrun,
                "approved but not run within the review TTL of its approval",
            ),
        ] {
            // One statement per kind of expiry; RETURNING names exactly the rows it changed.
            let mut update = review::Entity::update_many()
                .col_expr(
                    review::Column::Status,
                    Expr::value(ReviewStatus::Expired.as_str()),
                )
                .col_expr(review::Column::Reason, Expr::value(reason))
                .col_expr(review::Column::UpdatedAt, Expr::value(now))
                .filter(condition)
                .into_query();
            update.returning_col(review::Column::Id);
            for row in txn.query_all(backend.build(&update)).await? {
                ids.push(row.try_get::<String>("", "id")?);
            }
        }
        if ids.is_empty() {
            txn.commit().await?;
            return Ok(Vec::new());
        }
        let rows = review::Entity::find()
            .filter(review::Column::Id.is_in(ids))
            .order_by_asc(review::Column::CreatedAt)
            .order_by_asc(review::Column::Id)
            .all(&txn)
            .await?;
        let reviews = with_decisions(&txn, rows).await?;
        let events = reviews
            .iter()
            .map(|review| {
                let mut event = self.review_event(review, "review.expired");
                event.user = Some(review.requester.clone());
                event
            })
            .collect();
        self.commit_with_events(txn, events).await?;
        Ok(reviews)
    }

    /// The access `requester` holds on `connection` at `now`: an `APPROVED` JIT review whose
    /// grant has not ended (the one ending last, if several).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn active_grant(
        &self,
        requester: &str,
        connection: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Review>> {
        let row = review::Entity::find()
            .filter(review::Column::Requester.eq(requester))
            .filter(review::Column::Connection.eq(connection))
            .filter(review::Column::Kind.eq(ReviewKind::Jit.as_str()))
            .filter(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .filter(review::Column::GrantEndsAt.gt(now))
            .order_by_desc(review::Column::GrantEndsAt)
            .order_by_desc(review::Column::Id)
            .one(&self.db)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(with_decisions(&self.db, vec![row]).await?.pop()),
        }
    }

    /// Every access `requester` holds on `connection` at `now`: the `APPROVED` JIT reviews
    /// whose grant has not ended, the one ending last first (a grant binds the arguments it
    /// was approved for, so a user may hold several).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn active_grants(
        &self,
        requester: &str,
        connection: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Review>> {
        let rows = review::Entity::find()
            .filter(review::Column::Requester.eq(requester))
            .filter(review::Column::Connection.eq(connection))
            .filter(review::Column::Kind.eq(ReviewKind::Jit.as_str()))
            .filter(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .filter(review::Column::GrantEndsAt.gt(now))
            .order_by_desc(review::Column::GrantEndsAt)
            .order_by_desc(review::Column::Id)
            .all(&self.db)
            .await?;
        with_decisions(&self.db, rows).await
    }

    /// When [`expire_reviews`](Self::expire_reviews) next has something to do: the earliest
    /// `expires_at` of the `PENDING` reviews and of the `APPROVED` one-time reviews, and
    /// `grant_ends_at` of the `APPROVED` JIT reviews; `None` if there are none.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn next_review_deadline(&self) -> Result<Option<DateTime<Utc>>> {
        let pending = review::Entity::find()
            .filter(review::Column::Status.eq(ReviewStatus::Pending.as_str()))
            .order_by_asc(review::Column::ExpiresAt)
            .one(&self.db)
            .await?
            .map(|r| r.expires_at);
        let grant = review::Entity::find()
            .filter(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .filter(review::Column::Kind.eq(ReviewKind::Jit.as_str()))
            .filter(review::Column::GrantEndsAt.is_not_null())
            .order_by_asc(review::Column::GrantEndsAt)
            .one(&self.db)
            .await?
            .and_then(|r| r.grant_ends_at);
        let unrun = review::Entity::find()
            .filter(review::Column::Status.eq(ReviewStatus::Approved.as_str()))
            .filter(review::Column::Kind.eq(ReviewKind::OneTime.as_str()))
            .order_by_asc(review::Column::ExpiresAt)
            .one(&self.db)
            .await?
            .map(|r| r.expires_at);
        Ok(pending.into_iter().chain(grant).chain(unrun).min())
    }

    /// The event `kind` (`review.created`, `review.approved`, …) telling that `review` is now
    /// as it is, by the acting user (else the requester).
    fn review_event(&self, review: &Review, kind: &str) -> NewEvent {
        let user = self
            .actor
            .as_deref()
            .map_or_else(|| review.requester.clone(), str::to_owned);
        let approvers: Vec<String> = review
            .decisions
            .iter()
            .filter(|d| d.approved)
            .map(|d| format!("{} ({})", d.reviewer, d.group))
            .collect();
        NewEvent::new(
            kind,
            serde_json::json!({
                "review_id": review.id,
                "kind": review.kind.as_str(),
                "status": review.status.as_str(),
                "requester": review.requester,
                "verb": review.verb,
                "groups": review.groups,
                "approved_by": approvers,
                "reason": review.reason,
                "session_id": review.session_id,
                "grant_ends_at": review.grant_ends_at.map(|t| t.to_rfc3339()),
            }),
        )
        .connection(&review.connection)
        .user(user)
    }
}

/// A random (version 4) UUID, as text.
fn new_uuid() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `at` + `d`, saturating at the latest representable time.
fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The condition "the review's `groups` include one of `groups`" (a JSON array, read with
/// each backend's JSON functions).
fn groups_overlap(backend: Backend, groups: &[String]) -> SimpleExpr {
    // sea-query's placeholders in custom SQL: `?` on SQLite, `$1`, `$2`… on PostgreSQL.
    let sql = match backend {
        Backend::Sqlite => format!(
            r#"EXISTS (SELECT 1 FROM json_each("reviews"."groups") WHERE json_each.value IN ({}))"#,
            vec!["?"; groups.len()].join(", ")
        ),
        Backend::Postgres => format!(
            r#"EXISTS (SELECT 1 FROM json_array_elements_text("reviews"."groups") AS g(name) WHERE g.name IN ({}))"#,
            (1..=groups.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Expr::cust_with_values(sql, groups.iter().cloned())
}

/// The conflict of a review whose status is `status` rather than one of `expected`.
fn not_in(id: &str, status: &str, expected: &[ReviewStatus]) -> StoreError {
    let expected = match expected {
        [] => "in a status allowing this".to_owned(),
        [one] => one.as_str().to_owned(),
        [init @ .., last] => format!(
            "{} or {}",
            init.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_str()
        ),
    };
    StoreError::Conflict(format!("review `{id}` is {status}, not {expected}"))
}

fn already_decided(id: &str, reviewer: &str) -> StoreError {
    StoreError::Conflict(format!("{reviewer} already decided review `{id}`"))
}

/// The review with this id and its decisions.
async fn load_review(db: &impl ConnectionTrait, id: &str) -> Result<Review> {
    let row = review::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::not_found("review", id))?;
    let mut reviews = with_decisions(db, vec![row]).await?;
    reviews
        .pop()
        .ok_or_else(|| StoreError::not_found("review", id))
}

/// `rows` as reviews, in the same order, each with its decisions (oldest first).
async fn with_decisions(
    db: &impl ConnectionTrait,
    rows: Vec<review::Model>,
) -> Result<Vec<Review>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let decisions = review_decision::Entity::find()
        .filter(review_decision::Column::ReviewId.is_in(ids))
        .order_by_asc(review_decision::Column::DecidedAt)
        .order_by_asc(review_decision::Column::Id)
        .all(db)
        .await?;
    let mut by_review: BTreeMap<String, Vec<ReviewDecision>> = BTreeMap::new();
    for d in decisions {
        by_review
            .entry(d.review_id)
            .or_default()
            .push(ReviewDecision {
                reviewer: d.reviewer,
                group: d.group_name,
                approved: d.approved,
                reason: d.reason,
                decided_at: d.decided_at,
            });
    }
    rows.into_iter()
        .map(|row| {
            let decisions = by_review.remove(&row.id).unwrap_or_default();
            review_from(row, decisions)
        })
        .collect()
}

/// A review row as listed: `input` holds only its first bytes, with the size of the whole.
struct Listed {
    row: review::Model,
    input_size: Option<i64>,
}

impl FromQueryResult for Listed {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            row: review::Model::from_query_result(res, pre)?,
            input_size: res.try_get(pre, "input_size")?,
        })
    }
}

fn review_from(row: review::Model, decisions: Vec<ReviewDecision>) -> Result<Review> {
    Ok(Review {
        input_size: row
            .input
            .as_ref()
            .map(|i| u64::try_from(i.len()).unwrap_or(u64::MAX)),
        input_preview: row.input.as_deref().map(crate::model::input_preview),
        kind: row
            .kind
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("review `{}`: {e}", row.id)))?,
        status: row
            .status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("review `{}`: {e}", row.id)))?,
        args: from_json(row.args, "args")?,
        groups: from_json(row.groups, "groups")?,
        min_approvals: row.min_approvals.and_then(count_from_db),
        access_duration: row.access_duration_ms.and_then(duration_from_db),
        id: row.id,
        connection: row.connection,
        requester: row.requester,
        verb: row.verb,
        input: row.input,
        input_sha256: row.input_sha256,
        reason: row.reason,
        created_at: row.created_at,
        updated_at: row.updated_at,
        expires_at: row.expires_at,
        decided_at: row.decided_at,
        grant_ends_at: row.grant_ends_at,
        session_id: row.session_id,
        decisions,
    })
}
