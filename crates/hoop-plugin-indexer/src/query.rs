//! The query language: free words and `"phrases"`, plus qualifiers, each parsed here into a
//! typed clause ([`parse`]) and built into tantivy queries in code (term, range, phrase and
//! boolean queries), never handed to tantivy's query parser.
//!
//! | qualifier | meaning |
//! |---|---|
//! | `user:NAME`, `connection:NAME` | the session's user, connection |
//! | `verb:exec\|connect` | how it used the connection |
//! | `status:done\|denied\|killed\|interrupted` | how it ended |
//! | `in:input\|output` | free words only in what the user sent, or in what they saw (several: either) |
//! | `is:error` | it did not end `done` with exit code 0; `is:truncated`: only its beginning is indexed |
//! | `exit:N` | its exit code |
//! | `started:>2026-12-01`, `>=`, `<`, `<=`, `started:2026-12-01` (that day), `started:A..B` (either side may be `*`), `started:-24h` (within the last 24 hours) | start time: dates (`YYYY-MM-DD`, UTC days) or RFC 3339 times |
//! | `duration:>10s`, `>=`, `<`, `<=`, `A..B` | how long it ran |
//!
//! A leading `-` negates a word, a phrase or a qualifier (`-user:bob`). Words are matched
//! case-insensitively, split as the index splits text (`EMAIL_ADDRESS` is the phrase
//! `email address`). A word that looks like a qualifier but is not one (`http://…`) must be
//! quoted.

use std::ops::Bound;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::IndexerError;

/// A range of whole numbers (milliseconds for times and durations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The lower bound.
    pub lower: Bound<i64>,
    /// The upper bound.
    pub upper: Bound<i64>,
}

/// Which text field free words look in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// What the user sent (stdin).
    Input,
    /// What the target answered (stdout and stderr).
    Output,
}

/// One condition of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    /// A word, or a quoted phrase (as typed).
    Text(String),
    /// `user:`
    User(String),
    /// `connection:`
    Connection(String),
    /// `verb:`
    Verb(String),
    /// `status:`
    Status(String),
    /// `in:`: where free words look.
    In(TextField),
    /// `is:error`
    IsError,
    /// `is:truncated`
    IsTruncated,
    /// `exit:N`
    Exit(i64),
    /// `started:` in milliseconds since the Unix epoch.
    Started(Span),
    /// `duration:` in milliseconds.
    Duration(Span),
}

/// A condition, maybe negated (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Whether the condition must not hold.
    pub negated: bool,
    /// The condition.
    pub filter: Filter,
}

/// The qualifiers the language knows.
pub const QUALIFIERS: &[&str] = &[
    "user",
    "connection",
    "verb",
    "status",
    "in",
    "is",
    "exit",
    "started",
    "duration",
];

const VERBS: &[&str] = &["exec", "connect"];
const STATUSES: &[&str] = &["done", "denied", "killed", "interrupted", "open"];

/// Splits `text` into tokens: whitespace separates them except within double quotes.
fn tokens(text: &str) -> Result<Vec<String>, IndexerError> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(IndexerError::query(format!(
            "`{current}`: the quote is not closed; end the phrase with `\"`"
        )));
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn unquote(value: &str) -> String {
    value.replace('"', "")
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A point in time: a date is the span of that UTC day; a full time, that instant.
fn parse_time(token: &str, text: &str) -> Result<(i64, i64), IndexerError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = date
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
            .ok_or_else(|| bad_date(token, text))?;
        return Ok((start, start + 86_400_000));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        let t = time.with_timezone(&Utc).timestamp_millis();
        return Ok((t, t + 1));
    }
    Err(bad_date(token, text))
}

fn bad_date(token: &str, text: &str) -> IndexerError {
    IndexerError::query(format!(
        "`{token}`: `{text}` is not a date; write YYYY-MM-DD (a UTC day), an RFC 3339 time \
         such as 2026-12-01T09:30:00Z, or a span back from now such as -24h"
    ))
}

fn parse_duration(token: &str, text: &str) -> Result<i64, IndexerError> {
    humantime::parse_duration(text).map(ms).map_err(|_| {
        IndexerError::query(format!(
            "`{token}`: `{text}` is not a duration; write e.g. 10s, 5m or 1h30m"
        ))
    })
}

/// Turns one value into its half-open span `[start, end)`.
type Point<'a> = dyn Fn(&str) -> Result<(i64, i64), IndexerError> + 'a;

/// Parses a range value: `>X`, `>=X`, `<X`, `<=X`, `A..B` (`*` for an open side) or `X`.
/// `point` turns one value into its half-open span `[start, end)`.
fn parse_span(token: &str, value: &str, point: &Point<'_>) -> Result<Span, IndexerError> {
    let (lower, upper) = if let Some(v) = value.strip_prefix(">=") {
        (Bound::Included(point(v)?.0), Bound::Unbounded)
    } else if let Some(v) = value.strip_prefix('>') {
        (Bound::Included(point(v)?.1), Bound::Unbounded)
    } else if let Some(v) = value.strip_prefix("<=") {
        (Bound::Unbounded, Bound::Excluded(point(v)?.1))
    } else if let Some(v) = value.strip_prefix('<') {
        (Bound::Unbounded, Bound::Excluded(point(v)?.0))
    } else if let Some((a, b)) = value.split_once("..") {
        let lower = match a {
            "*" => Bound::Unbounded,
            a => Bound::Included(point(a)?.0),
        };
        let upper = match b {
            "*" => Bound::Unbounded,
            b => Bound::Excluded(point(b)?.1),
        };
        (lower, upper)
    } else {
        let (start, end) = point(value)?;
        (Bound::Included(start), Bound::Excluded(end))
    };
    if let (Bound::Included(l), Bound::Excluded(u)) = (lower, upper)
        && l >= u
    {
        return Err(IndexerError::query(format!(
            "`{token}`: the range is empty (its start is not before its end)"
        )));
    }
    Ok(Span { lower, upper })
}

fn one_of(token: &str, key: &str, value: &str, allowed: &[&str]) -> Result<String, IndexerError> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(IndexerError::query(format!(
            "`{token}`: unknown {key} `{value}`; use one of {}",
            allowed.join(", ")
        )))
    }
}

fn qualifier(token: &str, key: &str, value: &str, now: SystemTime) -> Result<Filter, IndexerError> {
    if value.is_empty() {
        return Err(IndexerError::query(format!(
            "`{token}`: `{key}:` needs a value, e.g. {key}:{}",
            match key {
                "user" => "alice",
                "connection" => "pg-prod",
                "verb" => "exec",
                "status" => "done",
                "in" => "output",
                "is" => "error",
                "exit" => "1",
                "started" => ">2026-12-01",
                _ => ">10s",
            }
        )));
    }
    Ok(match key {
        "user" => Filter::User(value.to_owned()),
        "connection" => Filter::Connection(value.to_owned()),
        "verb" => Filter::Verb(one_of(token, key, value, VERBS)?),
        "status" => Filter::Status(one_of(token, key, value, STATUSES)?),
        "in" => match value {
            "input" => Filter::In(TextField::Input),
            "output" => Filter::In(TextField::Output),
            _ => {
                return Err(IndexerError::query(format!(
                    "`{token}`: unknown field `{value}`; use in:input or in:output"
                )));
            }
        },
        "is" => match value {
            "error" => Filter::IsError,
            "truncated" => Filter::IsTruncated,
            _ => {
                return Err(IndexerError::query(format!(
                    "`{token}`: unknown state `{value}`; use is:error or is:truncated"
                )));
            }
        },
        "exit" => Filter::Exit(value.parse::<i32>().map(i64::from).map_err(|_| {
            IndexerError::query(format!(
                "`{token}`: `{value}` is not an exit code; write a whole number, e.g. exit:1"
            ))
        })?),
        "started" => {
            let now_ms = millis(now);
            if let Some(back) = value.strip_prefix('-') {
                let back = parse_duration(token, back)?;
                Filter::Started(Span {
                    lower: Bound::Included(now_ms.saturating_sub(back)),
                    upper: Bound::Unbounded,
                })
            } else {
                Filter::Started(parse_span(token, value, &|v| parse_time(token, v))?)
            }
        }
        "duration" => Filter::Duration(parse_span(token, value, &|v| {
            let d = parse_duration(token, v)?;
            Ok((d, d.saturating_add(1)))
        })?),
        _ => {
            return Err(IndexerError::query(format!(
                "`{token}`: unknown qualifier `{key}:`; use one of {} (quote the word to search \
                 for it as text)",
                QUALIFIERS
                    .iter()
                    .map(|q| format!("{q}:"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    })
}

/// Parses a query into its clauses, in order. `now` is what `started:-24h` counts back from.
///
/// # Errors
/// [`IndexerError::InvalidQuery`] naming the token at fault and saying what to write.
pub fn parse(text: &str, now: SystemTime) -> Result<Vec<Clause>, IndexerError> {
    let mut clauses = Vec::new();
    for token in tokens(text)? {
        let (negated, body) = match token.strip_prefix('-') {
            Some(rest) if !rest.is_empty() => (true, rest),
            Some(_) => continue,
            None => (false, token.as_str()),
        };
        let filter = if body.starts_with('"') {
            Filter::Text(unquote(body))
        } else {
            match body.split_once(':') {
                Some((key, value))
                    if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase()) =>
                {
                    let filter = qualifier(&token, key, &unquote(value), now)?;
                    if negated && matches!(filter, Filter::In(_)) {
                        return Err(IndexerError::query(format!(
                            "`{token}`: in: cannot be negated; name the field to search instead"
                        )));
                    }
                    filter
                }
                _ => Filter::Text(unquote(body)),
            }
        };
        if let Filter::Text(t) = &filter
            && t.trim().is_empty()
        {
            continue;
        }
        clauses.push(Clause { negated, filter });
    }
    Ok(clauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn one(q: &str) -> Clause {
        let mut c = parse(q, now()).unwrap();
        assert_eq!(c.len(), 1, "{q}: {c:?}");
        c.remove(0)
    }

    #[test]
    fn words_phrases_and_qualifiers() {
        let c = parse(r#"drop "table users" -user:bob in:output"#, now()).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].filter, Filter::Text("drop".into()));
        assert_eq!(c[1].filter, Filter::Text("table users".into()));
        assert_eq!(
            c[2],
            Clause {
                negated: true,
                filter: Filter::User("bob".into())
            }
        );
        assert_eq!(c[3].filter, Filter::In(TextField::Output));
        assert_eq!(one("exit:3").filter, Filter::Exit(3));
        assert_eq!(one("is:error").filter, Filter::IsError);
        assert_eq!(one("http//x").filter, Filter::Text("http//x".into()));
        assert_eq!(one("ERROR:").filter, Filter::Text("ERROR:".into()));
        assert!(parse("  - ", now()).unwrap().is_empty());
    }

    #[test]
    fn dates_and_durations_become_ranges() {
        let day = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        assert_eq!(
            one("started:>2026-12-01").filter,
            Filter::Started(Span {
                lower: Bound::Included(day + 86_400_000),
                upper: Bound::Unbounded
            })
        );
        assert_eq!(
            one("started:2026-12-01..2026-12-02").filter,
            Filter::Started(Span {
                lower: Bound::Included(day),
                upper: Bound::Excluded(day + 2 * 86_400_000)
            })
        );
        assert_eq!(
            one("started:-24h").filter,
            Filter::Started(Span {
                lower: Bound::Included(1_800_000_000_000 - 86_400_000),
                upper: Bound::Unbounded
            })
        );
        assert_eq!(
            one("duration:>10s").filter,
            Filter::Duration(Span {
                lower: Bound::Included(10_001),
                upper: Bound::Unbounded
            })
        );
        assert_eq!(
            one("duration:<=1m").filter,
            Filter::Duration(Span {
                lower: Bound::Unbounded,
                upper: Bound::Excluded(60_001)
            })
        );
    }

    #[test]
    fn bad_queries_name_the_token() {
        for (q, needle) in [
            ("started:>yesterday", "`started:>yesterday`"),
            ("started:2026-13-01", "2026-13-01"),
            ("duration:>forever", "`duration:>forever`"),
            ("exit:one", "`exit:one`"),
            ("verb:run", "unknown verb `run`"),
            ("status:ok", "unknown status `ok`"),
            ("in:args", "in:input or in:output"),
            ("is:happy", "is:error"),
            ("colour:red", "unknown qualifier `colour:`"),
            ("user:", "needs a value"),
            ("\"drop table", "quote is not closed"),
            ("-in:input", "cannot be negated"),
            ("started:2026-12-02..2026-12-01", "empty"),
        ] {
            let err = parse(q, now()).unwrap_err().to_string();
            assert!(err.starts_with("query: "), "{q}: {err}");
            assert!(err.contains(needle), "{q}: {err}");
        }
    }
}
