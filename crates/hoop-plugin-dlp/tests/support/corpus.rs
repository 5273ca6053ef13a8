//! Deterministic generators: a labelled accuracy corpus (values of every built-in type in
//! many formats, and false-positive traps, inside psql tables, logs, JSON, CSV, SQL and
//! prose, with ground-truth spans), PII-free logs and prose, and PII-dense psql output.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;

/// SplitMix64: small, seedable, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    pub fn digits_n(&mut self, lo: usize, hi: usize) -> String {
        let n = self.range(lo, hi);
        self.digits(n)
    }
    pub fn chars_n(&mut self, set: &[u8], lo: usize, hi: usize) -> String {
        let n = self.range(lo, hi);
        self.chars(set, n)
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    pub fn chars(&mut self, set: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(self.pick(set))).collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_NUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

const FIRST: &[&str] = &[
    "James", "Maria", "Wei", "Aisha", "Lucas", "Sofia", "Kenji", "Olga", "Pedro", "Fatima", "Liam",
    "Chloe", "Ahmed", "Ingrid", "Diego", "Yuki", "Noah", "Emma", "Ravi", "Zoe",
];
const LAST: &[&str] = &[
    "Smith", "Garcia", "Chen", "Khan", "Silva", "Rossi", "Tanaka", "Ivanova", "Santos", "Haddad",
    "Brown", "Martin", "Ali", "Larsen", "Lopez", "Sato", "Miller", "Dubois",
];
const CITIES: &[&str] = &[
    "Lisbon",
    "Austin",
    "Osaka",
    "Berlin",
    "Sao Paulo",
    "Toronto",
    "Nairobi",
    "Oslo",
    "Seattle",
    "Madrid",
    "Chennai",
    "Lyon",
];
const WORDS: &[&str] = &[
    "the",
    "request",
    "was",
    "processed",
    "after",
    "a",
    "short",
    "delay",
    "and",
    "the",
    "cache",
    "returned",
    "stale",
    "data",
    "for",
    "several",
    "minutes",
    "while",
    "operators",
    "investigated",
    "connection",
    "pool",
    "exhausted",
    "retry",
    "succeeded",
    "on",
    "second",
    "attempt",
    "customer",
    "account",
    "updated",
    "report",
    "generated",
    "queue",
    "drained",
    "deployment",
    "rolled",
    "back",
    "because",
    "health",
    "checks",
    "failed",
    "in",
    "region",
    "with",
    "latency",
    "above",
    "threshold",
    "nightly",
    "job",
    "completed",
    "without",
    "errors",
    "schema",
    "migration",
    "applied",
    "to",
    "replica",
    "invoice",
    "sent",
    "user",
];
const TLDS: &[&str] = &[
    "com", "org", "net", "io", "co.uk", "de", "com.br", "dev", "example",
];
const DOMAINS: &[&str] = &[
    "example",
    "acme-corp",
    "mail",
    "globex",
    "initech",
    "contoso",
    "fabrikam",
    "umbrella",
];

fn luhn_complete(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut s = prefix.to_owned();
    s.push_str(&rng.digits(len - 1 - prefix.len()));
    let digits: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut sum = 0;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = d;
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    s.push(char::from(b'0' + ((10 - sum % 10) % 10) as u8));
    s
}

fn luhn_valid(s: &str) -> bool {
    let mut sum = 0;
    for (i, b) in s.bytes().rev().enumerate() {
        let mut v = u32::from(b - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn group(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = String::new();
    let mut pos = 0;
    for (i, &n) in sizes.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&s[pos..pos + n]);
        pos += n;
    }
    out
}

/// A built-in value generator: returns (text, spans of (type, start, end) within text).
pub type Piece = (String, Vec<(&'static str, usize, usize)>);

fn whole(ty: &'static str, v: String) -> Piece {
    let n = v.len();
    (v, vec![(ty, 0, n)])
}

fn with_ctx(ty: &'static str, pre: &str, v: &str, post: &str) -> Piece {
    let text = format!("{pre}{v}{post}");
    (text, vec![(ty, pre.len(), pre.len() + v.len())])
}

pub fn email(rng: &mut Rng) -> String {
    let f = rng.pick(FIRST).to_lowercase();
    let l = rng.pick(LAST).to_lowercase();
    let local = match rng.below(7) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}{l}{}", rng.range(1, 99)),
        2 => format!("{}.{l}", &f[..1]),
        3 => format!("{f}_{l}"),
        4 => format!("{f}+{}", rng.pick(&["billing", "news", "test", "2026"])),
        5 => format!("{}{}", rng.pick(FIRST), rng.pick(LAST)),
        _ => format!("{f}-{l}.{}", rng.range(1, 9)),
    };
    let sub = if rng.chance(0.2) { "mail." } else { "" };
    format!("{local}@{sub}{}.{}", rng.pick(DOMAINS), rng.pick(TLDS))
}

pub fn card(rng: &mut Rng) -> String {
    let (prefix, len) = match rng.below(9) {
        0 | 1 => ("4", 16),
        2 => ("4", 13),
        3 => (rng.pick(&["51", "52", "53", "54", "55"]), 16),
        4 => ("2221", 16),
        5 => (rng.pick(&["34", "37"]), 15),
        6 => ("6011", 16),
        7 => ("3528", 16),
        _ => ("62", rng.pick(&[16, 19])),
    };
    let n = loop {
        let n = luhn_complete(rng, prefix, len);
        if !n.bytes().all(|b| b == n.as_bytes()[0]) {
            break n;
        }
    };
    match (len, rng.below(3)) {
        (16, 0) => group(&n, &[4, 4, 4, 4], " "),
        (16, 1) => group(&n, &[4, 4, 4, 4], "-"),
        (15, 0) => group(&n, &[4, 6, 5], " "),
        (15, 1) => group(&n, &[4, 6, 5], "-"),
        (19, 0) => group(&n, &[4, 4, 4, 4, 3], " "),
        _ => n,
    }
}

pub fn phone(rng: &mut Rng) -> String {
    let area = format!("{}{}", rng.range(2, 9), rng.digits(2));
    let exch = format!("{}{}", rng.range(2, 9), rng.digits(2));
    let line = rng.digits(4);
    match rng.below(17) {
        0 => format!("({area}) {exch}-{line}"),
        1 => format!("{area}-{exch}-{line}"),
        2 => format!("{area}.{exch}.{line}"),
        3 => format!("{area} {exch} {line}"),
        4 => format!("+1 {area} {exch} {line}"),
        5 => format!("+1-{area}-{exch}-{line}"),
        6 => format!("+1 ({area}) {exch}-{line}"),
        7 => format!("+1{area}{exch}{line}"),
        8 => format!("1-{area}-{exch}-{line}"),
        9 => format!("+44 20 {} {}", rng.digits(4), rng.digits(4)),
        10 => format!("+44 7{} {}", rng.digits(3), rng.digits(6)),
        11 => format!("+55 11 9{}-{}", rng.digits(4), rng.digits(4)),
        12 => format!("(11) 9{}-{}", rng.digits(4), rng.digits(4)),
        13 => format!("+49 30 {}", rng.digits(7)),
        14 => format!(
            "+33 {} {} {} {} {}",
            rng.range(1, 9),
            rng.digits(2),
            rng.digits(2),
            rng.digits(2),
            rng.digits(2)
        ),
        15 => format!("+91 {}{} {}", rng.range(6, 9), rng.digits(4), rng.digits(5)),
        _ => format!("+61 4{} {} {}", rng.digits(2), rng.digits(3), rng.digits(3)),
    }
}

fn ssn_digits(rng: &mut Rng) -> (String, String, String) {
    let area = loop {
        let a = rng.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    (
        format!("{area:03}"),
        format!("{:02}", rng.range(1, 99)),
        format!("{:04}", rng.range(1, 9999)),
    )
}

pub fn ssn(rng: &mut Rng) -> Piece {
    let (a, g, s) = ssn_digits(rng);
    match rng.below(4) {
        0 | 1 => whole("US_SOCIAL_SECURITY_NUMBER", format!("{a}-{g}-{s}")),
        2 => whole("US_SOCIAL_SECURITY_NUMBER", format!("{a} {g} {s}")),
        _ => {
            let pre = rng.pick(&[
                "SSN: ",
                "ssn=",
                "SSN ",
                "social security number ",
                "ssn\": \"",
            ]);
            with_ctx("US_SOCIAL_SECURITY_NUMBER", pre, &format!("{a}{g}{s}"), "")
        }
    }
}

fn iban_check(cc: &str, bban: &str) -> String {
    let re = format!("{bban}{cc}00");
    let mut rem = 0u32;
    for c in re.bytes() {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            _ => (rem * 100 + u32::from(c - b'A' + 10)) % 97,
        };
    }
    format!("{cc}{:02}{bban}", 98 - rem)
}

pub fn iban(rng: &mut Rng) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let (cc, bban) = match rng.below(12) {
        0 => ("DE", rng.digits(18)),
        1 => ("GB", format!("{}{}", rng.chars(letters, 4), rng.digits(14))),
        2 => (
            "FR",
            format!(
                "{}{}{}",
                rng.digits(10),
                rng.chars(UPPER_NUM, 11),
                rng.digits(2)
            ),
        ),
        3 => ("NL", format!("{}{}", rng.chars(letters, 4), rng.digits(10))),
        4 => ("ES", rng.digits(20)),
        5 => ("IT", format!("{}{}", rng.chars(letters, 1), rng.digits(22))),
        6 => ("BE", rng.digits(12)),
        7 => ("CH", rng.digits(17)),
        8 => ("PL", rng.digits(24)),
        9 => (
            "BR",
            format!(
                "{}{}{}",
                rng.digits(23),
                rng.chars(letters, 1),
                rng.chars(UPPER_NUM, 1)
            ),
        ),
        10 => ("NO", rng.digits(11)),
        _ => ("IE", format!("{}{}", rng.chars(letters, 4), rng.digits(14))),
    };
    let iban = iban_check(cc, &bban);
    if rng.chance(0.5) {
        let chunks: Vec<String> = iban
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        chunks.join(" ")
    } else {
        iban
    }
}

pub fn ip(rng: &mut Rng) -> String {
    match rng.below(8) {
        0..=3 => format!(
            "{}.{}.{}.{}",
            rng.pick(&[10, 172, 192, 8, 34, 52, 100, 203]),
            rng.below(256),
            rng.below(256),
            rng.range(1, 254)
        ),
        4 => (0..8)
            .map(|_| rng.chars(HEX, 4))
            .collect::<Vec<_>>()
            .join(":"),
        5 => format!("2001:db8::{}:{}", rng.chars(HEX, 3), rng.chars(HEX, 4)),
        6 => format!(
            "fe80::{}:{}ff:fe{}:{}",
            rng.chars(HEX, 3),
            rng.chars(HEX, 2),
            rng.digits(2),
            rng.chars(HEX, 4)
        ),
        _ => "::1".to_owned(),
    }
}

fn host(rng: &mut Rng) -> String {
    format!(
        "{}{}.{}",
        rng.pick(&["", "api.", "www.", "cdn.", "intranet."]),
        rng.pick(DOMAINS),
        rng.pick(TLDS)
    )
}

fn path(rng: &mut Rng) -> String {
    let mut p = String::new();
    for _ in 0..rng.range(0, 3) {
        p.push('/');
        p.push_str(rng.pick(&[
            "api", "v1", "users", "reports", "static", "img", "docs", "orders",
        ]));
    }
    if rng.chance(0.3) {
        let _ = write!(p, "/{}", rng.range(1, 99999));
    }
    if rng.chance(0.4) {
        let _ = write!(
            p,
            "?page={}&sort={}",
            rng.range(1, 50),
            rng.pick(&["asc", "desc"])
        );
    }
    p
}

pub fn url(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 | 1 => format!("https://{}{}", host(rng), path(rng)),
        2 => format!(
            "http://{}:{}{}",
            host(rng),
            rng.pick(&[8080, 3000, 8443]),
            path(rng)
        ),
        3 => format!(
            "ftp://files.{}.{}/pub/{}.tar.gz",
            rng.pick(DOMAINS),
            rng.pick(TLDS),
            rng.pick(WORDS)
        ),
        4 => format!("www.{}.{}{}", rng.pick(DOMAINS), rng.pick(TLDS), path(rng)),
        _ => format!("https://{}/", host(rng)),
    }
}

pub fn imei(rng: &mut Rng) -> Piece {
    let tac = rng.pick(&["35", "86", "01", "49", "99", "45"]);
    let n = luhn_complete(rng, tac, 15);
    match rng.below(4) {
        0 | 1 => whole("IMEI_HARDWARE_ID", n),
        2 => whole("IMEI_HARDWARE_ID", group(&n, &[2, 6, 6, 1], "-")),
        _ => with_ctx(
            "IMEI_HARDWARE_ID",
            rng.pick(&["IMEI: ", "imei=", "IMEI "]),
            &n,
            "",
        ),
    }
}

pub fn vin(rng: &mut Rng) -> String {
    const CH: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
    const YEAR: &[u8] = b"ABCDEFGHJKLMNPRSTVWXY123456789";
    loop {
        let wmi = rng.pick(&[
            "1HG", "1FT", "2T1", "3VW", "JHM", "WBA", "WDB", "5YJ", "KMH", "YV1", "1G1", "SAL",
        ]);
        let vds = rng.chars(CH, 5);
        let year = rng.chars(YEAR, 1);
        let rest = format!("{}{}", rng.chars(CH, 1), rng.digits(6));
        let mut v: Vec<u8> = format!("{wmi}{vds}0{year}{rest}").into_bytes();
        const W: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
        let val = |c: u8| -> u32 {
            match c {
                b'0'..=b'9' => u32::from(c - b'0'),
                b'A' | b'J' => 1,
                b'B' | b'K' | b'S' => 2,
                b'C' | b'L' | b'T' => 3,
                b'D' | b'M' | b'U' => 4,
                b'E' | b'N' | b'V' => 5,
                b'F' | b'W' => 6,
                b'G' | b'P' | b'X' => 7,
                b'H' | b'Y' => 8,
                _ => 9,
            }
        };
        let sum: u32 = v.iter().zip(W).map(|(&c, w)| val(c) * w).sum();
        v[8] = match sum % 11 {
            10 => b'X',
            r => b'0' + r as u8,
        };
        let s = String::from_utf8(v).unwrap();
        if s.bytes().any(|b| b.is_ascii_alphabetic()) {
            return s;
        }
    }
}

pub fn cpf(rng: &mut Rng) -> String {
    let mut d: Vec<u32> = (0..9).map(|_| rng.below(10) as u32).collect();
    for n in [9usize, 10] {
        let sum: u32 = d
            .iter()
            .enumerate()
            .map(|(i, &x)| x * (n as u32 + 1 - i as u32))
            .sum();
        let r = sum * 10 % 11;
        d.push(if r == 10 { 0 } else { r });
    }
    let s: String = d.iter().map(|&x| char::from(b'0' + x as u8)).collect();
    if rng.chance(0.6) {
        format!("{}.{}.{}-{}", &s[..3], &s[3..6], &s[6..9], &s[9..])
    } else {
        s
    }
}

pub fn passport(rng: &mut Rng) -> Piece {
    let number = if rng.chance(0.5) {
        format!("{}{}", rng.range(1, 9), rng.digits(8))
    } else {
        format!(
            "{}{}",
            rng.chars(b"ABCDEFGHJKLMNPRSTUVWXYZ", 1),
            rng.digits(8)
        )
    };
    let pre = rng.pick(&[
        "passport: ",
        "Passport No. ",
        "passport_number=",
        "US passport ",
        "PASSPORT #",
        "passport number: ",
    ]);
    with_ctx("US_PASSPORT", pre, &number, "")
}

pub fn track(rng: &mut Rng) -> String {
    let prefix = rng.pick(&["4", "51", "37"]);
    let pan = luhn_complete(rng, prefix, 16);
    let exp = format!("{:02}{:02}", rng.range(26, 31), rng.range(1, 12));
    if rng.chance(0.5) {
        format!(
            "%B{pan}^{}/{}^{exp}101{}?",
            rng.pick(LAST).to_uppercase(),
            rng.pick(FIRST).to_uppercase(),
            rng.digits_n(8, 16)
        )
    } else {
        format!(";{pan}={exp}101{}?", rng.digits_n(6, 12))
    }
}

pub fn cookie(rng: &mut Rng) -> (String, String) {
    let v = match rng.below(3) {
        0 => format!(
            "session={}; csrftoken={}",
            rng.chars(ALNUM, 24),
            rng.chars(ALNUM, 32)
        ),
        1 => format!("sid={}; theme=dark; lang=en-US", rng.chars(HEX, 32)),
        _ => format!(
            "_ga=GA1.2.{}.{}; JSESSIONID={}",
            rng.digits(9),
            rng.digits(10),
            rng.chars(UPPER_NUM, 32)
        ),
    };
    let name = rng.pick(&["Cookie", "cookie", "Set-Cookie", "COOKIE"]);
    (name.to_owned(), v)
}

pub fn signed_url(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!(
            "https://{}.s3.amazonaws.com/{}.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA{}%2F20261124%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261124T074153Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
            rng.pick(DOMAINS),
            rng.pick(WORDS),
            rng.chars(BASE32, 16),
            rng.chars(HEX, 64)
        ),
        1 => format!(
            "https://storage.googleapis.com/{}/{}.pdf?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=svc%40proj.iam.gserviceaccount.com%2F20261124%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20261124T074153Z&X-Goog-Expires=600&X-Goog-SignedHeaders=host&X-Goog-Signature={}",
            rng.pick(DOMAINS),
            rng.pick(WORDS),
            rng.chars(HEX, 128)
        ),
        2 => format!(
            "https://{}.blob.core.windows.net/data/{}.bin?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-12-01T00:00:00Z&st=2026-11-24T00:00:00Z&spr=https&sig={}%3D",
            rng.pick(DOMAINS),
            rng.pick(WORDS),
            rng.chars(ALNUM, 43)
        ),
        _ => format!(
            "https://{}.s3.amazonaws.com/{}?AWSAccessKeyId=AKIA{}&Expires=1764000000&Signature={}%3D",
            rng.pick(DOMAINS),
            rng.pick(WORDS),
            rng.chars(BASE32, 16),
            rng.chars(ALNUM, 27)
        ),
    }
}

pub fn aws_key(rng: &mut Rng) -> String {
    format!(
        "{}{}",
        rng.pick(&["AKIA", "ASIA", "AIDA", "AROA"]),
        rng.chars(BASE32, 16)
    )
}

pub fn aws_secret(rng: &mut Rng) -> Piece {
    let v = rng.chars(B64, 40);
    let (pre, post) = rng.pick(&[
        ("aws_secret_access_key = ", ""),
        ("AWS_SECRET_ACCESS_KEY=", ""),
        ("\"SecretAccessKey\": \"", "\""),
        ("secret_access_key: ", ""),
        ("aws_secret_access_key=\"", "\""),
    ]);
    with_ctx("AWS_SECRET_ACCESS_KEY", pre, &v, post)
}

pub fn github(rng: &mut Rng) -> String {
    if rng.chance(0.75) {
        format!(
            "{}{}",
            rng.pick(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
            rng.chars(ALNUM, 36)
        )
    } else {
        format!(
            "github_pat_{}_{}",
            rng.chars(ALNUM, 22),
            rng.chars(ALNUM, 59)
        )
    }
}

pub fn slack(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!(
            "xoxb-{}-{}-{}",
            rng.digits(12),
            rng.digits(13),
            rng.chars(ALNUM, 24)
        ),
        1 => format!(
            "xoxp-{}-{}-{}-{}",
            rng.digits(12),
            rng.digits(12),
            rng.digits(13),
            rng.chars(HEX, 32)
        ),
        _ => format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            rng.chars(UPPER_NUM, 8),
            rng.chars(UPPER_NUM, 8),
            rng.chars(ALNUM, 24)
        ),
    }
}

fn b64url(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(B64URL[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

pub fn jwt(rng: &mut Rng) -> String {
    let header = format!(
        r#"{{"alg":"{}","typ":"JWT"}}"#,
        rng.pick(&["HS256", "RS256", "ES256"])
    );
    let payload = format!(
        r#"{{"sub":"{}","name":"{} {}","iat":{},"exp":{}}}"#,
        rng.digits(10),
        rng.pick(FIRST),
        rng.pick(LAST),
        1_764_000_000 + rng.below(100_000),
        1_764_100_000 + rng.below(100_000)
    );
    let sig: Vec<u8> = (0..32).map(|_| rng.below(256) as u8).collect();
    format!(
        "{}.{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes()),
        b64url(&sig)
    )
}

pub fn pem(rng: &mut Rng) -> String {
    let label = rng.pick(&[
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ]);
    let mut s = format!("-----BEGIN {label}-----\n");
    for _ in 0..rng.range(4, 40) {
        s.push_str(&rng.chars(B64, 64));
        s.push('\n');
    }
    s.push_str(&rng.chars_n(B64, 8, 60));
    let _ = write!(s, "==\n-----END {label}-----");
    s
}

pub fn password_url(rng: &mut Rng) -> Piece {
    let pw = format!(
        "{}{}",
        rng.chars_n(ALNUM, 6, 20),
        rng.pick(&["", "!", "-x", "_9", "%40"])
    );
    let user = rng.pick(FIRST).to_lowercase();
    let (pre, post) = match rng.below(6) {
        0 => (
            format!("postgres://{user}:"),
            format!("@db.{}.internal:5432/app", rng.pick(DOMAINS)),
        ),
        1 => (
            format!("mysql://{user}:"),
            "@10.0.3.7:3306/orders".to_owned(),
        ),
        2 => ("redis://:".to_owned(), "@cache:6379/0".to_owned()),
        3 => (
            format!("mongodb+srv://{user}:"),
            format!("@cluster0.{}.mongodb.net/test", rng.pick(DOMAINS)),
        ),
        4 => (
            format!("amqp://{user}:"),
            "@mq.internal:5672/vhost".to_owned(),
        ),
        _ => (format!("https://{user}:"), format!("@{}/admin", host(rng))),
    };
    let text = format!("{pre}{pw}{post}");
    let mut spans = vec![("PASSWORD_IN_URL", pre.len(), pre.len() + pw.len())];
    if post.starts_with("@10.") {
        spans.push((
            "IP_ADDRESS",
            pre.len() + pw.len() + 1,
            pre.len() + pw.len() + 9,
        ));
    }
    (text, spans)
}

/// The built-in type names, in the order the corpus cycles through them.
pub const TYPES: &[&str] = &[
    "EMAIL_ADDRESS",
    "CREDIT_CARD_NUMBER",
    "PHONE_NUMBER",
    "US_SOCIAL_SECURITY_NUMBER",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
    "IMEI_HARDWARE_ID",
    "VEHICLE_IDENTIFICATION_NUMBER",
    "BRAZIL_CPF_NUMBER",
    "US_PASSPORT",
    "CREDIT_CARD_TRACK_NUMBER",
    "HTTP_COOKIE",
    "STORAGE_SIGNED_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "JSON_WEB_TOKEN",
    "PRIVATE_KEY",
    "PASSWORD_IN_URL",
];

/// One value of type `ty` (with its context, if any). `quoted` says the value will sit
/// inside a quoted string (JSON, CSV, SQL): cookies then come as a header string.
pub fn value(rng: &mut Rng, ty: &str) -> Piece {
    match ty {
        "EMAIL_ADDRESS" => whole("EMAIL_ADDRESS", email(rng)),
        "CREDIT_CARD_NUMBER" => whole("CREDIT_CARD_NUMBER", card(rng)),
        "PHONE_NUMBER" => whole("PHONE_NUMBER", phone(rng)),
        "US_SOCIAL_SECURITY_NUMBER" => ssn(rng),
        "IBAN_CODE" => whole("IBAN_CODE", iban(rng)),
        "IP_ADDRESS" => whole("IP_ADDRESS", ip(rng)),
        "URL" => whole("URL", url(rng)),
        "IMEI_HARDWARE_ID" => imei(rng),
        "VEHICLE_IDENTIFICATION_NUMBER" => whole("VEHICLE_IDENTIFICATION_NUMBER", vin(rng)),
        "BRAZIL_CPF_NUMBER" => whole("BRAZIL_CPF_NUMBER", cpf(rng)),
        "US_PASSPORT" => passport(rng),
        "CREDIT_CARD_TRACK_NUMBER" => whole("CREDIT_CARD_TRACK_NUMBER", track(rng)),
        "HTTP_COOKIE" => {
            let (name, v) = cookie(rng);
            with_ctx("HTTP_COOKIE", &format!("{name}: "), &v, "")
        }
        "STORAGE_SIGNED_URL" => whole("STORAGE_SIGNED_URL", signed_url(rng)),
        "AWS_ACCESS_KEY_ID" => whole("AWS_ACCESS_KEY_ID", aws_key(rng)),
        "AWS_SECRET_ACCESS_KEY" => aws_secret(rng),
        "GITHUB_TOKEN" => whole("GITHUB_TOKEN", github(rng)),
        "SLACK_TOKEN" => whole("SLACK_TOKEN", slack(rng)),
        "JSON_WEB_TOKEN" => whole("JSON_WEB_TOKEN", jwt(rng)),
        "PRIVATE_KEY" => whole("PRIVATE_KEY", pem(rng)),
        _ => password_url(rng),
    }
}

fn uuid(rng: &mut Rng) -> String {
    format!(
        "{}-{}-4{}-{}{}-{}",
        rng.chars(HEX, 8),
        rng.chars(HEX, 4),
        rng.chars(HEX, 3),
        rng.pick(&["8", "9", "a", "b"]),
        rng.chars(HEX, 3),
        rng.chars(HEX, 12)
    )
}

fn timestamp(rng: &mut Rng) -> String {
    let (y, mo, d, h, mi, s) = (
        2026,
        rng.range(1, 12),
        rng.range(1, 28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
    );
    match rng.below(5) {
        0 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        1 => format!(
            "{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}",
            rng.below(1000)
        ),
        2 => format!(
            "{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}+00:00",
            rng.below(1_000_000)
        ),
        3 => format!("{d:02}/{mo:02}/{y}"),
        _ => format!("{y}-{mo:02}-{d:02}"),
    }
}

/// A random integer of `len` digits that fails every checksum the engine uses.
fn plain_int(rng: &mut Rng, len: usize) -> String {
    loop {
        let s = format!("{}{}", rng.range(1, 9), rng.digits(len - 1));
        let bad_luhn = !luhn_valid(&s);
        let cpf_like = len == 11 && {
            let d: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
            let ck = |n: usize| {
                let sum: u32 = d[..n]
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| x * (n as u32 + 1 - i as u32))
                    .sum();
                let r = sum * 10 % 11;
                if r == 10 { 0 } else { r }
            };
            ck(9) == d[9] && ck(10) == d[10]
        };
        if bad_luhn && !cpf_like {
            return s;
        }
    }
}

/// A false-positive trap: something that looks numeric or token-like but is not PII.
pub fn trap(rng: &mut Rng) -> String {
    match rng.below(24) {
        0 => uuid(rng),
        1 => rng.chars(HEX, 40),
        2 => rng.chars_n(HEX, 7, 12),
        3 => timestamp(rng),
        4 => format!("ORD-2026-{:06}", rng.below(1_000_000)),
        5 => format!("#{}", rng.range(100_000, 999_999)),
        6 => format!("{}.{}.{}", rng.below(20), rng.below(40), rng.below(200)),
        7 => format!("v{}.{}.{}", rng.below(20), rng.below(40), rng.below(200)),
        8 => format!(
            "{}.{}.{}.{}.{}",
            rng.below(10),
            rng.below(10),
            rng.below(10),
            rng.below(10),
            rng.below(10)
        ),
        9 => format!(
            "${},{:03}.{:02}",
            rng.range(1, 999),
            rng.below(1000),
            rng.below(100)
        ),
        10 => format!("{}.{:02} EUR", rng.range(1, 99_999), rng.below(100)),
        11 => format!("localhost:{}", rng.pick(&[8080, 5432, 3306, 6379, 9090])),
        12 => format!("({} rows)", rng.range(1, 9_999_999)),
        13 => format!("{}", 1_700_000_000 + rng.below(100_000_000)),
        14 => {
            let n = rng.range(1, 25);
            plain_int(rng, n)
        }
        15 => {
            let n = rng.pick(&[9, 10, 11, 13, 15, 16, 19]);
            plain_int(rng, n)
        }
        16 => format!("{}ms", rng.range(1, 5000)),
        17 => format!("0x{}", rng.chars(HEX, 12)),
        18 => format!(
            "api-{}-{}",
            rng.chars(HEX, 10),
            rng.chars(b"abcdefghijklmnopqrstuvwxyz0123456789", 5)
        ),
        19 => format!("{}.{} GB", rng.range(1, 999), rng.below(10)),
        20 => format!(
            "{}:{:02}:{:02}",
            rng.below(24),
            rng.below(60),
            rng.below(60)
        ),
        21 => format!("sha256:{}", rng.chars(HEX, 64)),
        22 => format!("build {}", rng.chars_n(UPPER_NUM, 6, 14)),
        _ => format!("{}%", rng.range(1, 100)),
    }
}

fn name(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(FIRST), rng.pick(LAST))
}

fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(rng.pick(WORDS));
    }
    s
}

/// A labelled corpus: text and ground-truth spans `(type, start, end)`.
#[derive(Debug, Default)]
pub struct Labelled {
    pub text: Vec<u8>,
    pub labels: Vec<(&'static str, usize, usize)>,
}

impl Labelled {
    fn push_str(&mut self, s: &str) {
        self.text.extend_from_slice(s.as_bytes());
    }
    fn push_piece(&mut self, p: &Piece) {
        let base = self.text.len();
        self.text.extend_from_slice(p.0.as_bytes());
        for &(t, a, b) in &p.1 {
            self.labels.push((t, base + a, base + b));
        }
    }
}

/// Fields of one row: values (labelled) or traps.
enum Field {
    Value(Piece),
    Trap(String),
}

impl Field {
    fn text(&self) -> &str {
        match self {
            Field::Value(p) => &p.0,
            Field::Trap(t) => t,
        }
    }
}

/// Build a labelled corpus of `rows` rows; each row holds values of the types
/// cycled through [`TYPES`] and traps, in one of six layouts.
pub fn labelled(seed: u64, rows: usize) -> Labelled {
    let mut rng = Rng::new(seed);
    let mut c = Labelled::default();
    let mut next_type = 0;
    for row in 0..rows {
        let n_fields = rng.range(2, 4);
        let mut fields = Vec::new();
        for _ in 0..n_fields {
            if rng.chance(0.6) {
                let ty = TYPES[next_type % TYPES.len()];
                next_type += 1;
                fields.push(Field::Value(value(&mut rng, ty)));
            } else {
                fields.push(Field::Trap(trap(&mut rng)));
            }
        }
        let multiline = fields.iter().any(|f| f.text().contains('\n'));
        let layout = if multiline { 1 } else { rng.below(6) };
        let ts = timestamp(&mut rng);
        let id = rng.range(1, 99_999);
        match layout {
            // psql aligned table row
            0 => {
                let _ = write!(c.text_string(), " {id:>6} | {:<18} ", name(&mut rng));
                for f in &fields {
                    c.push_str("| ");
                    push_field(&mut c, f);
                    let pad = rng.below(4);
                    c.push_str(&" ".repeat(pad + 1));
                }
                c.push_str("\n");
            }
            // log line
            1 => {
                let _ = write!(
                    c.text_string(),
                    "{ts} {} [{}] {}:",
                    rng.pick(&["INFO ", "WARN ", "DEBUG", "ERROR"]),
                    uuid(&mut rng),
                    sentence(&mut rng, 3)
                );
                for (i, f) in fields.iter().enumerate() {
                    if f.text().contains('\n') {
                        c.push_str(" key follows:\n");
                        push_field(&mut c, f);
                        c.push_str("\n");
                    } else {
                        let key = rng.pick(&["value", "user", "detail", "arg", "src"]);
                        let _ = write!(c.text_string(), " {key}{i}=");
                        push_field(&mut c, f);
                    }
                }
                c.push_str(" took=12ms\n");
            }
            // JSON line
            2 => {
                let _ = write!(c.text_string(), "{{\"id\": {id}, \"ts\": \"{ts}\"");
                for (i, f) in fields.iter().enumerate() {
                    let _ = write!(c.text_string(), ", \"field_{i}\": \"");
                    push_field(&mut c, f);
                    c.push_str("\"");
                }
                c.push_str("}\n");
            }
            // CSV
            3 => {
                let _ = write!(c.text_string(), "{id},{}", name(&mut rng));
                for f in &fields {
                    c.push_str(",");
                    let quote = f.text().contains(',') || f.text().contains(' ');
                    if quote {
                        c.push_str("\"");
                    }
                    push_field(&mut c, f);
                    if quote {
                        c.push_str("\"");
                    }
                }
                let _ = writeln!(c.text_string(), ",{ts}");
            }
            // SQL
            4 => {
                let _ = write!(
                    c.text_string(),
                    "INSERT INTO events (id, ts, a, b, c) VALUES ({id}, '{ts}'"
                );
                for f in &fields {
                    c.push_str(", '");
                    push_field(&mut c, f);
                    c.push_str("'");
                }
                c.push_str(");\n");
            }
            // prose
            _ => {
                let _ = write!(c.text_string(), "On {ts} {} said ", name(&mut rng));
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        c.push_str(if i + 1 == fields.len() { " and " } else { ", " });
                    }
                    let _ = write!(c.text_string(), "{} ", sentence(&mut rng, 2));
                    push_field(&mut c, f);
                }
                c.push_str(if row % 2 == 0 { ".\n" } else { " today.\n" });
            }
        }
    }
    c
}

fn push_field(c: &mut Labelled, f: &Field) {
    match f {
        Field::Value(p) => c.push_piece(p),
        Field::Trap(t) => c.push_str(t),
    }
}

trait TextString {
    fn text_string(&mut self) -> StringSink<'_>;
}

impl TextString for Labelled {
    fn text_string(&mut self) -> StringSink<'_> {
        StringSink(&mut self.text)
    }
}

/// `fmt::Write` into a byte buffer.
pub struct StringSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StringSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `size` bytes of PII-free logs and prose: timestamps, levels, UUIDs, paths, versions,
/// durations, counts, English sentences.
pub fn clean_logs(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(size + 512);
    let mut w = StringSink(&mut out);
    let paths = [
        "/api/v1/orders",
        "/api/v2/users",
        "/healthz",
        "/static/app.js",
        "/metrics",
        "/api/v1/reports/daily",
    ];
    let svcs = [
        "api::handler",
        "db::pool",
        "worker::queue",
        "auth::session",
        "cache::lru",
        "http::server",
    ];
    while w.0.len() < size {
        match rng.below(6) {
            0 | 1 => {
                let _ = writeln!(
                    w,
                    "{} {} {} [req={}] {} {}/{} {} {}ms bytes={} version={}.{}.{}",
                    timestamp(&mut rng),
                    rng.pick(&["INFO ", "DEBUG", "WARN "]),
                    rng.pick(&svcs),
                    uuid(&mut rng),
                    rng.pick(&["GET", "POST", "PUT"]),
                    rng.pick(&paths),
                    rng.range(1, 99999),
                    rng.pick(&[200, 201, 204, 304, 404, 500]),
                    rng.range(1, 900),
                    rng.range(100, 99999),
                    rng.below(5),
                    rng.below(30),
                    rng.below(20)
                );
            }
            2 => {
                let _ = writeln!(
                    w,
                    "{} WARN [worker-{}] retrying job {} after {} ms (attempt {}/5) commit={}",
                    timestamp(&mut rng),
                    rng.below(16),
                    rng.range(1000, 999_999),
                    rng.range(10, 5000),
                    rng.range(1, 5),
                    rng.chars(HEX, 7)
                );
            }
            3 => {
                let _ = writeln!(
                    w,
                    "{{\"level\":\"info\",\"ts\":\"{}\",\"msg\":\"{}\",\"duration_ms\":{},\"rows\":{},\"trace_id\":\"{}\"}}",
                    timestamp(&mut rng),
                    sentence(&mut rng, 5),
                    rng.range(1, 2000),
                    rng.range(0, 1_000_000),
                    rng.chars(HEX, 32)
                );
            }
            _ => {
                let mut p = String::new();
                for _ in 0..rng.range(2, 5) {
                    let n = rng.range(6, 16);
                    let s = sentence(&mut rng, n);
                    let mut cs = s.chars();
                    if let Some(f) = cs.next() {
                        p.push(f.to_ascii_uppercase());
                        p.push_str(cs.as_str());
                    }
                    p.push_str(". ");
                }
                let _ = writeln!(w, "{}", p.trim_end());
            }
        }
    }
    out.truncate(size);
    out
}

/// `size` bytes of psql output where every row has an e-mail, a card and a phone.
pub fn dense_table(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(size + 512);
    let mut w = StringSink(&mut out);
    let _ = writeln!(
        w,
        "  id   |        name        |              email               |        card         |      phone       |   city"
    );
    let _ = writeln!(
        w,
        "-------+--------------------+----------------------------------+---------------------+------------------+----------"
    );
    while w.0.len() < size {
        let _ = writeln!(
            w,
            " {:>5} | {:<18} | {:<32} | {:<19} | {:<16} | {}",
            rng.range(1, 99_999),
            name(&mut rng),
            email(&mut rng),
            card(&mut rng),
            phone(&mut rng),
            rng.pick(CITIES)
        );
    }
    out.truncate(size);
    out
}
