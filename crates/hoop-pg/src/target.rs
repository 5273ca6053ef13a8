//! A `postgres` connection's settings: the database to reach (`env`: `HOST`, `PORT`,
//! `USER`, `PASS`, `DB`, `SSLMODE`) and its column rules (`mask_columns`).

use std::collections::BTreeMap;

/// The `env` keys a `postgres` connection takes.
pub const ENV_KEYS: &[&str] = &["HOST", "PORT", "USER", "PASS", "DB", "SSLMODE"];
/// `SSLMODE` values this gateway honours: it does not encrypt the hop from the agent to
/// the database (yet), so only the modes that accept a plain connection.
pub const SSL_MODES: &[&str] = &["disable", "allow", "prefer"];

/// Where a `postgres` connection's sessions go, and as whom. `Debug` never shows the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Host name or address, as the agent resolves it.
    pub host: String,
    /// TCP port (default 5432).
    pub port: u16,
    /// Database user.
    pub user: String,
    /// The user's password (may be empty, e.g. with `trust`).
    pub password: String,
    /// Database name (default: the user's name, as libpq does).
    pub database: String,
    /// `SSLMODE` (default `prefer`).
    pub sslmode: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

/// A bad setting: the field it is about (`env.PORT`, `mask_columns[1]`) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingError {
    /// The field, relative to the connection.
    pub field: String,
    /// What is wrong, in words (never a secret value).
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> SettingError {
    SettingError {
        field: field.into(),
        message: message.into(),
    }
}

impl PgTarget {
    /// Reads and checks a connection's `env`.
    ///
    /// # Errors
    /// The first bad field: an unknown key, a missing `HOST` or `USER`, a `PORT` that is not
    /// 1-65535, an unsupported `SSLMODE`, a host with spaces or control characters.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, SettingError> {
        for key in env.keys() {
            if !ENV_KEYS.contains(&key.as_str()) {
                return Err(bad(
                    format!("env.{key}"),
                    format!(
                        "unknown key for a postgres connection; it takes {}",
                        ENV_KEYS.join(", ")
                    ),
                ));
            }
        }
        let get = |k: &str| env.get(k).map(String::as_str).unwrap_or_default();
        let host = get("HOST");
        if host.is_empty() {
            return Err(bad(
                "env.HOST",
                "required: the database's host name or address",
            ));
        }
        if host.len() > 253
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/@?#".contains(c))
        {
            return Err(bad(
                "env.HOST",
                "must be a host name or an IP address (no spaces, `/`, `@`, `?` or `#`)",
            ));
        }
        let port = match get("PORT") {
            "" => 5432,
            p => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("env.PORT", "must be a TCP port, 1 to 65535"))?,
        };
        let user = get("USER");
        if user.is_empty() {
            return Err(bad(
                "env.USER",
                "required: the database user sessions log in as",
            ));
        }
        let sslmode = match get("SSLMODE") {
            "" => "prefer",
            m if SSL_MODES.contains(&m) => m,
            m @ ("require" | "verify-ca" | "verify-full") => {
                return Err(bad(
                    "env.SSLMODE",
                    format!(
                        "`{m}` is not supported yet: the hop from the agent to the database is \
                         not encrypted; use one of {} (and keep the agent next to the database)",
                        SSL_MODES.join(", ")
                    ),
                ));
            }
            m => {
                return Err(bad(
                    "env.SSLMODE",
                    format!("unknown mode `{m}`; supported: {}", SSL_MODES.join(", ")),
                ));
            }
        };
        let database = match get("DB") {
            "" => user,
            db => db,
        };
        for (key, value) in [("USER", user), ("DB", database)] {
            if value.len() > 63 || value.chars().any(char::is_control) {
                return Err(bad(
                    format!("env.{key}"),
                    "must be at most 63 bytes with no control characters",
                ));
            }
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            password: get("PASS").to_owned(),
            database: database.to_owned(),
            sslmode: sslmode.to_owned(),
        })
    }
}

/// A column rule: `schema.table.column`, `table.column` (any schema) or `*.column` (any
/// table); `*` also stands for any schema or table in the three-part form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRule {
    /// Schema, `None` for any.
    pub schema: Option<String>,
    /// Table, `None` for any.
    pub table: Option<String>,
    /// Column name.
    pub column: String,
    /// The rule as written.
    pub text: String,
}

impl ColumnRule {
    /// Parses one rule. Names compare as PostgreSQL stores them: unquoted names are folded
    /// to lower case; `"Quoted"` parts are taken as written.
    ///
    /// # Errors
    /// The rule in words.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts = split_rule(text)?;
        let any = |p: &str| -> Option<String> { (p != "*").then(|| p.to_owned()) };
        let (schema, table, column) = match parts.as_slice() {
            [t, c] => (None, any(t), c.clone()),
            [s, t, c] => (any(s), any(t), c.clone()),
            _ => {
                return Err("must be schema.table.column, table.column or *.column".to_owned());
            }
        };
        if column == "*" {
            return Err("the column must be named (not `*`)".to_owned());
        }
        Ok(Self {
            schema,
            table,
            column,
            text: text.to_owned(),
        })
    }

    /// Whether the rule covers `schema.table.column`.
    pub fn matches(&self, schema: &str, table: &str, column: &str) -> bool {
        self.column == column
            && self.table.as_deref().is_none_or(|t| t == table)
            && self.schema.as_deref().is_none_or(|s| s == schema)
    }
}

fn split_rule(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err("unterminated quoted name".to_owned()),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == '.' {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_' || c == '$' || c == '*') {
                    return Err(format!(
                        "unexpected `{c}`: names are letters, digits, _ and $ (quote others with \")"
                    ));
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return Err("empty name".to_owned());
        }
        if part.len() > 63 {
            return Err("a name is longer than 63 bytes".to_owned());
        }
        if part.contains('*') && part != "*" {
            return Err("`*` stands alone for any schema or table".to_owned());
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => {}
            Some(c) => return Err(format!("unexpected `{c}` after a quoted name")),
        }
    }
}

/// Parses a connection's `mask_columns`.
///
/// # Errors
/// The first bad rule, naming `mask_columns[i]`.
pub fn parse_rules(rules: &[String]) -> Result<Vec<ColumnRule>, SettingError> {
    if rules.len() > 256 {
        return Err(bad("mask_columns", "at most 256 rules"));
    }
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            ColumnRule::parse(r)
                .map_err(|m| bad(format!("mask_columns[{i}]"), format!("`{r}` {m}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_is_checked_field_by_field() {
        let ok = PgTarget::from_env(&env(&[("HOST", "db"), ("USER", "app"), ("PASS", "s3cret")]))
            .unwrap();
        assert_eq!(
            (ok.port, ok.database.as_str(), ok.sslmode.as_str()),
            (5432, "app", "prefer")
        );
        assert!(!format!("{ok:?}").contains("s3cret"));
        for (pairs, field) in [
            (vec![("USER", "app")], "env.HOST"),
            (vec![("HOST", "db")], "env.USER"),
            (
                vec![("HOST", "db"), ("USER", "a"), ("PORT", "0")],
                "env.PORT",
            ),
            (
                vec![("HOST", "db"), ("USER", "a"), ("PORT", "x")],
                "env.PORT",
            ),
            (
                vec![("HOST", "db"), ("USER", "a"), ("SSLMODE", "verify-full")],
                "env.SSLMODE",
            ),
            (
                vec![("HOST", "db"), ("USER", "a"), ("PASSWORD", "x")],
                "env.PASSWORD",
            ),
            (vec![("HOST", "a b"), ("USER", "a")], "env.HOST"),
        ] {
            assert_eq!(PgTarget::from_env(&env(&pairs)).unwrap_err().field, field);
        }
    }

    #[test]
    fn rules_parse_and_match() {
        let r = ColumnRule::parse("public.Users.email").unwrap();
        assert!(r.matches("public", "users", "email"));
        assert!(!r.matches("other", "users", "email"));
        let r = ColumnRule::parse("*.ssn").unwrap();
        assert!(r.matches("x", "y", "ssn"));
        let r = ColumnRule::parse("users.ssn").unwrap();
        assert!(r.matches("x", "users", "ssn") && !r.matches("x", "y", "ssn"));
        let r = ColumnRule::parse(r#"s."My Table"."E""#).unwrap();
        assert!(r.matches("s", "My Table", "E"));
        for bad in ["email", "a.b.c.d", "*.*", "a..b", "a.b;drop", "a*.b"] {
            assert!(ColumnRule::parse(bad).is_err(), "{bad}");
        }
        let err = parse_rules(&["*.ssn".into(), "x".into()]).unwrap_err();
        assert_eq!(err.field, "mask_columns[1]");
    }
}
