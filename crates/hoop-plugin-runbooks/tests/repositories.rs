//! Repositories fetched with the real git CLI from `file://` repositories made here: listing,
//! a second commit picked up by a refresh, broken files listed with their error, a
//! repository that stops being reachable keeping its last commit, and `ref`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use hoop_core::PluginConfig;
use hoop_plugin_runbooks::{ConnectionConfig, Error, RunRequest, Runbooks, Settings};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn commit(dir: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

const UNLOCK: &str = "+++\ndescription = \"Unlock a user\"\n[params.user]\ntype = \"string\"\nrequired = true\n+++\necho unlocking {{ user }}\n";

fn settings(url: &str, path: &str) -> Settings {
    Settings::parse(
        &PluginConfig::from_value(serde_json::json!({"repositories": [
            {"name": "ops", "url": url, "branch": "main", "path": path, "refresh": "1s"}
        ]}))
        .unwrap(),
    )
    .unwrap()
}

fn all(_: &str, _: &str) -> bool {
    true
}

#[tokio::test]
async fn fetch_list_refresh_and_keep_the_last_good_commit() {
    let origin = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    git(origin.path(), &["init", "-q"]);
    let first = commit(
        origin.path(),
        &[
            ("runbooks/users/unlock.runbook.sh", UNLOCK),
            (
                "runbooks/broken.runbook.sql",
                "+++\n+++\nselect {{ who }};\n",
            ),
            ("runbooks/README.md", "not a runbook"),
            ("elsewhere.runbook.sh", UNLOCK),
        ],
        "first",
    );
    let url = format!("file://{}", origin.path().display());
    let runbooks = Runbooks::new(&settings(&url, "runbooks"), data.path(), None);

    // Nothing fetched yet: said so, not "not found".
    let err = runbooks
        .get("ops", "users/unlock.runbook.sh", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");

    assert_eq!(runbooks.refresh("ops").await.unwrap(), first);
    let listed = runbooks.list(None, &all).unwrap();
    let paths: Vec<&str> = listed.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["broken.runbook.sql", "users/unlock.runbook.sh"]);
    assert!(listed.iter().all(|e| e.commit == first));
    let broken = listed[0].runbook.as_ref().unwrap_err();
    assert!(broken.contains("`who`"), "{broken}");
    let unlock = listed[1].runbook.as_ref().unwrap();
    assert_eq!(unlock.description, "Unlock a user");

    // A second commit is picked up by the next refresh.
    let second = commit(
        origin.path(),
        &[("runbooks/users/lock.runbook.sh", UNLOCK)],
        "second",
    );
    assert_eq!(runbooks.refresh("ops").await.unwrap(), second);
    assert_eq!(runbooks.list(Some("ops"), &all).unwrap().len(), 3);

    // The first commit can still be asked for by id (it is an ancestor of the branch).
    let old = runbooks
        .get("ops", "users/unlock.runbook.sh", Some(&first[..10]))
        .await
        .unwrap();
    assert_eq!(old.commit, first);
    let err = runbooks
        .get("ops", "users/lock.runbook.sh", Some(&first))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    let err = runbooks
        .get("ops", "users/unlock.runbook.sh", Some("xyz"))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("ref: "), "{err}");
    let err = runbooks
        .get("ops", "users/unlock.runbook.sh", Some("0123456789abcdef"))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("ref: no commit"), "{err}");

    // The repository goes away: the refresh fails, the last good commit stays in use, and
    // the status says both.
    std::fs::remove_dir_all(origin.path()).unwrap();
    let err = runbooks.refresh("ops").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    let status = runbooks.status_line();
    assert!(
        status.starts_with(&format!(
            "ops: at commit {}; last refresh failed: git fetch",
            &second[..12]
        )),
        "{status}"
    );
    let entry = runbooks
        .get("ops", "users/lock.runbook.sh", None)
        .await
        .unwrap();
    assert_eq!(entry.commit, second);
}

#[tokio::test]
async fn a_commit_off_the_branch_is_refused() {
    let origin = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    git(origin.path(), &["init", "-q"]);
    commit(origin.path(), &[("unlock.runbook.sh", UNLOCK)], "first");
    git(origin.path(), &["checkout", "-q", "-b", "other"]);
    let other = commit(origin.path(), &[("evil.runbook.sh", UNLOCK)], "other");
    // The other branch's commit reaches the clone only if someone fetches it; make sure it
    // is there, so the refusal is the ancestry check's.
    let url = format!("file://{}", origin.path().display());
    let runbooks = Runbooks::new(&settings(&url, ""), data.path(), None);
    runbooks.refresh("ops").await.unwrap();
    git(
        data.path(),
        &[
            "--git-dir",
            "ops.git",
            "fetch",
            "-q",
            &url,
            "refs/heads/other:refs/heads/other",
        ],
    );
    let err = runbooks
        .get("ops", "evil.runbook.sh", Some(&other))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not on branch `main`"), "{err}");
}

#[tokio::test]
async fn runs_check_the_connection_config_and_the_params_before_anything_starts() {
    let origin = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    git(origin.path(), &["init", "-q"]);
    commit(
        origin.path(),
        &[
            ("users/unlock.runbook.sh", UNLOCK),
            (
                "billing/refund.runbook.sql",
                "+++\n[params.id]\ntype = \"string\"\npattern = \"[0-9]+\"\nrequired = true\n+++\nselect {{ id }};\n",
            ),
        ],
        "first",
    );
    let url = format!("file://{}", origin.path().display());
    let runbooks = Runbooks::new(&settings(&url, ""), data.path(), None);
    runbooks.refresh("ops").await.unwrap();
    let config = ConnectionConfig::parse(
        &PluginConfig::from_value(serde_json::json!({"paths": ["billing/**"]})).unwrap(),
        Some(&["ops".to_owned()]),
    )
    .unwrap();
    let request = |path: &str, params: &[(&str, &str)]| RunRequest {
        user: "alice".into(),
        connection: "db".into(),
        repository: "ops".into(),
        path: path.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        git_ref: None,
    };
    let err = runbooks
        .render(
            &config,
            &request("users/unlock.runbook.sh", &[("user", "x")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    let err = runbooks
        .render(
            &config,
            &request("billing/refund.runbook.sql", &[("id", "1 or 1=1")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "params.id: must match [0-9]+");
    let (entry, script) = runbooks
        .render(
            &config,
            &request("billing/refund.runbook.sql", &[("id", "7")]),
        )
        .await
        .unwrap();
    assert_eq!(script, "select '7';\n");
    assert_eq!(entry.path, "billing/refund.runbook.sql");
    // Without a session starter, a run that passes every check cannot start.
    let err = runbooks
        .run(
            &config,
            request("billing/refund.runbook.sql", &[("id", "7")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
}
