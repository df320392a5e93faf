//! The new-run form (`n`, and `c` to start from a run's config): the plugin, the data,
//! the device, the schedule and the plugin's hyper-parameters, prefilled from the
//! plugin's own defaults. It only edits text and checks it; launching is an
//! [`Action`](crate::ui::actions::Action) the event loop performs.

mod check;
pub mod config_text;
mod keys;
pub mod line_edit;
mod render;

use std::path::{Path, PathBuf};

use config_text::{
    BATCH_SIZE, CHANNELS, DEVICE, EPOCHS, KIND, LR, NAME, NORMAL_CLASS, PARAMS, PLUGIN, ROOT, SEED,
    SIZE,
};
use line_edit::LineEdit;

pub use check::FormError;
pub use keys::FormOutcome;

use crate::plugins;
use crate::runfs::spec::RunSpec;
use crate::ui::plugin_catalog::PluginCatalog;

/// A plugin the form can pick.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginChoice {
    /// What the config's `plugin` field says: the name when the search path resolves it
    /// to this very file, else the file's path.
    pub spec_name: String,
    pub name: String,
    pub path: PathBuf,
    /// "0.1.0 · autoencoder"
    pub about: String,
    /// Its default params as (key, RON text); `None` when it reported none.
    pub defaults: Option<Result<Vec<(String, String)>, String>>,
}

impl PluginChoice {
    /// The usable plugins of a catalog.
    pub fn all(catalog: &PluginCatalog) -> Vec<PluginChoice> {
        catalog
            .usable()
            .map(|e| {
                let name = e.name.clone().unwrap_or_default();
                let by_name = plugins::resolve(&name, &catalog.dirs).ok();
                let spec_name = if !name.is_empty() && by_name.as_deref() == Some(e.path.as_path())
                {
                    name.clone()
                } else {
                    e.path.to_string_lossy().into_owned()
                };
                PluginChoice {
                    spec_name,
                    name,
                    path: e.path.clone(),
                    about: format!(
                        "{} · {}",
                        e.version.as_deref().unwrap_or("?"),
                        e.family.as_deref().unwrap_or("?")
                    ),
                    defaults: e.default_params.as_deref().map(config_text::param_defaults),
                }
            })
            .collect()
    }

    /// Whether a config's `plugin` field means this plugin.
    pub fn matches(&self, plugin: &str) -> bool {
        plugin == self.spec_name || plugin == self.name || Path::new(plugin) == self.path
    }

    fn default_params(&self) -> &[(String, String)] {
        match &self.defaults {
            Some(Ok(d)) => d,
            _ => &[],
        }
    }
}

/// One row of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its path in the config (`train.epochs`, `params.latent`), or `name`.
    pub path: String,
    pub value: String,
    /// The values `←` `→` cycle through; empty for a text field.
    pub choices: Vec<String>,
    /// A hyper-parameter's default, as RON text.
    pub default: Option<String>,
}

impl Field {
    fn text(path: &str, value: String) -> Field {
        Field {
            path: path.to_string(),
            value,
            choices: Vec::new(),
            default: None,
        }
    }

    fn choice(path: &str, value: String, choices: &[&str]) -> Field {
        let mut choices: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
        if !choices.contains(&value) {
            choices.push(value.clone());
        }
        Field {
            choices,
            ..Field::text(path, value)
        }
    }
}

/// A field being typed into.
#[derive(Debug, Clone, PartialEq)]
pub struct Editing {
    pub line: LineEdit,
    /// What `Esc` goes back to.
    pub original: String,
}

/// The open form.
#[derive(Debug, Clone, PartialEq)]
pub struct RunForm {
    /// "new run", or "clone RUN".
    pub title: String,
    /// Where the config counts as written: relative data paths resolve from its folder.
    pub config_path: PathBuf,
    /// What the form does not show comes from here.
    pub base: RunSpec,
    pub fields: Vec<Field>,
    pub focus: usize,
    pub editing: Option<Editing>,
    pub plugins: Vec<PluginChoice>,
    /// Whether every plugin has been described (else an unknown plugin may still come).
    pub plugins_ready: bool,
    /// Text back from `$EDITOR` that did not check out; it stands in for the fields until
    /// it does or is dropped with `Esc`.
    pub raw: Option<String>,
    pub error: Option<FormError>,
}

/// Choices of the fixed choice fields.
const KINDS: [&str; 4] = ["ImageFolder", "Csv", "Idx", "Dicom"];
const CHANNEL_CHOICES: [&str; 2] = ["1", "3"];
const DEVICES: [&str; 3] = ["auto", "cpu", "cuda"];

/// What a fresh form starts from (serde's defaults for everything it does not show).
fn starter_spec() -> RunSpec {
    let text = r#"(plugin: "", data: (kind: ImageFolder, root: "", size: (64, 64)),
                  train: (epochs: 5, batch_size: 32))"#;
    crate::runfs::ron_options()
        .from_str(text)
        .expect("the starter config parses")
}

impl RunForm {
    /// A fresh form: the first usable plugin with its defaults.
    pub fn fresh(config_path: PathBuf, catalog: &PluginCatalog) -> RunForm {
        let mut spec = starter_spec();
        let plugins = PluginChoice::all(catalog);
        if let Some(first) = plugins.first() {
            spec.plugin = first.spec_name.clone();
        }
        RunForm::from_spec("new run".into(), config_path, spec, catalog)
    }

    /// A form holding `spec` (a run's config to clone).
    pub fn from_spec(
        title: String,
        config_path: PathBuf,
        spec: RunSpec,
        catalog: &PluginCatalog,
    ) -> RunForm {
        let mut form = RunForm {
            title,
            config_path,
            base: spec.clone(),
            fields: Vec::new(),
            focus: 0,
            editing: None,
            plugins: PluginChoice::all(catalog),
            plugins_ready: catalog.scanned,
            raw: None,
            error: None,
        };
        form.fill(&spec, String::new());
        form
    }

    /// Sets every field from `spec`; params are the plugin's defaults with the spec's
    /// values over them.
    fn fill(&mut self, spec: &RunSpec, name: String) {
        let values = config_text::field_values(spec);
        let get = |path: &str| {
            values
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let plugin = self
            .plugins
            .iter()
            .find(|c| c.matches(&spec.plugin))
            .map_or(spec.plugin.clone(), |c| c.spec_name.clone());
        let plugin_names: Vec<&str> = self.plugins.iter().map(|c| c.spec_name.as_str()).collect();
        let mut fields = vec![
            Field::choice(PLUGIN, plugin, &plugin_names),
            Field::text(NAME, name),
            Field::choice(KIND, get(KIND), &KINDS),
            Field::text(ROOT, get(ROOT)),
            Field::text(SIZE, get(SIZE)),
            Field::choice(CHANNELS, get(CHANNELS), &CHANNEL_CHOICES),
            Field::text(NORMAL_CLASS, get(NORMAL_CLASS)),
            Field::choice(DEVICE, get(DEVICE), &DEVICES),
            Field::text(EPOCHS, get(EPOCHS)),
            Field::text(BATCH_SIZE, get(BATCH_SIZE)),
            Field::text(LR, get(LR)),
            Field::text(SEED, get(SEED)),
        ];
        // An empty plugin choice (none found yet) is no choice.
        fields[0].choices.retain(|c| !c.is_empty());
        let given: Vec<(String, String)> = values
            .into_iter()
            .filter(|(p, _)| p.starts_with(PARAMS))
            .collect();
        fields.extend(self.param_fields(&fields[0].value, &given));
        self.fields = fields;
        self.focus = self.focus.min(self.fields.len() - 1);
    }

    /// Param fields for `plugin`: its defaults, with `given` (path, value) over them;
    /// given keys it does not have are kept too, for the check to name.
    fn param_fields(&self, plugin: &str, given: &[(String, String)]) -> Vec<Field> {
        let defaults = self
            .plugins
            .iter()
            .find(|c| c.matches(plugin))
            .map(|c| c.default_params().to_vec())
            .unwrap_or_default();
        let mut out: Vec<Field> = defaults
            .iter()
            .map(|(key, default)| {
                let path = format!("{PARAMS}{key}");
                let value = given
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map_or(default.clone(), |(_, v)| v.clone());
                Field {
                    default: Some(default.clone()),
                    ..Field::text(&path, value)
                }
            })
            .collect();
        for (path, value) in given {
            if !out.iter().any(|f| &f.path == path) {
                out.push(Field::text(path, value.clone()));
            }
        }
        out
    }

    /// The plugin field changed: params become the new plugin's defaults, keeping the
    /// values the user changed.
    fn plugin_changed(&mut self) {
        let edited: Vec<(String, String)> = self
            .fields
            .iter()
            .filter(|f| f.path.starts_with(PARAMS))
            .filter(|f| f.default.as_ref() != Some(&f.value))
            .map(|f| (f.path.clone(), f.value.clone()))
            .collect();
        let plugin = self.value(PLUGIN).to_string();
        let params = self.param_fields(&plugin, &edited);
        self.fields.retain(|f| !f.path.starts_with(PARAMS));
        self.fields.extend(params);
        self.focus = self.focus.min(self.fields.len() - 1);
    }

    /// The plugin list changed while the form is open: new choices, and defaults for a
    /// plugin that was not described yet.
    pub fn sync_plugins(&mut self, catalog: &PluginCatalog) {
        let plugins = PluginChoice::all(catalog);
        self.plugins_ready = catalog.scanned;
        if plugins == self.plugins {
            return;
        }
        let before = self
            .plugin()
            .map(|c| (c.spec_name.clone(), c.defaults.clone()));
        self.plugins = plugins;
        let current = self.value(PLUGIN).to_string();
        let matched = self
            .plugins
            .iter()
            .find(|c| c.matches(&current))
            .map(|c| c.spec_name.clone());
        let value = match (matched, current.is_empty()) {
            (Some(name), _) => name,
            (None, true) => self
                .plugins
                .first()
                .map(|c| c.spec_name.clone())
                .unwrap_or_default(),
            (None, false) => current,
        };
        let mut choices: Vec<String> = self.plugins.iter().map(|c| c.spec_name.clone()).collect();
        if !value.is_empty() && !choices.contains(&value) {
            choices.push(value.clone());
        }
        if let Some(f) = self.fields.iter_mut().find(|f| f.path == PLUGIN) {
            f.value = value;
            f.choices = choices;
        }
        let after = self
            .plugin()
            .map(|c| (c.spec_name.clone(), c.defaults.clone()));
        // Only a change to the picked plugin touches the params; typing into one of them
        // ends, as its row may move or go.
        if before != after {
            if self.fields[self.focus].path.starts_with(PARAMS) {
                self.editing = None;
            }
            self.plugin_changed();
        }
    }

    /// The text of a field.
    pub fn value(&self, path: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.path == path)
            .map_or("", |f| f.value.as_str())
    }

    /// The plugin the form has picked, if it is a usable one.
    pub fn plugin(&self) -> Option<&PluginChoice> {
        let name = self.value(PLUGIN);
        self.plugins.iter().find(|c| c.matches(name))
    }

    /// The config the fields make, with the line of each field.
    pub fn config_text(&self) -> config_text::ConfigText {
        let pairs: Vec<(&str, &str)> = self
            .fields
            .iter()
            .filter(|f| f.path != NAME)
            .map(|f| (f.path.as_str(), f.value.as_str()))
            .collect();
        config_text::write(&self.base, &pairs)
    }

    /// Text back from `$EDITOR`: the fields when it checks out, else kept as is with the
    /// error, for `e` to open again.
    pub fn edited(&mut self, text: String) {
        self.editing = None;
        match check::parse_text(self, &text) {
            Ok(spec) => {
                let name = self.value(NAME).to_string();
                self.base = spec.clone();
                self.fill(&spec, name);
                self.raw = None;
                self.error = None;
            }
            Err(e) => {
                self.raw = Some(text);
                self.error = Some(e);
            }
        }
    }

    /// A launch that failed after the form checked out (a folder that cannot be made, a
    /// runner that does not start).
    pub fn show_launch_error(&mut self, message: &str) {
        self.error = Some(FormError::message(message));
    }
}
