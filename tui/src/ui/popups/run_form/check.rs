//! Checking the form before anything is launched: the config text goes through the real
//! parser ([`RunSpec::parse`], which also validates), then the form checks what only it
//! knows: the plugin is one that described itself, every params key is one of its
//! defaults, the dataset folder exists, the run name is a valid folder name. Each error
//! names the field and, where it has one, the line of the config text.

use std::sync::LazyLock;

use regex::Regex;

use super::RunForm;
use super::config_text::{ConfigText, NAME, PARAMS, PLUGIN, ROOT};
use crate::control;
use crate::runfs::RunFsError;
use crate::runfs::names;
use crate::runfs::spec::RunSpec;
use crate::ui::actions::Action;

/// Why the form cannot launch yet.
#[derive(Debug, Clone, PartialEq)]
pub struct FormError {
    /// The form field (or config path) at fault.
    pub field: Option<String>,
    /// 1-based line and column in the config text.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl FormError {
    pub fn message(message: &str) -> FormError {
        FormError {
            field: None,
            line: None,
            column: None,
            message: message.to_string(),
        }
    }

    /// "line 9, column 17 · train.epochs: expected ..." (raw: escaped when drawn).
    pub fn summary(&self) -> String {
        let mut at = Vec::new();
        match (self.line, self.column) {
            (Some(l), Some(c)) => at.push(format!("line {l}, column {c}")),
            (Some(l), None) => at.push(format!("line {l}")),
            _ => {}
        }
        // A validation message that starts with the field names it already.
        if let Some(f) = self
            .field
            .as_ref()
            .filter(|f| !self.message.starts_with(*f))
        {
            at.push(f.clone());
        }
        if at.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", at.join(" · "), self.message)
        }
    }
}

/// Checks the form (or the editor text standing in for it) and makes the launch.
pub fn submit(form: &RunForm) -> Result<Action, FormError> {
    let written;
    let (text, lines) = match &form.raw {
        Some(raw) => (raw.as_str(), None),
        None => {
            written = form.config_text();
            (written.text.as_str(), Some(&written))
        }
    };
    let spec = check(form, text, lines)?;
    let here = |field: &str, message: String| FormError {
        field: Some(field.to_string()),
        line: lines.and_then(|l| l.line_of(field)),
        column: None,
        message,
    };
    if spec.data.root.as_os_str().is_empty() {
        return Err(here(ROOT, "give the dataset's folder".into()));
    }
    let root = control::absolutize(&form.config_path, &spec).data.root;
    if !root.exists() {
        return Err(here(ROOT, format!("{} does not exist", root.display())));
    }
    let name = form.value(NAME).trim();
    if !name.is_empty() {
        names::check_run_id(name).map_err(|e| here(NAME, e))?;
    }
    Ok(Action::Launch {
        config: form.config_path.clone(),
        spec: Box::new(spec),
        name: (!name.is_empty()).then(|| name.to_string()),
    })
}

/// Checks text from `$EDITOR` (no line map: lines are found in the text itself).
pub fn parse_text(form: &RunForm, text: &str) -> Result<RunSpec, FormError> {
    check(form, text, None)
}

/// Parses and validates `text`, then checks the plugin and its params.
fn check(form: &RunForm, text: &str, lines: Option<&ConfigText>) -> Result<RunSpec, FormError> {
    let locate = |path: &str, needle: &str| match lines {
        Some(l) => l.line_of(path),
        None => line_containing(text, needle),
    };
    let spec = RunSpec::parse(&form.config_path, text).map_err(|e| match e {
        RunFsError::Parse {
            line,
            column,
            message,
            ..
        } => FormError {
            field: lines.and_then(|l| l.field_at(line)).map(str::to_string),
            line: Some(line),
            column: Some(column),
            message,
        },
        RunFsError::Invalid { message, .. } => {
            let field = field_named_in(&message);
            FormError {
                line: field.as_deref().and_then(|f| {
                    let last = f.rsplit('.').next().unwrap_or(f);
                    locate(f, &format!("{last}:"))
                }),
                field,
                column: None,
                message,
            }
        }
        other => FormError::message(&other.to_string()),
    })?;
    let Some(plugin) = form.plugins.iter().find(|c| c.matches(&spec.plugin)) else {
        let message = if form.plugins_ready {
            format!(
                "{:?} is not a usable plugin on the search path (view 8 lists them, with \
                 the reasons of refused ones)",
                spec.plugin
            )
        } else {
            format!(
                "{:?} is not described yet: the plugins are still being looked at; try \
                 again in a moment",
                spec.plugin
            )
        };
        return Err(FormError {
            field: Some(PLUGIN.into()),
            line: locate(PLUGIN, "plugin:"),
            column: None,
            message,
        });
    };
    match &plugin.defaults {
        Some(Ok(defaults)) => {
            for key in spec.params.keys() {
                if !defaults.iter().any(|(k, _)| k == key) {
                    let known: Vec<&str> = defaults.iter().map(|(k, _)| k.as_str()).collect();
                    let path = format!("{PARAMS}{key}");
                    return Err(FormError {
                        line: locate(&path, &format!("{key:?}")),
                        field: Some(path),
                        column: None,
                        message: format!(
                            "not a parameter of {}; its parameters: {}",
                            plugin.name,
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        Some(Err(e)) => {
            return Err(FormError {
                field: Some(PLUGIN.into()),
                line: None,
                column: None,
                message: format!("{}: {e}", plugin.name),
            });
        }
        // Described by an older gantry: nothing to check the keys against.
        None => {}
    }
    Ok(spec)
}

/// The first config path a validation message names (`train.lr`, `data.augment.shift`).
fn field_named_in(message: &str) -> Option<String> {
    static FIELD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(?:data|train|params|device|plugin)(?:\.[A-Za-z0-9_]+)*\b")
            .expect("static regex")
    });
    FIELD.find(message).map(|m| m.as_str().to_string())
}

/// The 1-based number of the first line containing `needle`.
fn line_containing(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}
