//! Helpers for tests that run against PostgreSQL: a scratch database per test.

use sea_orm::{ConnectionTrait, Database};

use crate::error::StoreError;

/// Environment variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "HOOP_TEST_POSTGRES_URL";

/// Creates a fresh, empty database on the server of `server_url` (a `postgres://` URL whose
/// user may create databases) and returns the URL of the new database.
///
/// # Errors
/// [`StoreError::Db`] if the server cannot be reached or refuses.
pub async fn scratch_postgres_database(
    server_url: &str,
    prefix: &str,
) -> Result<String, StoreError> {
    let admin = Database::connect(server_url).await?;
    // Tests of one process run in parallel and can read the same clock value: a counter
    // keeps their names apart.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}_{}_{}_{n}", std::process::id(), SystemNanos::now());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    admin.close().await?;
    Ok(with_database(server_url, &name))
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // The path starts at the first '/' after "scheme://authority".
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let root = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

struct SystemNanos;

impl SystemNanos {
    fn now() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        use super::with_database;
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1/test?sslmode=disable", "x"),
            "postgres://127.0.0.1/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1:5432", "x"),
            "postgres://127.0.0.1:5432/x"
        );
    }
}
