//! First-start bootstrap: the data directory, the secret key and the admin token.
//!
//! Generated credentials are written into the data dir with mode 0600. The log names the
//! files, never their contents.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hoop_store::{SecretBox, random_token};

use crate::config::Config;

/// File of the generated admin token, inside the data dir.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin-token";
/// File of the generated secret key, inside the data dir.
pub(crate) const SECRET_KEY_FILE: &str = "secret-key";

/// Creates the data dir (mode 0700) if it does not exist.
pub(crate) fn data_dir(config: &Config) -> anyhow::Result<PathBuf> {
    let dir = &config.data_dir;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("data_dir: cannot create {}", dir.display()))?;
        tracing::info!(path = %dir.display(), "created data dir");
    }
    Ok(dir.clone())
}

/// The configured value, or the one stored in `file`, or a new one written there.
fn credential(
    configured: Option<&String>,
    dir: &Path,
    file: &str,
    what: &str,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    if let Some(value) = configured {
        return Ok(value.clone());
    }
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(value) => {
            let value = value.trim().to_owned();
            if value.is_empty() {
                bail!(
                    "{what} file {} is empty: delete it to generate a new one",
                    path.display()
                );
            }
            Ok(value)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = generate();
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {what} file {}", path.display()))?;
            out.write_all(value.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.sync_all())
                .with_context(|| format!("cannot write {what} file {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated {what}");
            Ok(value)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {what} file {}", path.display())),
    }
}

/// The key that encrypts connection secrets.
pub(crate) fn secret_key(config: &Config, dir: &Path) -> anyhow::Result<String> {
    credential(
        config.secret_key.as_ref(),
        dir,
        SECRET_KEY_FILE,
        "secret key",
        SecretBox::generate_key,
    )
}

/// The bootstrap credential of the built-in admin user.
pub(crate) fn admin_token(config: &Config, dir: &Path) -> anyhow::Result<String> {
    credential(
        config.admin_token.as_ref(),
        dir,
        ADMIN_TOKEN_FILE,
        "admin token",
        || random_token("hadm_"),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generated_once_then_reused_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(
            None,
            [(
                "HOOP_DATA_DIR".to_owned(),
                dir.path().join("d").display().to_string(),
            )],
        )
        .unwrap();
        let data = data_dir(&config).unwrap();
        let token = admin_token(&config, &data).unwrap();
        assert!(token.starts_with("hadm_"));
        assert_eq!(admin_token(&config, &data).unwrap(), token);
        let mode = std::fs::metadata(data.join(ADMIN_TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = secret_key(&config, &data).unwrap();
        assert!(key.len() >= hoop_store::MIN_SECRET_KEY_LEN);
        assert_eq!(secret_key(&config, &data).unwrap(), key);
    }
}
