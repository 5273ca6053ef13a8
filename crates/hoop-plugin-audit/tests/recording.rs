//! Tests of session recordings: round trips, the hash chain, tampering, truncation, the flush
//! deadline, and the stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hoop_plugin_audit::recording::{
    DURABILITY_BOUND, Digest, Event, EventKind, FILE_MAGIC, FormatVersion, FsRecordingStore,
    GENESIS_DOMAIN, MAX_RECORD_PAYLOAD, ManualClock, MemoryRecordingStore, RecordedEvent,
    RecordingError, RecordingReader, RecordingSink, RecordingStore, RecordingWriter, SessionId,
    TornTail, Verification, VerifyError, VerifyFailure, WriterOptions, verify,
};
use serde_json::json;
use sha2::{Digest as _, Sha256};

const SESSION: &str = "sess-01_AB";

fn sid(id: &str) -> SessionId {
    SessionId::new(id).unwrap()
}

/// Every kind, non-UTF-8 and empty payloads.
fn sample_events() -> Vec<Event> {
    vec![
        Event::header(&json!({
            "session_id": SESSION,
            "user": "alice@example.com",
            "connection": "pg-prod",
            "verb": "exec",
            "started_at": "2026-11-24T10:00:00Z",
        }))
        .unwrap(),
        Event::stdin(1_000, &b"select 1;\n"[..]),
        Event::stdout(2_000, vec![0xff, 0xfe, 0x00, 0xc3, 0x28, b'\n']),
        Event::stderr(2_000, Bytes::new()),
        Event::stdout(3_500, Bytes::new()),
        Event::stderr(4_000, &b"warning: \x80 not utf-8"[..]),
        Event::close(5_000, &json!({"exit_code": 0, "reason": "client closed"})).unwrap(),
    ]
}

async fn record(store: &dyn RecordingStore, id: &SessionId, events: &[Event]) -> Digest {
    let mut writer = store.create(id).await.unwrap();
    for event in events {
        writer.append(event.clone()).await.unwrap();
    }
    writer.finish().await.unwrap()
}

/// Records `events` in memory: the bytes and the final digest.
async fn record_bytes(events: &[Event]) -> (Vec<u8>, Digest) {
    let store = MemoryRecordingStore::new();
    let id = sid(SESSION);
    let digest = record(&store, &id, events).await;
    (store.bytes(&id).unwrap(), digest)
}

fn reader(bytes: Vec<u8>) -> RecordingReader {
    RecordingReader::new(sid(SESSION), Cursor::new(bytes))
}

async fn read_all(mut reader: RecordingReader) -> (Vec<RecordedEvent>, Option<TornTail>) {
    let mut events = Vec::new();
    while let Some(event) = reader.next_event().await {
        events.push(event.unwrap());
    }
    (events, reader.torn_tail())
}

async fn verify_bytes(
    bytes: Vec<u8>,
    expected: Option<&Digest>,
) -> Result<Verification, RecordingError> {
    verify(reader(bytes), expected).await
}

fn corrupt(result: Result<Verification, RecordingError>) -> VerifyError {
    match result {
        Err(RecordingError::Corrupt(err)) => err,
        other => panic!("expected a verify error, got {other:?}"),
    }
}

fn header_len() -> usize {
    FILE_MAGIC.len() + 1 + SESSION.len()
}

fn assert_same_events(read: &[RecordedEvent], written: &[Event]) {
    assert_eq!(read.len(), written.len());
    for (i, (r, w)) in read.iter().zip(written).enumerate() {
        assert_eq!(r.index, i as u64);
        assert_eq!(r.kind, w.kind, "event {i}");
        assert_eq!(r.offset_ns, w.offset_ns, "event {i}");
        assert_eq!(r.payload, w.payload, "event {i}");
    }
}

#[tokio::test]
async fn round_trip_every_kind_in_memory() {
    let events = sample_events();
    let (bytes, digest) = record_bytes(&events).await;
    let (read, torn) = read_all(reader(bytes.clone())).await;
    assert_same_events(&read, &events);
    assert_eq!(torn, None);
    assert_eq!(read[0].json().unwrap()["user"], "alice@example.com");
    assert_eq!(read[6].json().unwrap()["exit_code"], 0);
    assert_eq!(read.last().unwrap().link, digest);
    // Records are contiguous after the file header and fill the file.
    let mut offset = header_len() as u64;
    for event in &read {
        assert_eq!(event.byte_offset, offset);
        offset += event.record_len();
    }
    assert_eq!(offset, bytes.len() as u64);
}

/// A sealed recording is complete on disk when `seal` returns (the fsync comes later), with
/// a digest that verifies it.
#[tokio::test]
async fn a_sealed_recording_is_whole_when_seal_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsRecordingStore::new(dir.path().join("recordings"));
    let events = sample_events();
    let finished = record(&store, &sid("finished"), &events).await;
    let id = sid("sealed");
    let mut writer = store.create(&id).await.unwrap();
    for event in &events {
        writer.append(event.clone()).await.unwrap();
    }
    let sealed = writer.seal().await.unwrap();
    let verification = verify(store.open(&id).await.unwrap(), Some(&sealed))
        .await
        .unwrap();
    assert!(verification.closed && !verification.truncated);
    assert_eq!(verification.events, 7);
    assert_eq!(
        verification.bytes,
        std::fs::metadata(store.path_for(&id)).unwrap().len()
    );
    // The same events under another session id: the same shape, another chain.
    let other = verify(store.open(&sid("finished")).await.unwrap(), Some(&finished))
        .await
        .unwrap();
    assert_eq!(other.events, verification.events);
    assert_ne!(sealed, finished);
}

#[tokio::test]
async fn round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsRecordingStore::new(dir.path().join("recordings"));
    let id = sid(SESSION);
    let events = sample_events();
    let digest = record(&store, &id, &events).await;
    assert!(store.path_for(&id).ends_with("recordings/sess-01_AB.hrec"));

    let (read, torn) = read_all(store.open(&id).await.unwrap()).await;
    assert_same_events(&read, &events);
    assert_eq!(torn, None);
    let verification = verify(store.open(&id).await.unwrap(), Some(&digest))
        .await
        .unwrap();
    assert_eq!(verification.events, 7);
    assert!(verification.closed);
    assert!(!verification.truncated);
    assert_eq!(
        verification.bytes,
        std::fs::metadata(store.path_for(&id)).unwrap().len()
    );
}

#[tokio::test]
async fn final_digest_is_stable_and_equals_verify() {
    let events = sample_events();
    let (bytes_a, digest_a) = record_bytes(&events).await;
    let (bytes_b, digest_b) = record_bytes(&events).await;
    assert_eq!(bytes_a, bytes_b);
    assert_eq!(digest_a, digest_b);

    let verification = verify_bytes(bytes_a.clone(), Some(&digest_a))
        .await
        .unwrap();
    assert_eq!(verification.final_digest, digest_a);
    assert_eq!(
        verify_bytes(bytes_a, None).await.unwrap().final_digest,
        digest_a
    );

    // Hex round trip.
    let hex = digest_a.to_string();
    assert_eq!(hex.len(), 64);
    assert_eq!(hex.parse::<Digest>().unwrap(), digest_a);
    assert!("zz".parse::<Digest>().is_err());
    assert!(hex[1..].parse::<Digest>().is_err());
    assert!(format!("{}g", &hex[1..]).parse::<Digest>().is_err());

    // Any different event gives a different digest.
    let mut other = events.clone();
    other[2].payload = Bytes::from_static(b"different");
    assert_ne!(record_bytes(&other).await.1, digest_a);
}

/// The recording of [`documented_events`] built by hand from the documented layout, with
/// `hash` (over the concatenation of its parts) linking the chain: the file and its final
/// link.
fn documented_file(
    magic: [u8; 8],
    domain: &[u8],
    hash: fn(&[&[u8]]) -> [u8; 32],
) -> (Vec<u8>, [u8; 32]) {
    let mut file = magic.to_vec();
    file.push(SESSION.len() as u8);
    file.extend_from_slice(SESSION.as_bytes());
    let mut link = hash(&[domain, &[SESSION.len() as u8], SESSION.as_bytes()]);
    for (kind, offset, payload) in [
        (1u8, 0u64, br#"{"session_id":"sess-01_AB"}"#.to_vec()),
        (3u8, 7u64, b"\x00hi".to_vec()),
    ] {
        let len = payload.len() as u32;
        file.extend_from_slice(&len.to_le_bytes());
        file.extend_from_slice(&(!len).to_le_bytes());
        file.push(kind);
        file.extend_from_slice(&offset.to_le_bytes());
        file.extend_from_slice(&payload);
        link = hash(&[
            &link,
            &[kind],
            &offset.to_le_bytes(),
            &len.to_le_bytes(),
            &payload,
        ]);
        file.extend_from_slice(&link);
    }
    (file, link)
}

fn documented_events() -> Vec<Event> {
    vec![
        Event::header(&json!({"session_id": SESSION})).unwrap(),
        Event::stdout(7, &b"\x00hi"[..]),
    ]
}

fn blake3_of(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

fn sha256_of(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Pins the format: a change of the encoding or of the chain must be deliberate. Writers
/// write version 2 (BLAKE3 links); the golden digest was also computed from the documented
/// layout with Python's `blake3` package.
#[tokio::test]
async fn format_is_as_documented() {
    let id = sid(SESSION);
    let (bytes, digest) = record_bytes(&documented_events()).await;
    assert_eq!(&FILE_MAGIC, b"HOOPREC\x02");
    assert_eq!(GENESIS_DOMAIN, b"hoop-rs session recording v2\0");
    let (expected, link) = documented_file(FILE_MAGIC, GENESIS_DOMAIN, blake3_of);
    assert_eq!(
        Digest::genesis(&id).as_bytes(),
        &blake3_of(&[GENESIS_DOMAIN, &[SESSION.len() as u8], SESSION.as_bytes()])
    );
    assert_eq!(bytes, expected);
    assert_eq!(digest.as_bytes(), &link);
    assert_eq!(
        digest.to_string(),
        "8e2510e35b1732bf48f5efcb9c02e291b52eac81fa1bc269ee9f32d6434139a2",
        "golden final digest"
    );
    let reader = reader(bytes);
    let verification = verify(reader, Some(&digest)).await.unwrap();
    assert_eq!(verification.events, 2);
}

/// Recordings of version 1 (SHA-256 links, written before version 2) still read and verify:
/// the golden digest is the one version 1's writer produced for these events.
#[tokio::test]
async fn version_1_recordings_still_verify() {
    let (file, link) = documented_file(
        *b"HOOPREC\x01",
        b"hoop-rs session recording v1\0",
        sha256_of,
    );
    let digest = Digest::from_bytes(link);
    assert_eq!(
        digest.to_string(),
        "5161a15ff9a9940cb5d62f369cee669542cd38d0832fd84566c8fa129917bd08",
        "golden final digest of version 1"
    );
    let mut r = reader(file.clone());
    let first = r.next_event().await.unwrap().unwrap();
    assert_eq!(r.format_version(), FormatVersion::V1);
    assert_eq!(first.kind, EventKind::Header);
    let (read, torn) = read_all(reader(file.clone())).await;
    assert_same_events(&read, &documented_events());
    assert_eq!(torn, None);
    let verification = verify(reader(file.clone()), Some(&digest)).await.unwrap();
    assert_eq!(verification.events, 2);

    // A changed payload byte is still found, at its record.
    let mut changed = file.clone();
    let at = changed.len() - 32 - 1;
    changed[at] ^= 1;
    assert_eq!(
        corrupt(verify_bytes(changed, Some(&digest)).await).index,
        Some(1)
    );

    // Relabelled as version 2 (or as a version that does not exist), it does not verify.
    let mut relabelled = file.clone();
    relabelled[7] = 2;
    let err = corrupt(verify_bytes(relabelled, Some(&digest)).await);
    assert_eq!(
        (err.index, err.reason),
        (Some(0), VerifyFailure::LinkMismatch)
    );
    let mut unknown = file;
    unknown[7] = 3;
    let err = corrupt(verify_bytes(unknown, Some(&digest)).await);
    assert_eq!((err.index, err.reason), (None, VerifyFailure::FileHeader));
}

/// The record (or the file header) containing each byte of `bytes`.
async fn locations(bytes: &[u8]) -> Vec<(Option<u64>, u64)> {
    let (read, _) = read_all(reader(bytes.to_vec())).await;
    let mut out = vec![(None, 0); header_len()];
    for event in &read {
        for _ in 0..event.record_len() {
            out.push((Some(event.index), event.byte_offset));
        }
    }
    assert_eq!(out.len(), bytes.len());
    out
}

#[tokio::test]
async fn every_single_byte_change_is_detected_and_located() {
    let (bytes, digest) = record_bytes(&sample_events()).await;
    let locations = locations(&bytes).await;
    for (pos, &(index, byte_offset)) in locations.iter().enumerate() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut tampered = bytes.clone();
            tampered[pos] ^= mask;
            for expected in [None, Some(&digest)] {
                let err = corrupt(verify_bytes(tampered.clone(), expected).await);
                assert_eq!(
                    (err.index, err.byte_offset),
                    (index, byte_offset),
                    "byte {pos} ^ {mask:#x} (expected digest: {}): {err}",
                    expected.is_some()
                );
            }
            // The reader returns every record before the damaged one, then the error.
            let mut r = reader(tampered);
            let mut good = 0;
            loop {
                match r.next_event().await {
                    Some(Ok(_)) => good += 1,
                    Some(Err(RecordingError::Corrupt(err))) => {
                        assert_eq!(err.index, index);
                        break;
                    }
                    other => panic!("byte {pos}: {other:?}"),
                }
            }
            assert_eq!(Some(good), index.or(Some(0)));
            assert!(r.next_event().await.is_none());
        }
    }
}

#[tokio::test]
async fn changed_final_digest_is_detected() {
    let (bytes, digest) = record_bytes(&sample_events()).await;
    let mut other = *digest.as_bytes();
    other[31] ^= 1;
    let err = corrupt(verify_bytes(bytes.clone(), Some(&Digest::from_bytes(other))).await);
    assert_eq!(err.reason, VerifyFailure::FinalDigestMismatch);
    assert_eq!(err.index, Some(7));
    assert_eq!(err.byte_offset, bytes.len() as u64);
}

#[tokio::test]
async fn truncation_at_every_length() {
    let events = sample_events();
    let (bytes, digest) = record_bytes(&events).await;
    let (read, _) = read_all(reader(bytes.clone())).await;
    let ends: Vec<u64> = read
        .iter()
        .map(|e| e.byte_offset + e.record_len())
        .collect();
    for cut in 0..bytes.len() {
        let complete = ends.iter().filter(|&&end| end <= cut as u64).count();
        let at_boundary = cut == header_len() || ends.contains(&(cut as u64));

        // Without the digest: what is there reads and verifies, a tear is reported.
        let (got, torn) = read_all(reader(bytes[..cut].to_vec())).await;
        assert_same_events(&got, &events[..complete]);
        let v = verify_bytes(bytes[..cut].to_vec(), None).await.unwrap();
        assert_eq!(v.events, complete as u64, "cut {cut}");
        assert_eq!(v.truncated, !at_boundary, "cut {cut}");
        assert_eq!(torn, v.torn_tail);
        if let Some(torn) = v.torn_tail {
            assert_eq!(torn.byte_offset + torn.len, cut as u64);
            if cut < header_len() {
                assert_eq!(torn.index, None);
            } else {
                assert_eq!(torn.index, Some(complete as u64));
                assert_eq!(torn.byte_offset, v.bytes);
            }
        }
        if complete > 0 {
            assert_eq!(v.final_digest, read[complete - 1].link);
        }

        // With the digest: the first missing event is named.
        let err = corrupt(verify_bytes(bytes[..cut].to_vec(), Some(&digest)).await);
        if cut < header_len() {
            assert_eq!(err.index, None, "cut {cut}");
        } else {
            assert_eq!(err.index, Some(complete as u64), "cut {cut}");
        }
        let reason = if at_boundary {
            VerifyFailure::FinalDigestMismatch
        } else {
            VerifyFailure::Truncated
        };
        assert_eq!(err.reason, reason, "cut {cut}");
    }
}

/// The bytes of each record of `bytes`, after the file header.
async fn split_records(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (read, _) = read_all(reader(bytes.to_vec())).await;
    let records = read
        .iter()
        .map(|e| {
            let start = e.byte_offset as usize;
            bytes[start..start + e.record_len() as usize].to_vec()
        })
        .collect();
    (bytes[..header_len()].to_vec(), records)
}

fn join(header: &[u8], records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header.to_vec();
    for record in records {
        out.extend_from_slice(record);
    }
    out
}

#[tokio::test]
async fn deleted_reordered_or_inserted_events_are_detected_at_their_index() {
    let (bytes, digest) = record_bytes(&sample_events()).await;
    let (header, records) = split_records(&bytes).await;
    let offset_of =
        |i: usize| (header.len() + records[..i].iter().map(Vec::len).sum::<usize>()) as u64;

    for i in 0..records.len() {
        // Deleted.
        let mut deleted = records.clone();
        deleted.remove(i);
        let result = verify_bytes(join(&header, &deleted), None).await;
        if i + 1 == records.len() {
            // The chain alone cannot see the last event gone; the final digest can.
            assert_eq!(result.unwrap().events, 6);
            let err = corrupt(verify_bytes(join(&header, &deleted), Some(&digest)).await);
            assert_eq!(err.index, Some(6));
            assert_eq!(err.reason, VerifyFailure::FinalDigestMismatch);
        } else {
            let err = corrupt(result);
            assert_eq!(
                (err.index, err.byte_offset),
                (Some(i as u64), offset_of(i)),
                "deleted {i}"
            );
        }

        // Swapped with the next.
        if i + 1 < records.len() {
            let mut swapped = records.clone();
            swapped.swap(i, i + 1);
            let err = corrupt(verify_bytes(join(&header, &swapped), None).await);
            assert_eq!(
                (err.index, err.byte_offset),
                (Some(i as u64), offset_of(i)),
                "swapped {i}"
            );
            assert_eq!(err.reason, VerifyFailure::LinkMismatch);
        }

        // Duplicated (inserted again right after itself).
        let mut duplicated = records.clone();
        duplicated.insert(i + 1, records[i].clone());
        let err = corrupt(verify_bytes(join(&header, &duplicated), None).await);
        assert_eq!(err.index, Some(i as u64 + 1), "duplicated {i}");
        assert_eq!(err.byte_offset, offset_of(i + 1));
    }
}

#[tokio::test]
async fn data_after_the_expected_final_digest_is_detected() {
    let events = sample_events();
    let (bytes, _) = record_bytes(&events).await;
    let (read, _) = read_all(reader(bytes.clone())).await;
    // The digest of a shorter recording: everything after event 3 is extra.
    let err = corrupt(verify_bytes(bytes.clone(), Some(&read[3].link)).await);
    assert_eq!(err.reason, VerifyFailure::TrailingData);
    assert_eq!((err.index, err.byte_offset), (Some(4), read[4].byte_offset));

    // A partial record after the last one.
    let (short, short_digest) = record_bytes(&events[..3]).await;
    let mut extended = short.clone();
    extended.extend_from_slice(&bytes[short.len()..short.len() + 10]);
    let err = corrupt(verify_bytes(extended.clone(), Some(&short_digest)).await);
    assert_eq!(err.reason, VerifyFailure::TrailingData);
    assert_eq!((err.index, err.byte_offset), (Some(3), short.len() as u64));
    assert!(verify_bytes(extended, None).await.unwrap().truncated);
}

#[tokio::test]
async fn a_recording_of_another_session_is_refused() {
    let (bytes, _) = record_bytes(&sample_events()).await;
    let other = RecordingReader::new(sid("someone-else"), Cursor::new(bytes));
    let err = corrupt(verify(other, None).await);
    assert_eq!(err.index, None);
    assert_eq!(err.reason, VerifyFailure::FileHeader);
}

/// A raw record: kind, offset, payload.
type Raw<'a> = (u8, u64, &'a [u8]);

/// A chain-valid file that breaks the rules the writer enforces.
fn craft(records: &[Raw<'_>]) -> Vec<u8> {
    let id = sid(SESSION);
    let mut out = FILE_MAGIC.to_vec();
    out.push(SESSION.len() as u8);
    out.extend_from_slice(SESSION.as_bytes());
    let mut link = Digest::genesis(&id);
    for &(kind, offset, payload) in records {
        let len = payload.len() as u32;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(payload);
        link = link.chain(EventKind::from_u8(kind).unwrap(), offset, payload);
        out.extend_from_slice(link.as_bytes());
    }
    out
}

#[tokio::test]
async fn structure_is_verified() {
    let cases: [(&[Raw<'_>], u64, &str); 4] = [
        (&[(3, 0, b"x")], 0, "the first event is not the header"),
        (
            &[(1, 0, b"{}"), (1, 0, b"{}")],
            1,
            "a header event follows the first event",
        ),
        (
            &[(1, 0, b"{}"), (5, 9, b"{}"), (3, 9, b"x")],
            2,
            "an event follows the close event",
        ),
        (
            &[(1, 0, b"{}"), (2, 9, b"a"), (2, 8, b"b")],
            2,
            "the time offset goes backwards",
        ),
    ];
    for (records, index, why) in cases {
        let err = corrupt(verify_bytes(craft(records), None).await);
        assert_eq!(err.index, Some(index), "{why}");
        assert_eq!(err.reason, VerifyFailure::Structure(why));
    }
    assert_eq!(
        verify_bytes(craft(&[(1, 0, b"{}"), (5, 1, b"{}")]), None)
            .await
            .unwrap()
            .events,
        2
    );
}

#[tokio::test]
async fn writer_refuses_invalid_events() {
    let store = MemoryRecordingStore::new();
    let mut writer = store.create(&sid(SESSION)).await.unwrap();
    let invalid = |r: Result<(), RecordingError>| {
        assert!(matches!(r, Err(RecordingError::InvalidEvent(_))), "{r:?}");
    };
    invalid(writer.append(Event::stdout(0, &b"x"[..])).await);
    invalid(
        writer
            .append(Event::new(
                EventKind::Header,
                0,
                vec![b' '; MAX_RECORD_PAYLOAD + 1],
            ))
            .await,
    );
    assert!(matches!(
        Event::header(&json!([1, 2])),
        Err(RecordingError::InvalidEvent(_))
    ));
    writer
        .append(Event::header(&json!({"session_id": SESSION})).unwrap())
        .await
        .unwrap();
    invalid(writer.append(Event::header(&json!({})).unwrap()).await);
    writer.append(Event::stdin(10, &b"a"[..])).await.unwrap();
    invalid(writer.append(Event::stdin(9, &b"b"[..])).await);
    writer
        .append(Event::close(10, &json!({"exit_code": 1})).unwrap())
        .await
        .unwrap();
    invalid(writer.append(Event::stdout(11, &b"late"[..])).await);
    let digest = writer.finish().await.unwrap();
    // Refused events left no trace.
    let v = verify(store.open(&sid(SESSION)).await.unwrap(), Some(&digest))
        .await
        .unwrap();
    assert_eq!(v.events, 3);
    assert!(v.closed);
}

#[tokio::test]
async fn large_payloads_are_split_into_records() {
    let big: Vec<u8> = (0..(2 * MAX_RECORD_PAYLOAD + 123))
        .map(|i| (i % 251) as u8)
        .collect();
    let events = vec![
        Event::header(&json!({})).unwrap(),
        Event::stdout(5, big.clone()),
    ];
    let (bytes, digest) = record_bytes(&events).await;
    let (read, _) = read_all(reader(bytes.clone())).await;
    assert_eq!(read.len(), 4);
    let sizes: Vec<usize> = read[1..].iter().map(|e| e.payload.len()).collect();
    assert_eq!(sizes, [MAX_RECORD_PAYLOAD, MAX_RECORD_PAYLOAD, 123]);
    assert!(
        read[1..]
            .iter()
            .all(|e| e.kind == EventKind::Stdout && e.offset_ns == 5)
    );
    let joined: Vec<u8> = read[1..].iter().flat_map(|e| e.payload.to_vec()).collect();
    assert_eq!(joined, big);
    assert_eq!(verify_bytes(bytes, Some(&digest)).await.unwrap().events, 4);
}

#[tokio::test]
async fn session_ids_are_validated() {
    for good in [
        "a",
        "A-z_09",
        &"x".repeat(64),
        "0193b7d2-5c1e-7a3b-9f00-1234567890ab",
    ] {
        assert_eq!(SessionId::new(good).unwrap().as_str(), good);
    }
    for bad in [
        "",
        "..",
        "../etc/passwd",
        "a/b",
        "a\\b",
        "a.b",
        "/abs",
        " a",
        "a\0",
        "é",
        &"x".repeat(65),
    ] {
        assert!(
            matches!(
                SessionId::new(bad),
                Err(RecordingError::InvalidSessionId(_))
            ),
            "{bad:?} accepted"
        );
        assert!(bad.parse::<SessionId>().is_err());
    }
}

#[tokio::test]
async fn creating_an_existing_recording_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsRecordingStore::new(dir.path());
    let id = sid(SESSION);
    let digest = record(&store, &id, &sample_events()).await;
    let before = std::fs::read(store.path_for(&id)).unwrap();
    assert!(matches!(
        store.create(&id).await,
        Err(RecordingError::AlreadyExists(_))
    ));
    assert_eq!(std::fs::read(store.path_for(&id)).unwrap(), before);
    verify(store.open(&id).await.unwrap(), Some(&digest))
        .await
        .unwrap();

    let memory = MemoryRecordingStore::new();
    let _writer = memory.create(&id).await.unwrap();
    assert!(matches!(
        memory.create(&id).await,
        Err(RecordingError::AlreadyExists(_))
    ));
}

#[tokio::test]
async fn opening_a_missing_recording_fails() {
    let dir = tempfile::tempdir().unwrap();
    for store in [
        Box::new(FsRecordingStore::new(dir.path())) as Box<dyn RecordingStore>,
        Box::new(MemoryRecordingStore::new()),
    ] {
        assert!(matches!(
            store.open(&sid("nobody")).await,
            Err(RecordingError::NotFound(_))
        ));
    }
}

/// The 100 ms bound, on a manual clock: no sleeps, no real time.
#[tokio::test]
async fn appended_events_reach_the_file_within_100ms_without_further_appends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let store =
        FsRecordingStore::with_options(dir.path(), WriterOptions::new().clock(clock.clone()));
    let id = sid(SESSION);
    let path = store.path_for(&id);
    let mut writer = store.create(&id).await.unwrap();
    let mut written = writer.subscribe_written();
    let file_len = || std::fs::metadata(&path).unwrap().len();
    assert_eq!(file_len(), header_len() as u64);

    let events = sample_events();
    let mut expected_events = 0;
    for (round, batch) in [&events[..2], &events[2..4]].into_iter().enumerate() {
        let before = writer.written_len();
        for event in batch {
            writer.append(event.clone()).await.unwrap();
        }
        expected_events += batch.len();
        // Buffered: not in the file yet.
        assert!(writer.buffered_len() > 0);
        assert_eq!(file_len(), before, "round {round}");
        let target = before + writer.buffered_len() as u64;

        // Nothing but time passes: 100 ms later the bytes are in the file.
        clock.advance(DURABILITY_BOUND);
        tokio::time::timeout(Duration::from_secs(60), written.wait_for(|n| *n >= target))
            .await
            .expect("the background flush never happened")
            .unwrap();
        assert_eq!(writer.buffered_len(), 0);
        assert_eq!(file_len(), target, "round {round}");
        // Another reader of the file sees them, verified.
        let (read, torn) = read_all(store.open(&id).await.unwrap()).await;
        assert_same_events(&read, &events[..expected_events]);
        assert_eq!(torn, None);
    }
    writer.finish().await.unwrap();
}

/// Records larger than the buffer go to the file without it, and the session goes on while
/// the last of them is written: `flush`, `seal` and `finish` still return only once every
/// byte is in the file, in order.
#[tokio::test]
async fn records_written_through_are_in_the_file_in_order_once_flush_or_seal_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        FsRecordingStore::with_options(dir.path(), WriterOptions::new().buffer_capacity(64 * 1024));
    let id = sid(SESSION);
    let path = store.path_for(&id);
    let chunk = |seed: u8, len: usize| -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    };
    let mut events = vec![sample_events()[0].clone()];
    let mut writer = store.create(&id).await.unwrap();
    writer.append(events[0].clone()).await.unwrap();
    for round in 0..3u8 {
        // Two large chunks back to back, a small one between them, another large one.
        for (i, len) in [300_000, 200_000, 10, 150_000].into_iter().enumerate() {
            let offset = u64::from(round) * 10 + i as u64;
            let event = Event::stdout(offset, chunk(round * 4 + i as u8, len));
            writer.append(event.clone()).await.unwrap();
            events.push(event);
        }
        writer.flush().await.unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            writer.written_len(),
            "round {round}: flush returned before the file had every byte"
        );
        let (read, torn) = read_all(store.open(&id).await.unwrap()).await;
        assert_same_events(&read, &events);
        assert_eq!(torn, None);
    }
    let last = Event::stdout(100, chunk(99, 500_000));
    writer.append(last.clone()).await.unwrap();
    events.push(last);
    let close = Event::close(101, &json!({"exit_code": 0})).unwrap();
    writer.append(close.clone()).await.unwrap();
    events.push(close);
    let sealed = writer.seal().await.unwrap();
    let verification = verify(store.open(&id).await.unwrap(), Some(&sealed))
        .await
        .unwrap();
    assert!(verification.closed && !verification.truncated);
    assert_eq!(verification.bytes, std::fs::metadata(&path).unwrap().len());
    let (read, _) = read_all(store.open(&id).await.unwrap()).await;
    assert_same_events(&read, &events);
}

/// An append that finds the buffer older than the deadline flushes it itself.
#[tokio::test]
async fn append_flushes_when_the_deadline_has_passed() {
    let clock = Arc::new(ManualClock::new());
    let store = MemoryRecordingStore::with_options(WriterOptions::new().clock(clock.clone()));
    let id = sid(SESSION);
    let mut writer = store.create(&id).await.unwrap();
    writer.append(sample_events()[0].clone()).await.unwrap();
    assert!(writer.buffered_len() > 0);
    clock.advance(Duration::from_millis(60));
    writer.append(Event::stdin(1, &b"x"[..])).await.unwrap();
    assert_eq!(writer.buffered_len(), 0);
    assert_eq!(store.bytes(&id).unwrap().len() as u64, writer.written_len());
    assert_eq!(read_all(store.open(&id).await.unwrap()).await.0.len(), 2);
}

#[tokio::test]
async fn a_full_buffer_is_flushed_on_append() {
    let store = MemoryRecordingStore::with_options(
        WriterOptions::new()
            .buffer_capacity(256)
            .clock(Arc::new(ManualClock::new())),
    );
    let id = sid(SESSION);
    let mut writer = store.create(&id).await.unwrap();
    writer
        .append(Event::header(&json!({})).unwrap())
        .await
        .unwrap();
    for i in 0..100u64 {
        writer
            .append(Event::stdout(i, vec![b'x'; 40]))
            .await
            .unwrap();
        assert!(writer.buffered_len() <= 256);
        // Everything but the buffer is already in the store.
        assert_eq!(
            store.bytes(&id).unwrap().len() + writer.buffered_len(),
            header_len() + (i as usize + 1) * (49 + 40) + 49 + 2
        );
    }
    // Records larger than the buffer go straight through.
    writer
        .append(Event::stdout(100, vec![b'y'; 1000]))
        .await
        .unwrap();
    assert_eq!(writer.buffered_len(), 0);
    assert!(writer.buffer_high_water() <= 256);
    let digest = writer.finish().await.unwrap();
    assert_eq!(
        verify(store.open(&id).await.unwrap(), Some(&digest))
            .await
            .unwrap()
            .events,
        102
    );
}

#[tokio::test]
async fn dropping_the_writer_still_writes_what_was_buffered() {
    let store = MemoryRecordingStore::with_options(
        WriterOptions::new().clock(Arc::new(ManualClock::new())),
    );
    let id = sid(SESSION);
    let mut writer = store.create(&id).await.unwrap();
    writer.append(sample_events()[0].clone()).await.unwrap();
    writer.append(sample_events()[1].clone()).await.unwrap();
    let mut written = writer.subscribe_written();
    drop(writer);
    // The flusher writes, then goes away (and with it the watch's sender).
    while written.changed().await.is_ok() {}
    let (read, torn) = read_all(store.open(&id).await.unwrap()).await;
    assert_eq!(read.len(), 2);
    assert_eq!(torn, None);
}

/// The real clock drives the background flush too (the watch is the synchronisation; the
/// timeout only guards against a hang).
#[tokio::test]
async fn background_flush_runs_on_the_tokio_clock() {
    let store = MemoryRecordingStore::new();
    let id = sid(SESSION);
    let mut writer = store.create(&id).await.unwrap();
    writer.append(sample_events()[0].clone()).await.unwrap();
    let target = writer.written_len() + writer.buffered_len() as u64;
    let mut written = writer.subscribe_written();
    tokio::time::timeout(Duration::from_secs(60), written.wait_for(|n| *n >= target))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.bytes(&id).unwrap().len() as u64, target);
}

#[tokio::test]
async fn an_empty_recording_verifies() {
    let store = MemoryRecordingStore::new();
    let id = sid(SESSION);
    let digest = store.create(&id).await.unwrap().finish().await.unwrap();
    assert_eq!(digest, Digest::genesis(&id));
    let v = verify(store.open(&id).await.unwrap(), Some(&digest))
        .await
        .unwrap();
    assert_eq!((v.events, v.truncated, v.closed), (0, false, false));
    // An empty file is a torn file header.
    let v = verify_bytes(Vec::new(), None).await.unwrap();
    assert!(v.truncated);
    assert_eq!(
        v.torn_tail,
        Some(TornTail {
            index: None,
            byte_offset: 0,
            len: 0
        })
    );
}

/// Accepts `budget` bytes, then fails.
struct FailingSink {
    budget: usize,
}

#[async_trait::async_trait]
impl RecordingSink for FailingSink {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() > self.budget {
            return Err(std::io::Error::other("disk full"));
        }
        self.budget -= bytes.len();
        Ok(())
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_write_makes_the_writer_unusable() {
    let options = WriterOptions::new().clock(Arc::new(ManualClock::new()));
    // The file header does not fit.
    let err = RecordingWriter::new(
        sid(SESSION),
        Box::new(FailingSink { budget: 3 }),
        options.clone(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RecordingError::Io(_)), "{err}");

    let mut writer = RecordingWriter::new(
        sid(SESSION),
        Box::new(FailingSink {
            budget: header_len() + 10,
        }),
        options,
    )
    .await
    .unwrap();
    writer.append(sample_events()[0].clone()).await.unwrap(); // buffered
    assert!(matches!(writer.flush().await, Err(RecordingError::Io(_))));
    assert_eq!(writer.buffered_len(), 0);
    assert!(matches!(
        writer.append(sample_events()[1].clone()).await,
        Err(RecordingError::Failed(_))
    ));
    assert!(matches!(
        writer.finish().await,
        Err(RecordingError::Failed(_))
    ));
}

#[tokio::test]
async fn verify_refuses_a_reader_that_already_failed() {
    let (mut bytes, _) = record_bytes(&sample_events()).await;
    bytes[0] ^= 1;
    let mut r = reader(bytes);
    assert!(matches!(
        r.next_event().await,
        Some(Err(RecordingError::Corrupt(_)))
    ));
    assert!(r.next_event().await.is_none());
    assert!(matches!(
        verify(r, None).await,
        Err(RecordingError::Failed(_))
    ));
}

#[test]
fn types_can_cross_tasks() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<RecordingWriter>();
    send::<RecordingReader>();
    send_sync::<Arc<dyn RecordingStore>>();
    send_sync::<FsRecordingStore>();
    send_sync::<MemoryRecordingStore>();
    send_sync::<RecordingError>();
    send_sync::<Digest>();
}
