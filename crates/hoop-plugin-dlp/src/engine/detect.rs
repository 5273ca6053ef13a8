//! Candidate detection over a slice of whole segments.
//!
//! Every detector here looks at one line at a time: none reads across a `\n`, so running
//! them over a batch of lines finds exactly what running them line by line would. The
//! stream relies on this to make its output independent of how input was chunked.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};

use super::custom::CustomSet;
use super::label::Tables;
use super::literal;
use super::numeric;
use super::types::B;

/// How a candidate that reaches the end of its segment may continue into the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Cannot continue (fixed-length or closed value).
    Closed,
    /// Continues up to the next whitespace, quote or angle bracket.
    Ws,
    /// Continues up to the end of the line.
    Line,
    /// A PEM private key block whose END line has not been seen.
    PemOpen,
}

/// One candidate match in a slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    /// First byte of the value.
    pub(crate) start: usize,
    /// One past the last byte of the value.
    pub(crate) end: usize,
    /// First byte of the value's context (a keyword it needed), `<= start`. A segment is
    /// never cut between `guard` and `end`.
    pub(crate) guard: usize,
    /// Kind index (built-in [`B`] discriminant, or a custom type's index).
    pub(crate) kind: u16,
    /// How it continues past a segment end.
    pub(crate) tail: Tail,
}

/// Candidate sink: knows which kinds are enabled.
pub(crate) struct Sink<'a> {
    pub(crate) enabled: u32,
    pub(crate) out: &'a mut Vec<Cand>,
    /// The slice is a window of a long line: a token reaching its end may go on.
    pub(crate) window: bool,
    /// Table headers in effect (for bare phone numbers in a phone column).
    pub(crate) tables: &'a mut Tables,
}

impl Sink<'_> {
    #[inline]
    pub(crate) fn on(&self, b: B) -> bool {
        self.enabled & b.bit() != 0
    }

    #[inline]
    pub(crate) fn push(&mut self, b: B, start: usize, end: usize) {
        self.push_full(b, start, end, start, Tail::Closed);
    }

    #[inline]
    pub(crate) fn push_full(&mut self, b: B, start: usize, end: usize, guard: usize, tail: Tail) {
        if self.on(b) && start < end {
            self.out.push(Cand {
                start,
                end,
                guard: guard.min(start),
                kind: b.kind(),
                tail,
            });
        }
    }
}

/// Byte at `i`, or 0 past the end.
#[inline]
pub(crate) fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// Byte before `i`, or 0 at the start.
#[inline]
pub(crate) fn before(s: &[u8], i: usize) -> u8 {
    if i == 0 { 0 } else { at(s, i - 1) }
}

/// `[A-Za-z0-9_]`.
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Start of the line containing `i` (never before 0).
#[inline]
pub(crate) fn line_start(s: &[u8], i: usize) -> usize {
    memchr::memrchr(b'\n', &s[..i]).map_or(0, |p| p + 1)
}

/// Last position of the lower-case ASCII `needle` in `hay`, case-insensitively.
pub(crate) fn rfind_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// Literal triggers found with one Aho-Corasick pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Scheme,
    Www,
    Pem,
    Jwt,
    AwsKey,
    Github,
    GithubPat,
    Slack,
    Cookie,
    AwsSecret,
}

/// At most 32 patterns, so that Aho-Corasick uses its fastest ("slim Teddy") prefilter,
/// and each chosen so that its first three bytes are rare in ordinary text (Teddy
/// fingerprints them): `gh*_` tokens trigger on `hp_`..., cookies on `kie:`, AWS secret
/// key names on `ss_key`... Each handler checks the full keyword around the trigger.
const TRIGGERS: &[(&str, Trigger, u32)] = &[
    (
        "://",
        Trigger::Scheme,
        B::Url.bit() | B::PasswordInUrl.bit() | B::StorageSignedUrl.bit() | B::SlackToken.bit(),
    ),
    ("www.", Trigger::Www, B::Url.bit()),
    ("-----BEGIN", Trigger::Pem, B::PrivateKey.bit()),
    ("eyJ", Trigger::Jwt, B::Jwt.bit()),
    ("AKIA", Trigger::AwsKey, B::AwsAccessKeyId.bit()),
    ("ASIA", Trigger::AwsKey, B::AwsAccessKeyId.bit()),
    ("AGPA", Trigger::AwsKey, B::AwsAccessKeyId.bit()),
    ("AIDA", Trigger::AwsKey, B::AwsAccessKeyId.bit()),
    ("AROA", Trigger::AwsKey, B::AwsAccessKeyId.bit()),
    ("ANPA", Trigger::AwsKey, B::AwsAccessKeyId.bit()),
    ("ANVA", Trigger::AwsKey, B::AwsAccessKeyId.bit()),
    ("AIPA", Trigger::AwsKey, B::AwsAccessKeyId.bit()),
    ("hp_", Trigger::Github, B::GithubToken.bit()),
    ("ho_", Trigger::Github, B::GithubToken.bit()),
    ("hu_", Trigger::Github, B::GithubToken.bit()),
    ("hs_", Trigger::Github, B::GithubToken.bit()),
    ("hr_", Trigger::Github, B::GithubToken.bit()),
    ("ub_pat_", Trigger::GithubPat, B::GithubToken.bit()),
    ("xox", Trigger::Slack, B::SlackToken.bit()),
    ("kie:", Trigger::Cookie, B::HttpCookie.bit()),
    ("KIE:", Trigger::Cookie, B::HttpCookie.bit()),
    ("kie\"", Trigger::Cookie, B::HttpCookie.bit()),
    ("ss_key", Trigger::AwsSecret, B::AwsSecretAccessKey.bit()),
    ("SS_KEY", Trigger::AwsSecret, B::AwsSecretAccessKey.bit()),
    ("ssKey", Trigger::AwsSecret, B::AwsSecretAccessKey.bit()),
    ("ss-key", Trigger::AwsSecret, B::AwsSecretAccessKey.bit()),
    ("ws_secret", Trigger::AwsSecret, B::AwsSecretAccessKey.bit()),
    ("WS_SECRET", Trigger::AwsSecret, B::AwsSecretAccessKey.bit()),
];

/// Bits of the types found by the digit scanner.
const NUMERIC_BITS: u32 = B::CreditCard.bit()
    | B::Phone.bit()
    | B::Ssn.bit()
    | B::Ip.bit()
    | B::Imei.bit()
    | B::Cpf.bit()
    | B::Passport.bit()
    | B::Iban.bit()
    | B::Vin.bit()
    | B::CardTrack.bit();

/// All detectors of one engine.
#[derive(Debug)]
pub(crate) struct Detector {
    enabled: u32,
    ac: Option<AhoCorasick>,
    triggers: Vec<Trigger>,
    custom: CustomSet,
}

impl Detector {
    /// Detectors for the built-in types in `enabled` (a bit set of [`B`]) and `custom`.
    pub(crate) fn new(enabled: u32, custom: CustomSet) -> Self {
        let active: Vec<_> = TRIGGERS
            .iter()
            .filter(|(_, _, bits)| bits & enabled != 0)
            .collect();
        let ac = if active.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .build(active.iter().map(|(p, _, _)| p))
                .ok()
        };
        let triggers = active.iter().map(|(_, t, _)| *t).collect();
        Detector {
            enabled,
            ac,
            triggers,
            custom,
        }
    }

    /// Whether candidates may depend on table headers (bare phone numbers).
    pub(crate) fn tables_needed(&self) -> bool {
        self.enabled & B::Phone.bit() != 0
    }

    /// Append every candidate in `s` (whole lines, or one `window` of a long line) to `out`,
    /// sorted by start, then longest first, then priority. `tables` knows the table
    /// header in effect before `s`.
    pub(crate) fn detect(&self, s: &[u8], window: bool, tables: &mut Tables, out: &mut Vec<Cand>) {
        let mut sink = Sink {
            enabled: self.enabled,
            out,
            window,
            tables,
        };
        if sink.on(B::Email) {
            for i in memchr::memchr_iter(b'@', s) {
                literal::email_at(s, i, &mut sink);
            }
        }
        if let Some(ac) = &self.ac {
            let mut pos = 0;
            while pos < s.len() {
                let Some(m) = ac.find(Input::new(s).span(pos..s.len())) else {
                    break;
                };
                let p = m.start();
                // Every trigger is examined, even inside an earlier candidate: a keyword
                // inside one value may introduce another value after it.
                match self.triggers[m.pattern().as_usize()] {
                    Trigger::Scheme => literal::url_at(s, p, &mut sink),
                    Trigger::Www => literal::www_at(s, p, &mut sink),
                    Trigger::Pem => literal::pem_at(s, p, &mut sink),
                    Trigger::Jwt => literal::jwt_at(s, p, &mut sink),
                    Trigger::AwsKey => literal::aws_key_at(s, p, &mut sink),
                    Trigger::Github => literal::github_at(s, p, 36, &mut sink),
                    Trigger::GithubPat => literal::github_at(s, p, 82, &mut sink),
                    Trigger::Slack => literal::slack_at(s, p, &mut sink),
                    Trigger::Cookie => literal::cookie_at(s, p, &mut sink),
                    Trigger::AwsSecret => literal::aws_secret_at(s, p, m.end(), &mut sink),
                };
                pos = m.end();
            }
        }
        if self.enabled & NUMERIC_BITS != 0 {
            numeric::scan(s, &mut sink);
        }
        self.custom.detect(s, sink.out);
        out.sort_unstable_by(|x, y| {
            x.start
                .cmp(&y.start)
                .then(y.end.cmp(&x.end))
                .then(x.kind.cmp(&y.kind))
        });
    }
}
