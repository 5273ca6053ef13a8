//! TLS: the gateway serves `tls_cert`/`tls_key`, the CLI trusts a private CA with `--ca`, and
//! plaintext is refused on a non-loopback address unless `insecure_plaintext` is set.

use std::path::{Path, PathBuf};

use std::time::Duration;

use hoop_rs::{ADMIN_TOKEN, Backend, Setup, agent_bin, e2e, eventually};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};

e2e!(
    the_cli_talks_tls_to_a_gateway_with_a_private_ca,
    a_remote_agent_dials_a_tls_gateway_with_a_private_ca,
    bad_tls_files_stop_start_up,
    plaintext_on_a_non_loopback_address_needs_insecure_plaintext,
);

/// A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost, written
/// as PEM files into `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// The server key's PEM text, to check it never shows.
    key_pem: String,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("hoop e2e CA {name}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-gateway.pem")),
        key: dir.join(format!("{name}-gateway.key")),
        key_pem: server_key.serialize_pem(),
    };
    std::fs::write(&pki.ca, ca.as_ref().pem()).unwrap();
    std::fs::write(&pki.cert, server_cert.pem()).unwrap();
    std::fs::write(&pki.key, &pki.key_pem).unwrap();
    pki
}

fn tls_toml(cert: &Path, key: &Path) -> String {
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

/// The base64 lines of a PEM text (what must never be printed of a key).
fn pem_body(pem: &str) -> Vec<&str> {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

async fn the_cli_talks_tls_to_a_gateway_with_a_private_ca(backend: Backend) {
    let setup = Setup::new(backend);
    let pki = make_pki(setup.dir.path(), "main");
    let setup = setup.with_toml(&tls_toml(&pki.cert, &pki.key));
    let gw = setup.start().await;
    assert!(gw.tls, "the gateway should say it serves TLS");
    let https = format!("https://127.0.0.1:{}", gw.addr.port());
    let ca = pki.ca.to_str().unwrap();
    let t = Some(ADMIN_TOKEN);

    // --ca: the CLI trusts the private CA; calls and streams work.
    let out = gw
        .cli(t, &["--gateway", &https, "--ca", ca, "whoami"])
        .await;
    assert!(out.ok().contains("admin"), "{out:?}");
    // HOOP_CA and HOOP_GATEWAY (set to the https URL by the harness) work the same.
    assert_eq!(gw.url(), https);
    let with_ca = [("HOOP_CA", ca)];
    gw.cli_env(
        t,
        &[
            "connections",
            "create",
            "hello",
            "--",
            "echo",
            "hello over tls",
        ],
        None,
        &with_ca,
    )
    .await
    .ok();
    let out = gw
        .cli_env(t, &["connections", "list"], None, &with_ca)
        .await;
    assert!(out.ok().contains("hello"), "{out:?}");
    let out = gw.cli_env(t, &["exec", "hello"], None, &with_ca).await;
    assert_eq!(out.ok(), "hello over tls\n", "{out:?}");
    let localhost = format!("https://localhost:{}", gw.addr.port());
    let out = gw
        .cli(t, &["--gateway", &localhost, "--ca", ca, "whoami"])
        .await;
    assert!(out.ok().contains("admin"), "{out:?}");

    // Without --ca the certificate does not chain to a public root: a clear error.
    let out = gw.cli(t, &["--gateway", &https, "whoami"]).await;
    let err = out.err();
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer")
            && err.contains(
                "the gateway's TLS certificate is not trusted: pass --ca FILE or set HOOP_CA"
            ),
        "{err}"
    );
    // Another CA does not do either.
    let other = make_pki(setup.dir.path(), "other");
    let out = gw
        .cli(
            t,
            &[
                "--gateway",
                &https,
                "--ca",
                other.ca.to_str().unwrap(),
                "whoami",
            ],
        )
        .await;
    assert!(out.err().contains("UnknownIssuer"), "{out:?}");

    // Plaintext to a TLS gateway: the error says to use https://.
    let http = format!("http://127.0.0.1:{}", gw.addr.port());
    let out = gw.cli(t, &["--gateway", &http, "whoami"]).await;
    assert!(
        out.err().contains("if it serves TLS, use https://"),
        "{out:?}"
    );

    // A CA file that is missing, or that holds no certificate: one line saying what to do.
    let missing = setup.dir.path().join("missing-ca.pem");
    let out = gw
        .cli(
            t,
            &[
                "--gateway",
                &https,
                "--ca",
                missing.to_str().unwrap(),
                "whoami",
            ],
        )
        .await;
    let err = out.err();
    assert!(
        err.starts_with("error: cannot read the CA file ")
            && err.contains("missing-ca.pem (--ca, HOOP_CA)")
            && err.ends_with("pass the PEM file of the CA that signed the gateway's certificate"),
        "{err}"
    );
    let key = pki.key.to_str().unwrap();
    let out = gw
        .cli_env(
            t,
            &["--gateway", &https, "whoami"],
            None,
            &[("HOOP_CA", key)],
        )
        .await;
    let err = out.err();
    assert!(
        err.contains("holds no certificate")
            && err.ends_with("pass the PEM file of the CA that signed the gateway's certificate"),
        "{err}"
    );
    for line in pem_body(&pki.key_pem) {
        assert!(!err.contains(line), "the key leaked: {err}");
    }

    let logs = gw.stop_with_logs().await.1;
    for line in pem_body(&pki.key_pem) {
        assert!(!logs.contains(line), "the key leaked into the log");
    }
}

async fn bad_tls_files_stop_start_up(backend: Backend) {
    let setup = Setup::new(backend);
    let pki = make_pki(setup.dir.path(), "main");
    let other = make_pki(setup.dir.path(), "other");
    let missing = setup.dir.path().join("missing.pem");
    let must_not_show = |stderr: &str| {
        for pem in [&pki.key_pem, &other.key_pem] {
            for line in pem_body(pem) {
                assert!(!stderr.contains(line), "a key leaked: {stderr}");
            }
        }
    };

    let cases: [(String, &str); 5] = [
        (tls_toml(&missing, &pki.key), "tls_cert: cannot read "),
        (tls_toml(&pki.cert, &missing), "tls_key: cannot read "),
        // The files swapped: the key file holds no certificate.
        (
            tls_toml(&pki.key, &pki.cert),
            "tls_cert: no certificate in ",
        ),
        // A key that is not the certificate's.
        (
            tls_toml(&pki.cert, &other.key),
            "the private key does not match the certificate",
        ),
        (
            format!("tls_cert = \"{}\"\n", pki.cert.display()),
            "tls_cert: is set but tls_key is not",
        ),
    ];
    for (toml, expected) in cases {
        let bad = setup.clone().with_toml(&toml);
        let (code, stderr) = bad.failed_start(&[]).await;
        assert_eq!(code, Some(78), "{toml}: {stderr}");
        assert!(stderr.contains(expected), "{toml}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        must_not_show(&stderr);
    }
    // The same through the environment: the message names the variable.
    let (code, stderr) = setup
        .failed_start(&[
            ("HOOP_TLS_CERT", pki.cert.to_str().unwrap()),
            ("HOOP_TLS_KEY", other.key.to_str().unwrap()),
        ])
        .await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("HOOP_TLS_KEY: tls_key: the key in "),
        "{stderr}"
    );
    must_not_show(&stderr);
}

async fn plaintext_on_a_non_loopback_address_needs_insecure_plaintext(backend: Backend) {
    let setup = Setup::new(backend).with_env("HOOP_LISTEN", "0.0.0.0:0");
    let (code, stderr) = setup.failed_start(&[]).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("HOOP_LISTEN: listen: 0.0.0.0:0 is not a loopback address and TLS is off")
            && stderr.contains("Set tls_cert and tls_key")
            && stderr.contains("insecure_plaintext = true"),
        "{stderr}"
    );

    // Allowed on purpose: it starts, warns, and serves (reached here through loopback).
    let setup = setup.with_env("HOOP_INSECURE_PLAINTEXT", "true");
    let gw = setup.start().await;
    assert!(gw.addr.ip().is_unspecified(), "{}", gw.addr);
    assert!(
        gw.logs()
            .contains("serving plaintext on a non-loopback address"),
        "{}",
        gw.logs()
    );
    let out = gw.cli(Some(ADMIN_TOKEN), &["whoami"]).await;
    assert!(out.ok().contains("admin"), "{out:?}");
    let mut setup = gw.stop().await;

    // With TLS, a non-loopback listen needs nothing else.
    setup
        .env
        .retain(|(key, _)| key != "HOOP_INSECURE_PLAINTEXT");
    let pki = make_pki(setup.dir.path(), "main");
    let gw = setup
        .with_toml(&tls_toml(&pki.cert, &pki.key))
        .start()
        .await;
    assert!(gw.tls);
    let ca = [("HOOP_CA", pki.ca.to_str().unwrap())];
    let out = gw.cli_env(Some(ADMIN_TOKEN), &["whoami"], None, &ca).await;
    assert!(out.ok().contains("admin"), "{out:?}");
}

async fn a_remote_agent_dials_a_tls_gateway_with_a_private_ca(backend: Backend) {
    let setup = Setup::new(backend);
    let pki = make_pki(setup.dir.path(), "main");
    let setup = setup.with_toml(&tls_toml(&pki.cert, &pki.key));
    let gw = setup.start().await;
    let https = format!("https://127.0.0.1:{}", gw.addr.port());
    let ca = pki.ca.to_str().unwrap();
    let with_ca = [("HOOP_CA", ca)];
    let t = Some(ADMIN_TOKEN);
    let created = gw
        .cli_env(
            t,
            &["agents", "create", "tls-edge", "-o", "json"],
            None,
            &with_ca,
        )
        .await;
    let token = created.json()["token"].as_str().unwrap().to_owned();
    gw.cli_env(
        t,
        &[
            "connections",
            "create",
            "over-tls",
            "--agent",
            "tls-edge",
            "--",
            "echo",
            "ran by the agent",
        ],
        None,
        &with_ca,
    )
    .await
    .ok();
    let agent = |ca: Option<&str>| {
        let mut command = tokio::process::Command::new(agent_bin());
        command
            .args(["--gateway", &https, "--user", "nobody"])
            .env("HOOP_AGENT_TOKEN", &token)
            .env_remove("HOOP_CA")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(ca) = ca {
            command.args(["--ca", ca]);
        }
        command.spawn().unwrap()
    };
    let online = || async {
        let out = gw
            .cli_env(t, &["agents", "list", "-o", "json"], None, &with_ca)
            .await;
        out.json()["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "tls-edge" && a["online"] == true)
    };
    // Without the CA the agent cannot trust the gateway: it never comes online, and says why.
    let mut untrusting = agent(None);
    let mut stderr = untrusting.stderr.take().unwrap();
    let said = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stderr.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "the agent exited: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if text.contains("UnknownIssuer") || text.contains("certificate") {
                return text;
            }
        }
    })
    .await
    .expect("the agent did not report the untrusted certificate");
    assert!(said.contains("certificate"), "{said}");
    assert!(!online().await);
    untrusting.kill().await.unwrap();
    // With --ca it serves.
    let _trusting = agent(Some(ca));
    eventually(Duration::from_secs(30), "agent tls-edge online", || async {
        online().await.then_some(())
    })
    .await;
    let out = gw.cli_env(t, &["exec", "over-tls"], None, &with_ca).await;
    assert_eq!(out.ok(), "ran by the agent\n", "{out:?}");
}
