//! Framing of the local agent's pipes: a 4-byte big-endian length, then that many bytes of
//! a protobuf message (`GatewayMessage` towards the agent, `AgentMessage` from it).

use bytes::BufMut;
use hoop_proto::v1 as pb;
use hoop_proto::v1::agent_message::Message as Out;
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::AgentError;

/// The largest frame, in bytes (without its 4-byte length): 4 MiB. A longer length prefix
/// is an error before anything is allocated.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Reads one framed message. `Ok(None)` when the stream ends cleanly between frames.
///
/// # Errors
/// [`AgentError::FrameTooLarge`] for a length beyond [`MAX_FRAME`],
/// [`AgentError::TruncatedFrame`] when the stream ends inside a frame,
/// [`AgentError::Decode`] for bytes that are not a `M`, [`AgentError::Io`] when reading
/// fails.
pub async fn read_frame<M, R>(reader: &mut R) -> Result<Option<M>, AgentError>
where
    M: prost::Message + Default,
    R: AsyncRead + Unpin + ?Sized,
{
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        let n = reader
            .read(&mut prefix[got..])
            .await
            .map_err(|e| AgentError::io("cannot read a frame", e))?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(AgentError::TruncatedFrame)
            };
        }
        got += n;
    }
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > MAX_FRAME {
        return Err(AgentError::FrameTooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    // Read into a buffer that the decoded message's `bytes` fields then share (no copy).
    let mut body = bytes::BytesMut::with_capacity(len);
    while body.len() < len {
        let room = len - body.len();
        let n = reader
            .read_buf(&mut (&mut body).limit(room))
            .await
            .map_err(|e| AgentError::io("cannot read a frame", e))?;
        if n == 0 {
            return Err(AgentError::TruncatedFrame);
        }
    }
    Ok(Some(M::decode(body.freeze())?))
}

/// Writes one framed message and flushes the writer.
///
/// # Errors
/// [`AgentError::FrameTooLarge`] for a message longer than [`MAX_FRAME`] once encoded
/// (nothing is written), [`AgentError::Io`] when writing fails.
pub async fn write_frame<M, W>(writer: &mut W, message: &M) -> Result<(), AgentError>
where
    M: prost::Message,
    W: AsyncWrite + Unpin + ?Sized,
{
    let len = message.encoded_len();
    let prefix = frame_prefix(len)?;
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&prefix.to_be_bytes());
    message
        .encode(&mut buf)
        .map_err(|e| AgentError::io("cannot encode a frame", std::io::Error::other(e)))?;
    send(writer, &mut buf.as_slice()).await
}

/// Writes a frame's bytes and flushes the writer.
async fn send<W>(writer: &mut W, frame: &mut impl bytes::Buf) -> Result<(), AgentError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    // Through `&mut W`, a sized writer whatever `W` is.
    AsyncWriteExt::write_all_buf(&mut &mut *writer, frame)
        .await
        .map_err(|e| AgentError::io("cannot write a frame", e))?;
    writer
        .flush()
        .await
        .map_err(|e| AgentError::io("cannot write a frame", e))
}

/// The 4-byte length in front of a frame of `len` bytes.
fn frame_prefix(len: usize) -> Result<u32, AgentError> {
    u32::try_from(len)
        .ok()
        .filter(|_| len <= MAX_FRAME)
        .ok_or(AgentError::FrameTooLarge {
            len,
            max: MAX_FRAME,
        })
}

/// Output at least this long is written from its own buffer, beside the frame's other bytes
/// (one vectored write), instead of being copied into the frame first.
const SCATTER_FROM: usize = 16 * 1024;

/// Protobuf key of field 3 with wire type 2 (length-delimited): `AgentMessage.output` and
/// `AgentOutput.data` both have it.
const KEY_3_LEN: u8 = (3 << 3) | 2;

/// Writes one framed `AgentMessage` and flushes the writer, like [`write_frame`], with the
/// same bytes on the wire; a large output's data is not copied into the frame but written
/// from where it was read (the local agent's output passes through it once less).
pub(crate) async fn write_agent_frame<W>(
    writer: &mut W,
    message: &pb::AgentMessage,
) -> Result<(), AgentError>
where
    W: AsyncWrite + Unpin,
{
    let Some(Out::Output(output)) = &message.message else {
        return write_frame(writer, message).await;
    };
    if output.data.len() < SCATTER_FROM {
        return write_frame(writer, message).await;
    }
    // `data` is AgentOutput's last field, so prost writes it last: the head is what prost
    // writes before the data's own bytes.
    let fields = pb::AgentOutput {
        session_id: output.session_id.clone(),
        stream: output.stream,
        data: bytes::Bytes::new(),
    };
    let data_len = output.data.len();
    let output_len = fields.encoded_len() + 1 + prost::length_delimiter_len(data_len) + data_len;
    let len = 1 + prost::length_delimiter_len(output_len) + output_len;
    let prefix = frame_prefix(len)?;
    let mut head = Vec::with_capacity(len - data_len + 4);
    head.put_u32(prefix);
    head.put_u8(KEY_3_LEN);
    let encoded = prost::encode_length_delimiter(output_len, &mut head)
        .and_then(|()| fields.encode(&mut head))
        .and_then(|()| {
            head.put_u8(KEY_3_LEN);
            prost::encode_length_delimiter(data_len, &mut head)
        });
    encoded.map_err(|e| AgentError::io("cannot encode a frame", std::io::Error::other(e)))?;
    send(
        writer,
        &mut bytes::Buf::chain(head.as_slice(), output.data.as_ref()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: &str) -> pb::GatewayMessage {
        pb::GatewayMessage {
            message: Some(pb::gateway_message::Message::Start(pb::AgentStart {
                session_id: id.to_owned(),
                argv: vec!["true".to_owned()],
                ..Default::default()
            })),
        }
    }

    #[tokio::test]
    async fn round_trip_and_clean_end() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &start("a")).await.unwrap();
        write_frame(&mut buf, &start("b")).await.unwrap();
        let mut reader = buf.as_slice();
        let a: pb::GatewayMessage = read_frame(&mut reader).await.unwrap().unwrap();
        let b: pb::GatewayMessage = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!((a, b), (start("a"), start("b")));
        let end: Option<pb::GatewayMessage> = read_frame(&mut reader).await.unwrap();
        assert!(end.is_none());
    }

    fn output(id: &str, stream: pb::OutputStream, len: usize) -> pb::AgentMessage {
        // Bytes of every value, so that a shifted or cut payload cannot compare equal.
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        pb::AgentMessage {
            message: Some(Out::Output(pb::AgentOutput {
                session_id: id.to_owned(),
                stream: stream.into(),
                data: data.into(),
            })),
        }
    }

    #[tokio::test]
    async fn agent_frames_are_the_bytes_of_write_frame_and_read_back() {
        let hello = pb::AgentMessage {
            message: Some(Out::Hello(pb::AgentHello {
                version: "1".to_owned(),
                hostname: "h".to_owned(),
            })),
        };
        // Below and above the scattered size, lengths whose varints take 1 to 3 bytes, a
        // long session id, and the largest output the agent sends.
        let messages = [
            hello,
            output("s", pb::OutputStream::Stdout, 0),
            output("s", pb::OutputStream::Stdout, 100),
            output("s", pb::OutputStream::Stderr, SCATTER_FROM - 1),
            output("s", pb::OutputStream::Stdout, SCATTER_FROM),
            output(&"x".repeat(200), pb::OutputStream::Stderr, 70_000),
            output("abc", pb::OutputStream::Stdout, crate::OUTPUT_CHUNK),
            output("abc", pb::OutputStream::Stdout, 3 * 1024 * 1024),
        ];
        for message in &messages {
            let mut expected = Vec::new();
            write_frame(&mut expected, message).await.unwrap();
            let mut scattered = Vec::new();
            write_agent_frame(&mut scattered, message).await.unwrap();
            assert!(
                expected == scattered,
                "frame bytes differ for {}",
                message.encoded_len()
            );
            let back: pb::AgentMessage = read_frame(&mut scattered.as_slice())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&back, message);
        }
        let too_large = output("s", pb::OutputStream::Stdout, MAX_FRAME);
        let mut buf = Vec::new();
        let err = write_agent_frame(&mut buf, &too_large).await.unwrap_err();
        assert!(matches!(err, AgentError::FrameTooLarge { .. }), "{err}");
        assert!(
            buf.is_empty(),
            "nothing is written of a frame that is too large"
        );
    }

    #[tokio::test]
    async fn an_agent_frame_survives_short_writes() {
        // A pipe takes what room it has: the frame goes on where each write stopped.
        let (mut writer, mut reader) = tokio::io::duplex(4096);
        let message = output("s", pb::OutputStream::Stdout, 300_000);
        let sent = message.clone();
        let writing = tokio::spawn(async move {
            write_agent_frame(&mut writer, &sent).await.unwrap();
            write_agent_frame(&mut writer, &sent).await.unwrap();
        });
        for _ in 0..2 {
            let back: pb::AgentMessage = read_frame(&mut reader).await.unwrap().unwrap();
            assert_eq!(back, message);
        }
        writing.await.unwrap();
    }

    #[tokio::test]
    async fn bad_lengths_and_truncation_are_errors() {
        let huge = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes();
        let err = read_frame::<pb::GatewayMessage, _>(&mut huge.as_slice())
            .await
            .unwrap_err();
        assert!(matches!(err, AgentError::FrameTooLarge { .. }), "{err}");
        let max = u32::MAX.to_be_bytes();
        let err = read_frame::<pb::GatewayMessage, _>(&mut max.as_slice())
            .await
            .unwrap_err();
        assert!(matches!(err, AgentError::FrameTooLarge { .. }), "{err}");

        let mut buf = Vec::new();
        write_frame(&mut buf, &start("a")).await.unwrap();
        for cut in [2, buf.len() - 1] {
            let err = read_frame::<pb::GatewayMessage, _>(&mut &buf[..cut])
                .await
                .unwrap_err();
            assert!(matches!(err, AgentError::TruncatedFrame), "{err}");
        }
        let junk = [0u8, 0, 0, 2, 0xff, 0xff];
        let err = read_frame::<pb::GatewayMessage, _>(&mut junk.as_slice())
            .await
            .unwrap_err();
        assert!(matches!(err, AgentError::Decode(_)), "{err}");
    }
}
