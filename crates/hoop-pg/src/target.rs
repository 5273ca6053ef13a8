//! A `postgres` connection's settings: the database to reach (`env`: `HOST`, `PORT`,
//! `USER`, `PASS`, `DB`, `SSLMODE`, `SSLROOTCERT`) and its column rules (`mask_columns`).

use std::collections::BTreeMap;

/// The `env` keys a `postgres` connection takes.
pub const ENV_KEYS: &[&str] = &[
    "HOST",
    "PORT",
    "USER",
    "PASS",
    "DB",
    "SSLMODE",
    "SSLROOTCERT",
];
/// `SSLMODE` values, as libpq names them.
pub const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// Whether and how the gateway encrypts its connection to the database (TLS between the
/// gateway and the database, over the bytes the agent relays), with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain first; TLS (unverified) only if the database refuses the plain login.
    Allow,
    /// TLS (unverified) if the database offers it, plain otherwise. The default.
    Prefer,
    /// TLS or nothing; the certificate is not verified (unless `SSLROOTCERT` is set, then
    /// as `VerifyCa`, as libpq does when it has a root certificate).
    Require,
    /// TLS or nothing, with a certificate issued by a trusted root (`SSLROOTCERT`, or the
    /// webpki roots); the host name is not checked.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name `HOST`.
    VerifyFull,
}

impl SslMode {
    /// The mode as `SSLMODE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a session must not go on without TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub sslmode: SslMode,
    /// `SSLROOTCERT`: the PEM certificates trusted as roots (`require`, `verify-*`).
    pub root_cert: Option<String>,
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
            .field("root_cert", &self.root_cert.as_ref().map(|_| "<pem>"))
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
    /// 1-65535, an unknown `SSLMODE`, an `SSLROOTCERT` that holds no certificate or comes
    /// with a mode that does not verify, a host with spaces or control characters.
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
            "" | "prefer" => SslMode::Prefer,
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            m => {
                return Err(bad(
                    "env.SSLMODE",
                    format!("unknown mode `{m}`; one of {}", SSL_MODES.join(", ")),
                ));
            }
        };
        let root_cert = match get("SSLROOTCERT") {
            "" => None,
            _ if !sslmode.requires_tls() => {
                return Err(bad(
                    "env.SSLROOTCERT",
                    format!(
                        "only used with SSLMODE require, verify-ca or verify-full (SSLMODE is \
                         {sslmode}): set SSLMODE=verify-full to check the database's certificate"
                    ),
                ));
            }
            pem => {
                crate::tls::roots(pem).map_err(|m| bad("env.SSLROOTCERT", m))?;
                Some(pem.to_owned())
            }
        };
        if sslmode == SslMode::VerifyFull && rustls::pki_types::ServerName::try_from(host).is_err()
        {
            return Err(bad(
                "env.HOST",
                "with SSLMODE=verify-full, must be a DNS name or an IP address that the \
                 database's certificate names",
            ));
        }
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
            sslmode,
            root_cert,
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
            (ok.port, ok.database.as_str(), ok.sslmode),
            (5432, "app", SslMode::Prefer)
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
                vec![("HOST", "db"), ("USER", "a"), ("SSLMODE", "verify")],
                "env.SSLMODE",
            ),
            (
                vec![("HOST", "db"), ("USER", "a"), ("SSLROOTCERT", "x")],
                "env.SSLROOTCERT",
            ),
            (
                vec![
                    ("HOST", "db"),
                    ("USER", "a"),
                    ("SSLMODE", "verify-ca"),
                    ("SSLROOTCERT", "/etc/ssl/certs/ca.pem"),
                ],
                "env.SSLROOTCERT",
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
