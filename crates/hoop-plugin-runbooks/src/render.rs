//! Rendering a runbook's template: minijinja with undefined variables as errors, and values
//! escaped for the file's target by construction.
//!
//! A `.runbook.sql` file writes every `{{ value }}` as an SQL literal and a `.runbook.sh`
//! (or `.bash`) file as one shell word, unless the template passes it through a filter
//! itself: `sql_literal`, `sql_identifier`, `shell_quote`, or `raw` (no escaping at all, an
//! explicit opt-out). Files of any other extension escape nothing by themselves, so every
//! value they write must go through one of those filters: writing one bare is a render
//! error, never a silent injection. `safe` is refused in favour of `raw`.

use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

/// What a runbook file's text is run as, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `.runbook.sql`: values become SQL literals.
    Sql,
    /// `.runbook.sh` / `.runbook.bash`: values become shell words.
    Shell,
    /// Anything else: values must be escaped by an explicit filter.
    Other,
}

impl Target {
    /// The target of a runbook file named `path` (`….runbook.<ext>`).
    pub fn of(path: &str) -> Self {
        match path.rsplit('.').next() {
            Some("sql") => Target::Sql,
            Some("sh" | "bash") => Target::Shell,
            _ => Target::Other,
        }
    }

    fn auto_escape(self) -> AutoEscape {
        match self {
            Target::Sql => AutoEscape::Custom("sql"),
            Target::Shell => AutoEscape::Custom("sh"),
            Target::Other => AutoEscape::Custom("explicit"),
        }
    }
}

/// Why a value cannot be escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EscapeError(String);

/// `text` as a PostgreSQL string literal: `'…'` with `'` doubled, or `E'…'` with `\` and
/// `'` doubled when it holds a backslash, so it reads back as `text` whatever
/// `standard_conforming_strings` says. A NUL (which PostgreSQL text cannot hold) is refused.
///
/// # Errors
/// The text holds a NUL.
pub fn sql_literal(text: &str) -> Result<String, EscapeError> {
    if text.contains('\0') {
        return Err(EscapeError(
            "an SQL literal cannot hold a NUL character".to_owned(),
        ));
    }
    let mut out = String::with_capacity(text.len() + 3);
    if text.contains('\\') {
        out.push_str("E'");
        for c in text.chars() {
            match c {
                '\'' => out.push_str("''"),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
    } else {
        out.push('\'');
        for c in text.chars() {
            if c == '\'' {
                out.push_str("''");
            } else {
                out.push(c);
            }
        }
    }
    out.push('\'');
    Ok(out)
}

/// `name` as a quoted SQL identifier: `"…"` with `"` doubled. Empty names and NULs are
/// refused.
///
/// # Errors
/// The name is empty or holds a NUL.
pub fn sql_identifier(name: &str) -> Result<String, EscapeError> {
    if name.is_empty() {
        return Err(EscapeError("an SQL identifier cannot be empty".to_owned()));
    }
    if name.contains('\0') {
        return Err(EscapeError(
            "an SQL identifier cannot hold a NUL character".to_owned(),
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `text` as one POSIX shell word: single-quoted, each `'` written as `'\''`. Nothing inside
/// single quotes is special to the shell (`$`, backticks, `\`, newlines). NUL is refused (no
/// shell word can hold it).
///
/// # Errors
/// The text holds a NUL.
pub fn shell_quote(text: &str) -> Result<String, EscapeError> {
    if text.contains('\0') {
        return Err(EscapeError(
            "a shell word cannot hold a NUL character".to_owned(),
        ));
    }
    Ok(format!("'{}'", text.replace('\'', "'\\''")))
}

fn template_error(message: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message.into())
}

/// A value as SQL: numbers as numbers, booleans as `TRUE`/`FALSE`, none as `NULL`, text as a
/// literal.
fn sql_value(value: &Value) -> Result<String, minijinja::Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Undefined => Ok("NULL".to_owned()),
        ValueKind::Bool => Ok(if value.is_true() { "TRUE" } else { "FALSE" }.to_owned()),
        ValueKind::Number => {
            let text = value.to_string();
            // Integers and finite decimals only: what the number type reads is digits, a
            // sign, a point and an exponent.
            if text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            {
                Ok(text)
            } else {
                sql_literal(&text).map_err(|e| template_error(e.0))
            }
        }
        ValueKind::String => {
            sql_literal(value.as_str().unwrap_or_default()).map_err(|e| template_error(e.0))
        }
        other => Err(template_error(format!(
            "a {other} cannot be written as an SQL literal"
        ))),
    }
}

/// A value as a shell word: none as `''`, anything else as its text, quoted.
fn shell_value(value: &Value) -> Result<String, minijinja::Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Undefined => Ok("''".to_owned()),
        ValueKind::Bool | ValueKind::Number | ValueKind::String => {
            let text = match value.as_str() {
                Some(s) => s.to_owned(),
                None => value.to_string(),
            };
            shell_quote(&text).map_err(|e| template_error(e.0))
        }
        other => Err(template_error(format!(
            "a {other} cannot be written as a shell word"
        ))),
    }
}

fn filter_sql_literal(value: &Value) -> Result<Value, minijinja::Error> {
    sql_value(value).map(Value::from_safe_string)
}

fn filter_sql_identifier(value: &Value) -> Result<Value, minijinja::Error> {
    match value.as_str() {
        Some(name) if value.kind() == ValueKind::String => sql_identifier(name)
            .map(Value::from_safe_string)
            .map_err(|e| template_error(e.0)),
        _ => Err(template_error(format!(
            "sql_identifier takes text, not a {}",
            value.kind()
        ))),
    }
}

fn filter_shell_quote(value: &Value) -> Result<Value, minijinja::Error> {
    shell_value(value).map(Value::from_safe_string)
}

fn filter_raw(value: &Value) -> Value {
    match value.as_str() {
        Some(s) => Value::from_safe_string(s.to_owned()),
        None => Value::from_safe_string(value.to_string()),
    }
}

fn filter_safe(_value: &Value) -> Result<Value, minijinja::Error> {
    Err(template_error(
        "`safe` is not available in runbooks: write `| raw` to leave a value unescaped",
    ))
}

/// The template environment of a runbook file named `name`.
pub(crate) fn environment(name: &str) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // The script is the file as written: its last newline included.
    env.set_keep_trailing_newline(true);
    let target = Target::of(name);
    env.set_auto_escape_callback(move |_| target.auto_escape());
    env.set_formatter(|out, state, value| {
        if value.is_safe() {
            return write!(out, "{value}").map_err(|_| template_error("cannot write output"));
        }
        let escaped = match state.auto_escape() {
            AutoEscape::Custom("sql") => sql_value(value)?,
            AutoEscape::Custom("sh") => shell_value(value)?,
            _ => {
                return Err(template_error(
                    "this runbook's file type escapes nothing by itself: write the value \
                     through a filter (sql_literal, sql_identifier, shell_quote, or raw to \
                     leave it as it is)",
                ));
            }
        };
        out.write_str(&escaped)
            .map_err(|_| template_error("cannot write output"))
    });
    env.add_filter("sql_literal", filter_sql_literal);
    env.add_filter("sql_identifier", filter_sql_identifier);
    env.add_filter("shell_quote", filter_shell_quote);
    env.add_filter("raw", filter_raw);
    env.add_filter("safe", filter_safe);
    env
}

/// Checks that `source` compiles as the template of the runbook file `name`; the error
/// says what and where.
pub(crate) fn check(name: &str, source: &str) -> Result<Vec<String>, String> {
    let env = environment(name);
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| describe(&e))?;
    let mut names: Vec<String> = template.undeclared_variables(false).into_iter().collect();
    names.sort();
    Ok(names)
}

/// Renders `source` (the template of runbook file `name`) with `context`.
pub(crate) fn render(name: &str, source: &str, context: &Value) -> Result<String, String> {
    let env = environment(name);
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| describe(&e))?;
    template.render(context).map_err(|e| describe(&e))
}

/// A template error in one line, with its line number.
fn describe(err: &minijinja::Error) -> String {
    let mut text = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(line) = err.line() {
        let _ = write!(text, " (template line {line})");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, Value)]) -> Value {
        Value::from_iter(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())))
    }

    #[test]
    fn sql_files_escape_every_value_as_a_literal() {
        let c = ctx(&[
            ("id", Value::from("x' or '1'='1")),
            ("n", Value::from(42)),
            ("b", Value::from(true)),
            ("none", Value::from(())),
        ]);
        let out = render(
            "a.runbook.sql",
            "select {{ id }}, {{ n }}, {{ b }}, {{ none }};",
            &c,
        )
        .unwrap();
        assert_eq!(out, "select 'x'' or ''1''=''1', 42, TRUE, NULL;");
        let c = ctx(&[("p", Value::from(r"C:\dir"))]);
        let out = render("a.runbook.sql", "{{ p }}", &c).unwrap();
        assert_eq!(out, r"E'C:\\dir'");
    }

    #[test]
    fn shell_files_quote_every_value() {
        let c = ctx(&[("v", Value::from("$(id) `id` 'q'\nx"))]);
        let out = render("a.runbook.sh", "echo {{ v }}", &c).unwrap();
        assert_eq!(out, "echo '$(id) `id` '\\''q'\\''\nx'");
    }

    #[test]
    fn filters_and_raw_opt_out() {
        let c = ctx(&[("t", Value::from("my\"table")), ("v", Value::from("a'b"))]);
        let out = render(
            "a.runbook.sql",
            "select * from {{ t | sql_identifier }} where x = {{ v | sql_literal }} -- {{ v | raw }}",
            &c,
        )
        .unwrap();
        assert_eq!(out, "select * from \"my\"\"table\" where x = 'a''b' -- a'b");
        let out = render("a.runbook.sql", "{{ v | shell_quote }}", &c).unwrap();
        assert_eq!(out, "'a'\\''b'");
    }

    #[test]
    fn other_files_need_an_explicit_filter() {
        let c = ctx(&[("v", Value::from("x"))]);
        let err = render("a.runbook.py", "print({{ v }})", &c).unwrap_err();
        assert!(err.contains("through a filter"), "{err}");
        assert_eq!(
            render("a.runbook.py", "print({{ v | shell_quote }})", &c).unwrap(),
            "print('x')"
        );
        // Text outside `{{ }}` is the template's own and is left alone.
        assert_eq!(render("a.runbook.py", "a'b", &c).unwrap(), "a'b");
    }

    #[test]
    fn undefined_variables_and_safe_are_errors() {
        let c = ctx(&[]);
        let err = render("a.runbook.sql", "select 1;\nselect {{ missing }};", &c).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let c = ctx(&[("v", Value::from("x"))]);
        let err = render("a.runbook.sql", "{{ v | safe }}", &c).unwrap_err();
        assert!(err.contains("`| raw`"), "{err}");
        let err = check("a.runbook.sql", "{% if %}").unwrap_err();
        assert!(err.contains("syntax"), "{err}");
        assert_eq!(
            check("a.runbook.sql", "{{ b }}{{ a | raw }}").unwrap(),
            ["a", "b"]
        );
    }

    #[test]
    fn escapers_refuse_nul_and_empty_identifiers() {
        assert!(sql_literal("a\0b").is_err());
        assert!(sql_identifier("").is_err());
        assert!(shell_quote("\0").is_err());
    }
}
