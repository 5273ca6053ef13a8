//! Property tests: streaming equals one-shot for any chunking, the holdback bound, no
//! inserted value survives, output length is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::LazyLock;

use hoop_plugin_dlp::engine::{Engine, MAX_HOLDBACK};
use proptest::prelude::*;

static ENGINE: LazyLock<Engine> = LazyLock::new(support::all);

/// PII values (each masked whole when surrounded by separators), with context if needed.
const VALUES: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "5555555555554444",
    "(415) 555-0132",
    "+44 20 7946 0958",
    "536-22-8741",
    "DE89 3704 0044 0532 0130 00",
    "192.168.10.24",
    "2001:db8::8a2e:370:7334",
    "https://intranet.example.com/reports?id=42",
    "490154203237518",
    "1HGCM82633A004352",
    "123.456.789-09",
    "%B4111111111111111^DOE/JOHN^2512101000000000000?",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
];

/// Values with context: (text, the secret part that must not survive).
const CONTEXT_VALUES: &[(&str, &str)] = &[
    ("passport: 912803456", "912803456"),
    ("ssn 536228741", "536228741"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "Cookie: session=3f9a1c2b7d4e; theme=dark",
        "session=3f9a1c2b7d4e",
    ),
    ("postgres://app:s3cr3tPa55@db:5432/app", "s3cr3tPa55"),
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
    ),
];

const TRAPS: &[&str] = &[
    "3f2a1b7c-9d4e-4a8b-b1c2-0123456789ab",
    "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "2026-11-24T07:41:53Z",
    "ORD-2026-000123",
    "v10.4.12",
    "1.2.3.4.5",
    "$1,234.56",
    "localhost:8080",
    "(1234567 rows)",
    "1764000000",
];

const SEPARATORS: &[&str] = &[" ", "\n", ", ", " | ", "\t", "\r\n", "; "];

#[derive(Debug, Clone)]
enum Piece {
    Value(usize),
    Context(usize),
    Trap(usize),
    Bytes(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        (0..VALUES.len()).prop_map(Piece::Value),
        (0..CONTEXT_VALUES.len()).prop_map(Piece::Context),
        (0..TRAPS.len()).prop_map(Piece::Trap),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Piece::Bytes),
        // Long runs without newlines, to exercise window cuts.
        (1usize..3000, any::<u8>()).prop_map(|(n, b)| Piece::Bytes(vec![b'a' + b % 26; n])),
    ]
}

/// Input, the secrets in it, and the number of inserted values.
fn build(pieces: &[(Piece, usize)]) -> (Vec<u8>, Vec<&'static str>, usize) {
    let mut input = Vec::new();
    let mut secrets = Vec::new();
    for (p, sep) in pieces {
        match p {
            Piece::Value(i) => {
                input.extend_from_slice(VALUES[*i].as_bytes());
                secrets.push(VALUES[*i]);
            }
            Piece::Context(i) => {
                input.extend_from_slice(CONTEXT_VALUES[*i].0.as_bytes());
                secrets.push(CONTEXT_VALUES[*i].1);
            }
            Piece::Trap(i) => input.extend_from_slice(TRAPS[*i].as_bytes()),
            Piece::Bytes(b) => input.extend_from_slice(b),
        }
        input.extend_from_slice(SEPARATORS[*sep].as_bytes());
    }
    let n = secrets.len();
    (input, secrets, n)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    memchr_find(hay, needle.as_bytes())
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn stream_equals_one_shot(
        pieces in proptest::collection::vec((piece(), 0..SEPARATORS.len()), 0..24),
        cuts in proptest::collection::vec(0usize..4000, 0..12),
    ) {
        let (input, _, _) = build(&pieces);
        let one = ENGINE.redact(&input);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut s = ENGINE.stream();
        let mut out = Vec::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([input.len()]) {
            s.push(&input[prev..c], &mut out);
            prop_assert!(s.held() <= MAX_HOLDBACK);
            prev = c;
        }
        s.flush(&mut out);
        prop_assert_eq!(s.held(), 0);
        prop_assert!(out == one.output, "stream and one-shot differ");
        prop_assert_eq!(s.counts(), one.counts);
        prop_assert_eq!(s.masked_bytes(), one.masked_bytes);
    }

    #[test]
    fn inserted_values_never_survive_and_output_is_bounded(
        pieces in proptest::collection::vec((piece(), 0..SEPARATORS.len()), 0..24),
        chunk in 1usize..2000,
    ) {
        let (input, secrets, inserted) = build(&pieces);
        let r = ENGINE.redact(&input);
        for secret in &secrets {
            prop_assert!(!contains(&r.output, secret), "{secret:?} survived");
        }
        let found: u64 = r.counts.values().sum();
        prop_assert!(found as usize >= inserted.min(1) * usize::from(inserted > 0));
        let bound = input.len() as u64 + found * ENGINE.max_tag_len() as u64;
        prop_assert!((r.output.len() as u64) <= bound);
        let streamed = support::stream_chunks(&ENGINE, &input, &[chunk]);
        prop_assert!(streamed == r.output);
    }
}
