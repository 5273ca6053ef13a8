//! Authentication: the gateway's to the database (it holds the connection's password; the
//! client never sees it), and the client's to the gateway's local listener (a one-time
//! password, checked with an MD5 challenge).

use bytes::{BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use crate::PgError;
use crate::frame::Frame;
use crate::message::{Reader, tag};

const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// The gateway's side of authenticating to the database as `user` with `password`.
///
/// Feed it every `Authentication*` message the server sends ([`Upstream::respond`]); send
/// what it returns. Its `Debug` never shows the password.
pub struct Upstream {
    user: String,
    password: Vec<u8>,
    scram: Option<ScramSha256>,
    /// Which method the server asked for, for the report.
    method: &'static str,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("user", &self.user)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// What to do after an authentication message.
#[derive(Debug)]
pub enum Step {
    /// Send this message to the server and wait for its next one.
    Send(Frame),
    /// Authentication succeeded (`AuthenticationOk`).
    Done,
    /// Nothing to send (e.g. `AuthenticationSASLFinal` checked), wait for the next message.
    Wait,
}

impl Upstream {
    /// Authenticates as `user` with `password` (empty: none).
    pub fn new(user: impl Into<String>, password: impl Into<Vec<u8>>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
            scram: None,
            method: "none",
        }
    }

    /// The method the server asked for: `none` (trust), `cleartext`, `md5` or
    /// `scram-sha-256`.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The answer to an `Authentication*` message's body.
    ///
    /// # Errors
    /// [`PgError::Auth`] for a method this gateway does not do (Kerberos, GSSAPI, SSPI, a
    /// SASL mechanism other than SCRAM-SHA-256), a password the connection lacks, or a
    /// server whose SCRAM proof does not verify; [`PgError::Protocol`] for a malformed
    /// message.
    pub fn respond(&mut self, body: &[u8]) -> Result<Step, PgError> {
        let mut r = Reader::new(body);
        let code = r.i32()?;
        match code {
            0 => Ok(Step::Done),
            3 => {
                self.method = "cleartext";
                self.need_password()?;
                Ok(Step::Send(password_message(&self.password)))
            }
            5 => {
                self.method = "md5";
                self.need_password()?;
                let salt = r.bytes(4)?;
                let salt = [salt[0], salt[1], salt[2], salt[3]];
                let hash = postgres_protocol::authentication::md5_hash(
                    self.user.as_bytes(),
                    &self.password,
                    salt,
                );
                Ok(Step::Send(password_message(hash.as_bytes())))
            }
            10 => {
                self.method = "scram-sha-256";
                self.need_password()?;
                let mut mechanisms = Vec::new();
                loop {
                    let m = r.cstr()?;
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m);
                }
                if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(PgError::Auth(format!(
                        "the server offers SASL mechanisms {mechanisms:?}; this gateway does SCRAM-SHA-256 only"
                    )));
                }
                let scram = ScramSha256::new(&self.password, ChannelBinding::unsupported());
                let mut b = BytesMut::new();
                put_cstr(&mut b, SCRAM_SHA_256);
                let first = scram.message();
                b.put_i32(i32::try_from(first.len()).unwrap_or(i32::MAX));
                b.put_slice(first);
                self.scram = Some(scram);
                Ok(Step::Send(Frame::new(tag::PASSWORD, b.freeze())))
            }
            11 => {
                let scram = self
                    .scram
                    .as_mut()
                    .ok_or_else(|| PgError::protocol("SASL continue before SASL"))?;
                scram
                    .update(r.rest())
                    .map_err(|e| PgError::Auth(format!("SCRAM: {e}")))?;
                Ok(Step::Send(Frame::new(
                    tag::PASSWORD,
                    Bytes::copy_from_slice(scram.message()),
                )))
            }
            12 => {
                let mut scram = self
                    .scram
                    .take()
                    .ok_or_else(|| PgError::protocol("SASL final before SASL"))?;
                scram
                    .finish(r.rest())
                    .map_err(|e| PgError::Auth(format!("SCRAM: the server's proof: {e}")))?;
                Ok(Step::Wait)
            }
            2 => Err(PgError::Auth(
                "the server asks for Kerberos V5, which this gateway does not do".into(),
            )),
            7 | 8 => Err(PgError::Auth(
                "the server asks for GSSAPI, which this gateway does not do".into(),
            )),
            9 => Err(PgError::Auth(
                "the server asks for SSPI, which this gateway does not do".into(),
            )),
            other => Err(PgError::Auth(format!(
                "unknown authentication request {other}"
            ))),
        }
    }

    fn need_password(&self) -> Result<(), PgError> {
        if self.password.is_empty() {
            return Err(PgError::Auth(
                "the server asks for a password and the connection has none: set env PASS".into(),
            ));
        }
        Ok(())
    }
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

fn password_message(password: &[u8]) -> Frame {
    let mut b = BytesMut::with_capacity(password.len() + 1);
    b.put_slice(password);
    b.put_u8(0);
    Frame::new(tag::PASSWORD, b.freeze())
}

/// Whether a client's `PasswordMessage` body answers an MD5 challenge with `salt` for
/// `user` and the one-time password `expected`, or (if the client sent it in clear, as
/// after a cleartext challenge) is `expected` itself. Compared in constant time.
pub fn check_password(body: &[u8], user: &str, expected: &str, salt: [u8; 4]) -> bool {
    let sent = body.strip_suffix(&[0]).unwrap_or(body);
    let md5 =
        postgres_protocol::authentication::md5_hash(user.as_bytes(), expected.as_bytes(), salt);
    constant_eq(sent, md5.as_bytes())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_answers_verify() {
        let salt = [1, 2, 3, 4];
        let mut up = Upstream::new("alice", "otp-123");
        let mut body = BytesMut::new();
        body.put_i32(5);
        body.put_slice(&salt);
        let Step::Send(frame) = up.respond(&body).unwrap() else {
            panic!("no answer")
        };
        assert!(check_password(&frame.body, "alice", "otp-123", salt));
        assert!(!check_password(&frame.body, "alice", "otp-124", salt));
        assert!(!check_password(&frame.body, "bob", "otp-123", salt));
        assert!(!format!("{up:?}").contains("otp-123"));
    }

    #[test]
    fn no_password_is_said_plainly() {
        let mut up = Upstream::new("alice", "");
        let err = up.respond(&[0, 0, 0, 3]).unwrap_err();
        assert!(err.to_string().contains("set env PASS"), "{err}");
    }
}
