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

    /// A SCRAM-SHA-256 server, as PostgreSQL runs it, for one exchange.
    mod scram_server {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD as B64;
        use hmac::{Hmac, Mac};
        use sha2::{Digest, Sha256};

        fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }

        fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
            let mut u = hmac(password, &[salt, &1u32.to_be_bytes()].concat());
            let mut out = u.clone();
            for _ in 1..iterations {
                u = hmac(password, &u);
                for (o, x) in out.iter_mut().zip(&u) {
                    *o ^= x;
                }
            }
            out
        }

        pub(super) struct Server {
            pub(super) salted: Vec<u8>,
            pub(super) client_first_bare: String,
            pub(super) server_first: String,
        }

        impl Server {
            /// Answers client-first; the server's password is `password`.
            pub(super) fn first(password: &str, client_first: &str) -> Self {
                let bare = client_first.strip_prefix("n,,").unwrap().to_owned();
                let cnonce = bare.split(",r=").nth(1).unwrap();
                let salt = b"0123456789abcdef";
                let server_first = format!("r={cnonce}srvnonce,s={},i=4096", B64.encode(salt));
                Self {
                    salted: hi(password.as_bytes(), salt, 4096),
                    client_first_bare: bare,
                    server_first,
                }
            }

            /// Checks client-final; returns server-final (`v=…`) if the proof holds.
            pub(super) fn last(&self, client_final: &str) -> Option<String> {
                let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
                let proof = B64.decode(proof).unwrap();
                let auth = format!(
                    "{},{},{}",
                    self.client_first_bare, self.server_first, without_proof
                );
                let client_key = hmac(&self.salted, b"Client Key");
                let stored = Sha256::digest(&client_key);
                let signature = hmac(&stored, auth.as_bytes());
                let recovered: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
                if Sha256::digest(&recovered) != stored {
                    return None;
                }
                let server_key = hmac(&self.salted, b"Server Key");
                Some(format!(
                    "v={}",
                    B64.encode(hmac(&server_key, auth.as_bytes()))
                ))
            }
        }
    }

    fn scram_exchange(client_password: &str, server_password: &str) -> Result<(), String> {
        let mut up = Upstream::new("app", client_password);
        let mut request = BytesMut::new();
        request.put_i32(10);
        request.put_slice(b"SCRAM-SHA-256\0\0");
        let Step::Send(initial) = up.respond(&request).map_err(|e| e.to_string())? else {
            return Err("no initial response".into());
        };
        let mut r = Reader::new(&initial.body);
        assert_eq!(r.cstr().unwrap(), "SCRAM-SHA-256");
        let len = usize::try_from(r.i32().unwrap()).unwrap();
        let client_first = std::str::from_utf8(r.bytes(len).unwrap())
            .unwrap()
            .to_owned();
        let server = scram_server::Server::first(server_password, &client_first);
        let mut cont = BytesMut::new();
        cont.put_i32(11);
        cont.put_slice(server.server_first.as_bytes());
        let Step::Send(last) = up.respond(&cont).map_err(|e| e.to_string())? else {
            return Err("no final response".into());
        };
        let client_final = std::str::from_utf8(&last.body).unwrap();
        assert!(!client_final.contains(client_password));
        let server_final = server
            .last(client_final)
            .ok_or_else(|| "the server refused the proof".to_owned())?;
        let mut fin = BytesMut::new();
        fin.put_i32(12);
        fin.put_slice(server_final.as_bytes());
        assert!(matches!(
            up.respond(&fin).map_err(|e| e.to_string())?,
            Step::Wait
        ));
        assert!(matches!(up.respond(&[0, 0, 0, 0]).unwrap(), Step::Done));
        assert_eq!(up.method(), "scram-sha-256");
        Ok(())
    }

    #[test]
    fn scram_sha_256_logs_in_and_checks_the_server() {
        scram_exchange("s3cret-pw", "s3cret-pw").unwrap();
        assert_eq!(
            scram_exchange("wrong-pw", "s3cret-pw").unwrap_err(),
            "the server refused the proof"
        );
    }

    #[test]
    fn a_forged_server_signature_is_refused() {
        let mut up = Upstream::new("app", "pw");
        let mut request = BytesMut::new();
        request.put_i32(10);
        request.put_slice(b"SCRAM-SHA-256\0\0");
        let Step::Send(initial) = up.respond(&request).unwrap() else {
            panic!()
        };
        let mut r = Reader::new(&initial.body);
        r.cstr().unwrap();
        let len = usize::try_from(r.i32().unwrap()).unwrap();
        let client_first = std::str::from_utf8(r.bytes(len).unwrap())
            .unwrap()
            .to_owned();
        let server = scram_server::Server::first("pw", &client_first);
        let mut cont = BytesMut::new();
        cont.put_i32(11);
        cont.put_slice(server.server_first.as_bytes());
        up.respond(&cont).unwrap();
        let mut fin = BytesMut::new();
        fin.put_i32(12);
        fin.put_slice(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(matches!(up.respond(&fin), Err(PgError::Auth(_))));
    }

    #[test]
    fn other_mechanisms_are_named() {
        let mut up = Upstream::new("app", "pw");
        let mut request = BytesMut::new();
        request.put_i32(10);
        request.put_slice(b"SCRAM-SHA-256-PLUS\0\0");
        let err = up.respond(&request).unwrap_err().to_string();
        assert!(err.contains("SCRAM-SHA-256-PLUS"), "{err}");
    }

    #[test]
    fn no_password_is_said_plainly() {
        let mut up = Upstream::new("alice", "");
        let err = up.respond(&[0, 0, 0, 3]).unwrap_err();
        assert!(err.to_string().contains("set env PASS"), "{err}");
    }
}
