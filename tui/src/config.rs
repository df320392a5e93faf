//! The user's config file, `$XDG_CONFIG_HOME/gantry/config.ron` (else
//! `~/.config/gantry/config.ron`; `GANTRY_CONFIG` names another): default run roots and
//! plugin folders, the poll interval, mouse capture, key bindings over the defaults, and
//! the theme. Every field is optional; a missing file is the defaults; a file that does
//! not parse is an error naming its line and column, before the terminal is touched.
//! Flags on the command line win over the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// The sample shipped with gantry (`gantry config --sample` prints it), every field
/// shown with its default.
pub const SAMPLE: &str = include_str!("../config.sample.ron");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: keys.{action}: {message}")]
    Key {
        path: PathBuf,
        action: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    /// Run roots the dashboard opens when no `--runs` is given: local paths, or remote
    /// ones (`gpu1:runs`, `ssh://user@gpu2:2222/data/runs`).
    pub runs: Vec<PathBuf>,
    /// The gantry to run on remote hosts (default `gantry`, found on the remote PATH).
    pub remote_gantry: Option<String>,
    /// Plugin folders searched before the built-in search path (after `--plugins`).
    pub plugins: Vec<PathBuf>,
    /// Poll the filesystem every this many seconds instead of inotify (NFS, sshfs).
    pub poll: Option<f64>,
    /// Mouse: wheel scrolling and click to select (off: the terminal's own selection).
    pub mouse: bool,
    /// Key bindings over the defaults: action name to key (`"quit": "Q"`).
    pub keys: BTreeMap<String, String>,
    pub theme: ThemeConfig,
}

impl Default for UserConfig {
    fn default() -> UserConfig {
        UserConfig {
            runs: Vec::new(),
            remote_gantry: None,
            plugins: Vec::new(),
            poll: None,
            mouse: true,
            keys: BTreeMap::new(),
            theme: ThemeConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThemeConfig {
    /// Colour at all: `Auto` follows `NO_COLOR`.
    pub color: Switch,
    /// 24-bit colour for sample images: `Auto` follows `COLORTERM`.
    pub truecolor: Switch,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Switch {
    #[default]
    Auto,
    On,
    Off,
}

impl Switch {
    /// This switch's answer, or `auto`'s when it is `Auto`.
    pub fn or(self, auto: bool) -> bool {
        match self {
            Switch::Auto => auto,
            Switch::On => true,
            Switch::Off => false,
        }
    }
}

/// Where the config file is looked for.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GANTRY_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("gantry").join("config.ron"))
}

/// The user's config: the file at [`path`], or the defaults when there is none.
pub fn load() -> Result<(UserConfig, Option<PathBuf>), ConfigError> {
    let Some(path) = path() else {
        return Ok((UserConfig::default(), None));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((parse(&path, &text)?, Some(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((UserConfig::default(), None)),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Parses a config file's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<UserConfig, ConfigError> {
    let config: UserConfig = ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .from_str(text)
        .map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })?;
    if let Some(poll) = config.poll
        && !(poll.is_finite() && poll > 0.0)
    {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            line: line_of(text, "poll"),
            column: 1,
            message: format!("poll: {poll} is not a positive number of seconds"),
        });
    }
    if let Err((action, message)) = crate::ui::keymap::Keymap::from_config(&config.keys) {
        return Err(ConfigError::Key {
            path: path.to_path_buf(),
            action,
            message,
        });
    }
    Ok(config)
}

/// The first line mentioning `field` (for errors found after parsing).
fn line_of(text: &str, field: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(field))
        .map_or(1, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped sample parses, and says what the defaults are.
    #[test]
    fn the_sample_parses_to_the_defaults() {
        let sample = parse(Path::new("config.sample.ron"), SAMPLE).unwrap();
        let defaults = UserConfig {
            runs: vec![PathBuf::from("runs")],
            ..UserConfig::default()
        };
        assert_eq!(sample, defaults);
        assert_eq!(
            parse(Path::new("c.ron"), "()").unwrap(),
            UserConfig::default()
        );
    }

    #[test]
    fn a_bad_file_names_its_line() {
        let text = "(\n    runs: [\"runs\"],\n    mouse: maybe,\n)\n";
        let err = parse(Path::new("/home/u/.config/gantry/config.ron"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/home/u/.config/gantry/config.ron:3:"),
            "{err}"
        );
        let err = parse(Path::new("c.ron"), "(colour: On)")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        let err = parse(Path::new("c.ron"), "(\n  poll: -1,\n)")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.ron:2:") && err.contains("poll"), "{err}");
        let err = parse(
            Path::new("c.ron"),
            "(keys: {\"quit\": \"ctrl-alt-nothing\"})",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("keys.quit"), "{err}");
        let err = parse(Path::new("c.ron"), "(keys: {\"fly\": \"f\"})")
            .unwrap_err()
            .to_string();
        assert!(err.contains("keys.fly") && err.contains("quit"), "{err}");
    }

    #[test]
    fn switches_follow_auto_unless_set() {
        assert!(Switch::Auto.or(true));
        assert!(!Switch::Auto.or(false));
        assert!(Switch::On.or(false));
        assert!(!Switch::Off.or(true));
    }
}
