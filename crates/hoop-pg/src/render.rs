//! Results as `psql` prints them (aligned format): a header, a separator line, the rows,
//! and `(N rows)`.

/// Type oids psql right-aligns (numbers).
const NUMERIC_TYPES: &[u32] = &[20, 21, 23, 26, 700, 701, 790, 1700];

/// Whether values of type `oid` are right-aligned.
pub fn is_numeric(oid: u32) -> bool {
    NUMERIC_TYPES.contains(&oid)
}

/// Renders a result: column names, whether each is numeric, rows of text values (`None`
/// prints empty, as psql prints NULL by default).
pub fn table(columns: &[(String, bool)], rows: &[Vec<Option<String>>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = columns.iter().map(|(n, _)| width(n)).collect();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if let (Some(w), Some(v)) = (widths.get_mut(i), v) {
                let longest = v.lines().map(width).max().unwrap_or(0);
                *w = (*w).max(longest);
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = columns
        .iter()
        .zip(&widths)
        .map(|((name, _), w)| {
            let pad = w - width(name);
            let left = pad / 2;
            format!("{}{}{}", " ".repeat(left), name, " ".repeat(pad - left))
        })
        .collect();
    out.push(' ');
    out.push_str(header.join(" | ").trim_end());
    out.push('\n');
    let sep: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(&sep.join("+"));
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, ((_, numeric), w))| {
                let v = row
                    .get(i)
                    .and_then(|v| v.as_deref())
                    .unwrap_or("")
                    .replace('\n', "\\n");
                let pad = w.saturating_sub(width(&v));
                if *numeric {
                    format!("{}{}", " ".repeat(pad), v)
                } else {
                    format!("{}{}", v, " ".repeat(pad))
                }
            })
            .collect();
        out.push(' ');
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
    }
    out.push_str(&row_count(rows.len()));
    out.push_str("\n\n");
    out
}

/// `(1 row)`, `(3 rows)`.
pub fn row_count(n: usize) -> String {
    if n == 1 {
        "(1 row)".to_owned()
    } else {
        format!("({n} rows)")
    }
}

/// An error or notice as psql prints it: `ERROR:  message`, then `DETAIL:  …` and
/// `HINT:  …` lines.
pub fn error(fields: &crate::message::Fields) -> String {
    let get = |c| crate::message::field(fields, c);
    let mut out = format!(
        "{}:  {}\n",
        get(b'S').unwrap_or("ERROR"),
        get(b'M').unwrap_or("")
    );
    for (code, label) in [(b'D', "DETAIL"), (b'H', "HINT")] {
        if let Some(v) = get(code) {
            out.push_str(&format!("{label}:  {v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_look_like_psql() {
        let out = table(
            &[("id".into(), true), ("email".into(), false)],
            &[
                vec![Some("1".into()), Some("a@b.c".into())],
                vec![Some("10".into()), None],
            ],
        );
        assert_eq!(
            out,
            " id | email\n----+-------\n  1 | a@b.c\n 10 |\n(2 rows)\n\n"
        );
    }
}
