//! Framing of the local agent's pipes: a 4-byte big-endian length, then that many bytes of
//! a protobuf message (`GatewayMessage` towards the agent, `AgentMessage` from it).

use bytes::BufMut;
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
    let prefix =
        u32::try_from(len)
            .ok()
            .filter(|_| len <= MAX_FRAME)
            .ok_or(AgentError::FrameTooLarge {
                len,
                max: MAX_FRAME,
            })?;
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&prefix.to_be_bytes());
    message
        .encode(&mut buf)
        .map_err(|e| AgentError::io("cannot encode a frame", std::io::Error::other(e)))?;
    writer
        .write_all(&buf)
        .await
        .map_err(|e| AgentError::io("cannot write a frame", e))?;
    writer
        .flush()
        .await
        .map_err(|e| AgentError::io("cannot write a frame", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoop_proto::v1 as pb;

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
