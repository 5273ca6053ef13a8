//! The digit scanner: finds every run of ASCII digits and checks, from the run's shape
//! and its neighbours, the number-based types (cards, phones, SSN, IP, IMEI, CPF,
//! passport, IBAN, VIN, card tracks). Most runs in ordinary text (dates, times, counts,
//! versions, hex ids) are rejected after a couple of byte comparisons.

use super::checksum::{
    all_same, card_ok, cpf_ok, iban_len, iban_mod97, imei_ok, jcb15, luhn, ssn_ok, vin_ok,
};
use super::detect::{Sink, Tail, at, before, is_word, line_start, rfind_ci};
use super::ip::{V6, ipv4, ipv6};
use super::label::key_before;
use super::plan;
use super::types::B;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` (8 input bytes) that is not an ASCII digit. Exact per
/// byte: no carry crosses bytes.
#[inline]
fn non_digits(w: u64) -> u64 {
    let x = w ^ (0x30 * LO);
    (((x & !HI) + (0x76 * LO)) | x) & HI
}

/// High bit set in each byte of `w` that is not an ASCII letter or digit. Exact per byte.
#[inline]
fn non_alnum(w: u64) -> u64 {
    let y = w | (0x20 * LO);
    let low = y & !HI;
    let ge_a = low + ((0x80 - 0x61) * LO);
    let ge_z1 = low + ((0x80 - 0x7B) * LO);
    let letter = ge_a & !ge_z1 & !y & HI;
    non_digits(w) & !letter
}

/// High bit set in each byte of `w` that is not a lower-case ASCII letter or a digit.
#[inline]
fn non_lower_alnum(w: u64) -> u64 {
    let low = w & !HI;
    let ge_a = low + ((0x80 - 0x61) * LO);
    let ge_z1 = low + ((0x80 - 0x7B) * LO);
    let lower = ge_a & !ge_z1 & !w & HI;
    non_digits(w) & !lower
}

/// End of the run of lower-case ASCII letters and digits starting at `i`.
#[inline]
fn lower_alnum_end(s: &[u8], mut i: usize) -> usize {
    while i + 8 <= s.len() {
        let m = non_lower_alnum(load8(s, i));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < s.len() && (s[i].is_ascii_lowercase() || s[i].is_ascii_digit()) {
        i += 1;
    }
    i
}

/// End of the run of ASCII letters and digits starting at `i`.
#[inline]
fn alnum_end(s: &[u8], mut i: usize) -> usize {
    while i + 8 <= s.len() {
        let m = non_alnum(load8(s, i));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < s.len() && s[i].is_ascii_alphanumeric() {
        i += 1;
    }
    i
}

#[inline]
fn load8(s: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(w)
}

const LOWER: u8 = 1;
/// Bytes that can introduce a number-based value: `+` (E.164), `;` (track 2), `(`.
const OPENER: u8 = 2;
/// Bytes that can continue one past a digit run: `-`, space, `.`.
const JOINER: u8 = 4;

/// Byte classes for the digit scanner's neighbour checks.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = b'a';
    while b <= b'z' {
        t[b as usize] |= LOWER;
        b += 1;
    }
    t[b'+' as usize] |= OPENER;
    t[b';' as usize] |= OPENER;
    t[b'(' as usize] |= OPENER;
    t[b'-' as usize] |= JOINER;
    t[b' ' as usize] |= JOINER;
    t[b'.' as usize] |= JOINER;
    t
};

/// Bit of byte `j` of a 64-byte block: the number of its group of 8 bytes.
static WEIGHT: [u8; 64] = {
    let mut w = [0u8; 64];
    let mut j = 0;
    while j < 64 {
        w[j] = 1 << (j >> 3);
        j += 1;
    }
    w
};

/// Bit `j` set iff `b[j]` is an ASCII digit. Written so that the compiler vectorises it
/// (16 bytes per instruction with SSE2): each digit byte becomes the bit of its group of 8
/// (`WEIGHT`), the 8 groups are OR-ed into one word (bit `k` of byte `i`: byte `8k + i`),
/// and that 8x8 bit matrix is transposed (bit `8k + i`).
#[inline]
fn block_mask(b: &[u8; 64]) -> u64 {
    let mut t = [0u8; 64];
    for ((t, &c), &w) in t.iter_mut().zip(b).zip(&WEIGHT) {
        *t = if c.wrapping_sub(b'0') < 10 { w } else { 0 };
    }
    let mut x = 0u64;
    for g in t.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(g);
        x |= u64::from_le_bytes(w);
    }
    // Transpose (Hacker's Delight, `transpose8`): swap 1x1, 2x2 then 4x4 blocks.
    let t1 = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t1 ^ (t1 << 7);
    let t2 = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t2 ^ (t2 << 14);
    let t3 = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t3 ^ (t3 << 28)
}

/// Bit `j` set iff `s[base + j]` is an ASCII digit (bytes past the end count as not).
/// Called once per 64 bytes, out of line to keep the scanner's loop small.
#[inline(never)]
fn digit_mask(s: &[u8], base: usize) -> u64 {
    if let Some(b) = s.get(base..base + 64)
        && let Ok(b) = <&[u8; 64]>::try_from(b)
    {
        return block_mask(b);
    }
    let mut m = 0u64;
    for (j, b) in s[base..].iter().enumerate() {
        m |= u64::from(b.is_ascii_digit()) << j;
    }
    m
}

/// Finds digit runs 64 bytes at a time: a bit mask of the digits of the current
/// 64-byte block (aligned on the slice start).
struct Runs<'a> {
    s: &'a [u8],
    base: usize,
    mask: u64,
}

impl<'a> Runs<'a> {
    fn new(s: &'a [u8]) -> Self {
        Runs {
            s,
            base: 0,
            mask: digit_mask(s, 0),
        }
    }

    #[inline]
    fn block(&mut self, i: usize) -> usize {
        let blk = i & !63;
        if blk != self.base {
            self.base = blk;
            self.mask = digit_mask(self.s, blk);
        }
        blk
    }

    /// Index of the first digit at or after `i` (or `s.len()`).
    #[inline]
    fn next_digit(&mut self, mut i: usize) -> usize {
        let n = self.s.len();
        while i < n {
            let blk = self.block(i);
            let m = self.mask & (!0u64 << (i - blk));
            if m != 0 {
                return blk + m.trailing_zeros() as usize;
            }
            i = blk + 64;
        }
        n
    }

    /// The next run of digits at or after `i`: its start and end.
    #[inline]
    fn next_run(&mut self, i: usize) -> Option<(usize, usize)> {
        let a = self.next_digit(i);
        if a >= self.s.len() {
            return None;
        }
        // `next_digit` left `a`'s block loaded: the run usually ends in it.
        let m = !self.mask & (!0u64 << (a - self.base));
        let b = if m != 0 {
            (self.base + m.trailing_zeros() as usize).min(self.s.len())
        } else {
            self.run_end(self.base + 64)
        };
        Some((a, b))
    }

    /// Index of the first non-digit at or after `i` (or `s.len()`).
    #[inline]
    fn run_end(&mut self, mut i: usize) -> usize {
        let n = self.s.len();
        while i < n {
            let blk = self.block(i);
            let m = !self.mask & (!0u64 << (i - blk));
            if m != 0 {
                return (blk + m.trailing_zeros() as usize).min(n);
            }
            i = blk + 64;
        }
        n
    }
}

/// End of the digit run starting at `i` (`i` itself if `s[i]` is not a digit).
#[inline]
pub(crate) fn digits(s: &[u8], mut i: usize) -> usize {
    while i + 8 <= s.len() {
        let m = non_digits(load8(s, i));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// A value may end at `e`: not followed by a word character, nor by `.`/`-` and a digit.
#[inline]
pub(crate) fn right_ok(s: &[u8], e: usize) -> bool {
    let c = at(s, e);
    !(is_word(c) || matches!(c, b'.' | b'-') && at(s, e + 1).is_ascii_digit())
}

/// Digit values of the digits in `s[a..e]` (separators skipped), at most 32.
struct Digits {
    buf: [u8; 32],
    len: usize,
}

impl Digits {
    fn of(s: &[u8], a: usize, e: usize) -> Self {
        let mut d = Digits {
            buf: [0; 32],
            len: 0,
        };
        for &b in &s[a..e] {
            if b.is_ascii_digit() && d.len < 32 {
                d.buf[d.len] = b - b'0';
                d.len += 1;
            }
        }
        d
    }

    fn get(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Calls `f` with the ASCII digits of `s[a..e]` (separators skipped, at most 32).
fn with_digits<R>(s: &[u8], a: usize, e: usize, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 32];
    let mut n = 0;
    for &b in &s[a..e] {
        if b.is_ascii_digit() && n < buf.len() {
            buf[n] = b;
            n += 1;
        }
    }
    f(std::str::from_utf8(&buf[..n]).unwrap_or_default())
}

/// A national significant number valid in one of the countries whose national formats
/// (with the trunk prefix `0`) are recognised: the UK, Germany, France and India.
fn national_ok(nsn: &str) -> bool {
    ["GB", "DE", "FR", "IN"]
        .iter()
        .any(|r| plan::valid_region(r, nsn))
}

/// Position of the case-insensitive keyword `kw` (lower case) within `dist` bytes before
/// `a` on the same line, not preceded by a letter; the last such occurrence.
fn keyword_before(s: &[u8], a: usize, kw: &[u8], dist: usize) -> Option<usize> {
    let ls = line_start(s, a).max(a.saturating_sub(dist));
    let mut end = a;
    while end >= ls + kw.len() {
        let i = ls + rfind_ci(&s[ls..end], kw)?;
        if !before(s, i).is_ascii_alphabetic() {
            return Some(i);
        }
        end = i + kw.len() - 1;
    }
    None
}

fn ssn_keyword(s: &[u8], a: usize) -> Option<usize> {
    [
        &b"ssn"[..],
        b"social security",
        b"social_security",
        b"social-security",
    ]
    .iter()
    .filter_map(|k| keyword_before(s, a, k, 40))
    .max()
}

/// Scan `s` for the number-based types.
pub(crate) fn scan(s: &[u8], sink: &mut Sink<'_>) {
    let n = s.len();
    let mut i = 0;
    let mut v6_until = 0;
    let mut runs = Runs::new(s);
    while let Some((a, b)) = runs.next_run(i) {
        let prev = before(s, a);
        let next = at(s, b);
        if (CLASS[usize::from(prev)] | CLASS[usize::from(next)]) & LOWER != 0 {
            // Inside a lower-case word or hex id (UUIDs, hashes, `12ms`): skip the token;
            // only an IPv6 address can be here, and only next to a colon.
            let te = alnum_end(s, b);
            if (prev == b':' || at(s, te) == b':') && a >= v6_until && sink.on(B::Ip) {
                match ipv6(s, a, te) {
                    V6::Found(st, e) => {
                        sink.push(B::Ip, st, e);
                        i = e;
                        v6_until = e;
                        continue;
                    }
                    V6::No(e) => v6_until = e,
                }
            }
            // A chain of such tokens joined by `-` (a UUID, `api-3f2a9c-x1`): a digit run
            // after `<alphanumeric>-` starts no value (see below), nor does one inside a
            // lower-case token. Stops before a part followed by `:` (IPv6) or holding
            // upper-case letters.
            let mut te = te;
            while at(s, te) == b'-' {
                let e = lower_alnum_end(s, te + 1);
                if e == te + 1 || at(s, e).is_ascii_alphanumeric() || at(s, e) == b':' {
                    break;
                }
                te = e;
            }
            i = te;
            continue;
        }
        if is_word(prev) || next.is_ascii_alphabetic() || next == b'_' {
            let mut ts = a;
            while ts > 0 && s[ts - 1].is_ascii_alphanumeric() {
                ts -= 1;
            }
            let mut te = b;
            while te < n && s[te].is_ascii_alphanumeric() {
                te += 1;
            }
            // `...T07:41:53`: a clock time glued to a date.
            if at(s, te) == b':' {
                let mut rs = te;
                while rs > ts && s[rs - 1].is_ascii_digit() {
                    rs -= 1;
                }
                if rs > ts
                    && !s[rs - 1].is_ascii_hexdigit()
                    && let Some(e) = time_end(s, rs, te)
                {
                    i = e;
                    continue;
                }
            }
            i = token(s, ts, te, sink, &mut v6_until).unwrap_or(te).max(te);
            continue;
        }
        if next == b':'
            && prev != b':'
            && let Some(e) = time_end(s, a, b)
        {
            i = e;
            continue;
        }
        // ISO date `YYYY-MM-DD`, with an optional `T`/space and clock time: skip it whole.
        if next == b'-'
            && b - a == 4
            && let Some(e) = date_end(s, b)
        {
            i = e;
            continue;
        }
        let before_colon = if prev == b':' { before(s, a - 1) } else { 0 };
        if (next == b':' || before_colon == b':' || before_colon.is_ascii_hexdigit())
            && a >= v6_until
            && sink.on(B::Ip)
        {
            match ipv6(s, a, b) {
                V6::Found(st, e) => {
                    sink.push(B::Ip, st, e);
                    i = e;
                    v6_until = e;
                    continue;
                }
                V6::No(e) => v6_until = e,
            }
        }
        if matches!(prev, b'.' | b'-') && before(s, a - 1).is_ascii_alphanumeric() {
            i = chain_end(s, b);
            continue;
        }
        i = match numeric(s, a, b, prev, next, sink) {
            Some(e) => e.max(b),
            // `2.8.5`, `123-45-6789`: the runs joined to this one would be skipped below.
            None => chain_end(s, b),
        };
    }
}

/// End of the digit runs joined by `.` or `-` to the run ending at `b` (`.8.5` in
/// `2.8.5`): each of them follows `<digit>.`/`<digit>-`, so the scanner would skip it
/// anyway. Stops before a run followed by `:` (a clock time, IPv6) or a word character
/// (a token the scanner looks at as a whole).
#[inline]
fn chain_end(s: &[u8], mut b: usize) -> usize {
    while matches!(at(s, b), b'.' | b'-') && at(s, b + 1).is_ascii_digit() {
        let e = digits(s, b + 1);
        let c = at(s, e);
        if c == b':' || is_word(c) {
            break;
        }
        b = e;
    }
    b
}

/// End of a clock time `H:MM:SS` / `HH:MM:SS` (with an optional `.fraction` and UTC
/// offset `+HH:MM`) whose hour is `s[a..b]` (followed by `:`), unless more colon groups
/// follow (an IPv6 address).
#[inline]
fn time_end(s: &[u8], a: usize, b: usize) -> Option<usize> {
    let d = |i: usize| at(s, i).is_ascii_digit();
    if b - a > 2 || !shaped(s, b, b":99:99") || d(b + 6) {
        return None;
    }
    let mut e = b + 6;
    // Fraction: `.` and 1-9 digits, or `,` and exactly 3 (milliseconds).
    let mut f = e + 1;
    while f < s.len() && s[f].is_ascii_digit() {
        f += 1;
    }
    match at(s, e) {
        b'.' if (1..=9).contains(&(f - e - 1)) => e = f,
        b',' if f - e - 1 == 3 => e = f,
        _ => {}
    }
    // UTC offset `+HH:MM` / `-HH:MM`: part of the time (no value starts with `+00`).
    if matches!(at(s, e), b'+' | b'-')
        && shaped(s, e + 1, b"99:99")
        && !d(e + 6)
        && at(s, e + 6) != b':'
    {
        e += 6;
    }
    (at(s, e) != b':' && !at(s, e).is_ascii_hexdigit()).then_some(e)
}

/// `s[i..]` starts with `pat`, in which `9` stands for any ASCII digit.
#[inline]
fn shaped(s: &[u8], i: usize, pat: &[u8]) -> bool {
    s.get(i..i + pat.len()).is_some_and(|w| {
        w.iter().zip(pat).all(|(&c, &p)| {
            if p == b'9' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
    })
}

/// End of `-MM-DD` at `b` (after a 4-digit year), plus an optional `T`/space and a
/// clock time, if that is what follows.
#[inline]
fn date_end(s: &[u8], b: usize) -> Option<usize> {
    let d = |i: usize| at(s, i).is_ascii_digit();
    if !shaped(s, b + 1, b"99-99") || d(b + 6) {
        return None;
    }
    let e = b + 6;
    if matches!(at(s, e), b'T' | b' ')
        && shaped(s, e + 1, b"99:")
        && let Some(t) = time_end(s, e + 1, e + 3)
    {
        return Some(t);
    }
    (!is_word(at(s, e)) || at(s, e) == b'T').then_some(e)
}

/// Checks for a digit run `s[a..b]` not attached to letters. Inlined into the scanner:
/// most runs leave it after a few comparisons.
#[inline(always)]
fn numeric(s: &[u8], a: usize, b: usize, prev: u8, next: u8, sink: &mut Sink<'_>) -> Option<usize> {
    let l = b - a;
    // Fast exit for plain numbers (`12`, `=5123,`, `"rows":42}`): no type starts with a
    // run of this length that is not continued by a separator or introduced by `+ ; (`.
    if CLASS[usize::from(prev)] & OPENER == 0
        && CLASS[usize::from(next)] & JOINER == 0
        && !matches!(l, 9..=19)
        // `phone=16412345`
        && !(matches!(l, 7 | 8) && label_sep(prev))
        // `030/901820`, `030/901 82 20` (not `05/11/2026`, `03/2026`).
        && !(next == b'/' && s[a] == b'0' && {
            let e = digits(s, b + 1);
            e >= b + 4
                && (e - a > 9 || matches!(at(s, e), b' ' | b'-' | b'.') && at(s, e + 1).is_ascii_digit())
        })
    {
        return None;
    }
    if prev == b'+' {
        if sink.on(B::Phone) && !is_word(before(s, a - 1)) && !before(s, a - 1).is_ascii_digit() {
            let (e, total) = e164(s, a)?;
            // Short numbers (7-8 digits, e.g. small islands) only when the plan says so;
            // 5-6 digits (`+98 9601`) also only next to a phone-like label.
            if total < 7 && !labelled(s, a - 1, sink) {
                return None;
            }
            if total < 9 && !with_digits(s, a, e, plan::valid_international) {
                return None;
            }
            let e = phone_end(s, e)?;
            sink.push(B::Phone, a - 1, e);
            return Some(e);
        }
        return None;
    }
    if prev == b';'
        && (13..=19).contains(&l)
        && next == b'='
        && sink.on(B::CardTrack)
        && let Some(e) = track2(s, a - 1, b)
    {
        sink.push(B::CardTrack, a - 1, e);
        return Some(e);
    }
    if prev == b'('
        && sink.on(B::Phone)
        && !is_word(before(s, a - 1))
        && let Some(e) = paren_phone(s, a - 1).or_else(|| national(s, a - 1))
    {
        sink.push(B::Phone, a - 1, e);
        return Some(e);
    }
    if s[a] == b'0'
        && l >= 2
        && (s[a + 1] == b'0' || s[a + 1] == b'1' && at(s, a + 2) == b'1')
        && sink.on(B::Phone)
        && let Some(e) = intl(s, a, b)
    {
        sink.push(B::Phone, a, e);
        return Some(e);
    }
    if matches!(next, b'-' | b' ' | b'.') {
        if l == 1 && s[a] == b'1' && sink.on(B::Phone) {
            let nx = b + 1;
            let e = if at(s, nx) == b'(' && next == b' ' {
                paren_phone(s, nx)
            } else {
                nanp(s, nx, next)
            };
            if let Some(e) = e {
                sink.push(B::Phone, a, e);
                return Some(e);
            }
        }
        if l == 2
            && next == b'-'
            && sink.on(B::Imei)
            && let Some(e) = imei_dashed(s, a)
        {
            sink.push(B::Imei, a, e);
            return Some(e);
        }
        if l == 3 {
            if next != b'.'
                && sink.on(B::Ssn)
                && let Some(e) = ssn_sep(s, a, next)
            {
                sink.push(B::Ssn, a, e);
                return Some(e);
            }
            if sink.on(B::Phone)
                && let Some(e) = nanp(s, a, next)
            {
                sink.push(B::Phone, a, e);
                return Some(e);
            }
            if next == b'.'
                && sink.on(B::Cpf)
                && let Some(e) = cpf_formatted(s, a)
            {
                sink.push(B::Cpf, a, e);
                return Some(e);
            }
        }
        if l <= 3
            && next == b'.'
            && sink.on(B::Ip)
            && let Some(e) = ipv4(s, a)
        {
            sink.push(B::Ip, a, e);
            return Some(e);
        }
        if l == 4
            && next != b'.'
            && sink.on(B::CreditCard)
            && let Some(e) = card_grouped(s, a, next)
        {
            sink.push(B::CreditCard, a, e);
            return Some(e);
        }
        if matches!(l, 2 | 5)
            && next == b' '
            && s[a] != b'0'
            && sink.on(B::Phone)
            && let Some(e) = br_in(s, a, b)
        {
            sink.push(B::Phone, a, e);
            return Some(e);
        }
    }
    // A lone `0` only as in France's `0 8XX XX XX XX`.
    if s[a] == b'0'
        && (2..=6).contains(&l) | (l == 1 && next == b' ' && at(s, b + 1) == b'8')
        && matches!(next, b' ' | b'-' | b'.' | b'/')
        && sink.on(B::Phone)
        && let Some(e) = national(s, a)
    {
        sink.push(B::Phone, a, e);
        return Some(e);
    }
    if matches!(next, b' ' | b'-' | b'.')
        && (2..=5).contains(&l)
        && label_sep(prev)
        && {
            // At least 7 digits in groups of 2 or more: not `200 45ms`, `10.4.12`.
            let g = digits(s, b + 1);
            g >= b + 3 && (g - b - 1 + l >= 7 || at(s, g) == next && at(s, g + 1).is_ascii_digit())
        }
        && let Some(e) = labelled_national(s, a, sink)
    {
        sink.push(B::Phone, a, e);
        return Some(e);
    }
    if !right_ok(s, b) {
        return None;
    }
    match l {
        7 | 8 => {
            let e = labelled_national(s, a, sink)?;
            sink.push(B::Phone, a, e);
            Some(e)
        }
        9 => {
            let d = Digits::of(s, a, b);
            let pp = keyword_before(s, a, b"passport", 40);
            let ss = ssn_keyword(s, a);
            match (pp, ss) {
                (Some(p), ss) if ss.is_none_or(|q| p > q) => {
                    sink.push_full(B::Passport, a, b, p, Tail::Closed);
                    Some(b)
                }
                (_, Some(q)) if ssn_ok(d.get()) => {
                    sink.push_full(B::Ssn, a, b, q, Tail::Closed);
                    Some(b)
                }
                _ if label_sep(prev) => {
                    let e = labelled_national(s, a, sink)?;
                    sink.push(B::Phone, a, e);
                    Some(e)
                }
                _ => None,
            }
        }
        10 => bare_phone(s, a, b, sink).then(|| {
            sink.push(B::Phone, a, b);
            b
        }),
        11 => {
            let d = Digits::of(s, a, b);
            if cpf_ok(d.get()) && sink.on(B::Cpf) {
                sink.push(B::Cpf, a, b);
                return Some(b);
            }
            bare_phone(s, a, b, sink).then(|| {
                sink.push(B::Phone, a, b);
                b
            })
        }
        12..=19 => {
            let d = Digits::of(s, a, b);
            let d = d.get();
            if l == 15 && imei_ok(d) {
                let card = d[0] == 3 && (d[1] == 4 || d[1] == 7) || jcb15(d);
                let ctx = keyword_before(s, a, b"imei", 40);
                if !card || ctx.is_some() {
                    sink.push_full(B::Imei, a, b, ctx.unwrap_or(a), Tail::Closed);
                    return Some(b);
                }
            }
            (card_ok(d) && sink.on(B::CreditCard)).then(|| {
                sink.push(B::CreditCard, a, b);
                b
            })
        }
        _ => None,
    }
}

/// Checks for an alphanumeric token `s[ts..te]` that contains digits.
fn token(
    s: &[u8],
    ts: usize,
    te: usize,
    sink: &mut Sink<'_>,
    v6_until: &mut usize,
) -> Option<usize> {
    let len = te - ts;
    let first = s[ts];
    if first == b'B'
        && before(s, ts) == b'%'
        && sink.on(B::CardTrack)
        && let Some(e) = track1(s, ts - 1)
    {
        sink.push(B::CardTrack, ts - 1, e);
        return Some(e);
    }
    if (before(s, ts) == b':' || at(s, te) == b':') && ts >= *v6_until && sink.on(B::Ip) {
        match ipv6(s, ts, te) {
            V6::Found(st, e) => {
                sink.push(B::Ip, st, e);
                *v6_until = e;
                return Some(e);
            }
            V6::No(e) => *v6_until = e,
        }
    }
    if is_word(before(s, ts)) || at(s, te) == b'_' || s[ts..te].iter().any(u8::is_ascii_lowercase) {
        return None;
    }
    if len >= 4
        && first.is_ascii_uppercase()
        && s[ts + 1].is_ascii_uppercase()
        && s[ts + 2].is_ascii_digit()
        && s[ts + 3].is_ascii_digit()
        && sink.on(B::Iban)
        && let Some(e) = iban(s, ts)
    {
        sink.push(B::Iban, ts, e);
        return Some(e);
    }
    if len == 17 && sink.on(B::Vin) {
        let v = &s[ts..te];
        if v.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && vin_ok(v)
        {
            sink.push(B::Vin, ts, te);
            return Some(te);
        }
    }
    if len == 9
        && first.is_ascii_uppercase()
        && s[ts + 1..te].iter().all(u8::is_ascii_digit)
        && sink.on(B::Passport)
        && let Some(p) = keyword_before(s, ts, b"passport", 40)
    {
        sink.push_full(B::Passport, ts, te, p, Tail::Closed);
        return Some(te);
    }
    None
}

/// `AAA-GG-SSSS` / `AAA GG SSSS` at `a` with separator `sep`.
#[inline]
fn ssn_sep(s: &[u8], a: usize, sep: u8) -> Option<usize> {
    let g = a + 4;
    let ge = digits(s, g);
    if ge - g != 2 || at(s, ge) != sep {
        return None;
    }
    let se = digits(s, ge + 1);
    if se - ge - 1 != 4 || !right_ok(s, se) {
        return None;
    }
    ssn_ok(Digits::of(s, a, se).get()).then_some(se)
}

/// NANP `AAA-EEE-XXXX` (same separator `sep`, `-`, `.` or space) at `a`.
#[inline]
fn nanp(s: &[u8], a: usize, sep: u8) -> Option<usize> {
    if at(s, a + 3) != sep || at(s, a + 7) != sep || !(b'2'..=b'9').contains(&at(s, a)) {
        return None;
    }
    let ae = digits(s, a);
    if ae - a != 3 || at(s, ae) != sep || !(b'2'..=b'9').contains(&s[a]) {
        return None;
    }
    let ee = digits(s, ae + 1);
    if ee - ae - 1 != 3 || at(s, ee) != sep {
        return None;
    }
    let xe = digits(s, ee + 1);
    if xe - ee - 1 != 4 {
        return None;
    }
    phone_end(s, xe)
}

/// `(AAA) EEE-XXXX` or Brazilian `(DD) NNNNN-NNNN` with the `(` at `p`.
#[inline]
fn paren_phone(s: &[u8], p: usize) -> Option<usize> {
    let a = p + 1;
    let ae = digits(s, a);
    if at(s, ae) != b')' {
        return None;
    }
    let mut i = ae + 1;
    if at(s, i) == b' ' {
        i += 1;
    }
    let ee = digits(s, i);
    let sep = at(s, ee);
    match (ae - a, ee - i) {
        (3, 3) if (b'2'..=b'9').contains(&s[a]) && matches!(sep, b'-' | b' ' | b'.') => {
            let xe = digits(s, ee + 1);
            (xe - ee - 1 == 4).then(|| phone_end(s, xe)).flatten()
        }
        (2, 4 | 5) if sep == b'-' && s[a] != b'0' => {
            let xe = digits(s, ee + 1);
            (xe - ee - 1 == 4).then(|| phone_end(s, xe)).flatten()
        }
        _ => None,
    }
}

/// E.164 number after the `+` (or international prefix) before `a`: country code and
/// groups separated by single spaces, dashes, dots or parenthesised groups; 5-15 digits
/// (callers want 7 or more unless a phone-like label is there).
/// Returns the end of the digits (extensions not included) and their number.
fn e164(s: &[u8], a: usize) -> Option<(usize, usize)> {
    let mut pos = a;
    let mut total = 0;
    let mut end = a;
    let mut first = true;
    let nanp_cc = s[a] == b'1' && !at(s, a + 1).is_ascii_digit();
    // Past 11 digits, a space may as well start the next value (`+44 20 7946 0018 20
    // rows`): the number ends there (`soft`) unless a longer run of groups is a valid
    // number in its country's plan (`+229 01 20 21 12 34`).
    let mut soft: Option<(usize, usize)> = None;
    loop {
        let (ge, glen) = if at(s, pos) == b'(' && !first {
            let d = digits(s, pos + 1);
            if !(1..=4).contains(&(d - pos - 1)) || at(s, d) != b')' {
                break;
            }
            (d + 1, d - pos - 1)
        } else {
            let d = digits(s, pos);
            if d == pos {
                break;
            }
            (d, d - pos)
        };
        if total + glen > 15 {
            break;
        }
        total += glen;
        end = ge;
        first = false;
        if nanp_cc && total == 11 {
            break;
        }
        let c = at(s, ge);
        let nx = at(s, ge + 1);
        let nx_ok = nx.is_ascii_digit() || nx == b'(';
        if s[ge - 1] == b')' && c.is_ascii_digit() {
            pos = ge;
            continue;
        }
        match c {
            b'-' | b'.' if nx_ok => pos = ge + 1,
            b' ' if nx_ok => {
                if total >= 11 && soft.is_none() {
                    soft = Some((end, total));
                }
                pos = ge + 1;
            }
            b'(' => pos = ge,
            _ => break,
        }
    }
    if let Some((soft_end, soft_total)) = soft
        && end > soft_end
    {
        // Longest valid run of groups, else the soft end.
        let mut e = end;
        while e > soft_end {
            if right_ok(s, e) && with_digits(s, a, e, plan::valid_international) {
                return Some((e, total_digits(s, a, e)));
            }
            // Back to the end of the previous group.
            e -= 1;
            while e > soft_end && (at(s, e).is_ascii_digit() || !s[e - 1].is_ascii_digit()) {
                e -= 1;
            }
        }
        return (at(s, soft_end) != b'(').then_some((soft_end, soft_total));
    }
    (total >= 5 && at(s, end) != b'(').then_some((end, total))
}

/// Number of ASCII digits in `s[a..e]`.
fn total_digits(s: &[u8], a: usize, e: usize) -> usize {
    s[a..e].iter().filter(|b| b.is_ascii_digit()).count()
}

/// `000.000.000-00` at `a`.
#[inline]
fn cpf_formatted(s: &[u8], a: usize) -> Option<usize> {
    let mut pos = a;
    for (len, sep) in [(3, b'.'), (3, b'.'), (3, b'-'), (2, 0)] {
        let e = digits(s, pos);
        if e - pos != len {
            return None;
        }
        if sep == 0 {
            pos = e;
        } else {
            if at(s, e) != sep {
                return None;
            }
            pos = e + 1;
        }
    }
    (right_ok(s, pos) && cpf_ok(Digits::of(s, a, pos).get())).then_some(pos)
}

/// `AA-BBBBBB-CCCCCC-D` IMEI at `a`.
#[inline]
fn imei_dashed(s: &[u8], a: usize) -> Option<usize> {
    let mut pos = a;
    for (len, last) in [(2, false), (6, false), (6, false), (1, true)] {
        let e = digits(s, pos);
        if e - pos != len {
            return None;
        }
        if last {
            pos = e;
        } else {
            if at(s, e) != b'-' {
                return None;
            }
            pos = e + 1;
        }
    }
    (right_ok(s, pos) && imei_ok(Digits::of(s, a, pos).get())).then_some(pos)
}

/// Card number in groups separated by `sep` (space or dash), the first group of 4 at `a`.
fn card_grouped(s: &[u8], a: usize, sep: u8) -> Option<usize> {
    let mut groups = [(0usize, 0usize); 6];
    let mut count = 0;
    let mut pos = a;
    loop {
        let e = digits(s, pos);
        if e == pos {
            break;
        }
        groups[count] = (pos, e);
        count += 1;
        if count == groups.len() || at(s, e) != sep || !at(s, e + 1).is_ascii_digit() {
            break;
        }
        pos = e + 1;
    }
    for k in (2..=count).rev() {
        let g = &groups[..k];
        let shape = g.iter().enumerate().all(|(i, &(x, y))| {
            let len = y - x;
            if i == 0 {
                len == 4
            } else if i + 1 == k {
                (1..=6).contains(&len)
            } else {
                (4..=6).contains(&len)
            }
        });
        let total: usize = g.iter().map(|&(x, y)| y - x).sum();
        let end = g[k - 1].1;
        if shape
            && (12..=19).contains(&total)
            && right_ok(s, end)
            && card_ok(Digits::of(s, a, end).get())
        {
            return Some(end);
        }
    }
    None
}

/// Track 2 `;PAN=YYMM...?` with the `;` at `p` and the PAN ending at `pe`.
fn track2(s: &[u8], p: usize, pe: usize) -> Option<usize> {
    let d = Digits::of(s, p + 1, pe);
    if !luhn(d.get()) || all_same(d.get()) {
        return None;
    }
    let e = digits(s, pe + 1);
    if e - pe - 1 < 7 || e - p > 40 {
        return None;
    }
    let end = if at(s, e) == b'?' { e + 1 } else { e };
    (!is_word(at(s, end))).then_some(end)
}

/// Track 1 `%B<PAN>^NAME^YYMM<service>...?` with the `%` at `p`.
fn track1(s: &[u8], p: usize) -> Option<usize> {
    let a = p + 2;
    let pe = digits(s, a);
    if !(13..=19).contains(&(pe - a)) || at(s, pe) != b'^' {
        return None;
    }
    let d = Digits::of(s, a, pe);
    if !luhn(d.get()) || all_same(d.get()) {
        return None;
    }
    let ns = pe + 1;
    let mut ne = ns;
    while ne < s.len()
        && ne - ns <= 26
        && (s[ne].is_ascii_alphabetic() || matches!(s[ne], b' ' | b'/' | b'.' | b'\'' | b'-'))
    {
        ne += 1;
    }
    if ne - ns < 2 || at(s, ne) != b'^' {
        return None;
    }
    let de = digits(s, ne + 1);
    if de - ne - 1 < 7 {
        return None;
    }
    let limit = (p + 79).min(s.len());
    let mut e = de;
    while e < limit && s[e] != b'?' && s[e] != b'\n' && s[e] != b'%' {
        e += 1;
    }
    if at(s, e) == b'?' {
        Some(e + 1)
    } else {
        Some(de)
    }
}

/// IBAN at `ts` (country letters, check digits, BBAN; compact or spaced every 4).
fn iban(s: &[u8], ts: usize) -> Option<usize> {
    let want = iban_len(&s[ts..ts + 2])?;
    let mut buf = [0u8; 34];
    let mut n = 0;
    let mut pos = ts;
    while n < want {
        let c = at(s, pos);
        if c.is_ascii_digit() || c.is_ascii_uppercase() {
            buf[n] = c;
            n += 1;
            pos += 1;
        } else if c == b' ' && n % 4 == 0 && n > 0 && {
            let c2 = at(s, pos + 1);
            c2.is_ascii_digit() || c2.is_ascii_uppercase()
        } {
            pos += 1;
        } else {
            return None;
        }
    }
    if is_word(at(s, pos)) || !iban_mod97(&buf[..n]) {
        return None;
    }
    Some(pos)
}

/// End of a phone number whose digits end at `e`: past its extension if one follows
/// (`x123`, ` x123`, `ext. 12`, ` ext 12`, `extension 12`, `#204`, `;ext=12`: a marker
/// and 1-6 digits), else `e` itself if a value may end there.
fn phone_end(s: &[u8], e: usize) -> Option<usize> {
    extension(s, e).or_else(|| right_ok(s, e).then_some(e))
}

fn extension(s: &[u8], e: usize) -> Option<usize> {
    let mut i = e;
    match at(s, i) {
        b' ' => i += 1,
        b',' if at(s, i + 1) == b' ' => i += 2,
        _ => {}
    }
    let has = |i: usize, w: &[u8]| {
        s.get(i..i + w.len())
            .is_some_and(|x| x.eq_ignore_ascii_case(w))
    };
    let marker = match at(s, i) {
        b'x' | b'X' | b'#' => 1,
        b'e' | b'E' if has(i, b"extension") => 9,
        b'e' | b'E' if has(i, b"ext.") => 4,
        b'e' | b'E' if has(i, b"ext") => 3,
        b';' if has(i, b";ext=") => 5,
        _ => return None,
    };
    i += marker;
    if at(s, i) == b' ' || at(s, i) == b':' && at(s, i + 1) == b' ' {
        i += if at(s, i) == b' ' { 1 } else { 2 };
    }
    let d = digits(s, i);
    ((1..=6).contains(&(d - i)) && right_ok(s, d)).then_some(d)
}

/// A number after an international prefix (`00`, `011`; `001` is `00` then the NANP's
/// country code 1) at `a`, the prefix glued to the country code (`0044 20 ...`) or
/// followed by one separator (`00 44 ...`, `011-44-...`, `001-415-...`); valid in the
/// numbering plan of its country.
fn intl(s: &[u8], a: usize, b: usize) -> Option<usize> {
    let run = &s[a..b];
    let p = if run.starts_with(b"00") { 2 } else { 3 };
    let start = if run.len() == p {
        if !matches!(at(s, b), b' ' | b'-' | b'.') || !at(s, b + 1).is_ascii_digit() {
            return None;
        }
        b + 1
    } else {
        a + p
    };
    // `001-415-555-0132`: like `1-415-555-0132`, the NANP's shape is enough.
    if &s[start..start + 1] == b"1"
        && matches!(at(s, start + 1), b'-' | b' ' | b'.')
        && let Some(e) = nanp(s, start + 2, at(s, start + 5))
    {
        return Some(e);
    }
    let (e, total) = e164(s, start)?;
    if total < 7 || !with_digits(s, start, e, plan::valid_international) {
        return None;
    }
    phone_end(s, e)
}

/// A national number with its trunk prefix `0`: the area (1-6 digits with the `0`,
/// optionally in parentheses, the `(` at `a`) and groups of digits, separated by single
/// spaces, dashes or dots, the same throughout (after the area also `/` or, after
/// parentheses, nothing); 9-14 digits; the longest such run of groups that is valid in
/// the UK, Germany, France or India.
fn national(s: &[u8], a: usize) -> Option<usize> {
    let paren = s[a] == b'(';
    let g0 = if paren { a + 1 } else { a };
    let g0e = digits(s, g0);
    if at(s, g0) != b'0' || !(1..=6).contains(&(g0e - g0)) || g0e - g0 == 1 && paren {
        return None;
    }
    let mut pos = g0e;
    if paren {
        if at(s, pos) != b')' {
            return None;
        }
        pos += 1;
    }
    let mut ends = [0usize; 6];
    let mut n = 0;
    let mut total = g0e - g0;
    let mut sep = 0u8;
    while n < ends.len() {
        let c = at(s, pos);
        let gs = if n == 0 && paren && c.is_ascii_digit() {
            pos
        } else if matches!(c, b' ' | b'-' | b'.' | b'/') && at(s, pos + 1).is_ascii_digit() {
            if n == 0 {
                if c != b'/' && !paren {
                    sep = c;
                }
            } else if c == b'/' || sep != 0 && c != sep {
                break;
            } else {
                sep = c;
            }
            pos + 1
        } else {
            break;
        };
        let ge = digits(s, gs);
        if total + (ge - gs) > 14 {
            break;
        }
        total += ge - gs;
        ends[n] = ge;
        n += 1;
        pos = ge;
    }
    if total < 9 {
        return None;
    }
    for k in (1..=n).rev() {
        let e = ends[k - 1];
        let ok = with_digits(s, g0, e, |d| {
            (9..=14).contains(&d.len()) && national_ok(&d[1..])
        });
        if ok && let Some(end) = phone_end(s, e) {
            return Some(end);
        }
    }
    None
}

/// Brazilian `DD NNNNN-NNNN` / `DD NNNN-NNNN` or Indian `NNNNN NNNNN` (no trunk prefix)
/// at `a`, valid in that country.
fn br_in(s: &[u8], a: usize, b: usize) -> Option<usize> {
    let g = b + 1;
    let ge = digits(s, g);
    let (region, e) = match (b - a, ge - g) {
        (2, 4 | 5) if at(s, ge) == b'-' => {
            let xe = digits(s, ge + 1);
            if xe - ge - 1 != 4 {
                return None;
            }
            ("BR", xe)
        }
        (5, 5) => ("IN", ge),
        _ => return None,
    };
    if !with_digits(s, a, e, |d| plan::valid_region(region, d)) {
        return None;
    }
    phone_end(s, e)
}

/// A bare run of 10 or 11 digits `s[a..b]` next to a phone-like label (a key before it on
/// the line, or a table column header): a NANP number (`AAAEEEXXXX`, optionally with the
/// `1` before it), a national number with the trunk prefix `0` (UK, Germany, France,
/// India) or an Indian mobile number, valid in that plan.
fn bare_phone(s: &[u8], a: usize, b: usize, sink: &mut Sink<'_>) -> bool {
    if !sink.on(B::Phone) {
        return false;
    }
    let d = &s[a..b];
    let nanp_at = |i: usize| (b'2'..=b'9').contains(&d[i]) && (b'2'..=b'9').contains(&d[i + 3]);
    let shape = match d.len() {
        10 => nanp_at(0) || d[0] == b'0' || (b'6'..=b'9').contains(&d[0]),
        _ => d[0] == b'0' || d[0] == b'1' && nanp_at(1),
    };
    if !shape || !(key_before(s, a) || sink.tables.phone_column(s, a)) {
        return false;
    }
    with_digits(s, a, b, |d| match (d.len(), d.as_bytes()[0]) {
        (10, b'0') => national_ok(&d[1..]),
        (10, _) => plan::valid_in(1, d) || plan::valid_region("IN", d),
        (_, b'0') => national_ok(&d[1..]),
        _ => plan::valid_in(1, &d[1..]),
    })
}

/// A byte that may end a phone-like label before a value (see [`key_before`]; a table
/// cell starts after a space).
#[inline]
fn label_sep(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b':' | b'=' | b'>' | b' ' | b'\t')
}

/// A phone-like label before the value at `a`: a key on its line or its table column.
fn labelled(s: &[u8], a: usize, sink: &mut Sink<'_>) -> bool {
    key_before(s, a) || sink.tables.phone_column(s, a)
}

/// A national number without a trunk prefix at `a` next to a phone-like label: groups of
/// 2 or more digits separated by single spaces, dashes or dots (the same throughout), or
/// one bare run; 7-13 digits; the longest such run of groups that is valid in the NANP, Brazil,
/// India, Germany, the UK or France (short and special-service numbers such as India's
/// `1800 12 3456`, Brazil's `4004-1234`, Canada's `310-1234`).
/// Out of line: rarely more than a few byte comparisons, and it keeps the scanner small.
#[inline(never)]
fn labelled_national(s: &[u8], a: usize, sink: &mut Sink<'_>) -> Option<usize> {
    if !sink.on(B::Phone) {
        return None;
    }
    let mut ends = [0usize; 6];
    let mut n = 0;
    let mut total = 0;
    let mut pos = a;
    let mut sep = 0u8;
    while n < ends.len() {
        let ge = digits(s, pos);
        if total + (ge - pos) > 13 || ge - pos < 2 {
            break;
        }
        total += ge - pos;
        ends[n] = ge;
        n += 1;
        let c = at(s, ge);
        if !matches!(c, b' ' | b'-' | b'.')
            || !at(s, ge + 1).is_ascii_digit()
            || sep != 0 && c != sep
        {
            break;
        }
        sep = c;
        pos = ge + 1;
    }
    if total < 7 || !labelled(s, a, sink) {
        return None;
    }
    for k in (1..=n).rev() {
        let e = ends[k - 1];
        let ok = with_digits(s, a, e, |d| {
            (7..=13).contains(&d.len())
                && match d.strip_prefix('0') {
                    Some(nsn) => national_ok(nsn),
                    None => {
                        plan::valid_in(1, d)
                            || ["BR", "IN", "DE", "GB", "FR"]
                                .iter()
                                .any(|r| plan::valid_region(r, d))
                    }
                }
        });
        if ok && let Some(end) = phone_end(s, e) {
            return Some(end);
        }
    }
    None
}
