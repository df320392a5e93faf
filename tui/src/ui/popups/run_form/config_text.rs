//! The form's fields as a run config in RON, and a parsed config back as field values.
//!
//! The form writes the config text itself, one field a line, and remembers which line
//! holds which field: every check then goes through the one real parser
//! ([`RunSpec::parse`]), and its `line:column` points at a form field as well as at a
//! line of the text `e` opens in `$EDITOR`. Fields the form does not show (augmentation,
//! splits, `on_nan`...) come from the base spec (the cloned run's, or the last editor
//! text) and are written only when they differ from their defaults, so the text stays
//! short and every field a future version adds passes through untouched.

use std::collections::BTreeMap;

use ron::ser::PrettyConfig;
use serde::Serialize;

use crate::runfs::spec::RunSpec;

/// Fields the form edits, by their path in the config.
pub const PLUGIN: &str = "plugin";
pub const KIND: &str = "data.kind";
pub const ROOT: &str = "data.root";
pub const SIZE: &str = "data.size";
pub const CHANNELS: &str = "data.channels";
pub const NORMAL_CLASS: &str = "data.normal_class";
pub const DEVICE: &str = "device";
pub const EPOCHS: &str = "train.epochs";
pub const BATCH_SIZE: &str = "train.batch_size";
pub const LR: &str = "train.lr";
pub const SEED: &str = "train.seed";
/// The run folder's name: a launch option, not part of the config.
pub const NAME: &str = "name";
/// Prefix of the plugin's hyper-parameters (`params.latent`).
pub const PARAMS: &str = "params.";

/// How a field's text goes into the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// As a RON string (quoted and escaped by the serializer).
    Quoted,
    /// Written as typed: numbers, enum variants.
    Verbatim,
    /// `(h, w)` from `h, w` or `hxw`.
    Pair,
}

/// The config text and the line (1-based) each field landed on.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigText {
    pub text: String,
    /// (field path, line), form fields and the hidden fields written from the base spec.
    pub lines: Vec<(String, usize)>,
}

impl ConfigText {
    /// The line of `path`, or of the nearest written parent (`data.augment` for
    /// `data.augment.shift`).
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some((_, line)) = self.lines.iter().find(|(p, _)| p == path) {
                return Some(*line);
            }
            path = &path[..path.rfind('.')?];
        }
    }

    /// The field written on `line`.
    pub fn field_at(&self, line: usize) -> Option<&str> {
        self.lines
            .iter()
            .find(|(_, l)| *l == line)
            .map(|(p, _)| p.as_str())
    }
}

/// One-line RON of a value: `[32, 64, 128]`, `Auto(val: 0.1, test: 0.2)`.
pub fn one_line<T: Serialize + ?Sized>(value: &T) -> String {
    let config = PrettyConfig::new()
        .compact_arrays(true)
        .compact_structs(true)
        .compact_maps(true)
        .new_line(" ")
        .indentor("");
    ron::ser::to_string_pretty(value, config).unwrap_or_else(|e| format!("<{e}>"))
}

/// Writes the config: `fields` are (path, text) pairs from the form, `base` supplies what
/// the form does not show.
pub fn write(base: &RunSpec, fields: &[(&str, &str)]) -> ConfigText {
    let mut out = Writer::default();
    let get = |path: &str| {
        fields
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    };
    let base_fields = split_struct(&one_line(base)).unwrap_or_default();
    let defaults = default_spec_fields();
    let hidden = |section: &str, fields: &[(String, String)], shown: &[&str]| -> Vec<_> {
        let defaults = lookup(&defaults, section);
        fields
            .iter()
            .filter(|(name, _)| !shown.contains(&name.as_str()))
            .filter(|(name, value)| {
                defaults
                    .as_ref()
                    .is_none_or(|d| d.iter().all(|(n, v)| n != name || v != value))
            })
            .cloned()
            .collect()
    };
    out.line("", "(");
    out.field(PLUGIN, 1, "plugin", get(PLUGIN), Form::Quoted);
    let params: Vec<(&str, &str)> = fields
        .iter()
        .filter_map(|(p, v)| Some((p.strip_prefix(PARAMS)?, v.trim())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if params.is_empty() {
        out.line("params", "    params: {},");
    } else {
        out.line("params", "    params: {");
        for (key, value) in params {
            let line = format!("        {}: {value},", one_line(key));
            out.line(&format!("{PARAMS}{key}"), &line);
        }
        out.line("", "    },");
    }
    out.line("data", "    data: (");
    out.field(KIND, 2, "kind", get(KIND), Form::Verbatim);
    out.field(ROOT, 2, "root", get(ROOT), Form::Quoted);
    out.field(SIZE, 2, "size", get(SIZE), Form::Pair);
    out.field(CHANNELS, 2, "channels", get(CHANNELS), Form::Verbatim);
    out.field(
        NORMAL_CLASS,
        2,
        "normal_class",
        get(NORMAL_CLASS),
        Form::Quoted,
    );
    let data = section_of(&base_fields, "data");
    let shown = ["kind", "root", "size", "channels", "normal_class"];
    for (name, value) in hidden("data", &data, &shown) {
        out.line(
            &format!("data.{name}"),
            &format!("        {name}: {value},"),
        );
    }
    out.line("", "    ),");
    out.line("train", "    train: (");
    out.field(EPOCHS, 2, "epochs", get(EPOCHS), Form::Verbatim);
    out.field(BATCH_SIZE, 2, "batch_size", get(BATCH_SIZE), Form::Verbatim);
    out.field(LR, 2, "lr", get(LR), Form::Verbatim);
    out.field(SEED, 2, "seed", get(SEED), Form::Verbatim);
    let train = section_of(&base_fields, "train");
    let shown = ["epochs", "batch_size", "lr", "seed"];
    for (name, value) in hidden("train", &train, &shown) {
        out.line(
            &format!("train.{name}"),
            &format!("        {name}: {value},"),
        );
    }
    out.line("", "    ),");
    out.field(DEVICE, 1, "device", get(DEVICE), Form::Quoted);
    let shown = ["plugin", "params", "data", "train", "device"];
    for (name, value) in hidden("", &base_fields, &shown) {
        out.line(&name, &format!("    {name}: {value},"));
    }
    out.line("", ")");
    out.done()
}

/// The form's values for a parsed config: (path, text) for every field but the name.
pub fn field_values(spec: &RunSpec) -> Vec<(String, String)> {
    let d = &spec.data;
    let t = &spec.train;
    let mut out = vec![
        (PLUGIN.to_string(), spec.plugin.clone()),
        (KIND.to_string(), one_line(&d.kind)),
        (ROOT.to_string(), d.root.to_string_lossy().into_owned()),
        (SIZE.to_string(), format!("{}, {}", d.size.0, d.size.1)),
        (CHANNELS.to_string(), d.channels.to_string()),
        (
            NORMAL_CLASS.to_string(),
            d.normal_class.clone().unwrap_or_default(),
        ),
        (DEVICE.to_string(), spec.device.clone()),
        (EPOCHS.to_string(), t.epochs.to_string()),
        (BATCH_SIZE.to_string(), t.batch_size.to_string()),
        (
            LR.to_string(),
            t.lr.map(|lr| one_line(&lr)).unwrap_or_default(),
        ),
        (SEED.to_string(), t.seed.to_string()),
    ];
    out.extend(
        spec.params
            .iter()
            .map(|(k, v)| (format!("{PARAMS}{k}"), one_line(v))),
    );
    out
}

/// A plugin's `default_params` (a RON map) as (key, one-line value), in key order.
pub fn param_defaults(text: &str) -> Result<Vec<(String, String)>, String> {
    let map: BTreeMap<String, ron::Value> = crate::runfs::ron_options()
        .from_str(text)
        .map_err(|e| format!("its default params do not parse: {e}"))?;
    Ok(map.iter().map(|(k, v)| (k.clone(), one_line(v))).collect())
}

/// Builds the text line by line, noting where each field went.
#[derive(Default)]
struct Writer {
    text: String,
    lines: Vec<(String, usize)>,
    count: usize,
}

impl Writer {
    fn line(&mut self, path: &str, line: &str) {
        self.count += 1;
        if !path.is_empty() {
            self.lines.push((path.to_string(), self.count));
        }
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// A form field; an empty optional one is left out (its default applies).
    fn field(&mut self, path: &str, depth: usize, name: &str, value: &str, form: Form) {
        let optional = [NORMAL_CLASS, LR].contains(&path);
        if value.is_empty() && optional {
            return;
        }
        let value = match form {
            Form::Quoted => one_line(value),
            Form::Verbatim => value.to_string(),
            Form::Pair => pair(value),
        };
        let indent = "    ".repeat(depth);
        self.line(path, &format!("{indent}{name}: {value},"));
    }

    fn done(self) -> ConfigText {
        ConfigText {
            text: self.text,
            lines: self.lines,
        }
    }
}

/// `64, 64`, `(64, 64)`, `64x64` and `64 64` all mean `(64, 64)`.
fn pair(value: &str) -> String {
    let inner = value
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or(value.trim());
    let parts: Vec<&str> = inner
        .split(|c: char| c == ',' || c == 'x' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        [h, w] => format!("({h}, {w})"),
        // Anything else is written as typed, for the parser to name.
        _ => format!("({inner})"),
    }
}

/// The fields of a section (`data`, `train`) of a split top-level struct.
fn section_of(fields: &[(String, String)], name: &str) -> Vec<(String, String)> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| split_struct(v))
        .unwrap_or_default()
}

/// Defaults of a section ("" for the top level): what serde fills in for a minimal config.
fn lookup(
    defaults: &Option<Vec<(String, String)>>,
    section: &str,
) -> Option<Vec<(String, String)>> {
    let top = defaults.as_ref()?;
    if section.is_empty() {
        Some(top.clone())
    } else {
        Some(section_of(top, section))
    }
}

/// The top-level fields of the smallest config that parses, with every serde default.
/// `None` if that stops parsing (a new required field): then nothing counts as default.
fn default_spec_fields() -> Option<Vec<(String, String)>> {
    let minimal = r#"(plugin: "", data: (kind: ImageFolder, root: "", size: (1, 1)),
                     train: (epochs: 1, batch_size: 1))"#;
    let spec: RunSpec = crate::runfs::ron_options().from_str(minimal).ok()?;
    split_struct(&one_line(&spec))
}

/// Splits one-line RON of a struct, `(a: 1, b: (c: "x, y"))`, into its top-level
/// `(name, value)` pairs; `None` if it is not a struct.
pub fn split_struct(text: &str) -> Option<Vec<(String, String)>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start = 0;
    let mut push = |piece: &str| -> Option<()> {
        let piece = piece.trim();
        if piece.is_empty() {
            return Some(());
        }
        let (name, value) = piece.split_once(':')?;
        out.push((name.trim().to_string(), value.trim().to_string()));
        Some(())
    };
    for (i, c) in inner.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                push(&inner[start..i])?;
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&inner[start..])?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::runfs::spec::{DataKind, DataSpec};

    fn base() -> RunSpec {
        crate::runfs::ron_options()
            .from_str(
                r#"(plugin: "conv-ae", data: (kind: Idx, root: "/d", size: (32, 32),
                    augment: (hflip: true)), train: (epochs: 2, batch_size: 8))"#,
            )
            .unwrap()
    }

    #[test]
    fn splits_structs_at_top_level_commas_only() {
        let fields = split_struct(r#"(a: 1, b: (c: "x, y\")", d: [1, 2]), e: 'x',)"#).unwrap();
        assert_eq!(
            fields,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), r#"(c: "x, y\")", d: [1, 2])"#.to_string()),
                ("e".to_string(), "'x'".to_string()),
            ]
        );
        assert_eq!(split_struct("[1]"), None);
    }

    #[test]
    fn form_fields_round_trip_through_the_text() {
        let mut spec = base();
        spec.params
            .insert("latent".into(), ron::Value::Number(16.into()));
        spec.train.lr = Some(0.0005);
        spec.data.normal_class = Some("normal".into());
        let values = field_values(&spec);
        let fields: Vec<(&str, &str)> = values
            .iter()
            .map(|(p, v)| (p.as_str(), v.as_str()))
            .collect();
        let text = write(&spec, &fields);
        let parsed = RunSpec::parse(Path::new("x.ron"), &text.text).unwrap();
        // Through text: ron::Value numbers come back as the smallest type that fits.
        assert_eq!(one_line(&parsed), one_line(&spec), "{}", text.text);
        // Hidden but non-default: kept; default: left out.
        assert!(text.text.contains("augment: (hflip: true"), "{}", text.text);
        assert!(!text.text.contains("val_fraction"), "{}", text.text);
        assert_eq!(text.field_at(text.line_of(EPOCHS).unwrap()), Some(EPOCHS));
        assert_eq!(
            text.line_of("data.augment.shift"),
            text.line_of("data.augment")
        );
        assert!(text.line_of("params.latent").is_some());
    }

    #[test]
    fn empty_optional_fields_are_left_out_and_sizes_are_forgiving() {
        let spec = RunSpec {
            data: DataSpec::new(DataKind::ImageFolder, "d".into(), (8, 8)),
            ..base()
        };
        let text = write(
            &spec,
            &[
                (PLUGIN, "vae"),
                (KIND, "ImageFolder"),
                (ROOT, "d"),
                (SIZE, "64x48"),
                (CHANNELS, "3"),
                (NORMAL_CLASS, ""),
                (DEVICE, "cpu"),
                (EPOCHS, "1"),
                (BATCH_SIZE, "4"),
                (LR, ""),
                (SEED, "7"),
                ("params.beta", "2.0"),
            ],
        );
        let parsed = RunSpec::parse(Path::new("x.ron"), &text.text).unwrap();
        assert_eq!(parsed.data.size, (64, 48));
        assert_eq!(parsed.train.lr, None);
        assert_eq!(parsed.data.normal_class, None);
        assert_eq!(one_line(&parsed.params["beta"]), "2.0");
    }

    #[test]
    fn reads_plugin_defaults() {
        let d = param_defaults("{\n \"latent\": 64,\n \"channels\": [32, 64],\n}").unwrap();
        assert_eq!(
            d,
            vec![
                ("channels".to_string(), "[32, 64]".to_string()),
                ("latent".to_string(), "64".to_string()),
            ]
        );
        assert!(param_defaults("{oops").is_err());
    }
}
