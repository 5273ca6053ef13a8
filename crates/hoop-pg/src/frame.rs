//! Message framing: a startup packet (length, then body) before the session is set up, then
//! tagged messages (one byte, length, body).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::PgError;

/// The largest message accepted in either direction (1 GiB is PostgreSQL's own limit for a
/// value; a gateway has no business buffering that much).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// The largest startup packet accepted (PostgreSQL allows 10,000 bytes).
pub const MAX_STARTUP: usize = 10_000;

/// Protocol version 3.0.
pub const PROTOCOL_3: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// One tagged message: its type byte and its body (without the length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type, e.g. `b'Q'`.
    pub tag: u8,
    /// The body.
    pub body: Bytes,
}

impl Frame {
    /// A message of `tag` with `body`.
    pub fn new(tag: u8, body: impl Into<Bytes>) -> Self {
        Self {
            tag,
            body: body.into(),
        }
    }

    /// Appends the message, as sent on the wire, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(5 + self.body.len());
        out.put_u8(self.tag);
        out.put_i32(i32::try_from(self.body.len() + 4).unwrap_or(i32::MAX));
        out.put_slice(&self.body);
    }

    /// Length on the wire.
    pub fn wire_len(&self) -> usize {
        5 + self.body.len()
    }
}

/// Takes the next whole tagged message off `buf`, if it holds one.
///
/// # Errors
/// A length below 4 or above [`MAX_MESSAGE`].
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, PgError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l >= 4)
        .ok_or_else(|| PgError::protocol(format!("message length {len}")))?;
    if len > MAX_MESSAGE {
        return Err(PgError::TooLarge(len));
    }
    if buf.len() < len + 1 {
        buf.reserve(len + 1 - buf.len());
        return Ok(None);
    }
    let tag = buf[0];
    buf.advance(5);
    let body = buf.split_to(len - 4).freeze();
    Ok(Some(Frame { tag, body }))
}

/// What a client sends first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// Asks for TLS: answered `N` (the gateway's listener is local; it does not do TLS).
    SslRequest,
    /// Asks for GSSAPI encryption: answered `N`.
    GssEncRequest,
    /// Cancels the query running in the session that got this key.
    Cancel {
        /// BackendKeyData's process id.
        process_id: u32,
        /// BackendKeyData's secret key.
        secret_key: u32,
    },
    /// Starts a session with these parameters (`user`, `database`, `application_name`, …).
    Startup {
        /// The protocol version asked for.
        version: i32,
        /// Parameters in the order sent.
        params: Vec<(String, String)>,
    },
}

impl Startup {
    /// The value of parameter `name` of a startup message.
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Startup::Startup { params, .. } => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Takes the next startup packet off `buf`, if it holds a whole one.
///
/// # Errors
/// A bad length, an unknown request code, or a malformed parameter list.
pub fn next_startup(buf: &mut BytesMut) -> Result<Option<Startup>, PgError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (8..=MAX_STARTUP).contains(l))
        .ok_or_else(|| PgError::protocol(format!("startup packet length {len}")))?;
    if buf.len() < len {
        return Ok(None);
    }
    let mut packet = buf.split_to(len).freeze();
    packet.advance(4);
    let code = packet.get_i32();
    match code {
        SSL_REQUEST => Ok(Some(Startup::SslRequest)),
        GSSENC_REQUEST => Ok(Some(Startup::GssEncRequest)),
        CANCEL_REQUEST => {
            if packet.len() < 8 {
                return Err(PgError::protocol("short cancel request"));
            }
            Ok(Some(Startup::Cancel {
                process_id: packet.get_u32(),
                secret_key: packet.get_u32(),
            }))
        }
        version if version >> 16 == 3 => {
            let mut params = Vec::new();
            let mut rest = &packet[..];
            loop {
                let key = take_cstr(&mut rest)?;
                if key.is_empty() {
                    break;
                }
                let value = take_cstr(&mut rest)?;
                params.push((key, value));
            }
            Ok(Some(Startup::Startup { version, params }))
        }
        other => Err(PgError::protocol(format!(
            "unsupported protocol version or request code {other}"
        ))),
    }
}

fn take_cstr(rest: &mut &[u8]) -> Result<String, PgError> {
    let end = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| PgError::protocol("unterminated string"))?;
    let s = String::from_utf8_lossy(&rest[..end]).into_owned();
    *rest = &rest[end + 1..];
    Ok(s)
}

/// A startup message (protocol 3.0) with `params`.
pub fn encode_startup(params: &[(String, String)]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_i32(PROTOCOL_3);
    for (k, v) in params {
        body.put_slice(k.as_bytes());
        body.put_u8(0);
        body.put_slice(v.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    out.put_slice(&body);
    out.freeze()
}

/// A cancel request for `process_id` / `secret_key`.
pub fn encode_cancel(process_id: u32, secret_key: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(16);
    out.put_i32(16);
    out.put_i32(CANCEL_REQUEST);
    out.put_u32(process_id);
    out.put_u32(secret_key);
    out.freeze()
}

/// An SSL request.
pub fn encode_ssl_request() -> Bytes {
    let mut out = BytesMut::with_capacity(8);
    out.put_i32(8);
    out.put_i32(SSL_REQUEST);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_any_byte() {
        let mut wire = BytesMut::new();
        Frame::new(b'Q', &b"select 1\0"[..]).encode(&mut wire);
        Frame::new(b'X', Bytes::new()).encode(&mut wire);
        let all = wire.freeze();
        for cut in 0..all.len() {
            let mut buf = BytesMut::from(&all[..cut]);
            let mut got = Vec::new();
            while let Some(f) = next_frame(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&all[cut..]);
            while let Some(f) = next_frame(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].body.as_ref(), b"select 1\0");
            assert_eq!(got[1].tag, b'X');
        }
    }

    #[test]
    fn bad_lengths_are_refused() {
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 2][..]);
        assert!(next_frame(&mut buf).is_err());
        let mut buf = BytesMut::from(&[b'Q', 0x7f, 0, 0, 0][..]);
        assert!(matches!(next_frame(&mut buf), Err(PgError::TooLarge(_))));
    }

    #[test]
    fn startup_packets() {
        let params = vec![
            ("user".to_owned(), "alice".to_owned()),
            ("database".to_owned(), "db".to_owned()),
        ];
        let mut buf = BytesMut::from(&encode_startup(&params)[..]);
        let s = next_startup(&mut buf).unwrap().unwrap();
        assert_eq!(s.param("user"), Some("alice"));
        assert_eq!(s.param("database"), Some("db"));
        let mut buf = BytesMut::from(&encode_cancel(7, 9)[..]);
        assert_eq!(
            next_startup(&mut buf).unwrap(),
            Some(Startup::Cancel {
                process_id: 7,
                secret_key: 9
            })
        );
        let mut buf = BytesMut::from(&encode_ssl_request()[..]);
        assert_eq!(next_startup(&mut buf).unwrap(), Some(Startup::SslRequest));
    }
}
