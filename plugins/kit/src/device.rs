//! Choosing the compute device from a run's device spec (`auto`, `cpu`, `cuda`, `cuda:N`).

use candle_core::Device;

/// The device a spec resolved to, with a sentence saying why (for the run's log).
pub struct Chosen {
    pub device: Device,
    /// `cpu` or `cuda:N`: what status.ron and the dashboard show.
    pub name: String,
    pub reason: String,
}

/// Parses and resolves a device spec. `auto` prefers CUDA when this build supports it and
/// a GPU answers, and otherwise falls back to the CPU, saying so.
pub fn choose(spec: &str) -> Result<Chosen, String> {
    let spec = spec.trim();
    match spec {
        "cpu" => Ok(Chosen {
            device: Device::Cpu,
            name: "cpu".into(),
            reason: "cpu requested".into(),
        }),
        "auto" | "" => Ok(auto()),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n.parse::<usize>().map_err(|_| {
                    format!("device {s:?}: expected cuda:N with N a GPU index, e.g. cuda:0")
                })?,
            };
            cuda(ordinal)
        }
        other => Err(format!(
            "device {other:?} is not one of auto, cpu, cuda, cuda:N"
        )),
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Chosen, String> {
    Device::new_cuda(ordinal)
        .map(|device| Chosen {
            device,
            name: format!("cuda:{ordinal}"),
            reason: format!("cuda:{ordinal} requested"),
        })
        .map_err(|e| {
            format!(
                "CUDA requested, but cuda:{ordinal} is not usable: {}",
                without_backtrace(e)
            )
        })
}

/// candle attaches a backtrace to its errors when RUST_BACKTRACE is set; a run's error
/// line should say what failed, not where.
#[cfg(feature = "cuda")]
fn without_backtrace(e: candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(*inner),
        other => other.to_string(),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda(ordinal: usize) -> Result<Chosen, String> {
    Err(format!(
        "CUDA requested (cuda:{ordinal}), but this plugin was built without CUDA support; \
         rebuild it with `--features cuda` or run with --device cpu"
    ))
}

fn auto() -> Chosen {
    #[cfg(feature = "cuda")]
    let reason = match cuda(0) {
        Ok(chosen) => {
            return Chosen {
                reason: "auto: a CUDA GPU answered".into(),
                ..chosen
            };
        }
        Err(e) => format!(
            "auto: no usable CUDA GPU, falling back to cpu ({})",
            e.trim_start_matches("CUDA requested, but ")
        ),
    };
    #[cfg(not(feature = "cuda"))]
    let reason = "auto: this plugin was built without CUDA support, using cpu".to_string();
    Chosen {
        device: Device::Cpu,
        name: "cpu".into(),
        reason,
    }
}

/// [`choose`], then tells the host which device and why (a log line and the `device`
/// fact the dashboard shows): what every plugin's `create` does first.
pub fn open(
    spec: &str,
    ctx: &mut gantry_plugin_api::Context<'_>,
) -> Result<Device, gantry_plugin_api::PluginError> {
    let chosen = choose(spec).map_err(gantry_plugin_api::PluginError::new)?;
    ctx.log(
        gantry_plugin_api::Level::Info,
        &format!("device {}: {}", chosen.name, chosen.reason),
    );
    ctx.info("device", &chosen.name);
    Ok(chosen.device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_resolve_without_a_gpu() {
        assert_eq!(choose("cpu").unwrap().name, "cpu");
        let auto = choose("auto").unwrap();
        assert_eq!(auto.name, "cpu");
        assert!(auto.reason.contains("cpu"), "{}", auto.reason);
    }

    #[test]
    fn bad_specs_are_named() {
        let err = choose("gpu").err().unwrap();
        assert!(err.contains("\"gpu\""), "{err}");
        let err = choose("cuda:x").err().unwrap();
        assert!(err.contains("cuda:N"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_so() {
        let err = choose("cuda:0").err().unwrap();
        assert!(err.contains("built without CUDA support"), "{err}");
    }
}
