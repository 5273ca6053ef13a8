//! Check-digit algorithms used to validate candidates.

/// Luhn (mod 10) check over decimal digit values (0..=9), most significant first.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// True when every digit is the same (`0000000000000`, `4444...`).
pub(crate) fn all_same(digits: &[u8]) -> bool {
    digits.windows(2).all(|w| w[0] == w[1])
}

/// Payment card number rules: 12-19 digits, a known issuer prefix for the length, Luhn,
/// not one repeated digit.
///
/// * 12 digits: Maestro only (50, 56-69);
/// * 15 digits: American Express (34, 37) and JCB (2131, 1800) only (other 15-digit
///   Luhn numbers are IMEIs);
/// * 13, 14 and 16-19 digits: Visa (4), Mastercard (51-55, 2221-2720), Mir (2200-2204),
///   Diners Club (300-305, 3095, 36, 38, 39), JCB (35), Discover (6011, 644-649, 65),
///   UnionPay (62), Maestro (50, 56-69): any number starting with 4, 5 or 6, with 30, 34-39
///   or with 22-27.
pub(crate) fn card_ok(d: &[u8]) -> bool {
    if !(12..=19).contains(&d.len()) || all_same(d) {
        return false;
    }
    let (d0, d1) = (d[0], d[1]);
    let prefix_ok = match d.len() {
        12 => maestro(d0, d1),
        15 => jcb15(d) || d0 == 3 && (d1 == 4 || d1 == 7),
        _ => match d0 {
            4..=6 => true,
            3 => matches!(d1, 0 | 4 | 5 | 6 | 7 | 8 | 9),
            2 => (2..=7).contains(&d1),
            _ => false,
        },
    };
    prefix_ok && luhn(d)
}

/// Maestro's range: 50 and 56-69.
fn maestro(d0: u8, d1: u8) -> bool {
    match d0 {
        5 => d1 == 0 || d1 >= 6,
        6 => true,
        _ => false,
    }
}

/// JCB's 15-digit prefixes, 2131 and 1800.
pub(crate) fn jcb15(d: &[u8]) -> bool {
    d.len() >= 4 && (d[..4] == [2, 1, 3, 1] || d[..4] == [1, 8, 0, 0])
}

/// IMEI: 15 digits, Luhn-valid, not one repeated digit.
pub(crate) fn imei_ok(d: &[u8]) -> bool {
    d.len() == 15 && !all_same(d) && luhn(d)
}

/// US SSN area/group/serial validity (digit values, 9 of them).
pub(crate) fn ssn_ok(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// Brazilian CPF: 11 digits, both check digits, not one repeated digit.
pub(crate) fn cpf_ok(d: &[u8]) -> bool {
    if d.len() != 11 || all_same(d) {
        return false;
    }
    let check = |n: usize| -> u8 {
        let mut sum = 0u32;
        for (i, &x) in d[..n].iter().enumerate() {
            sum += u32::from(x) * (n as u32 + 1 - i as u32);
        }
        let r = (sum * 10) % 11;
        if r == 10 { 0 } else { r as u8 }
    };
    check(9) == d[9] && check(10) == d[10]
}

/// IBAN length by country code, for the countries of the IBAN registry.
pub(crate) fn iban_len(cc: &[u8]) -> Option<usize> {
    let len = match cc {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"SA" => 24,
        b"SC" => 31,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        _ => return None,
    };
    Some(len)
}

/// IBAN mod-97 check over the compact upper-case form (country, check digits, BBAN).
pub(crate) fn iban_mod97(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        match c {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// ISO 3779 / FMVSS 115 VIN check: 17 characters without I, O, Q, check digit at
/// position 9, and a valid model-year character at position 10.
pub(crate) fn vin_ok(v: &[u8]) -> bool {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    if v.len() != 17 {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in v.iter().enumerate() {
        let val = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A' | b'J' => 1,
            b'B' | b'K' | b'S' => 2,
            b'C' | b'L' | b'T' => 3,
            b'D' | b'M' | b'U' => 4,
            b'E' | b'N' | b'V' => 5,
            b'F' | b'W' => 6,
            b'G' | b'P' | b'X' => 7,
            b'H' | b'Y' => 8,
            b'R' | b'Z' => 9,
            _ => return false,
        };
        sum += val * WEIGHTS[i];
    }
    let check = match sum % 11 {
        10 => b'X',
        r => b'0' + r as u8,
    };
    v[8] == check && !matches!(v[9], b'U' | b'Z' | b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect()
    }

    #[test]
    fn known_values() {
        assert!(card_ok(&d("4111111111111111")));
        assert!(card_ok(&d("378282246310005")));
        assert!(!card_ok(&d("4111111111111112")));
        assert!(!card_ok(&d("0000000000000000")));
        // Maestro 12, JCB 15, Diners 14, Mir 16, Mastercard 2-series, UnionPay 19.
        assert!(card_ok(&d("501800000009")));
        assert!(!card_ok(&d("401800000002")));
        assert!(card_ok(&d("213100000000001")));
        assert!(card_ok(&d("180000000000002")));
        assert!(card_ok(&d("30569309025904")));
        assert!(card_ok(&d("2200000000000004")));
        assert!(card_ok(&d("2221000000000009")));
        assert!(card_ok(&d("6200000000000000000")));
        assert!(imei_ok(&d("490154203237518")));
        assert!(cpf_ok(&d("123.456.789-09")));
        assert!(!cpf_ok(&d("111.111.111-11")));
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(!iban_mod97(b"GB82WEST12345698765431"));
        assert!(vin_ok(b"1HGCM82633A004352"));
        assert!(!vin_ok(b"1HGCM82633A004353"));
        assert!(ssn_ok(&d("536-22-8741")));
        assert!(!ssn_ok(&d("666-22-8741")));
        assert!(!ssn_ok(&d("936-22-8741")));
        assert!(!ssn_ok(&d("536-00-8741")));
        assert!(!ssn_ok(&d("536-22-0000")));
    }
}
