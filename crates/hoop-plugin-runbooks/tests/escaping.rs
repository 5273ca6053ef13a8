//! The escaping filters checked against independent readers: the shell itself reads every
//! `shell_quote`d string back as one word equal to the input, and PostgreSQL reads every
//! `sql_literal` back as the input text and every `sql_identifier` as the identifier (with
//! `standard_conforming_strings` on and off), when `HOOP_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hoop_plugin_runbooks::render::{shell_quote, sql_identifier, sql_literal};
use proptest::prelude::*;

/// Text without NUL, biased towards what breaks quoting.
fn nasty() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("$(id)".to_owned()),
        Just("`id`".to_owned()),
        Just("\n".to_owned()),
        Just("${HOME}".to_owned()),
        Just(";".to_owned()),
        Just("--".to_owned()),
        Just("E'".to_owned()),
        Just("$$".to_owned()),
        "[^\0]{0,4}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// What `sh` prints for `printf %s <word>`.
fn shell_reads(word: &str) -> Vec<u8> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s {word}"))
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "sh failed on {word:?}: {:?}", out);
    out.stdout
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_shell_reads_a_quoted_word_back_as_it_was(text in nasty()) {
        let word = shell_quote(&text).unwrap();
        prop_assert_eq!(shell_reads(&word), text.as_bytes());
    }
}

#[test]
fn nul_is_refused_not_mangled() {
    assert!(shell_quote("a\0b").is_err());
    assert!(sql_literal("a\0b").is_err());
    assert!(sql_identifier("a\0b").is_err());
}

mod postgres {
    use super::*;
    use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

    async fn connect() -> Option<DatabaseConnection> {
        let Ok(url) = std::env::var("HOOP_TEST_POSTGRES_URL") else {
            println!("skipped: HOOP_TEST_POSTGRES_URL is unset");
            return None;
        };
        // One connection, so `SET` and the temporary table hold for every statement.
        let mut options = sea_orm::ConnectOptions::new(url);
        options
            .max_connections(1)
            .min_connections(1)
            .sqlx_logging(false);
        Some(Database::connect(options).await.unwrap())
    }

    async fn read_literal(db: &DatabaseConnection, literal: &str) -> String {
        let row = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT {literal} AS v"),
            ))
            .await
            .unwrap_or_else(|e| panic!("{literal:?}: {e}"))
            .unwrap();
        row.try_get::<String>("", "v").unwrap()
    }

    async fn read_identifier(db: &DatabaseConnection, identifier: &str) -> String {
        // The identifier names a column; the catalog says what name PostgreSQL read.
        db.execute(Statement::from_string(
            db.get_database_backend(),
            "DROP TABLE IF EXISTS runbooks_ident_probe".to_owned(),
        ))
        .await
        .unwrap();
        db.execute(Statement::from_string(
            db.get_database_backend(),
            format!("CREATE TEMP TABLE runbooks_ident_probe ({identifier} int)"),
        ))
        .await
        .unwrap_or_else(|e| panic!("{identifier:?}: {e}"));
        let row = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                "SELECT attname::text AS v FROM pg_attribute \
                 WHERE attrelid = 'runbooks_ident_probe'::regclass AND attnum = 1"
                    .to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<String>("", "v").unwrap()
    }

    #[test]
    fn postgres_reads_literals_and_identifiers_back_as_they_were() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let Some(db) = rt.block_on(connect()) else {
            return;
        };
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 150,
            ..ProptestConfig::default()
        });
        for conforming in ["on", "off"] {
            rt.block_on(db.execute(Statement::from_string(
                db.get_database_backend(),
                format!("SET standard_conforming_strings = {conforming}"),
            )))
            .unwrap();
            runner
                .run(&nasty(), |text| {
                    let literal = sql_literal(&text).unwrap();
                    let read = rt.block_on(read_literal(&db, &literal));
                    prop_assert_eq!(
                        &read,
                        &text,
                        "literal {} (standard_conforming_strings={})",
                        literal,
                        conforming
                    );
                    Ok(())
                })
                .unwrap();
        }
        // Identifiers: PostgreSQL keeps at most 63 bytes of a name, so only shorter ones.
        runner
            .run(
                &nasty().prop_filter("1..=63 bytes", |t| !t.is_empty() && t.len() <= 63),
                |text| {
                    let identifier = sql_identifier(&text).unwrap();
                    let read = rt.block_on(read_identifier(&db, &identifier));
                    prop_assert_eq!(&read, &text, "identifier {}", identifier);
                    Ok(())
                },
            )
            .unwrap();
    }
}
