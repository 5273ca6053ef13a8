//! Errors of the store.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist.
    #[error("{kind} `{name}` not found")]
    NotFound {
        /// Kind of record (`user`, `connection`, …).
        kind: &'static str,
        /// Its name or id.
        name: String,
    },
    /// A record with that name already exists.
    #[error("{kind} `{name}` already exists")]
    AlreadyExists {
        /// Kind of record.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The record is not in a state that allows the change (e.g. deciding a review that is
    /// no longer pending, or executing a one-time review twice). The message says why and
    /// is meant for the user.
    #[error("{0}")]
    Conflict(String),
    /// A per-user limit (see [`Limits`](crate::Limits)) is reached: nothing was written. The
    /// message names the limit and its value, and is meant for the user.
    #[error("{message}")]
    LimitReached {
        /// The limit's name (`running_sessions_per_user`, `pending_reviews_per_user`).
        limit: &'static str,
        /// Its value.
        max: u32,
        /// What happened, in words.
        message: String,
    },
    /// The request is malformed (e.g. a just-in-time review without a duration).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The configured secret key is unusable.
    #[error("secret_key: {0}")]
    InvalidSecretKey(String),
    /// Encrypting or decrypting a secret failed.
    #[error("{0}")]
    Crypto(String),
    /// Stored data could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl StoreError {
    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub(crate) fn exists(kind: &'static str, name: impl Into<String>) -> Self {
        Self::AlreadyExists {
            kind,
            name: name.into(),
        }
    }

    /// Whether the failure is passing: no database connection was free within the pool's
    /// acquire timeout, or the database was busy or locked (SQLite), or a transaction was
    /// chosen to fail for another's sake (PostgreSQL serialization failure, deadlock). The
    /// change was not made; trying again later may work.
    pub fn is_transient(&self) -> bool {
        use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
        match self {
            Self::Db(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) => true,
            Self::Db(
                DbErr::Conn(RuntimeErr::SqlxError(err))
                | DbErr::Exec(RuntimeErr::SqlxError(err))
                | DbErr::Query(RuntimeErr::SqlxError(err)),
            ) => transient_sqlx(err),
            _ => false,
        }
    }

    /// Maps a unique-constraint violation to [`StoreError::AlreadyExists`].
    pub(crate) fn from_insert(err: sea_orm::DbErr, kind: &'static str, name: &str) -> Self {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Self::exists(kind, name),
            _ => Self::Db(err),
        }
    }
}

fn transient_sqlx(err: &sea_orm::sqlx::Error) -> bool {
    match err {
        sea_orm::sqlx::Error::PoolTimedOut => true,
        sea_orm::sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db
                .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                .is_some()
            {
                // SQLite (extended codes): SQLITE_BUSY (5) and SQLITE_LOCKED (6), with
                // their variants.
                code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
            } else {
                // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
                matches!(code.as_ref(), "40001" | "40P01" | "55P03")
            }
        }
        _ => false,
    }
}
