//! The messages the gateway inspects or writes, parsed from a [`Frame`]'s body and encoded
//! back. Everything else is relayed as it came.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::PgError;
use crate::frame::Frame;

/// Frontend message tags.
pub mod tag {
    /// Simple query.
    pub const QUERY: u8 = b'Q';
    /// Extended protocol: parse a statement.
    pub const PARSE: u8 = b'P';
    /// Extended protocol: bind a portal.
    pub const BIND: u8 = b'B';
    /// Extended protocol: execute a portal.
    pub const EXECUTE: u8 = b'E';
    /// Extended protocol: describe a statement or portal.
    pub const DESCRIBE: u8 = b'D';
    /// Extended protocol: close a statement or portal.
    pub const CLOSE: u8 = b'C';
    /// Extended protocol: end of a batch.
    pub const SYNC: u8 = b'S';
    /// Extended protocol: flush.
    pub const FLUSH: u8 = b'H';
    /// End of the session.
    pub const TERMINATE: u8 = b'X';
    /// COPY data (both directions).
    pub const COPY_DATA: u8 = b'd';
    /// COPY done (both directions).
    pub const COPY_DONE: u8 = b'c';
    /// COPY FROM STDIN failed on the client.
    pub const COPY_FAIL: u8 = b'f';
    /// Password, SASL responses.
    pub const PASSWORD: u8 = b'p';
    /// Function call (legacy).
    pub const FUNCTION_CALL: u8 = b'F';

    /// Backend: authentication request.
    pub const AUTHENTICATION: u8 = b'R';
    /// Backend: a run-time parameter's value.
    pub const PARAMETER_STATUS: u8 = b'S';
    /// Backend: cancel key.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// Backend: ready for a new query.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// Backend: columns of the rows to come.
    pub const ROW_DESCRIPTION: u8 = b'T';
    /// Backend: one row.
    pub const DATA_ROW: u8 = b'D';
    /// Backend: a statement completed.
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// Backend: an empty query string.
    pub const EMPTY_QUERY: u8 = b'I';
    /// Backend: error.
    pub const ERROR_RESPONSE: u8 = b'E';
    /// Backend: notice.
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// Backend: LISTEN/NOTIFY notification.
    pub const NOTIFICATION: u8 = b'A';
    /// Backend: parse done.
    pub const PARSE_COMPLETE: u8 = b'1';
    /// Backend: bind done.
    pub const BIND_COMPLETE: u8 = b'2';
    /// Backend: close done.
    pub const CLOSE_COMPLETE: u8 = b'3';
    /// Backend: parameter types of a statement.
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    /// Backend: a statement returns no rows.
    pub const NO_DATA: u8 = b'n';
    /// Backend: Execute stopped at its row limit.
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// Backend: COPY FROM STDIN starts.
    pub const COPY_IN_RESPONSE: u8 = b'G';
    /// Backend: COPY TO STDOUT starts.
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    /// Backend: COPY BOTH (replication) starts.
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    /// Backend: the server does not support a protocol version or option.
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}

/// Reads the parts of a message body.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `body`.
    pub fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }

    /// A NUL-terminated string (lossy UTF-8).
    ///
    /// # Errors
    /// No NUL before the end.
    pub fn cstr(&mut self) -> Result<String, PgError> {
        let end = self
            .rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| PgError::protocol("unterminated string"))?;
        let s = String::from_utf8_lossy(&self.rest[..end]).into_owned();
        self.rest = &self.rest[end + 1..];
        Ok(s)
    }

    /// A big-endian i16.
    ///
    /// # Errors
    /// Too few bytes.
    pub fn i16(&mut self) -> Result<i16, PgError> {
        self.need(2)?;
        Ok(self.rest.get_i16())
    }

    /// A big-endian i32.
    ///
    /// # Errors
    /// Too few bytes.
    pub fn i32(&mut self) -> Result<i32, PgError> {
        self.need(4)?;
        Ok(self.rest.get_i32())
    }

    /// A count (i16 that must not be negative).
    ///
    /// # Errors
    /// Too few bytes, or negative.
    pub fn count(&mut self) -> Result<usize, PgError> {
        let n = self.i16()?;
        usize::try_from(n).map_err(|_| PgError::protocol(format!("negative count {n}")))
    }

    /// A length-prefixed value (`-1`: NULL).
    ///
    /// # Errors
    /// Too few bytes, or a negative length other than -1.
    pub fn value(&mut self) -> Result<Option<&'a [u8]>, PgError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| PgError::protocol("negative length"))?;
        self.bytes(len).map(Some)
    }

    /// `n` raw bytes.
    ///
    /// # Errors
    /// Too few bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], PgError> {
        self.need(n)?;
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    fn need(&self, n: usize) -> Result<(), PgError> {
        if self.rest.len() < n {
            return Err(PgError::protocol("message too short"));
        }
        Ok(())
    }
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

/// `Parse`: a statement's name, text and parameter types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse {
    /// Statement name (empty: the unnamed statement).
    pub name: String,
    /// SQL text.
    pub query: String,
    /// Parameter type oids the client fixed (0: let the server infer).
    pub param_types: Vec<u32>,
}

impl Parse {
    /// Parses a `Parse` body.
    ///
    /// # Errors
    /// A malformed body.
    pub fn decode(body: &[u8]) -> Result<Self, PgError> {
        let mut r = Reader::new(body);
        let name = r.cstr()?;
        let query = r.cstr()?;
        let n = r.count()?;
        let mut param_types = Vec::with_capacity(n);
        for _ in 0..n {
            param_types.push(r.i32()? as u32);
        }
        Ok(Self {
            name,
            query,
            param_types,
        })
    }

    /// The message.
    pub fn frame(&self) -> Frame {
        let mut b = BytesMut::new();
        put_cstr(&mut b, &self.name);
        put_cstr(&mut b, &self.query);
        b.put_i16(i16::try_from(self.param_types.len()).unwrap_or(i16::MAX));
        for t in &self.param_types {
            b.put_u32(*t);
        }
        Frame::new(tag::PARSE, b.freeze())
    }
}

/// `Bind`: a portal made of a statement and parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Portal name (empty: the unnamed portal).
    pub portal: String,
    /// Statement name.
    pub statement: String,
    /// Format codes of the parameters (none: all text; one: all that one).
    pub param_formats: Vec<i16>,
    /// Parameter values (`None`: NULL).
    pub params: Vec<Option<Bytes>>,
    /// Format codes of the result columns (none: all text; one: all that one).
    pub result_formats: Vec<i16>,
}

impl Bind {
    /// Parses a `Bind` body.
    ///
    /// # Errors
    /// A malformed body.
    pub fn parse(body: &Bytes) -> Result<Self, PgError> {
        let mut r = Reader::new(body);
        let portal = r.cstr()?;
        let statement = r.cstr()?;
        let n = r.count()?;
        let mut param_formats = Vec::with_capacity(n);
        for _ in 0..n {
            param_formats.push(r.i16()?);
        }
        let n = r.count()?;
        let mut params = Vec::with_capacity(n);
        for _ in 0..n {
            params.push(r.value()?.map(|v| body.slice_ref(v)));
        }
        let n = r.count()?;
        let mut result_formats = Vec::with_capacity(n);
        for _ in 0..n {
            result_formats.push(r.i16()?);
        }
        Ok(Self {
            portal,
            statement,
            param_formats,
            params,
            result_formats,
        })
    }

    /// Whether parameter `i` is sent in binary.
    pub fn param_is_binary(&self, i: usize) -> bool {
        format_of(&self.param_formats, i) == 1
    }

    /// The message.
    pub fn frame(&self) -> Frame {
        let mut b = BytesMut::new();
        put_cstr(&mut b, &self.portal);
        put_cstr(&mut b, &self.statement);
        b.put_i16(i16::try_from(self.param_formats.len()).unwrap_or(i16::MAX));
        for f in &self.param_formats {
            b.put_i16(*f);
        }
        b.put_i16(i16::try_from(self.params.len()).unwrap_or(i16::MAX));
        for p in &self.params {
            match p {
                None => b.put_i32(-1),
                Some(v) => {
                    b.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                    b.put_slice(v);
                }
            }
        }
        b.put_i16(i16::try_from(self.result_formats.len()).unwrap_or(i16::MAX));
        for f in &self.result_formats {
            b.put_i16(*f);
        }
        Frame::new(tag::BIND, b.freeze())
    }
}

/// The format code of item `i` given a list of codes as Bind carries them.
pub fn format_of(formats: &[i16], i: usize) -> i16 {
    match formats {
        [] => 0,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(0),
    }
}

/// `Describe` or `Close`: `S` (statement) or `P` (portal) and a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `b'S'` or `b'P'`.
    pub kind: u8,
    /// The statement's or portal's name.
    pub name: String,
}

impl Target {
    /// Parses a `Describe` or `Close` body.
    ///
    /// # Errors
    /// A malformed body.
    pub fn parse(body: &[u8]) -> Result<Self, PgError> {
        let mut r = Reader::new(body);
        let kind = r.bytes(1)?[0];
        if kind != b'S' && kind != b'P' {
            return Err(PgError::protocol(format!("describe/close kind {kind}")));
        }
        Ok(Self {
            kind,
            name: r.cstr()?,
        })
    }

    /// The message with `tag` (`Describe` or `Close`).
    pub fn frame(&self, tag: u8) -> Frame {
        let mut b = BytesMut::new();
        b.put_u8(self.kind);
        put_cstr(&mut b, &self.name);
        Frame::new(tag, b.freeze())
    }
}

/// `Execute`: a portal and a row limit (0: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    /// Portal name.
    pub portal: String,
    /// Most rows to return (0: no limit).
    pub max_rows: i32,
}

impl Execute {
    /// Parses an `Execute` body.
    ///
    /// # Errors
    /// A malformed body.
    pub fn parse(body: &[u8]) -> Result<Self, PgError> {
        let mut r = Reader::new(body);
        Ok(Self {
            portal: r.cstr()?,
            max_rows: r.i32()?,
        })
    }
}

/// `Query`'s text.
///
/// # Errors
/// A malformed body.
pub fn query_text(body: &[u8]) -> Result<String, PgError> {
    Reader::new(body).cstr()
}

/// A `Query` message.
pub fn query(sql: &str) -> Frame {
    let mut b = BytesMut::with_capacity(sql.len() + 1);
    put_cstr(&mut b, sql);
    Frame::new(tag::QUERY, b.freeze())
}

/// A message with no body (`Sync`, `Terminate`, `Flush`, `CopyDone`, `NoData`, …).
pub fn empty(tag: u8) -> Frame {
    Frame::new(tag, Bytes::new())
}

/// One column of a `RowDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Column name (or alias).
    pub name: String,
    /// Oid of the table the column comes from (0: computed).
    pub table_oid: u32,
    /// The column's attribute number in that table (0: computed).
    pub column: i16,
    /// Oid of the value's type.
    pub type_oid: u32,
    /// Type size.
    pub type_size: i16,
    /// Type modifier.
    pub type_modifier: i32,
    /// Format of the values: 0 text, 1 binary.
    pub format: i16,
}

/// Parses a `RowDescription` body.
///
/// # Errors
/// A malformed body.
pub fn row_description(body: &[u8]) -> Result<Vec<Field>, PgError> {
    let mut r = Reader::new(body);
    let n = r.count()?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        fields.push(Field {
            name: r.cstr()?,
            table_oid: r.i32()? as u32,
            column: r.i16()?,
            type_oid: r.i32()? as u32,
            type_size: r.i16()?,
            type_modifier: r.i32()?,
            format: r.i16()?,
        });
    }
    Ok(fields)
}

/// A `RowDescription` message.
pub fn encode_row_description(fields: &[Field]) -> Frame {
    let mut b = BytesMut::new();
    b.put_i16(i16::try_from(fields.len()).unwrap_or(i16::MAX));
    for f in fields {
        put_cstr(&mut b, &f.name);
        b.put_u32(f.table_oid);
        b.put_i16(f.column);
        b.put_u32(f.type_oid);
        b.put_i16(f.type_size);
        b.put_i32(f.type_modifier);
        b.put_i16(f.format);
    }
    Frame::new(tag::ROW_DESCRIPTION, b.freeze())
}

/// Parses a `DataRow` body into its values (slices of `body`; `None`: NULL).
///
/// # Errors
/// A malformed body.
pub fn data_row(body: &Bytes) -> Result<Vec<Option<Bytes>>, PgError> {
    let mut r = Reader::new(body);
    let n = r.count()?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(r.value()?.map(|v| body.slice_ref(v)));
    }
    Ok(values)
}

/// Appends a `DataRow` message of `values` to `out`.
pub fn encode_data_row(values: &[Option<Bytes>], out: &mut BytesMut) {
    let len: usize = 4
        + 2
        + values
            .iter()
            .map(|v| 4 + v.as_ref().map_or(0, Bytes::len))
            .sum::<usize>();
    out.reserve(len + 1);
    out.put_u8(tag::DATA_ROW);
    out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    out.put_i16(i16::try_from(values.len()).unwrap_or(i16::MAX));
    for v in values {
        match v {
            None => out.put_i32(-1),
            Some(v) => {
                out.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                out.put_slice(v);
            }
        }
    }
}

/// The fields of an `ErrorResponse` or `NoticeResponse`: (code, value), e.g. `(b'M',
/// "relation does not exist")`.
pub type Fields = Vec<(u8, String)>;

/// Parses an `ErrorResponse` / `NoticeResponse` body.
///
/// # Errors
/// A malformed body.
pub fn error_fields(body: &[u8]) -> Result<Fields, PgError> {
    let mut r = Reader::new(body);
    let mut fields = Vec::new();
    loop {
        let code = r.bytes(1)?[0];
        if code == 0 {
            break;
        }
        fields.push((code, r.cstr()?));
    }
    Ok(fields)
}

/// The value of field `code`.
pub fn field(fields: &Fields, code: u8) -> Option<&str> {
    fields
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v.as_str())
}

/// An `ErrorResponse` (`tag::ERROR_RESPONSE`) or `NoticeResponse` of `fields`.
pub fn encode_fields(tag: u8, fields: &Fields) -> Frame {
    let mut b = BytesMut::new();
    for (code, value) in fields {
        b.put_u8(*code);
        put_cstr(&mut b, value);
    }
    b.put_u8(0);
    Frame::new(tag, b.freeze())
}

/// An `ErrorResponse` with severity `FATAL` or `ERROR`, SQLSTATE `code` and `message`.
pub fn error(severity: &str, code: &str, message: &str) -> Frame {
    encode_fields(
        tag::ERROR_RESPONSE,
        &vec![
            (b'S', severity.to_owned()),
            (b'V', severity.to_owned()),
            (b'C', code.to_owned()),
            (b'M', message.to_owned()),
        ],
    )
}

/// `CommandComplete`'s tag, e.g. `SELECT 3`.
///
/// # Errors
/// A malformed body.
pub fn command_tag(body: &[u8]) -> Result<String, PgError> {
    Reader::new(body).cstr()
}

/// `BackendKeyData`: (process id, secret key).
///
/// # Errors
/// A malformed body.
pub fn backend_key(body: &[u8]) -> Result<(u32, u32), PgError> {
    let mut r = Reader::new(body);
    Ok((r.i32()? as u32, r.i32()? as u32))
}

/// A `BackendKeyData` message.
pub fn encode_backend_key(process_id: u32, secret_key: u32) -> Frame {
    let mut b = BytesMut::with_capacity(8);
    b.put_u32(process_id);
    b.put_u32(secret_key);
    Frame::new(tag::BACKEND_KEY_DATA, b.freeze())
}

/// A `ParameterStatus`: (name, value).
///
/// # Errors
/// A malformed body.
pub fn parameter_status(body: &[u8]) -> Result<(String, String), PgError> {
    let mut r = Reader::new(body);
    Ok((r.cstr()?, r.cstr()?))
}

/// A `ParameterStatus` message.
pub fn encode_parameter_status(name: &str, value: &str) -> Frame {
    let mut b = BytesMut::new();
    put_cstr(&mut b, name);
    put_cstr(&mut b, value);
    Frame::new(tag::PARAMETER_STATUS, b.freeze())
}

/// A `ReadyForQuery` with transaction status `I`, `T` or `E`.
pub fn ready_for_query(status: u8) -> Frame {
    Frame::new(tag::READY_FOR_QUERY, Bytes::copy_from_slice(&[status]))
}

/// `AuthenticationOk`.
pub fn authentication_ok() -> Frame {
    Frame::new(tag::AUTHENTICATION, Bytes::from_static(&[0, 0, 0, 0]))
}

/// `AuthenticationMD5Password` with `salt`.
pub fn authentication_md5(salt: [u8; 4]) -> Frame {
    let mut b = BytesMut::with_capacity(8);
    b.put_i32(5);
    b.put_slice(&salt);
    Frame::new(tag::AUTHENTICATION, b.freeze())
}

/// `AuthenticationCleartextPassword`.
pub fn authentication_cleartext() -> Frame {
    Frame::new(tag::AUTHENTICATION, Bytes::from_static(&[0, 0, 0, 3]))
}

/// `CopyOutResponse` / `CopyInResponse`: overall format (0 text, 1 binary) and per-column
/// formats.
///
/// # Errors
/// A malformed body.
pub fn copy_response(body: &[u8]) -> Result<(i8, Vec<i16>), PgError> {
    let mut r = Reader::new(body);
    let format = r.bytes(1)?[0] as i8;
    let n = r.count()?;
    let mut formats = Vec::with_capacity(n);
    for _ in 0..n {
        formats.push(r.i16()?);
    }
    Ok((format, formats))
}

/// `NotificationResponse`: (process id, channel, payload).
///
/// # Errors
/// A malformed body.
pub fn notification(body: &[u8]) -> Result<(u32, String, String), PgError> {
    let mut r = Reader::new(body);
    Ok((r.i32()? as u32, r.cstr()?, r.cstr()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_round_trips() {
        let bind = Bind {
            portal: String::new(),
            statement: "s1".into(),
            param_formats: vec![1],
            params: vec![Some(Bytes::from_static(&[0, 0, 0, 7])), None],
            result_formats: vec![1],
        };
        let frame = bind.frame();
        assert_eq!(Bind::parse(&frame.body).unwrap(), bind);
        assert!(bind.param_is_binary(1));
    }

    #[test]
    fn data_rows_round_trip() {
        let values = vec![Some(Bytes::from_static(b"a@b.c")), None, Some(Bytes::new())];
        let mut out = BytesMut::new();
        encode_data_row(&values, &mut out);
        let frame = crate::frame::next_frame(&mut out).unwrap().unwrap();
        assert_eq!(frame.tag, tag::DATA_ROW);
        assert_eq!(data_row(&frame.body).unwrap(), values);
    }

    #[test]
    fn row_descriptions_round_trip() {
        let fields = vec![Field {
            name: "email".into(),
            table_oid: 16384,
            column: 2,
            type_oid: 25,
            type_size: -1,
            type_modifier: -1,
            format: 0,
        }];
        let f = encode_row_description(&fields);
        assert_eq!(row_description(&f.body).unwrap(), fields);
    }

    #[test]
    fn errors_round_trip() {
        let f = error("ERROR", "42P01", "nope");
        let fields = error_fields(&f.body).unwrap();
        assert_eq!(field(&fields, b'M'), Some("nope"));
        assert_eq!(field(&fields, b'C'), Some("42P01"));
    }
}
