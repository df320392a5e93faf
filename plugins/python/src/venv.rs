//! Which virtualenv the bridge uses (`GANTRY_PYTHON`, else `VIRTUAL_ENV`), and whether it
//! suits the embedded interpreter: its `pyvenv.cfg` must name the same major.minor, since
//! C extensions (numpy, torch) are built for one CPython ABI.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A virtualenv folder and the variable that named it (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenvChoice {
    pub dir: PathBuf,
    pub var: &'static str,
}

/// `GANTRY_PYTHON` wins over `VIRTUAL_ENV`; an empty value counts as unset.
pub fn choose(
    gantry_python: Option<OsString>,
    virtual_env: Option<OsString>,
) -> Option<VenvChoice> {
    let pick = |v: Option<OsString>, var| {
        v.filter(|v| !v.is_empty()).map(|v| VenvChoice {
            dir: PathBuf::from(v),
            var,
        })
    };
    pick(gantry_python, "GANTRY_PYTHON").or_else(|| pick(virtual_env, "VIRTUAL_ENV"))
}

/// What the bridge reads from `pyvenv.cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyvenvCfg {
    /// `(major, minor)` from `version_info` (uv, virtualenv) or `version` (venv).
    pub version: Option<(u32, u32)>,
    /// `include-system-site-packages`; venv's default is false.
    pub include_system_site_packages: bool,
}

/// Parses `key = value` lines; unknown keys and malformed lines are ignored.
pub fn parse_pyvenv_cfg(text: &str) -> PyvenvCfg {
    let mut version_info = None;
    let mut version = None;
    let mut include = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        match key.as_str() {
            "version_info" => version_info = parse_version(value),
            "version" => version = parse_version(value),
            "include-system-site-packages" => include = value.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    PyvenvCfg {
        version: version_info.or(version),
        include_system_site_packages: include,
    }
}

/// `(major, minor)` of `3.11.2`, `3.12.1.final.0` or `3.11`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts.next()?.trim().parse().ok()?;
    Some((major, minor))
}

/// A checked virtualenv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    pub dir: PathBuf,
    /// `lib/pythonX.Y/site-packages`, for `site.addsitedir`.
    pub site_packages: PathBuf,
    /// Whether the interpreter's own site-packages stay on `sys.path`.
    pub include_system: bool,
}

/// Checks a chosen folder against the embedded interpreter's `(major, minor)`.
///
/// A folder without `pyvenv.cfg` (a conda environment, a plain prefix) is accepted when it
/// has `lib/pythonX.Y/site-packages` for the embedded version; the interpreter's own
/// site-packages then stay on the path.
pub fn resolve(choice: &VenvChoice, embedded: (u32, u32)) -> Result<Venv, String> {
    let dir = &choice.dir;
    if !dir.is_dir() {
        return Err(format!(
            "no virtualenv at {} ({})",
            dir.display(),
            choice.var
        ));
    }
    let cfg = match std::fs::read_to_string(dir.join("pyvenv.cfg")) {
        Ok(text) => Some(parse_pyvenv_cfg(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(format!(
                "venv {}: cannot read pyvenv.cfg: {e} ({})",
                dir.display(),
                choice.var
            ));
        }
    };
    if let Some((major, minor)) = cfg.as_ref().and_then(|c| c.version)
        && (major, minor) != embedded
    {
        return Err(format!(
            "venv {} was made with Python {major}.{minor}, this gantry embeds {}.{} ({}); \
             make one with python{}.{} -m venv",
            dir.display(),
            embedded.0,
            embedded.1,
            choice.var,
            embedded.0,
            embedded.1
        ));
    }
    let site_packages = site_packages(dir, embedded);
    if !site_packages.is_dir() {
        return Err(format!(
            "venv {} has no lib/python{}.{}/site-packages ({}), so it is not an \
             environment for this gantry's Python {}.{}",
            dir.display(),
            embedded.0,
            embedded.1,
            choice.var,
            embedded.0,
            embedded.1
        ));
    }
    Ok(Venv {
        dir: dir.clone(),
        site_packages,
        include_system: cfg.is_none_or(|c| c.include_system_site_packages),
    })
}

fn site_packages(dir: &Path, (major, minor): (u32, u32)) -> PathBuf {
    dir.join("lib")
        .join(format!("python{major}.{minor}"))
        .join("site-packages")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gantry_python_wins_and_empty_values_are_unset() {
        let c = choose(Some("/a".into()), Some("/b".into())).unwrap();
        assert_eq!((c.dir, c.var), (PathBuf::from("/a"), "GANTRY_PYTHON"));
        let c = choose(Some("".into()), Some("/b".into())).unwrap();
        assert_eq!((c.dir, c.var), (PathBuf::from("/b"), "VIRTUAL_ENV"));
        assert_eq!(choose(None, Some("".into())), None);
    }

    #[test]
    fn pyvenv_cfg_of_venv_uv_and_virtualenv() {
        let venv = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n\
                    executable = /usr/bin/python3.11\n";
        assert_eq!(
            parse_pyvenv_cfg(venv),
            PyvenvCfg {
                version: Some((3, 11)),
                include_system_site_packages: false
            }
        );
        let uv = "home = /opt/py\nimplementation = CPython\nuv = 0.5.0\n\
                  version_info = 3.12.7\ninclude-system-site-packages = True\n";
        let cfg = parse_pyvenv_cfg(uv);
        assert_eq!(cfg.version, Some((3, 12)));
        assert!(cfg.include_system_site_packages);
        let virtualenv = "version_info = 3.10.4.final.0\nversion = 3.99\nvirtualenv = 20.1\n";
        assert_eq!(parse_pyvenv_cfg(virtualenv).version, Some((3, 10)));
        assert_eq!(parse_pyvenv_cfg("garbage\n= x\n").version, None);
        assert_eq!(parse_version(" 3 . 9 "), Some((3, 9)));
        assert_eq!(parse_version("three"), None);
    }

    fn choice(dir: &Path) -> VenvChoice {
        VenvChoice {
            dir: dir.to_path_buf(),
            var: "GANTRY_PYTHON",
        }
    }

    #[test]
    fn missing_folder_other_version_and_a_good_venv() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = resolve(&choice(&missing), (3, 11)).unwrap_err();
        assert_eq!(
            err,
            format!("no virtualenv at {} (GANTRY_PYTHON)", missing.display())
        );

        let dir = tmp.path().join("v");
        std::fs::create_dir_all(dir.join("lib/python3.11/site-packages")).unwrap();
        std::fs::write(dir.join("pyvenv.cfg"), "version = 3.12.1\n").unwrap();
        let err = resolve(&choice(&dir), (3, 11)).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "venv {} was made with Python 3.12, this gantry embeds 3.11",
                dir.display()
            )),
            "{err}"
        );

        std::fs::write(dir.join("pyvenv.cfg"), "version = 3.11.7\n").unwrap();
        let venv = resolve(&choice(&dir), (3, 11)).unwrap();
        assert_eq!(venv.site_packages, dir.join("lib/python3.11/site-packages"));
        assert!(!venv.include_system);

        // No pyvenv.cfg (a conda env): accepted by its site-packages, system kept.
        std::fs::remove_file(dir.join("pyvenv.cfg")).unwrap();
        assert!(resolve(&choice(&dir), (3, 11)).unwrap().include_system);
        let err = resolve(&choice(&dir), (3, 13)).unwrap_err();
        assert!(err.contains("has no lib/python3.13/site-packages"), "{err}");
    }
}
