//! Runbook files: a TOML front-matter block between two `+++` lines (`description`, one
//! `[params.<name>]` table per parameter), then the minijinja template.
//!
//! ```text
//! +++
//! description = "Refund an order"
//! [params.order_id]
//! type = "string"
//! required = true
//! pattern = "^[0-9]+$"
//! description = "The order to refund"
//! +++
//! update orders set refunded = true where id = {{ order_id }};
//! ```

use std::collections::BTreeMap;

use minijinja::value::Value;
use serde::Deserialize;

use crate::error::Error;
use crate::render::{self, Target};

/// Longest runbook file read.
pub const MAX_FILE_BYTES: usize = 256 * 1024;
/// Longest rendered script run (the session's input).
pub const MAX_SCRIPT_BYTES: usize = 1024 * 1024;
/// Longest parameter value accepted.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Longest `pattern` accepted (compiled with a size limit too).
const MAX_PATTERN_BYTES: usize = 1024;

/// Whether `path` names a runbook file: `<name>.runbook.<ext>`.
pub fn is_runbook_path(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    match file.rsplit_once(".runbook.") {
        Some((stem, ext)) => !stem.is_empty() && !ext.is_empty() && !ext.contains('.'),
        None => false,
    }
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Any text.
    String,
    /// A number (integer or decimal).
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of `options`.
    Select,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
}

impl ParamType {
    /// The type's name, as written in front-matter.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Select => "select",
            ParamType::Date => "date",
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// Its name (the template's variable).
    pub name: String,
    /// Its type.
    pub kind: ParamType,
    /// Whether a run must give it (one with a `default` never has to).
    pub required: bool,
    /// Its default, as text (as a run would give it).
    pub default: Option<String>,
    /// A regular expression the whole value must match (strings).
    pub pattern: Option<regex::Regex>,
    /// The allowed values (select).
    pub options: Vec<String>,
    /// Fewest characters (strings).
    pub min_length: Option<usize>,
    /// Most characters (strings).
    pub max_length: Option<usize>,
    /// What it is, in words.
    pub description: String,
}

/// A runbook file that parsed.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// What it does, in words.
    pub description: String,
    /// Its parameters, by name.
    pub params: Vec<Param>,
    /// The template (the file after the front-matter).
    pub template: String,
    /// What its text runs as.
    pub target: Target,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    #[serde(default)]
    description: String,
    #[serde(default)]
    params: BTreeMap<String, RawParam>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(rename = "type")]
    kind: ParamType,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    default: Option<toml::Value>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    options: Option<Vec<String>>,
    #[serde(default)]
    min_length: Option<usize>,
    #[serde(default)]
    max_length: Option<usize>,
    #[serde(default)]
    description: String,
}

fn valid_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

impl Runbook {
    /// Parses the runbook file `path` (its extension picks the escaping) from `text`.
    ///
    /// # Errors
    /// What is wrong and where, in one line: the front-matter (missing, bad TOML, a bad
    /// parameter), or the template (syntax, a variable no parameter declares).
    pub fn parse(path: &str, text: &str) -> Result<Self, String> {
        if text.len() > MAX_FILE_BYTES {
            return Err(format!("larger than {} KiB", MAX_FILE_BYTES / 1024));
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let Some(rest) = text
            .strip_prefix("+++\n")
            .or_else(|| text.strip_prefix("+++\r\n"))
        else {
            return Err(
                "front-matter: the file must start with a `+++` line, then TOML (description, \
                 [params.<name>] tables), then another `+++` line"
                    .to_owned(),
            );
        };
        let (front, template) =
            split_front_matter(rest).ok_or("front-matter: no closing `+++` line")?;
        let front: FrontMatter = toml::from_str(front)
            .map_err(|e| format!("front-matter: {}", one_line(&e.to_string())))?;
        let mut params = Vec::with_capacity(front.params.len());
        for (name, raw) in front.params {
            params.push(check_param(name, raw)?);
        }
        let used = render::check(path, template).map_err(|e| format!("template: {e}"))?;
        let undeclared: Vec<&String> = used
            .iter()
            .filter(|v| !params.iter().any(|p| &p.name == *v))
            .collect();
        if !undeclared.is_empty() {
            return Err(format!(
                "template: uses {} that no [params.<name>] table declares",
                undeclared
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Self {
            description: front.description,
            params,
            template: template.to_owned(),
            target: Target::of(path),
        })
    }

    /// Checks the values of a run and returns the template's context: every declared
    /// parameter (the value given, else its default, else none).
    ///
    /// # Errors
    /// [`Error::InvalidParams`] naming every bad parameter, e.g.
    /// `params.order_id: must match ^[0-9]+$`.
    pub fn context(&self, given: &BTreeMap<String, String>) -> Result<Value, Error> {
        let mut errors = Vec::new();
        for name in given.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                errors.push((
                    format!("params.{name}"),
                    if known.is_empty() {
                        "unknown parameter: this runbook takes none".to_owned()
                    } else {
                        format!("unknown parameter: this runbook takes {}", known.join(", "))
                    },
                ));
            }
        }
        let mut context = BTreeMap::new();
        for param in &self.params {
            let value = match given.get(&param.name).or(param.default.as_ref()) {
                Some(text) => match param.value(text) {
                    Ok(value) => value,
                    Err(message) => {
                        errors.push((format!("params.{}", param.name), message));
                        continue;
                    }
                },
                None if param.required => {
                    errors.push((
                        format!("params.{}", param.name),
                        format!("required ({})", param.describe_type()),
                    ));
                    continue;
                }
                None => Value::from(()),
            };
            context.insert(param.name.clone(), value);
        }
        if errors.is_empty() {
            Ok(Value::from_iter(context))
        } else {
            Err(Error::InvalidParams(errors))
        }
    }

    /// Checks `given` and renders the runbook file `path` with it.
    ///
    /// # Errors
    /// [`Error::InvalidParams`] for bad values; [`Error::FailedPrecondition`] when the
    /// template fails to render.
    pub fn render(&self, path: &str, given: &BTreeMap<String, String>) -> Result<String, Error> {
        let context = self.context(given)?;
        let script = render::render(path, &self.template, &context).map_err(|e| {
            Error::FailedPrecondition(format!("runbook `{path}` failed to render: {e}"))
        })?;
        if script.len() > MAX_SCRIPT_BYTES {
            return Err(Error::FailedPrecondition(format!(
                "runbook `{path}` renders to more than {} KiB",
                MAX_SCRIPT_BYTES / 1024
            )));
        }
        Ok(script)
    }
}

/// Splits the text after the opening `+++` line at the closing one.
fn split_front_matter(rest: &str) -> Option<(&str, &str)> {
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "+++" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_param(name: String, raw: RawParam) -> Result<Param, String> {
    let at = |message: &str| format!("front-matter: params.{name}: {message}");
    if !valid_param_name(&name) {
        return Err(at(
            "a parameter name is letters, digits and `_`, not starting with a digit",
        ));
    }
    let is_text = matches!(raw.kind, ParamType::String);
    if raw.pattern.is_some() && !is_text {
        return Err(at("`pattern` applies to string parameters only"));
    }
    if (raw.min_length.is_some() || raw.max_length.is_some()) && !is_text {
        return Err(at(
            "`min_length`/`max_length` apply to string parameters only",
        ));
    }
    if let (Some(min), Some(max)) = (raw.min_length, raw.max_length)
        && min > max
    {
        return Err(at("`min_length` is larger than `max_length`"));
    }
    let options = match (raw.kind, raw.options) {
        (ParamType::Select, Some(options)) if !options.is_empty() => options,
        (ParamType::Select, _) => {
            return Err(at("a select parameter needs `options` (a non-empty list)"));
        }
        (_, Some(_)) => return Err(at("`options` applies to select parameters only")),
        (_, None) => Vec::new(),
    };
    let pattern = match raw.pattern {
        Some(p) if p.len() > MAX_PATTERN_BYTES => return Err(at("`pattern` is too long")),
        Some(p) => Some(
            regex::RegexBuilder::new(&format!("^(?:{p})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    at(&format!(
                        "`pattern` is not a regular expression: {}",
                        one_line(&e.to_string())
                    ))
                })?,
        ),
        None => None,
    };
    let mut param = Param {
        name: name.clone(),
        kind: raw.kind,
        required: raw.required,
        default: None,
        pattern,
        options,
        min_length: raw.min_length,
        max_length: raw.max_length,
        description: raw.description,
    };
    if let Some(default) = raw.default {
        let text = match (&default, raw.kind) {
            (toml::Value::String(s), _) => s.clone(),
            (toml::Value::Integer(i), ParamType::Number) => i.to_string(),
            (toml::Value::Float(f), ParamType::Number) => f.to_string(),
            (toml::Value::Boolean(b), ParamType::Boolean) => b.to_string(),
            (toml::Value::Datetime(d), ParamType::Date) => d.to_string(),
            (other, kind) => {
                return Err(at(&format!(
                    "`default` is a {}, not a {}",
                    other.type_str(),
                    kind.as_str()
                )));
            }
        };
        param
            .value(&text)
            .map_err(|e| at(&format!("`default` {e}")))?;
        param.default = Some(text);
    }
    Ok(param)
}

impl Param {
    fn describe_type(&self) -> String {
        match self.kind {
            ParamType::Select => format!("one of {}", self.options.join(", ")),
            ParamType::Date => "a date, YYYY-MM-DD".to_owned(),
            ParamType::Boolean => "true or false".to_owned(),
            kind => format!("a {}", kind.as_str()),
        }
    }

    /// The template value of `text` given for this parameter, or the rule it breaks.
    pub fn value(&self, text: &str) -> Result<Value, String> {
        if text.len() > MAX_VALUE_BYTES {
            return Err(format!("at most {} KiB", MAX_VALUE_BYTES / 1024));
        }
        if text.contains('\0') {
            return Err("must not contain NUL".to_owned());
        }
        match self.kind {
            ParamType::String => {
                let chars = text.chars().count();
                if let Some(min) = self.min_length
                    && chars < min
                {
                    return Err(format!("at least {min} characters"));
                }
                if let Some(max) = self.max_length
                    && chars > max
                {
                    return Err(format!("at most {max} characters"));
                }
                if let Some(pattern) = &self.pattern
                    && !pattern.is_match(text)
                {
                    let shown = pattern.as_str();
                    let shown = shown
                        .strip_prefix("^(?:")
                        .and_then(|s| s.strip_suffix(")$"))
                        .unwrap_or(shown);
                    return Err(format!("must match {shown}"));
                }
                Ok(Value::from(text))
            }
            ParamType::Number => {
                if let Ok(i) = text.parse::<i64>() {
                    return Ok(Value::from(i));
                }
                match text.parse::<f64>() {
                    Ok(f) if f.is_finite() && !text.contains(['i', 'I', 'n', 'N']) => {
                        Ok(Value::from(f))
                    }
                    _ => Err("must be a number".to_owned()),
                }
            }
            ParamType::Boolean => match text {
                "true" => Ok(Value::from(true)),
                "false" => Ok(Value::from(false)),
                _ => Err("must be true or false".to_owned()),
            },
            ParamType::Select => {
                if self.options.iter().any(|o| o == text) {
                    Ok(Value::from(text))
                } else {
                    Err(format!("must be one of {}", self.options.join(", ")))
                }
            }
            ParamType::Date => match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(_) if text.len() == 10 => Ok(Value::from(text)),
                _ => Err("must be a date, YYYY-MM-DD".to_owned()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUND: &str = "+++\ndescription = \"Refund an order\"\n\n[params.order_id]\ntype = \"string\"\nrequired = true\npattern = \"^[0-9]+$\"\n\n[params.reason]\ntype = \"select\"\noptions = [\"damaged\", \"late\"]\ndefault = \"late\"\n\n[params.amount]\ntype = \"number\"\n\n[params.notify]\ntype = \"boolean\"\ndefault = false\n\n[params.day]\ntype = \"date\"\n+++\nupdate orders set refunded = {{ notify }} where id = {{ order_id }} and reason = {{ reason }}{% if amount %} and amount = {{ amount }}{% endif %};\n";

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_front_matter_and_renders() {
        let rb = Runbook::parse("refund.runbook.sql", REFUND).unwrap();
        assert_eq!(rb.description, "Refund an order");
        let names: Vec<&str> = rb.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["amount", "day", "notify", "order_id", "reason"]);
        let out = rb
            .render(
                "refund.runbook.sql",
                &given(&[("order_id", "42"), ("amount", "9.5")]),
            )
            .unwrap();
        assert_eq!(
            out,
            "update orders set refunded = FALSE where id = '42' and reason = 'late' and amount = 9.5;\n"
        );
    }

    #[test]
    fn bad_values_are_each_named() {
        let rb = Runbook::parse("refund.runbook.sql", REFUND).unwrap();
        let err = rb
            .render(
                "refund.runbook.sql",
                &given(&[
                    ("order_id", "1 or 1=1"),
                    ("reason", "whim"),
                    ("amount", "lots"),
                    ("notify", "yes"),
                    ("day", "2026-02-30"),
                    ("colour", "red"),
                ]),
            )
            .unwrap_err();
        let text = err.to_string();
        for expected in [
            "params.order_id: must match ^[0-9]+$",
            "params.reason: must be one of damaged, late",
            "params.amount: must be a number",
            "params.notify: must be true or false",
            "params.day: must be a date, YYYY-MM-DD",
            "params.colour: unknown parameter",
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
        let err = rb.render("refund.runbook.sql", &given(&[])).unwrap_err();
        assert!(
            err.to_string().contains("params.order_id: required"),
            "{err}"
        );
        let err = rb
            .context(&given(&[("amount", "NaN"), ("order_id", "1")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("params.amount: must be a number"),
            "{err}"
        );
    }

    #[test]
    fn string_lengths() {
        let rb = Runbook::parse(
            "a.runbook.sh",
            "+++\n[params.name]\ntype = \"string\"\nmin_length = 2\nmax_length = 3\n+++\necho {{ name }}\n",
        )
        .unwrap();
        assert!(
            rb.context(&given(&[("name", "a")]))
                .unwrap_err()
                .to_string()
                .contains("at least 2")
        );
        assert!(
            rb.context(&given(&[("name", "abcd")]))
                .unwrap_err()
                .to_string()
                .contains("at most 3")
        );
        assert!(
            rb.context(&given(&[("name", "äöü")])).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn broken_files_say_what_is_wrong() {
        let cases = [
            (
                "no front matter",
                "select 1;",
                "front-matter: the file must start",
            ),
            (
                "unclosed",
                "+++\ndescription = \"x\"\nselect 1;",
                "no closing `+++`",
            ),
            ("bad toml", "+++\ndescription = \n+++\n", "front-matter:"),
            ("unknown key", "+++\ncolour = 1\n+++\n", "colour"),
            (
                "bad type",
                "+++\n[params.a]\ntype = \"list\"\n+++\n",
                "front-matter:",
            ),
            (
                "select without options",
                "+++\n[params.a]\ntype = \"select\"\n+++\n{{ a }}",
                "needs `options`",
            ),
            (
                "bad pattern",
                "+++\n[params.a]\ntype = \"string\"\npattern = \"(\"\n+++\n{{ a }}",
                "not a regular expression",
            ),
            (
                "bad default",
                "+++\n[params.a]\ntype = \"number\"\ndefault = \"x\"\n+++\n{{ a }}",
                "`default` must be a number",
            ),
            ("syntax", "+++\n+++\n{% if %}", "template: syntax error"),
            (
                "undeclared",
                "+++\n+++\n{{ who }}",
                "`who` that no [params.<name>] table declares",
            ),
        ];
        for (what, text, expected) in cases {
            let err = Runbook::parse("a.runbook.sql", text).unwrap_err();
            assert!(err.contains(expected), "{what}: {err}");
        }
    }

    #[test]
    fn runbook_paths() {
        assert!(is_runbook_path("billing/refund.runbook.sql"));
        assert!(is_runbook_path("unlock.runbook.sh"));
        assert!(!is_runbook_path("README.md"));
        assert!(!is_runbook_path(".runbook.sql"));
        assert!(!is_runbook_path("a.runbook."));
    }
}
