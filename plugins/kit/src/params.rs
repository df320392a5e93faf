//! Hyper-parameters: a model's serde config with defaults, filled from the RON map the host
//! passes to `create`. Unknown keys are errors that name the key.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses a RON map (`{"latent": 32}`) into a config struct, keeping the struct's defaults
/// for absent keys. Errors name the offending key or value.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    let value: ron::Value =
        ron::from_str(text).map_err(|e| format!("params are not a RON map: {e}"))?;
    value.into_rust::<T>().map_err(|e| format!("params: {e}"))
}

/// Renders a config as the RON map `describe()` reports as the defaults.
pub fn to_map_text<T: Serialize>(config: &T) -> String {
    // Through ron::Value so the result is a map with string keys, which `parse` reads back.
    let text = ron::to_string(config).expect("configs serialise");
    let value: ron::Value = ron::from_str(&text).expect("own output parses");
    let map = match value {
        ron::Value::Map(map) => map,
        other => return ron::to_string(&other).expect("value serialises"),
    };
    ron::ser::to_string_pretty(&map, ron::ser::PrettyConfig::default()).expect("map serialises")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        latent: usize,
        channels: Vec<usize>,
    }

    impl Default for Cfg {
        fn default() -> Self {
            Cfg {
                latent: 64,
                channels: vec![32, 64],
            }
        }
    }

    #[test]
    fn partial_maps_keep_defaults() {
        let cfg: Cfg = parse("{\"latent\": 8}").unwrap();
        assert_eq!(
            cfg,
            Cfg {
                latent: 8,
                ..Cfg::default()
            }
        );
        assert_eq!(parse::<Cfg>("").unwrap(), Cfg::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse::<Cfg>("{\"latnet\": 8}").unwrap_err();
        assert!(err.contains("latnet"), "{err}");
    }

    #[test]
    fn defaults_round_trip_through_map_text() {
        let text = to_map_text(&Cfg::default());
        assert!(text.contains("\"latent\""), "{text}");
        assert_eq!(parse::<Cfg>(&text).unwrap(), Cfg::default());
    }
}
