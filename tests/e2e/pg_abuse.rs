//! Abuse of `postgres` connections by a user who can connect: raw protocol messages through
//! `hoop connect` that try to carry masked values out, or to run a statement the recording
//! does not show. Against the PostgreSQL server of `HOOP_TEST_POSTGRES_URL` (skipped, saying
//! so, when that variable is unset).

use bytes::{BufMut, BytesMut};
use hoop_pg::frame::{Frame, encode_startup, next_frame};
use hoop_pg::message as msg;
use hoop_rs::{Backend, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::postgres::{
    STEP, Served, Target, all_ended, connection, create, psql_direct, recorded, serve, target,
};

/// Values that column rules (`public.users.email`, `*.ssn`) or content masking
/// (`EMAIL_ADDRESS`) must keep from the client.
const SECRETS: &[&str] = &[
    "alice@corp.example",
    "carol@corp.example",
    "123-45-6789",
    "987-65-4321",
    "bob@mail.example",
];

macro_rules! setup_or_skip {
    ($prefix:expr) => {
        match setup($prefix).await {
            Some(s) => s,
            None => {
                eprintln!("skipped: HOOP_TEST_POSTGRES_URL is unset");
                return;
            }
        }
    };
}

/// A scratch database with `users`, a gateway with connection `pg` on it (column rules and
/// content masking), and `hoop connect pg` serving.
async fn setup(prefix: &str) -> Option<(Target, Gateway, Served)> {
    let t = target(prefix).await?;
    psql_direct(
        &t,
        "create table users (id int primary key, email text unique, ssn text, note text);
         insert into users values
           (1, 'alice@corp.example', '123-45-6789', 'write to bob@mail.example, soon'),
           (2, 'carol@corp.example', '987-65-4321', 'nothing here');",
    )
    .await;
    let gw = Gateway::start(Backend::Sqlite).await;
    create(
        &gw,
        connection(
            "pg",
            &t,
            &["public.users.email", "*.ssn"],
            &["EMAIL_ADDRESS"],
        ),
    )
    .await;
    let served = serve(&gw, "pg").await;
    Some((t, gw, served))
}

/// A client speaking the protocol message by message.
struct Raw {
    sock: TcpStream,
    buf: BytesMut,
}

impl Raw {
    /// Logs in to `hoop connect`'s endpoint with the one-time password of `dsn`.
    async fn login(dsn: &str) -> Raw {
        let rest = dsn.strip_prefix("postgres://").unwrap();
        let (auth, rest) = rest.split_once('@').unwrap();
        let password = auth.split_once(':').unwrap().1.to_owned();
        let (hostport, rest) = rest.split_once('/').unwrap();
        let db = rest.split('?').next().unwrap();
        let sock = TcpStream::connect(hostport).await.unwrap();
        let mut raw = Raw {
            sock,
            buf: BytesMut::new(),
        };
        let startup = encode_startup(&[
            ("user".to_owned(), "hoop".to_owned()),
            ("database".to_owned(), db.to_owned()),
        ]);
        raw.sock.write_all(&startup).await.unwrap();
        let mut auth = hoop_pg::auth::Upstream::new("hoop", password.into_bytes());
        loop {
            let f = raw
                .frame()
                .await
                .expect("the endpoint closed while logging in");
            match f.tag {
                msg::tag::AUTHENTICATION => {
                    if let hoop_pg::auth::Step::Send(reply) = auth.respond(&f.body).unwrap() {
                        raw.send(&[reply]).await;
                    }
                }
                msg::tag::READY_FOR_QUERY => return raw,
                msg::tag::ERROR_RESPONSE => {
                    panic!("login refused: {}", String::from_utf8_lossy(&f.body))
                }
                _ => {}
            }
        }
    }

    /// The next message; `None` once the endpoint closed.
    async fn frame(&mut self) -> Option<Frame> {
        tokio::time::timeout(STEP, async {
            loop {
                if let Some(f) = next_frame(&mut self.buf).unwrap() {
                    return Some(f);
                }
                self.buf.reserve(8192);
                if self.sock.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("no message from the endpoint in time")
    }

    async fn send(&mut self, frames: &[Frame]) {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out);
        }
        self.sock.write_all(&out).await.unwrap();
    }

    /// Sends `frames`, then reads up to ReadyForQuery (or the end of the connection).
    async fn exchange(&mut self, frames: &[Frame]) -> Vec<Frame> {
        self.send(frames).await;
        let mut got = Vec::new();
        while let Some(f) = self.frame().await {
            let ready = f.tag == msg::tag::READY_FOR_QUERY;
            got.push(f);
            if ready {
                break;
            }
        }
        got
    }
}

/// Every message's body as text, one message a line (`tag: body`).
fn text(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| {
            format!(
                "{}: {}\n",
                char::from(f.tag),
                String::from_utf8_lossy(&f.body)
            )
        })
        .collect()
}

fn assert_no_secret(what: &str, got: &str) {
    for secret in SECRETS {
        assert!(
            !got.contains(secret),
            "{what}: {secret} reached the client:\n{got}"
        );
    }
}

fn parse(name: &str, sql: &str) -> Frame {
    msg::Parse {
        name: name.to_owned(),
        query: sql.to_owned(),
        param_types: Vec::new(),
    }
    .frame()
}

fn bind(portal: &str, statement: &str, result_formats: Vec<i16>) -> Frame {
    msg::Bind {
        portal: portal.to_owned(),
        statement: statement.to_owned(),
        param_formats: Vec::new(),
        params: Vec::new(),
        result_formats,
    }
    .frame()
}

fn execute(portal: &str, max_rows: i32) -> Frame {
    let mut b = BytesMut::new();
    b.put_slice(portal.as_bytes());
    b.put_u8(0);
    b.put_i32(max_rows);
    Frame::new(msg::tag::EXECUTE, b.freeze())
}

fn sync() -> Frame {
    msg::empty(msg::tag::SYNC)
}

/// Parse, Bind and Execute without any Describe: the client never asks what the columns
/// are, so the gateway cannot learn them from a RowDescription on the way back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_without_describe_still_applies_column_rules() {
    let (_t, _gw, served) = setup_or_skip!("hoop_pgab_nodesc");
    let mut c = Raw::login(&served.dsn).await;
    let sql = "select id, email, ssn from users order by id";
    // Unnamed statement and portal, text results.
    let got = c
        .exchange(&[parse("", sql), bind("", "", vec![]), execute("", 0), sync()])
        .await;
    let shown = text(&got);
    assert_no_secret("unnamed, text", &shown);
    assert!(shown.contains("[MASKED]"), "{shown}");
    // Binary results of a named statement, fetched two rows at a time.
    let got = c
        .exchange(&[
            parse("s1", sql),
            bind("p1", "s1", vec![1]),
            execute("p1", 1),
            execute("p1", 1),
            sync(),
        ])
        .await;
    assert_no_secret("named, binary, partial", &text(&got));
    // A statement prepared with SQL PREPARE, executed through the protocol.
    let got = c
        .exchange(&[msg::query("prepare s2 as select ssn, email from users")])
        .await;
    assert!(!text(&got).contains("ERROR"), "{}", text(&got));
    let got = c
        .exchange(&[bind("", "s2", vec![]), execute("", 0), sync()])
        .await;
    let shown = text(&got);
    assert_no_secret("SQL PREPARE", &shown);
    assert!(shown.contains("[MASKED]"), "{shown}");
}

/// A fastpath function call (`FunctionCall`) returns a value that is no DataRow:
/// `query_to_xml` would hand back any query's rows, unmasked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastpath_function_calls_carry_no_rows_out() {
    let (_t, _gw, served) = setup_or_skip!("hoop_pgab_fastpath");
    let mut c = Raw::login(&served.dsn).await;
    let got = c
        .exchange(&[msg::query(
            "select 'pg_catalog.query_to_xml(text,boolean,boolean,text)'::regprocedure::oid",
        )])
        .await;
    let oid: u32 = got
        .iter()
        .find(|f| f.tag == msg::tag::DATA_ROW)
        .map(|f| {
            let v = msg::data_row(&f.body).unwrap();
            String::from_utf8_lossy(v[0].as_ref().unwrap())
                .parse()
                .unwrap()
        })
        .expect("the function's oid");
    let mut b = BytesMut::new();
    b.put_u32(oid);
    b.put_i16(1);
    b.put_i16(0);
    let args: [&[u8]; 4] = [b"select id, email, ssn from users", b"t", b"f", b""];
    b.put_i16(4);
    for a in args {
        b.put_i32(a.len() as i32);
        b.put_slice(a);
    }
    b.put_i16(0);
    let got = c
        .exchange(&[Frame::new(msg::tag::FUNCTION_CALL, b.freeze())])
        .await;
    let shown = text(&got);
    assert_no_secret("fastpath", &shown);
    assert!(
        got.iter().any(|f| f.tag == msg::tag::ERROR_RESPONSE),
        "{shown}"
    );
}

/// Values reach the client in messages other than rows: a notification's payload, a
/// reported parameter's new value, the internal query of an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_in_notifications_parameters_and_error_fields_are_masked() {
    let (_t, gw, served) = setup_or_skip!("hoop_pgab_side");
    let mut c = Raw::login(&served.dsn).await;
    for sql in [
        "listen c; select pg_notify('c', email) from users where id = 1",
        "select set_config('application_name', email, false) from users where id = 1",
        "do $$ begin execute 'select ' || (select email from users where id = 1); end $$",
        "do $$ begin raise notice 'n %', (select note from users where id = 1); end $$",
    ] {
        let got = c.exchange(&[msg::query(sql)]).await;
        let shown = text(&got);
        assert_no_secret(sql, &shown);
        assert!(
            got.last().map(|f| f.tag) == Some(msg::tag::READY_FOR_QUERY),
            "{sql}: {shown}"
        );
    }
    c.send(&[msg::empty(msg::tag::TERMINATE)]).await;
    drop(c);
    drop(served);
    for s in all_ended(&gw, "pg").await {
        let (_, output) = recorded(&gw, &s.id).await;
        assert_no_secret("the recording", &output);
    }
}

/// COPY statements the gateway cannot follow word for word (a COPY after another
/// statement, two COPYs in one query, a quote character of the client's choosing) must not
/// let masked columns out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_the_gateway_cannot_follow_does_not_leak_masked_columns() {
    let (_t, _gw, served) = setup_or_skip!("hoop_pgab_copy");
    let mut c = Raw::login(&served.dsn).await;
    for sql in [
        "select 1; copy users (id, ssn) to stdout",
        "copy users (id) to stdout; copy users (ssn) to stdout",
        "copy users (id, note, ssn) to stdout with (format csv, quote '|')",
        "copy users (id, note, ssn) to stdout with (format csv, delimiter E'|')",
        "copy (select id, 'x\"y' as a, ssn, 'p,q' as b from users) to stdout with (format csv, escape '\\')",
        "copy users (id, note, ssn) to stdout csv quote as '|'",
    ] {
        let got = c.exchange(&[msg::query(sql)]).await;
        let shown = text(&got);
        assert_no_secret(sql, &shown);
        assert!(
            got.last().map(|f| f.tag) == Some(msg::tag::READY_FOR_QUERY),
            "{sql}: {shown}"
        );
    }
}

/// Re-parsing a named statement fails on the server (it exists), but must not change what
/// the gateway records for it: the statement that runs is the one recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_parse_does_not_change_the_recorded_statement() {
    let (t, gw, served) = setup_or_skip!("hoop_pgab_reparse");
    let mut c = Raw::login(&served.dsn).await;
    let got = c
        .exchange(&[
            parse("s", "update users set note = 'evaded' where id = 2"),
            sync(),
        ])
        .await;
    assert!(!text(&got).contains("ERROR"), "{}", text(&got));
    let got = c.exchange(&[parse("s", "select 1"), sync()]).await;
    assert!(
        got.iter().any(|f| f.tag == msg::tag::ERROR_RESPONSE),
        "{}",
        text(&got)
    );
    let got = c
        .exchange(&[bind("", "s", vec![]), execute("", 0), sync()])
        .await;
    assert!(text(&got).contains("UPDATE 1"), "{}", text(&got));
    c.send(&[msg::empty(msg::tag::TERMINATE)]).await;
    drop(c);
    assert_eq!(
        psql_direct(&t, "select note from users where id = 2")
            .await
            .trim(),
        "evaded"
    );
    drop(served);
    let list = all_ended(&gw, "pg").await;
    let (input, _) = recorded(&gw, &list[0].id).await;
    assert!(
        input.contains("update users set note = 'evaded' where id = 2"),
        "the statement that ran is not in the recording:\n{input}"
    );
}

/// A statement prepared with SQL `PREPARE` and run through the protocol's Bind/Execute is
/// recorded by its name (the gateway never saw a Parse for it), with its parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_with_sql_is_recorded_by_name_with_its_parameters() {
    let (_t, gw, served) = setup_or_skip!("hoop_pgab_sqlprep");
    let mut c = Raw::login(&served.dsn).await;
    let got = c
        .exchange(&[msg::query(
            "prepare \"odd\nname\" (int) as update users set note = 'seen' where id = $1",
        )])
        .await;
    assert!(!text(&got).contains("ERROR"), "{}", text(&got));
    let bound = msg::Bind {
        portal: String::new(),
        statement: "odd\nname".to_owned(),
        param_formats: Vec::new(),
        params: vec![Some(bytes::Bytes::from_static(b"2"))],
        result_formats: Vec::new(),
    }
    .frame();
    let got = c.exchange(&[bound, execute("", 0), sync()]).await;
    assert!(text(&got).contains("UPDATE 1"), "{}", text(&got));
    c.send(&[msg::empty(msg::tag::TERMINATE)]).await;
    drop(c);
    drop(served);
    let list = all_ended(&gw, "pg").await;
    let (input, _) = recorded(&gw, &list[0].id).await;
    assert!(
        input.contains(
            "-- executes statement \"odd\\nname\", prepared with SQL PREPARE\n-- params: $1 = '2'"
        ),
        "the protocol execution is not recorded by name (its newline escaped, so that a \
         name cannot forge a line of the recording):\n{input}"
    );
}

/// Errors and notices that would echo a ruled column's value: a failed cast, a value raised
/// from a `DO` block (with a SQLSTATE of the attacker's choice), a constraint's detail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_notices_do_not_echo_masked_column_values() {
    let (_t, _gw, served) = setup_or_skip!("hoop_pgab_errecho");
    let mut c = Raw::login(&served.dsn).await;
    for sql in [
        // 22P02: invalid input syntax for type integer: "123-45-6789"
        "select ssn::int from users where id = 1",
        "select ssn::date from users where id = 1",
        // 42P01: relation "123-45-6789" does not exist
        "select ssn::regclass from users where id = 1",
        "select ssn::regtype from users where id = 1",
        // 2200M: its detail shows the line of XML, unquoted.
        "select xmlparse(document ssn) from users where id = 1",
        "select ssn::json from users where id = 1",
        // Raised by the user, with a harmless-looking SQLSTATE.
        "do $$ begin raise exception '%', (select string_agg(ssn, ',') from users) \
         using errcode = '42P01'; end $$",
        "do $$ begin raise notice 'n %', (select string_agg(ssn, ',') from users); end $$",
        "do $$ begin raise exception 'x' using detail = (select string_agg(ssn, ',') from users); end $$",
        // 23505: Key (ssn)=(…) already exists.
        "create unique index on users (ssn)",
        "insert into users (id, ssn) select 100, ssn from users where id = 1",
        // 23514: Failing row contains (…).
        "alter table users add constraint short check (length(ssn) < 5) not valid",
        "update users set note = note where id = 1",
    ] {
        let got = c.exchange(&[msg::query(sql)]).await;
        let shown = text(&got);
        assert_no_secret(sql, &shown);
    }
    // Errors that hold no values stay as the server wrote them.
    let got = c
        .exchange(&[msg::query("select * from no_such_table")])
        .await;
    let shown = text(&got);
    assert!(shown.contains("no_such_table"), "{shown}");
    let got = c.exchange(&[msg::query("select 1/0")]).await;
    assert!(text(&got).contains("division by zero"), "{}", text(&got));
    // A value the user typed is theirs to see in the error.
    let got = c
        .exchange(&[msg::query("select 'Not-A-Number'::int")])
        .await;
    assert!(text(&got).contains("\"Not-A-Number\""), "{}", text(&got));
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Rows of large values do not pile up in the gateway: a query of 240 rows of 1 MB each
/// (under the 256 rows handed to the plugins at once) passes through without the gateway
/// holding them all. The gateway's peak grows by 40-70 MiB here whatever the number of rows
/// (a 1 MB row is copied several times on its way, and the allocator keeps freed pages for a
/// moment before it returns them); keeping one copy of every row grows it by about 300 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_rows_do_not_pile_up_in_the_gateway() {
    let (_t, gw, served) = setup_or_skip!("hoop_pgab_memory");
    let mut c = Raw::login(&served.dsn).await;
    let got = c.exchange(&[msg::query("select 1")]).await;
    assert!(text(&got).contains("1"));
    let before = peak_rss(gw.pid());
    c.send(&[msg::query(
        "select repeat('x', 1000000) from generate_series(1, 240)",
    )])
    .await;
    let mut rows = 0;
    while let Some(f) = c.frame().await {
        match f.tag {
            msg::tag::DATA_ROW => rows += 1,
            msg::tag::READY_FOR_QUERY => break,
            _ => {}
        }
    }
    assert_eq!(rows, 240);
    let grown = peak_rss(gw.pid()).saturating_sub(before);
    assert!(
        grown < 160 << 20,
        "the gateway's peak memory grew by {} MiB for 240 MB of rows",
        grown >> 20
    );
}

/// A view reports its own oid as the origin of its columns: the rules of the table columns
/// behind them still apply, through a renamed column and a view of a view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_do_not_bypass_column_rules() {
    let (_t, _gw, served) = setup_or_skip!("hoop_pgab_views");
    let mut c = Raw::login(&served.dsn).await;
    let got = c
        .exchange(&[msg::query(
            "create view v as select id, ssn as tax_id, email as contact, note from users;
             create view v2 as select tax_id as t, contact, id from v",
        )])
        .await;
    assert!(!text(&got).contains("ERROR"), "{}", text(&got));
    for sql in [
        "select * from v order by id",
        "select t, id from v2 order by id",
        "copy (select * from v2) to stdout",
    ] {
        let got = c.exchange(&[msg::query(sql)]).await;
        let shown = text(&got);
        assert_no_secret(sql, &shown);
        assert!(shown.contains("[MASKED]"), "{sql}: {shown}");
    }
    // Columns no rule names are shown.
    let got = c
        .exchange(&[msg::query("select note from v where id = 2")])
        .await;
    assert!(text(&got).contains("nothing here"), "{}", text(&got));
}

/// Computed columns fall back to content masking, in binary results too: an e-mail inside
/// a binary array, record, jsonb or bytea value is not let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_values_holding_text_are_masked_by_content() {
    let (_t, _gw, served) = setup_or_skip!("hoop_pgab_binary");
    let mut c = Raw::login(&served.dsn).await;
    for sql in [
        "select to_jsonb(u) from users u where id = 1",
        "select array_agg(note) from users",
        "select row(note, id) from users where id = 1",
        "select convert_to(note, 'UTF8') from users where id = 1",
        "select u from users u where id = 1",
    ] {
        let got = c
            .exchange(&[
                parse("", sql),
                bind("", "", vec![1]),
                msg::Target {
                    kind: b'P',
                    name: String::new(),
                }
                .frame(msg::tag::DESCRIBE),
                execute("", 0),
                sync(),
            ])
            .await;
        let shown = text(&got);
        for secret in ["alice@corp.example", "bob@mail.example"] {
            assert!(
                !shown.contains(secret),
                "{sql}: {secret} reached the client:\n{shown}"
            );
        }
        assert!(shown.contains("SELECT 1"), "{sql}: {shown}");
    }
    // Binary values of scalar types pass as they are.
    let got = c
        .exchange(&[
            parse("", "select id, 2.5::float8 from users where id = 1"),
            bind("", "", vec![1]),
            execute("", 0),
            sync(),
        ])
        .await;
    let row = got
        .iter()
        .find(|f| f.tag == msg::tag::DATA_ROW)
        .expect("a row");
    let values = msg::data_row(&row.body).unwrap();
    assert_eq!(values[0].as_deref(), Some(&1i32.to_be_bytes()[..]));
    assert_eq!(values[1].as_deref(), Some(&2.5f64.to_be_bytes()[..]));
}

/// Other local users can read every process's arguments (`ps`): the psql command `hoop
/// connect` prints passes the one-time password in the environment, and it works as
/// printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_psql_command_keeps_the_password_out_of_its_arguments() {
    let (_t, _gw, served) = setup_or_skip!("hoop_pgab_argv");
    let password = served
        .dsn
        .strip_prefix("postgres://hoop:")
        .and_then(|r| r.split_once('@'))
        .map(|(p, _)| p.to_owned())
        .unwrap();
    let line = served
        .stdout
        .lines()
        .find(|l| l.contains(" psql '"))
        .unwrap()
        .to_owned();
    let (env, args) = line.split_once(" psql ").unwrap();
    assert_eq!(env, format!("PGPASSWORD={password}"));
    assert!(!args.contains(&password), "{line}");
    let out = tokio::time::timeout(
        STEP,
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{line} -X -Atc 'select 40 + 2'"))
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

/// Before the one-time password is checked, anyone local may talk to `hoop connect`'s port:
/// a password message announcing 64 MiB is refused at once, not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_password_message_is_refused_before_it_is_read() {
    let (_t, _gw, served) = setup_or_skip!("hoop_pgab_preauth");
    let hostport = served
        .dsn
        .split_once('@')
        .and_then(|(_, r)| r.split_once('/'))
        .map(|(h, _)| h.to_owned())
        .unwrap();
    let sock = TcpStream::connect(&hostport).await.unwrap();
    let mut c = Raw {
        sock,
        buf: BytesMut::new(),
    };
    let startup = encode_startup(&[("user".to_owned(), "hoop".to_owned())]);
    c.sock.write_all(&startup).await.unwrap();
    let challenge = c.frame().await.expect("a password challenge");
    assert_eq!(challenge.tag, msg::tag::AUTHENTICATION);
    let mut b = BytesMut::new();
    b.put_u8(msg::tag::PASSWORD);
    b.put_i32(64 << 20);
    b.put_slice(&[b'x'; 4096]);
    c.sock.write_all(&b).await.unwrap();
    let answer = c.frame().await.expect("an error, not a silent close");
    assert_eq!(answer.tag, msg::tag::ERROR_RESPONSE);
    assert!(
        String::from_utf8_lossy(&answer.body).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

/// `COPY users TO STDOUT` names a table as the session's search_path finds it, which the
/// user may set otherwise than the gateway's catalog connection has it: a same-named table
/// in a schema the catalog connection searches first does not take the rules away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_of_a_table_found_through_another_search_path_keeps_its_rules() {
    let (t, _gw, served) = setup_or_skip!("hoop_pgab_searchpath");
    psql_direct(
        &t,
        "create schema decoy;
         create table decoy.users (id int, a text, b text, c text);
         do $$ begin execute format('alter database %I set search_path = decoy, public',
           current_database()); end $$;",
    )
    .await;
    let mut c = Raw::login(&served.dsn).await;
    let got = c.exchange(&[msg::query("set search_path = public")]).await;
    assert!(!text(&got).contains("ERROR"), "{}", text(&got));
    for sql in ["copy users to stdout", "copy users (id, ssn) to stdout"] {
        let got = c.exchange(&[msg::query(sql)]).await;
        let shown = text(&got);
        assert_no_secret(sql, &shown);
        assert!(shown.contains("[MASKED]"), "{sql}: {shown}");
    }
}
