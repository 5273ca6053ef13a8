//! IP addresses: dotted-quad IPv4 and IPv6 (full, compressed, with an embedded IPv4).

use super::detect::{at, before, is_word};
use super::numeric::{digits, right_ok};

/// Result of looking for an IPv6 address around a token.
pub(crate) enum V6 {
    /// An address at `start..end`.
    Found(usize, usize),
    /// None; the hex/colon region examined ends here (no need to look again before it).
    No(usize),
}

#[inline]
fn is_v6_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':'
}

/// IPv6 address around the hex/digit token `s[a..b]`.
pub(crate) fn ipv6(s: &[u8], a: usize, b: usize) -> V6 {
    let mut l = a;
    while l > 0 && is_v6_byte(s[l - 1]) && a - l < 45 {
        l -= 1;
    }
    let mut r = b;
    while r < s.len() && (is_v6_byte(s[r]) || s[r] == b'.') && r - l < 45 {
        r += 1;
    }
    let region_end = r;
    while r > b && matches!(s[r - 1], b'.') {
        r -= 1;
    }
    if r > l + 1 && s[r - 1] == b':' && s[r - 2] != b':' {
        r -= 1;
    }
    if l + 1 < r && s[l] == b':' && s[l + 1] != b':' {
        l += 1;
    }
    let left = before(s, l);
    if is_word(left) || left == b'.' || is_word(at(s, r)) || at(s, r) == b':' {
        return V6::No(region_end);
    }
    if valid_v6(&s[l..r]) {
        V6::Found(l, r)
    } else {
        V6::No(region_end)
    }
}

fn valid_v6(t: &[u8]) -> bool {
    if t.len() < 3 || !t.iter().all(|&b| is_v6_byte(b) || b == b'.') {
        return false;
    }
    let colons = t.iter().filter(|&&b| b == b':').count();
    if !(2..=8).contains(&colons) || colons < 7 && memchr::memmem::find(t, b"::").is_none() {
        return false;
    }
    let dbl = memchr::memmem::find(t, b"::");
    let (head, tail) = match dbl {
        Some(p) => {
            if memchr::memmem::find(&t[p + 1..], b"::").is_some() {
                return false;
            }
            (&t[..p], &t[p + 2..])
        }
        None => (t, &t[..0]),
    };
    let mut groups = 0;
    for (pi, part) in [head, tail].iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        let last_part = pi == 1 || dbl.is_none() || tail.is_empty();
        let nfields = part.iter().filter(|&&b| b == b':').count() + 1;
        for (fi, f) in part.split(|&b| b == b':').enumerate() {
            let last = last_part && fi + 1 == nfields;
            if last && f.contains(&b'.') {
                if ipv4(f, 0) != Some(f.len()) {
                    return false;
                }
                groups += 2;
            } else if (1..=4).contains(&f.len()) && f.iter().all(u8::is_ascii_hexdigit) {
                groups += 1;
            } else {
                return false;
            }
        }
    }
    if dbl.is_some() {
        (1..=7).contains(&groups)
    } else {
        groups == 8
    }
}

/// Dotted-quad IPv4 starting at the digit at `a`; returns its end.
#[inline]
pub(crate) fn ipv4(s: &[u8], a: usize) -> Option<usize> {
    let mut pos = a;
    for k in 0..4 {
        let e = digits(s, pos);
        let len = e - pos;
        if !(1..=3).contains(&len) {
            return None;
        }
        let v = s[pos..e]
            .iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'));
        if v > 255 {
            return None;
        }
        if k < 3 {
            if at(s, e) != b'.' {
                return None;
            }
            pos = e + 1;
        } else {
            pos = e;
        }
    }
    right_ok(s, pos).then_some(pos)
}
