//! Sessions on `postgres` connections: the gateway speaks the PostgreSQL protocol.
//!
//! The connection's agent opens the TCP connection to the database (`AgentStart.tcp`) and
//! relays bytes; the gateway logs in with the connection's credentials (SCRAM-SHA-256, MD5
//! or cleartext: the client never sees them) and then reads every message both ways:
//!
//! - statements go through the chain as input (simple queries as sent; the extended
//!   protocol's statement text with its bound parameters, at Execute), so plugins can
//!   record or refuse them;
//! - result values go through the chain's `on_rows` (column rules of `mask_columns` first,
//!   then plugins such as dlp), are re-encoded for the client, and the rows the user saw,
//!   rendered as psql prints them, go through the chain as output (recorded by audit);
//! - errors' and notices' text, and the rows of `COPY … TO STDOUT`, are masked the same way.
//!
//! `connect` sessions carry a client's protocol bytes (after `hoop connect` checked the
//! one-time password); `exec` sessions run their input as one simple query and print the
//! result as psql does.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hoop_core::{ChainSession, Chunk, CloseReason, ResultColumn, ResultRows, Stream};
use hoop_pg::copy::{CopySource, CopyStatement, parse_copy, split_row};
use hoop_pg::frame::{Frame, Startup, next_frame, next_startup};
use hoop_pg::message::{self as msg, Field, tag};
use hoop_pg::target::{ColumnRule, PgTarget};
use hoop_proto::v1 as pb;

use crate::agents::{AgentEvent, Agents, INPUT_PIECE};
use crate::grpc::App;
use crate::pglink::{DbLink, OpenError, Want};
use crate::runtime::{
    Counters, Ending, EventSender, Input, InputMessage, Stops, Waiting, add, error_ending, event,
    interrupted, killed, open, plugin_ending, session_event, shut_down, sleep_until,
};

/// The connection type.
pub(crate) const KIND: &str = "postgres";
/// What a column rule puts in place of a text value.
const MASK: &[u8] = b"[MASKED]";
/// Output taken by the client is acknowledged to the agent once this much has gathered.
const OUTPUT_ACK_EVERY: usize = 32 * 1024;
/// Rows handed to the chain at once.
const BATCH_ROWS: usize = 256;
/// Bytes of rows held before they are handed to the chain, whatever their number (256 rows
/// of large values would otherwise wait in memory).
const BATCH_BYTES: usize = 1024 * 1024;
/// How long a table's catalog entry is trusted.
const CATALOG_TTL: Duration = Duration::from_secs(60);
/// How long logging in to the database may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest parameter value shown in a recording.
const MAX_PARAM_SHOWN: usize = 256;
/// Type oids whose binary values are UTF-8 text.
const TEXT_TYPES: &[u32] = &[18, 19, 25, 114, 705, 1042, 1043];
/// Type oids whose binary values hold no text (booleans, numbers, times, ids, uuids).
const SCALAR_TYPES: &[u32] = &[
    16, 20, 21, 23, 26, 700, 701, 790, 1082, 1083, 1114, 1184, 1186, 1266, 1700, 2950,
];

/// What the gateway keeps about its postgres sessions: cancel keys and the catalog cache.
#[derive(Debug, Default)]
pub(crate) struct PgState {
    cancels: Mutex<HashMap<(u32, u32), CancelEntry>>,
    catalog: Mutex<HashMap<(String, u32), CatalogEntry>>,
    serial: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
struct CancelEntry {
    user: String,
    connection: String,
    session: String,
    agent: String,
    target: PgTarget,
    upstream: (u32, u32),
}

/// A table's catalog entry and when it was read.
type CatalogEntry = (Instant, std::sync::Arc<TableInfo>);

#[derive(Debug)]
struct TableInfo {
    schema: String,
    table: String,
    columns: HashMap<i16, String>,
    /// A view or materialized view: its columns come from other tables'.
    view: bool,
}

/// How deep views of views are followed to their tables.
const MAX_VIEW_DEPTH: u8 = 8;

impl PgState {
    fn next_serial(&self) -> u64 {
        self.serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

fn random_u32() -> u32 {
    let n = uuid::Uuid::new_v4().as_u128();
    // Keep the process id positive, as clients expect.
    (n as u32) & 0x7fff_ffff
}

/// Sends a cancel request for the query running in the session that handed out
/// `(process_id, secret_key)`, if it is `caller`'s session on `connection`. Unknown keys are
/// ignored, as PostgreSQL ignores them.
pub(crate) async fn cancel(
    app: &App,
    user: &str,
    connection: &str,
    process_id: u32,
    secret_key: u32,
) -> Result<bool, String> {
    let entry = app
        .pg
        .cancels
        .lock()
        .ok()
        .and_then(|c| c.get(&(process_id, secret_key)).cloned());
    let Some(entry) = entry.filter(|e| e.user == user && e.connection == connection) else {
        return Ok(false);
    };
    let id = format!("{}-cancel-{}", entry.session, app.pg.next_serial());
    // The cancel key travels as the session's traffic does: under TLS when it was.
    let want = match entry.target.sslmode {
        hoop_pg::target::SslMode::Disable | hoop_pg::target::SslMode::Allow => Want::Plain,
        hoop_pg::target::SslMode::Prefer => Want::TlsIfOffered,
        _ => Want::Tls,
    };
    let tls = hoop_pg::tls::settings(&entry.target)?;
    let remote = crate::pglink::open(
        &app.agents,
        &entry.agent,
        &id,
        &entry.target,
        tls.as_ref(),
        want,
    )
    .await
    .map_err(|e| match e {
        OpenError::Agent(m) | OpenError::Gone(m) | OpenError::Tls(m) => m,
    })?;
    let mut wire = Wire::new(remote);
    let (pid, key) = entry.upstream;
    wire.send(hoop_pg::frame::encode_cancel(pid, key)).await?;
    let _ = wire.remote.close_input().await;
    // The server closes the connection once it handled the request.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while wire.pump().await.is_ok() {}
    })
    .await;
    tracing::info!(session = %entry.session, "postgres cancel request relayed");
    Ok(true)
}

/// A connection to the database through an agent, for the gateway's own use (logging in,
/// catalog lookups, cancel requests): output is acknowledged as it arrives.
struct Wire {
    remote: DbLink,
    buf: BytesMut,
}

impl Wire {
    fn new(remote: DbLink) -> Self {
        Self {
            remote,
            buf: BytesMut::new(),
        }
    }

    /// Sends `data`, waiting for room in the agent's window.
    async fn send(&mut self, mut data: Bytes) -> Result<(), String> {
        while !data.is_empty() {
            let n = data.len().min(INPUT_PIECE);
            if self.remote.input_fits(n) {
                self.remote.input(data.split_to(n)).await?;
            } else {
                self.pump().await?;
            }
        }
        Ok(())
    }

    async fn send_frames(&mut self, frames: &[Frame]) -> Result<(), String> {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out);
        }
        self.send(out.freeze()).await
    }

    /// Waits for the next event from the agent.
    async fn pump(&mut self) -> Result<(), String> {
        match self.remote.next().await {
            AgentEvent::Output { data, .. } => {
                let n = data.len();
                self.buf.extend_from_slice(&data);
                self.remote.ack_output(n).await?;
                Ok(())
            }
            AgentEvent::Spawned | AgentEvent::InputAck(_) => Ok(()),
            AgentEvent::Exit { error, .. } => {
                Err(error.unwrap_or_else(|| "the database closed the connection".to_owned()))
            }
            AgentEvent::Lost(reason) => Err(reason),
        }
    }

    async fn frame(&mut self) -> Result<Frame, String> {
        loop {
            if let Some(f) = next_frame(&mut self.buf).map_err(|e| e.to_string())? {
                return Ok(f);
            }
            self.pump().await?;
        }
    }

    /// Runs a simple query and returns its rows as text (errors as `Err`).
    async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        self.send_frames(&[msg::query(sql)]).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let f = self.frame().await?;
            match f.tag {
                tag::DATA_ROW => rows.push(
                    msg::data_row(&f.body)
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
                        .collect(),
                ),
                tag::ERROR_RESPONSE => {
                    let fields = msg::error_fields(&f.body).map_err(|e| e.to_string())?;
                    error = Some(msg::field(&fields, b'M').unwrap_or("error").to_owned());
                }
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// The result columns of `sql` (Parse and Describe, never executed).
    async fn describe(&mut self, sql: &str) -> Result<Vec<Field>, String> {
        let parse = msg::Parse {
            name: String::new(),
            query: sql.to_owned(),
            param_types: Vec::new(),
        };
        self.send_frames(&[
            parse.frame(),
            msg::Target {
                kind: b'S',
                name: String::new(),
            }
            .frame(tag::DESCRIBE),
            msg::empty(tag::SYNC),
        ])
        .await?;
        let mut fields = Vec::new();
        let mut error = None;
        loop {
            let f = self.frame().await?;
            match f.tag {
                tag::ROW_DESCRIPTION => {
                    fields = msg::row_description(&f.body).map_err(|e| e.to_string())?;
                }
                tag::ERROR_RESPONSE => error = Some("cannot describe".to_owned()),
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(fields),
        }
    }
}

/// Logs in to the database as the connection's user. Returns the server's parameters, its
/// cancel key and the transaction status of its first ReadyForQuery.
async fn login(
    wire: &mut Wire,
    target: &PgTarget,
    client_params: &[(String, String)],
) -> Result<Login, LoginError> {
    let mut params = vec![
        ("user".to_owned(), target.user.clone()),
        ("database".to_owned(), target.database.clone()),
    ];
    for (k, v) in client_params {
        if FORWARDED_PARAMS.contains(&k.as_str()) {
            params.push((k.clone(), v.clone()));
        }
    }
    wire.send(hoop_pg::frame::encode_startup(&params))
        .await
        .map_err(LoginError::Gone)?;
    let mut auth = hoop_pg::auth::Upstream::new(target.user.clone(), target.password.clone());
    let mut login = Login::default();
    loop {
        let f = wire.frame().await.map_err(LoginError::Gone)?;
        match f.tag {
            tag::AUTHENTICATION => match auth.respond(&f.body) {
                Ok(hoop_pg::auth::Step::Send(reply)) => {
                    wire.send_frames(&[reply]).await.map_err(LoginError::Gone)?
                }
                Ok(_) => {}
                Err(err) => return Err(LoginError::Refused(err.to_string())),
            },
            tag::PARAMETER_STATUS => login.params.push(f),
            tag::BACKEND_KEY_DATA => {
                login.key =
                    msg::backend_key(&f.body).map_err(|e| LoginError::Gone(e.to_string()))?;
            }
            tag::NOTICE_RESPONSE | tag::NEGOTIATE_PROTOCOL_VERSION => {}
            tag::ERROR_RESPONSE => {
                let fields = msg::error_fields(&f.body).unwrap_or_default();
                return Err(LoginError::Refused(
                    msg::field(&fields, b'M').unwrap_or("refused").to_owned(),
                ));
            }
            tag::READY_FOR_QUERY => {
                login.status = f.body.first().copied().unwrap_or(b'I');
                login.method = auth.method();
                return Ok(login);
            }
            other => {
                return Err(LoginError::Gone(format!(
                    "unexpected message `{}` while logging in",
                    char::from(other)
                )));
            }
        }
    }
}

/// Startup parameters of the client passed on to the database (never `user`, `database`
/// nor `replication`: the connection decides those).
const FORWARDED_PARAMS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
    "search_path",
    "options",
];

#[derive(Default)]
struct Login {
    params: Vec<Frame>,
    key: (u32, u32),
    status: u8,
    method: &'static str,
}

enum LoginError {
    /// The agent did not take the session.
    Agent(String),
    /// The database refused (or asked for what the gateway does not do).
    Refused(String),
    /// The connection failed.
    Gone(String),
    /// TLS was required and did not happen (see [`crate::pglink::OpenError::Tls`]).
    Tls(String),
}

impl LoginError {
    fn message(&self) -> String {
        match self {
            LoginError::Agent(m) | LoginError::Tls(m) => m.clone(),
            LoginError::Refused(m) => format!("the database refused the gateway's login: {m}"),
            LoginError::Gone(m) => format!("cannot reach the database: {m}"),
        }
    }
}

/// A result column as the gateway resolved it.
#[derive(Debug, Clone)]
struct Meta {
    name: String,
    type_oid: u32,
    binary: bool,
    origin: Option<String>,
    rule: bool,
}

impl Meta {
    fn text(&self) -> bool {
        !self.binary || TEXT_TYPES.contains(&self.type_oid)
    }

    /// A binary value that may hold text inside a structure of its type (an array, a
    /// record, jsonb, bytea): scanned as bytes, and NULL if anything in it would be masked
    /// (masking in place would break the structure).
    fn opaque(&self) -> bool {
        self.binary
            && !TEXT_TYPES.contains(&self.type_oid)
            && !SCALAR_TYPES.contains(&self.type_oid)
    }
}

#[derive(Debug, Clone, Default)]
struct Statement {
    sql: String,
    param_types: Vec<u32>,
    fields: Option<Vec<Field>>,
}

#[derive(Debug, Clone, Default)]
struct Portal {
    statement: String,
    sql: String,
    params: String,
    result_formats: Vec<i16>,
    fields: Option<Vec<Field>>,
    /// The fields are the server's answer to a Describe of this portal (not taken from its
    /// statement, which SQL `PREPARE`/`DEALLOCATE` may have changed behind the gateway).
    described: bool,
}

/// What the client is waiting for, in order (responses come in the order of requests).
#[derive(Debug, Clone)]
enum Expect {
    Query(Option<CopyStatement>),
    /// A Parse of statement `.0`; `.1` is what the gateway knew of that name before, put
    /// back if the server skips the Parse (an error earlier in the pipeline, or its own).
    Parse(String, Option<Statement>),
    /// A Bind of portal `.0`, with what the gateway knew of that name before.
    Bind(String, Option<Portal>),
    DescribeStatement(String),
    DescribePortal(String),
    /// A Describe of a portal the gateway sent itself (column rules need the columns of
    /// every Execute): its answer is not passed to the client.
    DescribeHidden(String),
    Execute(String),
    Close,
    Sync,
}

/// A result being relayed.
struct Current {
    metas: Vec<Meta>,
    rows: Vec<Vec<Option<Bytes>>>,
    /// Bytes of `rows`.
    held: usize,
    count: usize,
    header_shown: bool,
    /// COPY TO STDOUT: how its rows are split.
    copy: Option<CopyStatement>,
}

/// What processing some of the server's messages produced.
#[derive(Default)]
struct Produced {
    wire: BytesMut,
    stdout: String,
    stderr: String,
}

/// The session's protocol state.
struct Proxy<'a> {
    app: &'a App,
    connection: String,
    session_id: String,
    agent: String,
    target: PgTarget,
    rules: Vec<ColumnRule>,
    statements: HashMap<String, Statement>,
    portals: HashMap<String, Portal>,
    expect: VecDeque<Expect>,
    current: Option<Current>,
    catalog: Option<Wire>,
    catalog_failed: bool,
    /// Columns of views (by oid) that show a column a rule masks, found this session.
    view_masks: HashMap<u32, std::collections::HashSet<i16>>,
    /// Whether the client gets the rendered text (exec) rather than the wire bytes.
    exec: bool,
    copy_in_bytes: usize,
    /// The client sent Terminate (or the gateway did for it).
    terminated: bool,
    /// A message the gateway sends to the server before the client's current one.
    injected: Option<Frame>,
    /// What the client sent since the server was last ready (statements and text
    /// parameters, as sent, at most [`MAX_TYPED`] bytes): text an error quotes that is
    /// in here is the user's own, not a column's value (see [`guard_values`]).
    typed: String,
    /// `typed` lower-cased, made by the first guarded error or notice since `typed` last
    /// changed: once per batch of statements, not per statement nor per notice (a batch of
    /// a megabyte can raise tens of thousands of notices).
    typed_lower: Option<String>,
}

/// The most text of the client's kept for [`Proxy::typed`]; past it, errors quote less.
const MAX_TYPED: usize = 1 << 20;

impl Proxy<'_> {
    /// Notes text the client sent, for [`guard_values`].
    fn note_typed(&mut self, text: &str) {
        // Only errors of sessions with column rules are guarded.
        if !self.rules.is_empty() && self.typed.len() + text.len() <= MAX_TYPED {
            // As sent: lower-cased only when an error is guarded, off the hot path.
            self.typed.push_str(text);
            self.typed.push('\n');
            self.typed_lower = None;
        }
    }

    /// Processes one frame from the client; returns the text to record, if any.
    fn client_frame(&mut self, f: &Frame) -> Result<Option<String>, String> {
        let bad = |e: hoop_pg::PgError| e.to_string();
        Ok(match f.tag {
            tag::QUERY => {
                let sql = msg::query_text(&f.body).map_err(bad)?;
                self.note_typed(&sql);
                self.expect.push_back(Expect::Query(parse_copy(&sql)));
                Some(statement_line(&sql, None))
            }
            tag::PARSE => {
                let p = msg::Parse::decode(&f.body).map_err(bad)?;
                self.note_typed(&p.query);
                let previous = self.statements.insert(
                    p.name.clone(),
                    Statement {
                        sql: p.query,
                        param_types: p.param_types,
                        fields: None,
                    },
                );
                self.expect.push_back(Expect::Parse(p.name, previous));
                None
            }
            tag::BIND => {
                let b = msg::Bind::parse(&f.body).map_err(bad)?;
                for (i, p) in b.params.iter().enumerate() {
                    if let Some(v) = p.as_ref().filter(|_| !b.param_is_binary(i)) {
                        self.note_typed(&String::from_utf8_lossy(v));
                    }
                }
                let stmt = self
                    .statements
                    .get(&b.statement)
                    .cloned()
                    .unwrap_or_else(|| {
                        // Not parsed through the protocol in this session: a statement prepared
                        // with SQL `PREPARE` (its text is in the recording where that ran), so
                        // the recording names it (quoted and escaped: the name is the client's).
                        Statement {
                            sql: format!(
                                "-- executes statement {:?}, prepared with SQL PREPARE",
                                b.statement
                            ),
                            ..Statement::default()
                        }
                    });
                let params = render_params(&b, &stmt.param_types);
                let fields = stmt
                    .fields
                    .as_deref()
                    .map(|fields| with_formats(fields, &b.result_formats));
                let previous = self.portals.insert(
                    b.portal.clone(),
                    Portal {
                        statement: b.statement.clone(),
                        sql: stmt.sql.clone(),
                        params,
                        result_formats: b.result_formats.clone(),
                        fields,
                        described: false,
                    },
                );
                self.expect.push_back(Expect::Bind(b.portal, previous));
                None
            }
            tag::DESCRIBE => {
                let t = msg::Target::parse(&f.body).map_err(bad)?;
                self.expect.push_back(if t.kind == b'S' {
                    Expect::DescribeStatement(t.name)
                } else {
                    Expect::DescribePortal(t.name)
                });
                None
            }
            tag::EXECUTE => {
                let e = msg::Execute::parse(&f.body).map_err(bad)?;
                let line = self
                    .portals
                    .get(&e.portal)
                    .map(|p| statement_line(&p.sql, Some(&p.params)));
                // Column rules need the columns of what runs, as the server sees them: a
                // client need not describe a portal, and a statement's columns known here
                // may be stale (SQL `PREPARE` shares its names), so the gateway asks.
                let described = self.portals.get(&e.portal).is_some_and(|p| p.described);
                if !self.rules.is_empty() && !described {
                    self.injected = Some(
                        msg::Target {
                            kind: b'P',
                            name: e.portal.clone(),
                        }
                        .frame(tag::DESCRIBE),
                    );
                    self.expect
                        .push_back(Expect::DescribeHidden(e.portal.clone()));
                }
                self.expect.push_back(Expect::Execute(e.portal));
                line
            }
            tag::CLOSE => {
                let t = msg::Target::parse(&f.body).map_err(bad)?;
                if t.kind == b'S' {
                    self.statements.remove(&t.name);
                } else {
                    self.portals.remove(&t.name);
                }
                self.expect.push_back(Expect::Close);
                None
            }
            tag::SYNC => {
                self.expect.push_back(Expect::Sync);
                None
            }
            tag::FUNCTION_CALL => {
                // Its result is no row: it could not be masked, and its arguments (a query
                // for `query_to_xml`) would not be recorded as statements.
                return Err(
                    "fastpath function calls (FunctionCall) are not supported through the \
                     gateway: their results cannot be masked; call the function in a query"
                        .to_owned(),
                );
            }
            tag::COPY_DATA => {
                self.copy_in_bytes += f.body.len();
                None
            }
            tag::COPY_DONE | tag::COPY_FAIL => {
                let n = std::mem::take(&mut self.copy_in_bytes);
                Some(format!(
                    "-- COPY FROM STDIN: {n} bytes{}\n",
                    if f.tag == tag::COPY_FAIL {
                        ", aborted by the client"
                    } else {
                        ""
                    }
                ))
            }
            tag::FLUSH => None,
            tag::TERMINATE => {
                self.terminated = true;
                None
            }
            other => {
                return Err(format!(
                    "the client sent a message of unknown type `{}`",
                    char::from(other)
                ));
            }
        })
    }

    /// Resolves result columns: origins and column rules (through the catalog), formats.
    async fn metas(&mut self, fields: &[Field]) -> Vec<Meta> {
        let mut metas: Vec<Meta> = fields
            .iter()
            .map(|f| Meta {
                name: f.name.clone(),
                type_oid: f.type_oid,
                binary: f.format == 1,
                origin: None,
                rule: false,
            })
            .collect();
        if self.rules.is_empty() {
            return metas;
        }
        let oids: Vec<u32> = fields
            .iter()
            .filter(|f| f.table_oid != 0)
            .map(|f| f.table_oid)
            .collect();
        let tables = self.tables(&oids).await;
        for (meta, f) in metas.iter_mut().zip(fields) {
            if let Some(t) = tables.get(&f.table_oid)
                && let Some(col) = t.columns.get(&f.column)
            {
                meta.rule = self
                    .rules
                    .iter()
                    .any(|r| r.matches(&t.schema, &t.table, col))
                    || (t.view && self.view_masked(f.table_oid, 0).await.contains(&f.column));
                meta.origin = Some(format!("{}.{}.{col}", t.schema, t.table));
            }
        }
        metas
    }

    /// The columns of view `oid` that show a column a rule masks: the view's definition is
    /// described by the server, whose RowDescription names the table column behind each
    /// of the view's columns (through views of views). Expressions over a column have no
    /// origin, as in any query (content masking applies to them).
    fn view_masked(
        &mut self,
        oid: u32,
        depth: u8,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::collections::HashSet<i16>> + Send + '_>> {
        Box::pin(async move {
            if let Some(m) = self.view_masks.get(&oid) {
                return m.clone();
            }
            let mut masked = std::collections::HashSet::new();
            let definition = self
                .catalog_query(&format!("select pg_catalog.pg_get_viewdef({oid})"))
                .await
                .and_then(|rows| rows.into_iter().next())
                .and_then(|row| row.into_iter().next().flatten());
            let fields = match (definition, self.catalog().await) {
                (Some(sql), Some(wire)) => wire.describe(&sql).await.unwrap_or_default(),
                _ => Vec::new(),
            };
            let oids: Vec<u32> = fields
                .iter()
                .filter(|f| f.table_oid != 0)
                .map(|f| f.table_oid)
                .collect();
            let tables = self.tables(&oids).await;
            for (i, f) in fields.iter().enumerate() {
                let Some(t) = tables.get(&f.table_oid) else {
                    continue;
                };
                let Some(col) = t.columns.get(&f.column) else {
                    continue;
                };
                let hit = self
                    .rules
                    .iter()
                    .any(|r| r.matches(&t.schema, &t.table, col))
                    || (t.view
                        && depth < MAX_VIEW_DEPTH
                        && self
                            .view_masked(f.table_oid, depth + 1)
                            .await
                            .contains(&f.column));
                if hit {
                    masked.insert(i16::try_from(i + 1).unwrap_or(i16::MAX));
                }
            }
            self.view_masks.insert(oid, masked.clone());
            masked
        })
    }

    /// Catalog entries of tables `oids` (cached for [`CATALOG_TTL`]).
    async fn tables(&mut self, oids: &[u32]) -> HashMap<u32, std::sync::Arc<TableInfo>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        if let Ok(cache) = self.app.pg.catalog.lock() {
            for oid in oids {
                match cache.get(&(self.connection.clone(), *oid)) {
                    Some((at, info)) if at.elapsed() < CATALOG_TTL => {
                        found.insert(*oid, std::sync::Arc::clone(info));
                    }
                    _ => missing.push(*oid),
                }
            }
        }
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return found;
        }
        let list: Vec<String> = missing.iter().map(u32::to_string).collect();
        let sql = format!(
            "select c.oid, n.nspname, c.relname, a.attnum, a.attname, c.relkind \
             from pg_catalog.pg_class c \
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
             join pg_catalog.pg_attribute a on a.attrelid = c.oid \
             where c.oid in ({}) and a.attnum > 0 and not a.attisdropped",
            list.join(",")
        );
        let rows = match self.catalog_query(&sql).await {
            Some(rows) => rows,
            None => return found,
        };
        let mut fresh: HashMap<u32, TableInfo> = HashMap::new();
        for row in rows {
            let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let (Ok(oid), Ok(attnum)) = (get(0).parse::<u32>(), get(3).parse::<i16>()) else {
                continue;
            };
            fresh
                .entry(oid)
                .or_insert_with(|| TableInfo {
                    schema: get(1),
                    table: get(2),
                    columns: HashMap::new(),
                    view: matches!(get(5).as_str(), "v" | "m"),
                })
                .columns
                .insert(attnum, get(4));
        }
        if let Ok(mut cache) = self.app.pg.catalog.lock() {
            for (oid, info) in fresh {
                let info = std::sync::Arc::new(info);
                cache.insert(
                    (self.connection.clone(), oid),
                    (Instant::now(), std::sync::Arc::clone(&info)),
                );
                found.insert(oid, info);
            }
        }
        found
    }

    /// The catalog connection, opened on first use.
    async fn catalog(&mut self) -> Option<&mut Wire> {
        if self.catalog.is_none() && !self.catalog_failed {
            let id = format!("{}-catalog", self.session_id);
            let opened = tokio::time::timeout(
                LOGIN_TIMEOUT,
                open_db(&self.app.agents, &self.agent, &id, &self.target, &[]),
            )
            .await
            .map_err(|_| "timed out".to_owned())
            .and_then(|r| r.map(|(wire, _)| wire).map_err(|e| e.message()));
            match opened {
                Ok(wire) => self.catalog = Some(wire),
                Err(err) => {
                    tracing::warn!(session = %self.session_id, error = %err, "postgres catalog lookups unavailable: column rules fall back to content masking");
                    self.catalog_failed = true;
                }
            }
        }
        self.catalog.as_mut()
    }

    async fn catalog_query(&mut self, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
        let session = self.session_id.clone();
        let wire = self.catalog().await?;
        match wire.simple_query(sql).await {
            Ok(rows) => Some(rows),
            Err(err) => {
                tracing::warn!(session = %session, error = %err, "postgres catalog lookup failed");
                None
            }
        }
    }

    /// Column metas of a `COPY … TO STDOUT`.
    async fn copy_metas(&mut self, copy: &CopyStatement, n: usize) -> Vec<Meta> {
        let unknown = |i: usize| Meta {
            name: format!("column{}", i + 1),
            type_oid: 25,
            binary: false,
            origin: None,
            rule: false,
        };
        let mut metas: Vec<Meta> = (0..n).map(unknown).collect();
        if self.rules.is_empty() {
            return metas;
        }
        match &copy.source {
            CopySource::Query(query) => {
                let described = match self.catalog().await {
                    Some(wire) => wire.describe(query).await.ok(),
                    None => None,
                };
                if let Some(fields) = described {
                    let resolved = self.metas(&fields).await;
                    for (m, r) in metas.iter_mut().zip(resolved) {
                        *m = Meta { binary: false, ..r };
                    }
                }
            }
            CopySource::Table { name, columns } => {
                // An escape string: the same whatever `standard_conforming_strings` is (a
                // user may turn it off for the database or their role, so that a `\'` in
                // the name would end a plain literal).
                let esc = |s: &str| s.replace('\\', "\\\\").replace('\'', "''");
                // The session may find another table under an unqualified name than this
                // connection's search_path does (`SET search_path`): such a name is looked
                // up in every schema, and a column is masked if a rule matches it in any
                // table of that name.
                let filter = match name.as_slice() {
                    [table] => format!(
                        "lower(c.relname) = lower(E'{}') and c.relkind in ('r', 'p')",
                        esc(table)
                    ),
                    _ => {
                        let quoted: Vec<String> = name
                            .iter()
                            .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
                            .collect();
                        format!(
                            "c.oid = pg_catalog.to_regclass(E'{}')",
                            esc(&quoted.join("."))
                        )
                    }
                };
                let sql = format!(
                    "select n.nspname, c.relname, a.attname, c.oid \
                     from pg_catalog.pg_class c \
                     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
                     join pg_catalog.pg_attribute a on a.attrelid = c.oid \
                     where {filter} and a.attnum > 0 \
                     and not a.attisdropped order by c.oid, a.attnum"
                );
                if let Some(rows) = self.catalog_query(&sql).await {
                    // (schema, table, columns in order) of each table found.
                    let mut tables: Vec<(String, String, String, Vec<String>)> = Vec::new();
                    for r in rows {
                        let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                        let oid = get(3);
                        match tables.last_mut() {
                            Some(t) if t.2 == oid => t.3.push(get(2)),
                            _ => tables.push((get(0), get(1), oid, vec![get(2)])),
                        }
                    }
                    for (schema, table, _, all) in &tables {
                        let chosen: Vec<Option<&String>> = if columns.is_empty() {
                            all.iter().map(Some).collect()
                        } else {
                            columns
                                .iter()
                                .map(|c| all.iter().find(|a| *a == c))
                                .collect()
                        };
                        for (m, col) in metas.iter_mut().zip(chosen) {
                            let Some(col) = col else { continue };
                            if self.rules.iter().any(|r| r.matches(schema, table, col)) {
                                m.rule = true;
                            }
                            if m.origin.is_none() {
                                m.name = col.clone();
                                m.origin = Some(format!("{schema}.{table}.{col}"));
                            }
                        }
                    }
                }
            }
        }
        metas
    }

    /// The columns of the rows an Execute of `portal` returns.
    fn portal_fields(&self, portal: &str) -> Option<Vec<Field>> {
        let p = self.portals.get(portal)?;
        if let Some(f) = &p.fields {
            return Some(f.clone());
        }
        let stmt = self.statements.get(&p.statement)?;
        stmt.fields
            .as_deref()
            .map(|fields| with_formats(fields, &p.result_formats))
    }

    /// Masks a batch of rows: column rules, then the chain's `on_rows`; appends the rows
    /// to the wire (as DataRows or COPY data) and their rendering to stdout.
    async fn flush_rows(
        &mut self,
        session: &mut ChainSession,
        out: &mut Produced,
    ) -> Result<(), Ending> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if cur.rows.is_empty() {
            return Ok(());
        }
        let mut rows = ResultRows::new(
            cur.metas
                .iter()
                .map(|m| {
                    ResultColumn::new(m.name.clone())
                        .with_origin(m.origin.clone())
                        .with_text(m.text() || m.opaque())
                        .with_masked(m.rule)
                })
                .collect(),
        );
        rows.rows = std::mem::take(&mut cur.rows);
        cur.held = 0;
        for row in &mut rows.rows {
            for (value, meta) in row.iter_mut().zip(&cur.metas) {
                if meta.rule && value.is_some() {
                    *value = if meta.text() {
                        Some(Bytes::from_static(MASK))
                    } else {
                        None
                    };
                }
            }
        }
        let opaque: Vec<usize> = (0..cur.metas.len())
            .filter(|i| cur.metas[*i].opaque() && !cur.metas[*i].rule)
            .collect();
        let originals: Vec<Vec<Option<Bytes>>> = rows
            .rows
            .iter()
            .map(|row| {
                opaque
                    .iter()
                    .map(|i| row.get(*i).cloned().flatten())
                    .collect()
            })
            .collect();
        let outcome = session
            .rows(&mut rows)
            .await
            .map_err(|e| error_ending(e.to_string()))?;
        if let Some(ending) = plugin_ending(outcome, false) {
            return Err(ending);
        }
        for (row, original) in rows.rows.iter_mut().zip(&originals) {
            for (i, before) in opaque.iter().zip(original) {
                if let Some(value) = row.get_mut(*i)
                    && *value != *before
                {
                    *value = None;
                }
            }
        }
        cur.count += rows.rows.len();
        match &cur.copy {
            Some(copy) => {
                for row in &rows.rows {
                    let line = join_copy_row(row, copy);
                    out.stdout.push_str(&String::from_utf8_lossy(&line));
                    if !self.exec {
                        Frame::new(tag::COPY_DATA, line).encode(&mut out.wire);
                    }
                }
            }
            None => {
                if !self.exec {
                    for row in &rows.rows {
                        msg::encode_data_row(row, &mut out.wire);
                    }
                }
                let columns: Vec<(String, bool)> = cur
                    .metas
                    .iter()
                    .map(|m| (m.name.clone(), hoop_pg::render::is_numeric(m.type_oid)))
                    .collect();
                let texts: Vec<Vec<Option<String>>> = rows
                    .rows
                    .iter()
                    .map(|row| {
                        row.iter()
                            .zip(&cur.metas)
                            .map(|(v, m)| v.as_ref().map(|v| show_value(v, m)))
                            .collect()
                    })
                    .collect();
                let table = hoop_pg::render::table(&columns, &texts);
                // The row count comes with CommandComplete; a later batch has no header.
                let mut lines: Vec<&str> = table.lines().collect();
                lines.truncate(lines.len().saturating_sub(2));
                let skip = if cur.header_shown { 2 } else { 0 };
                for line in lines.iter().skip(skip) {
                    out.stdout.push_str(line);
                    out.stdout.push('\n');
                }
                cur.header_shown = true;
            }
        }
        Ok(())
    }

    /// Masks the text of an error or notice through the chain: every field that can carry
    /// values (message, detail, hint, context, internal query, names), not its severity,
    /// code, positions or source location.
    async fn mask_fields(
        &mut self,
        session: &mut ChainSession,
        fields: &mut msg::Fields,
    ) -> Result<(), Ending> {
        let kept = [b'S', b'V', b'C', b'P', b'p', b'F', b'L', b'R'];
        let at: Vec<usize> = (0..fields.len())
            .filter(|i| !kept.contains(&fields[*i].0))
            .collect();
        let mut texts: Vec<String> = at.iter().map(|i| fields[*i].1.clone()).collect();
        mask_texts(session, &mut texts).await?;
        for (i, text) in at.into_iter().zip(texts) {
            if let Some(f) = fields.get_mut(i) {
                f.1 = text;
            }
        }
        if !self.rules.is_empty() {
            let typed = self
                .typed_lower
                .get_or_insert_with(|| self.typed.to_lowercase());
            guard_values(fields, typed);
        }
        Ok(())
    }

    /// Processes one frame from the server.
    async fn server_frame(
        &mut self,
        session: &mut ChainSession,
        f: Frame,
        out: &mut Produced,
    ) -> Result<(), Ending> {
        let bad = |e: hoop_pg::PgError| error_ending(format!("the database: {e}"));
        match f.tag {
            tag::ROW_DESCRIPTION => {
                let fields = msg::row_description(&f.body).map_err(bad)?;
                match self.expect.front().cloned() {
                    Some(Expect::DescribeStatement(name)) => {
                        if let Some(s) = self.statements.get_mut(&name) {
                            s.fields = Some(fields);
                        }
                        self.expect.pop_front();
                    }
                    Some(Expect::DescribePortal(name) | Expect::DescribeHidden(name)) => {
                        // A portal may come from SQL (`DECLARE … CURSOR`).
                        let p = self.portals.entry(name).or_default();
                        p.fields = Some(fields);
                        p.described = true;
                        if let Some(Expect::DescribeHidden(_)) = self.expect.pop_front() {
                            return Ok(());
                        }
                    }
                    _ => {
                        let metas = self.metas(&fields).await;
                        self.current = Some(Current {
                            metas,
                            rows: Vec::new(),
                            held: 0,
                            count: 0,
                            header_shown: false,
                            copy: None,
                        });
                    }
                }
                if !self.exec {
                    f.encode(&mut out.wire);
                }
            }
            tag::PARAMETER_DESCRIPTION => {
                if let Some(Expect::DescribeStatement(name)) = self.expect.front() {
                    let mut r = msg::Reader::new(&f.body);
                    let n = r.count().map_err(bad)?;
                    let mut types = Vec::with_capacity(n);
                    for _ in 0..n {
                        types.push(r.i32().map_err(bad)? as u32);
                    }
                    if let Some(s) = self.statements.get_mut(name) {
                        s.param_types = types;
                    }
                }
                f.encode(&mut out.wire);
            }
            tag::NO_DATA => {
                match self.expect.front().cloned() {
                    Some(Expect::DescribeStatement(_)) => {
                        self.expect.pop_front();
                    }
                    Some(Expect::DescribePortal(name) | Expect::DescribeHidden(name)) => {
                        let p = self.portals.entry(name).or_default();
                        p.fields = Some(Vec::new());
                        p.described = true;
                        if let Some(Expect::DescribeHidden(_)) = self.expect.pop_front() {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
                f.encode(&mut out.wire);
            }
            tag::PARSE_COMPLETE | tag::BIND_COMPLETE | tag::CLOSE_COMPLETE => {
                if matches!(
                    self.expect.front(),
                    Some(Expect::Parse(..) | Expect::Bind(..) | Expect::Close)
                ) {
                    self.expect.pop_front();
                }
                f.encode(&mut out.wire);
            }
            tag::DATA_ROW => {
                if self.current.is_none() {
                    let fields = match self.expect.front() {
                        Some(Expect::Execute(portal)) => self.portal_fields(&portal.clone()),
                        _ => None,
                    };
                    let values = msg::data_row(&f.body).map_err(bad)?;
                    let metas = match fields {
                        Some(fields) => self.metas(&fields).await,
                        // Columns unknown (the client never described them, and the
                        // connection has no column rules, else the gateway described the
                        // portal): values that are UTF-8 are masked as text; with rules,
                        // every value is masked.
                        None => values
                            .iter()
                            .enumerate()
                            .map(|(i, v)| Meta {
                                name: format!("column{}", i + 1),
                                type_oid: 25,
                                binary: v.as_ref().is_some_and(|v| std::str::from_utf8(v).is_err()),
                                origin: None,
                                rule: !self.rules.is_empty(),
                            })
                            .collect(),
                    };
                    self.current = Some(Current {
                        metas,
                        rows: Vec::new(),
                        held: 0,
                        count: 0,
                        header_shown: false,
                        copy: None,
                    });
                }
                let values = msg::data_row(&f.body).map_err(bad)?;
                let full = if let Some(cur) = self.current.as_mut() {
                    cur.rows.push(values);
                    cur.held += f.body.len();
                    cur.rows.len() >= BATCH_ROWS || cur.held >= BATCH_BYTES
                } else {
                    false
                };
                if full {
                    self.flush_rows(session, out).await?;
                }
            }
            tag::COMMAND_COMPLETE | tag::EMPTY_QUERY | tag::PORTAL_SUSPENDED => {
                self.flush_rows(session, out).await?;
                let summary = match (f.tag, self.current.take()) {
                    (tag::COMMAND_COMPLETE, Some(cur)) if cur.copy.is_none() => {
                        format!("{}\n", hoop_pg::render::row_count(cur.count))
                    }
                    (tag::COMMAND_COMPLETE, _) => {
                        format!("{}\n", msg::command_tag(&f.body).map_err(bad)?)
                    }
                    (tag::PORTAL_SUSPENDED, Some(cur)) => {
                        format!("({} rows so far, portal suspended)\n", cur.count)
                    }
                    _ => String::new(),
                };
                out.stdout.push_str(&summary);
                if matches!(self.expect.front(), Some(Expect::Execute(_))) {
                    self.expect.pop_front();
                }
                if !self.exec {
                    f.encode(&mut out.wire);
                }
            }
            tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE => {
                self.flush_rows(session, out).await?;
                let mut fields = msg::error_fields(&f.body).map_err(bad)?;
                self.mask_fields(session, &mut fields).await?;
                out.stderr.push_str(&hoop_pg::render::error(&fields));
                if f.tag == tag::ERROR_RESPONSE {
                    self.current = None;
                    // The server skips to the next Sync: the Parses and Binds it skipped
                    // (and the one that failed) change nothing, so what the gateway knew
                    // of their names before comes back, latest first.
                    let mut skipped = Vec::new();
                    while let Some(front) = self.expect.front() {
                        if matches!(front, Expect::Sync | Expect::Query(_)) {
                            break;
                        }
                        skipped.extend(self.expect.pop_front());
                    }
                    for e in skipped.into_iter().rev() {
                        match e {
                            Expect::Parse(name, Some(previous)) => {
                                self.statements.insert(name, previous);
                            }
                            Expect::Parse(name, None) => {
                                self.statements.remove(&name);
                            }
                            Expect::Bind(name, Some(previous)) => {
                                self.portals.insert(name, previous);
                            }
                            Expect::Bind(name, None) => {
                                self.portals.remove(&name);
                            }
                            _ => {}
                        }
                    }
                }
                if !self.exec {
                    msg::encode_fields(f.tag, &fields).encode(&mut out.wire);
                }
            }
            tag::READY_FOR_QUERY => {
                self.flush_rows(session, out).await?;
                self.current = None;
                self.typed.clear();
                self.typed_lower = None;
                while let Some(front) = self.expect.pop_front() {
                    if matches!(front, Expect::Sync | Expect::Query(_)) {
                        break;
                    }
                }
                if !self.exec {
                    f.encode(&mut out.wire);
                }
            }
            tag::COPY_OUT_RESPONSE => {
                let (format, formats) = msg::copy_response(&f.body).map_err(bad)?;
                let copy = match self.expect.front_mut() {
                    // Taken: a second COPY in the same query is another statement.
                    Some(Expect::Query(c)) => c.take(),
                    Some(Expect::Execute(p)) => {
                        self.portals.get(p).and_then(|p| parse_copy(&p.sql))
                    }
                    _ => None,
                }
                .unwrap_or(CopyStatement {
                    source: CopySource::Query(String::new()),
                    to: true,
                    csv: false,
                    binary: format == 1,
                    delimiter: b'\t',
                    exact: false,
                });
                if format == 1 || copy.binary {
                    return Err(error_ending(
                        "COPY … TO STDOUT in binary format cannot be masked or recorded: use \
                         the text or CSV format"
                            .to_owned(),
                    ));
                }
                let mut metas = self.copy_metas(&copy, formats.len()).await;
                if !copy.exact && !self.rules.is_empty() {
                    // Which column a value is in is not known for sure: all are masked.
                    for m in &mut metas {
                        m.rule = true;
                    }
                }
                self.current = Some(Current {
                    metas,
                    rows: Vec::new(),
                    held: 0,
                    count: 0,
                    header_shown: false,
                    copy: Some(copy),
                });
                if !self.exec {
                    f.encode(&mut out.wire);
                }
            }
            tag::COPY_DATA => {
                let copy = self.current.as_ref().and_then(|c| c.copy.clone());
                let (Some(copy), Some(cur)) = (copy, self.current.as_mut()) else {
                    return Err(error_ending("COPY data outside of a COPY".to_owned()));
                };
                let body = f.body;
                let line = body.strip_suffix(b"\n").unwrap_or(&body);
                let spans = split_row(line, copy.delimiter, copy.csv);
                let mut values: Vec<Option<Bytes>> = spans
                    .iter()
                    .map(|s| {
                        let v = body.slice(s.start..s.end);
                        (!copy.csv && v.as_ref() == b"\\N")
                            .then_some(())
                            .map_or(Some(v), |()| None)
                    })
                    .collect();
                if values.len() != cur.metas.len() && !self.rules.is_empty() {
                    // Not split as the server wrote it: no value can be placed in its column.
                    values = vec![Some(Bytes::from_static(MASK)); cur.metas.len()];
                }
                while cur.metas.len() < values.len() {
                    let i = cur.metas.len();
                    cur.metas.push(Meta {
                        name: format!("column{}", i + 1),
                        type_oid: 25,
                        binary: false,
                        origin: None,
                        rule: false,
                    });
                }
                values.truncate(cur.metas.len().max(values.len()));
                cur.rows.push(values);
                cur.held += body.len();
                if cur.rows.len() >= BATCH_ROWS || cur.held >= BATCH_BYTES {
                    self.flush_rows(session, out).await?;
                }
            }
            tag::COPY_DONE => {
                self.flush_rows(session, out).await?;
                if let Some(cur) = self.current.as_mut() {
                    out.stdout
                        .push_str(&format!("-- COPY TO STDOUT: {} rows\n", cur.count));
                }
                if !self.exec {
                    f.encode(&mut out.wire);
                }
            }
            tag::COPY_IN_RESPONSE => {
                if self.exec {
                    return Err(error_ending(
                        "COPY FROM STDIN needs a client: use `hoop connect` and psql's \\copy"
                            .to_owned(),
                    ));
                }
                f.encode(&mut out.wire);
            }
            tag::COPY_BOTH_RESPONSE => {
                return Err(error_ending(
                    "replication (COPY BOTH) is not supported through the gateway".to_owned(),
                ));
            }
            tag::NOTIFICATION => {
                // `pg_notify('c', email)`: the payload is masked as a value.
                let (pid, channel, payload) = msg::notification(&f.body).map_err(bad)?;
                let mut texts = [channel, payload];
                mask_texts(session, &mut texts).await?;
                let [channel, payload] = texts;
                out.stdout.push_str(&format!(
                    "Asynchronous notification \"{channel}\" with payload \"{payload}\" received.\n"
                ));
                if !self.exec {
                    let mut body = BytesMut::new();
                    body.extend_from_slice(&pid.to_be_bytes());
                    for s in [&channel, &payload] {
                        body.extend_from_slice(s.as_bytes());
                        body.extend_from_slice(&[0]);
                    }
                    Frame::new(tag::NOTIFICATION, body).encode(&mut out.wire);
                }
            }
            tag::PARAMETER_STATUS => {
                // `set_config('application_name', email, false)`: the new value is masked.
                let (name, value) = msg::parameter_status(&f.body).map_err(bad)?;
                let mut texts = [value];
                mask_texts(session, &mut texts).await?;
                let [value] = texts;
                if !self.exec {
                    msg::encode_parameter_status(&name, &value).encode(&mut out.wire);
                }
            }
            tag::AUTHENTICATION | tag::BACKEND_KEY_DATA => {
                return Err(error_ending(
                    "the database sent a login message in the middle of the session".to_owned(),
                ));
            }
            _ => {
                if !self.exec {
                    f.encode(&mut out.wire);
                }
            }
        }
        Ok(())
    }
}

/// Masks free-standing texts (a notice's fields, a notification's payload) through the
/// chain's `on_rows`, as values of a computed column.
async fn mask_texts(session: &mut ChainSession, texts: &mut [String]) -> Result<(), Ending> {
    if texts.is_empty() {
        return Ok(());
    }
    let mut rows = ResultRows::new(vec![ResultColumn::new("message")]);
    rows.rows = texts
        .iter()
        .map(|t| vec![Some(Bytes::from(t.clone()))])
        .collect();
    let outcome = session
        .rows(&mut rows)
        .await
        .map_err(|e| error_ending(e.to_string()))?;
    if let Some(ending) = plugin_ending(outcome, false) {
        return Err(ending);
    }
    for (t, row) in texts.iter_mut().zip(rows.rows) {
        if let Some(Some(v)) = row.into_iter().next() {
            *t = String::from_utf8_lossy(&v).into_owned();
        }
    }
    Ok(())
}

/// A COPY row from its (masked) values.
fn join_copy_row(row: &[Option<Bytes>], copy: &CopyStatement) -> Bytes {
    let mut line = BytesMut::new();
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            line.extend_from_slice(&[copy.delimiter]);
        }
        match v {
            Some(v) => line.extend_from_slice(v),
            None if copy.csv => {}
            None => line.extend_from_slice(b"\\N"),
        }
    }
    line.extend_from_slice(b"\n");
    line.freeze()
}

/// A value as text for the recording.
fn show_value(v: &Bytes, meta: &Meta) -> String {
    if meta.text() {
        return String::from_utf8_lossy(v).into_owned();
    }
    binary_text(v, meta.type_oid)
}

/// A binary value of type `oid` as text, for types whose encoding is simple; others in hex.
fn binary_text(v: &[u8], oid: u32) -> String {
    match (oid, v.len()) {
        (16, 1) => if v[0] != 0 { "t" } else { "f" }.to_owned(),
        (21, 2) => i16::from_be_bytes([v[0], v[1]]).to_string(),
        (23, 4) => i32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string(),
        (26, 4) => u32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string(),
        (20, 8) => i64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]).to_string(),
        (700, 4) => f32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string(),
        (701, 8) => {
            f64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]).to_string()
        }
        _ if TEXT_TYPES.contains(&oid) => String::from_utf8_lossy(v).into_owned(),
        _ => {
            let hex: String = v.iter().take(64).map(|b| format!("{b:02x}")).collect();
            format!("\\x{hex}{}", if v.len() > 64 { "…" } else { "" })
        }
    }
}

/// A statement as recorded: its text (ending in a newline), with its parameters.
fn statement_line(sql: &str, params: Option<&str>) -> String {
    let mut line = sql.trim_end().to_owned();
    if let Some(p) = params.filter(|p| !p.is_empty()) {
        line.push_str("\n-- params: ");
        line.push_str(p);
    }
    line.push('\n');
    line
}

/// Bound parameters as recorded: `$1 = '42', $2 = NULL`.
fn render_params(b: &msg::Bind, types: &[u32]) -> String {
    b.params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let value = match p {
                None => "NULL".to_owned(),
                Some(v) => {
                    let text = if b.param_is_binary(i) {
                        binary_text(v, types.get(i).copied().unwrap_or(0))
                    } else {
                        String::from_utf8_lossy(v).into_owned()
                    };
                    let mut shown: String = text.chars().take(MAX_PARAM_SHOWN).collect();
                    if shown.len() < text.len() {
                        shown.push('…');
                    }
                    format!("'{}'", shown.replace('\'', "''"))
                }
            };
            format!("${} = {value}", i + 1)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Passes text the user saw (rendered rows, errors) through the chain for recording; it is
/// not sent anywhere (the client gets the wire bytes).
async fn record_output(
    session: &mut ChainSession,
    stream: Stream,
    text: String,
) -> Result<Chunk, Ending> {
    let mut chunk = Chunk::new(stream, Bytes::from(text));
    if chunk.data.is_empty() {
        return Ok(chunk);
    }
    let outcome = session
        .output(&mut chunk)
        .await
        .map_err(|e| error_ending(e.to_string()))?;
    match plugin_ending(outcome, false) {
        Some(ending) => Err(ending),
        None => Ok(chunk),
    }
}

async fn record_input(session: &mut ChainSession, text: String) -> Result<(), Ending> {
    if text.is_empty() {
        return Ok(());
    }
    let mut chunk = Chunk::new(Stream::Stdin, Bytes::from(text));
    let outcome = session
        .input(&mut chunk)
        .await
        .map_err(|e| error_ending(e.to_string()))?;
    match plugin_ending(outcome, false) {
        Some(ending) => Err(ending),
        None => Ok(()),
    }
}

/// What an error or notice shows in place of text that may hold a column's values.
const MASKED_TEXT: &str = "[MASKED]";

/// In a session with column rules, keeps column values out of errors and notices, where
/// content masking alone would let any value through that does not look like an info type
/// (`select ssn::int from users` answers `invalid input syntax for type integer:
/// "123-45-6789"`, `select ssn::regclass` answers `relation "123-45-6789" does not exist`):
/// - raised inside a function or a `DO` block (the error has a context, `W`): message,
///   detail, hint and context are masked whole, since `RAISE` can say anything and choose
///   any SQLSTATE;
/// - otherwise, in message, detail and hint, a double-quoted part that is not in what the
///   client sent (`typed`, lower case; compared without regard to case) is masked, with everything
///   after it up to the last quote (a value may hold quotes itself); and the value lists
///   of a detail (`Key (ssn)=(…)`, `Failing row contains (…)`), unless the client sent
///   them; the detail of a data exception (SQLSTATE class 22) is masked whole.
fn guard_values(fields: &mut msg::Fields, typed: &str) {
    if fields.iter().any(|(k, _)| *k == b'W') {
        for (k, v) in fields.iter_mut() {
            if matches!(*k, b'M' | b'D' | b'H' | b'W' | b'q') {
                *v = format!("{MASKED_TEXT} (raised inside a function: it may hold column values)");
            }
        }
        return;
    }
    // A data exception's detail may show the value unquoted (invalid XML shows its line).
    let data_exception = fields
        .iter()
        .any(|(k, v)| *k == b'C' && v.starts_with("22"));
    for (k, v) in fields.iter_mut() {
        if *k == b'D' && data_exception {
            *v = format!("{MASKED_TEXT} (the detail of a data exception may hold column values)");
        } else if matches!(*k, b'M' | b'D' | b'H') {
            *v = mask_value_lists(&mask_untyped_quotes(v, typed), typed);
        }
    }
}

/// `relation "123-45-6789" does not exist` → `relation "[MASKED]" does not exist` unless
/// the client typed `123-45-6789`.
fn mask_untyped_quotes(text: &str, typed: &str) -> String {
    let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
    let Some(&last) = quotes.last() else {
        return text.to_owned();
    };
    for pair in quotes.chunks(2) {
        let (open, close) = match pair {
            [open, close] => (*open, Some(*close)),
            [open] => (*open, None),
            _ => continue,
        };
        let inner = text
            .get(open + 1..close.unwrap_or(text.len()))
            .unwrap_or("");
        if close.is_some() && typed.contains(&inner.to_lowercase()) {
            continue;
        }
        // Masked from here to the last quote (or the end, for an unpaired one).
        let end = if last > open { last } else { text.len() };
        return format!(
            "{}{MASKED_TEXT}{}",
            text.get(..=open).unwrap_or(""),
            text.get(end..).unwrap_or("")
        );
    }
    text.to_owned()
}

/// `Key (ssn)=(123) already exists.` → `Key (ssn)=([MASKED]) already exists.`;
/// `Failing row contains (1, x).` → `Failing row contains ([MASKED]).`, unless the client
/// sent those values as they are shown.
fn mask_value_lists(text: &str, typed: &str) -> String {
    for opener in ["=(", "contains ("] {
        if let Some(at) = text.find(opener) {
            let start = at + opener.len();
            let end = text
                .rfind(')')
                .filter(|e| *e >= start)
                .unwrap_or(text.len());
            let inner = text.get(start..end).unwrap_or("");
            if typed.contains(&inner.to_lowercase()) {
                return text.to_owned();
            }
            let tail = text.get(end..).unwrap_or("");
            return format!("{}{MASKED_TEXT}{tail}", text.get(..start).unwrap_or(""));
        }
    }
    text.to_owned()
}

/// Sends bytes to the client (raw protocol on connect, text on exec).
async fn send_client(
    events: &EventSender,
    stream: pb::OutputStream,
    data: Bytes,
    counters: &mut Counters,
    stops: &mut Stops<'_>,
) -> Result<(), Ending> {
    if data.is_empty() {
        return Ok(());
    }
    add(&mut counters.bytes_out, data.len());
    let output = pb::SessionOutput {
        stream: stream as i32,
        data,
    };
    let deadline = stops.deadline;
    tokio::select! {
        sent = events.send(event(pb::session_event::Event::Output(output))) => {
            sent.map_err(|_| killed(CloseReason::ClientGone))
        }
        Ok(reason) = &mut *stops.kill => Err(killed(reason)),
        () = shut_down(stops.shutdown) => Err(killed(CloseReason::Shutdown)),
        () = sleep_until(deadline), if deadline.is_some() => Err(killed(CloseReason::Timeout)),
    }
}

/// A FATAL error for the client, as protocol bytes.
/// Tells the client why the session ends (a FATAL error, as the server would) and ends it.
async fn end_with_fatal(
    events: &EventSender,
    ending: Ending,
    counters: &mut Counters,
    stops: &mut Stops<'_>,
) -> Ending {
    let _ = send_client(
        events,
        pb::OutputStream::Stdout,
        fatal(&ending.reason.to_string()),
        counters,
        stops,
    )
    .await;
    ending
}

fn fatal(message: &str) -> Bytes {
    let mut out = BytesMut::new();
    msg::error("FATAL", "08006", message).encode(&mut out);
    out.freeze()
}

/// Runs a session on a `postgres` connection (see the module's documentation).
pub(crate) async fn drive(
    app: &App,
    session: &mut ChainSession,
    waiting: &mut Waiting<'_>,
    input: Input,
    events: &EventSender,
    stops: &mut Stops<'_>,
    counters: &mut Counters,
) -> Ending {
    if let Err(ending) = open(session, waiting, events, stops).await {
        return ending;
    }
    let connection = waiting.connection.clone();
    stops.started_event = session_event(
        stops.store,
        session,
        hoop_core::events::types::SESSION_STARTED,
        serde_json::json!({ "session_id": session.info().map(|i| i.id.to_string()) }),
    );
    stops.deadline = connection
        .session_timeout
        .and_then(|t| tokio::time::Instant::now().checked_add(t));
    let target = match PgTarget::from_env(&connection.env) {
        Ok(t) => t,
        Err(err) => return error_ending(format!("the connection's settings: {err}")),
    };
    let rules = match hoop_pg::target::parse_rules(&connection.mask_columns) {
        Ok(r) => r,
        Err(err) => return error_ending(format!("the connection's settings: {err}")),
    };
    let agent = crate::agents::agent_of(&connection).to_owned();
    let mut proxy = Proxy {
        app,
        connection: connection.name.clone(),
        session_id: stops.session_id.clone(),
        agent: agent.clone(),
        target,
        rules,
        statements: HashMap::new(),
        portals: HashMap::new(),
        expect: VecDeque::new(),
        current: None,
        catalog: None,
        catalog_failed: false,
        view_masks: HashMap::new(),
        exec: matches!(input, Input::Fixed(_)),
        copy_in_bytes: 0,
        terminated: false,
        injected: None,
        typed: String::new(),
        typed_lower: None,
    };
    let ending = match input {
        Input::Fixed(sql) => exec(&mut proxy, session, sql, events, stops, counters).await,
        Input::Stream { messages, .. } => {
            connect(&mut proxy, session, messages, events, stops, counters).await
        }
    };
    // The catalog connection ends with the session.
    drop(proxy.catalog.take());
    ending
}

/// Opens the connection to the database and logs in, with TLS as the connection's
/// `SSLMODE` says, falling back as libpq does (`allow`: TLS when the plain login is
/// refused; `prefer`: plain when the TLS handshake fails).
async fn open_db(
    agents: &Agents,
    agent: &str,
    id: &str,
    target: &PgTarget,
    params: &[(String, String)],
) -> Result<(Wire, Login), LoginError> {
    let tls = hoop_pg::tls::settings(target)
        .map_err(|e| LoginError::Tls(format!("the connection's TLS settings: {e}")))?;
    let (first, fallback) = crate::pglink::attempts(target.sslmode);
    let result = attempt(agents, agent, id, target, tls.as_ref(), first, params).await;
    let fallback = match (&result, fallback) {
        (Err(LoginError::Refused(_)), Some(w @ Want::Tls))
        | (Err(LoginError::Tls(_)), Some(w @ Want::Plain)) => w,
        _ => return result,
    };
    if let Err(err) = &result {
        tracing::info!(
            session = %id,
            sslmode = %target.sslmode,
            error = %err.message(),
            "postgres: trying again {}",
            if fallback == Want::Tls { "with TLS" } else { "without TLS" }
        );
    }
    drop(result);
    let id = format!("{id}-again");
    attempt(agents, agent, &id, target, tls.as_ref(), fallback, params).await
}

async fn attempt(
    agents: &Agents,
    agent: &str,
    id: &str,
    target: &PgTarget,
    tls: Option<&hoop_pg::tls::TlsSettings>,
    want: Want,
    params: &[(String, String)],
) -> Result<(Wire, Login), LoginError> {
    let link = crate::pglink::open(agents, agent, id, target, tls, want)
        .await
        .map_err(|e| match e {
            OpenError::Agent(m) => LoginError::Agent(m),
            OpenError::Gone(m) => LoginError::Gone(m),
            OpenError::Tls(m) => LoginError::Tls(m),
        })?;
    let mut wire = Wire::new(link);
    let login = login(&mut wire, target, params).await?;
    Ok((wire, login))
}

/// `exec`: the input as one simple query; the result printed as psql does.
async fn exec(
    proxy: &mut Proxy<'_>,
    session: &mut ChainSession,
    sql: Vec<u8>,
    events: &EventSender,
    stops: &mut Stops<'_>,
    counters: &mut Counters,
) -> Ending {
    add(&mut counters.bytes_in, sql.len());
    let sql = String::from_utf8_lossy(&sql).into_owned();
    // Recorded (and checked by plugins) before anything runs.
    let frame = msg::query(&sql);
    match proxy.client_frame(&frame) {
        Ok(Some(line)) => {
            if let Err(ending) = record_input(session, line).await {
                return ending;
            }
        }
        Ok(None) => {}
        Err(e) => return error_ending(e),
    }
    let opened = open_db(
        stops.agents,
        &proxy.agent,
        &stops.session_id,
        &proxy.target,
        &[],
    );
    let logged_in = tokio::select! {
        l = tokio::time::timeout(LOGIN_TIMEOUT, opened) => l,
        Ok(reason) = &mut *stops.kill => return killed(reason),
        () = shut_down(stops.shutdown) => return killed(CloseReason::Shutdown),
    };
    let mut wire = match logged_in {
        Ok(Ok((wire, _))) => wire,
        Ok(Err(LoginError::Agent(m))) => return interrupted(m),
        Ok(Err(err)) => return error_ending(err.message()),
        Err(_) => return error_ending("logging in to the database timed out".to_owned()),
    };
    if let Err(e) = wire.send_frames(&[frame]).await {
        return interrupted(e);
    }
    let mut failed = false;
    loop {
        let deadline = stops.deadline;
        let f = tokio::select! {
            f = wire.frame() => f,
            () = events.closed() => return killed(CloseReason::ClientGone),
            () = shut_down(stops.shutdown) => return killed(CloseReason::Shutdown),
            Ok(reason) = &mut *stops.kill => return killed(reason),
            () = sleep_until(deadline), if deadline.is_some() => return killed(CloseReason::Timeout),
        };
        let f = match f {
            Ok(f) => f,
            Err(e) => return interrupted(e),
        };
        let done = f.tag == tag::READY_FOR_QUERY;
        failed |= f.tag == tag::ERROR_RESPONSE;
        let mut out = Produced::default();
        if let Err(ending) = proxy.server_frame(session, f, &mut out).await {
            return ending;
        }
        for (stream, text, pb_stream) in [
            (Stream::Stdout, out.stdout, pb::OutputStream::Stdout),
            (Stream::Stderr, out.stderr, pb::OutputStream::Stderr),
        ] {
            let chunk = match record_output(session, stream, text).await {
                Ok(c) => c,
                Err(ending) => return ending,
            };
            if let Err(ending) = send_client(events, pb_stream, chunk.data, counters, stops).await {
                return ending;
            }
        }
        if done {
            break;
        }
    }
    let _ = wire.send_frames(&[msg::empty(tag::TERMINATE)]).await;
    let code = i32::from(failed);
    Ending {
        status: "done",
        exit_code: code,
        reason: CloseReason::Exit { code },
    }
}

/// Removes a session's cancel key when it ends.
struct CancelKey<'a> {
    state: &'a PgState,
    key: (u32, u32),
}

impl Drop for CancelKey<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.state.cancels.lock() {
            c.remove(&self.key);
        }
    }
}

/// `connect`: a client's protocol bytes (startup message first, the one-time password
/// already checked by `hoop connect`).
async fn connect(
    proxy: &mut Proxy<'_>,
    session: &mut ChainSession,
    mut messages: crate::runtime::InputStream,
    events: &EventSender,
    stops: &mut Stops<'_>,
    counters: &mut Counters,
) -> Ending {
    use pb::OutputStream::Stdout;
    // The client's startup message (an SSL or GSSAPI request first is answered `N`).
    let mut cbuf = BytesMut::new();
    let startup = loop {
        match next_startup(&mut cbuf) {
            Ok(Some(Startup::SslRequest | Startup::GssEncRequest)) => {
                if let Err(e) =
                    send_client(events, Stdout, Bytes::from_static(b"N"), counters, stops).await
                {
                    return e;
                }
                continue;
            }
            Ok(Some(Startup::Cancel { .. })) => {
                return error_ending(
                    "a cancel request must come as Connect's postgres_cancel".to_owned(),
                );
            }
            Ok(Some(s @ Startup::Startup { .. })) => break s,
            Ok(None) => {}
            Err(e) => return error_ending(format!("the client: {e}")),
        }
        let message = tokio::select! {
            m = messages.recv() => m,
            () = events.closed() => return killed(CloseReason::ClientGone),
            () = shut_down(stops.shutdown) => return killed(CloseReason::Shutdown),
            Ok(reason) = &mut *stops.kill => return killed(reason),
        };
        match message {
            Some(InputMessage::Data(d)) => {
                add(&mut counters.bytes_in, d.len());
                cbuf.extend_from_slice(&d);
            }
            Some(InputMessage::Resize(_)) => {}
            Some(InputMessage::Invalid(m)) => return error_ending(m),
            Some(InputMessage::Close) | None => {
                return Ending {
                    status: "done",
                    exit_code: 0,
                    reason: CloseReason::Exit { code: 0 },
                };
            }
        }
    };
    let Startup::Startup { params, .. } = startup else {
        return error_ending("no startup message".to_owned());
    };
    let opened = open_db(
        stops.agents,
        &proxy.agent,
        &stops.session_id,
        &proxy.target,
        &params,
    );
    let logged_in = tokio::select! {
        l = tokio::time::timeout(LOGIN_TIMEOUT, opened) => l,
        Ok(reason) = &mut *stops.kill => return killed(reason),
        () = shut_down(stops.shutdown) => return killed(CloseReason::Shutdown),
    };
    let (wire, login) = match logged_in {
        Ok(Ok(l)) => l,
        Ok(Err(LoginError::Agent(m))) => return interrupted(m),
        Ok(Err(err)) => {
            let message = err.message();
            let _ = send_client(events, Stdout, fatal(&message), counters, stops).await;
            return error_ending(message);
        }
        Err(_) => {
            let message = "logging in to the database timed out";
            let _ = send_client(events, Stdout, fatal(message), counters, stops).await;
            return error_ending(message.to_owned());
        }
    };
    tracing::info!(session = %stops.session_id, method = login.method, "logged in to the database");
    // The client's view of the login: no password asked (hoop connect checked it), the
    // server's parameters, and a cancel key of the gateway's own.
    let key = loop {
        let key = (random_u32(), random_u32());
        let mut cancels = match app_cancels(proxy.app) {
            Some(c) => c,
            None => break key,
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = cancels.entry(key) {
            slot.insert(CancelEntry {
                user: session
                    .info()
                    .map(|i| i.user.name.clone())
                    .unwrap_or_default(),
                connection: proxy.connection.clone(),
                session: proxy.session_id.clone(),
                agent: proxy.agent.clone(),
                target: proxy.target.clone(),
                upstream: login.key,
            });
            break key;
        }
    };
    let _key_guard = CancelKey {
        state: &proxy.app.pg,
        key,
    };
    let mut hello = BytesMut::new();
    msg::authentication_ok().encode(&mut hello);
    for p in &login.params {
        p.encode(&mut hello);
    }
    msg::encode_backend_key(key.0, key.1).encode(&mut hello);
    msg::ready_for_query(login.status).encode(&mut hello);
    if let Err(e) = send_client(events, Stdout, hello.freeze(), counters, stops).await {
        return e;
    }
    // Whatever followed the startup message in the client's first bytes, and whatever
    // followed the server's ReadyForQuery, is processed first.
    let Wire {
        mut remote,
        buf: mut sbuf,
    } = wire;
    let mut to_server = BytesMut::new();
    let mut input_open = true;
    let mut input_closed = false;
    let mut client_ready = true;
    let mut server_ready = !sbuf.is_empty();
    let mut unacked = 0usize;
    loop {
        if client_ready {
            client_ready = false;
            let mut record = String::new();
            loop {
                match next_frame(&mut cbuf) {
                    Ok(Some(f)) => {
                        match proxy.client_frame(&f) {
                            Ok(Some(line)) => record.push_str(&line),
                            Ok(None) => {}
                            Err(e) => {
                                return end_with_fatal(events, error_ending(e), counters, stops)
                                    .await;
                            }
                        }
                        if let Some(before) = proxy.injected.take() {
                            before.encode(&mut to_server);
                        }
                        f.encode(&mut to_server);
                    }
                    Ok(None) => break,
                    Err(e) => return error_ending(format!("the client: {e}")),
                }
            }
            if let Err(ending) = record_input(session, record).await {
                return end_with_fatal(events, ending, counters, stops).await;
            }
        }
        // Send what fits in the agent's window.
        while !to_server.is_empty() {
            let n = to_server.len().min(INPUT_PIECE);
            if !remote.input_fits(n) {
                break;
            }
            if remote.input(to_server.split_to(n).freeze()).await.is_err() {
                return interrupted(format!("agent `{}` went away", remote.agent()));
            }
        }
        if to_server.is_empty() && !input_open && !input_closed {
            input_closed = true;
            let _ = remote.close_input().await;
        }
        if server_ready {
            server_ready = false;
            let mut out = Produced::default();
            loop {
                match next_frame(&mut sbuf) {
                    Ok(Some(f)) => {
                        if let Err(ending) = proxy.server_frame(session, f, &mut out).await {
                            return end_with_fatal(events, ending, counters, stops).await;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return error_ending(format!("the database: {e}")),
                }
            }
            for (stream, text) in [(Stream::Stdout, out.stdout), (Stream::Stderr, out.stderr)] {
                if let Err(ending) = record_output(session, stream, text).await {
                    return ending;
                }
            }
            if let Err(ending) =
                send_client(events, Stdout, out.wire.freeze(), counters, stops).await
            {
                return ending;
            }
            // Acknowledged once the client has it: a slow client slows the database down.
            // In batches well under the agent's window, so that a query's round trip does
            // not carry an acknowledgement of its own.
            if unacked >= OUTPUT_ACK_EVERY {
                if remote.ack_output(unacked).await.is_err() {
                    return interrupted(format!("agent `{}` went away", remote.agent()));
                }
                unacked = 0;
            }
        }
        let deadline = stops.deadline;
        let want_client = to_server.is_empty() && input_open;
        let step = tokio::select! {
            ev = remote.next() => Step::Server(ev),
            m = messages.recv(), if want_client => Step::Client(m),
            () = events.closed() => return killed(CloseReason::ClientGone),
            () = shut_down(stops.shutdown) => return killed(CloseReason::Shutdown),
            Ok(reason) = &mut *stops.kill => return killed(reason),
            () = sleep_until(deadline), if deadline.is_some() => return killed(CloseReason::Timeout),
        };
        match step {
            Step::Client(Some(InputMessage::Data(d))) => {
                add(&mut counters.bytes_in, d.len());
                cbuf.extend_from_slice(&d);
                client_ready = true;
            }
            Step::Client(Some(InputMessage::Resize(_))) => {}
            Step::Client(Some(InputMessage::Invalid(m))) => return error_ending(m),
            Step::Client(Some(InputMessage::Close) | None) => {
                // The client went without Terminate: end the database's session cleanly.
                if !proxy.terminated {
                    msg::empty(tag::TERMINATE).encode(&mut to_server);
                    proxy.terminated = true;
                }
                input_open = false;
            }
            Step::Server(AgentEvent::Output { data, .. }) => {
                unacked += data.len();
                sbuf.extend_from_slice(&data);
                server_ready = true;
            }
            Step::Server(AgentEvent::Spawned | AgentEvent::InputAck(_)) => {}
            Step::Server(AgentEvent::Exit { error: Some(e), .. }) => return interrupted(e),
            Step::Server(AgentEvent::Exit { .. }) => {
                return Ending {
                    status: "done",
                    exit_code: 0,
                    reason: CloseReason::Exit { code: 0 },
                };
            }
            Step::Server(AgentEvent::Lost(reason)) => return interrupted(reason),
        }
    }
}

fn app_cancels(app: &App) -> Option<std::sync::MutexGuard<'_, HashMap<(u32, u32), CancelEntry>>> {
    app.pg.cancels.lock().ok()
}

enum Step {
    Server(AgentEvent),
    Client(Option<InputMessage>),
}

/// A statement's columns as a portal bound with `result_formats` returns them.
fn with_formats(fields: &[Field], result_formats: &[i16]) -> Vec<Field> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| Field {
            format: msg::format_of(result_formats, i),
            ..f.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_shown_with_their_types() {
        let b = msg::Bind {
            portal: String::new(),
            statement: String::new(),
            param_formats: vec![1, 0],
            params: vec![
                Some(Bytes::from_static(&[0, 0, 0, 42])),
                Some(Bytes::from_static(b"it's")),
                None,
            ],
            result_formats: vec![],
        };
        assert_eq!(
            render_params(&b, &[23, 25]),
            "$1 = '42', $2 = 'it''s', $3 = NULL"
        );
    }

    #[test]
    fn copy_rows_join_back() {
        let copy = parse_copy("copy t to stdout").unwrap();
        let row = vec![Some(Bytes::from_static(b"1")), None];
        assert_eq!(join_copy_row(&row, &copy).as_ref(), b"1\t\\N\n");
    }
}
