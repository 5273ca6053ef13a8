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
/// File of the generated instance id, inside the data dir.
pub(crate) const INSTANCE_ID_FILE: &str = "instance-id";
/// File of the generated secret key, inside the data dir.
pub(crate) const SECRET_KEY_FILE: &str = "secret-key";

/// Creates the data dir (mode 0700) if it does not exist, and makes it private (see
/// [`secure_data_dir`]). Call it before the database is opened, never after: opening and
/// closing a file SQLite has open would release the locks SQLite holds on it in this
/// process (POSIX record locks belong to the process, and any close drops them).
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
    // Before anything in it is read or opened: the keys, the database.
    let fixed = secure_data_dir(dir)?;
    if fixed > 0 {
        tracing::warn!(path = %dir.display(), entries = fixed, "data dir was readable by others: made it private to the gateway's user (0700 directories, 0600 files)");
    }
    Ok(dir.clone())
}

/// Makes the data dir private to the gateway's OS user, whether the gateway created it or
/// found it: the directory and every directory under it 0700, every file 0600. Sessions
/// must not reach the database, the keys or the recordings, whatever user they run as.
/// Returns how many entries were fixed.
///
/// An entry owned by another user stops start-up, root or not: someone else may have made
/// the directory (in a world-writable place, before the gateway's first start) with an admin
/// token and a secret key of their choosing. Symbolic links are never followed: each entry
/// is opened with `O_NOFOLLOW` and checked and changed through that descriptor, so swapping
/// an entry for a link cannot redirect a change to a file outside the data dir.
pub(crate) fn secure_data_dir(dir: &Path) -> anyhow::Result<usize> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::{Mode, SFlag, fchmod, fstat};
    let uid = nix::unistd::geteuid();
    let mut fixed = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let is_link = std::fs::symlink_metadata(&path)
            .with_context(|| format!("data_dir: cannot inspect {}", path.display()))?
            .file_type()
            .is_symlink();
        if is_link {
            // Not followed: a link cannot widen what the gateway exposes.
            continue;
        }
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("data_dir: cannot open {}", path.display()))?;
        let stat =
            fstat(&fd).with_context(|| format!("data_dir: cannot inspect {}", path.display()))?;
        if stat.st_uid != uid.as_raw() {
            bail!(
                "data_dir: {} belongs to uid {}, not to the gateway's user (uid {uid}): someone \
                 else may have created it. If it is the gateway's own, `chown -R {uid} {}`; \
                 otherwise remove it or choose another data_dir",
                path.display(),
                stat.st_uid,
                dir.display()
            );
        }
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        let is_dir = kind == SFlag::S_IFDIR;
        let wanted = if is_dir { 0o700 } else { 0o600 };
        if stat.st_mode & 0o7777 != wanted {
            fchmod(&fd, Mode::from_bits_truncate(wanted))
                .with_context(|| format!("data_dir: cannot restrict {}", path.display()))?;
            fixed += 1;
        }
        if is_dir {
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

/// This gateway's `instance_id`: configured, or generated once into the data dir.
pub(crate) fn instance_id(config: &Config, dir: &Path) -> anyhow::Result<String> {
    let id = credential(
        config.instance_id.as_ref(),
        dir,
        INSTANCE_ID_FILE,
        "instance id",
        || {
            let uuid = uuid::Uuid::new_v4().simple().to_string();
            format!("gw-{}", &uuid[..12])
        },
    )?;
    crate::config::check_instance_id(&id).map_err(|message| {
        anyhow::anyhow!(
            "instance_id: {message} (in {}: fix or delete it)",
            dir.join(INSTANCE_ID_FILE).display()
        )
    })?;
    Ok(id)
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

    #[test]
    fn links_are_not_followed_and_foreign_entries_stop_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(&data).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
        secure_data_dir(&data).unwrap();
        let mode = std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the link's target must be left alone");

        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped the foreign-owner part: it needs root to chown (CI runs as root)");
            return;
        }
        // Planted by someone else (here: nobody): refused, not adopted.
        let planted = data.join("admin-token");
        std::fs::write(&planted, b"attacker-chosen-token-0000").unwrap();
        nix::unistd::chown(&planted, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = secure_data_dir(&data).unwrap_err().to_string();
        assert!(err.contains("belongs to uid 65534"), "{err}");
        assert!(err.contains("admin-token"), "{err}");
    }
}
