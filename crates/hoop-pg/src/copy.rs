//! `COPY` statements (which table or query, which direction, which format) and the rows of
//! `COPY … TO STDOUT` in text and CSV formats, split into fields and joined back.

/// What a `COPY` statement copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A table (as written: `schema.table` or `table`) and the columns listed, if any.
    Table {
        /// The table's name as written (unquoted parts folded to lower case).
        name: Vec<String>,
        /// The column list, if given.
        columns: Vec<String>,
    },
    /// A query: `COPY (select …) TO STDOUT`.
    Query(String),
}

/// A `COPY` statement, as far as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStatement {
    /// The table or query.
    pub source: CopySource,
    /// `TO` (true) or `FROM`.
    pub to: bool,
    /// Format `csv`.
    pub csv: bool,
    /// Format `binary`.
    pub binary: bool,
    /// The delimiter (default tab, or comma for CSV).
    pub delimiter: u8,
    /// Every word after the direction was understood (format, delimiter, header, null), so
    /// [`split_row`] splits the rows as the server wrote them. False for options that change
    /// how rows are written in ways not followed here (`QUOTE`, `ESCAPE`, `ENCODING`, an
    /// `E'…'` delimiter) and for more statements after this one.
    pub exact: bool,
}

/// Parses `sql` if it is a `COPY` statement (leading comments and blanks allowed).
pub fn parse_copy(sql: &str) -> Option<CopyStatement> {
    let mut t = Tokens::new(sql);
    if !t.next()?.eq_ignore_ascii_case("copy") {
        return None;
    }
    let source = if t.peek_is("(") {
        let query = t.parenthesized()?;
        CopySource::Query(query)
    } else {
        let mut name = vec![t.ident()?];
        while t.peek_is(".") {
            t.next();
            name.push(t.ident()?);
        }
        let mut columns = Vec::new();
        if t.peek_is("(") {
            let list = t.parenthesized()?;
            let mut inner = Tokens::new(&list);
            while let Some(col) = inner.ident() {
                columns.push(col);
                if !inner.peek_is(",") {
                    break;
                }
                inner.next();
            }
        }
        CopySource::Table { name, columns }
    };
    let direction = t.next()?;
    let to = if direction.eq_ignore_ascii_case("to") {
        true
    } else if direction.eq_ignore_ascii_case("from") {
        false
    } else {
        return None;
    };
    let rest: Vec<String> = std::iter::from_fn(|| t.next()).collect();
    let lower: Vec<String> = rest.iter().map(|w| w.to_ascii_lowercase()).collect();
    let exact = options_understood(&lower);
    let csv = lower.iter().any(|w| w == "csv");
    let binary = lower.iter().any(|w| w == "binary");
    let delimiter = lower
        .iter()
        .position(|w| w == "delimiter")
        .and_then(|i| {
            rest.get(i + 1).or_else(|| {
                rest.get(i + 2)
                    .filter(|_| lower.get(i + 1).is_some_and(|w| w == "as"))
            })
        })
        .and_then(|d| {
            d.strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .map(str::to_owned)
        })
        .and_then(|d| d.bytes().next())
        .unwrap_or(if csv { b',' } else { b'\t' });
    Some(CopyStatement {
        source,
        to,
        csv,
        binary,
        delimiter,
        exact,
    })
}

/// Whether the words after `TO`/`FROM` (lower case) are only ones whose effect on the rows
/// [`parse_copy`] follows: a quoted string only as the value of `DELIMITER` or `NULL`, a
/// delimiter of one byte, and nothing after a `;`.
fn options_understood(words: &[String]) -> bool {
    const WORDS: &[&str] = &[
        "stdout",
        "stdin",
        "with",
        "(",
        ")",
        ",",
        "format",
        "text",
        "csv",
        "binary",
        "header",
        "true",
        "false",
        "on",
        "off",
        "0",
        "1",
        "delimiter",
        "null",
        "as",
    ];
    for (i, w) in words.iter().enumerate() {
        if w == ";" {
            return words[i + 1..].is_empty();
        }
        if w.starts_with('\'') {
            let after = match words.get(i.wrapping_sub(1)).map(String::as_str) {
                Some("as") => words.get(i.wrapping_sub(2)).map(String::as_str),
                other => other,
            };
            let value = w.strip_prefix('\'').and_then(|v| v.strip_suffix('\''));
            match (after, value) {
                (Some("delimiter"), Some(v)) if v.len() == 1 && v != "\"" => {}
                (Some("null"), Some(_)) => {}
                _ => return false,
            }
            continue;
        }
        if !WORDS.contains(&w.as_str()) {
            return false;
        }
    }
    true
}

struct Tokens<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        Self { s, pos: 0 }
    }

    fn skip(&mut self) {
        loop {
            let rest = &self.s[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("--") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if trimmed.starts_with("/*") {
                self.pos += trimmed.find("*/").map_or(trimmed.len(), |i| i + 2);
            } else {
                return;
            }
        }
    }

    fn peek_is(&mut self, p: &str) -> bool {
        self.skip();
        self.s[self.pos..].starts_with(p)
    }

    fn next(&mut self) -> Option<String> {
        self.skip();
        let rest = &self.s[self.pos..];
        let c = rest.chars().next()?;
        let len = if c == '"' || c == '\'' {
            let mut end = None;
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                if bytes[i] == c as u8 {
                    if bytes.get(i + 1) == Some(&(c as u8)) {
                        i += 2;
                        continue;
                    }
                    end = Some(i + 1);
                    break;
                }
                i += 1;
            }
            end.unwrap_or(rest.len())
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            rest.find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '$'))
                .unwrap_or(rest.len())
        } else {
            c.len_utf8()
        };
        self.pos += len;
        Some(rest[..len].to_owned())
    }

    fn ident(&mut self) -> Option<String> {
        let tok = self.next()?;
        if let Some(q) = tok.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            return Some(q.replace("\"\"", "\""));
        }
        tok.chars()
            .next()
            .filter(|c| c.is_alphabetic() || *c == '_')
            .map(|_| tok.to_lowercase())
    }

    /// The text between a `(` and its matching `)` (quotes respected).
    fn parenthesized(&mut self) -> Option<String> {
        self.skip();
        let rest = &self.s[self.pos..];
        let bytes = rest.as_bytes();
        if bytes.first() != Some(&b'(') {
            return None;
        }
        let mut depth = 0usize;
        let mut quote: Option<u8> = None;
        for (i, b) in bytes.iter().enumerate() {
            match quote {
                Some(q) if *b == q => quote = None,
                Some(_) => {}
                None => match b {
                    b'\'' | b'"' => quote = Some(*b),
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            self.pos += i + 1;
                            return Some(rest[1..i].to_owned());
                        }
                    }
                    _ => {}
                },
            }
        }
        None
    }
}

/// One field of a COPY row: where it is in the row's bytes, and whether it is NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    /// Start offset.
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
}

/// Splits one row of `COPY … TO STDOUT` (without its line end) into fields: on `delimiter`,
/// with CSV quoting when `csv`.
pub fn split_row(row: &[u8], delimiter: u8, csv: bool) -> Vec<FieldSpan> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    for (i, b) in row.iter().enumerate() {
        if csv && *b == b'"' {
            in_quotes = !in_quotes;
        } else if *b == delimiter && !in_quotes {
            spans.push(FieldSpan { start, end: i });
            start = i + 1;
        }
    }
    spans.push(FieldSpan {
        start,
        end: row.len(),
    });
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_statements() {
        let c = parse_copy("COPY public.Users (id, \"E mail\") TO STDOUT").unwrap();
        assert_eq!(
            c.source,
            CopySource::Table {
                name: vec!["public".into(), "users".into()],
                columns: vec!["id".into(), "E mail".into()]
            }
        );
        assert!(c.to && !c.csv && c.delimiter == b'\t');
        let c = parse_copy(
            "-- x\n copy (select email as e from t where a = ')') to stdout with (format csv)",
        )
        .unwrap();
        assert_eq!(
            c.source,
            CopySource::Query("select email as e from t where a = ')'".into())
        );
        assert!(c.csv && c.delimiter == b',');
        let c = parse_copy("copy t from stdin").unwrap();
        assert!(!c.to);
        assert!(parse_copy("select 1").is_none());
        let c = parse_copy("copy t to stdout (format binary)").unwrap();
        assert!(c.binary);
        let c = parse_copy("copy t to stdout delimiter '|'").unwrap();
        assert_eq!(c.delimiter, b'|');
        assert!(c.exact);
        for exact in [
            "copy t to stdout",
            "copy t to stdout with (format csv, header true, delimiter '|', null 'x');",
            "copy t to stdout csv header delimiter as ';' null as ''",
        ] {
            assert!(parse_copy(exact).unwrap().exact, "{exact}");
        }
        for inexact in [
            "copy t to stdout with (format csv, quote '|')",
            "copy t to stdout csv quote as '|'",
            "copy t to stdout with (format csv, escape '\\')",
            "copy t to stdout with (format csv, delimiter E'|')",
            "copy t to stdout with (encoding 'SJIS')",
            "copy t (a) to stdout; copy t (b) to stdout",
        ] {
            assert!(!parse_copy(inexact).unwrap().exact, "{inexact}");
        }
    }

    #[test]
    fn rows_split() {
        let spans = split_row(b"1\ta@b.c\t\\N", b'\t', false);
        assert_eq!(spans.len(), 3);
        assert_eq!(&b"1\ta@b.c\t\\N"[spans[1].start..spans[1].end], b"a@b.c");
        let row = b"1,\"x, y\",z";
        let spans = split_row(row, b',', true);
        assert_eq!(spans.len(), 3);
        assert_eq!(&row[spans[1].start..spans[1].end], b"\"x, y\"");
    }
}
