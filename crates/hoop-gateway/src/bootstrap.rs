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

/// Makes the data dir private to the gateway's OS user, whether the gateway created it or
/// found it: the directory and every directory under it 0700, every file 0600, all owned by
/// the gateway's user (chowned when the gateway runs as root; otherwise a file owned by
/// someone else is an error). Sessions must not reach the database, the keys or the
/// recordings, whatever user they run as. Returns how many entries were fixed.
pub(crate) fn secure_data_dir(dir: &Path) -> anyhow::Result<usize> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let mut fixed = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("data_dir: cannot inspect {}", path.display()))?;
        if meta.file_type().is_symlink() {
            // Not followed: a link cannot widen what the gateway exposes, and following
            // one could change files outside the data dir.
            continue;
        }
        if meta.uid() != uid.as_raw() {
            if uid.is_root() {
                nix::unistd::chown(&path, Some(uid), Some(gid)).with_context(|| {
                    format!("data_dir: cannot take ownership of {}", path.display())
                })?;
                fixed += 1;
            } else {
                bail!(
                    "data_dir: {} belongs to uid {}, not to the gateway's user (uid {uid}): \
                     chown the data dir to the gateway's user",
                    path.display(),
                    meta.uid()
                );
            }
        }
        let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.mode() & 0o777 != wanted {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
                .with_context(|| format!("data_dir: cannot restrict {}", path.display()))?;
            fixed += 1;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)
                .with_context(|| format!("data_dir: cannot list {}", path.display()))?
            {
                pending.push(entry?.path());
            }
        }
    }
    Ok(fixed)
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

    #[test]
    fn an_existing_data_dir_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(data.join("recordings")).unwrap();
        std::fs::write(data.join("hoop.db"), b"x").unwrap();
        std::fs::write(data.join("recordings/a.hrec"), b"x").unwrap();
        for (path, mode) in [
            (data.clone(), 0o755),
            (data.join("recordings"), 0o777),
            (data.join("hoop.db"), 0o644),
            (data.join("recordings/a.hrec"), 0o666),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        assert_eq!(secure_data_dir(&data).unwrap(), 4);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("recordings")), 0o700);
        assert_eq!(mode(&data.join("hoop.db")), 0o600);
        assert_eq!(mode(&data.join("recordings/a.hrec")), 0o600);
        // Nothing left to fix the second time.
        assert_eq!(secure_data_dir(&data).unwrap(), 0);
    }
}
