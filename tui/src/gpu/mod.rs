//! GPU statistics of the host gantry runs on, from NVIDIA's management library (NVML):
//! what the dashboard's GPUs panel shows ([`GpuStats`]) and what the runner records as its
//! peak GPU memory ([`nvml::NvmlGpus::process_memory`]).
//!
//! NVML is loaded at run time ([`nvml`]), so nothing links against NVIDIA libraries: on a
//! host without the driver every query gives a one-line reason instead, and nothing here
//! panics. This module knows neither the dashboard nor run folders; it only measures.

pub mod nvml;

/// One GPU at one moment. A field NVML would not give (an old driver, a GPU that does not
/// report power) is `None`; it never hides the other fields or the other GPUs.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSample {
    /// NVML's index, as `nvidia-smi` and `cuda:N` (with the default device order) count.
    pub index: u32,
    /// The product name (`NVIDIA H200`); `?` when NVML would not say.
    pub name: String,
    /// Percent of the last sample period with a kernel running.
    pub utilization_pct: Option<u32>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub temperature_c: Option<u32>,
    pub power_watts: Option<f64>,
    /// Why the device could not be opened at all (fallen off the bus, no permission);
    /// every measurement is then `None`. One line, control characters escaped.
    pub error: Option<String>,
}

impl GpuSample {
    /// A device with nothing known about it yet.
    pub fn unknown(index: u32) -> GpuSample {
        GpuSample {
            index,
            name: "?".into(),
            utilization_pct: None,
            memory_used_bytes: None,
            memory_total_bytes: None,
            temperature_c: None,
            power_watts: None,
            error: None,
        }
    }
}

/// What a look at the host's GPUs found.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuStats {
    /// One sample per GPU, in NVML's order (empty: NVML runs but sees no GPU).
    Devices(Vec<GpuSample>),
    /// NVML could not be used; the reason is one short line with control characters
    /// escaped (`NVML not available: libnvidia-ml.so.1 not found`).
    Unavailable(String),
}

/// Bytes in GiB with one decimal, without the unit: `41.2`.
pub fn fmt_gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 30) as f64)
}

/// Longest reason or per-device error kept, in characters.
const REASON_CHARS: usize = 120;

/// Makes an error text fit one line of the dashboard: line breaks become spaces, control
/// characters are escaped, and a long text is cut with `…`.
pub fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let escaped = crate::text::escape_controls(&flat);
    if escaped.chars().count() <= REASON_CHARS {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(REASON_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gib_rounds_to_one_decimal() {
        assert_eq!(fmt_gib(0), "0.0");
        assert_eq!(fmt_gib(1 << 30), "1.0");
        // 41.24 GiB rounds down, 41.26 up.
        assert_eq!(fmt_gib(44_281_112_822), "41.2");
        assert_eq!(fmt_gib(44_302_587_658), "41.3");
        assert_eq!(fmt_gib(150_110_011_392), "139.8");
        // Under 0.05 GiB reads as zero, not as a negative or NaN.
        assert_eq!(fmt_gib(50 << 20), "0.0");
    }

    #[test]
    fn reasons_are_one_short_escaped_line() {
        assert_eq!(one_line("a\nb\t c"), "a b c");
        assert_eq!(one_line("red \u{1b}[31m"), "red \\u{1b}[31m");
        let long = one_line(&"x".repeat(500));
        assert_eq!(long.chars().count(), REASON_CHARS);
        assert!(long.ends_with('…'));
    }
}
