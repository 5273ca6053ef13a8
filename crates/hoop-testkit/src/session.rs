//! [`SessionBuilder`]: a [`SessionInfo`] in one line, with defaults for what a test does not
//! care about.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hoop_core::{ConnectionInfo, SessionInfo, SessionRequest, UserInfo, Verb};

/// Builds the [`SessionInfo`] of a test session.
///
/// The defaults: session id `s-1`, user `alice` (no e-mail, no groups), connection `db` of
/// type `command` (no tags), verb [`Verb::Exec`], no arguments, no up-front input, no
/// ticket, no access duration.
///
/// ```
/// use hoop_core::Verb;
/// use hoop_testkit::SessionBuilder;
///
/// let info = SessionBuilder::new()
///     .user("bob")
///     .groups(["dba"])
///     .connection("pg-prod", "postgres")
///     .verb(Verb::Exec)
///     .args(["-c", "select 1"])
///     .input("select 1;\n")
///     .build();
/// assert_eq!(info.user.name, "bob");
/// assert!(info.user.in_group("dba"));
/// assert_eq!(info.connection.kind, "postgres");
/// assert_eq!(info.request.input.as_deref(), Some(&b"select 1;\n"[..]));
/// ```
#[derive(Debug, Clone)]
pub struct SessionBuilder {
    id: String,
    user: UserInfo,
    connection: ConnectionInfo,
    verb: Verb,
    request: SessionRequest,
}

impl Default for SessionBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionBuilder {
    /// A session with the defaults listed on [`SessionBuilder`].
    pub fn new() -> Self {
        Self {
            id: "s-1".to_owned(),
            user: UserInfo::new("alice"),
            connection: ConnectionInfo::new("db", "command"),
            verb: Verb::Exec,
            request: SessionRequest::new(),
        }
    }

    /// Sets the session id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The session id it will have.
    pub fn session_id(&self) -> &str {
        &self.id
    }

    /// Sets the user's name (keeping the e-mail and groups set so far).
    #[must_use]
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user.name = name.into();
        self
    }

    /// Sets the user's e-mail address.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.user.email = email.into();
        self
    }

    /// Sets the user's groups.
    #[must_use]
    pub fn groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.user.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the whole user.
    #[must_use]
    pub fn user_info(mut self, user: UserInfo) -> Self {
        self.user = user;
        self
    }

    /// Sets the connection's name and type (keeping the tags set so far).
    #[must_use]
    pub fn connection(mut self, name: impl Into<String>, kind: impl Into<String>) -> Self {
        self.connection.name = name.into();
        self.connection.kind = kind.into();
        self
    }

    /// Sets the connection's tags.
    #[must_use]
    pub fn tags<I, K, V>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.connection.tags = tags
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<BTreeMap<_, _>>();
        self
    }

    /// Replaces the whole connection.
    #[must_use]
    pub fn connection_info(mut self, connection: ConnectionInfo) -> Self {
        self.connection = connection;
        self
    }

    /// Sets the verb.
    #[must_use]
    pub fn verb(mut self, verb: Verb) -> Self {
        self.verb = verb;
        self
    }

    /// Sets the arguments appended to the connection's command.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the input known up front (the whole input of an `exec`).
    #[must_use]
    pub fn input(mut self, input: impl Into<Bytes>) -> Self {
        self.request.input = Some(input.into());
        self
    }

    /// Sets the approval the client presents (e.g. an approved review's id).
    #[must_use]
    pub fn ticket(mut self, ticket: impl Into<String>) -> Self {
        self.request.ticket = Some(ticket.into());
        self
    }

    /// Sets how long the access asked for should last.
    #[must_use]
    pub fn access_duration(mut self, duration: Duration) -> Self {
        self.request.access_duration = Some(duration);
        self
    }

    /// The session info, starting now.
    pub fn build(&self) -> SessionInfo {
        SessionInfo::new(
            self.id.as_str(),
            self.user.clone(),
            self.connection.clone(),
            self.verb,
        )
        .with_request(self.request.clone())
    }
}

impl From<SessionBuilder> for SessionInfo {
    fn from(builder: SessionBuilder) -> Self {
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_setters() {
        let info = SessionBuilder::new().build();
        assert_eq!(info.id.as_str(), "s-1");
        assert_eq!(info.user, UserInfo::new("alice"));
        assert_eq!(info.connection, ConnectionInfo::new("db", "command"));
        assert_eq!(info.verb, Verb::Exec);
        assert_eq!(info.request, SessionRequest::new());

        let info: SessionInfo = SessionBuilder::new()
            .id("s-9")
            .groups(["dba"])
            .user("bob")
            .email("bob@example.com")
            .tags([("env", "prod")])
            .connection("pg", "postgres")
            .verb(Verb::Connect)
            .ticket("r-1")
            .access_duration(Duration::from_secs(60))
            .into();
        assert_eq!(info.id.as_str(), "s-9");
        assert_eq!(info.user.name, "bob");
        assert_eq!(info.user.email, "bob@example.com");
        assert_eq!(info.user.groups, ["dba"]);
        assert_eq!(info.connection.name, "pg");
        assert_eq!(info.connection.tags["env"], "prod");
        assert_eq!(info.verb, Verb::Connect);
        assert_eq!(info.request.ticket.as_deref(), Some("r-1"));
        assert_eq!(info.request.access_duration, Some(Duration::from_secs(60)));
    }
}
