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

/// Checks an input shape against a network that halves height and width `depth` times
/// and takes gray or RGB: the check every conv plugin's `create` makes, with messages that
/// name the fix. `plugin` names the model in the channel message.
pub fn check_input(
    setup: &gantry_plugin_api::Setup,
    depth: usize,
    plugin: &str,
) -> Result<(), String> {
    let factor = 1usize << depth;
    if !setup.height.is_multiple_of(factor)
        || !setup.width.is_multiple_of(factor)
        || setup.height == 0
        || setup.width == 0
    {
        return Err(format!(
            "input {}x{} is not divisible by 2^depth = {factor} (depth {depth} = number of \
             channels); use a size that is a multiple of {factor}, e.g. {}",
            setup.height,
            setup.width,
            (setup.height.max(factor) / factor) * factor
        ));
    }
    if !(setup.channels == 1 || setup.channels == 3) {
        return Err(format!(
            "input has {} channels; {plugin} takes 1 (gray) or 3 (RGB)",
            setup.channels
        ));
    }
    Ok(())
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
