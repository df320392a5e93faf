//! Run ids and where a run's files may land. A run id becomes a folder name under a run
//! root, and ids come from users, configs and plugin names, so an id must never climb out
//! of the root (`..`, `/`), hide itself (a leading dot, which listings skip as a
//! temporary) or carry terminal escapes. And a run folder someone else can write to may
//! hold symlinks: the runner must not follow one that points outside the root, or a
//! hostile link turns "append a line to scalars.csv" into a write anywhere it may write.
//!
//! This module only judges names and paths; it creates, removes and opens nothing.

use std::path::{Component, Path, PathBuf};

use crate::text::escape_controls;

/// Longest run id, in bytes: room for a plugin name, a dataset and a timestamp, well
/// under the 255-byte file-name limit of common file systems.
pub const MAX_RUN_ID: usize = 96;

/// What the runner writes inside a run folder, relative to it, parents before children so
/// that a symlinked parent is reported rather than each file under it.
pub const WRITTEN_ENTRIES: [&str; 12] = [
    super::STATUS_FILE,
    super::RUN_FILE,
    super::SCALARS_FILE,
    super::SYSTEM_FILE,
    super::LOG_FILE,
    "checkpoints",
    "scores",
    "samples",
    "confusion",
    "embeddings",
    "checkpoints/last",
    "checkpoints/best",
];

/// How many symlinks [`check_no_symlink_escape`] follows in a row before giving up, as
/// the kernel's own limit (ELOOP) does.
const MAX_LINK_HOPS: u32 = 40;

/// Checks that `id` can be a run folder's name: non-empty, at most [`MAX_RUN_ID`] bytes,
/// no path separator, NUL or control character, no `..` and no leading dot.
pub fn check_run_id(id: &str) -> Result<(), String> {
    let quoted = || format!("\"{}\"", escape_controls(id));
    let problem = if id.is_empty() {
        "is empty".to_string()
    } else if id.len() > MAX_RUN_ID {
        format!("is {} bytes long, over the limit of {MAX_RUN_ID}", id.len())
    } else if id.contains(['/', '\\']) {
        "contains a path separator (`/` or `\\`)".to_string()
    } else if id.contains('\0') {
        "contains a NUL byte".to_string()
    } else if id == "." || id == ".." || id.contains("..") {
        "contains `..`".to_string()
    } else if id.starts_with('.') {
        // Listings skip dot-names as temporaries: such a run would exist but never show.
        "starts with a dot".to_string()
    } else if id.chars().any(char::is_control) {
        "contains a control character".to_string()
    } else {
        return Ok(());
    };
    Err(format!("run id {} {problem}", quoted()))
}

/// Turns untrusted text (a plugin's name, a user's label) into a valid run id: ASCII
/// letters, digits and `-_.+` are kept, everything else becomes `_`, runs of dots become
/// one, leading dots go, and the result is cut to [`MAX_RUN_ID`]. Never empty: text with
/// nothing usable gives `run`.
pub fn sanitize_run_id(raw: &str) -> String {
    let mut id = String::with_capacity(raw.len().min(MAX_RUN_ID));
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+') {
            c
        } else {
            '_'
        };
        let leading_or_double_dot = c == '.' && (id.is_empty() || id.ends_with('.'));
        if leading_or_double_dot {
            continue;
        }
        id.push(c);
        if id.len() >= MAX_RUN_ID {
            // Every kept char is ASCII, so the cut falls on a char boundary.
            break;
        }
    }
    if id.is_empty() { "run".to_string() } else { id }
}

/// Whether `path` lies under `root` once both are resolved (symlinks followed, `..`
/// removed). `path` need not exist: a missing path is judged by where creating it would
/// land (its parent resolved, and a dangling symlink followed to its target).
pub fn is_within(root: &Path, path: &Path) -> std::io::Result<bool> {
    let root = std::fs::canonicalize(root)?;
    Ok(resolve(path, MAX_LINK_HOPS)?.starts_with(root))
}

/// Checks that neither `run_dir` nor any entry the runner writes in it
/// ([`WRITTEN_ENTRIES`]) resolves outside `root`. A missing entry is fine (it will be
/// created inside), and so is a symlink that stays inside the root; a symlink out of it
/// is refused, naming the link and where it points.
pub fn check_no_symlink_escape(root: &Path, run_dir: &Path) -> Result<(), String> {
    let show = |p: &Path| escape_controls(&p.display().to_string());
    let root_real = std::fs::canonicalize(root)
        .map_err(|e| format!("run root {}: cannot resolve it: {e}", show(root)))?;
    let paths = std::iter::once(run_dir.to_path_buf())
        .chain(WRITTEN_ENTRIES.iter().map(|e| run_dir.join(e)));
    for path in paths {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", show(&path))),
        };
        let real = resolve(&path, MAX_LINK_HOPS).map_err(|e| {
            format!(
                "{}: cannot tell where it leads ({e}); refusing to write through it",
                show(&path)
            )
        })?;
        if real.starts_with(&root_real) {
            continue;
        }
        let how = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap_or_else(|_| real.clone());
            format!(
                "is a symlink to {} (resolving to {})",
                show(&target),
                show(&real)
            )
        } else {
            // Not a link itself: a parent was (the run folder given by a symlinked path).
            format!("resolves to {}", show(&real))
        };
        return Err(format!(
            "{} {how}, outside the run root {}; refusing to write through it",
            show(&path),
            show(&root_real)
        ));
    }
    Ok(())
}

/// Where `path` leads, symlinks followed. Unlike `canonicalize` it accepts a missing last
/// component, and follows a dangling symlink to the file that writing through it would
/// create: those are exactly the cases a check before writing must judge.
fn resolve(path: &Path, hops: u32) -> std::io::Result<PathBuf> {
    let missing = match std::fs::canonicalize(path) {
        Ok(real) => return Ok(real),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => e,
        Err(e) => return Err(e),
    };
    let parent = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Err(missing),
    };
    if hops == 0 {
        return Err(std::io::Error::other("too many levels of symbolic links"));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            // A dangling link: an open with O_CREAT would create its target.
            let target = std::fs::read_link(path)?;
            resolve(&parent.join(target), hops - 1)
        }
        Ok(_) => Err(missing), // it appeared meanwhile, or a parent is not a folder
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Only a plain name can be created; `x/..` or `/` cannot, so those stay errors.
            match path.components().next_back() {
                Some(Component::Normal(name)) => Ok(resolve(parent, hops - 1)?.join(name)),
                _ => Err(missing),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn good_ids_pass() {
        for id in [
            "conv-ae-20250101-120000",
            "a",
            "v1.2+cuda",
            "x_y",
            &"a".repeat(96),
        ] {
            assert_eq!(check_run_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn bad_ids_say_what_is_wrong() {
        for (id, why) in [
            ("", "is empty"),
            ("../etc", "path separator"),
            ("a/b", "path separator"),
            ("a\\b", "path separator"),
            ("a\0b", "NUL"),
            (".", "`..`"),
            ("..", "`..`"),
            ("a..b", "`..`"),
            (".hidden", "starts with a dot"),
            ("red\u{1b}[31m", "control character"),
            ("bell\u{7}", "control character"),
            ("next\u{85}line", "control character"),
        ] {
            let err = check_run_id(id).unwrap_err();
            assert!(err.contains(why), "{id:?}: {err}");
            assert!(!err.contains('\u{1b}') && !err.contains('\0'), "{err:?}");
        }
        let long = "x".repeat(97);
        assert!(check_run_id(&long).unwrap_err().contains("97 bytes"));
        // The escaped name is quoted, so a reader sees what was refused.
        assert!(
            check_run_id("a\u{1b}b")
                .unwrap_err()
                .contains("\"a\\u{1b}b\"")
        );
    }

    #[test]
    fn sanitize_examples() {
        assert_eq!(sanitize_run_id("conv-ae"), "conv-ae");
        assert_eq!(sanitize_run_id("../../etc/passwd"), "_._etc_passwd");
        assert_eq!(sanitize_run_id("...x"), "x");
        assert_eq!(sanitize_run_id("a..b"), "a.b");
        assert_eq!(sanitize_run_id(""), "run");
        assert_eq!(sanitize_run_id("..."), "run");
        assert_eq!(sanitize_run_id("évil\u{1b}[31m"), "_vil__31m");
        assert_eq!(sanitize_run_id(&"é".repeat(200)).len(), MAX_RUN_ID);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        #[test]
        fn sanitized_ids_always_check(raw in any::<String>()) {
            let id = sanitize_run_id(&raw);
            prop_assert_eq!(check_run_id(&id), Ok(()), "{:?} -> {:?}", raw, id);
        }

        #[test]
        fn sanitized_ids_of_dotty_paths_check(raw in "[./\\\\a\u{1b}\0é]{0,200}") {
            let id = sanitize_run_id(&raw);
            prop_assert_eq!(check_run_id(&id), Ok(()), "{:?} -> {:?}", raw, id);
        }

        #[test]
        fn valid_ids_are_kept(id in "[a-zA-Z0-9_+-][a-zA-Z0-9_+-]{0,40}") {
            prop_assert_eq!(sanitize_run_id(&id), id);
        }
    }

    /// A run root with one run folder, and a folder outside the root.
    fn layout() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("runs");
        let run = root.join("r1");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(run.join("checkpoints")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        (tmp, root, run, outside)
    }

    #[test]
    fn plain_and_missing_entries_pass() {
        let (_tmp, root, run, _) = layout();
        std::fs::write(run.join("scalars.csv"), "x\n").unwrap();
        assert_eq!(check_no_symlink_escape(&root, &run), Ok(()));
        assert!(is_within(&root, &run.join("status.ron")).unwrap());
        assert!(is_within(&root, &run.join("not/yet/made")).unwrap());
    }

    #[test]
    fn symlinks_inside_the_root_pass() {
        let (_tmp, root, run, _) = layout();
        std::fs::create_dir_all(root.join("shared-ckpt")).unwrap();
        symlink(root.join("shared-ckpt"), run.join("checkpoints/best")).unwrap();
        symlink("../r1-log", run.join("train.log")).unwrap(); // dangling, but inside
        assert_eq!(check_no_symlink_escape(&root, &run), Ok(()));
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        for entry in ["status.ron", "scalars.csv", "samples", "checkpoints/last"] {
            let (_tmp, root, run, outside) = layout();
            let target = outside.join("victim");
            std::fs::write(&target, "precious\n").unwrap();
            symlink(&target, run.join(entry)).unwrap();
            let err = check_no_symlink_escape(&root, &run).unwrap_err();
            assert!(err.contains(entry), "{entry}: {err}");
            assert!(err.contains("outside/victim"), "{entry}: {err}");
            assert!(!is_within(&root, &run.join(entry)).unwrap());
        }
    }

    #[test]
    fn a_dangling_link_out_of_the_root_is_refused() {
        // Appending to scalars.csv through it would create the target.
        let (_tmp, root, run, outside) = layout();
        symlink(outside.join("created-by-us"), run.join("scalars.csv")).unwrap();
        let err = check_no_symlink_escape(&root, &run).unwrap_err();
        assert!(
            err.contains("scalars.csv") && err.contains("created-by-us"),
            "{err}"
        );
        // A chain of links ending outside, through a relative hop.
        let (_tmp, root, run, outside) = layout();
        symlink(&outside, root.join("hop")).unwrap();
        symlink("../hop/new.log", run.join("train.log")).unwrap();
        let err = check_no_symlink_escape(&root, &run).unwrap_err();
        assert!(
            err.contains("train.log") && err.contains("new.log"),
            "{err}"
        );
    }

    #[test]
    fn symlinked_parents_are_named() {
        let (_tmp, root, run, outside) = layout();
        std::fs::remove_dir(run.join("checkpoints")).unwrap();
        symlink(&outside, run.join("checkpoints")).unwrap();
        let err = check_no_symlink_escape(&root, &run).unwrap_err();
        assert!(err.contains("r1/checkpoints is a symlink"), "{err}");
        // The run folder itself linked out of the root.
        let (_tmp, root, _, outside) = layout();
        let linked = root.join("r2");
        symlink(&outside, &linked).unwrap();
        let err = check_no_symlink_escape(&root, &linked).unwrap_err();
        assert!(err.contains("r2 is a symlink"), "{err}");
    }

    #[test]
    fn link_loops_are_refused_not_followed_forever() {
        let (_tmp, root, run, _) = layout();
        symlink("status.ron", run.join("status.ron")).unwrap();
        let err = check_no_symlink_escape(&root, &run).unwrap_err();
        assert!(err.contains("status.ron"), "{err}");
    }
}
