//! A large recording is written, read and verified in bounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use hoop_plugin_audit::recording::{
    DEFAULT_BUFFER_CAPACITY, Event, EventKind, FsRecordingStore, MAX_RECORD_PAYLOAD,
    RecordingReader, RecordingStore, SessionId, verify,
};
use serde_json::json;
use tokio::io::{AsyncRead, ReadBuf};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 1024; // 64 MiB
const BIG: usize = 3 * MAX_RECORD_PAYLOAD + 17;

/// Counts what is read from the source, and the largest read asked for.
struct Counting<R> {
    inner: R,
    largest_read: Arc<AtomicUsize>,
    total: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.largest_read
            .fetch_max(buf.remaining(), Ordering::Relaxed);
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.total
            .fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        result
    }
}

fn chunk(i: usize) -> Vec<u8> {
    let mut data = vec![(i % 256) as u8; CHUNK];
    data[..8].copy_from_slice(&(i as u64).to_le_bytes());
    data
}

async fn counting_reader(
    store: &FsRecordingStore,
    id: &SessionId,
) -> (RecordingReader, Arc<AtomicUsize>, Arc<AtomicU64>) {
    let file = tokio::fs::File::open(store.path_for(id)).await.unwrap();
    let largest_read = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let reader = RecordingReader::new(
        id.clone(),
        Counting {
            inner: file,
            largest_read: largest_read.clone(),
            total: total.clone(),
        },
    );
    (reader, largest_read, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_recording_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsRecordingStore::new(dir.path());
    let id = SessionId::new("large-session").unwrap();
    let mut writer = store.create(&id).await.unwrap();
    writer
        .append(Event::header(&json!({"session_id": "large-session"})).unwrap())
        .await
        .unwrap();
    for i in 0..CHUNKS {
        let kind = if i % 2 == 0 {
            EventKind::Stdout
        } else {
            EventKind::Stdin
        };
        writer
            .append(Event::new(kind, i as u64, chunk(i)))
            .await
            .unwrap();
        assert!(writer.buffered_len() <= DEFAULT_BUFFER_CAPACITY);
    }
    // A payload larger than a record: split, still nothing buffered beyond the cap.
    writer
        .append(Event::stderr(CHUNKS as u64, vec![7u8; BIG]))
        .await
        .unwrap();
    writer
        .append(Event::close(CHUNKS as u64, &json!({"exit_code": 0})).unwrap())
        .await
        .unwrap();
    assert!(writer.buffer_high_water() <= DEFAULT_BUFFER_CAPACITY);
    assert_eq!(writer.buffer_capacity(), DEFAULT_BUFFER_CAPACITY);
    let digest = writer.finish().await.unwrap();
    let file_len = std::fs::metadata(store.path_for(&id)).unwrap().len();
    assert!(file_len > (CHUNKS * CHUNK + BIG) as u64);

    // Read it back, one record at a time.
    let (mut reader, largest_read, total) = counting_reader(&store, &id).await;
    let mut index = 0u64;
    let mut big = 0usize;
    while let Some(event) = reader.next_event().await {
        let event = event.unwrap();
        assert_eq!(event.index, index);
        assert!(event.payload.len() <= MAX_RECORD_PAYLOAD);
        match index as usize {
            0 => assert_eq!(event.kind, EventKind::Header),
            i @ 1..=CHUNKS => assert_eq!(event.payload, chunk(i - 1)),
            _ if event.kind == EventKind::Stderr => big += event.payload.len(),
            _ => assert_eq!(event.kind, EventKind::Close),
        }
        index += 1;
    }
    assert_eq!(big, BIG);
    assert_eq!(index, 1 + CHUNKS as u64 + 4 + 1);
    assert_eq!(reader.digest(), digest);
    assert_eq!(total.load(Ordering::Relaxed), file_len);
    // Never asked for more than one record's payload at once.
    assert!(largest_read.load(Ordering::Relaxed) <= MAX_RECORD_PAYLOAD);

    // Verify streams the same way.
    let (reader, largest_read, total) = counting_reader(&store, &id).await;
    let verification = verify(reader, Some(&digest)).await.unwrap();
    assert_eq!(verification.events, index);
    assert_eq!(verification.bytes, file_len);
    assert!(verification.closed);
    assert_eq!(total.load(Ordering::Relaxed), file_len);
    assert!(largest_read.load(Ordering::Relaxed) <= MAX_RECORD_PAYLOAD);
}
