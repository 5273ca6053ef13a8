//! Detectors anchored at a literal trigger: `@`, `://`, `www.`, `-----BEGIN`, `eyJ`,
//! token prefixes and context keywords. Each returns the end of the candidate it pushed
//! (the caller resumes its trigger search there), or `None`.

use super::detect::{Sink, Tail, at, before, is_word, line_start};
use super::types::B;

#[inline]
fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

#[inline]
fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

#[inline]
fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Bytes that may appear in a URL as written in text.
#[inline]
pub(crate) fn is_url_byte(b: u8) -> bool {
    b > 0x20
        && b != 0x7f
        && !matches!(
            b,
            b'"' | b'\'' | b'<' | b'>' | b'`' | b'\\' | b'|' | b'{' | b'}' | b','
        )
}

/// Bytes that end a token that continues past a segment end ([`Tail::Ws`]).
#[inline]
pub(crate) fn ends_token(b: u8) -> bool {
    b <= 0x20 || matches!(b, b'"' | b'\'' | b'<' | b'>' | b'`' | b'|' | 0x7f)
}

/// Validate a dotted domain `d`: at least `min_dots` dots, labels of `[A-Za-z0-9-]` not
/// starting or ending with `-`, alphabetic TLD of 2-24 letters (or `xn--` punycode).
fn domain_ok(d: &[u8], min_dots: usize) -> bool {
    let mut dots = 0;
    let mut last = &d[..0];
    for label in d.split(|&b| b == b'.') {
        if label.is_empty() || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return false;
        }
        dots += 1;
        last = label;
    }
    dots -= 1;
    dots >= min_dots
        && ((2..=24).contains(&last.len()) && last.iter().all(u8::is_ascii_alphabetic)
            || last.starts_with(b"xn--"))
}

/// E-mail at the `@` at `i`.
pub(crate) fn email_at(s: &[u8], i: usize, sink: &mut Sink<'_>) -> Option<usize> {
    let mut ls = i;
    while ls > 0 && is_local(s[ls - 1]) && i - ls < 64 {
        ls -= 1;
    }
    if ls > 0 && is_local(s[ls - 1]) {
        return None;
    }
    while ls < i && matches!(s[ls], b'.' | b'-' | b'+') {
        ls += 1;
    }
    if ls == i || s[i - 1] == b'.' {
        return None;
    }
    // `scheme://user:password@host` and `scheme://user@host`: user info, not an e-mail.
    if matches!(before(s, ls), b':' | b'/') {
        let lstart = line_start(s, ls);
        let mut j = ls;
        while j > lstart && is_url_byte(s[j - 1]) && ls - j < 512 {
            j -= 1;
        }
        if memchr::memmem::find(&s[j..ls], b"://").is_some() {
            return None;
        }
    }
    let mut de = i + 1;
    while de < s.len() && is_domain(s[de]) && de - i < 255 {
        de += 1;
    }
    while de > i + 1 && matches!(s[de - 1], b'.' | b'-') {
        de -= 1;
    }
    if de == i + 1 || !domain_ok(&s[i + 1..de], 1) || is_word(at(s, de)) {
        return None;
    }
    sink.on(B::Email).then(|| {
        sink.push(B::Email, ls, de);
        de
    })
}

/// End of a URL that starts at `from`: URL bytes, minus trailing punctuation and
/// unbalanced closing brackets.
fn url_end(s: &[u8], from: usize) -> usize {
    let mut e = from;
    while e < s.len() && is_url_byte(s[e]) {
        e += 1;
    }
    loop {
        if e <= from {
            return e;
        }
        let last = s[e - 1];
        let trim = match last {
            b'.' | b',' | b';' | b':' | b'!' | b'?' | b'*' => true,
            b')' => count(&s[from..e], b'(') < count(&s[from..e], b')'),
            b']' => count(&s[from..e], b'[') < count(&s[from..e], b']'),
            _ => false,
        };
        if !trim {
            return e;
        }
        e -= 1;
    }
}

fn count(s: &[u8], b: u8) -> usize {
    memchr::memchr_iter(b, s).count()
}

/// Whether `query` (after `?`) has a parameter named `name` (lower case).
fn has_param(query: &[u8], name: &[u8]) -> bool {
    query.split(|&b| b == b'&' || b == b';').any(|p| {
        p.len() > name.len() && p[name.len()] == b'=' && p[..name.len()].eq_ignore_ascii_case(name)
    })
}

/// URL family at the `://` at `p`: URL, STORAGE_SIGNED_URL, SLACK_TOKEN (webhook) or
/// PASSWORD_IN_URL.
pub(crate) fn url_at(s: &[u8], p: usize, sink: &mut Sink<'_>) -> Option<usize> {
    let mut st = p;
    while st > 0
        && (s[st - 1].is_ascii_alphanumeric() || matches!(s[st - 1], b'+' | b'.' | b'-'))
        && p - st < 32
    {
        st -= 1;
    }
    while st < p && !s[st].is_ascii_alphabetic() {
        st += 1;
    }
    if st == p {
        return None;
    }
    let scheme = &s[st..p];
    let h = p + 3;
    let end = url_end(s, h);
    if end <= h {
        return None;
    }
    let url = &s[h..end];
    let auth_len = url
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(url.len());
    let auth = &url[..auth_len];
    let password = memchr::memrchr(b'@', auth).and_then(|at_| {
        let user_info = &auth[..at_];
        let colon = memchr::memchr(b':', user_info)?;
        (colon + 1 < at_ && at_ + 1 < auth.len()).then(|| (h + colon + 1, h + at_))
    });
    let host_start = memchr::memrchr(b'@', auth).map_or(0, |a| a + 1);
    let host = &auth[host_start..];
    let host = &host[..host.iter().position(|&b| b == b':').unwrap_or(host.len())];
    let web = [&b"http"[..], b"https", b"ftp", b"ftps"]
        .iter()
        .any(|w| scheme.eq_ignore_ascii_case(w));
    if web && host.is_empty() {
        return None;
    }
    let rest = &url[auth_len..];
    let query = rest
        .iter()
        .position(|&b| b == b'?')
        .map_or(&rest[..0], |q| &rest[q + 1..]);
    let signed = web
        && !query.is_empty()
        && (has_param(query, b"x-amz-signature")
            || has_param(query, b"x-goog-signature")
            || has_param(query, b"sig") && (has_param(query, b"se") || has_param(query, b"sv"))
            || has_param(query, b"signature")
                && (has_param(query, b"awsaccesskeyid") || has_param(query, b"googleaccessid")));
    let slack = web
        && host.eq_ignore_ascii_case(b"hooks.slack.com")
        && rest.len() > 10
        && rest[..10].eq_ignore_ascii_case(b"/services/");
    if slack && sink.on(B::SlackToken) {
        sink.push_full(B::SlackToken, st, end, st, Tail::Ws);
        return Some(end);
    }
    if signed && sink.on(B::StorageSignedUrl) {
        sink.push_full(B::StorageSignedUrl, st, end, st, Tail::Ws);
        return Some(end);
    }
    if let Some((ps, pe)) = password
        && sink.on(B::PasswordInUrl)
    {
        sink.push_full(B::PasswordInUrl, ps, pe, st, Tail::Closed);
        return Some(pe);
    }
    if web && sink.on(B::Url) {
        sink.push_full(B::Url, st, end, st, Tail::Ws);
        return Some(end);
    }
    None
}

/// URL starting with `www.` at `p`.
pub(crate) fn www_at(s: &[u8], p: usize, sink: &mut Sink<'_>) -> Option<usize> {
    let prev = before(s, p);
    if is_word(prev) || matches!(prev, b'.' | b'/' | b'@' | b'-') {
        return None;
    }
    let end = url_end(s, p);
    let host_len = s[p..end]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#' | b':'))
        .unwrap_or(end - p);
    let host = &s[p..p + host_len];
    if !host.iter().all(|&b| is_domain(b)) || !domain_ok(host, 2) {
        return None;
    }
    sink.on(B::Url).then(|| {
        sink.push_full(B::Url, p, end, p, Tail::Ws);
        end
    })
}

/// Parse ` <LABEL>-----` after `-----BEGIN` / `-----END` at `i`, where the label ends
/// with `PRIVATE KEY` (or `PRIVATE KEY BLOCK`). Returns the end of the marker.
pub(crate) fn pem_marker(s: &[u8], i: usize) -> Option<usize> {
    if at(s, i) != b' ' {
        return None;
    }
    let j = i + 1;
    let mut k = j;
    while k < s.len()
        && k - j < 48
        && (s[k].is_ascii_uppercase() || s[k].is_ascii_digit() || s[k] == b' ')
    {
        k += 1;
    }
    let label = &s[j..k];
    if !s[k..].starts_with(b"-----")
        || !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK"))
    {
        return None;
    }
    Some(k + 5)
}

/// End of the first `-----END ... PRIVATE KEY-----` marker in `s`.
pub(crate) fn pem_end(s: &[u8]) -> Option<usize> {
    memchr::memmem::find_iter(s, b"-----END").find_map(|i| pem_marker(s, i + 8))
}

/// PEM private key block at the `-----BEGIN` at `p`: up to its END marker on the same
/// line, else to the end of the line (and the stream continues it).
pub(crate) fn pem_at(s: &[u8], p: usize, sink: &mut Sink<'_>) -> Option<usize> {
    let hdr_end = pem_marker(s, p + 10)?;
    let line_end = memchr::memchr(b'\n', &s[hdr_end..]).map_or(s.len(), |i| hdr_end + i + 1);
    let (end, tail) = match pem_end(&s[hdr_end..line_end]) {
        Some(e) => (hdr_end + e, Tail::Closed),
        None => (line_end, Tail::PemOpen),
    };
    sink.on(B::PrivateKey).then(|| {
        sink.push_full(B::PrivateKey, p, end, p, tail);
        end
    })
}

fn run(s: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < s.len() && f(s[i]) {
        i += 1;
    }
    i
}

/// JSON Web Token at the `eyJ` at `p`.
pub(crate) fn jwt_at(s: &[u8], p: usize, sink: &mut Sink<'_>) -> Option<usize> {
    if is_b64url(before(s, p)) {
        return None;
    }
    let e1 = run(s, p, is_b64url);
    // A token cut by the end of a window (a JWT over ~1 KiB in a long line) is accepted
    // from its distinctive start; the stream masks its continuation.
    let cut = |end: usize, sink: &mut Sink<'_>| {
        sink.on(B::Jwt).then(|| {
            sink.push_full(B::Jwt, p, end, p, Tail::Ws);
            end
        })
    };
    if sink.window && e1 == s.len() && e1 - p >= 16 {
        return cut(e1, sink);
    }
    if e1 - p < 10 || at(s, e1) != b'.' {
        return None;
    }
    let e2 = run(s, e1 + 1, is_b64url);
    if sink.window && e2 == s.len() && e2 - e1 > 4 {
        return cut(e2, sink);
    }
    if e2 - e1 - 1 < 4 || at(s, e2) != b'.' {
        return None;
    }
    let mut end = run(s, e2 + 1, is_b64url);
    // JWE has five segments.
    for _ in 0..2 {
        if at(s, end) == b'.' && is_b64url(at(s, end + 1)) {
            end = run(s, end + 1, is_b64url);
        } else {
            break;
        }
    }
    if at(s, end) == b'.' && is_b64url(at(s, end + 1)) {
        return None;
    }
    sink.on(B::Jwt).then(|| {
        sink.push_full(B::Jwt, p, end, p, Tail::Ws);
        end
    })
}

/// AWS access key id at the prefix at `p`.
pub(crate) fn aws_key_at(s: &[u8], p: usize, sink: &mut Sink<'_>) -> Option<usize> {
    if s[..p].last().is_some_and(|&b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let e = run(s, p + 4, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if e - p != 20
        || s[p + 4..e]
            .iter()
            .any(|&b| matches!(b, b'0' | b'1' | b'8' | b'9'))
    {
        return None;
    }
    if at(s, e).is_ascii_alphanumeric() {
        return None;
    }
    sink.push(B::AwsAccessKeyId, p, e);
    Some(e)
}

/// GitHub token around the trigger at `p` (`hp_`... one byte into `ghp_`..., or `ub_pat_`
/// four bytes into `github_pat_`), with `body` characters after the prefix.
pub(crate) fn github_at(s: &[u8], p: usize, body: usize, sink: &mut Sink<'_>) -> Option<usize> {
    let (back, prefix) = if body == 36 { (1, 4) } else { (4, 11) };
    let start = p.checked_sub(back)?;
    let ok = if body == 36 {
        s[start] == b'g'
    } else {
        s[start..].starts_with(b"github_pat_")
    };
    if !ok || is_word(before(s, start)) {
        return None;
    }
    let e = if body == 36 {
        run(s, start + prefix, |b| b.is_ascii_alphanumeric())
    } else {
        run(s, start + prefix, is_word)
    };
    if e - start - prefix != body || is_word(at(s, e)) {
        return None;
    }
    sink.push(B::GithubToken, start, e);
    Some(e)
}

/// Slack token at the `xox` at `p` (`xoxa-`, `xoxb-`, `xoxp-`, `xoxo-`, `xoxs-`, `xoxr-`).
pub(crate) fn slack_at(s: &[u8], p: usize, sink: &mut Sink<'_>) -> Option<usize> {
    if s[..p].last().is_some_and(|&b| b.is_ascii_alphanumeric())
        || !matches!(at(s, p + 3), b'a' | b'b' | b'p' | b'o' | b's' | b'r')
        || at(s, p + 4) != b'-'
    {
        return None;
    }
    let e = run(s, p + 5, |b| b.is_ascii_alphanumeric() || b == b'-');
    if e - p < 15 || !s[p + 5..e].iter().any(u8::is_ascii_digit) {
        return None;
    }
    sink.push_full(B::SlackToken, p, e, p, Tail::Ws);
    Some(e)
}

/// RFC 6265 cookie-octet (no space, quote, comma, semicolon or backslash), minus `'`
/// (which in practice closes a quoted string around the header).
#[inline]
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x26 | 0x28..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Cookie header value at the trigger at `p` (`Cookie:` / `Set-Cookie:`, also quoted
/// JSON keys `"cookie": "..."`): `name=value` pairs separated by `;` (and, for
/// Set-Cookie, attributes such as `Expires=Thu, 21 Oct 2026 07:28:00 GMT`). The value ends
/// after the last pair.
pub(crate) fn cookie_at(s: &[u8], p: usize, sink: &mut Sink<'_>) -> Option<usize> {
    // The trigger is `kie:` / `kie"`, three bytes into `cookie`.
    let mut kw = p.checked_sub(3)?;
    if !s[kw..p + 3].eq_ignore_ascii_case(b"cookie") {
        return None;
    }
    let p = kw + 1;
    if kw >= 4 && s[kw - 4..kw].eq_ignore_ascii_case(b"set-") {
        kw -= 4;
    }
    if is_word(before(s, kw)) || before(s, kw) == b'-' {
        return None;
    }
    let mut i = p + 5;
    if matches!(at(s, i), b'"' | b'\'') {
        i += 1;
    }
    if at(s, i) != b':' {
        return None;
    }
    i += 1;
    while at(s, i) == b' ' || at(s, i) == b'\t' {
        i += 1;
    }
    if matches!(at(s, i), b'"' | b'\'') {
        i += 1;
    }
    let start = i;
    let mut end = start;
    let mut pairs = 0;
    loop {
        // name
        let ns = i;
        while i < s.len() && is_cookie_octet(s[i]) && s[i] != b'=' {
            i += 1;
        }
        if i == ns {
            break;
        }
        let name = &s[ns..i];
        if at(s, i) == b'=' {
            i += 1;
            if name.eq_ignore_ascii_case(b"expires") {
                while i < s.len() && !matches!(s[i], b';' | b'"' | b'\'' | b'\n' | b'\r') {
                    i += 1;
                }
                while i > start && s[i - 1] == b' ' {
                    i -= 1;
                }
            } else {
                while i < s.len() && is_cookie_octet(s[i]) {
                    i += 1;
                }
            }
            pairs += 1;
        } else if pairs == 0
            || ![&b"secure"[..], b"httponly", b"partitioned"]
                .iter()
                .any(|a| name.eq_ignore_ascii_case(a))
        {
            break;
        }
        end = i;
        if at(s, i) == b';' {
            i += 1;
            while at(s, i) == b' ' {
                i += 1;
            }
        } else {
            break;
        }
    }
    // Sentence punctuation and an unbalanced `)` after the last pair are not part of it.
    loop {
        let v = &s[start..end];
        match v.last() {
            Some(b'.') if !is_word(at(s, end)) => end -= 1,
            Some(b')') if count(v, b'(') < count(v, b')') => end -= 1,
            _ => break,
        }
    }
    if pairs == 0 || end - start < 3 {
        return None;
    }
    sink.on(B::HttpCookie).then(|| {
        sink.push_full(B::HttpCookie, start, end, kw, Tail::Ws);
        end
    })
}

#[inline]
fn is_secret_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
}

/// AWS secret access key after a key name around the trigger at `p..e` (an identifier
/// like `aws_secret_access_key`, `SecretAccessKey` or `AWS_SECRET_KEY` that contains
/// "secret"), separators, then exactly 40 base64 characters.
pub(crate) fn aws_secret_at(s: &[u8], p: usize, e: usize, sink: &mut Sink<'_>) -> Option<usize> {
    let ident = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-');
    let mut kw = p;
    while kw > 0 && ident(s[kw - 1]) && p - kw < 32 {
        kw -= 1;
    }
    let mut i = e;
    while i < s.len() && ident(s[i]) && i - e < 16 {
        i += 1;
    }
    if !s[kw..i]
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"secret"))
    {
        return None;
    }
    let sep_start = i;
    while i < s.len()
        && matches!(
            s[i],
            b' ' | b'\t' | b'"' | b'\'' | b':' | b'=' | b'>' | b'|' | b',' | b'('
        )
        && i - sep_start < 16
    {
        i += 1;
    }
    if i == sep_start || is_secret_byte(before(s, i)) {
        return None;
    }
    let v = run(s, i, is_secret_byte);
    if v - i != 40 || at(s, v) == b'=' {
        return None;
    }
    let value = &s[i..v];
    if !value.iter().any(u8::is_ascii_alphabetic)
        || !value.iter().any(u8::is_ascii_digit)
            && !value.iter().any(|&b| b == b'/' || b == b'+')
            && value.iter().all(u8::is_ascii_uppercase)
    {
        return None;
    }
    sink.push_full(B::AwsSecretAccessKey, i, v, kw, Tail::Closed);
    Some(v)
}
