//! Whether a plugin file may be loaded, judged by who could have written it. Loading a
//! `.so` runs its code with our rights, so a file (or a folder holding it) that another
//! user can write is refused, as ssh refuses a key file with loose permissions.
//! `--allow-insecure-plugins` (or `GANTRY_ALLOW_INSECURE_PLUGINS=1`) overrides.
//!
//! Only mode bits and owners are read; this module loads, opens and changes nothing.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::text::escape_controls;

/// The environment variable that, set to `1`, has the same effect as
/// `--allow-insecure-plugins`.
pub const ALLOW_ENV: &str = "GANTRY_ALLOW_INSECURE_PLUGINS";

/// Refuses a plugin file that another user could have written or replaced: the file, or
/// the folder holding it, is world-writable, group-writable by a group other than ours,
/// or owned by someone other than us or root. A symlinked plugin is judged by its target
/// and by both the target's folder and the link's (either swap would change the code).
/// The reason says how to fix it.
pub fn check(path: &Path) -> Result<(), String> {
    let show = |p: &Path| escape_controls(&p.display().to_string());
    let real = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", show(path)))?;
    let mut judged: Vec<PathBuf> = vec![real.clone()];
    if let Some(dir) = real.parent() {
        judged.push(dir.to_path_buf());
    }
    let given_dir = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("/"),
    };
    if let Ok(dir) = std::fs::canonicalize(given_dir)
        && !judged.contains(&dir)
    {
        judged.push(dir);
    }
    let me = Owner {
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    };
    for p in &judged {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", show(p)))?;
        judge(&show(p), meta.mode(), meta.uid(), meta.gid(), me)?;
    }
    Ok(())
}

/// Whether `GANTRY_ALLOW_INSECURE_PLUGINS=1` is set.
pub fn allowed_by_env() -> bool {
    env_value_allows(std::env::var_os(ALLOW_ENV).as_deref())
}

/// Only exactly `1` allows: a stray `0` or empty value must not open the door.
fn env_value_allows(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| v == "1")
}

/// The effective user and group of this process.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// The rules, on one path's mode and owner (`shown` is the path as the message prints it).
fn judge(shown: &str, mode: u32, uid: u32, gid: u32, me: Owner) -> Result<(), String> {
    const OVERRIDE: &str = "or pass --allow-insecure-plugins";
    let bits = mode & 0o7777;
    if mode & 0o002 != 0 {
        return Err(format!(
            "{shown}: writable by other users (mode {bits:04o}); fix with \
             `chmod go-w {shown}`, {OVERRIDE}"
        ));
    }
    if mode & 0o020 != 0 && gid != me.gid {
        return Err(format!(
            "{shown}: writable by group {gid}, which is not ours ({}) (mode {bits:04o}); \
             fix with `chmod g-w {shown}`, {OVERRIDE}",
            me.gid
        ));
    }
    if uid != me.uid && uid != 0 {
        return Err(format!(
            "{shown}: owned by user {uid}, neither us ({}) nor root; fix with \
             `chown {} {shown}` (or copy it to a folder of ours), {OVERRIDE}",
            me.uid, me.uid
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A plugin file with `mode` in a private folder.
    fn plugin(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let path = dir.path().join("libx.so");
        std::fs::write(&path, b"\x7fELF").unwrap();
        chmod(&path, mode);
        (dir, path)
    }

    #[test]
    fn private_files_are_accepted() {
        for mode in [0o644, 0o755, 0o600, 0o444] {
            let (_dir, path) = plugin(mode);
            assert_eq!(check(&path), Ok(()), "{mode:o}");
        }
    }

    #[test]
    fn world_writable_files_are_refused_with_a_fix() {
        let (_dir, path) = plugin(0o666);
        let err = check(&path).unwrap_err();
        assert!(
            err.contains("libx.so: writable by other users (mode 0666)"),
            "{err}"
        );
        assert!(err.contains("chmod go-w") && err.contains("--allow-insecure-plugins"));
    }

    #[test]
    fn a_world_writable_folder_refuses_its_files() {
        let (dir, path) = plugin(0o644);
        chmod(dir.path(), 0o777);
        let err = check(&path).unwrap_err();
        let shown = std::fs::canonicalize(dir.path()).unwrap();
        assert!(
            err.starts_with(&format!(
                "{}: writable by other users (mode 0777)",
                shown.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_link_is_judged_by_both_folders() {
        // The link's folder is loose: whoever can write it can point the link elsewhere.
        let (_dir, path) = plugin(0o644);
        let loose = tempfile::tempdir().unwrap();
        chmod(loose.path(), 0o777);
        let link = loose.path().join("libx.so");
        symlink(&path, &link).unwrap();
        assert!(check(&link).unwrap_err().contains("mode 0777"));
        // The target is loose behind a tidy link.
        let (_dir, path) = plugin(0o666);
        let tidy = tempfile::tempdir().unwrap();
        let link = tidy.path().join("libx.so");
        symlink(&path, &link).unwrap();
        assert!(check(&link).unwrap_err().contains("mode 0666"));
    }

    #[test]
    fn missing_files_are_errors_naming_them() {
        let err = check(Path::new("/no/such/libplugin.so")).unwrap_err();
        assert!(err.contains("/no/such/libplugin.so"), "{err}");
    }

    #[test]
    fn group_and_owner_rules() {
        // On synthetic owners: changing real ones needs privileges tests must not assume.
        let me = Owner {
            uid: 1000,
            gid: 100,
        };
        assert_eq!(judge("f", 0o100664, 1000, 100, me), Ok(()));
        let err = judge("f", 0o100664, 1000, 200, me).unwrap_err();
        assert!(
            err.contains("group 200") && err.contains("chmod g-w f"),
            "{err}"
        );
        assert_eq!(judge("f", 0o100644, 0, 0, me), Ok(()));
        let err = judge("f", 0o100644, 1001, 100, me).unwrap_err();
        assert!(err.contains("owned by user 1001"), "{err}");
        // Sticky or not, a world-writable folder is refused, as ssh does.
        assert!(judge("d", 0o41777, 0, 0, me).is_err());
    }

    #[test]
    fn only_exactly_one_allows() {
        use std::ffi::OsStr;
        assert!(env_value_allows(Some(OsStr::new("1"))));
        for v in ["0", "", "yes", "true"] {
            assert!(!env_value_allows(Some(OsStr::new(v))), "{v}");
        }
        assert!(!env_value_allows(None));
    }
}
