//! Custom info types from configuration: a regex, or a list of whole-word keywords.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use super::DlpError;
use super::detect::{Cand, Tail, is_word};
use super::types::builtin_kind;

/// A custom info type: `{name, regex}` or `{name, keywords, case_insensitive}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomType {
    /// UPPER_SNAKE_CASE name, distinct from the built-in types; also the redaction tag.
    pub name: String,
    /// Regex (Rust `regex` syntax, bytes mode, `(?m)` on) matched within one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Keywords, matched as whole words (a keyword edge that is a word character must not
    /// touch another word character).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Match keywords ignoring ASCII case.
    #[serde(default)]
    pub case_insensitive: bool,
}

impl CustomType {
    /// A regex type.
    pub fn regex(name: impl Into<String>, regex: impl Into<String>) -> Self {
        CustomType {
            name: name.into(),
            regex: Some(regex.into()),
            ..CustomType::default()
        }
    }

    /// A keyword type.
    pub fn keywords<I, S>(name: impl Into<String>, keywords: I, case_insensitive: bool) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CustomType {
            name: name.into(),
            keywords: keywords.into_iter().map(Into::into).collect(),
            case_insensitive,
            ..CustomType::default()
        }
    }
}

/// Check that `name` is UPPER_SNAKE_CASE: `[A-Z][A-Z0-9]*(_[A-Z0-9]+)*`.
fn upper_snake(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_uppercase()
        && !name.ends_with('_')
        && !name.contains("__")
        && b.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Compiled custom types.
#[derive(Debug, Default)]
pub(crate) struct CustomSet {
    regexes: Vec<(Regex, u16)>,
    keywords: Vec<(AhoCorasick, u16)>,
}

impl CustomSet {
    /// Compile `custom`; the first gets kind `first_kind`, the next `first_kind + 1`...
    pub(crate) fn build(custom: &[CustomType], first_kind: u16) -> Result<Self, DlpError> {
        let mut set = CustomSet::default();
        for (i, c) in custom.iter().enumerate() {
            let name = &c.name;
            let bad_name = |reason: &str| DlpError::InvalidCustomName {
                name: name.clone(),
                reason: reason.to_owned(),
            };
            if !upper_snake(name) {
                return Err(bad_name("names are UPPER_SNAKE_CASE, like EMPLOYEE_ID"));
            }
            if builtin_kind(name).is_some() {
                return Err(bad_name("it is the name of a built-in info type"));
            }
            if custom[..i].iter().any(|o| &o.name == name) {
                return Err(bad_name("it is defined twice"));
            }
            let bad = |reason: &str| DlpError::InvalidCustomType {
                name: name.clone(),
                reason: reason.to_owned(),
            };
            let kind = u16::try_from(i)
                .ok()
                .and_then(|i| first_kind.checked_add(i))
                .ok_or_else(|| bad("too many custom types"))?;
            match (&c.regex, c.keywords.is_empty()) {
                (Some(_), false) => return Err(bad("set either `regex` or `keywords`, not both")),
                (None, true) => return Err(bad("set `regex` or `keywords`")),
                (Some(re), true) => {
                    let regex = RegexBuilder::new(re)
                        .multi_line(true)
                        .size_limit(8 << 20)
                        .build()
                        .map_err(|e| DlpError::InvalidRegex {
                            name: name.clone(),
                            message: e.to_string(),
                        })?;
                    set.regexes.push((regex, kind));
                }
                (None, false) => {
                    if c.keywords
                        .iter()
                        .any(|k| k.is_empty() || k.contains(['\n', '\r']))
                    {
                        return Err(bad("keywords must be non-empty and on one line"));
                    }
                    let ac = AhoCorasickBuilder::new()
                        .match_kind(MatchKind::LeftmostLongest)
                        .ascii_case_insensitive(c.case_insensitive)
                        .build(&c.keywords)
                        .map_err(|e| bad(&format!("keywords: {e}")))?;
                    set.keywords.push((ac, kind));
                }
            }
        }
        Ok(set)
    }

    /// Append the custom candidates in `s` (whole lines) to `out`.
    pub(crate) fn detect(&self, s: &[u8], out: &mut Vec<Cand>) {
        for (ac, kind) in &self.keywords {
            for m in ac.find_iter(s) {
                let (a, e) = (m.start(), m.end());
                let first = s[a];
                let last = s[e - 1];
                let left_ok = !is_word(first) || a == 0 || !is_word(s[a - 1]);
                let right_ok = !is_word(last) || e == s.len() || !is_word(s[e]);
                if left_ok && right_ok {
                    out.push(Cand {
                        start: a,
                        end: e,
                        guard: a,
                        kind: *kind,
                        tail: Tail::Closed,
                    });
                }
            }
        }
        if self.regexes.is_empty() {
            return;
        }
        let mut ls = 0;
        while ls < s.len() {
            let le = memchr::memchr(b'\n', &s[ls..]).map_or(s.len(), |i| ls + i + 1);
            let line = &s[ls..le];
            for (re, kind) in &self.regexes {
                for m in re.find_iter(line) {
                    if m.start() < m.end() {
                        out.push(Cand {
                            start: ls + m.start(),
                            end: ls + m.end(),
                            guard: ls + m.start(),
                            kind: *kind,
                            tail: Tail::Closed,
                        });
                    }
                }
            }
            ls = le;
        }
    }
}
