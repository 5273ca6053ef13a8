//! The index through its library API: documents from recordings, the query language, the
//! caller's visibility inside the query, snippets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use hoop_core::Stream;
use hoop_core::ports::{PortError, RecordedChunk, RecordedChunks, RecordingReader, SessionSummary};
use hoop_plugin_indexer::{Order, SearchIndex, SearchRequest, Visibility, rebuild};

#[derive(Debug, Default)]
struct Recordings(BTreeMap<String, Vec<(Stream, String)>>);

#[async_trait]
impl RecordingReader for Recordings {
    async fn read(&self, id: &str, max: usize) -> Result<RecordedChunks, PortError> {
        let chunks = self
            .0
            .get(id)
            .ok_or_else(|| PortError::NotFound(id.into()))?;
        let mut out = RecordedChunks::new();
        for (stream, text) in chunks {
            out.push_bounded(
                RecordedChunk {
                    stream: *stream,
                    offset: Duration::ZERO,
                    data: Bytes::from(text.clone()),
                },
                max,
            );
        }
        Ok(out)
    }
}

const DAY: u64 = 86_400;
/// 2026-12-01T00:00:00Z
const DEC_1: u64 = 1_796_083_200;

fn session(id: &str, user: &str, conn: &str, start: u64, secs: u64, exit: i32) -> SessionSummary {
    let started = UNIX_EPOCH + Duration::from_secs(start);
    let mut s = SessionSummary::new(id, conn, user, started);
    s.status = "done".into();
    s.exit_code = Some(exit);
    s.ended_at = Some(started + Duration::from_secs(secs));
    s
}

async fn fixture(dir: &std::path::Path) -> SearchIndex {
    let index = SearchIndex::open(dir).unwrap();
    let mut rec = Recordings::default();
    let sessions = vec![
        session("s1", "alice", "pg-prod", DEC_1 - DAY, 2, 0),
        session("s2", "alice", "pg-prod", DEC_1 + DAY, 30, 1),
        session("s3", "bob", "pg-prod", DEC_1 + 2 * DAY, 1, 0),
        session("s4", "bob", "shell", DEC_1 + 3 * DAY, 1, 0),
    ];
    rec.0.insert(
        "s1".into(),
        vec![
            (Stream::Stdin, "select * from users;".into()),
            (Stream::Stdout, "[EMAIL_ADDRESS] | 42\n".into()),
        ],
    );
    rec.0.insert(
        "s2".into(),
        vec![
            (Stream::Stdin, "drop table orders;".into()),
            (Stream::Stderr, "ERROR: permission denied\n".into()),
        ],
    );
    rec.0.insert(
        "s3".into(),
        vec![
            (Stream::Stdin, "drop table orders;".into()),
            (Stream::Stdout, "DROP TABLE\n".into()),
        ],
    );
    rec.0.insert(
        "s4".into(),
        vec![
            (Stream::Stdin, "ls".into()),
            (
                Stream::Stdout,
                format!("needle {}haystop\n", "hay ".repeat(2000)),
            ),
        ],
    );
    let (indexed, skipped) = rebuild(&index, &sessions, &rec, 4096, |_| {})
        .await
        .unwrap();
    assert_eq!((indexed, skipped), (4, 0));
    index
}

fn ids(index: &SearchIndex, query: &str, visibility: Visibility) -> (Vec<String>, u64) {
    let page = index
        .search(&SearchRequest {
            query,
            visibility,
            order: Order::Newest,
            offset: 0,
            limit: 10,
            now: UNIX_EPOCH + Duration::from_secs(DEC_1 + 3 * DAY + 3600),
        })
        .unwrap();
    (
        page.hits.into_iter().map(|h| h.session_id).collect(),
        page.total,
    )
}

#[tokio::test]
async fn qualifiers_words_and_visibility() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture(dir.path()).await;
    let all = || Visibility::All;
    assert_eq!(
        ids(&index, "drop table", all()),
        (vec!["s3".into(), "s2".into()], 2)
    );
    assert_eq!(ids(&index, "\"table orders\"", all()).1, 2);
    assert_eq!(ids(&index, "\"orders table\"", all()).1, 0);
    assert_eq!(ids(&index, "drop in:output", all()).0, ["s3"]);
    assert_eq!(ids(&index, "drop -user:bob", all()).0, ["s2"]);
    assert_eq!(ids(&index, "is:error", all()).0, ["s2"]);
    assert_eq!(
        ids(&index, "exit:0 connection:pg-prod", all()).0,
        ["s3", "s1"]
    );
    assert_eq!(
        ids(&index, "started:>2026-12-01", all()).0,
        ["s4", "s3", "s2"]
    );
    assert_eq!(ids(&index, "started:<2026-12-01", all()).0, ["s1"]);
    assert_eq!(
        ids(&index, "started:2026-12-02..2026-12-03", all()).0,
        ["s3", "s2"]
    );
    assert_eq!(ids(&index, "started:-24h", all()).0, ["s4"]);
    assert_eq!(ids(&index, "duration:>10s", all()).0, ["s2"]);
    assert_eq!(ids(&index, "EMAIL_ADDRESS", all()).0, ["s1"]);
    assert_eq!(ids(&index, "verb:exec status:done", all()).1, 4);
    // Alice sees her own: the total never counts bob's.
    let alice = || Visibility::Users(vec!["alice".into()]);
    assert_eq!(ids(&index, "drop table", alice()), (vec!["s2".into()], 1));
    assert_eq!(ids(&index, "user:bob", alice()), (vec![], 0));
    assert_eq!(ids(&index, "-user:alice", alice()), (vec![], 0));
    assert_eq!(ids(&index, "", alice()).1, 2);
    assert_eq!(ids(&index, "drop", Visibility::Users(vec![])).1, 0);
}

#[tokio::test]
async fn snippets_highlight_matches_and_reindexing_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture(dir.path()).await;
    let page = index
        .search(&SearchRequest {
            query: "needle",
            visibility: Visibility::All,
            order: Order::Relevance,
            offset: 0,
            limit: 5,
            now: SystemTime::now(),
        })
        .unwrap();
    assert_eq!(page.total, 1);
    let hit = &page.hits[0];
    assert!(hit.score > 0.0);
    let s = &hit.snippets[0];
    assert_eq!(s.field, "output");
    assert_eq!(&s.fragment[s.highlights[0].clone()], "needle");
    // A second rebuild leaves one document per session.
    drop(index);
    let index = fixture(dir.path()).await;
    assert_eq!(index.len(), 4);
}

#[tokio::test]
async fn long_text_is_cut_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture(dir.path()).await;
    // s4's output is 8 KiB; the fixture indexes 4 KiB of each stream.
    assert_eq!(ids(&index, "is:truncated", Visibility::All).0, ["s4"]);
    assert_eq!(ids(&index, "needle", Visibility::All).1, 1);
    assert_eq!(ids(&index, "haystop", Visibility::All).1, 0, "past the cut");
}
