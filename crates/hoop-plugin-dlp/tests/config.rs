//! Engine configuration: masking styles, custom types, errors, type catalogue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;

use hoop_plugin_dlp::engine::{
    CustomType, DlpError, Engine, EngineConfig, StreamRedactor, Style, builtin_types,
};
use support::{all, red};

/// The canonical info type names (hoop.dev's).
const CANONICAL: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "BRAZIL_CPF_NUMBER",
    "CREDIT_CARD_NUMBER",
    "CREDIT_CARD_TRACK_NUMBER",
    "EMAIL_ADDRESS",
    "GITHUB_TOKEN",
    "HTTP_COOKIE",
    "IBAN_CODE",
    "IMEI_HARDWARE_ID",
    "IP_ADDRESS",
    "JSON_WEB_TOKEN",
    "PASSWORD_IN_URL",
    "PHONE_NUMBER",
    "PRIVATE_KEY",
    "SLACK_TOKEN",
    "STORAGE_SIGNED_URL",
    "URL",
    "US_PASSPORT",
    "US_SOCIAL_SECURITY_NUMBER",
    "VEHICLE_IDENTIFICATION_NUMBER",
];

fn engine(types: &[&str], style: Style, styles: &[(&str, Style)]) -> Engine {
    Engine::new(EngineConfig {
        types: types.iter().map(|s| s.to_string()).collect(),
        default_style: style,
        styles: styles.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        hash_key: b"deployment-key".to_vec(),
        ..EngineConfig::default()
    })
    .unwrap()
}

#[test]
fn catalogue_covers_the_canonical_names_and_examples_are_detected() {
    let mut names: Vec<&str> = builtin_types().iter().map(|t| t.name).collect();
    names.sort_unstable();
    assert_eq!(names, CANONICAL);
    let e = all();
    for t in builtin_types() {
        assert!(!t.description.is_empty());
        let r = e.redact(t.example.as_bytes());
        assert!(
            r.counts.get(t.name).copied().unwrap_or(0) >= 1,
            "{}: {:?}",
            t.name,
            r
        );
        // Only that type is found in its example.
        assert_eq!(r.counts.len(), 1, "{}: {:?}", t.name, r.counts);
    }
}

#[test]
fn engine_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Engine>();
    send::<StreamRedactor>();
}

#[test]
fn masking_styles() {
    let card = "pay 4111-1111-1111-1111 now";
    let mail = "to jane.doe@example.com.";
    let r = engine(&["CREDIT_CARD_NUMBER", "EMAIL_ADDRESS"], Style::Redact, &[]);
    assert_eq!(red(&r, card), "pay [CREDIT_CARD_NUMBER] now");
    let m = engine(&["CREDIT_CARD_NUMBER", "EMAIL_ADDRESS"], Style::Mask, &[]);
    assert_eq!(red(&m, card), "pay ****-****-****-**** now");
    assert_eq!(red(&m, mail), "to ****.***@*******.***.");
    let p = engine(
        &["CREDIT_CARD_NUMBER", "EMAIL_ADDRESS"],
        Style::Partial,
        &[],
    );
    assert_eq!(red(&p, card), "pay ****-****-****-1111 now");
    assert_eq!(red(&p, mail), "to ****.***@******e.com.");
    let h = engine(&["CREDIT_CARD_NUMBER", "EMAIL_ADDRESS"], Style::Hash, &[]);
    let out = red(&h, card);
    let tag = out.strip_prefix("pay [CREDIT_CARD_NUMBER:").unwrap();
    let hex = tag.strip_suffix("] now").unwrap();
    assert_eq!(hex.len(), 16);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // Same value, same tag; other value or other key, other tag.
    assert_eq!(red(&h, card), out);
    assert_ne!(red(&h, "pay 5555-5555-5555-4444 now"), out);
    let other_key = Engine::new(EngineConfig {
        types: vec!["CREDIT_CARD_NUMBER".into()],
        default_style: Style::Hash,
        hash_key: b"another-key".to_vec(),
        ..EngineConfig::default()
    })
    .unwrap();
    assert_ne!(red(&other_key, card), out);
}

#[test]
fn per_type_style_overrides() {
    let e = engine(
        &["CREDIT_CARD_NUMBER", "EMAIL_ADDRESS", "PHONE_NUMBER"],
        Style::Redact,
        &[
            ("CREDIT_CARD_NUMBER", Style::Partial),
            ("PHONE_NUMBER", Style::Mask),
        ],
    );
    assert_eq!(
        red(&e, "4111111111111111 jane@example.com (415) 555-0132"),
        "************1111 [EMAIL_ADDRESS] (***) ***-****"
    );
}

#[test]
fn style_errors() {
    let err = Engine::new(EngineConfig {
        types: vec!["EMAIL_ADDRESS".into()],
        default_style: Style::Hash,
        ..EngineConfig::default()
    })
    .unwrap_err();
    assert_eq!(err, DlpError::MissingHashKey);
    let err = Engine::new(EngineConfig {
        types: vec!["EMAIL_ADDRESS".into()],
        styles: HashMap::from([("URL".to_string(), Style::Mask)]),
        ..EngineConfig::default()
    })
    .unwrap_err();
    assert_eq!(err, DlpError::StyleForInactiveType { name: "URL".into() });
    assert_eq!("mask".parse::<Style>().unwrap(), Style::Mask);
    let err = "blur".parse::<Style>().unwrap_err();
    assert!(
        err.to_string()
            .contains("valid styles: redact, mask, partial, hash")
    );
    let s: Style = serde_json::from_str("\"partial\"").unwrap();
    assert_eq!(s, Style::Partial);
}

#[test]
fn unknown_type_lists_valid_names() {
    let err = Engine::new(EngineConfig::new(["EMAIL_ADDRESS", "SHOE_SIZE"])).unwrap_err();
    let DlpError::UnknownType { name, valid } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(name, "SHOE_SIZE");
    assert_eq!(valid, CANONICAL);
    assert!(err.to_string().starts_with(
        "unknown info type `SHOE_SIZE`; valid types: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,"
    ));
    // Custom names are valid too.
    let err = Engine::new(EngineConfig {
        types: vec!["NOPE".into()],
        custom: vec![CustomType::regex("EMPLOYEE_ID", r"\bE\d{6}\b")],
        ..EngineConfig::default()
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("VEHICLE_IDENTIFICATION_NUMBER, EMPLOYEE_ID"),
        "{err}"
    );
}

#[test]
fn custom_regex_types() {
    let e = Engine::new(EngineConfig {
        types: vec!["EMAIL_ADDRESS".into(), "EMPLOYEE_ID".into()],
        custom: vec![CustomType::regex("EMPLOYEE_ID", r"\bE\d{6}\b")],
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(e.active_types(), ["EMAIL_ADDRESS", "EMPLOYEE_ID"]);
    assert_eq!(
        red(&e, "E123456 mailed bob@example.com; XE123456 not\n"),
        "[EMPLOYEE_ID] mailed [EMAIL_ADDRESS]; XE123456 not\n"
    );
    // Anchors are per line.
    let e = Engine::new(EngineConfig {
        custom: vec![CustomType::regex("HEADER", r"^SECRET:.*$")],
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(
        red(&e, "a\nSECRET: x y\nb SECRET: z\n"),
        "a\n[HEADER]\nb SECRET: z\n"
    );
    let r = e.redact(b"SECRET: 1\nSECRET: 2\n");
    assert_eq!(r.counts["HEADER"], 2);
}

#[test]
fn custom_keyword_types() {
    let e = Engine::new(EngineConfig {
        custom: vec![
            CustomType::keywords("PROJECT", ["Apollo", "Project X"], false),
            CustomType::keywords("CODENAME", ["bluebird"], true),
        ],
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(
        red(
            &e,
            "Apollo and Project X, not Apollonia or apollo; BlueBird BLUEBIRD bluebirds"
        ),
        "[PROJECT] and [PROJECT], not Apollonia or apollo; [CODENAME] [CODENAME] bluebirds"
    );
}

#[test]
fn custom_type_errors() {
    let build = |c: CustomType| {
        Engine::new(EngineConfig {
            custom: vec![c],
            ..EngineConfig::default()
        })
    };
    let err = build(CustomType::regex("EMPLOYEE_ID", r"E\d{6")).unwrap_err();
    let DlpError::InvalidRegex { name, message } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(name, "EMPLOYEE_ID");
    assert!(!message.is_empty());
    assert!(
        err.to_string()
            .starts_with("custom info type `EMPLOYEE_ID`: invalid regex:")
    );
    for bad in ["employee_id", "EMPLOYEE-ID", "_X", "X_", "A__B", ""] {
        let err = build(CustomType::regex(bad, "x")).unwrap_err();
        assert!(
            matches!(err, DlpError::InvalidCustomName { .. }),
            "{bad}: {err:?}"
        );
    }
    let err = build(CustomType::regex("EMAIL_ADDRESS", "x")).unwrap_err();
    assert!(err.to_string().contains("built-in"), "{err}");
    let err = Engine::new(EngineConfig {
        custom: vec![
            CustomType::regex("A1", "x"),
            CustomType::keywords("A1", ["y"], false),
        ],
        ..EngineConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    let both = CustomType {
        name: "BOTH".into(),
        regex: Some("x".into()),
        keywords: vec!["y".into()],
        case_insensitive: false,
    };
    assert!(matches!(
        build(both).unwrap_err(),
        DlpError::InvalidCustomType { .. }
    ));
    let neither = CustomType {
        name: "NEITHER".into(),
        ..CustomType::default()
    };
    assert!(matches!(
        build(neither).unwrap_err(),
        DlpError::InvalidCustomType { .. }
    ));
    assert!(matches!(
        build(CustomType::keywords("EMPTY", [""], false)).unwrap_err(),
        DlpError::InvalidCustomType { .. }
    ));
    let c: CustomType = serde_json::from_str(
        r#"{"name": "TICKET", "keywords": ["ops-1"], "case_insensitive": true}"#,
    )
    .unwrap();
    assert_eq!(c, CustomType::keywords("TICKET", ["ops-1"], true));
}

#[test]
fn overlap_rules() {
    let e = all();
    // Leftmost-longest: an e-mail, IP or phone inside a URL is part of the URL.
    assert_eq!(
        red(
            &e,
            "see https://x.example.com/?u=jane@example.com&ip=10.0.0.1 ok"
        ),
        "see [URL] ok"
    );
    // Specific URL types replace URL.
    assert_eq!(
        red(&e, "https://b.s3.amazonaws.com/k?X-Amz-Signature=abc123"),
        "[STORAGE_SIGNED_URL]"
    );
    assert_eq!(
        red(&e, "https://user:pw123@example.com/a"),
        "https://user:[PASSWORD_IN_URL]@example.com/a"
    );
    // Without PASSWORD_IN_URL, the whole URL is a URL.
    let u = Engine::new(EngineConfig::new(["URL", "EMAIL_ADDRESS"])).unwrap();
    assert_eq!(red(&u, "https://user:pw123@example.com/a"), "[URL]");
    // Without URL, the e-mail inside it is found.
    let m = Engine::new(EngineConfig::new(["EMAIL_ADDRESS"])).unwrap();
    assert_eq!(
        red(&m, "https://x.com/?u=jane@example.com"),
        "https://x.com/?u=[EMAIL_ADDRESS]"
    );
    // A card inside track data is the track.
    assert_eq!(
        red(&e, ";4111111111111111=25121010000000000?"),
        "[CREDIT_CARD_TRACK_NUMBER]"
    );
}

#[test]
fn only_active_types_are_masked() {
    let e = Engine::new(EngineConfig::new(["IP_ADDRESS"])).unwrap();
    assert_eq!(
        red(&e, "jane@example.com 10.0.0.1 4111111111111111"),
        "jane@example.com [IP_ADDRESS] 4111111111111111"
    );
    let none = Engine::new(EngineConfig::default()).unwrap();
    assert_eq!(
        red(&none, "jane@example.com 10.0.0.1"),
        "jane@example.com 10.0.0.1"
    );
}

#[test]
fn debug_never_shows_the_hash_key() {
    let key = b"hash-key-from-the-secret-key-0123456789".to_vec();
    let mut config = EngineConfig::new(["EMAIL_ADDRESS"]);
    config.hash_key = key.clone();
    let settings = hoop_plugin_dlp::DlpSettings {
        hash_key: key.clone(),
        ..Default::default()
    };
    let as_list = format!("{key:?}");
    for debug in [format!("{config:?}"), format!("{settings:#?}")] {
        assert!(!debug.contains(&as_list), "{debug}");
        assert!(debug.contains("hash_key: <redacted>"), "{debug}");
    }
}
