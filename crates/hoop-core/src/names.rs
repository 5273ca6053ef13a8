//! Rules for the names of connections, users and groups, shared by the gateway and plugins.

use std::fmt;

/// A name broke its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    kind: &'static str,
    rule: &'static str,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} must match {}", self.kind, self.rule)
    }
}

impl std::error::Error for NameError {}

/// The rule for connection names, as a regular expression.
pub const CONNECTION_NAME_RULE: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";
/// The rule for user names, as a regular expression.
pub const USER_NAME_RULE: &str = "^[a-z0-9][a-z0-9._-]{0,62}$";
/// The rule for group names, as a regular expression.
pub const GROUP_NAME_RULE: &str = "^[a-z0-9][a-z0-9._-]{0,62}$";

fn check(
    name: &str,
    extra: &[u8],
    kind: &'static str,
    rule: &'static str,
) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let head_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let tail_ok = bytes
        .iter()
        .skip(1)
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(b));
    if head_ok && tail_ok && bytes.len() <= 63 {
        Ok(())
    } else {
        Err(NameError { kind, rule })
    }
}

/// Checks a connection name against [`CONNECTION_NAME_RULE`].
///
/// # Errors
/// A [`NameError`] stating the rule.
pub fn check_connection_name(name: &str) -> Result<(), NameError> {
    check(name, b"_-", "connection name", CONNECTION_NAME_RULE)
}

/// Checks a user name against [`USER_NAME_RULE`].
///
/// # Errors
/// A [`NameError`] stating the rule.
pub fn check_user_name(name: &str) -> Result<(), NameError> {
    check(name, b"._-", "user name", USER_NAME_RULE)
}

/// Checks a group name against [`GROUP_NAME_RULE`].
///
/// # Errors
/// A [`NameError`] stating the rule.
pub fn check_group_name(name: &str) -> Result<(), NameError> {
    check(name, b"._-", "group name", GROUP_NAME_RULE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_names() {
        for ok in ["a", "pg-prod", "db_1", "0x", &"a".repeat(63)] {
            assert!(check_connection_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "pg.prod",
            "pg prod",
            "é",
            &"a".repeat(64),
        ] {
            let err = check_connection_name(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                "connection name must match ^[a-z0-9][a-z0-9_-]{0,62}$"
            );
        }
    }

    #[test]
    fn group_and_user_names_allow_dots() {
        assert!(check_group_name("team.dba").is_ok());
        assert!(check_user_name("jane.doe").is_ok());
        assert!(check_group_name("Admins").is_err());
        assert!(check_user_name("jane@corp").is_err());
    }
}
