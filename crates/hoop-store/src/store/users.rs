//! Users, their group memberships, and their API keys.

use std::collections::BTreeMap;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::{Result, Store, hex};
use crate::entity::{api_key, user, user_group};
use crate::error::StoreError;
use crate::model::{ApiKey, User};

impl Store {
    /// Creates a user with their groups.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the name is taken.
    pub async fn create_user(&self, new: &User) -> Result<User> {
        let txn = self.begin_write().await?;
        if user::Entity::find_by_id(&new.name)
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(StoreError::exists("user", &new.name));
        }
        let now = Utc::now();
        user::ActiveModel {
            name: Set(new.name.clone()),
            email: Set(new.email.clone()),
            slack_id: Set(new.slack_id.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "user", &new.name))?;
        replace_groups(&txn, &new.name, &new.groups).await?;
        txn.commit().await?;
        self.get_user(&new.name).await
    }

    /// The user named `name`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    pub async fn get_user(&self, name: &str) -> Result<User> {
        let row = user::Entity::find_by_id(name)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::not_found("user", name))?;
        let mut groups = groups_of(&self.db, std::slice::from_ref(&row.name)).await?;
        Ok(user_from(row, &mut groups))
    }

    /// Users ordered by name, starting after `after`, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_users(&self, after: Option<&str>, limit: u64) -> Result<Vec<User>> {
        let mut query = user::Entity::find().order_by_asc(user::Column::Name);
        if let Some(after) = after {
            query = query.filter(user::Column::Name.gt(after));
        }
        let rows = query.limit(limit).all(&self.db).await?;
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let mut groups = groups_of(&self.db, &names).await?;
        Ok(rows
            .into_iter()
            .map(|r| user_from(r, &mut groups))
            .collect())
    }

    /// Changes a user's email and/or groups (`None` leaves a field as it is).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    pub async fn update_user(
        &self,
        name: &str,
        email: Option<&str>,
        groups: Option<&[String]>,
    ) -> Result<User> {
        let txn = self.begin_write().await?;
        let row = user::Entity::find_by_id(name)
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::not_found("user", name))?;
        let mut active: user::ActiveModel = row.into();
        if let Some(email) = email {
            active.email = Set(email.to_owned());
        }
        active.updated_at = Set(Utc::now());
        active.update(&txn).await?;
        if let Some(groups) = groups {
            replace_groups(&txn, name, groups).await?;
        }
        txn.commit().await?;
        self.get_user(name).await
    }

    /// Sets (or, with `None`, clears) a user's Slack member ID.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user; [`StoreError::AlreadyExists`] if
    /// another user has this Slack ID.
    pub async fn set_user_slack_id(&self, name: &str, slack_id: Option<&str>) -> Result<User> {
        let txn = self.begin_write().await?;
        let row = user::Entity::find_by_id(name)
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::not_found("user", name))?;
        if let Some(id) = slack_id {
            let taken = user::Entity::find()
                .filter(user::Column::SlackId.eq(id))
                .filter(user::Column::Name.ne(name))
                .one(&txn)
                .await?;
            if taken.is_some() {
                return Err(StoreError::exists("slack_id", id));
            }
        }
        let mut active: user::ActiveModel = row.into();
        active.slack_id = Set(slack_id.map(str::to_owned));
        active.updated_at = Set(Utc::now());
        active
            .update(&txn)
            .await
            .map_err(|e| StoreError::from_insert(e, "slack_id", slack_id.unwrap_or_default()))?;
        txn.commit().await?;
        self.get_user(name).await
    }

    /// The user whose Slack member ID is `slack_id`, if any.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn find_user_by_slack_id(&self, slack_id: &str) -> Result<Option<User>> {
        let Some(row) = user::Entity::find()
            .filter(user::Column::SlackId.eq(slack_id))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let mut groups = groups_of(&self.db, std::slice::from_ref(&row.name)).await?;
        Ok(Some(user_from(row, &mut groups)))
    }

    /// The one user whose e-mail is `email` (ignoring case); `None` when no user, or more
    /// than one, has it.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.trim();
        if email.is_empty() {
            return Ok(None);
        }
        let rows = user::Entity::find()
            .filter(
                sea_orm::sea_query::Expr::expr(sea_orm::sea_query::Func::lower(
                    sea_orm::sea_query::Expr::col(user::Column::Email),
                ))
                .eq(email.to_lowercase()),
            )
            .limit(2)
            .all(&self.db)
            .await?;
        let mut rows = rows;
        let (Some(row), None) = (rows.pop(), rows.pop()) else {
            return Ok(None);
        };
        let mut groups = groups_of(&self.db, std::slice::from_ref(&row.name)).await?;
        Ok(Some(user_from(row, &mut groups)))
    }

    /// Deletes a user, their group memberships and their API keys.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let txn = self.begin_write().await?;
        api_key::Entity::delete_many()
            .filter(api_key::Column::UserName.eq(name))
            .exec(&txn)
            .await?;
        user_group::Entity::delete_many()
            .filter(user_group::Column::UserName.eq(name))
            .exec(&txn)
            .await?;
        let deleted = user::Entity::delete_by_id(name).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::not_found("user", name));
        }
        txn.commit().await?;
        Ok(())
    }

    /// Makes sure `name` exists and belongs to `group` (for the built-in admin), keeping
    /// any other groups it has.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn ensure_user_in_group(&self, name: &str, group: &str) -> Result<User> {
        let now = Utc::now();
        user::Entity::insert(user::ActiveModel {
            name: Set(name.to_owned()),
            email: Set(String::new()),
            slack_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(user::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&self.db)
        .await?;
        user_group::Entity::insert(user_group::ActiveModel {
            user_name: Set(name.to_owned()),
            group_name: Set(group.to_owned()),
        })
        .on_conflict(
            OnConflict::columns([user_group::Column::UserName, user_group::Column::GroupName])
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&self.db)
        .await?;
        self.get_user(name).await
    }

    // === API keys ===

    /// Records a new API key for `user`, given the SHA-256 hash of its token (hex) and the
    /// token's first characters.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if the user does not exist.
    pub async fn create_api_key(
        &self,
        user_name: &str,
        description: &str,
        prefix: &str,
        token_hash: &str,
    ) -> Result<ApiKey> {
        let txn = self.begin_write().await?;
        if user::Entity::find_by_id(user_name)
            .one(&txn)
            .await?
            .is_none()
        {
            return Err(StoreError::not_found("user", user_name));
        }
        let mut id_bytes = [0u8; 8];
        OsRng.fill_bytes(&mut id_bytes);
        let id = format!("ak_{}", hex(&id_bytes));
        let row = api_key::ActiveModel {
            id: Set(id.clone()),
            user_name: Set(user_name.to_owned()),
            description: Set(description.to_owned()),
            prefix: Set(prefix.to_owned()),
            token_hash: Set(token_hash.to_owned()),
            created_at: Set(Utc::now()),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_insert(e, "api key", &id))?;
        txn.commit().await?;
        Ok(api_key_from(row))
    }

    /// The key with this token hash and its user, if the key exists (revoked or not).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn find_api_key(&self, token_hash: &str) -> Result<Option<(ApiKey, User)>> {
        let Some(row) = api_key::Entity::find()
            .filter(api_key::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let user = match self.get_user(&row.user_name).await {
            Ok(user) => user,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some((api_key_from(row), user)))
    }

    /// The key with this id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    pub async fn get_api_key(&self, id: &str) -> Result<ApiKey> {
        api_key::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(api_key_from)
            .ok_or_else(|| StoreError::not_found("api key", id))
    }

    /// A user's keys, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the database fails.
    pub async fn list_api_keys(&self, user_name: &str) -> Result<Vec<ApiKey>> {
        let rows = api_key::Entity::find()
            .filter(api_key::Column::UserName.eq(user_name))
            .order_by_asc(api_key::Column::CreatedAt)
            .order_by_asc(api_key::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(api_key_from).collect())
    }

    /// Revokes a key (revoking twice keeps the first time).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKey> {
        let row = api_key::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::not_found("api key", id))?;
        if row.revoked_at.is_some() {
            return Ok(api_key_from(row));
        }
        let mut active: api_key::ActiveModel = row.into();
        active.revoked_at = Set(Some(Utc::now()));
        Ok(api_key_from(active.update(&self.db).await?))
    }
}

async fn replace_groups(
    db: &impl ConnectionTrait,
    user_name: &str,
    groups: &[String],
) -> Result<()> {
    user_group::Entity::delete_many()
        .filter(user_group::Column::UserName.eq(user_name))
        .exec(db)
        .await?;
    let mut groups: Vec<&String> = groups.iter().collect();
    groups.sort();
    groups.dedup();
    if groups.is_empty() {
        return Ok(());
    }
    user_group::Entity::insert_many(groups.into_iter().map(|g| user_group::ActiveModel {
        user_name: Set(user_name.to_owned()),
        group_name: Set(g.clone()),
    }))
    .exec(db)
    .await?;
    Ok(())
}

async fn groups_of(
    db: &impl ConnectionTrait,
    names: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let rows = user_group::Entity::find()
        .filter(user_group::Column::UserName.is_in(names.iter().cloned()))
        .order_by_asc(user_group::Column::UserName)
        .order_by_asc(user_group::Column::GroupName)
        .all(db)
        .await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        out.entry(row.user_name).or_default().push(row.group_name);
    }
    Ok(out)
}

fn user_from(row: user::Model, groups: &mut BTreeMap<String, Vec<String>>) -> User {
    User {
        groups: groups.remove(&row.name).unwrap_or_default(),
        name: row.name,
        email: row.email,
        slack_id: row.slack_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn api_key_from(row: api_key::Model) -> ApiKey {
    ApiKey {
        id: row.id,
        user: row.user_name,
        description: row.description,
        prefix: row.prefix,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}
