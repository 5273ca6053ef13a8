//! Streaming: values split across chunks, holdback bound, long lines, PEM blocks, flushes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use hoop_plugin_dlp::engine::{MAX_HOLDBACK, builtin_types};
use support::{all, stream_chunks};

/// A line holding one value of each built-in type (with context), for split tests.
fn lines() -> Vec<String> {
    let mut v: Vec<String> = builtin_types()
        .iter()
        .map(|t| format!("row 42 | {} | done\n", t.example))
        .collect();
    v.push("ssn: 536228741 and passport: C03005988, imei 35-209900-176148-1\n".into());
    v.push("call +44 20 7946 0958 or (415) 555-0132 from 2001:db8::8a2e:370:7334\n".into());
    v.push("Set-Cookie: id=a3fWa; Expires=Thu, 21 Oct 2026 07:28:00 GMT; Secure\n".into());
    v
}

#[test]
fn every_split_point_matches_one_shot() {
    let e = all();
    for line in lines() {
        let input = line.as_bytes();
        let want = e.redact(input).output;
        assert_ne!(want, input, "nothing masked in {line:?}");
        for k in 0..=input.len() {
            let mut s = e.stream();
            let mut out = Vec::new();
            s.push(&input[..k], &mut out);
            s.push(&input[k..], &mut out);
            s.flush(&mut out);
            assert!(
                out == want,
                "split at {k} of {line:?}: {:?} != {:?}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&want)
            );
        }
    }
}

#[test]
fn byte_by_byte_and_odd_chunkings_match_one_shot() {
    let e = all();
    let text: String = lines().concat();
    let want = e.redact(text.as_bytes()).output;
    for sizes in [
        &[1usize][..],
        &[2, 3, 5, 7],
        &[1023],
        &[1024],
        &[1025],
        &[4096],
    ] {
        assert_eq!(
            stream_chunks(&e, text.as_bytes(), sizes),
            want,
            "sizes {sizes:?}"
        );
    }
}

/// A long line (no `\n` for several KiB) with values spread through it.
fn long_line() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..60 {
        s.push_str(&format!(
            "item {i} owner jane{i}@example.com card 4111 1111 1111 1111 ip 10.0.{i}.7 "
        ));
        if i % 7 == 0 {
            s.push_str("AKIAIOSFODNN7EXAMPLE,");
        }
    }
    s.push('\n');
    s.into_bytes()
}

#[test]
fn long_lines_are_masked_and_stream_like_one_shot() {
    let e = all();
    let input = long_line();
    assert!(input.len() > 4 * MAX_HOLDBACK);
    let r = e.redact(&input);
    let out = String::from_utf8(r.output.clone()).unwrap();
    assert!(!out.contains("@example.com"), "{out}");
    assert!(!out.contains("4111"), "{out}");
    assert!(!out.contains("AKIA"), "{out}");
    assert_eq!(r.counts["EMAIL_ADDRESS"], 60);
    assert_eq!(r.counts["CREDIT_CARD_NUMBER"], 60);
    for sizes in [&[1usize][..], &[3, 1000], &[512], &[4096], &[777, 1, 64]] {
        assert_eq!(
            stream_chunks(&e, &input, sizes),
            r.output,
            "sizes {sizes:?}"
        );
    }
}

fn pem_block(lines: usize) -> String {
    let mut s = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for i in 0..lines {
        s.push_str(&format!(
            "MIIEow{i:04}AAKCAQEAtk9mP2nQx+Zy7VvA0cJ3u1Lr8dWqFhKx5T0oN6eYbGm/Pq{i:02}\n"
        ));
    }
    s.push_str("-----END RSA PRIVATE KEY-----\n");
    s
}

#[test]
fn pem_blocks_longer_than_the_holdback_are_masked_whole() {
    let e = all();
    let text = format!("before\n{}after 10.1.2.3\n", pem_block(80));
    assert!(text.len() > 4 * MAX_HOLDBACK);
    let r = e.redact(text.as_bytes());
    assert_eq!(
        String::from_utf8(r.output.clone()).unwrap(),
        "before\n[PRIVATE_KEY]\nafter [IP_ADDRESS]\n"
    );
    assert_eq!(r.counts["PRIVATE_KEY"], 1);
    for sizes in [&[1usize][..], &[17], &[64, 1], &[4096]] {
        assert_eq!(stream_chunks(&e, text.as_bytes(), sizes), r.output);
    }
    // A PEM block inside one long JSON line (escaped newlines).
    let json = format!(
        "{{\"key\": \"{}\", \"ok\": true}}\n",
        pem_block(60).replace('\n', "\\n")
    );
    assert!(json.len() > 3 * MAX_HOLDBACK);
    let r = e.redact(json.as_bytes());
    let out = String::from_utf8(r.output.clone()).unwrap();
    assert!(
        out.starts_with("{\"key\": \"[PRIVATE_KEY]\\n\", \"ok\": true}"),
        "{out}"
    );
    for sizes in [&[1usize][..], &[100, 3], &[4096]] {
        assert_eq!(stream_chunks(&e, json.as_bytes(), sizes), r.output);
    }
}

#[test]
fn tokens_longer_than_the_holdback_are_masked_whole() {
    let e = all();
    let payload = "A".repeat(3000);
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJ{payload}.c2lnbmF0dXJl");
    let text = format!("token={jwt} user=42\n");
    let r = e.redact(text.as_bytes());
    assert_eq!(
        String::from_utf8(r.output.clone()).unwrap(),
        "token=[JSON_WEB_TOKEN] user=42\n"
    );
    for sizes in [&[1usize][..], &[333], &[4096]] {
        assert_eq!(stream_chunks(&e, text.as_bytes(), sizes), r.output);
    }
    let masked = e.findings(text.as_bytes());
    assert_eq!(masked.len(), 1);
    assert_eq!((masked[0].start, masked[0].end), (6, 6 + jwt.len()));
}

#[test]
fn holdback_never_exceeds_the_limit() {
    let e = all();
    let mut s = e.stream();
    let mut out = Vec::new();
    let blob = vec![b'x'; 10_000];
    for chunk in blob.chunks(100) {
        s.push(chunk, &mut out);
        assert!(s.held() <= MAX_HOLDBACK);
    }
    s.push(b"\n", &mut out);
    assert_eq!(s.held(), 0);
    s.flush(&mut out);
    let mut want = blob.clone();
    want.push(b'\n');
    assert_eq!(out, want);
}

#[test]
fn pem_state_survives_a_mid_stream_flush() {
    let e = all();
    let block = pem_block(10);
    let (head, tail) = block.split_at(block.len() / 2);
    let mut s = e.stream();
    let mut out = Vec::new();
    s.push(head.as_bytes(), &mut out);
    s.flush(&mut out);
    assert!(s.in_value());
    s.push(tail.as_bytes(), &mut out);
    s.push(b"next 1.2.3\n", &mut out);
    s.flush(&mut out);
    assert!(!s.in_value());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "[PRIVATE_KEY]\nnext 1.2.3\n"
    );
}

#[test]
fn mid_stream_flush_is_sane() {
    // A value cut by a flush is detected from the part seen so far: here the card's first
    // half is released, and its second half (a 8-digit run) is not a card: it leaks. This
    // is the documented limit of flushing in the middle of a line.
    let e = all();
    let mut s = e.stream();
    let mut out = Vec::new();
    s.push(b"card 4111 1111 ", &mut out);
    s.flush(&mut out);
    s.push(b"1111 1111 ok\n", &mut out);
    s.flush(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "card 4111 1111 1111 1111 ok\n"
    );
    // Without the flush the same bytes are masked.
    assert_eq!(
        support::red(&e, "card 4111 1111 1111 1111 ok\n"),
        "card [CREDIT_CARD_NUMBER] ok\n"
    );
}

#[test]
fn non_utf8_passes_through() {
    let e = all();
    let mut input = vec![0xff, 0xfe, b' '];
    input.extend_from_slice(b"jane@example.com ");
    input.extend_from_slice(&[0xc3, 0x28, 0x80, b'\n', 0x00, 0x01]);
    let out = e.redact(&input).output;
    let mut want = vec![0xff, 0xfe, b' '];
    want.extend_from_slice(b"[EMAIL_ADDRESS] ");
    want.extend_from_slice(&[0xc3, 0x28, 0x80, b'\n', 0x00, 0x01]);
    assert_eq!(out, want);
}

#[test]
fn counters_and_masked_bytes() {
    let e = all();
    let mut s = e.stream();
    let mut out = Vec::new();
    s.push(
        b"a jane@example.com b 10.0.0.1\nc bob@example.org\n",
        &mut out,
    );
    s.flush(&mut out);
    let c = s.counts();
    assert_eq!(c["EMAIL_ADDRESS"], 2);
    assert_eq!(c["IP_ADDRESS"], 1);
    assert_eq!(c.len(), 2);
    assert_eq!(s.masked_bytes(), (16 + 8 + 15) as u64);
}
