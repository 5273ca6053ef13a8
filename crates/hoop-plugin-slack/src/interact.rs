//! Clicks and modal submissions from Slack (over Socket Mode or the signed HTTP endpoint).
//!
//! A click acts only as the hoop user the Slack user maps to: by the `slack_id` a hoop user
//! set, else by the e-mail Slack shows for them (`users.info`) when exactly one hoop user
//! has it and has not linked another Slack account. The decision then goes through the
//! host's reviews port, which applies the API's very rules (a member of the clicked group,
//! not the requester, the review still pending, …). Anything refused is told to the clicker
//! alone (an ephemeral message) and nothing changes.

use std::sync::Arc;

use hoop_core::UserInfo;
use hoop_core::ports::{PortError, ReviewVerdict};
use serde_json::{Value, json};

use crate::messages::{self, APPROVE_ACTION, REASON_INPUT, REJECT_ACTION, REJECT_CALLBACK};
use crate::runtime::Ctx;

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Handles one interaction payload (`block_actions`, `view_submission`).
pub(crate) async fn handle(ctx: Arc<Ctx>, payload: Value) {
    match text(&payload, "/type") {
        Some("block_actions") => {
            let actions = payload
                .get("actions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for action in actions {
                click(&ctx, &payload, &action).await;
            }
        }
        Some("view_submission") if text(&payload, "/view/callback_id") == Some(REJECT_CALLBACK) => {
            submit_reject(&ctx, &payload).await;
        }
        other => tracing::debug!(kind = ?other, "slack: interaction ignored"),
    }
}

/// The hoop user a Slack user acts as, or why there is none (said to them).
async fn resolve(ctx: &Ctx, slack_user: &str) -> Result<UserInfo, String> {
    const UNLINKED: &str = "Your Slack account is not linked to a hoop user, so nothing was decided. \
        Link it with `hoop users update <your hoop user> --slack-id <your Slack member ID>`, \
        or use the same e-mail address in Slack and in hoop.";
    match ctx.directory.user_by_slack_id(slack_user).await {
        Ok(Some(user)) => return Ok(user),
        Ok(None) => {}
        Err(e) => {
            return Err(format!(
                "hoop cannot check who you are now ({e}); try again"
            ));
        }
    }
    let email = match ctx.api.user_email(slack_user).await {
        Ok(Some(email)) => email,
        Ok(None) => return Err(UNLINKED.to_owned()),
        Err(e) => {
            return Err(format!(
                "hoop cannot ask Slack who you are now ({e}); try again"
            ));
        }
    };
    match ctx.directory.user_by_email(&email).await {
        // That hoop user linked another Slack account: this one does not act as them.
        Ok(Some(user)) if user.slack_id.as_deref().is_some_and(|id| id != slack_user) => {
            Err(UNLINKED.to_owned())
        }
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(UNLINKED.to_owned()),
        Err(e) => Err(format!(
            "hoop cannot check who you are now ({e}); try again"
        )),
    }
}

/// A refusal of the reviews port, in words for the clicker.
fn refusal(err: &PortError) -> String {
    match err {
        PortError::Refused(m) | PortError::NotFound(m) => format!("Nothing was decided: {m}"),
        PortError::Unavailable(_) => "hoop cannot record your decision now; try again".to_owned(),
        other => format!("Nothing was decided: {other}"),
    }
}

async fn tell(ctx: &Ctx, channel: Option<&str>, slack_user: &str, message: &str) {
    let Some(channel) = channel else {
        return;
    };
    if let Err(e) = ctx.api.post_ephemeral(channel, slack_user, message).await {
        tracing::warn!(error = %e, "slack: cannot send an ephemeral message");
        ctx.health.error(format!("chat.postEphemeral: {e}"));
    }
}

/// Updates the review's messages after a decision made here (partial approvals append no
/// event, so the click itself refreshes them).
async fn refresh(ctx: &Ctx, review: &hoop_core::ports::ReviewView) {
    if let Err(e) = ctx.refresh(&review.id).await {
        tracing::warn!(review = %review.id, error = ?e, "slack: cannot update the review's messages now");
    }
}

async fn click(ctx: &Ctx, payload: &Value, action: &Value) {
    let action_id = text(action, "/action_id").unwrap_or_default();
    if action_id != APPROVE_ACTION && action_id != REJECT_ACTION {
        return;
    }
    let Some(slack_user) = text(payload, "/user/id") else {
        return;
    };
    let channel = text(payload, "/channel/id").or_else(|| text(payload, "/container/channel_id"));
    let Some((review_id, group)) = text(action, "/value").and_then(|v| v.split_once('|')) else {
        return;
    };
    let user = match resolve(ctx, slack_user).await {
        Ok(user) => user,
        Err(why) => return tell(ctx, channel, slack_user, &why).await,
    };
    if action_id == APPROVE_ACTION {
        match ctx
            .reviews
            .decide(review_id, &user.name, group, ReviewVerdict::Approve)
            .await
        {
            Ok(review) => {
                tracing::info!(review = %review_id, user = %user.name, %group, "slack: approved");
                refresh(ctx, &review).await;
            }
            Err(e) => tell(ctx, channel, slack_user, &refusal(&e)).await,
        }
        return;
    }
    // Reject: check first, so who may not reject is told now rather than after typing.
    let probe = ReviewVerdict::Reject {
        reason: "checking".to_owned(),
    };
    if let Err(e) = ctx
        .reviews
        .check(review_id, &user.name, group, &probe)
        .await
    {
        return tell(ctx, channel, slack_user, &refusal(&e)).await;
    }
    let Some(trigger) = text(payload, "/trigger_id") else {
        return;
    };
    let metadata = json!({"review": review_id, "group": group, "channel": channel});
    if let Err(e) = ctx
        .api
        .open_view(
            trigger,
            &messages::reject_modal(review_id, group, &metadata),
        )
        .await
    {
        tracing::warn!(error = %e, "slack: cannot open the reject modal");
        tell(
            ctx,
            channel,
            slack_user,
            "hoop cannot open the reject form now; try again, or use `hoop reviews reject`",
        )
        .await;
    }
}

async fn submit_reject(ctx: &Ctx, payload: &Value) {
    let Some(slack_user) = text(payload, "/user/id") else {
        return;
    };
    let metadata: Value = text(payload, "/view/private_metadata")
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    let channel = text(&metadata, "/channel");
    let (Some(review_id), Some(group)) = (text(&metadata, "/review"), text(&metadata, "/group"))
    else {
        return;
    };
    let reason = text(
        payload,
        &format!("/view/state/values/{REASON_INPUT}/{REASON_INPUT}/value"),
    )
    .unwrap_or_default()
    .to_owned();
    let user = match resolve(ctx, slack_user).await {
        Ok(user) => user,
        Err(why) => return tell(ctx, channel, slack_user, &why).await,
    };
    match ctx
        .reviews
        .decide(
            review_id,
            &user.name,
            group,
            ReviewVerdict::Reject { reason },
        )
        .await
    {
        Ok(review) => {
            tracing::info!(review = %review_id, user = %user.name, %group, "slack: rejected");
            refresh(ctx, &review).await;
        }
        Err(e) => tell(ctx, channel, slack_user, &refusal(&e)).await,
    }
}
