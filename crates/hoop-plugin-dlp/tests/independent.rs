//! Accuracy on an independent corpus: phone and card numbers this project did not write,
//! planted in psql table rows, log lines and JSON, beside look-alikes that must stay
//! unmasked.
//!
//! `cargo test -p hoop-plugin-dlp --test independent -- --nocapture` prints recall per
//! type, per layout and per source, and precision per type and per layout. The test fails
//! below 0.99 recall for a type in any layout, or below 0.99 precision for a type.
//!
//! Positives come from:
//!
//! * the `fake` crate (seeded): phone and cell numbers of its `en` (US formats, with
//!   extensions), `fr_FR`, `pt_BR`, `cy_GB` (UK), `it_IT`, `pt_PT`, `tr_TR` and `fa_IR`
//!   locales, and its credit-card generator. Not every generated value is real: `fake`'s
//!   phone formats draw digits at random (area codes starting with 1, unassigned area
//!   codes, `+31 06...` with a trunk prefix after the country code) and its 13- and
//!   15-digit cards fail Luhn (it doubles the wrong digits for odd lengths). So positives
//!   are filtered by an oracle: libphonenumber (the `phonenumber` crate's `parse` and
//!   `is_valid`, for the locale's country; an extension is set aside for the check, kept
//!   in the value) for phones, Luhn for cards. Its `ja_JP` locale is left out (Japanese
//!   national formats are not detected without a `+81`).
//! * libphonenumber's example numbers (the metadata's example for each number type of
//!   each region, as the `phonenumber` crate exposes them): every one in the
//!   international format (`+44 20 7946 0958`) and in E.164 (`+442079460958`), and those
//!   of the countries whose national formats are detected (NANP, UK, Germany, France,
//!   Brazil, India) also in their national format (`020 7946 0958`).
//! * Python Faker (`tests/data/faker.tsv`, written by `bench/presidio/export_faker.py`,
//!   seeded): en_US phone numbers in all its formats (extensions, `001-`, `+1-`, bare 10
//!   digits), filtered by the same oracle, and card numbers of every issuer it knows
//!   (Maestro 12, Visa 13/16/19, Mastercard 2- and 5-series, Amex, Discover, Diners 14,
//!   JCB 15/16), filtered by Luhn; its `0604` Maestro prefix is left out (no card network
//!   has IIN 0604: major industry identifier 0 is not a card range).
//!
//! Each positive is planted once in every layout, under a phone-like or card-like key or
//! column (a bare 10-digit number is a phone only next to such a label). Look-alikes
//! (order ids, ISO and Unix timestamps, versions, amounts, UUIDs, git and SHA-256 hashes,
//! long integers that fail Luhn) fill the other fields of every row.
//!
//! With `DLP_INDEPENDENT_OUT=<dir>` the corpus is also written there (`corpus.txt` and
//! `labels.jsonl`) for `bench/presidio/compare.py --independent <dir>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use fake::Fake;
use fake::faker::creditcard::raw::CreditCardNumber;
use fake::faker::phone_number::raw::{CellNumber, PhoneNumber};
use fake::locales::{CY_GB, EN, FA_IR, FR_FR, IT_IT, PT_BR, PT_PT, TR_TR};
use fake::rand::SeedableRng;
use fake::rand::rngs::Xoshiro256PlusPlus;
use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, Type};

const PHONE: &str = "PHONE_NUMBER";
const CARD: &str = "CREDIT_CARD_NUMBER";
const LAYOUTS: [&str; 3] = ["table", "log", "json"];
/// Values drawn per `fake` locale (phones) and for cards, before the oracle.
const PER_SOURCE: usize = 300;

#[derive(Debug, Clone)]
struct Positive {
    ty: &'static str,
    source: String,
    value: String,
}

fn luhn(v: &str) -> bool {
    let d: Vec<u32> = v
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect();
    let mut sum = 0;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut y = x;
        if i % 2 == 1 {
            y *= 2;
            if y > 9 {
                y -= 9;
            }
        }
        sum += y;
    }
    !d.is_empty() && sum % 10 == 0
}

fn cpf(v: &str) -> bool {
    let d: Vec<u32> = v.bytes().map(|b| u32::from(b - b'0')).collect();
    let check = |n: usize| {
        let sum: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, &x)| x * (n as u32 + 1 - i as u32))
            .sum();
        let r = sum * 10 % 11;
        if r == 10 { 0 } else { r }
    };
    d.len() == 11 && check(9) == d[9] && check(10) == d[10]
}

/// libphonenumber's verdict on a phone number written for `region`; an extension
/// (`x123`, ` ext. 12`) is set aside.
fn real_phone(region: Id, v: &str) -> bool {
    let number = v.split(['x', 'e', '#']).next().unwrap_or(v).trim();
    phonenumber::parse(Some(region), number).is_ok_and(|n| phonenumber::is_valid(&n))
}

fn fake_phones(out: &mut Vec<Positive>) {
    macro_rules! locale {
        ($loc:expr, $name:literal, $region:expr, $seed:literal) => {{
            let mut rng = Xoshiro256PlusPlus::seed_from_u64($seed);
            for i in 0..PER_SOURCE {
                let v: String = if i % 2 == 0 {
                    PhoneNumber($loc).fake_with_rng(&mut rng)
                } else {
                    CellNumber($loc).fake_with_rng(&mut rng)
                };
                if real_phone($region, &v) {
                    out.push(Positive {
                        ty: PHONE,
                        source: concat!("fake ", $name).to_owned(),
                        value: v,
                    });
                }
            }
        }};
    }
    locale!(EN, "en", Id::US, 1);
    locale!(FR_FR, "fr_FR", Id::FR, 2);
    locale!(PT_BR, "pt_BR", Id::BR, 3);
    locale!(CY_GB, "cy_GB", Id::GB, 4);
    locale!(IT_IT, "it_IT", Id::IT, 5);
    locale!(PT_PT, "pt_PT", Id::PT, 6);
    locale!(TR_TR, "tr_TR", Id::TR, 7);
    locale!(FA_IR, "fa_IR", Id::IR, 8);
}

fn fake_cards(out: &mut Vec<Positive>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    for _ in 0..PER_SOURCE {
        let v: String = CreditCardNumber(EN).fake_with_rng(&mut rng);
        if luhn(&v) {
            out.push(Positive {
                ty: CARD,
                source: format!("fake card {}", v.len()),
                value: v,
            });
        }
    }
}

/// libphonenumber's example numbers, in international, E.164 and (for the countries
/// whose national formats are detected) national format.
fn example_numbers(out: &mut Vec<Positive>) {
    const TYPES: [Type; 10] = [
        Type::FixedLine,
        Type::Mobile,
        Type::TollFree,
        Type::PremiumRate,
        Type::SharedCost,
        Type::PersonalNumber,
        Type::Voip,
        Type::Pager,
        Type::Uan,
        Type::Voicemail,
    ];
    let national = ["US", "CA", "GB", "DE", "FR", "BR", "IN"];
    let mut metas: Vec<_> = DATABASE.iter().collect();
    metas.sort_by(|a, b| a.id().cmp(b.id()));
    let mut seen = HashSet::new();
    for meta in metas {
        for t in TYPES {
            let Some(ex) = meta.descriptors().get(t).and_then(|d| d.example()) else {
                continue;
            };
            let e164 = format!("+{}{ex}", meta.country_code());
            let Ok(n) = phonenumber::parse(None, &e164) else {
                continue;
            };
            if !phonenumber::is_valid(&n) || !seen.insert(e164.clone()) {
                continue;
            }
            let intl = phonenumber::format(&n)
                .mode(Mode::International)
                .to_string();
            out.push(Positive {
                ty: PHONE,
                source: "libphonenumber international".to_owned(),
                value: intl,
            });
            out.push(Positive {
                ty: PHONE,
                source: "libphonenumber E.164".to_owned(),
                value: e164,
            });
            if national.contains(&meta.id()) {
                let nat = phonenumber::format(&n).mode(Mode::National).to_string();
                out.push(Positive {
                    ty: PHONE,
                    source: format!("libphonenumber national {}", meta.id()),
                    value: nat,
                });
            }
        }
    }
}

fn python_faker(out: &mut Vec<Positive>) {
    for line in include_str!("data/faker.tsv").lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut f = line.split('\t');
        let (ty, source, value) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let keep = if ty == PHONE {
            real_phone(Id::US, value)
        } else {
            luhn(value) && !value.starts_with("0604")
        };
        if keep {
            out.push(Positive {
                ty: if ty == PHONE { PHONE } else { CARD },
                source: source.to_owned(),
                value: value.to_owned(),
            });
        }
    }
}

fn positives() -> Vec<Positive> {
    let mut out = Vec::new();
    fake_phones(&mut out);
    fake_cards(&mut out);
    example_numbers(&mut out);
    python_faker(&mut out);
    out
}

/// SplitMix64 for the look-alikes and layout choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    fn digits(&mut self, n: usize) -> String {
        let mut s = (1 + self.below(9)).to_string();
        while s.len() < n {
            s.push(char::from(b'0' + self.below(10) as u8));
        }
        s
    }
}

/// Look-alikes: (field name, value).
fn look_alikes(r: &mut Rng) -> Vec<(&'static str, String)> {
    let uuid = format!(
        "{}-{}-4{}-a{}-{}",
        r.hex(8),
        r.hex(4),
        r.hex(3),
        r.hex(3),
        r.hex(12)
    );
    // Integers that are not card numbers (Luhn) nor CPFs (its check digits).
    let long_int = loop {
        let n = 10 + r.below(10) as usize;
        let v = r.digits(n);
        if !luhn(&v) && !cpf(&v) {
            break v;
        }
    };
    let ts = match r.below(3) {
        0 => format!(
            "2026-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            1 + r.below(12),
            1 + r.below(28),
            r.below(24),
            r.below(60),
            r.below(60),
            r.below(1000)
        ),
        1 => (1_700_000_000 + r.below(100_000_000)).to_string(),
        _ => (1_700_000_000_000 + r.below(100_000_000_000)).to_string(),
    };
    vec![
        (
            "order_id",
            match r.below(3) {
                0 => format!("ORD-2026-{:06}", r.below(1_000_000)),
                1 => {
                    let n = 7 + r.below(3) as usize;
                    r.digits(n)
                }
                _ => format!("PO{}", r.digits(10)),
            },
        ),
        ("created_at", ts),
        (
            "version",
            format!("{}.{}.{}", r.below(20), r.below(40), r.below(200)),
        ),
        (
            "amount",
            match r.below(2) {
                0 => format!("{}.{:02}", r.below(1_000_000), r.below(100)),
                _ => format!(
                    "${},{:03}.{:02}",
                    1 + r.below(999),
                    r.below(1000),
                    r.below(100)
                ),
            },
        ),
        ("request_id", uuid),
        (
            "commit",
            if r.below(2) == 0 {
                r.hex(40)
            } else {
                r.hex(64)
            },
        ),
        ("ref", long_int),
    ]
}

struct Corpus {
    text: String,
    /// (type, start, end, layout, index into the positives)
    labels: Vec<(&'static str, usize, usize, &'static str, usize)>,
}

const PHONE_KEYS: [&str; 5] = ["phone", "tel", "mobile", "cell", "fax"];
const CARD_KEYS: [&str; 3] = ["card", "card_number", "pan"];

fn build(pos: &[Positive]) -> Corpus {
    let mut r = Rng(16);
    let mut c = Corpus {
        text: String::new(),
        labels: Vec::new(),
    };
    // psql tables of 25 rows: phone and card columns, one of them filled per row.
    for (block, chunk) in pos.chunks(25).enumerate() {
        let phone_col = PHONE_KEYS[block % PHONE_KEYS.len()];
        let card_col = CARD_KEYS[block % CARD_KEYS.len()];
        let head = format!(
            "  id  | {phone_col:<24} | {card_col:<24} | order_id        | created_at               | version  | amount        | request_id                           | commit | ref\n"
        );
        c.text.push_str(&head);
        c.text.push_str(&format!(
            "{}\n",
            head.trim_end()
                .chars()
                .map(|ch| if ch == '|' { '+' } else { '-' })
                .collect::<String>()
        ));
        for (k, p) in chunk.iter().enumerate() {
            let i = block * 25 + k;
            let la = look_alikes(&mut r);
            let _ = write!(c.text, " {:>4} | ", i + 1);
            for col in [PHONE, CARD] {
                if p.ty == col {
                    let st = c.text.len();
                    c.text.push_str(&p.value);
                    c.labels.push((p.ty, st, c.text.len(), "table", i));
                    let pad = 24usize.saturating_sub(p.value.len());
                    c.text.push_str(&" ".repeat(pad));
                } else {
                    c.text.push_str(&" ".repeat(24));
                }
                c.text.push_str(" | ");
            }
            let vals: Vec<&str> = la.iter().map(|(_, v)| v.as_str()).take(7).collect();
            c.text.push_str(&vals.join(" | "));
            c.text.push('\n');
        }
        let _ = writeln!(c.text, "({} rows)\n", chunk.len());
    }
    // Log lines.
    for (i, p) in pos.iter().enumerate() {
        let la = look_alikes(&mut r);
        let key = if p.ty == PHONE {
            PHONE_KEYS[i % PHONE_KEYS.len()]
        } else {
            CARD_KEYS[i % CARD_KEYS.len()]
        };
        let _ = write!(
            c.text,
            "{} INFO api::orders [req={}] order={} amount={} ",
            la[1].1, la[4].1, la[0].1, la[3].1
        );
        let quote = if i % 3 == 0 { "\"" } else { "" };
        let sep = if i % 2 == 0 { "=" } else { ": " };
        let _ = write!(c.text, "{key}{sep}{quote}");
        let st = c.text.len();
        c.text.push_str(&p.value);
        c.labels.push((p.ty, st, c.text.len(), "log", i));
        let _ = writeln!(
            c.text,
            "{quote} version={} commit={} ref={} took=15ms",
            la[2].1, la[5].1, la[6].1
        );
    }
    // JSON lines.
    for (i, p) in pos.iter().enumerate() {
        let la = look_alikes(&mut r);
        let key = if p.ty == PHONE {
            ["phone", "phoneNumber", "tel", "mobile_phone", "fax"][i % 5]
        } else {
            ["card", "cardNumber", "pan"][i % 3]
        };
        let _ = write!(
            c.text,
            "{{\"id\": {}, \"order_id\": \"{}\", \"created_at\": \"{}\", \"{key}\": \"",
            i + 1,
            la[0].1,
            la[1].1
        );
        let st = c.text.len();
        c.text.push_str(&p.value);
        c.labels.push((p.ty, st, c.text.len(), "json", i));
        let _ = writeln!(
            c.text,
            "\", \"version\": \"{}\", \"amount\": \"{}\", \"request_id\": \"{}\", \"commit\": \"{}\", \"ref\": {}}}",
            la[2].1, la[3].1, la[4].1, la[5].1, la[6].1
        );
    }
    c
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

#[test]
fn independent_corpus_recall_and_precision() {
    let pos = positives();
    let c = build(&pos);
    if let Ok(dir) = std::env::var("DLP_INDEPENDENT_OUT") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/corpus.txt"), &c.text).unwrap();
        let mut labels = String::new();
        for &(ty, st, en, layout, i) in &c.labels {
            let line = serde_json::json!({
                "type": ty, "start": st, "end": en, "layout": layout, "source": pos[i].source,
            });
            let _ = writeln!(labels, "{line}");
        }
        std::fs::write(format!("{dir}/labels.jsonl"), labels).unwrap();
    }
    let e = support::all();
    let found = e.findings(c.text.as_bytes());
    let found_set: HashSet<(&str, usize, usize)> = found
        .iter()
        .map(|f| (f.info_type.as_str(), f.start, f.end))
        .collect();
    let truth: HashSet<(&str, usize, usize)> =
        c.labels.iter().map(|&(t, s, e, _, _)| (t, s, e)).collect();
    let layout_of = |pos_: usize| {
        let i = c.labels.partition_point(|l| l.1 <= pos_);
        if i == 0 { "table" } else { c.labels[i - 1].3 }
    };

    // Recall per type x layout, and per source.
    let mut hit: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    let mut by_source: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    for &(ty, st, en, layout, i) in &c.labels {
        let ok = found_set.contains(&(ty, st, en));
        let h = hit.entry((ty, layout)).or_default();
        h.1 += 1;
        let s = by_source.entry((ty, pos[i].source.as_str())).or_default();
        s.1 += 1;
        if ok {
            h.0 += 1;
            s.0 += 1;
        } else if misses.len() < 30 {
            let got: Vec<String> = found
                .iter()
                .filter(|f| f.start < en && st < f.end)
                .map(|f| format!("{} {:?}", f.info_type, &c.text[f.start..f.end]))
                .collect();
            misses.push(format!(
                "FN {layout} {ty} {:?} ({}) found {got:?}",
                &c.text[st..en],
                pos[i].source
            ));
        }
    }
    // Precision per type (and per layout): findings of the type that are not a label.
    let mut prec: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    let mut fps = Vec::new();
    for f in &found {
        let ty = f.info_type.as_str();
        let ok = truth.contains(&(ty, f.start, f.end));
        let p = prec.entry((ty, layout_of(f.start))).or_default();
        p.1 += 1;
        if ok {
            p.0 += 1;
        } else if fps.len() < 30 {
            let lo = f.start.saturating_sub(40);
            let hi = (f.end + 20).min(c.text.len());
            fps.push(format!(
                "FP {ty} {:?} in {:?}",
                &c.text[f.start..f.end],
                &c.text[lo..hi]
            ));
        }
    }

    println!(
        "independent corpus: {} bytes, {} positives ({} phones, {} cards) x 3 layouts",
        c.text.len(),
        pos.len(),
        pos.iter().filter(|p| p.ty == PHONE).count(),
        pos.iter().filter(|p| p.ty == CARD).count()
    );
    println!(
        "\n{:<20} {:<6} {:>7} {:>7} {:>9} {:>9}",
        "type", "layout", "labels", "found", "recall", "precision"
    );
    let mut bad = Vec::new();
    for ty in [PHONE, CARD] {
        for layout in LAYOUTS {
            let (tp, n) = hit.get(&(ty, layout)).copied().unwrap_or_default();
            let (ptp, pn) = prec.get(&(ty, layout)).copied().unwrap_or_default();
            let (r, p) = (ratio(tp, n), ratio(ptp, pn));
            println!("{ty:<20} {layout:<6} {n:>7} {tp:>7} {r:>9.4} {p:>9.4}");
            if r < 0.99 || n < 100 {
                bad.push(format!("{ty} recall in {layout}: {r:.4} of {n}"));
            }
        }
        let (ptp, pn) = prec
            .iter()
            .filter(|((t, _), _)| *t == ty)
            .fold((0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1));
        let p = ratio(ptp, pn);
        println!(
            "{ty:<20} {:<6} {:>7} {:>7} {:>9} {p:>9.4}",
            "all", "", pn, ""
        );
        if p < 0.99 {
            bad.push(format!("{ty} precision {p:.4}"));
        }
    }
    let others: usize = prec
        .iter()
        .filter(|((t, _), _)| *t != PHONE && *t != CARD)
        .map(|(_, v)| v.1)
        .sum();
    println!("findings of other types (look-alikes taken for something else): {others}");
    println!(
        "\n{:<20} {:<32} {:>7} {:>9}",
        "type", "source", "labels", "recall"
    );
    for ((ty, src), (tp, n)) in &by_source {
        println!("{ty:<20} {src:<32} {n:>7} {:>9.4}", ratio(*tp, *n));
    }
    for x in misses.iter().chain(&fps) {
        println!("{x}");
    }
    assert!(bad.is_empty(), "below the goals: {bad:?}");
    assert_eq!(others, 0, "look-alikes masked as other types");
}
