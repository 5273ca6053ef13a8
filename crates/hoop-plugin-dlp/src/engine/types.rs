//! The built-in info types: names, descriptions, examples and their fixed priority.

/// Static description of one built-in info type (what `hoop dlp types` lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoTypeInfo {
    /// Canonical name, e.g. `EMAIL_ADDRESS`.
    pub name: &'static str,
    /// One-line description of what is detected.
    pub description: &'static str,
    /// An example value that the engine detects as this type (with its context, if the
    /// type needs one).
    pub example: &'static str,
}

/// Built-in info types, in priority order: when two candidates cover exactly the same
/// bytes, the one listed first wins. The discriminant is the index in [`BUILTIN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum B {
    PrivateKey = 0,
    StorageSignedUrl,
    SlackToken,
    PasswordInUrl,
    CardTrack,
    Jwt,
    GithubToken,
    AwsAccessKeyId,
    AwsSecretAccessKey,
    HttpCookie,
    CreditCard,
    Imei,
    Ssn,
    Cpf,
    Passport,
    Iban,
    Vin,
    Phone,
    Ip,
    Email,
    Url,
}

/// Number of built-in types.
pub(crate) const BUILTIN_COUNT: usize = 21;

impl B {
    /// Kind index of this type.
    pub(crate) const fn kind(self) -> u16 {
        self as u16
    }

    /// Bit of this type in an enabled-set mask.
    pub(crate) const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The built-in info types, indexed by [`B`].
pub(crate) static BUILTIN: [InfoTypeInfo; BUILTIN_COUNT] = [
    InfoTypeInfo {
        name: "PRIVATE_KEY",
        description: "PEM private key block (`-----BEGIN ... PRIVATE KEY-----` to its END line)",
        example: "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----",
    },
    InfoTypeInfo {
        name: "STORAGE_SIGNED_URL",
        description: "pre-signed object storage URL (S3 X-Amz-Signature, GCS X-Goog-Signature, Azure SAS sig=)",
        example: "https://reports.s3.amazonaws.com/q3.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
    },
    InfoTypeInfo {
        name: "SLACK_TOKEN",
        description: "Slack API token (xoxb-, xoxp-, ...) or incoming-webhook URL",
        example: "xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1",
    },
    InfoTypeInfo {
        name: "PASSWORD_IN_URL",
        description: "password in the user-info part of a URL (scheme://user:password@host); only the password is masked",
        example: "postgres://app:s3cr3t-Pa55@db.internal:5432/app",
    },
    InfoTypeInfo {
        name: "CREDIT_CARD_TRACK_NUMBER",
        description: "magnetic stripe track 1 (%B...^NAME^...?) or track 2 (;PAN=...?) data",
        example: "%B4111111111111111^DOE/JOHN^2512101000000000000?",
    },
    InfoTypeInfo {
        name: "JSON_WEB_TOKEN",
        description: "JSON Web Token: three base64url segments, the first starting with eyJ",
        example: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    },
    InfoTypeInfo {
        name: "GITHUB_TOKEN",
        description: "GitHub token (ghp_, gho_, ghu_, ghs_, ghr_ + 36 chars, or github_pat_ + 82 chars)",
        example: "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    },
    InfoTypeInfo {
        name: "AWS_ACCESS_KEY_ID",
        description: "AWS access key id (AKIA, ASIA, AIDA, AROA, ... + 16 base32 characters)",
        example: "AKIAIOSFODNN7EXAMPLE",
    },
    InfoTypeInfo {
        name: "AWS_SECRET_ACCESS_KEY",
        description: "40-character AWS secret access key following an aws_secret_access_key-like name on the same line",
        example: "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    },
    InfoTypeInfo {
        name: "HTTP_COOKIE",
        description: "value of a Cookie: or Set-Cookie: header (the header name stays visible)",
        example: "Cookie: session_id=3f9a1c2b7d4e; theme=dark",
    },
    InfoTypeInfo {
        name: "CREDIT_CARD_NUMBER",
        description: "payment card number, Luhn-valid, with an issuer prefix for its length (Visa 13/16/19, Mastercard 2- and 5-series, Amex 15, Discover and UnionPay 16-19, JCB 15/16, Diners 14, Maestro 12-19, Mir); bare or in space/dash groups",
        example: "4111 1111 1111 1111",
    },
    InfoTypeInfo {
        name: "IMEI_HARDWARE_ID",
        description: "IMEI: 15 Luhn-valid digits, or the AA-BBBBBB-CCCCCC-D form",
        example: "490154203237518",
    },
    InfoTypeInfo {
        name: "US_SOCIAL_SECURITY_NUMBER",
        description: "US SSN AAA-GG-SSSS (dashes or spaces; bare 9 digits only after ssn/social security)",
        example: "536-22-8741",
    },
    InfoTypeInfo {
        name: "BRAZIL_CPF_NUMBER",
        description: "Brazilian CPF (000.000.000-00 or 11 digits) with both check digits valid",
        example: "123.456.789-09",
    },
    InfoTypeInfo {
        name: "US_PASSPORT",
        description: "US passport number (9 digits or a letter + 8 digits) within 40 bytes after the word passport",
        example: "passport no. 912803456",
    },
    InfoTypeInfo {
        name: "IBAN_CODE",
        description: "IBAN with a known country length and mod-97 check (compact or in groups of 4)",
        example: "DE89 3704 0044 0532 0130 00",
    },
    InfoTypeInfo {
        name: "VEHICLE_IDENTIFICATION_NUMBER",
        description: "17-character VIN (no I, O, Q) with a valid ISO 3779 check digit",
        example: "1HGCM82633A004352",
    },
    InfoTypeInfo {
        name: "PHONE_NUMBER",
        description: "phone number with its extension (x123, ext. 12, #204): +E.164 or 00/011 prefix; US/NANP (415) 555-0132, 415.555.0132, 1-/+1-/001-415-555-0132; UK, German, French, Brazilian, Indian national formats valid in libphonenumber's plans (020 7946 0958, 030 901820, 01 23 45 67 89, (11) 91234-5678, 98765 43210); bare 10-11 digits only under a phone/tel/mobile/cell/fax key or table column, as are trunk-less national numbers of 7-13 digits valid in those plans (1800 12 3456, 4004-1234, 310-1234) and +numbers of 5-6 digits (+98 9601)",
        example: "+1 (415) 555-0132 ext. 12",
    },
    InfoTypeInfo {
        name: "IP_ADDRESS",
        description: "IPv4 (dotted quad, not part of a longer dotted number) or IPv6 (full or compressed)",
        example: "10.42.7.19",
    },
    InfoTypeInfo {
        name: "EMAIL_ADDRESS",
        description: "e-mail address",
        example: "jane.doe@example.com",
    },
    InfoTypeInfo {
        name: "URL",
        description: "http, https, ftp or www. URL",
        example: "https://intranet.example.com/reports?id=42",
    },
];

/// Static descriptions of every built-in info type, in priority order.
pub fn builtin_types() -> &'static [InfoTypeInfo] {
    &BUILTIN
}

/// Kind index of a built-in type name.
pub(crate) fn builtin_kind(name: &str) -> Option<u16> {
    BUILTIN
        .iter()
        .position(|t| t.name == name)
        .and_then(|i| u16::try_from(i).ok())
}
