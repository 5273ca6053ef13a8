//! `hoop.v1.UserService`.

use hoop_core::names::{check_group_name, check_user_name};
use hoop_proto::v1 as pb;
use hoop_proto::v1::user_service_server::UserService;
use hoop_store::{StoreError, User, hash_token, random_token};
use tonic::{Request, Response, Status};

use super::convert::{api_key_to_proto, user_to_proto};
use super::{Page, SharedApp};
use crate::auth::{ADMIN_GROUP, ADMIN_USER, API_KEY_PREFIX, Caller, caller};
use crate::error::Error;

const MAX_GROUPS: usize = 64;
const MAX_EMAIL_BYTES: usize = 254;
const MAX_DESCRIPTION_BYTES: usize = 256;

#[derive(Debug)]
pub(crate) struct UserApi {
    app: SharedApp,
}

impl UserApi {
    pub(crate) fn new(app: SharedApp) -> Self {
        Self { app }
    }
}

fn check_email(email: &str, field: &str) -> Result<(), Error> {
    if email.is_empty() {
        return Ok(());
    }
    let valid = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be an email address (name@domain), at most {MAX_EMAIL_BYTES} bytes"),
        ))
    }
}

/// Checks a Slack member ID: `U` or `W` then 2 to 30 upper-case letters or digits (empty
/// clears it).
fn check_slack_id(id: &str, field: &str) -> Result<(), Error> {
    let mut chars = id.chars();
    let valid = id.is_empty()
        || (matches!(chars.next(), Some('U' | 'W'))
            && (3..=31).contains(&id.len())
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be a Slack member ID like U0123ABCD (Slack: profile → ⋮ → Copy member ID)",
        ))
    }
}

fn check_groups(groups: &[String], field: &str) -> Result<(), Error> {
    if groups.len() > MAX_GROUPS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_GROUPS} groups"),
        ));
    }
    for (i, group) in groups.iter().enumerate() {
        check_group_name(group)
            .map_err(|e| Error::invalid(format!("{field}[{i}]"), e.to_string()))?;
    }
    Ok(())
}

/// The user a key request is about: the named one, or the caller when empty. Only admins
/// may act for others.
fn subject(caller: &Caller, user: &str, action: &str) -> Result<String, Error> {
    if user.is_empty() || user == caller.user.name {
        Ok(caller.user.name.clone())
    } else {
        caller.require_admin(action)?;
        Ok(user.to_owned())
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(user_to_proto(caller.user)))
    }

    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("creating a user")?;
        let user = req
            .into_inner()
            .user
            .ok_or_else(|| Error::invalid("user", "required"))?;
        if user.name.is_empty() {
            return Err(Error::invalid("user.name", "required").into());
        }
        check_user_name(&user.name).map_err(|e| Error::invalid("user.name", e.to_string()))?;
        check_email(&user.email, "user.email")?;
        check_groups(&user.groups, "user.groups")?;
        check_slack_id(&user.slack_id, "user.slack_id")?;
        if !user.slack_id.is_empty()
            && self
                .app
                .store
                .find_user_by_slack_id(&user.slack_id)
                .await
                .map_err(Error::from)?
                .is_some()
        {
            return Err(Error::AlreadyExists(format!(
                "slack_id `{}` is set for another user",
                user.slack_id
            ))
            .into());
        }
        let now = chrono::Utc::now();
        let created = self
            .app
            .store
            .create_user(&User {
                name: user.name,
                email: user.email,
                groups: user.groups,
                slack_id: (!user.slack_id.is_empty()).then_some(user.slack_id),
                created_at: now,
                updated_at: now,
            })
            .await
            .map_err(Error::from)?;
        tracing::info!(user = %caller.user.name, created = %created.name, "user created");
        Ok(Response::new(user_to_proto(created)))
    }

    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = caller(&req)?;
        let name = req.into_inner().name;
        if name.is_empty() {
            return Err(Error::invalid("name", "required").into());
        }
        if name != caller.user.name {
            caller.require_admin("reading another user")?;
        }
        let user = self.app.store.get_user(&name).await.map_err(Error::from)?;
        Ok(Response::new(user_to_proto(user)))
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("listing users")?;
        let req = req.into_inner();
        let page = Page::parse(req.page_size, &req.page_token)?;
        let users = self
            .app
            .store
            .list_users(page.after.as_deref(), page.size + 1)
            .await
            .map_err(Error::from)?;
        let (users, next_page_token) = page.finish(users, |u| u.name.clone());
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(user_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_user(
        &self,
        req: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let user = req.user.ok_or_else(|| Error::invalid("user", "required"))?;
        if user.name.is_empty() {
            return Err(Error::invalid("user.name", "required").into());
        }
        let mut paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        // Anyone may set their own Slack ID (and only that); everything else is for admins.
        let own_slack_id = user.name == caller.user.name && paths == ["slack_id"];
        if !own_slack_id {
            caller.require_admin("updating a user")?;
        }
        for (i, path) in paths.iter().enumerate() {
            match path.as_str() {
                "email" | "groups" | "slack_id" => {}
                "name" => {
                    return Err(Error::invalid(
                        format!("update_mask.paths[{i}]"),
                        "name is immutable",
                    )
                    .into());
                }
                other => {
                    return Err(Error::invalid(
                        format!("update_mask.paths[{i}]"),
                        format!("unknown field `{other}`; updatable: email, groups, slack_id"),
                    )
                    .into());
                }
            }
        }
        if paths.is_empty() {
            paths = vec!["email".to_owned(), "groups".to_owned()];
        }
        let email = paths
            .iter()
            .any(|p| p == "email")
            .then_some(user.email.as_str());
        let groups = paths
            .iter()
            .any(|p| p == "groups")
            .then_some(user.groups.as_slice());
        if let Some(email) = email {
            check_email(email, "user.email")?;
        }
        let slack_id = paths
            .iter()
            .any(|p| p == "slack_id")
            .then_some(user.slack_id.as_str());
        if let Some(id) = slack_id {
            check_slack_id(id, "user.slack_id")?;
        }
        if let Some(groups) = groups {
            check_groups(groups, "user.groups")?;
            if user.name == ADMIN_USER && !groups.iter().any(|g| g == ADMIN_GROUP) {
                return Err(Error::FailedPrecondition(format!(
                    "the built-in `{ADMIN_USER}` user must stay in group `{ADMIN_GROUP}`"
                ))
                .into());
            }
        }
        let mut updated = if email.is_some() || groups.is_some() {
            Some(
                self.app
                    .store
                    .update_user(&user.name, email, groups)
                    .await
                    .map_err(Error::from)?,
            )
        } else {
            None
        };
        if let Some(id) = slack_id {
            updated = Some(
                self.app
                    .store
                    .set_user_slack_id(&user.name, (!id.is_empty()).then_some(id))
                    .await
                    .map_err(|e| match e {
                        hoop_store::StoreError::AlreadyExists { .. } => {
                            Error::AlreadyExists(format!("slack_id `{id}` is set for another user"))
                        }
                        other => Error::from(other),
                    })?,
            );
        }
        let Some(updated) = updated else {
            return Err(Error::invalid("update_mask", "names no field").into());
        };
        tracing::info!(user = %caller.user.name, updated = %updated.name, fields = ?paths, "user updated");
        Ok(Response::new(user_to_proto(updated)))
    }

    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        caller.require_admin("deleting a user")?;
        let name = req.into_inner().name;
        if name.is_empty() {
            return Err(Error::invalid("name", "required").into());
        }
        if name == ADMIN_USER {
            return Err(Error::FailedPrecondition(format!(
                "the built-in `{ADMIN_USER}` user cannot be deleted"
            ))
            .into());
        }
        self.app
            .store
            .delete_user(&name)
            .await
            .map_err(Error::from)?;
        tracing::info!(user = %caller.user.name, deleted = %name, "user deleted");
        Ok(Response::new(()))
    }

    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let user = subject(&caller, &req.user, "creating an API key for another user")?;
        if req.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(Error::invalid(
                "description",
                format!("at most {MAX_DESCRIPTION_BYTES} bytes"),
            )
            .into());
        }
        let token = random_token(API_KEY_PREFIX);
        let prefix: String = token.chars().take(12).collect();
        let key = self
            .app
            .store
            .create_api_key(&user, &req.description, &prefix, &hash_token(&token))
            .await
            .map_err(Error::from)?;
        tracing::info!(user = %caller.user.name, key = %key.id, owner = %key.user, "api key created");
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(api_key_to_proto(key)),
            token,
        }))
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = caller(&req)?;
        let user = subject(
            &caller,
            &req.into_inner().user,
            "listing another user's API keys",
        )?;
        let keys = self
            .app
            .store
            .list_api_keys(&user)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.into_iter().map(api_key_to_proto).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        req: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        if id.is_empty() {
            return Err(Error::invalid("id", "required").into());
        }
        let not_found = || Error::NotFound(format!("api key `{id}` not found"));
        let key = match self.app.store.get_api_key(&id).await {
            Ok(key) => key,
            Err(StoreError::NotFound { .. }) => return Err(not_found().into()),
            Err(e) => return Err(Error::from(e).into()),
        };
        // Someone else's key is "not found" to non-admins: no probing of key ids.
        if key.user != caller.user.name && !caller.is_admin() {
            return Err(not_found().into());
        }
        let revoked = self
            .app
            .store
            .revoke_api_key(&id)
            .await
            .map_err(Error::from)?;
        tracing::info!(user = %caller.user.name, key = %revoked.id, "api key revoked");
        Ok(Response::new(api_key_to_proto(revoked)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(check_email("", "e").is_ok());
        assert!(check_email("a@b.c", "e").is_ok());
        for bad in ["a", "@b", "a@", "a b@c", "a@b@c"] {
            assert!(check_email(bad, "e").is_err(), "{bad}");
        }
    }
}
