//! `hoop users …` and `hoop users keys …`

use anyhow::{Result, bail};
use hoop_proto::v1::{
    ApiKey, CreateApiKeyRequest, CreateUserRequest, DeleteUserRequest, GetUserRequest,
    ListApiKeysRequest, ListUsersRequest, RevokeApiKeyRequest, UpdateUserRequest, User,
    WhoAmIRequest,
};

use crate::cli::{KeysCommand, OutputFormat, UsersCommand};
use crate::client::Api;
use crate::convert;
use crate::output::{self, details, list, or_dash, table, timestamp};

/// `hoop whoami`
pub(crate) async fn whoami(api: &mut Api, format: OutputFormat) -> Result<String> {
    let user = api.users.who_am_i(WhoAmIRequest {}).await?.into_inner();
    show(format, None, &user)
}

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: UsersCommand,
) -> Result<String> {
    match command {
        UsersCommand::List { page_size } => {
            let users = list_all(api, page_size).await?;
            match format {
                OutputFormat::Json => output::json_list("users", &users),
                OutputFormat::Table => Ok(users_table(&users)),
            }
        }
        UsersCommand::Get { name } => {
            let user = api
                .users
                .get_user(GetUserRequest { name })
                .await?
                .into_inner();
            show(format, None, &user)
        }
        UsersCommand::Create { name, fields } => {
            let (user, _) = convert::user_from_flags(&name, &fields);
            let created = api
                .users
                .create_user(CreateUserRequest { user: Some(user) })
                .await?
                .into_inner();
            show(format, Some("created"), &created)
        }
        UsersCommand::Update { name, fields } => {
            let (user, mask) = convert::user_update(&name, &fields)?;
            let updated = api
                .users
                .update_user(UpdateUserRequest {
                    user: Some(user),
                    update_mask: Some(mask),
                })
                .await?
                .into_inner();
            show(format, Some("updated"), &updated)
        }
        UsersCommand::Delete { name } => {
            api.users
                .delete_user(DeleteUserRequest { name: name.clone() })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&()),
                OutputFormat::Table => Ok(format!("deleted user {name}")),
            }
        }
        UsersCommand::Keys(command) => keys(api, format, command).await,
    }
}

async fn keys(api: &mut Api, format: OutputFormat, command: KeysCommand) -> Result<String> {
    match command {
        KeysCommand::Create { user, description } => {
            let response = api
                .users
                .create_api_key(CreateApiKeyRequest {
                    user: user.unwrap_or_default(),
                    description: description.unwrap_or_default(),
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => {
                    let key = response.api_key.unwrap_or_default();
                    Ok(format!(
                        "created API key {} for user {}\n\
                         token: {}\n\
                         This token is shown only once: store it now, the gateway keeps only its hash.",
                        or_dash(&key.id),
                        or_dash(&key.user),
                        response.token
                    ))
                }
            }
        }
        KeysCommand::List { user } => {
            let response = api
                .users
                .list_api_keys(ListApiKeysRequest {
                    user: user.unwrap_or_default(),
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&response),
                OutputFormat::Table => Ok(keys_table(&response.api_keys)),
            }
        }
        KeysCommand::Revoke { id } => {
            let key = api
                .users
                .revoke_api_key(RevokeApiKeyRequest { id: id.clone() })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(&key),
                OutputFormat::Table => Ok(format!("revoked API key {id}")),
            }
        }
    }
}

/// Every user, following `next_page_token`.
async fn list_all(api: &mut Api, page_size: i32) -> Result<Vec<User>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = api
            .users
            .list_users(ListUsersRequest {
                page_size,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        all.extend(page.users);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        if page.next_page_token == page_token {
            bail!("the gateway returned the same page token twice");
        }
        page_token = page.next_page_token;
    }
}

fn show(format: OutputFormat, verb: Option<&str>, user: &User) -> Result<String> {
    match format {
        OutputFormat::Json => output::json(user),
        OutputFormat::Table => {
            let view = user_details(user);
            Ok(match verb {
                Some(verb) => format!("{verb} user {}\n\n{view}", user.name),
                None => view,
            })
        }
    }
}

fn user_details(user: &User) -> String {
    details(&[
        ("name", user.name.clone()),
        ("email", or_dash(&user.email)),
        ("groups", list(&user.groups)),
        ("slack_id", or_dash(&user.slack_id)),
        ("created", timestamp(user.create_time.as_ref())),
        ("updated", timestamp(user.update_time.as_ref())),
    ])
}

fn users_table(users: &[User]) -> String {
    table(
        &["name", "email", "groups", "slack_id"],
        users
            .iter()
            .map(|u| {
                vec![
                    u.name.clone(),
                    or_dash(&u.email),
                    list(&u.groups),
                    or_dash(&u.slack_id),
                ]
            })
            .collect(),
    )
}

fn keys_table(keys: &[ApiKey]) -> String {
    table(
        &["id", "user", "prefix", "description", "created", "revoked"],
        keys.iter()
            .map(|k| {
                vec![
                    k.id.clone(),
                    k.user.clone(),
                    or_dash(&k.prefix),
                    or_dash(&k.description),
                    timestamp(k.create_time.as_ref()),
                    timestamp(k.revoke_time.as_ref()),
                ]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    #[test]
    fn users_and_keys_tables() {
        let text = users_table(&[User {
            name: "ann".to_owned(),
            email: "ann@example.com".to_owned(),
            groups: vec!["admin".to_owned(), "auditor".to_owned()],
            ..User::default()
        }]);
        assert_eq!(
            text,
            "NAME   EMAIL             GROUPS          SLACK_ID\nann    ann@example.com   admin,auditor   -"
        );
        let text = keys_table(&[ApiKey {
            id: "k1".to_owned(),
            user: "ann".to_owned(),
            description: String::new(),
            prefix: "hpk_ab".to_owned(),
            create_time: Some(Timestamp {
                seconds: 86_400,
                nanos: 0,
            }),
            revoke_time: None,
        }]);
        assert!(
            text.ends_with("k1   ann    hpk_ab   -             1970-01-02T00:00:00Z   -"),
            "{text}"
        );
    }
}
