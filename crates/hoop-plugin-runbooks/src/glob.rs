//! Globs over runbook paths, for the per-connection `paths` filter.
//!
//! `*` matches any characters within one path segment, `**` (as a whole segment) any
//! number of segments, `?` one character within a segment; everything else matches itself.
//! `billing/*.runbook.sql` matches `billing/refund.runbook.sql` but not
//! `billing/old/refund.runbook.sql`; `billing/**` matches both.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more segments.
    Any,
    /// A segment pattern with `*` and `?`.
    Pattern(Vec<char>),
}

impl Glob {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// The rule it breaks: empty, an absolute path, an empty segment, or `**` inside a
    /// segment.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if pattern.starts_with('/') {
            return Err("must be relative to the repository's runbook directory".to_owned());
        }
        let mut segments = Vec::new();
        for part in pattern.split('/') {
            if part.is_empty() {
                return Err("must not have empty segments (`//` or a trailing `/`)".to_owned());
            }
            if part == "**" {
                segments.push(Segment::Any);
            } else if part.contains("**") {
                return Err(format!(
                    "`**` must be a whole segment (as in `a/**/b`), not part of `{part}`"
                ));
            } else {
                segments.push(Segment::Pattern(part.chars().collect()));
            }
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            segments,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `path` (`/`-separated, relative) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<Vec<char>> = path.split('/').map(|p| p.chars().collect()).collect();
        match_segments(&self.segments, &parts)
    }
}

fn match_segments(globs: &[Segment], parts: &[Vec<char>]) -> bool {
    match globs.split_first() {
        None => parts.is_empty(),
        Some((Segment::Any, rest)) => {
            (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..]))
        }
        Some((Segment::Pattern(p), rest)) => match parts.split_first() {
            Some((part, more)) => match_segment(p, part) && match_segments(rest, more),
            None => false,
        },
    }
}

fn match_segment(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| match_segment(rest, &text[skip..])),
        Some(('?', rest)) => !text.is_empty() && match_segment(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && match_segment(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_within_and_across_segments() {
        let g = Glob::new("billing/*.runbook.sql").unwrap();
        assert!(g.matches("billing/refund.runbook.sql"));
        assert!(!g.matches("billing/old/refund.runbook.sql"));
        assert!(!g.matches("refund.runbook.sql"));
        let g = Glob::new("billing/**").unwrap();
        assert!(g.matches("billing/refund.runbook.sql"));
        assert!(g.matches("billing/old/refund.runbook.sql"));
        assert!(!g.matches("users/unlock.runbook.sh"));
        let g = Glob::new("**/*.runbook.sh").unwrap();
        assert!(g.matches("unlock.runbook.sh"));
        assert!(g.matches("a/b/unlock.runbook.sh"));
        assert!(!g.matches("a/b/unlock.runbook.sql"));
        assert!(Glob::new("a?c").unwrap().matches("abc"));
        assert!(!Glob::new("a?c").unwrap().matches("a/c"));
    }

    #[test]
    fn bad_globs_say_why() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new("/abs").is_err());
        assert!(Glob::new("a//b").is_err());
        assert!(Glob::new("a/**b").is_err());
    }
}
