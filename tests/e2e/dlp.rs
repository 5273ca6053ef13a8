//! The dlp plugin on real sessions: what the user sees and what is recorded are masked,
//! the counts land on the session, deployment settings (styles, custom types) apply, and
//! quiet output is not held back.

use hoop_rs::{
    ADMIN_TOKEN, Backend, Gateway, Setup, admin, args_connection, assert_status, authed,
    command_connection, e2e, exec, pb, recording,
};
use tonic::Code;

e2e!(
    a_masked_session_shows_and_records_only_masked_output,
    real_world_phone_and_card_formats_are_masked,
    styles_and_custom_types_come_from_the_gateway_config,
    quiet_output_is_released_without_waiting_for_more,
    unknown_info_types_are_refused_naming_the_valid_ones,
);

const EMAIL: &str = "alice.smith@example.com";
const CARD: &str = "4111 1111 1111 1111";
const PHONE: &str = "(415) 555-0132";

async fn create(gw: &Gateway, conn: pb::Connection) {
    gw.connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(conn),
        }))
        .await
        .unwrap();
}

fn masked_connection(name: &str, argv: &[&str], types: &[&str]) -> pb::Connection {
    // The tests hand the script to run as args.
    let mut conn = args_connection(name, argv);
    conn.redact_types = types.iter().map(|t| t.to_string()).collect();
    conn
}

fn run(conn: &str, args: &[&str]) -> pb::ExecRequest {
    pb::ExecRequest {
        connection: conn.into(),
        input: Vec::new(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// `value` as two adjacent quoted halves inside a single-quoted shell word (`ab''cd`): the
/// shell prints it whole, the text of the script never holds it.
fn split(value: &str) -> String {
    let (head, tail) = value.split_at(value.len() / 2);
    format!("{head}''{tail}")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn session(gw: &Gateway, id: &str) -> pb::Session {
    gw.sessions()
        .await
        .get_session(admin(pb::GetSessionRequest { id: id.to_owned() }))
        .await
        .unwrap()
        .into_inner()
}

async fn a_masked_session_shows_and_records_only_masked_output(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(
        &gw,
        masked_connection(
            "rows",
            &["sh", "-c"],
            &["EMAIL_ADDRESS", "CREDIT_CARD_NUMBER", "PHONE_NUMBER"],
        ),
    )
    .await;
    // A psql-like table on stdout, an error line on stderr, and bytes that are not UTF-8.
    // The args are recorded as sent: the script glues each value from two quoted halves, so
    // that only the output holds it whole.
    let (email, card, phone) = (split(EMAIL), split(CARD), split(PHONE));
    let script = format!(
        "printf ' id | email | card | phone\\n----+-------+------+------\\n'; \
         printf '  1 | {email} | {card} | {phone}\\n'; \
         printf '  2 | bob@''example.org | 5500-0000-0000-0004 | +44 20 7946 0958\\n'; \
         printf '(2 rows)\\n\\377\\000'; \
         printf 'ERROR: duplicate key {email}\\n' >&2"
    );
    let result = exec(&gw, ADMIN_TOKEN, run("rows", &[&script]))
        .await
        .unwrap();
    assert_eq!(result.exit_code, Some(0), "{}", result.reason);
    let stdout = String::from_utf8_lossy(&result.stdout);
    for raw in [
        EMAIL,
        CARD,
        PHONE,
        "bob@example.org",
        "5500-0000-0000-0004",
        "7946 0958",
    ] {
        assert!(!stdout.contains(raw), "{raw} leaked: {stdout}");
    }
    assert!(
        stdout.contains("  1 | [EMAIL_ADDRESS] | [CREDIT_CARD_NUMBER] | [PHONE_NUMBER]\n"),
        "{stdout}"
    );
    assert!(stdout.contains("(2 rows)\n"), "row counts stay: {stdout}");
    assert!(
        result.stdout.ends_with(b"\xff\x00"),
        "other bytes pass through"
    );
    assert_eq!(
        String::from_utf8_lossy(&result.stderr),
        "ERROR: duplicate key [EMAIL_ADDRESS]\n"
    );

    // The recording holds what the user sent and saw, masked as they saw it.
    let raw_file = std::fs::read(gw.recording_path(&result.session_id)).unwrap();
    for raw in [EMAIL, CARD, PHONE, "bob@example.org"] {
        assert!(!contains(&raw_file, raw), "{raw} is in the recording file");
    }
    let (events, error) = recording(&gw, ADMIN_TOKEN, &result.session_id)
        .await
        .unwrap();
    assert!(error.is_none(), "{error:?}");
    let recorded: Vec<u8> = events
        .iter()
        .filter(|e| e.kind == pb::RecordingEventKind::Stdout as i32)
        .flat_map(|e| e.data.clone())
        .collect();
    assert_eq!(recorded, result.stdout);

    // The counts are on the session.
    let s = session(&gw, &result.session_id).await;
    assert_eq!(
        s.metrics.get("dlp.EMAIL_ADDRESS"),
        Some(&3),
        "{:?}",
        s.metrics
    );
    assert_eq!(s.metrics.get("dlp.CREDIT_CARD_NUMBER"), Some(&2));
    assert_eq!(s.metrics.get("dlp.PHONE_NUMBER"), Some(&2));
    let masked_bytes = s.metrics.get("dlp.masked_bytes").copied().unwrap_or(0);
    let expected = [EMAIL, CARD, PHONE, "bob@example.org", "5500-0000-0000-0004"]
        .iter()
        .map(|v| v.len() as i64)
        .sum::<i64>()
        + EMAIL.len() as i64
        + "+44 20 7946 0958".len() as i64;
    assert_eq!(masked_bytes, expected, "{:?}", s.metrics);

    // A connection without redact_types is untouched.
    create(&gw, command_connection("plain", &["echo", EMAIL])).await;
    let plain = exec(&gw, ADMIN_TOKEN, run("plain", &[])).await.unwrap();
    assert_eq!(plain.stdout, format!("{EMAIL}\n").as_bytes());
    let s = session(&gw, &plain.session_id).await;
    assert!(
        !s.metrics.keys().any(|k| k.starts_with("dlp.")),
        "{:?}",
        s.metrics
    );
}

async fn real_world_phone_and_card_formats_are_masked(backend: Backend) {
    let gw = Gateway::start(backend).await;
    create(
        &gw,
        masked_connection(
            "formats",
            &["sh", "-c"],
            &["CREDIT_CARD_NUMBER", "PHONE_NUMBER"],
        ),
    )
    .await;
    // A phone with an extension, a bare 10-digit number in a table's phone column and
    // after a phone key, 12-digit Maestro numbers; look-alikes in other columns and keys.
    let values = [
        "(798)938-6756x508",
        "2125550147",
        "675992137454",
        "6390 3926 1404",
        "+1-780-563-6083 ext. 77",
        "020 7946 0958",
    ];
    let [ext, bare, maestro, maestro_spaced, intl_ext, uk] = values.map(split);
    let script = format!(
        "printf ' id | phone             | card         | order_id\n----+-------------------+--------------+------------\n'; \
         printf '  1 | {ext} | {maestro} | 2125550148\n'; \
         printf '  2 | {bare}        | {maestro_spaced} | 2125550149\n'; \
         printf '(2 rows)\n'; \
         printf 'order_id=2125550150 phone={bare} uk={uk} at 2026-11-24T07:41:53Z v1.2.3\n'; \
         printf 'call {intl_ext} or pay with {maestro}\n'"
    );
    let result = exec(&gw, ADMIN_TOKEN, run("formats", &[&script]))
        .await
        .unwrap();
    assert_eq!(result.exit_code, Some(0), "{}", result.reason);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(
        stdout,
        " id | phone             | card         | order_id\n\
         ----+-------------------+--------------+------------\n  \
         1 | [PHONE_NUMBER] | [CREDIT_CARD_NUMBER] | 2125550148\n  \
         2 | [PHONE_NUMBER]        | [CREDIT_CARD_NUMBER] | 2125550149\n\
         (2 rows)\n\
         order_id=2125550150 phone=[PHONE_NUMBER] uk=[PHONE_NUMBER] at 2026-11-24T07:41:53Z v1.2.3\n\
         call [PHONE_NUMBER] or pay with [CREDIT_CARD_NUMBER]\n"
    );
    let raw_file = std::fs::read(gw.recording_path(&result.session_id)).unwrap();
    for raw in values {
        assert!(!contains(&raw_file, raw), "{raw} is in the recording file");
    }
    let s = session(&gw, &result.session_id).await;
    assert_eq!(
        s.metrics.get("dlp.PHONE_NUMBER"),
        Some(&5),
        "{:?}",
        s.metrics
    );
    assert_eq!(s.metrics.get("dlp.CREDIT_CARD_NUMBER"), Some(&3));
}

async fn styles_and_custom_types_come_from_the_gateway_config(backend: Backend) {
    let setup = Setup::new(backend).with_toml(
        r#"
[dlp]
default_style = "mask"
styles = { EMAIL_ADDRESS = "hash", CREDIT_CARD_NUMBER = "partial" }

[[dlp.custom_types]]
name = "EMPLOYEE_ID"
regex = "EMP-[0-9]{6}"
description = "Employee number"
example = "EMP-123456"

[[dlp.custom_types]]
name = "CODENAME"
keywords = ["bluebird"]
case_insensitive = true
"#,
    );
    let gw = setup.start().await;
    create(
        &gw,
        masked_connection(
            "hr",
            &["sh", "-c"],
            &[
                "EMAIL_ADDRESS",
                "CREDIT_CARD_NUMBER",
                "PHONE_NUMBER",
                "EMPLOYEE_ID",
                "CODENAME",
            ],
        ),
    )
    .await;
    let script = format!(
        "echo 'EMP-123456 {EMAIL} {CARD}'; echo 'again {EMAIL} {PHONE}'; echo 'Project BlueBird, bluebirds'"
    );
    let result = exec(&gw, ADMIN_TOKEN, run("hr", &[&script])).await.unwrap();
    let out = String::from_utf8(result.stdout.clone()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    // mask keeps separators; partial keeps the last 4; hash is a keyed tag.
    assert!(lines[0].starts_with("***-****** [EMAIL_ADDRESS:"), "{out}");
    assert!(lines[0].ends_with("] **** **** **** 1111"), "{out}");
    assert!(lines[1].ends_with(" (***) ***-****"), "{out}");
    assert!(
        lines[2] == "Project ********, bluebirds",
        "whole words only, any case: {out}"
    );
    let tag = |line: &str| {
        let start = line.find("[EMAIL_ADDRESS:").unwrap();
        line[start..start + "[EMAIL_ADDRESS:".len() + 17].to_owned()
    };
    let first_tag = tag(lines[0]);
    assert!(first_tag.ends_with(']'), "{first_tag}");
    assert_eq!(first_tag, tag(lines[1]), "the same value, the same tag");

    // The listing shows the deployment's types and styles.
    let listed = gw
        .dlp()
        .await
        .list_info_types(admin(pb::ListInfoTypesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.default_style, "mask");
    let find = |name: &str| {
        listed
            .info_types
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
            .clone()
    };
    let employee = find("EMPLOYEE_ID");
    assert!(employee.custom);
    assert_eq!(employee.style, "mask");
    assert_eq!(employee.masked_example, "***-******");
    let email = find("EMAIL_ADDRESS");
    assert!(!email.custom);
    assert_eq!(email.style, "hash");
    assert!(!email.example.is_empty() && !email.description.is_empty());
    assert_eq!(find("URL").style, "mask");
    let names: Vec<_> = listed.info_types.iter().map(|t| t.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 21 + 2);

    // Tags are stable across restarts of the deployment (same secret key).
    let setup = gw.stop().await;
    let gw = setup.start().await;
    let again = exec(&gw, ADMIN_TOKEN, run("hr", &[&format!("echo '{EMAIL}'")]))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        format!("{first_tag}\n")
    );
}

async fn quiet_output_is_released_without_waiting_for_more(backend: Backend) {
    use pb::session_event::Event;
    let gw = Gateway::start(backend).await;
    // A prompt without a newline, then the program waits for input: the prompt must reach
    // the user although more output could follow it.
    create(
        &gw,
        masked_connection(
            "prompt",
            &[
                "sh",
                "-c",
                "printf 'email> '; read -r line; echo \"got $line\"",
            ],
            &["EMAIL_ADDRESS"],
        ),
    )
    .await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Open(pb::ConnectOpen {
            connection: "prompt".into(),
            args: Vec::new(),
            terminal: None,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut events = gw
        .sessions()
        .await
        .connect(authed(
            ADMIN_TOKEN,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(30), events.message())
            .await
            .expect("no event within 30 s: output held back?")
            .unwrap()
            .expect("the stream ended")
            .event
            .unwrap()
    };
    let id = match next().await {
        Event::Started(s) => s.session_id,
        other => panic!("unexpected {other:?}"),
    };
    let mut prompt = Vec::new();
    while prompt.len() < b"email> ".len() {
        match next().await {
            Event::Output(o) => prompt.extend(o.data),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(prompt, b"email> ");
    tx.send(pb::ConnectRequest {
        request: Some(pb::connect_request::Request::Input(
            format!("{EMAIL}\n").into_bytes(),
        )),
    })
    .await
    .unwrap();
    let mut rest = Vec::new();
    loop {
        match next().await {
            Event::Output(o) => rest.extend(o.data),
            Event::Exit(e) => {
                assert_eq!(e.exit_code, 0, "{}", e.reason);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(String::from_utf8(rest).unwrap(), "got [EMAIL_ADDRESS]\n");
    let s = session(&gw, &id).await;
    assert_eq!(s.metrics.get("dlp.EMAIL_ADDRESS"), Some(&1));
}

async fn unknown_info_types_are_refused_naming_the_valid_ones(backend: Backend) {
    let setup = Setup::new(backend)
        .with_toml("[[dlp.custom_types]]\nname = \"EMPLOYEE_ID\"\nregex = \"EMP-[0-9]{6}\"\n");
    let gw = setup.start().await;
    let result = gw
        .connections()
        .await
        .create_connection(admin(pb::CreateConnectionRequest {
            connection: Some(masked_connection(
                "bad",
                &["true"],
                &["EMAIL_ADDRESS", "SHOE_SIZE"],
            )),
        }))
        .await;
    let message = result
        .as_ref()
        .err()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert_status(
        result,
        Code::InvalidArgument,
        "connection.redact_types[1]: unknown info type `SHOE_SIZE`; valid types: AWS_ACCESS_KEY_ID",
    );
    assert!(message.ends_with(", EMPLOYEE_ID"), "{message}");
    // Nothing was written.
    let missing = gw
        .connections()
        .await
        .get_connection(admin(pb::GetConnectionRequest { name: "bad".into() }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // The custom type is accepted, on create and on update.
    create(
        &gw,
        masked_connection("ok", &["true"], &["EMPLOYEE_ID", "URL"]),
    )
    .await;
}
