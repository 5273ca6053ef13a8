//! Phone-like labels: a key just before a value on the same line (`phone=`, `"tel": `,
//! `Mobile No: `), or the header of the text-table column a value is in.
//!
//! A bare run of 10 or 11 digits is only a phone number next to such a label. Tables
//! (psql, MySQL, Markdown: cells separated by `|`, a separator line of `-`/`+`/`|`/`=`
//! under the header) name their columns on an earlier line, so the header in effect is
//! carried from line to line: it is set by a separator line (to the line above it) and
//! cleared by any line that is neither a separator nor holds a `|`. A row is in a column
//! labelled by the header when it has as many `|` as the header. This is a function of
//! the lines alone, so detecting over any batching of the same lines gives the same
//! answer; the stream carries the state between batches ([`Carry`]).

use super::detect::line_start;

/// Whether a key or header cell names a phone number: one of its words (split at
/// non-letters and at lower-to-upper case changes, so `homePhone`, `phone_number`,
/// `MOBILE-NO` and `Tel.` all qualify) starts with `phone`, `mobile`, `cell`, `fax`,
/// `telephon`, `telefon` or `msisdn`, ends with `phone`, or is `tel`, `telno` or `telnr`.
pub(crate) fn is_phone_label(key: &[u8]) -> bool {
    let n = key.len();
    let mut i = 0;
    while i < n {
        if !key[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let st = i;
        i += 1;
        while i < n
            && key[i].is_ascii_alphabetic()
            && !(key[i].is_ascii_uppercase() && key[i - 1].is_ascii_lowercase())
        {
            i += 1;
        }
        if word_is_phone(&key[st..i]) {
            return true;
        }
    }
    false
}

fn word_is_phone(w: &[u8]) -> bool {
    let mut buf = [0u8; 24];
    let n = w.len().min(buf.len());
    for (d, s) in buf.iter_mut().zip(&w[..n]) {
        *d = s.to_ascii_lowercase();
    }
    let w = &buf[..n];
    const STARTS: [&[u8]; 7] = [
        b"phone",
        b"mobile",
        b"cell",
        b"fax",
        b"telephon",
        b"telefon",
        b"msisdn",
    ];
    STARTS.iter().any(|p| w.starts_with(p))
        || w.ends_with(b"phone")
        || matches!(w, b"tel" | b"telno" | b"telnr")
}

/// A phone-like key directly before the value at `a` on its line: up to 4 separator bytes
/// (`"`, `'`, `:`, `=`, `>`, space, tab), then a key of letters, digits, `_`, `-`, `.` and
/// spaces (at most 40 bytes) that [`is_phone_label`].
pub(crate) fn key_before(s: &[u8], a: usize) -> bool {
    let ls = line_start(s, a);
    let mut i = a;
    let mut seps = 0;
    while i > ls && seps < 4 && matches!(s[i - 1], b'"' | b'\'' | b':' | b'=' | b'>' | b' ' | b'\t')
    {
        i -= 1;
        seps += 1;
    }
    if seps == 0 {
        return false;
    }
    let ke = i;
    while i > ls
        && ke - i < 40
        && (s[i - 1].is_ascii_alphanumeric() || matches!(s[i - 1], b'_' | b'-' | b'.' | b' '))
    {
        i -= 1;
    }
    is_phone_label(&s[i..ke])
}

/// A table header: its number of `|` and the columns (by the number of `|` before them)
/// whose name is phone-like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Header {
    pipes: u32,
    phone_cols: u64,
}

/// Table state carried from one batch of lines to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Carry {
    /// The header in effect after the last line.
    in_effect: Option<Header>,
}

/// Header lookups over one batch of whole lines.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    carry: Carry,
    /// The line before the batch if it holds a `|` (it is the header if the batch starts
    /// with a separator line); read only then.
    prev_line: Vec<u8>,
    /// Line start of the last lookup and its answer.
    cache: Option<(usize, Option<Header>)>,
}

fn is_separator(line: &[u8]) -> bool {
    let mut dashes = 0;
    for &c in line {
        match c {
            b'-' | b'=' => dashes += 1,
            b'+' | b'|' | b':' | b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => return false,
        }
    }
    dashes >= 3
}

fn parse_header(line: &[u8]) -> Option<Header> {
    memchr::memchr(b'|', line)?;
    let mut h = Header::default();
    for (i, cell) in line.split(|&c| c == b'|').enumerate() {
        if i < 64 && is_phone_label(cell) {
            h.phone_cols |= 1 << i;
        }
    }
    h.pipes = memchr::memchr_iter(b'|', line).count() as u32;
    Some(h)
}

fn line_end(s: &[u8], i: usize) -> usize {
    memchr::memchr(b'\n', &s[i..]).map_or(s.len(), |p| i + p)
}

impl Tables {
    /// Lookups over a batch that follows the lines summed up by `carry`.
    /// `prev_line` is what [`Tables::finish`] returned for the previous batch.
    pub(crate) fn new(carry: Carry, prev_line: Vec<u8>) -> Self {
        Tables {
            carry,
            prev_line,
            cache: None,
        }
    }

    /// The header in effect for the line starting at `ls`.
    fn header_for(&mut self, s: &[u8], ls: usize) -> Option<Header> {
        if let Some((at, h)) = self.cache
            && at == ls
        {
            return h;
        }
        let mut cur = ls;
        let result = loop {
            if cur == 0 {
                break self.carry.in_effect;
            }
            if let Some((at, h)) = self.cache
                && at == cur
            {
                break h;
            }
            let ps = line_start(s, cur - 1);
            let line = &s[ps..cur];
            if is_separator(line) {
                break if ps == 0 {
                    parse_header(&self.prev_line)
                } else {
                    parse_header(&s[line_start(s, ps - 1)..ps])
                };
            }
            if memchr::memchr(b'|', line).is_none() {
                break None;
            }
            cur = ps;
        };
        self.cache = Some((ls, result));
        result
    }

    /// Whether the value at `a` is in a table column whose header is phone-like.
    pub(crate) fn phone_column(&mut self, s: &[u8], a: usize) -> bool {
        let ls = line_start(s, a);
        let Some(h) = self.header_for(s, ls) else {
            return false;
        };
        if h.phone_cols == 0 {
            return false;
        }
        let col = memchr::memchr_iter(b'|', &s[ls..a]).count();
        let pipes = col + memchr::memchr_iter(b'|', &s[a..line_end(s, a)]).count();
        pipes == h.pipes as usize && col < 64 && h.phone_cols & (1 << col) != 0
    }

    /// The state after the batch `s` (whole lines, or the stream's last bytes), and the
    /// buffer to hand to the next batch's [`Tables::new`].
    pub(crate) fn finish(mut self, s: &[u8]) -> (Carry, Vec<u8>) {
        if s.is_empty() {
            return (self.carry, self.prev_line);
        }
        let in_effect = self.header_for(s, s.len());
        let last = &s[line_start(s, s.len() - 1)..];
        let mut prev = self.prev_line;
        prev.clear();
        if memchr::memchr(b'|', last).is_some() && !is_separator(last) {
            prev.extend_from_slice(last);
        }
        (Carry { in_effect }, prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for k in [
            "phone",
            "Phone Number",
            "homePhone",
            "mobile_no",
            "CELL",
            "fax",
            "tel",
            "Tel.",
            "telephone",
            "Telefone",
            "cellphone",
            "MSISDN",
        ] {
            assert!(is_phone_label(k.as_bytes()), "{k}");
        }
        for k in [
            "hotel",
            "id",
            "cancelled",
            "order_id",
            "telemetry",
            "excel",
            "amount",
        ] {
            assert!(!is_phone_label(k.as_bytes()), "{k}");
        }
    }

    #[test]
    fn keys() {
        let yes = |s: &str| key_before(s.as_bytes(), s.len());
        assert!(yes("phone="));
        assert!(yes("{\"tel\": \""));
        assert!(yes("x Mobile No: "));
        assert!(yes("<phone>"));
        assert!(!yes("phone=none order="));
        assert!(!yes("\"phone\": \"x\", \"id\": "));
        assert!(!yes("phone"));
    }

    #[test]
    fn table_headers() {
        let t = b" id | name | phone\n----+------+-------\n  1 | Bob  | 52\n  2 | Al   | 53\n(2 rows)\n x | y | 54\n";
        let mut tb = Tables::default();
        let at = |needle: &[u8]| t.windows(2).position(|w| w == needle).unwrap();
        assert!(tb.phone_column(t, at(b"52")));
        assert!(tb.phone_column(t, at(b"53")));
        assert!(!tb.phone_column(t, at(b"54")), "after the table ended");
        assert!(!tb.phone_column(t, at(b"Bo")));
        // Split at any line: the carried state gives the same answers.
        let mut lines = vec![0];
        lines.extend(
            t.iter()
                .enumerate()
                .filter(|(_, c)| **c == b'\n')
                .map(|(i, _)| i + 1),
        );
        for &cut in &lines {
            let (x, y) = t.split_at(cut);
            let (carry, prev) = Tables::default().finish(x);
            let mut tb = Tables::new(carry, prev);
            for (needle, want) in [(&b"52"[..], true), (b"53", true), (b"54", false)] {
                if let Some(p) = y.windows(2).position(|w| w == needle) {
                    assert_eq!(tb.phone_column(y, p), want, "cut {cut}");
                }
            }
        }
    }
}
