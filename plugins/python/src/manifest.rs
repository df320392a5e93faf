//! A script's `GANTRY_PLUGIN` dict, read into the [`Description`] `describe` reports and
//! the default params `create` merges the run's over.

use gantry_plugin_api::{Description, InputConstraints};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::values;

/// The keys `GANTRY_PLUGIN` may have.
pub const KEYS: &[&str] = &[
    "name", "family", "families", "version", "params", "losses", "metrics", "scores", "input",
    "summary",
];

const INPUT_KEYS: &[&str] = &["channels", "multiple_of", "min_size"];

/// Reads the manifest; `file_name` goes into the default summary. Errors name the key.
pub fn read<'py>(
    manifest: &Bound<'py, PyDict>,
    file_name: &str,
) -> Result<(Description, Bound<'py, PyDict>), String> {
    let py = manifest.py();
    for (key, _) in manifest.iter() {
        let key = key.to_string();
        if !KEYS.contains(&key.as_str()) {
            return Err(format!(
                "GANTRY_PLUGIN has an unknown key {key:?}; the keys are {}",
                KEYS.join(", ")
            ));
        }
    }
    let name = string(manifest, "name")?
        .ok_or("GANTRY_PLUGIN has no \"name\" (e.g. \"name\": \"tiny-ae\")")?;
    if name.trim().is_empty() {
        return Err("GANTRY_PLUGIN[\"name\"] is empty".into());
    }
    let families = match (string(manifest, "family")?, strings(manifest, "families")?) {
        (Some(family), None) => vec![family],
        (None, Some(families)) if !families.is_empty() => families,
        (Some(_), Some(_)) => {
            return Err("GANTRY_PLUGIN has both \"family\" and \"families\"; keep one".into());
        }
        _ => {
            return Err(
                "GANTRY_PLUGIN has no \"family\" (e.g. \"family\": \"autoencoder\")".into(),
            );
        }
    };
    let version = string(manifest, "version")?;
    let defaults = match manifest.get_item("params").map_err(|e| e.to_string())? {
        None => PyDict::new(py),
        Some(p) if p.is_none() => PyDict::new(py),
        Some(p) => p
            .cast_into::<PyDict>()
            .map_err(|_| "GANTRY_PLUGIN[\"params\"] is not a dict".to_string())?,
    };
    let default_params = values::defaults_text(&defaults)?;
    let input = match manifest.get_item("input").map_err(|e| e.to_string())? {
        None => InputConstraints {
            channels: vec![1, 3],
            multiple_of: 1,
            min_size: 1,
        },
        Some(input) => {
            let input = input
                .cast_into::<PyDict>()
                .map_err(|_| "GANTRY_PLUGIN[\"input\"] is not a dict".to_string())?;
            read_input(&input)?
        }
    };
    let summary = string(manifest, "summary")?
        .unwrap_or_else(|| format!("Python model {name} ({file_name})"));
    let description = Description {
        summary,
        families,
        default_params,
        losses: strings(manifest, "losses")?.unwrap_or_else(|| vec!["loss".into()]),
        metrics: strings(manifest, "metrics")?.unwrap_or_default(),
        scores: strings(manifest, "scores")?.unwrap_or_default(),
        input,
        name: Some(name),
        version,
    };
    Ok((description, defaults))
}

fn read_input(input: &Bound<'_, PyDict>) -> Result<InputConstraints, String> {
    for (key, _) in input.iter() {
        let key = key.to_string();
        if !INPUT_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "GANTRY_PLUGIN[\"input\"] has an unknown key {key:?}; the keys are {}",
                INPUT_KEYS.join(", ")
            ));
        }
    }
    let at = |key: &str| format!("GANTRY_PLUGIN[\"input\"][{key:?}]");
    let positive = |key: &str, default: u32| -> Result<u32, String> {
        match input.get_item(key).map_err(|e| e.to_string())? {
            None => Ok(default),
            Some(v) => match v.extract::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{} must be a positive integer, not {v}", at(key))),
            },
        }
    };
    let channels = match input.get_item("channels").map_err(|e| e.to_string())? {
        None => vec![1, 3],
        Some(v) => match v.extract::<Vec<u32>>() {
            Ok(c) if !c.is_empty() && c.iter().all(|&c| c == 1 || c == 3) => c,
            _ => {
                return Err(format!(
                    "{} must be a list of 1 and/or 3, not {v}",
                    at("channels")
                ));
            }
        },
    };
    Ok(InputConstraints {
        channels,
        multiple_of: positive("multiple_of", 1)?,
        min_size: positive("min_size", 1)?,
    })
}

/// A string entry, `None` when absent.
fn string(manifest: &Bound<'_, PyDict>, key: &str) -> Result<Option<String>, String> {
    match manifest.get_item(key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(v) => match v.cast::<PyString>() {
            Ok(s) => Ok(Some(s.to_string())),
            Err(_) => Err(format!("GANTRY_PLUGIN[{key:?}] must be a string, not {v}")),
        },
    }
}

/// A list of strings, `None` when absent (a lone string is refused: `"loss"` is not
/// `["loss"]`).
fn strings(manifest: &Bound<'_, PyDict>, key: &str) -> Result<Option<Vec<String>>, String> {
    match manifest.get_item(key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(v) if v.is_instance_of::<PyString>() => Err(format!(
            "GANTRY_PLUGIN[{key:?}] must be a list of strings, not the string {v}"
        )),
        Some(v) => v
            .extract::<Vec<String>>()
            .map(Some)
            .map_err(|_| format!("GANTRY_PLUGIN[{key:?}] must be a list of strings, not {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_manifest(code: &std::ffi::CStr, f: impl FnOnce(Result<(Description, String), String>)) {
        crate::interp::start_interpreter();
        Python::attach(|py| {
            let dict = py.eval(code, None, None).unwrap();
            let out = read(dict.cast::<PyDict>().unwrap(), "m.py")
                .map(|(d, defaults)| (d, defaults.to_string()));
            f(out)
        });
    }

    #[test]
    fn a_full_manifest_and_the_defaults() {
        with_manifest(
            c"{'name': 'tiny-ae', 'family': 'autoencoder', 'version': '0.1.0', \
               'params': {'latent': 16}, 'losses': ['loss'], 'scores': ['mse'], \
               'metrics': ['psnr'], 'input': {'channels': [1], 'multiple_of': 4, 'min_size': 8}, \
               'summary': 'one line'}",
            |out| {
                let (d, defaults) = out.unwrap();
                assert_eq!(d.name.as_deref(), Some("tiny-ae"));
                assert_eq!(d.version.as_deref(), Some("0.1.0"));
                assert_eq!(d.families, vec!["autoencoder"]);
                assert_eq!(d.summary, "one line");
                assert_eq!(d.scores, vec!["mse"]);
                assert_eq!(d.metrics, vec!["psnr"]);
                assert_eq!(
                    d.input,
                    InputConstraints {
                        channels: vec![1],
                        multiple_of: 4,
                        min_size: 8
                    }
                );
                let params: ron::Value = ron::from_str(&d.default_params).unwrap();
                assert_eq!(
                    params,
                    ron::from_str::<ron::Value>("{\"latent\": 16}").unwrap()
                );
                assert_eq!(defaults, "{'latent': 16}");
                // The description crosses the ABI as RON and reads back.
                let text = ron::to_string(&d).unwrap();
                assert_eq!(ron::from_str::<Description>(&text).unwrap(), d);
            },
        );
        with_manifest(
            c"{'name': 'm', 'families': ['autoencoder', 'vae']}",
            |out| {
                let (d, defaults) = out.unwrap();
                assert_eq!(d.families, vec!["autoencoder", "vae"]);
                assert_eq!(d.losses, vec!["loss"]);
                assert_eq!(d.version, None);
                assert_eq!(d.summary, "Python model m (m.py)");
                assert_eq!(d.input.channels, vec![1, 3]);
                assert_eq!(defaults, "{}");
            },
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases: &[(&std::ffi::CStr, &str)] = &[
            (c"{'family': 'x'}", "no \"name\""),
            (c"{'name': 'm'}", "no \"family\""),
            (
                c"{'name': 'm', 'family': 'x', 'lossses': []}",
                "unknown key \"lossses\"",
            ),
            (
                c"{'name': 'm', 'family': 'x', 'losses': 'loss'}",
                "must be a list of strings",
            ),
            (
                c"{'name': 1, 'family': 'x'}",
                "GANTRY_PLUGIN[\"name\"] must be a string",
            ),
            (
                c"{'name': 'm', 'family': 'x', 'params': [1]}",
                "[\"params\"] is not a dict",
            ),
            (
                c"{'name': 'm', 'family': 'x', 'input': {'channels': [2]}}",
                "[\"channels\"] must be a list of 1 and/or 3",
            ),
            (
                c"{'name': 'm', 'family': 'x', 'input': {'multiple_of': 0}}",
                "[\"multiple_of\"] must be a positive integer",
            ),
        ];
        for (code, expected) in cases {
            with_manifest(code, |out| {
                let err = out.unwrap_err();
                assert!(err.contains(expected), "{code:?}: {err}");
            });
        }
    }
}
