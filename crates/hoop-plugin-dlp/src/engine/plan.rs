//! Telephone numbering plans, from libphonenumber's metadata (the `phonenumber` crate).
//!
//! The digit scanner finds phone-shaped candidates; the ones whose shape alone is not
//! enough (national formats, `00`/`011` international prefixes, bare 10-digit numbers
//! next to a label) are checked here: a national significant number is valid for a
//! region when it has one of the region's possible lengths, matches its general pattern
//! and matches the pattern of at least one number type (fixed line, mobile, toll free,
//! premium rate, shared cost, personal, VoIP, pager, UAN, voicemail) — what
//! libphonenumber's `isValidNumber` checks.
//!
//! The crate's own matcher locks one global LRU cache of compiled regexes on every match
//! (and recompiles when the cache thrashes), so the patterns are compiled here instead,
//! once per region on first use, into plain [`regex::Regex`]es shared by every engine.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use phonenumber::Type;
use phonenumber::metadata::{DATABASE, Metadata};
use regex::{Regex, RegexBuilder};

/// Number types whose patterns make a number valid.
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

/// Compiled patterns of one region.
#[derive(Debug)]
struct Plan {
    /// Possible lengths of a national significant number.
    lengths: Vec<u16>,
    general: Option<Regex>,
    /// Alternation of the number types' patterns (anchored).
    typed: Option<Regex>,
}

impl Plan {
    fn of(meta: &Metadata) -> Plan {
        let d = meta.descriptors();
        // The metadata's patterns are laid out over several lines.
        let compact = |p: &str| p.split_ascii_whitespace().collect::<String>();
        // ASCII mode: `\d` is [0-9] (numbers here are ASCII), which compiles far faster
        // than Unicode digit classes.
        let anchored = |p: &str| {
            RegexBuilder::new(&format!("^(?:{})$", compact(p)))
                .unicode(false)
                .build()
                .ok()
        };
        let types: Vec<_> = TYPES.iter().filter_map(|t| d.get(*t)).collect();
        let typed: Vec<String> = types
            .iter()
            .map(|x| format!("(?:{})", compact(x.national_number().as_str())))
            .collect();
        let mut lengths: Vec<u16> = d.general().possible_length().to_vec();
        for t in &types {
            lengths.extend_from_slice(t.possible_length());
        }
        lengths.sort_unstable();
        lengths.dedup();
        Plan {
            lengths,
            general: anchored(d.general().national_number().as_str()),
            typed: if typed.is_empty() {
                None
            } else {
                anchored(&typed.join("|"))
            },
        }
    }

    fn valid(&self, nsn: &str) -> bool {
        let len = u16::try_from(nsn.len()).unwrap_or(u16::MAX);
        (self.lengths.is_empty() || self.lengths.contains(&len))
            && self.general.as_ref().is_some_and(|r| r.is_match(nsn))
            && self.typed.as_ref().is_some_and(|r| r.is_match(nsn))
    }
}

/// Regions by country calling code, each compiled on first use.
struct Plans {
    by_code: HashMap<u16, Vec<(&'static Metadata, OnceLock<Plan>)>>,
}

static PLANS: LazyLock<Plans> = LazyLock::new(|| {
    let mut by_code: HashMap<u16, Vec<(&'static Metadata, OnceLock<Plan>)>> = HashMap::new();
    for meta in DATABASE.iter() {
        by_code
            .entry(meta.country_code())
            .or_default()
            .push((meta, OnceLock::new()));
    }
    // The main region of a code first (the US for +1, GB for +44, ...): the one most
    // numbers belong to.
    for regions in by_code.values_mut() {
        regions.sort_by_key(|(m, _)| !m.is_main_country_for_code());
    }
    Plans { by_code }
});

/// Load the metadata and compile the plans the scanner checks most (the NANP's regions,
/// the UK, Germany, France, Brazil, India) now, so that the first candidates of a stream
/// do not pay for it. Other regions are compiled on first use.
pub(crate) fn warm_up() {
    for cc in [1, 44, 49, 33, 55, 91] {
        if let Some(regions) = PLANS.by_code.get(&cc) {
            for (meta, plan) in regions {
                plan.get_or_init(|| Plan::of(meta));
            }
        }
    }
}

/// A national significant number (`nsn`, ASCII digits, no trunk prefix) valid in some
/// region of country calling code `cc`.
pub(crate) fn valid_in(cc: u16, nsn: &str) -> bool {
    PLANS.by_code.get(&cc).is_some_and(|regions| {
        regions
            .iter()
            .any(|(meta, plan)| plan.get_or_init(|| Plan::of(meta)).valid(nsn))
    })
}

/// A national significant number valid in the region `id` (`GB`, `DE`, ...).
pub(crate) fn valid_region(id: &str, nsn: &str) -> bool {
    let Some(meta) = DATABASE.by_id(id) else {
        return false;
    };
    PLANS
        .by_code
        .get(&meta.country_code())
        .and_then(|regions| regions.iter().find(|(m, _)| m.id() == id))
        .is_some_and(|(meta, plan)| plan.get_or_init(|| Plan::of(meta)).valid(nsn))
}

/// An international number (`digits`: country calling code then national significant
/// number, as after a `+` or an international prefix) valid in its country.
pub(crate) fn valid_international(digits: &str) -> bool {
    !digits.starts_with('0')
        && (1..=3).any(|k| {
            digits.len() > k + 3
                && digits[..k]
                    .parse::<u16>()
                    .is_ok_and(|cc| valid_in(cc, &digits[k..]))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        assert!(valid_in(1, "2015550123"));
        assert!(valid_in(1, "4165550123"), "Canada");
        assert!(!valid_in(1, "1015550123"));
        assert!(valid_region("GB", "2079460018"));
        assert!(valid_region("GB", "7400123456"));
        assert!(!valid_region("GB", "0079460018"));
        assert!(valid_region("FR", "123456789"));
        assert!(valid_region("DE", "30123456"));
        assert!(valid_region("IN", "9876543210"));
        assert!(valid_region("BR", "11961234567"));
        assert!(valid_international("442079460018"));
        assert!(valid_international("4930123456"));
        assert!(!valid_international("9990000000"));
    }
}
